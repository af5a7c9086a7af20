//! Arbitrary bytes → the management API's request body parsing: `body::Fields` and every typed
//! getter the resource handlers use (users, vhosts, permissions, policies, queue and exchange
//! declares, bindings, publish), the field-table conversion of `arguments` and `headers`, the
//! message properties of `POST .../publish`, and the multipart form of a definitions upload.
//! Bodies only: no handler runs, nothing changes.
#![no_main]

use hare::management::body::Fields;
use hare::management::definitions::form_field;
use hare::management::exchange_actions::properties;
use hare::vhost::json_table::{json_to_table, table_to_json};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The keys the handlers read, with the getter each one uses.
const STRINGS: [&str; 14] = [
    "password",
    "password_hash",
    "hashing_algorithm",
    "description",
    "default_queue_type",
    "configure",
    "write",
    "read",
    "exchange",
    "pattern",
    "apply-to",
    "type",
    "routing_key",
    "payload",
];
const BOOLS: [&str; 4] = ["durable", "auto_delete", "internal", "tracing"];
const INTEGERS: [&str; 3] = ["priority", "count", "truncate"];
const OBJECTS: [&str; 4] = ["arguments", "definition", "properties", "headers"];

fuzz_target!(|data: &[u8]| {
    let _ = form_field(data, "boundary", "file");
    let Ok(fields) = Fields::parse(data) else {
        return;
    };
    let _ = fields.require(&["pattern", "definition"]);
    let _ = fields.required_string("pattern");
    for key in STRINGS {
        let _ = fields.string(key);
    }
    for key in BOOLS {
        let _ = fields.bool(key);
    }
    for key in INTEGERS {
        let _ = fields.integer(key);
    }
    let _ = fields.tags("tags");
    for key in OBJECTS {
        if let Ok(Some(map)) = fields.object(key) {
            if let Ok(table) = json_to_table(&Value::Object(map.clone())) {
                // What converts to a table converts back without panicking.
                let _ = table_to_json(&table);
            }
            let _ = properties(map);
        }
    }
    let _ = properties(&fields.0);
});

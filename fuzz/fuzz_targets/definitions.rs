//! Arbitrary bytes → the definitions file parser (`DefinitionsJson`, as `POST
//! /api/definitions` and `--load-definitions` read it) and the checks an import runs before it
//! changes anything: users (`user_from_json`), vhost names, permission and policy patterns,
//! policy definitions, queue and binding arguments. Nothing is applied. What parses must
//! serialize and parse again to the same file.
#![no_main]

use hare::shard::definitions_transfer::user_from_json;
use hare::vhost::access::{AccessState, Pattern};
use hare::vhost::access_delta::AccessDelta;
use hare::vhost::definitions_json::DefinitionsJson;
use hare::vhost::json_table::{json_to_table, table_to_json};
use hare::vhost::policy::{compile_pattern, validate_definition};
use hare::vhost::queue_arguments;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(definitions) = serde_json::from_slice::<DefinitionsJson>(data) else {
        return;
    };
    let written = serde_json::to_vec(&definitions).expect("definitions serialize");
    let again: DefinitionsJson =
        serde_json::from_slice(&written).expect("written definitions parse");
    assert_eq!(
        serde_json::to_vec(&again).expect("definitions serialize"),
        written,
        "definitions round trip is not stable"
    );
    let access = AccessState::default();
    for vhost in &definitions.vhosts {
        let _ = access.check_delta(&AccessDelta::VHostPut {
            name: vhost.name.clone(),
            metadata: Default::default(),
        });
    }
    for user in &definitions.users {
        let _ = user_from_json(user);
    }
    for permission in &definitions.permissions {
        for pattern in [&permission.configure, &permission.write, &permission.read] {
            let _ = Pattern::compile(pattern);
        }
    }
    for policy in definitions
        .policies
        .iter()
        .chain(&definitions.operator_policies)
    {
        let _ = compile_pattern(&policy.pattern);
        for kind in [
            hare::vhost::access::PolicyKind::Policy,
            hare::vhost::access::PolicyKind::Operator,
        ] {
            let _ = validate_definition(kind, &policy.definition);
        }
    }
    for queue in &definitions.queues {
        if let Ok(table) = json_to_table(&queue.arguments) {
            let _ = queue_arguments::validate(&table, &queue.name, &queue.vhost);
            let _ = table_to_json(&table);
        }
    }
    for exchange in &definitions.exchanges {
        let _ = json_to_table(&exchange.arguments);
    }
    for binding in &definitions.bindings {
        let _ = json_to_table(&binding.arguments);
    }
});

//! `trace_on` and `trace_off`: the firehose switch of a vhost, `PUT /api/vhosts/{vhost}` with
//! `{"tracing": true|false}` (docs/harectl.md, "Tracing"). Like RabbitMQ's, it does not survive a
//! broker restart.

use serde_json::Value;

use crate::client::api_path;
use crate::context::Context;
use crate::error::CtlError;
use crate::vhosts::kept_metadata;

pub fn set(context: &Context, enabled: bool) -> Result<(), CtlError> {
    let vhost = &context.vhost;
    if enabled {
        context
            .output
            .banner(&format!("Starting tracing for vhost \"{vhost}\" ..."));
    } else {
        context
            .output
            .banner(&format!("Stopping tracing for vhost \"{vhost}\" ..."));
    }
    // A PUT on a missing vhost would create it: check first.
    let path = api_path(&["vhosts", vhost]);
    let Some(existing) = context.client.get_optional(&path)? else {
        return Err(CtlError::data(format!(
            "Virtual host '{vhost}' does not exist"
        )));
    };
    context
        .client
        .put(&path, &tracing_body(&existing, enabled))?;
    let state = if enabled { "enabled" } else { "disabled" };
    context
        .output
        .banner(&format!("Trace {state} for vhost {vhost}"));
    Ok(())
}

/// RabbitMQ replaces a vhost's metadata on PUT, so the description, tags and default queue
/// type are sent back with the new tracing flag.
fn tracing_body(existing: &Value, enabled: bool) -> Value {
    let mut body = kept_metadata(existing);
    body.insert("tracing".into(), Value::Bool(enabled));
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tracing_switch_keeps_the_vhost_metadata() {
        let existing = json!({"name": "v", "description": "d", "tags": ["a", "b"],
            "default_queue_type": "undefined", "tracing": false});
        assert_eq!(
            tracing_body(&existing, true),
            json!({"tracing": true, "tags": "a,b", "description": "d"})
        );
    }
}

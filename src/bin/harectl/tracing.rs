//! `trace_on` and `trace_off`: the firehose switch of a vhost, `PUT /api/vhosts/{vhost}` with
//! `{"tracing": true|false}` (docs/harectl.md, "Tracing"). Like RabbitMQ's, it does not survive a
//! broker restart.

use serde_json::json;

use crate::client::api_path;
use crate::context::Context;
use crate::error::CtlError;

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
    if context.client.get_optional(&path)?.is_none() {
        return Err(CtlError::data(format!(
            "Virtual host '{vhost}' does not exist"
        )));
    }
    context.client.put(&path, &json!({ "tracing": enabled }))?;
    let state = if enabled { "enabled" } else { "disabled" };
    context
        .output
        .banner(&format!("Trace {state} for vhost {vhost}"));
    Ok(())
}

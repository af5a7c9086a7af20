//! `/api/whoami`: the caller's name and tags.

use serde_json::json;

use crate::management::response::{self, Response};
use crate::management::router::Call;

pub fn whoami(call: &Call<'_>) -> Response {
    response::ok(&json!({
        "name": call.caller.name,
        "tags": call.caller.tags,
        "is_internal_user": true,
    }))
}

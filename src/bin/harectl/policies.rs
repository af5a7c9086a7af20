//! Policy commands over `/api/policies/{vhost}/{name}` and
//! `/api/operator-policies/{vhost}/{name}`: set, clear and list, for both kinds.

use serde_json::{json, Value};

use crate::args::PolicyArgs;
use crate::client::ApiError;
use crate::context::{field, tabulate, Context};
use crate::error::{CtlError, ExitCode};
use crate::output::Cell;
use crate::users::bad_request_is_data;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    User,
    Operator,
}

impl PolicyKind {
    fn collection(self) -> &'static str {
        match self {
            PolicyKind::User => "policies",
            PolicyKind::Operator => "operator-policies",
        }
    }
}

const COLUMNS: &[&str] = &[
    "vhost",
    "name",
    "pattern",
    "apply-to",
    "definition",
    "priority",
];

pub const APPLY_TO: &[&str] = &[
    "all",
    "queues",
    "exchanges",
    "classic_queues",
    "quorum_queues",
    "streams",
];

pub fn list(context: &Context, kind: PolicyKind) -> Result<(), CtlError> {
    let banner = match kind {
        PolicyKind::User => "Listing policies for vhost",
        PolicyKind::Operator => "Listing operator policy overrides for vhost",
    };
    context
        .output
        .banner(&format!("{banner} \"{}\" ...", context.vhost));
    let policies = context.list_in_vhost(kind.collection())?;
    let columns = COLUMNS.iter().map(|column| column.to_string()).collect();
    let mut table = tabulate(&policies, columns, |policy, column| match column {
        "definition" => Cell::JsonText(field(policy, column)),
        column => Cell::Plain(field(policy, column)),
    });
    table.blank_line_when_empty = true;
    context.output.table(&table);
    Ok(())
}

pub fn set(context: &Context, kind: PolicyKind, policy: &PolicyArgs) -> Result<(), CtlError> {
    let what = match kind {
        PolicyKind::User => "policy",
        PolicyKind::Operator => "operator policy override",
    };
    context.output.banner(&format!(
        "Setting {what} \"{}\" for pattern \"{}\" to \"{}\" with priority \"{}\" for vhost \"{}\" ...",
        policy.name, policy.pattern, policy.definition, policy.priority, context.vhost
    ));
    let body = policy_body(policy)?;
    context
        .client
        .put(
            &context.vhost_path(kind.collection(), &[&policy.name]),
            &body,
        )
        .map_err(bad_request_is_data)
}

pub fn clear(context: &Context, kind: PolicyKind, name: &str) -> Result<(), CtlError> {
    let what = match kind {
        PolicyKind::User => "policy",
        PolicyKind::Operator => "operator policy",
    };
    context.output.banner(&format!(
        "Clearing {what} \"{name}\" on vhost \"{}\" ...",
        context.vhost
    ));
    match context
        .client
        .delete(&context.vhost_path(kind.collection(), &[name]), None)
    {
        Err(ApiError::Status { status: 404, .. }) => Err(CtlError::refused(
            ExitCode::Unavailable,
            "Parameter does not exist",
        )),
        other => Ok(other?),
    }
}

/// The PUT body; the definition must be a JSON object and apply-to one of RabbitMQ's values.
fn policy_body(policy: &PolicyArgs) -> Result<Value, CtlError> {
    let definition = match serde_json::from_str::<Value>(&policy.definition) {
        Ok(definition @ Value::Object(_)) => definition,
        Ok(_) => {
            return Err(CtlError::data(
                "the policy definition must be a JSON object such as '{\"max-length\":10}'",
            ))
        }
        Err(error) => {
            return Err(CtlError::data(format!(
                "the policy definition is not valid JSON: {error}"
            )))
        }
    };
    if !APPLY_TO.contains(&policy.apply_to.as_str()) {
        return Err(CtlError::usage(format!(
            "--apply-to must be one of {}",
            APPLY_TO.join(", ")
        )));
    }
    Ok(json!({
        "pattern": policy.pattern,
        "definition": definition,
        "priority": policy.priority,
        "apply-to": policy.apply_to,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(definition: &str, apply_to: &str) -> PolicyArgs {
        PolicyArgs {
            name: "p".into(),
            pattern: "^q".into(),
            definition: definition.into(),
            priority: 2,
            apply_to: apply_to.into(),
        }
    }

    #[test]
    fn a_policy_body_carries_the_parsed_definition() {
        let body = policy_body(&args("{\"max-length\":5}", "queues")).unwrap();
        assert_eq!(
            body,
            json!({"pattern": "^q", "definition": {"max-length": 5}, "priority": 2, "apply-to": "queues"})
        );
    }

    #[test]
    fn bad_definitions_are_data_errors_and_bad_apply_to_is_usage() {
        let error = policy_body(&args("{not json", "all")).unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::DataError);
        let error = policy_body(&args("[1]", "all")).unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::DataError);
        let error = policy_body(&args("{}", "topics")).unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::Usage);
    }
}

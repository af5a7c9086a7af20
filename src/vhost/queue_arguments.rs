//! Queue `x-` arguments, checked once at declare time. The settings they give are parsed by
//! `QueueSettings::parse`; a queue type that is not implemented (`stream`) is refused with 406
//! rather than silently treated as classic. Unknown `x-` keys are ignored, as RabbitMQ does.

use crate::exception::Exception;
use crate::protocol::{FieldTable, FieldValue};
use crate::queue::settings::QueueSettings;
use crate::vhost::rules::QueueDeclare;

/// Classic-queue arguments a quorum queue refuses (RabbitMQ 3.13).
const NOT_FOR_QUORUM: [&str; 3] = ["x-max-priority", "x-queue-mode", "x-queue-version"];

/// The arguments compared on redeclare (RabbitMQ compares only the keys the queue type knows).
const COMPARED: [&str; 15] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
    "x-queue-leader-locator",
    "x-delivery-limit",
];

/// Checks declare arguments; `queue` and `vhost` are for the error text.
pub fn validate(arguments: &FieldTable, queue: &str, vhost: &str) -> Result<(), Exception> {
    if let Err(error) = QueueSettings::parse(arguments) {
        return Err(Exception::precondition_failed(format!(
            "invalid arg '{}' for queue '{queue}' in vhost '{vhost}': {}",
            error.key, error.error
        )));
    }
    if let Some(value) = arguments.get("x-queue-type") {
        match value.as_bytes() {
            Some(b"classic") => {}
            Some(b"quorum") => {
                if let Some(key) = NOT_FOR_QUORUM.iter().find(|key| arguments.contains_key(key)) {
                    return Err(Exception::precondition_failed(format!(
                        "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' of queue type rabbit_quorum_queue"
                    )));
                }
            }
            Some(other) => {
                return Err(Exception::precondition_failed(format!(
                    "invalid arg 'x-queue-type' for queue '{queue}' in vhost '{vhost}': queue type '{}' is not supported by this broker yet",
                    String::from_utf8_lossy(other)
                )))
            }
            None => {
                return Err(Exception::precondition_failed(format!(
                    "invalid arg 'x-queue-type' for queue '{queue}' in vhost '{vhost}': {{unacceptable_type,{}}}",
                    value.type_name()
                )))
            }
        }
    }
    if let Some(value) = arguments.get("x-queue-mode") {
        match value.as_bytes() {
            Some(b"default" | b"lazy") => {}
            _ => {
                return Err(Exception::precondition_failed(format!(
                    "invalid arg 'x-queue-mode' for queue '{queue}' in vhost '{vhost}'"
                )))
            }
        }
    }
    Ok(())
}

/// A quorum queue must be durable, not exclusive, not auto-delete (RabbitMQ's
/// `rabbit_queue_type_util` checks and texts).
pub fn check_queue_type_properties(request: &QueueDeclare, vhost: &str) -> Result<(), Exception> {
    if request
        .arguments
        .get("x-queue-type")
        .and_then(FieldValue::as_bytes)
        != Some(b"quorum")
    {
        return Ok(());
    }
    let property = if request.auto_delete {
        "auto-delete"
    } else if request.exclusive {
        "exclusive-owner"
    } else if !request.durable {
        "non-durable"
    } else {
        return Ok(());
    };
    Err(Exception::precondition_failed(format!(
        "invalid property '{property}' for queue '{}' in vhost '{vhost}'",
        request.name
    )))
}

/// Compares the arguments of a redeclare with the stored ones. Returns the first key whose
/// value differs, with both values rendered for the error text.
pub fn first_difference(stored: &FieldTable, received: &FieldTable) -> Option<String> {
    for key in COMPARED {
        let old = effective(stored, key);
        let new = effective(received, key);
        let equal = match (&old, &new) {
            (None, None) => true,
            (Some(a), Some(b)) => a.value_eq(b),
            _ => false,
        };
        if !equal {
            return Some(format!(
                "inequivalent arg '{key}' for queue: received {} but current is {}",
                render(new.as_ref()),
                render(old.as_ref())
            ));
        }
    }
    None
}

/// `x-queue-type` absent means classic.
fn effective(arguments: &FieldTable, key: &str) -> Option<FieldValue> {
    match arguments.get(key) {
        Some(value) => Some(value.clone()),
        None if key == "x-queue-type" => {
            Some(FieldValue::LongStr(bytes::Bytes::from_static(b"classic")))
        }
        None => None,
    }
}

fn render(value: Option<&FieldValue>) -> String {
    match value {
        None => "none".to_string(),
        Some(FieldValue::LongStr(bytes)) => {
            format!(
                "the value '{}' of type 'longstr'",
                String::from_utf8_lossy(bytes)
            )
        }
        Some(other) => match other.as_i64() {
            Some(int) => format!("the value '{int}' of type '{}'", other.type_name()),
            None => format!("a value of type '{}'", other.type_name()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ShortStr;

    fn table(pairs: &[(&'static str, FieldValue)]) -> FieldTable {
        let mut table = FieldTable::new();
        for (key, value) in pairs {
            table.insert(ShortStr::from_static(key), value.clone());
        }
        table
    }

    #[test]
    fn unimplemented_queue_types_are_refused_not_ignored() {
        let args = table(&[(
            "x-queue-type",
            FieldValue::LongStr(bytes::Bytes::from_static(b"stream")),
        )]);
        let error = validate(&args, "q", "/").unwrap_err();
        assert_eq!(error.reply_code(), 406);
        assert!(error.explanation.contains("stream"));
    }

    #[test]
    fn invalid_settings_are_refused_with_rabbitmq_text() {
        let args = table(&[("x-expires", FieldValue::I32(0))]);
        let error = validate(&args, "q", "/").unwrap_err();
        assert_eq!(error.reply_code(), 406);
        assert_eq!(
            error.explanation.as_str(),
            "invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}"
        );
    }

    #[test]
    fn unknown_x_keys_are_ignored() {
        let args = table(&[("x-foo", FieldValue::I32(1))]);
        assert!(validate(&args, "q", "/").is_ok());
    }

    #[test]
    fn integers_compare_by_value_across_widths() {
        let stored = table(&[("x-queue-version", FieldValue::I32(2))]);
        let received = table(&[("x-queue-version", FieldValue::I64(2))]);
        assert_eq!(first_difference(&stored, &received), None);
        let other = table(&[("x-queue-version", FieldValue::I64(1))]);
        assert!(first_difference(&stored, &other).is_some());
    }

    #[test]
    fn absent_queue_type_equals_classic() {
        let stored = FieldTable::new();
        let received = table(&[(
            "x-queue-type",
            FieldValue::LongStr(bytes::Bytes::from_static(b"classic")),
        )]);
        assert_eq!(first_difference(&stored, &received), None);
    }
}

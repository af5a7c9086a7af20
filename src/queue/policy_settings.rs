//! A queue's effective settings from its declare arguments and the merged definition of the
//! policy and operator policy that apply to it (`vhost::policy`), resolved key by key as
//! RabbitMQ 3.13's queue types do (`rabbit_queue_type_util:args_policy_lookup/3` with
//! `rabbit_amqqueue_process:process_args_policy/1` for classic queues,
//! `rabbit_quorum_queue:ra_machine_config/1` for quorum queues, and
//! `rabbit_channel:get_queue_consumer_timeout/2`):
//!
//! | key | classic | quorum |
//! | --- | --- | --- |
//! | message-ttl, max-length, max-length-bytes, consumer-timeout | smaller | smaller |
//! | expires | smaller | policy |
//! | overflow | argument | policy |
//! | dead-letter-exchange, dead-letter-routing-key | argument | argument |
//! | delivery-limit | (not a classic key) | smaller |
//!
//! A key set by only one side takes that side's value. `max-priority`,
//! `single-active-consumer` and the rest come from arguments only: no policy sets them.

use serde_json::Value;

use crate::protocol::{FieldTable, ShortStr};
use crate::queue::settings::{Overflow, QueueSettings, QueueType, EXPIRY_MAX_MS};
use crate::vhost::policy::Definition;

/// How a key set by both the argument and the policy is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolve {
    Smaller,
    Argument,
    Policy,
}

impl QueueSettings {
    /// The settings of a queue declared with `arguments` under the merged policy
    /// `definition` (empty: no policy). Arguments were checked when the queue was declared.
    pub fn effective(arguments: &FieldTable, definition: &Definition) -> QueueSettings {
        let mut settings = QueueSettings::parse(arguments).unwrap_or_default();
        if definition.is_empty() {
            return settings;
        }
        let quorum = settings.queue_type == QueueType::Quorum;
        let by_type = |classic, quorum_rule| if quorum { quorum_rule } else { classic };
        let has = |key: &str| arguments.get(&format!("x-{key}")).is_some();
        let number = |key: &str| definition.get(key).and_then(Value::as_u64);
        let text = |key: &str| definition.get(key).and_then(Value::as_str);

        let ttl = |key: &str| number(key).map(clamp_ms);
        settings.message_ttl = resolve(
            settings.message_ttl,
            has("message-ttl"),
            ttl("message-ttl"),
            Resolve::Smaller,
        );
        settings.expires = resolve(
            settings.expires,
            has("expires"),
            ttl("expires").filter(|ms| *ms > 0),
            by_type(Resolve::Smaller, Resolve::Policy),
        );
        settings.max_length = resolve(
            settings.max_length,
            has("max-length"),
            number("max-length"),
            Resolve::Smaller,
        );
        settings.max_length_bytes = resolve(
            settings.max_length_bytes,
            has("max-length-bytes"),
            number("max-length-bytes"),
            Resolve::Smaller,
        );
        settings.consumer_timeout = resolve(
            settings.consumer_timeout,
            has("consumer-timeout"),
            number("consumer-timeout"),
            Resolve::Smaller,
        );
        if quorum {
            settings.delivery_limit = resolve(
                settings.delivery_limit,
                has("delivery-limit"),
                number("delivery-limit"),
                Resolve::Smaller,
            );
        }
        let overflow = text("overflow").and_then(overflow_of);
        settings.overflow = resolve_unordered(
            Some(settings.overflow),
            has("overflow"),
            overflow,
            by_type(Resolve::Argument, Resolve::Policy),
        )
        .unwrap_or_default();
        let short = |key: &str| text(key).and_then(ShortStr::copy_from_str);
        settings.dead_letter_exchange = resolve_unordered(
            settings.dead_letter_exchange.clone(),
            has("dead-letter-exchange"),
            short("dead-letter-exchange"),
            Resolve::Argument,
        );
        settings.dead_letter_routing_key = resolve_unordered(
            settings.dead_letter_routing_key.clone(),
            has("dead-letter-routing-key"),
            short("dead-letter-routing-key"),
            Resolve::Argument,
        );
        settings
    }
}

/// `args_policy_lookup`: a key set on one side only takes that value; set on both, `rule`
/// decides. `argument` is the value the arguments gave (a quorum queue's default delivery
/// limit counts as unset: `argument_set` is false).
fn resolve<T: Ord>(
    argument: Option<T>,
    argument_set: bool,
    policy: Option<T>,
    rule: Resolve,
) -> Option<T> {
    pick(argument, argument_set, policy, rule, Ord::min)
}

/// `resolve` for values without an order (`Resolve::Smaller` then keeps the argument).
fn resolve_unordered<T>(
    argument: Option<T>,
    argument_set: bool,
    policy: Option<T>,
    rule: Resolve,
) -> Option<T> {
    pick(argument, argument_set, policy, rule, |argument, _| argument)
}

fn pick<T>(
    argument: Option<T>,
    argument_set: bool,
    policy: Option<T>,
    rule: Resolve,
    smaller: impl FnOnce(T, T) -> T,
) -> Option<T> {
    match (argument_set, argument, policy) {
        (_, argument, None) => argument,
        (false, _, Some(policy)) => Some(policy),
        (true, Some(argument), Some(policy)) => Some(match rule {
            Resolve::Smaller => smaller(argument, policy),
            Resolve::Argument => argument,
            Resolve::Policy => policy,
        }),
        (true, None, policy) => policy,
    }
}

/// Policy values are any non-negative integer; a timer takes no more than RabbitMQ's
/// `MAX_EXPIRY_TIMER`.
fn clamp_ms(ms: u64) -> u32 {
    u32::try_from(ms.min(EXPIRY_MAX_MS as u64)).unwrap_or(u32::MAX)
}

fn overflow_of(text: &str) -> Option<Overflow> {
    match text {
        "drop-head" => Some(Overflow::DropHead),
        "reject-publish" => Some(Overflow::RejectPublish),
        "reject-publish-dlx" => Some(Overflow::RejectPublishDlx),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::FieldValue;
    use bytes::Bytes;
    use serde_json::json;

    fn table(pairs: &[(&'static str, FieldValue)]) -> FieldTable {
        let mut table = FieldTable::new();
        for (key, value) in pairs {
            table.insert(ShortStr::from_static(key), value.clone());
        }
        table
    }

    fn text(s: &'static str) -> FieldValue {
        FieldValue::LongStr(Bytes::from_static(s.as_bytes()))
    }

    fn definition(value: Value) -> Definition {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    fn full_policy() -> Definition {
        definition(json!({
            "message-ttl": 5000, "expires": 9000, "max-length": 10, "max-length-bytes": 100,
            "overflow": "reject-publish", "dead-letter-exchange": "pdlx",
            "dead-letter-routing-key": "pkey", "consumer-timeout": 700, "delivery-limit": 4
        }))
    }

    #[test]
    fn a_policy_alone_sets_the_settings() {
        let settings = QueueSettings::effective(&FieldTable::new(), &full_policy());
        assert_eq!(settings.message_ttl, Some(5000));
        assert_eq!(settings.expires, Some(9000));
        assert_eq!(settings.max_length, Some(10));
        assert_eq!(settings.max_length_bytes, Some(100));
        assert_eq!(settings.overflow, Overflow::RejectPublish);
        assert_eq!(
            settings.dead_letter_exchange.map(|x| x.to_string_lossy()),
            Some("pdlx".into())
        );
        assert_eq!(settings.consumer_timeout, Some(700));
        // Not a classic key.
        assert_eq!(settings.delivery_limit, None);
        assert_eq!(
            QueueSettings::effective(&FieldTable::new(), &Definition::new()),
            QueueSettings::default()
        );
    }

    #[test]
    fn classic_arguments_meet_policies_key_by_key() {
        let arguments = table(&[
            ("x-message-ttl", FieldValue::I32(9000)),
            ("x-expires", FieldValue::I32(3000)),
            ("x-max-length", FieldValue::I32(50)),
            ("x-max-length-bytes", FieldValue::I32(20)),
            ("x-overflow", text("drop-head")),
            ("x-dead-letter-exchange", text("adlx")),
            ("x-consumer-timeout", FieldValue::I32(900)),
        ]);
        let settings = QueueSettings::effective(&arguments, &full_policy());
        assert_eq!(settings.message_ttl, Some(5000), "smaller");
        assert_eq!(settings.expires, Some(3000), "smaller");
        assert_eq!(settings.max_length, Some(10), "smaller");
        assert_eq!(settings.max_length_bytes, Some(20), "smaller");
        assert_eq!(settings.overflow, Overflow::DropHead, "argument");
        assert_eq!(
            settings.dead_letter_exchange.map(|x| x.to_string_lossy()),
            Some("adlx".into()),
            "argument"
        );
        assert_eq!(
            settings
                .dead_letter_routing_key
                .map(|x| x.to_string_lossy()),
            Some("pkey".into()),
            "policy where the argument is absent"
        );
        assert_eq!(settings.consumer_timeout, Some(700), "smaller");
    }

    #[test]
    fn quorum_queues_let_the_policy_win_expires_and_overflow() {
        let arguments = table(&[
            ("x-queue-type", text("quorum")),
            ("x-expires", FieldValue::I32(3000)),
            ("x-overflow", text("drop-head")),
            ("x-delivery-limit", FieldValue::I32(9)),
        ]);
        let settings = QueueSettings::effective(&arguments, &full_policy());
        assert_eq!(settings.expires, Some(9000));
        assert_eq!(settings.overflow, Overflow::RejectPublish);
        assert_eq!(settings.delivery_limit, Some(4));
        // Without the argument, the policy's limit replaces the default.
        let plain = table(&[("x-queue-type", text("quorum"))]);
        let loose = definition(json!({"delivery-limit": 50}));
        assert_eq!(
            QueueSettings::effective(&plain, &loose).delivery_limit,
            Some(50)
        );
    }
}

//! A queue's effective settings, computed in one place from its declare arguments: message
//! TTL, expiry, dead lettering, length limits, priorities, consumer rules, the consumer
//! timeout and message deduplication. The queue runtime reads only this
//! struct, never the arguments, so a later source of settings (policies) changes a live queue
//! by handing it a new one. Checking follows RabbitMQ 3.13's `rabbit_amqqueue:declare_args`:
//! the same keys, the same accepted types and the same error terms
//! (docs/rabbitmq-compatibility.md §16).

use crate::protocol::{FieldTable, FieldValue, ShortStr};

/// RabbitMQ's `MAX_EXPIRY_TIMER`: the largest TTL or expiry it accepts, in milliseconds.
pub const EXPIRY_MAX_MS: i64 = 4_294_967_295;

/// The largest `x-max-priority` RabbitMQ supports.
pub const PRIORITY_MAX: i64 = 255;

/// The delivery limit a quorum queue gets when `x-delivery-limit` is not set (RabbitMQ 4's
/// default; 3.13 had none).
pub const QUORUM_DELIVERY_LIMIT_DEFAULT: u64 = 20;

/// `x-queue-type`. A quorum queue on one node keeps a classic queue's storage and adds the
/// rules a single node can honour: durable only, no exclusive or auto-delete, a default
/// delivery limit, the `x-delivery-count` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
}

/// What happens to a publish when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (or dead-letter, reason `maxlen`) the oldest ready messages.
    #[default]
    DropHead,
    /// Refuse the new message: a nack for a confirming publisher.
    RejectPublish,
    /// Refuse it and dead-letter it.
    RejectPublishDlx,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueSettings {
    /// `x-message-ttl`, milliseconds.
    pub message_ttl: Option<u32>,
    /// `x-expires`, milliseconds (never 0).
    pub expires: Option<u32>,
    /// `x-dead-letter-exchange` (may name the default exchange, "").
    pub dead_letter_exchange: Option<ShortStr>,
    /// `x-dead-letter-routing-key`; None routes with the message's own keys.
    pub dead_letter_routing_key: Option<ShortStr>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// `x-max-priority`; None (or 0) means one level, FIFO.
    pub max_priority: Option<u8>,
    pub queue_type: QueueType,
    /// `x-delivery-limit`: returns (requeues) a message may have before it is dead-lettered
    /// with reason `delivery_limit`.
    pub delivery_limit: Option<u64>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-consumer-timeout`, milliseconds: overrides the broker's consumer timeout for
    /// deliveries from this queue; 0 disables it.
    pub consumer_timeout: Option<u64>,
    /// `x-message-deduplication` (the rabbitmq-message-deduplication plugin's queue
    /// argument): a message whose `x-deduplication-header` value equals that of a message in
    /// the queue (ready or unacked) is refused.
    pub message_deduplication: bool,
}

/// A declare argument RabbitMQ would refuse: the key and the error term it prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError {
    pub key: &'static str,
    pub error: String,
}

impl QueueSettings {
    /// Parses and checks the arguments; unknown `x-` keys are ignored, as RabbitMQ does.
    pub fn parse(arguments: &FieldTable) -> Result<QueueSettings, ArgumentError> {
        let mut settings = QueueSettings::default();
        if let Some(value) = arguments.get("x-expires") {
            let ms = expiry(value, true).map_err(|error| fail("x-expires", error))?;
            settings.expires = Some(ms);
        }
        if let Some(value) = arguments.get("x-message-ttl") {
            let ms = expiry(value, false).map_err(|error| fail("x-message-ttl", error))?;
            settings.message_ttl = Some(ms);
        }
        if let Some(value) = arguments.get("x-dead-letter-exchange") {
            settings.dead_letter_exchange =
                Some(short_string(value).map_err(|e| fail("x-dead-letter-exchange", e))?);
        }
        if let Some(value) = arguments.get("x-dead-letter-routing-key") {
            let key = short_string(value).map_err(|e| fail("x-dead-letter-routing-key", e))?;
            if settings.dead_letter_exchange.is_none() {
                return Err(fail(
                    "x-dead-letter-routing-key",
                    "routing_key_but_no_dlx_defined".to_string(),
                ));
            }
            settings.dead_letter_routing_key = Some(key);
        }
        if let Some(value) = arguments.get("x-max-length") {
            settings.max_length = Some(non_negative(value).map_err(|e| fail("x-max-length", e))?);
        }
        if let Some(value) = arguments.get("x-max-length-bytes") {
            settings.max_length_bytes =
                Some(non_negative(value).map_err(|e| fail("x-max-length-bytes", e))?);
        }
        if let Some(value) = arguments.get("x-overflow") {
            settings.overflow = overflow(value).map_err(|e| fail("x-overflow", e))?;
        }
        if let Some(value) = arguments.get("x-max-priority") {
            let priority = non_negative(value).map_err(|e| fail("x-max-priority", e))?;
            if priority > PRIORITY_MAX as u64 {
                return Err(fail(
                    "x-max-priority",
                    format!("{{max_value_exceeded,{priority}}}"),
                ));
            }
            settings.max_priority = u8::try_from(priority).ok().filter(|p| *p > 0);
        }
        if let Some(value) = arguments.get("x-single-active-consumer") {
            settings.single_active_consumer = match value {
                FieldValue::Bool(on) => *on,
                other => {
                    return Err(fail(
                        "x-single-active-consumer",
                        format!("{{unacceptable_type,{}}}", other.type_name()),
                    ))
                }
            };
        }
        if let Some(value) = arguments.get("x-message-deduplication") {
            // The plugin reads any value; a boolean is what it documents, and all we take.
            settings.message_deduplication = value.as_bool().ok_or_else(|| {
                fail(
                    "x-message-deduplication",
                    format!("{{unacceptable_type,{}}}", value.type_name()),
                )
            })?;
        }
        if let Some(value) = arguments.get("x-delivery-limit") {
            settings.delivery_limit =
                Some(non_negative(value).map_err(|e| fail("x-delivery-limit", e))?);
        }
        if let Some(value) = arguments.get("x-consumer-timeout") {
            // RabbitMQ 3.13 does not check it (a non-integer silently means no timeout);
            // 4.x refuses anything but a non-negative integer, which is what we do.
            settings.consumer_timeout =
                Some(non_negative(value).map_err(|e| fail("x-consumer-timeout", e))?);
        }
        if arguments.get("x-queue-type").and_then(FieldValue::as_bytes) == Some(b"quorum") {
            settings.queue_type = QueueType::Quorum;
            settings
                .delivery_limit
                .get_or_insert(QUORUM_DELIVERY_LIMIT_DEFAULT);
        }
        Ok(settings)
    }

    /// True if returns must be counted (`x-delivery-limit`, and the `x-delivery-count` header of
    /// quorum queues).
    pub fn counts_deliveries(&self) -> bool {
        self.delivery_limit.is_some() || self.queue_type == QueueType::Quorum
    }

    /// The acknowledgement timeout of deliveries from this queue: `x-consumer-timeout` if set,
    /// else the broker's `default`; None (or 0) means none.
    pub fn ack_timeout_ms(&self, default: Option<u64>) -> Option<u64> {
        self.consumer_timeout.or(default).filter(|ms| *ms > 0)
    }

    /// True if a publish must look at the queue after enqueueing (TTL, limits, dead
    /// lettering...): any setting but the consumer timeout, which only the consumer's channel
    /// reads.
    pub fn affects_publish(&self) -> bool {
        let publish_side = QueueSettings {
            consumer_timeout: None,
            ..self.clone()
        };
        publish_side != QueueSettings::default()
    }

    /// Priority levels the ready list keeps: one without `x-max-priority`.
    pub fn priority_levels(&self) -> usize {
        usize::from(self.max_priority.unwrap_or(0)) + 1
    }

    /// The level a message with `priority` goes to: above the maximum counts as the maximum,
    /// as in RabbitMQ.
    pub fn level_of(&self, priority: u8) -> u8 {
        priority.min(self.max_priority.unwrap_or(0))
    }
}

fn fail(key: &'static str, error: String) -> ArgumentError {
    ArgumentError { key, error }
}

/// RabbitMQ's integer argument types (`?INTEGER_ARG_TYPES`: no timestamp, no float).
fn integer(value: &FieldValue) -> Result<i64, String> {
    value
        .as_i64()
        .ok_or_else(|| format!("{{unacceptable_type,{}}}", value.type_name()))
}

fn non_negative(value: &FieldValue) -> Result<u64, String> {
    let int = integer(value)?;
    u64::try_from(int).map_err(|_| format!("{{value_negative,{int}}}"))
}

/// `check_expires_arg` (zero refused) and `check_message_ttl_arg` (zero allowed).
fn expiry(value: &FieldValue, zero_refused: bool) -> Result<u32, String> {
    let int = integer(value)?;
    if zero_refused && int == 0 {
        return Err("{value_zero,0}".to_string());
    }
    check_expiry(int)
}

/// `rabbit_misc:check_expiry`.
pub fn check_expiry(ms: i64) -> Result<u32, String> {
    if ms > EXPIRY_MAX_MS {
        return Err(format!("{{value_too_large,{ms}}}"));
    }
    u32::try_from(ms).map_err(|_| format!("{{value_negative,{ms}}}"))
}

fn short_string(value: &FieldValue) -> Result<ShortStr, String> {
    match value {
        FieldValue::LongStr(bytes) => ShortStr::try_from_bytes(bytes.clone())
            .ok_or_else(|| "{name_too_long,longstr}".to_string()),
        other => Err(format!("{{unacceptable_type,{}}}", other.type_name())),
    }
}

fn overflow(value: &FieldValue) -> Result<Overflow, String> {
    match value {
        FieldValue::LongStr(bytes) => match &bytes[..] {
            b"drop-head" => Ok(Overflow::DropHead),
            b"reject-publish" => Ok(Overflow::RejectPublish),
            b"reject-publish-dlx" => Ok(Overflow::RejectPublishDlx),
            _ => Err("invalid_overflow".to_string()),
        },
        other => Err(format!("{{unacceptable_type,{}}}", other.type_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

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

    fn error_of(pairs: &[(&'static str, FieldValue)]) -> (String, String) {
        let error = QueueSettings::parse(&table(pairs)).unwrap_err();
        (error.key.to_string(), error.error)
    }

    #[test]
    fn every_setting_is_read_from_its_argument() {
        let settings = QueueSettings::parse(&table(&[
            ("x-message-ttl", FieldValue::I32(1500)),
            ("x-expires", FieldValue::I64(60_000)),
            ("x-dead-letter-exchange", text("dlx")),
            ("x-dead-letter-routing-key", text("dead")),
            ("x-max-length", FieldValue::U16(10)),
            ("x-max-length-bytes", FieldValue::I64(1 << 20)),
            ("x-overflow", text("reject-publish-dlx")),
            ("x-max-priority", FieldValue::U8(9)),
        ]))
        .unwrap();
        assert_eq!(settings.message_ttl, Some(1500));
        assert_eq!(settings.expires, Some(60_000));
        assert_eq!(settings.dead_letter_exchange.unwrap().as_bytes(), b"dlx");
        assert_eq!(
            settings.dead_letter_routing_key.unwrap().as_bytes(),
            b"dead"
        );
        assert_eq!(settings.max_length, Some(10));
        assert_eq!(settings.max_length_bytes, Some(1 << 20));
        assert_eq!(settings.overflow, Overflow::RejectPublishDlx);
        assert_eq!(settings.max_priority, Some(9));
    }

    #[test]
    fn refusals_use_rabbitmq_error_terms() {
        type Case = (Vec<(&'static str, FieldValue)>, &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (
                vec![("x-expires", FieldValue::I32(0))],
                "x-expires",
                "{value_zero,0}",
            ),
            (
                vec![("x-expires", FieldValue::I32(-5))],
                "x-expires",
                "{value_negative,-5}",
            ),
            (
                vec![("x-message-ttl", text("10"))],
                "x-message-ttl",
                "{unacceptable_type,longstr}",
            ),
            (
                vec![("x-message-ttl", FieldValue::I64(EXPIRY_MAX_MS + 1))],
                "x-message-ttl",
                "{value_too_large,4294967296}",
            ),
            (
                vec![("x-max-length", FieldValue::I32(-1))],
                "x-max-length",
                "{value_negative,-1}",
            ),
            (
                vec![("x-overflow", text("drop-tail"))],
                "x-overflow",
                "invalid_overflow",
            ),
            (
                vec![("x-max-priority", FieldValue::I32(256))],
                "x-max-priority",
                "{max_value_exceeded,256}",
            ),
            (
                vec![("x-dead-letter-routing-key", text("k"))],
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined",
            ),
            (
                vec![("x-dead-letter-exchange", FieldValue::I32(1))],
                "x-dead-letter-exchange",
                "{unacceptable_type,signedint}",
            ),
            (
                vec![("x-message-ttl", FieldValue::F64(1.0))],
                "x-message-ttl",
                "{unacceptable_type,double}",
            ),
        ];
        for (pairs, key, error) in cases {
            assert_eq!(error_of(&pairs), (key.to_string(), error.to_string()));
        }
    }

    #[test]
    fn the_consumer_timeout_overrides_the_broker_default() {
        let settings =
            QueueSettings::parse(&table(&[("x-consumer-timeout", FieldValue::I64(5000))])).unwrap();
        assert_eq!(settings.ack_timeout_ms(Some(1_800_000)), Some(5000));
        assert_eq!(settings.ack_timeout_ms(None), Some(5000));
        assert!(!settings.affects_publish());
        let off =
            QueueSettings::parse(&table(&[("x-consumer-timeout", FieldValue::I32(0))])).unwrap();
        assert_eq!(off.ack_timeout_ms(Some(1_800_000)), None);
        assert_eq!(
            QueueSettings::default().ack_timeout_ms(Some(1_800_000)),
            Some(1_800_000)
        );
        assert_eq!(
            error_of(&[("x-consumer-timeout", text("1000"))]),
            (
                "x-consumer-timeout".to_string(),
                "{unacceptable_type,longstr}".to_string()
            )
        );
        assert_eq!(
            error_of(&[("x-consumer-timeout", FieldValue::I32(-1))]).1,
            "{value_negative,-1}"
        );
    }

    #[test]
    fn message_deduplication_is_a_boolean() {
        let on = QueueSettings::parse(&table(&[(
            "x-message-deduplication",
            FieldValue::Bool(true),
        )]))
        .unwrap();
        assert!(on.message_deduplication);
        assert!(on.affects_publish());
        assert_eq!(
            error_of(&[("x-message-deduplication", text("true"))]),
            (
                "x-message-deduplication".to_string(),
                "{unacceptable_type,longstr}".to_string()
            )
        );
    }

    #[test]
    fn zero_ttl_is_allowed_and_zero_priority_is_one_level() {
        let settings = QueueSettings::parse(&table(&[
            ("x-message-ttl", FieldValue::I32(0)),
            ("x-max-priority", FieldValue::I32(0)),
        ]))
        .unwrap();
        assert_eq!(settings.message_ttl, Some(0));
        assert_eq!(settings.priority_levels(), 1);
    }

    #[test]
    fn priorities_above_the_maximum_count_as_the_maximum() {
        let settings =
            QueueSettings::parse(&table(&[("x-max-priority", FieldValue::I32(5))])).unwrap();
        assert_eq!(settings.priority_levels(), 6);
        assert_eq!(settings.level_of(9), 5);
        assert_eq!(settings.level_of(3), 3);
        assert_eq!(QueueSettings::default().level_of(7), 0);
    }
}

//! What connection.start says (docs/rabbitmq-compatibility.md §2). Clients turn features on by the
//! capability names, and kombu/Celery picks its QoS semantics from `product`/`version`: with
//! anything but `RabbitMQ` ≥ 3.3 it assumes the spec's channel-wide basic.qos(global=false)
//! and its on-the-fly prefetch changes stop working. So we advertise RabbitMQ's product and a
//! 3.13 version for compatibility, and say who we really are in `platform` and `information`.

use bytes::Bytes;

use crate::protocol::{FieldTable, FieldValue, ShortStr};

/// The RabbitMQ version whose behaviour we follow.
pub const COMPATIBLE_VERSION: &str = "3.13.7";

/// The capabilities we implement.
pub const CAPABILITIES: [&str; 9] = [
    "consumer_priorities",
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
];

pub fn server_properties() -> FieldTable {
    let mut capabilities = FieldTable::new();
    for name in CAPABILITIES {
        capabilities.insert(ShortStr::from_static(name), FieldValue::Bool(true));
    }
    let mut table = FieldTable::new();
    table.insert(
        ShortStr::from_static("capabilities"),
        FieldValue::Table(capabilities),
    );
    let text = |s: &'static str| FieldValue::LongStr(Bytes::from_static(s.as_bytes()));
    table.insert(ShortStr::from_static("product"), text("RabbitMQ"));
    table.insert(ShortStr::from_static("version"), text(COMPATIBLE_VERSION));
    table.insert(
        ShortStr::from_static("platform"),
        text(concat!(
            "Hare ",
            env!("CARGO_PKG_VERSION"),
            " (Rust, glommio)"
        )),
    );
    table.insert(
        ShortStr::from_static("cluster_name"),
        text("hare@localhost"),
    );
    table.insert(
        ShortStr::from_static("copyright"),
        text("Copyright (c) the Hare authors"),
    );
    table.insert(
        ShortStr::from_static("information"),
        text(concat!(
            "Hare ",
            env!("CARGO_PKG_VERSION"),
            ": an AMQP 0-9-1 broker that behaves like RabbitMQ 3.13"
        )),
    );
    table
}

//! A published message as queues hold it. Built once on the publisher's shard; the body and
//! the raw property bytes are `Bytes` slices of the socket buffer, so every queue and every
//! delivery shares them and nothing is copied per queue.

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// delivery-mode 2. The other properties the broker acts on (reply-to, user-id, CC/BCC
    /// headers) are used by the publishing connection before the message is built; keeping
    /// the decoded properties out makes a message 136 bytes instead of about 500, which every
    /// move across the shard mesh pays for.
    pub persistent: bool,
    /// The `expiration` property, checked and parsed at publish (milliseconds).
    pub ttl: Option<u32>,
    /// The `priority` property (0 when absent).
    pub priority: u8,
    /// The property flags and list exactly as received, forwarded verbatim on delivery.
    pub properties_raw: Bytes,
    pub body: Bytes,
}

impl Message {
    pub fn body_size(&self) -> usize {
        self.body.len()
    }

    /// A copy whose headers carry `x-delivery-count`, as RabbitMQ's quorum queues deliver a
    /// returned message. Properties that do not decode (they were checked at publish) are
    /// left as they are.
    pub fn with_delivery_count(&self, count: u32) -> Message {
        let mut copy = self.clone();
        if let Ok(mut properties) = BasicProperties::decode(&self.properties_raw) {
            properties
                .headers
                .get_or_insert_with(FieldTable::new)
                .insert(
                    ShortStr::from_static("x-delivery-count"),
                    FieldValue::I64(i64::from(count)),
                );
            copy.properties_raw = properties.to_raw();
        }
        copy
    }
}

/// What basic.deliver, basic.get-ok and basic.return write, sent to the consumer's shard. One
/// atomic count for the whole message: cloning its four `Bytes` instead cost four atomic
/// increments and decrements per delivery, all on the one count that every message read into
/// the same socket buffer shares, from two cores at once.
pub type Content = Arc<Message>;

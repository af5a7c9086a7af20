//! A queue's message counters for the management API and metrics: plain integers owned by the
//! queue (and so by its shard), bumped where the queue already does the work. No lock, no
//! atomic, no allocation; a stats request copies them (`shard::stats`).

/// Messages through one queue since it was created (not durable: a restart starts at zero,
/// as in RabbitMQ).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Messages enqueued (published, dead-lettered or delayed into the queue).
    pub publish: u64,
    /// Deliveries to consumers that must acknowledge.
    pub deliver: u64,
    /// Deliveries to no-ack consumers.
    pub deliver_no_ack: u64,
    /// basic.get answered with a message, to be acknowledged.
    pub get: u64,
    /// basic.get with no-ack answered with a message.
    pub get_no_ack: u64,
    /// basic.get that found the queue empty.
    pub get_empty: u64,
    /// Deliveries and gets of a message that had been delivered before.
    pub redeliver: u64,
    /// Deliveries acknowledged.
    pub ack: u64,
    /// Messages that left the queue through its dead-letter exchange (expired, rejected
    /// without requeue, or pushed out by a length limit).
    pub dead_lettered: u64,
}

impl QueueCounters {
    /// Counts one delivery or get of a message (`redelivered` if it was delivered before).
    pub fn delivered(&mut self, kind: DeliveryKind, redelivered: bool) {
        match kind {
            DeliveryKind::Deliver => self.deliver += 1,
            DeliveryKind::DeliverNoAck => self.deliver_no_ack += 1,
            DeliveryKind::Get => self.get += 1,
            DeliveryKind::GetNoAck => self.get_no_ack += 1,
        }
        if redelivered {
            self.redeliver += 1;
        }
    }

    /// The sum of the four kinds of delivery (RabbitMQ's `deliver_get`).
    pub fn deliver_get(&self) -> u64 {
        self.deliver + self.deliver_no_ack + self.get + self.get_no_ack
    }
}

/// How a message left the ready list for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    Deliver,
    DeliverNoAck,
    Get,
    GetNoAck,
}

impl DeliveryKind {
    pub fn of_consumer(no_ack: bool) -> DeliveryKind {
        if no_ack {
            DeliveryKind::DeliverNoAck
        } else {
            DeliveryKind::Deliver
        }
    }

    pub fn of_get(no_ack: bool) -> DeliveryKind {
        if no_ack {
            DeliveryKind::GetNoAck
        } else {
            DeliveryKind::Get
        }
    }
}

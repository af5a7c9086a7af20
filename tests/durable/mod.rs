//! Helpers for tests/durability.rs: a confirming publisher that tracks acks, sample messages
//! with every property, property comparison, queue and exchange probes, and restarts that keep
//! the data directory.

#![allow(dead_code)]

use amqprs::channel::{
    BasicPublishArguments, Channel, ExchangeDeclareArguments, QueueDeclareArguments,
};
use amqprs::{BasicProperties, ByteArray, FieldArray, FieldTable, FieldValue};

use crate::client::{consume, get, within, Client, Event, Events};
use crate::common::Broker;

/// A channel in confirm mode that tracks which of its publishes were acked.
pub struct Confirming {
    pub channel: Channel,
    events: Events,
    published: u64,
    /// Indexed by delivery tag (index 0 unused).
    acked: Vec<bool>,
    settled: u64,
}

impl Confirming {
    pub async fn open(client: &Client) -> Confirming {
        let (channel, events) = client.channel().await;
        within("confirm.select", channel.confirm_select(Default::default()))
            .await
            .expect("confirm.select");
        Confirming {
            channel,
            events,
            published: 0,
            acked: vec![true],
            settled: 0,
        }
    }

    pub async fn publish(
        &mut self,
        exchange: &str,
        key: &str,
        properties: &BasicProperties,
        body: &[u8],
    ) {
        let args = BasicPublishArguments::new(exchange, key)
            .mandatory(true)
            .finish();
        within(
            "basic.publish",
            self.channel
                .basic_publish(properties.clone(), body.to_vec(), args),
        )
        .await
        .expect("basic.publish");
        self.published += 1;
        self.acked.push(false);
    }

    /// Waits until every publish so far is acked (panics on a nack); returns the other events
    /// (basic.return) seen meanwhile, in order.
    pub async fn wait_all(&mut self) -> Vec<Event> {
        let mut others = Vec::new();
        while self.settled < self.published {
            match self.events.next().await {
                Event::Ack { tag, multiple } => {
                    assert!(
                        (1..=self.published).contains(&tag),
                        "ack of unknown tag {tag}"
                    );
                    let first = if multiple { 1 } else { tag };
                    self.acked[first as usize..=tag as usize].fill(true);
                    while self.settled < self.published && self.acked[self.settled as usize + 1] {
                        self.settled += 1;
                    }
                }
                Event::Nack { tag, .. } => panic!("publish {tag} was nacked"),
                other => others.push(other),
            }
        }
        others
    }
}

pub fn persistent() -> BasicProperties {
    BasicProperties::default().with_persistence(true).finish()
}

pub fn numbered(n: u32) -> BasicProperties {
    BasicProperties::default()
        .with_persistence(true)
        .with_message_id(&n.to_string())
        .finish()
}

pub fn table(pairs: Vec<(&str, FieldValue)>) -> FieldTable {
    let mut table = FieldTable::new();
    for (name, value) in pairs {
        table.insert(name.try_into().expect("field name"), value);
    }
    table
}

/// Persistent and transient messages with every property set, a multi-frame and an empty body.
pub fn sample_messages() -> Vec<(BasicProperties, Vec<u8>)> {
    let nested = table(vec![("inner", FieldValue::from("deep"))]);
    let array =
        FieldArray::try_from(vec![FieldValue::I(1), FieldValue::from("two")]).expect("array");
    let headers = table(vec![
        ("string", FieldValue::from("value")),
        ("int", FieldValue::I(-42)),
        ("long", FieldValue::l(1 << 40)),
        ("bool", FieldValue::t(true)),
        ("double", FieldValue::d(2.5)),
        ("float", FieldValue::f(1.25)),
        ("table", FieldValue::F(nested)),
        ("array", FieldValue::A(array)),
        (
            "bytes",
            FieldValue::x(ByteArray::try_from(vec![0, 1, 255]).expect("bytes")),
        ),
        ("time", FieldValue::T(1_700_000_000)),
        ("void", FieldValue::V),
    ]);
    let rich = BasicProperties::default()
        .with_content_type("application/x-hare")
        .with_content_encoding("identity")
        .with_headers(headers)
        .with_persistence(true)
        .with_priority(7)
        .with_correlation_id("corr-1")
        .with_reply_to("replies")
        .with_message_id("rich")
        .with_timestamp(1_700_000_123)
        .with_message_type("order.created")
        .with_user_id("guest")
        .with_app_id("durability-test")
        .finish();
    let transient = |id: &str| {
        BasicProperties::default()
            .with_delivery_mode(1)
            .with_message_id(id)
            .finish()
    };
    let big: Vec<u8> = (0..300 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        (rich, b"first".to_vec()),
        (transient("transient-1"), b"lost".to_vec()),
        (persistent_with_id("big"), big),
        (persistent_with_id("empty"), Vec::new()),
        (transient("transient-2"), b"lost too".to_vec()),
        (
            BasicProperties::default()
                .with_persistence(true)
                .with_headers(table(vec![("only", FieldValue::from("headers"))]))
                .finish(),
            b"last".to_vec(),
        ),
    ]
}

pub fn persistent_with_id(id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_persistence(true)
        .with_message_id(id)
        .finish()
}

pub fn assert_same_properties(got: &BasicProperties, want: &BasicProperties, what: &str) {
    assert_eq!(
        (
            got.content_type(),
            got.content_encoding(),
            got.headers(),
            got.delivery_mode(),
            got.priority(),
            got.correlation_id(),
            got.reply_to(),
        ),
        (
            want.content_type(),
            want.content_encoding(),
            want.headers(),
            want.delivery_mode(),
            want.priority(),
            want.correlation_id(),
            want.reply_to(),
        ),
        "properties of {what}"
    );
    assert_eq!(
        (
            got.expiration(),
            got.message_id(),
            got.timestamp(),
            got.message_type(),
            got.user_id(),
            got.app_id(),
            got.cluster_id(),
        ),
        (
            want.expiration(),
            want.message_id(),
            want.timestamp(),
            want.message_type(),
            want.user_id(),
            want.app_id(),
            want.cluster_id(),
        ),
        "properties of {what}"
    );
}

/// The ready-message count of `queue` (passive declare).
pub async fn message_count(client: &Client, queue: &str) -> u32 {
    let (channel, _events) = client.channel().await;
    let passive = QueueDeclareArguments::new(queue).passive(true).finish();
    let (_, count, _) = within("passive queue.declare", channel.queue_declare(passive))
        .await
        .unwrap_or_else(|error| panic!("queue {queue} should exist: {error}"))
        .expect("declare-ok");
    count
}

pub async fn queue_exists(client: &Client, queue: &str) -> bool {
    let (channel, mut events) = client.channel().await;
    let passive = QueueDeclareArguments::new(queue).passive(true).finish();
    if within("passive queue.declare", channel.queue_declare(passive))
        .await
        .is_ok()
    {
        return true;
    }
    events.expect_close(404, "NOT_FOUND").await;
    false
}

pub async fn exchange_exists(client: &Client, exchange: &str) -> bool {
    let (channel, mut events) = client.channel().await;
    let passive = ExchangeDeclareArguments::new(exchange, "direct")
        .passive(true)
        .finish();
    if within(
        "passive exchange.declare",
        channel.exchange_declare(passive),
    )
    .await
    .is_ok()
    {
        return true;
    }
    events.expect_close(404, "NOT_FOUND").await;
    false
}

/// The message ids of the next `count` deliveries of a new manual-ack consumer on `queue`,
/// each checked to be redelivered (recovered messages always are).
pub async fn recovered_ids(client: &Client, queue: &str, count: usize) -> Vec<String> {
    let (channel, _events) = client.channel().await;
    let mut deliveries = consume(&channel, queue, false).await;
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let delivery = deliveries.next().await;
        assert!(delivery.redelivered, "a recovered message is redelivered");
        ids.push(
            delivery
                .properties
                .message_id()
                .cloned()
                .unwrap_or_default(),
        );
    }
    ids
}

/// Every body in `queue`, taken with basic.get (no-ack) until get-empty.
pub async fn take_all(channel: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some((_, _, body)) = get(channel, queue, true).await {
        bodies.push(String::from_utf8(body).expect("utf-8 body"));
    }
    bodies
}

/// Closes the connection (the broker's SIGTERM shutdown waits for open connections). amqprs
/// reports an error here when one of the connection's channels was closed by the server, but it
/// still closes the connection.
pub async fn close(client: Client) {
    let _ = within("connection.close", client.connection.close()).await;
}

pub enum Restart {
    Clean,
    Kill9,
}

/// Restarts on the same data directory. The blocking wait runs off the test's runtime so the
/// client can still answer the broker's connection.close meanwhile.
pub async fn restart(broker: Broker, how: Restart) -> Broker {
    let restarted = tokio::task::spawn_blocking(move || match how {
        Restart::Clean => broker.restart(),
        Restart::Kill9 => {
            let shards = broker.shards;
            Broker::start_in(&broker.kill9(), shards)
        }
    });
    restarted.await.expect("restart")
}

//! Dead lettering (`x-dead-letter-exchange`, `x-dead-letter-routing-key`), length limits
//! (`x-max-length`, `x-max-length-bytes`, `x-overflow`) and the `x-death` headers as an amqprs
//! client sees them, including a dead-lettered persistent message crossing shards while the
//! broker is killed (docs/rabbitmq-compatibility.md §16).

mod client;
mod common;

use std::collections::HashSet;
use std::time::Duration;

use amqprs::channel::{
    BasicNackArguments, BasicRejectArguments, Channel, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use client::{
    confirm_select, consume, declare, get, publish_with, queue_with, ready, until_ready, within,
    Client, Event, Events,
};
use common::Broker;

fn text(value: &str) -> FieldValue {
    FieldValue::from(value)
}

/// A fanout exchange `name` with queue `dead` bound to it.
async fn dead_letter_exchange(channel: &Channel, name: &str, dead: &str) {
    within(
        "exchange.declare",
        channel.exchange_declare(ExchangeDeclareArguments::new(name, "fanout")),
    )
    .await
    .expect("exchange.declare");
    declare(channel, QueueDeclareArguments::new(dead)).await;
    within(
        "queue.bind",
        channel.queue_bind(QueueBindArguments::new(dead, name, "")),
    )
    .await
    .expect("queue.bind");
}

fn header<'a>(properties: &'a BasicProperties, name: &str) -> &'a FieldValue {
    let headers = properties.headers().expect("headers");
    headers
        .as_ref()
        .get(&name.try_into().expect("name"))
        .unwrap_or_else(|| panic!("no header {name} in {headers:?}"))
}

/// The x-death entries, newest first.
fn deaths(properties: &BasicProperties) -> Vec<FieldTable> {
    match header(properties, "x-death") {
        FieldValue::A(array) => Vec::<FieldValue>::from(array.clone())
            .into_iter()
            .map(|value| match value {
                FieldValue::F(table) => table,
                other => panic!("x-death entry is not a table: {other:?}"),
            })
            .collect(),
        other => panic!("x-death is not an array: {other:?}"),
    }
}

fn keys(values: &[&str]) -> FieldValue {
    let values: Vec<FieldValue> = values.iter().map(|v| text(v)).collect();
    FieldValue::A(values.try_into().expect("array"))
}

fn field<'a>(table: &'a FieldTable, name: &str) -> &'a FieldValue {
    table
        .as_ref()
        .get(&name.try_into().expect("name"))
        .unwrap_or_else(|| panic!("no {name} in {table:?}"))
}

async fn body_of_get(channel: &Channel, queue: &str) -> Option<(BasicProperties, String)> {
    get(channel, queue, true)
        .await
        .map(|(_, properties, body)| (properties, String::from_utf8(body).expect("utf-8")))
}

#[tokio::test]
async fn a_rejected_message_is_dead_lettered_with_rabbitmq_headers() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    dead_letter_exchange(&channel, "dlx", "dead").await;
    declare(
        &channel,
        queue_with("work", false, &[("x-dead-letter-exchange", text("dlx"))]),
    )
    .await;
    publish_with(&channel, "", "work", BasicProperties::default(), b"poison").await;
    let mut deliveries = consume(&channel, "work", false).await;
    let delivery = deliveries.next().await;
    within(
        "basic.reject",
        channel.basic_reject(BasicRejectArguments::new(delivery.delivery_tag, false)),
    )
    .await
    .expect("reject");
    until_ready(&channel, "dead", 1).await;
    let (properties, body) = body_of_get(&channel, "dead").await.expect("dead-lettered");
    assert_eq!(body, "poison");
    let entries = deaths(&properties);
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(field(entry, "count"), &FieldValue::l(1));
    assert_eq!(field(entry, "reason"), &text("rejected"));
    assert_eq!(field(entry, "queue"), &text("work"));
    assert_eq!(field(entry, "exchange"), &text(""));
    assert_eq!(field(entry, "routing-keys"), &keys(&["work"]));
    assert!(matches!(field(entry, "time"), FieldValue::T(_)));
    assert_eq!(header(&properties, "x-first-death-queue"), &text("work"));
    assert_eq!(
        header(&properties, "x-first-death-reason"),
        &text("rejected")
    );
    assert_eq!(header(&properties, "x-first-death-exchange"), &text(""));
    assert_eq!(header(&properties, "x-last-death-queue"), &text("work"));
    assert_eq!(
        header(&properties, "x-last-death-reason"),
        &text("rejected")
    );
}

/// The delay-queue recipe: a TTL queue nobody consumes, dead-lettering into the work queue.
#[tokio::test]
async fn expired_messages_are_dead_lettered_with_their_routing_key_and_expiration() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("later")).await;
    declare(
        &channel,
        queue_with(
            "delay",
            false,
            &[
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text("later")),
                ("x-message-ttl", FieldValue::I(300)),
            ],
        ),
    )
    .await;
    let started = std::time::Instant::now();
    let properties = BasicProperties::default().with_expiration("200").finish();
    publish_with(&channel, "", "delay", properties, b"timer").await;
    let mut deliveries = consume(&channel, "later", true).await;
    let delivery = deliveries.next().await;
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(delivery.body, b"timer");
    assert_eq!(delivery.routing_key, "later");
    assert_eq!(
        delivery.properties.expiration(),
        None,
        "expiration is removed"
    );
    let entry = &deaths(&delivery.properties)[0];
    assert_eq!(field(entry, "reason"), &text("expired"));
    assert_eq!(field(entry, "original-expiration"), &text("200"));
    assert_eq!(field(entry, "routing-keys"), &keys(&["delay"]));
}

/// RabbitMQ's cycle rule: a message expiring back into its own queue is dropped, but a client
/// rejecting it each time may send it round, and each round counts.
#[tokio::test]
async fn automatic_cycles_are_dropped_and_rejects_may_cycle() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(
        &channel,
        queue_with(
            "loop",
            false,
            &[
                ("x-dead-letter-exchange", text("")),
                ("x-message-ttl", FieldValue::I(100)),
            ],
        ),
    )
    .await;
    publish_with(&channel, "", "loop", BasicProperties::default(), b"x").await;
    until_ready(&channel, "loop", 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ready(&channel, "loop").await, 0, "the cycle was cut");

    declare(
        &channel,
        queue_with("retry", false, &[("x-dead-letter-exchange", text(""))]),
    )
    .await;
    publish_with(&channel, "", "retry", BasicProperties::default(), b"again").await;
    let mut deliveries = consume(&channel, "retry", false).await;
    for round in 1..=3 {
        let delivery = deliveries.next().await;
        if round > 1 {
            let entry = &deaths(&delivery.properties)[0];
            assert_eq!(field(entry, "count"), &FieldValue::l(round - 1));
        }
        let nack = BasicNackArguments::new(delivery.delivery_tag, false, false);
        within("basic.nack", channel.basic_nack(nack))
            .await
            .expect("nack");
    }
}

#[tokio::test]
async fn drop_head_dead_letters_the_oldest_with_reason_maxlen() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    dead_letter_exchange(&channel, "overflow", "overflowed").await;
    declare(
        &channel,
        queue_with(
            "bounded",
            false,
            &[
                ("x-max-length", FieldValue::I(2)),
                ("x-dead-letter-exchange", text("overflow")),
            ],
        ),
    )
    .await;
    for body in ["1", "2", "3", "4"] {
        publish_with(
            &channel,
            "",
            "bounded",
            BasicProperties::default(),
            body.as_bytes(),
        )
        .await;
    }
    until_ready(&channel, "overflowed", 2).await;
    assert_eq!(ready(&channel, "bounded").await, 2);
    let (properties, first) = body_of_get(&channel, "overflowed").await.expect("dead");
    assert_eq!(first, "1");
    assert_eq!(field(&deaths(&properties)[0], "reason"), &text("maxlen"));
    assert_eq!(body_of_get(&channel, "bounded").await.expect("kept").1, "3");

    declare(
        &channel,
        queue_with("bytes", false, &[("x-max-length-bytes", FieldValue::I(10))]),
    )
    .await;
    for body in ["aaaa", "bbbb", "cccc"] {
        publish_with(
            &channel,
            "",
            "bytes",
            BasicProperties::default(),
            body.as_bytes(),
        )
        .await;
    }
    until_ready(&channel, "bytes", 2).await;
    assert_eq!(
        body_of_get(&channel, "bytes").await.expect("kept").1,
        "bbbb"
    );
}

/// Waits for the confirms of publishes 1..=count: Some(true) for an ack, Some(false) for a nack.
async fn confirms(events: &mut Events, count: u64) -> Vec<bool> {
    let mut outcome = vec![None; count as usize + 1];
    while outcome[1..].iter().any(Option::is_none) {
        let (tag, multiple, ok) = match events.next().await {
            Event::Ack { tag, multiple } => (tag, multiple, true),
            Event::Nack { tag, multiple } => (tag, multiple, false),
            other => panic!("unexpected event {other:?}"),
        };
        let first = if multiple { 1 } else { tag };
        for slot in &mut outcome[first as usize..=tag as usize] {
            slot.get_or_insert(ok);
        }
    }
    outcome[1..].iter().map(|o| o.expect("all set")).collect()
}

#[tokio::test]
async fn reject_publish_nacks_and_reject_publish_dlx_also_dead_letters() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    confirm_select(&channel).await;
    dead_letter_exchange(&channel, "refused-x", "refused").await;
    declare(
        &channel,
        queue_with(
            "full",
            false,
            &[
                ("x-max-length", FieldValue::I(2)),
                ("x-overflow", text("reject-publish")),
            ],
        ),
    )
    .await;
    declare(
        &channel,
        queue_with(
            "full-dlx",
            false,
            &[
                ("x-max-length", FieldValue::I(1)),
                ("x-overflow", text("reject-publish-dlx")),
                ("x-dead-letter-exchange", text("refused-x")),
            ],
        ),
    )
    .await;
    for body in ["1", "2", "3"] {
        publish_with(
            &channel,
            "",
            "full",
            BasicProperties::default(),
            body.as_bytes(),
        )
        .await;
    }
    for body in ["a", "b"] {
        publish_with(
            &channel,
            "",
            "full-dlx",
            BasicProperties::default(),
            body.as_bytes(),
        )
        .await;
    }
    assert_eq!(
        confirms(&mut events, 5).await,
        vec![true, true, false, true, false]
    );
    assert_eq!(ready(&channel, "full").await, 2);
    until_ready(&channel, "refused", 1).await;
    let (properties, body) = body_of_get(&channel, "refused").await.expect("dead");
    assert_eq!(body, "b");
    assert_eq!(field(&deaths(&properties)[0], "reason"), &text("maxlen"));
    // The oldest stays: reject-publish never drops what is queued.
    assert_eq!(body_of_get(&channel, "full").await.expect("kept").1, "1");
}

fn persistent(id: usize) -> BasicProperties {
    BasicProperties::default()
        .with_persistence(true)
        .with_message_id(&id.to_string())
        .finish()
}

/// Beyond RabbitMQ's classic queues: a persistent message dead-lettered from a durable queue
/// on one shard to a durable queue on the other is never lost, wherever `kill -9` falls.
#[tokio::test]
async fn dead_lettering_across_shards_survives_kill_9() {
    const MESSAGES: usize = 300;
    for seed in [0u64, 1, 2] {
        let broker = Broker::start(2);
        {
            // Two connections at once land on the two shards: each declares one queue.
            let first = Client::connect(&broker).await;
            let second = Client::connect(&broker).await;
            let (target, _) = second.channel().await;
            declare(
                &target,
                QueueDeclareArguments::durable_client_named("target"),
            )
            .await;
            let (source, mut events) = first.channel().await;
            declare(
                &source,
                queue_with(
                    "source",
                    true,
                    &[
                        ("x-dead-letter-exchange", text("")),
                        ("x-dead-letter-routing-key", text("target")),
                        ("x-message-ttl", FieldValue::I(150)),
                    ],
                ),
            )
            .await;
            confirm_select(&source).await;
            for id in 0..MESSAGES {
                publish_with(&source, "", "source", persistent(id), b"body").await;
            }
            events.confirmed(MESSAGES as u64).await;
            // Dead lettering runs from about 150 ms on: kill somewhere around it.
            tokio::time::sleep(Duration::from_millis(100 + seed * 40)).await;
        }
        let data_dir = broker.kill9();
        let broker = Broker::start_in(&data_dir, 2);
        let client = Client::connect(&broker).await;
        let (channel, _) = client.channel().await;
        let mut seen = HashSet::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while seen.len() < MESSAGES && std::time::Instant::now() < deadline {
            match body_of_get(&channel, "target").await {
                Some((properties, _)) => {
                    seen.insert(properties.message_id().expect("message id").clone());
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(seen.len(), MESSAGES, "seed {seed}: every message arrived");
        assert_eq!(ready(&channel, "source").await, 0, "seed {seed}");
    }
}

//! The delayed-message exchange (`x-delayed-message`, `x-delayed-type`, the `x-delay` header) as
//! an amqprs client sees it: messages arrive after their delay, in delay order, through the
//! exchange's bindings, and survive `kill -9` while they wait (docs/rabbitmq-compatibility.md
//! §10).

mod client;
mod common;

use std::time::{Duration, Instant};

use amqprs::channel::{
    Channel, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::{BasicProperties, FieldValue};
use client::{confirm_select, consume, declare, get, publish_with, table, within, Client};
use common::Broker;

fn delayed_exchange(name: &str, inner: &str, durable: bool) -> ExchangeDeclareArguments {
    let mut args = ExchangeDeclareArguments::new(name, "x-delayed-message");
    args.durable = durable;
    args.arguments = table(&[("x-delayed-type", FieldValue::from(inner))]);
    args
}

/// A delayed exchange `name` of `inner` type with queue `queue` bound by `key`.
async fn delayed_setup(channel: &Channel, name: &str, inner: &str, queue: &str, key: &str) {
    within(
        "exchange.declare",
        channel.exchange_declare(delayed_exchange(name, inner, true)),
    )
    .await
    .expect("exchange.declare");
    declare(channel, QueueDeclareArguments::durable_client_named(queue)).await;
    within(
        "queue.bind",
        channel.queue_bind(QueueBindArguments::new(queue, name, key)),
    )
    .await
    .expect("queue.bind");
}

fn delayed_by(ms: i32, persistent: bool, body_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_headers(table(&[("x-delay", FieldValue::I(ms))]))
        .with_persistence(persistent)
        .with_message_id(body_id)
        .finish()
}

#[tokio::test]
async fn a_delayed_message_arrives_after_its_delay_with_the_plugin_marker() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    delayed_setup(&channel, "later-x", "direct", "later", "k").await;
    let started = Instant::now();
    publish_with(
        &channel,
        "later-x",
        "k",
        delayed_by(500, false, "m"),
        b"wait",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get(&channel, "later", true).await.is_none(), "not yet");
    let mut deliveries = consume(&channel, "later", true).await;
    let delivery = deliveries.next().await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(490), "{elapsed:?}");
    assert_eq!(delivery.body, b"wait");
    let headers = delivery.properties.headers().expect("headers");
    assert_eq!(
        headers.as_ref().get(&"x-delay".try_into().expect("name")),
        Some(&FieldValue::I(-500))
    );
}

#[tokio::test]
async fn delayed_messages_arrive_in_delay_order_and_undelayed_ones_at_once() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    delayed_setup(&channel, "order-x", "topic", "ordered", "jobs.#").await;
    for (delay, body) in [(900, "third"), (300, "first"), (600, "second")] {
        publish_with(
            &channel,
            "order-x",
            "jobs.a",
            delayed_by(delay, false, body),
            body.as_bytes(),
        )
        .await;
    }
    publish_with(
        &channel,
        "order-x",
        "jobs.b",
        BasicProperties::default(),
        b"now",
    )
    .await;
    publish_with(
        &channel,
        "order-x",
        "other",
        delayed_by(100, false, "x"),
        b"unbound",
    )
    .await;
    let mut deliveries = consume(&channel, "ordered", true).await;
    assert_eq!(
        deliveries.bodies(4).await,
        ["now", "first", "second", "third"]
    );
}

#[tokio::test]
async fn a_delayed_exchange_needs_a_known_delayed_type() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    for (args, text) in [
        (
            ExchangeDeclareArguments::new("bad", "x-delayed-message"),
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must bean existing exchnage type",
        ),
        (
            delayed_exchange("bad", "nope", false),
            "PRECONDITION_FAILED - unknown exchange type 'nope'",
        ),
    ] {
        let (channel, mut events) = client.channel().await;
        let result = within("exchange.declare", channel.exchange_declare(args)).await;
        assert!(result.is_err(), "{result:?}");
        events.expect_close(406, text).await;
    }
    let (channel, mut events) = client.channel().await;
    within(
        "exchange.declare",
        channel.exchange_declare(delayed_exchange("typed", "direct", false)),
    )
    .await
    .expect("declare");
    let result = within(
        "exchange.declare",
        channel.exchange_declare(ExchangeDeclareArguments::new("typed", "direct")),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'typed' in vhost '/': received 'direct' but current is 'x-delayed-message'",
        )
        .await;
}

/// Waiting messages are in the log with their deadlines: after `kill -9` they arrive when they
/// would have, persistent and transient alike, none lost.
#[tokio::test]
async fn delayed_messages_survive_kill_9() {
    const MESSAGES: usize = 50;
    let broker = Broker::start(2);
    let published = Instant::now();
    {
        let client = Client::connect(&broker).await;
        let (channel, mut events) = client.channel().await;
        delayed_setup(&channel, "durable-x", "direct", "arrivals", "k").await;
        confirm_select(&channel).await;
        for id in 0..MESSAGES {
            let properties = delayed_by(1_500, id % 2 == 0, &id.to_string());
            publish_with(&channel, "durable-x", "k", properties, b"later").await;
        }
        events.confirmed(MESSAGES as u64).await;
    }
    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    let mut seen = std::collections::HashSet::new();
    let mut deliveries = consume(&channel, "arrivals", true).await;
    while seen.len() < MESSAGES {
        let delivery = deliveries.next().await;
        assert!(
            published.elapsed() >= Duration::from_millis(1_450),
            "early: {:?}",
            published.elapsed()
        );
        seen.insert(delivery.properties.message_id().expect("id").clone());
    }
}

/// A `kill -9` while delayed messages are being released (some routed, some not yet): each
/// arrives after the restart, none is lost (a duplicate is allowed: at least once).
#[tokio::test]
async fn a_kill_9_during_release_loses_nothing() {
    const MESSAGES: usize = 300;
    for seed in [0u64, 1, 2] {
        let broker = Broker::start(2);
        {
            let first = Client::connect(&broker).await;
            let second = Client::connect(&broker).await;
            // The target queue on one shard, the publisher (and its delay store) on the other.
            let (target, _) = second.channel().await;
            delayed_setup(&target, "release-x", "direct", "released", "k").await;
            let (channel, mut events) = first.channel().await;
            confirm_select(&channel).await;
            for id in 0..MESSAGES {
                let properties = delayed_by(150, true, &id.to_string());
                publish_with(&channel, "release-x", "k", properties, b"later").await;
            }
            events.confirmed(MESSAGES as u64).await;
            tokio::time::sleep(Duration::from_millis(100 + seed * 40)).await;
        }
        let data_dir = broker.kill9();
        let broker = Broker::start_in(&data_dir, 2);
        let client = Client::connect(&broker).await;
        let (channel, _) = client.channel().await;
        let mut seen = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < MESSAGES && Instant::now() < deadline {
            match get(&channel, "released", true).await {
                Some((_, properties, _)) => {
                    seen.insert(properties.message_id().expect("id").clone());
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(seen.len(), MESSAGES, "seed {seed}: every message arrived");
    }
}

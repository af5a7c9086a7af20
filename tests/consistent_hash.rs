//! The `x-consistent-hash` exchange from a client: every message of a key lands in the same one
//! queue, keys spread over all bound queues, `hash-header` hashes a header instead of the key,
//! a durable exchange keeps its key-to-queue placement across a restart, and invalid weights or
//! arguments are refused with the plugin's 406s (docs/rabbitmq-compatibility.md §10).

mod client;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use amqprs::channel::{
    BasicGetArguments, Channel, ExchangeDeclareArguments, QueueBindArguments,
    QueueDeclareArguments, QueueUnbindArguments,
};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use client::{table, within, Client};
use common::Broker;

const EXCHANGE: &str = "chash";
const QUEUES: [&str; 3] = ["chash.a", "chash.b", "chash.c"];
const KEYS: usize = 100;
const MESSAGES: usize = 3000;
/// A small log, so the restart reads the bindings back from a snapshot, not only from changes.
const COMPACTION_ARGS: [&str; 2] = ["--metadata-compaction-bytes", "1024"];

async fn declare_exchange(channel: &Channel, arguments: FieldTable) {
    let mut declare = ExchangeDeclareArguments::new(EXCHANGE, "x-consistent-hash")
        .durable(true)
        .finish();
    declare.arguments = arguments;
    within("exchange.declare", channel.exchange_declare(declare))
        .await
        .expect("exchange.declare");
}

/// Declares the durable queues and binds them with `weights`, in the order given.
async fn bind_queues(channel: &Channel, weights: &[(&str, &str)]) {
    for queue in QUEUES {
        let declare = QueueDeclareArguments::durable_client_named(queue);
        within("queue.declare", channel.queue_declare(declare))
            .await
            .expect("queue.declare");
    }
    for (queue, weight) in weights {
        let bind = QueueBindArguments::new(queue, EXCHANGE, weight);
        within("queue.bind", channel.queue_bind(bind))
            .await
            .expect("queue.bind");
    }
}

async fn publish(channel: &Channel, routing_key: &str, properties: BasicProperties, body: String) {
    let args = amqprs::channel::BasicPublishArguments::new(EXCHANGE, routing_key);
    within(
        "basic.publish",
        channel.basic_publish(properties, body.into_bytes(), args),
    )
    .await
    .expect("basic.publish");
}

async fn message_count(channel: &Channel, queue: &str) -> usize {
    let passive = QueueDeclareArguments::new(queue).passive(true).finish();
    let (_, count, _) = within("passive queue.declare", channel.queue_declare(passive))
        .await
        .expect("queue exists")
        .expect("declare-ok");
    count as usize
}

/// Waits until the queues hold `total` messages, then takes them all: the bodies per queue.
async fn drain(channel: &Channel, total: usize) -> BTreeMap<&'static str, Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut held = 0;
        for queue in QUEUES {
            held += message_count(channel, queue).await;
        }
        assert!(held <= total, "{held} messages for {total} published");
        if held == total {
            break;
        }
        assert!(Instant::now() < deadline, "only {held} of {total} arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut bodies = BTreeMap::new();
    for queue in QUEUES {
        let mut taken = Vec::new();
        let get = BasicGetArguments::new(queue).no_ack(true).finish();
        while let Some((_, _, body)) = within("basic.get", channel.basic_get(get.clone()))
            .await
            .expect("basic.get")
        {
            taken.push(String::from_utf8(body).expect("utf-8 body"));
        }
        bodies.insert(queue, taken);
    }
    bodies
}

/// The queue of every body's key (the body up to its first '#'); each key must have one queue.
fn placement(bodies: &BTreeMap<&'static str, Vec<String>>) -> BTreeMap<String, &'static str> {
    let mut placement = BTreeMap::new();
    for (&queue, taken) in bodies {
        for body in taken {
            let key = body.split('#').next().expect("a key").to_string();
            let first = *placement.entry(key.clone()).or_insert(queue);
            assert_eq!(first, queue, "key {key} reached both {first} and {queue}");
        }
    }
    placement
}

/// Publishes `MESSAGES` messages over `KEYS` routing keys; returns each key's queue.
async fn publish_keys(channel: &Channel) -> BTreeMap<String, &'static str> {
    for number in 0..MESSAGES {
        let key = format!("order-{}", number % KEYS);
        let body = format!("{key}#{number}");
        publish(channel, &key, BasicProperties::default(), body).await;
    }
    let bodies = drain(channel, MESSAGES).await;
    let placement = placement(&bodies);
    assert_eq!(placement.len(), KEYS, "every key arrived");
    for (queue, taken) in &bodies {
        assert!(!taken.is_empty(), "{queue} got some keys");
    }
    placement
}

#[tokio::test]
async fn each_key_sticks_to_one_queue_and_survives_a_restart() {
    let broker = Broker::start_with(2, &COMPACTION_ARGS);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare_exchange(&channel, FieldTable::new()).await;
    // Bound out of declaration order, and one binding removed from the middle of the ring, so
    // the placement depends on the stored bind order.
    let weights = [
        (QUEUES[2], "2"),
        (QUEUES[0], "5"),
        (QUEUES[1], "1"),
        (QUEUES[0], "3"),
    ];
    bind_queues(&channel, &weights).await;
    let unbind = QueueUnbindArguments::new(QUEUES[0], EXCHANGE, "5");
    within("queue.unbind", channel.queue_unbind(unbind))
        .await
        .expect("queue.unbind");
    let before = publish_keys(&channel).await;
    drop(channel);
    drop(client);

    let data_dir = broker.data_dir.clone();
    assert!(broker.stop().success());
    let broker = Broker::start_in_with(&data_dir, 2, &COMPACTION_ARGS);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let after = publish_keys(&channel).await;
    assert_eq!(after, before, "the same keys reach the same queues");
}

#[tokio::test]
async fn hash_header_hashes_the_header_and_not_the_key() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let arguments = table(&[("hash-header", FieldValue::from("customer"))]);
    declare_exchange(&channel, arguments).await;
    bind_queues(
        &channel,
        &[(QUEUES[0], "1"), (QUEUES[1], "1"), (QUEUES[2], "1")],
    )
    .await;

    const WITHOUT_HEADER: usize = 50;
    for number in 0..MESSAGES {
        let customer = format!("customer-{}", number % KEYS);
        let headers = table(&[("customer", FieldValue::from(customer.as_str()))]);
        let mut properties = BasicProperties::default();
        properties.with_headers(headers);
        // A different routing key every time: only the header decides.
        let body = format!("{customer}#{number}");
        publish(&channel, &format!("rk-{number}"), properties, body).await;
    }
    for number in 0..WITHOUT_HEADER {
        let body = format!("absent#{number}");
        publish(
            &channel,
            &format!("rk-{number}"),
            BasicProperties::default(),
            body,
        )
        .await;
    }
    let bodies = drain(&channel, MESSAGES + WITHOUT_HEADER).await;
    let placement = placement(&bodies);
    assert_eq!(placement.len(), KEYS + 1);
    let used: BTreeSet<&str> = placement.values().copied().collect();
    assert_eq!(
        used.len(),
        QUEUES.len(),
        "customers spread over every queue"
    );
}

async fn expect_refused(client: &Client, what: &str, code: u16, text: &str, bind: Option<&str>) {
    let (channel, mut events) = client.channel().await;
    let refused = match bind {
        Some(weight) => {
            let bind = QueueBindArguments::new(QUEUES[0], EXCHANGE, weight);
            within(what, channel.queue_bind(bind)).await.is_err()
        }
        None => {
            let arguments = table(&[
                ("hash-header", FieldValue::from("h")),
                ("hash-property", FieldValue::from("message_id")),
            ]);
            let mut declare = ExchangeDeclareArguments::new("chash.both", "x-consistent-hash");
            declare.arguments = arguments;
            within(what, channel.exchange_declare(declare))
                .await
                .is_err()
        }
    };
    assert!(refused, "{what} is refused");
    events.expect_close(code, text).await;
    client.assert_usable().await;
}

#[tokio::test]
async fn invalid_weights_and_arguments_are_406() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare_exchange(&channel, FieldTable::new()).await;
    bind_queues(&channel, &[]).await;

    let not_integer = "PRECONDITION_FAILED - The binding key must be an integer: <<\"abc\">>";
    expect_refused(&client, "weight abc", 406, not_integer, Some("abc")).await;
    let not_positive = "PRECONDITION_FAILED - The binding key must be greater than 0";
    expect_refused(&client, "weight 0", 406, not_positive, Some("0")).await;
    expect_refused(&client, "weight -3", 406, not_positive, Some("-3")).await;
    let too_large = "PRECONDITION_FAILED - The binding key must not exceed 10000";
    expect_refused(&client, "weight 10001", 406, too_large, Some("10001")).await;
    let exclusive = "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive";
    expect_refused(&client, "both arguments", 406, exclusive, None).await;

    let (channel, mut events) = client.channel().await;
    let mut declare = ExchangeDeclareArguments::new("chash.app", "x-consistent-hash");
    declare.arguments = table(&[("hash-property", FieldValue::from("app_id"))]);
    let result = within("exchange.declare", channel.exchange_declare(declare)).await;
    assert!(result.is_err());
    events
        .expect_close(406, "PRECONDITION_FAILED - Unsupported property: app_id")
        .await;

    // Nothing was bound by the refused binds: the exchange routes nowhere.
    let (channel, _events) = client.channel().await;
    publish(&channel, "k", BasicProperties::default(), "x".to_string()).await;
    let ok = QueueBindArguments::new(QUEUES[1], EXCHANGE, "+2");
    within("queue.bind", channel.queue_bind(ok))
        .await
        .expect("a signed weight is an integer");
    publish(&channel, "k", BasicProperties::default(), "k#1".to_string()).await;
    let bodies = drain(&channel, 1).await;
    assert_eq!(bodies[QUEUES[1]], ["k#1"]);
}

//! Policies and operator policies as a client sees them (docs/rabbitmq-compatibility.md §16):
//! imported with `--load-definitions`, they set the settings of queues declared later, meet
//! the queues' own arguments key by key, give exchanges an alternate exchange, and change a
//! queue that already holds messages at once.

mod client;
mod common;

use std::path::PathBuf;

use amqprs::channel::{
    Channel, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::{BasicProperties, FieldValue};
use client::{declare, drain, publish, publish_with, queue_with, until_ready, within, Client};
use common::Broker;

/// Writes a definitions file holding only `body`'s policies; returns its path.
fn definitions_file(name: &str, body: &str) -> PathBuf {
    let dir = common::test_dir();
    std::fs::create_dir_all(&dir).expect("test dir");
    let path = dir.join(format!("{name}-{}.json", std::process::id()));
    std::fs::write(&path, body).expect("write definitions");
    path
}

const POLICIES: &str = r#"{
  "policies": [
    {"vhost": "/", "name": "limit", "pattern": "^limited\\.", "apply-to": "queues",
     "definition": {"max-length": 2}, "priority": 0},
    {"vhost": "/", "name": "ttl", "pattern": "^ttl\\.", "apply-to": "all",
     "definition": {"message-ttl": 300}, "priority": 0},
    {"vhost": "/", "name": "mixed", "pattern": "^mixed\\.", "apply-to": "queues",
     "definition": {"max-length": 10, "overflow": "reject-publish"}, "priority": 0},
    {"vhost": "/", "name": "loose", "pattern": "^capped\\.", "apply-to": "queues",
     "definition": {"max-length": 100}, "priority": 0},
    {"vhost": "/", "name": "ae", "pattern": "^routed$", "apply-to": "exchanges",
     "definition": {"alternate-exchange": "lost"}, "priority": 0}
  ],
  "operator_policies": [
    {"vhost": "/", "name": "cap", "pattern": "^capped\\.", "apply-to": "queues",
     "definition": {"max-length": 3}, "priority": 0}
  ]
}"#;

async fn publish_all(channel: &Channel, queue: &str, bodies: &[&str]) {
    for body in bodies {
        publish(channel, "", queue, body.as_bytes()).await;
    }
}

const FIVE: [&str; 5] = ["a", "b", "c", "d", "e"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_from_definitions_set_queues_declared_later() {
    let path = definitions_file("policies", POLICIES);
    let broker = Broker::start_with(2, &["--load-definitions", path.to_str().expect("utf-8")]);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;

    // max-length 2 by policy: the head goes.
    declare(&channel, queue_with("limited.a", false, &[])).await;
    publish_all(&channel, "limited.a", &FIVE).await;
    until_ready(&channel, "limited.a", 2).await;
    assert_eq!(drain(&channel, "limited.a").await, ["d", "e"]);

    // message-ttl by policy: everything expires.
    declare(&channel, queue_with("ttl.a", false, &[])).await;
    publish_all(&channel, "ttl.a", &FIVE).await;
    until_ready(&channel, "ttl.a", 0).await;

    // The smaller max-length wins (the argument's 3); the argument's overflow wins over the
    // policy's reject-publish, so the head is dropped.
    let own = [
        ("x-max-length", FieldValue::I(3)),
        (
            "x-overflow",
            FieldValue::S("drop-head".try_into().expect("longstr")),
        ),
    ];
    declare(&channel, queue_with("mixed.a", false, &own)).await;
    publish_all(&channel, "mixed.a", &FIVE).await;
    until_ready(&channel, "mixed.a", 3).await;
    assert_eq!(drain(&channel, "mixed.a").await, ["c", "d", "e"]);

    // The operator policy's 3 is stricter than the policy's 100; an argument's 1 is
    // stricter still.
    declare(&channel, queue_with("capped.a", false, &[])).await;
    declare(
        &channel,
        queue_with("capped.b", false, &[("x-max-length", FieldValue::I(1))]),
    )
    .await;
    publish_all(&channel, "capped.a", &FIVE).await;
    publish_all(&channel, "capped.b", &FIVE).await;
    until_ready(&channel, "capped.a", 3).await;
    until_ready(&channel, "capped.b", 1).await;
    assert_eq!(drain(&channel, "capped.a").await, ["c", "d", "e"]);
    assert_eq!(drain(&channel, "capped.b").await, ["e"]);

    // A policy's alternate exchange catches what the exchange cannot route.
    for (name, kind) in [("routed", "direct"), ("lost", "fanout")] {
        let exchange = ExchangeDeclareArguments::new(name, kind).finish();
        within("exchange.declare", channel.exchange_declare(exchange))
            .await
            .expect("exchange.declare");
    }
    declare(&channel, QueueDeclareArguments::new("lost.q").finish()).await;
    within(
        "queue.bind",
        channel.queue_bind(QueueBindArguments::new("lost.q", "lost", "")),
    )
    .await
    .expect("queue.bind");
    publish(&channel, "routed", "nowhere", b"caught").await;
    until_ready(&channel, "lost.q", 1).await;
    let _ = client.connection.close().await;
    let _ = std::fs::remove_file(path);
}

/// A policy set while a queue holds messages trims it at once. Without the management API
/// the change comes from a second start's `--load-definitions`, imported after the queue was
/// recovered: the same `PolicySet` update an HTTP PUT makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_set_on_a_queue_holding_messages_trims_it_at_once() {
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, queue_with("live.q", true, &[])).await;
    let persistent = BasicProperties::default().with_persistence(true).finish();
    for body in FIVE {
        publish_with(&channel, "", "live.q", persistent.clone(), body.as_bytes()).await;
    }
    until_ready(&channel, "live.q", 5).await;
    let _ = client.connection.close().await;
    let data_dir = broker.kill9();

    let path = definitions_file(
        "live",
        r#"{"policies": [{"vhost": "/", "name": "trim", "pattern": "^live\\.",
            "apply-to": "queues", "definition": {"max-length": 2}, "priority": 0}]}"#,
    );
    let broker = Broker::start_in_with(
        &data_dir,
        1,
        &["--load-definitions", path.to_str().expect("utf-8")],
    );
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    until_ready(&channel, "live.q", 2).await;
    assert_eq!(drain(&channel, "live.q").await, ["d", "e"]);
    let _ = client.connection.close().await;
    let _ = std::fs::remove_file(path);
}

//! Message TTL (`x-message-ttl`, the `expiration` property) and queue expiry (`x-expires`) as
//! an amqprs client sees them, including across a restart and `kill -9`
//! (docs/rabbitmq-compatibility.md §16).

mod client;
mod common;

use std::time::Duration;

use amqprs::channel::{BasicAckArguments, QueueDeclareArguments};
use amqprs::{BasicProperties, FieldValue};
use client::{
    confirm_select, consume, declare, get, publish_with, queue_with, ready, until_ready, within,
    Client,
};
use common::Broker;

fn expiring(ms: &str, persistent: bool) -> BasicProperties {
    BasicProperties::default()
        .with_expiration(ms)
        .with_persistence(persistent)
        .finish()
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_persistence(true).finish()
}

async fn body_of_get(channel: &amqprs::channel::Channel, queue: &str) -> Option<String> {
    get(channel, queue, true)
        .await
        .map(|(_, _, body)| String::from_utf8(body).expect("utf-8"))
}

#[tokio::test]
async fn queue_ttl_expires_messages_and_they_are_not_counted() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(
        &channel,
        queue_with("ttl", false, &[("x-message-ttl", FieldValue::I(300))]),
    )
    .await;
    for body in ["a", "b", "c"] {
        publish_with(
            &channel,
            "",
            "ttl",
            BasicProperties::default(),
            body.as_bytes(),
        )
        .await;
    }
    assert_eq!(body_of_get(&channel, "ttl").await.as_deref(), Some("a"));
    until_ready(&channel, "ttl", 0).await;
    assert_eq!(body_of_get(&channel, "ttl").await, None);
}

/// Beyond RabbitMQ: a short per-message TTL behind a long one expires on time.
#[tokio::test]
async fn a_message_expires_on_time_wherever_it_is_in_the_queue() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("mixed")).await;
    publish_with(&channel, "", "mixed", expiring("60000", false), b"long").await;
    publish_with(&channel, "", "mixed", expiring("100", false), b"short").await;
    publish_with(&channel, "", "mixed", BasicProperties::default(), b"none").await;
    until_ready(&channel, "mixed", 2).await;
    assert_eq!(
        body_of_get(&channel, "mixed").await.as_deref(),
        Some("long")
    );
    assert_eq!(
        body_of_get(&channel, "mixed").await.as_deref(),
        Some("none")
    );
}

#[tokio::test]
async fn the_smaller_of_queue_and_message_ttl_wins() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(
        &channel,
        queue_with("both", false, &[("x-message-ttl", FieldValue::I(150))]),
    )
    .await;
    publish_with(
        &channel,
        "",
        "both",
        expiring("60000", false),
        b"queue-wins",
    )
    .await;
    until_ready(&channel, "both", 0).await;
    declare(
        &channel,
        queue_with(
            "both-long",
            false,
            &[("x-message-ttl", FieldValue::I(60_000))],
        ),
    )
    .await;
    publish_with(
        &channel,
        "",
        "both-long",
        expiring("100", false),
        b"msg-wins",
    )
    .await;
    publish_with(
        &channel,
        "",
        "both-long",
        BasicProperties::default(),
        b"stays",
    )
    .await;
    until_ready(&channel, "both-long", 1).await;
    assert_eq!(
        body_of_get(&channel, "both-long").await.as_deref(),
        Some("stays")
    );
}

#[tokio::test]
async fn ttl_zero_reaches_a_waiting_consumer_or_expires() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(
        &channel,
        queue_with("zero", false, &[("x-message-ttl", FieldValue::I(0))]),
    )
    .await;
    publish_with(&channel, "", "zero", BasicProperties::default(), b"lost").await;
    until_ready(&channel, "zero", 0).await;
    let mut deliveries = consume(&channel, "zero", true).await;
    let (publisher, _) = client.channel().await;
    publish_with(&publisher, "", "zero", BasicProperties::default(), b"taken").await;
    assert_eq!(deliveries.next().await.body, b"taken");
}

#[tokio::test]
async fn invalid_expiration_closes_the_channel_with_rabbitmq_text() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    for (expiration, text) in [
        (
            "abc",
            "PRECONDITION_FAILED - invalid expiration 'abc': no_integer",
        ),
        (
            "-1",
            "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}",
        ),
        (
            "1.5",
            "PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,\".5\"}",
        ),
        (
            "4294967296",
            "PRECONDITION_FAILED - invalid expiration '4294967296': {value_too_large,4294967296}",
        ),
    ] {
        let (channel, mut events) = client.channel().await;
        declare(&channel, QueueDeclareArguments::new("bad-exp")).await;
        publish_with(&channel, "", "bad-exp", expiring(expiration, false), b"x").await;
        events.expect_close(406, text).await;
    }
    client.assert_usable().await;
}

#[tokio::test]
async fn invalid_ttl_arguments_are_406_with_rabbitmq_text() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    for (pairs, text) in [
        (
            vec![("x-message-ttl", FieldValue::I(-1))],
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'bad' in vhost '/': {value_negative,-1}",
        ),
        (
            vec![("x-expires", FieldValue::I(0))],
            "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'bad' in vhost '/': {value_zero,0}",
        ),
        (
            vec![("x-expires", FieldValue::from("1000"))],
            "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'bad' in vhost '/': {unacceptable_type,longstr}",
        ),
    ] {
        let (channel, mut events) = client.channel().await;
        let result = within(
            "queue.declare",
            channel.queue_declare(queue_with("bad", false, &pairs)),
        )
        .await;
        assert!(result.is_err(), "{result:?}");
        events.expect_close(406, text).await;
    }
    client.assert_usable().await;
}

#[tokio::test]
async fn an_unused_queue_expires_and_a_consumed_one_does_not() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    let expires = [("x-expires", FieldValue::I(300))];
    declare(&channel, queue_with("unused", false, &expires)).await;
    declare(&channel, queue_with("consumed", false, &expires)).await;
    let _deliveries = consume(&channel, "consumed", true).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(ready(&channel, "consumed").await, 0, "still there");
    let passive = QueueDeclareArguments::new("unused").passive(true).finish();
    let result = within("passive declare", channel.queue_declare(passive)).await;
    assert!(result.is_err(), "{result:?}");
    events
        .expect_close(404, "NOT_FOUND - no queue 'unused' in vhost '/'")
        .await;
}

#[tokio::test]
async fn redeclares_and_gets_keep_a_queue_alive() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    let expires = [("x-expires", FieldValue::I(400))];
    declare(&channel, queue_with("kept", false, &expires)).await;
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if round % 2 == 0 {
            declare(&channel, queue_with("kept", false, &expires)).await;
        } else {
            assert_eq!(body_of_get(&channel, "kept").await, None);
        }
    }
    assert_eq!(ready(&channel, "kept").await, 0);
}

/// Deadlines are absolute and recorded with the message: after `kill -9` a message expires
/// when it would have, and one that should live does.
#[tokio::test]
async fn deadlines_survive_kill_9() {
    let broker = Broker::start(2);
    {
        let client = Client::connect(&broker).await;
        let (channel, mut events) = client.channel().await;
        confirm_select(&channel).await;
        declare(
            &channel,
            queue_with("timed", true, &[("x-message-ttl", FieldValue::I(1_500))]),
        )
        .await;
        publish_with(&channel, "", "timed", persistent(), b"queue-ttl").await;
        publish_with(
            &channel,
            "",
            "timed",
            expiring("60000", true),
            b"queue-ttl-too",
        )
        .await;
        declare(&channel, queue_with("own", true, &[])).await;
        // The message without a deadline comes first: expiring the later one must not take it.
        publish_with(&channel, "", "own", persistent(), b"forever").await;
        publish_with(&channel, "", "own", expiring("1500", true), b"short").await;
        events.confirmed(4).await;
    }
    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    assert_eq!(ready(&channel, "timed").await, 2, "not expired yet");
    until_ready(&channel, "timed", 0).await;
    until_ready(&channel, "own", 1).await;
    assert_eq!(
        body_of_get(&channel, "own").await.as_deref(),
        Some("forever")
    );
}

#[tokio::test]
async fn queue_expiry_continues_after_a_restart() {
    let broker = Broker::start(2);
    {
        let client = Client::connect(&broker).await;
        let (channel, _) = client.channel().await;
        declare(
            &channel,
            queue_with("gone-later", true, &[("x-expires", FieldValue::I(3_000))]),
        )
        .await;
    }
    let broker = broker.restart();
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    assert_eq!(ready(&channel, "gone-later").await, 0, "recovered");
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let passive = QueueDeclareArguments::new("gone-later")
        .passive(true)
        .finish();
    let result = within("passive declare", channel.queue_declare(passive)).await;
    assert!(result.is_err(), "{result:?}");
    events
        .expect_close(404, "NOT_FOUND - no queue 'gone-later' in vhost '/'")
        .await;
}

/// A message that expires while unacked is not redelivered when it comes back.
#[tokio::test]
async fn a_message_that_expired_while_unacked_is_dropped_on_requeue() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(
        &channel,
        queue_with("held", false, &[("x-message-ttl", FieldValue::I(200))]),
    )
    .await;
    publish_with(&channel, "", "held", BasicProperties::default(), b"held").await;
    let (consumer_channel, _) = client.channel().await;
    let mut deliveries = consume(&consumer_channel, "held", false).await;
    let delivery = deliveries.next().await;
    assert_eq!(delivery.body, b"held");
    tokio::time::sleep(Duration::from_millis(400)).await;
    within("channel.close", consumer_channel.close())
        .await
        .expect("close");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ready(&channel, "held").await, 0);
    // A message acked in time is simply gone.
    let (consumer_channel, _) = client.channel().await;
    publish_with(&channel, "", "held", BasicProperties::default(), b"acked").await;
    let mut deliveries = consume(&consumer_channel, "held", false).await;
    let delivery = deliveries.next().await;
    within(
        "basic.ack",
        consumer_channel.basic_ack(BasicAckArguments::new(delivery.delivery_tag, false)),
    )
    .await
    .expect("ack");
}

//! The consumer acknowledgement timeout (RabbitMQ's `consumer_timeout`), as an amqprs client
//! sees it: a delivery left unacknowledged past the timeout closes its channel with 406 and
//! RabbitMQ's text, and the message goes to another consumer (docs/rabbitmq-compatibility.md
//! §14).

mod client;
mod common;

use std::time::{Duration, Instant};

use amqprs::channel::{BasicAckArguments, Channel, QueueDeclareArguments};
use amqprs::{FieldTable, FieldValue};
use client::{consume, declare, get, publish, within, Client, Events};
use common::Broker;

fn timed_out_text(channel: u16, timeout_ms: u64) -> String {
    format!(
        "PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. Timeout \
         value used: {timeout_ms} ms. This timeout value can be configured, see consumers doc \
         guide to learn more"
    )
}

fn queue_with_timeout(name: &str, timeout: FieldValue) -> QueueDeclareArguments {
    let mut table = FieldTable::new();
    table.insert("x-consumer-timeout".try_into().expect("key"), timeout);
    QueueDeclareArguments::new(name).arguments(table).finish()
}

/// Waits for the channel.close; checks its text and that it came after the timeout counted
/// from `since` (a moment before the broker delivered), and not much later.
async fn expect_timed_out(events: &mut Events, channel: &Channel, timeout_ms: u64, since: Instant) {
    let (code, text) = events.closed().await;
    let elapsed = since.elapsed();
    assert_eq!(code, 406, "{text}");
    assert_eq!(text, timed_out_text(channel.channel_id(), timeout_ms));
    assert!(
        elapsed >= Duration::from_millis(timeout_ms),
        "closed after {elapsed:?}, before the timeout"
    );
    assert!(
        elapsed < Duration::from_millis(timeout_ms) + Duration::from_secs(2),
        "closed only after {elapsed:?}"
    );
}

async fn ack(channel: &Channel, tag: u64) {
    within(
        "basic.ack",
        channel.basic_ack(BasicAckArguments::new(tag, false)),
    )
    .await
    .expect("basic.ack");
}

#[tokio::test]
async fn an_unacked_delivery_closes_its_channel_and_the_message_goes_to_another_consumer() {
    let broker = Broker::start_with(2, &["--consumer-timeout-ms", "500"]);
    let slow = Client::connect(&broker).await;
    let (channel, mut events) = slow.channel().await;
    declare(&channel, QueueDeclareArguments::new("work")).await;
    let mut deliveries = consume(&channel, "work", false).await;
    // The broker starts the clock as it delivers, after this: a client-side clock read after
    // the delivery arrives would be late by the delivery's trip.
    let sent_at = Instant::now();
    publish(&channel, "", "work", b"job").await;
    let first = deliveries.next().await;
    assert!(!first.redelivered);
    expect_timed_out(&mut events, &channel, 500, sent_at).await;

    let other = Client::connect(&broker).await;
    let (channel, _events) = other.channel().await;
    let mut deliveries = consume(&channel, "work", false).await;
    let again = deliveries.next().await;
    assert_eq!(again.body, b"job");
    assert!(again.redelivered, "requeued by the channel close");
    ack(&channel, again.delivery_tag).await;
    slow.assert_usable().await;
}

#[tokio::test]
async fn a_consumer_that_acks_in_time_is_untouched() {
    let broker = Broker::start_with(2, &["--consumer-timeout-ms", "400"]);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("steady")).await;
    let mut deliveries = consume(&channel, "steady", false).await;
    // Well past the timeout in total, each delivery acked within a fraction of it.
    for n in 0..8 {
        publish(&channel, "", "steady", format!("{n}").as_bytes()).await;
        let delivery = deliveries.next().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        ack(&channel, delivery.delivery_tag).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(events.already_sent(), None);
    declare(&channel, QueueDeclareArguments::new("steady")).await;
}

#[tokio::test]
async fn zero_disables_the_timeout() {
    let broker = Broker::start_with(2, &["--consumer-timeout-ms", "0"]);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("patient")).await;
    let mut deliveries = consume(&channel, "patient", false).await;
    publish(&channel, "", "patient", b"x").await;
    let delivery = deliveries.next().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(events.already_sent(), None);
    ack(&channel, delivery.delivery_tag).await;
    declare(&channel, QueueDeclareArguments::new("patient")).await;
}

#[tokio::test]
async fn a_basic_get_delivery_times_out_too() {
    let broker = Broker::start_with(1, &["--consumer-timeout-ms", "300"]);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("got")).await;
    publish(&channel, "", "got", b"x").await;
    let (got, asked_at) = within("a message", async {
        loop {
            let asked_at = Instant::now();
            if let Some(message) = get(&channel, "got", false).await {
                return (message, asked_at);
            }
        }
    })
    .await;
    assert_eq!(got.2, b"x");
    expect_timed_out(&mut events, &channel, 300, asked_at).await;
    let (channel, _events) = client.channel().await;
    let again = get(&channel, "got", true).await.expect("requeued");
    assert!(again.0.redelivered());
}

#[tokio::test]
async fn the_queue_argument_overrides_the_broker_timeout() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, queue_with_timeout("short", FieldValue::l(300))).await;
    declare(&channel, QueueDeclareArguments::new("default")).await;
    let mut default = consume(&channel, "default", false).await;
    publish(&channel, "", "default", b"a").await;
    default.next().await;
    // Each channel's oldest delivery is looked at with its own queue's timeout.
    let (short_channel, mut short_events) = client.channel().await;
    let mut short = consume(&short_channel, "short", false).await;
    let sent_at = Instant::now();
    publish(&channel, "", "short", b"b").await;
    short.next().await;
    expect_timed_out(&mut short_events, &short_channel, 300, sent_at).await;
    assert_eq!(events.already_sent(), None, "the 30 min default applies");

    let (channel, mut events) = client.channel().await;
    declare(&channel, queue_with_timeout("never", FieldValue::I(0))).await;
    let _never = consume(&channel, "never", false).await;
    publish(&channel, "", "never", b"c").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(events.already_sent(), None, "0 disables it for the queue");
}

#[tokio::test]
async fn an_invalid_queue_timeout_is_406() {
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    for (value, term) in [
        (FieldValue::from("1000"), "{unacceptable_type,longstr}"),
        (FieldValue::I(-5), "{value_negative,-5}"),
    ] {
        let (channel, mut events) = client.channel().await;
        let result = within(
            "queue.declare",
            channel.queue_declare(queue_with_timeout("bad", value)),
        )
        .await;
        assert!(result.is_err(), "{result:?}");
        events
            .expect_close(
                406,
                &format!(
                    "PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue 'bad' in \
                     vhost '/': {term}"
                ),
            )
            .await;
    }
}

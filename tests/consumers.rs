//! Who gets a queue's messages: single active consumer (`x-single-active-consumer`), consumer
//! priorities (`x-priority`), and quorum queues' delivery limit with the `x-delivery-count`
//! header, as an amqprs client sees them (docs/rabbitmq-compatibility.md §16).

mod client;
mod common;

use amqprs::channel::{
    BasicConsumeArguments, BasicNackArguments, BasicQosArguments, Channel, QueueDeclareArguments,
};
use amqprs::{BasicProperties, FieldValue};
use client::{consume, declare, get, publish_with, queue_with, table, within, Client, Deliveries};
use common::Broker;

async fn publish_numbers(channel: &Channel, queue: &str, count: usize) {
    for n in 0..count {
        publish_with(
            channel,
            "",
            queue,
            BasicProperties::default(),
            n.to_string().as_bytes(),
        )
        .await;
    }
}

async fn prefetch(channel: &Channel, count: u16) {
    within(
        "basic.qos",
        channel.basic_qos(BasicQosArguments::new(0, count, false)),
    )
    .await
    .expect("basic.qos");
}

async fn consume_with_priority(channel: &Channel, queue: &str, priority: i32) -> Deliveries {
    let mut args = BasicConsumeArguments::new(queue, "")
        .manual_ack(true)
        .finish();
    args.arguments = table(&[("x-priority", FieldValue::I(priority))]);
    let (tag, receiver) = within("basic.consume", channel.basic_consume_rx(args))
        .await
        .expect("basic.consume");
    Deliveries::from_parts(tag, receiver)
}

#[tokio::test]
async fn a_single_active_consumer_gets_everything_and_the_next_takes_over_in_order() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(
        &channel,
        queue_with(
            "sac",
            false,
            &[("x-single-active-consumer", FieldValue::t(true))],
        ),
    )
    .await;
    let (first_channel, _) = client.channel().await;
    prefetch(&first_channel, 4).await;
    let mut first = consume(&first_channel, "sac", false).await;
    let (second_channel, _) = client.channel().await;
    let mut second = consume(&second_channel, "sac", false).await;
    publish_numbers(&channel, "sac", 10).await;
    assert_eq!(first.bodies(4).await, ["0", "1", "2", "3"]);
    // The first consumer goes with 4 unacked: they come back, and the second takes the queue
    // from its head, in order.
    within("channel.close", first_channel.close())
        .await
        .expect("close");
    let bodies = second.bodies(10).await;
    assert_eq!(bodies, (0..10).map(|n| n.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn higher_priority_consumers_first_and_lower_ones_when_they_are_full() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("prio-consumers")).await;
    let (low_channel, _) = client.channel().await;
    let mut low = consume_with_priority(&low_channel, "prio-consumers", 1).await;
    let (high_channel, _) = client.channel().await;
    prefetch(&high_channel, 3).await;
    let mut high = consume_with_priority(&high_channel, "prio-consumers", 10).await;
    publish_numbers(&channel, "prio-consumers", 8).await;
    // The high-priority consumer fills its prefetch of 3 first; the rest overflow to low.
    assert_eq!(high.bodies(3).await, ["0", "1", "2"]);
    assert_eq!(low.bodies(5).await, ["3", "4", "5", "6", "7"]);
}

#[tokio::test]
async fn a_string_consumer_priority_is_406() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("q")).await;
    let mut args = BasicConsumeArguments::new("q", "").finish();
    args.arguments = table(&[("x-priority", FieldValue::from("high"))]);
    let result = within("basic.consume", channel.basic_consume_rx(args)).await;
    assert!(result.is_err());
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q' in vhost '/': {unacceptable_type,longstr}",
        )
        .await;
}

#[tokio::test]
async fn quorum_queues_refuse_what_a_quorum_queue_cannot_be() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let quorum = ("x-queue-type", FieldValue::from("quorum"));
    for (declare_args, text) in [
        (
            queue_with("qq", false, std::slice::from_ref(&quorum)),
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'qq' in vhost '/'",
        ),
        (
            QueueDeclareArguments::new("qq")
                .durable(true)
                .auto_delete(true)
                .arguments(table(std::slice::from_ref(&quorum)))
                .finish(),
            "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'qq' in vhost '/'",
        ),
        (
            QueueDeclareArguments::new("qq")
                .durable(true)
                .exclusive(true)
                .arguments(table(std::slice::from_ref(&quorum)))
                .finish(),
            "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'qq' in vhost '/'",
        ),
        (
            queue_with("qq", true, &[quorum.clone(), ("x-max-priority", FieldValue::I(5))]),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'qq' in vhost '/' of queue type rabbit_quorum_queue",
        ),
        (
            queue_with("qq", true, &[("x-queue-type", FieldValue::from("stream"))]),
            "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'qq' in vhost '/'",
        ),
    ] {
        let (channel, mut events) = client.channel().await;
        let result = within("queue.declare", channel.queue_declare(declare_args)).await;
        assert!(result.is_err(), "{result:?}");
        events.expect_close(406, text).await;
    }
    let (channel, _) = client.channel().await;
    declare(&channel, queue_with("qq", true, &[quorum])).await;
    publish_numbers(&channel, "qq", 1).await;
    assert!(get(&channel, "qq", true).await.is_some());
}

/// Poison messages: every return counts, the count shows as `x-delivery-count`, and past the
/// limit the message is dead-lettered with reason `delivery_limit`.
#[tokio::test]
async fn returns_past_the_delivery_limit_dead_letter_the_message() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("poison-parking")).await;
    declare(
        &channel,
        queue_with(
            "poison",
            true,
            &[
                ("x-queue-type", FieldValue::from("quorum")),
                ("x-delivery-limit", FieldValue::I(2)),
                ("x-dead-letter-exchange", FieldValue::from("")),
                (
                    "x-dead-letter-routing-key",
                    FieldValue::from("poison-parking"),
                ),
            ],
        ),
    )
    .await;
    publish_numbers(&channel, "poison", 1).await;
    let (consumer_channel, _) = client.channel().await;
    let mut deliveries = consume(&consumer_channel, "poison", false).await;
    for attempt in 0..3 {
        let delivery = deliveries.next().await;
        let count = delivery.properties.headers().and_then(|headers| {
            headers
                .as_ref()
                .get(&"x-delivery-count".try_into().expect("name"))
                .cloned()
        });
        if attempt == 0 {
            assert_eq!(count, None, "a first delivery has no count");
        } else {
            assert_eq!(count, Some(FieldValue::l(attempt)));
        }
        let nack = BasicNackArguments::new(delivery.delivery_tag, false, true);
        within("basic.nack", consumer_channel.basic_nack(nack))
            .await
            .expect("nack");
    }
    let mut parked = None;
    for _ in 0..200 {
        parked = get(&channel, "poison-parking", true).await;
        if parked.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, properties, body) = parked.expect("dead-lettered after the third return");
    assert_eq!(body, b"0");
    let headers = properties.headers().expect("headers");
    assert_eq!(
        headers
            .as_ref()
            .get(&"x-first-death-reason".try_into().expect("name")),
        Some(&FieldValue::from("delivery_limit"))
    );
}

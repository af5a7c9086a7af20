//! Priority queues (`x-max-priority`) as an amqprs client sees them: highest priority first,
//! FIFO within a priority, the same order for a backlog read back from disk after `kill -9`
//! (docs/rabbitmq-compatibility.md §16).

mod client;
mod common;

use amqprs::channel::{BasicNackArguments, QueueDeclareArguments};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use client::{confirm_select, consume, declare, drain, publish_with, within, Client};
use common::Broker;

fn priority_queue(name: &str, durable: bool, max: i32) -> QueueDeclareArguments {
    let mut table = FieldTable::new();
    table.insert(
        "x-max-priority".try_into().expect("name"),
        FieldValue::I(max),
    );
    QueueDeclareArguments::new(name)
        .durable(durable)
        .arguments(table)
        .finish()
}

fn with_priority(priority: Option<u8>, persistent: bool) -> BasicProperties {
    let mut properties = BasicProperties::default();
    properties.with_persistence(persistent);
    if let Some(priority) = priority {
        properties.with_priority(priority);
    }
    properties.finish()
}

#[tokio::test]
async fn higher_priorities_first_and_fifo_within_a_priority() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(&channel, priority_queue("prio", false, 10)).await;
    for (body, priority) in [
        ("p1", Some(1)),
        ("p5-a", Some(5)),
        ("p10", Some(10)),
        ("p0", Some(0)),
        ("p5-b", Some(5)),
        ("none", None),
        // Above the maximum counts as the maximum, after the p10 already queued.
        ("p200", Some(200)),
    ] {
        publish_with(
            &channel,
            "",
            "prio",
            with_priority(priority, false),
            body.as_bytes(),
        )
        .await;
    }
    assert_eq!(
        drain(&channel, "prio").await,
        ["p10", "p200", "p5-a", "p5-b", "p1", "p0", "none"]
    );
}

#[tokio::test]
async fn a_requeued_message_goes_back_to_its_place_in_its_priority() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(&channel, priority_queue("requeue", false, 3)).await;
    for (body, priority) in [("low", 1), ("high-1", 3), ("high-2", 3)] {
        publish_with(
            &channel,
            "",
            "requeue",
            with_priority(Some(priority), false),
            body.as_bytes(),
        )
        .await;
    }
    let (consumer_channel, _) = client.channel().await;
    let mut deliveries = consume(&consumer_channel, "requeue", false).await;
    let first = deliveries.next().await;
    assert_eq!(first.body, b"high-1");
    let nack = BasicNackArguments::new(first.delivery_tag, true, true);
    within("basic.nack", consumer_channel.basic_nack(nack))
        .await
        .expect("nack");
    within("channel.close", consumer_channel.close())
        .await
        .expect("close");
    assert_eq!(
        drain(&channel, "requeue").await,
        ["high-1", "high-2", "low"]
    );
}

/// A backlog recovered after `kill -9` has its bodies on disk: the order comes from the
/// priority each record carries.
#[tokio::test]
async fn a_recovered_backlog_keeps_priority_order() {
    const MESSAGES: usize = 3_000;
    let broker = Broker::start(2);
    {
        let client = Client::connect(&broker).await;
        let (channel, mut events) = client.channel().await;
        confirm_select(&channel).await;
        declare(&channel, priority_queue("backlog", true, 2)).await;
        for id in 0..MESSAGES {
            let priority = (id % 3) as u8;
            publish_with(
                &channel,
                "",
                "backlog",
                with_priority(Some(priority), true),
                id.to_string().as_bytes(),
            )
            .await;
        }
        events.confirmed(MESSAGES as u64).await;
    }
    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    let got: Vec<usize> = drain(&channel, "backlog")
        .await
        .iter()
        .map(|body| body.parse().expect("id"))
        .collect();
    let mut expected: Vec<usize> = (0..MESSAGES).collect();
    // Priority 2 first, then 1, then 0; publish order within each.
    expected.sort_by_key(|id| (2 - id % 3, *id));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn max_priority_above_255_is_refused() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    let result = within(
        "queue.declare",
        channel.queue_declare(priority_queue("too-high", false, 256)),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'too-high' in vhost '/': {max_value_exceeded,256}",
        )
        .await;
}

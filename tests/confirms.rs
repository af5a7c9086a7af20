//! Publisher confirms, mandatory returns, and per-channel publish order, through amqprs against
//! a 2-shard broker with publisher and consumer on different connections.

mod client;
mod common;

use amqprs::channel::{BasicPublishArguments, QueueDeclareArguments};
use amqprs::BasicProperties;
use client::{confirm_select, consume, declare, publish, within, Client, Event};
use common::Broker;

#[tokio::test]
async fn a_thousand_confirmed_publishes_are_all_acked_and_delivered() {
    let broker = Broker::start(2);
    let consumer = Client::connect(&broker).await;
    let (receive, _) = consumer.channel().await;
    declare(
        &receive,
        QueueDeclareArguments::durable_client_named("confirmed"),
    )
    .await;

    let producer = Client::connect(&broker).await;
    let (send, mut events) = producer.channel().await;
    declare(
        &send,
        QueueDeclareArguments::durable_client_named("confirmed"),
    )
    .await;
    confirm_select(&send).await;
    let persistent = BasicProperties::default().with_persistence(true).finish();
    for n in 0..1000 {
        client::publish_with(&send, "", "confirmed", persistent.clone(), &[n as u8]).await;
    }
    let others = events.confirmed(1000).await;
    assert!(others.is_empty(), "unexpected events {others:?}");

    let (_, count, _) = within(
        "passive declare",
        receive.queue_declare(
            QueueDeclareArguments::new("confirmed")
                .passive(true)
                .finish(),
        ),
    )
    .await
    .expect("passive declare")
    .expect("declare-ok");
    assert_eq!(count, 1000, "every confirmed message is in the queue");
}

#[tokio::test]
async fn an_unroutable_mandatory_publish_is_returned_before_its_ack() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let (send, mut events) = producer.channel().await;
    confirm_select(&send).await;
    let mandatory = BasicPublishArguments::new("amq.direct", "nobody-listens")
        .mandatory(true)
        .finish();
    within(
        "basic.publish",
        send.basic_publish(BasicProperties::default(), b"lost".to_vec(), mandatory),
    )
    .await
    .expect("basic.publish");
    assert_eq!(
        events.next().await,
        Event::Returned {
            code: 312,
            text: "NO_ROUTE".into(),
            routing_key: "nobody-listens".into(),
            body: b"lost".to_vec(),
        }
    );
    assert_eq!(
        events.next().await,
        Event::Ack {
            tag: 1,
            multiple: false
        }
    );

    // Unroutable without mandatory: acked, not returned.
    publish(&send, "amq.direct", "nobody-listens", b"dropped").await;
    assert_eq!(
        events.next().await,
        Event::Ack {
            tag: 2,
            multiple: false
        }
    );
}

#[tokio::test]
async fn one_channel_publish_order_is_kept_into_a_queue_on_another_shard() {
    const COUNT: u32 = 10_000;
    let broker = Broker::start(2);
    let consumer = Client::connect(&broker).await;
    let (receive, _) = consumer.channel().await;
    declare(&receive, QueueDeclareArguments::new("ordered")).await;
    let mut deliveries = consume(&receive, "ordered", true).await;

    let producer = Client::connect(&broker).await;
    let (send, _) = producer.channel().await;
    declare(&send, QueueDeclareArguments::new("ordered")).await;
    let publisher = tokio::spawn(async move {
        for n in 0..COUNT {
            publish(&send, "", "ordered", &n.to_be_bytes()).await;
        }
        send
    });
    let mut previous = None;
    for _ in 0..COUNT {
        let body = deliveries.next().await.body;
        let n = u32::from_be_bytes(body.as_slice().try_into().expect("4-byte body"));
        if let Some(previous) = previous {
            assert!(n > previous, "{n} arrived after {previous}");
        }
        previous = Some(n);
    }
    assert_eq!(previous, Some(COUNT - 1));
    within("publisher", publisher)
        .await
        .expect("publisher task");
}

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

/// Confirms that complete together go out as one `multiple=true` ack, whether the publishes
/// are transient (answered at once) or persistent (answered after the fdatasync), and whether
/// the queue is on the publisher's shard or the other one. amqplib's own test publishes 640
/// messages at once and expects at least one multiple ack.
#[test]
fn confirms_that_complete_together_are_coalesced_into_multiple_acks() {
    use common::raw::RawClient;

    let broker = Broker::start(2);
    // Two connections land on the two shards; each declares a queue, which is placed on its
    // shard, so `first` publishes to a local and a remote queue.
    let mut first = RawClient::open(broker.addr);
    let mut second = RawClient::open(broker.addr);
    first.confirming_durable_queue(1, "coalesced-a");
    second.confirming_durable_queue(1, "coalesced-b");
    let mut confirmed = 0;
    for queue in ["coalesced-a", "coalesced-b"] {
        for persistent in [false, true] {
            let (frames, multiple) = publish_at_once(&mut first, queue, persistent, confirmed);
            confirmed += PUBLISHED_AT_ONCE;
            assert!(
                multiple >= 1,
                "{queue}, persistent {persistent}: no multiple ack among {frames}"
            );
            assert!(
                frames < PUBLISHED_AT_ONCE,
                "{queue}, persistent {persistent}: {frames} ack frames"
            );
        }
    }
}

const PUBLISHED_AT_ONCE: u64 = 640;

/// Publishes `PUBLISHED_AT_ONCE` messages without waiting, then reads acks until all are
/// confirmed, checking that they move forward and that a single ack names exactly the next
/// publish. Returns the ack frames and how many of them were `multiple`.
fn publish_at_once(
    client: &mut common::raw::RawClient,
    queue: &str,
    persistent: bool,
    confirmed_before: u64,
) -> (u64, u64) {
    use hare::protocol::Method;

    for n in 0..PUBLISHED_AT_ONCE {
        client.publish_with_mode(1, queue, &n.to_be_bytes(), persistent);
    }
    let last = confirmed_before + PUBLISHED_AT_ONCE;
    let mut acked = confirmed_before;
    let (mut frames, mut multiple) = (0, 0);
    while acked < last {
        match client.next_method() {
            (1, Method::BasicAck(ack)) => {
                assert!(
                    ack.delivery_tag > acked && ack.delivery_tag <= last,
                    "ack {ack:?} after {acked}, last {last}"
                );
                assert!(
                    ack.multiple || ack.delivery_tag == acked + 1,
                    "a single ack names the next publish: {ack:?} after {acked}"
                );
                acked = ack.delivery_tag;
                frames += 1;
                multiple += u64::from(ack.multiple);
            }
            other => panic!("expected basic.ack, got {other:?}"),
        }
    }
    (frames, multiple)
}

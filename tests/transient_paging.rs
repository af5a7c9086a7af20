//! Transient messages behind a backlog are paged to the shard's log (docs/ARCHITECTURE.md,
//! Backlogs on disk): a transient flood of four times the memory watermark into one queue
//! nobody consumes leaves resident memory under the watermark, without the alarm, and drains
//! complete and in order; the log's segments go once the backlog is consumed. Paged messages
//! do not come back after `kill -9` (they were transient), persistent ones behind them do,
//! and paged messages that expire are read back to be dead-lettered intact.

mod client;
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments,
    QueueDeclareArguments,
};
use amqprs::{BasicProperties, FieldValue};
use client::{within, Client};
use common::memory::{segment_files, RssWatch};
use common::Broker;
use serde_json::Value;

const WATERMARK: u64 = 128 << 20;
const BODY_BYTES: usize = 64 * 1024;
/// Messages of each of the two publishers: 512 MiB in all, four times the watermark.
const PER_PUBLISHER: usize = 4096;

/// Bytes of the shards' log segments under the data directory.
fn segment_bytes(data_dir: &Path) -> u64 {
    segment_files(data_dir)
        .iter()
        .map(|path| std::fs::metadata(path).map_or(0, |m| m.len()))
        .sum()
}

fn node(broker: &Broker) -> Value {
    common::http::node(broker.management)
}

/// A body that starts with its id, padded to `size`.
fn body(id: &str, size: usize) -> Vec<u8> {
    let mut body = format!("{id:<32}").into_bytes();
    body.resize(size, b'.');
    body
}

fn id_of(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..32]).trim_end().to_owned()
}

/// Publishes `count` transient messages `p{publisher}-{n}` of `BODY_BYTES` to `queue`.
async fn publish_all(broker: &Broker, queue: &str, publisher: usize, count: usize) {
    let client = Client::connect(broker).await;
    let (channel, _events) = client.channel().await;
    for n in 0..count {
        channel
            .basic_publish(
                BasicProperties::default(),
                body(&format!("p{publisher}-{n}"), BODY_BYTES),
                BasicPublishArguments::new("", queue),
            )
            .await
            .expect("publish");
    }
    // A round trip: every publish before it has been enqueued (a debug build writes the
    // flood to disk far slower than a client sends it).
    let passive = QueueDeclareArguments::new(queue).passive(true).finish();
    tokio::time::timeout(Duration::from_secs(300), channel.queue_declare(passive))
        .await
        .expect("the broker reads the whole flood")
        .expect("passive declare");
    client.connection.close().await.expect("close publisher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transient_flood_into_one_queue_pages_to_the_log_under_the_watermark() {
    let watermark = WATERMARK.to_string();
    let broker = Arc::new(Broker::start_with(
        2,
        &["--vm-memory-high-watermark-bytes", &watermark],
    ));
    let watch = RssWatch::start(broker.pid());
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let queue = client::declare(&channel, QueueDeclareArguments::new("flood")).await;

    let publishers: Vec<_> = (0..2)
        .map(|publisher| {
            let (broker, queue) = (broker.clone(), queue.clone());
            tokio::spawn(
                async move { publish_all(&broker, &queue, publisher, PER_PUBLISHER).await },
            )
        })
        .collect();
    for publisher in publishers {
        // 256 MiB each through a debug build: longer than `within` allows.
        tokio::time::timeout(Duration::from_secs(300), publisher)
            .await
            .expect("publisher finishes")
            .expect("publisher");
    }
    let total = 2 * PER_PUBLISHER;
    client::until_ready(&channel, &queue, total as u32).await;
    let held_peak = watch.peak();
    let on_disk = segment_bytes(&broker.data_dir);
    eprintln!(
        "peak RSS with {} MiB queued: {} MiB (watermark {} MiB); segments {} MiB",
        (total * BODY_BYTES) >> 20,
        held_peak >> 20,
        WATERMARK >> 20,
        on_disk >> 20
    );
    assert!(
        held_peak < WATERMARK,
        "RSS reached {held_peak} bytes, over the watermark {WATERMARK}"
    );
    assert!(
        on_disk >= (total * BODY_BYTES) as u64 * 3 / 4,
        "only {on_disk} bytes of segments for {total} messages of {BODY_BYTES} bytes"
    );
    assert_eq!(node(&broker)["mem_alarm"], false);

    // Drain: every message once, each publisher's in order.
    channel
        .basic_qos(BasicQosArguments::new(0, 200, false))
        .await
        .expect("qos");
    let (_, mut deliveries) = channel
        .basic_consume_rx(BasicConsumeArguments::new(&queue, "drain"))
        .await
        .expect("consume");
    let mut next: HashMap<String, usize> = HashMap::new();
    for received in 0..total {
        let message = within("delivery", deliveries.recv())
            .await
            .expect("consumer ended");
        let content = message.content.expect("content");
        assert_eq!(content.len(), BODY_BYTES);
        assert!(content[32..].iter().all(|b| *b == b'.'), "damaged body");
        let id = id_of(&content);
        let (publisher, n) = id.split_once('-').expect("p{publisher}-{n}");
        let n: usize = n.parse().expect("number");
        let expected = next.entry(publisher.to_owned()).or_insert(0);
        assert_eq!(n, *expected, "{publisher}: out of order or duplicate");
        *expected += 1;
        if received % 100 == 99 {
            let tag = message.deliver.expect("deliver").delivery_tag();
            channel
                .basic_ack(BasicAckArguments::new(tag, true))
                .await
                .expect("ack");
        }
    }
    assert!(
        next.values().all(|count| *count == PER_PUBLISHER),
        "{next:?}"
    );
    assert_eq!(client::ready(&channel, &queue).await, 0);
    let peak = watch.peak();
    eprintln!("peak RSS over the whole run: {} MiB", peak >> 20);
    assert!(peak < WATERMARK, "RSS reached {peak} bytes");

    // With the backlog consumed its segments go: at most the segment being written and the
    // one prepared ahead of it stay, per shard.
    let limit = 2 * 2 * (64 << 20);
    let mut left = segment_bytes(&broker.data_dir);
    for _ in 0..200 {
        if left <= limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = segment_bytes(&broker.data_dir);
    }
    assert!(
        left <= limit,
        "{left} bytes of segments left after the drain"
    );
    client.connection.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_transient_messages_do_not_come_back_after_kill_9_and_persistent_ones_do() {
    const TRANSIENT: usize = 3000;
    const PERSISTENT: usize = 100;
    const SIZE: usize = 4096;
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    let queue = client::declare(
        &channel,
        QueueDeclareArguments::new("mixed").durable(true).finish(),
    )
    .await;
    // 12 MiB of transient messages: those past the queue's 8 MiB resident head are paged.
    for n in 0..TRANSIENT {
        client::publish(&channel, "", &queue, &body(&format!("t-{n}"), SIZE)).await;
    }
    client::confirm_select(&channel).await;
    let mut persistent = BasicProperties::default();
    persistent.with_delivery_mode(2);
    for n in 0..PERSISTENT {
        client::publish_with(
            &channel,
            "",
            &queue,
            persistent.clone(),
            &body(&format!("d-{n}"), SIZE),
        )
        .await;
    }
    events.confirmed(PERSISTENT as u64).await;
    client::until_ready(&channel, &queue, (TRANSIENT + PERSISTENT) as u32).await;
    let shards = broker.shards;
    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, shards);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    assert_eq!(client::ready(&channel, &queue).await, PERSISTENT as u32);
    let mut deliveries = client::consume(&channel, &queue, false).await;
    for n in 0..PERSISTENT {
        let delivery = deliveries.next().await;
        assert_eq!(id_of(&delivery.body), format!("d-{n}"));
        assert_eq!(delivery.body.len(), SIZE);
        assert!(delivery.redelivered, "recovered messages are redelivered");
        if n == PERSISTENT - 1 {
            channel
                .basic_ack(BasicAckArguments::new(delivery.delivery_tag, true))
                .await
                .expect("ack");
        }
    }
    client.connection.close().await.expect("close");
    // Acked before a clean stop: nothing comes back.
    let broker = broker.restart();
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    assert_eq!(client::ready(&channel, &queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_messages_that_expire_are_read_back_and_dead_lettered_intact() {
    const COUNT: usize = 3000;
    const SIZE: usize = 4096;
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let dead = client::declare(&channel, QueueDeclareArguments::new("expired")).await;
    let queue = client::declare(
        &channel,
        client::queue_with(
            "short-lived",
            false,
            &[
                ("x-message-ttl", FieldValue::I(300)),
                ("x-dead-letter-exchange", FieldValue::from("")),
                ("x-dead-letter-routing-key", FieldValue::from(dead.as_str())),
            ],
        ),
    )
    .await;
    for n in 0..COUNT {
        client::publish(&channel, "", &queue, &body(&format!("m-{n}"), SIZE)).await;
    }
    for _ in 0..400 {
        if client::ready(&channel, &dead).await == COUNT as u32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client::ready(&channel, &queue).await, 0);
    let mut deliveries = client::consume(&channel, &dead, true).await;
    for n in 0..COUNT {
        let delivery = deliveries.next().await;
        assert_eq!(delivery.body, body(&format!("m-{n}"), SIZE), "message {n}");
        assert_eq!(
            delivery.properties.delivery_mode(),
            None,
            "a transient message stays transient"
        );
    }
}

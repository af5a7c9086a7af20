//! Backlogs deeper than a queue's resident head, black box: only the head of a durable queue
//! keeps its bodies in RAM, the rest are read back from the shard's log as consumers (or
//! basic.get) reach them. These tests check what a client sees: every message exactly once,
//! in order, with its body, whether the backlog was built live, requeued from unacked
//! deliveries, or recovered after kill -9. Deep enough to need several fetches (the resident
//! head is 2048 messages).

mod client;
mod common;
mod durable;

use amqprs::channel::{BasicAckArguments, BasicQosArguments, QueueDeclareArguments};
use amqprs::BasicProperties;
use client::{consume, declare, get, within, Client, Deliveries};
use common::Broker;
use durable::{close, message_count, restart, Confirming, Restart};

const DEPTH: u32 = 6000;

/// Publishes `1..=count` as bodies to durable queue `queue`, confirmed. Every seventh is
/// transient, so stored and always-resident messages interleave.
async fn fill(client: &Client, queue: &str, count: u32) {
    let mut confirming = Confirming::open(client).await;
    declare(
        &confirming.channel,
        QueueDeclareArguments::durable_client_named(queue),
    )
    .await;
    for n in 1..=count {
        let properties = BasicProperties::default()
            .with_persistence(n % 7 != 0)
            .finish();
        confirming
            .publish("", queue, &properties, n.to_string().as_bytes())
            .await;
    }
    assert_eq!(confirming.wait_all().await, vec![]);
}

/// Takes `count` deliveries, acking every 100th with multiple=true; returns the bodies and
/// how many were marked redelivered.
async fn take_acking(
    channel: &amqprs::channel::Channel,
    deliveries: &mut Deliveries,
    count: u32,
) -> (Vec<u32>, u32) {
    let mut bodies = Vec::new();
    let mut redelivered = 0;
    for n in 1..=count {
        let delivery = deliveries.next().await;
        redelivered += u32::from(delivery.redelivered);
        let body = String::from_utf8(delivery.body).expect("utf-8 body");
        bodies.push(body.trim_end().parse().expect("numeric body"));
        if n % 100 == 0 || n == count {
            within(
                "basic.ack",
                channel.basic_ack(BasicAckArguments::new(delivery.delivery_tag, true)),
            )
            .await
            .expect("basic.ack");
        }
    }
    (bodies, redelivered)
}

#[tokio::test]
async fn a_deep_backlog_drains_in_order_exactly_once() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    fill(&client, "deep", DEPTH).await;
    assert_eq!(message_count(&client, "deep").await, DEPTH);
    let (channel, _events) = client.channel().await;
    within(
        "basic.qos",
        channel.basic_qos(BasicQosArguments::new(0, 300, false)),
    )
    .await
    .expect("basic.qos");
    let mut deliveries = consume(&channel, "deep", false).await;
    let (bodies, redelivered) = take_acking(&channel, &mut deliveries, DEPTH).await;
    assert_eq!(bodies, (1..=DEPTH).collect::<Vec<_>>());
    assert_eq!(redelivered, 0);
    assert!(
        get(&channel, "deep", true).await.is_none(),
        "nothing more after the backlog"
    );
    close(client).await;
}

#[tokio::test]
async fn unacked_deliveries_of_a_deep_backlog_come_back_from_disk_in_order() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    fill(&client, "requeued", DEPTH).await;
    // A consumer with no prefetch limit takes half the backlog and never acks; closing its
    // channel requeues all of it (bodies of stored unacked messages are not kept in RAM).
    let (greedy, _events) = client.channel().await;
    let mut taken = consume(&greedy, "requeued", false).await;
    for n in 1..=DEPTH / 2 {
        let delivery = taken.next().await;
        assert_eq!(delivery.body, n.to_string().as_bytes());
    }
    within("channel.close", greedy.close())
        .await
        .expect("channel.close");
    let (channel, _events) = client.channel().await;
    let mut deliveries = consume(&channel, "requeued", false).await;
    let (bodies, redelivered) = take_acking(&channel, &mut deliveries, DEPTH).await;
    assert_eq!(bodies, (1..=DEPTH).collect::<Vec<_>>());
    // The prefetch-free consumer may have been sent more than it read before the close.
    assert!(redelivered >= DEPTH / 2, "{redelivered} redelivered");
    close(client).await;
}

#[tokio::test]
async fn a_recovered_backlog_is_read_back_by_get_and_by_consumers() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    fill(&client, "recovered", DEPTH).await;
    drop(client);
    let broker = restart(broker, Restart::Kill9).await;
    let client = Client::connect(&broker).await;
    let stored: Vec<u32> = (1..=DEPTH).filter(|n| n % 7 != 0).collect();
    assert_eq!(
        message_count(&client, "recovered").await as usize,
        stored.len(),
        "persistent messages only"
    );
    let (channel, _events) = client.channel().await;
    for want in &stored[..3] {
        let (_, _, body) = get(&channel, "recovered", true)
            .await
            .expect("basic.get-ok");
        assert_eq!(body, want.to_string().as_bytes());
    }
    let mut deliveries = consume(&channel, "recovered", false).await;
    let rest = u32::try_from(stored.len() - 3).expect("fits");
    let (bodies, redelivered) = take_acking(&channel, &mut deliveries, rest).await;
    assert_eq!(bodies, stored[3..]);
    assert_eq!(redelivered, rest, "recovered messages are redelivered");
    close(client).await;
    let broker = restart(broker, Restart::Clean).await;
    let client = Client::connect(&broker).await;
    assert_eq!(
        message_count(&client, "recovered").await,
        0,
        "acks stay done"
    );
    close(client).await;
}

/// Segment files of the shard logs under `data_dir` (spares included).
fn segment_files(data_dir: &std::path::Path) -> usize {
    std::fs::read_dir(data_dir)
        .expect("data dir")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("shard-"))
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .expect("shard dir")
                .flatten()
        })
        .filter(|file| file.file_name().to_string_lossy().ends_with(".seg"))
        .count()
}

/// Waits (up to 10 s) for the segment count to fall to `most`; returns the last count seen.
async fn segments_fall_to(data_dir: &std::path::Path, most: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let count = segment_files(data_dir);
        if count <= most || std::time::Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn publish_kib(confirming: &mut Confirming, count: u32) {
    for n in 1..=count {
        let body = format!("{n:<1024}");
        confirming
            .publish("", "disk", &durable::persistent(), body.as_bytes())
            .await;
    }
    assert_eq!(confirming.wait_all().await, vec![]);
}

/// The test broker's segments are 1 MiB; 6000 × 1 KiB bodies fill about six of them. After a
/// drain each shard keeps its active segment and at most one preallocated spare.
#[tokio::test]
async fn disk_use_falls_back_after_a_drain_live_and_after_a_restart() {
    const KIB_MESSAGES: u32 = 6000;
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let mut confirming = Confirming::open(&client).await;
    declare(
        &confirming.channel,
        QueueDeclareArguments::durable_client_named("disk"),
    )
    .await;
    publish_kib(&mut confirming, KIB_MESSAGES).await;
    let full = segment_files(&broker.data_dir);
    assert!(
        full >= 7,
        "6 MB of records take several segments, saw {full}"
    );
    let (channel, _events) = client.channel().await;
    let mut deliveries = consume(&channel, "disk", false).await;
    take_acking(&channel, &mut deliveries, KIB_MESSAGES).await;
    let drained = segments_fall_to(&broker.data_dir, 4).await;
    assert!(drained <= 4, "{drained} segment files after a live drain");

    // Again, but drained by a broker that recovered the backlog after kill -9.
    publish_kib(&mut confirming, KIB_MESSAGES).await;
    drop(client);
    let broker = restart(broker, Restart::Kill9).await;
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let mut deliveries = consume(&channel, "disk", false).await;
    take_acking(&channel, &mut deliveries, KIB_MESSAGES).await;
    let drained = segments_fall_to(&broker.data_dir, 4).await;
    assert!(
        drained <= 4,
        "{drained} segment files after draining a recovered backlog"
    );
    close(client).await;
    // A restart after the drain finds nothing live and keeps no dead segment either.
    let broker = restart(broker, Restart::Clean).await;
    let client = Client::connect(&broker).await;
    assert_eq!(message_count(&client, "disk").await, 0);
    let after = segments_fall_to(&broker.data_dir, 4).await;
    assert!(after <= 4, "{after} segment files after a restart");
    close(client).await;
}

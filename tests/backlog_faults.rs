//! Backlogs on disk when the disk misbehaves, black box: consumers and basic.get keep draining
//! the stored messages of a backlog while the shard's log is failed and being reopened (the
//! hidden `--storage-fault fdatasync-error-while=PATH` flag fails the log while PATH exists),
//! and a record damaged on disk costs only its own message: it is dropped, every other message
//! arrives, in order.

mod client;
mod common;
mod durable;

use std::path::{Path, PathBuf};

use amqprs::channel::{BasicAckArguments, BasicQosArguments, QueueDeclareArguments};
use client::{consume, declare, get, within, Client, Deliveries};
use common::raw::RawClient;
use common::Broker;
use durable::{close, persistent, Confirming};
use hare::protocol::Method;

/// Well past the resident head of a queue (2048 messages): most bodies are on disk only.
const DEPTH: u32 = 10_000;

/// The body of message `n`: fixed width, so one body never contains another.
fn body(n: u32) -> String {
    format!("stored message {n:06}")
}

/// Publishes `body(1..=count)` as persistent messages to durable queue `queue`, confirmed.
async fn fill(client: &Client, queue: &str, count: u32) {
    let mut confirming = Confirming::open(client).await;
    declare(
        &confirming.channel,
        QueueDeclareArguments::durable_client_named(queue),
    )
    .await;
    for n in 1..=count {
        confirming
            .publish("", queue, &persistent(), body(n).as_bytes())
            .await;
    }
    assert_eq!(confirming.wait_all().await, vec![]);
}

/// Takes `count` deliveries, acking every 100th with multiple=true; returns their numbers.
async fn take(
    channel: &amqprs::channel::Channel,
    deliveries: &mut Deliveries,
    count: u32,
) -> Vec<u32> {
    let mut numbers = Vec::new();
    for taken in 1..=count {
        let delivery = deliveries.next().await;
        numbers.push(number_of(&delivery.body));
        if taken % 100 == 0 || taken == count {
            within(
                "basic.ack",
                channel.basic_ack(BasicAckArguments::new(delivery.delivery_tag, true)),
            )
            .await
            .expect("basic.ack");
        }
    }
    numbers
}

/// Takes `count` messages with basic.get (automatic ack); returns their numbers.
async fn get_numbers(channel: &amqprs::channel::Channel, queue: &str, count: u32) -> Vec<u32> {
    let mut numbers = Vec::new();
    for _ in 0..count {
        let (_, _, bytes) = get(channel, queue, true).await.expect("basic.get-ok");
        numbers.push(number_of(&bytes));
    }
    numbers
}

fn number_of(bytes: &[u8]) -> u32 {
    let text = std::str::from_utf8(bytes).expect("utf-8 body");
    text.strip_prefix("stored message ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected body {text:?}"))
}

/// A consuming channel with a prefetch window.
async fn consumer(
    client: &Client,
    queue: &str,
) -> (amqprs::channel::Channel, Deliveries, client::Events) {
    let (channel, events) = client.channel().await;
    within(
        "basic.qos",
        channel.basic_qos(BasicQosArguments::new(0, 300, false)),
    )
    .await
    .expect("basic.qos");
    let deliveries = consume(&channel, queue, false).await;
    (channel, deliveries, events)
}

/// Whether a connection opened now is told connection.blocked at once (an alarm is up).
fn alarm_is_up(broker: &Broker) -> bool {
    let mut probe = RawClient::open(broker.addr);
    probe.send_method(1, hare::protocol::ChannelOpen::default());
    let mut blocked = false;
    loop {
        match probe.next_method() {
            (0, Method::ConnectionBlocked(_)) => blocked = true,
            (1, Method::ChannelOpenOk(_)) => return blocked,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn fault_file() -> PathBuf {
    let path = common::fresh_data_dir().with_extension("fail-fdatasync");
    let _ = std::fs::remove_file(&path);
    path
}

#[tokio::test]
async fn a_backlog_on_disk_drains_in_order_while_the_log_is_failed() {
    let fault = fault_file();
    let flag = format!("fdatasync-error-while={}", fault.display());
    let broker = Broker::start_with(1, &["--storage-fault", &flag]);
    let client = Client::connect(&broker).await;
    fill(&client, "backlog", DEPTH).await;
    assert!(!alarm_is_up(&broker));

    // The disk fails: the next persistent publish is nacked and the storage alarm goes up.
    std::fs::write(&fault, b"").expect("create the fault file");
    let mut publisher = RawClient::open(broker.addr);
    publisher.confirming_durable_queue(1, "backlog");
    publisher.publish_with_mode(1, "backlog", b"nacked", true);
    loop {
        match publisher.next_method() {
            (1, Method::BasicNack(_)) => break,
            (0, Method::ConnectionBlocked(_)) => {}
            other => panic!("expected a nack, got {other:?}"),
        }
    }
    assert!(alarm_is_up(&broker), "the storage alarm is up");

    // Every stored message is still delivered, in order, while the log stays failed: the
    // first by basic.get, the rest to a consumer.
    let reader = Client::connect(&broker).await;
    let (get_channel, _get_events) = reader.channel().await;
    let mut numbers = get_numbers(&get_channel, "backlog", 100).await;
    let (channel, mut deliveries, _events) = consumer(&reader, "backlog").await;
    numbers.extend(take(&channel, &mut deliveries, DEPTH - 100).await);
    assert_eq!(numbers, (1..=DEPTH).collect::<Vec<_>>());
    assert!(alarm_is_up(&broker), "drained while the alarm was up");

    // The disk recovers: the reopen clears the alarm.
    std::fs::remove_file(&fault).expect("remove the fault file");
    let cleared = within("the alarm to clear", async {
        while alarm_is_up(&broker) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    cleared.await;
    close(reader).await;
    close(client).await;
}

/// Offsets in the segment files under `data_dir` where `needle` occurs.
fn find_in_segments(data_dir: &Path, needle: &[u8]) -> Vec<(PathBuf, usize)> {
    let mut found = Vec::new();
    for path in common::memory::segment_files(data_dir) {
        let bytes = std::fs::read(&path).expect("read segment");
        found.extend(
            bytes
                .windows(needle.len())
                .enumerate()
                .filter(|(_, window)| *window == needle)
                .map(|(offset, _)| (path.clone(), offset)),
        );
    }
    found
}

/// Flips the last byte of message `n`'s body where the log holds it (its CRC no longer holds).
fn damage(data_dir: &Path, n: u32) {
    use std::os::unix::fs::FileExt;
    let needle = body(n);
    let found = find_in_segments(data_dir, needle.as_bytes());
    assert_eq!(found.len(), 1, "message {n} is in the log once: {found:?}");
    let (path, offset) = &found[0];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment");
    let last = (offset + needle.len() - 1) as u64;
    file.write_all_at(b"x", last).expect("damage the record");
    file.sync_all().expect("sync the damage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_costs_only_its_own_message() {
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    fill(&client, "damaged", DEPTH).await;
    // Both beyond the resident head, so both are read back from disk.
    damage(&broker.data_dir, 3000);
    damage(&broker.data_dir, 7000);

    let (channel, _events) = client.channel().await;
    let mut numbers = get_numbers(&channel, "damaged", 4000).await;
    let (consuming, mut deliveries, _consumer_events) = consumer(&client, "damaged").await;
    numbers.extend(take(&consuming, &mut deliveries, DEPTH - 4002).await);
    let expected: Vec<u32> = (1..=DEPTH).filter(|n| *n != 3000 && *n != 7000).collect();
    assert_eq!(numbers, expected, "every other message, in order");
    assert!(
        get(&channel, "damaged", true).await.is_none(),
        "the damaged messages are gone, never delivered"
    );
    // Counted for operators (Hare's own metric family).
    let metrics = common::http::exchange(broker.metrics, "GET", "/metrics", &[], &[]);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text
            .lines()
            .any(|line| line == "rabbitmq_messages_damaged_dropped_total 2"),
        "{}",
        metrics.text
    );
    client.assert_usable().await;
    close(client).await;
}

//! The disk alarm, and the memory alarm beside it (docs/ARCHITECTURE.md, Alarms): a broker
//! whose `--disk-free-limit` is above the free space of its disk blocks publishers from the
//! start, while consumers keep draining; one whose limit is below does not.

mod client;
mod common;

use std::time::Duration;

use amqprs::channel::{BasicAckArguments, QueueDeclareArguments};
use client::{consume, within, Client};
use common::http::{basic, exchange};
use common::raw::{Incoming, RawClient};
use common::Broker;
use hare::protocol::{FrameType, Method};
use serde_json::Value;

const QUEUE: &str = "alarmed";
/// Far more than any disk: the disk alarm is up from the first measurement.
const HUGE_LIMIT: &str = "1000000TB";

fn get(broker: &Broker, path: &str) -> (u16, Value) {
    let authorization = basic("guest", "guest");
    let answer = exchange(
        broker.management,
        "GET",
        path,
        &[("authorization", &authorization)],
        b"",
    );
    let body = if answer.text.is_empty() {
        Value::Null
    } else {
        answer.json()
    };
    (answer.status, body)
}

fn node(broker: &Broker) -> Value {
    get(broker, "/api/nodes").1[0].clone()
}

fn metrics(broker: &Broker) -> String {
    exchange(broker.metrics, "GET", "/metrics", &[], b"").text
}

/// A raw client (it announces the `connection.blocked` capability) with channel 1 open and
/// the queue declared; the connection.blocked reasons it got meanwhile.
fn raw_publisher(broker: &Broker) -> (RawClient, Vec<String>) {
    let mut client = RawClient::open(broker.addr);
    let mut blocked = Vec::new();
    client.send_method(1, hare::protocol::ChannelOpen::default());
    expect_reply(&mut client, &mut blocked, |method| {
        matches!(method, Method::ChannelOpenOk(_))
    });
    client.send_method(
        1,
        hare::protocol::QueueDeclare {
            queue: hare::protocol::ShortStr::from_static(QUEUE),
            ..Default::default()
        },
    );
    expect_reply(&mut client, &mut blocked, |method| {
        matches!(method, Method::QueueDeclareOk(_))
    });
    (client, blocked)
}

/// Reads until a method `wanted` accepts, collecting connection.blocked reasons on the way.
fn expect_reply(client: &mut RawClient, blocked: &mut Vec<String>, wanted: fn(&Method) -> bool) {
    loop {
        match client.next_method() {
            (0, Method::ConnectionBlocked(notice)) => {
                blocked.push(notice.reason.to_string_lossy());
            }
            (_, method) if wanted(&method) => return,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Frames the broker sends within `wait`, as methods (heartbeats skipped).
fn methods_within(client: &mut RawClient, wait: Duration) -> Vec<Method> {
    let mut methods = Vec::new();
    loop {
        match client.read_frame(wait) {
            Incoming::Frame(frame) if frame.frame_type == FrameType::Method => {
                methods.push(Method::decode(&frame.payload).expect("method"));
            }
            Incoming::Frame(_) => {}
            Incoming::Timeout => return methods,
            Incoming::Closed => panic!("the broker closed the connection"),
        }
    }
}

/// An amqprs consumer takes `count` messages from the queue and acks them; their bodies.
async fn consume_bodies(broker: &Broker, count: usize) -> Vec<String> {
    let client = Client::connect(broker).await;
    let (channel, _events) = client.channel().await;
    let mut deliveries = consume(&channel, QUEUE, false).await;
    let mut bodies = Vec::new();
    for _ in 0..count {
        let delivery = deliveries.next().await;
        bodies.push(String::from_utf8(delivery.body).expect("utf-8"));
        within(
            "basic.ack",
            channel.basic_ack(BasicAckArguments::new(delivery.delivery_tag, false)),
        )
        .await
        .expect("ack");
    }
    bodies
}

async fn ready_messages(broker: &Broker) -> u32 {
    let client = Client::connect(broker).await;
    let (channel, _events) = client.channel().await;
    let (_, ready, _) = within(
        "passive declare",
        channel.queue_declare(QueueDeclareArguments::new(QUEUE).passive(true).finish()),
    )
    .await
    .expect("passive declare")
    .expect("declare-ok");
    ready
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_below_the_limit_blocks_publishers_and_consumers_still_drain() {
    let broker = Broker::start_with(1, &["--disk-free-limit", HUGE_LIMIT]);
    let stats = node(&broker);
    assert_eq!(stats["disk_free_limit"], 1_000_000_000_000_000_000_u64);
    assert_eq!(stats["disk_free_alarm"], true, "{stats}");
    assert_eq!(stats["storage_alarm"], false, "{stats}");
    assert_eq!(stats["mem_alarm"], false, "{stats}");

    let (mut publisher, blocked) = tokio::task::block_in_place(|| raw_publisher(&broker));
    assert_eq!(blocked, vec!["low on disk".to_owned()]);
    // The first publish during the alarm is taken; after it the connection is not read.
    tokio::task::block_in_place(|| {
        publisher.publish(1, QUEUE, b"first");
        publisher.publish(1, QUEUE, b"second");
    });
    assert_eq!(consume_bodies(&broker, 1).await, vec!["first"]);
    // The second publish waits in the socket: the queue stays empty, and the consumer's
    // connection, which does not publish, keeps working.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ready_messages(&broker).await, 0);
    let (_, connections) = get(&broker, "/api/connections");
    let states: Vec<&str> = connections
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|connection| connection["state"].as_str())
        .collect();
    assert!(states.contains(&"blocked"), "{states:?}");

    let (status, health) = get(&broker, "/api/health/checks/alarms");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["alarms"][0]["resource"], "disk", "{health}");
    let text = metrics(&broker);
    assert!(
        text.contains("\nrabbitmq_alarms_free_disk_space_watermark 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\nrabbitmq_alarms_memory_used_watermark 0\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_and_disk_alarms_together_are_both_named() {
    let broker = Broker::start_with(
        1,
        &[
            "--disk-free-limit",
            HUGE_LIMIT,
            "--vm-memory-high-watermark-bytes",
            "1MiB",
        ],
    );
    let stats = node(&broker);
    assert_eq!(stats["mem_limit"], 1 << 20);
    assert_eq!(stats["mem_alarm"], true, "{stats}");
    let (mut publisher, blocked) = tokio::task::block_in_place(|| raw_publisher(&broker));
    assert_eq!(blocked, vec!["low on memory & low on disk".to_owned()]);
    tokio::task::block_in_place(|| publisher.publish(1, QUEUE, b"only"));
    assert_eq!(consume_bodies(&broker, 1).await, vec!["only"]);

    let (status, health) = get(&broker, "/api/health/checks/alarms");
    assert_eq!(status, 503, "{health}");
    let resources: Vec<&str> = health["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .filter_map(|alarm| alarm["resource"].as_str())
        .collect();
    assert_eq!(resources, vec!["memory", "disk"], "{health}");
    assert!(
        metrics(&broker).contains("\nrabbitmq_alarms_memory_used_watermark 1\n"),
        "memory alarm metric"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_above_the_limit_blocks_nobody() {
    let broker = Broker::start_with(1, &["--disk-free-limit", "1MB"]);
    let stats = node(&broker);
    assert_eq!(stats["disk_free_limit"], 1_000_000);
    assert_eq!(stats["disk_free_alarm"], false, "{stats}");
    let (mut publisher, blocked) = tokio::task::block_in_place(|| raw_publisher(&broker));
    assert!(blocked.is_empty(), "{blocked:?}");
    tokio::task::block_in_place(|| {
        publisher.publish(1, QUEUE, b"first");
        publisher.publish(1, QUEUE, b"second");
    });
    assert_eq!(consume_bodies(&broker, 2).await, vec!["first", "second"]);
    let notices =
        tokio::task::block_in_place(|| methods_within(&mut publisher, Duration::from_millis(200)));
    assert!(notices.is_empty(), "{notices:?}");
    let (status, _) = get(&broker, "/api/health/checks/alarms");
    assert_eq!(status, 200);
}

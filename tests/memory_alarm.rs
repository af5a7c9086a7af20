//! The memory alarm under a transient flood (docs/ARCHITECTURE.md, Alarms): publishers
//! flooding 64 KiB transient messages into 32 queues nobody consumes, several times the
//! watermark in all, are blocked before the broker's resident memory goes far past the
//! watermark; the broker stays up; a consumer then drains every message, each exactly once;
//! the alarm clears and the publishers finish. The flood is spread over queues because each
//! keeps only the bodies of its head in RAM (8 MiB) and pages the rest to the log: 32 heads
//! add up past the watermark, one queue's backlog would not (tests/transient_paging.rs). And
//! a queued large body costs about its own size in RSS (docs/ARCHITECTURE.md, Socket and
//! frames).

mod client;
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments,
    QueueDeclareArguments,
};
use amqprs::BasicProperties;
use client::{within, Client};
use common::http::{basic, exchange};
use common::memory::{rss, RssWatch};
use common::raw::{Incoming, RawClient};
use common::Broker;
use hare::protocol::{ConnectionClose, FrameType, Method, ShortStr};
use serde_json::Value;

const WATERMARK: u64 = 128 << 20;
const BODY_BYTES: usize = 64 * 1024;
/// Messages of each amqprs publisher: two of them publish 512 MiB, four times the watermark.
const PER_PUBLISHER: usize = 4096;
/// Messages of the raw publisher, which announces the `connection.blocked` capability
/// (amqprs does not) and so sees the notifications.
const RAW_MESSAGES: usize = 1024;
/// How far above the watermark resident memory may go. The alarm is measured every 10 ms, and
/// each publisher is stopped after the message it is sending when it is raised: what the
/// broker reads in one period at the flood's rate (about 10 MB), a partly read message and a
/// read buffer per connection, and, while the consumer drains, its unacknowledged deliveries
/// (`PREFETCH` × 64 KiB) and their copies in its output buffer, plus the allocator's slack.
/// Measured in debug builds: 128–138 MiB while blocked, 135–145 MiB over the whole run. The
/// peaks are printed.
const MARGIN: u64 = 64 << 20;
/// Queues the flood is spread over, round robin by message number.
const QUEUES: usize = 32;
const PREFETCH: u16 = 100;

fn queue_of(n: usize) -> String {
    format!("flood-{}", n % QUEUES)
}

fn body(id: &str) -> Vec<u8> {
    let mut body = format!("{id:<32}").into_bytes();
    body.resize(BODY_BYTES, b'.');
    body
}

fn id_of(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..32]).trim_end().to_owned()
}

fn node(broker: &Broker) -> Value {
    common::http::node(broker.management)
}

/// Every queue's depth, for a failure's message.
fn queues(broker: &Broker) -> String {
    let authorization = basic("guest", "guest");
    exchange(
        broker.management,
        "GET",
        "/api/queues?columns=name,messages,messages_unacknowledged",
        &[("authorization", &authorization)],
        b"",
    )
    .text
}

/// Publishes `count` messages `p{publisher}-{n}` through amqprs.
async fn publish_all(broker: &Broker, publisher: usize, count: usize) {
    let client = Client::connect(broker).await;
    let (channel, _events) = client.channel().await;
    for n in 0..count {
        let args = BasicPublishArguments::new("", &queue_of(n));
        channel
            .basic_publish(
                BasicProperties::default(),
                body(&format!("p{publisher}-{n}")),
                args,
            )
            .await
            .expect("publish");
    }
    // A round trip: every publish before it has been read (after the flood drained).
    channel
        .queue_declare(passive())
        .await
        .expect("passive declare");
    channel.close().await.expect("close publisher channel");
    client.connection.close().await.expect("close publisher");
}

fn passive() -> QueueDeclareArguments {
    QueueDeclareArguments::new(&queue_of(0))
        .passive(true)
        .finish()
}

/// What the raw publisher saw on channel 0 after its last publish.
struct Notices {
    blocked: Vec<String>,
    unblocked: usize,
}

/// Publishes `RAW_MESSAGES` messages `r-{n}` with the raw client, then closes the connection,
/// collecting the connection.blocked and connection.unblocked the broker sent meanwhile.
fn publish_raw(broker: &Broker) -> Notices {
    let mut client = RawClient::open(broker.addr);
    // Writes wait while the broker holds this connection: as long as the flood lasts.
    client
        .stream
        .set_write_timeout(Some(Duration::from_secs(120)))
        .expect("write timeout");
    client.open_channel(1);
    for n in 0..RAW_MESSAGES {
        client.publish(1, &queue_of(n), &body(&format!("r-{n}")));
    }
    // Closing is the round trip that proves every publish was read (a socket closed with
    // unread input is reset, and the broker would lose what it had not read yet).
    client.send_method(
        0,
        ConnectionClose {
            reply_code: 200,
            reply_text: ShortStr::from_static("done"),
            class_id: 0,
            method_id: 0,
        },
    );
    let mut notices = Notices {
        blocked: Vec::new(),
        unblocked: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match client.read_frame(Duration::from_secs(5)) {
            Incoming::Frame(frame) if frame.frame_type == FrameType::Method => {
                match Method::decode(&frame.payload).expect("method") {
                    Method::ConnectionBlocked(blocked) => {
                        notices.blocked.push(blocked.reason.to_string_lossy());
                    }
                    Method::ConnectionUnblocked(_) => notices.unblocked += 1,
                    Method::ConnectionCloseOk(_) => return notices,
                    other => panic!("unexpected {other:?}"),
                }
            }
            Incoming::Frame(_) | Incoming::Timeout => {}
            Incoming::Closed => panic!("the broker closed the raw publisher"),
        }
    }
    panic!("no connection.close-ok within 120 s");
}

/// Waits until `/api/nodes` says the memory alarm is `raised`.
async fn until_alarm(broker: &Broker, raised: bool) {
    let started = Instant::now();
    while node(broker)["mem_alarm"] != raised {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mem_alarm never became {raised}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Consumes until `total` messages arrived, acking every 50; the ids received.
async fn drain(broker: &Broker, total: usize) -> Vec<String> {
    let client = Client::connect(broker).await;
    let (channel, _events) = client.channel().await;
    channel
        .basic_qos(BasicQosArguments::new(0, PREFETCH, false))
        .await
        .expect("qos");
    // One channel consumes every queue, so a multiple ack covers them all.
    let (sender, mut deliveries) = tokio::sync::mpsc::unbounded_channel();
    for queue in 0..QUEUES {
        let (_, mut receiver) = channel
            .basic_consume_rx(BasicConsumeArguments::new(
                &queue_of(queue),
                &format!("drain-{queue}"),
            ))
            .await
            .expect("consume");
        let sender = sender.clone();
        tokio::spawn(async move {
            while let Some(message) = receiver.recv().await {
                if sender.send(message).is_err() {
                    return;
                }
            }
        });
    }
    drop(sender);
    let mut ids = Vec::with_capacity(total);
    let (mut highest, mut acked) = (0, 0);
    while ids.len() < total {
        let Ok(message) = tokio::time::timeout(Duration::from_secs(60), deliveries.recv()).await
        else {
            let stats = node(broker);
            panic!(
                "no delivery for 60 s after {} messages; RSS {} (alarm {}), queues {}",
                ids.len(),
                stats["mem_used"],
                stats["mem_alarm"],
                queues(broker)
            );
        };
        let Some(message) = message else {
            panic!(
                "the consumers ended after {} messages; queues {}",
                ids.len(),
                queues(broker)
            );
        };
        let body = message.content.expect("content");
        assert_eq!(body.len(), BODY_BYTES);
        ids.push(id_of(&body));
        // The merged streams interleave the consumers' deliveries out of tag order: a
        // multiple ack covers the highest tag seen, and every tag is eventually the highest.
        highest = highest.max(message.deliver.expect("deliver").delivery_tag());
        if (ids.len() % 50 == 0 || ids.len() == total) && highest > acked {
            channel
                .basic_ack(BasicAckArguments::new(highest, true))
                .await
                .expect("ack");
            acked = highest;
        }
    }
    client.connection.close().await.expect("close consumer");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transient_flood_is_blocked_under_the_watermark_and_drains_without_loss() {
    let watermark = WATERMARK.to_string();
    let broker = Arc::new(Broker::start_with(
        2,
        &["--vm-memory-high-watermark-bytes", &watermark],
    ));
    assert_eq!(node(&broker)["mem_limit"], WATERMARK);
    assert_eq!(node(&broker)["mem_alarm"], false);
    let watch = RssWatch::start(broker.pid());
    {
        let client = Client::connect(&broker).await;
        let (channel, _events) = client.channel().await;
        for queue in 0..QUEUES {
            channel
                .queue_declare(QueueDeclareArguments::new(&queue_of(queue)))
                .await
                .expect("declare");
        }
        client.connection.close().await.expect("close");
    }

    let publishers: Vec<_> = (0..2)
        .map(|publisher| {
            let broker = broker.clone();
            tokio::spawn(async move { publish_all(&broker, publisher, PER_PUBLISHER).await })
        })
        .collect();
    let raw = {
        let broker = broker.clone();
        tokio::task::spawn_blocking(move || publish_raw(&broker))
    };

    until_alarm(&broker, true).await;
    // Hold the flood against the alarm for a while: memory must stay bounded.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_peak = watch.peak();
    eprintln!(
        "peak RSS while blocked: {} MiB (watermark {} MiB)",
        held_peak >> 20,
        WATERMARK >> 20
    );
    assert!(
        held_peak <= WATERMARK + MARGIN,
        "RSS reached {held_peak} bytes, over the watermark {WATERMARK} + {MARGIN}"
    );
    let stats = node(&broker);
    assert_eq!(stats["mem_alarm"], true, "{stats}");

    let total = 2 * PER_PUBLISHER + RAW_MESSAGES;
    let ids = drain(&broker, total).await;
    for publisher in publishers {
        within("publisher", publisher)
            .await
            .expect("publisher task");
    }
    let notices = within("raw publisher", raw).await.expect("raw publisher");

    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        total,
        "duplicates among {} deliveries",
        ids.len()
    );
    for publisher in 0..2 {
        for n in 0..PER_PUBLISHER {
            assert!(
                unique.contains(&format!("p{publisher}-{n}")),
                "lost p{publisher}-{n}"
            );
        }
    }
    for n in 0..RAW_MESSAGES {
        assert!(unique.contains(&format!("r-{n}")), "lost r-{n}");
    }
    assert!(
        !notices.blocked.is_empty(),
        "the raw publisher never got connection.blocked"
    );
    assert!(
        notices
            .blocked
            .iter()
            .all(|reason| reason == "low on memory"),
        "{:?}",
        notices.blocked
    );
    // The alarm flaps while the flood drains; one raised after the last clear may come
    // before close-ok.
    assert!(
        notices.unblocked >= 1 && notices.blocked.len() - notices.unblocked <= 1,
        "{} connection.blocked, {} connection.unblocked",
        notices.blocked.len(),
        notices.unblocked
    );
    until_alarm(&broker, false).await;
    let peak = watch.peak();
    eprintln!("peak RSS over the whole run: {} MiB", peak >> 20);
    assert!(
        peak <= WATERMARK + MARGIN,
        "RSS reached {peak} bytes, over the watermark {WATERMARK} + {MARGIN}"
    );
}

/// A body whose every byte depends on its id and position, to check it arrives intact.
fn patterned(id: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 7 + id * 13) % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_large_body_costs_about_its_own_size() {
    // 16 queues of 64: each keeps its 4 MiB of bodies in RAM (its resident head), so RSS
    // measures what a resident body costs rather than paging.
    const QUEUE_COUNT: usize = 16;
    const PER_QUEUE: usize = 64;
    const MESSAGES: usize = QUEUE_COUNT * PER_QUEUE;
    let queue = |n: usize| format!("large-{}", n % QUEUE_COUNT);
    let broker = Broker::start_with(1, &[]);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    for n in 0..QUEUE_COUNT {
        channel
            .queue_declare(QueueDeclareArguments::new(&queue(n)))
            .await
            .expect("declare");
    }
    let before = rss(broker.pid());
    for id in 0..MESSAGES {
        let args = BasicPublishArguments::new("", &queue(id));
        channel
            .basic_publish(BasicProperties::default(), patterned(id, BODY_BYTES), args)
            .await
            .expect("publish");
    }
    for n in 0..QUEUE_COUNT {
        client::until_ready(&channel, &queue(n), PER_QUEUE as u32).await;
    }
    let grown = rss(broker.pid()).saturating_sub(before);
    let held = (MESSAGES * BODY_BYTES) as u64;
    eprintln!(
        "RSS grew {} KiB for {} KiB of bodies: {:.2}",
        grown >> 10,
        held >> 10,
        grown as f64 / held as f64
    );
    // Sliced from shared reads, each body pinned about 1.6 times its size.
    assert!(
        grown < held * 5 / 4,
        "RSS grew {grown} bytes for {held} bytes of bodies"
    );

    // Sizes around the own-allocation threshold and bodies split over several frames arrive
    // intact.
    let sizes = [16 * 1024 - 1, 16 * 1024, 100 * 1024, 300 * 1024];
    for (n, size) in sizes.iter().enumerate() {
        let args = BasicPublishArguments::new("", &queue(0));
        channel
            .basic_publish(
                BasicProperties::default(),
                patterned(MESSAGES + n, *size),
                args,
            )
            .await
            .expect("publish");
    }
    for n in 0..QUEUE_COUNT {
        let mut deliveries = client::consume(&channel, &queue(n), true).await;
        for id in (n..MESSAGES).step_by(QUEUE_COUNT) {
            assert_eq!(
                deliveries.next().await.body,
                patterned(id, BODY_BYTES),
                "body {id}"
            );
        }
        if n == 0 {
            for (extra, size) in sizes.iter().enumerate() {
                let body = deliveries.next().await.body;
                assert_eq!(body.len(), *size);
                assert_eq!(
                    body,
                    patterned(MESSAGES + extra, *size),
                    "body of {size} bytes"
                );
            }
        }
    }
}

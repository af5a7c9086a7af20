//! Crash rounds: a 2-shard broker takes numbered persistent messages from a confirming
//! publisher (window of 100 unconfirmed) and is SIGKILLed at a random moment; a new broker on
//! the same data directory must give back every confirmed message exactly once, in publish
//! order, marked redelivered, and nothing that was never published. Unconfirmed messages may or
//! may not be there (counted). The second variant also acks (multiple) half of what a consumer
//! received, makes the acks durable with one more confirmed publish, and checks that no acked
//! message comes back.
//!
//! Seeded: the seed is printed; `HARE_CRASH_SEED=<seed>` replays a run's delays.

mod client;
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amqprs::channel::{BasicAckArguments, BasicPublishArguments, Channel, QueueDeclareArguments};
use amqprs::BasicProperties;
use client::{consume, declare, within, Client, Event, Events};
use common::Broker;

const ROUNDS: usize = 5;
const WINDOW: u64 = 100;
const QUEUE: &str = "crash";
const SHARDS: usize = 2;

fn seed() -> u64 {
    let seed = match std::env::var("HARE_CRASH_SEED") {
        Ok(text) => text.trim().parse().expect("HARE_CRASH_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    };
    println!("crash seed {seed} (HARE_CRASH_SEED={seed} replays it)");
    seed
}

fn body_of(n: u64) -> Vec<u8> {
    n.to_string().repeat((n % 40 + 1) as usize).into_bytes()
}

/// What the publisher did: `confirmed[n]` for n in 1..=sent.
struct Published {
    sent: u64,
    confirmed: Vec<bool>,
}

/// Publishes messages 1, 2, 3… (message id and delivery tag = n) with at most `WINDOW`
/// unconfirmed, recording confirms, until the task is aborted.
async fn publish_forever(channel: Channel, mut events: Events, state: Arc<Mutex<Published>>) {
    let mut settled = 0u64;
    let mut next = 1u64;
    loop {
        while next - 1 - settled < WINDOW {
            let properties = BasicProperties::default()
                .with_persistence(true)
                .with_message_id(&next.to_string())
                .finish();
            let args = BasicPublishArguments::new("", QUEUE);
            within(
                "basic.publish",
                channel.basic_publish(properties, body_of(next), args),
            )
            .await
            .expect("basic.publish");
            {
                let mut state = state.lock().expect("state lock");
                state.sent = next;
                state.confirmed.push(false);
            }
            next += 1;
        }
        match events.next().await {
            Event::Ack { tag, multiple } => {
                let mut state = state.lock().expect("state lock");
                assert!((1..=state.sent).contains(&tag), "ack of unknown tag {tag}");
                let first = if multiple { 1 } else { tag };
                state.confirmed[first as usize..=tag as usize].fill(true);
                while settled < state.sent && state.confirmed[settled as usize + 1] {
                    settled += 1;
                }
            }
            other => panic!("publisher got {other:?}"),
        }
    }
}

/// Consumes `count` messages, acks the first half with one multiple ack, then publishes one
/// more persistent message on the same channel and waits for its confirm: that fdatasync
/// covers the ack record. Returns the acked message numbers.
async fn ack_half_durably(channel: &Channel, events: &mut Events, count: u64) -> Vec<u64> {
    let mut deliveries = consume(channel, QUEUE, false).await;
    let mut acked = Vec::new();
    let mut last_tag = 0;
    for _ in 0..count.div_ceil(2) {
        let delivery = deliveries.next().await;
        let id = delivery.properties.message_id().expect("message id");
        acked.push(id.parse().expect("numbered message"));
        last_tag = delivery.delivery_tag;
    }
    if last_tag > 0 {
        let ack = BasicAckArguments::new(last_tag, true);
        within("basic.ack", channel.basic_ack(ack))
            .await
            .expect("basic.ack");
    }
    let marker = BasicProperties::default()
        .with_persistence(true)
        .with_message_id("marker")
        .finish();
    let args = BasicPublishArguments::new("", QUEUE);
    within(
        "basic.publish",
        channel.basic_publish(marker, b"marker".to_vec(), args),
    )
    .await
    .expect("basic.publish marker");
    let others = events.confirmed(1).await;
    assert!(others.is_empty(), "unexpected events {others:?}");
    acked
}

#[derive(Debug)]
struct Summary {
    confirmed: u64,
}

async fn round(index: usize, rng: &mut fastrand::Rng, with_acks: bool) -> Summary {
    let broker = Broker::start(SHARDS);
    let publisher = Client::connect(&broker).await;
    let (channel, events) = publisher.channel().await;
    declare(&channel, QueueDeclareArguments::durable_client_named(QUEUE)).await;
    within("confirm.select", channel.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let consumer = Client::connect(&broker).await;
    let (consume_channel, mut consume_events) = consumer.channel().await;
    within(
        "confirm.select",
        consume_channel.confirm_select(Default::default()),
    )
    .await
    .expect("confirm.select");

    let state = Arc::new(Mutex::new(Published {
        sent: 0,
        confirmed: vec![true],
    }));
    let task = tokio::spawn(publish_forever(channel, events, state.clone()));
    let delay = rng.u64(50..=300);
    // The random crash point: the one sleep this test is about.
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let acked = if with_acks {
        let confirmed = {
            let state = state.lock().expect("state lock");
            state.confirmed[1..].iter().filter(|c| **c).count() as u64
        };
        ack_half_durably(&consume_channel, &mut consume_events, confirmed).await
    } else {
        Vec::new()
    };
    // Stop the publisher first so it does not see its connection die, then kill the broker.
    task.abort();
    let data_dir = broker.kill9();
    let (sent, confirmed) = {
        let state = state.lock().expect("state lock");
        (state.sent, state.confirmed.clone())
    };

    let broker = Broker::start_in(&data_dir, SHARDS);
    let client = Client::connect(&broker).await;
    let (check, _events) = client.channel().await;
    let passive = QueueDeclareArguments::new(QUEUE).passive(true).finish();
    let (_, recovered, _) = within("passive declare", check.queue_declare(passive))
        .await
        .expect("durable queue recovered")
        .expect("declare-ok");
    let ReadBack {
        seen,
        markers,
        duplicates,
    } = read_back(&check, recovered, sent, &confirmed).await;
    if with_acks {
        assert_eq!(markers, 1, "the confirmed marker came back once");
    }
    let mut was_acked = vec![false; sent as usize + 1];
    for n in &acked {
        assert_eq!(seen[*n as usize], 0, "acked message {n} came back");
        was_acked[*n as usize] = true;
    }
    let mut confirmed_count = 0;
    let mut unconfirmed_present = 0;
    for n in 1..=sent as usize {
        if confirmed[n] {
            confirmed_count += 1;
            if !was_acked[n] {
                assert_eq!(seen[n], 1, "confirmed message {n} was lost");
            }
        } else if seen[n] > 0 {
            unconfirmed_present += 1;
        }
    }
    println!(
        "round {index}: delay {delay} ms, published {sent}, confirmed {confirmed_count}, \
         acked {}, recovered {recovered}, duplicates {duplicates}, \
         unconfirmed present {unconfirmed_present}",
        acked.len()
    );
    Summary {
        confirmed: confirmed_count,
    }
}

async fn rounds(with_acks: bool) {
    let mut rng = fastrand::Rng::with_seed(seed());
    let mut confirmed = 0;
    for index in 0..ROUNDS {
        confirmed += round(index, &mut rng, with_acks).await.confirmed;
    }
    assert!(
        confirmed > 0,
        "no round got a single confirm before the kill"
    );
}

#[tokio::test]
async fn confirmed_messages_survive_kill_9_at_a_random_point() {
    rounds(false).await;
}

#[tokio::test]
async fn durably_acked_messages_do_not_come_back_after_kill_9() {
    rounds(true).await;
}

/// What a recovered queue gave back: how often each numbered message came, the markers, and
/// the duplicates (never of a confirmed message).
struct ReadBack {
    seen: Vec<u32>,
    markers: u32,
    duplicates: u32,
}

/// Consumes the `recovered` messages, checking each against what was published: redelivered,
/// published, the right body, in order, and no confirmed message twice.
async fn read_back(check: &Channel, recovered: u32, sent: u64, confirmed: &[bool]) -> ReadBack {
    let mut deliveries = consume(check, QUEUE, true).await;
    let mut seen = vec![0u32; sent as usize + 1];
    let mut markers = 0;
    let mut previous = 0;
    let mut duplicates = 0;
    for _ in 0..recovered {
        let delivery = deliveries.next().await;
        assert!(delivery.redelivered, "recovered messages are redelivered");
        let id = delivery
            .properties
            .message_id()
            .expect("message id")
            .clone();
        if id == "marker" {
            markers += 1;
            continue;
        }
        let n: u64 = id.parse().expect("numbered message");
        assert!((1..=sent).contains(&n), "message {n} was never published");
        assert_eq!(delivery.body, body_of(n), "body of message {n}");
        seen[n as usize] += 1;
        if seen[n as usize] > 1 {
            assert!(
                !confirmed[n as usize],
                "confirmed message {n} came back twice"
            );
            duplicates += 1;
        } else {
            assert!(n > previous, "message {n} came back after {previous}");
            previous = n;
        }
    }
    ReadBack {
        seen,
        markers,
        duplicates,
    }
}

//! The Prometheus endpoint, black box: the real broker (tests/common), state made with a real
//! AMQP client (amqprs, tests/client), scrapes with an HTTP client we did not write (ureq).

mod client;
mod common;

use std::time::{Duration, Instant};

use amqprs::channel::{BasicAckArguments, QueueDeclareArguments};
use client::{confirm_select, consume, declare, get, publish, within, Client};
use common::http::exchange;
use common::Broker;

/// A scrape's status, Content-Type and body.
struct Scrape {
    status: u16,
    content_type: String,
    body: String,
}

/// `method path` on the metrics port, without credentials.
fn scrape_with(broker: &Broker, method: &str, path: &str) -> Scrape {
    let answer = exchange(broker.metrics, method, path, &[], &[]);
    Scrape {
        status: answer.status,
        content_type: answer.header("content-type").unwrap_or_default(),
        body: answer.text,
    }
}

fn scrape(broker: &Broker, path: &str) -> String {
    let scrape = scrape_with(broker, "GET", path);
    assert_eq!(scrape.status, 200, "GET {path}: {}", scrape.body);
    scrape.body
}

/// The value of the sample `series` (name and labels exactly as written), if there is one.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// Waits (up to 10 s) until every `(series, value)` of `path` holds; returns the last body.
async fn until(broker: &Broker, path: &str, expected: &[(&str, f64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = scrape(broker, path);
        let missing: Vec<_> = expected
            .iter()
            .filter(|(series, wanted)| value(&body, series) != Some(*wanted))
            .collect();
        if missing.is_empty() {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{missing:?} not reached on {path}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_values_follow_declares_publishes_and_acks() {
    let broker = Broker::start(2);
    let empty = scrape(&broker, "/metrics");
    assert_eq!(value(&empty, "rabbitmq_queues"), Some(0.0));
    assert_eq!(value(&empty, "rabbitmq_connections"), Some(0.0));

    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    confirm_select(&channel).await;
    declare(&channel, QueueDeclareArguments::new("m1").finish()).await;
    declare(&channel, QueueDeclareArguments::new("m2").finish()).await;
    for _ in 0..3 {
        publish(&channel, "", "m1", b"body").await;
    }
    publish(&channel, "", "m2", b"body").await;
    events.confirmed(4).await;
    until(
        &broker,
        "/metrics",
        &[
            ("rabbitmq_queues", 2.0),
            ("rabbitmq_connections", 1.0),
            ("rabbitmq_channels", 1.0),
            ("rabbitmq_queue_messages_ready", 4.0),
            ("rabbitmq_queue_messages", 4.0),
            ("rabbitmq_channel_messages_published_total", 4.0),
            ("rabbitmq_channel_messages_confirmed_total", 4.0),
            (
                "rabbitmq_global_messages_received_total{protocol=\"amqp091\"}",
                4.0,
            ),
            (
                "rabbitmq_global_messages_routed_total{protocol=\"amqp091\"}",
                4.0,
            ),
            ("rabbitmq_connections_opened_total", 1.0),
        ],
    )
    .await;
    until(
        &broker,
        "/metrics/per-object",
        &[
            (
                "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"m1\"}",
                3.0,
            ),
            (
                "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"m2\"}",
                1.0,
            ),
        ],
    )
    .await;

    // Three deliveries acknowledged and one get, then the channel closes: the per-channel sums
    // go with it, the global counters stay.
    let mut deliveries = consume(&channel, "m1", false).await;
    for _ in 0..3 {
        let delivery = deliveries.next().await;
        within(
            "basic.ack",
            channel.basic_ack(BasicAckArguments::new(delivery.delivery_tag, false)),
        )
        .await
        .expect("basic.ack");
    }
    assert!(get(&channel, "m2", true).await.is_some());
    until(
        &broker,
        "/metrics",
        &[
            ("rabbitmq_queue_messages", 0.0),
            ("rabbitmq_consumers", 1.0),
            ("rabbitmq_channel_messages_acked_total", 3.0),
            ("rabbitmq_channel_messages_delivered_ack_total", 3.0),
            ("rabbitmq_channel_get_total", 1.0),
        ],
    )
    .await;
    within("channel.close", channel.close())
        .await
        .expect("channel.close");
    let queue_type = "protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"";
    let acknowledged = format!("rabbitmq_global_messages_acknowledged_total{{{queue_type}}}");
    let delivered = format!("rabbitmq_global_messages_delivered_total{{{queue_type}}}");
    until(
        &broker,
        "/metrics",
        &[
            ("rabbitmq_channels", 0.0),
            ("rabbitmq_channels_closed_total", 1.0),
            ("rabbitmq_channel_messages_published_total", 0.0),
            (
                "rabbitmq_global_messages_received_total{protocol=\"amqp091\"}",
                4.0,
            ),
            (&acknowledged, 3.0),
            (&delivered, 4.0),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_needs_no_credentials_and_speaks_the_text_format() {
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(
        &channel,
        QueueDeclareArguments::new("a \"quoted\" name").finish(),
    )
    .await;

    let metrics = scrape_with(&broker, "GET", "/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(metrics
        .body
        .contains("# TYPE rabbitmq_queue_messages_ready gauge\n"));
    assert!(metrics
        .body
        .contains("rabbitmq_identity_info{rabbitmq_node=\"hare@"));

    let per_object = scrape(&broker, "/metrics/per-object");
    assert_eq!(
        value(
            &per_object,
            "rabbitmq_queue_messages{vhost=\"/\",queue=\"a \\\"quoted\\\" name\"}"
        ),
        Some(0.0),
        "{per_object}"
    );

    let detailed = scrape(
        &broker,
        "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F",
    );
    assert!(detailed.contains("rabbitmq_detailed_queue_messages_ready{vhost=\"/\""));
    assert!(!detailed.contains("rabbitmq_detailed_channel_"));

    assert_eq!(scrape_with(&broker, "GET", "/metrics/nope").status, 404);
    assert_eq!(scrape_with(&broker, "GET", "/api/overview").status, 404);
    assert_eq!(scrape_with(&broker, "POST", "/metrics").status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_churn_counts_declares_creations_and_deletions() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("kept").finish()).await;
    // A redeclare counts as a declare, not a creation; a deleted queue counts once.
    declare(&channel, QueueDeclareArguments::new("kept").finish()).await;
    declare(&channel, QueueDeclareArguments::new("gone").finish()).await;
    channel
        .queue_delete(amqprs::channel::QueueDeleteArguments::new("gone"))
        .await
        .expect("queue.delete");
    until(
        &broker,
        "/metrics",
        &[
            ("rabbitmq_queues_declared_total", 3.0),
            ("rabbitmq_queues_created_total", 2.0),
            ("rabbitmq_queues_deleted_total", 1.0),
        ],
    )
    .await;
}

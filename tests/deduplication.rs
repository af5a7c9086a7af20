//! Message deduplication as the rabbitmq-message-deduplication plugin offers it, from an amqprs
//! client: the `x-message-deduplication` exchange drops a message whose
//! `x-deduplication-header` it saw within its cache's TTL and size, across publishers on any
//! shard; a queue with `x-message-deduplication` refuses a value it holds until that message
//! leaves; invalid arguments are the plugin's 406s (docs/rabbitmq-compatibility.md §17).

mod client;
mod common;

use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicPublishArguments, Channel, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::{BasicProperties, FieldValue};
use client::{confirm_select, declare, drain, get, table, within, Client, Event, Events};
use common::Broker;

fn exchange_args(name: &str, arguments: &[(&str, FieldValue)]) -> ExchangeDeclareArguments {
    let mut declare = ExchangeDeclareArguments::new(name, "x-message-deduplication")
        .durable(true)
        .finish();
    declare.arguments = table(arguments);
    declare
}

/// Declares a deduplication exchange and a queue bound to it (any routing key: fanout).
async fn exchange_with_queue(channel: &Channel, name: &str, arguments: &[(&str, FieldValue)]) {
    within(
        "exchange.declare",
        channel.exchange_declare(exchange_args(name, arguments)),
    )
    .await
    .expect("exchange.declare");
    declare(channel, QueueDeclareArguments::durable_client_named(name)).await;
    let bind = QueueBindArguments::new(name, name, "ignored");
    within("queue.bind", channel.queue_bind(bind))
        .await
        .expect("queue.bind");
}

/// Properties with the deduplication header (and a per-message TTL if given).
fn tagged(value: &str, ttl_ms: Option<i64>) -> BasicProperties {
    let mut pairs = vec![("x-deduplication-header", FieldValue::from(value))];
    if let Some(ttl) = ttl_ms {
        pairs.push(("x-cache-ttl", FieldValue::l(ttl)));
    }
    BasicProperties::default()
        .with_headers(table(&pairs))
        .finish()
}

async fn publish(
    channel: &Channel,
    exchange: &str,
    properties: BasicProperties,
    body: &str,
    mandatory: bool,
) {
    // The deduplication exchanges ignore the key; the default exchange routes by it to "dq".
    let args = BasicPublishArguments::new(exchange, "dq")
        .mandatory(mandatory)
        .finish();
    within(
        "basic.publish",
        channel.basic_publish(properties, body.as_bytes().to_vec(), args),
    )
    .await
    .expect("basic.publish");
}

#[tokio::test]
async fn the_exchange_drops_duplicates_within_the_ttl() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let args = [
        ("x-cache-size", FieldValue::I(100)),
        ("x-cache-ttl", FieldValue::I(600)),
    ];
    exchange_with_queue(&channel, "dx", &args).await;
    publish(&channel, "dx", tagged("a", None), "a1", false).await;
    publish(&channel, "dx", tagged("a", None), "a2", false).await;
    publish(&channel, "dx", tagged("b", None), "b1", false).await;
    publish(&channel, "dx", BasicProperties::default(), "plain1", false).await;
    publish(&channel, "dx", BasicProperties::default(), "plain2", false).await;
    assert_eq!(
        drain(&channel, "dx").await,
        ["a1", "b1", "plain1", "plain2"]
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    publish(&channel, "dx", tagged("a", None), "a3", false).await;
    // A message's own x-cache-ttl replaces the exchange's.
    publish(&channel, "dx", tagged("c", Some(5000)), "c1", false).await;
    assert_eq!(drain(&channel, "dx").await, ["a3", "c1"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    publish(&channel, "dx", tagged("c", None), "c2", false).await;
    publish(&channel, "dx", tagged("a", None), "a4", false).await;
    assert_eq!(drain(&channel, "dx").await, ["a4"]);
}

#[tokio::test]
async fn a_full_cache_forgets_its_oldest_value() {
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    exchange_with_queue(
        &channel,
        "small",
        &[("x-cache-size", FieldValue::from("2"))],
    )
    .await;
    for value in ["a", "b", "c", "a", "c"] {
        publish(&channel, "small", tagged(value, None), value, false).await;
    }
    // c evicted a; a came back (evicting b), c was still there.
    assert_eq!(drain(&channel, "small").await, ["a", "b", "c", "a"]);
}

/// Two connections land on different shards; together they publish each value twice.
#[tokio::test]
async fn publishers_on_different_shards_share_one_cache() {
    let broker = Broker::start(2);
    let first = Client::connect(&broker).await;
    let second = Client::connect(&broker).await;
    let (one, _events_one) = first.channel().await;
    let (two, _events_two) = second.channel().await;
    exchange_with_queue(&one, "shared", &[("x-cache-size", FieldValue::I(1000))]).await;
    for n in 0..50 {
        let value = format!("v{n}");
        publish(&one, "shared", tagged(&value, None), "one", false).await;
        publish(&two, "shared", tagged(&value, None), "two", false).await;
    }
    // Let both connections' publishes land before counting.
    declare(&one, QueueDeclareArguments::durable_client_named("shared")).await;
    declare(&two, QueueDeclareArguments::durable_client_named("shared")).await;
    assert_eq!(drain(&one, "shared").await.len(), 50);
}

#[tokio::test]
async fn a_dropped_duplicate_is_confirmed_and_a_mandatory_one_returned() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    exchange_with_queue(&channel, "conf", &[("x-cache-size", FieldValue::I(10))]).await;
    confirm_select(&channel).await;
    publish(&channel, "conf", tagged("x", None), "first", true).await;
    publish(&channel, "conf", tagged("x", None), "second", true).await;
    let others = events.confirmed(2).await;
    assert!(
        matches!(&others[..], [Event::Returned { code: 312, body, .. }] if body == b"second"),
        "{others:?}"
    );
    assert_eq!(drain(&channel, "conf").await, ["first"]);
}

#[tokio::test]
async fn the_exchange_survives_a_restart_with_an_empty_cache() {
    let broker = Broker::start(2);
    {
        let client = Client::connect(&broker).await;
        let (channel, _events) = client.channel().await;
        exchange_with_queue(&channel, "kept", &[("x-cache-size", FieldValue::I(10))]).await;
        publish(&channel, "kept", tagged("a", None), "before", false).await;
        assert_eq!(drain(&channel, "kept").await, ["before"]);
    }
    let broker = broker.restart();
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    // Redeclaring with the same arguments is fine; the cache started empty.
    within(
        "exchange.declare",
        channel.exchange_declare(exchange_args(
            "kept",
            &[("x-cache-size", FieldValue::I(10))],
        )),
    )
    .await
    .expect("exchange.declare");
    publish(&channel, "kept", tagged("a", None), "after", false).await;
    publish(&channel, "kept", tagged("a", None), "again", false).await;
    assert_eq!(drain(&channel, "kept").await, ["after"]);
}

/// Whether publishes `first..=last` were acked (true) or nacked, from the events that confirm
/// them (earlier publishes were confirmed before).
async fn confirm_outcomes(events: &mut Events, first: u64, last: u64) -> Vec<bool> {
    let mut outcomes: Vec<Option<bool>> = vec![None; (last - first + 1) as usize];
    while outcomes.iter().any(Option::is_none) {
        let (tag, multiple, ok) = match events.next().await {
            Event::Ack { tag, multiple } => (tag, multiple, true),
            Event::Nack { tag, multiple } => (tag, multiple, false),
            other => panic!("unexpected {other:?}"),
        };
        let from = if multiple { first } else { tag };
        for number in from.max(first)..=tag.min(last) {
            outcomes[(number - first) as usize].get_or_insert(ok);
        }
    }
    outcomes.into_iter().map(|o| o.expect("all set")).collect()
}

#[tokio::test]
async fn a_deduplicating_queue_refuses_a_value_it_holds_until_it_is_acked() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    let args = table(&[("x-message-deduplication", FieldValue::t(true))]);
    declare(
        &channel,
        QueueDeclareArguments::new("dq").arguments(args).finish(),
    )
    .await;
    confirm_select(&channel).await;
    publish(&channel, "", tagged("a", None), "a1", false).await;
    publish(&channel, "", tagged("a", None), "a2", false).await;
    publish(&channel, "", tagged("b", None), "b1", false).await;
    publish(&channel, "", BasicProperties::default(), "plain", false).await;
    publish(&channel, "", BasicProperties::default(), "plain", false).await;
    assert_eq!(
        confirm_outcomes(&mut events, 1, 5).await,
        [true, false, true, true, true],
        "a duplicate is nacked"
    );

    let (first, _, body) = get(&channel, "dq", false).await.expect("a1");
    assert_eq!(body, b"a1");
    publish(&channel, "", tagged("a", None), "a3", false).await;
    assert_eq!(
        confirm_outcomes(&mut events, 6, 6).await,
        [false],
        "still unacked"
    );
    within(
        "basic.ack",
        channel.basic_ack(BasicAckArguments::new(first.delivery_tag(), false)),
    )
    .await
    .expect("basic.ack");
    publish(&channel, "", tagged("a", None), "a4", false).await;
    assert_eq!(
        confirm_outcomes(&mut events, 7, 7).await,
        [true],
        "acked: free again"
    );
    assert_eq!(drain(&channel, "dq").await, ["b1", "plain", "plain", "a4"]);
}

#[tokio::test]
async fn invalid_arguments_are_refused_with_the_plugins_406s() {
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    let cases: Vec<(Vec<(&str, FieldValue)>, &str)> = vec![
        (
            vec![],
            "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
        ),
        (
            vec![("x-cache-size", FieldValue::I(0))],
            "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
        ),
        (
            vec![("x-cache-size", FieldValue::I(5)), ("x-cache-ttl", FieldValue::from("soon"))],
            "PRECONDITION_FAILED - Invalid argument, 'x-cache-ttl' must be an integer greater than 0",
        ),
        (
            vec![("x-cache-size", FieldValue::I(5)), ("x-cache-persistence", FieldValue::from("tape"))],
            "PRECONDITION_FAILED - Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'",
        ),
    ];
    for (arguments, text) in cases {
        let (channel, mut events) = client.channel().await;
        let result = within(
            "exchange.declare",
            channel.exchange_declare(exchange_args("bad", &arguments)),
        )
        .await;
        assert!(result.is_err(), "{result:?}");
        events.expect_close(406, text).await;
    }
    let (channel, mut events) = client.channel().await;
    let args = table(&[("x-message-deduplication", FieldValue::from("yes"))]);
    let result = within(
        "queue.declare",
        channel.queue_declare(QueueDeclareArguments::new("bad").arguments(args).finish()),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - invalid arg 'x-message-deduplication' for queue 'bad' in vhost '/': {unacceptable_type,longstr}",
        )
        .await;
    client.assert_usable().await;
}

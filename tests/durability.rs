//! Durability, black box: the real `hare` binary is stopped (SIGTERM) or killed (SIGKILL) and
//! started again on the same data directory, and an amqprs client checks what came back.
//! Persistent messages in durable queues survive byte for byte with all their properties, in
//! order and marked redelivered; transient messages, non-durable and exclusive queues do not.
//! Durable exchanges, queues and bindings route as before; deletions, acks, rejects and purges
//! stay done. A confirm, a declare-ok and a tx.commit-ok each promise durability, so the tests
//! kill the broker right after one. The data directory lock and the shard count are checked
//! at start-up.

mod client;
mod common;
mod durable;

use amqprs::channel::{
    BasicAckArguments, BasicRejectArguments, Channel, ExchangeBindArguments,
    ExchangeDeclareArguments, ExchangeDeleteArguments, ExchangeUnbindArguments, QueueBindArguments,
    QueueDeclareArguments, QueueDeleteArguments, QueuePurgeArguments, QueueUnbindArguments,
};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use client::{consume, declare, within, Client, Event};
use common::Broker;
use durable::{
    assert_same_properties, close, exchange_exists, message_count, numbered, persistent,
    queue_exists, recovered_ids, restart, sample_messages, table, take_all, Confirming, Restart,
};

async fn persistent_messages_survive(how: Restart) {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let mut publisher = Confirming::open(&client).await;
    declare(
        &publisher.channel,
        QueueDeclareArguments::durable_client_named("keep"),
    )
    .await;
    declare(&publisher.channel, QueueDeclareArguments::new("temp")).await;
    let exclusive = QueueDeclareArguments::new("mine")
        .durable(true)
        .exclusive(true)
        .finish();
    declare(&publisher.channel, exclusive).await;
    let messages = sample_messages();
    for queue in ["keep", "temp", "mine"] {
        for (properties, body) in &messages {
            publisher.publish("", queue, properties, body).await;
        }
    }
    assert_eq!(publisher.wait_all().await, vec![]);
    close(client).await;

    let broker = restart(broker, how).await;
    let client = Client::connect(&broker).await;
    let expected: Vec<_> = messages
        .iter()
        .filter(|(properties, _)| properties.delivery_mode() == Some(2))
        .collect();
    assert_eq!(
        message_count(&client, "keep").await as usize,
        expected.len()
    );
    let (channel, _events) = client.channel().await;
    let mut deliveries = consume(&channel, "keep", false).await;
    for (properties, body) in expected {
        let what = properties.message_id().cloned().unwrap_or_default();
        let delivery = deliveries.next().await;
        assert!(
            delivery.redelivered,
            "{what}: recovered messages are redelivered"
        );
        assert_eq!(delivery.body.len(), body.len(), "{what}: body length");
        assert!(delivery.body == *body, "{what}: body differs");
        assert_same_properties(&delivery.properties, properties, &what);
    }
    assert!(
        !queue_exists(&client, "temp").await,
        "non-durable queue survived"
    );
    assert!(
        !queue_exists(&client, "mine").await,
        "exclusive queue survived"
    );
}

#[tokio::test]
async fn persistent_messages_survive_a_clean_restart_byte_for_byte() {
    persistent_messages_survive(Restart::Clean).await;
}

#[tokio::test]
async fn confirmed_persistent_messages_survive_kill_9_byte_for_byte() {
    persistent_messages_survive(Restart::Kill9).await;
}

async fn exchange(channel: &Channel, name: &str, kind: &str, durable: bool) {
    let args = ExchangeDeclareArguments::new(name, kind)
        .durable(durable)
        .finish();
    within("exchange.declare", channel.exchange_declare(args))
        .await
        .expect("exchange.declare");
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str, arguments: FieldTable) {
    let mut args = QueueBindArguments::new(queue, exchange, key);
    args.arguments = arguments;
    within("queue.bind", channel.queue_bind(args))
        .await
        .expect("queue.bind");
}

fn match_all() -> FieldTable {
    table(vec![
        ("x-match", FieldValue::from("all")),
        ("h", FieldValue::I(1)),
        ("g", FieldValue::from("v")),
    ])
}

const DURABLE_EXCHANGES: [(&str, &str); 5] = [
    ("d.direct", "direct"),
    ("d.fanout", "fanout"),
    ("d.topic", "topic"),
    ("d.headers", "headers"),
    ("d.e2e", "direct"),
];
const DURABLE_QUEUES: [&str; 5] = ["q.direct", "q.fanout", "q.topic", "q.headers", "q.amq"];

/// Publishes one message along every durable route (and some that must not route) and checks
/// where each went.
async fn check_routes(client: &Client) {
    let mut publisher = Confirming::open(client).await;
    let headers = |pairs| {
        BasicProperties::default()
            .with_headers(table(pairs))
            .finish()
    };
    let plain = BasicProperties::default();
    let all = headers(vec![("h", FieldValue::I(1)), ("g", FieldValue::from("v"))]);
    let partial = headers(vec![("h", FieldValue::I(1))]);
    let sends = [
        ("d.direct", "k", &plain, "direct"),
        ("d.direct", "unbound", &plain, "-"),
        ("d.fanout", "anything", &plain, "fanout"),
        ("d.topic", "a.b.c", &plain, "topic"),
        ("d.topic", "a.b", &plain, "-"),
        ("d.headers", "h-all", &all, "headers"),
        ("d.headers", "h-partial", &partial, "-"),
        ("d.e2e", "e2e", &plain, "e2e"),
        ("d.e2e", "gone", &plain, "-"),
        ("amq.topic", "news.today", &plain, "amq"),
    ];
    for (exchange, key, properties, body) in sends {
        publisher
            .publish(exchange, key, properties, body.as_bytes())
            .await;
    }
    let returned: Vec<String> = publisher
        .wait_all()
        .await
        .into_iter()
        .map(|event| match event {
            Event::Returned { routing_key, .. } => routing_key,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        returned,
        ["unbound", "a.b", "h-partial", "gone"],
        "unroutable"
    );
    let channel = &publisher.channel;
    assert_eq!(take_all(channel, "q.direct").await, ["direct"]);
    assert_eq!(take_all(channel, "q.fanout").await, ["fanout", "e2e"]);
    assert_eq!(take_all(channel, "q.topic").await, ["topic"]);
    assert_eq!(take_all(channel, "q.headers").await, ["headers"]);
    assert_eq!(take_all(channel, "q.amq").await, ["amq"]);
}

#[tokio::test]
async fn durable_definitions_survive_kill_9_and_deletions_stay_deleted() {
    durable_definitions_survive(Restart::Kill9).await;
}

#[tokio::test]
async fn durable_definitions_survive_a_clean_restart_and_deletions_stay_deleted() {
    durable_definitions_survive(Restart::Clean).await;
}

async fn durable_definitions_survive(how: Restart) {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    for (name, kind) in DURABLE_EXCHANGES {
        exchange(&channel, name, kind, true).await;
    }
    for queue in DURABLE_QUEUES {
        declare(&channel, QueueDeclareArguments::durable_client_named(queue)).await;
    }
    let none = FieldTable::new;
    bind(&channel, "q.direct", "d.direct", "k", none()).await;
    bind(&channel, "q.fanout", "d.fanout", "", none()).await;
    bind(&channel, "q.topic", "d.topic", "a.*.c", none()).await;
    bind(&channel, "q.headers", "d.headers", "", match_all()).await;
    bind(&channel, "q.amq", "amq.topic", "news.#", none()).await;
    let e2e = ExchangeBindArguments::new("d.fanout", "d.e2e", "e2e");
    within("exchange.bind", channel.exchange_bind(e2e))
        .await
        .expect("exchange.bind");

    // Non-durable things, bound to and from durable ones.
    exchange(&channel, "t.direct", "direct", false).await;
    bind(&channel, "q.direct", "t.direct", "t", none()).await;
    declare(&channel, QueueDeclareArguments::new("t.queue")).await;
    bind(&channel, "t.queue", "d.direct", "k", none()).await;

    // Durable things deleted again.
    declare(
        &channel,
        QueueDeclareArguments::durable_client_named("gone.q"),
    )
    .await;
    within(
        "queue.delete",
        channel.queue_delete(QueueDeleteArguments::new("gone.q")),
    )
    .await
    .expect("queue.delete");
    exchange(&channel, "gone.x", "direct", true).await;
    bind(&channel, "q.direct", "gone.x", "gx", none()).await;
    within(
        "exchange.delete",
        channel.exchange_delete(ExchangeDeleteArguments::new("gone.x")),
    )
    .await
    .expect("exchange.delete");
    bind(&channel, "q.direct", "d.direct", "unbound", none()).await;
    let unbind = QueueUnbindArguments::new("q.direct", "d.direct", "unbound");
    within("queue.unbind", channel.queue_unbind(unbind))
        .await
        .expect("queue.unbind");
    let e2e_gone = ExchangeBindArguments::new("d.fanout", "d.e2e", "gone");
    within("exchange.bind", channel.exchange_bind(e2e_gone))
        .await
        .expect("exchange.bind");
    let unbind = ExchangeUnbindArguments::new("d.fanout", "d.e2e", "gone");
    within("exchange.unbind", channel.exchange_unbind(unbind))
        .await
        .expect("exchange.unbind");
    check_routes(&client).await;
    close(client).await;

    let mut broker = broker;
    // Twice, so what was recovered is also what is written again.
    for how in [how, Restart::Kill9] {
        broker = restart(broker, how).await;
        let client = Client::connect(&broker).await;
        check_routes(&client).await;
        assert!(!exchange_exists(&client, "t.direct").await);
        assert!(!queue_exists(&client, "t.queue").await);
        assert!(!queue_exists(&client, "gone.q").await);
        assert!(!exchange_exists(&client, "gone.x").await);
        // Kind and durability were kept: an identical redeclare is accepted.
        let (channel, _events) = client.channel().await;
        for (name, kind) in DURABLE_EXCHANGES {
            exchange(&channel, name, kind, true).await;
        }
        for queue in DURABLE_QUEUES {
            declare(&channel, QueueDeclareArguments::durable_client_named(queue)).await;
        }
        close(client).await;
    }
}

#[tokio::test]
async fn unacked_messages_come_back_redelivered_and_settled_ones_do_not() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let mut confirming = Confirming::open(&client).await;
    declare(
        &confirming.channel,
        QueueDeclareArguments::durable_client_named("work"),
    )
    .await;
    declare(
        &confirming.channel,
        QueueDeclareArguments::durable_client_named("sync"),
    )
    .await;
    for n in 1..=10 {
        confirming.publish("", "work", &numbered(n), b"job").await;
    }
    assert_eq!(confirming.wait_all().await, vec![]);
    let mut deliveries = consume(&confirming.channel, "work", false).await;
    let mut tags = Vec::new();
    for n in 1..=10 {
        let delivery = deliveries.next().await;
        assert_eq!(delivery.properties.message_id(), Some(&n.to_string()));
        assert!(!delivery.redelivered);
        tags.push(delivery.delivery_tag);
    }
    let channel = &confirming.channel;
    within(
        "basic.ack",
        channel.basic_ack(BasicAckArguments::new(tags[3], true)),
    )
    .await
    .expect("basic.ack 1..=4");
    within(
        "basic.reject",
        channel.basic_reject(BasicRejectArguments::new(tags[4], false)),
    )
    .await
    .expect("basic.reject 5");
    // A confirm from the same shard after the ack and reject: its fdatasync covers them.
    confirming.publish("", "sync", &persistent(), b"sync").await;
    assert_eq!(confirming.wait_all().await, vec![]);

    let broker = Broker::start_in(&broker.kill9(), 2);
    let client = Client::connect(&broker).await;
    assert_eq!(message_count(&client, "work").await, 5);
    assert_eq!(
        recovered_ids(&client, "work", 5).await,
        ["6", "7", "8", "9", "10"]
    );
    assert_eq!(message_count(&client, "sync").await, 1);
}

#[tokio::test]
async fn a_purged_queue_stays_purged_after_kill_9() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let mut confirming = Confirming::open(&client).await;
    declare(
        &confirming.channel,
        QueueDeclareArguments::durable_client_named("purged"),
    )
    .await;
    declare(
        &confirming.channel,
        QueueDeclareArguments::durable_client_named("kept"),
    )
    .await;
    for n in 1..=5 {
        confirming.publish("", "purged", &numbered(n), b"old").await;
        confirming.publish("", "kept", &numbered(n), b"kept").await;
    }
    assert_eq!(confirming.wait_all().await, vec![]);
    let purged = within(
        "queue.purge",
        confirming
            .channel
            .queue_purge(QueuePurgeArguments::new("purged")),
    )
    .await
    .expect("queue.purge");
    assert_eq!(purged, Some(5));
    // Confirmed after the purge on the same shard, so the purge is on disk too.
    confirming.publish("", "purged", &numbered(6), b"new").await;
    assert_eq!(confirming.wait_all().await, vec![]);

    let broker = Broker::start_in(&broker.kill9(), 2);
    let client = Client::connect(&broker).await;
    assert_eq!(message_count(&client, "purged").await, 1);
    assert_eq!(recovered_ids(&client, "purged", 1).await, ["6"]);
    assert_eq!(
        recovered_ids(&client, "kept", 5).await,
        ["1", "2", "3", "4", "5"]
    );
}

#[tokio::test]
async fn queues_owned_by_both_shards_recover() {
    let broker = Broker::start(2);
    // Two connections open at once land on different shards; each declares one queue there.
    let first = Client::connect(&broker).await;
    let second = Client::connect(&broker).await;
    let mut publishers = Vec::new();
    for (client, queue) in [(&first, "on-first"), (&second, "on-second")] {
        let publisher = Confirming::open(client).await;
        declare(
            &publisher.channel,
            QueueDeclareArguments::durable_client_named(queue),
        )
        .await;
        publishers.push(publisher);
    }
    // Each connection publishes to both queues: one local, one across shards.
    for publisher in &mut publishers {
        for queue in ["on-first", "on-second"] {
            for n in 1..=3 {
                publisher.publish("", queue, &numbered(n), b"x").await;
            }
        }
        assert_eq!(publisher.wait_all().await, vec![]);
    }

    let broker = Broker::start_in(&broker.kill9(), 2);
    let client = Client::connect(&broker).await;
    for queue in ["on-first", "on-second"] {
        assert_eq!(message_count(&client, queue).await, 6, "{queue}");
        let ids = recovered_ids(&client, queue, 6).await;
        assert_eq!(ids, ["1", "2", "3", "1", "2", "3"], "{queue}");
    }
}

#[tokio::test]
async fn the_data_dir_is_locked_and_its_shard_count_is_fixed() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(
        &channel,
        QueueDeclareArguments::durable_client_named("stays"),
    )
    .await;

    let (status, stderr) = Broker::start_failure(&broker.data_dir, 2);
    assert_eq!(
        status.code(),
        Some(1),
        "second broker on the same dir; stderr {stderr:?}"
    );
    assert!(
        stderr.contains("is in use by another Hare process"),
        "stderr: {stderr:?}"
    );
    assert!(
        queue_exists(&client, "stays").await,
        "the first broker is unharmed"
    );
    drop(client);

    let data_dir = broker.kill9();
    let (status, stderr) = Broker::start_failure(&data_dir, 1);
    assert_eq!(
        status.code(),
        Some(1),
        "--shards changed; stderr {stderr:?}"
    );
    assert!(
        stderr.contains("was written with 2 shards"),
        "stderr: {stderr:?}"
    );

    // Nothing was damaged: the right shard count starts and finds the queue.
    let broker = Broker::start_in(&data_dir, 2);
    let client = Client::connect(&broker).await;
    assert!(queue_exists(&client, "stays").await);
}

#[tokio::test]
async fn committed_persistent_messages_survive_kill_9_right_after_commit_ok() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::durable_client_named("tx")).await;
    within("tx.select", channel.tx_select())
        .await
        .expect("tx.select");
    for n in 1..=5 {
        client::publish_with(&channel, "", "tx", numbered(n), b"committed").await;
    }
    within("tx.commit", channel.tx_commit())
        .await
        .expect("tx.commit");
    for n in 6..=7 {
        client::publish_with(&channel, "", "tx", numbered(n), b"rolled back").await;
    }
    within("tx.rollback", channel.tx_rollback())
        .await
        .expect("tx.rollback");
    for n in 8..=10 {
        client::publish_with(&channel, "", "tx", numbered(n), b"committed").await;
    }
    within("tx.commit", channel.tx_commit())
        .await
        .expect("tx.commit");

    let broker = Broker::start_in(&broker.kill9(), 2);
    let client = Client::connect(&broker).await;
    assert_eq!(message_count(&client, "tx").await, 8);
    let ids = recovered_ids(&client, "tx", 8).await;
    assert_eq!(ids, ["1", "2", "3", "4", "5", "8", "9", "10"]);
}

/// Regression: SIGTERM never finished while a client kept its connection open without
/// answering connection.close: `shut_down` re-checks its grace deadline only on ticks, and the
/// ticker thread used to exit as soon as it saw the stop flag.
#[test]
fn sigterm_exits_even_if_a_client_never_answers_the_close() {
    let broker = Broker::start(2);
    // A complete handshake, then silence: never reads, never answers connection.close.
    let _silent = common::raw::RawClient::open(broker.addr);
    let status = broker.stop();
    assert!(status.success(), "hare exited with {status}");
}

/// Message ids are per queue. A queue drained before a restart must not hand out its old ids
/// again while the log still holds records naming them (here an older message of another
/// queue keeps every later segment): a settled record for the new message with a reused id
/// must not be confused with the old one at the next replay.
#[tokio::test]
async fn an_acked_message_stays_acked_when_a_drained_queue_is_used_again() {
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    let mut confirming = Confirming::open(&client).await;
    for queue in ["pin", "reused"] {
        declare(
            &confirming.channel,
            QueueDeclareArguments::durable_client_named(queue),
        )
        .await;
    }
    confirming.publish("", "pin", &persistent(), b"pin").await;
    for _ in 0..3 {
        confirming
            .publish("", "reused", &persistent(), b"old")
            .await;
    }
    assert_eq!(confirming.wait_all().await, vec![]);
    ack_next(&confirming.channel, "reused", 3).await;
    // A confirm after the acks: its fdatasync makes their settled records durable.
    confirming.publish("", "pin", &persistent(), b"sync").await;
    assert_eq!(confirming.wait_all().await, vec![]);
    close(client).await;

    let broker = restart(broker, Restart::Clean).await;
    let client = Client::connect(&broker).await;
    assert_eq!(message_count(&client, "reused").await, 0);
    let mut confirming = Confirming::open(&client).await;
    confirming
        .publish("", "reused", &persistent(), b"new1")
        .await;
    confirming
        .publish("", "reused", &persistent(), b"new2")
        .await;
    assert_eq!(confirming.wait_all().await, vec![]);
    ack_next(&confirming.channel, "reused", 1).await;
    confirming.publish("", "pin", &persistent(), b"sync").await;
    assert_eq!(confirming.wait_all().await, vec![]);
    close(client).await;

    let broker = restart(broker, Restart::Clean).await;
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    assert_eq!(take_all(&channel, "reused").await, ["new2"]);
    close(client).await;
}

/// basic.get (manual ack) and ack, `count` times.
async fn ack_next(channel: &Channel, queue: &str, count: usize) {
    for _ in 0..count {
        let (get_ok, _, _) = client::get(channel, queue, false)
            .await
            .expect("a message to ack");
        within(
            "basic.ack",
            channel.basic_ack(BasicAckArguments::new(get_ok.delivery_tag(), false)),
        )
        .await
        .expect("basic.ack");
    }
}

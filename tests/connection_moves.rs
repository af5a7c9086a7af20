//! Connections move to the shard of the queue they consume from or publish to, and queues are
//! placed round the shards (docs/ARCHITECTURE.md, Moving connections to their queues). The
//! management API's `hare_shard` fields show where each connection and queue lives; clients
//! must notice nothing else.

mod client;
mod common;

use std::collections::HashMap;

use amqprs::channel::{BasicAckArguments, BasicCancelArguments, QueueDeclareArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::BasicProperties;
use client::{confirm_select, consume, declare, within, Client};
use common::http;
use common::raw::{method_frame, raw_frame, RawClient};
use common::Broker;
use hare::protocol::{BasicPublish, ChannelOpen, ConfirmSelect, Method, ShortStr};

/// Opens a connection that the management API lists under `name`.
async fn connect_named(broker: &Broker, name: &str) -> Connection {
    let mut args = OpenConnectionArguments::new("127.0.0.1", broker.port(), "guest", "guest");
    args.connection_name(name);
    within("connection.open", Connection::open(&args))
        .await
        .expect("open connection")
}

/// The shard of every listed connection, by its `connection_name` (unnamed ones by their
/// local port, as `port:N`).
fn connection_shards(broker: &Broker) -> HashMap<String, u64> {
    let answer = http::send(
        broker,
        Some(("guest", "guest")),
        "GET",
        "/api/connections",
        b"",
        "application/json",
    );
    assert_eq!(answer.status, 200);
    answer
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|connection| {
            let name = connection["client_properties"]["connection_name"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("port:{}", connection["peer_port"]));
            (name, connection["hare_shard"].as_u64().expect("hare_shard"))
        })
        .collect()
}

fn queue_shard(broker: &Broker, queue: &str) -> u64 {
    let answer = http::send(
        broker,
        Some(("guest", "guest")),
        "GET",
        &format!("/api/queues/%2F/{queue}"),
        b"",
        "application/json",
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["hare_shard"].as_u64().expect("hare_shard")
}

fn counter(broker: &Broker, family: &str) -> u64 {
    let text = http::exchange(broker.metrics, "GET", "/metrics", &[], b"").text;
    text.lines()
        .find_map(|line| line.strip_prefix(family)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {family} in the metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_moves_to_its_queues_shard_and_keeps_every_message() {
    let broker = Broker::start(2);
    // Placement: the first connection goes to shard 0, the second to shard 1.
    let publisher = connect_named(&broker, "publisher").await;
    let consumer = connect_named(&broker, "consumer").await;
    let send = within("channel.open", publisher.open_channel(None))
        .await
        .expect("channel");
    declare(&send, QueueDeclareArguments::durable_client_named("moves")).await;
    assert_eq!(
        queue_shard(&broker, "moves"),
        0,
        "the first queue stays with its declarer"
    );
    assert_eq!(connection_shards(&broker)["consumer"], 1);

    let receive = within("channel.open", consumer.open_channel(None))
        .await
        .expect("channel");
    let mut deliveries = consume(&receive, "moves", false).await;
    assert_eq!(
        connection_shards(&broker)["consumer"],
        0,
        "the consumer moved to its queue's shard"
    );

    confirm_select(&send).await;
    let persistent = BasicProperties::default().with_persistence(true).finish();
    for n in 0..3000u32 {
        client::publish_with(
            &send,
            "",
            "moves",
            persistent.clone(),
            n.to_string().as_bytes(),
        )
        .await;
    }
    for n in 0..3000u32 {
        let delivery = deliveries.next().await;
        assert_eq!(
            delivery.body,
            n.to_string().as_bytes(),
            "in order, none lost"
        );
        assert!(!delivery.redelivered);
        if n % 100 == 99 {
            within(
                "basic.ack",
                receive.basic_ack(BasicAckArguments::new(delivery.delivery_tag, true)),
            )
            .await
            .expect("basic.ack");
        }
    }
    // A second consumer on the moved connection, then a cancel: everything works as before.
    within(
        "basic.cancel",
        receive.basic_cancel(BasicCancelArguments::new(&deliveries.tag)),
    )
    .await
    .expect("basic.cancel");
    client::publish(&send, "", "moves", b"after the cancel").await;
    let mut again = consume(&receive, "moves", true).await;
    assert_eq!(again.next().await.body, b"after the cancel");

    within("channel.close", receive.close())
        .await
        .expect("close channel");
    within("connection.close", consumer.close())
        .await
        .expect("close connection");
    // A move is neither a close nor an open.
    assert_eq!(counter(&broker, "rabbitmq_connections_opened_total"), 2);
    assert_eq!(counter(&broker, "rabbitmq_connections_closed_total"), 1);
    assert_eq!(connection_shards(&broker).len(), 1);
}

/// A client that writes channel.open, confirm.select and three publishes at once: the
/// connection moves at the first publish with the rest of its input unread, and the new shard
/// answers everything in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_moves_at_its_first_publish_with_its_pipelined_input() {
    let broker = Broker::start(2);
    let setup = Client::connect(&broker).await;
    let (channel, _events) = setup.channel().await;
    declare(
        &channel,
        QueueDeclareArguments::durable_client_named("piped"),
    )
    .await;
    assert_eq!(queue_shard(&broker, "piped"), 0);

    let mut raw = RawClient::open(broker.addr);
    let port = raw.stream.local_addr().expect("local address").port();
    assert_eq!(connection_shards(&broker)[&format!("port:{port}")], 1);
    let mut out = method_frame(1, &Method::ChannelOpen(ChannelOpen::default()));
    out.extend(method_frame(
        1,
        &Method::ConfirmSelect(ConfirmSelect { nowait: false }),
    ));
    for n in 0..3u8 {
        out.extend(method_frame(
            1,
            &Method::BasicPublish(BasicPublish {
                routing_key: ShortStr::from_static("piped"),
                ..Default::default()
            }),
        ));
        out.extend(raw_frame(2, 1, &common::raw::content_header_payload(60, 1)));
        out.extend(raw_frame(3, 1, &[b'a' + n]));
    }
    raw.send_bytes(&out);
    assert!(matches!(raw.next_method(), (1, Method::ChannelOpenOk(_))));
    assert!(matches!(raw.next_method(), (1, Method::ConfirmSelectOk(_))));
    let mut acked = 0;
    while acked < 3 {
        match raw.next_method() {
            (1, Method::BasicAck(ack)) => acked = ack.delivery_tag,
            other => panic!("expected basic.ack, got {other:?}"),
        }
    }
    assert_eq!(
        connection_shards(&broker)[&format!("port:{port}")],
        0,
        "the publisher moved to its queue's shard"
    );
    let mut deliveries = consume(&channel, "piped", true).await;
    for expected in [b"a", b"b", b"c"] {
        assert_eq!(deliveries.next().await.body, expected);
    }
    // The moved connection goes on working: a fourth publish, confirmed and delivered.
    raw.publish(1, "piped", b"d");
    match raw.next_method() {
        (1, Method::BasicAck(ack)) => assert_eq!(ack.delivery_tag, 4),
        other => panic!("expected basic.ack, got {other:?}"),
    }
    assert_eq!(deliveries.next().await.body, b"d");
}

/// The node's connection limit counts a moved connection once, and its close frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_connection_keeps_and_then_frees_its_place_in_the_connection_limit() {
    let broker = Broker::start_with(2, &["--max-connections", "2"]);
    let first = Client::connect(&broker).await;
    let (channel, _events) = first.channel().await;
    declare(
        &channel,
        QueueDeclareArguments::durable_client_named("limited"),
    )
    .await;
    let second = connect_named(&broker, "second").await;
    let receive = within("channel.open", second.open_channel(None))
        .await
        .expect("channel");
    let _deliveries = consume(&receive, "limited", true).await;
    assert_eq!(connection_shards(&broker)["second"], 0, "moved");

    let refused = Client::connect_as(&broker, "guest", "guest", "/").await;
    assert!(refused.is_err(), "a third connection is over the limit");
    within("connection.close", second.close())
        .await
        .expect("close");
    // The metadata shard hears of the close asynchronously.
    within("a place frees", async {
        loop {
            if Client::connect_as(&broker, "guest", "guest", "/")
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A connection that holds an exclusive queue stays where it is (the queue knows its owner by
/// connection id), and so does every connection with `--move-connections false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_tied_to_their_shard_stay_and_still_consume() {
    for (args, exclusive_first) in [
        (&[][..], true),
        (&["--move-connections", "false"][..], false),
    ] {
        let broker = Broker::start_with(2, args);
        let setup = Client::connect(&broker).await;
        let (channel, _events) = setup.channel().await;
        declare(&channel, QueueDeclareArguments::durable_client_named("far")).await;
        let consumer = connect_named(&broker, "consumer").await;
        let receive = within("channel.open", consumer.open_channel(None))
            .await
            .expect("channel");
        if exclusive_first {
            declare(&receive, QueueDeclareArguments::exclusive_server_named()).await;
        }
        let mut deliveries = consume(&receive, "far", true).await;
        client::publish(&channel, "", "far", b"crossed the mesh").await;
        assert_eq!(deliveries.next().await.body, b"crossed the mesh");
        assert_eq!(
            connection_shards(&broker)["consumer"],
            1,
            "stayed ({args:?}, exclusive queue {exclusive_first})"
        );
    }
}

/// Balanced placement spreads one connection's queues over the shards, client-local keeps
/// them on its shard; exclusive queues always stay. The place is metadata: a durable queue
/// placed on the other shard keeps it, and its confirmed messages, across kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_placed_round_the_shards_and_keep_their_place_across_kill_9() {
    let local = Broker::start_with(2, &["--queue-placement", "client-local"]);
    let client = Client::connect(&local).await;
    let (channel, _events) = client.channel().await;
    for name in ["l1", "l2", "l3"] {
        declare(&channel, QueueDeclareArguments::durable_client_named(name)).await;
        assert_eq!(queue_shard(&local, name), 0, "{name} stays client-local");
    }
    drop(local);

    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    let exclusive = declare(&channel, QueueDeclareArguments::exclusive_server_named()).await;
    assert_eq!(queue_shard(&broker, &exclusive), 0, "exclusive queues stay");
    for (name, shard) in [("b1", 0), ("b2", 1), ("b3", 0), ("b4", 1)] {
        declare(&channel, QueueDeclareArguments::durable_client_named(name)).await;
        assert_eq!(queue_shard(&broker, name), shard, "{name}");
    }
    confirm_select(&channel).await;
    let persistent = BasicProperties::default().with_persistence(true).finish();
    for n in 0..100u32 {
        for name in ["b1", "b2"] {
            client::publish_with(
                &channel,
                "",
                name,
                persistent.clone(),
                n.to_string().as_bytes(),
            )
            .await;
        }
    }
    let others = events.confirmed(200).await;
    assert!(others.is_empty(), "unexpected events {others:?}");
    drop(client);

    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    for (name, shard) in [("b1", 0), ("b2", 1)] {
        assert_eq!(queue_shard(&broker, name), shard, "{name} kept its shard");
        let client = Client::connect(&broker).await;
        let (channel, _events) = client.channel().await;
        let bodies = client::drain(&channel, name).await;
        let expected: Vec<String> = (0..100).map(|n: u32| n.to_string()).collect();
        assert_eq!(
            bodies, expected,
            "{name}: every confirmed message, in order"
        );
    }
}

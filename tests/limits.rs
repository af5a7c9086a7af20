//! The broker's limits, each set by a flag, refused with RabbitMQ 3.13's codes and texts
//! (docs/operations.md, Limits; docs/rabbitmq-compatibility.md §3 and §18).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http;
use common::raw::{plain, raw_frame, Incoming, RawClient, Tune, REPLY_TIMEOUT};
use common::Broker;
use hare::protocol::{
    BasicPublish, ChannelOpen, ConnectionClose, Method, QueueDeclare, QueueDelete, ShortStr,
};

/// The handshake up to connection.open: open-ok, or the broker's connection.close.
fn try_open(addr: SocketAddr) -> Result<RawClient, ConnectionClose> {
    let mut client = RawClient::connect(addr);
    client.send_protocol_header();
    client.expect_start();
    client.send_start_ok("PLAIN", &plain("guest", "guest"), true);
    let tune = client.expect_tune();
    client.send_tune_ok(tune.channel_max, tune.frame_max, 0);
    client.send_open("/");
    match client.next_method() {
        (0, Method::ConnectionOpenOk(_)) => Ok(client),
        (0, Method::ConnectionClose(close)) => Err(close),
        other => panic!("expected open-ok or close, got {other:?}"),
    }
}

/// Opens a connection, retrying while a slot given back a moment ago is still on its way.
fn open_eventually(addr: SocketAddr) -> RawClient {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        match try_open(addr) {
            Ok(client) => return client,
            Err(close) if Instant::now() < deadline => drop(close),
            Err(close) => panic!("still refused: {close:?}"),
        }
    }
}

fn text(close: &ConnectionClose) -> String {
    close.reply_text.to_string_lossy()
}

fn declare(client: &mut RawClient, channel: u16, queue: &str) {
    client.send_method(
        channel,
        QueueDeclare {
            queue: ShortStr::copy_from_str(queue).expect("short name"),
            ..Default::default()
        },
    );
}

#[test]
fn a_message_over_max_message_size_is_406_from_its_header_alone() {
    let broker = Broker::start_with(1, &["--max-message-size", "1000"]);
    let mut client = RawClient::open(broker.addr);
    client.open_channel(1);
    client.declare_queue(1, "sized");
    client.publish(1, "sized", &[7; 1000]);
    assert_eq!(client.get(1, "sized"), Some(vec![7; 1000]));
    // Only the header is sent: the refusal needs no body frame.
    client.send_method(
        1,
        BasicPublish {
            routing_key: ShortStr::from_static("sized"),
            ..Default::default()
        },
    );
    client.send_content_header(1, 1001);
    let close = client.expect_channel_close(1, 406, 60, 40);
    assert_eq!(
        close.reply_text.to_string_lossy(),
        "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000"
    );
    client.open_channel(1);
    client.assert_serving();

    // The default is RabbitMQ's 128 MiB.
    let broker = Broker::start(1);
    let mut client = RawClient::open(broker.addr);
    client.open_channel(1);
    client.send_method(1, BasicPublish::default());
    client.send_content_header(1, (128 << 20) + 1);
    let close = client.expect_channel_close(1, 406, 60, 40);
    assert!(
        close
            .reply_text
            .to_string_lossy()
            .ends_with("message size 134217729 is larger than configured max size 134217728"),
        "{close:?}"
    );
}

#[test]
fn tune_ok_may_lower_the_limits_but_not_raise_or_lift_them() {
    let broker = Broker::start_with(1, &["--channel-max", "10", "--frame-max", "8192"]);
    let refused = [
        (
            0,
            8192,
            "negotiated channel_max = 0 (no limit) is higher than the maximum allowed value (10)",
        ),
        (
            11,
            8192,
            "negotiated channel_max = 11 is higher than the maximum allowed value (10)",
        ),
        (
            10,
            0,
            "negotiated frame_max = 0 is higher than the maximum allowed value (8192)",
        ),
        (
            10,
            8193,
            "negotiated frame_max = 8193 is higher than the maximum allowed value (8192)",
        ),
        (
            10,
            4095,
            "negotiated frame_max = 4095 is lower than the minimum allowed value (4096)",
        ),
    ];
    for (channel_max, frame_max, expected) in refused {
        let mut client = RawClient::connect(broker.addr);
        client.send_protocol_header();
        client.expect_start();
        client.send_start_ok("PLAIN", &plain("guest", "guest"), true);
        let tune = client.expect_tune();
        assert_eq!((tune.channel_max, tune.frame_max), (10, 8192));
        client.send_tune_ok(channel_max, frame_max, 0);
        let close = client.expect_connection_close_for(530, 10, 30);
        assert_eq!(text(&close), format!("NOT_ALLOWED - {expected}"));
    }
    // Lower values are the connection's limits from then on.
    let tune = Tune {
        channel_max: Some(1),
        frame_max: Some(4096),
        heartbeat: None,
    };
    let mut client = RawClient::open_tuned(broker.addr, tune);
    client.open_channel(1);
    client.assert_serving();
    client.send_bytes(&raw_frame(3, 1, &[0; 4097]));
    let close = client.expect_connection_close(501);
    assert!(text(&close).starts_with("FRAME_ERROR - "), "{close:?}");
}

#[test]
fn channels_beyond_the_negotiated_channel_max_are_530() {
    let broker = Broker::start_with(1, &["--channel-max", "3"]);
    let mut client = RawClient::open_tuned(
        broker.addr,
        Tune {
            channel_max: Some(2),
            ..Tune::default()
        },
    );
    // As in RabbitMQ, channel_max bounds how many channels are open, not their numbers.
    client.open_channel(1);
    client.open_channel(500);
    client.send_method(2, ChannelOpen::default());
    // RabbitMQ names no method (0/0); Hare names channel.open.
    let close = client.expect_connection_close_for(530, 20, 10);
    assert_eq!(
        text(&close),
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    );
    // Echoing the server's value allows the server's number.
    let mut client = RawClient::open(broker.addr);
    for channel in 1..=3 {
        client.open_channel(channel);
    }
    client.send_method(4, ChannelOpen::default());
    client.expect_connection_close_for(530, 20, 10);
}

#[test]
fn connections_over_max_connections_are_refused_at_open() {
    let broker = Broker::start_with(2, &["--max-connections", "2"]);
    let first = open_eventually(broker.addr);
    let mut second = open_eventually(broker.addr);
    let mut refused = match try_open(broker.addr) {
        Ok(_) => panic!("a third connection was admitted"),
        Err(close) => close,
    };
    assert_eq!(refused.reply_code, 530);
    assert_eq!((refused.class_id, refused.method_id), (10, 40));
    assert_eq!(
        text(&refused),
        "NOT_ALLOWED - connection refused: node connection limit (2) is reached"
    );
    // A closed connection gives its slot back.
    drop(first);
    let mut third = open_eventually(broker.addr);
    third.open_channel(1);
    third.assert_serving();
    second.open_channel(1);
    second.assert_serving();
    refused = try_open(broker.addr).err().expect("still at the limit");
    assert_eq!(refused.reply_code, 530);
}

#[test]
fn sockets_that_never_finish_the_handshake_are_closed_and_not_counted() {
    let broker = Broker::start_with(
        1,
        &["--handshake-timeout-ms", "500", "--max-connections", "1"],
    );
    let mut silent: Vec<RawClient> = (0..3).map(|_| RawClient::connect(broker.addr)).collect();
    let mut stalled: Vec<RawClient> = (0..3)
        .map(|_| {
            let mut client = RawClient::connect(broker.addr);
            client.send_protocol_header();
            client.expect_start();
            client
        })
        .collect();
    // Six sockets in their handshake do not take the one connection slot.
    let mut open = try_open(broker.addr).expect("admitted beside the handshaking sockets");
    for client in silent.iter_mut().chain(stalled.iter_mut()) {
        client.expect_socket_closed(Duration::from_secs(5));
    }
    open.open_channel(1);
    open.assert_serving();
}

#[test]
fn queues_over_max_queues_are_406() {
    let broker = Broker::start_with(2, &["--max-queues", "2"]);
    let mut client = RawClient::open(broker.addr);
    client.open_channel(1);
    client.declare_queue(1, "q1");
    client.declare_queue(1, "q2");
    // Redeclaring an existing queue is not a new queue.
    client.declare_queue(1, "q1");
    declare(&mut client, 1, "q3");
    let close = client.expect_channel_close(1, 406, 50, 10);
    assert_eq!(
        close.reply_text.to_string_lossy(),
        "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in cluster (2) is reached"
    );
    client.open_channel(2);
    client.send_method(
        2,
        QueueDelete {
            queue: ShortStr::from_static("q1"),
            ..Default::default()
        },
    );
    match client.next_method() {
        (2, Method::QueueDeleteOk(_)) => {}
        other => panic!("expected delete-ok, got {other:?}"),
    }
    client.declare_queue(2, "q3");
}

/// Descriptors the broker process has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the broker's descriptors")
        .count()
}

/// A new client got connection.start (it was accepted and served).
fn served(client: &mut RawClient, timeout: Duration) -> bool {
    match client.read_frame(timeout) {
        Incoming::Frame(frame) => matches!(
            Method::decode(&frame.payload),
            Ok(Method::ConnectionStart(_))
        ),
        Incoming::Timeout | Incoming::Closed => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_refuses_new_clients_until_some_close() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    // Room for a few more connections (two descriptors each).
    let limit = open_descriptors(broker.pid()) + 12;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", broker.pid()))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit failed");

    let mut held = Vec::new();
    let mut waiting = loop {
        let mut client = RawClient::connect(broker.addr);
        client.send_protocol_header();
        if !served(&mut client, Duration::from_secs(2)) {
            break client;
        }
        held.push(client);
        assert!(held.len() < 50, "the descriptor limit was never reached");
    };
    assert!(!held.is_empty(), "no connection fitted under the limit");
    // Open connections keep working while new ones wait.
    witness.assert_serving();
    // Closing some lets the waiting client in, and the management API answers again.
    held.truncate(held.len().saturating_sub(3));
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut admitted = false;
    while !admitted && Instant::now() < deadline {
        admitted = served(&mut waiting, Duration::from_millis(500));
    }
    if !admitted {
        // The waiting socket may have been accepted and dropped while descriptors ran out;
        // a new one must get in now.
        let mut fresh = RawClient::connect(broker.addr);
        fresh.send_protocol_header();
        admitted = served(&mut fresh, REPLY_TIMEOUT);
    }
    assert!(
        admitted,
        "no new client was served after connections closed"
    );
    drop(held);
    let nodes = http::send(
        &broker,
        Some(("guest", "guest")),
        "GET",
        "/api/nodes",
        b"",
        "",
    );
    assert_eq!(nodes.status, 200);
    assert_eq!(nodes.body[0]["fd_total"], limit as u64);
    witness.assert_serving();
}

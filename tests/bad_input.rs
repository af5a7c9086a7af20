//! Garbage from one client over raw TCP: each kind gets RabbitMQ's exception (docs/rabbitmq-compatibility.md §1-§4), and a second client connected beforehand keeps working.

mod common;

use std::time::{Duration, Instant};

use common::raw::{
    content_header_payload, method_frame, plain, raw_frame, Incoming, RawClient, Tune,
    REPLY_TIMEOUT,
};
use common::Broker;
use hare::protocol::{
    BasicDeliver, BasicGet, BasicPublish, ChannelOpen, ConnectionClose, ConnectionCloseOk,
    ConnectionStart, FieldTable, FieldValue, FrameType, LongStr, Method, QueueDeclare, ShortStr,
};

/// A broker, a witness connection (channel 1 open) and a victim connection (channel 1 open).
fn setup() -> (Broker, RawClient, RawClient) {
    let broker = Broker::start(1);
    let witness = RawClient::witness(broker.addr);
    let victim = RawClient::witness(broker.addr);
    (broker, witness, victim)
}

/// The witness still declares, publishes and gets; a new connection can still be opened.
fn still_serving(broker: &Broker, witness: &mut RawClient) {
    witness.assert_serving();
    RawClient::witness(broker.addr).assert_serving();
}

/// Sends `bytes` on a fresh victim and expects a connection.close with `code` and ids.
fn expect_fatal(bytes: &[u8], code: u16, ids: Option<(u16, u16)>) {
    let (broker, mut witness, mut victim) = setup();
    victim.send_bytes(bytes);
    match ids {
        Some((class_id, method_id)) => {
            victim.expect_connection_close_for(code, class_id, method_id);
        }
        None => {
            victim.expect_connection_close(code);
        }
    }
    still_serving(&broker, &mut witness);
}

fn publish_frame(channel: u16) -> Vec<u8> {
    method_frame(channel, &Method::BasicPublish(BasicPublish::default()))
}

fn declare_frame(channel: u16, queue: &'static str) -> Vec<u8> {
    let declare = QueueDeclare {
        queue: ShortStr::from_static(queue),
        ..Default::default()
    };
    method_frame(channel, &Method::QueueDeclare(declare))
}

#[test]
fn a_wrong_frame_end_octet_is_501() {
    let mut frame = declare_frame(1, "q");
    *frame.last_mut().expect("frame end") = 0x00;
    expect_fatal(&frame, 501, Some((0, 0)));
}

#[test]
fn a_frame_over_frame_max_is_501_from_its_header_alone() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    let tune = Tune {
        frame_max: Some(4096),
        ..Tune::default()
    };
    let mut victim = RawClient::open_tuned(broker.addr, tune);
    // Only the 7 header bytes: the payload is never sent, so the broker must decide from them.
    victim.send_bytes(&[3, 0, 1, 0, 0, 0x10, 0x01]);
    victim.expect_connection_close_for(501, 0, 0);
    still_serving(&broker, &mut witness);
}

#[test]
fn a_payload_of_exactly_frame_max_is_tolerated() {
    let broker = Broker::start(1);
    let tune = Tune {
        frame_max: Some(4096),
        ..Tune::default()
    };
    let mut client = RawClient::open_tuned(broker.addr, tune);
    client.open_channel(1);
    client.declare_queue(1, "big");
    let body = vec![7u8; 4096];
    client.publish(1, "big", &body);
    assert_eq!(client.get(1, "big"), Some(body));
}

#[test]
fn unknown_frame_types_are_501() {
    for frame_type in [4u8, 9, 0, 255] {
        expect_fatal(&raw_frame(frame_type, 1, b"junk"), 501, Some((0, 0)));
    }
}

/// Regression: undecodable arguments were reported with class/method 0/0.
#[test]
fn a_truncated_basic_publish_is_501_naming_the_method() {
    // exchange shortstr claims 5 bytes, 1 follows.
    let payload = [0, 60, 0, 40, 0, 0, 5, b'a'];
    expect_fatal(&raw_frame(1, 1, &payload), 501, Some((60, 40)));
}

#[test]
fn a_bad_field_table_tag_is_501_naming_the_method() {
    // queue.declare: ticket, queue "q", bits, arguments {"k": tag 'Z'}.
    let payload = [0, 50, 0, 10, 0, 0, 1, b'q', 0, 0, 0, 0, 3, 1, b'k', b'Z'];
    expect_fatal(&raw_frame(1, 1, &payload), 501, Some((50, 10)));
}

#[test]
fn unknown_class_and_method_ids_are_503() {
    // docs/rabbitmq-compatibility.md §1: 503, with ids 0/0 since no method can be named.
    expect_fatal(&raw_frame(1, 1, &[0, 60, 3, 231]), 503, Some((0, 0)));
    expect_fatal(&raw_frame(1, 1, &[0, 99, 0, 10]), 503, Some((0, 0)));
    expect_fatal(&raw_frame(1, 0, &[0, 10, 0, 99]), 503, Some((0, 0)));
}

#[test]
fn server_only_methods_from_the_client_are_503() {
    let deliver = Method::BasicDeliver(BasicDeliver::default());
    expect_fatal(&method_frame(1, &deliver), 503, Some((60, 60)));
    let start = Method::ConnectionStart(ConnectionStart::default());
    expect_fatal(&method_frame(1, &start), 503, Some((10, 10)));
}

/// Regression: was 503. RabbitMQ answers any method on channel 0 other than close, close-ok and
/// update-secret with 504 "unexpected method in connection state running".
#[test]
fn other_methods_on_channel_0_are_504() {
    let start = Method::ConnectionStart(ConnectionStart::default());
    expect_fatal(&method_frame(0, &start), 504, Some((10, 10)));
    expect_fatal(&declare_frame(0, "q"), 504, Some((50, 10)));
}

/// Regression, found by fuzzing (`connection_state`): a connection.close-ok the server did not
/// ask for ended the connection without a connection.close. RabbitMQ answers it as it answers
/// any other unexpected method on channel 0.
#[test]
fn connection_close_ok_without_a_close_is_504() {
    let close_ok = Method::ConnectionCloseOk(ConnectionCloseOk::default());
    expect_fatal(&method_frame(0, &close_ok), 504, Some((10, 51)));
}

#[test]
fn a_method_on_a_never_opened_channel_is_504() {
    expect_fatal(&declare_frame(7, "q"), 504, Some((50, 10)));
}

#[test]
fn channel_open_twice_is_504() {
    let open = Method::ChannelOpen(ChannelOpen::default());
    expect_fatal(&method_frame(1, &open), 504, Some((20, 10)));
}

#[test]
fn channel_zero_is_504() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    // docs/rabbitmq-compatibility.md §3: channel.open on channel 0 is a channel error. (The
    // number of open channels against channel_max is in tests/limits.rs.)
    let mut victim = RawClient::open(broker.addr);
    victim.send_method(0, ChannelOpen::default());
    victim.expect_connection_close_for(504, 20, 10);
    still_serving(&broker, &mut witness);
}

#[test]
fn a_content_header_without_basic_publish_is_505() {
    expect_fatal(&raw_frame(2, 1, &content_header_payload(60, 3)), 505, None);
}

#[test]
fn a_body_frame_without_a_header_is_505() {
    expect_fatal(&raw_frame(3, 1, b"abc"), 505, None);
    let mut bytes = publish_frame(1);
    bytes.extend(raw_frame(3, 1, b"abc"));
    expect_fatal(&bytes, 505, None);
}

#[test]
fn a_method_inside_a_content_is_505() {
    let mut bytes = publish_frame(1);
    bytes.extend(raw_frame(2, 1, &content_header_payload(60, 10)));
    bytes.extend(raw_frame(3, 1, b"12345"));
    bytes.extend(declare_frame(1, "q"));
    expect_fatal(&bytes, 505, None);
    let mut bytes = publish_frame(1);
    bytes.extend(publish_frame(1));
    expect_fatal(&bytes, 505, None);
}

#[test]
fn a_body_longer_than_declared_is_501() {
    let mut bytes = publish_frame(1);
    bytes.extend(raw_frame(2, 1, &content_header_payload(60, 3)));
    bytes.extend(raw_frame(3, 1, b"12345"));
    expect_fatal(&bytes, 501, None);
}

#[test]
fn a_heartbeat_on_a_non_zero_channel_is_505() {
    expect_fatal(&raw_frame(8, 1, b""), 505, Some((0, 0)));
}

#[test]
fn content_frames_on_channel_0_are_505() {
    expect_fatal(&raw_frame(2, 0, &content_header_payload(60, 3)), 505, None);
    expect_fatal(&raw_frame(3, 0, b"abc"), 505, None);
}

#[test]
fn an_empty_body_frame_is_505() {
    let mut bytes = publish_frame(1);
    bytes.extend(raw_frame(2, 1, &content_header_payload(60, 5)));
    bytes.extend(raw_frame(3, 1, b""));
    expect_fatal(&bytes, 505, None);
    // Body size 0 completes the content with the header: a stray empty body is unexpected.
    let mut bytes = publish_frame(1);
    bytes.extend(raw_frame(2, 1, &content_header_payload(60, 0)));
    bytes.extend(raw_frame(3, 1, b""));
    expect_fatal(&bytes, 505, None);
}

/// Regression: a header for class 50 was a decode error (501) instead of 505.
#[test]
fn a_content_header_for_another_class_is_505() {
    let mut bytes = publish_frame(1);
    bytes.extend(raw_frame(2, 1, &content_header_payload(50, 3)));
    expect_fatal(&bytes, 505, None);
}

#[test]
fn after_the_broker_sends_close_only_close_ok_counts() {
    let (broker, mut witness, mut victim) = setup();
    victim.send_bytes(&declare_frame(9, "q"));
    match victim.next_method() {
        (0, Method::ConnectionClose(close)) => assert_eq!(close.reply_code, 504),
        other => panic!("expected connection.close, got {other:?}"),
    }
    // All ignored: none of them may get an answer before the socket closes.
    victim.send_method(2, ChannelOpen::default());
    victim.send_bytes(&declare_frame(1, "ignored"));
    victim.send_bytes(&raw_frame(8, 1, b""));
    victim.send_bytes(&raw_frame(2, 0, &content_header_payload(60, 1)));
    victim.send_heartbeat();
    victim.send_method(0, Method::ConnectionCloseOk(Default::default()));
    victim.expect_socket_closed(REPLY_TIMEOUT);
    still_serving(&broker, &mut witness);
}

#[test]
fn a_crossing_connection_close_gets_close_ok() {
    let (broker, mut witness, mut victim) = setup();
    victim.send_bytes(&declare_frame(9, "q"));
    assert!(matches!(
        victim.next_method(),
        (0, Method::ConnectionClose(_))
    ));
    victim.send_method(0, ConnectionClose::default());
    assert!(matches!(
        victim.next_method(),
        (0, Method::ConnectionCloseOk(_))
    ));
    victim.expect_socket_closed(REPLY_TIMEOUT);
    still_serving(&broker, &mut witness);
}

#[test]
fn client_connection_close_gets_close_ok_then_the_socket_closes() {
    let (broker, mut witness, mut victim) = setup();
    victim.send_method(
        0,
        ConnectionClose {
            reply_code: 200,
            reply_text: ShortStr::from_static("bye"),
            ..Default::default()
        },
    );
    assert!(matches!(
        victim.next_method(),
        (0, Method::ConnectionCloseOk(_))
    ));
    victim.expect_socket_closed(REPLY_TIMEOUT);
    still_serving(&broker, &mut witness);
}

#[test]
fn a_soft_error_closes_only_the_channel() {
    let (broker, mut witness, mut victim) = setup();
    let get = BasicGet {
        queue: ShortStr::from_static("no-such-queue"),
        ..Default::default()
    };
    victim.send_method(1, get);
    victim.expect_channel_close(1, 404, 60, 70);
    victim.open_channel(1);
    victim.assert_serving();
    still_serving(&broker, &mut witness);
}

/// Runs start-ok with `mechanism`/`response` on a fresh connection and returns it.
fn start_ok(broker: &Broker, mechanism: &str, response: &[u8], close_cap: bool) -> RawClient {
    let mut client = RawClient::connect(broker.addr);
    client.send_protocol_header();
    client.expect_start();
    client.send_start_ok(mechanism, response, close_cap);
    client
}

#[test]
fn bad_credentials_get_403_only_with_the_capability() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    let mut client = start_ok(&broker, "PLAIN", &plain("guest", "wrong"), true);
    let close = client.expect_connection_close_for(403, 10, 11);
    assert!(close.reply_text.to_string_lossy().contains("refused"));
    let mut client = start_ok(&broker, "PLAIN", &plain("nobody", "guest"), false);
    client.expect_socket_closed(REPLY_TIMEOUT);
    still_serving(&broker, &mut witness);
}

#[test]
fn an_unknown_sasl_mechanism_is_503() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    let mut client = start_ok(&broker, "EXTERNAL", b"", true);
    client.expect_connection_close_for(503, 10, 11);
    still_serving(&broker, &mut witness);
}

#[test]
fn a_malformed_plain_response_is_502() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    for response in [&b"guest"[..], b"\0guest", b"\0guest\0guest\0extra"] {
        let mut client = start_ok(&broker, "PLAIN", response, true);
        client.expect_connection_close_for(502, 10, 11);
    }
    still_serving(&broker, &mut witness);
}

#[test]
fn amqplain_logs_in_with_and_without_the_table_length_prefix() {
    let broker = Broker::start(1);
    let table: FieldTable = [
        (
            ShortStr::from_static("LOGIN"),
            FieldValue::LongStr("guest".into()),
        ),
        (
            ShortStr::from_static("PASSWORD"),
            FieldValue::LongStr("guest".into()),
        ),
    ]
    .into_iter()
    .collect();
    let mut prefixed = Vec::new();
    table.encode(&mut prefixed);
    for response in [&prefixed[4..], &prefixed[..]] {
        let mut client = start_ok(&broker, "AMQPLAIN", response, true);
        let tune = client.expect_tune();
        client.send_tune_ok(tune.channel_max, tune.frame_max, 0);
        client.send_open("/");
        assert!(matches!(
            client.next_method(),
            (0, Method::ConnectionOpenOk(_))
        ));
        client.open_channel(1);
        client.assert_serving();
    }
}

#[test]
fn tune_ok_frame_max_out_of_range_is_530() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    for bad in [4095u32, 1] {
        let mut client = start_ok(&broker, "PLAIN", &plain("guest", "guest"), true);
        let tune = client.expect_tune();
        client.send_tune_ok(tune.channel_max, bad, 0);
        // RabbitMQ names connection.tune, whose limits the client overstepped.
        client.expect_connection_close_for(530, 10, 30);
    }
    let mut client = start_ok(&broker, "PLAIN", &plain("guest", "guest"), true);
    let tune = client.expect_tune();
    client.send_tune_ok(tune.channel_max, tune.frame_max + 1, 0);
    client.expect_connection_close_for(530, 10, 30);
    still_serving(&broker, &mut witness);
}

#[test]
fn opening_an_unknown_vhost_is_530() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    let mut client = start_ok(&broker, "PLAIN", &plain("guest", "guest"), true);
    let tune = client.expect_tune();
    client.send_tune_ok(tune.channel_max, tune.frame_max, 0);
    client.send_open("nope");
    let close = client.expect_connection_close_for(530, 10, 40);
    assert!(
        close
            .reply_text
            .to_string_lossy()
            .contains("vhost nope not found"),
        "{close:?}"
    );
    still_serving(&broker, &mut witness);
}

fn heartbeat_client(broker: &Broker) -> RawClient {
    let tune = Tune {
        heartbeat: Some(1),
        ..Tune::default()
    };
    RawClient::open_tuned(broker.addr, tune)
}

#[test]
fn a_silent_client_is_dropped_after_two_heartbeat_intervals() {
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    let mut silent = heartbeat_client(&broker);
    let started = Instant::now();
    silent.expect_socket_closed(Duration::from_secs(5));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "dropped after {:?}, before two intervals",
        started.elapsed()
    );
    still_serving(&broker, &mut witness);
}

#[test]
fn a_heartbeating_client_is_kept_and_the_broker_heartbeats_when_idle() {
    let broker = Broker::start(1);
    let mut client = heartbeat_client(&broker);
    let started = Instant::now();
    let mut next_beat = started;
    let mut first_from_broker = None;
    while started.elapsed() < Duration::from_secs(4) {
        if Instant::now() >= next_beat {
            client.send_heartbeat();
            next_beat += Duration::from_millis(400);
        }
        match client.read_frame(Duration::from_millis(100)) {
            Incoming::Frame(frame) => {
                assert_eq!(frame.frame_type, FrameType::Heartbeat, "only heartbeats");
                assert_eq!(frame.channel, 0);
                first_from_broker.get_or_insert(started.elapsed());
            }
            Incoming::Timeout => {}
            Incoming::Closed => panic!("dropped after {:?} despite heartbeats", started.elapsed()),
        }
    }
    let first = first_from_broker.expect("the broker sent no heartbeat in 4 s");
    assert!(
        first <= Duration::from_secs(2),
        "first heartbeat after {first:?}"
    );
    client.open_channel(1);
    client.assert_serving();
}

#[test]
fn the_handshake_timeout_drops_silent_and_stalled_clients() {
    let broker = Broker::start_with(1, &["--handshake-timeout-ms", "300"]);
    let mut witness = RawClient::witness(broker.addr);
    let mut silent = RawClient::connect(broker.addr);
    silent.expect_socket_closed(Duration::from_secs(3));
    let mut stalled = RawClient::connect(broker.addr);
    stalled.send_protocol_header();
    stalled.expect_start();
    stalled.expect_socket_closed(Duration::from_secs(3));
    still_serving(&broker, &mut witness);
}

#[test]
fn a_half_sent_frame_then_disconnect_disturbs_no_one() {
    let (broker, mut witness, mut victim) = setup();
    let frame = declare_frame(1, "half");
    victim.send_bytes(&frame[..frame.len() / 2]);
    drop(victim);
    let mut victim = RawClient::witness(broker.addr);
    let mut bytes = publish_frame(1);
    bytes.extend(raw_frame(2, 1, &content_header_payload(60, 100)));
    bytes.extend(&raw_frame(3, 1, &[1; 50])[..30]);
    victim.send_bytes(&bytes);
    drop(victim);
    still_serving(&broker, &mut witness);
}

#[test]
fn a_thousand_connections_opened_and_dropped_leave_the_broker_serving() {
    let broker = Broker::start(2);
    let mut witness = RawClient::witness(broker.addr);
    for batch in 0..10 {
        let mut held = Vec::new();
        for i in 0..100 {
            let mut client = RawClient::connect(broker.addr);
            match (batch + i) % 4 {
                0 => {}
                1 => client.send_protocol_header(),
                2 => client.send_bytes_lossy(b"AMQP\x00\x00"),
                _ => {
                    client.send_protocol_header();
                    client.send_bytes_lossy(&method_frame(
                        0,
                        &Method::ConnectionStartOk(Default::default()),
                    ));
                }
            }
            held.push(client);
        }
        drop(held);
    }
    still_serving(&broker, &mut witness);
}

#[test]
fn long_strings_in_start_ok_do_not_matter() {
    // A start-ok close to the pre-tune frame limit (8192) is still accepted.
    let broker = Broker::start(1);
    let mut client = RawClient::connect(broker.addr);
    client.send_protocol_header();
    client.expect_start();
    let filler = FieldValue::LongStr(vec![b'x'; 7000].into());
    let properties: FieldTable = [(ShortStr::from_static("filler"), filler)]
        .into_iter()
        .collect();
    client.send_method(
        0,
        hare::protocol::ConnectionStartOk {
            client_properties: properties,
            mechanism: ShortStr::from_static("PLAIN"),
            response: LongStr::from_bytes(plain("guest", "guest").into()),
            locale: ShortStr::from_static("en_US"),
        },
    );
    client.expect_tune();
}

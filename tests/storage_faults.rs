//! What clients see when the disk fails under a running broker (faults injected with the
//! hidden `--storage-fault` flag): nacks instead of acks, connection.blocked for publishers,
//! and no confirmed message lost across a restart.

mod common;

use common::raw::RawClient;
use common::Broker;
use hare::protocol::{
    write_content, write_method_frame, BasicProperties, BasicPublish, Method, ShortStr,
};

/// Publishes a persistent message and returns whether the broker acked (true) or nacked it,
/// and whether connection.blocked arrived meanwhile.
fn publish_persistent(client: &mut RawClient, body: &[u8]) -> (bool, bool) {
    let (ack, blocked, _) = publish_watching_alarm(client, body);
    (ack, blocked)
}

/// Sends a persistent message to queue "faulty" on channel 1, without waiting for anything.
fn send_persistent(client: &mut RawClient, body: &[u8]) {
    let properties = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    let mut out = Vec::new();
    write_method_frame(
        &mut out,
        1,
        &Method::BasicPublish(BasicPublish {
            routing_key: ShortStr::from_static("faulty"),
            ..Default::default()
        }),
    );
    write_content(&mut out, 1, 60, &properties.to_raw(), body, 131_072);
    client.send_bytes(&out);
}

/// Like `publish_persistent`, also telling whether connection.unblocked arrived.
fn publish_watching_alarm(client: &mut RawClient, body: &[u8]) -> (bool, bool, bool) {
    send_persistent(client, body);
    let (mut blocked, mut unblocked) = (false, false);
    loop {
        match client.next_method() {
            (1, Method::BasicAck(_)) => return (true, blocked, unblocked),
            (1, Method::BasicNack(_)) => return (false, blocked, unblocked),
            (0, Method::ConnectionBlocked(_)) => blocked = true,
            (0, Method::ConnectionUnblocked(_)) => unblocked = true,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn confirming_client(broker: &Broker) -> RawClient {
    let mut client = RawClient::open(broker.addr);
    client.confirming_durable_queue(1, "faulty");
    client
}

#[test]
fn a_failing_fdatasync_nacks_blocks_publishers_and_loses_nothing_confirmed() {
    let broker = Broker::start_with(1, &["--storage-fault", "fdatasync-error-after=5"]);
    let mut client = confirming_client(&broker);
    let mut acked = Vec::new();
    let mut nacked = 0;
    let mut blocked = false;
    for number in 0..200u32 {
        let body = number.to_string();
        let (ack, saw_blocked) = publish_persistent(&mut client, body.as_bytes());
        blocked |= saw_blocked;
        if ack {
            assert_eq!(nacked, 0, "no ack after the log failed");
            acked.push(body);
        } else {
            nacked += 1;
        }
        if nacked >= 3 && blocked {
            break;
        }
    }
    assert!(!acked.is_empty(), "publishes before the fault are acked");
    assert!(nacked >= 3, "publishes after the fault are nacked");
    if !blocked {
        // connection.blocked may follow the first nack.
        match client.next_method() {
            (0, Method::ConnectionBlocked(blocked)) => {
                assert!(blocked.reason.to_string_lossy().contains("disk fault"));
            }
            other => panic!("expected connection.blocked, got {other:?}"),
        }
    }
    // A connection opened during the alarm is told at once.
    let mut late = RawClient::open(broker.addr);
    assert!(matches!(
        late.next_method(),
        (0, Method::ConnectionBlocked(_))
    ));

    // Restarted without the fault, every acked message is there, in order.
    let broker = broker.restart();
    let mut reader = RawClient::open(broker.addr);
    reader.open_channel(1);
    let mut recovered = Vec::new();
    while let Some(body) = reader.get(1, "faulty") {
        recovered.push(String::from_utf8(body).expect("utf-8 body"));
    }
    // Nacked messages may also be there (their write may have reached the disk even though
    // the fdatasync failed); confirmed ones must all be, first and in order.
    assert!(
        recovered.len() >= acked.len(),
        "{} recovered, {} confirmed",
        recovered.len(),
        acked.len()
    );
    assert_eq!(
        recovered[..acked.len()],
        acked[..],
        "confirmed messages lost"
    );
}

#[test]
fn an_fdatasync_error_that_clears_unblocks_publishers_and_loses_nothing_confirmed() {
    // One fdatasync fails, then the disk works again: the broker reopens the log.
    a_fault_that_clears("fdatasync-error-after=5,for=1");
}

#[test]
fn a_full_disk_that_clears_unblocks_publishers_and_loses_nothing_confirmed() {
    // One write fails with ENOSPC: the records it carried never reach the disk, and the
    // reopened log drops their queue entries (their publishers got nacks).
    a_fault_that_clears("enospc-after=8,for=1");
}

fn a_fault_that_clears(fault: &str) {
    let broker = Broker::start_with(1, &["--storage-fault", fault]);
    let mut client = confirming_client(&broker);
    let mut acked = Vec::new();
    let (mut nacked, mut blocked, mut unblocked) = (0, false, false);
    let mut number = 0u32;
    while nacked == 0 {
        number += 1;
        let body = number.to_string();
        let (ack, saw_blocked, _) = publish_watching_alarm(&mut client, body.as_bytes());
        blocked |= saw_blocked;
        if ack {
            acked.push(body);
        } else {
            nacked += 1;
        }
        assert!(number < 500, "the fault never hit");
    }
    // The alarm is raised, then cleared by the reopen about a second later.
    while !unblocked {
        match client.next_method() {
            (0, Method::ConnectionBlocked(_)) => blocked = true,
            (0, Method::ConnectionUnblocked(_)) => unblocked = true,
            other => panic!("expected the alarm to clear, got {other:?}"),
        }
    }
    assert!(
        blocked,
        "connection.blocked came before connection.unblocked"
    );
    for _ in 0..20 {
        number += 1;
        let body = number.to_string();
        let (ack, saw_blocked, _) = publish_watching_alarm(&mut client, body.as_bytes());
        assert!(
            ack && !saw_blocked,
            "publishing works again after the reopen: ack {ack}, blocked {saw_blocked}, message {number}"
        );
        acked.push(body);
    }
    // A connection opened now is not blocked.
    let mut late = RawClient::open(broker.addr);
    late.open_channel(1);
    late.assert_serving();

    drop(late);
    // The restarted broker has every confirmed message, in order (nacked ones may or may not
    // be among them: a write can reach the disk even though its fdatasync failed).
    let broker = broker.restart();
    let mut reader = RawClient::open(broker.addr);
    reader.open_channel(1);
    let recovered = take_all(&mut reader, "faulty");
    assert_confirmed_in_order(&acked, &recovered);
}

/// Bodies from basic.get until get-empty.
fn take_all(client: &mut RawClient, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(body) = client.get(1, queue) {
        bodies.push(String::from_utf8(body).expect("utf-8 body"));
    }
    bodies
}

fn assert_confirmed_in_order(acked: &[String], recovered: &[String]) {
    let mut rest = recovered.iter();
    for want in acked {
        assert!(
            rest.any(|got| got == want),
            "confirmed message {want} lost or out of order; recovered {recovered:?}"
        );
    }
}

/// tx.commit-ok promises the transaction's persistent messages are on disk: with the log
/// failed, the commit fails (541, as RabbitMQ reports an internal error) instead.
#[test]
fn a_transaction_is_not_committed_while_the_log_is_failed() {
    let broker = Broker::start_with(1, &["--storage-fault", "fdatasync-error-after=5"]);
    let mut client = confirming_client(&broker);
    let mut number = 0u32;
    while publish_persistent(&mut client, number.to_string().as_bytes()).0 {
        number += 1;
        assert!(number < 500, "the fault never hit");
    }
    let mut transactional = RawClient::open(broker.addr);
    // Opened during the alarm: told at once.
    assert!(matches!(
        transactional.next_method(),
        (0, Method::ConnectionBlocked(_))
    ));
    transactional.open_channel(1);
    transactional.send_method(1, hare::protocol::TxSelect {});
    match transactional.next_method() {
        (1, Method::TxSelectOk(_)) => {}
        other => panic!("expected tx.select-ok, got {other:?}"),
    }
    send_persistent(&mut transactional, b"in a transaction");
    transactional.send_method(1, hare::protocol::TxCommit {});
    match transactional.next_method() {
        (0, Method::ConnectionClose(close)) => {
            assert_eq!(close.reply_code, 541, "{close:?}");
            // The code's name once appeared twice ("INTERNAL_ERROR - INTERNAL_ERROR - …").
            assert_eq!(
                close.reply_text,
                "INTERNAL_ERROR - the transaction could not be made durable (disk fault)"
            );
        }
        other => panic!("expected the commit to fail, got {other:?}"),
    }
}

/// Persistent messages arriving faster than the disk takes them (no confirms, large bodies)
/// fill the log's write buffer. Those that do not fit are kept in memory only, never dropped:
/// a publisher without confirms must not lose messages silently.
#[test]
fn persistent_messages_beyond_the_write_buffer_are_queued_not_dropped() {
    const COUNT: usize = 160;
    let broker = Broker::start(1);
    let mut client = RawClient::open(broker.addr);
    client.open_channel(1);
    client.send_method(
        1,
        hare::protocol::QueueDeclare {
            queue: ShortStr::from_static("faulty"),
            durable: true,
            ..Default::default()
        },
    );
    assert!(matches!(
        client.next_method(),
        (1, Method::QueueDeclareOk(_))
    ));
    // 40 MiB in one go: more than the 16 MiB write buffer holds.
    let body = vec![b'x'; 256 * 1024];
    for _ in 0..COUNT {
        send_persistent(&mut client, &body);
    }
    client.send_method(
        1,
        hare::protocol::QueueDeclare {
            queue: ShortStr::from_static("faulty"),
            passive: true,
            ..Default::default()
        },
    );
    match client.next_method() {
        (1, Method::QueueDeclareOk(ok)) => assert_eq!(ok.message_count as usize, COUNT),
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
}

/// Regression: the alarm used to be raised only when a confirm or a transaction waited on the
/// log. A log that failed under publishers without confirms stayed failed with no alarm and
/// no reopen, so persistent messages went on being kept in memory only. Now any failure
/// raises the alarm, and the reopen clears it.
#[test]
fn a_log_failure_under_publishers_without_confirms_raises_and_clears_the_alarm() {
    use hare::protocol::{FrameType, QueueDeclare};
    use std::time::{Duration, Instant};
    let broker = Broker::start_with(1, &["--storage-fault", "fdatasync-error-after=3,for=1"]);
    let mut client = RawClient::open(broker.addr);
    client.open_channel(1);
    client.send_method(
        1,
        QueueDeclare {
            queue: ShortStr::from_static("faulty"),
            durable: true,
            ..Default::default()
        },
    );
    match client.next_method() {
        (1, Method::QueueDeclareOk(_)) => {}
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
    let (mut blocked, mut unblocked) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = 0u32;
    while !unblocked {
        assert!(
            Instant::now() < deadline,
            "no alarm cycle after {sent} messages (blocked {blocked})"
        );
        if !blocked {
            sent += 1;
            send_persistent(&mut client, sent.to_string().as_bytes());
        }
        let frame = match client.read_frame(Duration::from_millis(20)) {
            common::raw::Incoming::Frame(frame) => frame,
            common::raw::Incoming::Timeout => continue,
            common::raw::Incoming::Closed => panic!("the broker closed the connection"),
        };
        if frame.frame_type != FrameType::Method {
            continue;
        }
        match Method::decode(&frame.payload).expect("a method hare sent") {
            Method::ConnectionBlocked(_) => blocked = true,
            Method::ConnectionUnblocked(_) => {
                assert!(
                    blocked,
                    "connection.unblocked came before connection.blocked"
                );
                unblocked = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    client.assert_serving();
}

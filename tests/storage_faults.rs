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
    let mut blocked = false;
    loop {
        match client.next_method() {
            (1, Method::BasicAck(_)) => return (true, blocked),
            (1, Method::BasicNack(_)) => return (false, blocked),
            (0, Method::ConnectionBlocked(_)) => blocked = true,
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

//! The protocol header and the handshake over raw bytes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Broker;

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

#[test]
fn a_bad_protocol_header_gets_ours_and_a_close() {
    let broker = Broker::start(1);
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"AMQP\x00\x00\x08\x00",
        b"\x16\x03\x01\x02\x00\x01\x00\x01",
    ] {
        let mut stream = connect(&broker);
        stream.write_all(garbage).expect("write");
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).expect("read until close");
        assert_eq!(reply, b"AMQP\x00\x00\x09\x01", "reply to {garbage:?}");
    }
}

#[test]
fn the_server_starts_with_connection_start_on_channel_zero() {
    let broker = Broker::start(1);
    let mut stream = connect(&broker);
    stream.write_all(b"AMQP\x00\x00\x09\x01").expect("write");
    let mut header = [0u8; 7];
    stream.read_exact(&mut header).expect("frame header");
    assert_eq!(header[0], 1, "method frame");
    assert_eq!(&header[1..3], &[0, 0], "channel 0");
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    let mut payload = vec![0u8; size + 1];
    stream.read_exact(&mut payload).expect("payload");
    assert_eq!(&payload[..4], &[0, 10, 0, 10], "connection.start");
    assert_eq!(&payload[4..6], &[0, 9], "version 0-9");
    assert_eq!(payload[size], 0xCE, "frame end");
    let text = String::from_utf8_lossy(&payload);
    assert!(text.contains("PLAIN AMQPLAIN"));
    assert!(text.contains("publisher_confirms"));
}

#[test]
fn sigterm_stops_the_broker_cleanly() {
    let broker = Broker::start(2);
    let status = broker.stop();
    assert!(status.success(), "exit status {status:?}");
}

//! A small blocking raw AMQP 0-9-1 client for black-box tests: handshake, arbitrary bytes and frames out, frames and methods in, every read under a timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hare::protocol::{
    parse_frame, write_heartbeat, write_method_frame, BasicGet, BasicPublish, ChannelClose,
    ChannelOpen, ConfirmSelect, ConnectionClose, ConnectionOpen, ConnectionStart,
    ConnectionStartOk, ConnectionTune, ConnectionTuneOk, FieldTable, FieldValue, Frame, FrameType,
    LongStr, Method, QueueDeclare, ReplyCode, ShortStr, PROTOCOL_HEADER,
};

/// How long any single expected reply may take before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What one read produced.
#[derive(Debug)]
pub enum Incoming {
    Frame(Frame),
    Timeout,
    /// The broker closed (or reset) the socket.
    Closed,
}

/// Values for tune-ok; `None` fields echo the server's connection.tune.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tune {
    pub channel_max: Option<u16>,
    pub frame_max: Option<u32>,
    pub heartbeat: Option<u16>,
}

pub struct RawClient {
    pub stream: TcpStream,
    buffer: BytesMut,
    /// Values sent in tune-ok (0 until then).
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
}

impl RawClient {
    /// A bare TCP connection: nothing sent yet.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect to hare");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_write_timeout(Some(REPLY_TIMEOUT))
            .expect("write timeout");
        RawClient {
            stream,
            buffer: BytesMut::new(),
            frame_max: 0,
            channel_max: 0,
            heartbeat: 0,
        }
    }

    /// Connects and completes the handshake as guest/guest on vhost "/", echoing the server's
    /// tune values.
    pub fn open(addr: SocketAddr) -> RawClient {
        RawClient::open_tuned(addr, Tune::default())
    }

    pub fn open_tuned(addr: SocketAddr, tune: Tune) -> RawClient {
        let mut client = RawClient::connect(addr);
        client.send_protocol_header();
        client.expect_start();
        client.send_start_ok("PLAIN", &plain("guest", "guest"), true);
        let server = client.expect_tune();
        client.send_tune_ok(
            tune.channel_max.unwrap_or(server.channel_max),
            tune.frame_max.unwrap_or(server.frame_max),
            tune.heartbeat.unwrap_or(server.heartbeat),
        );
        client.send_open("/");
        match client.next_method() {
            (0, Method::ConnectionOpenOk(_)) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        client
    }

    /// A connection with channel 1 open: the "second client" that must keep working.
    pub fn witness(addr: SocketAddr) -> RawClient {
        let mut client = RawClient::open(addr);
        client.open_channel(1);
        client
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to hare");
    }

    /// Writes, ignoring errors: for bytes sent to a broker that may already have hung up.
    pub fn send_bytes_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn send_protocol_header(&mut self) {
        self.send_bytes(&PROTOCOL_HEADER);
    }

    pub fn send_method(&mut self, channel: u16, method: impl Into<Method>) {
        self.send_bytes(&method_frame(channel, &method.into()));
    }

    /// One frame with an arbitrary type and payload, correctly terminated.
    pub fn send_frame(&mut self, frame_type: u8, channel: u16, payload: &[u8]) {
        self.send_bytes(&raw_frame(frame_type, channel, payload));
    }

    pub fn send_heartbeat(&mut self) {
        let mut out = Vec::new();
        write_heartbeat(&mut out);
        self.send_bytes(&out);
    }

    /// A content header frame for class basic with no properties.
    pub fn send_content_header(&mut self, channel: u16, body_size: u64) {
        self.send_frame(2, channel, &content_header_payload(60, body_size));
    }

    pub fn send_start_ok(&mut self, mechanism: &str, response: &[u8], auth_failure_close: bool) {
        self.send_method(0, start_ok(mechanism, response, auth_failure_close));
    }

    pub fn send_tune_ok(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        self.channel_max = channel_max;
        self.frame_max = frame_max;
        self.heartbeat = heartbeat;
        self.send_method(
            0,
            ConnectionTuneOk {
                channel_max,
                frame_max,
                heartbeat,
            },
        );
    }

    pub fn send_open(&mut self, vhost: &str) {
        self.send_method(
            0,
            ConnectionOpen {
                virtual_host: ShortStr::copy_from_str(vhost).expect("short vhost"),
                ..Default::default()
            },
        );
    }

    pub fn expect_start(&mut self) -> ConnectionStart {
        match self.next_method() {
            (0, Method::ConnectionStart(start)) => start,
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    pub fn expect_tune(&mut self) -> ConnectionTune {
        match self.next_method() {
            (0, Method::ConnectionTune(tune)) => tune,
            other => panic!("expected connection.tune, got {other:?}"),
        }
    }

    /// The next frame, or Timeout / Closed.
    pub fn read_frame(&mut self, timeout: Duration) -> Incoming {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match parse_frame(&mut self.buffer, 0) {
                Ok(Some(frame)) => return Incoming::Frame(frame),
                Ok(None) => {}
                Err(error) => panic!("hare sent a malformed frame: {error}"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Incoming::Timeout;
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .expect("read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Incoming::Closed,
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Incoming::Closed
                }
                Err(error) => panic!("reading from hare: {error}"),
            }
        }
    }

    /// The next frame; fails the test on timeout or close.
    pub fn next_frame(&mut self) -> Frame {
        match self.read_frame(REPLY_TIMEOUT) {
            Incoming::Frame(frame) => frame,
            other => panic!("expected a frame from hare, got {other:?}"),
        }
    }

    /// The next method frame (heartbeats skipped) with its channel.
    pub fn next_method(&mut self) -> (u16, Method) {
        loop {
            let frame = self.next_frame();
            match frame.frame_type {
                FrameType::Heartbeat => continue,
                FrameType::Method => {
                    let method = Method::decode(&frame.payload)
                        .unwrap_or_else(|error| panic!("undecodable method from hare: {error}"));
                    return (frame.channel, method);
                }
                other => panic!(
                    "expected a method frame, got {other:?} on {}",
                    frame.channel
                ),
            }
        }
    }

    /// Asserts the broker closes the socket within `timeout`, sending nothing but heartbeats.
    pub fn expect_socket_closed(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Incoming::Closed => return,
                Incoming::Frame(frame) if frame.frame_type == FrameType::Heartbeat => {}
                Incoming::Frame(frame) => panic!(
                    "expected the socket to close, got {:?} {:?}",
                    frame.frame_type,
                    Method::decode(&frame.payload)
                ),
                Incoming::Timeout => panic!("hare did not close the socket within {timeout:?}"),
            }
        }
    }

    /// Expects connection.close with `code` and a "<NAME> - " reply text, answers close-ok and
    /// asserts the broker then closes the socket.
    pub fn expect_connection_close(&mut self, code: u16) -> ConnectionClose {
        let close = match self.next_method() {
            (0, Method::ConnectionClose(close)) => close,
            other => panic!("expected connection.close {code}, got {other:?}"),
        };
        assert_eq!(close.reply_code, code, "reply code of {close:?}");
        assert_reply_text(code, &close.reply_text);
        self.send_bytes_lossy(&method_frame(
            0,
            &Method::ConnectionCloseOk(Default::default()),
        ));
        self.expect_socket_closed(REPLY_TIMEOUT);
        close
    }

    /// `expect_connection_close`, also checking the offending method's class and method ids.
    pub fn expect_connection_close_for(
        &mut self,
        code: u16,
        class_id: u16,
        method_id: u16,
    ) -> ConnectionClose {
        let close = self.expect_connection_close(code);
        assert_eq!(
            (close.class_id, close.method_id),
            (class_id, method_id),
            "offending method of {close:?}"
        );
        close
    }

    /// Expects channel.close on `channel` with `code` and the offending method's ids, answers
    /// close-ok. The connection stays open.
    pub fn expect_channel_close(
        &mut self,
        channel: u16,
        code: u16,
        class_id: u16,
        method_id: u16,
    ) -> ChannelClose {
        let close = match self.next_method() {
            (ch, Method::ChannelClose(close)) if ch == channel => close,
            other => panic!("expected channel.close {code} on {channel}, got {other:?}"),
        };
        assert_eq!(close.reply_code, code, "reply code of {close:?}");
        assert_reply_text(code, &close.reply_text);
        assert_eq!(
            (close.class_id, close.method_id),
            (class_id, method_id),
            "offending method of {close:?}"
        );
        self.send_method(channel, Method::ChannelCloseOk(Default::default()));
        close
    }

    /// Opens `channel`, declares the durable queue `queue` on it and puts it in confirm mode.
    pub fn confirming_durable_queue(&mut self, channel: u16, queue: &'static str) {
        self.open_channel(channel);
        self.send_method(
            channel,
            QueueDeclare {
                queue: ShortStr::from_static(queue),
                durable: true,
                ..Default::default()
            },
        );
        match self.next_method() {
            (c, Method::QueueDeclareOk(_)) if c == channel => {}
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
        self.send_method(channel, ConfirmSelect { nowait: false });
        match self.next_method() {
            (c, Method::ConfirmSelectOk(_)) if c == channel => {}
            other => panic!("expected confirm.select-ok, got {other:?}"),
        }
    }

    pub fn open_channel(&mut self, channel: u16) {
        self.send_method(channel, ChannelOpen::default());
        match self.next_method() {
            (ch, Method::ChannelOpenOk(_)) if ch == channel => {}
            other => panic!("expected channel.open-ok on {channel}, got {other:?}"),
        }
    }

    pub fn declare_queue(&mut self, channel: u16, queue: &str) {
        self.send_method(
            channel,
            QueueDeclare {
                queue: ShortStr::copy_from_str(queue).expect("short queue name"),
                ..Default::default()
            },
        );
        match self.next_method() {
            (ch, Method::QueueDeclareOk(ok)) if ch == channel && ok.queue == queue => {}
            other => panic!("expected queue.declare-ok for {queue}, got {other:?}"),
        }
    }

    /// basic.publish to the default exchange, header and one body frame in one write.
    pub fn publish(&mut self, channel: u16, routing_key: &str, body: &[u8]) {
        let mut out = method_frame(
            channel,
            &Method::BasicPublish(BasicPublish {
                routing_key: ShortStr::copy_from_str(routing_key).expect("short key"),
                ..Default::default()
            }),
        );
        out.extend(raw_frame(
            2,
            channel,
            &content_header_payload(60, body.len() as u64),
        ));
        if !body.is_empty() {
            out.extend(raw_frame(3, channel, body));
        }
        self.send_bytes(&out);
    }

    /// basic.publish to the default exchange with delivery-mode 2 (persistent) or 1, header
    /// and one body frame in one write.
    pub fn publish_with_mode(
        &mut self,
        channel: u16,
        routing_key: &str,
        body: &[u8],
        persistent: bool,
    ) {
        let mut out = method_frame(
            channel,
            &Method::BasicPublish(BasicPublish {
                routing_key: ShortStr::copy_from_str(routing_key).expect("short key"),
                ..Default::default()
            }),
        );
        let mut header = 60u16.to_be_bytes().to_vec();
        header.extend_from_slice(&[0, 0]);
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        // Property flags: only delivery-mode (bit 12).
        header.extend_from_slice(&0x1000u16.to_be_bytes());
        header.push(if persistent { 2 } else { 1 });
        out.extend(raw_frame(2, channel, &header));
        if !body.is_empty() {
            out.extend(raw_frame(3, channel, body));
        }
        self.send_bytes(&out);
    }

    /// basic.get with no-ack: the body, or None on get-empty.
    pub fn get(&mut self, channel: u16, queue: &str) -> Option<Vec<u8>> {
        self.send_method(
            channel,
            BasicGet {
                queue: ShortStr::copy_from_str(queue).expect("short queue name"),
                no_ack: true,
                ..Default::default()
            },
        );
        match self.next_method() {
            (ch, Method::BasicGetEmpty(_)) if ch == channel => return None,
            (ch, Method::BasicGetOk(_)) if ch == channel => {}
            other => panic!("expected basic.get-ok or get-empty, got {other:?}"),
        }
        let header = self.next_frame();
        assert_eq!(header.frame_type, FrameType::Header, "content header");
        let size = u64::from_be_bytes(header.payload[4..12].try_into().expect("8 bytes"));
        let mut body = Vec::new();
        while (body.len() as u64) < size {
            let frame = self.next_frame();
            assert_eq!(frame.frame_type, FrameType::Body, "body frame");
            body.extend_from_slice(&frame.payload);
        }
        Some(body)
    }

    /// Declares a fresh queue on channel 1, publishes to it and gets the message back.
    pub fn assert_serving(&mut self) {
        let queue = format!("witness-{}", fastrand::u64(..));
        let body = format!("still here {queue}");
        self.declare_queue(1, &queue);
        self.publish(1, &queue, body.as_bytes());
        assert_eq!(
            self.get(1, &queue).as_deref(),
            Some(body.as_bytes()),
            "the witness connection got its message back"
        );
    }
}

/// A SASL PLAIN response.
pub fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

pub fn method_frame(channel: u16, method: &Method) -> Vec<u8> {
    let mut out = Vec::new();
    write_method_frame(&mut out, channel, method);
    out
}

/// type:u8 channel:u16 size:u32 payload 0xCE.
pub fn raw_frame(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![frame_type];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .expect("payload size")
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

/// A content header payload: class, weight 0, body size, no properties.
pub fn content_header_payload(class_id: u16, body_size: u64) -> Vec<u8> {
    let mut out = class_id.to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&body_size.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// RabbitMQ's reply text format: "<NAME> - <explanation>".
fn assert_reply_text(code: u16, text: &ShortStr) {
    let name = ReplyCode::from_code(code).map_or("?", ReplyCode::name);
    assert!(
        text.to_string_lossy().starts_with(&format!("{name} - ")),
        "reply text {text:?} for code {code}"
    );
}

/// connection.start-ok with `mechanism` and `response`, announcing the
/// authentication_failure_close and connection.blocked capabilities.
pub fn start_ok(mechanism: &str, response: &[u8], auth_failure_close: bool) -> ConnectionStartOk {
    let capabilities: FieldTable = [
        (
            ShortStr::from_static("authentication_failure_close"),
            FieldValue::Bool(auth_failure_close),
        ),
        (
            ShortStr::from_static("connection.blocked"),
            FieldValue::Bool(true),
        ),
    ]
    .into_iter()
    .collect();
    let properties: FieldTable = [(
        ShortStr::from_static("capabilities"),
        FieldValue::Table(capabilities),
    )]
    .into_iter()
    .collect();
    ConnectionStartOk {
        client_properties: properties,
        mechanism: ShortStr::copy_from_str(mechanism).expect("short mechanism"),
        response: LongStr::from_bytes(Bytes::copy_from_slice(response)),
        locale: ShortStr::from_static("en_US"),
    }
}

//! `Connection`: one blocking AMQP 0-9-1 connection: handshake, synchronous channel and queue
//! methods, and a clean close. The hot paths (publishing, consuming, confirms) take the socket
//! and buffers apart with `into_parts` and run their own loops over them.
//!
//! Handshake: the TLS handshake for `amqps://`, then protocol header → `connection.start` → `start-ok` (PLAIN) → `tune` → `tune-ok`
//! (the server's frame_max and channel_max, heartbeats off) → `connection.open` → `open-ok`.
//! A broker that closes the connection or a channel is reported as `ClientError` with its reply
//! code and text; `connection.blocked` is remembered, since a blocked broker stops reading.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use super::stream::Stream;
use std::time::Duration;

use bytes::Bytes;
use hare_protocol::{
    write_method_frame, ChannelClose, ChannelCloseOk, ChannelOpen, ConnectionClose,
    ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable, FieldValue,
    FrameType, LongStr, Method, ShortStr, PROTOCOL_HEADER,
};

use super::error::ClientError;
use super::read_buffer::{scan_frame, ReadBuffer};
use super::server_info::ServerInfo;
use super::uri::AmqpUri;

/// frame_max hareperf asks for when the broker leaves it unlimited (0).
pub const FRAME_MAX_DEFAULT: u32 = 131_072;
/// channel_max hareperf asks for when the broker leaves it unlimited (0).
pub const CHANNEL_MAX_DEFAULT: u16 = 2047;
/// How long any synchronous request may wait for its answer.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection during setup: socket, receive buffer, send buffer and the negotiated limits.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    read: ReadBuffer,
    out: Vec<u8>,
    pub frame_max: u32,
    pub channel_max: u16,
    pub server: ServerInfo,
    /// Set while the broker has said `connection.blocked` and not yet `unblocked`.
    pub blocked: bool,
}

/// What the hot loops take over from a `Connection`.
#[derive(Debug)]
pub struct ConnectionParts {
    pub stream: Stream,
    pub read: ReadBuffer,
    pub frame_max: u32,
}

impl Connection {
    /// Connects and runs the handshake. `name` shows up in the broker's connection list.
    pub fn open(uri: &AmqpUri, name: &str) -> Result<Connection, ClientError> {
        let socket = TcpStream::connect(uri.address())?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(RPC_TIMEOUT))?;
        let stream = match (uri.secure, &uri.tls) {
            (false, _) => Stream::Plain(socket),
            (true, Some(tls)) => Stream::tls(socket, tls.0.clone(), &uri.host)?,
            (true, None) => {
                return Err(ClientError::Uri {
                    uri: uri.address(),
                    reason: "amqps:// needs --tls-ca FILE or --insecure",
                })
            }
        };
        let mut connection = Connection {
            stream,
            read: ReadBuffer::with_size(64 * 1024),
            out: Vec::with_capacity(4096),
            frame_max: FRAME_MAX_DEFAULT,
            channel_max: CHANNEL_MAX_DEFAULT,
            server: ServerInfo::default(),
            blocked: false,
        };
        connection.handshake(uri, name)?;
        Ok(connection)
    }

    fn handshake(&mut self, uri: &AmqpUri, name: &str) -> Result<(), ClientError> {
        self.stream.write_all(&PROTOCOL_HEADER)?;
        let Method::ConnectionStart(start) = self.next_method(0, "connection.start")? else {
            return Err(ClientError::Unexpected {
                expected: "connection.start",
                got: "another method",
            });
        };
        self.server = ServerInfo::from_properties(&start.server_properties);
        let response = format!("\0{}\0{}", uri.user, uri.password);
        self.send(
            0,
            &Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: client_properties(name),
                mechanism: ShortStr::from_static("PLAIN"),
                response: LongStr::from_bytes(Bytes::from(response.into_bytes())),
                locale: ShortStr::from_static("en_US"),
            }),
        )?;
        let tune = match self.next_method(0, "connection.tune")? {
            Method::ConnectionTune(tune) => tune,
            other => {
                return Err(ClientError::Unexpected {
                    expected: "connection.tune",
                    got: other.name(),
                })
            }
        };
        self.frame_max = if tune.frame_max == 0 {
            FRAME_MAX_DEFAULT
        } else {
            tune.frame_max
        };
        self.channel_max = if tune.channel_max == 0 {
            CHANNEL_MAX_DEFAULT
        } else {
            tune.channel_max
        };
        // Heartbeats stay off: every hareperf loop is busy reading or writing anyway, and a
        // heartbeat timer thread per connection would cost more than it tells.
        self.send(
            0,
            &Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: self.channel_max,
                frame_max: self.frame_max,
                heartbeat: 0,
            }),
        )?;
        let vhost = ShortStr::copy_from_str(&uri.vhost).ok_or(ClientError::Uri {
            uri: uri.vhost.clone(),
            reason: "vhost longer than 255 bytes",
        })?;
        self.rpc(
            0,
            Method::ConnectionOpen(ConnectionOpen {
                virtual_host: vhost,
                ..Default::default()
            }),
            "connection.open-ok",
        )?;
        Ok(())
    }

    /// Opens channel `channel`.
    pub fn open_channel(&mut self, channel: u16) -> Result<(), ClientError> {
        self.rpc(
            channel,
            Method::ChannelOpen(ChannelOpen::default()),
            "channel.open-ok",
        )?;
        Ok(())
    }

    /// Closes channel `channel` cleanly (its unacked deliveries go back to their queues).
    pub fn close_channel(&mut self, channel: u16) -> Result<(), ClientError> {
        self.rpc(
            channel,
            Method::ChannelClose(ChannelClose {
                reply_code: 200,
                reply_text: ShortStr::from_static("hareperf done"),
                ..Default::default()
            }),
            "channel.close-ok",
        )?;
        Ok(())
    }

    /// Sends a synchronous request and returns the broker's answer on the same channel.
    pub fn rpc(
        &mut self,
        channel: u16,
        request: Method,
        expected: &'static str,
    ) -> Result<Method, ClientError> {
        self.send(channel, &request)?;
        self.next_method(channel, expected)
    }

    /// Writes one method frame at once.
    pub fn send(&mut self, channel: u16, method: &Method) -> Result<(), ClientError> {
        self.out.clear();
        write_method_frame(&mut self.out, channel, method);
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// Writes pre-encoded frames (for example a `PublishTemplate`'s) as they are.
    pub fn write_raw(&mut self, frames: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(frames)?;
        Ok(())
    }

    /// Reads until a method arrives on `channel`; handles the broker's closes and blocked
    /// notices on the way. Content and other channels' frames are skipped: during setup none
    /// are expected.
    fn next_method(&mut self, channel: u16, expected: &'static str) -> Result<Method, ClientError> {
        loop {
            while let Some((frame, used)) = scan_frame(self.read.unread(), self.frame_max)? {
                let method = (frame.frame_type == FrameType::Method)
                    .then(|| Method::decode(&Bytes::copy_from_slice(frame.payload)))
                    .transpose()?;
                let frame_channel = frame.channel;
                self.read.consume(used);
                let Some(method) = method else { continue };
                match method {
                    Method::ConnectionBlocked(_) => self.blocked = true,
                    Method::ConnectionUnblocked(_) => self.blocked = false,
                    Method::ConnectionClose(close) => {
                        self.send(0, &Method::ConnectionCloseOk(ConnectionCloseOk {}))?;
                        return Err(connection_closed(&close));
                    }
                    Method::ChannelClose(close) if frame_channel == channel => {
                        self.send(channel, &Method::ChannelCloseOk(ChannelCloseOk {}))?;
                        return Err(channel_closed(channel, &close));
                    }
                    method if frame_channel == channel => return Ok(method),
                    _ => {}
                }
            }
            match self.read.fill(&mut self.stream, self.frame_max) {
                Ok(0) => return Err(ClientError::Eof),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    return Err(ClientError::Timeout {
                        seconds: RPC_TIMEOUT.as_secs(),
                        waiting_for: expected,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends `connection.close` and waits for `close-ok`.
    pub fn close(mut self) -> Result<(), ClientError> {
        let result = self.rpc(
            0,
            Method::ConnectionClose(ConnectionClose {
                reply_code: 200,
                reply_text: ShortStr::from_static("hareperf done"),
                ..Default::default()
            }),
            "connection.close-ok",
        );
        let _ = self.stream.shutdown(Shutdown::Both);
        result.map(|_| ())
    }

    /// Hands the socket and the receive buffer (with any frames already read) to a hot loop.
    pub fn into_parts(self) -> ConnectionParts {
        ConnectionParts {
            stream: self.stream,
            read: self.read,
            frame_max: self.frame_max,
        }
    }
}

/// The error for a `connection.close` from the broker.
pub fn connection_closed(close: &ConnectionClose) -> ClientError {
    ClientError::ConnectionClosed {
        code: close.reply_code,
        text: close.reply_text.to_string_lossy(),
        method: method_name(close.class_id, close.method_id),
    }
}

/// The error for a `channel.close` from the broker.
pub fn channel_closed(channel: u16, close: &ChannelClose) -> ClientError {
    ClientError::ChannelClosed {
        channel,
        code: close.reply_code,
        text: close.reply_text.to_string_lossy(),
        method: method_name(close.class_id, close.method_id),
    }
}

fn method_name(class_id: u16, method_id: u16) -> String {
    hare_protocol::method_name(class_id, method_id)
        .map_or_else(|| format!("{class_id}.{method_id}"), str::to_string)
}

/// True for the errors a socket read timeout produces.
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn client_properties(name: &str) -> FieldTable {
    let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));
    let mut capabilities = FieldTable::new();
    for capability in [
        "publisher_confirms",
        "basic.nack",
        "connection.blocked",
        "consumer_cancel_notify",
        "authentication_failure_close",
    ] {
        capabilities.insert(ShortStr::from_static(capability), FieldValue::Bool(true));
    }
    let mut table = FieldTable::new();
    table.insert(ShortStr::from_static("product"), text("hareperf"));
    table.insert(
        ShortStr::from_static("version"),
        text(env!("CARGO_PKG_VERSION")),
    );
    table.insert(
        ShortStr::from_static("connection_name"),
        text(&name.chars().take(200).collect::<String>()),
    );
    table.insert(
        ShortStr::from_static("capabilities"),
        FieldValue::Table(capabilities),
    );
    table
}

//! `Session`: one blocking connection for the soak's workers, which mix synchronous requests,
//! publishes, confirms and deliveries on several channels of the same socket. Unlike the hot
//! loops of the other scenarios it decodes every frame and assembles each delivery's body,
//! because the soak checks messages by their ids, not rates.
//!
//! Frames that arrive while a request waits for its answer (deliveries, confirms, other
//! channels' methods) are queued and handed out by `next_event` afterwards, in arrival order.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hare_protocol::{
    scan_frame, write_content, write_method_frame, BasicProperties, BasicPublish, ChannelCloseOk,
    ChannelOpen, ConnectionClose, ConnectionCloseOk, ContentHeader, FrameType, Method, ShortStr,
};

use crate::client::connection::{channel_closed, connection_closed, is_timeout};
use crate::client::read_buffer::ReadBuffer;
use crate::client::topology::short;
use crate::client::{AmqpUri, ClientError, Connection, Stream};

/// How long a synchronous request may wait for its answer. Short: a broker that was just
/// killed answers nothing, and the worker should reconnect rather than wait.
const RPC_WAIT: Duration = Duration::from_secs(10);

/// What the broker sent, as the soak's workers need it.
#[derive(Debug)]
pub enum Event {
    /// A method without content on `channel` (confirms, cancels, answers nobody waited for).
    Method { channel: u16, method: Method },
    /// A `basic.deliver` with its assembled body.
    Deliver {
        channel: u16,
        delivery_tag: u64,
        redelivered: bool,
        body: Vec<u8>,
    },
}

/// A delivery whose content is still arriving.
#[derive(Debug)]
struct Partial {
    delivery_tag: u64,
    redelivered: bool,
    body_size: Option<u64>,
    body: Vec<u8>,
}

/// One connection; see the module doc.
#[derive(Debug)]
pub struct Session {
    stream: Stream,
    read: ReadBuffer,
    frame_max: u32,
    out: Vec<u8>,
    partial: HashMap<u16, Partial>,
    queued: VecDeque<Event>,
}

impl Session {
    /// Connects, runs the handshake and opens `channels` (1..=channels).
    /// `poll` is how long `next_event` waits for a frame before it reports that nothing came.
    pub fn open(
        uri: &AmqpUri,
        name: &str,
        channels: u16,
        poll: Duration,
    ) -> Result<Session, ClientError> {
        let connection = Connection::open(uri, name)?;
        let parts = connection.into_parts();
        parts.stream.set_read_timeout(Some(poll))?;
        let mut session = Session {
            stream: parts.stream,
            read: parts.read,
            frame_max: parts.frame_max,
            out: Vec::with_capacity(4096),
            partial: HashMap::new(),
            queued: VecDeque::new(),
        };
        for channel in 1..=channels {
            session.rpc(channel, Method::ChannelOpen(ChannelOpen::default()))?;
        }
        Ok(session)
    }

    /// Writes one method frame.
    pub fn send(&mut self, channel: u16, method: &Method) -> Result<(), ClientError> {
        self.out.clear();
        write_method_frame(&mut self.out, channel, method);
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// Publishes `body` with `properties` (method, header and body frames in one write).
    pub fn publish(
        &mut self,
        channel: u16,
        exchange: &str,
        routing_key: &str,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Result<(), ClientError> {
        let publish = Method::BasicPublish(BasicPublish {
            exchange: short(exchange)?,
            routing_key: short(routing_key)?,
            ..Default::default()
        });
        let mut raw = Vec::new();
        properties.encode(&mut raw);
        self.out.clear();
        write_method_frame(&mut self.out, channel, &publish);
        write_content(&mut self.out, channel, 60, &raw, body, self.frame_max);
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// Sends a synchronous request and returns the broker's answer on the same channel;
    /// whatever else arrives meanwhile is kept for `next_event`.
    pub fn rpc(&mut self, channel: u16, request: Method) -> Result<Method, ClientError> {
        self.send(channel, &request)?;
        let deadline = Instant::now() + RPC_WAIT;
        loop {
            match self.read_event()? {
                Some(Event::Method {
                    channel: on,
                    method,
                }) if on == channel => return Ok(method),
                Some(event) => self.queued.push_back(event),
                None => {
                    if Instant::now() >= deadline {
                        return Err(ClientError::Timeout {
                            seconds: RPC_WAIT.as_secs(),
                            waiting_for: request.name(),
                        });
                    }
                }
            }
        }
    }

    /// The next event: a queued one first, else one read within the poll interval; `None`
    /// if nothing came.
    pub fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        if let Some(event) = self.queued.pop_front() {
            return Ok(Some(event));
        }
        self.read_event()
    }

    /// Closes the connection cleanly (unacked deliveries go back to their queues).
    pub fn close(mut self) -> Result<(), ClientError> {
        let result = self.rpc(
            0,
            Method::ConnectionClose(ConnectionClose {
                reply_code: 200,
                reply_text: ShortStr::from_static("hareperf soak done"),
                ..Default::default()
            }),
        );
        let _ = self.stream.shutdown(Shutdown::Both);
        result.map(|_| ())
    }

    /// Drops the connection without closing it, as a crashing client does.
    pub fn drop_socket(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Reads frames until one event is complete, or the poll interval passes without data.
    fn read_event(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            while let Some((frame, used)) = scan_frame(self.read.unread(), self.frame_max)? {
                let frame_type = frame.frame_type;
                let channel = frame.channel;
                let payload = Bytes::copy_from_slice(frame.payload);
                self.read.consume(used);
                if let Some(event) = self.on_frame(frame_type, channel, payload)? {
                    return Ok(Some(event));
                }
            }
            match self.read.fill(&mut self.stream, self.frame_max) {
                Ok(0) => return Err(ClientError::Eof),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One frame: an event when it completes one, an error when the broker closed something.
    fn on_frame(
        &mut self,
        frame_type: FrameType,
        channel: u16,
        payload: Bytes,
    ) -> Result<Option<Event>, ClientError> {
        match frame_type {
            FrameType::Method => self.on_method(channel, Method::decode(&payload)?),
            FrameType::Header => {
                let header = ContentHeader::decode(&payload)?;
                let partial = self
                    .partial
                    .get_mut(&channel)
                    .ok_or(ClientError::Malformed {
                        what: "content header without a method",
                    })?;
                partial.body_size = Some(header.body_size);
                Ok(self.complete(channel))
            }
            FrameType::Body => {
                let partial = self
                    .partial
                    .get_mut(&channel)
                    .ok_or(ClientError::Malformed {
                        what: "body frame without a method",
                    })?;
                partial.body.extend_from_slice(&payload);
                Ok(self.complete(channel))
            }
            FrameType::Heartbeat => Ok(None),
        }
    }

    fn on_method(&mut self, channel: u16, method: Method) -> Result<Option<Event>, ClientError> {
        match method {
            Method::ConnectionClose(close) => {
                self.send(0, &Method::ConnectionCloseOk(ConnectionCloseOk {}))?;
                Err(connection_closed(&close))
            }
            Method::ChannelClose(close) => {
                self.send(channel, &Method::ChannelCloseOk(ChannelCloseOk {}))?;
                Err(channel_closed(channel, &close))
            }
            Method::BasicDeliver(deliver) => {
                self.partial.insert(
                    channel,
                    Partial {
                        delivery_tag: deliver.delivery_tag,
                        redelivered: deliver.redelivered,
                        body_size: None,
                        body: Vec::new(),
                    },
                );
                Ok(None)
            }
            Method::BasicReturn(_) | Method::BasicGetOk(_) => Err(ClientError::Unexpected {
                expected: "no content but deliveries",
                got: method.name(),
            }),
            method => Ok(Some(Event::Method { channel, method })),
        }
    }

    /// The delivery on `channel` if its whole body has arrived.
    fn complete(&mut self, channel: u16) -> Option<Event> {
        let partial = self.partial.get(&channel)?;
        let size = usize::try_from(partial.body_size?).ok()?;
        if partial.body.len() < size {
            return None;
        }
        let partial = self.partial.remove(&channel)?;
        Some(Event::Deliver {
            channel,
            delivery_tag: partial.delivery_tag,
            redelivered: partial.redelivered,
            body: partial.body,
        })
    }
}

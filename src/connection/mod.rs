//! One client connection: the per-socket state machine. It owns its socket for life on the
//! shard that accepted it: handshake (`handshake.rs`), then a loop that reads frames, assembles
//! content (`content.rs`) and runs channel methods (`dispatch.rs` and the method files), while
//! a writer task drains the output buffer and a heartbeat task watches both directions.
//! Errors are AMQP exceptions: a channel exception closes one channel, a connection exception
//! the connection, and neither ever touches another connection.
//!
//! This layer sits on the shard runtime (`crate::shard`), which never names it: an open
//! connection registers with its shard as a `ConnectionEndpoint` (implemented in `events.rs`),
//! and `crate::server` hands `serve` to start-up.

pub mod ack_timeout;
pub mod basic_methods;
pub mod channel;
pub mod confirm;
pub mod content;
pub mod direct_reply;
pub mod dispatch;
pub mod events;
pub mod exchange_methods;
pub mod handshake;
pub mod heartbeat;
pub mod io;
pub mod moving;
pub mod permissions;
pub mod publish;
pub mod queue_methods;
pub mod requests;
pub mod server_properties;
pub mod stats;
pub mod trace;
pub mod transport;

use crate::fast_map::FastMap;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::unix::io::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::net::TcpStream;

use crate::exception::{Exception, ExceptionScope};
use crate::ids::{ChannelId, ConnectionId, QueueId, ShardId};
use crate::protocol::{
    write_method_frame, ChannelClose, ConnectionClose, FieldTable, Frame, FrameType, HardError,
    Method, ShortStr,
};
use crate::queue::consumer::ChannelKey;
use crate::shard::endpoint::{ConnectionEndpoint, ForcedClose, IncomingConnection, Listener};
use crate::shard::message::{DeleteConditions, QueueOp, ShardMessage};
use crate::shard::Shard;
use crate::vhost::route::RouteScratch;
use channel::Channel;
use io::{CreditKey, FrameReader, Output, ReadError};

/// How long a connection the client closed waits for the client to close its socket.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a connection with broken framing lets the client read our connection.close.
pub const FRAMING_ERROR_GRACE: Duration = Duration::from_millis(200);

/// What the client told us it supports (client-properties.capabilities).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCapabilities {
    pub consumer_cancel_notify: bool,
    pub connection_blocked: bool,
    pub authentication_failure_close: bool,
}

/// Negotiated and per-connection state, borrowed briefly (never across an await).
pub struct ConnectionState {
    pub vhost: ShortStr,
    pub user: ShortStr,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat_interval: Duration,
    pub capabilities: ClientCapabilities,
    pub client_properties: FieldTable,
    /// The SASL mechanism of start-ok (PLAIN, AMQPLAIN or EXTERNAL).
    pub auth_mechanism: ShortStr,
    pub channels: FastMap<u16, Channel>,
    /// Exclusive queues this connection declared, deleted when it closes.
    pub exclusive_queues: Vec<(ShardId, QueueId)>,
    pub route_scratch: RouteScratch,
    pub route_queues: Vec<QueueId>,
    /// The queue this connection is deleting, if any: server-side cancels of its own consumers
    /// on that queue wait until delete-ok is written, the order RabbitMQ uses.
    pub deleting_queue: Option<QueueId>,
    pub deferred_cancels: Vec<(ChannelId, ShortStr)>,
    /// The user's permissions in the vhost, cached (`permissions.rs`).
    pub access: permissions::ConnectionAccess,
}

impl ConnectionState {
    /// The queues the last routing pass found, leaving an empty list to reuse.
    pub fn take_routed(&mut self) -> Vec<QueueId> {
        std::mem::take(&mut self.route_queues)
    }
}

/// The part of a connection other tasks on its shard reach: its output and state.
pub struct ConnectionShared {
    pub id: ConnectionId,
    /// The shard that owns the connection, for event handlers that route (firehose tracing).
    /// Weak: the shard holds the connection.
    pub shard: std::rc::Weak<Shard>,
    pub peer: SocketAddr,
    /// Our end of the socket (the management API names connections by both ends).
    pub local: SocketAddr,
    /// When the handshake finished, ms since the epoch.
    pub connected_at_ms: u64,
    /// The TLS session's protocol and cipher suite, for an AMQPS connection.
    pub tls: Option<crate::tls::session_info::SessionInfo>,
    /// What the frame reader has read, for the statistics.
    pub received: Rc<crate::shard::stats::SocketCounters>,
    pub output: Output,
    pub state: RefCell<ConnectionState>,
    pub last_read: Cell<Instant>,
    fd: RawFd,
    /// Secret part of this connection's direct reply-to tokens.
    pub reply_secret: u64,
    /// How long we wait for connection.close-ok after sending connection.close.
    close_timeout: Duration,
    /// We sent connection.close and wait for close-ok.
    closing: Cell<bool>,
    /// connection.blocked was sent.
    blocked: Cell<bool>,
    /// The connection has published: queue memory pressure slows its reads.
    pub published: Cell<bool>,
    /// Channels whose confirms are to be written before the next write (`events::confirms_due`).
    pub confirms_due: RefCell<Vec<ChannelId>>,
    /// It published while the memory or disk alarm was up: its socket is not read until
    /// every such alarm has cleared (RabbitMQ's `blocked` reader state).
    pub held: Cell<bool>,
    /// Shuts the socket if our connection.close goes unanswered.
    close_timer: RefCell<Option<glommio::Task<()>>>,
    /// Wakes the consumer timeout task (`ack_timeout.rs`).
    pub ack_timer: ack_timeout::AckTimer,
}

impl ConnectionShared {
    /// RabbitMQ's name for the connection, `"<peer> -> <local>"` (the management API's key).
    pub fn name(&self) -> String {
        format!("{} -> {}", self.peer, self.local)
    }

    pub fn write_method(&self, channel: u16, method: &Method) {
        self.output
            .write(|out| write_method_frame(out, channel, method));
    }

    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// connection.blocked was sent and not yet lifted.
    pub fn is_blocked(&self) -> bool {
        self.blocked.get()
    }

    /// Starts closing the connection with a connection.close; the socket is shut if the
    /// client does not answer in time.
    pub fn begin_close(&self, code: u16, text: String, class_id: u16, method_id: u16) {
        if self.closing.replace(true) {
            return;
        }
        self.write_method(
            0,
            &Method::ConnectionClose(ConnectionClose {
                reply_code: code,
                reply_text: ShortStr::from_str_truncated(&text),
                class_id,
                method_id,
            }),
        );
        let fd = self.fd;
        let timeout = self.close_timeout();
        // Kept with the connection and cancelled when it ends: the descriptor number may
        // belong to another connection by the time the timer fires.
        let timer = glommio::spawn_local(async move {
            glommio::timer::sleep(timeout).await;
            io::shutdown_socket(fd);
        });
        *self.close_timer.borrow_mut() = Some(timer);
    }

    fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    pub fn channel_key(&self, channel: ChannelId) -> ChannelKey {
        ChannelKey {
            connection: self.id,
            channel,
        }
    }
}

/// Serves one connection until it closes or moves to another shard.
pub async fn serve(shard: Rc<Shard>, incoming: IncomingConnection) {
    match incoming {
        IncomingConnection::Accepted(stream, listener) => {
            serve_accepted(shard, stream, listener).await;
        }
        IncomingConnection::Moved(moved) => {
            if let Some(opened) = moving::adopt(&shard, moved) {
                run_open(shard, opened).await;
            }
        }
    }
}

/// A connection past its handshake: freshly opened here, or moved here from another shard.
pub struct Opened {
    pub id: ConnectionId,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// When the handshake finished, ms since the epoch.
    pub connected_at_ms: u64,
    pub reader: FrameReader,
    pub output: Output,
    pub state: ConnectionState,
    pub writer_stream: transport::WriteHalf,
    /// The TLS session's protocol and cipher suite, for an AMQPS connection.
    pub tls: Option<crate::tls::session_info::SessionInfo>,
    pub vhost_slot: crate::shard::vhost_limits::VHostSlot,
    /// The connection has published (`ConnectionShared::published`).
    pub published: bool,
    /// It moved here from another shard (`moving`).
    pub moved: bool,
}

/// Serves an accepted socket: the handshake, then the open connection.
async fn serve_accepted(shard: Rc<Shard>, stream: TcpStream, listener: Listener) {
    let peer = match stream.peer_addr() {
        Ok(peer) => peer,
        Err(_) => return,
    };
    let local = stream.local_addr().unwrap_or(peer);
    let _ = stream.set_nodelay(true);
    let id = shard.next_connection_id();
    let Some((reader, negotiated)) = open(&shard, stream, listener, peer, id).await else {
        return;
    };
    let opened = Opened {
        id,
        peer,
        local,
        connected_at_ms: crate::queue::expiry::now_ms(),
        reader,
        output: negotiated.output,
        state: negotiated.state,
        writer_stream: negotiated.writer_stream,
        vhost_slot: negotiated.vhost_slot,
        tls: negotiated.tls,
        published: false,
        moved: false,
    };
    run_open(shard, opened).await;
}

/// Serves an open connection until it closes or moves to another shard.
async fn run_open(shard: Rc<Shard>, opened: Opened) {
    let Opened {
        id,
        peer,
        local,
        connected_at_ms,
        mut reader,
        output,
        state,
        writer_stream,
        vhost_slot,
        tls,
        published,
        moved,
    } = opened;
    let connection = Rc::new(ConnectionShared {
        id,
        shard: Rc::downgrade(&shard),
        peer,
        local,
        connected_at_ms,
        tls,
        received: reader.received(),
        output,
        state: RefCell::new(state),
        last_read: Cell::new(Instant::now()),
        fd: reader.raw_fd(),
        reply_secret: fastrand::u64(..),
        close_timeout: shard.config.close_timeout,
        closing: Cell::new(false),
        close_timer: RefCell::new(None),
        confirms_due: RefCell::new(Vec::new()),
        blocked: Cell::new(false),
        published: Cell::new(published),
        held: Cell::new(false),
        ack_timer: ack_timeout::AckTimer::default(),
    });
    if moved {
        shard.connections.insert_moved(id, connection.clone());
    } else {
        shard.connections.insert(id, connection.clone());
    }
    let writer = {
        let connection = connection.clone();
        let shard = shard.clone();
        let stream = writer_stream;
        glommio::spawn_local(async move {
            connection
                .output
                .run_writer(
                    stream,
                    shard.id,
                    || events::flush_confirms(&connection),
                    |key, count| return_credit(&shard, key, count),
                )
                .await;
        })
    };
    let heartbeat = glommio::spawn_local(heartbeat::run(connection.clone()));
    let ack_timeout = glommio::spawn_local(ack_timeout::run(shard.clone(), connection.clone()));
    if let Some(reason) = shard.alarm_reason() {
        connection.block(&reason);
    }
    if shard.shutting_down.get() {
        connection.close_forced(ForcedClose::Shutdown);
    }
    tracing::debug!(%peer, connection = %id, "connection open");

    let ending = run_frames(&shard, &connection, &mut reader).await;
    if let Ending::Move(move_to) = ending {
        // Nothing is buffered or being written (`moving::destination` waited for that), so
        // the tasks stop with nothing lost; the socket lives on in `move_to`'s descriptor.
        drop(writer);
        drop(heartbeat);
        drop(ack_timeout);
        shard.connections.remove_moved(id);
        moving::hand_over(&shard, &connection, &reader, vhost_slot, move_to);
        return;
    }

    clean_up(&shard, &connection);
    connection.output.close_after_flush();
    // Give the writer a moment to send what is left (close-ok, a final close).
    let _ = futures_lite::future::or(writer, async {
        glommio::timer::sleep(Duration::from_secs(1)).await;
    })
    .await;
    drop(heartbeat);
    drop(ack_timeout);
    shard.connections.remove(id);
    drop(vhost_slot);
    match ending {
        // RabbitMQ lets a client that closed the connection close the socket itself after
        // close-ok: closing first could reset a client thread still waiting for its close-ok.
        Ending::ClientClosed => reader.drain(CLOSE_GRACE).await,
        // After a framing error the stream is out of sync: give the client a moment to read
        // our connection.close, discarding what it sends.
        Ending::FramingError => reader.drain_until_close_ok(FRAMING_ERROR_GRACE).await,
        Ending::Closed | Ending::PeerGone | Ending::Move(_) => {}
    }
    drop(connection.close_timer.borrow_mut().take());
    io::shutdown_socket(reader.raw_fd());
    tracing::debug!(%peer, connection = %id, "connection closed");
}

/// The transport (TLS handshake on an AMQPS socket) and the AMQP handshake, together under
/// the handshake timeout; None (logged at debug) if the client did not get through.
async fn open(
    shard: &Rc<Shard>,
    stream: TcpStream,
    listener: Listener,
    peer: SocketAddr,
    id: ConnectionId,
) -> Option<(FrameReader, handshake::Negotiated)> {
    let deadline = Instant::now() + shard.config.handshake_timeout;
    let opened = match listener {
        Listener::Amqp => transport::plain(stream),
        Listener::Amqps => transport::tls(shard, stream, deadline).await,
    };
    let transport = match opened {
        Ok(transport) => transport,
        Err(error) => {
            // Debug, like a failed AMQP handshake: a scanner or a misconfigured client
            // must not flood the log.
            tracing::debug!(%peer, %error, "connection not opened");
            return None;
        }
    };
    let mut reader = FrameReader::new(transport.reader);
    let tls = transport.tls;
    let handshake = handshake::run(
        shard,
        &mut reader,
        transport.writer,
        transport.peer_certificate,
        peer,
        id,
    );
    let timed_out = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        None
    };
    match futures_lite::future::or(async { Some(handshake.await) }, timed_out).await {
        Some(Ok(mut negotiated)) => {
            negotiated.tls = tls;
            Some((reader, negotiated))
        }
        Some(Err(error)) => {
            tracing::debug!(%peer, %error, "handshake failed");
            None
        }
        None => {
            tracing::debug!(%peer, "handshake timed out");
            io::shutdown_socket(reader.raw_fd());
            None
        }
    }
}

fn return_credit(shard: &Rc<Shard>, key: CreditKey, count: u32) {
    shard.send(
        key.owner,
        ShardMessage::Queue {
            queue: key.queue,
            op: QueueOp::Credit {
                consumer: key.consumer,
                count,
            },
        },
    );
}

/// How a connection's frame loop ended, which decides how its socket is closed.
enum Ending {
    /// The client sent connection.close and we answered close-ok.
    ClientClosed,
    /// Our connection.close was answered with close-ok.
    Closed,
    /// The byte stream broke framing; we sent connection.close.
    FramingError,
    /// The socket closed or failed.
    PeerGone,
    /// The connection moves to another shard before running the frame it carries.
    Move(moving::MoveTo),
}

/// Queues hold too much in RAM: wait until they drain, up to `PUBLISHER_PAUSE_MAX`. A log
/// whose write buffer is over half full, or too many publish bytes on their way to a shard:
/// wait until that is over (`shard::pressure`).
async fn pause_publisher(shard: &Shard) {
    let started = Instant::now();
    let pressure = &shard.mesh.pressure;
    while pressure.must_wait()
        || (pressure.queues_over()
            && started.elapsed() < crate::shard::pressure::PUBLISHER_PAUSE_MAX)
    {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// The connection published while the memory or disk alarm was up: read nothing more until
/// every such alarm has cleared, unless the connection is closing (its close-ok must be read).
/// A socket not read fills its kernel buffers and TCP stops the publisher; what this
/// connection's consumers receive is written by other tasks and goes on. The alarms are shared
/// atomics, so a 10 ms poll sees a clear within a tick; reading resumes only once the shard's
/// housekeeping tick has acted on the clear (`Shard::alarm_generation_seen`), so a client
/// told connection.blocked is told connection.unblocked before it is read again, however
/// briefly the alarm cleared.
async fn hold_while_alarmed(shard: &Shard, connection: &ConnectionShared) {
    let alarmed = || {
        let alarms = &shard.mesh.alarms;
        alarms.any() || shard.alarm_generation_seen.get() != alarms.generation()
    };
    while alarmed() && !connection.is_closing() && !connection.output.is_finished() {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    connection.held.set(false);
    // The heartbeat monitor did not count the time we were not reading.
    connection.last_read.set(Instant::now());
}

/// The frame loop: runs until the peer closes, a close handshake completes, or a fatal error.
async fn run_frames(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    reader: &mut FrameReader,
) -> Ending {
    loop {
        if connection.held.get() {
            hold_while_alarmed(shard, connection).await;
        }
        if !reader.has_buffered() && shard.mesh.is_congested() {
            // Back-pressure: stop reading until the shard's outboxes drain.
            shard.mesh.wait_uncongested().await;
        }
        if !reader.has_buffered() && connection.published.get() && shard.mesh.pressure.any() {
            pause_publisher(shard).await;
        }
        let frame_max = connection.state.borrow().frame_max;
        let frame = match reader.next_frame(frame_max).await {
            Ok(frame) => frame,
            Err(ReadError::Frame(error)) => {
                // The stream is no longer in sync: report and drop (RabbitMQ does the same).
                connection.begin_close(
                    HardError::FrameError.code(),
                    format!("{} - {error}", HardError::FrameError.name()),
                    0,
                    0,
                );
                return Ending::FramingError;
            }
            Err(_) => return Ending::PeerGone,
        };
        connection.last_read.set(Instant::now());
        if connection.is_closing() {
            if let Some(ending) = closing_frame_ends_connection(connection, &frame) {
                return ending;
            }
            continue;
        }
        if let Some(to) = moving::destination(shard, connection, &frame) {
            if let Some(move_to) = moving::prepare(shard, connection, reader, to, &frame).await {
                return Ending::Move(move_to);
            }
        }
        let channel = frame.channel;
        match dispatch::frame(shard, connection, frame).await {
            Ok(dispatch::Flow::Continue) => {}
            Ok(dispatch::Flow::Stop) => return Ending::ClientClosed,
            Err(exception) => {
                if raise(shard, connection, channel, exception) {
                    // A fatal connection error: keep reading only for close-ok.
                    continue;
                }
            }
        }
        if connection.output.is_finished() {
            return Ending::PeerGone;
        }
    }
}

/// While closing, only connection.close and close-ok matter.
fn closing_frame_ends_connection(connection: &ConnectionShared, frame: &Frame) -> Option<Ending> {
    if frame.frame_type != FrameType::Method || frame.channel != 0 {
        return None;
    }
    match Method::decode(&frame.payload) {
        Ok(Method::ConnectionCloseOk(_)) => Some(Ending::Closed),
        Ok(Method::ConnectionClose(_)) => {
            connection.write_method(0, &Method::ConnectionCloseOk(Default::default()));
            Some(Ending::ClientClosed)
        }
        _ => None,
    }
}

/// Reports an exception: closes the channel or starts closing the connection. Returns true
/// for connection-level exceptions.
pub fn raise(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: u16,
    exception: Exception,
) -> bool {
    match exception.scope {
        ExceptionScope::Channel(_) if channel != 0 => {
            tracing::debug!(connection = %connection.id, channel, text = %exception.reply_text(), "channel exception");
            close_channel(shard, connection, ChannelId(channel), &exception);
            false
        }
        _ => {
            tracing::debug!(connection = %connection.id, text = %exception.reply_text(), "connection exception");
            connection.begin_close(
                exception.reply_code(),
                exception.reply_text(),
                exception.class_id,
                exception.method_id,
            );
            true
        }
    }
}

/// Sends channel.close and releases the channel's resources; its id stays taken until the
/// client's close-ok.
fn close_channel(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    exception: &Exception,
) {
    let mut guard = connection.state.borrow_mut();
    let state = &mut *guard;
    let Some(open) = state.channels.get_mut(&channel.0) else {
        return;
    };
    if !open.is_open() {
        return;
    }
    if let Some(tracker) = open.confirm.as_mut() {
        events::write_confirms(connection, channel, tracker);
    }
    release_channel(shard, connection.id, &state.vhost, open);
    open.state = channel::ChannelState::Closing;
    drop(guard);
    connection.write_method(
        channel.0,
        &Method::ChannelClose(ChannelClose {
            reply_code: exception.reply_code(),
            reply_text: ShortStr::from_str_truncated(&exception.reply_text()),
            class_id: exception.class_id,
            method_id: exception.method_id,
        }),
    );
}

/// Tells every queue the channel touched that it is gone: they requeue its unacked messages
/// (redelivered=true) and drop its consumers.
pub fn release_channel(
    shard: &Rc<Shard>,
    connection: ConnectionId,
    vhost: &ShortStr,
    channel: &mut Channel,
) {
    let key = ChannelKey {
        connection,
        channel: channel.id,
    };
    for (owner, queue) in channel.touched_queues.drain() {
        shard.send(
            owner,
            ShardMessage::Queue {
                queue,
                op: QueueOp::ChannelClosed {
                    channel: key,
                    vhost: vhost.clone(),
                },
            },
        );
    }
    channel.unacked.clear();
    channel.consumers.clear();
    channel.direct_reply_consumer = None;
    channel.content = content::ContentState::Idle;
    channel.transaction = None;
}

/// Releases everything the connection held: channels, then its exclusive queues.
fn clean_up(shard: &Rc<Shard>, connection: &Rc<ConnectionShared>) {
    let mut state = connection.state.borrow_mut();
    let channels: Vec<u16> = state.channels.keys().copied().collect();
    for id in channels {
        if let Some(mut channel) = state.channels.remove(&id) {
            stats::channel_closed(shard, &channel);
            release_channel(shard, connection.id, &state.vhost, &mut channel);
        }
    }
    let vhost = state.vhost.clone();
    for (owner, queue) in state.exclusive_queues.drain(..) {
        shard.send(
            owner,
            ShardMessage::Queue {
                queue,
                op: QueueOp::Delete {
                    reply_to: None,
                    conditions: DeleteConditions::NONE,
                    vhost: vhost.clone(),
                },
            },
        );
    }
}

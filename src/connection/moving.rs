//! Moving a connection to the shard of the queue it consumes from or publishes to.
//!
//! A connection belongs to the shard that accepted it, and a queue to the shard of the
//! connection that declared it, so a consumer or a publisher often sits on one shard and its
//! queue on another. Then every publish, delivery, ack and flow credit crosses the mesh, and at
//! low rates each crossing wakes a parked shard, which costs several times the work of the
//! message itself (docs/ARCHITECTURE.md, Moving connections to their queues). So when a
//! connection that holds nothing tied to its shard sends a basic.consume for a queue on another
//! shard, or its first basic.publish to such a queue through the default exchange, it moves
//! there first: its socket (a duplicated descriptor), its negotiated state and channels, and
//! the bytes read but not parsed yet, starting with that method frame, which the new shard
//! runs as its first frame. The client sees nothing of it. TLS connections stay: their
//! session lives in this shard's memory.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::net::TcpStream;

use crate::connection::channel::Channel;
use crate::connection::io::{self, FrameReader, Output};
use crate::connection::permissions::ConnectionAccess;
use crate::connection::requests::{queue_name, resolve_queue};
use crate::connection::transport;
use crate::connection::{events, ClientCapabilities, ConnectionShared, ConnectionState, Opened};
use crate::fast_map::FastMap;
use crate::ids::{ChannelId, ConnectionId, ShardId};
use crate::protocol::{write_method_frame, FieldTable, Frame, FrameType, Method, ShortStr};
use crate::shard::endpoint::MovedConnection;
use crate::shard::message::ShardMessage;
use crate::shard::stats::SocketCounters;
use crate::shard::vhost_limits::VHostSlot;
use crate::shard::{startup, Shard};
use crate::vhost::route::RouteScratch;

/// How long a connection about to move waits for its writer to put what it has on the socket.
/// Replies to the methods before basic.consume are usually written long before it arrives; a
/// socket that stays busy longer than this keeps its connection where it is.
const OUTPUT_SETTLE_MAX: Duration = Duration::from_millis(50);

/// basic.consume's and basic.publish's class and method ids, the first four bytes of their
/// frame payloads.
const BASIC_CONSUME_IDS: [u8; 4] = [0, 60, 0, 20];
const BASIC_PUBLISH_IDS: [u8; 4] = [0, 60, 0, 40];

/// A connection that is about to move: where, its own descriptor of the socket, and the frame
/// the new shard runs first.
pub struct MoveTo {
    to: ShardId,
    socket: OwnedFd,
    first_frame: Vec<u8>,
}

/// Everything an open connection is, on its way to another shard.
struct Moving {
    from: ConnectionId,
    socket: OwnedFd,
    peer: SocketAddr,
    local: SocketAddr,
    connected_at_ms: u64,
    /// The frame that made it move, then what had been read after it.
    unread: Vec<u8>,
    received: (u64, u64),
    sent: (u64, u64),
    vhost: ShortStr,
    user: ShortStr,
    frame_max: u32,
    channel_max: u16,
    heartbeat_interval: Duration,
    capabilities: ClientCapabilities,
    client_properties: FieldTable,
    auth_mechanism: ShortStr,
    channels: FastMap<u16, Channel>,
    published: bool,
}

/// The shard the connection should move to before running `frame`, if any: `frame` is a
/// basic.consume for an existing queue on another shard, or the connection's first
/// basic.publish, to the default exchange, for such a queue; and the connection holds nothing
/// that ties it to this shard (`holds_nothing_here`). A publish through any other exchange
/// stays: where it goes depends on bindings and headers not read yet.
pub fn destination(shard: &Shard, connection: &ConnectionShared, frame: &Frame) -> Option<ShardId> {
    if !shard.config.move_connections || frame.frame_type != FrameType::Method {
        return None;
    }
    let ids = frame.payload.get(..4)?;
    let queue = if ids == BASIC_CONSUME_IDS {
        let Ok(Method::BasicConsume(consume)) = Method::decode(&frame.payload) else {
            return None;
        };
        consume.queue
    } else if ids == BASIC_PUBLISH_IDS && !connection.published.get() {
        let Ok(Method::BasicPublish(publish)) = Method::decode(&frame.payload) else {
            return None;
        };
        if !publish.exchange.is_empty() || publish.routing_key.is_empty() {
            return None;
        }
        publish.routing_key
    } else {
        return None;
    };
    if !holds_nothing_here(connection) {
        return None;
    }
    let name = queue_name(connection, ChannelId(frame.channel), &queue).ok()?;
    let queue = resolve_queue(shard, connection, &name).ok()??;
    (queue.owner != shard.id).then_some(queue.owner)
}

/// Nothing of the connection lives on this shard but the connection itself: no consumers,
/// deliveries, confirms, transactions or content under way, no exclusive queues (they know
/// their owner by connection id), no queue it ever consumed from or got from (their channel
/// state names it by id), and no close or alarm in progress.
fn holds_nothing_here(connection: &ConnectionShared) -> bool {
    if connection.is_closing()
        || connection.is_blocked()
        || connection.held.get()
        || connection.output.is_finished()
    {
        return false;
    }
    let state = connection.state.borrow();
    state.exclusive_queues.is_empty()
        && state.deleting_queue.is_none()
        && state.deferred_cancels.is_empty()
        && state.channels.values().all(|channel| {
            channel.is_open()
                && channel.content.is_idle()
                && channel.consumers.is_empty()
                && channel.unacked.is_empty()
                && channel.touched_queues.is_empty()
                && channel.direct_reply_consumer.is_none()
                && channel.transaction.is_none()
                && channel
                    .confirm
                    .as_ref()
                    .is_none_or(|tracker| tracker.outstanding() == 0)
        })
}

/// Waits until everything written so far is on the socket, then checks again that the move
/// still holds (anything may have happened meanwhile) and takes a descriptor of the socket
/// for the new shard. None: the connection stays and runs the frame here.
pub async fn prepare(
    shard: &Shard,
    connection: &ConnectionShared,
    reader: &FrameReader,
    to: ShardId,
    frame: &Frame,
) -> Option<MoveTo> {
    if !reader.is_plain() {
        // A TLS session's state lives in this shard's memory: the connection stays.
        return None;
    }
    let started = Instant::now();
    while !connection.output.is_idle() {
        if started.elapsed() > OUTPUT_SETTLE_MAX || connection.output.is_finished() {
            return None;
        }
        glommio::timer::sleep(Duration::from_micros(200)).await;
    }
    if destination(shard, connection, frame) != Some(to) {
        return None;
    }
    let socket = match duplicate_fd(reader.raw_fd()) {
        Ok(socket) => socket,
        Err(error) => {
            if !crate::shard::descriptors::out_of_descriptors(&error) {
                tracing::warn!(%error, "cannot duplicate a socket to move its connection");
            }
            return None;
        }
    };
    let Ok(method) = Method::decode(&frame.payload) else {
        return None;
    };
    let mut first_frame = Vec::new();
    write_method_frame(&mut first_frame, frame.channel, &method);
    Some(MoveTo {
        to,
        socket,
        first_frame,
    })
}

/// Sends the connection to its new shard. Its tasks here are stopped and it is out of the
/// shard's table; the caller drops the rest, which closes this shard's descriptors but not
/// the socket.
pub fn hand_over(
    shard: &Shard,
    connection: &ConnectionShared,
    reader: &FrameReader,
    vhost_slot: VHostSlot,
    move_to: MoveTo,
) {
    vhost_slot.hand_over();
    // Clears the channels' "confirms due" marks (nothing is outstanding, so nothing is
    // written): the new shard starts with an empty list of due channels.
    events::flush_confirms(connection);
    let MoveTo {
        to,
        socket,
        mut first_frame,
    } = move_to;
    first_frame.extend_from_slice(reader.unread());
    let mut state = connection.state.borrow_mut();
    let moving = Moving {
        from: connection.id,
        socket,
        peer: connection.peer,
        local: connection.local,
        connected_at_ms: connection.connected_at_ms,
        unread: first_frame,
        received: (
            connection.received.octets(),
            connection.received.operations(),
        ),
        sent: (
            connection.output.sent.octets(),
            connection.output.sent.operations(),
        ),
        vhost: state.vhost.clone(),
        user: state.user.clone(),
        frame_max: state.frame_max,
        channel_max: state.channel_max,
        heartbeat_interval: state.heartbeat_interval,
        capabilities: state.capabilities,
        client_properties: state.client_properties.clone(),
        auth_mechanism: state.auth_mechanism.clone(),
        channels: std::mem::take(&mut state.channels),
        published: connection.published.get(),
    };
    tracing::debug!(connection = %connection.id, to = to.0, "connection moves to its queue's shard");
    shard.send(to, ShardMessage::Moved(MovedConnection(Box::new(moving))));
}

/// Takes over a connection another shard moved here: a new id on this shard, the same socket,
/// state and channels. None if it cannot be served (logged; the client sees its socket close).
pub fn adopt(shard: &Rc<Shard>, moved: MovedConnection) -> Option<Opened> {
    let moving = match moved.0.downcast::<Moving>() {
        Ok(moving) => *moving,
        Err(_) => {
            tracing::error!("a moved connection of an unknown kind arrived");
            return None;
        }
    };
    // SAFETY: the descriptor was duplicated for this move and nothing else owns it.
    let stream = unsafe { TcpStream::from_raw_fd(moving.socket.into_raw_fd()) };
    let fd = stream.as_raw_fd();
    let Ok(transport) = transport::plain(stream) else {
        io::shutdown_socket(fd);
        // Gives the connection's place in its vhost's count back under its old id.
        drop(VHostSlot::adopt(shard, moving.from));
        return None;
    };
    let id = shard.next_connection_id();
    let channels = u32::try_from(moving.channels.len()).unwrap_or(u32::MAX);
    startup::connection_moved(shard, moving.from, id, channels);
    let (octets, reads) = moving.received;
    let reader = FrameReader::resume(
        transport.reader,
        &moving.unread,
        SocketCounters::carried_over(octets, reads),
    );
    let mut output = Output::new();
    output.sent = SocketCounters::carried_over(moving.sent.0, moving.sent.1);
    let access = ConnectionAccess::new(&moving.user, &moving.vhost);
    let state = ConnectionState {
        vhost: moving.vhost,
        user: moving.user,
        frame_max: moving.frame_max,
        channel_max: moving.channel_max,
        heartbeat_interval: moving.heartbeat_interval,
        capabilities: moving.capabilities,
        client_properties: moving.client_properties,
        auth_mechanism: moving.auth_mechanism,
        channels: moving.channels,
        exclusive_queues: Vec::new(),
        route_scratch: RouteScratch::default(),
        route_queues: Vec::new(),
        deleting_queue: None,
        deferred_cancels: Vec::new(),
        access,
    };
    tracing::debug!(from = %moving.from, connection = %id, "connection moved here");
    Some(Opened {
        id,
        peer: moving.peer,
        local: moving.local,
        connected_at_ms: moving.connected_at_ms,
        reader,
        output,
        state,
        writer_stream: transport.writer,
        tls: None,
        vhost_slot: VHostSlot::adopt(shard, id),
        published: moving.published,
        moved: true,
    })
}

/// A descriptor of its own for the same socket.
fn duplicate_fd(fd: std::os::fd::RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: dup(2) of a descriptor the connection owns; the copy is owned by the result.
    let copy = unsafe { libc::dup(fd) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

//! What the shard runtime needs from a connection, declared here so the runtime never names
//! the connection layer. The AMQP connection layer (the `connection` module) sits on top of
//! the runtime: every open connection registers itself as a `ConnectionEndpoint` in
//! `Shard.connections`, and start-up is handed a `ServeConnection` that it runs for each socket
//! it accepts (the `server` module wires the two together).
//!
//! Adding a feature: something another shard tells one connection is a new `ConnectionEvent`
//! variant, handled by the connection layer in `handle_event`; something the runtime does to
//! every connection of its shard (an alarm, a shutdown) is a new method here.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_lite::future::BoxedLocal;
use glommio::net::TcpStream;

use crate::fast_map::FastMap;
use crate::ids::ConnectionId;
use crate::shard::message::{ConnectionEvent, ConsumeOk};
use crate::shard::stats::{ChannelCounters, ClosedChannels, ConnectionStats};
use crate::shard::Shard;

/// A connection owned by this shard, as the runtime reaches it. Every call runs to completion
/// on the shard's thread without awaiting (inbox handlers call it).
pub trait ConnectionEndpoint {
    /// An event for this connection arrived through the mesh.
    fn handle_event(&self, event: ConnectionEvent);
    /// A consumer of this connection was registered on its queue's owner. Called as the reply
    /// arrives, before the task awaiting it runs, so consume-ok reaches the client ahead of
    /// the deliveries that follow on the same inbox channel.
    fn consumed(&self, consume_ok: &ConsumeOk);
    /// An alarm is raised (storage, memory or disk): tell the client to stop publishing,
    /// with `reason` as the connection.blocked reason.
    fn block(&self, reason: &str);
    /// Every alarm cleared.
    fn unblock(&self);
    /// Close the connection with 320 CONNECTION_FORCED.
    fn close_forced(&self, reason: ForcedClose);
    /// A copy of the connection's statistics and those of its channels (`shard::stats`).
    fn stats(&self) -> ConnectionStats;
    /// A user or vhost was deleted: the connection closes (320) if it is theirs.
    fn revoked(&self, revoked: &Revoked);
    /// The number of channels the connection has open if its user is `user` (for the user's
    /// `max-channels`, `shard::user_limits`).
    fn channels_of(&self, user: &str) -> Option<usize>;
}

/// What an access change took away from connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    User(String),
    VHost(String),
}

impl Revoked {
    /// RabbitMQ's explanation (`rabbit_connection_tracking`), after `CONNECTION_FORCED - `.
    pub fn text(&self) -> String {
        match self {
            Revoked::User(name) => format!("user '{name}' is deleted"),
            Revoked::VHost(name) => format!("vhost '{name}' is deleted"),
        }
    }
}

/// Why the broker closes a connection the client did not ask to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForcedClose {
    /// The broker is stopping.
    Shutdown,
    /// An operator closed it (management API `DELETE /api/connections/{name}`), with the
    /// reason they gave.
    Operator(String),
}

impl ForcedClose {
    /// The explanation sent after `CONNECTION_FORCED - `, in RabbitMQ's words.
    pub fn text(&self) -> &str {
        match self {
            ForcedClose::Shutdown => "broker forced connection closure with reason 'shutdown'",
            ForcedClose::Operator(text) => text,
        }
    }
}

/// Which listener accepted a socket: the connection layer runs the TLS handshake first on
/// an AMQPS one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Amqp,
    Amqps,
}

/// A connection for this shard to serve: a socket it was handed at accept, or a connection
/// another shard moved here whole.
pub enum IncomingConnection {
    /// A freshly accepted socket, already bound to this shard's executor, and its listener.
    Accepted(TcpStream, Listener),
    /// An open connection another shard handed over (the connection layer moves a connection
    /// to its queue's shard); only that layer reads what is inside.
    Moved(MovedConnection),
}

/// An open connection on its way between shards: its socket and state, opaque to the runtime.
pub struct MovedConnection(pub Box<dyn std::any::Any + Send>);

impl std::fmt::Debug for MovedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MovedConnection")
    }
}

/// Serves one connection until it closes. The future is boxed once per connection, never per
/// message.
pub type ServeConnection = fn(Rc<Shard>, IncomingConnection) -> BoxedLocal<()>;

/// Serves the control plane (the management HTTP API and the metrics endpoint) on the
/// metadata shard, from the listeners start-up bound. Runs in its own task queue with fewer
/// shares than the data path; the future ends when the shard shuts down.
pub type ServeControl = fn(Rc<Shard>, ControlListeners) -> BoxedLocal<()>;

/// The control plane's listening sockets, each present if configured.
pub struct ControlListeners {
    pub management: Option<glommio::net::TcpListener>,
    pub metrics: Option<glommio::net::TcpListener>,
}

/// The connections a shard owns, by id.
#[derive(Default)]
pub struct Connections {
    endpoints: RefCell<FastMap<ConnectionId, Rc<dyn ConnectionEndpoint>>>,
    /// Connections registered and removed since start (the management API's churn rates).
    created: Cell<u64>,
    closed: Cell<u64>,
    /// Channels of this shard's connections closed since start, with their counts.
    closed_channels: Cell<ClosedChannels>,
}

impl Connections {
    pub fn insert(&self, id: ConnectionId, endpoint: Rc<dyn ConnectionEndpoint>) {
        let old = self.endpoints.borrow_mut().insert(id, endpoint);
        assert!(old.is_none(), "connection ids are never reused");
        self.created.set(self.created.get() + 1);
    }

    pub fn remove(&self, id: ConnectionId) {
        if self.endpoints.borrow_mut().remove(&id).is_some() {
            self.closed.set(self.closed.get() + 1);
        }
    }

    /// Registers a connection that moved here from another shard: open all along, so not
    /// counted as created.
    pub fn insert_moved(&self, id: ConnectionId, endpoint: Rc<dyn ConnectionEndpoint>) {
        let old = self.endpoints.borrow_mut().insert(id, endpoint);
        assert!(old.is_none(), "connection ids are never reused");
    }

    /// Forgets a connection that moves to another shard: it is not closed.
    pub fn remove_moved(&self, id: ConnectionId) {
        self.endpoints.borrow_mut().remove(&id);
    }

    pub fn created(&self) -> u64 {
        self.created.get()
    }

    pub fn closed(&self) -> u64 {
        self.closed.get()
    }

    /// A channel left its connection (closed by either side, or with its connection):
    /// keeps what it counted in the shard's totals.
    pub fn channel_closed(&self, counters: &ChannelCounters, confirm_mode: bool) {
        let mut closed = self.closed_channels.get();
        closed.add(counters, confirm_mode);
        self.closed_channels.set(closed);
    }

    pub fn closed_channels(&self) -> ClosedChannels {
        self.closed_channels.get()
    }

    /// The connection, if it is still open. The map is not borrowed while the caller uses it.
    pub fn get(&self, id: ConnectionId) -> Option<Rc<dyn ConnectionEndpoint>> {
        self.endpoints.borrow().get(&id).cloned()
    }

    /// Every open connection, collected first so a call on one may open or close others.
    pub fn all(&self) -> Vec<Rc<dyn ConnectionEndpoint>> {
        self.endpoints.borrow().values().cloned().collect()
    }

    /// `all`, with each connection's id.
    pub fn all_with_ids(&self) -> Vec<(ConnectionId, Rc<dyn ConnectionEndpoint>)> {
        let endpoints = self.endpoints.borrow();
        (endpoints.iter())
            .map(|(id, endpoint)| (*id, endpoint.clone()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.borrow().is_empty()
    }
}

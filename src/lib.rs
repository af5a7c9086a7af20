//! Hare: an AMQP 0-9-1 message broker on thread-per-core glommio that RabbitMQ's clients use
//! unchanged.
//!
//! Module map, in dependency order (`main → server → connection → shard → {vhost, routing,
//! queue} → storage`; `protocol` is a leaf everyone may use):
//!
//! - [`protocol`]: the AMQP 0-9-1 codec (crate `hare-protocol`, shared with hareperf). Pure: no
//!   I/O, no glommio, no broker types.
//! - [`routing`]: exchange kinds and their binding tables (direct, fanout, topic trie,
//!   headers). Pure.
//! - [`vhost`]: metadata (vhosts, exchanges, queues, bindings), identical on every shard,
//!   changed only by the metadata shard through versioned deltas; routing over it.
//! - [`queue`]: a queue's ready list, unacked map and consumers, owned by one shard.
//! - [`shard`]: the thread-per-core runtime: executors, the shard mesh and its typed messages,
//!   the queues each shard owns, start-up and shut-down. It does not know the connection
//!   layer: connections register with it through `shard::endpoint`.
//! - [`connection`]: the per-socket AMQP state machine on top of the runtime: handshake,
//!   channels, content assembly, methods, heartbeats.
//! - [`management`]: the management HTTP API (RabbitMQ-compatible) and its statistics
//!   collector, on shard 0 beside the connection layer; it reaches the broker only through
//!   shard messages and shard 0's read-only registry copy.
//! - [`server`]: the broker, wired: starts the runtime with the connection layer and the
//!   management API plugged in. `main.rs` calls it.
//! - [`tls`]: TLS for the AMQPS and HTTPS listeners (rustls): the certificate files, their
//!   reload, the server handshake and a session split for a connection's two tasks. A leaf
//!   like `protocol`: nothing of AMQP or the shards.
//! - [`config`] and [`storage_fault`]: what the command line sets (the latter the test-only
//!   `--storage-fault` value); they import nothing of the layers above.

pub mod config;
pub mod connection;
pub mod exception;
pub mod fast_map;
pub mod ids;
pub mod management;
pub use hare_protocol as protocol;
pub mod queue;
pub mod routing;
pub mod server;
pub mod shard;
pub mod storage_fault;
pub mod tls;
pub mod vhost;

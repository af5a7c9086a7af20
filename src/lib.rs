//! Hare: an AMQP 0-9-1 message broker on thread-per-core glommio that RabbitMQ's clients use
//! unchanged.
//!
//! Module map, in dependency order (`shard → connection → {vhost, routing, queue}`; `protocol`
//! is a leaf everyone may use):
//!
//! - [`protocol`]: the AMQP 0-9-1 codec (crate `hare-protocol`, shared with hareperf). Pure: no
//!   I/O, no glommio, no broker types.
//! - [`routing`]: exchange kinds and their binding tables (direct, fanout, topic trie,
//!   headers). Pure.
//! - [`vhost`]: metadata (vhosts, exchanges, queues, bindings), identical on every shard,
//!   changed only by the metadata shard through versioned deltas; routing over it.
//! - [`queue`]: a queue's ready list, unacked map and consumers, owned by one shard.
//! - [`connection`]: the per-socket state machine: handshake, channels, content assembly,
//!   methods, heartbeats.
//! - [`shard`]: executors, the shard mesh and its typed messages, start-up and shut-down.

pub mod config;
pub mod connection;
pub mod exception;
pub mod fast_map;
pub mod ids;
pub use hare_protocol as protocol;
pub mod queue;
pub mod routing;
pub mod shard;
pub mod vhost;

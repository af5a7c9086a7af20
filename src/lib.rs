//! Hare: an AMQP 0-9-1 message broker on thread-per-core glommio.
//!
//! Module map (dependency direction: `shard → connection → {vhost, routing, queue}`;
/// `protocol` is a leaf everyone may use):

/// `protocol`: the AMQP 0-9-1 codec. Pure: no I/O, no glommio, no broker types.
pub mod protocol;
/// `routing`: exchange kinds and their binding tables. Pure: no I/O.
pub mod routing;

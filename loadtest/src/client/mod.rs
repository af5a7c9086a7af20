//! A lean, blocking AMQP 0-9-1 client on `hare-protocol`: std threads and `TcpStream`s, no
//! async runtime, so that hareperf spends its CPU on messages and not on scheduling.
//!
//! - `uri`: `amqp://user:pass@host:port/vhost` (or `amqps://`).
//! - `stream`: the socket, or TLS over it; `tls`: the TLS client configuration.
//! - `connection`: handshake, synchronous requests, clean close, and `into_parts` for hot loops.
//! - `topology`: declares, binds, purge, delete, qos, confirm.select, consume.
//! - `read_buffer`: one big receive buffer and the in-place frame scanner.
//! - `inbound`: in-place decoders for deliveries, confirms and content headers.
//! - `publish_template`: one message encoded once, stamped per publish.
//! - `delayed_publish`: a publish whose delay (expiration or `x-delay`) differs per message.
//! - `server_info`: the broker's product and version.
//! - `error`: `ClientError`.

pub mod connection;
pub mod delayed_publish;
pub mod error;
pub mod inbound;
pub mod publish_template;
pub mod read_buffer;
pub mod server_info;
pub mod stream;
pub mod tls;
pub mod topology;
pub mod uri;

pub use connection::{Connection, ConnectionParts};
pub use error::ClientError;
pub use server_info::ServerInfo;
pub use stream::Stream;
pub use topology::QueueOptions;
pub use uri::AmqpUri;

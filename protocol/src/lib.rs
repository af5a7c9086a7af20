//! The AMQP 0-9-1 codec, as RabbitMQ speaks it. Pure: no I/O, no glommio, no broker types.
//!
//! - `frame`: protocol header, frame splitting (`parse_frame`) and frame writers.
//! - `methods`: every class and method, declared once; `Method::decode` / `encode`.
//! - `properties`: content headers and `BasicProperties`.
//! - `types`: `ShortStr`, `LongStr`, `FieldTable`, `FieldValue`.
//! - `reply`: reply codes split into `SoftError` (channel) and `HardError` (connection).
//! - `error`: `DecodeError`, the one error type of every decoder.
//! - `wire` (private): the `Reader` cursor and writer helpers everything above is built on.
//!
//! Nothing here panics on peer bytes: decoders return `DecodeError` / `FrameError`.

pub mod error;
pub mod frame;
pub mod methods;
pub mod properties;
pub mod reply;
pub mod types;
mod wire;

#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod test_support;

pub use error::DecodeError;
pub use frame::{
    parse_frame, parse_protocol_header, scan_frame, write_content, write_heartbeat,
    write_method_frame, Frame, FrameError, FrameRef, FrameType, ProtocolHeader, FRAME_END,
    FRAME_HEADER_SIZE, FRAME_OVERHEAD_SIZE, PROTOCOL_HEADER,
};
pub use methods::Method;
pub use methods::*;
pub use properties::{BasicProperties, ContentHeader};
pub use reply::{HardError, ReplyCode, SoftError};
pub use types::{FieldTable, FieldValue, LongStr, ShortStr};
pub use wire::NESTING_DEPTH_MAX;

//! `DecodeError`: why a peer's bytes could not be decoded.
//!
//! Every decoder in `protocol` reports failures with this one type. Each variant carries the
//! byte offset (within the payload being decoded) where the problem was found, so a log line
//! points at the exact byte. The connection layer maps any `DecodeError` on a method or header
//! frame to a 501 FRAME_ERROR connection close ("cannot decode"); nothing here panics.

/// Why a method, content header or field table could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload ended before a value was complete.
    #[error("truncated at offset {offset}: need {need} bytes, have {have}")]
    Truncated {
        /// Offset where the incomplete value starts.
        offset: usize,
        /// Bytes the value needs.
        need: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// A field-table or array value used a type tag RabbitMQ does not know.
    #[error("unknown field value type tag 0x{tag:02x} at offset {offset}")]
    UnknownFieldType {
        /// Offset of the tag octet.
        offset: usize,
        /// The tag octet.
        tag: u8,
    },
    /// The class-id/method-id pair names no method of AMQP 0-9-1 (with RabbitMQ extensions).
    #[error("unknown method {class_id}/{method_id}")]
    UnknownMethod {
        /// Class id read from the payload.
        class_id: u16,
        /// Method id read from the payload.
        method_id: u16,
    },
    /// Bytes were left over after the last argument.
    #[error("{extra} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Offset of the first unexpected byte.
        offset: usize,
        /// How many bytes were left.
        extra: usize,
    },
    /// A short string was invalid (kept for callers that validate short strings further).
    #[error("invalid short string at offset {offset}")]
    InvalidShortStr {
        /// Offset of the length octet.
        offset: usize,
    },
    /// A content header carried a class id other than the one expected.
    #[error("content header class {found}, expected {expected}")]
    BadClass {
        /// Class id we can decode (60, basic).
        expected: u16,
        /// Class id found in the header.
        found: u16,
    },
    /// Field tables or arrays were nested deeper than `depth_max`.
    #[error("field tables nested deeper than {depth_max} at offset {offset}")]
    NestingTooDeep {
        /// Offset of the value that went one level too deep.
        offset: usize,
        /// The nesting limit, `wire::NESTING_DEPTH_MAX`.
        depth_max: usize,
    },
}

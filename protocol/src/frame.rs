//! Frames: the protocol header, splitting frames off a receive buffer, and writing method,
//! content and heartbeat frames.
//!
//! ```text
//! protocol header: "AMQP" 0 0 9 1                      (client → server, once)
//! frame:           type:u8 channel:u16 size:u32 payload[size] 0xCE
//!                  └──── FRAME_HEADER_SIZE = 7 ────┘              └ FRAME_END
//! types:           1 method, 2 content header, 3 body, 8 heartbeat
//! ```
//!
//! `parse_frame` checks the declared size against frame_max from the 7 header bytes alone, so a
//! peer cannot make us buffer an oversized payload. Frames are split off the buffer without
//! copying. The writers append to a `Vec<u8>` through one `write_frame`, which patches the size
//! after the payload is written. This module does no I/O.

use bytes::{Bytes, BytesMut};

use super::methods::Method;
use super::properties::BASIC_CLASS_ID;
use super::wire::Put;

/// Octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;
/// type:u8 + channel:u16 + size:u32.
pub const FRAME_HEADER_SIZE: usize = 7;
/// Header plus the end octet: what a frame costs beyond its payload.
pub const FRAME_OVERHEAD_SIZE: usize = FRAME_HEADER_SIZE + 1;
/// What an AMQP 0-9-1 client sends first.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
/// Smallest frame_max the spec lets a peer negotiate (RabbitMQ 4.1+ requires 8192).
pub const FRAME_MIN_SIZE: u32 = 4096;

const _: () = assert!(FRAME_MIN_SIZE as usize > FRAME_OVERHEAD_SIZE);

/// The frame type octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Method = 1,
    Header = 2,
    Body = 3,
    Heartbeat = 8,
}

impl FrameType {
    pub fn from_u8(v: u8) -> Option<FrameType> {
        match v {
            1 => Some(FrameType::Method),
            2 => Some(FrameType::Header),
            3 => Some(FrameType::Body),
            8 => Some(FrameType::Heartbeat),
            _ => None,
        }
    }
}

/// One frame; `payload` is a zero-copy slice of the receive buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub frame_type: FrameType,
    pub channel: u16,
    pub payload: Bytes,
}

/// A framing error: always fatal for the connection (501 FRAME_ERROR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame end octet 0x{found:02x}, expected 0xce")]
    BadFrameEnd { found: u8 },
    #[error("frame payload of {size} bytes exceeds frame_max {frame_max}")]
    TooLarge { size: u32, frame_max: u32 },
    #[error("unknown frame type {frame_type}")]
    UnknownType { frame_type: u8 },
}

/// What the first 8 bytes of a connection asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHeader {
    /// `AMQP 0 0 9 1`, or `AMQP 1 1 0 9` (0-9), which RabbitMQ answers the same way.
    Amqp091,
    /// Anything else: answer with `PROTOCOL_HEADER` and close the socket.
    Other,
}

pub fn parse_protocol_header(h: &[u8; 8]) -> ProtocolHeader {
    match h {
        b"AMQP\x00\x00\x09\x01" | b"AMQP\x01\x01\x00\x09" => ProtocolHeader::Amqp091,
        _ => ProtocolHeader::Other,
    }
}

/// One frame found in a byte slice, its payload borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    pub frame_type: FrameType,
    pub channel: u16,
    pub payload: &'a [u8],
}

/// Checks a frame header (type, and size against `frame_max`; 0 means no limit) and returns
/// the type, the channel and the offset of the frame-end octet.
fn check_header(
    header: &[u8; FRAME_HEADER_SIZE],
    frame_max: u32,
) -> Result<(FrameType, u16, usize), FrameError> {
    let [type_octet, c0, c1, s0, s1, s2, s3] = *header;
    let frame_type = FrameType::from_u8(type_octet).ok_or(FrameError::UnknownType {
        frame_type: type_octet,
    })?;
    let size = u32::from_be_bytes([s0, s1, s2, s3]);
    if frame_max != 0 && size > frame_max {
        return Err(FrameError::TooLarge { size, frame_max });
    }
    let end_at = usize::try_from(size)
        .ok()
        .and_then(|size| size.checked_add(FRAME_HEADER_SIZE))
        .ok_or(FrameError::TooLarge { size, frame_max })?;
    Ok((frame_type, u16::from_be_bytes([c0, c1]), end_at))
}

/// Finds the frame at the start of `buf` without copying: the frame and the bytes it takes,
/// or `Ok(None)` while `buf` does not hold all of it yet. The size is checked against
/// `frame_max` from the header alone (0 means no limit).
pub fn scan_frame(buf: &[u8], frame_max: u32) -> Result<Option<(FrameRef<'_>, usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<FRAME_HEADER_SIZE>() else {
        return Ok(None);
    };
    let (frame_type, channel, end_at) = check_header(header, frame_max)?;
    let Some(&end) = buf.get(end_at) else {
        return Ok(None);
    };
    if end != FRAME_END {
        return Err(FrameError::BadFrameEnd { found: end });
    }
    let frame = FrameRef {
        frame_type,
        channel,
        payload: &buf[FRAME_HEADER_SIZE..end_at],
    };
    Ok(Some((frame, end_at + 1)))
}

/// Splits the next complete frame off `buf`. `Ok(None)` means more bytes are needed.
///
/// The type and the size are checked as soon as the header is buffered: a payload larger than
/// `frame_max` is `TooLarge` (RabbitMQ tolerates a payload of exactly frame_max, so do we;
/// `frame_max` 0 means no limit).
pub fn parse_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, FrameError> {
    let Some((frame_type, channel, length)) = scan_frame(buf, frame_max)?
        .map(|(frame, length)| (frame.frame_type, frame.channel, length))
    else {
        // Reserve room for the rest of the frame only when frame_max bounds it: without a limit
        // a hostile size would make us allocate up to 4 GiB up front.
        if let Some(header) = buf
            .first_chunk::<FRAME_HEADER_SIZE>()
            .filter(|_| frame_max != 0)
        {
            let (_, _, end_at) = check_header(header, frame_max)?;
            buf.reserve(end_at + 1 - buf.len());
        }
        return Ok(None);
    };
    let frame = buf.split_to(length).freeze();
    Ok(Some(Frame {
        frame_type,
        channel,
        payload: frame.slice(FRAME_HEADER_SIZE..length - 1),
    }))
}

/// Appends a method frame.
pub fn write_method_frame(out: &mut Vec<u8>, channel: u16, method: &Method) {
    write_frame(out, FrameType::Method, channel, |out| method.encode(out));
}

/// Appends a heartbeat frame (channel 0, empty payload).
pub fn write_heartbeat(out: &mut Vec<u8>) {
    write_frame(out, FrameType::Heartbeat, 0, |_| {});
}

/// Appends a content header frame and the body frames of one message.
///
/// `properties_raw` is the property flags + list, written verbatim. Body frames carry at most
/// `frame_max - 8` bytes each (`frame_max` 0 = unlimited); an empty body gets no body frame.
pub fn write_content(
    out: &mut Vec<u8>,
    channel: u16,
    class_id: u16,
    properties_raw: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    assert!(class_id == BASIC_CLASS_ID, "only class basic has content");
    let body_size = u64::try_from(body.len()).expect("usize fits in u64");
    write_frame(out, FrameType::Header, channel, |out| {
        out.put_u16(class_id);
        out.put_u16(0);
        out.put_u64(body_size);
        out.put_slice(properties_raw);
    });
    let chunk_size = if frame_max == 0 {
        usize::MAX
    } else {
        let frame_max = usize::try_from(frame_max).expect("u32 fits in usize");
        assert!(
            frame_max > FRAME_OVERHEAD_SIZE,
            "frame_max too small for any body"
        );
        frame_max - FRAME_OVERHEAD_SIZE
    };
    for chunk in body.chunks(chunk_size) {
        write_frame(out, FrameType::Body, channel, |out| out.put_slice(chunk));
    }
}

/// Writes the frame header with a placeholder size, the payload via `payload`, then patches the
/// size and appends the end octet.
fn write_frame(
    out: &mut Vec<u8>,
    frame_type: FrameType,
    channel: u16,
    payload: impl FnOnce(&mut Vec<u8>),
) {
    out.put_u8(frame_type as u8);
    out.put_u16(channel);
    let size_at = out.len();
    out.put_u32(0);
    let payload_at = out.len();
    payload(out);
    let size = u32::try_from(out.len() - payload_at).expect("frame payload fits in u32");
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out.put_u8(FRAME_END);
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;

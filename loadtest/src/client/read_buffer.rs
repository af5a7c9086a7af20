//! `ReadBuffer`: one large receive buffer per socket, read with the codec's `scan_frame`, which
//! finds the next complete frame in it without copying or allocating.
//!
//! ```text
//! buf: [ consumed | unread frames ... | partial frame | free space ]
//!                 ^start                               ^end
//! frame: type:u8 channel:u16 size:u32 payload[size] 0xCE
//! ```
//!
//! The hot paths (deliveries, confirms) parse frames in place from here: one `read` syscall can
//! bring thousands of frames, and none of them is copied. The buffer grows only when a single
//! frame does not fit, and never past `frame_max` plus the frame overhead.

use std::io::{self, Read};

use hare_protocol::FRAME_OVERHEAD_SIZE;

/// Size of a fresh receive buffer: large enough that a busy consumer drains many deliveries per
/// `read` syscall.
pub const READ_BUFFER_SIZE: usize = 1 << 20;

/// One frame, borrowed from the receive buffer, found by the codec's `scan_frame`.
pub use hare_protocol::{scan_frame, FrameRef as InFrame};

/// A receive buffer with a read cursor; see the module doc.
#[derive(Debug)]
pub struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ReadBuffer {
    fn default() -> Self {
        ReadBuffer::with_size(READ_BUFFER_SIZE)
    }
}

impl ReadBuffer {
    pub fn with_size(size: usize) -> ReadBuffer {
        assert!(
            size > FRAME_OVERHEAD_SIZE,
            "read buffer too small for a frame"
        );
        ReadBuffer {
            buf: vec![0; size],
            start: 0,
            end: 0,
        }
    }

    /// The bytes received and not yet consumed.
    pub fn unread(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Marks `n` unread bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.end - self.start, "consumed more than was read");
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once from `source` into the free space and returns the byte count (0 = EOF).
    /// Unread bytes move to the front first when the tail is full; the buffer doubles, up to
    /// `frame_max + 8`, only when one frame is larger than the whole buffer.
    pub fn fill(&mut self, source: &mut impl Read, frame_max: u32) -> io::Result<usize> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let frame_limit = usize::try_from(frame_max)
                    .unwrap_or(usize::MAX)
                    .saturating_add(FRAME_OVERHEAD_SIZE);
                let limit = if frame_max == 0 {
                    usize::MAX
                } else {
                    frame_limit
                };
                let grown = self.buf.len().saturating_mul(2).min(limit);
                if grown <= self.buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a frame larger than frame_max filled the read buffer",
                    ));
                }
                self.buf.resize(grown, 0);
            }
        }
        let free = self.buf.get_mut(self.end..).unwrap_or_default();
        let n = source.read(free)?;
        self.end += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hare_protocol::{
        write_content, write_method_frame, BasicAck, FrameError, FrameType, Method,
    };

    fn frames() -> Vec<u8> {
        let mut out = Vec::new();
        let ack = Method::BasicAck(BasicAck {
            delivery_tag: 7,
            multiple: true,
        });
        write_method_frame(&mut out, 3, &ack);
        write_content(&mut out, 3, 60, &[0, 0], b"hello", 4096);
        out
    }

    #[test]
    fn scans_frames_in_place_and_waits_for_partial_ones() {
        let bytes = frames();
        let (first, used) = scan_frame(&bytes, 4096).unwrap().unwrap();
        assert_eq!(first.frame_type, FrameType::Method);
        assert_eq!(first.channel, 3);
        assert_eq!(first.payload.len(), 13);
        let (header, used2) = scan_frame(&bytes[used..], 4096).unwrap().unwrap();
        assert_eq!(header.frame_type, FrameType::Header);
        let (body, used3) = scan_frame(&bytes[used + used2..], 4096).unwrap().unwrap();
        assert_eq!(body.payload, b"hello");
        assert_eq!(used + used2 + used3, bytes.len());
        for cut in 0..used {
            assert_eq!(
                scan_frame(&bytes[..cut], 4096).unwrap(),
                None,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn refuses_bad_end_octets_types_and_sizes() {
        let mut bytes = frames();
        let ack_len = 7 + 13 + 1;
        bytes[ack_len - 1] = 0;
        assert!(matches!(
            scan_frame(&bytes, 4096),
            Err(FrameError::BadFrameEnd { found: 0 })
        ));
        assert!(matches!(
            scan_frame(&[9, 0, 0, 0, 0, 0, 0, 0xCE], 4096),
            Err(FrameError::UnknownType { frame_type: 9 })
        ));
        assert!(matches!(
            scan_frame(&[1, 0, 0, 0, 0, 0x20, 0], 4096),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn fill_compacts_then_grows_for_one_large_frame() {
        let bytes = frames();
        let mut buffer = ReadBuffer::with_size(16);
        let mut source = &bytes[..];
        let mut seen = Vec::new();
        loop {
            while let Some((frame, used)) = scan_frame(buffer.unread(), 4096).unwrap() {
                seen.push(frame.frame_type);
                buffer.consume(used);
            }
            if buffer.fill(&mut source, 4096).unwrap() == 0 {
                break;
            }
        }
        assert_eq!(
            seen,
            vec![FrameType::Method, FrameType::Header, FrameType::Body]
        );
        assert!(buffer.unread().is_empty());
    }
}

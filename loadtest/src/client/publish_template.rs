//! `PublishTemplate`: the exact bytes of one `basic.publish` with its content header and body
//! frames, encoded once through the codec. Publishing a message is then one `extend` of the send
//! buffer plus a 16-byte stamp patch, with no encoding and no allocation per message.
//!
//! ```text
//! [method frame: basic.publish][header frame: class, size, properties][body frame(s)]
//!                                                                       ^ stamp_offset
//! ```

use hare_protocol::{write_content, write_method_frame, BasicProperties, BasicPublish, Method};

use crate::message_id::{write_stamp, MessageId, MESSAGE_STAMP_SIZE};

use super::error::ClientError;
use super::topology::short;

/// One message's frames and where its stamp goes.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    bytes: Vec<u8>,
    stamp_offset: usize,
}

impl PublishTemplate {
    /// Encodes a publish of a zero-filled body of `body_size` bytes (at least the stamp size).
    pub fn new(
        channel: u16,
        exchange: &str,
        routing_key: &str,
        body_size: usize,
        persistent: bool,
        frame_max: u32,
    ) -> Result<PublishTemplate, ClientError> {
        assert!(
            body_size >= MESSAGE_STAMP_SIZE,
            "body too small for the stamp"
        );
        let publish = Method::BasicPublish(BasicPublish {
            exchange: short(exchange)?,
            routing_key: short(routing_key)?,
            ..Default::default()
        });
        let properties = BasicProperties {
            delivery_mode: Some(if persistent { 2 } else { 1 }),
            ..Default::default()
        };
        let mut raw = Vec::new();
        properties.encode(&mut raw);
        let mut bytes = Vec::new();
        write_method_frame(&mut bytes, channel, &publish);
        let header_at = bytes.len();
        write_content(
            &mut bytes,
            channel,
            60,
            &raw,
            &vec![0; body_size],
            frame_max,
        );
        // The header frame's size field sits 3 bytes into it; the first body frame follows the
        // header frame's payload and end octet, and its payload starts after its own 7 bytes.
        let size_field = bytes
            .get(header_at + 3..header_at + 7)
            .and_then(|s| s.first_chunk::<4>())
            .expect("write_content wrote a header frame");
        let header_size = usize::try_from(u32::from_be_bytes(*size_field)).expect("u32 fits");
        let stamp_offset = header_at + 7 + header_size + 1 + 7;
        assert!(stamp_offset + MESSAGE_STAMP_SIZE <= bytes.len());
        Ok(PublishTemplate {
            bytes,
            stamp_offset,
        })
    }

    /// Bytes one message takes on the wire.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one stamped message to `out`.
    pub fn append(&self, out: &mut Vec<u8>, id: MessageId, publish_ns: u64) {
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        let stamp = out
            .get_mut(at + self.stamp_offset..)
            .expect("the template holds the stamp");
        write_stamp(stamp, id, publish_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::read_buffer::scan_frame;
    use crate::message_id::read_stamp;
    use bytes::Bytes;
    use hare_protocol::{ContentHeader, FrameType};

    #[test]
    fn appended_messages_decode_with_their_stamps() {
        for (size, frame_max) in [(16, 4096), (5000, 4096)] {
            let template = PublishTemplate::new(1, "x", "rk", size, true, frame_max).unwrap();
            let mut out = Vec::new();
            template.append(&mut out, MessageId::new(3, 41), 7);
            template.append(&mut out, MessageId::new(3, 42), 8);
            assert_eq!(out.len(), 2 * template.size());
            let mut rest = &out[..];
            let mut stamps = Vec::new();
            let mut body_bytes = 0;
            while let Some((frame, used)) = scan_frame(rest, frame_max).unwrap() {
                match frame.frame_type {
                    FrameType::Method => {
                        let method =
                            Method::decode(&Bytes::copy_from_slice(frame.payload)).unwrap();
                        assert_eq!(method.name(), "basic.publish");
                    }
                    FrameType::Header => {
                        let header =
                            ContentHeader::decode(&Bytes::copy_from_slice(frame.payload)).unwrap();
                        assert!(header.properties.is_persistent());
                        assert_eq!(header.body_size, size as u64);
                    }
                    _ => {
                        if body_bytes % size == 0 {
                            stamps.push(read_stamp(frame.payload).unwrap());
                        }
                        body_bytes += frame.payload.len();
                    }
                }
                rest = &rest[used..];
            }
            assert!(rest.is_empty());
            assert_eq!(
                stamps,
                vec![(MessageId::new(3, 41), 7), (MessageId::new(3, 42), 8)]
            );
        }
    }
}

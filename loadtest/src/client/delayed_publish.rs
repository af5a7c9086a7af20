//! `DelayedPublish`: a publish whose content header differs per message, for the delayed
//! scenario. Each message carries its delay twice: where the broker reads it (the `expiration`
//! property for per-message TTL, or the `x-delay` header of the delayed-message exchange) and
//! in its body, right after the stamp, where the consumer reads it back to tell how late the
//! message fired.
//!
//! ```text
//! body: stamp (16 bytes: id, publish time)  delay-ms:u64  padding (zeros) ...
//! ```
//!
//! The method frame is encoded once; the properties and content frames are encoded per message
//! into reused buffers (a few hundred nanoseconds each).

use hare_protocol::{
    write_content, write_method_frame, BasicProperties, BasicPublish, FieldTable, FieldValue,
    Method, ShortStr,
};

use crate::message_id::{write_stamp, MessageId, MESSAGE_STAMP_SIZE};

use super::error::ClientError;
use super::topology::short;

/// Bytes of a delayed message's body that carry the stamp and the delay: its smallest size.
pub const DELAYED_BODY_MIN: usize = MESSAGE_STAMP_SIZE + 8;

/// Where the broker reads a message's delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayCarrier {
    /// `expiration` = the delay in ms (per-message TTL).
    Expiration,
    /// Header `x-delay` = the delay in ms (the delayed-message exchange).
    DelayHeader,
}

/// One delayed publish, re-encoded per message.
#[derive(Debug, Clone)]
pub struct DelayedPublish {
    channel: u16,
    method: Vec<u8>,
    persistent: bool,
    carrier: DelayCarrier,
    frame_max: u32,
    body: Vec<u8>,
    properties: Vec<u8>,
}

impl DelayedPublish {
    /// A publish of bodies of `body_size` bytes (at least `DELAYED_BODY_MIN`).
    pub fn new(
        channel: u16,
        exchange: &str,
        routing_key: &str,
        body_size: usize,
        persistent: bool,
        carrier: DelayCarrier,
        frame_max: u32,
    ) -> Result<DelayedPublish, ClientError> {
        let publish = Method::BasicPublish(BasicPublish {
            exchange: short(exchange)?,
            routing_key: short(routing_key)?,
            ..Default::default()
        });
        let mut method = Vec::new();
        write_method_frame(&mut method, channel, &publish);
        Ok(DelayedPublish {
            channel,
            method,
            persistent,
            carrier,
            frame_max,
            body: vec![0; body_size.max(DELAYED_BODY_MIN)],
            properties: Vec::with_capacity(64),
        })
    }

    /// Bytes one message takes on the wire, roughly (the properties vary a little).
    pub fn size_hint(&self) -> usize {
        self.method.len() + 7 + 14 + 40 + self.body.len() + 8
    }

    /// Appends one message, delayed by `delay_ms`, to `out`.
    pub fn append(&mut self, out: &mut Vec<u8>, id: MessageId, publish_ns: u64, delay_ms: u64) {
        let delay = |text: String| ShortStr::copy_from_str(&text);
        let mut properties = BasicProperties {
            delivery_mode: Some(if self.persistent { 2 } else { 1 }),
            ..Default::default()
        };
        match self.carrier {
            DelayCarrier::Expiration => properties.expiration = delay(delay_ms.to_string()),
            DelayCarrier::DelayHeader => {
                let mut headers = FieldTable::new();
                headers.insert(
                    ShortStr::from_static("x-delay"),
                    FieldValue::I64(i64::try_from(delay_ms).unwrap_or(i64::MAX)),
                );
                properties.headers = Some(headers);
            }
        }
        self.properties.clear();
        properties.encode(&mut self.properties);
        write_stamp(&mut self.body, id, publish_ns);
        if let Some(slot) = self
            .body
            .get_mut(MESSAGE_STAMP_SIZE..)
            .and_then(|rest| rest.first_chunk_mut::<8>())
        {
            *slot = delay_ms.to_be_bytes();
        }
        out.extend_from_slice(&self.method);
        write_content(
            out,
            self.channel,
            60,
            &self.properties,
            &self.body,
            self.frame_max,
        );
    }
}

/// The delay a delayed body carries after its stamp; `None` if the body is too short.
pub fn read_delay_ms(body: &[u8]) -> Option<u64> {
    let bytes = body.get(MESSAGE_STAMP_SIZE..)?.first_chunk::<8>()?;
    Some(u64::from_be_bytes(*bytes))
}

/// The delay of message `id`: uniform over 0..=`window_ms`, from a hash of the id and `seed`,
/// so consecutive messages get delays in a random order.
pub fn delay_for(id: MessageId, seed: u64, window_ms: u64) -> u64 {
    let mut z = id.to_u64() ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z % window_ms.saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::read_buffer::scan_frame;
    use crate::message_id::read_stamp;
    use bytes::Bytes;
    use hare_protocol::{ContentHeader, FrameType};

    fn frames(out: &[u8]) -> Vec<(FrameType, Vec<u8>)> {
        let mut rest = out;
        let mut frames = Vec::new();
        while let Some((frame, used)) = scan_frame(rest, 4096).unwrap() {
            frames.push((frame.frame_type, frame.payload.to_vec()));
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        frames
    }

    #[test]
    fn each_message_carries_its_delay_for_the_broker_and_the_consumer() {
        for carrier in [DelayCarrier::Expiration, DelayCarrier::DelayHeader] {
            let mut publish = DelayedPublish::new(1, "x", "q", 16, true, carrier, 4096).unwrap();
            let mut out = Vec::new();
            publish.append(&mut out, MessageId::new(2, 7), 99, 1500);
            let frames = frames(&out);
            assert_eq!(frames.len(), 3, "method, header, body");
            let header = ContentHeader::decode(&Bytes::from(frames[1].1.clone())).unwrap();
            assert_eq!(header.body_size, DELAYED_BODY_MIN as u64);
            assert!(header.properties.is_persistent());
            match carrier {
                DelayCarrier::Expiration => assert_eq!(
                    header.properties.expiration.map(|e| e.to_string_lossy()),
                    Some("1500".to_string())
                ),
                DelayCarrier::DelayHeader => {
                    let headers = header.properties.headers.unwrap();
                    assert_eq!(
                        headers.get("x-delay").and_then(FieldValue::as_i64),
                        Some(1500)
                    );
                }
            }
            let body = &frames[2].1;
            assert_eq!(read_stamp(body), Some((MessageId::new(2, 7), 99)));
            assert_eq!(read_delay_ms(body), Some(1500));
        }
    }

    #[test]
    fn delays_cover_the_window_in_a_random_order() {
        let delays: Vec<u64> = (0..10_000)
            .map(|i| delay_for(MessageId::new(0, i), 1, 1000))
            .collect();
        assert!(delays.iter().all(|&d| d <= 1000));
        let mean = delays.iter().sum::<u64>() as f64 / delays.len() as f64;
        assert!((mean - 500.0).abs() < 25.0, "mean {mean}");
        let descents = delays.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(descents > 4000, "not monotone: {descents} descents");
        assert_eq!(delay_for(MessageId::new(0, 5), 1, 0), 0);
    }
}

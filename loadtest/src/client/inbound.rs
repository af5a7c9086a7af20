//! In-place decoders for the frames that arrive by the hundred thousand per second:
//! `basic.deliver`, publisher-confirm `basic.ack` / `basic.nack`, and content headers.
//!
//! ```text
//! method payload:  class:u16 method:u16 args...
//! basic.deliver:   60 60  consumer-tag:shortstr delivery-tag:u64 redelivered:bit
//!                         exchange:shortstr routing-key:shortstr
//! basic.ack:       60 80  delivery-tag:u64 multiple:bit
//! basic.nack:      60 120 delivery-tag:u64 multiple:bit requeue:bit   (bits share one octet)
//! content header:  class:u16 weight:u16 body-size:u64 property-flags...
//! ```
//!
//! Everything else goes through `hare_protocol::Method::decode`, which allocates; that is fine
//! for the rare control methods. These decoders only read: a malformed frame is `None`.

/// What hareperf needs from a `basic.deliver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub delivery_tag: u64,
    pub redelivered: bool,
}

/// A publisher confirm from the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    Ack { delivery_tag: u64, multiple: bool },
    Nack { delivery_tag: u64, multiple: bool },
}

const BASIC: u16 = 60;
const DELIVER: u16 = 60;
const ACK: u16 = 80;
const NACK: u16 = 120;

/// The class and method ids of a method frame payload.
pub fn method_ids(payload: &[u8]) -> Option<(u16, u16)> {
    let [c0, c1, m0, m1] = *payload.first_chunk::<4>()?;
    Some((u16::from_be_bytes([c0, c1]), u16::from_be_bytes([m0, m1])))
}

/// Decodes a `basic.deliver` payload; `None` if it is another method or malformed.
pub fn parse_deliver(payload: &[u8]) -> Option<Delivery> {
    if method_ids(payload)? != (BASIC, DELIVER) {
        return None;
    }
    let rest = payload.get(4..)?;
    let tag_len = usize::from(*rest.first()?);
    let rest = rest.get(1 + tag_len..)?;
    let (tag, rest) = rest.split_first_chunk::<8>()?;
    let redelivered = rest.first()? & 1 != 0;
    Some(Delivery {
        delivery_tag: u64::from_be_bytes(*tag),
        redelivered,
    })
}

/// Decodes a publisher confirm (`basic.ack` or `basic.nack` from the broker).
pub fn parse_confirm(payload: &[u8]) -> Option<Confirm> {
    let ids = method_ids(payload)?;
    let rest = payload.get(4..)?;
    let (tag, rest) = rest.split_first_chunk::<8>()?;
    let delivery_tag = u64::from_be_bytes(*tag);
    let multiple = rest.first()? & 1 != 0;
    match ids {
        (BASIC, ACK) => Some(Confirm::Ack {
            delivery_tag,
            multiple,
        }),
        (BASIC, NACK) => Some(Confirm::Nack {
            delivery_tag,
            multiple,
        }),
        _ => None,
    }
}

/// The body size announced by a content header payload.
pub fn content_body_size(payload: &[u8]) -> Option<u64> {
    let size = payload.get(4..12)?.first_chunk::<8>()?;
    Some(u64::from_be_bytes(*size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hare_protocol::{
        write_content, BasicAck, BasicDeliver, BasicNack, ContentHeader, Method, ShortStr,
    };

    fn payload(method: Method) -> Vec<u8> {
        let mut out = Vec::new();
        method.encode(&mut out);
        out
    }

    #[test]
    fn deliver_matches_the_codec() {
        for redelivered in [false, true] {
            let bytes = payload(Method::BasicDeliver(BasicDeliver {
                consumer_tag: ShortStr::from_static("hareperf-3"),
                delivery_tag: 0x0102_0304_0506_0708,
                redelivered,
                exchange: ShortStr::from_static("x"),
                routing_key: ShortStr::from_static("q"),
            }));
            assert_eq!(
                parse_deliver(&bytes),
                Some(Delivery {
                    delivery_tag: 0x0102_0304_0506_0708,
                    redelivered
                })
            );
            // The exchange and routing key (2 bytes each here) are not needed, so not checked.
            for cut in 0..bytes.len() - 4 {
                assert_eq!(parse_deliver(&bytes[..cut]), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn confirms_match_the_codec() {
        let ack = payload(Method::BasicAck(BasicAck {
            delivery_tag: 42,
            multiple: true,
        }));
        assert_eq!(
            parse_confirm(&ack),
            Some(Confirm::Ack {
                delivery_tag: 42,
                multiple: true
            })
        );
        let nack = payload(Method::BasicNack(BasicNack {
            delivery_tag: 9,
            multiple: false,
            requeue: true,
        }));
        assert_eq!(
            parse_confirm(&nack),
            Some(Confirm::Nack {
                delivery_tag: 9,
                multiple: false
            })
        );
        assert_eq!(parse_deliver(&ack), None);
    }

    #[test]
    fn body_size_matches_the_codec() {
        let mut out = Vec::new();
        write_content(&mut out, 1, 60, &[0x10, 0, 2], &[7; 300], 4096);
        let header = &out[7..7 + 15];
        assert_eq!(content_body_size(header), Some(300));
        let decoded = ContentHeader::decode(&Bytes::copy_from_slice(header)).unwrap();
        assert_eq!(decoded.body_size, 300);
    }
}

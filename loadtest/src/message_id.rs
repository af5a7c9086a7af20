//! `MessageId`: the stamp every hareperf message carries in the first bytes of its body, so a
//! consumer can tell which message it got and how long it took, without properties or headers.
//!
//! ```text
//! body: producer-index:u16 sequence:u48 publish-time-ns:u64  padding (zeros) ...
//!       └──────── id (u64, big-endian) ┘ └ since the run's epoch (one process, one clock)
//! ```

/// Bytes of the stamp at the start of every body; also the smallest message size.
pub const MESSAGE_STAMP_SIZE: usize = 16;
/// Largest sequence number: the low 48 bits of the id.
pub const SEQUENCE_MAX: u64 = (1 << 48) - 1;

/// Which producer published a message, and its 0-based sequence number in that producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    pub producer_index: u16,
    pub sequence: u64,
}

impl MessageId {
    pub fn new(producer_index: u16, sequence: u64) -> MessageId {
        assert!(sequence <= SEQUENCE_MAX, "sequence beyond 48 bits");
        MessageId {
            producer_index,
            sequence,
        }
    }

    pub fn to_u64(self) -> u64 {
        (u64::from(self.producer_index) << 48) | self.sequence
    }

    pub fn from_u64(id: u64) -> MessageId {
        MessageId {
            producer_index: u16::try_from(id >> 48).expect("the top 16 bits fit in u16"),
            sequence: id & SEQUENCE_MAX,
        }
    }
}

/// Writes the stamp into `body`, which must hold at least `MESSAGE_STAMP_SIZE` bytes.
pub fn write_stamp(body: &mut [u8], id: MessageId, publish_ns: u64) {
    let (id_bytes, rest) = body
        .split_first_chunk_mut::<8>()
        .expect("bodies are at least MESSAGE_STAMP_SIZE bytes");
    *id_bytes = id.to_u64().to_be_bytes();
    let time_bytes = rest
        .first_chunk_mut::<8>()
        .expect("bodies are at least MESSAGE_STAMP_SIZE bytes");
    *time_bytes = publish_ns.to_be_bytes();
}

/// Reads the stamp from the start of a body; `None` if the body is too short to hold one.
pub fn read_stamp(body: &[u8]) -> Option<(MessageId, u64)> {
    let (id, rest) = body.split_first_chunk::<8>()?;
    let time = rest.first_chunk::<8>()?;
    Some((
        MessageId::from_u64(u64::from_be_bytes(*id)),
        u64::from_be_bytes(*time),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_keeps_the_fields_apart() {
        let mut body = [0xAA; 20];
        let id = MessageId::new(0xBEEF, SEQUENCE_MAX);
        write_stamp(&mut body, id, 123_456_789);
        assert_eq!(read_stamp(&body), Some((id, 123_456_789)));
        assert_eq!(body[16..], [0xAA; 4], "bytes after the stamp are untouched");
        assert_eq!(
            MessageId::from_u64(MessageId::new(1, 2).to_u64()).sequence,
            2
        );
        assert_eq!(read_stamp(&body[..15]), None);
    }

    #[test]
    #[should_panic(expected = "48 bits")]
    fn sequence_beyond_48_bits_is_a_bug() {
        let _ = MessageId::new(0, SEQUENCE_MAX + 1);
    }
}

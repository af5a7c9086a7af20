// Shared by the targets that take a sequence of frames (included with `include!`, so each
// target stays one binary without a library crate of its own).
//
// Input: records of `kind:u8 channel:u8 length:u16(BE) payload[length]`; kind % 5 is a
// method (0), content header (1), body (2) or heartbeat (3) frame with that payload, or raw
// bytes (4) written to the wire as they are. Framing is done here so that mutations reach
// the state machine instead of dying in the frame splitter.

/// One frame of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Method,
    Header,
    Body,
    Heartbeat,
    Raw,
}

fn records(data: &[u8]) -> impl Iterator<Item = (Kind, u8, &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&[kind, channel, l0, l1], tail) = rest.split_first_chunk::<4>()?;
        let length = usize::from(u16::from_be_bytes([l0, l1])).min(tail.len());
        let (payload, tail) = tail.split_at(length);
        rest = tail;
        let kind = match kind % 5 {
            0 => Kind::Method,
            1 => Kind::Header,
            2 => Kind::Body,
            3 => Kind::Heartbeat,
            _ => Kind::Raw,
        };
        Some((kind, channel, payload))
    })
}

//! Tests of `frame`: splitting at every byte, size and end-octet checks, writers, body splitting.

use super::*;
use crate::methods::{BasicPublish, ConnectionTune};
use crate::properties::{BasicProperties, ContentHeader};
use crate::test_support::Rng;
use crate::types::ShortStr;

fn parse_all(bytes: &[u8], frame_max: u32) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = parse_frame(&mut buf, frame_max).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

fn sample_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let tune = ConnectionTune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    };
    write_method_frame(&mut out, 0, &tune.into());
    write_heartbeat(&mut out);
    let publish = BasicPublish {
        routing_key: ShortStr::from_static("rk"),
        ..BasicPublish::default()
    };
    write_method_frame(&mut out, 7, &publish.into());
    write_content(
        &mut out,
        7,
        60,
        &BasicProperties::default().to_raw(),
        b"hello",
        0,
    );
    out
}

#[test]
fn golden_heartbeat_and_method_frame() {
    let mut out = Vec::new();
    write_heartbeat(&mut out);
    assert_eq!(out, [8, 0, 0, 0, 0, 0, 0, 0xCE]);
    out.clear();
    let tune = ConnectionTune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    };
    write_method_frame(&mut out, 0, &tune.into());
    assert_eq!(
        out,
        [1, 0, 0, 0, 0, 0, 12, 0, 10, 0, 30, 0x07, 0xFF, 0, 2, 0, 0, 0, 60, 0xCE]
    );
}

#[test]
fn stream_parses_back_into_frames() {
    let frames = parse_all(&sample_stream(), 131_072);
    let kinds: Vec<(FrameType, u16)> = frames.iter().map(|f| (f.frame_type, f.channel)).collect();
    assert_eq!(
        kinds,
        [
            (FrameType::Method, 0),
            (FrameType::Heartbeat, 0),
            (FrameType::Method, 7),
            (FrameType::Header, 7),
            (FrameType::Body, 7)
        ]
    );
    let header = ContentHeader::decode(&frames[3].payload).unwrap();
    assert_eq!(header.body_size, 5);
    assert_eq!(frames[4].payload, &b"hello"[..]);
}

#[test]
fn partial_input_waits_at_every_split_point() {
    let stream = sample_stream();
    let expected = parse_all(&stream, 0);
    for split in 0..=stream.len() {
        let mut buf = BytesMut::from(&stream[..split]);
        let mut frames = Vec::new();
        while let Some(frame) = parse_frame(&mut buf, 0).unwrap() {
            frames.push(frame);
        }
        buf.extend_from_slice(&stream[split..]);
        while let Some(frame) = parse_frame(&mut buf, 0).unwrap() {
            frames.push(frame);
        }
        assert_eq!(frames, expected, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn too_large_is_detected_from_the_header_alone() {
    let header = [3, 0, 1, 0, 0, 0x10, 0x01];
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(
        parse_frame(&mut buf, 4096),
        Err(FrameError::TooLarge {
            size: 4097,
            frame_max: 4096
        })
    );
    // A payload of exactly frame_max is tolerated, as RabbitMQ does; it just needs more bytes.
    let header = [3, 0, 1, 0, 0, 0x10, 0x00];
    assert_eq!(
        parse_frame(&mut BytesMut::from(&header[..]), 4096),
        Ok(None)
    );
    // frame_max 0 means no limit.
    let header = [3, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF];
    assert_eq!(parse_frame(&mut BytesMut::from(&header[..]), 0), Ok(None));
}

#[test]
fn bad_end_octet_and_unknown_type() {
    let mut buf = BytesMut::from(&[8, 0, 0, 0, 0, 0, 0, 0xCD][..]);
    assert_eq!(
        parse_frame(&mut buf, 0),
        Err(FrameError::BadFrameEnd { found: 0xCD })
    );
    let mut buf = BytesMut::from(&[4, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(
        parse_frame(&mut buf, 0),
        Err(FrameError::UnknownType { frame_type: 4 })
    );
}

#[test]
fn protocol_headers() {
    assert_eq!(
        parse_protocol_header(&PROTOCOL_HEADER),
        ProtocolHeader::Amqp091
    );
    assert_eq!(
        parse_protocol_header(b"AMQP\x01\x01\x00\x09"),
        ProtocolHeader::Amqp091
    );
    assert_eq!(
        parse_protocol_header(b"AMQP\x00\x01\x00\x00"),
        ProtocolHeader::Other
    );
    assert_eq!(
        parse_protocol_header(b"AMQP\x03\x01\x00\x00"),
        ProtocolHeader::Other
    );
    assert_eq!(parse_protocol_header(b"GET / HT"), ProtocolHeader::Other);
}

#[test]
fn body_is_split_at_frame_max_boundaries() {
    let frame_max = 4096u32;
    let chunk = frame_max as usize - FRAME_OVERHEAD_SIZE;
    for body_size in [1, chunk - 1, chunk, chunk + 1, 3 * chunk, 3 * chunk + 5] {
        let body: Vec<u8> = (0..body_size).map(|i| i as u8).collect();
        let mut out = Vec::new();
        write_content(&mut out, 3, 60, &[0, 0], &body, frame_max);
        let frames = parse_all(&out, frame_max);
        assert_eq!(
            frames.len(),
            1 + body_size.div_ceil(chunk),
            "body size {body_size}"
        );
        let mut joined = Vec::new();
        for frame in &frames[1..] {
            assert_eq!(frame.frame_type, FrameType::Body);
            assert!(frame.payload.len() <= chunk);
            assert!(!frame.payload.is_empty());
            joined.extend_from_slice(&frame.payload);
        }
        assert_eq!(joined, body);
    }
}

#[test]
fn empty_body_gets_no_body_frame() {
    let mut out = Vec::new();
    write_content(&mut out, 1, 60, &[0, 0], b"", 4096);
    let frames = parse_all(&out, 4096);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].frame_type, FrameType::Header);
    assert_eq!(
        frames[0].payload,
        &[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]
    );
}

#[test]
fn random_bytes_never_panic() {
    let seed = 0x5eed_0003;
    let mut rng = Rng::new(seed);
    let stream = sample_stream();
    for case in 0..20_000 {
        let mut bytes = if case % 2 == 0 {
            stream.clone()
        } else {
            rng.bytes(64)
        };
        for _ in 0..rng.below(3) {
            if !bytes.is_empty() {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
        }
        let frame_max = [0, 16, 4096][rng.below(3) as usize];
        let result = std::panic::catch_unwind(|| {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(frame)) = parse_frame(&mut buf, frame_max) {
                let _ = crate::Method::decode(&frame.payload);
                let _ = ContentHeader::decode(&frame.payload);
            }
        });
        assert!(
            result.is_ok(),
            "seed {seed:#x} case {case} bytes {bytes:02x?}"
        );
    }
}

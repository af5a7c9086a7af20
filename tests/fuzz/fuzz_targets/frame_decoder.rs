//! Fuzz target for the frame decoder: feeds arbitrary bytes to `parse_frame` in a loop and decodes
//! every method and content header frame it yields. Nothing may panic, and a decoded method or
//! header must re-encode to bytes that decode to the same encoding again.

#![no_main]

use bytes::{Bytes, BytesMut};
use hare::protocol::{parse_frame, BasicProperties, ContentHeader, FrameType, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks frame_max so the size check runs both with and without a limit.
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let frame_max = match choice % 3 {
        0 => 0,
        1 => 4096,
        _ => 131_072,
    };
    let mut buf = BytesMut::from(rest);
    while let Ok(Some(frame)) = parse_frame(&mut buf, frame_max) {
        match frame.frame_type {
            FrameType::Method => {
                if let Ok(method) = Method::decode(&frame.payload) {
                    check_method_round_trip(&method);
                }
            }
            FrameType::Header => {
                if let Ok(header) = ContentHeader::decode(&frame.payload) {
                    check_properties_round_trip(&header.properties);
                }
            }
            FrameType::Body | FrameType::Heartbeat => {}
        }
    }
});

/// Compares encodings rather than values so NaN floats in tables don't count as a mismatch.
fn check_method_round_trip(method: &Method) {
    let mut first = Vec::new();
    method.encode(&mut first);
    let again = Method::decode(&Bytes::from(first.clone())).expect("our own encoding decodes");
    let mut second = Vec::new();
    again.encode(&mut second);
    assert_eq!(first, second);
}

fn check_properties_round_trip(properties: &BasicProperties) {
    let first = properties.to_raw();
    let again = BasicProperties::decode(&first).expect("our own encoding decodes");
    assert_eq!(first, again.to_raw());
}

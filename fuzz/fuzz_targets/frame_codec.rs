//! Arbitrary bytes → the frame splitter and the method / content header decoders; whatever
//! decodes is encoded again and must decode to the same encoding (a stable round trip).
#![no_main]

use bytes::{Bytes, BytesMut};
use hare_protocol::{
    parse_frame, scan_frame, write_content, write_method_frame, BasicProperties, ContentHeader,
    FrameType, Method,
};
use libfuzzer_sys::fuzz_target;

const FRAME_MAX: u32 = 131_072;

fuzz_target!(|data: &[u8]| {
    // The zero-copy scanner with each kind of limit must never panic.
    for frame_max in [0, 4096, FRAME_MAX] {
        let _ = scan_frame(data, frame_max);
    }
    let mut buf = BytesMut::from(data);
    loop {
        let scanned = scan_frame(&buf, FRAME_MAX).map(|found| {
            found.map(|(frame, length)| {
                (
                    frame.frame_type,
                    frame.channel,
                    frame.payload.to_vec(),
                    length,
                )
            })
        });
        let before = buf.len();
        match parse_frame(&mut buf, FRAME_MAX) {
            Ok(Some(frame)) => {
                let (frame_type, channel, payload, length) = scanned
                    .expect("scan_frame fails where parse_frame succeeds")
                    .expect("scan_frame incomplete where parse_frame found a frame");
                assert_eq!((frame_type, channel), (frame.frame_type, frame.channel));
                assert_eq!(payload, frame.payload.as_ref());
                assert_eq!(before - buf.len(), length);
                check_payload(frame.frame_type, frame.channel, &frame.payload);
            }
            Ok(None) => {
                assert!(matches!(scanned, Ok(None)));
                assert_eq!(buf.len(), before, "an incomplete frame consumed bytes");
                break;
            }
            Err(error) => {
                assert_eq!(scanned.err(), Some(error));
                break;
            }
        }
    }
});

fn check_payload(frame_type: FrameType, channel: u16, payload: &Bytes) {
    match frame_type {
        FrameType::Method => {
            if let Ok(method) = Method::decode(payload) {
                let _ = (
                    method.name(),
                    method.has_content(),
                    method.is_synchronous_request(),
                );
                method_round_trip(channel, &method);
            }
        }
        FrameType::Header => {
            if let Ok(header) = ContentHeader::decode(payload) {
                let properties = BasicProperties::decode(&header.properties_raw)
                    .expect("the raw properties of a decoded header decode alone");
                // NaN in a header table breaks `==`; compare encodings instead.
                assert_eq!(encoded(&properties), encoded(&header.properties));
                let once = properties.to_raw();
                let again = BasicProperties::decode(&once).expect("encoded properties decode");
                assert_eq!(again.to_raw(), once);
                content_round_trip(channel, &header);
            }
        }
        FrameType::Body | FrameType::Heartbeat => {}
    }
}

fn method_round_trip(channel: u16, method: &Method) {
    let mut out = Vec::new();
    write_method_frame(&mut out, channel, method);
    let mut buf = BytesMut::from(out.as_slice());
    let frame = parse_frame(&mut buf, 0)
        .expect("an encoded method frame parses")
        .expect("an encoded method frame is complete");
    assert!(buf.is_empty());
    assert_eq!(
        (frame.frame_type, frame.channel),
        (FrameType::Method, channel)
    );
    let again = Method::decode(&frame.payload).expect("an encoded method decodes");
    let mut out_again = Vec::new();
    write_method_frame(&mut out_again, channel, &again);
    assert_eq!(
        out, out_again,
        "method round trip is not stable: {method:?}"
    );
}

fn content_round_trip(channel: u16, header: &ContentHeader) {
    // A short body stands in for the declared one: only the header is compared.
    let body = [0x42u8; 3];
    let mut out = Vec::new();
    write_content(
        &mut out,
        channel,
        header.class_id,
        &header.properties_raw,
        &body,
        4096,
    );
    let mut buf = BytesMut::from(out.as_slice());
    let frame = parse_frame(&mut buf, 4096)
        .expect("an encoded header frame parses")
        .expect("an encoded header frame is complete");
    let decoded = ContentHeader::decode(&frame.payload).expect("an encoded header decodes");
    assert_eq!(decoded.properties_raw, header.properties_raw);
    assert_eq!(decoded.body_size, body.len() as u64);
    let frame = parse_frame(&mut buf, 4096)
        .expect("an encoded body frame parses")
        .expect("an encoded body frame is complete");
    assert_eq!(frame.payload.as_ref(), body);
}

fn encoded(properties: &BasicProperties) -> Vec<u8> {
    let mut out = Vec::new();
    properties.encode(&mut out);
    out
}

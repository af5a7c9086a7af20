//! Tests of `properties`: golden content header, round trips, lenient flag words, truncation and
//! random input.

use super::*;
use crate::test_support::{random_properties, Rng};
use crate::types::FieldValue;

fn header_payload(body_size: u64, props: &BasicProperties) -> Bytes {
    let mut out = vec![0, 60, 0, 0];
    out.extend_from_slice(&body_size.to_be_bytes());
    props.encode(&mut out);
    Bytes::from(out)
}

#[test]
fn golden_content_header_with_several_properties() {
    let mut headers = FieldTable::new();
    headers.insert(ShortStr::from_static("a"), FieldValue::Bool(true));
    let props = BasicProperties {
        content_type: Some(ShortStr::from_static("text/plain")),
        headers: Some(headers),
        delivery_mode: Some(2),
        timestamp: Some(0x0102_0304),
        app_id: Some(ShortStr::from_static("app")),
        ..BasicProperties::default()
    };
    let payload = header_payload(5, &props);
    let mut golden = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
    // content-type | headers | delivery-mode | timestamp | app-id
    golden.extend_from_slice(&0b1011_0000_0100_1000u16.to_be_bytes());
    golden.push(10);
    golden.extend_from_slice(b"text/plain");
    golden.extend_from_slice(&[0, 0, 0, 4, 1, b'a', b't', 1]);
    golden.push(2);
    golden.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
    golden.extend_from_slice(&[3, b'a', b'p', b'p']);
    assert_eq!(payload, golden);
    let header = ContentHeader::decode(&payload).unwrap();
    assert_eq!(header.class_id, 60);
    assert_eq!(header.weight, 0);
    assert_eq!(header.body_size, 5);
    assert!(header.properties.is_persistent());
    assert_eq!(header.properties, props);
    assert_eq!(header.properties_raw, golden[12..]);
    assert!(payload
        .as_ptr_range()
        .contains(&header.properties_raw.as_ptr()));
}

#[test]
fn empty_properties_are_two_zero_octets() {
    let props = BasicProperties::default();
    assert_eq!(props.to_raw(), [0u8, 0][..]);
    assert_eq!(
        BasicProperties::decode(&Bytes::from_static(&[0, 0])),
        Ok(props)
    );
}

#[test]
fn random_properties_round_trip() {
    let mut rng = Rng::new(0xbeef);
    for _ in 0..2_000 {
        let props = random_properties(&mut rng);
        assert_eq!(BasicProperties::decode(&props.to_raw()), Ok(props.clone()));
        let header = ContentHeader::decode(&header_payload(77, &props)).unwrap();
        assert_eq!(header.properties, props);
        assert_eq!(header.properties_raw, props.to_raw());
    }
}

#[test]
fn extra_flag_words_are_read_and_ignored() {
    // continuation bit set in the first word, then a second word without it.
    let raw = Bytes::from_static(&[0b1000_0000, 0b0000_0001, 0xFF, 0xFE, 1, b'x']);
    let props = BasicProperties::decode(&raw).unwrap();
    assert_eq!(props.content_type, Some(ShortStr::from_static("x")));
}

#[test]
fn wrong_class_and_trailing_bytes_are_errors() {
    let payload = Bytes::from_static(&[0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        ContentHeader::decode(&payload),
        Err(DecodeError::BadClass {
            expected: 60,
            found: 50
        })
    );
    let raw = Bytes::from_static(&[0, 0, 9]);
    assert_eq!(
        BasicProperties::decode(&raw),
        Err(DecodeError::TrailingBytes {
            offset: 2,
            extra: 1
        })
    );
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    let mut rng = Rng::new(11);
    for _ in 0..200 {
        let payload = header_payload(1, &random_properties(&mut rng));
        for cut in 0..payload.len() {
            assert!(
                ContentHeader::decode(&payload.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let seed = 0x5eed_0002;
    let mut rng = Rng::new(seed);
    for case in 0..20_000 {
        let mut bytes = rng.bytes(48);
        if case % 2 == 0 && bytes.len() >= 2 {
            bytes[0] = 0;
            bytes[1] = 60;
        }
        let bytes = Bytes::from(bytes);
        let result = std::panic::catch_unwind(|| {
            let _ = ContentHeader::decode(&bytes);
            let _ = BasicProperties::decode(&bytes);
        });
        assert!(
            result.is_ok(),
            "seed {seed:#x} case {case} bytes {bytes:02x?}"
        );
    }
}

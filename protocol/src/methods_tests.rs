//! Tests of `methods`: round trip of every method, golden bytes, bit packing, truncation at
//! every byte and random input.

use super::*;
use crate::test_support::Rng;
use crate::types::FieldValue;

/// Number of methods in the RabbitMQ 0-9-1 spec JSON.
const METHOD_COUNT: usize = 66;

fn encode(m: &Method) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

fn decode(bytes: &[u8]) -> Result<Method, DecodeError> {
    Method::decode(&Bytes::copy_from_slice(bytes))
}

#[test]
fn samples_cover_every_method_once() {
    let samples = Method::samples(&mut Rng::new(1));
    assert_eq!(samples.len(), METHOD_COUNT);
    let mut ids: Vec<(u16, u16)> = samples
        .iter()
        .map(|m| (m.class_id(), m.method_id()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), METHOD_COUNT);
    for m in &samples {
        assert_eq!(method_name(m.class_id(), m.method_id()), Some(m.name()));
    }
}

#[test]
fn every_method_round_trips() {
    for seed in 1..=50 {
        for m in Method::samples(&mut Rng::new(seed)) {
            let bytes = encode(&m);
            assert_eq!(
                decode(&bytes).as_ref(),
                Ok(&m),
                "seed {seed} method {}",
                m.name()
            );
        }
    }
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    for seed in 1..=5 {
        for m in Method::samples(&mut Rng::new(seed)) {
            let bytes = encode(&m);
            for cut in 0..bytes.len() {
                assert!(
                    decode(&bytes[..cut]).is_err(),
                    "seed {seed} {} cut at {cut}",
                    m.name()
                );
            }
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    for m in Method::samples(&mut Rng::new(7)) {
        let mut bytes = encode(&m);
        let len = bytes.len();
        bytes.push(0);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::TrailingBytes {
                offset: len,
                extra: 1
            }),
            "{}",
            m.name()
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let seed = 0x5eed_0001;
    let mut rng = Rng::new(seed);
    let samples = Method::samples(&mut Rng::new(3));
    for case in 0..20_000 {
        // Half the cases start from a valid method and corrupt it, so the argument decoders are
        // reached and not only the unknown-method path.
        let bytes = if case % 2 == 0 {
            let mut bytes = encode(&samples[rng.below(samples.len() as u64) as usize]);
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
            bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
            bytes
        } else {
            rng.bytes(64)
        };
        // Only the absence of a panic matters; print the seed if one happens.
        let result = std::panic::catch_unwind(|| decode(&bytes));
        assert!(
            result.is_ok(),
            "seed {seed:#x} case {case} bytes {bytes:02x?}"
        );
    }
}

#[test]
fn golden_connection_tune() {
    let m = Method::from(ConnectionTune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    });
    let golden = [0, 10, 0, 30, 0x07, 0xFF, 0, 2, 0, 0, 0, 60];
    assert_eq!(encode(&m), golden);
    assert_eq!(decode(&golden), Ok(m));
}

#[test]
fn golden_basic_publish_packs_bits_lsb_first() {
    let mut publish = BasicPublish {
        ticket: 0,
        exchange: ShortStr::from_static("ex"),
        routing_key: ShortStr::from_static("rk"),
        mandatory: true,
        immediate: false,
    };
    let golden = [0, 60, 0, 40, 0, 0, 2, b'e', b'x', 2, b'r', b'k', 0b01];
    assert_eq!(encode(&publish.clone().into()), golden);
    publish.mandatory = false;
    publish.immediate = true;
    let golden = [0, 60, 0, 40, 0, 0, 2, b'e', b'x', 2, b'r', b'k', 0b10];
    assert_eq!(encode(&publish.clone().into()), golden);
    assert_eq!(decode(&golden), Ok(publish.into()));
}

#[test]
fn golden_basic_deliver() {
    let m = Method::from(BasicDeliver {
        consumer_tag: ShortStr::from_static("ctag"),
        delivery_tag: 1,
        redelivered: true,
        exchange: ShortStr::from_static(""),
        routing_key: ShortStr::from_static("q"),
    });
    let golden = [
        0, 60, 0, 60, 4, b'c', b't', b'a', b'g', 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, b'q',
    ];
    assert_eq!(encode(&m), golden);
    assert_eq!(decode(&golden), Ok(m));
}

#[test]
fn golden_queue_declare_with_table() {
    let mut arguments = FieldTable::new();
    arguments.insert(ShortStr::from_static("x-max-length"), FieldValue::I32(10));
    let m = Method::from(QueueDeclare {
        ticket: 0,
        queue: ShortStr::from_static("q"),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: true,
        nowait: false,
        arguments,
    });
    let mut golden = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0b0000_1010, 0, 0, 0, 18, 12];
    golden.extend_from_slice(b"x-max-length");
    golden.extend_from_slice(&[b'I', 0, 0, 0, 10]);
    assert_eq!(encode(&m), golden);
    assert_eq!(decode(&golden), Ok(m));
}

#[test]
fn five_bits_share_one_octet_and_a_sixth_would_not() {
    let m = Method::from(AccessRequest {
        realm: ShortStr::from_static("/data"),
        exclusive: true,
        passive: false,
        active: true,
        write: false,
        read: true,
    });
    let golden = [0, 30, 0, 10, 5, b'/', b'd', b'a', b't', b'a', 0b1_0101];
    assert_eq!(encode(&m), golden);
    assert_eq!(decode(&golden), Ok(m));
    // basic.nack: two bits after a longlong share the octet.
    let nack = Method::from(BasicNack {
        delivery_tag: 9,
        multiple: false,
        requeue: true,
    });
    assert_eq!(encode(&nack), [0, 60, 0, 120, 0, 0, 0, 0, 0, 0, 0, 9, 0b10]);
}

#[test]
fn ids_names_and_flags_follow_the_spec() {
    assert_eq!(Method::from(ExchangeUnbindOk {}).method_id(), 51);
    assert_eq!(method_name(40, 51), Some("exchange.unbind-ok"));
    assert_eq!(method_name(40, 41), None);
    assert_eq!(
        decode(&[0, 40, 0, 41]),
        Err(DecodeError::UnknownMethod {
            class_id: 40,
            method_id: 41
        })
    );
    let content: Vec<&str> = Method::samples(&mut Rng::new(1))
        .iter()
        .filter(|m| m.has_content())
        .map(Method::name)
        .collect();
    assert_eq!(
        content,
        [
            "basic.publish",
            "basic.return",
            "basic.deliver",
            "basic.get-ok"
        ]
    );
    assert!(Method::from(QueueDeclare::default()).is_synchronous_request());
    assert!(!Method::from(QueueDeclareOk::default()).is_synchronous_request());
    assert!(!Method::from(BasicPublish::default()).is_synchronous_request());
    assert!(Method::from(TxSelect {}).is_synchronous_request());
    assert_eq!(Method::from(ConfirmSelectOk {}).name(), "confirm.select-ok");
}

#[test]
fn decoded_strings_are_slices_of_the_payload() {
    let payload = Bytes::from(encode(&Method::from(BasicConsumeOk {
        consumer_tag: ShortStr::from_static("tag"),
    })));
    let Ok(Method::BasicConsumeOk(m)) = Method::decode(&payload) else {
        panic!("decode failed")
    };
    let range = payload.as_ptr_range();
    assert!(range.contains(&m.consumer_tag.as_bytes().as_ptr()));
}

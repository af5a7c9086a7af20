//! Tests of `types`: every field value tag, nesting, order and duplicates, RabbitMQ equality.

use super::*;
use crate::test_support::{random_table, Rng};

fn table_bytes(entries: &[u8]) -> Bytes {
    let mut out = (entries.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(entries);
    Bytes::from(out)
}

fn encoded(t: &FieldTable) -> Vec<u8> {
    let mut out = Vec::new();
    t.encode(&mut out);
    out
}

#[test]
fn every_value_type_has_its_rabbitmq_tag() {
    let nested: FieldTable = [(ShortStr::from_static("n"), FieldValue::Void)]
        .into_iter()
        .collect();
    let cases: Vec<(FieldValue, Vec<u8>)> = vec![
        (FieldValue::Bool(true), vec![b't', 1]),
        (FieldValue::I8(-2), vec![b'b', 0xFE]),
        (FieldValue::U8(200), vec![b'B', 200]),
        (FieldValue::I16(-2), vec![b's', 0xFF, 0xFE]),
        (FieldValue::U16(513), vec![b'u', 2, 1]),
        (FieldValue::I32(-1), vec![b'I', 0xFF, 0xFF, 0xFF, 0xFF]),
        (FieldValue::U32(7), vec![b'i', 0, 0, 0, 7]),
        (
            FieldValue::I64(-1),
            vec![b'l', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ),
        (
            FieldValue::F32(1.5),
            [vec![b'f'], 1.5f32.to_be_bytes().to_vec()].concat(),
        ),
        (
            FieldValue::F64(-0.25),
            [vec![b'd'], (-0.25f64).to_be_bytes().to_vec()].concat(),
        ),
        (
            FieldValue::Decimal {
                scale: 2,
                value: 314,
            },
            vec![b'D', 2, 0, 0, 1, 58],
        ),
        (
            FieldValue::LongStr(Bytes::from_static(b"hi")),
            vec![b'S', 0, 0, 0, 2, b'h', b'i'],
        ),
        (
            FieldValue::Array(vec![FieldValue::U8(1), FieldValue::Void]),
            vec![b'A', 0, 0, 0, 3, b'B', 1, b'V'],
        ),
        (FieldValue::Timestamp(9), vec![b'T', 0, 0, 0, 0, 0, 0, 0, 9]),
        (
            FieldValue::Table(nested),
            vec![b'F', 0, 0, 0, 3, 1, b'n', b'V'],
        ),
        (FieldValue::Void, vec![b'V']),
        (
            FieldValue::ByteArray(Bytes::from_static(&[0, 0xFF])),
            vec![b'x', 0, 0, 0, 2, 0, 0xFF],
        ),
    ];
    for (value, bytes) in cases {
        let table: FieldTable = [(ShortStr::from_static("k"), value.clone())]
            .into_iter()
            .collect();
        let mut entry = vec![1, b'k'];
        entry.extend_from_slice(&bytes);
        let wire = table_bytes(&entry);
        assert_eq!(encoded(&table), wire, "{}", value.type_name());
        assert_eq!(
            FieldTable::decode(&wire),
            Ok(table),
            "{}",
            value.type_name()
        );
    }
}

#[test]
fn upper_l_decodes_as_i64() {
    let wire = table_bytes(&[1, b'k', b'L', 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(
        FieldTable::decode(&wire).unwrap().get("k"),
        Some(&FieldValue::I64(256))
    );
}

#[test]
fn order_and_duplicate_keys_are_preserved() {
    let wire = table_bytes(&[1, b'b', b'B', 1, 1, b'a', b'B', 2, 1, b'b', b'B', 3]);
    let table = FieldTable::decode(&wire).unwrap();
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["b", "a", "b"]);
    assert_eq!(table.get("b"), Some(&FieldValue::U8(1)));
    assert_eq!(encoded(&table), wire);
}

#[test]
fn insert_replaces_the_first_match_and_remove_takes_it() {
    let mut table = FieldTable::new();
    table.insert(ShortStr::from_static("a"), FieldValue::U8(1));
    table.insert(ShortStr::from_static("b"), FieldValue::U8(2));
    table.insert(ShortStr::from_static("a"), FieldValue::U8(3));
    assert_eq!(table.len(), 2);
    assert_eq!(table.get("a"), Some(&FieldValue::U8(3)));
    assert_eq!(table.remove("a"), Some(FieldValue::U8(3)));
    assert!(!table.contains_key("a"));
    assert!(table.contains_key("b"));
    assert_eq!(table.remove("zz"), None);
}

#[test]
fn random_nested_tables_round_trip() {
    let mut rng = Rng::new(0x7ab1e);
    for _ in 0..2_000 {
        let table = random_table(&mut rng, 3);
        assert_eq!(FieldTable::decode(&Bytes::from(encoded(&table))), Ok(table));
    }
}

#[test]
fn truncated_tables_and_unknown_tags_are_errors() {
    let mut rng = Rng::new(5);
    for _ in 0..200 {
        let wire = encoded(&random_table(&mut rng, 2));
        for cut in 0..wire.len() {
            assert!(FieldTable::decode(&Bytes::copy_from_slice(&wire[..cut])).is_err());
        }
    }
    let wire = table_bytes(&[1, b'k', b'Q']);
    assert_eq!(
        FieldTable::decode(&wire),
        Err(DecodeError::UnknownFieldType {
            offset: 6,
            tag: b'Q'
        })
    );
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // Arrays nested 10_000 deep: each level is 'A' + u32 length.
    let depth = 10_000;
    let mut value = vec![b'V'];
    for _ in 0..depth {
        let mut outer = vec![b'A'];
        outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
        outer.extend_from_slice(&value);
        value = outer;
    }
    let mut entry = vec![1, b'k'];
    entry.extend_from_slice(&value);
    let result = FieldTable::decode(&table_bytes(&entry));
    assert!(
        matches!(result, Err(DecodeError::NestingTooDeep { .. })),
        "{result:?}"
    );
}

#[test]
fn value_eq_follows_rabbitmq() {
    assert!(FieldValue::U8(1).value_eq(&FieldValue::I64(1)));
    assert!(FieldValue::I16(-1).value_eq(&FieldValue::I32(-1)));
    assert!(!FieldValue::U32(1).value_eq(&FieldValue::LongStr(Bytes::from_static(b"1"))));
    assert!(!FieldValue::I32(1).value_eq(&FieldValue::F64(1.0)));
    let a = FieldValue::Array(vec![FieldValue::U8(5), FieldValue::Bool(true)]);
    let b = FieldValue::Array(vec![FieldValue::I64(5), FieldValue::Bool(true)]);
    assert!(a.value_eq(&b));
    let t1: FieldTable = [(ShortStr::from_static("x"), FieldValue::U16(3))]
        .into_iter()
        .collect();
    let t2: FieldTable = [(ShortStr::from_static("x"), FieldValue::I8(3))]
        .into_iter()
        .collect();
    assert!(FieldValue::Table(t1).value_eq(&FieldValue::Table(t2)));
    assert_eq!(FieldValue::I32(1).type_name(), "signedint");
    assert_eq!(FieldValue::LongStr(Bytes::new()).type_name(), "longstr");
    assert_eq!(FieldValue::U32(9).as_i64(), Some(9));
    assert_eq!(FieldValue::F32(9.0).as_i64(), None);
}

#[test]
fn short_strings() {
    let long = "é".repeat(200);
    let cut = ShortStr::from_str_truncated(&long);
    assert_eq!(cut.len(), 254);
    assert!(std::str::from_utf8(cut.as_bytes()).is_ok());
    assert_eq!(ShortStr::copy_from_str(&long), None);
    assert!(ShortStr::try_from_bytes(Bytes::from(vec![b'a'; 256])).is_none());
    let s = ShortStr::from_static("q1");
    assert_eq!(s, "q1");
    assert_eq!(format!("{s} {s:?}"), "q1 \"q1\"");
    let bad = ShortStr::try_from_bytes(Bytes::from_static(b"\xFFa")).unwrap();
    assert_eq!(bad.to_string_lossy(), "\u{FFFD}a");
}

//! Lets the headers and consistent-hash exchanges read our field values (the routing module is
//! generic over the value type so it stays independent of the codec).

use crate::protocol::FieldValue;
use crate::routing::consistent_hash::tag;
use crate::routing::{HeaderValue, StableHasher};

impl HeaderValue for FieldValue {
    fn value_eq(&self, other: &Self) -> bool {
        FieldValue::value_eq(self, other)
    }

    fn is_void(&self) -> bool {
        matches!(self, FieldValue::Void)
    }

    fn as_str_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(bytes) => Some(bytes),
            _ => None,
        }
    }

    fn hash_into(&self, hasher: &mut StableHasher) {
        match self {
            FieldValue::I8(_)
            | FieldValue::U8(_)
            | FieldValue::I16(_)
            | FieldValue::U16(_)
            | FieldValue::I32(_)
            | FieldValue::U32(_)
            | FieldValue::I64(_) => {
                let value = self.as_i64().expect("an integer variant");
                hasher.write_tagged(tag::INTEGER, &value.to_le_bytes());
            }
            FieldValue::LongStr(bytes) => hasher.write_tagged(tag::STRING, bytes),
            FieldValue::Void => hasher.write(&[tag::ABSENT]),
            FieldValue::Timestamp(seconds) => {
                hasher.write_tagged(tag::TIMESTAMP, &seconds.to_le_bytes());
            }
            // The plugin hashes the head of a list, and a fixed term for an empty one.
            FieldValue::Array(items) => match items.first() {
                Some(first) => first.hash_into(hasher),
                None => hasher.write_tagged(tag::OTHER, b"A"),
            },
            FieldValue::Bool(_)
            | FieldValue::F32(_)
            | FieldValue::F64(_)
            | FieldValue::Decimal { .. }
            | FieldValue::ByteArray(_)
            | FieldValue::Table(_) => hash_other(self, hasher),
        }
    }
}

/// Values rarely hashed on: a type letter and a canonical encoding, so they still spread.
fn hash_other(value: &FieldValue, hasher: &mut StableHasher) {
    hasher.write(&[tag::OTHER]);
    match value {
        FieldValue::Bool(flag) => hasher.write_tagged(b't', &[u8::from(*flag)]),
        FieldValue::F32(float) => hasher.write_tagged(b'd', &f64::from(*float).to_le_bytes()),
        FieldValue::F64(float) => hasher.write_tagged(b'd', &float.to_le_bytes()),
        FieldValue::Decimal { scale, value } => {
            hasher.write_tagged(b'D', &[*scale]);
            hasher.write(&value.to_le_bytes());
        }
        FieldValue::ByteArray(bytes) => hasher.write_tagged(b'x', bytes),
        FieldValue::Table(table) => {
            let mut encoded = Vec::new();
            table.encode(&mut encoded);
            hasher.write_tagged(b'F', &encoded);
        }
        // hash_into handles the other variants itself.
        _ => {}
    }
}

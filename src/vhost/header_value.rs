//! Lets the headers exchange compare our field values (the routing module is generic over the
//! value type so it stays independent of the codec).

use crate::protocol::FieldValue;
use crate::routing::HeaderValue;

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
}

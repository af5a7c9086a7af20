//! Content headers and the basic-class properties they carry.
//!
//! A content header frame's payload:
//!
//! ```text
//! class-id:u16  weight:u16(0)  body-size:u64  property-flags:u16  property-list...
//!
//! flags bit: 15 content-type    14 content-encoding  13 headers      12 delivery-mode
//!            11 priority        10 correlation-id     9 reply-to     8 expiration
//!             7 message-id       6 timestamp          5 type         4 user-id
//!             3 app-id           2 cluster-id         1 (unused)     0 another flag word follows
//! ```
//!
//! Only properties whose flag is set appear in the list, in flag order. `ContentHeader` keeps the
//! flags+list bytes as a zero-copy `properties_raw` slice so the broker can forward them verbatim
//! without re-encoding. Further flag words (bit 0 set) are read and ignored: basic defines no
//! properties beyond the first word.

use bytes::Bytes;

use super::error::DecodeError;
use super::types::{FieldTable, ShortStr};
use super::wire::{Put, Reader};

/// Class id of `basic`, the only class with content.
pub const BASIC_CLASS_ID: u16 = 60;

/// Flag bit of each property, in list order.
mod flag {
    pub const CONTENT_TYPE: u16 = 1 << 15;
    pub const CONTENT_ENCODING: u16 = 1 << 14;
    pub const HEADERS: u16 = 1 << 13;
    pub const DELIVERY_MODE: u16 = 1 << 12;
    pub const PRIORITY: u16 = 1 << 11;
    pub const CORRELATION_ID: u16 = 1 << 10;
    pub const REPLY_TO: u16 = 1 << 9;
    pub const EXPIRATION: u16 = 1 << 8;
    pub const MESSAGE_ID: u16 = 1 << 7;
    pub const TIMESTAMP: u16 = 1 << 6;
    pub const KIND: u16 = 1 << 5;
    pub const USER_ID: u16 = 1 << 4;
    pub const APP_ID: u16 = 1 << 3;
    pub const CLUSTER_ID: u16 = 1 << 2;
    pub const CONTINUATION: u16 = 1;
}

/// The properties of class basic; `None` = flag clear, property absent.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    pub cluster_id: Option<ShortStr>,
}

/// A decoded content header frame payload.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub weight: u16,
    pub body_size: u64,
    pub properties: BasicProperties,
    /// The property flags and list exactly as received (a slice of the frame payload).
    pub properties_raw: Bytes,
}

impl BasicProperties {
    /// Decodes property flags followed by the property list; every byte must be used.
    pub fn decode(raw: &Bytes) -> Result<BasicProperties, DecodeError> {
        let mut r = Reader::new(raw);
        let props = BasicProperties::read(&mut r)?;
        r.expect_empty()?;
        Ok(props)
    }

    fn read(r: &mut Reader<'_>) -> Result<BasicProperties, DecodeError> {
        let flags = r.u16()?;
        let mut more = flags & flag::CONTINUATION != 0;
        while more {
            more = r.u16()? & flag::CONTINUATION != 0;
        }
        let has = |bit: u16| flags & bit != 0;
        Ok(BasicProperties {
            content_type: has(flag::CONTENT_TYPE).then(|| r.shortstr()).transpose()?,
            content_encoding: has(flag::CONTENT_ENCODING)
                .then(|| r.shortstr())
                .transpose()?,
            headers: has(flag::HEADERS).then(|| r.table(0)).transpose()?,
            delivery_mode: has(flag::DELIVERY_MODE).then(|| r.u8()).transpose()?,
            priority: has(flag::PRIORITY).then(|| r.u8()).transpose()?,
            correlation_id: has(flag::CORRELATION_ID)
                .then(|| r.shortstr())
                .transpose()?,
            reply_to: has(flag::REPLY_TO).then(|| r.shortstr()).transpose()?,
            expiration: has(flag::EXPIRATION).then(|| r.shortstr()).transpose()?,
            message_id: has(flag::MESSAGE_ID).then(|| r.shortstr()).transpose()?,
            timestamp: has(flag::TIMESTAMP).then(|| r.u64()).transpose()?,
            kind: has(flag::KIND).then(|| r.shortstr()).transpose()?,
            user_id: has(flag::USER_ID).then(|| r.shortstr()).transpose()?,
            app_id: has(flag::APP_ID).then(|| r.shortstr()).transpose()?,
            cluster_id: has(flag::CLUSTER_ID).then(|| r.shortstr()).transpose()?,
        })
    }

    /// Appends the property flags and the list of present properties.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let flags_at = out.len();
        out.put_u16(0);
        let mut flags = 0u16;
        put_shortstr(out, &mut flags, flag::CONTENT_TYPE, &self.content_type);
        put_shortstr(
            out,
            &mut flags,
            flag::CONTENT_ENCODING,
            &self.content_encoding,
        );
        if let Some(headers) = &self.headers {
            flags |= flag::HEADERS;
            out.put_table(headers);
        }
        if let Some(v) = self.delivery_mode {
            flags |= flag::DELIVERY_MODE;
            out.put_u8(v);
        }
        if let Some(v) = self.priority {
            flags |= flag::PRIORITY;
            out.put_u8(v);
        }
        put_shortstr(out, &mut flags, flag::CORRELATION_ID, &self.correlation_id);
        put_shortstr(out, &mut flags, flag::REPLY_TO, &self.reply_to);
        put_shortstr(out, &mut flags, flag::EXPIRATION, &self.expiration);
        put_shortstr(out, &mut flags, flag::MESSAGE_ID, &self.message_id);
        if let Some(v) = self.timestamp {
            flags |= flag::TIMESTAMP;
            out.put_u64(v);
        }
        put_shortstr(out, &mut flags, flag::KIND, &self.kind);
        put_shortstr(out, &mut flags, flag::USER_ID, &self.user_id);
        put_shortstr(out, &mut flags, flag::APP_ID, &self.app_id);
        put_shortstr(out, &mut flags, flag::CLUSTER_ID, &self.cluster_id);
        out[flags_at..flags_at + 2].copy_from_slice(&flags.to_be_bytes());
    }

    /// The encoded flags and list, as `ContentHeader::properties_raw` would hold them.
    pub fn to_raw(&self) -> Bytes {
        let mut out = Vec::new();
        self.encode(&mut out);
        Bytes::from(out)
    }

    /// True if delivery-mode is 2 (persistent).
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }
}

impl ContentHeader {
    /// Decodes a content header frame payload. Only class basic (60) carries content.
    pub fn decode(payload: &Bytes) -> Result<ContentHeader, DecodeError> {
        let mut r = Reader::new(payload);
        let class_id = r.u16()?;
        if class_id != BASIC_CLASS_ID {
            return Err(DecodeError::BadClass {
                expected: BASIC_CLASS_ID,
                found: class_id,
            });
        }
        let weight = r.u16()?;
        let body_size = r.u64()?;
        let properties_at = r.offset();
        let properties = BasicProperties::read(&mut r)?;
        r.expect_empty()?;
        Ok(ContentHeader {
            class_id,
            weight,
            body_size,
            properties,
            properties_raw: payload.slice(properties_at..),
        })
    }
}

/// Writes an optional short-string property and sets its flag when present.
fn put_shortstr(out: &mut Vec<u8>, flags: &mut u16, bit: u16, value: &Option<ShortStr>) {
    if let Some(v) = value {
        *flags |= bit;
        out.put_shortstr(v);
    }
}

#[cfg(test)]
#[path = "properties_tests.rs"]
mod tests;

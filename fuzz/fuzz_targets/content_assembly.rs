//! Arbitrary sequences of method, content header and body frames → the content assembly
//! (`hare::connection::content::ContentState`), one state per channel, fed the way the
//! connection's dispatch feeds it. A completed message must hold exactly the body frames sent
//! since its header, of the declared size; an error ends the connection (all state reset).
#![no_main]

use bytes::Bytes;
use hare::connection::content::ContentState;
use hare::protocol::{ContentHeader, Method};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

include!("common_frames.rs");

/// Small, so that the size limit is reached too.
const MESSAGE_SIZE_MAX: u64 = 4096;

#[derive(Default)]
struct Channel {
    content: ContentState,
    /// The body bytes sent since the last header.
    sent: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let mut channels: HashMap<u8, Channel> = HashMap::new();
    for (kind, id, payload) in records(data) {
        let channel = channels.entry(id).or_default();
        let payload = Bytes::copy_from_slice(payload);
        let result = match kind {
            Kind::Method => {
                let Ok(method) = Method::decode(&payload) else {
                    channels.clear();
                    continue;
                };
                if !channel.content.is_idle() {
                    // dispatch: a method in the middle of content is UNEXPECTED_FRAME.
                    channels.clear();
                    continue;
                }
                if let Method::BasicPublish(publish) = method {
                    channel.content = ContentState::AwaitingHeader(publish);
                }
                Ok(None)
            }
            Kind::Header => {
                let Ok(header) = ContentHeader::decode(&payload) else {
                    channels.clear();
                    continue;
                };
                channel.sent.clear();
                channel.content.header(header, MESSAGE_SIZE_MAX)
            }
            Kind::Body => {
                channel.sent.extend_from_slice(&payload);
                channel.content.body(payload)
            }
            Kind::Heartbeat | Kind::Raw => Ok(None),
        };
        match result {
            Ok(Some(completed)) => {
                assert_eq!(completed.body.len() as u64, completed.header.body_size);
                assert!(completed.header.body_size <= MESSAGE_SIZE_MAX);
                assert_eq!(completed.body.as_ref(), channel.sent.as_slice());
                assert!(channel.content.is_idle(), "state not reset after a message");
                channel.sent.clear();
            }
            Ok(None) => {}
            Err(_) => channels.clear(),
        }
    }
});

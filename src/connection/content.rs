//! Content assembly: basic.publish, then a content header, then body frames until the declared
//! size, all on one channel with nothing else on that channel in between. A single body frame
//! is kept zero-copy; several are joined once.

use bytes::{Bytes, BytesMut};

use crate::exception::Exception;
use crate::protocol::{BasicPublish, ContentHeader, HardError};

/// Where a channel is in receiving a message.
// One per channel, so its size does not matter; boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default)]
pub enum ContentState {
    #[default]
    Idle,
    AwaitingHeader(BasicPublish),
    AwaitingBody {
        publish: BasicPublish,
        header: ContentHeader,
        body: BodyParts,
    },
}

#[derive(Debug, Default)]
pub enum BodyParts {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl BodyParts {
    fn len(&self) -> usize {
        match self {
            BodyParts::Empty => 0,
            BodyParts::One(bytes) => bytes.len(),
            BodyParts::Many(bytes) => bytes.len(),
        }
    }

    fn push(&mut self, payload: Bytes, expected_size: usize) {
        *self = match std::mem::take(self) {
            BodyParts::Empty => BodyParts::One(payload),
            BodyParts::One(first) => {
                let mut joined = BytesMut::with_capacity(expected_size);
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&payload);
                BodyParts::Many(joined)
            }
            BodyParts::Many(mut joined) => {
                joined.extend_from_slice(&payload);
                BodyParts::Many(joined)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            BodyParts::Empty => Bytes::new(),
            BodyParts::One(bytes) => bytes,
            BodyParts::Many(bytes) => bytes.freeze(),
        }
    }
}

/// A fully received message.
#[derive(Debug)]
pub struct Completed {
    pub publish: BasicPublish,
    pub header: ContentHeader,
    pub body: Bytes,
}

impl ContentState {
    pub fn is_idle(&self) -> bool {
        matches!(self, ContentState::Idle)
    }

    /// A content header arrived. Returns the message if its body is empty (no body frames
    /// follow a zero-size body).
    pub fn header(
        &mut self,
        header: ContentHeader,
        message_size_max: u64,
    ) -> Result<Option<Completed>, Exception> {
        let ContentState::AwaitingHeader(publish) = std::mem::take(self) else {
            return Err(Exception::connection(
                HardError::UnexpectedFrame,
                "expected content header frame only after basic.publish",
            ));
        };
        if header.class_id != 60 {
            return Err(Exception::connection(
                HardError::UnexpectedFrame,
                format!(
                    "expected content header for class 60, got {}",
                    header.class_id
                ),
            ));
        }
        if header.body_size > message_size_max {
            return Err(Exception::precondition_failed(format!(
                "message size {} is larger than configured max size {message_size_max}",
                header.body_size
            ))
            .with_method(60, 40));
        }
        if header.body_size == 0 {
            return Ok(Some(Completed {
                publish,
                header,
                body: Bytes::new(),
            }));
        }
        *self = ContentState::AwaitingBody {
            publish,
            header,
            body: BodyParts::Empty,
        };
        Ok(None)
    }

    /// A body frame arrived. Returns the message once the declared size is reached.
    pub fn body(&mut self, payload: Bytes) -> Result<Option<Completed>, Exception> {
        let ContentState::AwaitingBody {
            publish,
            header,
            mut body,
        } = std::mem::take(self)
        else {
            return Err(Exception::connection(
                HardError::UnexpectedFrame,
                "expected method frame, got body frame",
            ));
        };
        let expected = usize::try_from(header.body_size).unwrap_or(usize::MAX);
        if payload.is_empty() {
            // RabbitMQ treats an empty body frame as unexpected.
            return Err(Exception::connection(
                HardError::UnexpectedFrame,
                "empty body frame",
            ));
        }
        if body.len() + payload.len() > expected {
            return Err(Exception::connection(
                HardError::FrameError,
                format!(
                    "body frames exceed the declared body size {}",
                    header.body_size
                ),
            ));
        }
        body.push(payload, expected);
        if body.len() == expected {
            return Ok(Some(Completed {
                publish,
                header,
                body: body.into_bytes(),
            }));
        }
        *self = ContentState::AwaitingBody {
            publish,
            header,
            body,
        };
        Ok(None)
    }
}

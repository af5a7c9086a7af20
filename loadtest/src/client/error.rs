//! `ClientError`: every way a hareperf connection can fail, with the broker's own words when the
//! broker is the one that ended it.

use hare_protocol::{DecodeError, FrameError};

/// An error of the AMQP client. Broker-initiated closes keep the reply code and text so a run
/// report can say exactly why the broker stopped talking.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("framing error from the broker: {0}")]
    Frame(#[from] FrameError),
    #[error("undecodable method from the broker: {0}")]
    Decode(#[from] DecodeError),
    #[error("malformed {what} from the broker")]
    Malformed { what: &'static str },
    #[error("the broker closed the connection: {code} {text} (after {method})")]
    ConnectionClosed {
        code: u16,
        text: String,
        method: String,
    },
    #[error("the broker closed channel {channel}: {code} {text} (after {method})")]
    ChannelClosed {
        channel: u16,
        code: u16,
        text: String,
        method: String,
    },
    #[error("expected {expected} from the broker, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("the broker closed the socket")]
    Eof,
    #[error("no answer from the broker within {seconds} s while waiting for {waiting_for}")]
    Timeout {
        seconds: u64,
        waiting_for: &'static str,
    },
    #[error("bad URI {uri:?}: {reason}")]
    Uri { uri: String, reason: &'static str },
}

impl ClientError {
    /// True when the broker closed the connection or one of its channels on purpose.
    pub fn is_broker_close(&self) -> bool {
        matches!(
            self,
            ClientError::ConnectionClosed { .. } | ClientError::ChannelClosed { .. }
        )
    }
}

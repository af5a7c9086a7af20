//! Reply codes, split the way RabbitMQ uses them: `SoftError` closes a channel
//! (`channel.close`), `HardError` closes the connection (`connection.close`).
//!
//! `name()` returns RabbitMQ's constant names ("NOT_FOUND", "PRECONDITION_FAILED"), which also
//! start every reply text RabbitMQ sends: `"NOT_FOUND - no queue 'q' in vhost '/'"`.

/// Code of a normal `connection.close` / `channel.close`.
pub const REPLY_SUCCESS: u16 = 200;

/// Errors that close only the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoftError {
    ContentTooLarge,
    NoRoute,
    NoConsumers,
    AccessRefused,
    NotFound,
    ResourceLocked,
    PreconditionFailed,
}

/// Errors that close the whole connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HardError {
    ConnectionForced,
    InvalidPath,
    FrameError,
    SyntaxError,
    CommandInvalid,
    ChannelError,
    UnexpectedFrame,
    ResourceError,
    NotAllowed,
    NotImplemented,
    InternalError,
}

/// Any reply code of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    Success,
    Soft(SoftError),
    Hard(HardError),
}

impl SoftError {
    pub const ALL: [SoftError; 7] = [
        SoftError::ContentTooLarge,
        SoftError::NoRoute,
        SoftError::NoConsumers,
        SoftError::AccessRefused,
        SoftError::NotFound,
        SoftError::ResourceLocked,
        SoftError::PreconditionFailed,
    ];

    pub fn code(self) -> u16 {
        match self {
            SoftError::ContentTooLarge => 311,
            SoftError::NoRoute => 312,
            SoftError::NoConsumers => 313,
            SoftError::AccessRefused => 403,
            SoftError::NotFound => 404,
            SoftError::ResourceLocked => 405,
            SoftError::PreconditionFailed => 406,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SoftError::ContentTooLarge => "CONTENT_TOO_LARGE",
            SoftError::NoRoute => "NO_ROUTE",
            SoftError::NoConsumers => "NO_CONSUMERS",
            SoftError::AccessRefused => "ACCESS_REFUSED",
            SoftError::NotFound => "NOT_FOUND",
            SoftError::ResourceLocked => "RESOURCE_LOCKED",
            SoftError::PreconditionFailed => "PRECONDITION_FAILED",
        }
    }
}

impl HardError {
    pub const ALL: [HardError; 11] = [
        HardError::ConnectionForced,
        HardError::InvalidPath,
        HardError::FrameError,
        HardError::SyntaxError,
        HardError::CommandInvalid,
        HardError::ChannelError,
        HardError::UnexpectedFrame,
        HardError::ResourceError,
        HardError::NotAllowed,
        HardError::NotImplemented,
        HardError::InternalError,
    ];

    pub fn code(self) -> u16 {
        match self {
            HardError::ConnectionForced => 320,
            HardError::InvalidPath => 402,
            HardError::FrameError => 501,
            HardError::SyntaxError => 502,
            HardError::CommandInvalid => 503,
            HardError::ChannelError => 504,
            HardError::UnexpectedFrame => 505,
            HardError::ResourceError => 506,
            HardError::NotAllowed => 530,
            HardError::NotImplemented => 540,
            HardError::InternalError => 541,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HardError::ConnectionForced => "CONNECTION_FORCED",
            HardError::InvalidPath => "INVALID_PATH",
            HardError::FrameError => "FRAME_ERROR",
            HardError::SyntaxError => "SYNTAX_ERROR",
            HardError::CommandInvalid => "COMMAND_INVALID",
            HardError::ChannelError => "CHANNEL_ERROR",
            HardError::UnexpectedFrame => "UNEXPECTED_FRAME",
            HardError::ResourceError => "RESOURCE_ERROR",
            HardError::NotAllowed => "NOT_ALLOWED",
            HardError::NotImplemented => "NOT_IMPLEMENTED",
            HardError::InternalError => "INTERNAL_ERROR",
        }
    }
}

impl ReplyCode {
    pub fn code(self) -> u16 {
        match self {
            ReplyCode::Success => REPLY_SUCCESS,
            ReplyCode::Soft(e) => e.code(),
            ReplyCode::Hard(e) => e.code(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::Success => "REPLY_SUCCESS",
            ReplyCode::Soft(e) => e.name(),
            ReplyCode::Hard(e) => e.name(),
        }
    }

    /// The reply code with wire value `code`, if the spec defines one.
    pub fn from_code(code: u16) -> Option<ReplyCode> {
        if code == REPLY_SUCCESS {
            return Some(ReplyCode::Success);
        }
        if let Some(e) = SoftError::ALL.into_iter().find(|e| e.code() == code) {
            return Some(ReplyCode::Soft(e));
        }
        HardError::ALL
            .into_iter()
            .find(|e| e.code() == code)
            .map(ReplyCode::Hard)
    }
}

impl From<SoftError> for ReplyCode {
    fn from(e: SoftError) -> ReplyCode {
        ReplyCode::Soft(e)
    }
}
impl From<HardError> for ReplyCode {
    fn from(e: HardError) -> ReplyCode {
        ReplyCode::Hard(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_from_code() {
        let all = std::iter::once(ReplyCode::Success)
            .chain(SoftError::ALL.map(ReplyCode::Soft))
            .chain(HardError::ALL.map(ReplyCode::Hard));
        for reply in all {
            assert_eq!(ReplyCode::from_code(reply.code()), Some(reply));
        }
        assert_eq!(ReplyCode::from_code(0), None);
        assert_eq!(ReplyCode::from_code(407), None);
    }

    #[test]
    fn names_and_codes_match_the_spec_constants() {
        assert_eq!(SoftError::NotFound.code(), 404);
        assert_eq!(SoftError::NotFound.name(), "NOT_FOUND");
        assert_eq!(SoftError::PreconditionFailed.name(), "PRECONDITION_FAILED");
        assert_eq!(HardError::ConnectionForced.code(), 320);
        assert_eq!(HardError::FrameError.name(), "FRAME_ERROR");
        assert_eq!(HardError::NotAllowed.code(), 530);
        assert_eq!(ReplyCode::Success.name(), "REPLY_SUCCESS");
    }
}

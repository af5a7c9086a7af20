//! The ways a `harectl` command fails and the exit code each one ends with.
//!
//! The codes are rabbitmqctl's (sysexits(3)), so scripts written against rabbitmqctl read the same
//! outcome from `harectl`; docs/harectl.md lists them. Transport failures come from `client`;
//! everything a command decides itself (a missing user, an existing one, a bad argument) is a
//! `Refused` with the code rabbitmqctl uses for that case.

use crate::client::ApiError;

/// rabbitmqctl's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    /// Bad or missing arguments, unknown columns, an unknown queue on delete.
    Usage = 64,
    /// Invalid data: a bad JSON argument, a file that cannot be read or written.
    DataError = 65,
    /// The user named does not exist.
    NoUser = 67,
    /// The node cannot be reached, or refused the operation.
    Unavailable = 69,
    /// Anything else, and "already exists".
    Software = 70,
    /// The operation did not finish within the timeout.
    TemporaryFailure = 75,
    /// The management API refused the credentials (HTTP 401).
    NoPermission = 77,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A failure the command recognised, with rabbitmqctl's message and exit code.
    #[error("{message}")]
    Refused { code: ExitCode, message: String },
}

impl CtlError {
    pub fn refused(code: ExitCode, message: impl Into<String>) -> CtlError {
        CtlError::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> CtlError {
        CtlError::refused(ExitCode::Usage, message)
    }

    pub fn data(message: impl Into<String>) -> CtlError {
        CtlError::refused(ExitCode::DataError, message)
    }

    pub fn no_such_user(user: &str) -> CtlError {
        CtlError::refused(ExitCode::NoUser, format!("User \"{user}\" does not exist"))
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CtlError::Api(error) => error.exit_code(),
            CtlError::Refused { code, .. } => *code,
        }
    }

    /// The HTTP status behind this failure, if the API answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CtlError::Api(ApiError::Status { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// The text after `Error:` on stderr. Failures to reach the node keep rabbitmqctl's one-line
    /// form (`Error: unable to perform an operation on node ...`); the others go on the next line.
    pub fn stderr_text(&self) -> String {
        match self {
            CtlError::Api(ApiError::Unreachable { .. }) => format!("Error: {self}"),
            _ => format!("Error:\n{self}"),
        }
    }
}

//! AMQP exceptions: the peer's faults. A channel exception closes one channel, a connection
//! exception the whole connection. They carry RabbitMQ's reply codes and texts; the class and
//! method ids of the offending method are attached by the connection, which knows them.

use crate::protocol::{HardError, SoftError};

/// What an exception closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionScope {
    Channel(SoftError),
    Connection(HardError),
}

/// A peer fault to report with channel.close or connection.close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub scope: ExceptionScope,
    /// The explanation after the code name, e.g. "no queue 'q' in vhost '/'".
    pub explanation: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl Exception {
    pub fn channel(code: SoftError, explanation: impl Into<String>) -> Exception {
        Exception {
            scope: ExceptionScope::Channel(code),
            explanation: explanation.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    pub fn connection(code: HardError, explanation: impl Into<String>) -> Exception {
        Exception {
            scope: ExceptionScope::Connection(code),
            explanation: explanation.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    pub fn not_found(explanation: impl Into<String>) -> Exception {
        Exception::channel(SoftError::NotFound, explanation)
    }

    pub fn precondition_failed(explanation: impl Into<String>) -> Exception {
        Exception::channel(SoftError::PreconditionFailed, explanation)
    }

    pub fn access_refused(explanation: impl Into<String>) -> Exception {
        Exception::channel(SoftError::AccessRefused, explanation)
    }

    pub fn resource_locked(explanation: impl Into<String>) -> Exception {
        Exception::channel(SoftError::ResourceLocked, explanation)
    }

    pub fn not_implemented(explanation: impl Into<String>) -> Exception {
        Exception::connection(HardError::NotImplemented, explanation)
    }

    /// Attaches the offending method, unless one is already set.
    pub fn with_method(mut self, class_id: u16, method_id: u16) -> Exception {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    pub fn reply_code(&self) -> u16 {
        match self.scope {
            ExceptionScope::Channel(code) => code.code(),
            ExceptionScope::Connection(code) => code.code(),
        }
    }

    /// RabbitMQ's reply text: `"<NAME> - <explanation>"`.
    pub fn reply_text(&self) -> String {
        let name = match self.scope {
            ExceptionScope::Channel(code) => code.name(),
            ExceptionScope::Connection(code) => code.name(),
        };
        format!("{name} - {}", self.explanation)
    }

    pub fn is_connection_level(&self) -> bool {
        matches!(self.scope, ExceptionScope::Connection(_))
    }
}

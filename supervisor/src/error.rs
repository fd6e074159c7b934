//! The supervisor's error: what crosses the api socket as an
//! [`ErrorReply`](proto::ErrorReply).

use proto::{ErrorKind, ErrorReply};

/// A failed supervisor operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// The class of failure.
    pub kind: ErrorKind,
    /// A sentence naming the object and the cause.
    pub message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub(crate) fn not_found(ns: &str, name: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("no container {name:?} in namespace {ns:?}"),
        )
    }
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
}

impl From<ErrorReply> for Error {
    fn from(e: ErrorReply) -> Self {
        Error::new(e.kind, e.message)
    }
}

impl From<Error> for ErrorReply {
    fn from(e: Error) -> Self {
        ErrorReply::new(e.kind, e.message)
    }
}

impl From<proto::NameError> for Error {
    fn from(e: proto::NameError) -> Self {
        Error::invalid(e.to_string())
    }
}

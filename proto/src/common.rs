//! Types shared by both protocols.

use serde::{Deserialize, Serialize};

/// The first frame on every connection, in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Client: the newest version it speaks. Server: the version agreed.
    pub protocol: u16,
    /// Free text naming the software and its version, for logs.
    pub software: String,
}

/// A container's status as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Init exists and waits for `start`.
    Created,
    /// Init has been released and is alive.
    Running,
    /// Frozen by the freezer cgroup.
    Paused,
    /// Init has exited.
    Exited,
}

impl Status {
    /// The lower-case word contctl prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited => "exited",
        }
    }
}

/// How a container's init ended; written durably by the monitor before it is
/// reported to anyone, and kept on disk as JSON (`exit` in the state dir).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Shell-style code: the exit status, or 128 + signal.
    pub code: i32,
    /// The signal that killed init, if one did.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer acted in the container's cgroup.
    pub oom_killed: bool,
    /// When init was released (unix nanoseconds), if it was.
    pub started_at: Option<i64>,
    /// When init's exit was seen (unix nanoseconds).
    pub finished_at: i64,
    /// The protocol version of the monitor that wrote the record.
    pub protocol: u16,
}

/// Coarse classes of failure, so clients can pick exit codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request is malformed or names something invalid.
    InvalidArgument,
    /// No such container.
    NotFound,
    /// A container of that name exists already.
    AlreadyExists,
    /// The container's state does not allow the operation.
    Conflict,
    /// Something failed on the server's side.
    Internal,
    /// The peer speaks no common protocol version.
    Unsupported,
}

/// An error as it crosses a process boundary: data, with its cause chain
/// already folded into the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The class of failure.
    pub kind: ErrorKind,
    /// A sentence naming the object and the cause.
    pub message: String,
}

impl ErrorReply {
    /// Builds an error reply.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorReply {}

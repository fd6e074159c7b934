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
    /// Protocol 5: the monitor is gone and left no exit record, so whether
    /// init still runs, and how it ended, is not known; the details say why.
    Unknown,
}

impl Status {
    /// The lower-case word contctl prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited => "exited",
            Status::Unknown => "unknown",
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
    // ---- protocol version 6 ----
    /// The peer may not do this (not root, not in the socket's group).
    PermissionDenied,
    /// The container's program exists but cannot be executed (a shell's
    /// 126).
    NotExecutable,
    /// The container's program does not exist (a shell's 127).
    CommandNotFound,
}

impl ErrorKind {
    /// What a peer of protocol `version` can decode: the kinds of version 6
    /// become `InvalidArgument` for older ones (the message says it all).
    pub fn for_version(self, version: u16) -> ErrorKind {
        match self {
            ErrorKind::PermissionDenied | ErrorKind::NotExecutable | ErrorKind::CommandNotFound
                if version < 6 =>
            {
                ErrorKind::InvalidArgument
            }
            k => k,
        }
    }
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

/// Limits of a container, set at create or changed on a running one
/// (protocol version 4). Every field is optional: what is unset is left
/// as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit, bytes.
    pub memory: Option<u64>,
    /// CPUs as a fraction, in billionths (docker's NanoCpus: 1.5 cpus is
    /// 1_500_000_000); becomes a CFS quota over a 100 ms period.
    pub nano_cpus: Option<u64>,
    /// Relative CPU weight (cgroup v1 shares, 2..=262144).
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period (-1: none).
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds (1000..=1000000).
    pub cpu_period: Option<u64>,
    /// Maximum number of processes (-1: none).
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// An extra process in a running container (protocol version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to the container's environment.
    pub env: Vec<String>,
    /// Working directory (default: the container's).
    pub cwd: Option<String>,
    /// uid and gid (default: the container's user).
    pub user: Option<(u32, u32)>,
    /// A terminal, with this initial size (rows, columns).
    pub tty: Option<(u16, u16)>,
    /// Keep a stdin for [`Request::ExecInput`].
    pub stdin: bool,
}

/// A container's resource usage (protocol version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Memory limit, bytes (0: none).
    pub memory_limit: u64,
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Processes in the cgroup.
    pub pids_current: u64,
    /// Process limit (0: none).
    pub pids_limit: u64,
}

/// How a container's log writer fares (protocol version 3). A record that
/// cannot be written (full disk, quota, I/O error) is dropped and counted;
/// the container is never blocked or killed for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStatus {
    /// The first error met writing or rotating the log.
    pub error: Option<String>,
    /// When it happened (unix nanoseconds).
    pub error_at: Option<i64>,
    /// Whether the latest write failed too (the condition persists).
    pub failing: bool,
    /// Log records dropped because they could not be written.
    pub dropped_records: u64,
    /// Bytes of those records.
    pub dropped_bytes: u64,
}

/// A size as docker spells it, in bytes: `10m`, `1.5g`, `512k`, `100mb`, `4096` (powers of 1024).
///
/// # Errors
/// Anything else, in a sentence.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let plain = !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && num.bytes().filter(|b| *b == b'.').count() <= 1
        && !num.starts_with('.')
        && !num.ends_with('.');
    let v: f64 = num
        .parse()
        .ok()
        .filter(|_| plain)
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 4096, 512k, 10m, 1.5g)"))?;
    let bytes = v * mul as f64;
    if bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

//! contctl ↔ contd messages (the api socket).
//!
//! After the [`Hello`](crate::Hello) exchange the client sends [`Request`]s
//! and reads [`Response`]s: one response per request, except
//! [`Request::Logs`], answered by any number of [`Response::LogData`] and a
//! final [`Response::LogEnd`].
//!
//! Version 2 adds interactive containers, attach, exec, resize and stats.
//! [`Request::Attach`] and [`Request::Exec`] turn the connection into a
//! stream for the rest of its life: the client sends [`Request::Input`] /
//! [`Request::ExecInput`] (and [`Request::Resize`]), contd forwards the
//! monitor's output; an attach ends with [`Response::Detached`] or
//! [`Response::Exited`], an exec with [`Response::ExecExited`].

use serde::{Deserialize, Serialize};

use crate::monitor::{ExecRequest, LogStatus, Stats};
use crate::{ErrorReply, ExitRecord, Status};

/// Terminal and stdin of a new container (protocol version 2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interactive {
    /// A terminal of this initial size (rows, columns).
    pub tty: Option<(u16, u16)>,
    /// Keep the container's stdin open for attached clients.
    pub stdin: bool,
}

/// What a caller asks for when creating a container; contd turns it into a
/// full OCI `config.json` with secure defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// Tenant namespace.
    pub ns: String,
    /// Container name, unique within `ns`.
    pub name: String,
    /// Absolute path of the root filesystem directory.
    pub rootfs: String,
    /// Argument vector of init; empty means `sh`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to the default environment.
    pub env: Vec<String>,
    /// Working directory inside the container (default `/`).
    pub cwd: Option<String>,
    /// `(uid, gid)` to run as (default root).
    pub user: Option<(u32, u32)>,
    /// Hostname (default: the container name).
    pub hostname: Option<String>,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
    /// Path of a network namespace to join; none = a fresh private one.
    pub network: Option<String>,
    /// Free-form labels, kept and shown by inspect.
    pub labels: Vec<(String, String)>,
    /// Start the container once created (`run`).
    pub start: bool,
}

/// One container as `inspect` and `ps` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Tenant namespace.
    pub ns: String,
    /// Container name.
    pub name: String,
    /// Current status, derived from the monitor.
    pub status: Status,
    /// Host pid of init while it lives.
    pub pid: Option<i32>,
    /// How init ended, once it has.
    pub exit: Option<ExitRecord>,
    /// Where the container's log is written.
    pub log_path: String,
    /// The root filesystem the container was created from.
    pub rootfs: String,
    /// Init's argument vector.
    pub args: Vec<String>,
    /// Creation time (unix nanoseconds).
    pub created_at: i64,
    /// Labels from the create request.
    pub labels: Vec<(String, String)>,
    /// Set when contd cannot vouch for the status (monitor gone, no record).
    pub error: Option<String>,
}

/// A request on the api socket. Variants are append-only.
// Boxing `CreateRequest` would change nothing on the wire but every caller;
// requests are short-lived, so the size is of no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Create (and with `start`, start) a container.
    Create(CreateRequest),
    /// Start a created container.
    Start {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// Report one container.
    Inspect {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// Report the containers of one namespace, or of all when `ns` is `None`.
    List {
        /// Namespace filter.
        ns: Option<String>,
    },
    /// Stream the container's log text.
    Logs {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// SIGTERM, wait up to `timeout_secs`, then SIGKILL.
    Stop {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Grace period in seconds.
        timeout_secs: u32,
    },
    /// Send a signal to init.
    Kill {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Signal number.
        signal: i32,
    },
    /// Release every resource of the container (logs stay).
    Remove {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Kill the container first if it runs.
        force: bool,
    },
    /// Wait until init exits and report how.
    Wait {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    // ---- protocol version 2 ----
    /// Create with a terminal and/or stdin.
    CreateInteractive {
        /// What to create.
        req: CreateRequest,
        /// Terminal and stdin.
        interactive: Interactive,
    },
    /// Attach to the container's terminal or output (the connection
    /// becomes a stream, see the module docs).
    Attach {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Write the container's stdin.
        stdin: bool,
        /// Detach sequence; `None` for ctrl-p ctrl-q, empty for none.
        detach_keys: Option<Vec<u8>>,
    },
    /// Bytes for the container's stdin (on an attach stream).
    Input {
        /// The bytes.
        data: Vec<u8>,
    },
    /// Resize the container's terminal.
    Resize {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Run an extra process in the container (the connection becomes a
    /// stream, see the module docs).
    Exec {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// The process.
        exec: ExecRequest,
    },
    /// Bytes for the exec'd process's stdin (empty: close it).
    ExecInput {
        /// The exec id from [`Response::ExecStarted`].
        id: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Resource usage of the container.
    Stats {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    // ---- protocol version 3 ----
    /// How the container's log writer fares (dropped output, errors).
    LogStatus {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
}

impl Request {
    /// The protocol version that introduced this message: a peer that
    /// agreed on an older one is never sent it.
    pub fn since(&self) -> u16 {
        match self {
            Request::Create(_)
            | Request::Start { .. }
            | Request::Inspect { .. }
            | Request::List { .. }
            | Request::Logs { .. }
            | Request::Stop { .. }
            | Request::Kill { .. }
            | Request::Remove { .. }
            | Request::Wait { .. } => 1,
            Request::CreateInteractive { .. }
            | Request::Attach { .. }
            | Request::Input { .. }
            | Request::Resize { .. }
            | Request::Exec { .. }
            | Request::ExecInput { .. }
            | Request::Stats { .. } => 2,
            Request::LogStatus { .. } => 3,
        }
    }
}

/// Which stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// A response on the api socket. Variants are append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The request succeeded and has nothing to report.
    Ok,
    /// One container.
    Container(ContainerInfo),
    /// Several containers.
    Containers(Vec<ContainerInfo>),
    /// A piece of log text (CRI prefix removed, partial lines joined).
    LogData {
        /// The stream it was written to.
        stream: Stream,
        /// The text, newline included where the container wrote one.
        data: Vec<u8>,
    },
    /// The end of a log stream.
    LogEnd,
    /// Init exited.
    Exited(ExitRecord),
    /// The request failed.
    Error(ErrorReply),
    // ---- protocol version 2 ----
    /// Output of the attached container.
    Output {
        /// Which stream (a terminal's is `Stdout`).
        stream: Stream,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The attach ended by the detach keys.
    Detached,
    /// The exec'd process started.
    ExecStarted {
        /// Its id.
        id: u32,
        /// Its host pid.
        pid: i32,
    },
    /// Output of the exec'd process.
    ExecOutput {
        /// Its id.
        id: u32,
        /// Which stream.
        stream: Stream,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The exec'd process ended.
    ExecExited {
        /// Its id.
        id: u32,
        /// Exit code, or 128 + signal.
        code: i32,
    },
    /// Resource usage.
    Stats(Stats),
    // ---- protocol version 3 ----
    /// How the container's log writer fares.
    LogStatus(LogStatus),
}

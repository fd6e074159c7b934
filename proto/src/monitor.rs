//! contd ↔ contd-monitor messages (`monitor.sock` in the container's state
//! dir), and the readiness report a new monitor writes on its sync pipe.
//!
//! After the [`Hello`](crate::Hello) exchange contd sends [`Request`]s; each
//! gets one [`Response`]. [`Request::Wait`] is answered only when init exits
//! (at once if it has already).

use serde::{Deserialize, Serialize};

use crate::api::Stream;
pub use crate::common::{ExecRequest, LogStatus, Stats};
use crate::{ErrorReply, ExitRecord, Resources, Status};

/// A request to a monitor. Variants are append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Report the container's state.
    State,
    /// Release init from its exec fifo.
    Start,
    /// Send a signal to init (through its pidfd).
    Signal {
        /// Signal number.
        signal: i32,
    },
    /// Answer once init has exited.
    Wait,
    /// The container has exited and contd is done with it: remove the
    /// container's resources (cgroup, socket, pid file) and exit. The exit
    /// record stays on disk.
    Release,
    // ---- protocol version 2 ----
    /// Sends `signal`, then SIGKILL after `timeout_ms`; answered with
    /// [`Response::Exited`] once init is gone.
    Stop {
        /// The first signal (usually SIGTERM).
        signal: i32,
        /// Grace time before SIGKILL, in milliseconds.
        timeout_ms: u64,
    },
    /// Joins the container's terminal or stdio: answered with
    /// [`Response::Ok`], then the container's output reaches this connection
    /// as [`Response::Output`] frames, as it does every attached one. With
    /// `stdin`, [`Request::Input`] from this connection goes to the
    /// container (one holder at a time). The `detach_keys` sequence
    /// (default ctrl-p ctrl-q) in the input ends the attach with
    /// [`Response::Detached`], without touching the container; the
    /// container's exit ends it with [`Response::Exited`].
    Attach {
        /// Whether this connection writes the container's stdin.
        stdin: bool,
        /// The detach sequence; `None` for ctrl-p ctrl-q, empty for none.
        detach_keys: Option<Vec<u8>>,
    },
    /// Bytes for the container's stdin (attached with `stdin` only); none:
    /// the end of input, the container's stdin is closed once the rest is
    /// written (not with a terminal).
    Input {
        /// The bytes.
        data: Vec<u8>,
    },
    /// Resizes the container's terminal.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Starts an extra process in the running container; answered with
    /// [`Response::ExecStarted`], then its output as [`Response::ExecOutput`]
    /// and its end as [`Response::ExecExited`] on this connection.
    Exec(ExecRequest),
    /// Bytes for an exec'd process's stdin (empty: close it).
    ExecInput {
        /// The exec id from [`Response::ExecStarted`].
        id: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Resource usage of the container's cgroup.
    Stats,
    // ---- protocol version 3 ----
    /// How the log writer fares: answered with [`Response::LogStatus`].
    LogStatus,
    // ---- protocol version 4 ----
    /// Makes this connection the supervisor's live link: answered with
    /// [`Response::State`], then the monitor pushes a [`Response::Event`]
    /// for every change (start, pause, resume, OOM, exit) as it happens.
    /// Requests keep their answers, in order; events come between them.
    Subscribe,
    /// Sends `signal`, then SIGKILL after `timeout_ms` (the monitor keeps
    /// the deadline, whoever disconnects); answered with [`Response::Ok`]
    /// at once, the exit comes as an event or to `Wait`.
    Terminate {
        /// The first signal.
        signal: i32,
        /// Grace time before SIGKILL, in milliseconds.
        timeout_ms: u64,
    },
    /// Freezes the container.
    Pause,
    /// Thaws the container.
    Resume,
    /// Changes the running container's limits.
    Update(Resources),
    /// The pids of the container's cgroup: [`Response::Pids`].
    Pids,
}

impl Request {
    /// The protocol version that introduced this message: a peer that
    /// agreed on an older one is never sent it.
    pub fn since(&self) -> u16 {
        match self {
            Request::State
            | Request::Start
            | Request::Signal { .. }
            | Request::Wait
            | Request::Release => 1,
            Request::Stop { .. }
            | Request::Attach { .. }
            | Request::Input { .. }
            | Request::Resize { .. }
            | Request::Exec(_)
            | Request::ExecInput { .. }
            | Request::Stats => 2,
            Request::LogStatus => 3,
            Request::Subscribe
            | Request::Terminate { .. }
            | Request::Pause
            | Request::Resume
            | Request::Update(_)
            | Request::Pids => 4,
        }
    }
}

/// The container as its monitor knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorState {
    /// Derived from the live process and the exit record.
    pub status: Status,
    /// Host pid of init while it lives.
    pub pid: Option<i32>,
    /// Set once init has exited.
    pub exit: Option<ExitRecord>,
    /// When the container was created (unix nanoseconds).
    pub created_at: i64,
    /// When init was released (unix nanoseconds).
    pub started_at: Option<i64>,
    /// The log file the monitor writes.
    pub log_path: String,
    /// Pid of the monitor itself.
    pub monitor_pid: i32,
}

/// A monitor's answer. Variants are append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done.
    Ok,
    /// The state.
    State(MonitorState),
    /// Init exited like this.
    Exited(ExitRecord),
    /// The request failed.
    Error(ErrorReply),
    // ---- protocol version 2 ----
    /// Output of the container, to attached connections.
    Output {
        /// Which stream (a terminal's output is `Stdout`).
        stream: Stream,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The attach ended by the detach keys; the connection stays usable.
    Detached,
    /// An exec'd process started.
    ExecStarted {
        /// Its id on this monitor.
        id: u32,
        /// Its host pid.
        pid: i32,
    },
    /// Output of an exec'd process.
    ExecOutput {
        /// The exec id.
        id: u32,
        /// Which stream.
        stream: Stream,
        /// The bytes.
        data: Vec<u8>,
    },
    /// An exec'd process ended.
    ExecExited {
        /// The exec id.
        id: u32,
        /// Exit code, or 128 + signal.
        code: i32,
    },
    /// Resource usage.
    Stats(Stats),
    // ---- protocol version 3 ----
    /// How the log writer fares.
    LogStatus(LogStatus),
    // ---- protocol version 4 ----
    /// A change, pushed to subscribed connections.
    Event(MonitorEvent),
    /// Host pids of the container's processes.
    Pids(Vec<i32>),
}

/// A change a monitor pushes to its subscribers (protocol version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MonitorEvent {
    /// Init was released at this time (unix nanoseconds).
    Started(i64),
    /// The container was frozen.
    Paused,
    /// The container was thawed.
    Resumed,
    /// The OOM killer acted in the container's cgroup.
    Oom,
    /// Init exited; the record is on disk.
    Exited(ExitRecord),
}

/// Written once by a new monitor on its sync pipe (one frame), then the pipe
/// is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ready {
    /// The container exists (status created) and `monitor.sock` listens.
    Created {
        /// Host pid of init.
        pid: i32,
        /// Pid of the monitor (after its double fork).
        monitor_pid: i32,
    },
    /// Creation failed; the monitor has undone what it did and exits.
    Failed(ErrorReply),
    /// Protocol 5, answering `--start`: the container was created and
    /// started (status running) and `monitor.sock` listens.
    Started {
        /// Host pid of init.
        pid: i32,
        /// Pid of the monitor (after its double fork).
        monitor_pid: i32,
        /// When init was let run, unix nanoseconds.
        started_at: i64,
    },
}

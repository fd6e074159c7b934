//! contd ↔ contd-monitor messages (`monitor.sock` in the container's state
//! dir), and the readiness report a new monitor writes on its sync pipe.
//!
//! After the [`Hello`](crate::Hello) exchange contd sends [`Request`]s; each
//! gets one [`Response`]. [`Request::Wait`] is answered only when init exits
//! (at once if it has already).

use serde::{Deserialize, Serialize};

use crate::{ErrorReply, ExitRecord, Status};

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
}

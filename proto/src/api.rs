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

pub use crate::common::{ExecRequest, LogStatus, Stats};
use crate::{ErrorReply, ExitRecord, Resources, Status};

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
        /// The bytes; none: the end of input (the container's stdin is
        /// closed once what came before is written; not with a terminal).
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
    // ---- protocol version 4 ----
    /// Create (and with `start`, start) a container from the complete
    /// request; answered with [`Response::Details`].
    CreateContainer(ContainerConfig),
    /// Report one container in full ([`Response::Details`]).
    Details {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// Report the containers of one namespace, or of all, in full
    /// ([`Response::DetailsList`]).
    ListDetails {
        /// Namespace filter.
        ns: Option<String>,
    },
    /// Freeze every process of the container.
    Pause {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// The container's processes ([`Response::Processes`]).
    Top {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// Change the limits of a running container (the fields set).
    Update {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// The new limits.
        resources: Resources,
    },
    /// Subscribe to events: the connection then carries [`Response::Event`]
    /// frames for the rest of its life.
    Events(EventFilter),
    /// Stream the log with options: `LogData` frames, then `LogEnd` (with
    /// `follow`, once the container has exited and its log is read).
    LogsWith {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Tail, since, follow.
        options: LogOptions,
    },
    /// The namespaces that hold containers ([`Response::Namespaces`]).
    Namespaces,
    // ---- protocol version 6 ----
    /// As [`Request::CreateContainer`], with what happens around the
    /// container's life ([`Response::Details`]).
    CreateContainerWith {
        /// The container.
        config: ContainerConfig,
        /// Its lifecycle options.
        options: RunOptions,
    },
    /// As [`Request::Stop`]; without a timeout, the container's own
    /// ([`RunOptions::stop_timeout`], else 10 s) ([`Response::Ok`]).
    StopWith {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Seconds between the stop signal and SIGKILL.
        timeout_secs: Option<u32>,
    },
    // ---- protocol version 7 ----
    /// Give a container another name ([`Response::Ok`]). Only the name
    /// changes: its state, log and cgroup keep their paths, as docker's
    /// rename keeps the container's id.
    Rename {
        /// Namespace.
        ns: String,
        /// The current name.
        name: String,
        /// The new name (free in the namespace).
        new_name: String,
    },
    /// As [`Request::LogsWith`], each line in a [`Response::LogLine`] with
    /// the time it was written (`logs -t`), then `LogEnd`.
    LogsTimed {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Tail, since, follow.
        options: LogOptions,
    },
    /// As [`Request::CreateContainerWith`], with `init`: init is a small
    /// reaper that runs the command as its child, forwards signals to it
    /// and exits with its code, as docker's `--init`.
    CreateContainerWithInit {
        /// The container.
        config: ContainerConfig,
        /// Its lifecycle options.
        options: RunOptions,
        /// Run the command under contd's init.
        init: bool,
    },
}

/// What contd does around a container's life, beyond the
/// [`ContainerConfig`] (protocol version 6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Remove the container (state and log) once it has exited for good
    /// (no restart due), as docker's `--rm`. contd does it, so it happens
    /// also when the client that asked is gone.
    pub auto_remove: bool,
    /// The signal `stop` sends first (default SIGTERM), as docker's
    /// `--stop-signal`.
    pub stop_signal: Option<i32>,
    /// Seconds `stop` waits before SIGKILL when the request gives none
    /// (default 10), as docker's `--stop-timeout`.
    pub stop_timeout: Option<u32>,
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
            Request::CreateContainer(_)
            | Request::Details { .. }
            | Request::ListDetails { .. }
            | Request::Pause { .. }
            | Request::Resume { .. }
            | Request::Top { .. }
            | Request::Update { .. }
            | Request::Events(_)
            | Request::LogsWith { .. }
            | Request::Namespaces => 4,
            Request::CreateContainerWith { .. } | Request::StopWith { .. } => 6,
            Request::Rename { .. }
            | Request::LogsTimed { .. }
            | Request::CreateContainerWithInit { .. } => 7,
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
// As for `Request`: boxing would change every caller, not the wire.
#[allow(clippy::large_enum_variant)]
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
    // ---- protocol version 4 ----
    /// One container, in full.
    Details(ContainerDetails),
    /// Several containers, in full.
    DetailsList(Vec<ContainerDetails>),
    /// The container's processes.
    Processes(Vec<Process>),
    /// Something happened (on an events stream).
    Event(Event),
    /// Namespace names.
    Namespaces(Vec<String>),
    // ---- protocol version 7 ----
    /// One line of the log and when it was written (answers
    /// [`Request::LogsTimed`]).
    LogLine {
        /// The stream it was written to.
        stream: Stream,
        /// When the monitor wrote it (unix nanoseconds; 0 if the record
        /// had no readable time).
        time: i64,
        /// The text, newline included where the container wrote one.
        data: Vec<u8>,
    },
}

/// A mount's type (protocol version 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A host path bound into the container.
    Bind,
    /// A fresh tmpfs.
    Tmpfs,
}

/// A mount of the container (protocol version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Bind or tmpfs.
    pub kind: MountKind,
    /// Absolute host path (bind); empty for tmpfs.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// Bind propagation: `private`, `rprivate`, `shared`, `rshared`,
    /// `slave` or `rslave` (default `rprivate`).
    pub propagation: Option<String>,
    /// tmpfs size in bytes (default: the kernel's, half of RAM).
    pub size: Option<u64>,
}

/// What happens when a container's init exits (protocol version 4), with
/// docker's semantics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Never restarted.
    #[default]
    No,
    /// Restarted when it exits with a non-zero code, at most `max` times
    /// (0: no limit).
    OnFailure {
        /// Most restarts (0: unlimited).
        max: u32,
    },
    /// Always restarted; an explicit stop holds until the next start or
    /// the next start of contd.
    Always,
    /// As `Always`, but an explicit stop holds across contd restarts too.
    UnlessStopped,
}

impl RestartPolicy {
    /// Parses docker's spelling: `no`, `on-failure[:N]`, `always`,
    /// `unless-stopped`.
    ///
    /// # Errors
    /// Any other word, or a count that is not a number.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "no" | "" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure { max: 0 }),
            _ => match s.strip_prefix("on-failure:") {
                Some(n) => n
                    .parse()
                    .map(|max| RestartPolicy::OnFailure { max })
                    .map_err(|_| format!("restart policy {s:?}: {n:?} is not a count")),
                None => Err(format!(
                    "restart policy {s:?} is not one of no, on-failure[:N], always, unless-stopped"
                )),
            },
        }
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { max: 0 } => f.write_str("on-failure"),
            RestartPolicy::OnFailure { max } => write!(f, "on-failure:{max}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

/// The complete request for a container (protocol version 4); kept as
/// given and shown by inspect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Tenant namespace.
    pub ns: String,
    /// Container name, unique within `ns`.
    pub name: String,
    /// Absolute path of the root filesystem directory.
    pub rootfs: String,
    /// A command line, split into words as a shell would (no expansion),
    /// put before `args`.
    pub entrypoint: Option<String>,
    /// Arguments (after the entrypoint's words); both empty means `sh`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to the default environment.
    pub env: Vec<String>,
    /// Working directory inside the container (default `/`).
    pub cwd: Option<String>,
    /// `uid[:gid]` or a user name (`name[:group]`) of the container's
    /// `/etc/passwd` and `/etc/group` (default root).
    pub user: Option<String>,
    /// Hostname (default: the container name).
    pub hostname: Option<String>,
    /// Memory, cpu and pids limits.
    pub resources: Resources,
    /// A network namespace: a name under `/var/run/netns/`, or an
    /// absolute path; `None` or `none`: a private one with `lo` up.
    pub network: Option<String>,
    /// Bind and tmpfs mounts.
    pub mounts: Vec<Mount>,
    /// Mount the root filesystem read-only.
    pub read_only: bool,
    /// Capabilities added to the default set (`CAP_NET_ADMIN` or
    /// `NET_ADMIN`; `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set (`ALL` for every one).
    pub cap_drop: Vec<String>,
    /// Free-form labels, kept and shown by inspect.
    pub labels: Vec<(String, String)>,
    /// What happens when init exits.
    pub restart: RestartPolicy,
    /// Terminal and stdin.
    pub interactive: Interactive,
    /// A complete OCI `config.json` (JSON text) used instead of the one
    /// contd builds; `root.path` is taken from `rootfs`, the cgroup is
    /// contd's. Only `ns`, `name`, `rootfs`, `labels`, `restart` and
    /// `interactive` may be given beside it.
    pub oci_config: Option<String>,
    /// Start the container once created (`run`).
    pub start: bool,
}

/// One container as inspect and list report it (protocol version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerDetails {
    /// Tenant namespace.
    pub ns: String,
    /// Container name.
    pub name: String,
    /// Current status.
    pub status: Status,
    /// Host pid of init while it lives.
    pub pid: Option<i32>,
    /// How init last ended.
    pub exit: Option<ExitRecord>,
    /// Set when contd cannot vouch for the status (monitor gone, no record).
    pub error: Option<String>,
    /// Init's argument vector, as run.
    pub args: Vec<String>,
    /// Where the container's log is written.
    pub log_path: String,
    /// When it was created (unix nanoseconds).
    pub created_at: i64,
    /// When init was last started.
    pub started_at: Option<i64>,
    /// When init last ended.
    pub finished_at: Option<i64>,
    /// Restarts done by the restart policy.
    pub restart_count: u32,
    /// When the policy restarts it next, if a restart is pending.
    pub next_restart_at: Option<i64>,
    /// The request as given.
    pub config: ContainerConfig,
}

/// A process of a container, as `top` reports it (protocol version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Host pid.
    pub pid: i32,
    /// Host parent pid.
    pub ppid: i32,
    /// The user name (host's `/etc/passwd`), or the uid.
    pub user: String,
    /// CPU time used (user + system), milliseconds.
    pub cpu_ms: u64,
    /// The command line (or `[comm]` when it has none).
    pub command: String,
}

/// What happened to a container (protocol version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// Created (not started).
    Created,
    /// Init was released.
    Started,
    /// Init exited.
    Exited {
        /// Exit code, or 128 + signal.
        code: i32,
        /// The signal that killed it.
        signal: Option<i32>,
        /// The OOM killer acted.
        oom_killed: bool,
    },
    /// The OOM killer killed a process of the container.
    Oom,
    /// Frozen.
    Paused,
    /// Thawed.
    Resumed,
    /// The restart policy will start it again after `delay_ms`.
    Restarting {
        /// Which restart this is (1 for the first).
        attempt: u32,
        /// Backoff before it.
        delay_ms: u64,
    },
    /// Removed.
    Removed,
    /// Found on disk by a starting contd.
    Adopted,
    /// Its monitor disappeared without an exit record.
    MonitorLost,
}

impl EventKind {
    /// The event's type word (`exited`, `monitor-lost`), as filters name it.
    pub fn word(&self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Started => "started",
            EventKind::Exited { .. } => "exited",
            EventKind::Oom => "oom",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::Restarting { .. } => "restarting",
            EventKind::Removed => "removed",
            EventKind::Adopted => "adopted",
            EventKind::MonitorLost => "monitor-lost",
        }
    }

    /// Every type word.
    pub const WORDS: [&'static str; 10] = [
        "created",
        "started",
        "exited",
        "oom",
        "paused",
        "resumed",
        "restarting",
        "removed",
        "adopted",
        "monitor-lost",
    ];
}

/// An event (protocol version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When (unix nanoseconds).
    pub time: i64,
    /// Namespace.
    pub ns: String,
    /// Container name.
    pub name: String,
    /// What happened.
    pub kind: EventKind,
}

/// Which events a subscriber wants (protocol version 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only this namespace.
    pub ns: Option<String>,
    /// Only this container name.
    pub name: Option<String>,
    /// Only these types (words of [`EventKind::word`]); empty: all.
    pub kinds: Vec<String>,
    /// Start with one event per existing container that tells its current
    /// state (`created`, `started`, `paused` or `exited`).
    pub replay: bool,
}

impl EventFilter {
    /// Whether `e` passes the filter.
    pub fn matches(&self, e: &Event) -> bool {
        self.ns.as_ref().is_none_or(|n| *n == e.ns)
            && self.name.as_ref().is_none_or(|n| *n == e.name)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == e.kind.word()))
    }
}

/// How much of a log to send (protocol version 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// Only the last N lines.
    pub tail: Option<u64>,
    /// Only lines written at or after this time (unix nanoseconds).
    pub since: Option<i64>,
    /// Keep streaming new lines until the container exits.
    pub follow: bool,
}

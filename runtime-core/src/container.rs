//! The parent side: create, start, kill, delete, and derived status.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext};
use crate::state::{self, Persisted, FIFO};
use crate::{cgroup, hooks, init, spec, sys};

/// Status per the OCI runtime spec, derived from the live process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Init waits on the exec fifo.
    Created,
    /// Init has been released and lives.
    Running,
    /// Running, with its cgroup frozen.
    Paused,
    /// Init is gone (or a zombie).
    Stopped,
}

impl Status {
    /// The OCI word for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The standard streams init gets. `None` keeps the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Becomes fd 0.
    pub stdin: Option<OwnedFd>,
    /// Becomes fd 1.
    pub stdout: Option<OwnedFd>,
    /// Becomes fd 2.
    pub stderr: Option<OwnedFd>,
}

/// How to create a container.
#[derive(Debug)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory holding `config.json`.
    pub bundle: PathBuf,
    /// Runtime state dir of this container (`state.json`, `exec.fifo`);
    /// created if missing, removed again if create fails and it created it.
    pub state_dir: PathBuf,
    /// Init's standard streams.
    pub stdio: Stdio,
    /// A connected console socket: with `process.terminal` init sends the
    /// pty master over it (runc's `--console-socket`).
    pub console_socket: Option<OwnedFd>,
    /// `chroot` into the rootfs instead of `pivot_root` (runc's
    /// `--no-pivot`, for a rootfs on ramfs).
    pub no_pivot: bool,
    /// How many fds from 3 on init keeps across `execve`.
    pub preserve_fds: u32,
    /// Extra `KEY=VALUE` entries for the process environment (such as
    /// `LISTEN_FDS` and `LISTEN_PID` of socket activation).
    pub extra_env: Vec<String>,
    /// oom_score_adj when the spec sets none, instead of inheriting the
    /// caller's (a monitor runs at -1000; its container must not).
    pub default_oom_score_adj: Option<i32>,
    /// A directory for compiled seccomp programs, so that a profile is
    /// compiled once rather than for every container (created 0700 if
    /// missing; ignored unless only root can write it).
    pub seccomp_cache: Option<PathBuf>,
}

impl CreateOptions {
    /// Options with the caller's stdio and nothing extra.
    pub fn new(
        id: impl Into<String>,
        bundle: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        CreateOptions {
            id: id.into(),
            bundle: bundle.into(),
            state_dir: state_dir.into(),
            stdio: Stdio::default(),
            console_socket: None,
            no_pivot: false,
            preserve_fds: 0,
            extra_env: Vec::new(),
            default_oom_score_adj: None,
            seccomp_cache: None,
        }
    }
}

/// A created container.
#[derive(Debug)]
pub struct Container {
    state: Persisted,
    state_dir: PathBuf,
    pidfd: Option<OwnedFd>,
    warnings: Vec<String>,
}

impl Container {
    /// Creates the container: validates the spec, clones init into its
    /// namespaces and cgroup, and returns once init blocks on the exec fifo
    /// (status `created`). Must be called from a single-threaded process.
    ///
    /// # Errors
    /// A [`SpecError`](crate::SpecError) before anything is created; any later
    /// failure undoes what was done (init killed and reaped, cgroup and state
    /// files removed) and says so if undoing failed too.
    pub fn create(opts: CreateOptions) -> Result<Container, Error> {
        let checked = spec::load(&opts.bundle, &opts.id, opts.seccomp_cache.as_deref())?;
        let made_dir = !opts.state_dir.exists();
        // Only root may reach the state dir: the exec fifo in it is
        // writable by the container's (possibly unprivileged) user.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&opts.state_dir)
            .ctx(|| format!("create state dir {}", opts.state_dir.display()))?;
        let mut undo = Undo {
            state_dir: opts.state_dir.clone(),
            made_dir,
            cgroup: None,
            child: None,
        };
        match create_inner(&opts, &checked, &mut undo) {
            Ok(c) => Ok(c),
            Err(e) => Err(undo.run(e)),
        }
    }

    /// Finds a container created earlier, by its runtime state dir.
    ///
    /// # Errors
    /// If `state.json` is missing or unreadable.
    pub fn load(state_dir: &Path) -> Result<Container, Error> {
        let state = Persisted::load(state_dir)?;
        // A pidfd only if the pid still names our init (same start time).
        let pidfd = match sys::process_start_time(state.pid) {
            Ok(t) if t == state.pid_start_time => sys::pidfd_open(state.pid).ok(),
            _ => None,
        };
        Ok(Container {
            state,
            state_dir: state_dir.to_path_buf(),
            pidfd,
            warnings: Vec::new(),
        })
    }

    /// What create left out with a warning (unknown capability names).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Container id.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Host pid of init.
    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    /// A pidfd for init, while it lives.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.as_fd())
    }

    /// The persisted facts.
    pub fn persisted(&self) -> &Persisted {
        &self.state
    }

    /// The cgroup path relative to each hierarchy root.
    pub fn cgroup_path(&self) -> &str {
        &self.state.cgroup_path
    }

    /// The status, derived from the live process and the exec fifo.
    pub fn status(&self) -> Status {
        let alive = self.pidfd.is_some()
            && matches!(sys::process_state(self.state.pid), Ok(s) if s != 'Z' && s != 'X')
            && sys::process_start_time(self.state.pid).ok() == Some(self.state.pid_start_time);
        if !alive {
            Status::Stopped
        } else if self.state_dir.join(FIFO).exists() {
            Status::Created
        } else if cgroup::is_frozen(&self.state.cgroup_path) {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The state as the runtime spec and runc print it.
    pub fn oci_state(&self) -> crate::state::OciState {
        let status = self.status();
        crate::state::OciState {
            oci_version: crate::state::OCI_VERSION.into(),
            id: self.state.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.state.pid
            },
            status: status.as_str().into(),
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            owner: String::new(),
            annotations: self.state.annotations.clone(),
        }
    }

    /// The spec the container was created from (a copy kept in its state
    /// dir).
    ///
    /// # Errors
    /// If the copy is missing or unreadable.
    pub fn spec(&self) -> Result<oci_spec::runtime::Spec, Error> {
        let p = self.state_dir.join(state::CONFIG_COPY);
        let data = std::fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&data).map_err(|e| Error::Io {
            what: format!("parse {}", p.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// The runtime state dir of the container.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Freezes every process of the container.
    ///
    /// # Errors
    /// If it is not running, or the freezer fails.
    pub fn pause(&self) -> Result<(), Error> {
        let status = self.status();
        if status != Status::Running {
            return Err(self.state_error(status, "cannot pause"));
        }
        cgroup::set_frozen(&self.state.cgroup_path, true).map_err(Error::from)
    }

    /// Thaws a paused container.
    ///
    /// # Errors
    /// If it is not paused, or the freezer fails.
    pub fn resume(&self) -> Result<(), Error> {
        let status = self.status();
        if status != Status::Paused {
            return Err(self.state_error(status, "cannot resume"));
        }
        cgroup::set_frozen(&self.state.cgroup_path, false).map_err(Error::from)
    }

    /// Changes the limits of the running container.
    ///
    /// # Errors
    /// If it has stopped, or the cgroup refuses a value.
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<(), Error> {
        let status = self.status();
        if status == Status::Stopped {
            return Err(self.state_error(status, "cannot update"));
        }
        cgroup::update(&self.state.cgroup_path, resources).map_err(Error::from)
    }

    /// Pids (host) of every process in the container's cgroup.
    pub fn processes(&self) -> Vec<i32> {
        cgroup::procs(&self.state.cgroup_path)
    }

    /// Resource usage from the container's cgroup.
    pub fn stats(&self) -> cgroup::Stats {
        cgroup::stats(&self.state.cgroup_path)
    }

    /// Runs the spec's poststart hooks (the caller does, after `start`).
    /// Failures are reported, as the runtime spec says, not fatal.
    pub fn run_poststart_hooks(&self) -> Result<(), Error> {
        self.run_hooks("poststart", |h| h.poststart().clone())
    }

    fn run_hooks(
        &self,
        kind: &str,
        pick: impl Fn(&oci_spec::runtime::Hooks) -> Option<Vec<oci_spec::runtime::Hook>>,
    ) -> Result<(), Error> {
        let Ok(spec) = self.spec() else {
            return Ok(());
        };
        let Some(list) = spec.hooks().as_ref().and_then(pick) else {
            return Ok(());
        };
        let json = serde_json::to_vec(&self.oci_state()).unwrap_or_default();
        crate::hooks::run(kind, &list, &json, None).map_err(Error::Hook)
    }

    /// Releases init from the exec fifo. Waits on the fifo and on init's
    /// pidfd together, so a dead init fails `start` instead of hanging it.
    ///
    /// # Errors
    /// If the container is not `created`, or init died before it read the
    /// fifo.
    pub fn start(&mut self) -> Result<(), Error> {
        let status = self.status();
        if status != Status::Created {
            return Err(self.state_error(status, "cannot start"));
        }
        let fifo_path = self.state_dir.join(FIFO);
        let fifo = sys::open(&fifo_path, libc::O_RDONLY | libc::O_NONBLOCK)
            .ctx(|| format!("open {}", fifo_path.display()))?;
        let Some(pidfd) = self.pidfd.as_ref() else {
            return Err(self.state_error(Status::Stopped, "cannot start"));
        };
        loop {
            let ready = sys::poll_readable(&[fifo.as_fd(), pidfd.as_fd()], -1)
                .ctx(|| "wait for init to start".into())?;
            if ready[0] {
                let mut f = std::fs::File::from(fifo);
                let mut b = [0u8; 1];
                let n = f.read(&mut b).ctx(|| "read exec fifo".into())?;
                if n == 1 {
                    break;
                }
                return Err(Error::Init(
                    "init closed the exec fifo without starting".into(),
                ));
            }
            if ready[1] {
                return Err(Error::Init("init exited before it was started".into()));
            }
        }
        std::fs::remove_file(&fifo_path).ctx(|| format!("remove {}", fifo_path.display()))?;
        Ok(())
    }

    /// Sends `signal` to init through its pidfd (never to a reused pid).
    ///
    /// # Errors
    /// If init is gone or the signal cannot be sent.
    pub fn kill(&self, signal: i32) -> Result<(), Error> {
        let Some(pidfd) = self.pidfd.as_ref() else {
            return Err(self.state_error(Status::Stopped, "cannot signal"));
        };
        sys::pidfd_send_signal(pidfd.as_fd(), signal)
            .ctx(|| format!("signal {signal} to container {}", self.state.id))
    }

    /// Sends `signal` to every process of the container (runc's `kill
    /// --all`): init through its pidfd, the others by pid from the cgroup
    /// after freezing it, so none can fork away meanwhile.
    ///
    /// # Errors
    /// If the container is stopped or init cannot be signalled.
    pub fn kill_all(&self, signal: i32) -> Result<(), Error> {
        let status = self.status();
        if status == Status::Stopped {
            return Err(self.state_error(status, "cannot signal"));
        }
        let path = &self.state.cgroup_path;
        let froze = status != Status::Paused && cgroup::set_frozen(path, true).is_ok();
        for pid in cgroup::procs(path) {
            if pid != self.state.pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::try_from(signal).ok(),
                );
            }
        }
        let r = self.kill(signal);
        if froze {
            let _ = cgroup::set_frozen(path, false);
        }
        r
    }

    /// Releases the container's resources: its cgroup and its runtime state
    /// dir, then runs the poststop hooks. Refuses a container that is not
    /// stopped unless `force`, which kills it first (the caller, if it is
    /// init's parent, reaps it). Returns warnings: the poststop hooks that
    /// failed (the runtime spec has them warn; the others still run).
    ///
    /// # Errors
    /// If the container is not stopped and `force` is false (nothing is
    /// changed), or a resource cannot be removed.
    pub fn delete(self, force: bool) -> Result<Vec<String>, Error> {
        let status = self.status();
        if status != Status::Stopped {
            if !force {
                return Err(self.state_error(status, "cannot delete without force"));
            }
            self.kill_all(libc::SIGKILL)?;
            // Wait until the kernel has torn init down, so its cgroup empties.
            if let Some(fd) = self.pidfd.as_ref() {
                let _ = sys::poll_readable(&[fd.as_fd()], 5000);
            }
        }
        // Leftovers of a container without its own pid namespace.
        for pid in cgroup::procs(&self.state.cgroup_path) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        remove_cgroup(&self.state.cgroup_path)?;
        let state = serde_json::to_vec(&self.oci_state()).unwrap_or_default();
        let poststop = self
            .spec()
            .ok()
            .and_then(|s| s.hooks().as_ref().and_then(|h| h.poststop().clone()))
            .unwrap_or_default();
        std::fs::remove_dir_all(&self.state_dir)
            .ctx(|| format!("remove state dir {}", self.state_dir.display()))?;
        Ok(hooks::run_all("poststop", &poststop, &state))
    }

    fn state_error(&self, status: Status, message: &str) -> Error {
        Error::State {
            id: self.state.id.clone(),
            status: status.as_str().into(),
            message: message.into(),
        }
    }
}

/// Removes a cgroup, waiting briefly for exiting processes to leave it.
fn remove_cgroup(path: &str) -> Result<(), Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match cgroup::remove(path) {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// What a failing create must undo, in reverse order.
struct Undo {
    state_dir: PathBuf,
    made_dir: bool,
    cgroup: Option<String>,
    child: Option<(i32, OwnedFd)>,
}

impl Undo {
    fn run(self, error: Error) -> Error {
        let mut failed = Vec::new();
        if let Some((pid, pidfd)) = self.child {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = remove_cgroup(cg) {
                failed.push(e.to_string());
            }
        }
        let files = [state::STATE_FILE, FIFO, state::CONFIG_COPY];
        for f in files {
            let p = self.state_dir.join(f);
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    failed.push(format!("remove {}: {e}", p.display()));
                }
            }
        }
        if self.made_dir {
            if let Err(e) = std::fs::remove_dir(&self.state_dir) {
                failed.push(format!("remove {}: {e}", self.state_dir.display()));
            }
        }
        if failed.is_empty() {
            error
        } else {
            Error::Cleanup {
                error: Box::new(error),
                cleanup: failed.join("; "),
            }
        }
    }
}

/// Parent and init talk over a seqpacket socket; packets start with a tag.
pub(crate) mod tag {
    /// Parent → init: mappings written and cgroup joined; the rest of the
    /// packet is the state JSON hooks get.
    pub const GO: u8 = b'g';
    /// Parent → init: id mappings written (new user namespace only).
    pub const MAPPED: u8 = b'u';
    /// Init → parent: mounts done, run the createRuntime hooks now.
    pub const HOOKS: u8 = b'H';
    /// Parent → init: hooks done.
    pub const HOOKS_DONE: u8 = b'h';
    /// Init → parent: created; it blocks on the exec fifo next.
    pub const READY: u8 = b'R';
    /// Init → parent: setup failed; the rest is the message.
    pub const ERROR: u8 = b'E';
    /// Child → parent: the program cannot be run; the next byte is the
    /// shell's code for why (126: not executable, 127: not found), the
    /// rest the message.
    pub const UNRUNNABLE: u8 = b'X';
    /// Child → parent: a seccomp filter with a listener is loaded; its fd
    /// comes with the packet (`SCM_RIGHTS`).
    pub const SECCOMP: u8 = b'S';
    /// Parent → child: the listener has the fd.
    pub const SECCOMP_DONE: u8 = b's';
}

/// What a child (init, or an exec'd process) reports on the sync socket.
pub(crate) enum Report {
    /// Set up; for init, blocked on the exec fifo next.
    Ready,
    /// Mounts done: run the prestart and createRuntime hooks.
    Hooks,
    /// A seccomp filter with a listener is loaded: its fd.
    Seccomp(OwnedFd),
    /// Setup failed: the child's message.
    Failed(String),
    /// The program cannot be run: the shell's code (126, 127), the message.
    Unrunnable(u8, String),
    /// The child went away without a word.
    Died,
}

/// Waits for the child's next report on `sock`.
pub(crate) fn next_report(sock: BorrowedFd<'_>) -> Result<Report, Error> {
    let mut buf = vec![0u8; 65536];
    let (n, fd) = sys::recv_with_fd(sock, &mut buf).ctx(|| "wait for the child".into())?;
    Ok(match (&buf[..n], fd) {
        ([tag::READY], _) => Report::Ready,
        ([tag::HOOKS], _) => Report::Hooks,
        ([tag::SECCOMP], Some(fd)) => Report::Seccomp(fd),
        ([tag::ERROR, msg @ ..], _) => Report::Failed(String::from_utf8_lossy(msg).into_owned()),
        ([tag::UNRUNNABLE, code, msg @ ..], _) => {
            Report::Unrunnable(*code, String::from_utf8_lossy(msg).into_owned())
        }
        _ => Report::Died,
    })
}

/// Passes a child's seccomp listener fd to the profile's `listenerPath`
/// with the container's state, as runc does: one `SCM_RIGHTS` message
/// carrying `{"ociVersion", "fds": ["seccompFd"], "pid", "metadata",
/// "state"}`, where `pid` is the host pid of the process the filter is on.
/// Then tells the child to go on.
pub(crate) fn hand_to_listener(
    profile: Option<&oci_spec::runtime::LinuxSeccomp>,
    sync: BorrowedFd<'_>,
    fd: OwnedFd,
    pid: i32,
    state: &state::OciState,
) -> Result<(), Error> {
    let path = profile
        .and_then(|s| s.listener_path().clone())
        .ok_or_else(|| Error::Init("a seccomp listener fd but no listenerPath".into()))?;
    let msg = serde_json::json!({
        "ociVersion": state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": profile.and_then(|s| s.listener_metadata().clone()).unwrap_or_default(),
        "state": state,
    });
    let sock = sys::connect_unix(&path).ctx(|| format!("connect {}", path.display()))?;
    sys::send_fd(
        sock.as_fd(),
        &serde_json::to_vec(&msg).unwrap_or_default(),
        fd.as_fd(),
    )
    .ctx(|| format!("send the seccomp fd to {}", path.display()))?;
    sys::send(sync, &[tag::SECCOMP_DONE]).ctx(|| "resume after seccomp".into())
}

/// Runs `f` with the calling process's pid namespace for children switched
/// to the one at `path`, then switches back.
pub(crate) fn in_pid_ns_for_children<T>(
    path: Option<&Path>,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let Some(path) = path else {
        return f();
    };
    let own = sys::open(Path::new("/proc/self/ns/pid"), libc::O_RDONLY)
        .ctx(|| "open own pid namespace".into())?;
    let target = sys::open(path, libc::O_RDONLY).ctx(|| format!("open {}", path.display()))?;
    sys::setns(target.as_fd(), libc::CLONE_NEWPID)
        .ctx(|| format!("join pid namespace {}", path.display()))?;
    let r = f();
    sys::setns(own.as_fd(), libc::CLONE_NEWPID).ctx(|| "return to own pid namespace".into())?;
    r
}

/// An error report init already sent, if any (without blocking).
fn pending_error(sock: BorrowedFd<'_>) -> Option<Error> {
    if !sys::poll_readable(&[sock], 0).ok()?.first().copied()? {
        return None;
    }
    let mut buf = vec![0u8; 65536];
    let n = sys::recv(sock, &mut buf).ok()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match &buf[..n] {
        [tag::ERROR, msg @ ..] => Some(Error::Init(text(msg))),
        [tag::UNRUNNABLE, code, msg @ ..] => Some(Error::Unrunnable {
            code: *code,
            message: text(msg),
        }),
        _ => None,
    }
}

/// If init failed already, its own message is the one to report rather
/// than `e`, which its death caused.
fn init_error_or(sock: BorrowedFd<'_>, e: Error) -> Error {
    pending_error(sock).unwrap_or(e)
}

fn write_id_map(
    pid: i32,
    file: &str,
    maps: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<(), Error> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let p = PathBuf::from(format!("/proc/{pid}/{file}"));
    sys::write_once(&p, text.as_bytes()).ctx(|| format!("write {}", p.display()))
}

fn create_inner(
    opts: &CreateOptions,
    checked: &spec::Checked,
    undo: &mut Undo,
) -> Result<Container, Error> {
    let fifo_path = opts.state_dir.join(FIFO);
    if opts.state_dir.join(state::STATE_FILE).exists() {
        return Err(Error::State {
            id: opts.id.clone(),
            status: "existing".into(),
            message: format!("state dir {} is in use", opts.state_dir.display()),
        });
    }
    let process = checked.spec.process().as_ref();
    if process.and_then(|p| p.terminal()) == Some(true) && opts.console_socket.is_none() {
        return Err(Error::Spec(crate::SpecError::invalid(
            "process.terminal",
            "a terminal needs a console socket (--console-socket)",
        )));
    }
    sys::mkfifo(&fifo_path, 0o600).ctx(|| format!("mkfifo {}", fifo_path.display()))?;
    // Init opens it for writing after switching to the process's user (in a
    // user namespace, a host uid that is not root): writable by all, as
    // runc's, but reachable only through init's O_PATH fd.
    std::fs::set_permissions(
        &fifo_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .ctx(|| format!("chmod {}", fifo_path.display()))?;
    let config_copy = opts.state_dir.join(state::CONFIG_COPY);
    let spec_json = serde_json::to_vec(&checked.spec).map_err(|e| Error::Init(e.to_string()))?;
    std::fs::write(&config_copy, &spec_json).ctx(|| format!("write {}", config_copy.display()))?;
    let fifo =
        sys::open(&fifo_path, libc::O_PATH).ctx(|| format!("open {}", fifo_path.display()))?;
    let (parent_sock, child_sock) = sys::seqpacket_pair().ctx(|| "create sync socket".into())?;
    let stdio = [
        opts.stdio.stdin.as_ref().map(|f| f.as_raw_fd()),
        opts.stdio.stdout.as_ref().map(|f| f.as_raw_fd()),
        opts.stdio.stderr.as_ref().map(|f| f.as_raw_fd()),
    ];
    let ns = &checked.namespaces;
    let linux = checked.spec.linux().as_ref();
    let devices = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
    let tasks = cgroup::prepare(
        &checked.cgroup_path,
        linux.and_then(|l| l.resources().as_ref()),
        &devices,
    )?;
    undo.cgroup = Some(checked.cgroup_path.clone());
    // Init moves itself into its cgroup (no RCU wait on v1) unless it is
    // in a new user namespace, where it cannot write the host's cgroupfs.
    let self_join = !tasks.is_empty() && !ns.user();
    let no_tasks: &[std::ffi::CString] = &[];
    // With a user namespace joined by path, init joins it first and then
    // unshares the rest, so they belong to it.
    let clone_flags = if ns.join_user.is_some() {
        0
    } else {
        ns.clone_flags
    };

    let pid = in_pid_ns_for_children(ns.join_pid.as_deref(), || {
        // SAFETY: runtime-core's contract: create is called from a
        // single-threaded process (the monitor or the CLI).
        let forked =
            unsafe { sys::clone_fork(clone_flags) }.ctx(|| "clone container init".into())?;
        match forked {
            sys::Forked::Child => init::run(init::InitArgs {
                checked,
                bundle: &opts.bundle,
                sync: child_sock.as_raw_fd(),
                close: parent_sock.as_raw_fd(),
                fifo: fifo.as_raw_fd(),
                stdio,
                console: opts.console_socket.as_ref().map(|f| f.as_raw_fd()),
                no_pivot: opts.no_pivot,
                preserve_fds: opts.preserve_fds,
                extra_env: &opts.extra_env,
                cgroup_tasks: if self_join { &tasks } else { no_tasks },
                default_oom_score_adj: opts.default_oom_score_adj,
            }),
            sys::Forked::Parent(pid) => Ok(pid),
        }
    })?;
    drop(child_sock);
    drop(fifo);
    let pidfd = sys::pidfd_open(pid).ctx(|| format!("pidfd_open {pid}"))?;
    undo.child = Some((pid, pidfd.try_clone().ctx(|| "dup pidfd".into())?));

    if ns.clone_flags & libc::CLONE_NEWUSER != 0 && ns.join_user.is_none() {
        if let Some(l) = linux {
            write_id_map(
                pid,
                "uid_map",
                l.uid_mappings().as_deref().unwrap_or_default(),
            )?;
            write_id_map(
                pid,
                "gid_map",
                l.gid_mappings().as_deref().unwrap_or_default(),
            )?;
        }
        sys::send(parent_sock.as_fd(), &[tag::MAPPED]).ctx(|| "release init".into())?;
    }
    if !self_join {
        cgroup::attach(&checked.cgroup_path, pid)
            .map_err(|e| init_error_or(parent_sock.as_fd(), e.into()))?;
    }

    let created = state::rfc3339_nanos(state::now_nanos());
    let mut oci = state::OciState {
        oci_version: state::OCI_VERSION.into(),
        id: opts.id.clone(),
        pid,
        status: "creating".into(),
        bundle: opts.bundle.clone(),
        rootfs: checked.rootfs.clone(),
        created: created.clone(),
        owner: String::new(),
        annotations: checked.spec.annotations().clone().unwrap_or_default(),
    };
    let mut go = vec![tag::GO];
    go.extend(serde_json::to_vec(&oci).unwrap_or_default());
    sys::send(parent_sock.as_fd(), &go)
        .ctx(|| "release init".into())
        .map_err(|e| init_error_or(parent_sock.as_fd(), e))?;
    loop {
        match next_report(parent_sock.as_fd())? {
            Report::Ready => break,
            Report::Hooks => {
                if let Some(h) = checked.spec.hooks() {
                    let json = serde_json::to_vec(&oci).unwrap_or_default();
                    hooks::run(
                        "prestart",
                        h.prestart().as_deref().unwrap_or_default(),
                        &json,
                        None,
                    )
                    .map_err(Error::Hook)?;
                    hooks::run(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or_default(),
                        &json,
                        None,
                    )
                    .map_err(Error::Hook)?;
                }
                sys::send(parent_sock.as_fd(), &[tag::HOOKS_DONE])
                    .ctx(|| "resume init after hooks".into())?;
            }
            Report::Seccomp(fd) => hand_to_listener(
                checked
                    .spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.seccomp().as_ref()),
                parent_sock.as_fd(),
                fd,
                pid,
                &oci,
            )
            .map_err(|e| init_error_or(parent_sock.as_fd(), e))?,
            Report::Failed(msg) => return Err(Error::Init(msg)),
            Report::Unrunnable(code, message) => return Err(Error::Unrunnable { code, message }),
            Report::Died => return Err(Error::Init("init died during setup".into())),
        }
    }
    oci.status = "created".into();

    let pid_start_time =
        sys::process_start_time(pid).ctx(|| format!("read start time of {pid}"))?;
    let state = Persisted {
        id: opts.id.clone(),
        pid,
        pid_start_time,
        bundle: opts.bundle.clone(),
        rootfs: checked.rootfs.clone(),
        cgroup_path: checked.cgroup_path.clone(),
        created,
        annotations: oci.annotations,
    };
    state.save(&opts.state_dir)?;
    undo.child = None;
    undo.cgroup = None;
    Ok(Container {
        state,
        state_dir: opts.state_dir.clone(),
        pidfd: Some(pidfd),
        warnings: checked.warnings.clone(),
    })
}

//! The monitor's life after daemonizing: create the container, report on the
//! sync pipe, then one poll loop over the listening socket, the clients,
//! init's output (two pipes, or a pty master held for the container's whole
//! life), its stdin, exec'd processes, a signalfd for SIGCHLD and the OOM
//! eventfd.
//!
//! Attached clients get the container's output as frames; each has a
//! bounded queue and is cut off when it falls behind, so a slow or dead
//! client never blocks the container or its log.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use proto::monitor::{ExecRequest, MonitorEvent, MonitorState, Ready, Request, Response};
use proto::{ErrorKind, ErrorReply, ExitRecord, FrameError, Hello, Status};
use runtime_core::{Container, CreateOptions, Stdio};

mod shim;

use crate::handover::Handover;
use crate::log::{LogWriter, Stream};
use crate::Args;

/// File names inside the state dir.
pub(crate) const SOCKET: &str = "monitor.sock";
pub(crate) const PID_FILE: &str = "monitor.pid";
pub(crate) const EXIT_FILE: &str = "exit";
/// The log writer's status at exit, written only if something went wrong
/// (JSON [`proto::monitor::LogStatus`]): read by a supervisor that finds
/// the monitor gone.
pub(crate) const LOG_STATUS_FILE: &str = "log-status";

/// How long output is still drained after init exits (its descendants die
/// with its pid namespace, so the pipes close almost at once).
const DRAIN: Duration = Duration::from_secs(2);
/// How long after setting up, or after the exit, the monitor compacts
/// itself (see `Monitor::compact_deadline`).
const COMPACT_AFTER: Duration = Duration::from_millis(500);
/// How long a new monitor waits for its supervisor to connect before it
/// re-executes itself (see `run`).
const REEXEC_WAIT_MS: u16 = 50;
/// At most this many clients at once; more are refused.
const MAX_CLIENTS: usize = 64;
/// A client that lets this much unsent output pile up is cut off.
const MAX_PENDING_OUTPUT: usize = 4 << 20;
/// An attached client further behind than this is cut off.
const MAX_ATTACH_QUEUE: usize = 1 << 20;
/// Input for the container's stdin waiting for room; more is dropped.
const MAX_STDIN_PENDING: usize = 1 << 20;
/// ctrl-p ctrl-q, docker's detach keys.
const DEFAULT_DETACH: [u8; 2] = [0x10, 0x11];

struct Client {
    /// Unique for the monitor's life (exec sessions name their owner).
    id: u64,
    /// Receives the container's output.
    attached: bool,
    /// Writes the container's stdin.
    stdin_holder: bool,
    detach_keys: Vec<u8>,
    /// How much of `detach_keys` the input has matched so far.
    matched: usize,
    stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    greeted: bool,
    waiting: bool,
    /// The supervisor's live link: gets every [`MonitorEvent`].
    subscribed: bool,
    /// Close once `wbuf` is sent (after an error reply).
    closing: bool,
    dead: bool,
    /// Said hello as contd: never evicted to make room.
    supervisor: bool,
}

struct Monitor {
    state_dir: PathBuf,
    /// `--seccomp-cache`, for exec.
    seccomp_cache: Option<PathBuf>,
    container: Option<Container>,
    cgroup_path: String,
    log: LogWriter,
    log_path: String,
    outputs: [Option<std::fs::File>; 2],
    listener: UnixListener,
    sigfd: SignalFd,
    clients: Vec<Client>,
    created_at: i64,
    started_at: Option<i64>,
    init_pid: i32,
    /// Init's status once reaped, until the record is written.
    reaped: Option<(i32, Option<i32>, i64)>,
    drain_deadline: Option<Instant>,
    exit: Option<ExitRecord>,
    released: bool,
    /// Live OOM notifications (see [`crate::oom`]); `None` when they could
    /// not be set up, or once the cgroup is gone.
    oom_events: Option<crate::oom::OomWatch>,
    /// An OOM event was seen while the container ran.
    oom_seen: bool,
    /// How long to stay after the exit record is written, if no
    /// supervisor releases us first.
    linger: Option<Duration>,
    linger_deadline: Option<Instant>,
    /// The pty master, held for the container's whole life (terminal
    /// containers); its read side is `outputs[0]`.
    tty: Option<std::fs::File>,
    /// Where the container's stdin goes (the pty master or a pipe).
    stdin: Option<std::fs::File>,
    stdin_pending: Vec<u8>,
    /// The stdin holder's input ended: the container's stdin is closed
    /// once `stdin_pending` is written (no terminal only).
    stdin_eof: bool,
    /// SIGKILL at this time (a stop request's grace ran out).
    kill_deadline: Option<Instant>,
    /// When to give back what setting up (or the exit) touched and the
    /// loop will not need again: freed heap to the kernel, code pages out
    /// of our page tables. Done once things are quiet, not while a start
    /// request waits for the code it needs.
    compact_deadline: Option<Instant>,
    execs: Vec<Exec>,
    next_exec: u32,
    next_client: u64,
    /// containerd's task API, when this monitor is its shim.
    shim: Option<Box<shim::Shim>>,
}

/// A process exec'd into the container.
struct Exec {
    id: u32,
    pid: i32,
    /// The client that started it (its output and exit go there).
    owner: u64,
    outputs: [Option<std::fs::File>; 2],
    stdin: Option<std::fs::File>,
    /// Exit code once reaped; reported when the output is drained, or
    /// [`DRAIN`] after the reaping (a child it left may hold the output).
    code: Option<i32>,
    reaped_at: Option<Instant>,
    /// Has a terminal (its master is `stdin` and `outputs[0]`).
    tty: bool,
}

/// What a poll slot is.
#[derive(Clone, Copy)]
enum Slot {
    Listener,
    Signals,
    Output(usize),
    Oom,
    Stdin,
    Client(usize),
    ExecOutput(usize, usize),
    Shim(shim::ShimSlot),
}

fn report(sync: OwnedFd, ready: &Ready) {
    let mut f = std::fs::File::from(sync);
    let _ = proto::write_frame(&mut f, ready);
}

fn failed(sync: OwnedFd, message: String) -> Result<(), ()> {
    report(
        sync,
        &Ready::Failed(ErrorReply::new(ErrorKind::Internal, message)),
    );
    Err(())
}

/// Writes a small file durably: temp file, fsync, rename, fsync of the dir.
pub(crate) fn write_durably(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Makes `fd` non-blocking and a File.
fn nonblocking(fd: OwnedFd) -> io::Result<std::fs::File> {
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(std::fs::File::from(fd))
}

fn pipe() -> io::Result<(std::fs::File, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    nix::fcntl::fcntl(
        &r,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    Ok((std::fs::File::from(r), w))
}

/// Runs the monitor until a supervisor releases it.
pub(crate) fn run(args: Args, sync: OwnedFd) -> Result<(), ()> {
    if let Err(e) = std::env::set_current_dir(&args.state_dir) {
        return failed(sync, format!("chdir {}: {e}", args.state_dir.display()));
    }
    let pid = std::process::id() as i32;
    if let Err(e) = write_durably(Path::new("."), PID_FILE, format!("{pid}\n").as_bytes()) {
        return failed(sync, format!("write {PID_FILE}: {e}"));
    }
    let cleanup_files = || {
        let _ = std::fs::remove_file(SOCKET);
        let _ = std::fs::remove_file(PID_FILE);
    };
    // Bound relative to the state dir: no 108-byte sun_path limit.
    let listener = match UnixListener::bind(SOCKET).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            cleanup_files();
            return failed(sync, format!("listen on {SOCKET}: {e}"));
        }
    };
    // SIGCHLD stays blocked from here on, across the re-exec: an early
    // exit of init is a pending signal that the serving loop's signalfd
    // reads, never lost.
    if let Err(e) = block_sigchld() {
        cleanup_files();
        return failed(sync, format!("block SIGCHLD: {e}"));
    }
    let log = match crate::log::open_append(&args.log_path) {
        Ok(l) => l,
        Err(e) => {
            cleanup_files();
            return failed(sync, format!("open log {}: {e}", args.log_path.display()));
        }
    };
    // contd says so (`--terminal`): the spec is parsed once, by the runtime.
    let terminal = args.terminal;
    let pipes = pipe().and_then(|o| Ok((o, pipe()?)));
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => {
            cleanup_files();
            return failed(sync, format!("create output pipes: {e}"));
        }
    };
    // The container's stdin: a pipe we hold the write end of (--stdin), or
    // /dev/null. With a terminal the pty is its stdin.
    let (stdin_r, stdin_w) = if args.stdin && !terminal {
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok((r, w)) => (Some(r), Some(std::fs::File::from(w))),
            Err(e) => {
                cleanup_files();
                return failed(sync, format!("create stdin pipe: {e}"));
            }
        }
    } else {
        (
            std::fs::File::open("/dev/null").map(OwnedFd::from).ok(),
            None,
        )
    };
    let console = if terminal {
        match UnixStream::pair() {
            Ok((ours, theirs)) => Some((ours, OwnedFd::from(theirs))),
            Err(e) => {
                cleanup_files();
                return failed(sync, format!("create console socket: {e}"));
            }
        }
    } else {
        None
    };
    let mut opts = CreateOptions::new(
        args.id.clone(),
        args.bundle
            .clone()
            .unwrap_or_else(|| args.state_dir.join("bundle")),
        args.state_dir.join("runtime"),
    );
    opts.stdio = Stdio {
        stdin: stdin_r,
        stdout: Some(out_w),
        stderr: Some(err_w),
    };
    let (console_ours, console_theirs) = match console {
        Some((o, t)) => (Some(o), Some(t)),
        None => (None, None),
    };
    opts.console_socket = console_theirs;
    // Not our -1000: the container is what the OOM killer should pick.
    opts.default_oom_score_adj = Some(0);
    opts.seccomp_cache = args.seccomp_cache.clone();
    let created = Container::create(opts);
    let mut container = match created {
        Ok(c) => c,
        Err(e) => {
            cleanup_files();
            let kind = match e {
                runtime_core::Error::Spec(_) => ErrorKind::InvalidArgument,
                runtime_core::Error::Unrunnable { code: 126, .. } => ErrorKind::NotExecutable,
                runtime_core::Error::Unrunnable { .. } => ErrorKind::CommandNotFound,
                _ => ErrorKind::Internal,
            };
            report(sync, &Ready::Failed(ErrorReply::new(kind, format!("{e}"))));
            return Err(());
        }
    };
    // A terminal container sent its pty master before it reported ready.
    let tty = match console_ours {
        Some(sock) => match runtime_core::receive_master(sock.as_fd()).and_then(nonblocking) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = container.delete(true);
                cleanup_files();
                return failed(sync, format!("receive the pty master: {e}"));
            }
        },
        None => None,
    };
    let (outputs, stdin) = match tty {
        Some(_) => ([None, None], None),
        None => (
            [Some(out_r), Some(err_r)],
            stdin_w.and_then(|w| nonblocking(OwnedFd::from(w)).ok()),
        ),
    };
    let init_pid = container.pid();
    // `--start` (docker run): let init run now, before the report, so that
    // the supervisor's answer needs no round trip after the re-exec. Init's
    // early output waits in its pipes; an early exit is a pending SIGCHLD.
    let started_at = if args.start {
        if let Err(e) = container.start() {
            let _ = container.delete(true);
            cleanup_files();
            return failed(sync, e.to_string());
        }
        let now = proto::time::now_nanos();
        report(
            sync,
            &Ready::Started {
                pid: init_pid,
                monitor_pid: pid,
                started_at: now,
            },
        );
        Some(now)
    } else {
        report(
            sync,
            &Ready::Created {
                pid: init_pid,
                monitor_pid: pid,
            },
        );
        None
    };
    let h = Handover {
        listener,
        log,
        outputs,
        stdin,
        tty,
        init_pid,
        created_at: proto::time::now_nanos(),
        started_at,
    };
    // The supervisor has its answer to relay now and connects right after:
    // let it run first. The re-exec costs a millisecond of CPU that would
    // otherwise delay that answer (two cores: init and we hold both). The
    // connection waits in the backlog; without one the exec goes ahead
    // after a short while.
    // (A shim has no supervisor to wait for.)
    if args.shim.is_none() {
        let _ = nix::poll::poll(
            &mut [PollFd::new(h.listener.as_fd(), PollFlags::POLLIN)],
            PollTimeout::from(REEXEC_WAIT_MS),
        );
    }
    // Returns only if the re-exec failed: then this process serves.
    let _ = crate::handover::exec_self(&args, &h);
    if args.shim.is_some() {
        // The shim's fds now belong to the serving code; the pre-create
        // loop that also holds them must never run again.
        let r = serve(args, Some(container), h);
        crate::sys::exit_now(i32::from(r.is_err()));
    }
    serve(args, Some(container), h)
}

fn block_sigchld() -> nix::Result<SigSet> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    Ok(mask)
}

/// The serving process after the re-exec (see [`crate::handover`]): takes
/// over the fds, finds the container again and serves it.
pub(crate) fn adopt(args: Args, a: &crate::handover::Adopt) -> Result<(), ()> {
    let extra = args.shim.as_ref().map(|s| s.fds()).unwrap_or_default();
    let h = match crate::handover::take(a, &extra) {
        Ok(h) => h,
        // Nothing to serve with; the supervisor sees the monitor gone.
        Err(_) => return Err(()),
    };
    // Already true of this process before the exec; cheap to be sure.
    crate::sys::ignore_sigpipe();
    let _ = crate::sys::set_subreaper();
    let container = match Container::load(&args.state_dir.join("runtime")) {
        Ok(c) => Some(c),
        Err(_) => {
            // Cannot happen short of the state dir vanishing: without its
            // state the container cannot be run, so end it; its exit is
            // recorded as any other.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(h.init_pid), Signal::SIGKILL);
            None
        }
    };
    serve(args, container, h)
}

/// Runs the poll loop for a created container until a supervisor releases it.
fn serve(args: Args, container: Option<Container>, h: Handover) -> Result<(), ()> {
    let sigfd = match block_sigchld().and_then(|mask| {
        SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    }) {
        Ok(s) => s,
        // No way to learn of init's exit: end the container rather than
        // serve it blind (a supervisor sees the monitor gone).
        Err(_) => {
            if let Some(c) = container {
                let _ = c.delete(true);
            }
            let _ = std::fs::remove_file(SOCKET);
            let _ = std::fs::remove_file(PID_FILE);
            return Err(());
        }
    };
    let log = LogWriter::from_file(&args.log_path, h.log, args.log_limits);
    let (outputs, stdin) = match &h.tty {
        Some(m) => ([m.try_clone().ok(), None], m.try_clone().ok()),
        None => {
            let [o, e] = h.outputs;
            ([o, e], h.stdin)
        }
    };
    let cgroup_path = container
        .as_ref()
        .map(|c| c.cgroup_path().to_string())
        .unwrap_or_default();
    let oom_events = container
        .as_ref()
        .and_then(|c| crate::oom::OomWatch::register(c.cgroup_path()));
    let shim = match args.shim.clone().map(shim::Shim::adopt).transpose() {
        Ok(s) => s.map(Box::new),
        // containerd's connection is lost with it: end the container
        // rather than hold it unreachable.
        Err(_) => {
            if let Some(c) = container {
                let _ = c.delete(true);
            }
            return Err(());
        }
    };
    let mut m = Monitor {
        oom_events,
        oom_seen: false,
        linger: args.linger,
        linger_deadline: None,
        state_dir: args.state_dir.clone(),
        seccomp_cache: args.seccomp_cache.clone(),
        cgroup_path,
        container,
        log,
        log_path: args.log_path.display().to_string(),
        outputs,
        tty: h.tty,
        stdin,
        stdin_pending: Vec::new(),
        stdin_eof: false,
        kill_deadline: None,
        compact_deadline: Some(Instant::now() + COMPACT_AFTER),
        execs: Vec::new(),
        next_exec: 1,
        next_client: 1,
        listener: h.listener,
        sigfd,
        clients: Vec::new(),
        created_at: h.created_at,
        started_at: h.started_at,
        init_pid: h.init_pid,
        reaped: None,
        drain_deadline: None,
        exit: None,
        released: false,
        shim,
    };
    if m.shim.is_some() {
        m.shim_created();
    }
    // An exit before the signalfd existed is a pending signal it reports;
    // look once anyway.
    m.reap();
    m.run();
    Ok(())
}

impl Monitor {
    fn run(&mut self) {
        // 16 KiB per read: larger reads buy little throughput and stay
        // resident for the container's whole life.
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let (slots, ready) = match self.poll() {
                Ok(r) => r,
                Err(_) => continue,
            };
            let mut client_ready = vec![false; self.clients.len()];
            let mut accept = false;
            for (slot, ready) in slots.iter().zip(ready) {
                if !ready {
                    continue;
                }
                match *slot {
                    Slot::Oom => self.read_oom_event(),
                    Slot::Signals => self.reap(),
                    Slot::Output(i) => self.read_output(i, &mut buf),
                    Slot::ExecOutput(e, i) => self.read_exec_output(e, i, &mut buf),
                    Slot::Stdin => self.flush_stdin(),
                    Slot::Client(i) => client_ready[i] = true,
                    Slot::Listener => accept = true,
                    Slot::Shim(s) => self.shim_ready(s, &mut buf),
                }
            }
            self.finish_execs();
            if self.compact_deadline.is_some_and(|d| Instant::now() >= d) {
                self.compact_deadline = None;
                crate::sys::drop_code_pages();
                crate::sys::trim_heap();
            }
            if self.kill_deadline.is_some_and(|d| Instant::now() >= d) {
                self.kill_deadline = None;
                if let Some(c) = self.container.as_ref() {
                    let _ = c.kill(libc::SIGKILL);
                }
            }
            if self.reaped.is_some() {
                let drained = self.outputs.iter().all(Option::is_none);
                if drained || self.drain_deadline.is_some_and(|d| Instant::now() >= d) {
                    self.finalize();
                }
            }
            if accept {
                self.accept();
            }
            for i in 0..self.clients.len() {
                // Clients accepted this turn have no poll slot yet: a
                // non-blocking read on them is harmless.
                if client_ready.get(i).copied().unwrap_or(true) {
                    self.serve(i, &mut buf);
                }
                self.flush(i);
            }
            self.drop_dead_clients();
            self.shim_turn();
            if self.shim.as_ref().is_some_and(|s| s.finished()) {
                self.shim_cleanup();
                return;
            }
            if !self.released && self.linger_deadline.is_some_and(|d| Instant::now() >= d) {
                // No supervisor came for it: release by ourselves; the
                // exit record stays on disk for the next one.
                let _ = self.release();
            }
            // A shim stays until containerd shuts it down.
            if self.released
                && self.shim.is_none()
                && self.clients.iter().all(|c| c.wbuf.is_empty())
            {
                return;
            }
        }
    }

    /// Polls every fd; returns what each slot is and whether it is ready.
    fn poll(&self) -> nix::Result<(Vec<Slot>, Vec<bool>)> {
        let mut slots = vec![Slot::Listener, Slot::Signals];
        let mut fds = vec![
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
        ];
        for (i, out) in self.outputs.iter().enumerate() {
            if let Some(f) = out {
                slots.push(Slot::Output(i));
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
        }
        if let Some(f) = &self.oom_events {
            slots.push(Slot::Oom);
            fds.push(PollFd::new(f.fd(), PollFlags::POLLIN));
        }
        if let (Some(f), false) = (&self.stdin, self.stdin_pending.is_empty()) {
            slots.push(Slot::Stdin);
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLOUT));
        }
        for (e, x) in self.execs.iter().enumerate() {
            for (i, out) in x.outputs.iter().enumerate() {
                if let Some(f) = out {
                    slots.push(Slot::ExecOutput(e, i));
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                }
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            let mut ev = PollFlags::POLLIN;
            if !c.wbuf.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            slots.push(Slot::Client(i));
            fds.push(PollFd::new(c.stream.as_fd(), ev));
        }
        if let Some(s) = &self.shim {
            let mut shim_slots = Vec::new();
            s.slots(&mut shim_slots, &mut fds);
            self.shim_stdin_slots(s, &mut shim_slots, &mut fds);
            slots.extend(shim_slots.into_iter().map(Slot::Shim));
        }
        let deadline = [
            self.drain_deadline.filter(|_| self.exit.is_none()),
            self.linger_deadline.filter(|_| !self.released),
            self.kill_deadline,
            self.compact_deadline,
            self.shim.as_ref().and_then(|s| s.deadline()),
            self.execs
                .iter()
                .filter_map(|x| x.reaped_at.map(|t| t + DRAIN))
                .min(),
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = match deadline {
            Some(d) => {
                let ms = d.saturating_duration_since(Instant::now()).as_millis();
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::ZERO)
            }
            None => PollTimeout::NONE,
        };
        nix::poll::poll(&mut fds, timeout)?;
        let ready = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        Ok((slots, ready))
    }

    fn drop_dead_clients(&mut self) {
        let dead: Vec<u64> = self
            .clients
            .iter()
            .filter(|c| c.dead)
            .map(|c| c.id)
            .collect();
        if dead.is_empty() {
            return;
        }
        self.clients.retain(|c| !c.dead);
        // Their exec'd processes run on; their output has nowhere to go.
        for x in &mut self.execs {
            if dead.contains(&x.owner) {
                x.owner = 0;
            }
        }
    }

    /// Sends a frame to every client `to` picks (the attached ones, the
    /// subscribed ones); one that falls too far behind is cut off rather
    /// than ever slowing the container.
    fn broadcast(&mut self, msg: &Response, to: fn(&Client) -> bool) {
        let Ok(frame) = proto::encode_frame(msg) else {
            return;
        };
        for c in self.clients.iter_mut().filter(|c| to(c) && !c.dead) {
            if c.wbuf.len() + frame.len() > MAX_ATTACH_QUEUE {
                c.dead = true;
                continue;
            }
            c.wbuf.extend_from_slice(&frame);
        }
    }

    fn flush_stdin(&mut self) {
        let Some(f) = self.stdin.as_mut() else {
            self.stdin_pending.clear();
            return;
        };
        let mut closed = false;
        while !self.stdin_pending.is_empty() {
            match f.write(&self.stdin_pending) {
                Ok(0) => break,
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The container closed its stdin.
                    closed = true;
                    break;
                }
            }
        }
        if closed || (self.stdin_eof && self.stdin_pending.is_empty()) {
            self.stdin = None;
            self.stdin_pending.clear();
        }
    }

    /// Input from the stdin holder `i`: watched for the detach keys, the
    /// rest queued for the container.
    fn input(&mut self, i: usize, data: &[u8]) {
        let c = &mut self.clients[i];
        let mut out = Vec::with_capacity(data.len());
        let mut detached = false;
        for &b in data {
            let keys = &c.detach_keys;
            if !keys.is_empty() && b == keys[c.matched] {
                c.matched += 1;
                if c.matched == keys.len() {
                    c.matched = 0;
                    detached = true;
                    break;
                }
                continue;
            }
            // Not the sequence after all: the held-back bytes are input.
            out.extend_from_slice(&keys[..c.matched]);
            c.matched = 0;
            if !keys.is_empty() && b == keys[0] {
                c.matched = 1;
            } else {
                out.push(b);
            }
        }
        if detached {
            c.attached = false;
            c.stdin_holder = false;
            queue(c, &Response::Detached);
        }
        if self.stdin.is_some() && self.stdin_pending.len() + out.len() <= MAX_STDIN_PENDING {
            self.stdin_pending.extend_from_slice(&out);
            self.flush_stdin();
        }
    }

    /// Pushes an event to the subscribed connections (the supervisor's
    /// live link); one that has fallen too far behind is cut off.
    fn publish(&mut self, ev: MonitorEvent) {
        self.shim_event(&ev);
        self.broadcast(&Response::Event(ev), |c| c.subscribed);
    }

    fn read_oom_event(&mut self) {
        use crate::oom::Event;
        let Some(w) = self.oom_events.as_mut() else {
            return;
        };
        match w.read() {
            Event::Oom => {
                self.oom_seen = true;
                self.publish(MonitorEvent::Oom);
            }
            Event::Nothing => {}
            Event::Gone => self.oom_events = None,
        }
    }

    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.on_exit(pid.as_raw(), code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.on_exit(pid.as_raw(), 128 + sig as i32, Some(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn on_exit(&mut self, pid: i32, code: i32, signal: Option<i32>) {
        if let Some(x) = self.execs.iter_mut().find(|x| x.pid == pid) {
            x.code = Some(code);
            x.reaped_at = Some(Instant::now());
            // Its terminal has no other writer than the process's tree.
            return;
        }
        if pid == self.init_pid && self.reaped.is_none() {
            self.reaped = Some((code, signal, proto::time::now_nanos()));
            self.drain_deadline = Some(Instant::now() + DRAIN);
        }
    }

    fn read_output(&mut self, i: usize, buf: &mut [u8]) {
        let stream = if i == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        // Bounded: one fair share per loop turn, so clients are served too.
        for _ in 0..16 {
            let Some(f) = self.outputs[i].as_mut() else {
                return;
            };
            match f.read(buf) {
                Ok(0) => {
                    self.outputs[i] = None;
                    self.log.finish(stream);
                    if let Some(s) = self.shim.as_deref_mut() {
                        s.output_done(i);
                    }
                    return;
                }
                Ok(n) => {
                    // A shim's output goes to containerd's fifos instead.
                    match self.shim.as_deref_mut() {
                        Some(s) => s.output(i, &buf[..n]),
                        None => self.log.feed(stream, &buf[..n]),
                    }
                    // No copy, no frame for nobody: this is the log's path.
                    if self.clients.iter().any(|c| c.attached) {
                        self.broadcast(
                            &Response::Output {
                                stream,
                                data: buf[..n].to_vec(),
                            },
                            |c| c.attached,
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EIO: the pty's last slave fd closed.
                Err(_) => {
                    self.outputs[i] = None;
                    self.log.finish(stream);
                    if let Some(s) = self.shim.as_deref_mut() {
                        s.output_done(i);
                    }
                    return;
                }
            }
        }
    }

    fn read_exec_output(&mut self, e: usize, i: usize, buf: &mut [u8]) {
        for _ in 0..16 {
            let x = &mut self.execs[e];
            let Some(f) = x.outputs[i].as_mut() else {
                return;
            };
            match f.read(buf) {
                Ok(0) => {
                    x.outputs[i] = None;
                    return;
                }
                Ok(n) => {
                    let (id, owner) = (x.id, x.owner);
                    if let Some(s) = self.shim.as_deref_mut() {
                        if s.exec_output(id, i, &buf[..n]) {
                            continue;
                        }
                    }
                    let msg = Response::ExecOutput {
                        id,
                        stream: if i == 0 {
                            Stream::Stdout
                        } else {
                            Stream::Stderr
                        },
                        data: buf[..n].to_vec(),
                    };
                    if let Some(c) = self.clients.iter_mut().find(|c| c.id == owner) {
                        if c.wbuf.len() > MAX_ATTACH_QUEUE {
                            c.dead = true;
                        } else {
                            queue(c, &msg);
                        }
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    x.outputs[i] = None;
                    return;
                }
            }
        }
    }

    /// Reports exec'd processes that have exited and whose output is
    /// drained (or cut: a descendant may hold it open; 2 s at most is not
    /// tracked here, the pipes close with the container's pid namespace).
    fn finish_execs(&mut self) {
        let mut k = 0;
        while k < self.execs.len() {
            let x = &self.execs[k];
            let drained = x.outputs.iter().all(Option::is_none)
                || x.reaped_at.is_some_and(|t| t.elapsed() >= DRAIN);
            if let (Some(code), true) = (x.code, drained) {
                let (id, owner) = (x.id, x.owner);
                self.execs.remove(k);
                if self.shim_exec_exited(id, code) {
                    continue;
                }
                if let Some(c) = self.clients.iter_mut().find(|c| c.id == owner) {
                    queue(c, &Response::ExecExited { id, code });
                }
                continue;
            }
            k += 1;
        }
    }

    /// Init is gone and its output drained: write the exit record durably,
    /// then tell the waiters.
    fn finalize(&mut self) {
        let Some((code, signal, finished_at)) = self.reaped.take() else {
            return;
        };
        self.drain_deadline = None;
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if self.outputs[i].take().is_some() {
                self.log.finish(stream);
            }
        }
        self.kill_deadline = None;
        self.log.sync();
        let log_status = self.log.status();
        if log_status.error.is_some() {
            if let Ok(json) = serde_json::to_vec(&log_status) {
                let _ = write_durably(&self.state_dir, LOG_STATUS_FILE, &json);
            }
        }
        let record = ExitRecord {
            code,
            signal,
            // The event seen while it ran, or the counter re-read once now.
            oom_killed: self.oom_seen || runtime_core::oom_kill_count(&self.cgroup_path) > 0,
            started_at: self.started_at,
            finished_at,
            protocol: proto::PROTOCOL_VERSION,
        };
        if let Ok(json) = serde_json::to_vec(&record) {
            // If even this fails (disk gone) the record still reaches the
            // clients connected now; nothing better can be done.
            let _ = write_durably(&self.state_dir, EXIT_FILE, &json);
        }
        self.exit = Some(record.clone());
        self.shim_init_exited();
        self.compact_deadline = Some(Instant::now() + COMPACT_AFTER);
        self.linger_deadline = self.linger.map(|l| Instant::now() + l);
        // Waiters get the record; so do attached clients: their attach ends.
        for c in self.clients.iter_mut() {
            let attached = std::mem::take(&mut c.attached);
            c.stdin_holder = false;
            if c.waiting || attached {
                c.waiting = false;
                queue(c, &Response::Exited(record.clone()));
            }
            if c.subscribed {
                queue(c, &Response::Event(MonitorEvent::Exited(record.clone())));
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    // Full: the oldest client that is not the supervisor and
                    // holds no session makes room, so that idle connections
                    // can never lock contd out.
                    let live = self.clients.iter().filter(|c| !c.dead).count();
                    if live >= MAX_CLIENTS && !self.evict_idle() {
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.next_client;
                    self.next_client += 1;
                    self.clients.push(Client {
                        id,
                        attached: false,
                        stdin_holder: false,
                        detach_keys: Vec::new(),
                        matched: 0,
                        stream,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        greeted: false,
                        waiting: false,
                        subscribed: false,
                        closing: false,
                        dead: false,
                        supervisor: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Drops the oldest client that is not the supervisor and has nothing
    /// going on (no attach, wait, subscription or exec); `false` if none.
    fn evict_idle(&mut self) -> bool {
        let execs = &self.execs;
        let victim = self.clients.iter().position(|c| {
            !c.dead
                && !c.supervisor
                && !c.attached
                && !c.waiting
                && !c.subscribed
                && !execs.iter().any(|x| x.owner == c.id)
        });
        match victim {
            // Closed with the others that ended this turn.
            Some(i) => {
                self.clients[i].dead = true;
                true
            }
            None => false,
        }
    }

    fn serve(&mut self, i: usize, buf: &mut [u8]) {
        let c = &mut self.clients[i];
        if c.closing || c.dead {
            return;
        }
        if !crate::sys::read_ready(&mut c.stream, &mut c.rbuf, buf) {
            c.dead = true;
            return;
        }
        loop {
            let c = &mut self.clients[i];
            if c.closing {
                return;
            }
            let payload = match proto::take_frame(&mut c.rbuf) {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => return refuse(c, ErrorKind::InvalidArgument, e.to_string()),
            };
            if !c.greeted {
                match proto::decode::<Hello>(&payload) {
                    Ok(h) => match proto::answer_hello(&h, "contd-monitor") {
                        Ok(ours) => {
                            c.greeted = true;
                            c.supervisor = h.software == "contd";
                            queue(c, &ours);
                        }
                        Err(e) => return refuse(c, e.kind, e.message),
                    },
                    Err(e) => {
                        return refuse(
                            c,
                            ErrorKind::InvalidArgument,
                            format!("expected hello: {e}"),
                        )
                    }
                }
                continue;
            }
            match proto::decode::<Request>(&payload) {
                Ok(req) => self.handle(i, req),
                Err(FrameError::Malformed(m)) => {
                    return refuse(&mut self.clients[i], ErrorKind::InvalidArgument, m)
                }
                Err(e) => {
                    return refuse(
                        &mut self.clients[i],
                        ErrorKind::InvalidArgument,
                        e.to_string(),
                    )
                }
            }
        }
    }

    fn state(&self) -> MonitorState {
        let status = if self.exit.is_some() {
            Status::Exited
        } else if self.started_at.is_some() {
            if runtime_core::cgroup_is_frozen(&self.cgroup_path) {
                Status::Paused
            } else {
                Status::Running
            }
        } else {
            Status::Created
        };
        MonitorState {
            status,
            pid: self.exit.is_none().then_some(self.init_pid),
            exit: self.exit.clone(),
            created_at: self.created_at,
            started_at: self.started_at,
            log_path: self.log_path.clone(),
            monitor_pid: std::process::id() as i32,
        }
    }

    fn handle(&mut self, i: usize, req: Request) {
        let conflict = |m: &str| Response::Error(ErrorReply::new(ErrorKind::Conflict, m));

        let reply = match req {
            Request::State => Response::State(self.state()),
            Request::Start => self.start_container(),
            Request::Signal { signal } => {
                if !(1..=64).contains(&signal) {
                    Response::Error(ErrorReply::new(
                        ErrorKind::InvalidArgument,
                        format!("invalid signal {signal}"),
                    ))
                } else if self.exit.is_some() || self.reaped.is_some() {
                    conflict("container has exited")
                } else {
                    match self.container.as_ref().map(|c| c.kill(signal)) {
                        Some(Ok(())) => Response::Ok,
                        Some(Err(e)) => {
                            Response::Error(ErrorReply::new(ErrorKind::Internal, e.to_string()))
                        }
                        None => conflict("container is released"),
                    }
                }
            }
            Request::Wait => match &self.exit {
                Some(rec) => Response::Exited(rec.clone()),
                None => {
                    self.clients[i].waiting = true;
                    return;
                }
            },
            Request::Release => {
                if self.exit.is_none() {
                    conflict("container has not exited")
                } else {
                    self.release()
                }
            }
            Request::Stop { signal, timeout_ms } => {
                if let Some(rec) = &self.exit {
                    Response::Exited(rec.clone())
                } else if !(1..=64).contains(&signal) {
                    Response::Error(ErrorReply::new(
                        ErrorKind::InvalidArgument,
                        format!("invalid signal {signal}"),
                    ))
                } else {
                    if self.reaped.is_none() {
                        self.terminate(signal, timeout_ms);
                    }
                    // Answered with the exit record.
                    self.clients[i].waiting = true;
                    return;
                }
            }
            Request::Attach { stdin, detach_keys } => self.attach(i, stdin, detach_keys),
            Request::Input { data } => {
                if !self.clients[i].stdin_holder {
                    conflict("not attached to stdin")
                } else if data.is_empty() {
                    // The end of the client's input (`run -i` from a pipe):
                    // the container reads end of file once the rest is in.
                    // A terminal has no end of input to pass on.
                    if self.tty.is_none() {
                        self.stdin_eof = true;
                        self.flush_stdin();
                    }
                    return;
                } else {
                    self.input(i, &data);
                    return;
                }
            }
            Request::Resize { rows, cols } => match &self.tty {
                None => Response::Error(ErrorReply::new(
                    ErrorKind::Unsupported,
                    "the container has no terminal",
                )),
                Some(_) if self.exit.is_some() => conflict("container has exited"),
                Some(m) => match runtime_core::set_winsize(m.as_fd(), rows, cols) {
                    Ok(()) => Response::Ok,
                    Err(e) => Response::Error(ErrorReply::new(
                        ErrorKind::Internal,
                        format!("resize: {e}"),
                    )),
                },
            },
            Request::Exec(req) => self.exec(i, req),
            Request::ExecInput { id, data } => {
                let owner = self.clients[i].id;
                match self
                    .execs
                    .iter_mut()
                    .find(|x| x.id == id && x.owner == owner)
                {
                    None => Response::Error(ErrorReply::new(
                        ErrorKind::NotFound,
                        format!("no exec {id} of this connection"),
                    )),
                    Some(x) if data.is_empty() => {
                        x.stdin = None;
                        return;
                    }
                    Some(x) => {
                        // Small interactive input: a full pipe drops it
                        // rather than blocking the monitor.
                        if let Some(f) = x.stdin.as_mut() {
                            let _ = f.write(&data);
                        }
                        return;
                    }
                }
            }
            Request::Stats => match &self.container {
                Some(c) if self.exit.is_none() => {
                    let st = c.stats();
                    Response::Stats(proto::monitor::Stats {
                        memory_usage: st.memory_usage,
                        memory_limit: st.memory_limit,
                        cpu_usage_ns: st.cpu_usage_ns,
                        pids_current: st.pids_current,
                        pids_limit: st.pids_limit,
                    })
                }
                _ => conflict("container has exited"),
            },
            Request::LogStatus => Response::LogStatus(self.log.status()),
            Request::Subscribe => {
                self.clients[i].subscribed = true;
                Response::State(self.state())
            }
            Request::Terminate { signal, timeout_ms } => {
                if self.exit.is_some() || self.reaped.is_some() {
                    conflict("container has exited")
                } else if !(1..=64).contains(&signal) {
                    Response::Error(ErrorReply::new(
                        ErrorKind::InvalidArgument,
                        format!("invalid signal {signal}"),
                    ))
                } else {
                    self.terminate(signal, timeout_ms);
                    Response::Ok
                }
            }
            Request::Pause => self.freeze(true),
            Request::Resume => self.freeze(false),
            Request::Update(res) => match self.container.as_ref() {
                Some(_) if self.exit.is_some() || self.reaped.is_some() => {
                    conflict("container has exited")
                }
                Some(c) => match c.update(&runtime_core::linux_resources(&res)) {
                    Ok(()) => Response::Ok,
                    Err(e) => Response::Error(ErrorReply::new(
                        ErrorKind::InvalidArgument,
                        format!("update: {e}"),
                    )),
                },
                None => conflict("container is released"),
            },
            Request::Pids => match self.container.as_ref() {
                Some(c) => Response::Pids(c.processes()),
                None => Response::Pids(Vec::new()),
            },
        };
        queue(&mut self.clients[i], &reply);
    }

    /// Starts the created container.
    fn start_container(&mut self) -> Response {
        let conflict = |m: &str| Response::Error(ErrorReply::new(ErrorKind::Conflict, m));
        if self.exit.is_some() || self.reaped.is_some() {
            conflict("container has exited")
        } else if self.started_at.is_some() {
            conflict("container is already running")
        } else {
            match self.container.as_mut().map(Container::start) {
                Some(Ok(())) => {
                    let now = proto::time::now_nanos();
                    self.started_at = Some(now);
                    self.publish(MonitorEvent::Started(now));
                    Response::Ok
                }
                Some(Err(e)) => {
                    Response::Error(ErrorReply::new(ErrorKind::Internal, e.to_string()))
                }
                None => conflict("container is released"),
            }
        }
    }

    /// Pauses (`true`) or resumes the container, and says so to the
    /// subscribers.
    fn freeze(&mut self, pause: bool) -> Response {
        let conflict = |m: String| Response::Error(ErrorReply::new(ErrorKind::Conflict, m));
        let Some(c) = self.container.as_ref() else {
            return conflict("container is released".into());
        };
        if self.exit.is_some() || self.reaped.is_some() {
            return conflict("container has exited".into());
        }
        match if pause { c.pause() } else { c.resume() } {
            Ok(()) => {
                self.publish(if pause {
                    MonitorEvent::Paused
                } else {
                    MonitorEvent::Resumed
                });
                Response::Ok
            }
            Err(e) => conflict(e.to_string()),
        }
    }

    /// Sends `signal` now and SIGKILL when `timeout_ms` runs out (the
    /// earlier deadline wins when stops overlap). A paused container is
    /// thawed first, or it could not act on the signal.
    fn terminate(&mut self, signal: i32, timeout_ms: u64) {
        if let Some(c) = self.container.as_ref() {
            if runtime_core::cgroup_is_frozen(&self.cgroup_path) && c.resume().is_ok() {
                self.publish(MonitorEvent::Resumed);
            }
        }
        if let Some(c) = self.container.as_ref() {
            let _ = c.kill(signal);
        }
        // A grace period past what an Instant holds is no deadline at all.
        let now = Instant::now();
        let grace = now
            .checked_add(Duration::from_millis(timeout_ms))
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86400));
        self.kill_deadline = Some(match self.kill_deadline {
            Some(d) => d.min(grace),
            None => grace,
        });
    }

    fn attach(&mut self, i: usize, stdin: bool, keys: Option<Vec<u8>>) -> Response {
        if self.exit.is_some() || self.reaped.is_some() {
            return Response::Error(ErrorReply::new(ErrorKind::Conflict, "container has exited"));
        }
        if stdin {
            if self.stdin.is_none() {
                return Response::Error(ErrorReply::new(
                    ErrorKind::InvalidArgument,
                    "the container has no stdin to attach to",
                ));
            }
            if self
                .clients
                .iter()
                .enumerate()
                .any(|(j, c)| j != i && c.stdin_holder && !c.dead)
            {
                return Response::Error(ErrorReply::new(
                    ErrorKind::Conflict,
                    "another client is attached to stdin",
                ));
            }
        }
        let c = &mut self.clients[i];
        c.attached = true;
        c.stdin_holder = stdin;
        c.detach_keys = keys.unwrap_or_else(|| DEFAULT_DETACH.to_vec());
        c.matched = 0;
        Response::Ok
    }

    fn exec(&mut self, i: usize, req: ExecRequest) -> Response {
        let err = |kind, m: String| Response::Error(ErrorReply::new(kind, m));
        let Some(container) = self.container.as_ref() else {
            return err(ErrorKind::Conflict, "container is released".into());
        };
        if self.exit.is_some() || self.reaped.is_some() || self.started_at.is_none() {
            return err(ErrorKind::Conflict, "container is not running".into());
        }
        if req.args.first().is_none_or(|a| a.is_empty()) {
            return err(ErrorKind::InvalidArgument, "exec needs a program".into());
        }
        let spec = match container.spec() {
            Ok(s) => s,
            Err(e) => return err(ErrorKind::Internal, e.to_string()),
        };
        let Some(mut process) = spec.process().clone() else {
            return err(ErrorKind::Internal, "the container has no process".into());
        };
        process.set_args(Some(req.args.clone()));
        let mut env = process.env().clone().unwrap_or_default();
        runtime_core::merge_env(&mut env, &req.env);
        process.set_env(Some(env));
        if let Some(cwd) = &req.cwd {
            process.set_cwd(cwd.into());
        }
        if let Some((uid, gid)) = req.user {
            let mut u = process.user().clone();
            u.set_uid(uid);
            u.set_gid(gid);
            u.set_additional_gids(None);
            process.set_user(u);
        }
        process.set_terminal(Some(req.tty.is_some()));
        process.set_console_size(None);
        let owner = self.clients[i].id;
        match self.start_process(owner, process, req.tty.is_some(), req.stdin, req.tty) {
            Ok((id, pid)) => Response::ExecStarted { id, pid },
            Err(m) => err(ErrorKind::InvalidArgument, m),
        }
    }

    /// Starts `process` in the container for client `owner` (0: the
    /// shim's): with a terminal of `size`, or pipes (and a stdin pipe).
    fn start_process(
        &mut self,
        owner: u64,
        mut process: oci_spec::runtime::Process,
        terminal: bool,
        with_stdin: bool,
        size: Option<(u16, u16)>,
    ) -> Result<(u32, i32), String> {
        process.set_terminal(Some(terminal));
        let container = self.container.as_ref().ok_or("container is released")?;
        let mut opts = runtime_core::ExecOptions::new(process);
        opts.default_oom_score_adj = Some(0);
        opts.seccomp_cache = self.seccomp_cache.clone();
        let mut console = None;
        let mut outputs = [None, None];
        let mut stdin = None;
        if terminal {
            let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            opts.console_socket = Some(OwnedFd::from(theirs));
            console = Some(ours);
        } else {
            let (out_r, out_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
            let (err_r, err_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
            let stdin_r = if with_stdin {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| format!("pipe: {e}"))?;
                stdin = Some(nonblocking(w).map_err(|e| format!("pipe: {e}"))?);
                Some(r)
            } else {
                std::fs::File::open("/dev/null").map(OwnedFd::from).ok()
            };
            opts.stdio = Stdio {
                stdin: stdin_r,
                stdout: Some(out_w),
                stderr: Some(err_w),
            };
            outputs = [Some(out_r), Some(err_r)];
        }
        let pid = container.exec(opts).map_err(|e| e.to_string())?;
        if let Some(sock) = console {
            let master = runtime_core::receive_master(sock.as_fd())
                .and_then(nonblocking)
                .map_err(|e| format!("receive the exec's pty: {e}"))?;
            if let Some((rows, cols)) = size {
                let _ = runtime_core::set_winsize(master.as_fd(), rows, cols);
            }
            stdin = master.try_clone().ok();
            outputs = [Some(master), None];
        }
        let id = self.next_exec;
        self.next_exec += 1;
        self.execs.push(Exec {
            id,
            pid,
            owner,
            outputs,
            stdin,
            code: None,
            reaped_at: None,
            tty: terminal,
        });
        Ok((id, pid))
    }

    /// Removes the container's resources; the exit record stays.
    fn release(&mut self) -> Response {
        if let Some(c) = self.container.take() {
            if let Err(e) = c.delete(false) {
                return Response::Error(ErrorReply::new(
                    ErrorKind::Internal,
                    format!("release: {e}"),
                ));
            }
        }
        let _ = std::fs::remove_file(SOCKET);
        let _ = std::fs::remove_file(PID_FILE);
        self.released = true;
        Response::Ok
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if !c.dead && !crate::sys::write_ready(&mut c.stream, &mut c.wbuf) {
            c.dead = true;
        }
        if c.wbuf.len() > MAX_PENDING_OUTPUT || (c.closing && c.wbuf.is_empty()) {
            c.dead = true;
        }
    }
}

fn queue<T: serde::Serialize>(c: &mut Client, msg: &T) {
    match proto::encode_frame(msg) {
        Ok(f) => c.wbuf.extend_from_slice(&f),
        Err(_) => c.dead = true,
    }
}

/// Answers a bad frame with an error and closes the connection.
fn refuse(c: &mut Client, kind: ErrorKind, message: String) {
    queue(c, &Response::Error(ErrorReply::new(kind, message)));
    c.closing = true;
}

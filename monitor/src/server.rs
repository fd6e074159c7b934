//! The monitor's life after daemonizing: create the container, report on the
//! sync pipe, then one poll loop over the listening socket, the clients,
//! init's stdout and stderr, and a signalfd for SIGCHLD.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use proto::monitor::{MonitorState, Ready, Request, Response};
use proto::{ErrorKind, ErrorReply, ExitRecord, FrameError, Hello, Status};
use runtime_core::{Container, CreateOptions, Stdio};

use crate::log::{LogWriter, Stream};
use crate::Args;

/// File names inside the state dir.
pub(crate) const SOCKET: &str = "monitor.sock";
pub(crate) const PID_FILE: &str = "monitor.pid";
pub(crate) const EXIT_FILE: &str = "exit";

/// How long output is still drained after init exits (its descendants die
/// with its pid namespace, so the pipes close almost at once).
const DRAIN: Duration = Duration::from_secs(2);
/// At most this many clients at once; more are refused.
const MAX_CLIENTS: usize = 64;
/// A client that lets this much unsent output pile up is cut off.
const MAX_PENDING_OUTPUT: usize = 4 << 20;

struct Client {
    stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    greeted: bool,
    waiting: bool,
    /// Close once `wbuf` is sent (after an error reply).
    closing: bool,
    dead: bool,
}

struct Monitor {
    state_dir: PathBuf,
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
    /// cgroup v1 OOM notifications (eventfd registered on
    /// `memory.oom_control`); `None` on v2, where `memory.events` is read.
    oom_events: Option<std::fs::File>,
    /// An OOM event was seen while the container ran.
    oom_seen: bool,
    /// How long to stay after the exit record is written, if no
    /// supervisor releases us first.
    linger: Option<Duration>,
    linger_deadline: Option<Instant>,
}

/// Registers an eventfd for OOM notifications of the cgroup v1 memory
/// controller of `cgroup_path` (`cgroup.event_control`).
fn oom_eventfd(cgroup_path: &str) -> Option<std::fs::File> {
    if runtime_core::cgroup_v2() {
        return None;
    }
    let dir = Path::new("/sys/fs/cgroup/memory").join(cgroup_path);
    let control = std::fs::File::open(dir.join("memory.oom_control")).ok()?;
    let efd = crate::sys::eventfd().ok()?;
    use std::os::fd::AsRawFd;
    let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
    std::fs::write(dir.join("cgroup.event_control"), line).ok()?;
    // The kernel holds its own reference to the control file now.
    Some(std::fs::File::from(efd))
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
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let sigfd = match mask
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC))
    {
        Ok(s) => s,
        Err(e) => {
            cleanup_files();
            return failed(sync, format!("signalfd: {e}"));
        }
    };
    let log = match LogWriter::open(&args.log_path) {
        Ok(l) => l,
        Err(e) => {
            cleanup_files();
            return failed(sync, format!("open log {}: {e}", args.log_path.display()));
        }
    };
    let pipes = pipe().and_then(|o| Ok((o, pipe()?)));
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => {
            cleanup_files();
            return failed(sync, format!("create output pipes: {e}"));
        }
    };
    let stdin = std::fs::File::open("/dev/null").map(OwnedFd::from).ok();
    let mut opts = CreateOptions::new(
        args.id.clone(),
        args.state_dir.join("bundle"),
        args.state_dir.join("runtime"),
    );
    opts.stdio = Stdio {
        stdin,
        stdout: Some(out_w),
        stderr: Some(err_w),
    };
    // Not our -1000: the container is what the OOM killer should pick.
    opts.default_oom_score_adj = Some(0);
    let created = Container::create(opts);
    let container = match created {
        Ok(c) => c,
        Err(e) => {
            cleanup_files();
            let kind = match e {
                runtime_core::Error::Spec(_) => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            };
            report(sync, &Ready::Failed(ErrorReply::new(kind, format!("{e}"))));
            return Err(());
        }
    };
    let init_pid = container.pid();
    report(
        sync,
        &Ready::Created {
            pid: init_pid,
            monitor_pid: pid,
        },
    );
    let oom_events = oom_eventfd(container.cgroup_path());
    let mut m = Monitor {
        oom_events,
        oom_seen: false,
        linger: args.linger,
        linger_deadline: None,
        state_dir: args.state_dir.clone(),
        cgroup_path: container.cgroup_path().to_string(),
        container: Some(container),
        log,
        log_path: args.log_path.display().to_string(),
        outputs: [Some(out_r), Some(err_r)],
        listener,
        sigfd,
        clients: Vec::new(),
        created_at: proto::time::now_nanos(),
        started_at: None,
        init_pid,
        reaped: None,
        drain_deadline: None,
        exit: None,
        released: false,
    };
    m.run();
    Ok(())
}

impl Monitor {
    fn run(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (ready, n_fixed) = match self.poll() {
                Ok(r) => r,
                Err(_) => continue,
            };
            // Fixed slots: 0 listener, 1 signalfd, 2 stdout, 3 stderr, 4 OOM.
            if ready[4] {
                self.read_oom_event();
            }
            if ready[1] {
                self.reap();
            }
            for (slot, stream) in [(2, Stream::Stdout), (3, Stream::Stderr)] {
                if ready[slot] {
                    self.read_output(stream, &mut buf);
                }
            }
            if self.reaped.is_some() {
                let drained = self.outputs.iter().all(Option::is_none);
                if drained || self.drain_deadline.is_some_and(|d| Instant::now() >= d) {
                    self.finalize();
                }
            }
            if ready[0] {
                self.accept();
            }
            for i in 0..self.clients.len() {
                // Clients accepted this turn have no poll slot yet: a
                // non-blocking read on them is harmless.
                if ready.get(n_fixed + i).copied().unwrap_or(true) {
                    self.serve(i, &mut buf);
                }
                self.flush(i);
            }
            self.clients.retain(|c| !c.dead);
            if !self.released && self.linger_deadline.is_some_and(|d| Instant::now() >= d) {
                // No supervisor came for it: release by ourselves; the
                // exit record stays on disk for the next one.
                let _ = self.release();
            }
            if self.released && self.clients.iter().all(|c| c.wbuf.is_empty()) {
                return;
            }
        }
    }

    /// Polls every fd; returns per-slot readiness and the number of fixed slots.
    fn poll(&self) -> nix::Result<(Vec<bool>, usize)> {
        let mut fds = vec![
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
        ];
        // A closed stream keeps its slot with no events, so indices stay fixed.
        for out in &self.outputs {
            match out {
                Some(f) => fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN)),
                None => fds.push(PollFd::new(self.sigfd.as_fd(), PollFlags::empty())),
            }
        }
        match &self.oom_events {
            Some(f) => fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN)),
            None => fds.push(PollFd::new(self.sigfd.as_fd(), PollFlags::empty())),
        }
        let n_fixed = fds.len();
        for c in &self.clients {
            let mut ev = PollFlags::POLLIN;
            if !c.wbuf.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.stream.as_fd(), ev));
        }
        let deadline = match self.drain_deadline {
            Some(d) if self.exit.is_none() => Some(d),
            _ => self.linger_deadline.filter(|_| !self.released),
        };
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
        Ok((ready, n_fixed))
    }

    fn read_oom_event(&mut self) {
        let Some(f) = self.oom_events.as_mut() else {
            return;
        };
        let mut count = [0u8; 8];
        match f.read(&mut count) {
            Ok(8) => self.oom_seen = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The cgroup is gone (eventfd signalled at removal) or broken.
            _ => self.oom_events = None,
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
        if pid == self.init_pid && self.reaped.is_none() {
            self.reaped = Some((code, signal, proto::time::now_nanos()));
            self.drain_deadline = Some(Instant::now() + DRAIN);
        }
    }

    fn read_output(&mut self, stream: Stream, buf: &mut [u8]) {
        let i = stream as usize;
        let Some(f) = self.outputs[i].as_mut() else {
            return;
        };
        // Bounded: one fair share per loop turn, so clients are served too.
        for _ in 0..16 {
            match f.read(buf) {
                Ok(0) => {
                    self.outputs[i] = None;
                    self.log.finish(stream);
                    return;
                }
                Ok(n) => self.log.feed(stream, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.outputs[i] = None;
                    self.log.finish(stream);
                    return;
                }
            }
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
        self.log.sync();
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
        self.linger_deadline = self.linger.map(|l| Instant::now() + l);
        for c in self.clients.iter_mut().filter(|c| c.waiting) {
            c.waiting = false;
            queue(c, &Response::Exited(record.clone()));
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        stream,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        greeted: false,
                        waiting: false,
                        closing: false,
                        dead: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn serve(&mut self, i: usize, buf: &mut [u8]) {
        loop {
            let c = &mut self.clients[i];
            if c.closing || c.dead {
                return;
            }
            match c.stream.read(buf) {
                Ok(0) => {
                    c.dead = true;
                    return;
                }
                Ok(n) => c.rbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    c.dead = true;
                    return;
                }
            }
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
                    Ok(h) => match proto::negotiate(h.protocol) {
                        Some(v) => {
                            c.greeted = true;
                            queue(
                                c,
                                &Hello {
                                    protocol: v,
                                    software: format!(
                                        "contd-monitor {}",
                                        env!("CARGO_PKG_VERSION")
                                    ),
                                },
                            );
                        }
                        None => {
                            return refuse(
                                c,
                                ErrorKind::Unsupported,
                                format!("no common protocol version with {}", h.protocol),
                            )
                        }
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
            Status::Running
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
            Request::Start => {
                if self.exit.is_some() || self.reaped.is_some() {
                    conflict("container has exited")
                } else if self.started_at.is_some() {
                    conflict("container is already running")
                } else {
                    match self.container.as_mut().map(Container::start) {
                        Some(Ok(())) => {
                            self.started_at = Some(proto::time::now_nanos());
                            Response::Ok
                        }
                        Some(Err(e)) => {
                            Response::Error(ErrorReply::new(ErrorKind::Internal, e.to_string()))
                        }
                        None => conflict("container is released"),
                    }
                }
            }
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
        };
        queue(&mut self.clients[i], &reply);
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
        while !c.wbuf.is_empty() && !c.dead {
            match c.stream.write(&c.wbuf) {
                Ok(0) => c.dead = true,
                Ok(n) => {
                    c.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => c.dead = true,
            }
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

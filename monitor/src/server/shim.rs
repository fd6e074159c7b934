//! The monitor as containerd's shim, once the container is created: the
//! `containerd.task.v2` service over ttrpc on its own socket, in the same
//! poll loop as `monitor.sock`; the container's output into containerd's
//! fifos (never blocking it, see [`crate::fifo`]); events to containerd's
//! `TTRPC_ADDRESS` with a retry queue.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::fifo::FifoSink;
use crate::pb::{self, Any, Code, Enc, Method, Status, TaskRequest};
use crate::shim::ShimArgs;
use crate::ttrpc;

use super::{Monitor, MonitorEvent};

/// containerd's task status numbers.
const STATUS_CREATED: u64 = 1;
const STATUS_RUNNING: u64 = 2;
const STATUS_STOPPED: u64 = 3;
const STATUS_PAUSED: u64 = 4;

/// How many events wait for containerd at most; older ones go first.
const MAX_EVENTS: usize = 4096;
/// The longest wait between two tries to reach containerd's event socket.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The type of the OCI process of an exec, and of `Update`'s resources.
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// A connection from containerd.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    dead: bool,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        let _ = stream.set_nonblocking(true);
        Conn {
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            dead: false,
        }
    }

    fn respond(&mut self, stream: u32, result: &Result<Vec<u8>, Status>) {
        let data = pb::rpc_response(result);
        self.wbuf
            .extend_from_slice(&ttrpc::frame(stream, ttrpc::RESPONSE, &data));
    }
}

/// An exec registered by `Exec`, started by `Start`.
#[derive(Debug)]
struct ShimExec {
    exec_id: String,
    req: TaskRequest,
    /// The monitor's id of it, once started.
    started: Option<u32>,
    pid: u32,
    /// Exit code and time, once it ended.
    exit: Option<(u32, i64)>,
    sinks: [Option<FifoSink>; 2],
    /// Its stdin fifo, read into the process's stdin.
    stdin: Option<std::fs::File>,
    /// Input read from the fifo that the process's stdin pipe has not
    /// taken yet; the fifo is not read again until it has.
    pending: Vec<u8>,
    /// The fifo's writer closed: the process's stdin closes once
    /// `pending` is in.
    stdin_eof: bool,
}

/// Who waits for which process (`""`: init).
#[derive(Debug)]
struct Waiter {
    conn: usize,
    stream: u32,
    exec_id: String,
}

/// Events on their way to containerd.
#[derive(Debug)]
pub(crate) struct Publisher {
    address: String,
    namespace: String,
    queue: VecDeque<Vec<u8>>,
    /// Sent, not yet answered: resent if the connection breaks.
    unacked: VecDeque<(u32, Vec<u8>)>,
    conn: Option<Conn>,
    next_stream: u32,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Publisher {
    fn new(address: String, namespace: String) -> Publisher {
        Publisher {
            address,
            namespace,
            queue: VecDeque::new(),
            unacked: VecDeque::new(),
            conn: None,
            next_stream: 1,
            retry_at: None,
            backoff: Duration::from_secs(1),
        }
    }

    /// Queues an event (`name` is its message, `containerd.events.NAME`).
    fn publish(&mut self, topic: &str, name: &str, event: Enc) {
        if self.address.is_empty() {
            // CRI-O gives no event address: it learns by Wait.
            return;
        }
        let envelope = Enc::new()
            .msg(1, pb::timestamp(proto::time::now_nanos()))
            .str(2, &self.namespace)
            .str(3, topic)
            .msg(
                4,
                Any::enc(&format!("containerd.events.{name}"), &event.finish()),
            );
        let payload = Enc::new().msg(1, envelope).finish();
        if self.queue.len() >= MAX_EVENTS {
            self.queue.pop_front();
        }
        self.queue.push_back(payload);
        self.send();
    }

    fn connect(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let path = self.address.trim_start_matches("unix://");
        match UnixStream::connect(path) {
            Ok(s) => {
                self.conn = Some(Conn::new(s));
                self.retry_at = None;
                self.backoff = Duration::from_secs(1);
                // What was sent and not answered goes again, first.
                while let Some((_, p)) = self.unacked.pop_back() {
                    self.queue.push_front(p);
                }
                true
            }
            Err(_) => {
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                false
            }
        }
    }

    /// Sends what is queued, as far as the connection takes it.
    fn send(&mut self) {
        if self.queue.is_empty() || !self.connect() {
            return;
        }
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        // One at a time: containerd handles requests concurrently, so
        // the next event waits for this one's answer to keep the order.
        if self.unacked.is_empty() {
            let Some(payload) = self.queue.pop_front() else {
                return;
            };
            let stream = self.next_stream;
            self.next_stream = self.next_stream.wrapping_add(2);
            let req = pb::RpcRequest::enc(
                "containerd.services.events.ttrpc.v1.Events",
                "Forward",
                &payload,
            );
            c.wbuf
                .extend_from_slice(&ttrpc::frame(stream, ttrpc::REQUEST, &req));
            self.unacked.push_back((stream, payload));
        }
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            flush_conn(c);
        }
        self.reap_dead();
    }

    /// Reads containerd's answers: each acknowledges its event.
    fn read(&mut self) {
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        read_into(c);
        while let Ok(Some(f)) = ttrpc::take_frame(&mut c.rbuf) {
            if f.kind == ttrpc::RESPONSE {
                self.unacked.retain(|(s, _)| *s != f.stream);
            }
        }
        self.reap_dead();
        self.send();
    }

    fn reap_dead(&mut self) {
        if self.conn.as_ref().is_some_and(|c| c.dead) {
            self.conn = None;
            while let Some((_, p)) = self.unacked.pop_back() {
                self.queue.push_front(p);
            }
            self.retry_at = Some(Instant::now() + self.backoff);
        }
    }

    /// When to try again to reach containerd.
    fn deadline(&self) -> Option<Instant> {
        self.retry_at.filter(|_| !self.queue.is_empty())
    }
}

/// The shim's state beside the monitor's.
#[derive(Debug)]
pub(crate) struct Shim {
    args: ShimArgs,
    listener: UnixListener,
    conns: Vec<Conn>,
    publisher: Publisher,
    /// The container's stdout and stderr fifos.
    sinks: [Option<FifoSink>; 2],
    /// Its stdin fifo, read into the container's stdin.
    stdin: Option<std::fs::File>,
    execs: Vec<ShimExec>,
    waiters: Vec<Waiter>,
    deleted: bool,
    shutdown: bool,
    /// Numbers the execs' spill files (never reused).
    next_spill: u32,
}

/// What a poll slot of the shim is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ShimSlot {
    Listener,
    Conn(usize),
    Events,
    Sink(usize),
    Stdin,
    ExecSink(usize, usize),
    ExecStdin(usize),
    /// An exec's stdin pipe has room for its pending input.
    ExecStdinOut(usize),
}

fn read_into(c: &mut Conn) {
    let mut buf = [0u8; 16 * 1024];
    if !crate::sys::read_ready(&mut c.stream, &mut c.rbuf, &mut buf) {
        c.dead = true;
    }
}

fn flush_conn(c: &mut Conn) {
    if !c.dead && !crate::sys::write_ready(&mut c.stream, &mut c.wbuf) {
        c.dead = true;
    }
}

/// Opens a process's stdin fifo for reading without waiting for a writer.
fn open_stdin(path: &str) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_empty() {
        return None;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()
}

/// Where a process's stream goes: a fifo (a path, or `fifo://`), or a
/// log file (`file://`, appended to). `binary://` is refused at create.
fn sink(path: &str, spill: PathBuf) -> Option<FifoSink> {
    if path.is_empty() {
        return None;
    }
    if let Some(file) = path.strip_prefix("file://") {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .ok()?;
        return Some(FifoSink::new(f, spill, crate::fifo::SPILL_LIMIT));
    }
    let fifo = path.strip_prefix("fifo://").unwrap_or(path);
    FifoSink::open(std::path::Path::new(fifo), spill).ok()
}

fn status(code: Code, m: impl Into<String>) -> Status {
    Status::new(code, m)
}

fn empty() -> Result<Vec<u8>, Status> {
    Ok(Vec::new())
}

impl Shim {
    /// The shim of a created container: its listener and the connection
    /// whose `Create` is answered now, from the creating process's report.
    pub(crate) fn adopt(args: ShimArgs) -> io::Result<Shim> {
        let listener = UnixListener::from(crate::sys::adopt_fd(args.listener)?);
        listener.set_nonblocking(true)?;
        let mut conns = Vec::new();
        if let Some(fd) = args.conn {
            conns.push(Conn::new(UnixStream::from(crate::sys::adopt_fd(fd)?)));
        }
        let dir = args.bundle.clone();
        let terminal = args.terminal;
        let sinks = [
            sink(&args.stdout, dir.join(".stdout.spill")),
            if terminal {
                None
            } else {
                sink(&args.stderr, dir.join(".stderr.spill"))
            },
        ];
        let stdin = open_stdin(&args.stdin);
        let publisher = Publisher::new(args.ttrpc_address.clone(), args.ns.clone());
        Ok(Shim {
            listener,
            conns,
            publisher,
            sinks,
            stdin,
            execs: Vec::new(),
            waiters: Vec::new(),
            deleted: false,
            shutdown: false,
            next_spill: 0,
            args,
        })
    }

    /// The report the creating process left in the sync pipe.
    pub(crate) fn take_ready(&mut self) -> Option<proto::monitor::Ready> {
        let fd = self.args.ready.take()?;
        let mut f = std::fs::File::from(crate::sys::adopt_fd(fd).ok()?);
        proto::read_frame(&mut f).ok()
    }

    pub(crate) fn slots<'a>(
        &'a self,
        slots: &mut Vec<ShimSlot>,
        fds: &mut Vec<nix::poll::PollFd<'a>>,
    ) {
        use nix::poll::{PollFd, PollFlags};
        slots.push(ShimSlot::Listener);
        fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        for (i, c) in self.conns.iter().enumerate() {
            let mut ev = PollFlags::POLLIN;
            if !c.wbuf.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            slots.push(ShimSlot::Conn(i));
            fds.push(PollFd::new(c.stream.as_fd(), ev));
        }
        if let Some(c) = &self.publisher.conn {
            let mut ev = PollFlags::POLLIN;
            if !c.wbuf.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            slots.push(ShimSlot::Events);
            fds.push(PollFd::new(c.stream.as_fd(), ev));
        }
        for (i, s) in self.sinks.iter().enumerate() {
            if let Some(fd) = s.as_ref().filter(|s| s.pending()).and_then(FifoSink::fd) {
                slots.push(ShimSlot::Sink(i));
                fds.push(PollFd::new(fd, PollFlags::POLLOUT));
            }
        }
        for (e, x) in self.execs.iter().enumerate() {
            for (i, s) in x.sinks.iter().enumerate() {
                if let Some(fd) = s.as_ref().filter(|s| s.pending()).and_then(FifoSink::fd) {
                    slots.push(ShimSlot::ExecSink(e, i));
                    fds.push(PollFd::new(fd, PollFlags::POLLOUT));
                }
            }
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.publisher.deadline()
    }

    /// The shim is done (deleted and shut down) once its answers are out.
    pub(crate) fn finished(&self) -> bool {
        self.shutdown && self.conns.iter().all(|c| c.wbuf.is_empty() || c.dead)
    }

    fn publish(&mut self, topic: &str, name: &str, event: Enc) {
        self.publisher.publish(topic, name, event);
    }

    /// Output of init (0 stdout, 1 stderr; a terminal's is stdout).
    pub(crate) fn output(&mut self, i: usize, data: &[u8]) {
        if let Some(s) = self.sinks[i].as_mut() {
            s.write(data);
        }
    }

    /// Output of a started exec (`id` the monitor's).
    pub(crate) fn exec_output(&mut self, id: u32, i: usize, data: &[u8]) -> bool {
        match self.execs.iter_mut().find(|x| x.started == Some(id)) {
            Some(x) => {
                let i = if x.req.terminal { 0 } else { i };
                if let Some(s) = x.sinks[i].as_mut() {
                    s.write(data);
                }
                true
            }
            None => false,
        }
    }

    /// Records what the sinks had to drop (their spill full), beside the
    /// exit record: `output-dropped`, one `NAME BYTES` line per stream.
    fn record_drops(&self) {
        let mut text = String::new();
        let named = [("stdout", &self.sinks[0]), ("stderr", &self.sinks[1])];
        for (name, s) in named {
            if let Some(n) = s.as_ref().map(FifoSink::dropped).filter(|n| *n > 0) {
                text.push_str(&format!("{name} {n}\n"));
            }
        }
        for x in &self.execs {
            for (name, s) in [("stdout", &x.sinks[0]), ("stderr", &x.sinks[1])] {
                if let Some(n) = s.as_ref().map(FifoSink::dropped).filter(|n| *n > 0) {
                    text.push_str(&format!("exec {} {name} {n}\n", x.exec_id));
                }
            }
        }
        if !text.is_empty() {
            let _ = std::fs::write(self.args.bundle.join("output-dropped"), text);
        }
    }

    /// Init's output ended: its fifos close once drained.
    pub(crate) fn output_done(&mut self, i: usize) {
        if let Some(s) = self.sinks[i].as_mut() {
            s.finish();
        }
        if self.args.terminal {
            if let Some(s) = self.sinks[1].as_mut() {
                s.finish();
            }
        }
    }

    fn publish_exit(&mut self, exec_id: &str, pid: u32, code: u32, at: i64) {
        let id = if exec_id.is_empty() {
            self.args.id.clone()
        } else {
            exec_id.to_string()
        };
        let ev = Enc::new()
            .str(1, &self.args.id)
            .str(2, &id)
            .uint(3, u64::from(pid))
            .uint(4, u64::from(code))
            .msg(5, pb::timestamp(at));
        self.publish("/tasks/exit", "TaskExit", ev);
    }

    /// Answers whoever waits for `exec_id` (`""`: init).
    fn wake(&mut self, exec_id: &str, code: u32, at: i64) {
        let payload = Enc::new()
            .uint(1, u64::from(code))
            .msg(2, pb::timestamp(at))
            .finish();
        let mut k = 0;
        while k < self.waiters.len() {
            if self.waiters[k].exec_id == exec_id {
                let w = self.waiters.remove(k);
                if let Some(c) = self.conns.get_mut(w.conn) {
                    c.respond(w.stream, &Ok(payload.clone()));
                }
                continue;
            }
            k += 1;
        }
    }
}

impl Monitor {
    fn shim_mut(&mut self) -> &mut Shim {
        // Only called where the shim is known to be there.
        self.shim.as_deref_mut().unwrap_or_else(|| unreachable!())
    }

    /// One ready shim slot.
    pub(super) fn shim_ready(&mut self, slot: ShimSlot, buf: &mut [u8]) {
        let Some(shim) = self.shim.as_deref_mut() else {
            return;
        };
        match slot {
            ShimSlot::Listener => loop {
                match shim.listener.accept() {
                    Ok((s, _)) => shim.conns.push(Conn::new(s)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            },
            ShimSlot::Conn(i) => {
                if let Some(c) = shim.conns.get_mut(i) {
                    read_into(c);
                }
                self.shim_serve(i);
            }
            ShimSlot::Events => {
                shim.publisher.read();
                shim.publisher.flush();
            }
            ShimSlot::Sink(i) => {
                if let Some(s) = shim.sinks[i].as_mut() {
                    s.drain();
                }
            }
            ShimSlot::ExecSink(e, i) => {
                if let Some(s) = shim.execs.get_mut(e).and_then(|x| x.sinks[i].as_mut()) {
                    s.drain();
                }
            }
            ShimSlot::Stdin => {
                let Some(f) = shim.stdin.as_mut() else {
                    return;
                };
                // Polled only while nothing waits for the container's
                // stdin: what is read here is all it holds.
                match f.read(buf) {
                    Ok(0) => {
                        // Its writer closed: the end of the container's input.
                        shim.stdin = None;
                        if self.tty.is_none() {
                            self.stdin_eof = true;
                        }
                        self.flush_stdin();
                    }
                    Ok(n) => {
                        if self.stdin.is_some() {
                            self.stdin_pending.extend_from_slice(&buf[..n]);
                            self.flush_stdin();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => shim.stdin = None,
                }
            }
            ShimSlot::ExecStdin(e) => {
                let Some(x) = shim.execs.get_mut(e) else {
                    return;
                };
                let Some(f) = x.stdin.as_mut() else {
                    return;
                };
                match f.read(buf) {
                    Ok(0) => {
                        x.stdin = None;
                        x.stdin_eof = true;
                    }
                    Ok(n) => x.pending.extend_from_slice(&buf[..n]),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        x.stdin = None;
                        x.stdin_eof = true;
                    }
                }
                self.exec_stdin_flush(e);
            }
            ShimSlot::ExecStdinOut(e) => self.exec_stdin_flush(e),
        }
    }

    /// Moves an exec's pending input into its stdin pipe, as far as it
    /// takes it; closes the pipe after the input's end.
    fn exec_stdin_flush(&mut self, e: usize) {
        let Some(x) = self.shim.as_deref_mut().and_then(|s| s.execs.get_mut(e)) else {
            return;
        };
        let (started, terminal) = (x.started, x.req.terminal);
        let Some(m) = self.execs.iter_mut().find(|m| Some(m.id) == started) else {
            // The process is gone: its input has nowhere to go.
            x.pending.clear();
            return;
        };
        match m.stdin.as_mut() {
            Some(pipe) => {
                if !crate::sys::write_ready(pipe, &mut x.pending) {
                    // It closed its stdin.
                    x.pending.clear();
                    if !terminal {
                        m.stdin = None;
                    }
                }
            }
            None => x.pending.clear(),
        }
        if x.stdin_eof && x.pending.is_empty() && !terminal {
            m.stdin = None;
        }
    }

    /// The stdin slots, which depend on the monitor's state: a fifo is read
    /// only when what was read from it before is in the process's stdin.
    pub(super) fn shim_stdin_slots<'a>(
        &'a self,
        shim: &'a Shim,
        slots: &mut Vec<ShimSlot>,
        fds: &mut Vec<nix::poll::PollFd<'a>>,
    ) {
        use nix::poll::{PollFd, PollFlags};
        if let (Some(f), true) = (&shim.stdin, self.stdin_pending.is_empty()) {
            slots.push(ShimSlot::Stdin);
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
        }
        for (e, x) in shim.execs.iter().enumerate() {
            let Some(id) = x.started else {
                continue;
            };
            if !x.pending.is_empty() {
                let pipe = self
                    .execs
                    .iter()
                    .find(|m| m.id == id)
                    .and_then(|m| m.stdin.as_ref());
                if let Some(p) = pipe {
                    slots.push(ShimSlot::ExecStdinOut(e));
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLOUT));
                }
            } else if let Some(f) = &x.stdin {
                slots.push(ShimSlot::ExecStdin(e));
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
        }
    }

    /// After the slots: answers go out, events too, dead connections go.
    pub(super) fn shim_turn(&mut self) {
        let Some(shim) = self.shim.as_deref_mut() else {
            return;
        };
        shim.publisher.send();
        shim.publisher.flush();
        for c in shim.conns.iter_mut() {
            flush_conn(c);
        }
        if shim.conns.iter().any(|c| c.dead) {
            // Waiters keep their connection's index: renumber them.
            let mut map = Vec::new();
            let mut next = 0;
            for c in &shim.conns {
                map.push((!c.dead).then(|| {
                    next += 1;
                    next - 1
                }));
            }
            shim.waiters
                .retain_mut(|w| match map.get(w.conn).copied().flatten() {
                    Some(n) => {
                        w.conn = n;
                        true
                    }
                    None => false,
                });
            shim.conns.retain(|c| !c.dead);
        }
    }

    fn shim_serve(&mut self, i: usize) {
        loop {
            let Some(shim) = self.shim.as_deref_mut() else {
                return;
            };
            let Some(c) = shim.conns.get_mut(i) else {
                return;
            };
            let frame = match ttrpc::take_frame(&mut c.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(_) => {
                    c.dead = true;
                    return;
                }
            };
            if frame.kind != ttrpc::REQUEST {
                continue;
            }
            let result = match pb::RpcRequest::decode(&frame.data) {
                Err(e) => Some(Err(status(Code::InvalidArgument, e))),
                Ok(r) if r.service != pb::TASK_SERVICE => Some(Err(status(
                    Code::Unimplemented,
                    format!("service {} is not implemented", r.service),
                ))),
                Ok(r) => match Method::of(&r.method) {
                    None => Some(Err(status(
                        Code::Unimplemented,
                        format!("{}/{} is not implemented", r.service, r.method),
                    ))),
                    Some(m) => match TaskRequest::decode(m, &r.payload) {
                        Err(e) => Some(Err(status(Code::InvalidArgument, e))),
                        Ok(req) => self.task(i, frame.stream, m, req),
                    },
                },
            };
            if let Some(r) = result {
                if let Some(c) = self.shim_mut().conns.get_mut(i) {
                    c.respond(frame.stream, &r);
                }
            }
        }
    }

    fn init_exit(&self) -> Option<(u32, i64)> {
        self.exit
            .as_ref()
            .map(|r| (r.code.max(0) as u32, r.finished_at))
    }

    /// One task request; `None` when the answer comes later (Wait).
    fn task(
        &mut self,
        conn: usize,
        stream: u32,
        method: Method,
        req: TaskRequest,
    ) -> Option<Result<Vec<u8>, Status>> {
        let id = self.shim_mut().args.id.clone();
        if !req.id.is_empty() && req.id != id && method != Method::Shutdown {
            return Some(Err(status(
                Code::NotFound,
                format!("task {} not found (this shim serves {id})", req.id),
            )));
        }
        let exec = (!req.exec_id.is_empty()).then(|| req.exec_id.clone());
        Some(match method {
            Method::Create => Err(status(
                Code::AlreadyExists,
                format!("task {id} is created already"),
            )),
            Method::Connect => Ok(Enc::new()
                .uint(1, u64::from(std::process::id()))
                .uint(2, self.init_pid.max(0) as u64)
                .str(3, env!("CARGO_PKG_VERSION"))
                .finish()),
            Method::State => self.task_state(exec.as_deref()),
            Method::Start => match exec {
                None => self.task_start(),
                Some(e) => self.exec_start(&e),
            },
            Method::Kill => self.task_kill(exec.as_deref(), req.signal, req.all),
            Method::Wait => {
                let done = match &exec {
                    None => self.init_exit(),
                    Some(e) => match self.shim_mut().execs.iter().find(|x| &x.exec_id == e) {
                        None => return Some(Err(not_found_exec(e))),
                        Some(x) => x.exit,
                    },
                };
                match done {
                    Some((code, at)) => Ok(Enc::new()
                        .uint(1, u64::from(code))
                        .msg(2, pb::timestamp(at))
                        .finish()),
                    None => {
                        self.shim_mut().waiters.push(Waiter {
                            conn,
                            stream,
                            exec_id: exec.unwrap_or_default(),
                        });
                        return None;
                    }
                }
            }
            Method::Delete => match exec {
                None => self.task_delete(),
                Some(e) => self.exec_delete(&e),
            },
            Method::Exec => self.exec_add(req),
            Method::Pids => match self.container.as_ref() {
                Some(c) => {
                    let mut e = Enc::new();
                    for pid in c.processes() {
                        e = e.msg(1, Enc::new().uint(1, pid.max(0) as u64));
                    }
                    Ok(e.finish())
                }
                None => Ok(Vec::new()),
            },
            Method::Pause | Method::Resume => match self.freeze(method == Method::Pause) {
                proto::monitor::Response::Ok => empty(),
                proto::monitor::Response::Error(e) => {
                    Err(status(Code::FailedPrecondition, e.message))
                }
                _ => empty(),
            },
            Method::Checkpoint => Err(status(
                Code::Unimplemented,
                "checkpoint is not implemented by contd",
            )),
            Method::ResizePty => self.task_resize(exec.as_deref(), req.width, req.height),
            Method::CloseIo => {
                if req.close_stdin {
                    // What the writer put in the fifo before it asked for
                    // the close goes in first (ctr writes, closes its end,
                    // then calls CloseIO: the fifo may still hold a pipe's
                    // worth).
                    let mut buf = [0u8; 16 * 1024];
                    match exec {
                        None => {
                            let mut rest = Vec::new();
                            let shim = self.shim_mut();
                            if let Some(f) = shim.stdin.as_mut() {
                                crate::sys::read_ready(f, &mut rest, &mut buf);
                            }
                            shim.stdin = None;
                            if self.stdin.is_some() {
                                self.stdin_pending.extend_from_slice(&rest);
                            }
                            if self.tty.is_none() {
                                self.stdin_eof = true;
                            }
                            self.flush_stdin();
                        }
                        Some(e) => {
                            let shim = self.shim_mut();
                            let Some(k) = shim.execs.iter().position(|x| x.exec_id == e) else {
                                return Some(Err(not_found_exec(&e)));
                            };
                            let x = &mut shim.execs[k];
                            if let Some(f) = x.stdin.as_mut() {
                                crate::sys::read_ready(f, &mut x.pending, &mut buf);
                            }
                            x.stdin = None;
                            x.stdin_eof = true;
                            self.exec_stdin_flush(k);
                        }
                    }
                }
                empty()
            }
            Method::Update => self.task_update(req.any),
            Method::Stats => self.task_stats(),
            Method::Shutdown => {
                let shim = self.shim_mut();
                if shim.deleted || req.now {
                    shim.shutdown = true;
                }
                empty()
            }
        })
    }

    fn task_state(&mut self, exec: Option<&str>) -> Result<Vec<u8>, Status> {
        let shim = self.shim.as_deref().unwrap_or_else(|| unreachable!());
        let args = &shim.args;
        if let Some(e) = exec {
            let x = shim
                .execs
                .iter()
                .find(|x| x.exec_id == e)
                .ok_or_else(|| not_found_exec(e))?;
            let st = match (x.started, x.exit) {
                (_, Some(_)) => STATUS_STOPPED,
                (Some(_), None) => STATUS_RUNNING,
                (None, None) => STATUS_CREATED,
            };
            let (code, at) = x.exit.unwrap_or((0, 0));
            // As runc's shim: an exec's state carries its own id.
            let mut m = Enc::new()
                .str(1, e)
                .str(2, &args.bundle.display().to_string())
                .uint(3, u64::from(x.pid))
                .uint(4, st)
                .str(5, &x.req.stdin)
                .str(6, &x.req.stdout)
                .str(7, &x.req.stderr)
                .bool(8, x.req.terminal)
                .uint(9, u64::from(code));
            if x.exit.is_some() {
                m = m.msg(10, pb::timestamp(at));
            }
            return Ok(m.str(11, e).finish());
        }
        let st = match self.state().status {
            proto::Status::Created => STATUS_CREATED,
            proto::Status::Running => STATUS_RUNNING,
            proto::Status::Paused => STATUS_PAUSED,
            _ => STATUS_STOPPED,
        };
        let mut m = Enc::new()
            .str(1, &args.id)
            .str(2, &args.bundle.display().to_string())
            .uint(3, self.init_pid.max(0) as u64)
            .uint(4, st)
            .str(5, &args.stdin)
            .str(6, &args.stdout)
            .str(7, &args.stderr)
            .bool(8, args.terminal);
        if let Some((code, at)) = self.init_exit() {
            m = m.uint(9, u64::from(code)).msg(10, pb::timestamp(at));
        }
        Ok(m.finish())
    }

    fn task_start(&mut self) -> Result<Vec<u8>, Status> {
        match self.start_container() {
            proto::monitor::Response::Ok => {
                let pid = self.init_pid.max(0) as u64;
                let id = self.shim_mut().args.id.clone();
                self.shim_mut().publish(
                    "/tasks/start",
                    "TaskStart",
                    Enc::new().str(1, &id).uint(2, pid),
                );
                Ok(Enc::new().uint(1, pid).finish())
            }
            proto::monitor::Response::Error(e) => Err(status(Code::FailedPrecondition, e.message)),
            _ => Err(status(Code::Internal, "unexpected answer to start")),
        }
    }

    fn task_kill(&mut self, exec: Option<&str>, signal: u32, all: bool) -> Result<Vec<u8>, Status> {
        let signal = i32::try_from(signal)
            .ok()
            .filter(|s| (1..=64).contains(s))
            .ok_or_else(|| status(Code::InvalidArgument, format!("invalid signal {signal}")))?;
        if let Some(e) = exec {
            let shim = self.shim.as_deref().unwrap_or_else(|| unreachable!());
            let x = shim
                .execs
                .iter()
                .find(|x| x.exec_id == e)
                .ok_or_else(|| not_found_exec(e))?;
            // Reaped already (its exit may wait for its output): its pid
            // may be another process's by now.
            let running = x.exit.is_none()
                && x.started
                    .is_some_and(|id| self.execs.iter().any(|m| m.id == id && m.code.is_none()));
            if !running {
                return Err(status(
                    Code::NotFound,
                    format!("process {e} is not running"),
                ));
            }
            return crate::sys::kill(x.pid as i32, signal)
                .map(|()| Vec::new())
                .map_err(|err| status(Code::Internal, format!("signal process {e}: {err}")));
        }
        if self.exit.is_some() || self.reaped.is_some() {
            return Err(status(Code::NotFound, "process already finished"));
        }
        let Some(c) = self.container.as_ref() else {
            return Err(status(Code::NotFound, "container is deleted"));
        };
        let r = if all {
            c.kill_all(signal)
        } else {
            c.kill(signal)
        };
        r.map(|()| Vec::new())
            .map_err(|e| status(Code::Internal, e.to_string()))
    }

    fn task_resize(
        &mut self,
        exec: Option<&str>,
        width: u32,
        height: u32,
    ) -> Result<Vec<u8>, Status> {
        let (rows, cols) = (
            height.min(u32::from(u16::MAX)) as u16,
            width.min(u32::from(u16::MAX)) as u16,
        );
        let master = match exec {
            None => self.tty.as_ref().map(|m| m.as_fd()),
            Some(e) => {
                let started = self
                    .shim
                    .as_deref()
                    .and_then(|s| s.execs.iter().find(|x| x.exec_id == e))
                    .ok_or_else(|| not_found_exec(e))?
                    .started;
                self.execs
                    .iter()
                    .find(|m| Some(m.id) == started && m.tty)
                    .and_then(|m| m.stdin.as_ref().map(|f| f.as_fd()))
            }
        };
        match master {
            // As runc's shim: resizing what has no terminal is no error.
            None => empty(),
            Some(fd) => runtime_core::set_winsize(fd, rows, cols)
                .map(|()| Vec::new())
                .map_err(|e| status(Code::Internal, format!("resize: {e}"))),
        }
    }

    fn task_update(&mut self, any: Option<Any>) -> Result<Vec<u8>, Status> {
        let any = any.ok_or_else(|| status(Code::InvalidArgument, "resources: missing"))?;
        let res: oci_spec::runtime::LinuxResources = serde_json::from_slice(&any.value)
            .map_err(|e| status(Code::InvalidArgument, format!("resources: {e}")))?;
        if self.exit.is_some() || self.reaped.is_some() {
            return Err(status(Code::NotFound, "process already finished"));
        }
        let c = self
            .container
            .as_ref()
            .ok_or_else(|| status(Code::NotFound, "container is deleted"))?;
        c.update(&res)
            .map(|()| Vec::new())
            .map_err(|e| status(Code::InvalidArgument, format!("update: {e}")))
    }

    fn task_stats(&mut self) -> Result<Vec<u8>, Status> {
        let c = self
            .container
            .as_ref()
            .ok_or_else(|| status(Code::NotFound, "container is deleted"))?;
        let st = c.stats();
        let (url, metrics) = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (
                "io.containerd.cgroups.v2.Metrics",
                Enc::new()
                    .msg(
                        1,
                        Enc::new().uint(1, st.pids_current).uint(2, st.pids_limit),
                    )
                    .msg(2, Enc::new().uint(1, st.cpu_usage_ns / 1000))
                    .msg(
                        4,
                        Enc::new()
                            .uint(32, st.memory_usage)
                            .uint(33, st.memory_limit),
                    ),
            )
        } else {
            (
                "io.containerd.cgroups.v1.Metrics",
                Enc::new()
                    .msg(
                        2,
                        Enc::new().uint(1, st.pids_current).uint(2, st.pids_limit),
                    )
                    .msg(3, Enc::new().msg(1, Enc::new().uint(1, st.cpu_usage_ns)))
                    .msg(
                        4,
                        Enc::new().msg(
                            33,
                            Enc::new().uint(1, st.memory_limit).uint(2, st.memory_usage),
                        ),
                    ),
            )
        };
        Ok(Enc::new().msg(1, Any::enc(url, &metrics.finish())).finish())
    }

    fn task_delete(&mut self) -> Result<Vec<u8>, Status> {
        if self.shim_mut().deleted {
            return Err(status(Code::NotFound, "task is deleted already"));
        }
        if self.exit.is_none() {
            if self.started_at.is_some() {
                return Err(status(
                    Code::FailedPrecondition,
                    "the task is running: kill it first",
                ));
            }
            // Created, never started: nothing of the user's ran.
            if let Some(c) = self.container.as_ref() {
                let _ = c.kill(libc::SIGKILL);
            }
            self.await_init_exit();
        }
        let (code, at) = self.init_exit().unwrap_or((0, proto::time::now_nanos()));
        let pid = self.init_pid.max(0) as u32;
        if let proto::monitor::Response::Error(e) = self.release() {
            return Err(status(Code::Internal, e.message));
        }
        let shim = self.shim_mut();
        shim.record_drops();
        for s in shim.sinks.iter_mut().flatten() {
            s.close();
        }
        for x in shim.execs.iter_mut() {
            for s in x.sinks.iter_mut().flatten() {
                s.close();
            }
        }
        shim.stdin = None;
        if shim.args.rootfs_mounted {
            crate::shim::unmount_rootfs(&shim.args.bundle);
        }
        shim.deleted = true;
        let ev = Enc::new()
            .str(1, &shim.args.id)
            .uint(2, u64::from(pid))
            .uint(3, u64::from(code))
            .msg(4, pb::timestamp(at));
        shim.publish("/tasks/delete", "TaskDelete", ev);
        Ok(Enc::new()
            .uint(1, u64::from(pid))
            .uint(2, u64::from(code))
            .msg(3, pb::timestamp(at))
            .finish())
    }

    /// Blocks until init is reaped (it was just SIGKILLed), at most 10 s.
    fn await_init_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.reaped.is_none() && self.exit.is_none() && Instant::now() < deadline {
            let _ = nix::poll::poll(
                &mut [nix::poll::PollFd::new(
                    self.sigfd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )],
                nix::poll::PollTimeout::from(100u16),
            );
            self.reap();
        }
        if self.reaped.is_some() {
            self.finalize();
        }
    }

    fn exec_add(&mut self, req: TaskRequest) -> Result<Vec<u8>, Status> {
        if self.exit.is_some() || self.reaped.is_some() {
            return Err(status(Code::FailedPrecondition, "the task has exited"));
        }
        let shim = self.shim_mut();
        if shim.execs.iter().any(|x| x.exec_id == req.exec_id) {
            return Err(status(
                Code::AlreadyExists,
                format!("exec {} exists already", req.exec_id),
            ));
        }
        let spec = req
            .any
            .as_ref()
            .ok_or_else(|| status(Code::InvalidArgument, "spec: missing"))?;
        if spec.type_url != PROCESS_TYPE && !spec.type_url.ends_with("/Process") {
            return Err(status(
                Code::InvalidArgument,
                format!("spec: {} is not an OCI process", spec.type_url),
            ));
        }
        serde_json::from_slice::<oci_spec::runtime::Process>(&spec.value)
            .map_err(|e| status(Code::InvalidArgument, format!("spec: {e}")))?;
        let dir = shim.args.bundle.clone();
        let n = shim.next_spill;
        shim.next_spill += 1;
        let exec_id = req.exec_id.clone();
        let sinks = [
            sink(&req.stdout, dir.join(format!(".exec{n}.stdout.spill"))),
            if req.terminal {
                None
            } else {
                sink(&req.stderr, dir.join(format!(".exec{n}.stderr.spill")))
            },
        ];
        let stdin = open_stdin(&req.stdin);
        shim.execs.push(ShimExec {
            exec_id: exec_id.clone(),
            req,
            started: None,
            pid: 0,
            exit: None,
            sinks,
            stdin,
            pending: Vec::new(),
            stdin_eof: false,
        });
        let ev = Enc::new().str(1, &shim.args.id).str(2, &exec_id);
        shim.publish("/tasks/exec-added", "TaskExecAdded", ev);
        empty()
    }

    fn exec_start(&mut self, exec_id: &str) -> Result<Vec<u8>, Status> {
        let shim = self.shim.as_deref().unwrap_or_else(|| unreachable!());
        let x = shim
            .execs
            .iter()
            .find(|x| x.exec_id == exec_id)
            .ok_or_else(|| not_found_exec(exec_id))?;
        if x.started.is_some() {
            return Err(status(
                Code::FailedPrecondition,
                format!("exec {exec_id} is started already"),
            ));
        }
        let spec = x
            .req
            .any
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let terminal = x.req.terminal;
        let stdin = !x.req.stdin.is_empty();
        if self.exit.is_some() || self.reaped.is_some() || self.started_at.is_none() {
            return Err(status(Code::FailedPrecondition, "the task is not running"));
        }
        let process: oci_spec::runtime::Process = serde_json::from_slice(&spec)
            .map_err(|e| status(Code::InvalidArgument, format!("spec: {e}")))?;
        let (id, pid) = self
            .start_process(0, process, terminal, stdin, None)
            .map_err(|e| status(Code::Internal, e))?;
        let shim = self.shim_mut();
        let cid = shim.args.id.clone();
        if let Some(x) = shim.execs.iter_mut().find(|x| x.exec_id == exec_id) {
            x.started = Some(id);
            x.pid = pid.max(0) as u32;
        }
        let ev = Enc::new()
            .str(1, &cid)
            .str(2, exec_id)
            .uint(3, pid.max(0) as u64);
        shim.publish("/tasks/exec-started", "TaskExecStarted", ev);
        Ok(Enc::new().uint(1, pid.max(0) as u64).finish())
    }

    fn exec_delete(&mut self, exec_id: &str) -> Result<Vec<u8>, Status> {
        let shim = self.shim_mut();
        let k = shim
            .execs
            .iter()
            .position(|x| x.exec_id == exec_id)
            .ok_or_else(|| not_found_exec(exec_id))?;
        let x = &shim.execs[k];
        if x.started.is_some() && x.exit.is_none() {
            return Err(status(
                Code::FailedPrecondition,
                format!("exec {exec_id} is running: kill it first"),
            ));
        }
        let mut x = shim.execs.remove(k);
        for s in x.sinks.iter_mut().flatten() {
            s.close();
        }
        // Waits for an exec that never started end with it.
        let mut w = 0;
        while w < shim.waiters.len() {
            if shim.waiters[w].exec_id == exec_id {
                let waiter = shim.waiters.remove(w);
                if let Some(c) = shim.conns.get_mut(waiter.conn) {
                    c.respond(waiter.stream, &Err(not_found_exec(exec_id)));
                }
                continue;
            }
            w += 1;
        }
        let (code, at) = x.exit.unwrap_or((0, proto::time::now_nanos()));
        Ok(Enc::new()
            .uint(1, u64::from(x.pid))
            .uint(2, code.into())
            .msg(3, pb::timestamp(at))
            .finish())
    }

    /// A process of the monitor's ended (`code`, 128 + signal if killed);
    /// called for shim execs once their output is drained.
    pub(super) fn shim_exec_exited(&mut self, id: u32, code: i32) -> bool {
        let Some(shim) = self.shim.as_deref_mut() else {
            return false;
        };
        let Some(x) = shim.execs.iter_mut().find(|x| x.started == Some(id)) else {
            return false;
        };
        let at = proto::time::now_nanos();
        let code = code.max(0) as u32;
        x.exit = Some((code, at));
        for s in x.sinks.iter_mut().flatten() {
            s.finish();
        }
        x.stdin = None;
        let (exec_id, pid) = (x.exec_id.clone(), x.pid);
        shim.publish_exit(&exec_id, pid, code, at);
        shim.wake(&exec_id, code, at);
        true
    }

    /// Init's exit record is written: containerd hears of it.
    pub(super) fn shim_init_exited(&mut self) {
        let Some((code, at)) = self.init_exit() else {
            return;
        };
        let pid = self.init_pid.max(0) as u32;
        let Some(shim) = self.shim.as_deref_mut() else {
            return;
        };
        for s in shim.sinks.iter_mut().flatten() {
            s.finish();
        }
        shim.stdin = None;
        shim.record_drops();
        shim.publish_exit("", pid, code, at);
        shim.wake("", code, at);
    }

    /// The container's OOM kill, for containerd.
    pub(super) fn shim_event(&mut self, ev: &MonitorEvent) {
        let Some(shim) = self.shim.as_deref_mut() else {
            return;
        };
        let id = shim.args.id.clone();
        match ev {
            MonitorEvent::Oom => shim.publish("/tasks/oom", "TaskOOM", Enc::new().str(1, &id)),
            MonitorEvent::Paused => {
                shim.publish("/tasks/paused", "TaskPaused", Enc::new().str(1, &id))
            }
            MonitorEvent::Resumed => {
                shim.publish("/tasks/resumed", "TaskResumed", Enc::new().str(1, &id))
            }
            _ => {}
        }
    }

    /// Answers the `Create` that made this monitor, and says so to
    /// containerd.
    pub(super) fn shim_created(&mut self) {
        let pid = self.init_pid.max(0) as u64;
        let Some(shim) = self.shim.as_deref_mut() else {
            return;
        };
        let ready = shim.take_ready();
        let stream = shim.args.create_stream;
        let answer = match ready {
            Some(proto::monitor::Ready::Created { .. } | proto::monitor::Ready::Started { .. }) => {
                Ok(Enc::new().uint(1, pid).finish())
            }
            Some(proto::monitor::Ready::Failed(e)) => Err(status(Code::Internal, e.message)),
            None => Ok(Enc::new().uint(1, pid).finish()),
        };
        let ok = answer.is_ok();
        if let Some(c) = shim.conns.first_mut() {
            c.respond(stream, &answer);
        }
        if ok {
            let a = &shim.args;
            let mut ev = Enc::new()
                .str(1, &a.id)
                .str(2, &a.bundle.display().to_string());
            for m in &a.rootfs {
                ev = ev.msg(3, m.enc());
            }
            let ev = ev
                .msg(
                    4,
                    Enc::new()
                        .str(1, &a.stdin)
                        .str(2, &a.stdout)
                        .str(3, &a.stderr)
                        .bool(4, a.terminal),
                )
                .uint(6, pid);
            shim.publish("/tasks/create", "TaskCreate", ev);
        }
    }

    /// Removes the shim's socket when the monitor leaves.
    pub(super) fn shim_cleanup(&mut self) {
        if let Some(shim) = self.shim.as_deref() {
            let _ = std::fs::remove_file(&shim.args.socket);
        }
    }
}

fn not_found_exec(e: &str) -> Status {
    status(Code::NotFound, format!("exec {e} not found"))
}

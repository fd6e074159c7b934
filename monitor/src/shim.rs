//! `containerd-shim-contd-v2`: contd-monitor as containerd's runtime v2
//! shim (runtime `io.containerd.contd.v2`). The binary is contd-monitor
//! itself, under that name (a link); containerd runs it:
//!
//! - `start` (cwd: the bundle) binds the task's ttrpc socket, writes its
//!   address to `address` in the bundle, starts the serving process (a
//!   detached contd-monitor, `--shim-serve`), prints the address and
//!   exits. If the task's shim already answers, it prints its address.
//! - `delete` (containerd cannot reach the shim) answers from the durable
//!   exit record — never an invented code —, ends a container whose
//!   monitor is gone, unmounts the rootfs and prints a `DeleteResponse`.
//! - `-v` prints the version; `-info` a `RuntimeInfo`.
//!
//! The serving process waits for `Create`, then becomes the container's
//! monitor: it creates the container (init is its child), re-executes
//! itself lean as every monitor does (see `handover`) and serves the
//! task API, `monitor.sock` and the container's I/O in one poll loop
//! (see `server::shim`).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::pb::{self, Code, Enc, Method, Mount, Status, TaskRequest};
use crate::{sys, ttrpc, Args};

/// containerd's name for this runtime.
pub(crate) const RUNTIME: &str = "io.containerd.contd.v2";

/// What the serving process knows of its task, passed on across the
/// re-executions as one JSON argument (`--shim`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ShimArgs {
    pub ns: String,
    pub id: String,
    pub bundle: PathBuf,
    /// containerd's main socket.
    pub address: String,
    /// Where events go (`TTRPC_ADDRESS`; empty: nowhere).
    pub ttrpc_address: String,
    /// The ttrpc socket this shim serves.
    pub socket: PathBuf,
    /// Its listening fd.
    pub listener: RawFd,
    /// The connection the `Create` came on (answered by the monitor).
    pub conn: Option<RawFd>,
    /// The read end of the creating process's report.
    pub ready: Option<RawFd>,
    /// The stream of that `Create`.
    pub create_stream: u32,
    pub rootfs: Vec<Mount>,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    /// The shim mounted `rootfs` into the bundle (and unmounts it).
    pub rootfs_mounted: bool,
}

impl ShimArgs {
    /// The fds the serving process keeps across a re-execution.
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        std::iter::once(self.listener)
            .chain(self.conn)
            .chain(self.ready)
            .collect()
    }
}

/// The flags containerd passes (Go's flag syntax: `-name value` or
/// `-name=value`), and the action.
#[derive(Debug, Default)]
struct Flags {
    namespace: String,
    address: String,
    id: String,
    bundle: Option<PathBuf>,
    action: String,
}

fn parse_flags(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            if f.action.is_empty() {
                f.action = a.clone();
            }
            continue;
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        // Boolean flags take no value.
        if matches!(name, "debug" | "v" | "version" | "info") {
            if name != "debug" {
                f.action = name.to_string();
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().cloned().ok_or(format!("-{name} needs a value"))?,
        };
        match name {
            "namespace" => f.namespace = value,
            "address" => f.address = value,
            "id" => f.id = value,
            "bundle" => f.bundle = Some(PathBuf::from(value)),
            // -publish-binary, -socket, -ttrpc-address...: not needed.
            _ => {}
        }
    }
    Ok(f)
}

/// Entry point under the shim's name.
pub(crate) fn main(argv: &[String]) -> ExitCode {
    let f = match parse_flags(argv) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-contd-v2: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match f.action.as_str() {
        "v" | "version" => {
            println!(
                "containerd-shim-contd-v2:\n  Runtime: {RUNTIME}\n  Version: {}\n  contd-monitor",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        "info" => info(),
        "start" => start(&f),
        "delete" => delete(&f),
        other => Err(format!(
            "unknown action {other:?} (start, delete, -v or -info)"
        )),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerd-shim-contd-v2: {e}");
            ExitCode::from(1)
        }
    }
}

/// `-info`: a `RuntimeInfo` (name, version) on stdout; options on stdin
/// are read and ignored.
fn info() -> Result<(), String> {
    let mut options = Vec::new();
    let _ = io::stdin().read_to_end(&mut options);
    let msg = Enc::new()
        .str(1, RUNTIME)
        .msg(2, Enc::new().str(1, env!("CARGO_PKG_VERSION")))
        .finish();
    io::stdout()
        .write_all(&msg)
        .map_err(|e| format!("write: {e}"))
}

/// The task's socket: `s/<hash>` beside containerd's socket, short enough
/// for `sun_path` whatever the bundle's path.
fn socket_path(f: &Flags) -> PathBuf {
    let base = Path::new(&f.address)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/run/containerd"));
    let key = format!("{}\0{}\0{}", f.address, f.namespace, f.id);
    base.join("s").join(format!(
        "{:016x}{:016x}",
        fnv(key.as_bytes(), 0xcbf2_9ce4_8422_2325),
        fnv(key.as_bytes(), 0x6c62_272e_07bb_0142)
    ))
}

fn fnv(data: &[u8], seed: u64) -> u64 {
    data.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `start`: see the module docs.
fn start(f: &Flags) -> Result<(), String> {
    let bundle = std::env::current_dir().map_err(|e| format!("cwd: {e}"))?;
    if f.id.is_empty() {
        return Err("-id is required".into());
    }
    let socket = socket_path(f);
    let address = format!("unix://{}", socket.display());
    // The task's shim is up already: its address.
    if UnixStream::connect(&socket).is_ok() {
        println!("{address}");
        return Ok(());
    }
    let _ = std::fs::remove_file(&socket);
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let listener = UnixListener::bind(&socket).map_err(|e| format!("listen on {address}: {e}"))?;
    let _ = std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    std::fs::write(bundle.join("address"), &address)
        .map_err(|e| format!("write {}/address: {e}", bundle.display()))?;
    let args = ShimArgs {
        ns: f.namespace.clone(),
        id: f.id.clone(),
        bundle,
        address: f.address.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        socket: socket.clone(),
        listener: listener.as_raw_fd(),
        ..ShimArgs::default()
    };
    let json = serde_json::to_string(&args).map_err(|e| e.to_string())?;
    // Detached twice over: containerd's restart never reaches the shim,
    // and containerd's read of our stdout ends when we exit.
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        sys::Fork::Parent(pid) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            drop(listener);
            println!("{address}");
            Ok(())
        }
        sys::Fork::Child => {
            let _ = nix::unistd::setsid();
            match sys::fork() {
                Ok(sys::Fork::Child) => {}
                _ => sys::exit_now(0),
            }
            drop(sys::stdio_to_null());
            // What the shim says goes to containerd's log, through the
            // `log` fifo containerd reads in the bundle.
            if let Ok(log) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(args.bundle.join("log"))
            {
                let _ = nix::unistd::dup2_stderr(&log);
            }
            let _ = sys::set_cloexec(listener.as_raw_fd(), false);
            let _ = listener.into_raw_fd();
            let argv = [
                c"contd-monitor".to_owned(),
                c"--shim-serve".to_owned(),
                std::ffi::CString::new(json).unwrap_or_default(),
            ];
            let _ = nix::unistd::execv(c"/proc/self/exe", &argv);
            sys::exit_now(1)
        }
    }
}

/// A connection of the serving process before the container exists.
struct Conn {
    stream: UnixStream,
    rbuf: Vec<u8>,
    /// Readable at the last poll.
    ready: bool,
    /// Closed, or sent a frame beyond repair: dropped after this turn.
    dead: bool,
}

/// The serving process until `Create`: connect, create, and on a failed
/// create, delete and shutdown. Never returns.
pub(crate) fn serve(json: &str) -> ! {
    let args: ShimArgs = match serde_json::from_str(json) {
        Ok(a) => a,
        Err(_) => sys::exit_now(2),
    };
    sys::ignore_sigpipe();
    let _ = sys::set_subreaper();
    // The kernel's OOM killer should pick the container, not its shim.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-999");
    let listener = match sys::adopt_fd(args.listener) {
        Ok(fd) => UnixListener::from(fd),
        Err(_) => sys::exit_now(1),
    };
    let _ = sys::set_cloexec(args.listener, true);
    let mut conns: Vec<Conn> = Vec::new();
    // Set once a create failed: what Delete answers.
    let mut failed = false;
    loop {
        let mut fds = vec![nix::poll::PollFd::new(
            listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        for c in &conns {
            fds.push(nix::poll::PollFd::new(
                c.stream.as_fd(),
                nix::poll::PollFlags::POLLIN,
            ));
        }
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        for (c, r) in conns.iter_mut().zip(&ready[1..]) {
            c.ready = *r;
        }
        if ready[0] {
            if let Ok((s, _)) = listener.accept() {
                conns.push(Conn {
                    stream: s,
                    rbuf: Vec::new(),
                    ready: false,
                    dead: false,
                });
            }
        }
        for conn in conns.iter_mut() {
            if !conn.ready {
                continue;
            }
            let mut buf = [0u8; 16 * 1024];
            let n = conn.stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                conn.dead = true;
                continue;
            }
            conn.rbuf.extend_from_slice(&buf[..n]);
            loop {
                let frame = match ttrpc::take_frame(&mut conn.rbuf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => {
                        conn.dead = true;
                        break;
                    }
                };
                if frame.kind != ttrpc::REQUEST {
                    continue;
                }
                let req = pb::RpcRequest::decode(&frame.data);
                let method = req.as_ref().ok().and_then(|r| {
                    (r.service == pb::TASK_SERVICE)
                        .then(|| Method::of(&r.method))
                        .flatten()
                });
                let payload = req.map(|r| r.payload).unwrap_or_default();
                let result = match method {
                    None => Err(Status::new(Code::Unimplemented, "not implemented")),
                    Some(m) => match TaskRequest::decode(m, &payload) {
                        Err(e) => Err(Status::new(Code::InvalidArgument, e)),
                        Ok(req) => match m {
                            Method::Create if !failed => {
                                // Returns only if the create failed.
                                let e = create(&args, &conn.stream, frame.stream, req);
                                failed = true;
                                Err(e)
                            }
                            Method::Connect => Ok(Enc::new()
                                .uint(1, u64::from(std::process::id()))
                                .str(3, env!("CARGO_PKG_VERSION"))
                                .finish()),
                            Method::Delete if failed => Ok(Enc::new()
                                .msg(3, pb::timestamp(proto::time::now_nanos()))
                                .finish()),
                            Method::Shutdown => {
                                let _ = std::fs::remove_file(&args.socket);
                                respond(&mut conn.stream, frame.stream, &Ok(Vec::new()));
                                sys::exit_now(0)
                            }
                            _ => Err(Status::new(
                                Code::NotFound,
                                format!("task {} is not created", args.id),
                            )),
                        },
                    },
                };
                respond(&mut conn.stream, frame.stream, &result);
            }
        }
        conns.retain(|c| !c.dead);
    }
}

fn respond(s: &mut UnixStream, stream: u32, result: &Result<Vec<u8>, Status>) {
    let _ = s.write_all(&ttrpc::frame(
        stream,
        ttrpc::RESPONSE,
        &pb::rpc_response(result),
    ));
}

/// `Create`: mounts the rootfs, then becomes the container's monitor
/// (`server::run`, which re-executes into the serving monitor and answers
/// the create from there). Returns only if the create failed.
fn create(args: &ShimArgs, conn: &UnixStream, stream: u32, req: TaskRequest) -> Status {
    if !req.checkpoint.is_empty() {
        return Status::new(
            Code::Unimplemented,
            "restoring a checkpoint is not implemented",
        );
    }
    if [&req.stdout, &req.stderr]
        .iter()
        .any(|p| p.starts_with("binary:"))
    {
        return Status::new(
            Code::Unimplemented,
            "binary:// log URIs are not implemented by contd: use a fifo or file://",
        );
    }
    if req.id != args.id {
        return Status::new(
            Code::InvalidArgument,
            format!("id: {:?}, but this shim is {:?}'s", req.id, args.id),
        );
    }
    let mounted = match mount_rootfs(&args.bundle, &req.rootfs) {
        Ok(m) => m,
        Err(e) => return Status::new(Code::Internal, e),
    };
    let (ready_r, ready_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Status::new(Code::Internal, format!("pipe: {e}")),
    };
    let shim = ShimArgs {
        conn: Some(conn.as_raw_fd()),
        ready: Some(ready_r.as_raw_fd()),
        create_stream: stream,
        rootfs: req.rootfs.clone(),
        stdin: req.stdin.clone(),
        stdout: req.stdout.clone(),
        stderr: req.stderr.clone(),
        terminal: req.terminal,
        rootfs_mounted: mounted,
        ..args.clone()
    };
    let margs = Args {
        state_dir: args.bundle.clone(),
        bundle: Some(args.bundle.clone()),
        log_path: PathBuf::from("/dev/null"),
        id: args.id.clone(),
        sync_fd: ready_w.as_raw_fd(),
        linger: None,
        stdin: !req.stdin.is_empty() && !req.terminal,
        terminal: req.terminal,
        start: false,
        log_limits: crate::log::LogLimits::default(),
        adopt: None,
        seccomp_cache: None,
        cgroup: None,
        shim: Some(shim),
    };
    // On success this process serves the container from here on; it
    // comes back only if the create failed, with the reason in the pipe.
    let _ = crate::server::run(margs, ready_w);
    let mut f = std::fs::File::from(ready_r);
    let reason = match proto::read_frame::<proto::monitor::Ready>(&mut f) {
        Ok(proto::monitor::Ready::Failed(e)) => e.message,
        _ => "the container could not be created".into(),
    };
    if mounted {
        unmount_rootfs(&args.bundle);
    }
    let _ = std::fs::remove_file(args.bundle.join(crate::server::PID_FILE));
    Status::new(Code::Internal, reason)
}

/// Mount flags an option names, or `None` for data passed to the fs.
fn mount_flag(o: &str) -> Option<(bool, libc::c_ulong)> {
    Some(match o {
        "ro" => (true, libc::MS_RDONLY),
        "rw" => (false, libc::MS_RDONLY),
        "bind" => (true, libc::MS_BIND),
        "rbind" => (true, libc::MS_BIND | libc::MS_REC),
        "nosuid" => (true, libc::MS_NOSUID),
        "suid" => (false, libc::MS_NOSUID),
        "nodev" => (true, libc::MS_NODEV),
        "dev" => (false, libc::MS_NODEV),
        "noexec" => (true, libc::MS_NOEXEC),
        "exec" => (false, libc::MS_NOEXEC),
        "noatime" => (true, libc::MS_NOATIME),
        "relatime" => (true, libc::MS_RELATIME),
        "sync" => (true, libc::MS_SYNCHRONOUS),
        "remount" => (true, libc::MS_REMOUNT),
        "defaults" => (false, 0),
        _ => return None,
    })
}

/// Mounts containerd's rootfs mounts onto `<bundle>/rootfs`, in order;
/// `true` if anything was mounted. Undone if one fails.
fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> Result<bool, String> {
    if mounts.is_empty() {
        return Ok(false);
    }
    let target = bundle.join("rootfs");
    std::fs::create_dir_all(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
    for (n, m) in mounts.iter().enumerate() {
        let mut flags: libc::c_ulong = 0;
        let mut data = Vec::new();
        for o in &m.options {
            match mount_flag(o) {
                Some((true, f)) => flags |= f,
                Some((false, f)) => flags &= !f,
                None => data.push(o.as_str()),
            }
        }
        let data = data.join(",");
        let r = nix::mount::mount(
            Some(m.source.as_str()),
            &target,
            Some(m.kind.as_str()),
            nix::mount::MsFlags::from_bits_truncate(flags),
            (!data.is_empty()).then_some(data.as_str()),
        );
        // A bind mount takes `ro` only from a second, remounting call.
        let ro_bind = libc::MS_BIND | libc::MS_RDONLY;
        let r = r.and_then(|()| {
            if flags & ro_bind == ro_bind {
                nix::mount::mount(
                    None::<&str>,
                    &target,
                    None::<&str>,
                    nix::mount::MsFlags::from_bits_truncate(
                        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                    ),
                    None::<&str>,
                )
            } else {
                Ok(())
            }
        });
        if let Err(e) = r {
            for _ in 0..n {
                let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
            }
            return Err(format!(
                "mount {} ({}) on {}: {e}",
                m.source,
                m.kind,
                target.display()
            ));
        }
    }
    Ok(true)
}

/// Unmounts everything on `<bundle>/rootfs`.
pub(crate) fn unmount_rootfs(bundle: &Path) {
    let target = bundle.join("rootfs");
    // Stacked mounts come off one at a time; EINVAL once none is left.
    for _ in 0..64 {
        if nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}

/// `delete`: containerd could not reach the shim. Answers from the exit
/// record the monitor wrote; a container still running without its
/// monitor is killed (and reported so: 137); nothing is invented.
fn delete(f: &Flags) -> Result<(), String> {
    let bundle = match &f.bundle {
        Some(b) => b.clone(),
        None => std::env::current_dir().map_err(|e| format!("cwd: {e}"))?,
    };
    // A monitor that still lives but does not answer is ended first.
    if let Ok(s) = std::fs::read_to_string(bundle.join(crate::server::PID_FILE)) {
        if let Ok(pid) = s.trim().parse::<i32>() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline
                .split(|b| *b == 0)
                .any(|a| a == bundle.as_os_str().as_encoded_bytes())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let record: Option<proto::ExitRecord> = std::fs::read(bundle.join(crate::server::EXIT_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    let mut pid = 0;
    let (code, at) = match record {
        Some(r) => (r.code.max(0) as u64, r.finished_at),
        None => match runtime_core::Container::load(&bundle.join("runtime")) {
            Ok(c) => {
                pid = c.pid().max(0) as u64;
                let alive = c.status() != runtime_core::Status::Stopped;
                let _ = c.delete(true);
                if alive {
                    // Killed here: that is how it ended.
                    (128 + 9, proto::time::now_nanos())
                } else {
                    // It ended while no monitor watched: the code is not
                    // known, and 255 is containerd's word for that.
                    eprintln!(
                        "containerd-shim-contd-v2: task {} ended with no monitor to record its code",
                        f.id
                    );
                    (255, proto::time::now_nanos())
                }
            }
            Err(_) => (0, proto::time::now_nanos()),
        },
    };
    if let Ok(c) = runtime_core::Container::load(&bundle.join("runtime")) {
        pid = c.pid().max(0) as u64;
        let _ = c.delete(true);
    }
    unmount_rootfs(&bundle);
    let _ = std::fs::remove_file(socket_path(f));
    let msg = Enc::new()
        .uint(1, pid)
        .uint(2, code)
        .msg(3, pb::timestamp(at))
        .finish();
    io::stdout()
        .write_all(&msg)
        .map_err(|e| format!("write: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_in_both_go_spellings() {
        let f = parse_flags(&s(&[
            "-namespace",
            "k8s.io",
            "-address=/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-debug",
            "start",
        ]))
        .unwrap();
        assert_eq!(f.namespace, "k8s.io");
        assert_eq!(f.address, "/run/containerd/containerd.sock");
        assert_eq!(f.id, "abc");
        assert_eq!(f.action, "start");
        assert_eq!(parse_flags(&s(&["-v"])).unwrap().action, "v");
        assert!(parse_flags(&s(&["-id"])).is_err());
    }

    #[test]
    fn the_socket_is_short_and_per_task() {
        let f = |id: &str| Flags {
            namespace: "default".into(),
            address: "/run/containerd/containerd.sock".into(),
            id: id.into(),
            ..Flags::default()
        };
        let a = socket_path(&f("a"));
        assert!(a.starts_with("/run/containerd/s/"));
        assert!(a.as_os_str().len() < 100);
        assert_ne!(a, socket_path(&f("b")));
        assert_eq!(a, socket_path(&f("a")));
    }
}

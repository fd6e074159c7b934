//! contd-monitor through its own socket (no supervisor): terminals, attach
//! with detach keys and bounded queues, resize, exec, stop, stats. As root.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use proto::api::Stream;
use proto::monitor::{ExecRequest, Ready, Request, Response};
use proto::{ErrorKind, Hello};

/// The name of a file every hand-started monitor inherits an fd of.
const LEAKED: &str = "leaked-fd";

static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A monitor started by hand on a bundle of ours; killed and cleaned up on
/// drop.
struct Mon {
    dir: tempfile::TempDir,
    state: PathBuf,
    log: PathBuf,
    cgroup: String,
    init: i32,
    monitor: i32,
}

impl Mon {
    fn start(args: &[&str], edit: impl FnOnce(&mut serde_json::Value), extra: &[&str]) -> Mon {
        contd_tests::require_root();
        let dir = tempfile::Builder::new()
            .prefix("contd-m")
            .tempdir_in("/tmp")
            .unwrap();
        let rootfs = contd_tests::busybox_rootfs(dir.path());
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("bundle")).unwrap();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let cgroup = format!("contd-test-{}-mon{n}", std::process::id());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut spec = runtime_core::secure_default_spec(rootfs.to_str().unwrap(), &args);
        spec["linux"]["cgroupsPath"] = cgroup.clone().into();
        edit(&mut spec);
        std::fs::write(
            state.join("bundle/config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let log = dir.path().join("c.log");
        let (r, w) = nix::unistd::pipe().unwrap();
        let wfd = std::os::fd::AsRawFd::as_raw_fd(&w);
        // An fd contd would never hand over, left open across the exec as a
        // careless parent would: the monitor must not keep it.
        let leak = std::fs::File::create(dir.path().join(LEAKED)).unwrap();
        let leak_fd = std::os::fd::AsRawFd::as_raw_fd(&leak);
        let mut cmd = Command::new(contd_tests::bin_dir().join("contd-monitor"));
        cmd.arg("--state-dir")
            .arg(&state)
            .arg("--log-path")
            .arg(&log)
            .args(["--id", "m", "--sync-fd", "3"])
            .args(extra);
        // contd says when its spec asks for a terminal.
        if spec["process"]["terminal"] == true {
            cmd.arg("--terminal");
        }
        // SAFETY: dup2 only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(wfd, 3) < 0 || libc::dup2(leak_fd, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        drop((w, leak));
        let ready: Ready = proto::read_frame(&mut std::fs::File::from(r)).unwrap();
        let _ = child.wait();
        let Ready::Created { pid, monitor_pid } = ready else {
            panic!("monitor failed: {ready:?}");
        };
        Mon {
            dir,
            state,
            log,
            cgroup,
            init: pid,
            monitor: monitor_pid,
        }
    }

    fn connect(&self) -> Conn {
        let s = UnixStream::connect(self.state.join("monitor.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Conn { s };
        proto::write_frame(
            &mut c.s,
            &Hello {
                protocol: proto::PROTOCOL_VERSION,
                software: "test".into(),
            },
        )
        .unwrap();
        let h: Hello = proto::read_frame(&mut c.s).unwrap();
        assert_eq!(h.protocol, proto::PROTOCOL_VERSION);
        c
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mon {
    fn drop(&mut self) {
        for pid in [self.init, self.monitor] {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let d = h.path().join(&self.cgroup);
            while d.exists() && std::fs::remove_dir(&d).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

struct Conn {
    s: UnixStream,
}

impl Conn {
    fn send(&mut self, r: &Request) {
        proto::write_frame(&mut self.s, r).unwrap();
    }
    fn recv(&mut self) -> Response {
        proto::read_frame(&mut self.s).unwrap()
    }
    fn call(&mut self, r: &Request) -> Response {
        self.send(r);
        self.recv()
    }
    /// Reads output frames until `needle` shows up in what was collected.
    fn output_until(&mut self, needle: &str) -> String {
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !text.contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} in {text:?}");
            match self.recv() {
                Response::Output { data, .. } => text.push_str(&String::from_utf8_lossy(&data)),
                Response::ExecOutput { data, .. } => text.push_str(&String::from_utf8_lossy(&data)),
                other => panic!("unexpected {other:?} while waiting for {needle:?}"),
            }
        }
        text
    }
}

fn tty(spec: &mut serde_json::Value) {
    spec["process"]["terminal"] = true.into();
    spec["process"]["consoleSize"] = serde_json::json!({"height": 30, "width": 100});
}

#[test]
fn terminal_attach_detach_resize_and_the_session_lives_on() {
    let m = Mon::start(&["sh"], tty, &[]);
    let mut a = m.connect();
    assert_eq!(
        a.call(&Request::Attach {
            stdin: true,
            detach_keys: None
        }),
        Response::Ok
    );
    // A second client watches without stdin; stdin stays with the first.
    let mut watcher = m.connect();
    assert_eq!(
        watcher.call(&Request::Attach {
            stdin: false,
            detach_keys: None
        }),
        Response::Ok
    );
    match watcher.call(&Request::Attach {
        stdin: true,
        detach_keys: None,
    }) {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::Conflict),
        other => panic!("second stdin: {other:?}"),
    }
    assert_eq!(m.connect().call(&Request::Start), Response::Ok);

    a.send(&Request::Input {
        data: b"X=42; stty size\n".to_vec(),
    });
    a.output_until("30 100");
    watcher.output_until("30 100");
    // ctrl-p ctrl-q: detached, the shell untouched.
    a.send(&Request::Input {
        data: vec![0x10, 0x11],
    });
    loop {
        match a.recv() {
            Response::Output { .. } => continue,
            Response::Detached => break,
            other => panic!("detach: {other:?}"),
        }
    }
    drop(a);

    // A new client, later: the same session, its variable still set.
    let mut b = m.connect();
    assert_eq!(
        b.call(&Request::Resize {
            rows: 50,
            cols: 120
        }),
        Response::Ok
    );
    assert_eq!(
        b.call(&Request::Attach {
            stdin: true,
            detach_keys: Some(b"\x01d".to_vec())
        }),
        Response::Ok
    );
    b.send(&Request::Input {
        data: b"echo val=$X; stty size\n".to_vec(),
    });
    let text = b.output_until("50 120");
    assert!(text.contains("val=42"), "{text}");

    // Stop: SIGTERM is ignored by a pid-1 shell, SIGKILL after the grace.
    let mut s = m.connect();
    let started = Instant::now();
    match s.call(&Request::Stop {
        signal: 15,
        timeout_ms: 500,
    }) {
        Response::Exited(rec) => assert_eq!(rec.code, 137),
        other => panic!("stop: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(m.log_text().contains("val=42"), "log: {}", m.log_text());
    match s.call(&Request::Resize { rows: 1, cols: 1 }) {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::Conflict),
        other => panic!("resize after exit: {other:?}"),
    }
    assert_eq!(s.call(&Request::Release), Response::Ok);
}

/// Where each of `pid`'s fds points.
fn fd_targets(pid: i32) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let n = e.file_name().to_string_lossy().parse().unwrap();
            let t = std::fs::read_link(e.path()).unwrap_or_default();
            (n, t.display().to_string())
        })
        .collect();
    fds.sort();
    fds
}

#[test]
fn the_monitor_reexecs_itself_with_only_its_own_fds() {
    let m = Mon::start(&["sh", "-c", "echo started; sleep 1000"], |_| {}, &[]);
    // Once it answers, the pid contd was told is the serving process: the
    // creating image re-executed itself in place, with --adopt.
    let mut c = m.connect();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", m.monitor)).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(args.iter().any(|a| a == "--adopt"), "{args:?}");
    assert!(!args.iter().any(|a| a == "--sync-fd"), "{args:?}");
    let fds = fd_targets(m.monitor);
    for (n, target) in &fds {
        assert!(!target.contains(LEAKED), "inherited fd kept: {fds:?}");
        if *n <= 2 {
            assert_eq!(target, "/dev/null", "{fds:?}");
        }
    }
    // Listener and our connection, log, two output pipes, signalfd, init's
    // pidfd, OOM eventfd.
    let kinds = |k: &str| fds.iter().filter(|(_, t)| t.contains(k)).count();
    assert_eq!(kinds("socket:"), 2, "{fds:?}");
    assert_eq!(kinds("pipe:"), 2, "{fds:?}");
    assert_eq!(kinds("[signalfd]"), 1, "{fds:?}");
    assert_eq!(kinds("[pidfd]"), 1, "{fds:?}");
    assert_eq!(
        fds.iter()
            .filter(|(_, t)| t == &m.log.display().to_string())
            .count(),
        1,
        "{fds:?}"
    );
    assert!(fds.len() <= 11, "{fds:?}");
    // And it serves: start, output in the log, the init it created.
    assert_eq!(c.call(&Request::Start), Response::Ok);
    match c.call(&Request::State) {
        Response::State(s) => {
            assert_eq!(s.pid, Some(m.init));
            assert_eq!(s.monitor_pid, m.monitor);
        }
        other => panic!("state: {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.log_text().contains("started") {
        assert!(Instant::now() < deadline, "log: {}", m.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    // init is still the monitor's child: its parent pid is the monitor.
    assert_eq!(contd_tests::ppid(m.init), m.monitor);
}

#[test]
fn resize_without_terminal_is_refused() {
    let m = Mon::start(&["sleep", "1000"], |_| {}, &[]);
    let mut c = m.connect();
    match c.call(&Request::Resize { rows: 1, cols: 1 }) {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::Unsupported),
        other => panic!("{other:?}"),
    }
    match c.call(&Request::Attach {
        stdin: true,
        detach_keys: None,
    }) {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::InvalidArgument),
        other => panic!("stdin without one: {other:?}"),
    }
}

#[test]
fn stdin_pipe_without_terminal() {
    let m = Mon::start(
        &["sh", "-c", "read line; echo got=$line"],
        |_| {},
        &["--stdin"],
    );
    let mut c = m.connect();
    assert_eq!(
        c.call(&Request::Attach {
            stdin: true,
            detach_keys: Some(Vec::new())
        }),
        Response::Ok
    );
    assert_eq!(m.connect().call(&Request::Start), Response::Ok);
    c.send(&Request::Input {
        data: b"hello\n".to_vec(),
    });
    c.output_until("got=hello");
}

fn exec(c: &mut Conn, req: ExecRequest) -> u32 {
    match c.call(&Request::Exec(req)) {
        Response::ExecStarted { id, pid } => {
            assert!(pid > 0);
            id
        }
        other => panic!("exec: {other:?}"),
    }
}

/// Collects an exec's output per stream until it exits; returns the code.
fn exec_result(c: &mut Conn, id: u32) -> (String, String, i32) {
    let (mut out, mut err) = (String::new(), String::new());
    loop {
        match c.recv() {
            Response::ExecOutput {
                id: i,
                stream,
                data,
            } if i == id => {
                let t = String::from_utf8_lossy(&data).into_owned();
                match stream {
                    Stream::Stdout => out.push_str(&t),
                    Stream::Stderr => err.push_str(&t),
                }
            }
            Response::ExecExited { id: i, code } if i == id => return (out, err, code),
            other => panic!("exec {id}: {other:?}"),
        }
    }
}

#[test]
fn exec_with_and_without_terminal_reports_its_own_exit() {
    let m = Mon::start(&["sleep", "1000"], |_| {}, &[]);
    let mut c = m.connect();
    let req = |args: &[&str]| ExecRequest {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["WHO=exec".into()],
        cwd: Some("/tmp".into()),
        user: None,
        tty: None,
        stdin: false,
    };
    // Not started yet: exec is refused.
    match c.call(&Request::Exec(req(&["true"]))) {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::Conflict),
        other => panic!("exec before start: {other:?}"),
    }
    assert_eq!(c.call(&Request::Start), Response::Ok);

    let id = exec(
        &mut c,
        req(&["sh", "-c", "echo out $WHO $(pwd); echo err >&2; exit 7"]),
    );
    let (out, err, code) = exec_result(&mut c, id);
    assert_eq!((out.trim(), err.trim(), code), ("out exec /tmp", "err", 7));

    let mut r = req(&["sh", "-c", "tty; id -u"]);
    r.tty = Some((24, 80));
    r.user = Some((1000, 1000));
    let id = exec(&mut c, r);
    let (out, _, code) = exec_result(&mut c, id);
    assert!(out.contains("/dev/pts/") && out.contains("1000"), "{out}");
    assert_eq!(code, 0);

    let mut r = req(&["cat"]);
    r.stdin = true;
    let id = exec(&mut c, r);
    c.send(&Request::ExecInput {
        id,
        data: b"piped\n".to_vec(),
    });
    c.send(&Request::ExecInput { id, data: vec![] });
    let (out, _, code) = exec_result(&mut c, id);
    assert_eq!((out.trim(), code), ("piped", 0));

    match c.call(&Request::Stats) {
        Response::Stats(st) => {
            assert!(st.memory_usage > 0, "{st:?}");
            assert!(st.pids_current >= 1, "{st:?}");
        }
        other => panic!("stats: {other:?}"),
    }

    match c.call(&Request::Stop {
        signal: 9,
        timeout_ms: 1000,
    }) {
        Response::Exited(rec) => assert_eq!(rec.code, 137),
        other => panic!("stop: {other:?}"),
    }
    match c.call(&Request::Exec(req(&["true"]))) {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::Conflict),
        other => panic!("exec after exit: {other:?}"),
    }
    assert_eq!(c.call(&Request::Release), Response::Ok);
}

#[test]
fn a_client_that_does_not_read_is_cut_off_and_blocks_nothing() {
    let m = Mon::start(&["seq", "1", "300000"], |_| {}, &[]);
    let mut slow = m.connect();
    assert_eq!(
        slow.call(&Request::Attach {
            stdin: false,
            detach_keys: None
        }),
        Response::Ok
    );
    let mut c = m.connect();
    assert_eq!(c.call(&Request::Start), Response::Ok);
    match c.call(&Request::Wait) {
        Response::Exited(rec) => assert_eq!(rec.code, 0),
        other => panic!("wait: {other:?}"),
    }
    let lines = m.log_text().lines().count();
    assert_eq!(lines, 300000, "every line is in the log");
    // The slow client was cut off: its stream ends (EOF, not the read
    // timeout) before it got all of the 2 MB of output.
    let mut sink = Vec::new();
    let read = slow.s.read_to_end(&mut sink);
    assert!(read.is_ok(), "slow client not cut off: {read:?}");
    assert!(
        sink.len() < 2_000_000,
        "a slow client's queue is bounded ({} bytes)",
        sink.len()
    );
    assert_eq!(c.call(&Request::Release), Response::Ok);
}

#[test]
fn the_container_exit_ends_an_attach_with_its_record() {
    let m = Mon::start(&["sh"], tty, &[]);
    let mut a = m.connect();
    assert_eq!(
        a.call(&Request::Attach {
            stdin: true,
            detach_keys: None
        }),
        Response::Ok
    );
    assert_eq!(m.connect().call(&Request::Start), Response::Ok);
    a.send(&Request::Input {
        data: b"echo bye; exit 6\n".to_vec(),
    });
    loop {
        match a.recv() {
            Response::Output { .. } => continue,
            Response::Exited(rec) => {
                assert_eq!(rec.code, 6);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}

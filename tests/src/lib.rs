//! The shared harness of contd's workspace-level tests: a [`TestEnv`] starts
//! a supervisor on temporary directories and a temporary socket, builds a
//! busybox rootfs, wraps the built binaries, and on drop — also when a test
//! fails — kills every monitor and container it started and removes their
//! cgroups, so no run leaks into the next.
//!
//! The binaries come from the workspace's `target/debug` (the README's test
//! command builds them before running the tests).

pub mod containerd;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The cgroup hierarchies a test may have touched.
pub const HIERARCHIES: [&str; 10] = [
    "memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer", "systemd",
    "unified",
];

/// Directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> → target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for b in ["contd", "contd-monitor", "contctl"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: build the workspace first (cargo build --workspace)",
            dir.join(b).display()
        );
    }
    dir
}

/// Whether `pid` names a living process (not a zombie).
pub fn pid_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Waits for a child process (a client under test) at most `secs`; its
/// exit code. Kills it and panics past the deadline.
pub fn wait_code(child: &mut std::process::Child, secs: u64) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the client did not exit within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The parent of process `pid` (field 4 of /proc/PID/stat).
pub fn ppid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no ppid in /proc/{pid}/stat: {stat}"))
}

/// A seeded xorshift generator: the same seed, the same run.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A process's resident memory (VmRSS), in kB.
pub fn rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// Fails loudly rather than skipping when not root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (CI runs them as root)"
    );
}

/// Builds a busybox rootfs (static busybox, one symlink per applet).
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox not installed (apt-get install busybox-static)");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    root
}

/// A connection to contd's api past the hello.
pub fn api(env: &TestEnv) -> UnixStream {
    let mut s = env.raw();
    proto::write_frame(
        &mut s,
        &proto::Hello {
            protocol: proto::PROTOCOL_VERSION,
            software: "test".into(),
        },
    )
    .unwrap();
    let h: proto::Hello = proto::read_frame(&mut s).unwrap();
    assert_eq!(h.protocol, proto::PROTOCOL_VERSION);
    s
}

/// One request on a fresh api connection, and its answer.
pub fn call(env: &TestEnv, req: &proto::api::Request) -> proto::api::Response {
    let mut s = api(env);
    proto::write_frame(&mut s, req).unwrap();
    proto::read_frame(&mut s).unwrap()
}

/// An attach with stdin to container `name` in "default".
pub fn attach(env: &TestEnv, name: &str) -> UnixStream {
    let mut s = api(env);
    proto::write_frame(
        &mut s,
        &proto::api::Request::Attach {
            ns: "default".into(),
            name: name.into(),
            stdin: true,
            detach_keys: None,
        },
    )
    .unwrap();
    let r: proto::api::Response = proto::read_frame(&mut s).unwrap();
    assert_eq!(r, proto::api::Response::Ok);
    s
}

/// Sends bytes to an attached container's stdin.
pub fn input(s: &mut UnixStream, data: &[u8]) {
    proto::write_frame(
        s,
        &proto::api::Request::Input {
            data: data.to_vec(),
        },
    )
    .unwrap();
}

/// An attach's output until `needle` appears (10 s at most; a frame that
/// ends the attach fails the test).
pub fn until(s: &mut UnixStream, needle: &str) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in {text:?}");
        match proto::read_frame::<proto::api::Response>(s).unwrap() {
            proto::api::Response::Output { data, .. } => {
                text.push_str(&String::from_utf8_lossy(&data))
            }
            other => panic!("{other:?} while waiting for {needle:?} after {text:?}"),
        }
    }
    text
}

/// One supervisor on its own directories, socket and cgroup parent.
#[derive(Debug)]
pub struct TestEnv {
    /// Keeps the temporary directory alive.
    pub dir: tempfile::TempDir,
    /// The busybox rootfs.
    pub rootfs: PathBuf,
    /// contd's state dir.
    pub state_dir: PathBuf,
    /// contd's log dir.
    pub log_dir: PathBuf,
    /// The api socket.
    pub socket: PathBuf,
    /// cgroups live under this parent in every hierarchy.
    pub cgroup_parent: String,
    /// Extra contd flags for the next `start_contd`.
    pub contd_args: Vec<String>,
    /// Extra environment for the next `start_contd`.
    pub contd_env: Vec<(String, String)>,
    /// A command contd runs under (e.g. `unshare -m …`, which must exec
    /// contd in the same process), for the next `start_contd`.
    pub contd_prefix: Vec<String>,
    bins: PathBuf,
    contd: Option<Child>,
}

impl TestEnv {
    /// Prepares directories and a rootfs, and starts contd.
    pub fn new() -> Self {
        let mut env = Self::without_contd();
        env.start_contd();
        env
    }

    /// The directories, rootfs and cgroup parent without a contd process
    /// (for a supervisor embedded in the test); cleaned up the same way.
    pub fn without_contd() -> Self {
        require_root();
        let bins = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("contd-t")
            .tempdir_in("/tmp")
            .unwrap();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        TestEnv {
            rootfs: busybox_rootfs(dir.path()),
            state_dir: dir.path().join("state"),
            log_dir: dir.path().join("logs"),
            socket: dir.path().join("contd.sock"),
            cgroup_parent: format!("contd-test-{}-{n}", std::process::id()),
            dir,
            contd_args: Vec::new(),
            contd_env: Vec::new(),
            contd_prefix: Vec::new(),
            bins,
            contd: None,
        }
    }

    /// Starts contd and waits until its socket answers.
    pub fn start_contd(&mut self) {
        let bins = self.bins.clone();
        self.start_contd_from(&bins);
    }

    /// Starts the contd of another build (`bins` holds contd and its
    /// contd-monitor), e.g. an older release.
    pub fn start_contd_from(&mut self, bins: &Path) {
        assert!(self.contd.is_none(), "contd already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("contd.stderr"))
            .unwrap();
        let mut cmd = match self.contd_prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bins.join("contd"));
                c
            }
            None => Command::new(bins.join("contd")),
        };
        let child = cmd
            .arg("--monitor")
            .arg(bins.join("contd-monitor"))
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--log-dir")
            .arg(&self.log_dir)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .args(&self.contd_args)
            .env("CONTD_LOG", "debug")
            .envs(self.contd_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.contd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "contd did not start: {}",
                self.contd_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to contd and reaps it.
    pub fn stop_contd(&mut self, signal: i32) {
        if let Some(mut c) = self.contd.take() {
            // SAFETY-free: plain kill through nix.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::try_from(signal).unwrap(),
            );
            let _ = c.wait();
        }
    }

    /// Whether contd still runs.
    pub fn contd_alive(&mut self) -> bool {
        self.contd
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// contd's stderr so far.
    pub fn contd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("contd.stderr")).unwrap_or_default()
    }

    /// Runs contctl against this env's socket.
    pub fn contctl(&self, args: &[&str]) -> Output {
        Command::new(self.bins.join("contctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs contctl and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.contctl(args);
        assert!(
            out.status.success(),
            "contctl {args:?} failed ({:?}): {}\ncontd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.contd_log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `contctl inspect NAME`: the one object of its JSON array.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let all: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        // An array, as docker's; one name, one object.
        match all {
            serde_json::Value::Array(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("inspect {name}: {other}"),
        }
    }

    /// Polls `cond` every 50 ms until it holds, or panics after `secs`.
    pub fn wait_for(&self, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The path of a container's cgroup in one hierarchy.
    pub fn cgroup_dir(&self, hierarchy: &str, ns: &str, name: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(&self.cgroup_parent)
            .join(ns)
            .join(name)
    }

    /// Pids of every monitor whose pid file is still on disk.
    pub fn monitor_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for ns in std::fs::read_dir(&self.state_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            for c in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                if let Ok(s) = std::fs::read_to_string(c.path().join("monitor.pid")) {
                    if let Ok(p) = s.trim().parse() {
                        pids.push(p);
                    }
                }
            }
        }
        pids
    }

    /// contd's pid, while it runs.
    pub fn contd_pid(&self) -> Option<i32> {
        self.contd.as_ref().map(|c| c.id() as i32)
    }

    /// A raw connection to the api socket.
    pub fn raw(&self) -> UnixStream {
        let s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in HIERARCHIES {
            for top in [
                self.cgroup_parent.clone(),
                format!("{}-monitors", self.cgroup_parent),
            ] {
                collect_dirs(&Path::new("/sys/fs/cgroup").join(h).join(top), &mut out);
            }
        }
        // Deepest first, so rmdir succeeds.
        out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        out
    }

    /// Every cgroup directory under this env's parent (leak check).
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        self.cgroup_dirs()
            .into_iter()
            .filter(|d| d.components().count() > 7)
            .collect()
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&e.path(), out);
        }
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        self.stop_contd(libc::SIGKILL);
        for p in self.monitor_pids() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        // A paused container would never die: thaw everything first.
        for d in self.cgroup_dirs() {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        }
        // Kill whatever is left in the containers' cgroups, then remove them.
        for d in self.cgroup_dirs() {
            let mut procs = String::new();
            if let Ok(mut f) = std::fs::File::open(d.join("cgroup.procs")) {
                let _ = f.read_to_string(&mut procs);
            }
            for p in procs.lines().filter_map(|l| l.parse().ok()) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        for d in self.cgroup_dirs() {
            for _ in 0..100 {
                if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The test's end of a pseudo-terminal a client (contctl, ctr) runs on.
#[derive(Debug)]
pub struct Pty {
    /// The master side.
    pub master: std::os::fd::OwnedFd,
    /// Everything read so far.
    pub seen: String,
}

impl Pty {
    /// A pty of `rows`x`cols`; its slave as stdin, stdout and stderr.
    pub fn new(rows: u16, cols: u16) -> (Pty, std::os::fd::OwnedFd) {
        let ws = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let p = nix::pty::openpty(Some(&ws), None).unwrap();
        (
            Pty {
                master: p.master,
                seen: String::new(),
            },
            p.slave,
        )
    }

    pub fn spawn(
        slave: &std::os::fd::OwnedFd,
        cmd: &mut std::process::Command,
    ) -> std::process::Child {
        cmd.stdin(std::process::Stdio::from(slave.try_clone().unwrap()))
            .stdout(std::process::Stdio::from(slave.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(slave.try_clone().unwrap()))
            .spawn()
            .unwrap()
    }

    pub fn write(&self, data: &[u8]) {
        nix::unistd::write(&self.master, data).unwrap();
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: a valid winsize for TIOCSWINSZ on our own pty master.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0);
    }

    /// Reads until what came since the last call contains `needle`.
    pub fn until(&mut self, needle: &str, secs: u64) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut fresh = String::new();
        while std::time::Instant::now() < deadline {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) > 0 {
                let mut buf = [0u8; 4096];
                match nix::unistd::read(&self.master, &mut buf) {
                    Ok(n) if n > 0 => fresh.push_str(&String::from_utf8_lossy(&buf[..n])),
                    _ => break,
                }
                if fresh.contains(needle) {
                    self.seen.push_str(&fresh);
                    return true;
                }
            }
        }
        self.seen.push_str(&fresh);
        false
    }

    /// Asks the container's shell for its terminal size until it is
    /// `want` ("ROWS COLS").
    pub fn size_becomes(&mut self, want: &str) {
        for _ in 0..50 {
            self.write(b"stty size\r");
            if self.until(want, 1) {
                return;
            }
        }
        panic!(
            "the container's terminal never became {want}: {}",
            self.seen
        );
    }
}

//! The harness of the `contd-runtime` CLI tests: a test's world (temp
//! dir, state root, bundles, cleanup of every container and cgroup it made,
//! pass or fail), CLI invocations, and runc-`spec`-like configs.
//!
//! Each test crate uses a part of it.
#![allow(dead_code)]

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::busybox_rootfs;

pub const BIN: &str = env!("CARGO_BIN_EXE_contd-runtime");

/// How long one CLI invocation may take before the test gives up on it.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

pub static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn next() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// Environment helpers
// ---------------------------------------------------------------------------

pub fn require_root() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the contd-runtime CLI tests need root (run them as root, as CI does)"
    );
}

/// Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers,
/// named hierarchies and the unified one), deduplicated.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let Ok(real) = e.path().canonicalize() else {
                continue;
            };
            if real.is_dir() && !out.contains(&real) {
                out.push(real);
            }
        }
    }
    out
}

pub fn cgroup_dir(hierarchy: &str, cg: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join(cg.trim_start_matches('/'))
}

/// rmdir a cgroup dir and its sub-cgroups, deepest first (cgroup dirs
/// cannot be removed with their control files, only rmdir'd).
pub fn rmdir_cgroup(p: &Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_cgroup(&e.path());
            }
        }
    }
    for _ in 0..50 {
        match std::fs::remove_dir(p) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The outcome of one CLI invocation.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The file that was the command's stdout (the container writes here
    /// too, after `create`, since stdio passes through).
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub desc: String,
}

impl Out {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "`{}` failed with {}\nstdout: {}\nstderr: {}",
            self.desc, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts exit code 1 with `needle` in the single-line error.
    pub fn fails_with(self, needle: &str) -> Self {
        assert_eq!(
            self.code, 1,
            "`{}` should fail with exit 1 mentioning {needle:?}\nstdout: {}\nstderr: {}",
            self.desc, self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "`{}`: stderr should contain {needle:?}, got: {:?}",
            self.desc,
            self.stderr
        );
        self
    }

    /// stdout and stderr as written so far (re-read from the files, for
    /// output written by the container after the command returned).
    pub fn reread(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        )
    }
}

/// A CLI invocation in flight.
pub struct Running {
    pub child: Child,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub desc: String,
}

impl Running {
    pub fn try_finish(mut self, timeout: Duration) -> Result<Out, String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "`{}` did not finish within {timeout:?}; stderr so far: {}",
                        self.desc,
                        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
                    ));
                }
                Err(e) => return Err(format!("wait for `{}`: {e}", self.desc)),
            }
        };
        let code = status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        });
        Ok(Out {
            code,
            stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
            stdout_path: self.stdout_path,
            stderr_path: self.stderr_path,
            desc: self.desc,
        })
    }

    pub fn finish(self) -> Out {
        self.try_finish(CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Which rootfs a bundle gets.
#[derive(Clone, Copy, PartialEq)]
pub enum Rootfs {
    /// `rootfs -> target/rootfs`: for tests that never write to it.
    Link,
    /// A private copy (`cp -a`), for tests that write into it.
    Copy,
}

/// One test's world: a temp dir (bundles, state root, output files), the
/// container ids and cgroup paths it made. Dropping it deletes every
/// container (`delete --force`), rmdirs every leftover cgroup dir in every
/// hierarchy and removes the temp dir, pass or fail.
pub struct T {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub ids: Vec<String>,
    pub cgroups: Vec<String>,
}

impl T {
    pub fn new() -> T {
        require_root();
        let tmp = tempfile::Builder::new()
            .prefix("contd-cli-")
            .tempdir()
            .expect("tempdir");
        // Traversable by a container's mapped root (user namespace test).
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = tmp.path().join("state-root");
        T {
            tmp,
            root,
            ids: Vec::new(),
            cgroups: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A container id, remembered for cleanup.
    pub fn id(&mut self, name: &str) -> String {
        let id = format!("{name}-{}", next());
        self.ids.push(id.clone());
        id
    }

    /// A unique cgroupsPath, remembered for cleanup.
    pub fn cgroup(&mut self) -> String {
        let cg = format!("/contd-cli-test-{}-{}", std::process::id(), next());
        self.cgroups.push(cg.clone());
        cg
    }

    /// A runc-`spec`-like config running `args`, with its own cgroup.
    pub fn spec(&mut self, args: &[&str]) -> Value {
        let cg = self.cgroup();
        base_spec(args, &cg)
    }

    /// A bundle dir with `spec` as config.json.
    pub fn bundle(&mut self, spec: &Value, rootfs: Rootfs) -> PathBuf {
        let dir = self.path(&format!("bundle-{}", next()));
        std::fs::create_dir(&dir).unwrap();
        let src = busybox_rootfs();
        match rootfs {
            Rootfs::Link => std::os::unix::fs::symlink(&src, dir.join("rootfs")).unwrap(),
            Rootfs::Copy => {
                let st = Command::new("cp")
                    .arg("-a")
                    .arg(&src)
                    .arg(dir.join("rootfs"))
                    .status()
                    .expect("cp -a rootfs");
                assert!(st.success(), "cp -a {} failed", src.display());
            }
        }
        write_config(&dir, spec);
        dir
    }

    /// A bundle whose container gets a new user namespace with its root
    /// mapped to host uid/gid 100000 (65536 ids), on a private rootfs copy
    /// owned by that uid.
    pub fn userns_bundle(&mut self, spec: &mut Value) -> PathBuf {
        add_namespace(spec, "user");
        let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        spec["linux"]["uidMappings"] = map.clone();
        spec["linux"]["gidMappings"] = map;
        let b = self.bundle(spec, Rootfs::Copy);
        let st = Command::new("chown")
            .args(["-R", "-h", "100000:100000"])
            .arg(b.join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success(), "chown rootfs");
        b
    }

    /// Asserts that `create` of `spec` fails naming `needle`, leaving
    /// nothing behind.
    pub fn create_refused(&mut self, spec: &Value, needle: &str) {
        let b = self.bundle(spec, Rootfs::Link);
        let id = self.id("refused");
        self.create(&b, &id).fails_with(needle);
        self.assert_root_empty();
        if let Some(cg) = spec["linux"]["cgroupsPath"].as_str() {
            self.assert_no_cgroup(cg);
        }
    }

    pub fn try_spawn_with(
        &self,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> std::io::Result<Running> {
        let n = next();
        let stdout_path = self.path(&format!("out-{n}.stdout"));
        let stderr_path = self.path(&format!("out-{n}.stderr"));
        let stdout = std::fs::File::create(&stdout_path)?;
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut cmd = Command::new(BIN);
        cmd.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        configure(&mut cmd);
        let child = cmd.spawn()?;
        Ok(Running {
            child,
            stdout_path,
            stderr_path,
            desc: format!("contd-runtime {}", args.join(" ")),
        })
    }

    pub fn spawn_with(&self, args: &[&str], configure: impl FnOnce(&mut Command)) -> Running {
        self.try_spawn_with(args, configure)
            .unwrap_or_else(|e| panic!("spawn {BIN} {args:?}: {e}"))
    }

    /// Runs `contd-runtime --root ROOT ARGS...` to completion. stdio goes to
    /// files, not pipes: after `create` the container holds them open.
    pub fn rt(&self, args: &[&str]) -> Out {
        self.spawn_with(args, |_| {}).finish()
    }

    pub fn rt_with(&self, args: &[&str], configure: impl FnOnce(&mut Command)) -> Out {
        self.spawn_with(args, configure).finish()
    }

    /// `run --bundle B ID` in the foreground.
    pub fn run(&mut self, name: &str, spec: &Value, rootfs: Rootfs) -> Out {
        let b = self.bundle(spec, rootfs);
        let id = self.id(name);
        self.rt(&["run", "--bundle", s(&b), &id])
    }

    pub fn create(&self, bundle: &Path, id: &str) -> Out {
        self.rt(&["create", "--bundle", s(bundle), id])
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]).ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state {id}: not JSON ({e}): {}", out.stdout))
    }

    pub fn wait_status(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let st = self.state(id);
            if st["status"] == want {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} never became {want}; last state: {st}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Nothing (no state dir, no stray file) under --root.
    pub fn assert_root_empty(&self) {
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            // The runtime's cache of compiled seccomp programs stays.
            let left: Vec<_> = rd
                .flatten()
                .filter(|e| e.file_name() != ".cache")
                .map(|e| e.path())
                .collect();
            assert!(left.is_empty(), "left behind under --root: {left:?}");
        }
    }

    pub fn assert_no_container_listed(&self) {
        let out = self.rt(&["list", "-q"]).ok();
        assert_eq!(out.stdout.trim(), "", "list -q should be empty");
    }

    pub fn assert_no_cgroup(&self, cg: &str) {
        for h in ["memory", "pids", "devices", "freezer", "unified"] {
            let p = cgroup_dir(h, cg);
            assert!(!p.exists(), "cgroup dir {} left behind", p.display());
        }
    }
}

impl Drop for T {
    fn drop(&mut self) {
        // No panics in here: it also runs while a failed test unwinds.
        for id in &self.ids {
            if let Ok(r) = self.try_spawn_with(&["delete", "--force", id], |_| {}) {
                let _ = r.try_finish(Duration::from_secs(10));
            }
        }
        for cg in &self.cgroups {
            for h in cgroup_hierarchies() {
                rmdir_cgroup(&h.join(cg.trim_start_matches('/')));
            }
        }
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn write_config(bundle: &Path, spec: &Value) {
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_string_pretty(spec).unwrap(),
    )
    .unwrap();
}

/// A config.json shaped as `runc spec` writes it (no terminal, rootfs
/// writable but never written to, caps AUDIT_WRITE/KILL/NET_BIND_SERVICE).
pub fn base_spec(args: &[&str], cgroups_path: &str) -> Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    json!({
        "ociVersion": "1.2.0",
        "root": { "path": "rootfs", "readonly": false },
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "cgroupsPath": cgroups_path,
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

pub fn add_namespace(spec: &mut Value, typ: &str) {
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": typ }));
}

pub fn add_mount(spec: &mut Value, mount: Value) {
    spec["mounts"].as_array_mut().unwrap().push(mount);
}

pub fn set_caps(spec: &mut Value, caps: &[&str]) {
    spec["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps
    });
}

/// The value of `Key:` in /proc/<pid>/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

pub fn lines(s: &str) -> Vec<&str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

/// Makes a `contd-runtime` invocation see a pure cgroup v2 host: a private
/// mount namespace with the (one, system-wide) cgroup2 hierarchy mounted at
/// /sys/fs/cgroup. This machine is hybrid; its cgroup2 tree has no memory
/// or pids controller (they are bound to v1) but has hugetlb, the freezer
/// (`cgroup.freeze`) and device programs.
pub fn on_cgroup_v2(cmd: &mut Command) {
    // SAFETY: between fork and exec only async-signal-safe calls (unshare,
    // mount) with static, NUL-terminated strings.
    unsafe {
        cmd.pre_exec(|| {
            let c = |p: &[u8]| p.as_ptr() as *const libc::c_char;
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    c(b"/\0"),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                || libc::mount(
                    c(b"cgroup2\0"),
                    c(b"/sys/fs/cgroup\0"),
                    c(b"cgroup2\0"),
                    0,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Receives one message on `stream` that carries exactly one fd
/// (SCM_RIGHTS): the fd and the message's data.
pub fn receive_fd_with_data(stream: &std::os::unix::net::UnixStream) -> (OwnedFd, Vec<u8>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = vec![0u8; 65536];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg with an fd");
    let n = msg.bytes;
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(v) = c {
            fds.extend(v);
        }
    }
    assert_eq!(fds.len(), 1, "expected exactly one fd, got {fds:?}");
    // SAFETY: the kernel just installed this fd in our table; we own it.
    let fd = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    buf.truncate(n);
    (fd, buf)
}

/// Receives one fd sent with SCM_RIGHTS on `stream` (a pty master).
pub fn receive_fd(stream: &std::os::unix::net::UnixStream) -> OwnedFd {
    receive_fd_with_data(stream).0
}

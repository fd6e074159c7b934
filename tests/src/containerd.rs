//! A private containerd (from Debian) for tests: its own root, state and
//! sockets in a temp dir, contd's shim (`containerd-shim-contd-v2`, a link
//! to contd-monitor) on its PATH; stopped and wiped on drop, with every
//! task it ran.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin_dir, busybox_rootfs, require_root};

/// contd's runtime name for containerd.
pub const RUNTIME: &str = "io.containerd.contd.v2";

/// A containerd of our own whose PATH has the shim; stopped and wiped on
/// drop, with every task it ran.
#[derive(Debug)]
pub struct Containerd {
    /// Its root, state, sockets and log.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Tasks to kill and delete at the end.
    pub ids: Vec<String>,
    /// A busybox rootfs for `ctr run --rootfs`.
    pub rootfs: PathBuf,
}

impl Containerd {
    pub fn start() -> Containerd {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("ctrd")
            .tempdir_in("/tmp")
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(
            bin_dir().join("contd-monitor"),
            bin.join("containerd-shim-contd-v2"),
        )
        .unwrap();
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{d}/c.sock\"\n\
             [ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_apparmor = true\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let rootfs = busybox_rootfs(dir.path());
        let mut c = Containerd {
            dir,
            child: None,
            ids: Vec::new(),
            rootfs,
        };
        c.spawn();
        c
    }

    /// Starts (or restarts) containerd and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("containerd.log"))
            .unwrap();
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("PATH", path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is missing: run scripts/setup.sh --test");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ctr(&["version"]).0 != 0 {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn ctr_cmd(&self) -> Command {
        let mut c = Command::new("timeout");
        c.args(["60", "ctr", "--address"])
            .arg(self.dir.path().join("c.sock"));
        c
    }

    pub fn ctr(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.ctr_cmd().args(args).output().expect("ctr");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `ctr run` of `cmd` in `id` with contd's shim.
    pub fn run(&mut self, id: &str, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
        self.ids.push(id.to_string());
        self.run_again(id, extra, cmd)
    }

    /// As `run`, for an id already in `ids`.
    pub fn run_again(&self, id: &str, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
        let root = self.rootfs.display().to_string();
        let mut args = vec!["run", "--runtime", RUNTIME];
        args.extend(extra);
        args.extend(["--rootfs", &root, id]);
        args.extend(cmd);
        self.ctr(&args)
    }

    /// `ctr task exec` of `sh -c script` in the task `id` as `exec_id`.
    pub fn exec(&self, id: &str, exec_id: &str, script: &str) -> (i32, String, String) {
        self.ctr(&["task", "exec", "--exec-id", exec_id, id, "sh", "-c", script])
    }

    /// The task's line in `ctr task ls`, if any.
    pub fn task_line(&self, id: &str) -> Option<String> {
        let (_, out, _) = self.ctr(&["task", "ls"]);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .map(str::to_string)
    }

    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let line = self.task_line(id);
            if line.as_deref().is_some_and(|l| l.contains(status)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never became {status}: {line:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The task's bundle (the shim's state dir).
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .path()
            .join("state/io.containerd.runtime.v2.task/default")
            .join(id)
    }

    pub fn shim_pid(&self, id: &str) -> i32 {
        std::fs::read_to_string(self.bundle(id).join("monitor.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Events while `f` runs, as `ctr events` prints them.
    pub fn events_during(&self, f: impl FnOnce()) -> String {
        // ctr itself, not under timeout(1): killed, its output ends.
        let mut ev = Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .arg("events")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // `ctr events` has subscribed once it prints nothing more for a
        // moment: give it until containerd answers another request.
        let _ = self.ctr(&["version"]);
        std::thread::sleep(Duration::from_millis(200));
        f();
        std::thread::sleep(Duration::from_millis(500));
        let _ = ev.kill();
        let mut out = String::new();
        ev.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let _ = ev.wait();
        out
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
        for id in self.ids.clone() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", &id]);
            let _ = self.ctr(&["task", "delete", "-f", &id]);
            let _ = self.ctr(&["container", "delete", &id]);
        }
        self.kill();
        // Shims left by a failed test: their pids are in the bundles.
        for e in std::fs::read_dir(
            self.dir
                .path()
                .join("state/io.containerd.runtime.v2.task/default"),
        )
        .into_iter()
        .flatten()
        .flatten()
        {
            if let Ok(p) = std::fs::read_to_string(e.path().join("monitor.pid")) {
                if let Ok(pid) = p.trim().parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for id in &self.ids {
                let _ = std::fs::remove_dir(h.path().join("default").join(id));
            }
            let _ = std::fs::remove_dir(h.path().join("default"));
        }
    }
}

//! contd-runtime as the runc binary of containerd's runc shim
//! (`io.containerd.runc.v2` with `BinaryName`, here `ctr --runc-binary`):
//! run, run -d, exec, pause/resume, kill, delete — through a private
//! containerd. Root only; containerd comes from scripts/setup.sh.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod common;

fn rootfs() -> PathBuf {
    common::busybox_rootfs()
}

/// A containerd of our own, stopped and wiped on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    ids: Vec<String>,
}

impl Containerd {
    fn start() -> Containerd {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "containerd tests need root"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{d}/c.sock\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_apparmor = true\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is missing: run scripts/setup.sh");
        let c = Containerd {
            dir,
            child,
            ids: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.ctr(&["version"]).0 != 0 {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("timeout")
            .args(["60", "ctr", "--address"])
            .arg(self.dir.path().join("c.sock"))
            .args(args)
            .output()
            .expect("ctr");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn run(&mut self, id: &str, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
        self.ids.push(id.to_string());
        let root = rootfs();
        let mut args = vec![
            "run",
            "--runc-binary",
            env!("CARGO_BIN_EXE_contd-runtime"),
            "--runtime",
            "io.containerd.runc.v2",
        ];
        args.extend(extra);
        args.extend(["--rootfs", root.to_str().unwrap(), id]);
        args.extend(cmd);
        self.ctr(&args)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
            let _ = self.ctr(&["task", "delete", "-f", id]);
            let _ = self.ctr(&["container", "delete", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // ctr's cgroups live under /default/<id>: remove the empty parents.
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(h.path().join("default"));
        }
    }
}

fn cgroup_left(id: &str) -> bool {
    Path::new("/sys/fs/cgroup/memory/default").join(id).exists()
}

#[test]
fn containerd_runc_shim_drives_contd_runtime() {
    let mut c = Containerd::start();
    let n = std::process::id();

    let id = format!("contd-fg-{n}");
    let (code, out, err) = c.run(
        &id,
        &["--rm"],
        &["sh", "-c", "echo hello-containerd; exit 6"],
    );
    assert_eq!(code, 6, "ctr run: {out} {err}");
    assert!(out.contains("hello-containerd"), "{out} {err}");
    assert!(!cgroup_left(&id), "cgroup of {id} left");

    let id = format!("contd-bg-{n}");
    let (code, out, err) = c.run(&id, &["-d", "--seccomp"], &["sleep", "1000"]);
    assert_eq!(code, 0, "ctr run -d: {out} {err}");
    let (code, out, err) = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo in-exec; grep Seccomp: /proc/self/status; exit 3",
    ]);
    assert_eq!(code, 3, "ctr task exec: {out} {err}");
    assert!(
        out.contains("in-exec") && out.contains("Seccomp:\t2"),
        "{out} {err}"
    );

    let (code, out, err) = c.ctr(&["task", "pause", &id]);
    assert_eq!(code, 0, "pause: {out} {err}");
    let (_, out, _) = c.ctr(&["task", "ls"]);
    assert!(
        out.lines().any(|l| l.contains(&id) && l.contains("PAUSED")),
        "{out}"
    );
    let (code, out, err) = c.ctr(&["task", "resume", &id]);
    assert_eq!(code, 0, "resume: {out} {err}");

    let (code, out, err) = c.ctr(&["task", "kill", "-s", "KILL", &id]);
    assert_eq!(code, 0, "kill: {out} {err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = c.ctr(&["task", "ls"]);
        if out
            .lines()
            .any(|l| l.contains(&id) && l.contains("STOPPED"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "task never stopped: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = c.ctr(&["task", "delete", &id]);
    assert_eq!(code, 0, "task delete: {out} {err}");
    let (code, out, err) = c.ctr(&["container", "delete", &id]);
    assert_eq!(code, 0, "container delete: {out} {err}");
    assert!(!cgroup_left(&id), "cgroup of {id} left");

    // A create that fails: the shim reads our error from the runtime's
    // log and cleans up (`delete --force` of what is not there).
    let id = format!("contd-bad-{n}");
    let (code, out, err) = c.run(&id, &["--rm"], &["no-such-program"]);
    assert_ne!(code, 0, "ctr run of a missing program: {out} {err}");
    assert!(
        err.contains("executable file not found"),
        "the runtime's error reaches ctr: {out} {err}"
    );
    let (_, out, _) = c.ctr(&["task", "ls"]);
    assert!(!out.contains(&id), "task left: {out}");
    assert!(!cgroup_left(&id), "cgroup of {id} left");
    assert!(
        !Path::new("/run/containerd/runc/default").join(&id).exists(),
        "runtime state of {id} left"
    );
}

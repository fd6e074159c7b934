//! Docker Engine (Debian's docker.io) with contd-runtime as a configured
//! OCI runtime (`--add-runtime contd=…`, the `runtimes` of daemon.json):
//! `docker run --runtime contd` of an image imported from the busybox
//! rootfs, through a private containerd. Exit codes, the secure default,
//! a missing command (127), detached run, exec, stop, rm.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use contd_tests::bin_dir;
use contd_tests::containerd::Containerd;

/// A dockerd of our own on the private containerd; stopped on drop.
struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Dockerd {
    fn start(c: &Containerd) -> Dockerd {
        let dir = tempfile::Builder::new()
            .prefix("dockerd")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .arg("--containerd")
            .arg(c.dir.path().join("c.sock"))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver",
                "vfs",
            ])
            .arg("--add-runtime")
            .arg(format!(
                "contd={}",
                bin_dir().join("contd-runtime").display()
            ))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd is missing: run scripts/setup.sh --test (docker.io)");
        let dk = Dockerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while dk.docker(&["version"]).0 != 0 {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                std::fs::read_to_string(dk.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        dk
    }

    fn cmd(&self) -> Command {
        // Debian's client, whatever else is first on PATH.
        let mut c = Command::new("timeout");
        c.args(["120", "/usr/bin/docker", "-H"]).arg(format!(
            "unix://{}",
            self.dir.path().join("docker.sock").display()
        ));
        c
    }

    fn docker(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd().args(args).output().expect("docker");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `docker run --runtime contd --network none` of `cmd` in the image
    /// `contd-busybox`, with `extra` flags.
    fn run(&self, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
        let mut args = vec!["run", "--runtime", "contd", "--network", "none"];
        args.extend(extra);
        args.push("contd-busybox");
        args.extend(cmd);
        self.docker(&args)
    }

    /// Imports `rootfs` as the image `name`.
    fn import(&self, rootfs: &Path, name: &str) {
        let tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args(["-c", "."])
            .output()
            .unwrap();
        assert!(tar.status.success());
        let mut imp = self
            .cmd()
            .args(["import", "-", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        imp.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
        assert!(imp.wait().unwrap().success(), "docker import");
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let (_, out, _) = self.docker(&["ps", "-aq"]);
        for id in out.split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // What dockerd may leave mounted under its dirs.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&root))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(h.path().join("docker"));
        }
    }
}

#[test]
fn docker_runs_containers_with_contd_runtime() {
    let c = Containerd::start();
    let dk = Dockerd::start(&c);
    dk.import(&c.rootfs, "contd-busybox");

    let (code, out, err) = dk.run(
        &["--rm"],
        &[
            "/bin/sh",
            "-c",
            "echo hello-docker; grep Seccomp: /proc/self/status; exit 3",
        ],
    );
    assert_eq!(code, 3, "{out} {err}");
    assert!(out.contains("hello-docker"), "{out} {err}");
    assert!(
        out.contains("Seccomp:\t2"),
        "docker's seccomp profile: {out}"
    );

    // A missing command: docker's 127, with the runtime's message.
    let (code, out, err) = dk.run(&["--rm"], &["no-such-program"]);
    assert_eq!(code, 127, "{out} {err}");
    assert!(err.contains("executable file not found"), "{err}");

    // Detached, exec, stop, rm.
    let (code, out, err) = dk.run(&["-d", "--name", "d1"], &["/bin/sleep", "1000"]);
    assert_eq!(code, 0, "{out} {err}");
    let (code, out, err) = dk.docker(&["exec", "d1", "/bin/sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(code, 4, "{out} {err}");
    assert!(out.contains("in-exec"), "{out} {err}");
    let (_, out, _) = dk.docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", "d1"]);
    assert_eq!(out.trim(), "contd");
    let (code, out, err) = dk.docker(&["stop", "-t", "1", "d1"]);
    assert_eq!(code, 0, "{out} {err}");
    let (_, out, _) = dk.docker(&["inspect", "-f", "{{.State.ExitCode}}", "d1"]);
    assert_eq!(
        out.trim(),
        "137",
        "sleep ignores SIGTERM as pid 1: SIGKILL after 1 s"
    );
    let (code, out, err) = dk.docker(&["rm", "d1"]);
    assert_eq!(code, 0, "{out} {err}");
}

//! contd as a node runs it: monitors out of contd's cgroup (a service
//! manager that kills contd's whole cgroup kills no container), readiness
//! and status over `NOTIFY_SOCKET`, the config file, logging, access to the
//! socket, adoption that a stuck monitor does not hold up.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use contd_tests::{pid_alive, TestEnv, HIERARCHIES};

/// A cgroup named `name` in every hierarchy this host has, for contd
/// itself (as systemd makes one per unit); removed on drop.
struct DaemonCgroup {
    dirs: Vec<PathBuf>,
}

impl DaemonCgroup {
    fn new(name: &str) -> Self {
        let mut dirs = Vec::new();
        for h in HIERARCHIES {
            let top = Path::new("/sys/fs/cgroup").join(h);
            if !top.join("cgroup.procs").exists() {
                continue;
            }
            let d = top.join(name);
            std::fs::create_dir_all(&d).unwrap();
            if h == "cpuset" {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(top.join(f)).unwrap();
                    std::fs::write(d.join(f), v.trim()).unwrap();
                }
            }
            dirs.push(d);
        }
        DaemonCgroup { dirs }
    }

    fn enter(&self, pid: i32) {
        for d in &self.dirs {
            std::fs::write(d.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", d.display()));
        }
    }

    fn procs(&self) -> Vec<i32> {
        let mut all: Vec<i32> = self
            .dirs
            .iter()
            .flat_map(|d| {
                std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// What systemd does on stop with `KillMode=control-group`: SIGKILL to
    /// every process in the cgroup, until none is left. Returns the pids
    /// killed.
    fn kill_all(&self) -> Vec<i32> {
        let mut killed = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let procs = self.procs();
            if procs.is_empty() {
                return killed;
            }
            assert!(Instant::now() < deadline, "cgroup still holds {procs:?}");
            for p in procs {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
                if !killed.contains(&p) {
                    killed.push(p);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DaemonCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for d in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn pid_of(env: &TestEnv, name: &str) -> i64 {
    env.inspect(name)["pid"].as_i64().unwrap()
}

#[test]
fn killing_every_process_in_contds_cgroup_kills_no_container() {
    let mut env = TestEnv::new();
    let cg = DaemonCgroup::new(&format!("{}-daemon", env.cgroup_parent));
    let contd = env.contd_pid().unwrap();
    cg.enter(contd);
    let root = env.rootfs.to_str().unwrap().to_string();
    env.ok(&["run", "-d", "--name", "a", &root, "sleep", "1000"]);
    env.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "b",
        &root,
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.2; done",
    ]);
    let (a, b) = (pid_of(&env, "a"), pid_of(&env, "b"));
    let monitors = env.monitor_pids();
    assert_eq!(monitors.len(), 2);
    // Nothing of the containers' is in contd's cgroup, in any hierarchy.
    assert_eq!(cg.procs(), vec![contd]);
    for m in &monitors {
        let own = std::fs::read_to_string(format!("/proc/{m}/cgroup")).unwrap();
        for line in own.lines() {
            assert!(
                line.ends_with(&format!(":/{}-monitors", env.cgroup_parent)),
                "monitor {m} in {line}"
            );
        }
    }

    let killed = cg.kill_all();
    assert_eq!(killed, vec![contd], "the kill reached only contd");
    assert!(!env.contd_alive());
    env.stop_contd(libc::SIGKILL);
    for p in [a, b]
        .into_iter()
        .chain(monitors.iter().map(|&m| i64::from(m)))
    {
        assert!(pid_alive(p), "{p} died with contd's cgroup");
    }

    // A new contd adopts both, with the same pids, and they still work.
    env.start_contd();
    env.wait_for("both running", 20, || {
        env.inspect("a")["status"] == "running" && env.inspect("b")["status"] == "running"
    });
    assert_eq!(pid_of(&env, "a"), a);
    assert_eq!(pid_of(&env, "b"), b);
    let out = env.ok(&["exec", "a", "echo", "still here"]);
    assert_eq!(out.trim(), "still here");
    let before = env.ok(&["logs", "b"]).lines().count();
    env.wait_for("b keeps logging", 20, || {
        env.ok(&["logs", "b"]).lines().count() > before
    });
    env.ok(&["rm", "-f", "a"]);
    env.ok(&["rm", "-f", "b"]);
    assert!(env.monitor_pids().is_empty());
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
}

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
    fn new(name: &str, hierarchies: &[&str]) -> Self {
        let mut dirs = Vec::new();
        for &h in hierarchies {
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

/// Puts contd in a cgroup of its own in `hierarchies`, runs two
/// containers, then kills every process in contd's cgroup as systemd does
/// on stop: only contd dies, and a new contd adopts both containers.
fn survives_a_kill_of_contds_cgroup(mut env: TestEnv, hierarchies: &[&str], v2: bool) {
    let cg = DaemonCgroup::new(&format!("{}-daemon", env.cgroup_parent), hierarchies);
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
        for line in own.lines().filter(|l| !v2 || l.starts_with("0::")) {
            assert!(
                line.ends_with(&format!(":/{}-monitors", env.cgroup_parent)),
                "monitor {m} in {line}"
            );
        }
    }
    if v2 {
        let init = std::fs::read_to_string(format!("/proc/{a}/cgroup")).unwrap();
        assert!(
            init.lines()
                .any(|l| l == format!("0::/{}/default/a", env.cgroup_parent)),
            "{init}"
        );
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

#[test]
fn killing_every_process_in_contds_cgroup_kills_no_container() {
    survives_a_kill_of_contds_cgroup(TestEnv::new(), &HIERARCHIES, false);
}

/// The same on a cgroup v2 host: contd, its monitors and containers run in
/// a mount namespace where `/sys/fs/cgroup` is the v2 tree alone (this
/// host's v2 hierarchy, which the test sees at `/sys/fs/cgroup/unified`).
#[test]
fn on_cgroup_v2_too_killing_contds_cgroup_kills_no_container() {
    let mut env = TestEnv::without_contd();
    env.contd_prefix = [
        "unshare",
        "-m",
        "sh",
        "-c",
        "umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"",
        "sh",
    ]
    .map(String::from)
    .to_vec();
    env.start_contd();
    survives_a_kill_of_contds_cgroup(env, &["unified"], true);
}

/// A fake service manager: the datagram socket `NOTIFY_SOCKET` names.
struct Manager {
    sock: std::os::unix::net::UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl Manager {
    fn new(env: &mut TestEnv) -> Self {
        let path = env.dir.path().join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        env.contd_env
            .push(("NOTIFY_SOCKET".into(), path.display().to_string()));
        Manager {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    /// The next message that contains `want`, within `secs`; every
    /// message is kept in `seen`.
    fn until(&mut self, want: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {want:?} from contd; got {:?}",
                self.seen
            );
            self.sock.set_read_timeout(Some(left)).unwrap();
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            println!("notify: {}", msg.replace('\n', " | "));
            self.seen.push(msg.clone());
            if msg.lines().any(|l| l == want || l.starts_with(want)) {
                return msg;
            }
        }
    }
}

fn environ(pid: i64) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
        .replace('\0', "\n")
}

#[test]
fn readiness_status_reload_watchdog_and_stopping_reach_the_service_manager() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    for n in ["a", "b", "c"] {
        env.ok(&["run", "-d", "--name", n, &root, "sleep", "1000"]);
    }
    env.stop_contd(libc::SIGKILL);
    let mut m = Manager::new(&mut env);
    env.contd_env
        .push(("WATCHDOG_USEC".into(), "400000".into()));
    env.start_contd();

    // The first word is READY, and it comes once all three are adopted:
    // its status counts them running.
    let ready = m.until("READY=1", 20);
    assert_eq!(m.seen.len(), 1, "READY=1 first: {:?}", m.seen);
    assert!(ready.contains("STATUS=3 containers, 3 running"), "{ready}");
    m.until("WATCHDOG=1", 5);

    // No child inherits the protocol's variables.
    env.ok(&["run", "-d", "--name", "d", &root, "sleep", "1000"]);
    let d = pid_of(&env, "d");
    let monitor = std::fs::read_to_string(env.state_dir.join("default/d/monitor.pid")).unwrap();
    for pid in [d, monitor.trim().parse().unwrap()] {
        let e = environ(pid);
        assert!(
            !e.contains("NOTIFY_SOCKET") && !e.contains("WATCHDOG_"),
            "{pid}: {e}"
        );
    }
    m.until("STATUS=4 containers, 4 running", 10);

    // SIGHUP: reloading, then ready again.
    let pid = nix::unistd::Pid::from_raw(env.contd_pid().unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let reloading = m.until("RELOADING=1", 10);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    m.until("READY=1", 10);
    assert!(env.contd_alive(), "SIGHUP killed contd");

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    m.until("STOPPING=1", 10);
    env.stop_contd(libc::SIGTERM);
    assert!(!env.socket.exists(), "the socket outlived contd");
    for n in ["a", "b", "c", "d"] {
        assert!(pid_alive(d), "{n} stopped with contd");
    }
    let _ = std::fs::remove_file(&m.path);
    env.contd_env.clear();
    env.start_contd();
    for n in ["a", "b", "c", "d"] {
        env.ok(&["rm", "-f", n]);
    }
}

#[test]
fn a_monitor_that_does_not_answer_delays_neither_readiness_nor_the_others() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    for n in ["a", "b", "c"] {
        env.ok(&["run", "-d", "--name", n, &root, "sleep", "1000"]);
    }
    let stuck: i32 = std::fs::read_to_string(env.state_dir.join("default/b/monitor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    env.stop_contd(libc::SIGKILL);
    let stuck_pid = nix::unistd::Pid::from_raw(stuck);
    nix::sys::signal::kill(stuck_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let mut m = Manager::new(&mut env);
    env.contd_args = vec!["--adopt-timeout".into(), "1".into()];
    let t0 = Instant::now();
    env.start_contd();
    let ready = m.until("READY=1", 20);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "READY after {took:?}");
    assert!(ready.contains("3 containers, 2 running"), "{ready}");
    assert_eq!(env.inspect("a")["status"], "running");
    assert_eq!(env.inspect("c")["status"], "running");
    let b = env.inspect("b");
    assert_eq!(b["status"], "unknown", "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("did not answer"),
        "{b}"
    );
    let stop = env.contctl(&["stop", "b"]);
    assert!(!stop.status.success());
    assert!(
        String::from_utf8_lossy(&stop.stderr).contains("does not answer"),
        "{stop:?}"
    );

    // Back: contd's background retry links to it.
    nix::sys::signal::kill(stuck_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    env.wait_for("b adopted after all", 40, || {
        env.inspect("b")["status"] == "running"
    });
    assert!(env.inspect("b")["error"].is_null());
    env.ok(&["stop", "-t", "1", "b"]);
    for n in ["a", "b", "c"] {
        env.ok(&["rm", "-f", n]);
    }
    assert!(env.monitor_pids().is_empty());
}

fn contd_with(env: &TestEnv, args: &[&str]) -> std::process::Output {
    std::process::Command::new(contd_tests::bin_dir().join("contd"))
        .args(args)
        .arg("--state-dir")
        .arg(&env.state_dir)
        .arg("--log-dir")
        .arg(&env.log_dir)
        .arg("--socket")
        .arg(&env.socket)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_bad_config_file_names_the_line_and_the_key_and_starts_nothing() {
    let env = TestEnv::without_contd();
    let file = env.dir.path().join("config.toml");
    let cases = [
        (
            "log-level = \"info\"\n# a comment\nlog-levle = \"debug\"\n",
            ":3: log-levle: unknown field",
        ),
        ("keep-logs = \"yes\"\n", ":1: keep-logs: invalid type"),
        ("log-max-size = \"lots\"\n", ":1: log-max-size: "),
        ("log-max-files = 0\n", "log-max-files: must be at least 1"),
        ("default-restart = \"sometimes\"\n", "default-restart: "),
        ("log-format = \"xml\"\n", "log-format: "),
    ];
    for (text, want) in cases {
        std::fs::write(&file, text).unwrap();
        let out = contd_with(&env, &["--config", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(want), "{text}: want {want:?} in {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!env.socket.exists() && !env.state_dir.exists(), "{text}");
    }
    // A flag is checked the same way, and a missing --config file is an error.
    let out = contd_with(&env, &["--log-max-files", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("log-max-files: must be at least 1"));
    let out = contd_with(&env, &["--config", "/nonexistent/contd.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/contd.toml"));
}

#[test]
fn sighup_reloads_what_it_can_and_says_what_needs_a_restart() {
    let mut env = TestEnv::without_contd();
    let root = env.rootfs.to_str().unwrap().to_string();
    let file = env.dir.path().join("config.toml");
    std::fs::write(
        &file,
        "default-restart = \"on-failure:2\"\nlog-max-size = \"1m\"\nlog-max-files = 2\n",
    )
    .unwrap();
    env.contd_args = vec![
        "--config".into(),
        file.display().to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    env.start_contd();
    env.ok(&["run", "-d", "--name", "a", &root, "sleep", "1000"]);
    let a = env.inspect("a");
    assert_eq!(a["restart_policy"], "on-failure:2", "{a}");
    let monitor = std::fs::read_to_string(env.state_dir.join("default/a/monitor.pid")).unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", monitor.trim()))
        .unwrap()
        .replace('\0', " ");
    assert!(
        cmdline.contains("--log-max-size 1048576 --log-max-files 2"),
        "{cmdline}"
    );

    std::fs::write(
        &file,
        "default-restart = \"no\"\nlog-max-size = \"2m\"\nlog-max-files = 2\nkeep-logs = true\nlog-level = \"warn\"\n",
    )
    .unwrap();
    let pid = nix::unistd::Pid::from_raw(env.contd_pid().unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    env.wait_for("the reload logged", 10, || {
        env.contd_log().contains("keep-logs")
    });
    let log = env.contd_log();
    // Every line is one JSON object; what changed is logged.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let has = |level: &str, text: &str| {
        lines
            .iter()
            .any(|l| l["level"] == level && l.to_string().contains(text))
    };
    assert!(
        has("INFO", "default-restart: OnFailure { max: 2 } -> No"),
        "{log}"
    );
    assert!(has("INFO", "log-max-size: 1048576 -> 2097152"), "{log}");
    assert!(
        has("INFO", "log-level: \\\"debug\\\" -> \\\"warn\\\""),
        "{log}"
    );
    assert!(has("WARN", "keep-logs"), "{log}");
    // The request of `run a` was logged once, with its peer.
    let runs: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["op"] == "run")
        .collect();
    assert_eq!(runs.len(), 1, "{log}");
    assert_eq!(runs[0]["fields"]["name"], "a");
    assert_eq!(runs[0]["fields"]["ns"], "default");
    assert_eq!(runs[0]["fields"]["uid"], 0);
    assert!(runs[0]["fields"]["pid"].as_u64().unwrap() > 0);

    // New containers get the new settings; at level warn, no info lines.
    let before = env.contd_log().lines().count();
    env.ok(&["run", "-d", "--name", "b", &root, "sleep", "1000"]);
    assert_eq!(env.inspect("b")["restart_policy"], "no");
    let monitor = std::fs::read_to_string(env.state_dir.join("default/b/monitor.pid")).unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", monitor.trim()))
        .unwrap()
        .replace('\0', " ");
    assert!(cmdline.contains("--log-max-size 2097152"), "{cmdline}");
    assert_eq!(
        env.contd_log().lines().count(),
        before,
        "{}",
        env.contd_log()
    );

    // A broken file changes nothing and contd stays up.
    std::fs::write(&file, "log-level = 3\n").unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    env.wait_for("the bad reload logged", 10, || {
        env.contd_log().contains("the running configuration stays")
    });
    assert!(env.contd_alive());
    env.ok(&["rm", "-f", "a"]);
    env.ok(&["rm", "-f", "b"]);
}

#[test]
fn logs_have_no_colour_off_a_terminal() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    env.ok(&["run", "-d", "--name", "a", &root, "true"]);
    env.ok(&["rm", "-f", "a"]);
    let log = env.contd_log();
    assert!(log.contains("op=\"run\""), "{log}");
    assert!(!log.contains('\x1b'), "ANSI escapes in a file: {log}");
}

/// The api socket's answer to a connection from `uid`/`gid` (contctl run
/// as that user).
fn ps_as(env: &TestEnv, uid: u32, gid: u32) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(contd_tests::bin_dir().join("contctl"))
        .arg("--socket")
        .arg(&env.socket)
        .arg("ps")
        .uid(uid)
        .gid(gid)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_socket_group_opens_contd_to_its_members_and_no_one_else() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut env = TestEnv::without_contd();
    // Others may reach the socket's directory (tempdirs are 0700).
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (member, other) = (65534u32, 65533u32);
    env.contd_args = vec!["--socket-group".into(), member.to_string()];
    env.start_contd();
    let meta = std::fs::metadata(&env.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), member);

    let ok = ps_as(&env, 12345, member);
    assert!(ok.status.success(), "{ok:?}");
    // The file's mode keeps others out; were it opened by mistake, the
    // credentials check still refuses them, by name.
    let shut = ps_as(&env, 12345, other);
    assert!(!shut.status.success());
    std::fs::set_permissions(&env.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = ps_as(&env, 12345, other);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains(&format!(
            "permission denied: uid 12345 is not in group {member}"
        )),
        "{err}"
    );

    // Without a group, root alone.
    env.stop_contd(libc::SIGTERM);
    env.contd_args.clear();
    env.start_contd();
    assert_eq!(
        std::fs::metadata(&env.socket).unwrap().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&env.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = ps_as(&env, 12345, member);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("permission denied: uid 12345 is not root, and contd has no socket-group"),
        "{err}"
    );
    assert!(env.ok(&["ps"]).contains("NAME"));
}

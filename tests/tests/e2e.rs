//! End to end through contctl → contd → contd-monitor → container, as root.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use contd_tests::{pid_alive, TestEnv};

#[test]
fn run_then_ps_shows_it_running_and_logs_show_its_output() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let name = env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "GREETING=hi",
        root,
        "sh",
        "-c",
        "echo $GREETING from $(hostname); echo oops >&2; exec sleep 1000",
    ]);
    assert_eq!(name.trim(), "web");

    let ps: serde_json::Value = serde_json::from_str(&env.ok(&["ps", "--format", "json"])).unwrap();
    let row = &ps.as_array().unwrap()[0];
    assert_eq!(row["name"], "web");
    assert_eq!(row["status"], "running");
    let pid = row["pid"].as_i64().unwrap();
    assert!(pid_alive(pid));
    let table = env.ok(&["ps"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web") && l.contains(" Up ")),
        "{table}"
    );

    env.wait_for("log output", 10, || {
        String::from_utf8_lossy(&env.contctl(&["logs", "web"]).stderr).contains("oops")
    });
    let logs = env.contctl(&["logs", "web"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "hi from web\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "oops\n");
    // The file itself is CRI-formatted.
    let info = env.inspect("web");
    let raw = std::fs::read_to_string(info["log_path"].as_str().unwrap()).unwrap();
    let first = raw.lines().next().unwrap();
    let fields: Vec<&str> = first.splitn(4, ' ').collect();
    assert!(
        fields[0].ends_with('Z') && fields[0].contains('T'),
        "{first}"
    );
    assert_eq!(&fields[1..], &["stdout", "F", "hi from web"]);

    env.ok(&["rm", "-f", "web"]);
}

#[test]
fn run_without_detach_returns_the_exit_code_and_output() {
    let env = TestEnv::new();
    let out = env.contctl(&[
        "run",
        "--name",
        "once",
        env.rootfs.to_str().unwrap(),
        "sh",
        "-c",
        "echo done; exit 42",
    ]);
    assert_eq!(
        out.status.code(),
        Some(42),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    let info = env.inspect("once");
    assert_eq!(info["status"], "exited");
    assert_eq!(info["exit_code"], 42);
    assert!(info["pid"].is_null());
    env.ok(&["rm", "once"]);
}

#[test]
fn survives_a_supervisor_sigkill() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        &root,
        "sh",
        "-c",
        "i=0; while true; do echo $i; i=$((i+1)); usleep 100000; done",
    ]);
    env.ok(&["run", "-d", "--name", "sleeper", &root, "sleep", "1000"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "seven",
        &root,
        "sh",
        "-c",
        "sleep 2; exit 7",
    ]);
    let before: Vec<i64> = ["counter", "sleeper"]
        .iter()
        .map(|n| env.inspect(n)["pid"].as_i64().unwrap())
        .collect();

    env.stop_contd(libc::SIGKILL);
    std::thread::sleep(Duration::from_secs(3));
    env.start_contd();

    for (n, pid) in ["counter", "sleeper"].iter().zip(&before) {
        let info = env.inspect(n);
        assert_eq!(info["status"], "running", "{n}: {info}");
        assert_eq!(info["pid"].as_i64().unwrap(), *pid, "{n} changed pid");
        assert!(pid_alive(*pid));
    }
    env.wait_for("seven to be reported exited", 10, || {
        env.inspect("seven")["status"] == "exited"
    });
    let seven = env.inspect("seven");
    assert_eq!(seven["exit_code"], 7, "{seven}");
    assert_eq!(seven["oom_killed"], false);

    // The counter's log has every number from 0 on, no gap, no repeat.
    std::thread::sleep(Duration::from_millis(300));
    let text = env.ok(&["logs", "counter"]);
    let nums: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert!(nums.len() >= 30, "only {} lines", nums.len());
    for (i, n) in nums.iter().enumerate() {
        assert_eq!(
            *n, i as u64,
            "gap or repeat in the counter's log at line {i}"
        );
    }
    for n in ["counter", "sleeper", "seven"] {
        env.ok(&["rm", "-f", n]);
    }
}

#[test]
fn stop_then_rm_leaves_nothing_behind() {
    let env = TestEnv::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--memory",
        "64m",
        env.rootfs.to_str().unwrap(),
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 1000 & wait",
    ]);
    let info = env.inspect("victim");
    let pid = info["pid"].as_i64().unwrap();
    let cg = env.cgroup_dir("memory", "default", "victim");
    assert_eq!(
        std::fs::read_to_string(cg.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (64u64 << 20).to_string()
    );
    let monitors = env.monitor_pids();
    assert_eq!(monitors.len(), 1);
    let mountinfo_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();

    // The shell has set its trap once it has started `sleep`; before that a
    // SIGTERM to a pid-namespace init without a handler is ignored.
    env.wait_for("the trap to be set", 5, || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .is_ok_and(|c| !c.trim().is_empty())
    });
    let started = std::time::Instant::now();
    env.ok(&["stop", "-t", "10", "victim"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "SIGTERM was not honoured"
    );
    assert_eq!(env.inspect("victim")["status"], "exited");
    assert_eq!(env.inspect("victim")["exit_code"], 0);
    env.ok(&["rm", "victim"]);

    assert!(!pid_alive(pid), "init {pid} still alive");
    env.wait_for("monitor exit", 5, || !pid_alive(monitors[0] as i64));
    assert!(
        !env.state_dir.join("default/victim").exists(),
        "state dir left"
    );
    assert!(
        env.leftover_cgroups().is_empty(),
        "cgroups left: {:?}",
        env.leftover_cgroups()
    );
    let mountinfo_after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo_after.contains(env.rootfs.to_str().unwrap()),
        "rootfs mount leaked"
    );
    assert_eq!(
        mountinfo_before.lines().count(),
        mountinfo_after.lines().count()
    );
    // The log goes with the container: a new one of the same name starts
    // with an empty log.
    assert!(!std::path::Path::new(info["log_path"].as_str().unwrap()).exists());
    let out = env.contctl(&["inspect", "victim"]);
    assert!(!out.status.success());
}

#[test]
fn stop_escalates_to_sigkill() {
    let env = TestEnv::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        env.rootfs.to_str().unwrap(),
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 1; done",
    ]);
    env.ok(&["stop", "-t", "1", "stubborn"]);
    let info = env.inspect("stubborn");
    assert_eq!(info["status"], "exited");
    assert_eq!(info["exit_code"], 137, "{info}");
    env.ok(&["rm", "stubborn"]);
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();

    for bad in ["../etc", "a/b", "-x", ""] {
        let flag = format!("--name={bad}");
        let out = env.contctl(&["run", "-d", &flag, root, "true"]);
        assert_eq!(out.status.code(), Some(125), "name {bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid name"), "{err}");
    }
    let out = env.contctl(&[
        "run",
        "-d",
        "--name",
        "ghost",
        "/nonexistent/rootfs",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/rootfs"), "{err}");
    // As docker: 127 for a command that is not there.
    let out = env.contctl(&["run", "-d", "--name", "noprog", root, "/no/such/program"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/program"));

    // Malformed frames straight to the api socket.
    let mut s = env.raw();
    s.write_all(&[0xff, 0xff, 0xff, 0x7f]).unwrap(); // 2 GiB frame
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let r: proto::api::Response = proto::read_frame(&mut reply.as_slice()).unwrap();
    assert!(
        matches!(r, proto::api::Response::Error(ref e) if e.message.contains("exceeds")),
        "{r:?}"
    );

    let mut s = env.raw();
    s.write_all(&5u32.to_le_bytes()).unwrap();
    s.write_all(b"junk!").unwrap();
    let r: proto::api::Response = proto::read_frame(&mut s).unwrap();
    assert!(matches!(r, proto::api::Response::Error(_)), "{r:?}");

    let mut s = env.raw();
    proto::write_frame(
        &mut s,
        &proto::Hello {
            protocol: proto::PROTOCOL_VERSION,
            software: "t".into(),
        },
    )
    .unwrap();
    let _: proto::Hello = proto::read_frame(&mut s).unwrap();
    proto::write_frame(&mut s, &(99u32, "unknown message")).unwrap();
    let r: proto::api::Response = proto::read_frame(&mut s).unwrap();
    assert!(matches!(r, proto::api::Response::Error(_)), "{r:?}");

    // Nothing was created, and contd still serves.
    let mut env = env;
    assert!(env.contd_alive());
    let ps: serde_json::Value =
        serde_json::from_str(&env.ok(&["ps", "-a", "--format", "json"])).unwrap();
    assert_eq!(ps, serde_json::json!([]));
    let entries = std::fs::read_dir(&env.state_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    let leftovers: Vec<_> = std::fs::read_dir(env.state_dir.join("default"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        leftovers.is_empty(),
        "state left: {leftovers:?} ({entries})"
    );
    assert!(env.leftover_cgroups().is_empty());
    assert!(env.monitor_pids().is_empty());
}

#[test]
fn the_default_seccomp_profile_is_compiled_once_for_every_container() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    let cache = env.state_dir.join(".cache/seccomp");
    let entries = || -> Vec<PathBuf> {
        std::fs::read_dir(&cache)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for name in ["sec1", "sec2"] {
        let out = env.ok(&[
            "run",
            "--name",
            name,
            &root,
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ]);
        assert_eq!(out.trim(), "Seccomp:\t2", "{name} runs under seccomp");
        // One program, compiled by the first monitor, reused by the second.
        assert_eq!(entries().len(), 1, "{:?}", entries());
    }
    let first = entries();
    // A new entry is renamed into place: another inode.
    let inode = |p: &PathBuf| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&first[0]);
    env.ok(&["run", "--name", "sec3", &root, "true"]);
    assert_eq!(entries(), first);
    assert_eq!(inode(&first[0]), before, "the entry was written again");
    // A new contd adopts the containers and is not confused by the cache.
    env.stop_contd(libc::SIGTERM);
    env.start_contd();
    let ps = env.ok(&["ps", "-a", "--format", "json"]);
    for name in ["sec1", "sec2", "sec3"] {
        assert!(ps.contains(name), "{ps}");
    }
    assert!(!env.contd_log().contains(".cache"), "{}", env.contd_log());
    for name in ["sec1", "sec2", "sec3"] {
        env.ok(&["rm", name]);
    }
}

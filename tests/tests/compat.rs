//! Today's contd takes over containers started by the contd of an earlier
//! release, whose monitors speak protocol 1, 2 or 3: it adopts them,
//! inspects them, reads their logs, stops and removes them, and refuses by
//! name what their monitors cannot do. The older releases are the real
//! binaries, built from this repository's history by
//! `scripts/old-releases.sh` (setup runs it) into `target/old/v<N>/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use contd_tests::{bin_dir, pid_alive, TestEnv};

fn release(v: u16) -> PathBuf {
    let dir = bin_dir()
        .parent()
        .unwrap()
        .join("old")
        .join(format!("v{v}"));
    for b in ["contd", "contd-monitor", "contctl"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: run scripts/setup.sh (it builds the older releases)",
            dir.join(b).display()
        );
    }
    dir
}

/// The older release's contctl, asserting success; returns stdout.
fn old_ctl(bins: &Path, env: &TestEnv, args: &[&str]) -> String {
    let out = Command::new(bins.join("contctl"))
        .arg("--socket")
        .arg(&env.socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "old contctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn takes_over_a_container_of_protocol(v: u16) {
    let bins = release(v);
    let mut env = TestEnv::without_contd();
    env.start_contd_from(&bins);
    let root = env.rootfs.to_str().unwrap();
    old_ctl(
        &bins,
        &env,
        &[
            "run",
            "-d",
            "--name",
            "c",
            root,
            "sh",
            "-c",
            "echo hi-from-v; exec sleep 1000",
        ],
    );
    let before: serde_json::Value =
        serde_json::from_str(&old_ctl(&bins, &env, &["inspect", "c"])).unwrap();
    let pid = before["pid"].as_i64().unwrap();
    let monitor: i32 = std::fs::read_to_string(env.state_dir.join("default/c/monitor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The old contd goes; its container and monitor stay.
    env.stop_contd(libc::SIGTERM);
    assert!(pid_alive(pid) && pid_alive(monitor.into()));

    env.start_contd();
    let v_now = env.inspect("c");
    assert_eq!(v_now["status"], "running", "{v_now}");
    assert_eq!(v_now["pid"], pid, "{v_now}");
    assert_eq!(v_now["created_at"], before["created_at"], "{v_now}");
    env.wait_for("the log line", 10, || {
        env.ok(&["logs", "c"]).contains("hi-from-v")
    });
    assert_eq!(env.ok(&["ps"]).lines().count(), 2);
    // What the old monitor cannot do is refused by name, and changes nothing.
    let paused = env.contctl(&["pause", "c"]);
    assert!(!paused.status.success());
    let err = String::from_utf8_lossy(&paused.stderr);
    assert!(err.contains(&format!("speaks protocol {v}")), "{err}");
    assert_eq!(env.inspect("c")["status"], "running");
    // Stop: sleep as pid 1 ignores SIGTERM, so the grace period ends in SIGKILL.
    env.ok(&["stop", "-t", "1", "c"]);
    let stopped = env.inspect("c");
    assert_eq!(stopped["status"], "exited", "{stopped}");
    assert_eq!(stopped["exit_code"], 137, "{stopped}");
    assert!(!pid_alive(pid));
    env.ok(&["rm", "c"]);
    assert!(!env.state_dir.join("default/c").exists());
    env.wait_for("the old monitor to exit", 10, || !pid_alive(monitor.into()));
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
    assert!(env.contctl(&["inspect", "c"]).status.code() != Some(0));
}

#[test]
fn takes_over_a_container_whose_monitor_speaks_protocol_1() {
    takes_over_a_container_of_protocol(1);
}

#[test]
fn takes_over_a_container_whose_monitor_speaks_protocol_2() {
    takes_over_a_container_of_protocol(2);
}

#[test]
fn takes_over_a_container_whose_monitor_speaks_protocol_3() {
    takes_over_a_container_of_protocol(3);
}

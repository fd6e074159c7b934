//! What a hostile or careless local user could do to contd, each test
//! named after what used to break.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;

use contd_tests::{bin_dir, rss_kb, TestEnv};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_containers_env_is_not_readable_by_other_users() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "-e",
        "TOKEN=hunter2",
        root,
        "sleep",
        "1000",
    ]);
    let dir = env.state_dir.join("default/s");
    for d in [
        env.state_dir.clone(),
        env.state_dir.join("default"),
        dir.clone(),
        dir.join("bundle"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in [dir.join("bundle/config.json"), dir.join("meta.json")] {
        assert!(std::fs::read_to_string(&f).unwrap().contains("hunter2"));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let sock = std::fs::symlink_metadata(&env.socket).unwrap();
    assert!(sock.file_type().is_socket());
    assert_eq!(sock.permissions().mode() & 0o7777, 0o600);
    env.ok(&["rm", "-f", "s"]);
}

#[test]
fn uid_4294967295_is_refused_instead_of_running_as_root() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    for user in ["4294967295", "0:4294967295"] {
        let out = env.contctl(&["run", "-d", "--name", "r", "-u", user, root, "id"]);
        assert_eq!(out.status.code(), Some(125));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("user") && err.contains("4294967295 is not a valid id"),
            "{err}"
        );
        assert!(
            !env.contctl(&["inspect", "r"]).status.success(),
            "created anyway"
        );
    }
    env.ok(&["run", "-d", "--name", "w", root, "sleep", "1000"]);
    let out = env.contctl(&["exec", "-u", "4294967295", "w", "id"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("user: uid 4294967295 is not a valid id"),
        "{err}"
    );
    assert!(env
        .ok(&["exec", "-u", "1000", "w", "id"])
        .starts_with("uid=1000"));
    env.ok(&["rm", "-f", "w"]);
}

#[test]
fn socket_flag_never_deletes_a_file_that_is_not_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("precious");
    std::fs::write(&file, "data").unwrap();
    let out = Command::new(bin_dir().join("contd"))
        .arg("--socket")
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[test]
fn a_run_cut_before_its_state_was_complete_does_not_keep_the_name() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    env.stop_contd(libc::SIGKILL);
    // What a contd killed inside `run` leaves: the hidden dir being made
    // (today), or a state dir with a bundle and no meta.json (before).
    let ns = env.state_dir.join("default");
    for d in [ns.join(".web.creating/bundle"), ns.join("old/bundle")] {
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), "{}").unwrap();
    }
    env.start_contd();
    assert!(!ns.join(".web.creating").exists());
    assert!(!ns.join("old").exists());
    assert_eq!(env.ok(&["ps", "-a"]).lines().count(), 1);
    for name in ["web", "old"] {
        env.ok(&["run", "-d", "--name", name, &root, "sleep", "1000"]);
        assert_eq!(env.inspect(name)["status"], "running");
        // A retry of a run whose answer was lost says what happened.
        let again = env.contctl(&["run", "-d", "--name", name, &root, "sleep", "1000"]);
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(
            err.contains("a run whose answer was lost may have created it"),
            "{err}"
        );
        env.ok(&["rm", "-f", name]);
    }
}

/// SIGKILLs the env's only monitor and waits until it is gone.
fn kill_monitor(env: &TestEnv) {
    let monitor = env.monitor_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    env.wait_for("the monitor to die", 10, || {
        !contd_tests::pid_alive(monitor.into())
    });
}

/// The monitor of "d" is SIGKILLed (while contd runs, or while it is down
/// and then adopted): init runs on, orphaned.
fn dead_monitor(restart_contd: bool) {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "d",
        root,
        "sh",
        "-c",
        "trap '' TERM; exec sleep 1000",
    ]);
    let init = env.inspect("d")["pid"].as_i64().unwrap();
    if restart_contd {
        env.stop_contd(libc::SIGKILL);
    }
    kill_monitor(&env);
    if restart_contd {
        env.start_contd();
    }
    env.wait_for("status unknown", 10, || {
        env.inspect("d")["status"] == "unknown"
    });
    let v = env.inspect("d");
    // Nothing invented: no exit code, init's pid, and why.
    assert!(v["exit_code"].is_null(), "{v}");
    assert_eq!(v["pid"], init, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("init still runs"),
        "{v}"
    );
    assert!(contd_tests::pid_alive(init));
    // ps shows it: it may well be running.
    assert!(env
        .ok(&["ps"])
        .lines()
        .any(|l| l.starts_with("d ") && l.contains("Unknown")));
    // What needs the monitor says so; rm without -f refuses.
    let paused = env.contctl(&["pause", "d"]);
    assert!(!paused.status.success());
    let err = String::from_utf8_lossy(&paused.stderr);
    assert!(err.contains("is unknown, not running"), "{err}");
    let stats = env.contctl(&["stats", "d"]);
    let err = String::from_utf8_lossy(&stats.stderr);
    assert!(err.contains("monitor is gone"), "{err}");
    // top reads the cgroup: it still works.
    assert!(env.ok(&["top", "d"]).contains("sleep 1000"));
    assert!(!env.contctl(&["rm", "d"]).status.success());
    assert!(contd_tests::pid_alive(init));
    // stop reaches init: TERM is ignored, so the grace period ends in KILL.
    env.ok(&["stop", "-t", "1", "d"]);
    env.wait_for("init to die", 10, || !contd_tests::pid_alive(init));
    let v = env.inspect("d");
    assert_eq!(v["status"], "exited", "{v}");
    assert!(v["exit_code"].is_null(), "{v}");
    env.ok(&["rm", "d"]);
    assert!(!env.state_dir.join("default/d").exists());
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
}

#[test]
fn a_dead_monitor_is_listed_unknown_and_stop_and_rm_still_reach_init() {
    dead_monitor(false);
}

#[test]
fn a_monitor_that_died_while_contd_was_down_is_adopted_as_unknown() {
    dead_monitor(true);
}

/// The monitor dies while the container is paused, or created and never
/// started: stop and rm still end it and leave nothing.
fn dead_monitor_in_state(create: &[&str], pause: bool) {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let mut args = create.to_vec();
    args.extend(["--name", "s", root, "sleep", "1000"]);
    env.ok(&args);
    if pause {
        env.ok(&["pause", "s"]);
    }
    let init = env.inspect("s")["pid"].as_i64().unwrap();
    kill_monitor(&env);
    env.wait_for("status unknown", 10, || {
        env.inspect("s")["status"] == "unknown"
    });
    assert_eq!(env.inspect("s")["pid"], init);
    env.ok(&["stop", "-t", "1", "s"]);
    env.wait_for("init to die", 10, || !contd_tests::pid_alive(init));
    env.ok(&["rm", "s"]);
    assert!(!env.state_dir.join("default/s").exists());
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
}

#[test]
fn a_monitor_dead_while_its_container_is_paused_does_not_leave_it_frozen_for_ever() {
    dead_monitor_in_state(&["run", "-d"], true);
}

#[test]
fn a_monitor_dead_before_its_container_started_leaves_an_init_stop_reaches() {
    dead_monitor_in_state(&["create"], false);
}

#[test]
fn rm_force_kills_an_orphaned_init_and_removes_everything() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "-d", "--name", "o", root, "sleep", "1000"]);
    let init = env.inspect("o")["pid"].as_i64().unwrap();
    kill_monitor(&env);
    env.wait_for("status unknown", 10, || {
        env.inspect("o")["status"] == "unknown"
    });
    env.ok(&["rm", "-f", "o"]);
    assert!(!contd_tests::pid_alive(init));
    assert!(!env.contctl(&["inspect", "o"]).status.success());
    assert!(!env.state_dir.join("default/o").exists());
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
}

/// An api connection past its hello.
fn hello(env: &TestEnv) -> std::os::unix::net::UnixStream {
    let mut s = env.raw();
    proto::write_frame(&mut s, &proto::hello("hostile")).unwrap();
    let _: proto::Hello = proto::read_frame(&mut s).unwrap();
    s
}

#[test]
fn a_stalled_partial_frame_costs_only_what_arrived_and_is_dropped() {
    use std::io::{Read, Write};
    let env = TestEnv::new();
    let pid = env.contd_pid().unwrap();
    env.ok(&["ps"]);
    let before = rss_kb(pid);
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = hello(&env);
        // A request announced at nearly a megabyte, of which 3 bytes come.
        s.write_all(&((1u32 << 20) - 16).to_le_bytes()).unwrap();
        s.write_all(b"abc").unwrap();
        held.push(s);
    }
    // contd has taken them all in: a new client is answered.
    env.ok(&["ps"]);
    let after = rss_kb(pid);
    assert!(
        after < before + 16 * 1024,
        "contd grew from {before} kB to {after} kB"
    );
    // A frame that stalls is given up: contd closes the connection.
    let s = &mut held[0];
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        s.read(&mut buf).unwrap(),
        0,
        "the stalled connection stays open"
    );
}

#[test]
fn past_its_connection_limit_contd_says_so_and_answers_again_after() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "-d", "--name", "x", root, "sleep", "1000"]);
    let held: Vec<_> = (0..512).map(|_| hello(&env)).collect();
    let out = env.contctl(&["ps"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("512 connections at most"), "{err}");
    drop(held);
    env.wait_for("ps to answer again", 10, || {
        env.contctl(&["ps"]).status.success()
    });
    assert!(env.ok(&["ps"]).lines().any(|l| l.starts_with("x ")));
    env.ok(&["rm", "-f", "x"]);
}

#[test]
fn idle_connections_to_a_monitor_never_lock_contd_out() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "-d", "--name", "m", root, "sleep", "1000"]);
    // contd is restarted after the flood: its new link must get in too.
    env.stop_contd(libc::SIGKILL);
    let sock = env.state_dir.join("default/m/monitor.sock");
    let idle: Vec<_> = (0..70)
        .map(|_| std::os::unix::net::UnixStream::connect(&sock).unwrap())
        .collect();
    env.start_contd();
    let v = env.inspect("m");
    assert_eq!(v["status"], "running", "{v}");
    assert!(env.ok(&["ps"]).lines().any(|l| l.starts_with("m ")));
    env.ok(&["stop", "-t", "1", "m"]);
    assert_eq!(env.inspect("m")["status"], "exited");
    env.ok(&["rm", "m"]);
    drop(idle);
}

#[test]
fn a_missing_working_directory_is_created_as_docker_does() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "--name", "w", "-w", "/srv/app/data", root, "pwd"]);
    assert_eq!(env.ok(&["logs", "w"]).trim(), "/srv/app/data");
    env.ok(&["rm", "w"]);
    let _ = std::fs::remove_dir_all(env.rootfs.join("srv"));
}

#[test]
fn the_harness_cleans_up_a_paused_container_a_failing_test_left() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "-d", "--name", "p", root, "sleep", "1000"]);
    env.ok(&["pause", "p"]);
    let init = env.inspect("p")["pid"].as_i64().unwrap();
    let parent = std::path::Path::new("/sys/fs/cgroup/freezer").join(&env.cgroup_parent);
    assert!(parent.exists());
    // What a test that fails here leaves to the harness.
    drop(env);
    assert!(!parent.exists(), "{} left", parent.display());
    assert!(!contd_tests::pid_alive(init));
}

//! The supervisor's operations through contctl and the socket: create and
//! start, pause surviving a contd restart, restart policies across a
//! SIGKILL of contd, events to two subscribers (one stalled), mounts,
//! top, update, logs tail/follow, name reuse.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use contd_tests::TestEnv;

fn status(env: &TestEnv, name: &str) -> String {
    env.inspect(name)["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn create_then_start_then_pause_survives_a_contd_restart() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["create", "--name", "c", root, "sleep", "1000"]);
    assert_eq!(status(&env, "c"), "created");
    assert!(env.inspect("c")["started_at"].is_null());
    env.ok(&["start", "c"]);
    assert_eq!(status(&env, "c"), "running");
    assert!(env.inspect("c")["started_at"].is_string());
    env.ok(&["pause", "c"]);
    assert_eq!(status(&env, "c"), "paused");
    let freezer = env
        .cgroup_dir("freezer", "default", "c")
        .join("freezer.state");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    env.stop_contd(libc::SIGKILL);
    env.start_contd();
    assert_eq!(status(&env, "c"), "paused");
    env.ok(&["unpause", "c"]);
    assert_eq!(status(&env, "c"), "running");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");
    let top = env.ok(&["top", "c"]);
    assert!(top.lines().any(|l| l.ends_with("sleep 1000")), "{top}");
    env.ok(&["update", "--memory", "32m", "--pids-limit", "50", "c"]);
    let mem = env
        .cgroup_dir("memory", "default", "c")
        .join("memory.limit_in_bytes");
    assert_eq!(
        std::fs::read_to_string(mem).unwrap().trim(),
        (32 << 20).to_string()
    );
    let pids = env.cgroup_dir("pids", "default", "c").join("pids.max");
    assert_eq!(std::fs::read_to_string(pids).unwrap().trim(), "50");
    let bad = env.contctl(&["update", "--pids-limit", "0", "c"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pids_limit"));
    env.ok(&["rm", "-f", "c"]);
}

#[test]
fn on_failure_restarts_with_backoff_and_survives_a_contd_kill() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    // Each run prints a line and fails; the 4th run succeeds and stays.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "r",
        "--restart",
        "on-failure",
        "--label",
        "app=x",
        "-v",
        &format!("{}:/state", env.dir.path().display()),
        root,
        "sh",
        "-c",
        "echo run; echo x >> /state/runs; [ $(wc -l < /state/runs) -ge 4 ] && exec sleep 1000; exit 3",
    ]);
    env.wait_for("a restart", 10, || {
        env.inspect("r")["restart_count"].as_u64().unwrap_or(0) >= 1
    });
    // contd dies between an exit and its scheduled restart (or anywhere
    // around it): the next one takes the pending restart up.
    env.stop_contd(libc::SIGKILL);
    env.start_contd();
    env.wait_for("the 4th run", 20, || {
        let i = env.inspect("r");
        i["status"] == "running" && i["restart_count"] == 3
    });
    let i = env.inspect("r");
    assert_eq!(i["restart_policy"], "on-failure");
    assert_eq!(i["labels"]["app"], "x");
    assert!(i["next_restart_at"].is_null());
    // One log for every run.
    let logs = env.ok(&["logs", "r"]);
    assert_eq!(logs.matches("run\n").count(), 4, "{logs}");
    // An explicit stop holds the policy off.
    env.ok(&["stop", "-t", "1", "r"]);
    assert_eq!(status(&env, "r"), "exited");
    assert_eq!(env.inspect("r")["restart_count"], 3);
    env.ok(&["rm", "r"]);
}

#[test]
fn events_reach_two_subscribers_and_a_stalled_one_blocks_nobody() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["create", "--name", "pre", root, "true"]);
    let spawn = || {
        Command::new(contd_tests::bin_dir().join("contctl"))
            .args([
                "--socket",
                env.socket.to_str().unwrap(),
                "events",
                "--replay",
            ])
            .args(["--format", "json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut reader = spawn();
    // The stalled one never reads its pipe.
    let mut stalled = spawn();
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    // The replay of the state proves the subscription is up.
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (&first["name"], &first["type"]),
        (&"pre".into(), &"created".into())
    );
    env.ok(&["run", "-d", "--name", "e", root, "sh", "-c", "exit 7"]);
    let mut seen = Vec::new();
    while let Some(Ok(l)) = lines.next() {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        if v["name"] == "e" {
            seen.push(v["type"].as_str().unwrap().to_string());
            if v["type"] == "exited" {
                assert_eq!(v["exit_code"], 7);
                break;
            }
        }
    }
    assert_eq!(seen, ["created", "started", "exited"]);
    // Many events later the stalled subscriber has blocked nothing.
    for i in 0..20 {
        let n = format!("x{i}");
        env.ok(&["run", "-d", "--name", &n, root, "true"]);
        env.ok(&["rm", "-f", &n]);
    }
    assert_eq!(status(&env, "e"), "exited");
    let _ = (reader.kill(), stalled.kill(), reader.wait(), stalled.wait());
    env.ok(&["rm", "e"]);
    env.ok(&["rm", "-f", "pre"]);
}

#[test]
fn mounts_limits_and_identity_reach_the_container() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let data = env.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "hello").unwrap();
    let out = Command::new(contd_tests::bin_dir().join("contctl"))
        .args(["--socket", env.socket.to_str().unwrap(), "run", "--name", "m"])
        .args(["-v", &format!("{}:/data:ro", data.display())])
        .args(["--tmpfs", "/scratch:size=1m", "--read-only", "-w", "/data"])
        .args(["-u", "1000:1000", "--hostname", "box", "--cpus", "0.5"])
        .args(["--cap-drop", "ALL", "--entrypoint", "sh -c"])
        .arg(root)
        .arg(
            "cat f; echo; touch /data/g 2>/dev/null || echo ro-bind; touch /x 2>/dev/null || echo ro-root; \
             df -k /scratch | tail -1; id -u; hostname; pwd; grep CapEff /proc/self/status",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "hello");
    assert_eq!(lines[1], "ro-bind");
    assert_eq!(lines[2], "ro-root");
    assert!(
        lines[3].split_whitespace().nth(1) == Some("1024"),
        "{}",
        lines[3]
    );
    assert_eq!(&lines[4..7], ["1000", "box", "/data"]);
    assert!(lines[7].ends_with("0000000000000000"), "{}", lines[7]);
    assert!(!data.join("g").exists());
    let i = env.inspect("m");
    assert_eq!(i["config"]["mounts"][0]["target"], "/data");
    assert_eq!(i["config"]["cpus"], 0.5);
    // Invalid fields are refused by name, and nothing is created.
    for (args, want) in [
        (vec!["-v", "/nonexistent-src:/d"], "mounts[0].source"),
        (vec!["--cap-add", "NOPE"], "cap_add"),
        (vec!["-u", "nobody-here"], "user"),
        (vec!["--network", "/etc/passwd"], "network"),
    ] {
        let mut a = vec!["run", "--name", "bad"];
        a.extend(args);
        a.extend([root, "true"]);
        let out = env.contctl(&a);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
        assert!(!env.state_dir.join("default/bad").exists());
    }
    env.ok(&["rm", "m"]);
}

#[test]
fn logs_tail_follow_and_name_reuse() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "l",
        root,
        "sh",
        "-c",
        "seq 1 5; exec sleep 1000",
    ]);
    env.wait_for("output", 10, || env.ok(&["logs", "l"]).contains("5\n"));
    assert_eq!(env.ok(&["logs", "--tail", "2", "l"]), "4\n5\n");
    let follow = Command::new(contd_tests::bin_dir().join("contctl"))
        .args([
            "--socket",
            env.socket.to_str().unwrap(),
            "logs",
            "-f",
            "--tail",
            "1",
            "l",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The follower ends with the container.
    env.ok(&["kill", "l"]);
    let out = follow.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("5\n"));
    env.ok(&["rm", "l"]);
    // A new container of the same name shows none of the old lines.
    env.ok(&["run", "--name", "l", root, "echo", "new"]);
    assert_eq!(env.ok(&["logs", "l"]), "new\n");
    env.ok(&["rm", "l"]);
}

/// The CRI records of a log file whose text is `text`.
fn records(log: &std::path::Path, text: &str) -> Vec<i64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(&format!(" F {text}")))
        .map(|l| proto::time::parse_rfc3339(l.split(' ').next().unwrap()).unwrap())
        .collect()
}

#[test]
fn a_restart_pending_when_contd_is_killed_runs_after_its_restart() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "p",
        "--restart",
        "on-failure:6",
        root,
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    let log = std::path::PathBuf::from(env.inspect("p")["log_path"].as_str().unwrap());
    // Backoff doubles from 100 ms: wait for an exit whose restart is
    // scheduled at least 0.7 s ahead (the 4th or 5th), then kill contd.
    let mut pending = serde_json::Value::Null;
    env.wait_for("an exit with a restart 0.7 s ahead", 20, || {
        let i = env.inspect("p");
        let due = i["next_restart_at"]
            .as_str()
            .and_then(proto::time::parse_rfc3339);
        let ahead = due.is_some_and(|d| d - proto::time::now_nanos() > 700_000_000);
        if i["status"] == "exited" && ahead {
            pending = i;
        }
        ahead && pending != serde_json::Value::Null
    });
    env.stop_contd(libc::SIGKILL);
    let count = pending["restart_count"].as_u64().unwrap() as usize;
    let due = proto::time::parse_rfc3339(pending["next_restart_at"].as_str().unwrap()).unwrap();
    // The kill fell between the exit and the restart: one run per restart
    // done (the first run plus count - 1), the pending one not among them.
    assert_eq!(records(&log, "run").len(), count, "{pending}");
    assert!(count >= 4, "{pending}");
    // Nobody restarts it while contd is down, even after it was due.
    env.wait_for("the restart to be overdue", 10, || {
        proto::time::now_nanos() > due + 200_000_000
    });
    assert_eq!(records(&log, "run").len(), count);
    env.start_contd();
    let again = env.inspect("p");
    assert!(
        again["restart_count"].as_u64().unwrap() as usize >= count,
        "{again}"
    );
    // The pending restart runs, then the policy goes on to its maximum.
    env.wait_for("the pending restart", 10, || {
        records(&log, "run").len() > count
    });
    assert!(records(&log, "run")[count] >= due);
    env.wait_for("the 6th and last restart to end", 20, || {
        let i = env.inspect("p");
        i["status"] == "exited" && i["restart_count"] == 6 && i["next_restart_at"].is_null()
    });
    assert_eq!(records(&log, "run").len(), 7);
    env.ok(&["rm", "p"]);
}

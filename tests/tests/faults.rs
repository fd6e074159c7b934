//! The fault harness, short run (CI): contd is SIGKILLed at seeded random
//! moments — some of them during its own start-up — while clients run, stop
//! and remove containers. After every restart: `ps -a` answers; every
//! container a client was told exists is there, running, or exited with
//! exactly the code it was programmed to exit with; every acknowledged
//! removal stayed done; every container listed is in a known state; a
//! counter's log has every line once and an interactive shell keeps its
//! variable. At the
//! end `rm -f` works on everything listed and nothing is left: no monitor,
//! no cgroup, no state dir.
//!
//! `CONTD_FAULT_SEED` and `CONTD_FAULT_KILLS` (default 1 and 10) make a
//! longer run by hand, e.g. `CONTD_FAULT_KILLS=100 cargo test --test faults
//! -- --nocapture`; it prints its figures.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use contd_tests::{attach, bin_dir, input, until, Rng, TestEnv};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the harness expects of a container it was told exists.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Runs until stopped.
    Running,
    /// Exits by itself with this code.
    Exits(i64),
    /// Stopped by a client (acknowledged): exited.
    Stopped,
    /// A stop was cut: running or exited, any code.
    Uncertain,
}

#[derive(Default, Debug)]
struct Figures {
    kills: u64,
    kills_in_startup: u64,
    requests: u64,
    acked: u64,
    cut: u64,
    cut_present: u64,
    cut_absent: u64,
    checked: u64,
}

#[test]
fn seeded_kills_of_contd_lose_no_container_and_leave_nothing() {
    let seed = env_u64("CONTD_FAULT_SEED", 1).max(1);
    let kills = env_u64("CONTD_FAULT_KILLS", 10);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    let ctl = bin_dir().join("contctl");
    let socket = env.socket.clone();
    let mut want: BTreeMap<String, Want> = BTreeMap::new();
    let mut removed: Vec<String> = Vec::new();
    let mut f = Figures::default();
    // A counter that logs through every kill: its log must come out whole.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        &root,
        "sh",
        "-c",
        "i=0; while :; do echo $i; i=$((i+1)); sleep 0.005; done",
    ]);
    // An interactive shell with a variable set: it must still be there.
    env.ok(&["run", "-d", "-i", "--name", "shell", &root, "sh"]);
    let mut a = attach(&env, "shell");
    input(&mut a, b"X=kept-42; echo set-$X\n");
    until(&mut a, "set-kept-42");
    drop(a);
    for round in 0..kills {
        let mut cut_runs: Vec<String> = Vec::new();
        // Three or four requests at once, each its own contctl.
        let mut ops: Vec<(String, Vec<String>, Option<Want>)> = Vec::new();
        for j in 0..(3 + rng.below(2)) {
            let name = format!("c{round}-{j}");
            let (args, w) = match rng.below(5) {
                0 | 1 => {
                    let code = rng.below(100) as i64;
                    let script = format!("echo run; sleep 0.{}; exit {code}", rng.below(5));
                    (
                        vec!["run", "-d", "--name", &name, &root, "sh", "-c", &script]
                            .into_iter()
                            .map(String::from)
                            .collect(),
                        Some(Want::Exits(code)),
                    )
                }
                2 => (
                    vec!["run", "-d", "--name", &name, &root, "sleep", "1000"]
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    Some(Want::Running),
                ),
                _ => {
                    // Something done to one the harness knows of: rm -f,
                    // stop, kill, or what changes nothing (exec, inspect).
                    let known: Vec<&String> = want.keys().collect();
                    if known.is_empty() {
                        continue;
                    }
                    let target = known[rng.below(known.len() as u64) as usize].clone();
                    let t = target.clone();
                    match rng.below(5) {
                        0 => (vec!["rm".into(), "-f".into(), t], None),
                        1 => (
                            vec!["stop".into(), "-t".into(), "1".into(), t],
                            Some(Want::Stopped),
                        ),
                        2 => (
                            vec!["kill".into(), "-s".into(), "KILL".into(), t],
                            Some(Want::Stopped),
                        ),
                        3 => (vec!["exec".into(), t, "true".into()], None),
                        _ => (vec!["inspect".into(), t], None),
                    }
                }
            };
            ops.push((name, args, w));
        }
        let threads: Vec<_> = ops
            .into_iter()
            .map(|(name, args, w)| {
                let (ctl, socket) = (ctl.clone(), socket.clone());
                std::thread::spawn(move || {
                    let ok = Command::new(ctl)
                        .arg("--socket")
                        .arg(socket)
                        .args(&args)
                        .output()
                        .unwrap()
                        .status
                        .success();
                    (name, args, w, ok)
                })
            })
            .collect();
        // The kill: somewhere in the requests' first 120 ms.
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        env.stop_contd(libc::SIGKILL);
        f.kills += 1;
        for t in threads {
            let (name, args, w, ok) = t.join().unwrap();
            f.requests += 1;
            let target = args.last().unwrap().clone();
            match (args[0].as_str(), ok) {
                ("run", true) => {
                    f.acked += 1;
                    want.insert(name, w.unwrap());
                }
                ("run", false) => {
                    // Cut: it may have happened. Whatever it left must be
                    // listed in a known state (checked below) and go with rm -f.
                    f.cut += 1;
                    want.remove(&name);
                    cut_runs.push(name);
                }
                ("rm", true) => {
                    f.acked += 1;
                    want.remove(&target);
                    removed.push(target);
                }
                ("stop" | "kill", true) => {
                    f.acked += 1;
                    if want.contains_key(&target) {
                        want.insert(target, Want::Stopped);
                    }
                }
                // They change nothing, done or not (an exec of an exited
                // container fails, and that is no cut).
                ("exec" | "inspect", ok) => {
                    if ok {
                        f.acked += 1;
                    }
                }
                ("rm", false) => {
                    // It may be gone or not: no longer checked.
                    f.cut += 1;
                    want.remove(&target);
                }
                (_, _) => {
                    f.cut += 1;
                    if want.contains_key(&target) {
                        want.insert(target, Want::Uncertain);
                    }
                }
            }
        }
        env.start_contd();
        // Sometimes contd is killed again while it adopts.
        if rng.below(3) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(10)));
            env.stop_contd(libc::SIGKILL);
            f.kills += 1;
            f.kills_in_startup += 1;
            env.start_contd();
        }
        let listed = check(&env, &want, &removed, &mut f, round);
        for n in cut_runs {
            if listed.contains(&n) {
                f.cut_present += 1;
            } else {
                f.cut_absent += 1;
            }
        }
    }
    // The shell kept its variable through every kill.
    let mut a = attach(&env, "shell");
    input(&mut a, b"echo got-$X\n");
    until(&mut a, "got-kept-42");
    drop(a);
    // The counter's log: every number once, in order, none missing.
    let log = env.ok(&["logs", "counter"]);
    let lines: Vec<&str> = log.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, i.to_string(), "counter log line {i}");
    }
    assert!(lines.len() > 10, "the counter barely ran: {}", lines.len());
    // Everything listed goes with rm -f, and nothing is left.
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["ps", "-a", "--format", "json"])).unwrap();
    for c in list.as_array().unwrap() {
        env.ok(&["rm", "-f", c["name"].as_str().unwrap()]);
    }
    assert_eq!(env.ok(&["ps", "-a"]).lines().count(), 1);
    env.wait_for("every monitor to exit", 20, || {
        env.monitor_pids()
            .iter()
            .all(|p| !contd_tests::pid_alive((*p).into()))
    });
    let ns = env.state_dir.join("default");
    let left: Vec<_> = std::fs::read_dir(&ns)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state dirs left: {left:?}");
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
    println!(
        "fault harness (seed {seed}): {} kills ({} during start-up), {} requests: \
         {} acknowledged, {} cut ({} left a container, {} nothing); \
         {} container checks; the counter's {} lines whole; violations 0",
        f.kills,
        f.kills_in_startup,
        f.requests,
        f.acked,
        f.cut,
        f.cut_present,
        f.cut_absent,
        f.checked,
        lines.len()
    );
}

/// Checks the invariants after a restart; returns the names listed.
fn check(
    env: &TestEnv,
    want: &BTreeMap<String, Want>,
    removed: &[String],
    f: &mut Figures,
    round: u64,
) -> Vec<String> {
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["ps", "-a", "--format", "json"])).unwrap();
    let listed: BTreeMap<String, serde_json::Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    for (name, c) in &listed {
        let status = c["status"].as_str().unwrap();
        assert!(
            ["created", "running", "paused", "exited", "unknown"].contains(&status),
            "round {round}: {name} is {status}"
        );
    }
    for name in removed {
        assert!(
            !listed.contains_key(name),
            "round {round}: removed {name} is back"
        );
    }
    for (name, w) in want {
        f.checked += 1;
        let c = listed
            .get(name)
            .unwrap_or_else(|| panic!("round {round}: acknowledged {name} is gone"));
        match w {
            Want::Running => assert_eq!(c["status"], "running", "round {round}: {c}"),
            Want::Uncertain => {}
            Want::Stopped => {
                env.wait_for(&format!("{name} stopped"), 20, || {
                    env.inspect(name)["status"] == "exited"
                });
            }
            Want::Exits(code) => {
                env.wait_for(&format!("{name} to exit"), 20, || {
                    env.inspect(name)["status"] == "exited"
                });
                let v = env.inspect(name);
                assert_eq!(v["exit_code"], *code, "round {round}: {v}");
            }
        }
    }
    listed.into_keys().collect()
}

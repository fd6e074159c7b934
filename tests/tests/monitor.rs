//! The monitor's exit record and process hygiene, through contctl → contd →
//! contd-monitor, as root.

use std::time::Duration;

use contd_tests::TestEnv;

fn pid_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << 24) != 0
}

#[test]
fn oom_kill_is_recorded() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    // A 64 MiB shell variable in an 8 MiB cgroup.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "hog",
        "--memory",
        "8m",
        root,
        "sh",
        "-c",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
    ]);
    env.wait_for("the hog to exit", 20, || {
        env.inspect("hog")["status"] == "exited"
    });
    let info = env.inspect("hog");
    assert_eq!(info["oom_killed"], true, "{info}");
    assert_eq!(info["exit_code"], 137, "{info}");
    // And a container that simply exits is not OOM-killed.
    env.ok(&["run", "--name", "fine", "--memory", "8m", root, "true"]);
    assert_eq!(env.inspect("fine")["oom_killed"], false);
}

#[test]
fn monitor_is_protected_from_the_oom_killer_but_its_container_is_not() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "-d", "--name", "c", root, "sleep", "1000"]);
    let pid = env.inspect("c")["pid"].as_i64().unwrap();
    let adj = |p: i64| {
        std::fs::read_to_string(format!("/proc/{p}/oom_score_adj"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        adj(pid),
        "0",
        "the container must not inherit the monitor's score"
    );
    let monitors = env.monitor_pids();
    assert_eq!(monitors.len(), 1);
    if has_cap_sys_resource() {
        assert_eq!(adj(monitors[0] as i64), "-1000");
    } else {
        // This sandbox's root cannot lower scores: the monitor keeps the one
        // it inherited, and still starts.
        eprintln!(
            "no CAP_SYS_RESOURCE here: monitor score {}",
            adj(monitors[0] as i64)
        );
    }
    env.ok(&["rm", "-f", "c"]);
}

#[test]
fn monitor_lingers_then_releases_itself_and_the_record_stays() {
    let mut env = TestEnv::new();
    env.stop_contd(libc::SIGTERM);
    env.contd_args = vec!["--monitor-linger".into(), "1".into()];
    env.start_contd();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "-d", "--name", "brief", root, "sh", "-c", "exit 5"]);
    let monitors = env.monitor_pids();
    assert_eq!(monitors.len(), 1);
    // Nobody removes it: after the linger time the monitor releases the
    // container (cgroup gone) and exits.
    env.wait_for("the monitor to leave", 10, || {
        !pid_alive(monitors[0] as i64)
    });
    env.wait_for("the cgroup to go", 5, || {
        !env.cgroup_dir("memory", "default", "brief").exists()
    });
    let info = env.inspect("brief");
    assert_eq!(info["status"], "exited", "{info}");
    assert_eq!(info["exit_code"], 5, "{info}");
    // contd restarted meanwhile still finds the record.
    env.stop_contd(libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(100));
    env.start_contd();
    assert_eq!(env.inspect("brief")["exit_code"], 5);
    env.ok(&["rm", "brief"]);
}

//! The monitor's exit record and process hygiene, through contctl → contd →
//! contd-monitor, as root.

use std::time::Duration;

use contd_tests::{pid_alive, TestEnv};

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

#[test]
fn logs_rotate_by_size_and_logs_reads_across_the_files() {
    let mut env = TestEnv::new();
    env.stop_contd(libc::SIGTERM);
    env.contd_args = vec![
        "--log-max-size".into(),
        "4096".into(),
        "--log-max-files".into(),
        "3".into(),
    ];
    env.start_contd();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "--name", "chatty", root, "seq", "1", "2000"]);
    let log = std::path::PathBuf::from(env.inspect("chatty")["log_path"].as_str().unwrap());
    let rotated = |k: u32| std::path::PathBuf::from(format!("{}.{k}", log.display()));
    assert!(log.exists() && rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists(), "only 3 files are kept");
    for f in [log.clone(), rotated(1), rotated(2)] {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.len() <= 4096,
            "{} is {} bytes",
            f.display(),
            text.len()
        );
        for line in text.lines() {
            let parts: Vec<&str> = line.splitn(4, ' ').collect();
            assert_eq!(parts.len(), 4, "not a CRI record: {line:?}");
            assert_eq!((parts[1], parts[2]), ("stdout", "F"), "{line:?}");
        }
    }
    // `logs` reads the kept files oldest first: a gapless tail ending at 2000.
    let out = env.ok(&["logs", "chatty"]);
    let nums: Vec<u32> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(nums.last(), Some(&2000));
    assert!(
        nums.len() > 100 && nums.len() < 2000,
        "{} lines",
        nums.len()
    );
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in {nums:?}"
    );
    env.ok(&["rm", "chatty"]);
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `RssAnon`).
fn status_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hundred_megabytes_of_output_keep_every_line_and_the_monitor_small() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    // 100 000 lines of 1000 bytes: 100 MB through the monitor. The first
    // 1 000 lines warm it up (the monitor maps the code that logs on first
    // use: shared file pages, not growth); RSS is taken after them, while
    // the container pauses, and again after the other 99 MB, before the
    // container exits (the exit maps the code that writes its record).
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flood",
        root,
        "sh",
        "-c",
        "l=\"$(head -c 999 /dev/zero | tr '\\0' x)\"; yes \"$l\" | head -n 1000; \
         sleep 1; yes \"$l\" | head -n 99000; sleep 1",
    ]);
    let monitor = env.monitor_pids()[0];
    let log = std::path::PathBuf::from(env.inspect("flood")["log_path"].as_str().unwrap());
    let count = |text: &[u8]| {
        text.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    };
    env.wait_for("the first 1000 lines", 10, || {
        std::fs::read(&log).is_ok_and(|t| count(&t) >= 1000)
    });
    let (before, anon_before) = (status_kib(monitor, "VmRSS"), status_kib(monitor, "RssAnon"));
    env.wait_for("all 100 000 lines", 60, || {
        std::fs::read(&log).is_ok_and(|t| count(&t) >= 100_000)
    });
    let (after, anon_after) = (status_kib(monitor, "VmRSS"), status_kib(monitor, "RssAnon"));
    env.ok(&["wait", "flood"]);
    let text = std::fs::read(&log).unwrap();
    assert_eq!(count(&text), 100_000, "every line is in the log");
    // Its own memory (heap, stack: RssAnon) must not grow with the volume.
    // VmRSS also counts shared code pages: the monitor drops those it used
    // while setting up and maps back what it runs, so a path first taken
    // late (a full pipe, a short read) may add some, bounded by the binary.
    assert!(
        anon_after <= anon_before + 256,
        "monitor RssAnon grew from {anon_before} kB to {anon_after} kB"
    );
    assert!(
        after <= before + 1024,
        "monitor RSS grew from {before} kB to {after} kB"
    );
    eprintln!(
        "monitor VmRSS {before} -> {after} kB, RssAnon {anon_before} -> {anon_after} kB \
         (after 1 MB -> after 100 MB)"
    );
    env.ok(&["rm", "flood"]);
    let _ = std::fs::remove_file(&log);
}

/// A tmpfs mounted for one test, lazily unmounted on drop (failure too).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0755").as_str()),
        )
        .unwrap();
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_disk_drops_log_records_reports_them_and_blocks_nothing() {
    let mut env = TestEnv::new();
    env.stop_contd(libc::SIGTERM);
    // The log dir on a 64 kB filesystem; ~400 kB of output goes to it.
    let _disk = Tmpfs::mount(&env.log_dir, "64k");
    env.start_contd();
    let root = env.rootfs.to_str().unwrap();
    let script = "i=0; while [ $i -lt 4000 ]; do \
                  echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; \
                  i=$((i+1)); done; echo done >&2; exit 3";
    env.ok(&["run", "-d", "--name", "full", root, "sh", "-c", script]);
    let started = std::time::Instant::now();
    let out = env.ok(&["wait", "full"]);
    // The container ran to its end at its own pace and exited by itself.
    assert_eq!(out.trim(), "3");
    assert!(started.elapsed() < Duration::from_secs(20));
    let v = env.inspect("full");
    assert_eq!(v["exit_code"], 3, "{v}");
    let log = &v["log"];
    let err = log["error"].as_str().unwrap_or_default();
    assert!(err.contains("No space left on device"), "{v}");
    assert!(log["error_at"].is_string(), "{v}");
    // `failing` says whether the last write failed: the last record is
    // small and may fit in the part of a page the disk still has. (The
    // writer's unit test checks it on a device where every write fails.)
    assert!(log["failing"].is_boolean(), "{v}");
    let dropped_records = log["dropped_records"].as_u64().unwrap();
    let dropped_bytes = log["dropped_bytes"].as_u64().unwrap();
    assert!(dropped_records > 0 && dropped_bytes > 0, "{v}");
    // What fit is there, whole records only; with what was dropped it
    // accounts for every line.
    let text = std::fs::read_to_string(v["log_path"].as_str().unwrap()).unwrap();
    assert!(
        text.starts_with(|c: char| c.is_ascii_digit()),
        "{text:.200}"
    );
    assert!(text.contains(" stdout F line-0-x"), "{text:.200}");
    let written = text.lines().count() as u64;
    for line in text.lines() {
        assert!(
            line.ends_with("xxxx") || line.ends_with("done"),
            "torn: {line:?}"
        );
    }
    assert_eq!(written + dropped_records, 4001, "{v}");
    // With the monitor gone, contd reads the status it left at exit.
    let mon: i32 = env.monitor_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    env.wait_for("the monitor to die", 10, || !pid_alive(mon.into()));
    let again = env.inspect("full");
    assert_eq!(again["log"], *log, "{again}");
    env.ok(&["rm", "full"]);
}

#[test]
fn inspect_reports_a_healthy_log() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "--name", "fine", root, "echo", "hi"]);
    let v = env.inspect("fine");
    assert_eq!(
        v["log"],
        serde_json::json!({
            "error": null, "error_at": null, "failing": false,
            "dropped_records": 0, "dropped_bytes": 0
        }),
        "{v}"
    );
    env.ok(&["rm", "fine"]);
}

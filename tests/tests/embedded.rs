//! contd embedded in another program: `Supervisor::start` in this test's
//! own tokio runtime and every operation of `SupervisorHandle`, with no
//! socket client in between. What each call did is checked where a user
//! would see it: in the container, in its cgroup, in its log, in the
//! events.

use std::path::Path;
use std::time::Duration;

use contd_tests::{bin_dir, pid_alive, TestEnv};
use proto::api::{ContainerConfig, EventFilter, EventKind, Interactive, LogOptions, Stream};
use proto::monitor::ExecRequest;
use proto::{ErrorKind, Resources, Status};
use supervisor::{
    Config, SessionInput, SessionOutput, SessionReader, Supervisor, SupervisorHandle,
};
use tokio::time::timeout;

const NS: &str = "emb";
const T: Duration = Duration::from_secs(20);

fn config(env: &TestEnv, name: &str, args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        ns: NS.into(),
        name: name.into(),
        rootfs: env.rootfs.display().to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..ContainerConfig::default()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Reads a session until `done` says so; returns everything it saw.
async fn until(
    s: &mut SessionReader,
    mut done: impl FnMut(&SessionOutput) -> bool,
) -> Vec<SessionOutput> {
    let mut seen = Vec::new();
    loop {
        let out = timeout(T, s.next())
            .await
            .expect("session output in time")
            .expect("session still open")
            .expect("session output");
        let stop = done(&out);
        seen.push(out);
        if stop {
            return seen;
        }
    }
}

async fn status(h: &SupervisorHandle, name: &str) -> Status {
    h.inspect(NS, name).await.unwrap().status
}

#[test]
fn every_operation_through_an_embedded_supervisor() {
    let env = TestEnv::without_contd();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // No api socket: the handle is the only way in.
        let settings = Config::builder()
            .state_dir(env.state_dir.clone())
            .log_dir(env.log_dir.clone())
            .monitor_bin(bin_dir().join("contd-monitor"))
            .cgroup_parent(env.cgroup_parent.clone())
            .no_socket()
            .build()
            .unwrap();
        let sup = Supervisor::start(settings).await.unwrap();
        assert!(!env.socket.exists());
        let h = sup.handle();
        let mut events = h
            .events(EventFilter {
                ns: Some(NS.into()),
                name: Some("a".into()),
                ..EventFilter::default()
            })
            .await
            .unwrap();

        // create, then start.
        let script = "echo hello; exec sleep 1000";
        let d = h
            .create(config(&env, "a", &["sh", "-c", script]))
            .await
            .unwrap();
        assert_eq!(d.status, Status::Created);
        assert!(d.started_at.is_none() && d.pid.is_some());
        h.start(NS, "a").await.unwrap();
        let d = h.inspect(NS, "a").await.unwrap();
        assert_eq!(d.status, Status::Running);
        assert!(d.started_at.is_some());
        let init = d.pid.unwrap();
        assert!(pid_alive(init.into()));

        // list (one namespace and all), namespaces.
        let names = |l: Vec<proto::api::ContainerDetails>| {
            l.into_iter().map(|d| d.name).collect::<Vec<_>>()
        };
        assert_eq!(names(h.list(Some(NS)).await.unwrap()), ["a"]);
        assert!(names(h.list(None).await.unwrap()).contains(&"a".to_string()));
        assert!(h.namespaces().await.unwrap().contains(&NS.to_string()));
        let unknown = h.inspect(NS, "nope").await.unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::NotFound);

        // logs: followed until the line is there.
        let mut logs = h
            .logs(
                NS,
                "a",
                LogOptions {
                    follow: true,
                    ..LogOptions::default()
                },
            )
            .await
            .unwrap();
        let chunk = timeout(T, logs.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(
            (chunk.stream, chunk.data.as_slice()),
            (Stream::Stdout, &b"hello\n"[..])
        );
        drop(logs);

        // top, stats, update.
        // The shell printed hello just before it execs sleep: polled.
        let deadline = std::time::Instant::now() + T;
        loop {
            let top = h.top(NS, "a").await.unwrap();
            if top
                .iter()
                .any(|p| p.pid == init && p.command == "sleep 1000")
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{top:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let st = h.stats(NS, "a").await.unwrap();
        assert!(st.pids_current >= 1 && st.memory_usage > 0, "{st:?}");
        h.update(
            NS,
            "a",
            Resources {
                pids_limit: Some(42),
                ..Resources::default()
            },
        )
        .await
        .unwrap();
        let pids_max = env.cgroup_dir("pids", NS, "a").join("pids.max");
        assert_eq!(read(&pids_max), "42");
        let bad = h
            .update(
                NS,
                "a",
                Resources {
                    pids_limit: Some(0),
                    ..Resources::default()
                },
            )
            .await
            .unwrap_err();
        assert!(bad.message.contains("pids_limit"), "{bad:?}");
        assert_eq!(read(&pids_max), "42");

        // pause, resume: the freezer says so.
        let freezer = env.cgroup_dir("freezer", NS, "a").join("freezer.state");
        h.pause(NS, "a").await.unwrap();
        assert_eq!(status(&h, "a").await, Status::Paused);
        assert_eq!(read(&freezer), "FROZEN");
        h.resume(NS, "a").await.unwrap();
        assert_eq!(status(&h, "a").await, Status::Running);
        assert_eq!(read(&freezer), "THAWED");

        // exec: output and exit code.
        let (mut s, _w) = h
            .exec(
                NS,
                "a",
                ExecRequest {
                    args: vec!["sh".into(), "-c".into(), "echo in-exec; exit 5".into()],
                    env: Vec::new(),
                    cwd: None,
                    user: None,
                    tty: None,
                    stdin: false,
                },
            )
            .await
            .unwrap()
            .split();
        let seen = until(&mut s, |o| matches!(o, SessionOutput::ExecExited { .. })).await;
        assert!(
            seen.iter().any(
                |o| matches!(o, SessionOutput::ExecOutput { data, .. } if data == b"in-exec\n")
            ),
            "{seen:?}"
        );
        assert!(
            matches!(seen.last(), Some(SessionOutput::ExecExited { code: 5, .. })),
            "{seen:?}"
        );

        // attach with stdin: what goes in comes back out.
        let mut b = config(&env, "b", &["cat"]);
        b.interactive = Interactive {
            tty: None,
            stdin: true,
        };
        h.run(b).await.unwrap();
        let (mut s, mut w) = h.attach(NS, "b", true, None).await.unwrap().split();
        until(&mut s, |o| *o == SessionOutput::Attached).await;
        w.send(SessionInput::Input(b"ping\n".to_vec()))
            .await
            .unwrap();
        until(&mut s, |o| {
            matches!(o, SessionOutput::Output { data, .. } if data.windows(4).any(|w| w == b"ping"))
        })
        .await;
        drop((s, w));

        // resize: the container's terminal has the new size.
        let mut t = config(&env, "t", &["sleep", "1000"]);
        t.interactive = Interactive {
            tty: Some((24, 80)),
            stdin: true,
        };
        let t_pid = h.run(t).await.unwrap().pid.unwrap();
        h.resize(NS, "t", 30, 100).await.unwrap();
        let tty = std::fs::File::open(format!("/proc/{t_pid}/fd/0")).unwrap();
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ fills the winsize it is given.
        let r = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&tty),
                libc::TIOCGWINSZ,
                &mut ws,
            )
        };
        assert_eq!((r, ws.ws_row, ws.ws_col), (0, 30, 100));

        // kill and wait; stop with a grace period; run and wait.
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.wait(NS, "a").await })
        };
        h.kill(NS, "a", libc::SIGKILL).await.unwrap();
        let rec = timeout(T, waiter).await.unwrap().unwrap().unwrap();
        assert_eq!((rec.code, rec.signal), (137, Some(libc::SIGKILL)));
        assert!(!pid_alive(init.into()));
        h.stop(NS, "b", Duration::from_secs(5)).await.unwrap();
        assert_eq!(status(&h, "b").await, Status::Exited);
        h.run(config(&env, "r", &["sh", "-c", "exit 3"]))
            .await
            .unwrap();
        assert_eq!(timeout(T, h.wait(NS, "r")).await.unwrap().unwrap().code, 3);
        let log_status = h.log_status(NS, "r").await.unwrap();
        assert_eq!(log_status.dropped_records, 0);

        // remove: the container, its state dir and its log are gone.
        let log = env.log_dir.join(NS).join("a.log");
        assert!(log.exists());
        h.remove(NS, "a", false).await.unwrap();
        assert!(!env.state_dir.join(NS).join("a").exists());
        assert!(!log.exists());
        assert_eq!(
            h.inspect(NS, "a").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        for n in ["b", "t", "r"] {
            h.remove(NS, n, true).await.unwrap();
        }
        assert!(h.list(Some(NS)).await.unwrap().is_empty());

        // The events of "a", in order.
        let mut kinds = Vec::new();
        while kinds.last() != Some(&"removed".to_string()) {
            let e = timeout(T, events.next()).await.unwrap().unwrap().unwrap();
            assert_eq!((e.ns.as_str(), e.name.as_str()), (NS, "a"));
            if let EventKind::Exited { code, .. } = e.kind {
                assert_eq!(code, 137);
            }
            kinds.push(e.kind.word().to_string());
        }
        assert_eq!(
            kinds,
            ["created", "started", "paused", "resumed", "exited", "removed"]
        );
        sup.shutdown().await;
    });
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
    assert!(env.monitor_pids().is_empty());
}

/// `examples/service_manager.rs`, run as a user would: it starts two
/// services, prints their events, exits leaving them running; run again
/// (also after a kill -9) it adopts them with the same pids.
#[test]
fn the_service_manager_example_survives_its_own_restart() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut env = TestEnv::without_contd();
    let example = bin_dir().join("examples/service_manager");
    assert!(
        example.exists(),
        "{} missing: cargo build --workspace --bins --examples",
        example.display()
    );
    let state = env.dir.path().join("sm");
    // The harness cleans up what the example left, as for a contd.
    env.state_dir = state.join("containers");
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let manager = |extra: &[&str]| {
        let mut c = Command::new(&example);
        c.arg("--rootfs")
            .arg(&env.rootfs)
            .arg("--state")
            .arg(&state)
            .arg("--cgroup-parent")
            .arg(&env.cgroup_parent)
            .args(extra)
            // contd-monitor is found on PATH (it is not beside the example).
            .env("PATH", &path)
            .stdin(Stdio::null());
        c
    };
    let pid_in = |out: &str, what: &str| -> i64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in:\n{out}"));
        line.rsplit("pid ")
            .next()
            .and_then(|p| p.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line}"))
    };

    let first = manager(&["--for", "4"]).output().unwrap();
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let ticker = pid_in(&out, "started ticker");
    pid_in(&out, "started flaky");
    for want in [
        "event flaky exited 3",
        "event flaky restarting (attempt 1",
        "event flaky started",
        "leaving the services running",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    assert!(pid_alive(ticker), "the ticker stopped with the manager");

    // Run again, then kill -9 it once it has adopted the services.
    let mut second = manager(&[]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(second.stdout.take().unwrap()).lines();
    let adopted = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("adopted ticker"))
        .expect("the second run adopts the ticker");
    assert_eq!(pid_in(&adopted, "adopted ticker"), ticker, "{adopted}");
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(pid_alive(ticker));

    let third = manager(&["--for", "0.5"]).output().unwrap();
    let out = String::from_utf8_lossy(&third.stdout).into_owned();
    assert_eq!(pid_in(&out, "adopted ticker (Running"), ticker, "{out}");
    assert!(out.contains("adopted flaky"), "{out}");

    let down = manager(&["--down"]).output().unwrap();
    let out = String::from_utf8_lossy(&down.stdout).into_owned();
    assert!(
        out.contains("removed ticker") && out.contains("removed flaky"),
        "{out}"
    );
    assert!(!pid_alive(ticker));
    assert!(env.monitor_pids().is_empty());
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
}

//! contctl as a docker user drives it: a foreground `run` streams its
//! output as it comes (stdout and stderr apart), passes its input on with
//! `-i` (the end of it too), passes signals on, and exits with the
//! container's code.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contd_tests::{bin_dir, wait_code, Pty, TestEnv};

fn contctl(env: &TestEnv) -> Command {
    let mut c = Command::new(bin_dir().join("contctl"));
    c.arg("--socket").arg(&env.socket);
    c
}

/// Sends `sig` to process `pid`.
fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

#[test]
fn a_foreground_run_streams_its_output_as_it_comes() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let mut child = contctl(&env)
        .args(["run", "--name", "live", root, "sh", "-c"])
        .arg("echo first; echo oops >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second; exit 4")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // The container still runs (it waits for /tmp/go): the line came live.
    assert_eq!(line, "first\n");
    assert_eq!(env.inspect("live")["status"], "running");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut eline = String::new();
    err.read_line(&mut eline).unwrap();
    assert_eq!(eline, "oops\n");
    env.ok(&["exec", "live", "touch", "/tmp/go"]);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "second\n");
    assert_eq!(wait_code(&mut child, 20), 4);
    env.ok(&["rm", "live"]);
}

#[test]
fn the_end_of_input_reaches_the_container() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let mut child = contctl(&env)
        .args([
            "run",
            "-i",
            "--name",
            "cat",
            root,
            "sh",
            "-c",
            "cat; echo done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    // stdin is dropped: end of input.
    let code = wait_code(&mut child, 20);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "hello\nworld\ndone\n");
    assert_eq!(code, 0);
    env.ok(&["rm", "cat"]);
}

#[test]
fn signals_to_a_foreground_run_reach_the_container() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let script = "trap 'echo got INT; exit 7' INT; echo ready; while true; do sleep 0.05; done";
    // A foreground run of `script` as `name`, once it said "ready".
    let ready = |extra: &[&str], name: &str| {
        let mut cmd = contctl(&env);
        cmd.arg("run")
            .args(extra)
            .args(["--name", name, root, "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        // SIGINT as a terminal's user has it, whatever this test inherited
        // (a shell's background job starts with SIGINT ignored).
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        (child, out)
    };
    let (mut child, mut out) = ready(&[], "sig");
    signal(child.id() as i32, nix::sys::signal::Signal::SIGINT);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got INT\n");
    assert_eq!(wait_code(&mut child, 20), 7);

    // --sig-proxy=false: the signal stays with contctl (which dies of it),
    // the container runs on.
    let (mut child, _out) = ready(&["--sig-proxy=false"], "nosig");
    signal(child.id() as i32, nix::sys::signal::Signal::SIGINT);
    wait_code(&mut child, 20);
    assert_eq!(env.inspect("nosig")["status"], "running");
    env.ok(&["rm", "-f", "sig"]);
    env.ok(&["rm", "-f", "nosig"]);
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn several_names_unique_prefixes_and_docker_style_ps() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    for n in ["web-1", "web-2", "db"] {
        env.ok(&[
            "run",
            "-d",
            "--label",
            &format!("app={n}"),
            "--name",
            n,
            root,
            "sleep",
            "1000",
        ]);
    }
    // Newest first; docker's words; -q; filters.
    let ps = env.ok(&["ps"]);
    let names: Vec<&str> = ps
        .lines()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["db", "web-2", "web-1"], "{ps}");
    assert!(ps.lines().next().unwrap().starts_with("NAME"), "{ps}");
    assert!(ps.lines().nth(1).unwrap().contains(" Up "), "{ps}");
    assert!(ps.contains("\"sleep 1000\""), "{ps}");
    assert!(ps.contains(" ago"), "{ps}");
    assert_eq!(env.ok(&["ps", "-q"]), "db\nweb-2\nweb-1\n");
    assert_eq!(
        env.ok(&["ps", "--format", "{{.Name}}:{{.Status}}:{{.Labels.app}}"]),
        "db:running:db\nweb-2:running:web-2\nweb-1:running:web-1\n"
    );
    let pid = env.ok(&["inspect", "--format", "{{.Pid}}", "db"]);
    assert_eq!(pid.trim(), env.inspect("db")["pid"].to_string());
    let bad = env.contctl(&["inspect", "-f", "{{.Nope}}", "db"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(stderr(&bad).contains("no field \"Nope\""), "{bad:?}");
    assert_eq!(
        env.ok(&["ps", "-q", "--filter", "name=web"]),
        "web-2\nweb-1\n"
    );
    assert_eq!(env.ok(&["ps", "-q", "-f", "label=app=db"]), "db\n");
    assert_eq!(
        env.ok(&["ps", "-q", "-f", "name=web", "-f", "label=app=web-1"]),
        "web-1\n"
    );

    // A unique prefix stands for the name; an ambiguous one says so.
    assert_eq!(env.inspect("d")["name"], "db");
    let amb = env.contctl(&["stop", "web"]);
    assert_eq!(amb.status.code(), Some(125));
    assert!(
        stderr(&amb).contains("names several containers (web-1, web-2)"),
        "{amb:?}"
    );
    assert_eq!(env.inspect("web-1")["status"], "running");

    // Several names: each done, a missing one reported, the rest still done.
    let out = env.contctl(&["kill", "web-1", "nosuch", "web-2"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(stdout(&out), "web-1\nweb-2\n");
    assert!(stderr(&out).contains("no container \"nosuch\""), "{out:?}");
    env.wait_for("both killed", 20, || {
        env.inspect("web-1")["status"] == "exited" && env.inspect("web-2")["status"] == "exited"
    });
    assert_eq!(
        env.ok(&["ps", "-q", "-f", "status=exited"]),
        "web-2\nweb-1\n"
    );
    // inspect: an array, one object per name.
    let both: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "web-1", "web-2"])).unwrap();
    assert_eq!(both.as_array().unwrap().len(), 2);
    assert_eq!(both[1]["exit_code"], 137);
    assert_eq!(
        env.ok(&["rm", "-f", "web-1", "web-2", "db"]),
        "web-1\nweb-2\ndb\n"
    );
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn env_from_the_host_and_sizes_as_docker_spells_them() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let out = contctl(&env)
        .args(["run", "--name", "e", "-e", "FROM_HOST", "-e", "UNSET_HERE", "-e", "X=1"])
        .args(["--memory", "64mb", root, "sh", "-c"])
        .arg("echo \"$FROM_HOST|${UNSET_HERE-unset}|$X\"; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
        .env("FROM_HOST", "host value")
        .env_remove("UNSET_HERE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("host value|unset|1"));
    // The container's own cgroup limit, as the container sees it (a
    // cgroup namespace roots it at /sys/fs/cgroup/memory).
    let limit = lines.next().unwrap_or("");
    let want = (64u64 << 20).to_string();
    if limit != want {
        let cg = env
            .cgroup_dir("memory", "default", "e")
            .join("memory.limit_in_bytes");
        assert_eq!(
            std::fs::read_to_string(cg).unwrap_or_default().trim(),
            want,
            "{text}"
        );
    }
    env.ok(&["rm", "e"]);
}

#[test]
fn errors_say_what_to_do() {
    let env = TestEnv::without_contd();
    let out = env.contctl(&["ps"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out),
        format!(
            "contctl: cannot reach contd at {}: is it running? (no such socket)\n",
            env.socket.display()
        )
    );
    // A socket nobody serves.
    let _stale = std::os::unix::net::UnixListener::bind(&env.socket).unwrap();
    drop(_stale);
    let out = env.contctl(&["ps"]);
    assert!(
        stderr(&out).contains("is it running? (connection refused)"),
        "{out:?}"
    );
    // Completions come from the same definition as the parser.
    for shell in ["bash", "zsh", "fish"] {
        let out = env.contctl(&["completion", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(stdout(&out).contains("contctl"), "{shell}");
        assert!(stdout(&out).contains("sig-proxy"), "{shell}");
    }
}

#[test]
fn a_terminal_follows_the_window_and_detach_keys_work() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let (mut pty, slave) = Pty::new(30, 100);
    let mut run = Pty::spawn(
        &slave,
        contctl(&env).args([
            "run",
            "-it",
            "--detach-keys",
            "ctrl-a,d",
            "--name",
            "w",
            root,
            "sh",
        ]),
    );
    drop(slave);
    pty.size_becomes("30 100");
    // The window grows: SIGWINCH (a terminal sends it to its foreground
    // group; this pty is nobody's controlling terminal, so the test does).
    pty.resize(40, 120);
    signal(run.id() as i32, nix::sys::signal::Signal::SIGWINCH);
    pty.size_becomes("40 120");
    pty.write(b"export MARK=kept\r");
    // ctrl-a d: detached, the container runs on.
    pty.write(&[0x01, b'd']);
    assert_eq!(wait_code(&mut run, 20), 0);
    assert_eq!(env.inspect("w")["status"], "running");

    // attach from a window of another size: the container takes it at once.
    let (mut pty, slave) = Pty::new(20, 70);
    let mut att = Pty::spawn(&slave, contctl(&env).args(["attach", "w"]));
    drop(slave);
    pty.size_becomes("20 70");
    pty.write(b"echo $MARK\r");
    assert!(pty.until("kept", 10), "{}", pty.seen);
    // docker's default detach keys.
    pty.write(&[0x10, 0x11]);
    assert_eq!(wait_code(&mut att, 20), 0);
    env.ok(&["rm", "-f", "w"]);
}

#[test]
fn restart_version_system_info_and_env_files() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let file = env.dir.path().join("app.env");
    std::fs::write(&file, "# settings\nA=1\n\nB=two words\nFROM_HOST\n").unwrap();
    let out = contctl(&env)
        .args(["run", "--name", "envf", "--env-file"])
        .arg(&file)
        .args([
            "-e",
            "A=override",
            "-m",
            "32m",
            root,
            "sh",
            "-c",
            "echo \"$A|$B|$FROM_HOST\"",
        ])
        .env("FROM_HOST", "h")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "override|two words|h\n");
    let bad = env.dir.path().join("bad.env");
    std::fs::write(&bad, "OK=1\n=nokey\n").unwrap();
    let out = contctl(&env)
        .args(["run", "--env-file"])
        .arg(&bad)
        .args([root, "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("bad.env line 2"), "{out:?}");

    env.ok(&["run", "-d", "--name", "r", root, "sleep", "1000"]);
    let before = env.inspect("r")["pid"].as_i64().unwrap();
    assert_eq!(env.ok(&["restart", "-t", "1", "r"]), "r\n");
    let after = env.inspect("r");
    assert_eq!(after["status"], "running");
    assert_ne!(after["pid"].as_i64().unwrap(), before);

    let v = env.ok(&["version"]);
    let want_client = format!("Client: contctl {} (protocol", env!("CARGO_PKG_VERSION"));
    assert!(v.starts_with(&want_client), "{v}");
    assert!(v.contains("Server: contd "), "{v}");

    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["system", "info", "--format", "json"])).unwrap();
    assert_eq!(info["containers"], 2);
    assert_eq!(info["namespaces"]["default"]["running"], 1);
    assert_eq!(info["namespaces"]["default"]["exited"], 1);
    let text = env.ok(&["system", "info"]);
    assert!(text.contains("  default: 1 exited, 1 running"), "{text}");
    // JSON wherever a listing or an object is printed.
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(v["server"]["protocol"], proto::PROTOCOL_VERSION);
    let top: serde_json::Value =
        serde_json::from_str(&env.ok(&["top", "--format", "json", "r"])).unwrap();
    assert_eq!(top[0]["command"], "sleep 1000");
    // A namespace with no containers: an empty listing, and a hint.
    let other = env.contctl(&["--ns", "nosuch", "ps"]);
    assert_eq!(other.status.code(), Some(0));
    assert_eq!(stdout(&other).lines().count(), 1, "{}", stdout(&other));
    assert!(
        stderr(&other).contains("namespace \"nosuch\" holds no containers; these do: default"),
        "{}",
        stderr(&other)
    );
    env.ok(&["rm", "-f", "r", "envf"]);
}

#[test]
fn rm_removes_the_container_after_its_exit_even_without_contctl() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let gone = |name: &str| {
        !env.contctl(&["inspect", name]).status.success()
            && !env.state_dir.join("default").join(name).exists()
            && !env
                .log_dir
                .join("default")
                .join(format!("{name}.log"))
                .exists()
    };
    // Foreground: the output, the code, then nothing left.
    let out = contctl(&env)
        .args([
            "run",
            "--rm",
            "--name",
            "fg",
            root,
            "sh",
            "-c",
            "echo hi; exit 3",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(out.status.code(), Some(3));
    env.wait_for("fg removed", 20, || gone("fg"));

    // Detached: removed when it exits, here by a kill.
    env.ok(&["run", "-d", "--rm", "--name", "bg", root, "sleep", "1000"]);
    assert_eq!(env.inspect("bg")["status"], "running");
    env.ok(&["kill", "bg"]);
    env.wait_for("bg removed", 20, || gone("bg"));

    // contctl killed while the container runs: contd still removes it.
    let mut child = contctl(&env)
        .args(["run", "--rm", "--name", "orphan", root, "sh", "-c"])
        .arg("echo started; while [ ! -e /tmp/done ]; do sleep 0.05; done")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    child.kill().unwrap();
    child.wait().unwrap();
    env.ok(&["exec", "orphan", "touch", "/tmp/done"]);
    env.wait_for("orphan removed", 20, || gone("orphan"));
    assert!(env.monitor_pids().is_empty());
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
    // The name is free again.
    env.ok(&["run", "--name", "fg", root, "true"]);
    env.ok(&["rm", "fg"]);
}

#[test]
fn rm_of_a_container_that_exited_while_contd_was_down_happens_at_adoption() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    env.ok(&[
        "run", "-d", "--rm", "--name", "late", &root, "sleep", "1000",
    ]);
    let pid = env.inspect("late")["pid"].as_i64().unwrap();
    env.stop_contd(libc::SIGKILL);
    signal(pid as i32, nix::sys::signal::Signal::SIGKILL);
    env.wait_for("init gone", 20, || !contd_tests::pid_alive(pid));
    env.start_contd();
    env.wait_for("late removed", 20, || {
        !env.contctl(&["inspect", "late"]).status.success()
            && !env.state_dir.join("default/late").exists()
    });
    assert!(env.monitor_pids().is_empty());
}

#[test]
fn a_missing_or_unexecutable_command_exits_127_or_126_as_docker() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    for (args, code, message) in [
        (
            vec!["nosuchcmd"],
            127,
            "contctl: exec \"nosuchcmd\": executable file not found in $PATH\n",
        ),
        (
            vec!["/no/such/file"],
            127,
            "contctl: exec \"/no/such/file\": no such file or directory\n",
        ),
        (
            vec!["/bin"],
            126,
            "contctl: exec \"/bin\": permission denied (not an executable file)\n",
        ),
    ] {
        for detach in [false, true] {
            let mut cmd = contctl(&env);
            cmd.arg("run");
            if detach {
                cmd.arg("-d");
            }
            let out = cmd
                .arg(root)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(code), "{args:?} {out:?}");
            assert_eq!(stderr(&out), message, "{args:?}");
        }
    }
    // Nothing is left of the failed runs.
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    assert!(env.monitor_pids().is_empty());
}

#[test]
fn stats_shows_cpu_memory_and_processes() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        root,
        "sh",
        "-c",
        "while true; do :; done",
    ]);
    env.ok(&["run", "-d", "--name", "idle", root, "sleep", "1000"]);
    // Every running container by default; CPU % over the half second.
    let rounds: serde_json::Value =
        serde_json::from_str(&env.ok(&["stats", "--no-stream", "--format", "json"])).unwrap();
    let by = |n: &str| {
        rounds
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {rounds}"))
            .clone()
    };
    let (busy, idle) = (by("busy"), by("idle"));
    assert!(busy["cpu_percent"].as_f64().unwrap() > 10.0, "{busy}");
    assert!(idle["cpu_percent"].as_f64().unwrap() < 10.0, "{idle}");
    assert_eq!(busy["memory_limit"], 64u64 << 20);
    assert!(idle["pids_current"].as_u64().unwrap() >= 1);
    let table = env.ok(&["stats", "--no-stream", "busy"]);
    let line = table.lines().nth(1).unwrap();
    assert!(
        line.starts_with("busy") && line.contains(" / 64MiB"),
        "{table}"
    );
    assert!(
        !table.contains('\x1b'),
        "no escapes off a terminal: {table:?}"
    );
    env.ok(&["rm", "-f", "busy", "idle"]);
}

#[test]
fn an_attached_terminal_survives_a_contd_restart() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    let (mut pty, slave) = Pty::new(24, 80);
    let mut run = Pty::spawn(
        &slave,
        contctl(&env).args(["run", "-it", "--name", "s", &root, "sh"]),
    );
    drop(slave);
    pty.size_becomes("24 80");
    pty.write(b"export MARK=before\r");
    // Echoed: it reached the container (input contd held when it died
    // is contd's to lose; input contctl holds is not).
    assert!(pty.until("export MARK=before", 10), "{}", pty.seen);
    env.stop_contd(libc::SIGKILL);
    assert!(pty.until("reconnecting", 10), "{}", pty.seen);
    // Typed while contd is away: held, then sent.
    pty.write(b"echo typed-$MARK-in-gap\r");
    env.start_contd();
    assert!(pty.until("typed-before-in-gap", 60), "{}", pty.seen);
    pty.write(b"exit 5\r");
    assert_eq!(wait_code(&mut run, 30), 5);
    env.ok(&["rm", "s"]);
}

#[test]
fn a_foreground_run_whose_container_exits_while_contd_is_down_gets_its_code() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    let mut run = contctl(&env)
        .args([
            "run",
            "--name",
            "fg",
            &root,
            "sh",
            "-c",
            "echo up; sleep 1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "up\n");
    let pid = env.inspect("fg")["pid"].as_i64().unwrap();
    env.stop_contd(libc::SIGKILL);
    signal(pid as i32, nix::sys::signal::Signal::SIGKILL);
    env.start_contd();
    assert_eq!(wait_code(&mut run, 60), 137);
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("the session lives on, reconnecting"), "{err}");
    env.ok(&["rm", "fg"]);
}

/// Every `run` flag at once, each checked where the container (or its
/// cgroup) shows it.
#[test]
fn run_flags_reach_the_container() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let data = env.dir.path().join("data");
    let rw = env.dir.path().join("rw");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(data.join("f"), "from the host\n").unwrap();
    // uid 1000 may write there (docker's rule: the host's permissions).
    std::fs::set_permissions(
        &rw,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o777),
    )
    .unwrap();
    let script = r#"
        echo "uid=$(id -u):$(id -g)"
        echo "host=$(hostname)"
        echo "cwd=$(pwd)"
        echo "data=$(cat /data/f)"
        touch /data/x 2>/dev/null && echo data-writable || echo data-ro
        touch /rw/x && echo rw-writable
        touch /scratch/x && echo scratch-writable
        touch /root-file 2>/dev/null && echo root-writable || echo root-ro
        echo "env=$GREETING"
        echo "nets=$(ls /sys/class/net | tr '\n' ' ')"
        grep CapEff /proc/self/status
    "#;
    let v = format!("{}:/data:ro", data.display());
    let m = format!("type=bind,source={},target=/rw", rw.display());
    let out = contctl(&env)
        .args([
            "run", "--name", "flags", "-v", &v, "--mount", &m, "--tmpfs", "/scratch",
        ])
        .args([
            "-w",
            "/data",
            "-u",
            "1000:1000",
            "--hostname",
            "h1",
            "--entrypoint",
            "sh",
        ])
        .args([
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--label",
            "team=infra",
        ])
        .args([
            "--network",
            "none",
            "--restart",
            "on-failure:2",
            "--read-only",
        ])
        .args(["--cap-drop", "ALL", "-e", "GREETING=hi", "-m", "48m"])
        .args([root, "-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    for want in [
        "uid=1000:1000",
        "host=h1",
        "cwd=/data",
        "data=from the host",
        "data-ro",
        "rw-writable",
        "scratch-writable",
        "root-ro",
        "env=hi",
        "nets=lo ",
        "CapEff:\t0000000000000000",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim() == want.trim() || l.starts_with(want)),
            "no {want:?} in:\n{text}"
        );
    }
    assert!(
        rw.join("x").exists(),
        "the bind mount is the host's directory"
    );
    let i = env.inspect("flags");
    assert_eq!(i["restart_policy"], "on-failure:2");
    assert_eq!(i["labels"]["team"], "infra");
    env.ok(&["rm", "flags"]);

    // The limits, where the kernel keeps them.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "-m",
        "48m",
        root,
        "sleep",
        "1000",
    ]);
    let read = |h: &str, f: &str| {
        std::fs::read_to_string(env.cgroup_dir(h, "default", "lim").join(f))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(read("pids", "pids.max"), "50");
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    let quota: i64 = read("cpu", "cpu.cfs_quota_us").parse().unwrap();
    let period: i64 = read("cpu", "cpu.cfs_period_us").parse().unwrap();
    assert_eq!(quota * 2, period, "0.5 CPU");
    env.ok(&["rm", "-f", "lim"]);
}

#[test]
fn stop_uses_the_containers_stop_signal_and_timeout() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    // Its own stop signal: the trap runs, the code is the trap's.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "USR1",
        root,
        "sh",
        "-c",
        "trap 'echo got USR1; exit 3' USR1; while true; do sleep 0.05; done",
    ]);
    env.ok(&["stop", "usr1"]);
    assert_eq!(env.inspect("usr1")["exit_code"], 3);
    assert_eq!(env.ok(&["logs", "usr1"]), "got USR1\n");
    // Its own timeout: a container that ignores the signal is killed after
    // 1 s, not the default 10.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "deaf",
        "--stop-signal",
        "USR2",
        "--stop-timeout",
        "1",
        root,
        "sh",
        "-c",
        "trap '' USR2; while true; do sleep 0.05; done",
    ]);
    let t = Instant::now();
    env.ok(&["stop", "deaf"]);
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert_eq!(env.inspect("deaf")["exit_code"], 137);
    // -t still wins over it.
    env.ok(&["start", "deaf"]);
    let t = Instant::now();
    env.ok(&["stop", "-t", "0", "deaf"]);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let bad = env.contctl(&["run", "--stop-signal", "NOPE", root, "true"]);
    assert_eq!(bad.status.code(), Some(125));
    env.ok(&["rm", "usr1", "deaf"]);
}

#[test]
fn rename_changes_only_the_name_even_of_a_running_container() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    let run_d = |name: &str, script: &str| {
        env.ok(&["run", "-d", "--name", name, &root, "sh", "-c", script]);
    };
    run_d("first", "echo one; sleep 100");
    let pid = env.inspect("first")["pid"].clone();
    // By a unique prefix, as docker takes an id prefix; it prints nothing.
    assert_eq!(env.ok(&["rename", "fir", "renamed"]), "");
    let d = env.inspect("renamed");
    assert_eq!(d["status"], "running");
    assert_eq!(d["pid"], pid);
    let gone = env.contctl(&["inspect", "first"]);
    assert_eq!(gone.status.code(), Some(125));
    assert!(stderr(&gone).contains("no container"), "{}", stderr(&gone));
    // The old name is free again, for a container with its own log and
    // cgroup (the renamed one keeps the ones it was created with).
    run_d("first", "echo two; sleep 100");
    env.wait_for("both logs", 10, || {
        env.ok(&["logs", "renamed"]) == "one\n" && env.ok(&["logs", "first"]) == "two\n"
    });
    let names = env.ok(&["ps", "-q"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["first", "renamed"]);
    // A taken or invalid new name is refused and changes nothing.
    let taken = env.contctl(&["rename", "renamed", "first"]);
    assert_eq!(taken.status.code(), Some(125));
    assert!(
        stderr(&taken).contains("\"first\" exists already"),
        "{}",
        stderr(&taken)
    );
    let bad = env.contctl(&["rename", "renamed", "no/slash"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(stderr(&bad).contains("invalid name"), "{}", stderr(&bad));
    assert_eq!(env.inspect("renamed")["status"], "running");
    // The new name survives a SIGKILL of contd; the container still works
    // under it.
    env.stop_contd(libc::SIGKILL);
    env.start_contd();
    assert_eq!(env.inspect("renamed")["pid"], pid);
    assert_eq!(
        env.ok(&["exec", "renamed", "echo", "still here"]),
        "still here\n"
    );
    env.ok(&["rename", "renamed", "again"]);
    env.ok(&["stop", "-t", "0", "again"]);
    assert_eq!(env.inspect("again")["exit_code"], 137);
    env.ok(&["rm", "-f", "again", "first"]);
    assert!(
        env.leftover_cgroups().is_empty(),
        "{:?}",
        env.leftover_cgroups()
    );
    let left: Vec<_> = std::fs::read_dir(env.state_dir.join("default"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn init_reaps_orphans_passes_signals_and_keeps_the_code() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    // The command is pid 2 under contd's init; an orphan it leaves behind
    // is reaped, not left a zombie; the code is the command's.
    let out = env.contctl(&[
        "run",
        "--init",
        "--name",
        "reaped",
        root,
        "sh",
        "-c",
        "sh -c 'sleep 0.2 & exit 0'; sleep 1; echo pid1=$(cat /proc/1/comm) me=$$; \
         ps -o stat,comm | grep -c '^Z' ; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pid1=contd-init me=2\n0\n");
    // SIGTERM reaches the command (a pid 1 without a handler would
    // ignore it, and stop would wait 10 s for SIGKILL).
    env.ok(&[
        "run", "-d", "--init", "--name", "sleeper", root, "sleep", "100",
    ]);
    let t = Instant::now();
    env.ok(&["stop", "sleeper"]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(env.inspect("sleeper")["exit_code"], 143);
    // Without --init the command is pid 1.
    assert_eq!(
        env.ok(&["run", "--name", "plain", root, "sh", "-c", "echo $$"]),
        "1\n"
    );
    env.ok(&["rm", "reaped", "sleeper", "plain"]);
}

#[test]
fn logs_with_timestamps() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let before = proto::time::now_nanos();
    env.ok(&[
        "run",
        "--name",
        "stamped",
        root,
        "sh",
        "-c",
        "echo a; echo b >&2; printf c",
    ]);
    let after = proto::time::now_nanos();
    let out = env.contctl(&["logs", "-t", "stamped"]);
    assert_eq!(out.status.code(), Some(0));
    let check = |text: &str, want: &[&str]| {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(lines.len(), want.len(), "{text:?}");
        for (line, want) in lines.iter().zip(want) {
            let (stamp, rest) = line.split_once(' ').unwrap();
            let t = proto::time::parse_rfc3339(stamp).unwrap_or_else(|| panic!("{line:?}"));
            assert!(before <= t && t <= after, "{stamp} not within the run");
            assert!(stamp.ends_with('Z') && stamp.len() == 30, "{stamp}");
            assert_eq!(&rest, want);
        }
    };
    // The monitor ends the last, unterminated line at the container's exit.
    check(&stdout(&out), &["a\n", "c\n"]);
    check(&stderr(&out), &["b\n"]);
    // With --tail, and from a follower.
    let out = env.contctl(&["logs", "-t", "-f", "-n", "1", "stamped"]);
    check(&stdout(&out), &["c\n"]);
    env.ok(&["rm", "stamped"]);
}

//! contd-monitor as containerd's shim (`io.containerd.contd.v2`), driven
//! by a private containerd from Debian through `ctr`: run in the
//! foreground and detached, exit codes, exec, pause/resume, metrics, kill,
//! delete, events; a container that writes while its reader and
//! containerd are gone never blocks, and its output arrives whole once a
//! reader is back; a SIGKILLed shim's task reports its true exit code.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contd_tests::containerd::{Containerd, RUNTIME};
use contd_tests::{bin_dir, ppid, wait_code, Pty};

fn cgroup_left(id: &str) -> bool {
    Path::new("/sys/fs/cgroup/memory/default").join(id).exists()
}

fn shims_of(bundle: &Path) -> usize {
    let want = bundle.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.windows(want.len()).any(|w| w == want))
        })
        .count()
}

#[test]
fn ctr_runs_tasks_through_the_contd_shim() {
    let mut c = Containerd::start();
    let n = std::process::id();

    // Foreground: the output, then the container's own code; the events
    // in the order containerd requires.
    let id = format!("fg-{n}");
    c.ids.push(id.clone());
    let events = c.events_during(|| {
        let (code, out, err) = c.run_again(
            &id,
            &["--rm"],
            &["sh", "-c", "echo hello-shim; echo to-err >&2; exit 6"],
        );
        assert_eq!(code, 6, "ctr run: {out} {err}");
        assert!(out.contains("hello-shim"), "{out} {err}");
        assert!(err.contains("to-err"), "{out} {err}");
    });
    let topics = topics_of(&events, &format!("\"{id}\""));
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{events}"
    );
    assert!(events.contains("\"exit_status\":6"), "{events}");
    assert!(!cgroup_left(&id), "cgroup of {id} left");
    assert!(!c.bundle(&id).exists(), "bundle of {id} left");

    // Detached: exec, pause/resume, metrics, kill, delete.
    let id = format!("bg-{n}");
    let (code, out, err) = c.run(&id, &["-d"], &["sleep", "1000"]);
    assert_eq!(code, 0, "ctr run -d: {out} {err}");
    c.wait_status(&id, "RUNNING");
    let pid: i32 = c
        .task_line(&id)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid > 0);
    // The shim is contd-monitor, one process for the task.
    let shim = c.shim_pid(&id);
    let exe = std::fs::read_link(format!("/proc/{shim}/exe")).unwrap();
    assert_eq!(exe, bin_dir().join("contd-monitor"));
    assert_eq!(ppid(pid), shim, "init is the shim's child");

    let events = c.events_during(|| {
        let (code, out, err) = c.exec(&id, "e1", "echo in-exec; exit 3");
        assert_eq!(code, 3, "ctr task exec: {out} {err}");
        assert!(out.contains("in-exec"), "{out} {err}");
    });
    assert_eq!(
        topics_of(&events, "\"e1\""),
        ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"],
        "{events}"
    );

    // An exec with a terminal: it follows the window.
    let (mut pty, slave) = Pty::new(30, 100);
    // ctr itself, not under timeout(1), which would keep SIGWINCH.
    let mut exec = Pty::spawn(
        &slave,
        Command::new("ctr")
            .arg("--address")
            .arg(c.dir.path().join("c.sock"))
            .args(["task", "exec", "-t", "--exec-id", "e2", &id, "sh"]),
    );
    drop(slave);
    pty.size_becomes("30 100");
    pty.resize(40, 120);
    // SIGWINCH until ctr has its handler (it installs it after the start)
    // and the exec's terminal has the new size.
    let mut resized = false;
    for _ in 0..50 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(exec.id() as i32),
            nix::sys::signal::Signal::SIGWINCH,
        )
        .unwrap();
        pty.write(b"stty size\r");
        if pty.until("40 120", 1) {
            resized = true;
            break;
        }
    }
    assert!(resized, "the exec's terminal kept its size: {}", pty.seen);
    pty.write(b"tty; exit 4\r");
    assert!(pty.until("/dev/pts/", 10), "{}", pty.seen);
    assert_eq!(wait_code(&mut exec, 20), 4, "{}", pty.seen);

    let events = c.events_during(|| {
        let (code, out, err) = c.ctr(&["task", "pause", &id]);
        assert_eq!(code, 0, "pause: {out} {err}");
        c.wait_status(&id, "PAUSED");
        let (code, out, err) = c.ctr(&["task", "resume", &id]);
        assert_eq!(code, 0, "resume: {out} {err}");
        c.wait_status(&id, "RUNNING");
    });
    assert_eq!(
        topics_of(&events, &format!("\"{id}\"")),
        ["/tasks/paused", "/tasks/resumed"],
        "{events}"
    );

    let (code, out, err) = c.ctr(&["task", "metrics", &id]);
    assert_eq!(code, 0, "metrics: {out} {err}");
    assert!(
        out.contains("memory.usage_in_bytes") || out.contains("memory.usage"),
        "{out}"
    );
    assert!(out.contains("pids.current"), "{out}");

    // Update (ctr 1.6 has no `task update`: the request as containerd
    // sends it, on the shim's socket): a memory limit, in the cgroup.
    let resources = br#"{"memory":{"limit":67108864}}"#;
    let any = pb_bytes(
        1,
        b"types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
    )
    .into_iter()
    .chain(pb_bytes(2, resources))
    .collect::<Vec<u8>>();
    let req: Vec<u8> = pb_bytes(1, id.as_bytes())
        .into_iter()
        .chain(pb_bytes(2, &any))
        .collect();
    let (code, message) = task_call(&c.bundle(&id), "Update", &req);
    assert_eq!((code, message.as_str()), (0, ""));
    let limit = std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/memory/default")
            .join(&id)
            .join("memory.limit_in_bytes"),
    )
    .unwrap();
    assert_eq!(limit.trim(), "67108864");
    // Checkpoint: Unimplemented (containerd's NotImplemented), not NotFound.
    let (code, message) = task_call(&c.bundle(&id), "Checkpoint", &pb_bytes(1, id.as_bytes()));
    assert_eq!(code, 12, "{message}");
    let (code, out, err) = c.ctr(&["task", "checkpoint", &id]);
    assert_ne!(code, 0, "checkpoint: {out} {err}");
    assert!(err.contains("not implemented"), "checkpoint: {out} {err}");

    let (code, out, err) = c.ctr(&["task", "ps", &id]);
    assert_eq!(code, 0, "ps: {out} {err}");
    assert!(out.contains(&pid.to_string()), "{out}");

    let events = c.events_during(|| {
        // Every process of the task (a second one from an exec).
        let (code, out, err) = c.ctr(&[
            "task",
            "exec",
            "-d",
            "--exec-id",
            "e3",
            &id,
            "sleep",
            "1000",
        ]);
        assert_eq!(code, 0, "exec -d: {out} {err}");
        let (code, out, err) = c.ctr(&["task", "kill", "--all", "-s", "KILL", &id]);
        assert_eq!(code, 0, "kill: {out} {err}");
        c.wait_status(&id, "STOPPED");
        // ctr's task delete tells the task's code.
        let (code, out, err) = c.ctr(&["task", "delete", &id]);
        assert_eq!(code, 0, "task delete: {out} {err}");
        assert!(err.contains("exit code 137"), "task delete: {out} {err}");
    });
    let exit = events
        .find("/tasks/exit")
        .unwrap_or_else(|| panic!("{events}"));
    let delete = events
        .find("/tasks/delete")
        .unwrap_or_else(|| panic!("{events}"));
    assert!(exit < delete, "{events}");
    assert!(events.contains("\"exit_status\":137"), "{events}");
    let (code, out, err) = c.ctr(&["container", "delete", &id]);
    assert_eq!(code, 0, "container delete: {out} {err}");
    assert!(!cgroup_left(&id), "cgroup of {id} left");
    let deadline = Instant::now() + Duration::from_secs(10);
    while shims_of(&c.bundle(&id)) > 0 {
        assert!(Instant::now() < deadline, "the shim of {id} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A log file instead of fifos (ctr --log-uri file://).
    let id = format!("logfile-{n}");
    let log = c.dir.path().join("task.log");
    let uri = format!("file://{}", log.display());
    let (code, out, err) = c.run(
        &id,
        &["-d", "--log-uri", &uri],
        &["sh", "-c", "echo to-the-file"],
    );
    assert_eq!(code, 0, "{out} {err}");
    c.wait_status(&id, "STOPPED");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "to-the-file\n");
    let (code, out, err) = c.ctr(&["task", "delete", &id]);
    assert_eq!(code, 0, "{out} {err}");

    // A command that does not exist: the create fails with the reason.
    let id = format!("bad-{n}");
    let (code, out, err) = c.run(&id, &["--rm"], &["no-such-program"]);
    assert_ne!(code, 0, "{out} {err}");
    assert!(err.contains("not found"), "{out} {err}");
}

#[test]
fn a_sigkilled_shim_reports_the_true_exit_code() {
    let mut c = Containerd::start();
    let id = format!("dead-{}", std::process::id());
    let (code, out, err) = c.run(
        &id,
        &["-d"],
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 3",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    c.wait_status(&id, "RUNNING");
    std::fs::write(c.rootfs.join("tmp/go"), "").unwrap();
    let exit = c.bundle(&id).join("exit");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !exit.exists() {
        assert!(Instant::now() < deadline, "no exit record");
        std::thread::sleep(Duration::from_millis(50));
    }
    let shim = c.shim_pid(&id);
    let events = c.events_during(|| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(shim),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // containerd finds the shim gone, runs `delete`, and reports what
        // the exit record says.
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.task_line(&id).is_some() {
            assert!(
                Instant::now() < deadline,
                "the task stayed: {:?}",
                c.task_line(&id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let delete = events
        .lines()
        .find(|l| l.contains("/tasks/delete"))
        .unwrap_or_else(|| panic!("no delete event: {events}"));
    assert!(delete.contains("\"exit_status\":3"), "{events}");
    assert!(!events.contains("\"exit_status\":255"), "{events}");
    assert!(!events.contains("\"exit_status\":137"), "{events}");
    std::fs::remove_file(c.rootfs.join("tmp/go")).unwrap();
}

#[test]
fn output_never_blocks_the_container_while_nobody_reads() {
    let mut c = Containerd::start();
    let id = format!("flood-{}", std::process::id());
    let fifo_dir = c.dir.path().join("fifo");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    c.ids.push(id.clone());
    // 30000 numbered lines (about 3 MiB, 48 pipes' worth) once told to.
    let script = "while [ ! -e /tmp/go ]; do sleep 0.05; done; \
                  i=0; while [ $i -lt 30000 ]; do \
                  echo \"line $i ....................................................................................\"; \
                  i=$((i+1)); done; echo end; touch /tmp/done; sleep 1000";
    // ctr itself (not under timeout(1)): killed, it reads no more.
    let mut ctr = Command::new("ctr")
        .arg("--address")
        .arg(c.dir.path().join("c.sock"))
        .args(["run", "--runtime", RUNTIME, "--fifo-dir"])
        .arg(&fifo_dir)
        .arg("--rootfs")
        .arg(&c.rootfs)
        .args([id.as_str(), "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.wait_status(&id, "RUNNING");
    // The reader goes, and containerd too.
    let _ = ctr.kill();
    let _ = ctr.wait();
    c.kill();
    std::fs::write(c.rootfs.join("tmp/go"), "").unwrap();
    // A shim that blocked on the full fifo would hold the container at
    // its first 64 KiB.
    let done = c.rootfs.join("tmp/done");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done.exists() {
        assert!(
            Instant::now() < deadline,
            "the container blocked on its output"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // containerd comes back and finds the task.
    c.spawn();
    c.wait_status(&id, "RUNNING");
    // A new reader of the task's stdout fifo gets every line, in order.
    let fifo = walk(&fifo_dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("-stdout"))
        .expect("the stdout fifo");
    let mut f = std::fs::File::open(&fifo).unwrap();
    let mut text = String::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text.contains("end\n") {
        assert!(
            Instant::now() < deadline,
            "output stopped after {} bytes",
            text.len()
        );
        let n = f.read(&mut buf).unwrap();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 30001, "every line, and only once");
    for (i, l) in lines[..30000].iter().enumerate() {
        assert!(l.starts_with(&format!("line {i} ")), "line {i} is {l:?}");
    }
    std::fs::remove_file(c.rootfs.join("tmp/go")).unwrap();
    std::fs::remove_file(done).unwrap();
}

/// A protobuf length-delimited field.
fn pb_bytes(field: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![field << 3 | 2];
    let mut n = data.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(data);
    out
}

/// One `containerd.task.v2.Task` call on the shim's ttrpc socket (its
/// address is in the bundle): the status code and message of the answer.
fn task_call(bundle: &Path, method: &str, payload: &[u8]) -> (u64, String) {
    use std::io::Write;
    let address = std::fs::read_to_string(bundle.join("address")).unwrap();
    let mut s =
        std::os::unix::net::UnixStream::connect(address.trim().trim_start_matches("unix://"))
            .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req: Vec<u8> = pb_bytes(1, b"containerd.task.v2.Task")
        .into_iter()
        .chain(pb_bytes(2, method.as_bytes()))
        .chain(pb_bytes(3, payload))
        .collect();
    let mut frame = (req.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&[1, 0]);
    frame.extend_from_slice(&req);
    s.write_all(&frame).unwrap();
    let mut head = [0u8; 10];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    // Response{status: 1 {code: 1, message: 2}, payload: 2}: the status.
    let (mut code, mut message) = (0, String::new());
    if body.first() == Some(&0x0a) {
        let n = body[1] as usize;
        let status = &body[2..2 + n];
        let mut i = 0;
        while i < status.len() {
            match status[i] {
                0x08 => {
                    code = u64::from(status[i + 1]);
                    i += 2;
                }
                0x12 => {
                    let m = status[i + 1] as usize;
                    message = String::from_utf8_lossy(&status[i + 2..i + 2 + m]).into_owned();
                    i += 2 + m;
                }
                _ => break,
            }
        }
    }
    (code, message)
}

/// The topics of the events whose line holds `needle`, in order.
fn topics_of<'a>(events: &'a str, needle: &str) -> Vec<&'a str> {
    events
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .collect()
}

#[test]
fn the_shim_says_its_version_and_runtime_info() {
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("containerd-shim-contd-v2");
    std::os::unix::fs::symlink(bin_dir().join("contd-monitor"), &shim).unwrap();
    let out = Command::new(&shim).arg("-v").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains(RUNTIME), "{text}");
    // -info: a RuntimeInfo protobuf whose name (field 1) is the runtime's.
    let out = Command::new(&shim)
        .arg("-info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout[0], 0x0a);
    assert_eq!(
        &out.stdout[2..2 + out.stdout[1] as usize],
        RUNTIME.as_bytes()
    );
    // Anything else: a usage error naming what it takes.
    let out = Command::new(&shim).arg("bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("start, delete"));
}

#[test]
fn a_terminal_task_in_the_foreground() {
    let mut c = Containerd::start();
    let id = format!("tty-{}", std::process::id());
    c.ids.push(id.clone());
    let (mut pty, slave) = Pty::new(24, 80);
    let root = c.rootfs.display().to_string();
    let mut run = Pty::spawn(
        &slave,
        c.ctr_cmd().args([
            "run",
            "-t",
            "--rm",
            "--runtime",
            RUNTIME,
            "--rootfs",
            &root,
            &id,
            "sh",
        ]),
    );
    drop(slave);
    pty.size_becomes("24 80");
    pty.write(b"echo typed-$((6*7))\r");
    assert!(pty.until("typed-42", 10), "{}", pty.seen);
    pty.write(b"exit 5\r");
    assert_eq!(wait_code(&mut run, 20), 5, "{}", pty.seen);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// An OCI image archive of `rootfs` (one uncompressed layer) named `name`,
/// for `ctr image import`.
fn oci_archive(rootfs: &Path, out: &Path, name: &str) {
    let work = tempfile::tempdir().unwrap();
    let blobs = work.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    // Stores a blob; its digest and size.
    let blob = |data: &[u8]| -> (String, usize) {
        let tmp = work.path().join("blob");
        std::fs::write(&tmp, data).unwrap();
        let sum = Command::new("sha256sum").arg(&tmp).output().unwrap();
        let digest = String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        std::fs::rename(&tmp, blobs.join(&digest)).unwrap();
        (digest, data.len())
    };
    let layer = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(layer.status.success());
    let (l, ls) = blob(&layer.stdout);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{l}"]}},"config":{{"Cmd":["/bin/sh"],"Env":["PATH=/bin"]}}}}"#
    );
    let (c, cs) = blob(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{c}","size":{cs}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{l}","size":{ls}}}]}}"#
    );
    let (m, ms) = blob(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{m}","size":{ms},"annotations":{{"io.containerd.image.name":"{name}"}}}}]}}"#
    );
    std::fs::write(work.path().join("index.json"), index).unwrap();
    std::fs::write(
        work.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(work.path())
        .arg("-cf")
        .arg(out)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Mounts under the containerd's dir.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&d))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_image_rootfs_is_mounted_by_the_shim_and_unmounted() {
    let mut c = Containerd::start();
    let n = std::process::id();
    let image = "docker.io/library/contd-busybox:latest";
    let archive = c.dir.path().join("image.tar");
    oci_archive(&c.rootfs, &archive, image);
    let archive = archive.display().to_string();
    let (code, out, err) = c.ctr(&["image", "import", &archive]);
    assert_eq!(code, 0, "import: {out} {err}");
    // An overlay from the snapshotter, and bind mounts from `native`.
    for snapshotter in ["overlayfs", "native"] {
        let id = format!("img-{snapshotter}-{n}");
        c.ids.push(id.clone());
        let (code, out, err) = c.ctr(&[
            "run",
            "--rm",
            "--snapshotter",
            snapshotter,
            "--runtime",
            RUNTIME,
            image,
            &id,
            "sh",
            "-c",
            "echo from-the-image; grep ' / ' /proc/mounts; exit 4",
        ]);
        assert_eq!(code, 4, "{snapshotter}: {out} {err}");
        assert!(out.contains("from-the-image"), "{out} {err}");
        if snapshotter == "overlayfs" {
            assert!(out.contains("overlay / overlay"), "{out}");
        }
        assert!(
            mounts_under(c.dir.path()).is_empty(),
            "{:?}",
            mounts_under(c.dir.path())
        );
    }
    // A shim SIGKILLed with its task running: containerd's `delete` ends
    // the task and unmounts its rootfs.
    let id = format!("img-killed-{n}");
    c.ids.push(id.clone());
    let (code, out, err) = c.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        image,
        &id,
        "sleep",
        "1000",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    c.wait_status(&id, "RUNNING");
    assert!(!mounts_under(c.dir.path()).is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.shim_pid(&id)),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.task_line(&id).is_some() || !mounts_under(c.dir.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "task {:?}, mounts {:?}",
            c.task_line(&id),
            mounts_under(c.dir.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!cgroup_left(&id), "cgroup of {id} left");
}

#[test]
fn input_larger_than_any_buffer_arrives_whole() {
    let mut c = Containerd::start();
    let n = std::process::id();
    // 4 MiB on stdin, to processes that read it only after a second (the
    // pipes fill long before): every byte must arrive.
    let input = c.dir.path().join("input");
    std::fs::write(&input, vec![b'x'; 4 << 20]).unwrap();
    let id = format!("stdin-{n}");
    c.ids.push(id.clone());
    let root = c.rootfs.display().to_string();
    let out = c
        .ctr_cmd()
        .args(["run", "--rm", "--runtime", RUNTIME, "--rootfs", &root, &id])
        .args(["sh", "-c", "sleep 1; wc -c"])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4194304");

    let id = format!("stdin-exec-{n}");
    let (code, out, err) = c.run(&id, &["-d"], &["sleep", "1000"]);
    assert_eq!(code, 0, "{out} {err}");
    let out = c
        .ctr_cmd()
        .args([
            "task",
            "exec",
            "--exec-id",
            "big",
            &id,
            "sh",
            "-c",
            "sleep 1; wc -c",
        ])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4194304");

    // An exec that leaves a child holding its output still ends: its exit
    // comes at most 2 s after it was reaped.
    let t = Instant::now();
    let (code, out, err) = c.exec(&id, "daemon", "sleep 1000 & echo forked; exit 5");
    assert_eq!(code, 5, "{out} {err}");
    assert!(out.contains("forked"), "{out} {err}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

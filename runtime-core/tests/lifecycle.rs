//! runtime-core as root: a busybox container through create, start, exit,
//! delete, asserting what the container sees and what is left on the host.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use runtime_core::{Container, CreateOptions, Status, Stdio};

fn busybox_rootfs(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "echo", "hostname", "sleep", "id", "ls", "grep", "head",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    root
}

fn bundle(dir: &Path, args: &[&str], cgroup: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let rootfs = busybox_rootfs(dir);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut spec = runtime_core::secure_default_spec(rootfs.to_str().unwrap(), &args);
    spec["linux"]["cgroupsPath"] = cgroup.into();
    edit(&mut spec);
    std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

fn run_to_end(dir: &Path, id: &str, on_created: impl FnOnce(&Container)) -> (String, i32) {
    let (r, w) = pipe();
    let mut opts = CreateOptions::new(id, dir, dir.join("state"));
    opts.stdio = Stdio {
        stdin: None,
        stdout: Some(w.try_clone().unwrap()),
        stderr: Some(w),
    };
    let mut c = Container::create(opts).unwrap();
    assert_eq!(c.status(), Status::Created);
    on_created(&c);
    c.start().unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(c.pid()), None).unwrap();
    let code = match st {
        nix::sys::wait::WaitStatus::Exited(_, c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(c.status(), Status::Stopped);
    let cg = c.cgroup_path().to_string();
    c.delete(false).unwrap();
    assert!(!runtime_core::cgroup_exists(&cg), "cgroup {cg} left behind");
    assert!(!dir.join("state").exists());
    (out, code)
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "runtime-core tests need root (run them as root, as CI does)"
    );
}

#[test]
fn container_sees_its_isolation_and_limits() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let cg = format!("contd-test-rc/{}", std::process::id());
    bundle(
        dir.path(),
        &[
            "sh",
            "-c",
            "echo pid=$$; hostname; ulimit -n; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'; \
             echo masked=$(cat /proc/timer_list | wc -c); ls /dev; exit 3",
        ],
        &cg,
        |s| {
            s["hostname"] = "box1".into();
            s["linux"]["resources"] = serde_json::json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 50}});
        },
    );
    let (out, code) = run_to_end(dir.path(), "iso", |c| {
        let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).unwrap();
        let cg = c.cgroup_path();
        assert_eq!(
            read(&format!("memory/{cg}/memory.limit_in_bytes")).trim(),
            "67108864"
        );
        assert_eq!(read(&format!("pids/{cg}/pids.max")).trim(), "50");
        assert!(read(&format!("memory/{cg}/cgroup.procs")).contains(&c.pid().to_string()));
    });
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("box1\n"), "{out}");
    assert!(out.contains("1024\n"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("masked=0\n"), "{out}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
    ] {
        assert!(out.lines().any(|l| l == dev), "/dev/{dev} missing: {out}");
    }
    for h in [
        "memory", "pids", "cpu", "cpuset", "blkio", "devices", "freezer", "cpuacct", "systemd",
        "unified",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{h}/contd-test-rc"));
    }
}

#[test]
fn missing_rootfs_is_a_clear_error_and_leaves_nothing() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), &["true"], "contd-test-rc/missing", |s| {
        s["root"]["path"] = "/nonexistent/rootfs".into();
    });
    let err = Container::create(CreateOptions::new(
        "x",
        dir.path(),
        dir.path().join("state"),
    ))
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("root.path") && msg.contains("/nonexistent/rootfs"),
        "{msg}"
    );
    assert!(!dir.path().join("state").exists());
}

#[test]
fn missing_program_fails_create_and_undoes_everything() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let cg = format!("contd-test-rc/noprog{}", std::process::id());
    bundle(dir.path(), &["/no/such/program"], &cg, |_| {});
    let err = Container::create(CreateOptions::new(
        "x",
        dir.path(),
        dir.path().join("state"),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("/no/such/program"), "{err}");
    assert!(!dir.path().join("state").exists());
    assert!(!runtime_core::cgroup_exists(&cg));
}

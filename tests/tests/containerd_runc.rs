//! contd-runtime as the runc binary of containerd's runc shim
//! (`io.containerd.runc.v2` with `BinaryName`, here `ctr --runc-binary`):
//! run, run -d, exec, pause/resume, kill, delete, through a private
//! containerd. This is the zero-code route to Kubernetes and Docker: no
//! contd shim, contd's runtime under containerd's own.

use std::path::Path;
use std::time::{Duration, Instant};

use contd_tests::bin_dir;
use contd_tests::containerd::Containerd;

/// `ctr run` of `cmd` under the runc shim with contd-runtime as its runc.
fn run(c: &mut Containerd, id: &str, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
    c.ids.push(id.to_string());
    let root = c.rootfs.display().to_string();
    let runtime = bin_dir().join("contd-runtime").display().to_string();
    let mut args = vec![
        "run",
        "--runc-binary",
        &runtime,
        "--runtime",
        "io.containerd.runc.v2",
    ];
    args.extend(extra);
    args.extend(["--rootfs", &root, id]);
    args.extend(cmd);
    c.ctr(&args)
}

fn cgroup_left(id: &str) -> bool {
    Path::new("/sys/fs/cgroup/memory/default").join(id).exists()
}

#[test]
fn containerd_runc_shim_drives_contd_runtime() {
    let mut c = Containerd::start();
    let n = std::process::id();

    let id = format!("contd-fg-{n}");
    let (code, out, err) = run(
        &mut c,
        &id,
        &["--rm"],
        &["sh", "-c", "echo hello-containerd; exit 6"],
    );
    assert_eq!(code, 6, "ctr run: {out} {err}");
    assert!(out.contains("hello-containerd"), "{out} {err}");
    assert!(!cgroup_left(&id), "cgroup of {id} left");

    let id = format!("contd-bg-{n}");
    let (code, out, err) = run(&mut c, &id, &["-d", "--seccomp"], &["sleep", "1000"]);
    assert_eq!(code, 0, "ctr run -d: {out} {err}");
    let (code, out, err) = c.exec(
        &id,
        "e1",
        "echo in-exec; grep Seccomp: /proc/self/status; exit 3",
    );
    assert_eq!(code, 3, "ctr task exec: {out} {err}");
    assert!(
        out.contains("in-exec") && out.contains("Seccomp:\t2"),
        "{out} {err}"
    );

    let (code, out, err) = c.ctr(&["task", "pause", &id]);
    assert_eq!(code, 0, "pause: {out} {err}");
    let (_, out, _) = c.ctr(&["task", "ls"]);
    assert!(
        out.lines().any(|l| l.contains(&id) && l.contains("PAUSED")),
        "{out}"
    );
    let (code, out, err) = c.ctr(&["task", "resume", &id]);
    assert_eq!(code, 0, "resume: {out} {err}");

    let (code, out, err) = c.ctr(&["task", "kill", "-s", "KILL", &id]);
    assert_eq!(code, 0, "kill: {out} {err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = c.ctr(&["task", "ls"]);
        if out
            .lines()
            .any(|l| l.contains(&id) && l.contains("STOPPED"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "task never stopped: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = c.ctr(&["task", "delete", &id]);
    assert_eq!(code, 0, "task delete: {out} {err}");
    let (code, out, err) = c.ctr(&["container", "delete", &id]);
    assert_eq!(code, 0, "container delete: {out} {err}");
    assert!(!cgroup_left(&id), "cgroup of {id} left");

    // A create that fails: the shim reads our error from the runtime's
    // log and cleans up (`delete --force` of what is not there).
    let id = format!("contd-bad-{n}");
    let (code, out, err) = run(&mut c, &id, &["--rm"], &["no-such-program"]);
    assert_ne!(code, 0, "ctr run of a missing program: {out} {err}");
    assert!(
        err.contains("executable file not found"),
        "the runtime's error reaches ctr: {out} {err}"
    );
    let (_, out, _) = c.ctr(&["task", "ls"]);
    assert!(!out.contains(&id), "task left: {out}");
    assert!(!cgroup_left(&id), "cgroup of {id} left");
    assert!(
        !Path::new("/run/containerd/runc/default").join(&id).exists(),
        "runtime state of {id} left"
    );
}

//! contd-runtime as podman's OCI runtime (`podman --runtime`): the OCI
//! tooling contract end to end — create through conmon, start, exec, a
//! terminal through conmon's console socket, stop, rm. Root only; podman
//! comes from scripts/setup.sh.

use std::path::PathBuf;
use std::process::Command;

fn runtime() -> &'static str {
    env!("CARGO_BIN_EXE_contd-runtime")
}

mod common;

fn rootfs() -> PathBuf {
    common::busybox_rootfs()
}

fn podman(args: &[&str]) -> (i32, String, String) {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "podman tests need root"
    );
    let mut cmd = Command::new("timeout");
    cmd.args([
        "60",
        "podman",
        "--cgroup-manager=cgroupfs",
        "--runtime",
        runtime(),
    ]);
    cmd.args(args);
    let out = cmd
        .output()
        .expect("podman is missing: run scripts/setup.sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The limits podman would otherwise ask for need CAP_SYS_RESOURCE, which
/// some sandboxes (this CI's) do not grant to root.
const LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

struct Rm(String);
impl Drop for Rm {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
        // podman's own (empty) parent cgroups; rmdir leaves busy ones.
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(h.path().join("libpod_parent/conmon"));
            let _ = std::fs::remove_dir(h.path().join("libpod_parent"));
        }
    }
}

/// Container cgroups podman asked contd-runtime for that still exist.
fn container_cgroups() -> Vec<String> {
    std::fs::read_dir("/sys/fs/cgroup/memory/libpod_parent")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("libpod-"))
        .collect()
}

#[test]
fn podman_runs_execs_and_removes_through_contd_runtime() {
    let root = rootfs();
    let root = root.to_str().unwrap();
    let name = format!("contd-podman-{}", std::process::id());
    let _guard = Rm(name.clone());

    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(LIMITS);
    args.extend([
        "--rootfs",
        root,
        "sh",
        "-c",
        "echo hello-podman; grep Seccomp: /proc/self/status; exit 4",
    ]);
    let (code, out, err) = podman(&args);
    assert_eq!(code, 4, "podman run: {out} {err}");
    assert!(out.contains("hello-podman"), "{out} {err}");
    assert!(
        out.contains("Seccomp:\t2"),
        "podman's seccomp profile: {out}"
    );

    let mut args = vec!["run", "-d", "--name", &name, "--network", "none"];
    args.extend(LIMITS);
    args.extend(["--rootfs", root, "sleep", "1000"]);
    let (code, out, err) = podman(&args);
    assert_eq!(code, 0, "podman run -d: {out} {err}");

    let (code, out, err) = podman(&["exec", &name, "sh", "-c", "echo in-exec; exit 3"]);
    assert_eq!(code, 3, "podman exec: {out} {err}");
    assert!(out.contains("in-exec"), "{out} {err}");

    let (code, out, err) = podman(&["exec", "-t", &name, "tty"]);
    assert_eq!(code, 0, "podman exec -t: {out} {err}");
    assert!(out.contains("/dev/pts/"), "exec -t gets a pty: {out} {err}");

    let (code, out, err) = podman(&["pause", &name]);
    assert_eq!(code, 0, "podman pause: {out} {err}");
    let (_, out, _) = podman(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(out.trim(), "paused");
    let (code, out, err) = podman(&["unpause", &name]);
    assert_eq!(code, 0, "podman unpause: {out} {err}");

    let (code, out, err) = podman(&["rm", "-f", "-t", "0", &name]);
    assert_eq!(code, 0, "podman rm -f: {out} {err}");
    let (_, out, _) = podman(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!out.lines().any(|l| l == name), "still listed: {out}");
    assert_eq!(container_cgroups(), Vec::<String>::new(), "cgroups left");

    // `podman init` leaves the container created in the runtime, never
    // started; `podman rm` deletes it with `delete --force` (a plain
    // delete of a created container is refused, as the runtime spec says).
    let init_name = format!("{name}-init");
    let _guard = Rm(init_name.clone());
    let mut args = vec!["create", "--name", &init_name, "--network", "none"];
    args.extend(LIMITS);
    args.extend(["--rootfs", root, "sleep", "1000"]);
    let (code, out, err) = podman(&args);
    assert_eq!(code, 0, "podman create: {out} {err}");
    let (code, out, err) = podman(&["init", &init_name]);
    assert_eq!(code, 0, "podman init: {out} {err}");
    let (_, id, _) = podman(&["inspect", "--format", "{{.Id}}", &init_name]);
    let state = |id: &str| {
        let out = Command::new(runtime())
            .args(["--root", "/run/contd-runtime", "state", id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let st = state(id.trim());
    assert!(st.contains("\"created\""), "the runtime's state: {st}");
    let (code, out, err) = podman(&["rm", &init_name]);
    assert_eq!(code, 0, "podman rm of a created container: {out} {err}");
    let st = state(id.trim());
    assert!(st.contains("does not exist"), "left in the runtime: {st}");
    assert_eq!(container_cgroups(), Vec::<String>::new(), "cgroups left");
}

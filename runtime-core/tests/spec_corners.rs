//! The corners of the OCI runtime spec where contd-runtime once differed
//! from the spec, runc or crun: one test (or a few) per corner, each
//! driving the `contd-runtime` CLI on a runc-`spec`-like bundle with one
//! change and asserting what the container (or the host) observes.
//!
//! Needs root and the busybox rootfs at `target/rootfs` (scripts/setup.sh).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::cli::*;

/// Polls `cond` every 10 ms for up to 20 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The optional fields (`shared:N`, `master:N`, `unbindable`) of the
/// mountinfo line whose mount point is `/`.
fn root_propagation_fields(mountinfo: &str) -> Vec<String> {
    let line = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in mountinfo:\n{mountinfo}"));
    line.split_whitespace()
        .skip(6)
        .take_while(|f| *f != "-")
        .map(str::to_string)
        .collect()
}

/// Fields of `/proc/PID/stat` after the command name, numbered from 3.
fn stat_field(stat: &str, n: usize) -> i64 {
    let rest = stat.rsplit_once(')').expect("stat has a comm").1;
    rest.split_whitespace()
        .nth(n - 3)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("field {n} of {stat:?}"))
}

// ---------------------------------------------------------------------------
// 1. No mount namespace
// ---------------------------------------------------------------------------

#[test]
fn no_mount_namespace_shares_the_callers_and_changes_no_mount() {
    let mut t = T::new();
    let mut spec = t.spec(&["sh", "-c", "ls /bin/busybox && echo chrooted"]);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    let b = t.bundle(&spec, Rootfs::Link);
    let rootfs = common::busybox_rootfs();
    let mounts_under_rootfs = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(rootfs.to_str().unwrap()))
            .count()
    };
    let before = mounts_under_rootfs();
    let id = t.id("nomntns");
    let out = t.create(&b, &id).ok();
    // The spec's mounts and masked paths are left out, and said so.
    assert!(
        out.stderr.contains("level=warning") && out.stderr.contains("mounts: not applied"),
        "{out:?}"
    );
    let pid = t.state(&id)["pid"].as_i64().unwrap();
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
    assert_eq!(ns(&pid.to_string()), ns("self"), "init has our mount ns");
    assert_eq!(mounts_under_rootfs(), before, "create mounted on the host");
    // An exec'd process gets init's root, not the host's.
    let exec = t.rt(&["exec", &id, "ls", "/"]).ok();
    let mut want: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want.sort();
    assert_eq!(lines(&exec.stdout), want, "{exec:?}");
    t.rt(&["start", &id]).ok();
    t.wait_status(&id, "stopped");
    let (stdout, stderr) = out.reread();
    assert_eq!(
        lines(&stdout),
        ["/bin/busybox", "chrooted"],
        "stderr: {stderr}"
    );
    t.rt(&["delete", &id]).ok();
    assert_eq!(mounts_under_rootfs(), before);
    t.assert_root_empty();

    // A chroot is no cage for a process that may chroot.
    let mut chroot = spec.clone();
    set_caps(&mut chroot, &["CAP_KILL", "CAP_SYS_CHROOT"]);
    t.create_refused(&chroot, "CAP_SYS_CHROOT");
    let mut userns = spec;
    add_namespace(&mut userns, "user");
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    userns["linux"]["uidMappings"] = map.clone();
    userns["linux"]["gidMappings"] = map;
    t.create_refused(&userns, "a user namespace without a mount namespace");
}

// ---------------------------------------------------------------------------
// 2. linux.rootfsPropagation
// ---------------------------------------------------------------------------

#[test]
fn rootfs_propagation_shared_and_unbindable_reach_the_new_root() {
    let mut t = T::new();
    for (prop, want) in [
        ("shared", "shared:"),
        ("rshared", "shared:"),
        ("unbindable", "unbindable"),
        ("private", ""),
    ] {
        let mut spec = t.spec(&["cat", "/proc/self/mountinfo"]);
        spec["linux"]["rootfsPropagation"] = prop.into();
        let out = t.run(prop, &spec, Rootfs::Link).ok();
        let fields = root_propagation_fields(&out.stdout);
        if want.is_empty() {
            assert!(fields.is_empty(), "{prop}: / has {fields:?}");
        } else {
            assert!(
                fields.iter().any(|f| f.starts_with(want)),
                "{prop}: / has {fields:?}, want {want}"
            );
        }
    }
    t.assert_root_empty();
}

// ---------------------------------------------------------------------------
// 3. Nothing between the seccomp load and execve
// ---------------------------------------------------------------------------

#[test]
fn seccomp_that_blocks_getcwd_without_no_new_privs_still_creates() {
    let mut t = T::new();
    for (uid, cap_eff) in [(0, "0000000020000420"), (1000, "0000000000000000")] {
        let mut spec = t.spec(&[
            "sh",
            "-c",
            "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; realpath .",
        ]);
        spec["process"]["noNewPrivileges"] = false.into();
        spec["process"]["user"] = json!({ "uid": uid, "gid": uid });
        spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["getcwd"], "action": "SCMP_ACT_ERRNO" }]
        });
        let out = t.run("getcwd", &spec, Rootfs::Link);
        // realpath fails inside (getcwd): the filter is in force.
        assert_eq!(out.code, 1, "uid {uid}: {out:?}");
        assert!(
            out.stderr.contains("Operation not permitted"),
            "uid {uid}: {out:?}"
        );
        let l = lines(&out.stdout);
        assert!(l.contains(&"Seccomp:\t2"), "uid {uid}: {out:?}");
        assert!(l.contains(&"NoNewPrivs:\t0"), "uid {uid}: {out:?}");
        // CAP_SYS_ADMIN, kept for the load, is gone after execve.
        let eff = format!("CapEff:\t{cap_eff}");
        assert!(l.contains(&eff.as_str()), "uid {uid}: {out:?}");
    }
}

// ---------------------------------------------------------------------------
// 4. Seccomp notify: the listener gets the fd during create
// ---------------------------------------------------------------------------

/// Accepts one connection within 20 s.
fn accept(listener: &UnixListener) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "nobody connected to the listener"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// One message with one fd (SCM_RIGHTS): the data as JSON, and the fd.
fn receive_state(stream: &UnixStream) -> (Value, OwnedFd) {
    let (fd, data) = receive_fd_with_data(stream);
    (serde_json::from_slice(&data).expect("state JSON"), fd)
}

#[test]
fn seccomp_listener_gets_the_fd_during_create_with_host_pids() {
    let mut t = T::new();
    let sock = t.path("listener.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut spec = t.spec(&["sleep", "100"]);
    spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta-x",
        "syscalls": [{ "names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_NOTIFY" }]
    });
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("notify");
    let create = t.spawn_with(&["create", "--bundle", s(&b), &id], |_| {});
    // Before anyone starts the container, the listener has the fd.
    let (msg, fd) = receive_state(&accept(&listener));
    create.finish().ok();
    let st = t.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(msg["pid"].as_i64(), Some(pid), "host pid of init: {msg}");
    assert_eq!(msg["state"]["pid"].as_i64(), Some(pid), "{msg}");
    assert_eq!(msg["state"]["id"], id.as_str(), "{msg}");
    assert_eq!(msg["state"]["status"], "creating", "{msg}");
    assert_eq!(msg["fds"], json!(["seccompFd"]), "{msg}");
    assert_eq!(msg["metadata"], "meta-x", "{msg}");
    let kind = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    assert!(
        kind.to_string_lossy().contains("seccomp"),
        "not a seccomp fd: {kind:?}"
    );

    // An exec'd process's filter: its fd with its own host pid.
    t.rt(&["start", &id]).ok();
    let pid_file = t.path("exec.pid");
    let exec = t.spawn_with(
        &[
            "exec",
            "-d",
            "--pid-file",
            s(&pid_file),
            &id,
            "sleep",
            "100",
        ],
        |_| {},
    );
    let (msg, _fd) = receive_state(&accept(&listener));
    exec.finish().ok();
    let exec_pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(msg["pid"].as_i64(), Some(exec_pid), "{msg}");
    assert_eq!(msg["state"]["pid"].as_i64(), Some(pid), "{msg}");
    assert_eq!(msg["state"]["status"], "running", "{msg}");
    t.rt(&["delete", "--force", &id]).ok();
    t.assert_root_empty();
}

// ---------------------------------------------------------------------------
// 5. A failing poststop hook warns; the others still run
// ---------------------------------------------------------------------------

#[test]
fn failing_poststop_hook_warns_and_the_next_still_runs() {
    let mut t = T::new();
    let ran = t.path("second-ran");
    let mut spec = t.spec(&["sleep", "100"]);
    spec["hooks"] = json!({ "poststop": [
        { "path": "/bin/false", "args": ["false"] },
        { "path": "/bin/sh", "args": ["sh", "-c", format!("echo ran > {}", s(&ran))] }
    ]});
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("poststop");
    t.create(&b, &id).ok();
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    let out = t.rt(&["delete", &id]).ok();
    assert!(
        out.stderr.contains("level=warning") && out.stderr.contains("poststop hook #0"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&ran).unwrap().trim(), "ran");
    t.assert_root_empty();
}

// ---------------------------------------------------------------------------
// 6. delete refuses a created container unless forced
// ---------------------------------------------------------------------------

#[test]
fn plain_delete_of_a_created_container_is_refused() {
    let mut t = T::new();
    let spec = t.spec(&["sleep", "100"]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("created");
    t.create(&b, &id).ok();
    let pid = t.state(&id)["pid"].as_i64().unwrap();
    t.rt(&["delete", &id]).fails_with(&format!(
        "cannot delete container {id} that is not stopped: created"
    ));
    // Nothing changed.
    assert_eq!(t.state(&id)["status"], "created");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "init was killed"
    );
    assert!(cgroup_dir("memory", &cg).is_dir(), "cgroup removed");
    t.rt(&["delete", "--force", &id]).ok();
    t.assert_root_empty();
    t.assert_no_cgroup(&cg);
}

// ---------------------------------------------------------------------------
// 7. ociVersion
// ---------------------------------------------------------------------------

#[test]
fn oci_version_must_be_a_semver_of_a_supported_major() {
    let mut t = T::new();
    for bad in ["invalid", "9.9.9", "1.0", "", "1.02.0"] {
        let mut spec = t.spec(&["true"]);
        spec["ociVersion"] = bad.into();
        t.create_refused(&spec, "ociVersion");
    }
    for good in ["1.0.2-dev", "1.2.0", "1.3.0+build.5", "1.0.0-rc.1"] {
        let mut spec = t.spec(&["true"]);
        spec["ociVersion"] = good.into();
        t.run("goodver", &spec, Rootfs::Link).ok();
    }
    t.assert_root_empty();
}

// ---------------------------------------------------------------------------
// 8. startContainer hooks get the process's env
// ---------------------------------------------------------------------------

#[test]
fn start_container_hook_without_env_gets_the_process_env() {
    let mut t = T::new();
    let mut spec = t.spec(&["true"]);
    spec["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FOO=from-process"]);
    spec["hooks"] = json!({ "startContainer": [
        { "path": "/bin/sh", "args": ["sh", "-c", "env > /hook-env"] }
    ]});
    let b = t.bundle(&spec, Rootfs::Copy);
    let id = t.id("hookenv");
    t.rt(&["run", "--bundle", s(&b), &id]).ok();
    let env = std::fs::read_to_string(b.join("rootfs/hook-env")).unwrap();
    let env = lines(&env);
    assert!(env.contains(&"FOO=from-process"), "{env:?}");
    assert!(env.contains(&"PATH=/bin:/usr/bin"), "{env:?}");
}

// ---------------------------------------------------------------------------
// 9. exec: --cap names, --ignore-paused, --cgroup, personality
// ---------------------------------------------------------------------------

/// A running `sleep 100` container; returns its id and cgroup path.
fn sleeper(t: &mut T, name: &str, edit: impl FnOnce(&mut Value)) -> (String, String) {
    let mut spec = t.spec(&["sleep", "100"]);
    edit(&mut spec);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id(name);
    t.rt(&["run", "-d", "--bundle", s(&b), &id]).ok();
    (id, cg)
}

#[test]
fn exec_cap_takes_names_with_and_without_the_prefix() {
    let mut t = T::new();
    let (id, _) = sleeper(&mut t, "execcap", |_| {});
    // Base: AUDIT_WRITE, KILL, NET_BIND_SERVICE = 0x20000420.
    for (cap, want) in [
        ("CAP_NET_ADMIN", "0000000020001420"),
        ("net_raw", "0000000020002420"),
    ] {
        let out = t
            .rt(&[
                "exec",
                "--cap",
                cap,
                &id,
                "grep",
                "CapEff",
                "/proc/self/status",
            ])
            .ok();
        assert_eq!(out.stdout.trim(), format!("CapEff:\t{want}"), "--cap {cap}");
    }
    t.rt(&["exec", "--cap", "CAP_NOPE", &id, "true"])
        .fails_with("unknown capability CAP_NOPE");
    t.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_ignore_paused_runs_once_the_container_is_resumed() {
    let mut t = T::new();
    let (id, cg) = sleeper(&mut t, "execpaused", |_| {});
    t.rt(&["pause", &id]).ok();
    t.rt(&["exec", &id, "true"])
        .fails_with("cannot exec in a paused container");
    let mut exec = t.spawn_with(
        &[
            "exec",
            "--ignore-paused",
            &id,
            "sh",
            "-c",
            "echo after-resume",
        ],
        |_| {},
    );
    let procs = cgroup_dir("freezer", &cg).join("cgroup.procs");
    wait_until("the exec'd process to join the frozen cgroup", || {
        std::fs::read_to_string(&procs).unwrap().lines().count() >= 2
    });
    // Frozen with the container: it cannot have finished.
    assert!(
        exec.child.try_wait().unwrap().is_none(),
        "exec finished while paused"
    );
    t.rt(&["resume", &id]).ok();
    let out = exec.finish().ok();
    assert_eq!(out.stdout.trim(), "after-resume");
    t.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_cgroup_joins_an_existing_sub_cgroup() {
    let mut t = T::new();
    let (id, cg) = sleeper(&mut t, "execcg", |_| {});
    for h in ["memory", "pids"] {
        std::fs::create_dir(cgroup_dir(h, &cg).join("sub")).unwrap();
    }
    let line_of = |out: &str, controller: &str| -> String {
        out.lines()
            .find(|l| l.split(':').nth(1) == Some(controller))
            .unwrap_or_else(|| panic!("no {controller} in {out}"))
            .rsplit(':')
            .next()
            .unwrap()
            .to_string()
    };
    let out = t
        .rt(&[
            "exec",
            "--cgroup",
            "memory:sub",
            &id,
            "cat",
            "/proc/self/cgroup",
        ])
        .ok();
    assert_eq!(line_of(&out.stdout, "memory"), format!("{cg}/sub"));
    assert_eq!(line_of(&out.stdout, "pids"), cg);
    let out = t
        .rt(&["exec", "--cgroup", "sub", &id, "cat", "/proc/self/cgroup"])
        .fails_with("does not exist for");
    assert!(out.stdout.is_empty());
    let out = t
        .rt(&[
            "exec",
            "--cgroup",
            "memory,pids:sub",
            &id,
            "cat",
            "/proc/self/cgroup",
        ])
        .ok();
    assert_eq!(line_of(&out.stdout, "memory"), format!("{cg}/sub"));
    assert_eq!(line_of(&out.stdout, "pids"), format!("{cg}/sub"));
    t.rt(&["exec", "--cgroup", "memory:../escape", &id, "true"])
        .fails_with("bad sub-cgroup path");
    t.rt(&["exec", "--cgroup", "bogus:sub", &id, "true"])
        .fails_with("unknown controller");
    for h in ["memory", "pids"] {
        std::fs::remove_dir(cgroup_dir(h, &cg).join("sub")).unwrap();
    }
    t.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_gets_the_container_personality() {
    let mut t = T::new();
    let (id, _) = sleeper(&mut t, "execpers", |spec| {
        spec["linux"]["personality"] = json!({ "domain": "LINUX32" });
    });
    let out = t.rt(&["exec", &id, "uname", "-m"]).ok();
    assert_eq!(out.stdout.trim(), "i686", "{out:?}");
    t.rt(&["delete", "--force", &id]).ok();
}

// ---------------------------------------------------------------------------
// 10. A time namespace inside a user namespace
// ---------------------------------------------------------------------------

#[test]
fn time_namespace_offsets_inside_a_user_namespace() {
    let mut t = T::new();
    let mut spec = t.spec(&["sh", "-c", "cat /proc/uptime; id -u"]);
    add_namespace(&mut spec, "time");
    spec["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 864000, "nanosecs": 0 } });
    let b = t.userns_bundle(&mut spec);
    let id = t.id("usertime");
    let out = t.rt(&["run", "--bundle", s(&b), &id]).ok();
    let l = lines(&out.stdout);
    let up: f64 = l[0]
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("/proc/uptime: {out:?}"));
    assert!(up > 864000.0, "uptime {up} lacks the 10-day offset");
    assert_eq!(l[1], "0", "root of the user namespace: {out:?}");
}

// ---------------------------------------------------------------------------
// 11. kernelTCP
// ---------------------------------------------------------------------------

#[test]
fn kernel_tcp_limit_applied_on_v1_and_refused_on_v2() {
    let mut t = T::new();
    let mut spec = t.spec(&["sleep", "100"]);
    spec["linux"]["resources"] = json!({ "memory": { "kernelTCP": 16777216 } });
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("ktcp");
    t.create(&b, &id).ok();
    let file = cgroup_dir("memory", &cg).join("memory.kmem.tcp.limit_in_bytes");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "16777216");
    t.rt(&["delete", "--force", &id]).ok();

    // cgroup v2 has no such limit: refused, nothing made.
    let id = t.id("ktcp2");
    t.rt_with(&["create", "--bundle", s(&b), &id], on_cgroup_v2)
        .fails_with("linux.resources.memory.kernelTCP");
    t.assert_root_empty();
    t.assert_no_cgroup(&cg);
}

// ---------------------------------------------------------------------------
// 12. memoryPolicy, scheduler, execCPUAffinity
// ---------------------------------------------------------------------------

#[test]
fn memory_policy_applies_to_init_and_exec() {
    let mut t = T::new();
    let mut spec = t.spec(&["cat", "/proc/self/numa_maps"]);
    spec["linux"]["memoryPolicy"] =
        json!({ "mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"] });
    let out = t.run("mpol", &spec, Rootfs::Link).ok();
    assert!(out.stdout.contains("bind=static:0"), "{out:?}");
    assert!(!out.stdout.contains("default"), "{out:?}");

    let (id, _) = sleeper(&mut t, "mpolexec", |spec| {
        spec["linux"]["memoryPolicy"] = json!({ "mode": "MPOL_INTERLEAVE", "nodes": "0" });
    });
    let out = t.rt(&["exec", &id, "cat", "/proc/self/numa_maps"]).ok();
    assert!(out.stdout.contains("interleave:0"), "{out:?}");
    t.rt(&["delete", "--force", &id]).ok();

    let mut spec = t.spec(&["true"]);
    spec["linux"]["memoryPolicy"] = json!({ "mode": "MPOL_BIND" });
    t.create_refused(&spec, "linux.memoryPolicy.nodes");
}

#[test]
fn scheduler_applies_to_init_and_exec() {
    let mut t = T::new();
    let sched =
        json!({ "policy": "SCHED_BATCH", "nice": 7, "flags": ["SCHED_FLAG_RESET_ON_FORK"] });
    let mut spec = t.spec(&["cat", "/proc/self/stat"]);
    spec["process"]["scheduler"] = sched;
    let out = t.run("sched", &spec, Rootfs::Link).ok();
    // Field 19 is the nice value, field 41 the policy (SCHED_BATCH = 3).
    assert_eq!(stat_field(&out.stdout, 19), 7, "{out:?}");
    assert_eq!(stat_field(&out.stdout, 41), 3, "{out:?}");

    let (id, _) = sleeper(&mut t, "schedexec", |spec| {
        spec["process"]["scheduler"] = json!({ "policy": "SCHED_IDLE" });
    });
    let out = t.rt(&["exec", &id, "cat", "/proc/self/stat"]).ok();
    assert_eq!(stat_field(&out.stdout, 41), 5, "SCHED_IDLE: {out:?}");
    t.rt(&["delete", "--force", &id]).ok();

    let mut spec = t.spec(&["true"]);
    spec["process"]["scheduler"] = json!({ "policy": "SCHED_FIFO" });
    t.create_refused(&spec, "process.scheduler.priority");
}

#[test]
fn exec_cpu_affinity_final_applies_to_exec() {
    let mut t = T::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last = (cpus - 1).to_string();
    let (id, _) = sleeper(&mut t, "affinity", |_| {});
    let process = json!({
        "cwd": "/",
        "args": ["grep", "Cpus_allowed_list", "/proc/self/status"],
        "env": ["PATH=/bin"],
        "user": { "uid": 0, "gid": 0 },
        "execCPUAffinity": { "initial": "0", "final": last }
    });
    let p = t.path("process.json");
    std::fs::write(&p, process.to_string()).unwrap();
    let out = t.rt(&["exec", "--process", s(&p), &id]).ok();
    assert_eq!(
        out.stdout.split_whitespace().last(),
        Some(last.as_str()),
        "{out:?}"
    );
    let bad = json!({
        "cwd": "/", "args": ["true"], "user": { "uid": 0, "gid": 0 },
        "execCPUAffinity": { "final": "4096" }
    });
    std::fs::write(&p, bad.to_string()).unwrap();
    t.rt(&["exec", "--process", s(&p), &id])
        .fails_with("process.execCPUAffinity.final");
    t.rt(&["delete", "--force", &id]).ok();
}

// ---------------------------------------------------------------------------
// 13. Errors as runc prints them
// ---------------------------------------------------------------------------

#[test]
fn errors_are_one_logfmt_line_on_stderr() {
    let t = T::new();
    let out = t.rt(&["state", "nosuch"]);
    assert_eq!(out.code, 1, "{out:?}");
    let l = lines(&out.stderr);
    assert_eq!(l.len(), 1, "{out:?}");
    let line = l[0];
    let rest = line
        .strip_prefix("time=\"")
        .unwrap_or_else(|| panic!("{line}"));
    let (time, rest) = rest.split_once('"').unwrap();
    // 2006-01-02T15:04:05Z
    assert_eq!(time.len(), 20, "{line}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
    assert_eq!(
        rest, " level=error msg=\"container nosuch does not exist\"",
        "{line}"
    );
}

// ---------------------------------------------------------------------------
// Init holds fds that lead to the host until it execs
// ---------------------------------------------------------------------------

#[test]
fn init_fds_are_out_of_the_containers_reach_while_created() {
    let mut t = T::new();
    let spec = t.spec(&["sleep", "100"]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("fdreach");
    t.create(&b, &id).ok();
    // Another process of the container, root with the same capabilities:
    // init is not dumpable, so its fds (the exec fifo, the host's
    // /proc/self/fd) are not for it to follow.
    let out = t.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ls -l /proc/1/fd/; for f in /proc/1/fd/*; do ls \"$f/\" >/dev/null && echo REACHED $f; done",
    ]);
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    assert!(
        !out.stdout.contains(" -> "),
        "init's fds can be read: {out:?}"
    );
    assert!(
        !out.stdout.contains("REACHED"),
        "init's fds can be followed: {out:?}"
    );
    // Once it runs the container's program it is an ordinary process.
    t.rt(&["start", &id]).ok();
    let out = t.rt(&["exec", &id, "ls", "/proc/1/fd/"]).ok();
    assert!(lines(&out.stdout).contains(&"0"), "{out:?}");
    t.rt(&["delete", "--force", &id]).ok();
}

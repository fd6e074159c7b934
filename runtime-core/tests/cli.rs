//! `contd-runtime` as root, driven as a user (or containerd's shim) would:
//! every test builds a busybox bundle, runs the CLI with a fresh `--root`,
//! and asserts what the container observes from inside and what is left on
//! the host afterwards.
//!
//! Needs root and the busybox rootfs at `target/rootfs` (scripts/setup.sh).
//! Run with:
//! `cargo test -p runtime-core --test cli -- --test-threads=2`

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::cli::*;

// ---------------------------------------------------------------------------
// 1. Lifecycle contract
// ---------------------------------------------------------------------------

#[test]
fn lifecycle_create_start_pause_resume_kill_delete() {
    let mut t = T::new();
    let spec = t.spec(&["sleep", "100"]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("life");
    let pid_file = t.path("init.pid");

    t.rt(&["create", "--bundle", s(&b), "--pid-file", s(&pid_file), &id])
        .ok();
    let st = t.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str(), "{st}");
    assert_eq!(st["ociVersion"], "1.2.0", "{st}");
    let pid = st["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "created container needs a pid: {st}");
    let file_pid = std::fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(file_pid.trim(), pid.to_string(), "pid file vs state pid");
    assert_eq!(
        st["bundle"].as_str().map(PathBuf::from),
        Some(b.canonicalize().unwrap()),
        "{st}"
    );
    assert!(
        cgroup_dir("memory", &cg).is_dir(),
        "created container has its memory cgroup"
    );

    t.rt(&["start", &id]).ok();
    let st = t.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid), "{st}");

    t.rt(&["start", &id])
        .fails_with("cannot start an already running container");
    t.rt(&["delete", &id]).fails_with(&format!(
        "cannot delete container {id} that is not stopped: running"
    ));

    t.rt(&["pause", &id]).ok();
    assert_eq!(t.state(&id)["status"], "paused");
    t.rt(&["resume", &id]).ok();
    assert_eq!(t.state(&id)["status"], "running");

    let ps = t.rt(&["ps", "--format", "json", &id]).ok();
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout)
        .unwrap_or_else(|e| panic!("ps --format json: {e}: {:?}", ps.stdout));
    assert!(pids.contains(&pid), "ps {pids:?} should list init {pid}");

    t.rt(&["kill", &id, "KILL"]).ok();
    let st = t.wait_status(&id, "stopped");
    assert_eq!(
        st["pid"].as_i64(),
        Some(0),
        "stopped container reports pid 0: {st}"
    );
    t.rt(&["start", &id])
        .fails_with("cannot start a container that has stopped");

    t.rt(&["delete", &id]).ok();
    t.rt(&["state", &id])
        .fails_with(&format!("container {id} does not exist"));
    assert!(!t.root.join(&id).exists(), "state dir left behind");
    assert!(
        !cgroup_dir("memory", &cg).exists(),
        "memory cgroup {cg} left behind after delete"
    );
    t.assert_no_cgroup(&cg);
}

// ---------------------------------------------------------------------------
// 2. run: exit code
// ---------------------------------------------------------------------------

#[test]
fn run_foreground_exits_with_container_code() {
    let mut t = T::new();
    let spec = t.spec(&["sh", "-c", "echo out-line; echo err-line >&2; exit 7"]);
    let out = t.run("exit7", &spec, Rootfs::Link);
    assert_eq!(out.code, 7, "run exit code; stderr: {}", out.stderr);
    assert!(out.stdout.contains("out-line"), "stdout: {:?}", out.stdout);
    assert!(out.stderr.contains("err-line"), "stderr: {:?}", out.stderr);
    // run without --keep deletes the container.
    t.assert_root_empty();
}

// ---------------------------------------------------------------------------
// 3. Capabilities and no_new_privs
// ---------------------------------------------------------------------------

#[test]
fn capabilities_and_no_new_privs() {
    let mut t = T::new();
    let mut spec = t.spec(&["cat", "/proc/self/status"]);
    set_caps(&mut spec, &["CAP_CHOWN", "CAP_KILL"]);
    spec["process"]["noNewPrivileges"] = true.into();
    let out = t.run("caps", &spec, Rootfs::Link).ok();
    for key in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            status_field(&out.stdout, key),
            Some("0000000000000021"),
            "{key} in:\n{}",
            out.stdout
        );
    }
    assert_eq!(
        status_field(&out.stdout, "CapAmb"),
        Some("0000000000000000")
    );
    assert!(
        out.stdout.contains("NoNewPrivs:\t1"),
        "NoNewPrivs in:\n{}",
        out.stdout
    );
}

// ---------------------------------------------------------------------------
// 4. hostname / domainname
// ---------------------------------------------------------------------------

#[test]
fn hostname_and_domainname() {
    let mut t = T::new();
    let mut spec = t.spec(&["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"]);
    spec["hostname"] = "cli-box".into();
    spec["domainname"] = "cli.example".into();
    let out = t.run("uts", &spec, Rootfs::Link).ok();
    assert_eq!(lines(&out.stdout), ["cli-box", "cli.example"], "{out:?}");
}

// ---------------------------------------------------------------------------
// 5. user, groups, umask
// ---------------------------------------------------------------------------

#[test]
fn user_groups_and_umask() {
    let mut t = T::new();
    let mut spec = t.spec(&["sh", "-c", "id; umask"]);
    spec["process"]["user"] = json!({
        "uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o077
    });
    let out = t.run("user", &spec, Rootfs::Link).ok();
    let l = lines(&out.stdout);
    assert_eq!(l.len(), 2, "{out:?}");
    let id_line = l[0];
    assert!(id_line.starts_with("uid=1000"), "id: {id_line}");
    assert!(id_line.contains(" gid=1000"), "id: {id_line}");
    let groups: Vec<u32> = id_line
        .split("groups=")
        .nth(1)
        .unwrap_or_else(|| panic!("no groups= in {id_line:?}"))
        .split(',')
        .map(|g| {
            g.split('(')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("group {g:?} in {id_line:?}"))
        })
        .collect();
    assert!(
        groups.contains(&10) && groups.contains(&20),
        "groups {groups:?} should hold 10 and 20 ({id_line})"
    );
    assert_eq!(l[1], "0077", "umask");
}

// ---------------------------------------------------------------------------
// 6. rlimits
// ---------------------------------------------------------------------------

#[test]
fn rlimit_nofile() {
    let mut t = T::new();
    let mut spec = t.spec(&["sh", "-c", "ulimit -n; ulimit -H -n"]);
    spec["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "hard": 321, "soft": 321 }]);
    let out = t.run("rlim", &spec, Rootfs::Link).ok();
    assert_eq!(lines(&out.stdout), ["321", "321"], "{out:?}");
}

// ---------------------------------------------------------------------------
// 7. mounts
// ---------------------------------------------------------------------------

/// The mountinfo line whose mount point is `dest`: (per-mount options,
/// fs type).
fn mountinfo_entry(mountinfo: &str, dest: &str) -> Option<(String, String)> {
    mountinfo.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 5 && f[4] == dest {
            let sep = f.iter().position(|x| *x == "-")?;
            Some((f[5].to_string(), f.get(sep + 1)?.to_string()))
        } else {
            None
        }
    })
}

#[test]
fn bind_and_tmpfs_mounts_read_only() {
    let mut t = T::new();
    let host_dir = t.path("host-data");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("hello"), "from-host\n").unwrap();
    let mut spec = t.spec(&[
        "sh",
        "-c",
        "cat /proc/self/mountinfo; echo ===; cat /data/hello; \
         echo x > /data/new && echo WROTE-DATA; \
         echo x > /scratch/new && echo WROTE-SCRATCH; true",
    ]);
    add_mount(
        &mut spec,
        json!({ "destination": "/data", "type": "bind", "source": s(&host_dir),
                "options": ["rbind", "ro"] }),
    );
    add_mount(
        &mut spec,
        json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                "options": ["rro"] }),
    );
    // The runtime creates /data and /scratch in the rootfs: use a copy.
    let out = t.run("mounts", &spec, Rootfs::Copy).ok();
    let (mountinfo, rest) = out.stdout.split_once("===").expect("marker");

    let (opts, _) = mountinfo_entry(mountinfo, "/data")
        .unwrap_or_else(|| panic!("/data not in mountinfo:\n{mountinfo}"));
    assert!(opts.split(',').any(|o| o == "ro"), "/data options {opts}");
    let (opts, fstype) = mountinfo_entry(mountinfo, "/scratch")
        .unwrap_or_else(|| panic!("/scratch not in mountinfo:\n{mountinfo}"));
    assert_eq!(fstype, "tmpfs");
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "/scratch options {opts}"
    );

    assert!(rest.contains("from-host"), "bind mount content: {rest:?}");
    assert!(
        !rest.contains("WROTE-DATA"),
        "write into ro /data succeeded"
    );
    assert!(
        !rest.contains("WROTE-SCRATCH"),
        "write into rro /scratch succeeded"
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "stderr: {:?}",
        out.stderr
    );
    assert!(
        !host_dir.join("new").exists(),
        "the container wrote into the host dir"
    );
}

// ---------------------------------------------------------------------------
// 8. masked and read-only paths
// ---------------------------------------------------------------------------

#[test]
fn masked_and_readonly_paths() {
    let mut t = T::new();
    let mut spec = t.spec(&[
        "sh",
        "-c",
        "echo [; cat /proc/keys; echo ]; \
         echo hacked > /proc/sys/kernel/hostname && echo WROTE-SYSCTL; hostname",
    ]);
    spec["hostname"] = "masked-box".into();
    spec["linux"]["maskedPaths"] = json!(["/proc/keys"]);
    spec["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    let out = t.run("masked", &spec, Rootfs::Link).ok();
    let l = lines(&out.stdout);
    assert_eq!(
        l.first().copied(),
        Some("["),
        "stdout: {:?} stderr: {:?}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        l.get(1).copied(),
        Some("]"),
        "/proc/keys should read empty: {l:?}"
    );
    assert!(
        !out.stdout.contains("WROTE-SYSCTL"),
        "write to ro /proc/sys succeeded"
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "stderr: {:?}",
        out.stderr
    );
    assert_eq!(l.last().copied(), Some("masked-box"));
}

// ---------------------------------------------------------------------------
// 9. seccomp
// ---------------------------------------------------------------------------

#[test]
fn seccomp_errno_rule() {
    let mut t = T::new();
    let mut spec = t.spec(&[
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; mkdir /tmp/x && echo MKDIR-OK; true",
    ]);
    // mkdir must never reach the shared rootfs, even if the filter fails.
    add_mount(
        &mut spec,
        json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev"] }),
    );
    spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38 }
        ]
    });
    let out = t.run("seccomp", &spec, Rootfs::Link).ok();
    let status = out.stdout.lines().find(|l| l.starts_with("Seccomp:"));
    assert_eq!(
        status.map(|l| l.split_whitespace().nth(1)),
        Some(Some("2")),
        "{out:?}"
    );
    assert!(
        !out.stdout.contains("MKDIR-OK"),
        "mkdir was not blocked: {out:?}"
    );
    assert!(
        out.stderr.contains("Function not implemented"),
        "mkdir should fail with ENOSYS: {:?}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// 10. cgroup limits, seen from inside (cgroup ns) and from the host
// ---------------------------------------------------------------------------

#[test]
fn cgroup_limits_inside_and_on_host() {
    let mut t = T::new();
    let mut spec = t.spec(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/pids/pids.max",
    ]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    spec["linux"]["resources"] = json!({
        "memory": { "limit": 67108864 },
        "pids": { "limit": 50 }
    });
    add_namespace(&mut spec, "cgroup");
    add_mount(
        &mut spec,
        json!({ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }),
    );
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("cglim");
    let created = t.create(&b, &id).ok();

    let host_mem = cgroup_dir("memory", &cg).join("memory.limit_in_bytes");
    assert_eq!(
        std::fs::read_to_string(&host_mem)
            .unwrap_or_else(|e| panic!("{}: {e}", host_mem.display()))
            .trim(),
        "67108864"
    );
    let host_pids = cgroup_dir("pids", &cg).join("pids.max");
    assert_eq!(
        std::fs::read_to_string(&host_pids)
            .unwrap_or_else(|e| panic!("{}: {e}", host_pids.display()))
            .trim(),
        "50"
    );
    // init is in the container's cgroup already.
    let pid = t.state(&id)["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(cgroup_dir("memory", &cg).join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|p| p.trim() == pid.to_string()),
        "init {pid} not in the memory cgroup: {procs:?}"
    );

    t.rt(&["start", &id]).ok();
    t.wait_status(&id, "stopped");
    let (stdout, stderr) = created.reread();
    assert_eq!(lines(&stdout), ["67108864", "50"], "stderr: {stderr}");
    t.rt(&["delete", &id]).ok();
    t.assert_no_cgroup(&cg);
}

// ---------------------------------------------------------------------------
// 11. devices
// ---------------------------------------------------------------------------

#[test]
fn devices_nodes_and_device_cgroup() {
    let mut t = T::new();
    let mut spec = t.spec(&[
        "sh",
        "-c",
        "echo x > /dev/mynull && echo WRITE-OK; stat -c '%a %t %T' /dev/mynull; \
         mknod /dev/sda b 8 0 && head -c1 /dev/sda > /dev/null && echo SDA-READ; true",
    ]);
    set_caps(
        &mut spec,
        &[
            "CAP_AUDIT_WRITE",
            "CAP_KILL",
            "CAP_NET_BIND_SERVICE",
            "CAP_MKNOD",
        ],
    );
    spec["linux"]["devices"] = json!([{
        "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
        "fileMode": 0o600, "uid": 0, "gid": 0
    }]);
    spec["linux"]["resources"] = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    let out = t.run("devs", &spec, Rootfs::Link).ok();
    let l = lines(&out.stdout);
    assert!(l.contains(&"WRITE-OK"), "write to /dev/mynull: {out:?}");
    assert!(l.contains(&"600 1 3"), "stat /dev/mynull: {out:?}");
    assert!(
        !l.contains(&"SDA-READ"),
        "device cgroup let /dev/sda through: {out:?}"
    );
}

#[test]
fn cgroup_v2_device_program_limits_freeze_and_cleanup() {
    let mut t = T::new();
    // Devices: deny all, allow mknod of loop0 (b 7:0) but not of sda
    // (b 8:0); /dev/mynull comes from linux.devices and is allowed.
    let mut spec = t.spec(&[
        "sh",
        "-c",
        "echo x > /dev/mynull && echo WRITE-OK; \
         mknod /dev/loop0 b 7 0 && echo LOOP-MKNOD; \
         mknod /dev/sda b 8 0 && echo SDA-MKNOD; \
         grep -x '0::/' /proc/self/cgroup; cat /sys/fs/cgroup/hugetlb.2MB.max",
    ]);
    set_caps(&mut spec, &["CAP_KILL", "CAP_MKNOD"]);
    add_namespace(&mut spec, "cgroup");
    add_mount(
        &mut spec,
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    );
    spec["linux"]["devices"] = json!([{
        "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
        "fileMode": 0o600, "uid": 0, "gid": 0
    }]);
    spec["linux"]["resources"] = json!({
        "devices": [
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "b", "major": 7, "minor": 0, "access": "m" }
        ],
        "hugepageLimits": [{ "pageSize": "2MB", "limit": 4194304 }]
    });
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let b = t.bundle(&spec, Rootfs::Copy);
    let id = t.id("v2dev");
    let out = t
        .rt_with(&["run", "--bundle", s(&b), &id], on_cgroup_v2)
        .ok();
    let l = lines(&out.stdout);
    assert!(l.contains(&"WRITE-OK"), "{out:?}");
    assert!(l.contains(&"LOOP-MKNOD"), "the allowed mknod: {out:?}");
    assert!(
        !l.contains(&"SDA-MKNOD"),
        "the device program let b 8:0 through: {out:?}"
    );
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
    // Its own v2 cgroup, seen through a cgroup namespace; the limit in it.
    assert!(l.contains(&"0::/"), "{out:?}");
    assert!(l.contains(&"4194304"), "hugetlb.2MB.max: {out:?}");
    t.assert_no_cgroup(&cg);

    // Lifecycle on v2: the cgroup in the v2 tree, frozen by cgroup.freeze.
    let spec = t.spec(&["sleep", "100"]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("v2life");
    t.rt_with(&["create", "--bundle", s(&b), &id], on_cgroup_v2)
        .ok();
    t.rt_with(&["start", &id], on_cgroup_v2).ok();
    let dir = cgroup_dir("unified", &cg);
    let pid = t.state(&id)["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string(), "init in its v2 cgroup");
    assert!(
        !cgroup_dir("memory", &cg).exists(),
        "no v1 cgroup on a v2 host"
    );
    t.rt_with(&["pause", &id], on_cgroup_v2).ok();
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "1"
    );
    let st = t.rt_with(&["state", &id], on_cgroup_v2).ok();
    assert!(st.stdout.contains("\"paused\""), "{st:?}");
    t.rt_with(&["resume", &id], on_cgroup_v2).ok();
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "0"
    );
    t.rt_with(&["kill", &id, "KILL"], on_cgroup_v2).ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t
        .rt_with(&["state", &id], on_cgroup_v2)
        .stdout
        .contains("\"stopped\"")
    {
        assert!(Instant::now() < deadline, "never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.rt_with(&["delete", &id], on_cgroup_v2).ok();
    assert!(!dir.exists(), "v2 cgroup {} left behind", dir.display());
    t.assert_no_cgroup(&cg);

    // A memory limit: applied where the v2 tree has the controller,
    // refused up front with the field where it has not (this machine).
    let mut spec = t.spec(&["cat", "/sys/fs/cgroup/memory.max"]);
    spec["linux"]["resources"] = json!({ "memory": { "limit": 67108864 } });
    add_namespace(&mut spec, "cgroup");
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("v2mem");
    let out = t.rt_with(&["run", "--bundle", s(&b), &id], on_cgroup_v2);
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap();
    if controllers.split_whitespace().any(|c| c == "memory") {
        assert!(out.ok().stdout.contains("67108864"));
    } else {
        out.fails_with("linux.resources.memory: this cgroup v2 host has no memory controller");
        t.assert_root_empty();
    }
    t.assert_no_cgroup(&cg);
}

// ---------------------------------------------------------------------------
// 12. hooks
// ---------------------------------------------------------------------------

fn tagged_hook(tag: &str, file: &Path) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo {tag} >> {f}; cat >> {f}; echo >> {f}", f = s(file))]
    })
}

/// (tag, state JSON) sections of the hook log.
fn hook_sections(text: &str, tags: &[&str]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in text.lines() {
        if tags.contains(&l.trim()) {
            out.push((l.trim().to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(l);
            last.1.push('\n');
        } else {
            panic!("hook log starts with a non-tag line: {text}");
        }
    }
    out.into_iter()
        .map(|(tag, body)| {
            let v = serde_json::from_str(body.trim())
                .unwrap_or_else(|e| panic!("hook {tag} got no state JSON ({e}): {body:?}"));
            (tag, v)
        })
        .collect()
}

#[test]
fn hooks_run_in_order_with_state() {
    let mut t = T::new();
    let log = t.path("hooks.log");
    let mut spec = t.spec(&["sleep", "100"]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    spec["hooks"] = json!({
        "createRuntime": [tagged_hook("createRuntime", &log)],
        "createContainer": [tagged_hook("createContainer", &log)],
        "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/start.json"] }],
        "poststart": [tagged_hook("poststart", &log)],
        "poststop": [tagged_hook("poststop", &log)]
    });
    let b = t.bundle(&spec, Rootfs::Copy);
    let id = t.id("hooks");
    t.create(&b, &id).ok();
    t.rt(&["start", &id]).ok();
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).ok();

    let text = std::fs::read_to_string(&log).expect("hook log written");
    let tags = ["createRuntime", "createContainer", "poststart", "poststop"];
    let sections = hook_sections(&text, &tags);
    let order: Vec<&str> = sections.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(order, tags, "hook order; log:\n{text}");
    let bundle = b.canonicalize().unwrap();
    for ((tag, st), want) in sections
        .iter()
        .zip(["creating", "creating", "running", "stopped"])
    {
        assert_eq!(st["id"], id.as_str(), "{tag}: {st}");
        assert_eq!(st["status"], want, "{tag}: {st}");
        assert_eq!(
            st["bundle"].as_str().map(PathBuf::from),
            Some(bundle.clone()),
            "{tag}: {st}"
        );
        if want == "stopped" {
            // The runtime spec makes pid optional once stopped.
            assert!(
                st.get("pid").is_none_or(Value::is_i64),
                "{tag}: pid must be a number: {st}"
            );
        } else {
            assert!(
                st["pid"].as_i64().unwrap_or(0) > 0,
                "{tag}: state needs the init pid: {st}"
            );
        }
    }
    let start_file = b.join("rootfs/tmp/start.json");
    let start = std::fs::read_to_string(&start_file)
        .unwrap_or_else(|e| panic!("startContainer hook output {}: {e}", start_file.display()));
    let st: Value = serde_json::from_str(start.trim())
        .unwrap_or_else(|e| panic!("startContainer state not JSON ({e}): {start:?}"));
    assert_eq!(st["id"], id.as_str(), "startContainer: {st}");
    t.assert_no_cgroup(&cg);
}

#[test]
fn failing_create_runtime_hook_fails_create_and_undoes() {
    let mut t = T::new();
    let mut spec = t.spec(&["sleep", "100"]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    spec["hooks"] = json!({ "createRuntime": [{ "path": "/bin/false", "args": ["false"] }] });
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("badhook");
    let out = t.create(&b, &id);
    assert_eq!(out.code, 1, "create with a failing hook: {out:?}");
    assert_eq!(
        lines(&out.stderr).len(),
        1,
        "one error line expected: {:?}",
        out.stderr
    );
    t.assert_root_empty();
    t.assert_no_cgroup(&cg);
    t.assert_no_container_listed();
}

// ---------------------------------------------------------------------------
// 13. user namespace
// ---------------------------------------------------------------------------

#[test]
fn user_namespace_mapping() {
    let mut t = T::new();
    let mut spec = t.spec(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map; cat /proc/self/gid_map; id -u",
    ]);
    let b = t.userns_bundle(&mut spec);
    let id = t.id("userns");
    let out = t.rt(&["run", "--bundle", s(&b), &id]).ok();
    let l: Vec<String> = lines(&out.stdout)
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(l, ["0 100000 65536", "0 100000 65536", "0"], "{out:?}");
}

// ---------------------------------------------------------------------------
// 14. time namespace
// ---------------------------------------------------------------------------

#[test]
fn time_namespace_boottime_offset() {
    let mut t = T::new();
    let mut spec = t.spec(&["cat", "/proc/uptime"]);
    add_namespace(&mut spec, "time");
    spec["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 864000, "nanosecs": 0 } });
    let out = t.run("timens", &spec, Rootfs::Link).ok();
    let up: f64 = out
        .stdout
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("/proc/uptime: {:?}", out.stdout));
    assert!(
        up > 864000.0,
        "uptime {up} should include the 10-day offset"
    );
}

// ---------------------------------------------------------------------------
// 15. sysctl
// ---------------------------------------------------------------------------

#[test]
fn sysctl_namespaced_applied() {
    let mut t = T::new();
    let mut spec = t.spec(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    spec["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" });
    let out = t.run("sysctl", &spec, Rootfs::Link).ok();
    assert_eq!(out.stdout.trim(), "1", "{out:?}");
}

#[test]
fn sysctl_host_wide_refused() {
    let mut t = T::new();
    let mut spec = t.spec(&["true"]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    spec["linux"]["sysctl"] = json!({ "kernel.pid_max": "1000" });
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("badsysctl");
    t.create(&b, &id).fails_with("linux.sysctl.kernel.pid_max");
    t.assert_root_empty();
    t.assert_no_cgroup(&cg);
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    assert_ne!(pid_max.trim(), "1000", "the host's pid_max was changed");
}

// ---------------------------------------------------------------------------
// 16. terminal via --console-socket
// ---------------------------------------------------------------------------

#[test]
fn terminal_master_sent_to_console_socket() {
    let mut t = T::new();
    let mut spec = t.spec(&["sh", "-c", "tty; echo hello-tty"]);
    spec["process"]["terminal"] = true.into();
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push("TERM=xterm".into());
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("tty");
    let sock = t.path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();

    let mut create = t.spawn_with(
        &[
            "create",
            "--bundle",
            s(&b),
            "--console-socket",
            s(&sock),
            &id,
        ],
        |_| {},
    );
    let deadline = Instant::now() + CMD_TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((st, _)) => break st,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(_)) = create.child.try_wait() {
                    // Exited without connecting (or raced): one last try.
                    if let Ok((st, _)) = listener.accept() {
                        break st;
                    }
                    let out = create.finish();
                    panic!("create never connected to the console socket: {out:?}");
                }
                assert!(Instant::now() < deadline, "create never connected");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let master = receive_fd(&stream);
    create.finish().ok();
    assert_eq!(t.state(&id)["status"], "created");

    // Non-blocking reads so a missing EOF cannot hang the test.
    unsafe {
        let fl = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    t.rt(&["start", &id]).ok();
    let mut master = std::fs::File::from(master);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&got).contains("hello-tty") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no hello-tty from the pty master; got {:?}",
                    String::from_utf8_lossy(&got)
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            // EIO: every slave fd closed.
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&got).replace('\r', "");
    assert!(text.contains("hello-tty"), "pty output: {text:?}");
    let tty = text.lines().next().unwrap_or("").trim().to_string();
    assert!(
        tty == "/dev/console" || tty.starts_with("/dev/pts/"),
        "`tty` should name the pty, got {tty:?} (all: {text:?})"
    );
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).ok();
}

// ---------------------------------------------------------------------------
// 17. exec
// ---------------------------------------------------------------------------

#[test]
fn exec_env_cwd_user_and_exit_code() {
    let mut t = T::new();
    let spec = t.spec(&["sleep", "100"]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("exec");
    t.rt(&["run", "-d", "--bundle", s(&b), &id]).ok();
    assert_eq!(t.state(&id)["status"], "running");

    let out = t.rt(&[
        "exec",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "-u",
        "1000",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; exit 5",
    ]);
    assert_eq!(out.code, 5, "exec exit code: {out:?}");
    assert_eq!(lines(&out.stdout), ["bar", "/tmp", "1000"], "{out:?}");
    // The container is untouched by the exec.
    assert_eq!(t.state(&id)["status"], "running");
    t.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_as_root_then_into_stopped_container_fails() {
    let mut t = T::new();
    let spec = t.spec(&["sleep", "100"]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("exec-root");
    t.rt(&["run", "-d", "--bundle", s(&b), &id]).ok();

    // Same as above but as the container's own user (root): env, cwd and
    // the exit code pass through.
    let out = t.rt(&[
        "exec",
        "-e",
        "FOO=baz",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; exit 3",
    ]);
    assert_eq!(out.code, 3, "exec exit code: {out:?}");
    assert_eq!(lines(&out.stdout), ["baz", "/tmp", "0"], "{out:?}");
    assert_eq!(t.state(&id)["status"], "running");

    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.rt(&["exec", &id, "true"])
        .fails_with("cannot exec in a stopped container");
    t.rt(&["delete", &id]).ok();
    t.assert_root_empty();
}

// ---------------------------------------------------------------------------
// 18. no leaked fds; --preserve-fds
// ---------------------------------------------------------------------------

/// The numbers `ls /proc/self/fd` printed.
fn fd_list(out: &str) -> Vec<u32> {
    let mut v: Vec<u32> = out
        .split_whitespace()
        .map(|f| f.parse().unwrap_or_else(|_| panic!("fd {f:?} in {out:?}")))
        .collect();
    v.sort();
    v
}

/// Runs `args` with `file` open as fd 3 in contd-runtime.
fn run_with_fd3(t: &T, args: &[&str], file: &std::fs::File) -> Out {
    let fd = file.as_raw_fd();
    t.rt_with(args, move |cmd| {
        // SAFETY: only async-signal-safe libc calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    let fl = libc::fcntl(3, libc::F_GETFD);
                    if libc::fcntl(3, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

#[test]
fn no_leaked_fds_and_preserve_fds() {
    let mut t = T::new();
    let extra_path = t.path("extra-fd.txt");
    std::fs::write(&extra_path, "preserved-content\n").unwrap();
    let extra = std::fs::File::open(&extra_path).unwrap();

    // fd 3 open in contd-runtime but not preserved: not in the container.
    let spec = t.spec(&["ls", "/proc/self/fd"]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("fds");
    let out = run_with_fd3(&t, &["run", "--bundle", s(&b), &id], &extra).ok();
    assert_eq!(
        fd_list(&out.stdout),
        [0, 1, 2, 3],
        "only stdio and ls's own dir fd may be open: {out:?}"
    );

    // --preserve-fds 1: fd 3 reaches the container.
    let spec = t.spec(&["sh", "-c", "cat /proc/self/fd/3; ls /proc/self/fd"]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("fds-keep");
    let out = run_with_fd3(
        &t,
        &["run", "--preserve-fds", "1", "--bundle", s(&b), &id],
        &extra,
    )
    .ok();
    let (content, rest) = out.stdout.split_once('\n').unwrap_or(("", ""));
    assert_eq!(content, "preserved-content", "{out:?}");
    assert_eq!(fd_list(rest), [0, 1, 2, 3, 4], "{out:?}");
}

// ---------------------------------------------------------------------------
// 19. invalid config
// ---------------------------------------------------------------------------

#[test]
fn invalid_config_empty_args() {
    let mut t = T::new();
    let mut spec = t.spec(&["true"]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    spec["process"]["args"] = json!([]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("noargs");
    let out = t.create(&b, &id).fails_with("process.args");
    assert_eq!(
        lines(&out.stderr).len(),
        1,
        "one error line: {:?}",
        out.stderr
    );
    t.assert_root_empty();
    t.assert_no_cgroup(&cg);
}

// ---------------------------------------------------------------------------
// 20. a failed create undoes itself
// ---------------------------------------------------------------------------

#[test]
fn failed_create_leaves_nothing() {
    let mut t = T::new();
    let mut spec = t.spec(&["sleep", "100"]);
    let cg = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    // /tmp exists in the rootfs, so nothing is created in the shared copy.
    add_mount(
        &mut spec,
        json!({ "destination": "/tmp", "type": "bind",
                "source": "/nonexistent-contd-cli-test/source", "options": ["rbind"] }),
    );
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("badmount");
    let out = t.create(&b, &id);
    assert_eq!(out.code, 1, "create with a missing bind source: {out:?}");
    assert_eq!(
        lines(&out.stderr).len(),
        1,
        "one error line: {:?}",
        out.stderr
    );
    t.assert_root_empty();
    t.assert_no_cgroup(&cg);
    t.assert_no_container_listed();
    // No process of ours left holding the rootfs open as its root.
    let bundle_rootfs = b.join("rootfs");
    let leftover: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(&id) || cmdline.contains(s(&bundle_rootfs)))
                .then(|| format!("{pid}: {cmdline}"))
        })
        .collect();
    assert!(leftover.is_empty(), "processes left behind: {leftover:?}");
}

// ---------------------------------------------------------------------------
// 21. spec and features
// ---------------------------------------------------------------------------

#[test]
fn spec_and_features() {
    let t = T::new();
    let dir = t.path("spec-bundle");
    std::fs::create_dir(&dir).unwrap();
    t.rt(&["spec", "--bundle", s(&dir)]).ok();
    let text = std::fs::read_to_string(dir.join("config.json")).expect("config.json written");
    let spec: Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert_eq!(spec["process"]["args"], json!(["sh"]), "{spec}");
    assert_eq!(spec["root"]["path"], "rootfs", "{spec}");
    // A second spec refuses to overwrite.
    assert_eq!(t.rt(&["spec", "--bundle", s(&dir)]).code, 1);

    let out = t.rt(&["features"]).ok();
    let f: Value = serde_json::from_str(&out.stdout).expect("features is JSON");
    let has = |v: &Value, s: &str| v.as_array().is_some_and(|a| a.iter().any(|x| x == s));
    assert!(has(&f["hooks"], "createContainer"), "{f}");
    assert!(has(&f["linux"]["namespaces"], "user"), "{f}");
}

// ---------------------------------------------------------------------------
// --no-pivot and socket activation
// ---------------------------------------------------------------------------

#[test]
fn no_pivot_chroots_into_the_rootfs() {
    let mut t = T::new();
    let spec = t.spec(&[
        "sh",
        "-c",
        "ls /bin/busybox && test ! -e /work && echo inside",
    ]);
    let bundle = t.bundle(&spec, Rootfs::Link);
    let id = t.id("nopivot");
    let out = t
        .rt(&["run", "--no-pivot", "--bundle", s(&bundle), &id])
        .ok();
    assert!(out.stdout.contains("inside"), "stdout: {:?}", out.stdout);
    t.assert_root_empty();
}

#[test]
fn listen_fds_are_passed_with_their_environment() {
    let mut t = T::new();
    let spec = t.spec(&[
        "sh",
        "-c",
        "echo fds=$LISTEN_FDS pid=$LISTEN_PID; test -e /proc/self/fd/3 && echo has3",
    ]);
    let bundle = t.bundle(&spec, Rootfs::Link);
    let id = t.id("listen");
    let out = t
        .rt_with(&["run", "--bundle", s(&bundle), &id], |c| {
            c.env("LISTEN_FDS", "1");
            // fd 3 for the child: the test binary's stdin, duplicated.
            // SAFETY: dup2 on fds of the child between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(c, || {
                    if libc::dup2(0, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        })
        .ok();
    assert!(
        out.stdout.contains("fds=1 pid=1"),
        "stdout: {:?}",
        out.stdout
    );
    assert!(out.stdout.contains("has3"), "stdout: {:?}", out.stdout);
}

// ---------------------------------------------------------------------------
// Safety: escapes through cwd and symlinked mount targets, status from the
// live process, lenient capability names
// ---------------------------------------------------------------------------

#[test]
fn cwd_through_a_leaked_fd_is_refused() {
    // CVE-2024-21626: a cwd naming one of init's own fds must never put the
    // process in a host directory.
    for n in 3..8 {
        let mut t = T::new();
        let mut spec = t.spec(&["pwd"]);
        spec["process"]["cwd"] = format!("/proc/self/fd/{n}").into();
        let out = t.run("cwdfd", &spec, Rootfs::Link);
        assert_ne!(out.code, 0, "cwd /proc/self/fd/{n} ran: {out:?}");
        t.assert_root_empty();
    }
}

#[test]
fn symlinked_mount_target_stays_inside_the_rootfs() {
    let mut t = T::new();
    let outside = t.path("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut spec = t.spec(&[
        "sh",
        "-c",
        "echo mounted > /evil/x/file && cat /evil/x/file",
    ]);
    spec["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"}));
    let b = t.bundle(&spec, Rootfs::Copy);
    // /evil points at the host directory's absolute path; inside the
    // rootfs that path resolves to the rootfs's own copy of it.
    std::os::unix::fs::symlink(&outside, b.join("rootfs/evil")).unwrap();
    std::fs::create_dir_all(b.join("rootfs").join(outside.strip_prefix("/").unwrap())).unwrap();
    let id = t.id("symlink");
    let out = t.rt(&["run", "--bundle", s(&b), &id]).ok();
    assert!(out.stdout.contains("mounted"), "{out:?}");
    assert!(
        !outside.join("x").exists(),
        "the mount target was created on the host"
    );
    assert!(
        b.join("rootfs")
            .join(outside.strip_prefix("/").unwrap())
            .join("x")
            .is_dir(),
        "the target was resolved inside the rootfs"
    );

    // Dangling inside the rootfs: refused, nothing made on the host.
    let mut spec = t.spec(&["true"]);
    spec["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"destination": "/evil2/y", "type": "tmpfs", "source": "tmpfs"}));
    let b = t.bundle(&spec, Rootfs::Copy);
    std::os::unix::fs::symlink(&outside, b.join("rootfs/evil2")).unwrap();
    let id = t.id("dangling");
    let out = t.rt(&["run", "--bundle", s(&b), &id]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!outside.join("y").exists(), "created on the host");
    t.assert_root_empty();
}

#[test]
fn status_follows_the_live_process() {
    let mut t = T::new();
    let spec = t.spec(&["sleep", "100"]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("live");
    t.create(&b, &id).ok();
    t.rt(&["start", &id]).ok();
    let pid = t.state(&id)["pid"].as_i64().unwrap() as i32;
    // Killed behind the runtime's back: state must notice by itself.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let st = t.wait_status(&id, "stopped");
    assert_eq!(st["pid"], 0, "{st}");
    t.rt(&["kill", &id, "TERM"]).fails_with("not running");
    t.rt(&["delete", &id]).ok();
    t.assert_root_empty();
}

#[test]
fn unknown_capability_is_a_warning() {
    let mut t = T::new();
    let mut spec = t.spec(&["grep", "CapEff", "/proc/self/status"]);
    set_caps(&mut spec, &["CAP_CHOWN", "CAP_KILL"]);
    for set in ["bounding", "effective", "permitted"] {
        spec["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_FROM_THE_FUTURE".into());
    }
    let out = t.run("futurecap", &spec, Rootfs::Link).ok();
    assert!(out.stdout.contains("0000000000000021"), "{out:?}");
    assert!(
        out.stderr.contains("CAP_FROM_THE_FUTURE"),
        "warning: {out:?}"
    );
}

// ---------------------------------------------------------------------------
// kill --all, exec -t through the CLI's own pty, --log-format json
// ---------------------------------------------------------------------------

#[test]
fn kill_all_reaches_every_process() {
    let mut t = T::new();
    let spec = t.spec(&["sh", "-c", "trap '' TERM; sleep 100 & sleep 100 & wait"]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("killall");
    t.rt(&["run", "-d", "--bundle", s(&b), &id]).ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    let pids = loop {
        let out = t.rt(&["ps", "--format", "json", &id]).ok();
        let pids: Vec<i32> = serde_json::from_str(out.stdout.trim()).unwrap();
        if pids.len() == 3 {
            break pids;
        }
        assert!(Instant::now() < deadline, "never saw 3 processes: {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SIGTERM to init alone would be ignored (trap ''); --all reaches the
    // sleeps too.
    t.rt(&["kill", "--all", &id, "USR1"]).ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids[1..]
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(Instant::now() < deadline, "sleeps survived kill --all");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.rt(&["delete", "--force", &id]).ok();
    t.assert_root_empty();
}

#[test]
fn exec_tty_without_console_socket_proxies_a_pty() {
    let mut t = T::new();
    let spec = t.spec(&["sleep", "100"]);
    let b = t.bundle(&spec, Rootfs::Link);
    let id = t.id("exectty");
    t.rt(&["run", "-d", "--bundle", s(&b), &id]).ok();
    // script(1) gives the CLI a terminal of its own.
    let cmd = format!(
        "{} --root {} exec -t {id} sh -c 'tty; echo via-pty; exit 2'",
        env!("CARGO_BIN_EXE_contd-runtime"),
        s(&t.root)
    );
    let out = Command::new("timeout")
        .args(["30", "script", "-qec", &cmd, "/dev/null"])
        .output()
        .expect("script(1)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("via-pty"), "{text}");
    assert_eq!(out.status.code(), Some(2), "{text}");
    t.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn errors_go_to_the_json_log() {
    let t = T::new();
    let log = t.path("runtime.log");
    let out = t.rt(&["--log", s(&log), "--log-format", "json", "state", "nosuch"]);
    assert_eq!(out.code, 1, "{out:?}");
    let text = std::fs::read_to_string(&log).expect("log written");
    let rec: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(rec["level"], "error", "{text}");
    assert!(
        rec["msg"].as_str().unwrap().contains("does not exist"),
        "{text}"
    );
    assert!(rec["time"].is_string(), "{text}");
}

#[test]
fn the_container_starts_with_default_signal_handling() {
    // A caller (like contd-monitor) that ignores SIGPIPE and blocks SIGCHLD
    // must not pass that on: `yes | head` would spin forever.
    let mut t = T::new();
    let spec = t.spec(&["grep", "-E", "SigBlk|SigIgn", "/proc/self/status"]);
    let bundle = t.bundle(&spec, Rootfs::Link);
    let id = t.id("signals");
    let out = t
        .rt_with(&["run", "--bundle", s(&bundle), &id], |c| {
            // SAFETY: signal and sigprocmask only, between fork and exec.
            unsafe {
                c.pre_exec(|| {
                    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGCHLD);
                    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    Ok(())
                });
            }
        })
        .ok();
    for line in out.stdout.lines() {
        let v = line.split_whitespace().nth(1).unwrap_or("");
        assert!(v.chars().all(|c| c == '0'), "{line}");
    }
    assert_eq!(out.stdout.lines().count(), 2, "{out:?}");
}

//! Container cgroups through cgroups-rs, on v1 (and hybrid, driven as v1)
//! and v2 hierarchies: every resource of `linux.resources` goes through
//! cgroups-rs's OCI manager; freezing, stats and removal through its
//! per-controller API.

use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::{hierarchies, Cgroup};
use cgroups_rs::manager::{FsManager, Manager};
use cgroups_rs::CgroupPid;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources};

use std::path::Path;

use crate::error::{CgroupError, SpecError};

fn err(path: &str, message: impl std::fmt::Display) -> CgroupError {
    CgroupError {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// Whether the host runs a pure cgroup v2 hierarchy.
pub fn is_v2() -> bool {
    hierarchies::is_cgroup2_unified_mode()
}

/// Checks `linux.resources` before anything is created: what this host's
/// cgroups cannot do is refused, never skipped.
pub(crate) fn validate(r: &LinuxResources) -> Result<(), SpecError> {
    if let Some(l) = r.memory().as_ref().and_then(|m| m.limit()) {
        if l != -1 && l < 4096 * 1024 {
            return Err(SpecError::invalid(
                "linux.resources.memory.limit",
                format!("{l} bytes is below the 4 MiB minimum"),
            ));
        }
    }
    if let (Some(l), Some(s)) = (
        r.memory().as_ref().and_then(|m| m.limit()),
        r.memory().as_ref().and_then(|m| m.swap()),
    ) {
        if l > 0 && s > 0 && s < l {
            return Err(SpecError::invalid(
                "linux.resources.memory.swap",
                "memory+swap limit below the memory limit",
            ));
        }
    }
    if r.memory().as_ref().and_then(|m| m.kernel_tcp()).is_some() {
        kernel_tcp_supported(is_v2(), &hierarchies())?;
    }
    if is_v2() {
        check_v2_controllers(r, &v2_controllers())?;
    }
    if !is_v2() && r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(SpecError::unsupported(
            "linux.resources.unified",
            "needs a cgroup v2 host",
        ));
    }
    if r.rdma().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(SpecError::unsupported(
            "linux.resources.rdma",
            "the rdma controller is not supported",
        ));
    }
    for (i, d) in r.devices().iter().flatten().enumerate() {
        if let Some(a) = d.access() {
            if a.chars().any(|c| !matches!(c, 'r' | 'w' | 'm')) {
                return Err(SpecError::invalid(
                    format!("linux.resources.devices[{i}].access"),
                    format!("{a:?} is not a subset of \"rwm\""),
                ));
            }
        }
    }
    Ok(())
}

/// `linux.resources.memory.kernelTCP` needs v1's `memory.kmem.tcp.*`
/// files: cgroup v2 has none (socket memory counts toward `memory.max`),
/// and newer kernels may drop them from v1.
fn kernel_tcp_supported(v2: bool, hier: &[Hierarchy]) -> Result<(), SpecError> {
    const F: &str = "linux.resources.memory.kernelTCP";
    if v2 {
        return Err(SpecError::unsupported(
            F,
            "cgroup v2 has no kernel TCP memory limit (socket memory counts toward memory.max)",
        ));
    }
    let memory = hier
        .iter()
        .find(|h| h.fstype == "cgroup" && h.options.split(',').any(|o| o == "memory"));
    match memory {
        Some(h)
            if h.mount_point
                .join("memory.kmem.tcp.limit_in_bytes")
                .exists() =>
        {
            Ok(())
        }
        Some(h) => Err(SpecError::unsupported(
            F,
            format!(
                "this kernel's memory cgroup has no memory.kmem.tcp.limit_in_bytes (in {})",
                h.mount_point.display()
            ),
        )),
        None => Err(SpecError::unsupported(
            F,
            "this host has no cgroup v1 memory hierarchy",
        )),
    }
}

/// The controllers the cgroup v2 root offers (`cgroup.controllers`).
fn v2_controllers() -> Vec<String> {
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A v2 host may lack a controller (bound to a v1 hierarchy, or disabled):
/// a limit that needs one is refused, with the field, before anything is
/// created.
fn check_v2_controllers(r: &LinuxResources, available: &[String]) -> Result<(), SpecError> {
    fn set<T: Default + PartialEq>(v: &Option<T>) -> bool {
        v.as_ref().is_some_and(|v| *v != T::default())
    }
    let cpu = r.cpu().as_ref();
    let wanted = [
        ("linux.resources.memory", "memory", set(r.memory())),
        ("linux.resources.pids", "pids", set(r.pids())),
        (
            "linux.resources.cpu",
            "cpu",
            cpu.is_some_and(|c| {
                c.shares().is_some()
                    || c.quota().is_some()
                    || c.period().is_some()
                    || c.realtime_runtime().is_some()
                    || c.realtime_period().is_some()
                    || c.idle().is_some()
            }),
        ),
        (
            "linux.resources.cpu",
            "cpuset",
            cpu.is_some_and(|c| c.cpus().is_some() || c.mems().is_some()),
        ),
        ("linux.resources.blockIO", "io", set(r.block_io())),
        (
            "linux.resources.hugepageLimits",
            "hugetlb",
            r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        ),
    ];
    for (field, controller, wanted) in wanted {
        if wanted && !available.iter().any(|c| c == controller) {
            return Err(SpecError::unsupported(
                field,
                format!(
                    "this cgroup v2 host has no {controller} controller (cgroup.controllers: {:?})",
                    available.join(" ")
                ),
            ));
        }
    }
    Ok(())
}

/// The device rules the container's cgroup gets: the spec's own, then
/// access to the standard nodes and the spec's `linux.devices` (as runc).
fn device_rules(r: &LinuxResources, extra: &[LinuxDevice]) -> Option<LinuxResources> {
    let rules = r.devices().as_ref()?;
    let mut all = rules.clone();
    let allow = |typ: LinuxDeviceType, major: i64, minor: Option<i64>| {
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .major(major)
            .minor(minor.unwrap_or(-1))
            .access("rwm")
            .build()
            .ok()
    };
    let standard = [
        (LinuxDeviceType::C, 1, Some(3)),
        (LinuxDeviceType::C, 1, Some(5)),
        (LinuxDeviceType::C, 1, Some(7)),
        (LinuxDeviceType::C, 1, Some(8)),
        (LinuxDeviceType::C, 1, Some(9)),
        (LinuxDeviceType::C, 5, Some(0)),
        (LinuxDeviceType::C, 5, Some(1)),
        (LinuxDeviceType::C, 5, Some(2)),
        (LinuxDeviceType::C, 136, None),
    ];
    all.extend(
        standard
            .into_iter()
            .filter_map(|(t, ma, mi)| allow(t, ma, mi)),
    );
    for d in extra {
        let typ = match d.typ() {
            LinuxDeviceType::U => LinuxDeviceType::C,
            t => t,
        };
        if typ != LinuxDeviceType::P {
            all.extend(allow(typ, d.major(), Some(d.minor())));
        }
    }
    let mut out = r.clone();
    out.set_devices(Some(all));
    Some(out)
}

/// Creates the cgroup `path` and applies `resources` (plus device access
/// to `devices`). Returns the v1 `tasks` files a single-threaded process
/// can write `0` to, to move itself in (see [`join_self`]); empty on v2.
///
/// # Errors
/// If the cgroup exists already with processes in it (another container
/// owns it), or creation or a limit fails; a cgroup this call created is
/// removed again.
pub(crate) fn prepare(
    path: &str,
    resources: Option<&LinuxResources>,
    devices: &[LinuxDevice],
) -> Result<Vec<std::ffi::CString>, CgroupError> {
    let probe = Cgroup::load(hierarchies::auto(), path);
    if probe.exists() && !probe.procs().is_empty() {
        return Err(err(path, "exists already and has processes"));
    }
    let cg =
        Cgroup::new(hierarchies::auto(), path).map_err(|e| err(path, format!("create: {e}")))?;
    let undo = |e: String| {
        let _ = cg.delete();
        err(path, e)
    };
    if let Some(r) = resources {
        let mut m = FsManager::new(path).map_err(|e| undo(format!("open: {e}")))?;
        let mut r = device_rules(r, devices).unwrap_or_else(|| r.clone());
        // v2 has no devices controller: the rules become an eBPF program.
        let v2_devices = if is_v2() {
            r.devices_mut().take().filter(|d| !d.is_empty())
        } else {
            None
        };
        zero_weight_is_unset(&mut r);
        m.set(&r).map_err(|e| undo(format!("set resources: {e}")))?;
        // cgroups-rs's OCI mapping leaves kernelTCP out; validate() made
        // sure this is a v1 host that has it.
        if let Some(limit) = r.memory().as_ref().and_then(|m| m.kernel_tcp()) {
            let mem: &cgroups_rs::fs::memory::MemController = cg
                .controller_of()
                .ok_or_else(|| undo("no memory controller for kernelTCP".into()))?;
            mem.set_tcp_limit(limit)
                .map_err(|e| undo(format!("linux.resources.memory.kernelTCP: {e}")))?;
        }
        if let Some(rules) = v2_devices {
            let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            crate::devfilter::attach(&dir, &crate::devfilter::program(&rules))
                .map_err(|e| undo(e.to_string()))?;
        }
    }
    Ok(task_files(&cg))
}

/// The v1 `tasks` files of a cgroup (empty on v2).
fn task_files(cg: &Cgroup) -> Vec<std::ffi::CString> {
    if is_v2() {
        return Vec::new();
    }
    cg.subsystems()
        .iter()
        .map(|s| {
            let mut p = s.to_controller().path().to_path_buf();
            p.push("tasks");
            p
        })
        .filter(|p| p.exists())
        .filter_map(|p| {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::CString::new(p.as_os_str().as_bytes()).ok()
        })
        .collect()
}

/// The `tasks` files an exec'd process writes `0` to ([`join_self`]):
/// those of the container's cgroup `path` or, for the controllers a
/// sub-cgroup names, of that existing sub-cgroup (runc's `exec --cgroup
/// [CONTROLLERS:]PATH`; no controllers: all of them). Empty on v2, where
/// the parent moves the process to [`v2_exec_path`]; the sub-cgroup is
/// checked all the same.
///
/// # Errors
/// A sub-cgroup path that leaves the container's cgroup, does not exist,
/// names an unknown controller or one twice.
pub(crate) fn existing_task_files(
    path: &str,
    subs: &[(Vec<String>, String)],
) -> Result<Vec<std::ffi::CString>, CgroupError> {
    for (_, sub) in subs {
        if sub.split('/').any(|c| c == "..") {
            return Err(err(path, format!("bad sub-cgroup path {sub:?}")));
        }
    }
    let cg = Cgroup::load(hierarchies::auto(), path);
    if is_v2() {
        if subs.iter().any(|(c, _)| !c.is_empty()) || subs.len() > 1 {
            return Err(err(
                path,
                "cgroup v2 has one tree: give one sub-cgroup, without controllers",
            ));
        }
        if let Some((_, sub)) = subs.first() {
            let dir =
                Path::new("/sys/fs/cgroup").join(v2_exec_path(path, subs).trim_start_matches('/'));
            if !dir.is_dir() {
                return Err(err(path, format!("sub-cgroup {sub:?} does not exist")));
            }
        }
        return Ok(Vec::new());
    }
    if subs.is_empty() {
        return Ok(task_files(&cg));
    }
    let subsystems = cg.subsystems();
    let names: Vec<String> = subsystems.iter().map(|s| s.controller_name()).collect();
    for (controllers, sub) in subs {
        for c in controllers {
            if !names.contains(c) {
                return Err(err(
                    path,
                    format!("unknown controller {c:?} in sub-cgroup {c}:{sub}"),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (s, name) in subsystems.iter().zip(&names) {
        let matching: Vec<&String> = subs
            .iter()
            .filter(|(c, _)| c.is_empty() || c.contains(name))
            .map(|(_, sub)| sub)
            .collect();
        let mut dir = s.to_controller().path().to_path_buf();
        match matching.as_slice() {
            [] => {}
            [sub] => {
                dir.push(sub.trim_start_matches('/'));
                if !dir.is_dir() {
                    return Err(err(
                        path,
                        format!("sub-cgroup {sub:?} does not exist for {name}"),
                    ));
                }
            }
            _ => {
                return Err(err(
                    path,
                    format!("controller {name} has more than one sub-cgroup"),
                ))
            }
        }
        let tasks = dir.join("tasks");
        if tasks.exists() {
            use std::os::unix::ffi::OsStrExt;
            if let Ok(c) = std::ffi::CString::new(tasks.as_os_str().as_bytes()) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// Where the parent moves an exec'd process on v2: the container's cgroup
/// or its sub-cgroup (checked by [`existing_task_files`]).
pub(crate) fn v2_exec_path(path: &str, subs: &[(Vec<String>, String)]) -> String {
    match subs.first() {
        Some((_, sub)) => format!("{path}/{}", sub.trim_start_matches('/')),
        None => path.to_string(),
    }
}

/// Moves `pid` into the existing cgroup `path` from outside. On v1 the kernel makes
/// the first such move after idle wait for an RCU grace period (5–20 ms
/// here); [`join_self`] avoids that where it can.
///
/// # Errors
/// If the move fails.
pub(crate) fn attach(path: &str, pid: i32) -> Result<(), CgroupError> {
    let cg = Cgroup::load(hierarchies::auto(), path);
    if !cg.exists() {
        return Err(err(path, "does not exist"));
    }
    cg.add_task_by_tgid(CgroupPid::from(pid as u64))
        .map_err(|e| err(path, format!("move pid {pid}: {e}")))
}

/// Run by a single-threaded process to move itself: writing `0` to a v1
/// `tasks` file moves only the calling thread, which the kernel does
/// without the global threadgroup lock (and its RCU wait). Async-signal
/// safe: plain open/write/close on prepared paths.
pub(crate) fn join_self(tasks: &[std::ffi::CString]) -> Result<(), String> {
    for t in tasks {
        crate::sys::write_cstr_path(t, b"0")
            .map_err(|e| format!("join cgroup {}: {e}", t.to_string_lossy()))?;
    }
    Ok(())
}

/// Pids of the processes in the cgroup.
pub fn procs(path: &str) -> Vec<i32> {
    let mut v: Vec<i32> = Cgroup::load(hierarchies::auto(), path)
        .procs()
        .into_iter()
        .map(|p| p.pid as i32)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Changes the limits of an existing cgroup (what `resources` sets; the
/// rest stays).
///
/// # Errors
/// If the cgroup is missing, or the kernel refuses a value.
pub fn update(path: &str, resources: &LinuxResources) -> Result<(), CgroupError> {
    if !exists(path) {
        return Err(err(path, "does not exist"));
    }
    let mut m = FsManager::new(path).map_err(|e| err(path, format!("open: {e}")))?;
    let mut r = resources.clone();
    zero_weight_is_unset(&mut r);
    m.set(&r)
        .map_err(|e| err(path, format!("update resources: {e}")))
}

/// A block I/O weight of 0 means "not set", as runc reads it: docker sends
/// `blockIO.weight: 0` for every container, and a kernel without a
/// proportional I/O scheduler has no `blkio.weight` file to write it to.
fn zero_weight_is_unset(r: &mut LinuxResources) {
    if let Some(b) = r.block_io_mut().as_mut() {
        if b.weight() == Some(0) {
            b.set_weight(None);
        }
        if b.leaf_weight() == Some(0) {
            b.set_leaf_weight(None);
        }
    }
}

/// Freezes (`true`) or thaws the cgroup.
///
/// # Errors
/// If the freezer is missing or refuses.
pub fn set_frozen(path: &str, frozen: bool) -> Result<(), CgroupError> {
    let cg = Cgroup::load(hierarchies::auto(), path);
    let f: &FreezerController = cg
        .controller_of()
        .ok_or_else(|| err(path, "no freezer controller"))?;
    let r = if frozen { f.freeze() } else { f.thaw() };
    r.map_err(|e| err(path, format!("freezer: {e}")))?;
    if frozen {
        // v1 goes through FREEZING; report success only once frozen.
        for _ in 0..500 {
            if is_frozen(path) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = f.thaw();
        return Err(err(path, "did not freeze within 1 s"));
    }
    Ok(())
}

/// Whether the cgroup is frozen. Read straight from the freezer file (as
/// [`oom_kill_count`] reads its counter): this runs on every status, and
/// loading the cgroup through cgroups-rs parses the mount table each time.
pub fn is_frozen(path: &str) -> bool {
    let (file, frozen) = if is_v2() {
        (format!("/sys/fs/cgroup/{path}/cgroup.freeze"), "1")
    } else {
        (
            format!("/sys/fs/cgroup/freezer/{path}/freezer.state"),
            "FROZEN",
        )
    };
    std::fs::read_to_string(file).is_ok_and(|s| s.trim() == frozen)
}

/// Resource usage of a container, for the supervisor and `contd-runtime
/// events`-like callers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Memory limit, bytes (0: none reported).
    pub memory_limit: u64,
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Processes in the cgroup.
    pub pids_current: u64,
    /// Process limit (0: none).
    pub pids_limit: u64,
}

/// Reads the cgroup's stats.
pub fn stats(path: &str) -> Stats {
    let Ok(m) = FsManager::new(path) else {
        return Stats::default();
    };
    let s = m.stats();
    let mem = s.memory.memory.unwrap_or_default();
    Stats {
        memory_usage: mem.usage,
        memory_limit: u64::try_from(mem.limit).unwrap_or(0),
        cpu_usage_ns: s.cpu.cpu_acct.map(|c| c.total_usage).unwrap_or(0),
        pids_current: s.pids.current,
        pids_limit: u64::try_from(s.pids.limit).unwrap_or(0),
    }
}

/// Removes the cgroup from every hierarchy. A cgroup that does not exist is
/// not an error.
///
/// # Errors
/// If a hierarchy's directory cannot be removed (processes left in it).
pub fn remove(path: &str) -> Result<(), CgroupError> {
    let cg = Cgroup::load(hierarchies::auto(), path);
    if !cg.exists() {
        return Ok(());
    }
    if is_frozen(path) {
        let _ = set_frozen(path, false);
    }
    cg.delete().map_err(|e| err(path, format!("remove: {e}")))
}

/// Whether the cgroup's directory exists in any hierarchy.
pub fn exists(path: &str) -> bool {
    Cgroup::load(hierarchies::auto(), path).exists()
}

/// A cgroup hierarchy mounted on the host.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    /// Directory name under `/sys/fs/cgroup` (`cpu,cpuacct`, `unified`).
    pub name: String,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// Mount data selecting the hierarchy (`cpu,cpuacct`, `name=systemd`).
    pub options: String,
    /// Where the host has it.
    pub mount_point: std::path::PathBuf,
}

/// The hierarchies mounted under `/sys/fs/cgroup` on a v1 or hybrid host,
/// for cgroup mounts inside containers.
pub(crate) fn hierarchies() -> Vec<Hierarchy> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(mount_point) = pre.split(' ').nth(4) else {
            continue;
        };
        let mount_point = std::path::PathBuf::from(mount_point);
        if mount_point.parent() != Some(std::path::Path::new("/sys/fs/cgroup")) {
            continue;
        }
        let super_opts = post.nth(1).unwrap_or("");
        let options: Vec<&str> = super_opts
            .split(',')
            .filter(|o| {
                fstype == "cgroup"
                    && !matches!(*o, "rw" | "ro" | "xattr" | "clone_children")
                    && !o.starts_with("release_agent")
            })
            .collect();
        let name = mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Hierarchy {
            name,
            fstype: fstype.to_string(),
            options: options.join(","),
            mount_point,
        });
    }
    out
}

/// How many times the kernel's OOM killer has killed a process in the
/// cgroup: `oom_kill` of `memory.events` (v2) or of `memory.oom_control`
/// (v1, Linux 4.13+). Zero if the cgroup or the counter is missing.
pub fn oom_kill_count(path: &str) -> u64 {
    let file = if hierarchies::is_cgroup2_unified_mode() {
        format!("/sys/fs/cgroup/{path}/memory.events")
    } else {
        format!("/sys/fs/cgroup/memory/{path}/memory.oom_control")
    };
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| oom_kill_field(&text))
        .unwrap_or(0)
}

/// The `oom_kill` counter of a `memory.events` (v2) or `memory.oom_control`
/// (v1) text, if it has one.
pub fn oom_kill_field(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// Moves the calling (single-threaded) process into cgroup `path` (from each hierarchy's
/// root) in every hierarchy it belongs to, as `/proc/self/cgroup` lists
/// them (named ones such as `name=systemd`, and the v2 tree of a hybrid
/// host, included), creating the cgroup where it is missing. A v1 cpuset
/// cgroup made here gets its parent's cpus and mems, without which it
/// takes no process.
///
/// contd-monitor does this before it creates its container, so that it
/// and the container's processes leave the supervisor's cgroup: a service
/// manager that kills every process of contd's cgroup (`systemctl stop`,
/// an OOM kill of the group) then reaches neither.
///
/// With `v2_too` false the v2 tree is left out (the caller was started
/// in its cgroup there, see [`open_v2`]).
///
/// # Errors
/// The first hierarchy the process could not be moved in, with the cause.
pub fn join_own(path: &str, v2_too: bool) -> Result<(), CgroupError> {
    let rel = valid_rel(path)?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| err(path, format!("read /proc/self/cgroup: {e}")))?;
    let hier = hierarchies();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls)) = (parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() && !v2_too {
            continue;
        }
        let Some(h) = hier.iter().find(|h| same_hierarchy(h, ctrls)) else {
            // Pure v2 mounts its one tree at /sys/fs/cgroup itself.
            if ctrls.is_empty() && is_v2() {
                join_dir(Path::new("/sys/fs/cgroup"), rel, false, false)
                    .map_err(|e| err(path, format!("cgroup2: {e}")))?;
            }
            continue;
        };
        let cpuset = h.fstype == "cgroup" && h.options.split(',').any(|o| o == "cpuset");
        join_dir(&h.mount_point, rel, cpuset, h.fstype == "cgroup")
            .map_err(|e| err(path, format!("{}: {e}", h.name)))?;
    }
    Ok(())
}

fn valid_rel(path: &str) -> Result<&str, CgroupError> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(err(path, "not a valid cgroup path"));
    }
    Ok(rel)
}

/// Cgroup `path` in the v2 tree (the whole tree on a v2 host, the one at
/// `/sys/fs/cgroup/unified` on a hybrid one), created if missing, opened
/// as a directory: for `clone3(CLONE_INTO_CGROUP)`, which starts a process
/// there without the grace period a move costs. `None` without a v2 tree.
///
/// # Errors
/// The directory cannot be created or opened.
pub fn open_v2(path: &str) -> Result<Option<std::os::fd::OwnedFd>, CgroupError> {
    let rel = valid_rel(path)?;
    let mount = if is_v2() {
        Some(std::path::PathBuf::from("/sys/fs/cgroup"))
    } else {
        hierarchies()
            .into_iter()
            .find(|h| h.fstype == "cgroup2")
            .map(|h| h.mount_point)
    };
    let Some(mount) = mount else {
        return Ok(None);
    };
    let dir = mount.join(rel);
    std::fs::create_dir_all(&dir)
        .map_err(|e| err(path, format!("create {}: {e}", dir.display())))?;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&dir)
        .map(|f| Some(f.into()))
        .map_err(|e| err(path, format!("open {}: {e}", dir.display())))
}

/// Whether a `/proc/self/cgroup` controllers field names hierarchy `h`.
pub(crate) fn same_hierarchy(h: &Hierarchy, ctrls: &str) -> bool {
    if h.fstype == "cgroup2" {
        return ctrls.is_empty();
    }
    if ctrls.is_empty() {
        return false;
    }
    let mut a: Vec<&str> = ctrls.split(',').collect();
    let mut b: Vec<&str> = h.options.split(',').filter(|o| !o.is_empty()).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// Creates `<mount>/<rel>` level by level and writes our pid to its
/// `cgroup.procs`.
fn join_dir(mount: &Path, rel: &str, cpuset: bool, v1: bool) -> std::io::Result<()> {
    let mut dir = mount.to_path_buf();
    for part in rel.split('/') {
        let parent = dir.clone();
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        // Also when another process made it a moment ago and has not
        // filled it in yet.
        if cpuset {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if std::fs::read_to_string(dir.join(f))?.trim().is_empty() {
                    let v = std::fs::read_to_string(parent.join(f))?;
                    std::fs::write(dir.join(f), v.trim())?;
                }
            }
        }
    }
    // The caller is single-threaded: moving its one thread through v1's
    // `tasks` takes no threadgroup lock, so it waits for no RCU grace
    // period (5-10 ms here); `cgroup.procs` (v2 has nothing else) does.
    std::fs::write(dir.join(if v1 { "tasks" } else { "cgroup.procs" }), "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_zero_io_weight_is_no_weight() {
        // What docker sends for every container.
        let mut r = resources(serde_json::json!({"blockIO": {"weight": 0, "leafWeight": 0}}));
        zero_weight_is_unset(&mut r);
        let b = r.block_io().as_ref().unwrap();
        assert_eq!((b.weight(), b.leaf_weight()), (None, None));
        let mut r = resources(serde_json::json!({"blockIO": {"weight": 300}}));
        zero_weight_is_unset(&mut r);
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(300));
    }

    #[test]
    fn v2_limits_need_their_controller() {
        let have = |c: &str| c.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let r = resources(serde_json::json!({"memory": {"limit": 67108864}}));
        let e = check_v2_controllers(&r, &have("hugetlb pids")).unwrap_err();
        assert!(e.to_string().contains("linux.resources.memory"), "{e}");
        assert!(check_v2_controllers(&r, &have("memory")).is_ok());
        let r = resources(serde_json::json!({"cpu": {"cpus": "0"}}));
        let e = check_v2_controllers(&r, &have("cpu memory")).unwrap_err();
        assert!(e.to_string().contains("cpuset"), "{e}");
        let r = resources(serde_json::json!({"cpu": {"shares": 512}}));
        assert!(check_v2_controllers(&r, &have("cpu")).is_ok());
        // Empty sections and device rules need no controller.
        let r = resources(
            serde_json::json!({"memory": {}, "devices": [{"allow": false, "access": "rwm"}]}),
        );
        assert!(check_v2_controllers(&r, &[]).is_ok());
    }
}

//! Loading and validating `config.json` before anything is created.
//!
//! oci-spec parses but does not validate; this module checks the fields
//! runtime-core acts on and refuses, naming the JSON path, what it cannot do.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::SpecError;

/// The namespaces init gets: created by `clone` or joined by path.
#[derive(Debug, Default, Clone)]
pub(crate) struct Namespaces {
    /// `CLONE_NEW*` flags for namespaces created at clone time (user, pid,
    /// mount, uts, ipc, net). When a user namespace is joined by path they
    /// are unshared by init after it joined it instead.
    pub clone_flags: libc::c_int,
    /// A new cgroup namespace, unshared after init is in its cgroup.
    pub new_cgroup: bool,
    /// A new time namespace, unshared by init and entered at `execve`.
    pub new_time: bool,
    /// A user namespace joined by path (init joins it first).
    pub join_user: Option<PathBuf>,
    /// A pid namespace joined by path: the parent enters it for its
    /// children before it clones init.
    pub join_pid: Option<PathBuf>,
    /// Other namespaces joined by path (`setns`), with their type flag.
    pub join: Vec<(PathBuf, libc::c_int)>,
}

impl Namespaces {
    /// Whether the container has a namespace of this type, new or joined.
    pub fn has(&self, flag: libc::c_int) -> bool {
        self.clone_flags & flag != 0
            || self.join.iter().any(|(_, f)| *f == flag)
            || (flag == libc::CLONE_NEWUSER && self.join_user.is_some())
            || (flag == libc::CLONE_NEWPID && self.join_pid.is_some())
            || (flag == libc::CLONE_NEWCGROUP && self.new_cgroup)
    }

    /// Whether a user namespace is created or joined.
    pub fn user(&self) -> bool {
        self.has(libc::CLONE_NEWUSER)
    }
}

/// A validated spec and the facts derived from it.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The spec as loaded.
    pub spec: Spec,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    /// Namespaces to create or join.
    pub namespaces: Namespaces,
    /// The cgroup path relative to each hierarchy root.
    pub cgroup_path: String,
    /// What was left out with a warning (unknown capability names).
    pub warnings: Vec<String>,
    /// The seccomp filter, built while validating; init loads it.
    pub seccomp: Option<crate::seccomp::Filter>,
    /// `linux.memoryPolicy`, checked; init applies it.
    pub memory_policy: Option<crate::sched::MemPolicy>,
    /// `process.scheduler`, checked; init applies it.
    pub scheduler: Option<crate::sched::SchedAttr>,
}

/// Parses a spec, leaving out capability names this oci-spec does not know
/// (a kernel newer than the crate): a warning each, not a failure, as
/// DESIGN.md asks.
pub(crate) fn parse_lenient(text: &str) -> Result<(Spec, Vec<String>), String> {
    let mut v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut warnings = Vec::new();
    if let Some(caps) = v
        .get_mut("process")
        .and_then(|p| p.get_mut("capabilities"))
        .and_then(|c| c.as_object_mut())
    {
        for (set, list) in caps.iter_mut() {
            if let Some(arr) = list.as_array_mut() {
                arr.retain(|name| {
                    let known =
                        serde_json::from_value::<oci_spec::runtime::Capability>(name.clone())
                            .is_ok();
                    if !known {
                        warnings.push(format!(
                            "process.capabilities.{set}: unknown capability {name} left out"
                        ));
                    }
                    known
                });
            }
        }
    }
    if let Some(p) = v.get_mut("process") {
        normalize_process(p);
    }
    let spec = serde_json::from_value(v).map_err(|e| e.to_string())?;
    Ok((spec, warnings))
}

/// Rewrites the runtime spec's names of scheduler flags that oci-spec
/// 0.10.0 spells otherwise (`SCHED_FLAG_RESET_ON_FORK`, `SCHED_FLAG_DL_OVERRUN`)
/// into its spelling, so that spec-conformant configs parse.
pub(crate) fn normalize_process(process: &mut serde_json::Value) {
    use oci_spec::runtime::LinuxSchedulerFlag as L;
    let Some(flags) = process
        .get_mut("scheduler")
        .and_then(|s| s.get_mut("flags"))
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        let ours = match f.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => L::SchedResetOnFork,
            Some("SCHED_FLAG_DL_OVERRUN") => L::SchedFlagDLOverrun,
            _ => continue,
        };
        if let Ok(v) = serde_json::to_value(ours) {
            *f = v;
        }
    }
}

/// Parses a `process` object (`exec --process`), with the same
/// allowances as a config.json's.
///
/// # Errors
/// What serde says is wrong with it.
pub fn parse_process(data: &[u8]) -> Result<oci_spec::runtime::Process, String> {
    let mut v: serde_json::Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    normalize_process(&mut v);
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// The major versions of the runtime spec this runtime implements.
const SUPPORTED_MAJOR: u64 = 1;

/// Whether `v` is a SemVer 2.0.0 version (`MAJOR.MINOR.PATCH`, then
/// `-PRERELEASE` and `+BUILD` of dot-separated `[0-9A-Za-z-]` identifiers;
/// numbers without leading zeros); returns its major version.
fn semver_major(v: &str) -> Option<u64> {
    let number = |s: &str| {
        (!s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse::<u64>().ok())
        .flatten()
    };
    let idents = |s: &str, numeric_rule: bool| {
        s.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !(numeric_rule && id.bytes().all(|b| b.is_ascii_digit()) && number(id).is_none())
        })
    };
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    if pre.is_some_and(|p| !idents(p, true)) || build.is_some_and(|b| !idents(b, false)) {
        return None;
    }
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let nums: Vec<u64> = parts.iter().map(|p| number(p)).collect::<Option<_>>()?;
    Some(nums[0])
}

/// uid and gids a process may take: `(uid_t)-1` is not an id but "leave
/// unchanged" to setresuid/setresgid, so the process would stay root.
pub(crate) fn check_user(user: &oci_spec::runtime::User) -> Result<(), SpecError> {
    const INVALID: u32 = u32::MAX;
    let bad = |field: String, id: u32| {
        SpecError::invalid(
            field,
            format!("{id} is not a valid id (the kernel reads it as \"unchanged\")"),
        )
    };
    if user.uid() == INVALID {
        return Err(bad("process.user.uid".into(), INVALID));
    }
    if user.gid() == INVALID {
        return Err(bad("process.user.gid".into(), INVALID));
    }
    for (i, g) in user.additional_gids().iter().flatten().enumerate() {
        if *g == INVALID {
            return Err(bad(format!("process.user.additionalGids[{i}]"), INVALID));
        }
    }
    Ok(())
}

fn check_version(v: &str) -> Result<(), SpecError> {
    match semver_major(v) {
        _ if v.is_empty() => Err(SpecError::invalid("ociVersion", "missing")),
        None => Err(SpecError::invalid(
            "ociVersion",
            format!("{v:?} is not a semantic version (MAJOR.MINOR.PATCH)"),
        )),
        Some(SUPPORTED_MAJOR) => Ok(()),
        Some(_) => Err(SpecError::unsupported(
            "ociVersion",
            format!(
                "{v:?}: this runtime implements version {SUPPORTED_MAJOR}.x of the runtime spec"
            ),
        )),
    }
}

/// Loads `<bundle>/config.json` and validates it.
///
/// # Errors
/// [`SpecError`] naming the file or the field at fault.
pub(crate) fn load(
    bundle: &Path,
    id: &str,
    seccomp_cache: Option<&Path>,
) -> Result<Checked, SpecError> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| SpecError::Load {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let (spec, warnings) = parse_lenient(&text).map_err(|e| SpecError::Load {
        path: path.clone(),
        message: e,
    })?;
    let mut checked = check(spec, bundle, id, seccomp_cache)?;
    checked.warnings.splice(0..0, warnings);
    Ok(checked)
}

fn check(
    spec: Spec,
    bundle: &Path,
    id: &str,
    seccomp_cache: Option<&Path>,
) -> Result<Checked, SpecError> {
    check_version(spec.version())?;
    let mut warnings = Vec::new();
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| SpecError::invalid("root", "missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(SpecError::invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ))
        }
        Err(e) => {
            return Err(SpecError::invalid(
                "root.path",
                format!("{}: {e}", rootfs.display()),
            ))
        }
    }

    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| SpecError::invalid("process", "missing"))?;
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(SpecError::invalid("process.args", "must name a program"));
    }
    if !process.cwd().is_absolute() {
        return Err(SpecError::invalid(
            "process.cwd",
            "must be an absolute path",
        ));
    }
    check_user(process.user())?;
    let scheduler = match process.scheduler() {
        Some(s) => Some(crate::sched::scheduler(s)?),
        None => None,
    };
    // Not applied to init (the runtime spec says so), but an exec with the
    // container's process inherits it: checked here too.
    crate::sched::exec_affinity(process)?;
    let start_hooks = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
        .is_some_and(|v| !v.is_empty());
    if start_hooks && scheduler.is_some_and(|a| a.forks_fail()) {
        return Err(SpecError::invalid(
            "process.scheduler.flags",
            "a SCHED_DEADLINE process cannot fork startContainer hooks \
             without SCHED_FLAG_RESET_ON_FORK",
        ));
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') || e.contains('\0') {
            return Err(SpecError::invalid(
                format!("process.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    if process.apparmor_profile().is_some() {
        return Err(SpecError::unsupported(
            "process.apparmorProfile",
            "AppArmor is not supported",
        ));
    }
    if process.selinux_label().is_some() {
        return Err(SpecError::unsupported(
            "process.selinuxLabel",
            "SELinux is not supported",
        ));
    }
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        if r.soft() > r.hard() {
            return Err(SpecError::invalid(
                format!("process.rlimits[{i}]"),
                "soft limit above hard limit",
            ));
        }
    }

    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(SpecError::invalid(
                format!("mounts[{i}].destination"),
                "must be an absolute path",
            ));
        }
        for o in m.options().iter().flatten() {
            if o == "idmap" || o == "ridmap" {
                return Err(SpecError::unsupported(
                    format!("mounts[{i}].options"),
                    "id-mapped mounts are not supported",
                ));
            }
        }
    }

    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| SpecError::invalid("linux", "missing"))?;
    let ns = namespaces(linux)?;
    if !ns.has(libc::CLONE_NEWNS) {
        chroot_holds(&ns, process)?;
        warnings.extend(without_mount_ns(&spec, linux));
    }
    if spec.hostname().is_some() && !ns.has(libc::CLONE_NEWUTS) {
        return Err(SpecError::invalid("hostname", "needs a uts namespace"));
    }
    if spec.domainname().is_some() && !ns.has(libc::CLONE_NEWUTS) {
        return Err(SpecError::invalid("domainname", "needs a uts namespace"));
    }
    id_mappings(linux, &ns)?;
    if let Some(offsets) = linux.time_offsets() {
        if !offsets.is_empty() && !ns.new_time {
            return Err(SpecError::invalid(
                "linux.timeOffsets",
                "needs a new time namespace",
            ));
        }
        for k in offsets.keys() {
            if k != "monotonic" && k != "boottime" {
                return Err(SpecError::invalid(
                    format!("linux.timeOffsets.{k}"),
                    "only monotonic and boottime clocks can be offset",
                ));
            }
        }
    }
    let seccomp = match linux.seccomp() {
        Some(s) => Some(crate::seccomp::validate(s, seccomp_cache)?),
        None => None,
    };
    for (key, _) in linux.sysctl().iter().flatten() {
        sysctl_allowed(key, &ns)?;
    }
    devices(linux)?;
    if let Some(p) = linux.rootfs_propagation() {
        if crate::rootfs::propagation_flag(p).is_none() {
            return Err(SpecError::invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            ));
        }
    }
    if linux.intel_rdt().is_some() {
        return Err(SpecError::unsupported(
            "linux.intelRdt",
            "Intel RDT is not supported",
        ));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(SpecError::unsupported(
            "linux.netDevices",
            "moving network devices is not supported",
        ));
    }
    let memory_policy = match linux.memory_policy() {
        Some(p) => Some(crate::sched::memory_policy(p)?),
        None => None,
    };
    if linux.mount_label().is_some() {
        return Err(SpecError::unsupported(
            "linux.mountLabel",
            "SELinux is not supported",
        ));
    }
    if let Some(r) = linux.resources() {
        crate::cgroup::validate(r)?;
    }
    hooks(&spec)?;

    let cgroup_path = match linux.cgroups_path() {
        Some(p) => p.to_string_lossy().trim_start_matches('/').to_string(),
        None => id.to_string(),
    };
    if cgroup_path.is_empty() || cgroup_path.split('/').any(|c| c == ".." || c == ".") {
        return Err(SpecError::invalid(
            "linux.cgroupsPath",
            format!("{cgroup_path:?} is not a valid cgroup path"),
        ));
    }

    Ok(Checked {
        rootfs,
        namespaces: ns,
        cgroup_path,
        spec,
        warnings,
        seccomp,
        memory_policy,
        scheduler,
    })
}

/// A container without a mount namespace of its own is a chroot: a
/// process that may call `chroot` itself (CAP_SYS_CHROOT, which root of a
/// user namespace always has there) walks out of it onto the host's
/// filesystem. Such a container is refused.
fn chroot_holds(ns: &Namespaces, process: &oci_spec::runtime::Process) -> Result<(), SpecError> {
    if ns.user() {
        return Err(SpecError::unsupported(
            "linux.namespaces",
            "a user namespace without a mount namespace: its root could chroot \
             out of the container's root",
        ));
    }
    let chroot = oci_spec::runtime::Capability::SysChroot;
    if let Some(set) = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().as_ref())
    {
        if set.contains(&chroot) {
            return Err(SpecError::invalid(
                "process.capabilities.bounding",
                "CAP_SYS_CHROOT would let the process chroot out of a container \
                 without a mount namespace",
            ));
        }
    }
    Ok(())
}

/// What a container without a mount namespace of its own does not get:
/// everything that would change the host's mount table, where it would
/// outlive the container (runc does these mounts on the host; crun since
/// 1.29 does not). One warning per field.
fn without_mount_ns(spec: &Spec, linux: &oci_spec::runtime::Linux) -> Vec<String> {
    let why = "not applied: the container has no mount namespace of its own and \
               changing the host's mount table is refused";
    let mut w = Vec::new();
    let non_empty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        w.push(format!("mounts: {why}"));
    }
    if non_empty(linux.masked_paths()) {
        w.push(format!("linux.maskedPaths: {why}"));
    }
    if non_empty(linux.readonly_paths()) {
        w.push(format!("linux.readonlyPaths: {why}"));
    }
    if linux.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        w.push(format!("linux.devices: {why}"));
    }
    if linux.rootfs_propagation().is_some() {
        w.push(format!("linux.rootfsPropagation: {why}"));
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        w.push(format!("root.readonly: {why}"));
    }
    w
}

/// `CLONE_NEWTIME`, which libc does not name on every target.
pub(crate) const CLONE_NEWTIME: libc::c_int = 0x80;

fn namespaces(linux: &oci_spec::runtime::Linux) -> Result<Namespaces, SpecError> {
    let mut ns = Namespaces::default();
    let mut seen = 0;
    for (i, n) in linux.namespaces().iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let flag = match n.typ() {
            LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
            LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
            LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
            LinuxNamespaceType::Network => libc::CLONE_NEWNET,
            LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
            LinuxNamespaceType::User => libc::CLONE_NEWUSER,
            LinuxNamespaceType::Time => CLONE_NEWTIME,
        };
        if seen & flag != 0 {
            return Err(SpecError::invalid(field, "namespace type listed twice"));
        }
        seen |= flag;
        match n.path() {
            Some(p) => {
                if !p.is_absolute() {
                    return Err(SpecError::invalid(
                        format!("{field}.path"),
                        "must be an absolute path",
                    ));
                }
                if !p.exists() {
                    return Err(SpecError::invalid(
                        format!("{field}.path"),
                        format!("{} does not exist", p.display()),
                    ));
                }
                match flag {
                    libc::CLONE_NEWUSER => ns.join_user = Some(p.clone()),
                    libc::CLONE_NEWPID => ns.join_pid = Some(p.clone()),
                    _ => ns.join.push((p.clone(), flag)),
                }
            }
            None => match flag {
                libc::CLONE_NEWCGROUP => ns.new_cgroup = true,
                CLONE_NEWTIME => ns.new_time = true,
                _ => ns.clone_flags |= flag,
            },
        }
    }
    if ns.join_user.is_some() && ns.clone_flags & libc::CLONE_NEWPID != 0 {
        return Err(SpecError::unsupported(
            "linux.namespaces",
            "a new pid namespace together with a user namespace joined by path",
        ));
    }
    Ok(ns)
}

fn id_mappings(linux: &oci_spec::runtime::Linux, ns: &Namespaces) -> Result<(), SpecError> {
    for (name, maps) in [
        ("uidMappings", linux.uid_mappings()),
        ("gidMappings", linux.gid_mappings()),
    ] {
        let maps = maps.as_deref().unwrap_or_default();
        if maps.is_empty() {
            if ns.clone_flags & libc::CLONE_NEWUSER != 0 {
                return Err(SpecError::invalid(
                    format!("linux.{name}"),
                    "a new user namespace needs mappings",
                ));
            }
            continue;
        }
        if ns.clone_flags & libc::CLONE_NEWUSER == 0 {
            return Err(SpecError::invalid(
                format!("linux.{name}"),
                "mappings need a new user namespace",
            ));
        }
        if maps.len() > 340 {
            return Err(SpecError::invalid(
                format!("linux.{name}"),
                "more than 340 mappings",
            ));
        }
        for (i, m) in maps.iter().enumerate() {
            if m.size() == 0 {
                return Err(SpecError::invalid(
                    format!("linux.{name}[{i}].size"),
                    "must be at least 1",
                ));
            }
        }
    }
    Ok(())
}

/// Which sysctls a container may set: only those of a namespace it owns
/// (runc's rules).
fn sysctl_allowed(key: &str, ns: &Namespaces) -> Result<(), SpecError> {
    let field = format!("linux.sysctl.{key}");
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        (libc::CLONE_NEWIPC, "an ipc namespace")
    } else if key.starts_with("net.") {
        (libc::CLONE_NEWNET, "a network namespace")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        return Err(SpecError::invalid(
            field,
            "set hostname and domainname in their own fields",
        ));
    } else {
        return Err(SpecError::invalid(
            field,
            "not a namespaced sysctl: it would change the host",
        ));
    };
    if key.contains("..") || key.contains('/') {
        return Err(SpecError::invalid(field, "malformed name"));
    }
    if !ns.has(needs.0) {
        return Err(SpecError::invalid(
            field,
            format!("needs {} of the container's own", needs.1),
        ));
    }
    Ok(())
}

fn devices(linux: &oci_spec::runtime::Linux) -> Result<(), SpecError> {
    use oci_spec::runtime::LinuxDeviceType as T;
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let field = format!("linux.devices[{i}]");
        let p = d.path();
        if !p.is_absolute()
            || !p.starts_with("/dev")
            || p.components().any(|c| c.as_os_str() == "..")
        {
            return Err(SpecError::invalid(
                format!("{field}.path"),
                format!("{} is not a path under /dev", p.display()),
            ));
        }
        match d.typ() {
            T::C | T::U | T::B => {
                if d.major() < 0 || d.minor() < 0 {
                    return Err(SpecError::invalid(
                        field,
                        "character and block devices need major and minor",
                    ));
                }
            }
            T::P => {}
            T::A => {
                return Err(SpecError::invalid(
                    format!("{field}.type"),
                    "must be c, u, b or p",
                ))
            }
        }
    }
    Ok(())
}

fn hooks(spec: &Spec) -> Result<(), SpecError> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    for (name, list) in [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ] {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(SpecError::invalid(
                    format!("hooks.{name}[{i}].path"),
                    "must be an absolute path",
                ));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(SpecError::invalid(
                    format!("hooks.{name}[{i}].timeout"),
                    "must be positive",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_semver_of_major_one() {
        for ok in [
            "1.0.0",
            "1.2.0",
            "1.0.2-dev",
            "1.0.0-rc.1",
            "1.3.0+build.5",
            "1.10.0",
        ] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "missing"),
            ("invalid", "not a semantic version"),
            ("1.0", "not a semantic version"),
            ("1.02.0", "not a semantic version"),
            ("1.0.0-", "not a semantic version"),
            ("1.0.0-01", "not a semantic version"),
            ("1.0.0+", "not a semantic version"),
            ("9.9.9", "implements version 1.x"),
            ("0.5.0", "implements version 1.x"),
        ] {
            let e = check_version(bad).unwrap_err().to_string();
            assert!(e.contains("ociVersion") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn scheduler_flags_by_the_spec_names_parse() {
        let p = parse_process(
            br#"{"cwd": "/", "user": {"uid": 0, "gid": 0}, "scheduler": {"policy": "SCHED_OTHER",
                 "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]}}"#,
        )
        .unwrap();
        let flags = p.scheduler().as_ref().unwrap().flags().clone().unwrap();
        assert_eq!(flags.len(), 3);
    }
}

#[cfg(test)]
mod user_tests {
    use super::check_user;

    #[test]
    fn the_id_meaning_unchanged_is_refused_by_field() {
        let user = |uid, gid, extra: Vec<u32>| {
            oci_spec::runtime::UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .additional_gids(extra)
                .build()
                .unwrap()
        };
        assert!(check_user(&user(1000, 1000, vec![5])).is_ok());
        for (u, field) in [
            (user(u32::MAX, 0, vec![]), "process.user.uid"),
            (user(0, u32::MAX, vec![]), "process.user.gid"),
            (
                user(0, 0, vec![1, u32::MAX]),
                "process.user.additionalGids[1]",
            ),
        ] {
            let e = check_user(&u).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}

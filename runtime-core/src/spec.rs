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
    let spec = serde_json::from_value(v).map_err(|e| e.to_string())?;
    Ok((spec, warnings))
}

/// Loads `<bundle>/config.json` and validates it.
///
/// # Errors
/// [`SpecError`] naming the file or the field at fault.
pub(crate) fn load(bundle: &Path, id: &str) -> Result<Checked, SpecError> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| SpecError::Load {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let (spec, warnings) = parse_lenient(&text).map_err(|e| SpecError::Load {
        path: path.clone(),
        message: e,
    })?;
    let mut checked = check(spec, bundle, id)?;
    checked.warnings = warnings;
    Ok(checked)
}

fn check(spec: Spec, bundle: &Path, id: &str) -> Result<Checked, SpecError> {
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
    if process.scheduler().is_some() {
        return Err(SpecError::unsupported(
            "process.scheduler",
            "scheduling policies are not supported",
        ));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(SpecError::unsupported(
            "process.execCPUAffinity",
            "exec CPU affinity is not supported",
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
        return Err(SpecError::unsupported(
            "linux.namespaces",
            "a mount namespace is required",
        ));
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
        Some(s) => Some(crate::seccomp::validate(s)?),
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
    if linux.memory_policy().is_some() {
        return Err(SpecError::unsupported(
            "linux.memoryPolicy",
            "memory policies are not supported",
        ));
    }
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
        warnings: Vec::new(),
        seccomp,
    })
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

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
    /// `CLONE_NEW*` flags for namespaces created at clone time.
    pub clone_flags: libc::c_int,
    /// A new cgroup namespace, unshared after init is in its cgroup.
    pub new_cgroup: bool,
    /// Namespaces joined by path (`setns`), with their type flag.
    pub join: Vec<(PathBuf, libc::c_int)>,
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
    let spec: Spec = serde_json::from_str(&text).map_err(|e| SpecError::Load {
        path: path.clone(),
        message: e.to_string(),
    })?;
    check(spec, bundle, id)
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
    if process.terminal() == Some(true) {
        return Err(SpecError::unsupported(
            "process.terminal",
            "terminals need a console socket, not supported yet",
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
        if m.typ().as_deref() == Some("cgroup") {
            return Err(SpecError::unsupported(
                format!("mounts[{i}].type"),
                "cgroup mounts are not supported yet",
            ));
        }
    }

    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| SpecError::invalid("linux", "missing"))?;
    let mut ns = Namespaces::default();
    let mut has_mount = false;
    for (i, n) in linux.namespaces().iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let flag = match n.typ() {
            LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
            LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
            LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
            LinuxNamespaceType::Network => libc::CLONE_NEWNET,
            LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
            LinuxNamespaceType::User => {
                return Err(SpecError::unsupported(
                    field,
                    "user namespaces are not supported yet",
                ))
            }
            LinuxNamespaceType::Time => {
                return Err(SpecError::unsupported(
                    field,
                    "time namespaces are not supported yet",
                ))
            }
        };
        if flag == libc::CLONE_NEWNS {
            has_mount = true;
        }
        match n.path() {
            Some(p) => {
                if !matches!(
                    flag,
                    libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS
                ) {
                    return Err(SpecError::unsupported(
                        format!("{field}.path"),
                        "only network, ipc and uts namespaces can be joined by path",
                    ));
                }
                if !p.exists() {
                    return Err(SpecError::invalid(
                        format!("{field}.path"),
                        format!("{} does not exist", p.display()),
                    ));
                }
                ns.join.push((p.clone(), flag));
            }
            None if flag == libc::CLONE_NEWCGROUP => ns.new_cgroup = true,
            None => ns.clone_flags |= flag,
        }
    }
    if !has_mount {
        return Err(SpecError::unsupported(
            "linux.namespaces",
            "a mount namespace is required",
        ));
    }
    if spec.hostname().is_some() && ns.clone_flags & libc::CLONE_NEWUTS == 0 {
        return Err(SpecError::invalid("hostname", "needs a new uts namespace"));
    }
    if linux.seccomp().is_some() {
        return Err(SpecError::unsupported(
            "linux.seccomp",
            "seccomp is not supported yet, and is not skipped silently",
        ));
    }
    if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    {
        return Err(SpecError::unsupported(
            "linux.uidMappings",
            "user namespaces are not supported yet",
        ));
    }
    if linux.sysctl().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(SpecError::unsupported(
            "linux.sysctl",
            "sysctl is not supported yet",
        ));
    }
    if linux.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(SpecError::unsupported(
            "linux.devices",
            "extra devices are not supported yet",
        ));
    }
    if let Some(p) = linux.rootfs_propagation() {
        if crate::rootfs::propagation_flag(p).is_none() {
            return Err(SpecError::invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            ));
        }
    }
    if let Some(r) = linux.resources() {
        if let Some(l) = r.memory().as_ref().and_then(|m| m.limit()) {
            if l != -1 && l < 4096 * 1024 {
                return Err(SpecError::invalid(
                    "linux.resources.memory.limit",
                    format!("{l} bytes is below the 4 MiB minimum"),
                ));
            }
        }
    }
    if spec.hooks().is_some() {
        return Err(SpecError::unsupported(
            "hooks",
            "hooks are not supported yet",
        ));
    }

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
    })
}

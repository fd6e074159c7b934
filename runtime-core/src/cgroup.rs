//! Container cgroups through cgroups-rs, on v1 (and hybrid, driven as v1)
//! and v2 hierarchies.

use cgroups_rs::fs::{cgroup_builder::CgroupBuilder, hierarchies, Cgroup, MaxValue};
use cgroups_rs::CgroupPid;
use oci_spec::runtime::LinuxResources;

use crate::error::CgroupError;

/// The limits runtime-core applies.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Maximum number of processes.
    pub pids: Option<i64>,
}

impl Limits {
    pub(crate) fn from_spec(r: Option<&LinuxResources>) -> Self {
        let Some(r) = r else {
            return Self::default();
        };
        Limits {
            memory: r
                .memory()
                .as_ref()
                .and_then(|m| m.limit())
                .filter(|l| *l > 0),
            pids: r.pids().as_ref().map(|p| p.limit()).filter(|l| *l > 0),
        }
    }
}

fn err(path: &str, message: impl std::fmt::Display) -> CgroupError {
    CgroupError {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// Creates the cgroup `path` with `limits` in every hierarchy and moves `pid`
/// into it.
///
/// # Errors
/// If the cgroup exists already (another container owns it), or creation,
/// a limit or the move fails; a cgroup this call created is removed again.
pub(crate) fn create(path: &str, limits: Limits, pid: i32) -> Result<(), CgroupError> {
    let probe = Cgroup::load(hierarchies::auto(), path);
    if probe.exists() && !probe.procs().is_empty() {
        return Err(err(path, "exists already and has processes"));
    }
    let mut b = CgroupBuilder::new(path);
    if let Some(m) = limits.memory {
        b = b.memory().memory_hard_limit(m).done();
    }
    if let Some(p) = limits.pids {
        b = b
            .pid()
            .maximum_number_of_processes(MaxValue::Value(p))
            .done();
    }
    let cg = b
        .build(hierarchies::auto())
        .map_err(|e| err(path, format!("create: {e}")))?;
    if let Err(e) = cg.add_task_by_tgid(CgroupPid::from(pid as u64)) {
        let _ = cg.delete();
        return Err(err(path, format!("move pid {pid}: {e}")));
    }
    Ok(())
}

/// Pids of the processes in the cgroup.
pub fn procs(path: &str) -> Vec<i32> {
    Cgroup::load(hierarchies::auto(), path)
        .procs()
        .into_iter()
        .map(|p| p.pid as i32)
        .collect()
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
    cg.delete().map_err(|e| err(path, format!("remove: {e}")))
}

/// Whether the cgroup's directory exists in any hierarchy.
pub fn exists(path: &str) -> bool {
    Cgroup::load(hierarchies::auto(), path).exists()
}

/// How many times the kernel's OOM killer has killed a process in the
/// cgroup: `oom_kill` of `memory.events` (v2) or of `memory.oom_control`
/// (v1, Linux 4.13+). Zero if the cgroup or the counter is missing.
pub fn oom_kill_count(path: &str) -> u64 {
    let candidates = if hierarchies::is_cgroup2_unified_mode() {
        vec![format!("/sys/fs/cgroup/{path}/memory.events")]
    } else {
        vec![format!("/sys/fs/cgroup/memory/{path}/memory.oom_control")]
    };
    candidates
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .next()
        .unwrap_or(0)
}

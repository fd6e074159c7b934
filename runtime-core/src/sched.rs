//! Where and how the container's processes run: `process.scheduler`
//! (`sched_setattr`), `linux.memoryPolicy` (`set_mempolicy`) and
//! `process.execCPUAffinity` (`sched_setaffinity`, for `exec` only: the
//! runtime spec says it does not apply to init).
//!
//! Each is checked when the spec is (naming the field) and applied by the
//! child with one system call.

use oci_spec::runtime::{
    LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType,
    MemoryPolicyModeType, Scheduler,
};

use crate::error::SpecError;
use crate::sys;

/// `struct sched_attr` as `sched_setattr(2)` takes it (`SCHED_ATTR_SIZE_VER0`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

impl SchedAttr {
    /// A SCHED_DEADLINE process without SCHED_FLAG_RESET_ON_FORK: the
    /// kernel refuses it `fork`.
    pub(crate) fn forks_fail(&self) -> bool {
        self.policy == 6 && self.flags & 0x01 == 0
    }
}

/// The highest CPU or NUMA node number a list may name (exclusive).
const MAX_ID: usize = 1024;

/// The `sched_attr` for `process.scheduler`.
pub(crate) fn scheduler(s: &Scheduler) -> Result<SchedAttr, SpecError> {
    const F: &str = "process.scheduler";
    use LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => {
            return Err(SpecError::unsupported(
                format!("{F}.policy"),
                "SCHED_ISO is not implemented by Linux",
            ))
        }
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(SpecError::invalid(
            format!("{F}.nice"),
            format!("{nice} is not between -20 and 19"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(s.policy(), P::SchedFifo | P::SchedRr);
    if realtime && !(1..=99).contains(&priority) {
        return Err(SpecError::invalid(
            format!("{F}.priority"),
            format!("{} needs a priority between 1 and 99", s.policy()),
        ));
    }
    if !realtime && priority != 0 {
        return Err(SpecError::invalid(
            format!("{F}.priority"),
            format!(
                "{} takes no priority (only SCHED_FIFO and SCHED_RR do)",
                s.policy()
            ),
        ));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if matches!(s.policy(), P::SchedDeadline) {
        if runtime == 0 || deadline == 0 {
            return Err(SpecError::invalid(
                F,
                "SCHED_DEADLINE needs runtime and deadline",
            ));
        }
        if runtime < 1024 {
            return Err(SpecError::invalid(
                format!("{F}.runtime"),
                "SCHED_DEADLINE needs a runtime of at least 1024 ns",
            ));
        }
        if runtime > deadline || (period != 0 && deadline > period) {
            return Err(SpecError::invalid(
                F,
                "SCHED_DEADLINE needs runtime <= deadline <= period",
            ));
        }
    } else if runtime != 0 || deadline != 0 || period != 0 {
        return Err(SpecError::invalid(
            F,
            "runtime, deadline and period are for SCHED_DEADLINE only",
        ));
    }
    let mut flags = 0u64;
    for (i, f) in s.flags().iter().flatten().enumerate() {
        use LinuxSchedulerFlag as L;
        flags |= match f {
            L::SchedResetOnFork => 0x01,
            L::SchedFlagReclaim => 0x02,
            L::SchedFlagDLOverrun => 0x04,
            L::SchedFlagKeepPolicy => 0x08,
            L::SchedFlagKeepParams => 0x10,
            L::SchedFlagUtilClampMin | L::SchedFlagUtilClampMax => {
                return Err(SpecError::unsupported(
                    format!("{F}.flags[{i}]"),
                    "utilization clamping needs values the runtime spec has no field for",
                ))
            }
        };
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
    })
}

/// Parses a list like `0-3,7` into the ids it names.
fn id_list(field: &str, text: &str) -> Result<Vec<usize>, SpecError> {
    let bad = |why: String| SpecError::invalid(field, format!("{text:?}: {why}"));
    let mut ids = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let num = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("{part:?} is not a number or a range")))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(bad(format!("range {part:?} goes down")));
        }
        if hi >= MAX_ID {
            return Err(bad(format!("{hi} is not below {MAX_ID}")));
        }
        ids.extend(lo..=hi);
    }
    Ok(ids)
}

/// A bit mask of `ids`, in words of 64 bits.
fn mask(ids: &[usize]) -> Vec<u64> {
    let mut m = vec![0u64; MAX_ID / 64];
    for &i in ids {
        m[i / 64] |= 1 << (i % 64);
    }
    m
}

/// `set_mempolicy` arguments: mode with its flags, and the node mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemPolicy {
    pub mode: i32,
    pub nodes: Vec<u64>,
}

/// The `set_mempolicy` arguments of `linux.memoryPolicy`.
pub(crate) fn memory_policy(p: &LinuxMemoryPolicy) -> Result<MemPolicy, SpecError> {
    const F: &str = "linux.memoryPolicy";
    use MemoryPolicyModeType as M;
    let (mode, nodes_needed) = match p.mode() {
        M::MpolDefault => (0, Some(false)),
        M::MpolPreferred => (1, None),
        M::MpolBind => (2, Some(true)),
        M::MpolInterleave => (3, Some(true)),
        M::MpolLocal => (4, Some(false)),
        M::MpolPreferredMany => (5, Some(true)),
        M::MpolWeightedInterleave => (6, Some(true)),
    };
    let nodes = match p.nodes().as_deref().filter(|n| !n.is_empty()) {
        Some(n) => id_list(&format!("{F}.nodes"), n)?,
        None => Vec::new(),
    };
    match nodes_needed {
        Some(true) if nodes.is_empty() => {
            return Err(SpecError::invalid(
                format!("{F}.nodes"),
                format!("{} needs nodes", p.mode()),
            ))
        }
        Some(false) if !nodes.is_empty() => {
            return Err(SpecError::invalid(
                format!("{F}.nodes"),
                format!("{} takes no nodes", p.mode()),
            ))
        }
        _ => {}
    }
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    // The kernel's rules (mm/mempolicy.c), checked here to name the field.
    let node_flags = flags & (3 << 14);
    if node_flags == 3 << 14 {
        return Err(SpecError::invalid(
            format!("{F}.flags"),
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        ));
    }
    if node_flags != 0 && (matches!(p.mode(), M::MpolDefault | M::MpolLocal) || nodes.is_empty()) {
        return Err(SpecError::invalid(
            format!("{F}.flags"),
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES need nodes",
        ));
    }
    if flags & (1 << 13) != 0 && !matches!(p.mode(), M::MpolBind | M::MpolPreferredMany) {
        return Err(SpecError::invalid(
            format!("{F}.flags"),
            "MPOL_F_NUMA_BALANCING goes with MPOL_BIND or MPOL_PREFERRED_MANY only",
        ));
    }
    Ok(MemPolicy {
        mode: mode | flags,
        nodes: mask(&nodes),
    })
}

/// `process.execCPUAffinity` as masks: (`initial`, `final`); an empty
/// list is none.
pub(crate) type Affinity = (Option<Vec<u64>>, Option<Vec<u64>>);

/// The masks of `process.execCPUAffinity`.
pub(crate) fn exec_affinity(process: &oci_spec::runtime::Process) -> Result<Affinity, SpecError> {
    let Some(a) = process.exec_cpu_affinity() else {
        return Ok((None, None));
    };
    let list = |l: &Option<String>, name: &str| {
        l.as_deref()
            .filter(|l| !l.is_empty())
            .map(|l| id_list(&format!("process.execCPUAffinity.{name}"), l).map(|ids| mask(&ids)))
            .transpose()
    };
    Ok((
        list(a.initial(), "initial")?,
        list(a.cpu_affinity_final(), "final")?,
    ))
}

/// Applies a checked scheduler to the calling process.
pub(crate) fn apply_scheduler(a: &SchedAttr) -> Result<(), String> {
    sys::sched_setattr(a).map_err(|e| format!("sched_setattr: {e}"))
}

/// Applies a checked memory policy to the calling process.
pub(crate) fn apply_memory_policy(p: &MemPolicy) -> Result<(), String> {
    sys::set_mempolicy(p.mode, &p.nodes).map_err(|e| format!("set_mempolicy: {e}"))
}

/// Sets the CPU affinity of `pid` (0: the calling process).
pub(crate) fn apply_cpu_mask(pid: libc::pid_t, m: &[u64]) -> Result<(), String> {
    sys::sched_setaffinity_of(pid, m).map_err(|e| format!("sched_setaffinity: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(v: serde_json::Value) -> Result<SchedAttr, String> {
        scheduler(&serde_json::from_value(v).unwrap()).map_err(|e| e.to_string())
    }

    fn mpol(v: serde_json::Value) -> Result<MemPolicy, String> {
        memory_policy(&serde_json::from_value(v).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn lists_parse_and_bad_ones_name_the_field() {
        assert_eq!(id_list("f", "0-2,7").unwrap(), [0, 1, 2, 7]);
        assert_eq!(mask(&[0, 65])[..2], [1, 2]);
        for bad in ["", "a", "3-1", "1,,2", "1024", "-1"] {
            let e = id_list("linux.memoryPolicy.nodes", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("linux.memoryPolicy.nodes"), "{bad}: {e}");
        }
    }

    #[test]
    fn scheduler_rules() {
        let a = sched(serde_json::json!({"policy": "SCHED_BATCH", "nice": 5})).unwrap();
        assert_eq!((a.policy, a.nice, a.size), (3, 5, 48));
        let a = sched(serde_json::json!({"policy": "SCHED_FIFO", "priority": 10})).unwrap();
        assert_eq!((a.policy, a.priority), (1, 10));
        for (v, field) in [
            (
                serde_json::json!({"policy": "SCHED_FIFO"}),
                "process.scheduler.priority",
            ),
            (
                serde_json::json!({"policy": "SCHED_OTHER", "nice": 20}),
                "process.scheduler.nice",
            ),
            (
                serde_json::json!({"policy": "SCHED_ISO"}),
                "process.scheduler.policy",
            ),
            (
                serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10}),
                "process.scheduler",
            ),
            (
                serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 100}),
                "process.scheduler.runtime",
            ),
            (
                serde_json::json!({"policy": "SCHED_OTHER", "priority": 3}),
                "process.scheduler.priority",
            ),
        ] {
            let e = sched(v.clone()).unwrap_err();
            assert!(e.contains(field), "{v}: {e}");
        }
    }

    #[test]
    fn memory_policy_rules() {
        let p = mpol(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})).unwrap();
        assert_eq!(p.mode, 2 | 1 << 15);
        assert_eq!(p.nodes[0], 1);
        assert!(mpol(serde_json::json!({"mode": "MPOL_LOCAL"})).is_ok());
        for v in [
            serde_json::json!({"mode": "MPOL_BIND"}),
            serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
            serde_json::json!({"mode": "MPOL_BIND", "nodes": "0",
                               "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            serde_json::json!({"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]}),
            serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0",
                               "flags": ["MPOL_F_NUMA_BALANCING"]}),
        ] {
            let e = mpol(v.clone()).unwrap_err();
            assert!(e.contains("linux.memoryPolicy"), "{v}: {e}");
        }
    }
}

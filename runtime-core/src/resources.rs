//! contd's limits (`proto::Resources`, set at create or by `update`) as
//! the OCI resources the runtime applies: one conversion for the
//! supervisor's spec and the monitor's update.

use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources};
use proto::Resources;

/// The CFS period `nano_cpus` is spread over, in microseconds (docker's).
pub const CPU_PERIOD: u64 = 100_000;

/// Converts the set fields; unset ones stay unset (left as they are).
pub fn linux_resources(r: &Resources) -> LinuxResources {
    let mut out = LinuxResources::default();
    if let Some(m) = r.memory {
        out.set_memory(
            LinuxMemoryBuilder::default()
                .limit(m.min(i64::MAX as u64) as i64)
                .build()
                .ok(),
        );
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    if let Some(n) = r.nano_cpus {
        cpu = cpu
            .quota((n.saturating_mul(CPU_PERIOD) / 1_000_000_000).min(i64::MAX as u64) as i64)
            .period(CPU_PERIOD);
        any_cpu = true;
    }
    if let Some(q) = r.cpu_quota {
        cpu = cpu.quota(q);
        any_cpu = true;
    }
    if let Some(p) = r.cpu_period {
        cpu = cpu.period(p);
        any_cpu = true;
    }
    if let Some(s) = r.cpu_shares {
        cpu = cpu.shares(s);
        any_cpu = true;
    }
    if any_cpu {
        out.set_cpu(cpu.build().ok());
    }
    if let Some(p) = r.pids_limit {
        out.set_pids(LinuxPidsBuilder::default().limit(p).build().ok());
    }
    out
}

//! runtime-core: contd's OCI runtime library. It turns an OCI bundle into an
//! isolated process with the create/start split of the runtime spec. It is
//! synchronous and must be driven from a single-threaded process (the
//! monitor, or the `contd-runtime` CLI): after `clone` in a threaded process
//! libc locks can deadlock.
//!
//! # Layout
//!
//! - `spec`: loads `config.json` and validates it before anything exists,
//!   naming the JSON path of a bad field.
//! - `container`: [`Container`] — create, start, kill, delete, status.
//! - `init`: the child side, from clone to `execve`.
//! - `rootfs`: mounts resolved inside the rootfs, devices, `pivot_root`,
//!   masked and read-only paths.
//! - `defaults`: the secure default spec.
//! - `cgroup`: cgroups through cgroups-rs.
//! - `seccomp`: `linux.seccomp` through libseccomp, compiled to a BPF
//!   program once per profile (`bpfcache` keeps them), and moby's default
//!   profile ([`default_profile`]).
//! - `sched`: `process.scheduler`, `linux.memoryPolicy`,
//!   `process.execCPUAffinity`.
//! - `hooks`: the six OCI hook kinds.
//! - `console`: ptys and the console-socket protocol.
//! - `exec`: extra processes in a living container.
//! - `reaper`: contd's init (`--init`), the command's parent as pid 1.
//! - `resources`: contd's limits as OCI resources.
//! - `state`: `state.json` and time formatting.
//! - `sys`: every raw system call and every `unsafe` block, but for the
//!   call of `sys::clone_fork`, whose single-threaded contract is the
//!   caller's to keep.

mod bpfcache;
mod cgroup;
mod console;
mod container;
mod defaults;
mod devfilter;
mod error;
mod exec;
mod hooks;
mod init;
mod reaper;
mod resources;
mod rootfs;
mod sched;
mod seccomp;
mod spec;
mod state;
mod sys;

pub use cgroup::{
    exists as cgroup_exists, is_frozen as cgroup_is_frozen, is_v2 as cgroup_v2,
    join_own as join_cgroup, oom_kill_count, oom_kill_field, open_v2 as open_v2_cgroup,
    procs as cgroup_procs, remove as remove_cgroup, Stats,
};
pub use console::receive_master;
pub use container::{Container, CreateOptions, Status, Stdio};
pub use defaults::{secure_default_spec, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS};
pub use error::{CgroupError, Error, SpecError};
pub use exec::ExecOptions;
pub use reaper::INIT_ANNOTATION;
pub use resources::{linux_resources, CPU_PERIOD};
pub use seccomp::default_profile;
pub use spec::parse_process;
pub use state::{now_nanos, rfc3339_nanos, OciState, Persisted, OCI_VERSION};
pub use sys::{
    get_winsize, pidfd_open, pidfd_send_signal, process_start_time, set_winsize, wait_exit,
};

/// `process.env` with `extra` `KEY=VALUE` entries set: an entry replaces
/// the one of the same key (as `exec -e` does in runc and docker).
pub fn merge_env(env: &mut Vec<String>, extra: &[String]) {
    for kv in extra {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
}

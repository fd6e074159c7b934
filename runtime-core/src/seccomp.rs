//! Seccomp: turns an OCI `linux.seccomp` object into a libseccomp filter and
//! loads it, and provides moby's default profile.
//!
//! Semantics follow runc where the runtime spec leaves room:
//!
//! - `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD`. `SCMP_ACT_ERRNO` returns
//!   `errnoRet` (`defaultErrnoRet` for the default action), EPERM if absent.
//!   `SCMP_ACT_TRACE` hands `errnoRet` to the tracer as the message number,
//!   EPERM if absent, as runc does, so tracers written for runc see the same
//!   value. An `errnoRet` on any other action is refused, as the spec asks.
//! - A syscall name libseccomp does not know is skipped silently; a name it
//!   knows on another architecture only is left to libseccomp, which adds it
//!   where it exists.
//! - A rule whose action equals the default action is skipped (libseccomp
//!   refuses it). Conditions on distinct argument indexes are AND-ed in one
//!   rule; if an index appears twice, every condition becomes a rule of its
//!   own, OR-ed (runc's behaviour, kept for compatibility with its profiles).
//! - `SCMP_CMP_MASKED_EQ`: `value` is the mask, `valueTwo` the value the
//!   masked argument must equal.
//! - The native architecture stays in the filter whatever `architectures`
//!   lists.
//! - libseccomp's own `no_new_privs` handling is turned off: that is
//!   `process.noNewPrivileges`' business, done by init before seccomp.
//! - Syscalls newer than the profile get ENOSYS rather than the default
//!   action when that action is not ALLOW/LOG, so that libc falls back to an
//!   older syscall (glibc does only on ENOSYS); see [`NEWER_SYSCALLS`].
//!
//! [`validate`] builds the whole filter without loading it, so anything
//! libseccomp refuses is found before the container exists.

use std::collections::HashSet;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    ScmpVersion,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use serde_json::{json, Value};

use crate::error::SpecError;
use crate::sys;

/// seccomp(2) passes six syscall arguments to filters.
const MAX_ARGS: usize = 6;

/// The data field of a seccomp return value is 16 bits wide.
const MAX_RET_DATA: u32 = 0xffff;

/// Syscalls added to Linux since 5.1, with the release that added them.
///
/// A profile is written against some kernel; syscalls newer than every one
/// it names cannot be in its allow-list, and denying them with EPERM stops
/// libc from falling back to older syscalls (glibc falls back on ENOSYS
/// only: `clone3` → `clone`, `faccessat2` → `faccessat`, `close_range` →
/// a loop of `close`). So, when the default action is not ALLOW/LOG, every
/// syscall below that is newer than the newest one the profile names, and
/// not named itself, gets ENOSYS. `clone3` gets ENOSYS whenever it is not
/// named: its arguments live in memory where seccomp cannot look, so
/// profiles that restrict `clone` flags deny it on purpose (moby does).
const NEWER_SYSCALLS: &[(&str, (u32, u32))] = &[
    ("pidfd_send_signal", (5, 1)),
    ("io_uring_setup", (5, 1)),
    ("io_uring_enter", (5, 1)),
    ("io_uring_register", (5, 1)),
    ("open_tree", (5, 2)),
    ("move_mount", (5, 2)),
    ("fsopen", (5, 2)),
    ("fsconfig", (5, 2)),
    ("fsmount", (5, 2)),
    ("fspick", (5, 2)),
    ("pidfd_open", (5, 3)),
    ("clone3", (5, 3)),
    ("openat2", (5, 6)),
    ("pidfd_getfd", (5, 6)),
    ("faccessat2", (5, 8)),
    ("close_range", (5, 9)),
    ("process_madvise", (5, 10)),
    ("epoll_pwait2", (5, 11)),
    ("mount_setattr", (5, 12)),
    ("landlock_create_ruleset", (5, 13)),
    ("landlock_add_rule", (5, 13)),
    ("landlock_restrict_self", (5, 13)),
    ("memfd_secret", (5, 14)),
    ("quotactl_fd", (5, 14)),
    ("process_mrelease", (5, 15)),
    ("futex_waitv", (5, 16)),
    ("set_mempolicy_home_node", (5, 17)),
    ("cachestat", (6, 5)),
    ("fchmodat2", (6, 6)),
    ("map_shadow_stack", (6, 6)),
    ("futex_wake", (6, 7)),
    ("futex_wait", (6, 7)),
    ("futex_requeue", (6, 7)),
    ("statmount", (6, 8)),
    ("listmount", (6, 8)),
    ("lsm_get_self_attr", (6, 8)),
    ("lsm_set_self_attr", (6, 8)),
    ("lsm_list_modules", (6, 8)),
    ("mseal", (6, 10)),
    ("uretprobe", (6, 11)),
    ("setxattrat", (6, 13)),
    ("getxattrat", (6, 13)),
    ("listxattrat", (6, 13)),
    ("removexattrat", (6, 13)),
    ("open_tree_attr", (6, 15)),
    ("file_getattr", (6, 17)),
    ("file_setattr", (6, 17)),
];

/// Why a profile cannot be used; `field` is the JSON path at fault.
#[derive(Debug)]
struct BuildError {
    field: String,
    message: String,
    /// The profile is well-formed but asks for what this host's libseccomp
    /// cannot do.
    unsupported: bool,
}

impl BuildError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError {
            field: field.into(),
            message: message.into(),
            unsupported: false,
        }
    }
    fn unsupported(field: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError {
            field: field.into(),
            message: message.into(),
            unsupported: true,
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl From<BuildError> for SpecError {
    fn from(e: BuildError) -> Self {
        if e.unsupported {
            SpecError::unsupported(e.field, e.message)
        } else {
            SpecError::invalid(e.field, e.message)
        }
    }
}

/// `seccomp(2)` filter flags (`linux/seccomp.h`).
const FLAG_TSYNC: u32 = 1 << 0;
const FLAG_LOG: u32 = 1 << 1;
const FLAG_SPEC_ALLOW: u32 = 1 << 2;
const FLAG_NEW_LISTENER: u32 = 1 << 3;
const FLAG_TSYNC_ESRCH: u32 = 1 << 4;
const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// The kernel refuses a filter longer than this (`BPF_MAXINSNS`).
const MAX_INSNS: usize = 4096;

/// A compiled filter, not loaded yet: the BPF program libseccomp generated
/// for a profile and the `seccomp(2)` flags to load it with. Compiled once
/// (or read from the cache) before the clone; the child only loads it, with
/// one system call and no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// `struct sock_filter` instructions, native endian, as libseccomp
    /// exports them and the kernel takes them.
    program: Vec<u8>,
    /// `SECCOMP_FILTER_FLAG_*`.
    flags: u32,
    /// Some rule uses `SCMP_ACT_NOTIFY`: loading returns a listener fd.
    notify: bool,
}

/// Checks a profile before anything is created and compiles it. Errors name
/// the JSON path, e.g. "linux.seccomp.syscalls[3].action".
///
/// The filter is built in full with this host's libseccomp, so everything
/// loading would refuse is refused here. With a `cache` dir, a profile
/// compiled before (same content, same libseccomp, same runtime) is read
/// from it instead of being compiled again (see [`crate::bpfcache`]).
pub(crate) fn validate(s: &LinuxSeccomp, cache: Option<&Path>) -> Result<Filter, SpecError> {
    Ok(compile(s, cache)?)
}

/// Compiles a profile already validated (for `exec`).
pub(crate) fn prepare(s: &LinuxSeccomp, cache: Option<&Path>) -> Result<Filter, String> {
    compile(s, cache).map_err(|e| format!("seccomp profile: {e}"))
}

/// Compiles and loads the filter into the calling process (tests).
#[cfg(test)]
pub(crate) fn apply(s: &LinuxSeccomp) -> Result<Option<OwnedFd>, String> {
    prepare(s, None)?.load()
}

impl Filter {
    /// Whether loading returns a user-notification fd.
    pub(crate) fn notify(&self) -> bool {
        self.notify
    }

    /// Loads the filter into the calling process with one `seccomp(2)`
    /// call; returns its notify fd if it has one. Without `no_new_privs` the
    /// kernel only lets a process holding CAP_SYS_ADMIN load a filter.
    pub(crate) fn load(&self) -> Result<Option<OwnedFd>, String> {
        sys::seccomp_set_filter(&self.program, self.flags).map_err(|e| {
            if e.raw_os_error() == Some(libc::EACCES) {
                format!(
                    "load seccomp filter: {e} (without no_new_privs, loading a \
                     filter needs CAP_SYS_ADMIN)"
                )
            } else {
                format!("load seccomp filter: {e}")
            }
        })
    }
}

/// What identifies a compiled profile: everything the program depends on
/// besides the profile (this runtime's build, libseccomp and the kernel
/// API level it detected, the architecture) and the profile itself.
fn cache_key(s: &LinuxSeccomp) -> Option<Vec<u8>> {
    let mut key = format!(
        "contd-runtime {} seccomp-compiler {} libseccomp {} api {} arch {}\nenosys {:?}\n",
        env!("CARGO_PKG_VERSION"),
        COMPILER_VERSION,
        libseccomp_version(),
        libseccomp::get_api(),
        std::env::consts::ARCH,
        NEWER_SYSCALLS,
    )
    .into_bytes();
    // Field order is fixed by the struct, list order is the profile's.
    key.extend(serde_json::to_vec(s).ok()?);
    Some(key)
}

/// Bumped whenever [`build`] would compile the same profile differently
/// (other flags, other rules; the ENOSYS list is in the key already): old
/// cache entries then miss.
const COMPILER_VERSION: u32 = 1;

fn compile(s: &LinuxSeccomp, cache: Option<&Path>) -> Result<Filter, BuildError> {
    let key = cache.and_then(|dir| Some((dir, cache_key(s)?)));
    if let Some((dir, key)) = &key {
        if let Some(f) = crate::bpfcache::lookup(dir, key) {
            return Ok(f);
        }
    }
    let (ctx, notify) = build(s)?;
    let program = export(&ctx)?;
    if program.len() > MAX_INSNS * 8 {
        return Err(BuildError::invalid(
            "linux.seccomp",
            format!(
                "the filter compiles to {} BPF instructions; the kernel takes at most {MAX_INSNS}",
                program.len() / 8
            ),
        ));
    }
    let mut flags = if notify { FLAG_NEW_LISTENER } else { 0 };
    for flag in s.flags().iter().flatten() {
        flags |= match flag {
            // With a listener, TSYNC must not fail for it (libseccomp does
            // the same); build() checked the kernel can.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync if notify => {
                FLAG_TSYNC | FLAG_TSYNC_ESRCH
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    let filter = Filter::new(program, flags, notify)
        .ok_or_else(|| BuildError::invalid("linux.seccomp", "libseccomp exported no program"))?;
    if let Some((dir, key)) = &key {
        // A cache that cannot be written only costs the next create time.
        let _ = crate::bpfcache::store(dir, key, &filter);
    }
    Ok(filter)
}

/// The BPF program libseccomp generates for `ctx` (what `seccomp_load`
/// would load), through a memfd: libseccomp 2.5 exports to an fd only.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, BuildError> {
    use std::io::{Read, Seek};
    let fail = |what: &str, e: &dyn fmt::Display| {
        BuildError::unsupported(
            "linux.seccomp",
            format!("libseccomp {}: {what}: {e}", libseccomp_version()),
        )
    };
    let fd = sys::memfd(c"contd-seccomp").map_err(|e| fail("memfd_create", &e))?;
    ctx.export_bpf(&fd).map_err(|e| fail("export BPF", &e))?;
    let mut f = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    f.rewind()
        .and_then(|()| f.read_to_end(&mut bytes))
        .map_err(|e| fail("read BPF", &e))?;
    Ok(bytes)
}

impl Filter {
    /// A filter from a program of whole instructions the kernel can take
    /// (what libseccomp exported, or the cache holds).
    pub(crate) fn new(program: Vec<u8>, flags: u32, notify: bool) -> Option<Filter> {
        let whole = !program.is_empty() && program.len() % 8 == 0;
        (whole && program.len() <= MAX_INSNS * 8).then_some(Filter {
            program,
            flags,
            notify,
        })
    }

    /// The program's bytes, the flags and the notify bit, for the cache.
    pub(crate) fn parts(&self) -> (&[u8], u32, bool) {
        (&self.program, self.flags, self.notify)
    }
}

fn libseccomp_version() -> String {
    match ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "unknown".to_string(),
    }
}

/// The libseccomp action for an OCI action and its optional `errnoRet`.
/// `ret_field` is the JSON path of `errno_ret`.
fn action(
    act: LinuxSeccompAction,
    errno_ret: Option<u32>,
    ret_field: &str,
) -> Result<ScmpAction, BuildError> {
    if let Some(ret) = errno_ret {
        if !matches!(
            act,
            LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
        ) {
            return Err(BuildError::invalid(
                ret_field,
                format!("{act} takes no errno, only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do"),
            ));
        }
        if ret > MAX_RET_DATA {
            return Err(BuildError::invalid(
                ret_field,
                format!("{ret} does not fit in 16 bits"),
            ));
        }
    }
    // Checked above to fit in 16 bits.
    let ret = errno_ret.unwrap_or(libc::EPERM as u32);
    Ok(match act {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(ret as i32),
        // runc's choice: EPERM as the tracer's message number when absent.
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn condition(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    // `index` is checked to be below MAX_ARGS.
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

/// Builds the filter for `s`, checking every field on the way.
fn build(s: &LinuxSeccomp) -> Result<(ScmpFilterContext, bool), BuildError> {
    const F: &str = "linux.seccomp";
    let syscalls = s.syscalls().as_deref().unwrap_or_default();

    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(BuildError::invalid(
            format!("{F}.defaultAction"),
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        &format!("{F}.defaultErrnoRet"),
    )?;

    // Static checks first, so that errors name the field rather than a
    // libseccomp failure.
    let mut notify = false;
    let mut rules = Vec::with_capacity(syscalls.len());
    for (i, call) in syscalls.iter().enumerate() {
        let field = format!("{F}.syscalls[{i}]");
        if call.names().is_empty() {
            return Err(BuildError::invalid(format!("{field}.names"), "empty"));
        }
        for (j, name) in call.names().iter().enumerate() {
            if name.is_empty() {
                return Err(BuildError::invalid(
                    format!("{field}.names[{j}]"),
                    "empty syscall name",
                ));
            }
            if call.action() == LinuxSeccompAction::ScmpActNotify && name == "sendmsg" {
                return Err(BuildError::invalid(
                    format!("{field}.names[{j}]"),
                    "SCMP_ACT_NOTIFY cannot be used for sendmsg: the runtime \
                     needs it to hand the notify fd over",
                ));
            }
        }
        let act = action(
            call.action(),
            call.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        notify |= act == ScmpAction::Notify;
        let args = call.args().as_deref().unwrap_or_default();
        let mut per_index = [0usize; MAX_ARGS];
        for (j, arg) in args.iter().enumerate() {
            match per_index.get_mut(arg.index()) {
                Some(n) => *n += 1,
                None => {
                    return Err(BuildError::invalid(
                        format!("{field}.args[{j}].index"),
                        format!(
                            "{} is out of range, syscalls have {MAX_ARGS} arguments (0 to {})",
                            arg.index(),
                            MAX_ARGS - 1
                        ),
                    ))
                }
            }
        }
        let conditions: Vec<ScmpArgCompare> = args.iter().map(condition).collect();
        let repeated_index = per_index.iter().any(|&n| n > 1);
        rules.push((field, call.names(), act, conditions, repeated_index));
    }

    if notify {
        if s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
        {
            return Err(BuildError::invalid(
                format!("{F}.listenerPath"),
                "required when a rule uses SCMP_ACT_NOTIFY",
            ));
        }
        // API level 5: user notification; 6: with TSYNC too.
        if libseccomp::get_api() < 5 {
            return Err(BuildError::unsupported(
                format!("{F}.syscalls"),
                format!(
                    "SCMP_ACT_NOTIFY needs libseccomp >= 2.5.0 and Linux >= 5.0 \
                     (libseccomp {}, API level {})",
                    libseccomp_version(),
                    libseccomp::get_api()
                ),
            ));
        }
    }

    let mut ctx = ScmpFilterContext::new(default).map_err(|e| {
        BuildError::invalid(format!("{F}.defaultAction"), format!("libseccomp: {e}"))
    })?;
    let attr = |what: &str, e: libseccomp::error::SeccompError| {
        BuildError::unsupported(
            F,
            format!("libseccomp {}: {what}: {e}", libseccomp_version()),
        )
    };
    ctx.set_ctl_nnp(false)
        .map_err(|e| attr("turn off no_new_privs", e))?;
    ctx.set_api_sysrawrc(true)
        .map_err(|e| attr("turn on raw error codes", e))?;

    for (i, a) in s.architectures().iter().flatten().enumerate() {
        ctx.add_arch(arch(*a)).map_err(|e| {
            BuildError::unsupported(
                format!("{F}.architectures[{i}]"),
                format!("libseccomp {} cannot add {a}: {e}", libseccomp_version()),
            )
        })?;
    }

    for (i, flag) in s.flags().iter().flatten().enumerate() {
        let field = format!("{F}.flags[{i}]");
        let unsupported = |e: libseccomp::error::SeccompError| {
            BuildError::unsupported(
                &field,
                format!("{flag} with libseccomp {}: {e}", libseccomp_version()),
            )
        };
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                if notify && libseccomp::get_api() < 6 {
                    return Err(BuildError::unsupported(
                        &field,
                        "SECCOMP_FILTER_FLAG_TSYNC with SCMP_ACT_NOTIFY needs Linux >= 5.7",
                    ));
                }
                ctx.set_ctl_tsync(true).map_err(unsupported)?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                ctx.set_ctl_log(true).map_err(unsupported)?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                ctx.set_ctl_ssb(true).map_err(unsupported)?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                // Checked first: libseccomp before 2.6 has no such attribute.
                let ok = libseccomp::check_api(7, ScmpVersion::from((2, 6, 0))).unwrap_or(false);
                if !ok {
                    return Err(BuildError::unsupported(
                        &field,
                        format!(
                            "{flag} needs libseccomp >= 2.6.0 and Linux >= 5.19 \
                             (libseccomp {}, API level {})",
                            libseccomp_version(),
                            libseccomp::get_api()
                        ),
                    ));
                }
                if !notify {
                    // The kernel takes it with a listener only.
                    return Err(BuildError::invalid(
                        &field,
                        format!("{flag} needs a rule with SCMP_ACT_NOTIFY"),
                    ));
                }
                ctx.set_ctl_waitkill(true).map_err(unsupported)?;
            }
        }
    }

    for (field, names, act, conditions, repeated_index) in &rules {
        if *act == default {
            continue;
        }
        for name in names.iter() {
            // Unknown to libseccomp: skipped, as runc does.
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if *repeated_index {
                conditions
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(*act, nr, &[*c]).map(drop))
            } else {
                ctx.add_rule_conditional(*act, nr, conditions).map(drop)
            };
            added.map_err(|e| {
                BuildError::invalid(
                    field.as_str(),
                    format!("libseccomp refuses the rule for {name}: {e}"),
                )
            })?;
        }
    }

    if !matches!(default, ScmpAction::Allow | ScmpAction::Log) {
        add_enosys_rules(&mut ctx, syscalls.iter().flat_map(|c| c.names()), default)
            .map_err(|e| BuildError::invalid(format!("{F}.syscalls"), e))?;
    }

    Ok((ctx, notify))
}

/// Adds the ENOSYS rules described at [`NEWER_SYSCALLS`].
fn add_enosys_rules<'a>(
    ctx: &mut ScmpFilterContext,
    named: impl Iterator<Item = &'a String>,
    default: ScmpAction,
) -> Result<(), String> {
    let enosys = ScmpAction::Errno(libc::ENOSYS);
    if default == enosys {
        return Ok(());
    }
    let named: HashSet<&str> = named.map(String::as_str).collect();
    let newest = NEWER_SYSCALLS
        .iter()
        .filter(|(name, _)| named.contains(name))
        .map(|&(_, version)| version)
        .max()
        .unwrap_or((0, 0));
    for &(name, version) in NEWER_SYSCALLS {
        if named.contains(name) || (version <= newest && name != "clone3") {
            continue;
        }
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            continue;
        };
        ctx.add_rule(enosys, nr)
            .map_err(|e| format!("libseccomp refuses the ENOSYS rule for {name}: {e}"))?;
    }
    Ok(())
}

/// moby's syscalls allowed in every container (its first entry, plus the
/// `minKernel` 4.8 one: every kernel runtime-core runs on is newer).
const MOBY_ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "add_key",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "keyctl",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "request_key",
    "restart_syscall",
    "riscv_hwprobe",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // moby's `"minKernel": "4.8"` entry.
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// `personality(2)` values moby allows: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query).
const MOBY_PERSONALITIES: &[u64] = &[0, 8, 0x20000, 0x20008, 0xffff_ffff];

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
/// CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`: without CAP_SYS_ADMIN,
/// `clone` is allowed only with none of these set.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// The architectures moby's `archMap` gives the architecture runtime-core is
/// built for; an empty list means the native one only.
fn default_architectures() -> &'static [&'static str] {
    if cfg!(target_arch = "x86_64") {
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        &[]
    }
}

/// The moby/Docker default seccomp profile (allow-list, default action errno
/// EPERM) for a container with the Docker default 14 capabilities (CHOWN,
/// DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP,
/// SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE), as the
/// `linux.seccomp` object of a config.json.
///
/// It holds moby's unconditional entries, the entries for those
/// capabilities (`chroot`) and for the amd64/x86/x32 and arm64/arm
/// architectures (names another architecture lacks are skipped when the
/// filter is built). `clone` is allowed only without namespace flags
/// (`arg0 & 0x7E020000 == 0`) and `clone3`, whose flags seccomp cannot see,
/// fails with ENOSYS so that libc falls back to `clone`. `architectures` is
/// what moby's `archMap` gives the architecture this crate is built for:
/// x86_64, x86 and x32 on x86_64; aarch64 and arm on aarch64; otherwise
/// none, which means the native architecture only.
///
/// Source: moby's `profiles/seccomp/default.json` (moby/profiles).
pub fn default_profile() -> Value {
    let mut syscalls = vec![
        json!({ "names": MOBY_ALLOWED, "action": "SCMP_ACT_ALLOW" }),
        // AF_VSOCK (40) sockets are not namespaced.
        json!({
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{ "index": 0, "value": 40, "op": "SCMP_CMP_NE" }],
        }),
    ];
    syscalls.extend(MOBY_PERSONALITIES.iter().map(|&p| {
        json!({
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{ "index": 0, "value": p, "op": "SCMP_CMP_EQ" }],
        })
    }));
    syscalls.extend([
        // moby: arches arm, arm64.
        json!({
            "names": [
                "arm_fadvise64_64",
                "arm_sync_file_range",
                "sync_file_range2",
                "breakpoint",
                "cacheflush",
                "set_tls",
            ],
            "action": "SCMP_ACT_ALLOW",
        }),
        // moby: arches amd64, x32.
        json!({ "names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW" }),
        // moby: arches amd64, x32, x86.
        json!({ "names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW" }),
        // moby: caps CAP_SYS_CHROOT.
        json!({ "names": ["chroot"], "action": "SCMP_ACT_ALLOW" }),
        // moby: excludes caps CAP_SYS_ADMIN, arches s390 and s390x (where
        // the flags are the second argument).
        json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{
                "index": 0,
                "value": CLONE_NAMESPACE_FLAGS,
                "op": "SCMP_CMP_MASKED_EQ",
            }],
        }),
        // moby: excludes caps CAP_SYS_ADMIN.
        json!({
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::ENOSYS,
        }),
    ]);
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": default_architectures(),
        "syscalls": syscalls,
    })
}

#[cfg(test)]
mod tests {
    //! Filters are loaded in a fresh copy of the test binary (the ignored
    //! [`child_entry`] test, selected by environment variables), never in
    //! the test process itself nor in a fork of it: the harness is
    //! multi-threaded, and building a filter allocates.

    use std::io;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Output};

    use super::*;

    const CASE_ENV: &str = "CONTD_SECCOMP_TEST_CASE";
    const ARG_ENV: &str = "CONTD_SECCOMP_TEST_ARG";
    /// Exit codes of the child; libtest itself exits 0 or 101.
    const PASS: i32 = 42;
    const FAIL: i32 = 43;
    const SETUP_FAILED: i32 = 44;

    /// Syscalls the child needs after loading an allow-list: returning from
    /// `apply` (free may trim the heap), printing, exiting.
    const CHILD_BASICS: &[&str] = &[
        "brk",
        "mmap",
        "munmap",
        "mremap",
        "madvise",
        "mprotect",
        "futex",
        "write",
        "writev",
        "close",
        "exit",
        "exit_group",
        "rt_sigreturn",
        "rt_sigprocmask",
        "sigaltstack",
        "sched_yield",
        "getpid",
        "gettid",
        "tgkill",
    ];

    fn profile(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("test profile parses")
    }

    fn errno<T>(r: io::Result<T>) -> i32 {
        match r {
            Ok(_) => 0,
            Err(e) => e.raw_os_error().unwrap_or(-1),
        }
    }

    /// Makes a syscall, given the notify fd if any; returns its errno.
    type ProbeFn = Box<dyn Fn(Option<&OwnedFd>) -> i32>;

    /// A syscall made after the filter is loaded, and the errno it must
    /// give (0: success).
    struct Probe {
        name: &'static str,
        want: i32,
        run: ProbeFn,
    }

    fn probe(
        name: &'static str,
        want: i32,
        run: impl Fn(Option<&OwnedFd>) -> i32 + 'static,
    ) -> Probe {
        Probe {
            name,
            want,
            run: Box::new(run),
        }
    }

    fn prctl_probe(name: &'static str, option: i32, arg: u64, want: i32) -> Probe {
        probe(name, want, move |_| errno(sys::prctl(option, arg)))
    }

    fn getcwd_probe(want: i32) -> Probe {
        probe("getcwd", want, |_| errno(std::env::current_dir()))
    }

    fn clone3_probe(want: i32) -> Probe {
        probe("clone3", want, |_| {
            sys::clone3_probe().raw_os_error().unwrap_or(-1)
        })
    }

    /// The profile (None: load nothing) and probes of a child case.
    fn case(name: &str, arg: &str) -> Option<(Option<Value>, Vec<Probe>)> {
        let prctl_rule = |args: Value| {
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{
                    "names": ["prctl"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 77,
                    "args": args,
                }],
            })
        };
        let eq =
            |index: u64, value: u64| json!({ "index": index, "value": value, "op": "SCMP_CMP_EQ" });
        const DUMPABLE: i32 = libc::PR_GET_DUMPABLE; // 3
        const KEEPCAPS: i32 = libc::PR_GET_KEEPCAPS; // 7
        const SLACK: i32 = libc::PR_GET_TIMERSLACK; // 30
        Some(match name {
            "errno_ret" => {
                let path = arg.to_string();
                (
                    Some(json!({
                        "defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{
                            "names": ["mkdir", "mkdirat"],
                            "action": "SCMP_ACT_ERRNO",
                            "errnoRet": 99,
                        }],
                    })),
                    vec![
                        probe("mkdir", 99, move |_| errno(std::fs::create_dir(&path))),
                        getcwd_probe(0),
                        // libseccomp must not have set no_new_privs.
                        probe("no_new_privs off", 0, |_| {
                            match std::fs::read_to_string("/proc/thread-self/status") {
                                Ok(s) if s.contains("\nNoNewPrivs:\t0\n") => 0,
                                _ => 1,
                            }
                        }),
                    ],
                )
            }
            "flags" => (
                Some(json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "flags": [
                        "SECCOMP_FILTER_FLAG_TSYNC",
                        "SECCOMP_FILTER_FLAG_LOG",
                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    ],
                    "syscalls": [{ "names": ["getcwd"], "action": "SCMP_ACT_ERRNO" }],
                })),
                vec![getcwd_probe(libc::EPERM)],
            ),
            "actions" => (
                Some(json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [
                        { "names": ["getcwd"], "action": "SCMP_ACT_LOG" },
                        { "names": ["prctl"], "action": "SCMP_ACT_TRACE" },
                        // Same as the default action: skipped.
                        { "names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ALLOW" },
                    ],
                })),
                vec![
                    getcwd_probe(0),
                    // Without a tracer, SECCOMP_RET_TRACE fails with ENOSYS.
                    prctl_probe("prctl traced", DUMPABLE, 0, libc::ENOSYS),
                ],
            ),
            "kill" => (
                Some(json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{ "names": ["getcwd"], "action": arg }],
                })),
                vec![getcwd_probe(0)],
            ),
            "allow_list" => {
                let mut names: Vec<&str> = CHILD_BASICS.to_vec();
                names.extend(arg.split(',').filter(|s| !s.is_empty()));
                // Naming a syscall of 6.10 dates the profile: pidfd_open
                // (5.3) is then denied like any other, not ENOSYS.
                let pidfd_want = if names.contains(&"mseal") {
                    libc::EPERM
                } else {
                    libc::ENOSYS
                };
                (
                    Some(json!({
                        "defaultAction": "SCMP_ACT_ERRNO",
                        "defaultErrnoRet": libc::EPERM,
                        "syscalls": [{ "names": names, "action": "SCMP_ACT_ALLOW" }],
                    })),
                    vec![
                        getcwd_probe(libc::EPERM),
                        clone3_probe(libc::ENOSYS),
                        probe("pidfd_open", pidfd_want, |_| {
                            errno(sys::pidfd_open(std::process::id() as i32))
                        }),
                    ],
                )
            }
            "args" => {
                let (args, probes) = match arg {
                    "eq" => (
                        json!([eq(0, DUMPABLE as u64)]),
                        vec![
                            prctl_probe("prctl(DUMPABLE)", DUMPABLE, 0, 77),
                            prctl_probe("prctl(KEEPCAPS)", KEEPCAPS, 0, 0),
                        ],
                    ),
                    "and" => (
                        json!([eq(0, DUMPABLE as u64), eq(1, 0)]),
                        vec![
                            prctl_probe("prctl(DUMPABLE, 0)", DUMPABLE, 0, 77),
                            prctl_probe("prctl(DUMPABLE, 1)", DUMPABLE, 1, 0),
                            prctl_probe("prctl(KEEPCAPS, 0)", KEEPCAPS, 0, 0),
                        ],
                    ),
                    "or" => (
                        json!([eq(0, DUMPABLE as u64), eq(0, KEEPCAPS as u64)]),
                        vec![
                            prctl_probe("prctl(DUMPABLE)", DUMPABLE, 0, 77),
                            prctl_probe("prctl(KEEPCAPS)", KEEPCAPS, 0, 77),
                            prctl_probe("prctl(TIMERSLACK)", SLACK, 0, 0),
                        ],
                    ),
                    "masked" => (
                        // (arg0 & 3) == 3: true for 3 and 7, not for 30.
                        json!([{ "index": 0, "value": 3, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ" }]),
                        vec![
                            prctl_probe("prctl(DUMPABLE)", DUMPABLE, 0, 77),
                            prctl_probe("prctl(KEEPCAPS)", KEEPCAPS, 0, 77),
                            prctl_probe("prctl(TIMERSLACK)", SLACK, 0, 0),
                        ],
                    ),
                    "gt" => (
                        json!([{ "index": 0, "value": KEEPCAPS, "op": "SCMP_CMP_GT" }]),
                        vec![
                            prctl_probe("prctl(TIMERSLACK)", SLACK, 0, 77),
                            prctl_probe("prctl(KEEPCAPS)", KEEPCAPS, 0, 0),
                        ],
                    ),
                    _ => return None,
                };
                (Some(prctl_rule(args)), probes)
            }
            "notify" => (
                Some(json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "listenerPath": "/run/agent.sock",
                    "syscalls": [{ "names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY" }],
                })),
                vec![
                    probe("notify fd returned and open", 0, |fd| match fd {
                        Some(fd) => errno(
                            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)
                                .map_err(io::Error::from),
                        ),
                        None => -1,
                    }),
                    getcwd_probe(0),
                ],
            ),
            "default" | "control" => {
                let pid = std::process::id();
                let loaded = name == "default";
                let mut probes = vec![
                    probe("getpid", 0, move |_| {
                        i32::from(nix::unistd::getpid().as_raw() != pid as i32)
                    }),
                    probe("pipe write/read", 0, |_| {
                        let run = || -> nix::Result<bool> {
                            let (r, w) = nix::unistd::pipe()?;
                            nix::unistd::write(&w, b"x")?;
                            let mut buf = [0u8; 1];
                            Ok(nix::unistd::read(&r, &mut buf)? == 1 && buf == *b"x")
                        };
                        match run() {
                            Ok(true) => 0,
                            Ok(false) => -1,
                            Err(e) => e as i32,
                        }
                    }),
                    probe("spawn /bin/true", 0, |_| {
                        match Command::new("/bin/true").status() {
                            Ok(s) if s.success() => 0,
                            Ok(_) => -1,
                            Err(e) => e.raw_os_error().unwrap_or(-2),
                        }
                    }),
                    probe("pidfd_open", 0, |_| {
                        errno(sys::pidfd_open(std::process::id() as i32))
                    }),
                    getcwd_probe(0),
                    probe(
                        "unshare(CLONE_NEWUTS)",
                        if loaded { libc::EPERM } else { 0 },
                        |_| errno(sys::unshare(libc::CLONE_NEWUTS)),
                    ),
                    // Allowed, clone3(NULL, 0) fails with EINVAL.
                    clone3_probe(if loaded { libc::ENOSYS } else { libc::EINVAL }),
                ];
                if loaded {
                    probes.push(prctl_probe("prctl", KEEPCAPS, 0, 0));
                }
                (loaded.then(default_profile), probes)
            }
            _ => return None,
        })
    }

    /// The body of a child: loads the case's profile, runs its probes.
    fn run_child(name: &str, arg: &str) -> i32 {
        let Some((value, probes)) = case(name, arg) else {
            eprintln!("unknown case {name} {arg}");
            return SETUP_FAILED;
        };
        // SIGSYS from KILL_PROCESS/TRAP must not leave a core file behind.
        if let Err(e) = sys::setrlimit(libc::RLIMIT_CORE as libc::c_int, 0, 0) {
            eprintln!("setrlimit: {e}");
            return SETUP_FAILED;
        }
        let fd = match value {
            None => None,
            Some(v) => match serde_json::from_value::<LinuxSeccomp>(v) {
                Err(e) => {
                    eprintln!("profile: {e}");
                    return SETUP_FAILED;
                }
                Ok(p) => match apply(&p) {
                    Ok(fd) => fd,
                    Err(e) => {
                        eprintln!("apply: {e}");
                        return SETUP_FAILED;
                    }
                },
            },
        };
        let mut code = PASS;
        for p in &probes {
            let got = (p.run)(fd.as_ref());
            if got != p.want {
                eprintln!("probe {}: got {got}, want {}", p.name, p.want);
                code = FAIL;
            }
        }
        code
    }

    /// Entry point of the children; does nothing in a normal test run.
    #[test]
    #[ignore = "run by the other seccomp tests in a child process"]
    fn child_entry() {
        let Ok(name) = std::env::var(CASE_ENV) else {
            return;
        };
        let arg = std::env::var(ARG_ENV).unwrap_or_default();
        // Leave at once: the filter is on this thread, the harness is not.
        sys::exit_now(run_child(&name, &arg));
    }

    /// Runs a case in a new process of this test binary.
    fn run_case(name: &str, arg: &str) -> Output {
        let exe = std::env::current_exe().expect("test binary path");
        Command::new(exe)
            .args([
                "--exact",
                "seccomp::tests::child_entry",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CASE_ENV, name)
            .env(ARG_ENV, arg)
            .output()
            .expect("spawn the test binary")
    }

    fn assert_pass(name: &str, arg: &str) {
        let out = run_case(name, arg);
        assert_eq!(
            out.status.code(),
            Some(PASS),
            "case {name} {arg}: {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn errno_rule_returns_its_errno() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("denied");
        assert_pass("errno_ret", &path.to_string_lossy());
        assert!(!path.exists(), "mkdir was not filtered");
    }

    #[test]
    fn flags_are_accepted_and_applied() {
        assert_pass("flags", "");
    }

    #[test]
    fn log_trace_and_redundant_rules() {
        assert_pass("actions", "");
    }

    #[test]
    fn kill_process_and_trap_end_with_sigsys() {
        for act in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
            let out = run_case("kill", act);
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGSYS),
                "{act}: {:?}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn allow_list_denies_with_eperm_and_new_syscalls_with_enosys() {
        assert_pass("allow_list", "");
        assert_pass("allow_list", "mseal");
    }

    #[test]
    fn argument_conditions() {
        for arg in ["eq", "and", "or", "masked", "gt"] {
            assert_pass("args", arg);
        }
    }

    #[test]
    fn notify_returns_the_listener_fd() {
        assert_pass("notify", "");
    }

    #[test]
    fn default_profile_round_trips_and_validates() {
        let v = default_profile();
        let p = profile(v.clone());
        assert_eq!(serde_json::to_value(&p).expect("serialize"), v);
        validate(&p, None).expect("default profile is valid");
        let names: Vec<&str> = p
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|c| c.names())
            .map(String::as_str)
            .collect();
        for denied in ["unshare", "mount", "setns", "bpf", "reboot", "kcmp"] {
            assert!(!names.contains(&denied), "{denied} is allowed");
        }
        for allowed in ["chroot", "ptrace", "clone", "clone3"] {
            assert!(names.contains(&allowed), "{allowed} is not named");
        }
    }

    #[test]
    fn default_profile_applied() {
        if is_root() {
            // Without a filter, root can unshare and clone3 exists.
            assert_pass("control", "");
        }
        assert_pass("default", "");
    }

    fn validate_err(v: Value) -> String {
        match validate(&profile(v), None) {
            Ok(_) => panic!("profile accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn validate_names_the_field() {
        let cases = [
            (
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{ "names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY" }],
                }),
                "linux.seccomp.listenerPath",
            ),
            (
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [
                        { "names": ["getcwd"], "action": "SCMP_ACT_ERRNO" },
                        {
                            "names": ["prctl"],
                            "action": "SCMP_ACT_ERRNO",
                            "args": [{ "index": 6, "value": 1, "op": "SCMP_CMP_EQ" }],
                        },
                    ],
                }),
                "linux.seccomp.syscalls[1].args[0].index",
            ),
            (
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{ "names": [], "action": "SCMP_ACT_ERRNO" }],
                }),
                "linux.seccomp.syscalls[0].names",
            ),
            (
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{ "names": ["getcwd", ""], "action": "SCMP_ACT_ERRNO" }],
                }),
                "linux.seccomp.syscalls[0].names[1]",
            ),
            (
                json!({
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{ "names": ["getcwd"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1 }],
                }),
                "linux.seccomp.syscalls[0].errnoRet",
            ),
            (
                json!({ "defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1 }),
                "linux.seccomp.defaultErrnoRet",
            ),
            (
                json!({ "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000 }),
                "linux.seccomp.defaultErrnoRet",
            ),
            (
                json!({ "defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/a.sock" }),
                "linux.seccomp.defaultAction",
            ),
            (
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "listenerPath": "/run/a.sock",
                    "syscalls": [{ "names": ["read", "sendmsg"], "action": "SCMP_ACT_NOTIFY" }],
                }),
                "linux.seccomp.syscalls[0].names[1]",
            ),
        ];
        for (v, field) in cases {
            let msg = validate_err(v.clone());
            assert!(msg.contains(field), "{v}: {msg:?} does not name {field}");
        }
    }

    #[test]
    fn validate_accepts() {
        for v in [
            // Names unknown to libseccomp, or to this architecture, are
            // skipped; listenerPath without notify is ignored (the spec).
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_NATIVE"],
                "listenerPath": "/run/a.sock",
                "syscalls": [{
                    "names": ["no_such_syscall", "_llseek", "socketcall", "arm_fadvise64_64", "read"],
                    "action": "SCMP_ACT_ALLOW",
                }],
            }),
            // Every operator; the same index twice.
            json!({
                "defaultAction": "SCMP_ACT_KILL_PROCESS",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                "syscalls": [{
                    "names": ["prctl"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [
                        { "index": 0, "value": 1, "op": "SCMP_CMP_NE" },
                        { "index": 1, "value": 1, "op": "SCMP_CMP_LT" },
                        { "index": 2, "value": 1, "op": "SCMP_CMP_LE" },
                        { "index": 3, "value": 1, "op": "SCMP_CMP_EQ" },
                        { "index": 4, "value": 1, "op": "SCMP_CMP_GE" },
                        { "index": 5, "value": 1, "op": "SCMP_CMP_GT" },
                    ],
                }, {
                    "names": ["personality"],
                    "action": "SCMP_ACT_TRACE",
                    "errnoRet": 5,
                    "args": [
                        { "index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ" },
                        { "index": 0, "value": 0, "op": "SCMP_CMP_EQ" },
                    ],
                }],
            }),
        ] {
            if let Err(e) = validate(&profile(v.clone()), None) {
                panic!("{v}: {e}");
            }
        }
    }

    #[test]
    fn unknown_values_do_not_parse() {
        for v in [
            json!({ "defaultAction": "SCMP_ACT_BOGUS" }),
            json!({ "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"] }),
            json!({ "defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"] }),
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{
                    "names": ["read"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{ "index": 0, "value": 0, "op": "SCMP_CMP_BOGUS" }],
                }],
            }),
        ] {
            assert!(
                serde_json::from_value::<LinuxSeccomp>(v.clone()).is_err(),
                "{v}"
            );
        }
    }

    #[test]
    fn what_libseccomp_lacks_is_unsupported() {
        let old = !libseccomp::check_api(7, ScmpVersion::from((2, 6, 0))).unwrap_or(false);
        if !old {
            return;
        }
        let msg = validate_err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        }));
        assert!(
            msg.starts_with("unsupported linux.seccomp.flags[0]") && msg.contains("2.6.0"),
            "{msg}"
        );
        // LoongArch came with libseccomp 2.6.
        let msg = validate_err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_LOONGARCH64"],
        }));
        assert!(
            msg.starts_with("unsupported linux.seccomp.architectures[0]"),
            "{msg}"
        );
    }
}

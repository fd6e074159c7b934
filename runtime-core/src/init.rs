//! The child side of `create`: runs in the freshly cloned init, in its new
//! namespaces, and never returns. Order, as DESIGN.md fixes it: namespaces
//! (a time namespace's offsets written before the switch to the user
//! namespace's root) → mounts → (createRuntime hooks in the parent,
//! createContainer hooks here) → `pivot_root`, or a `chroot` for a container
//! without a mount namespace of its own → sysctl, console, read-only and
//! masked paths → hostname → rlimits, scheduler, memory policy →
//! user/groups → capabilities → `no_new_privs` → wait for start →
//! startContainer hooks → seccomp → `execve`.
//!
//! Seccomp is loaded last, so nothing a filter could block runs between it
//! and `execve`; without `no_new_privs` init keeps CAP_SYS_ADMIN for it until
//! `execve` drops it. A filter with a listener is the exception: the
//! listener must have its fd when create returns, so it is loaded before
//! the ready report and the fd goes to the parent (see
//! [`Prepared::load_seccomp_now`]).
//!
//! Any failure before the ready report goes back to the parent as text over
//! the sync socket; init then exits with status 1.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{PosixRlimitType, Process};

use crate::container::tag;
use crate::spec::Checked;
use crate::{console, rootfs, sys};

/// What the child needs from the parent, all prepared before the clone.
pub(crate) struct InitArgs<'a> {
    pub checked: &'a Checked,
    pub bundle: &'a Path,
    /// Child end of the sync socket.
    pub sync: RawFd,
    /// Parent end of the sync socket, closed first thing.
    pub close: RawFd,
    /// `O_PATH` fd of the exec fifo.
    pub fifo: RawFd,
    /// Fds to become 0, 1, 2 (`None` keeps the inherited one).
    pub stdio: [Option<RawFd>; 3],
    /// Connected console socket, for `process.terminal`.
    pub console: Option<RawFd>,
    /// chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Fds 3.. 3+n survive execve.
    pub preserve_fds: u32,
    /// Extra environment entries.
    pub extra_env: &'a [String],
    /// oom_score_adj when the spec sets none (instead of the caller's).
    pub default_oom_score_adj: Option<i32>,
    /// v1 `tasks` files init writes `0` to, to join its cgroup itself.
    pub cgroup_tasks: &'a [std::ffi::CString],
}

fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY-free wrapper: the fds named in InitArgs stay open for the whole
    // life of init (it never returns), so a 'static borrow cannot dangle.
    sys::borrow_raw(fd)
}

/// Set once init reported ready (create returned to its caller).
static READY_SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs init; never returns.
pub(crate) fn run(args: InitArgs<'_>) -> ! {
    // Nothing in the container may reach into init through /proc until it
    // execs (which makes the process dumpable again): the fds it holds lead
    // to the host (CVE-2019-5736, CVE-2024-21626).
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    sys::close(args.close);
    let sync = args.sync;
    let code = match setup(args) {
        Ok(never) => match never {},
        Err(msg) => {
            let _ = sys::send(borrow(sync), &failure_packet(&msg));
            if READY_SENT.load(std::sync::atomic::Ordering::Relaxed) {
                // create has returned: nobody reads the sync socket any
                // more, so say it where the user looks.
                let shown = msg.strip_prefix('\0').map_or(&*msg, |m| &m[1..]);
                eprintln!("contd: container init: {shown}");
            }
            1
        }
    };
    sys::exit_now(code)
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// A message for a program that cannot be run, with the shell's code for
/// why (126: not executable, 127: not found) in front, which
/// [`failure_packet`] moves into the packet. (No other message holds a NUL.)
fn unrunnable(code: u8, msg: String) -> String {
    format!("\0{}{msg}", char::from(code))
}

/// The packet a child sends when its setup failed with `msg`.
pub(crate) fn failure_packet(msg: &str) -> Vec<u8> {
    match msg.as_bytes() {
        [0, code, rest @ ..] => [&[tag::UNRUNNABLE, *code][..], rest].concat(),
        bytes => [&[tag::ERROR][..], bytes].concat(),
    }
}

/// Finds the program to exec the way execvp would, but inside the container
/// and with the container's PATH.
fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf, String> {
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
            .unwrap_or(false)
    };
    if arg0.contains('/') {
        let p = Path::new(arg0);
        return if is_exec(p) {
            Ok(PathBuf::from(arg0))
        } else if p.exists() {
            Err(unrunnable(
                126,
                format!("exec {arg0:?}: permission denied (not an executable file)"),
            ))
        } else {
            Err(unrunnable(
                127,
                format!("exec {arg0:?}: no such file or directory"),
            ))
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(arg0))
        .find(|p| is_exec(p))
        .ok_or_else(|| {
            unrunnable(
                127,
                format!("exec {arg0:?}: executable file not found in $PATH"),
            )
        })
}

/// Drops what the bounding set must not hold. Done while init still has
/// CAP_SETPCAP effective, i.e. before it switches to the process's user.
fn drop_bounding(process: &Process) -> Result<(), String> {
    use caps::{CapSet, Capability, CapsHashSet};
    let bounding: CapsHashSet = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone())
        .iter()
        .flatten()
        .filter_map(|c| Capability::from_str(&format!("CAP_{c}")).ok())
        .collect();
    for cap in caps::runtime::thread_all_supported().difference(&bounding) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| format!("drop {cap}: {e}"))?;
    }
    Ok(())
}

/// Sets the process's capability sets. `keep_sys_admin` keeps
/// CAP_SYS_ADMIN in the effective and permitted sets (never the
/// inheritable, ambient or bounding ones) for a seccomp load without
/// `no_new_privs` right before execve, which drops it again.
fn capabilities(process: &Process, keep_sys_admin: bool) -> Result<(), String> {
    use caps::{CapSet, Capability, CapsHashSet};
    let Some(spec_caps) = process.capabilities() else {
        // No capabilities object: the process gets none (runc, youki #3554);
        // the bounding set is already empty.
        let kept: CapsHashSet = if keep_sys_admin {
            [Capability::CAP_SYS_ADMIN].into_iter().collect()
        } else {
            CapsHashSet::new()
        };
        caps::set(None, CapSet::Effective, &kept).map_err(|e| format!("set effective: {e}"))?;
        caps::set(None, CapSet::Permitted, &kept).map_err(|e| format!("set permitted: {e}"))?;
        caps::clear(None, CapSet::Inheritable).map_err(|e| format!("clear inheritable: {e}"))?;
        return Ok(());
    };
    let conv = |set: &Option<oci_spec::runtime::Capabilities>| -> CapsHashSet {
        set.iter()
            .flatten()
            // oci-spec displays `Chown` as "CHOWN"; caps parses "CAP_CHOWN".
            .filter_map(|c| Capability::from_str(&format!("CAP_{c}")).ok())
            .collect()
    };
    let mut effective = conv(spec_caps.effective());
    let mut permitted = conv(spec_caps.permitted());
    let inheritable = conv(spec_caps.inheritable());
    let ambient = conv(spec_caps.ambient());
    // Ambient capabilities must be permitted by the spec itself.
    let spec_permitted = permitted.clone();
    if keep_sys_admin {
        effective.insert(Capability::CAP_SYS_ADMIN);
        permitted.insert(Capability::CAP_SYS_ADMIN);
    }
    caps::set(None, CapSet::Effective, &effective).map_err(|e| format!("set effective: {e}"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| format!("set permitted: {e}"))?;
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| format!("set inheritable: {e}"))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clear ambient: {e}"))?;
    // The kernel refuses an ambient capability missing from the permitted
    // or inheritable set; like runc, such a request leaves it out (fewer
    // privileges, never more) instead of failing the container.
    for cap in ambient {
        if spec_permitted.contains(&cap) && inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(|e| format!("raise ambient {cap}: {e}"))?;
        }
    }
    Ok(())
}

/// Waits for one packet from the parent that starts with `want`; returns
/// the rest.
fn wait_for(sync: RawFd, want: u8) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 65536];
    match sys::recv(borrow(sync), &mut buf) {
        Ok(n) if n >= 1 && buf[0] == want => {
            buf.truncate(n);
            buf.remove(0);
            Ok(buf)
        }
        Ok(_) => Err("parent went away during setup".into()),
        Err(e) => Err(format!("wait for parent: {e}")),
    }
}

pub(crate) fn persona(p: &oci_spec::runtime::LinuxPersonality) -> Result<libc::c_ulong, String> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    match p.domain() {
        D::PerLinux => Ok(0x0000),
        D::PerLinux32 => Ok(0x0008),
    }
}

/// Writes the sysctls through the container's own `/proc/sys`.
fn sysctls(map: &std::collections::HashMap<String, String>) -> Result<(), String> {
    for (k, v) in map {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        sys::write_once(&path, v.as_bytes()).map_err(|e| format!("sysctl {k}={v}: {e}"))?;
    }
    Ok(())
}

fn time_offsets(
    offsets: &std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>,
) -> Result<(), String> {
    for (clock, o) in offsets {
        let line = format!(
            "{clock} {} {}\n",
            o.secs().unwrap_or(0),
            o.nanosecs().unwrap_or(0)
        );
        sys::write_once(Path::new("/proc/self/timens_offsets"), line.as_bytes())
            .map_err(|e| format!("time offset {clock}: {e}"))?;
    }
    Ok(())
}

fn setup(args: InitArgs<'_>) -> Result<std::convert::Infallible, String> {
    // First of all, while still in the host's cgroupfs view.
    crate::cgroup::join_self(args.cgroup_tasks)?;
    sys::reset_signals().map_err(|e| format!("reset signals: {e}"))?;
    let checked = args.checked;
    let spec = &checked.spec;
    let ns = &checked.namespaces;
    // Validated by spec::check: both exist.
    let process = spec.process().as_ref().ok_or("no process")?;
    let linux = spec.linux().as_ref().ok_or("no linux")?;

    // Nothing of the host may reach the container: every fd from 3 on
    // (but the preserved ones) closes at exec (CVE-2024-21626).
    sys::cloexec_from(3 + args.preserve_fds).map_err(|e| format!("close_range: {e}"))?;
    for (target, fd) in args.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            sys::dup2(*fd, target as RawFd).map_err(|e| format!("dup2 stdio {target}: {e}"))?;
        }
    }
    // Our fds as the host's /proc shows them, to reopen the exec fifo by:
    // the rootfs may have no /proc (a chroot without a mount namespace, a
    // spec without a /proc mount). Init is not dumpable, so nothing in the
    // container can follow it; closed once the fifo is open, before exec.
    let own_fds = sys::open(Path::new("/proc/self/fd"), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| format!("open /proc/self/fd: {e}"))?;
    // While init is still the host's root, the owner of its /proc files
    // (it is not dumpable): through the host's /proc, the rootfs may have
    // none.
    oom_score_adj(process, args.default_oom_score_adj)?;

    // In a new user namespace, wait until the parent has written our id
    // mappings. The cgroup move (slow on v1: the kernel waits for an RCU
    // grace period) runs in the parent while we mount; we wait for it only
    // where it matters: before the cgroup namespace, hooks and pivot.
    if ns.clone_flags & libc::CLONE_NEWUSER != 0 && ns.join_user.is_none() {
        wait_for(args.sync, tag::MAPPED)?;
    }
    let mut go = Go {
        sync: args.sync,
        new_cgroup: ns.new_cgroup,
        state: None,
    };

    if let Some(path) = &ns.join_user {
        let fd =
            sys::open(path, libc::O_RDONLY).map_err(|e| format!("open {}: {e}", path.display()))?;
        sys::setns(fd.as_fd(), libc::CLONE_NEWUSER)
            .map_err(|e| format!("join {}: {e}", path.display()))?;
        sys::unshare(ns.clone_flags).map_err(|e| format!("unshare namespaces: {e}"))?;
    }
    if ns.new_time {
        // Before the switch to the user namespace's root: init's /proc
        // files belong to the host's root (init is not dumpable), which
        // init is until then.
        sys::unshare(crate::spec::CLONE_NEWTIME).map_err(|e| format!("new time namespace: {e}"))?;
        if let Some(o) = linux.time_offsets() {
            time_offsets(o)?;
        }
    }
    if ns.user() {
        // Become root of the user namespace before anything privileged.
        sys::set_ids(0, 0, &[]).map_err(|e| format!("become root in the user namespace: {e}"))?;
    }
    sys::setsid().map_err(|e| format!("setsid: {e}"))?;
    for (path, flag) in &ns.join {
        let fd =
            sys::open(path, libc::O_RDONLY).map_err(|e| format!("open {}: {e}", path.display()))?;
        sys::setns(fd.as_fd(), *flag).map_err(|e| format!("join {}: {e}", path.display()))?;
    }
    if ns.clone_flags & libc::CLONE_NEWNET != 0 {
        sys::loopback_up().map_err(|e| format!("bring lo up: {e}"))?;
    }
    if let Some(p) = linux.personality() {
        sys::personality(persona(p)?).map_err(|e| format!("personality: {e}"))?;
    }

    // Mounts happen with umask 0 so device nodes get exactly their mode.
    sys::umask(0);
    if ns.has(libc::CLONE_NEWNS) {
        rootfs_in_own_mount_ns(&args, &mut go)?;
    } else {
        // The host's mount table is the container's: mount nothing (spec
        // check warned about what is left out), chroot into the rootfs.
        container_hooks(&args, go.wait()?)?;
        // Through the host's /proc and /dev: the rootfs may have neither.
        if let Some(map) = linux.sysctl() {
            sysctls(map)?;
        }
        terminal(&args, process, false)?;
        rootfs::chroot(&checked.rootfs)?;
    }

    if let Some(h) = spec.hostname() {
        sys::sethostname(h).map_err(|e| format!("sethostname {h:?}: {e}"))?;
    }
    if let Some(d) = spec.domainname() {
        sys::setdomainname(d).map_err(|e| format!("setdomainname {d:?}: {e}"))?;
    }
    let state_json = go.wait()?.to_vec();
    let mut program = prepare_process(
        process,
        args.extra_env,
        checked.seccomp.as_ref(),
        checked.scheduler.as_ref(),
        checked.memory_policy.as_ref(),
    )?;
    if checked.seccomp.as_ref().is_some_and(|f| f.notify()) {
        // The listener must have its fd when create returns: load now.
        program.load_seccomp_now(args.sync)?;
    }

    // Created: tell the parent, then block until start opens the fifo.
    sys::send(borrow(args.sync), &[tag::READY]).map_err(|e| format!("report ready: {e}"))?;
    READY_SENT.store(true, std::sync::atomic::Ordering::Relaxed);
    let fifo_name = CString::new(args.fifo.to_string()).unwrap_or_default();
    let fifo = sys::openat(own_fds.as_fd(), &fifo_name, libc::O_WRONLY)
        .map_err(|e| format!("open exec fifo: {e}"))?;
    drop(own_fds);
    let mut f = std::fs::File::from(fifo);
    use std::io::Write;
    f.write_all(b"0")
        .map_err(|e| format!("write exec fifo: {e}"))?;
    drop(f);
    sys::close(args.fifo);
    sys::close(args.sync);

    if let Some(list) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
    {
        let mut state: serde_json::Value = serde_json::from_slice(&state_json).unwrap_or_default();
        state["status"] = "created".into();
        let json = serde_json::to_vec(&state).unwrap_or_default();
        // As runc and crun: a hook without its own env gets the process's.
        let env = program.env_strings();
        if let Err(e) = crate::hooks::run("startContainer", list, &json, Some(&env)) {
            eprintln!("contd: {e}");
            sys::exit_now(1);
        }
    }
    let reaper = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(crate::reaper::INIT_ANNOTATION))
        .is_some_and(|v| v == "true");
    program.exec_under(reaper)
}

/// The rootfs in the container's own mount namespace: propagation, the
/// rootfs bind, the spec's mounts and devices, hooks, `pivot_root`, then
/// sysctls, the terminal, and read-only and masked paths.
fn rootfs_in_own_mount_ns(args: &InitArgs<'_>, go: &mut Go) -> Result<(), String> {
    let checked = args.checked;
    let spec = &checked.spec;
    let ns = &checked.namespaces;
    let linux = spec.linux().as_ref().ok_or("no linux")?;
    let process = spec.process().as_ref().ok_or("no process")?;
    let (before, after) = rootfs::root_propagation(linux.rootfs_propagation().as_deref());
    let slash = CString::new("/").unwrap_or_default();
    sys::mount(None, &slash, None, before, None)
        .map_err(|e| format!("set root propagation: {e}"))?;
    if before & libc::MS_REC == 0 {
        rootfs::make_parent_mount_private(&checked.rootfs)?;
    }
    let rootfs_c = sys::cpath(&checked.rootfs).map_err(|e| e.to_string())?;
    sys::mount(
        Some(&rootfs_c),
        &rootfs_c,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| format!("bind rootfs {}: {e}", checked.rootfs.display()))?;
    let rootfd = sys::open(&checked.rootfs, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| format!("open rootfs {}: {e}", checked.rootfs.display()))?;
    let mut dev_is_ours = false;
    for m in spec.mounts().iter().flatten() {
        if matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")) {
            go.wait()?;
            rootfs::mount_cgroup(rootfd.as_fd(), m, &checked.cgroup_path, ns.new_cgroup)?;
            continue;
        }
        rootfs::mount_one(rootfd.as_fd(), args.bundle, m)?;
        if m.destination() == Path::new("/dev") {
            dev_is_ours = m.typ().as_deref() != Some("bind")
                && !m
                    .options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind");
        }
    }
    if dev_is_ours {
        rootfs::default_devices(rootfd.as_fd(), ns.user())?;
    }
    rootfs::spec_devices(
        rootfd.as_fd(),
        linux.devices().as_deref().unwrap_or_default(),
        ns.user(),
    )?;
    drop(rootfd);

    container_hooks(args, go.wait()?)?;

    if args.no_pivot {
        rootfs::move_root(&checked.rootfs)?;
    } else {
        rootfs::pivot(&checked.rootfs)?;
    }
    if let Some(flag) = after {
        sys::mount(None, &slash, None, flag, None)
            .map_err(|e| format!("set root propagation: {e}"))?;
    }
    if let Some(map) = linux.sysctl() {
        sysctls(map)?;
    }
    terminal(args, process, true)?;
    // runc creates a missing working directory (docker users count on it),
    // here, inside the pivoted root and before it may turn read-only.
    let cwd = process.cwd();
    if cwd.is_absolute() && std::fs::symlink_metadata(cwd).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(cwd)
            .map_err(|e| format!("create the working directory {}: {e}", cwd.display()))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        rootfs::readonly_root()?;
    }
    rootfs::readonly_paths(linux.readonly_paths().as_deref().unwrap_or_default())?;
    rootfs::masked_paths(linux.masked_paths().as_deref().unwrap_or_default())
}

/// The parent's go-ahead: id mappings written, init in its cgroup; it
/// carries the state JSON hooks get. Waited for once, where it matters
/// (cgroup namespace and mounts, hooks, pivot), so that the parent's slow
/// cgroup move overlaps with init's mounts.
struct Go {
    sync: RawFd,
    /// Unshare a cgroup namespace once in the cgroup.
    new_cgroup: bool,
    state: Option<Vec<u8>>,
}

impl Go {
    fn wait(&mut self) -> Result<&[u8], String> {
        if self.state.is_none() {
            self.state = Some(wait_for(self.sync, tag::GO)?);
            if self.new_cgroup {
                sys::unshare(libc::CLONE_NEWCGROUP)
                    .map_err(|e| format!("new cgroup namespace: {e}"))?;
            }
        }
        Ok(self.state.as_deref().unwrap_or_default())
    }
}

/// prestart and createRuntime hooks (run by the parent, which init asks
/// and waits for), then createContainer hooks (run here).
fn container_hooks(args: &InitArgs<'_>, state_json: &[u8]) -> Result<(), String> {
    let hooks = args.checked.spec.hooks().as_ref();
    if hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    }) {
        sys::send(borrow(args.sync), &[tag::HOOKS]).map_err(|e| format!("ask for hooks: {e}"))?;
        wait_for(args.sync, tag::HOOKS_DONE)?;
    }
    if let Some(list) = hooks.and_then(|h| h.create_container().as_ref()) {
        crate::hooks::run("createContainer", list, state_json, None)?;
    }
    Ok(())
}

/// With `process.terminal`: a pty whose master goes to the console socket.
/// `console` binds its slave on `/dev/console` (not in the host's mount
/// namespace).
fn terminal(args: &InitArgs<'_>, process: &Process, console: bool) -> Result<(), String> {
    if process.terminal() != Some(true) {
        return Ok(());
    }
    let sock = args.console.ok_or("a terminal needs a console socket")?;
    let size = process
        .console_size()
        .as_ref()
        .map(|b| (b.height() as u16, b.width() as u16));
    console::setup(borrow(sock), size, console)
}

/// A process ready to exec: credentials set, the rest prepared.
pub(crate) struct Prepared<'a> {
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    /// The filter still to load: right before execve.
    seccomp: Option<&'a crate::seccomp::Filter>,
    /// CAP_SYS_ADMIN is held for the load only (no `no_new_privs`).
    kept_sys_admin: bool,
}

impl Prepared<'_> {
    /// The environment as `KEY=VALUE` strings.
    fn env_strings(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect()
    }

    /// Loads a filter that has a listener now, and hands its fd to the
    /// parent (which passes it on to the listener with the state), then
    /// waits until the parent did: `sendmsg` is the one call made before the
    /// listener has the fd, and profiles may not notify it.
    pub(crate) fn load_seccomp_now(&mut self, sync: RawFd) -> Result<(), String> {
        let Some(filter) = self.seccomp.take() else {
            return Ok(());
        };
        let fd = filter
            .load()?
            .ok_or("the seccomp filter gave no listener fd")?;
        sys::send_fd(borrow(sync), &[tag::SECCOMP], fd.as_fd())
            .map_err(|e| format!("hand over the seccomp fd: {e}"))?;
        drop(fd);
        wait_for(sync, tag::SECCOMP_DONE)?;
        if self.kept_sys_admin {
            // Kept for the load only; execve would drop it, this is sooner.
            // Best effort: the filter may deny capset, and then execve does.
            let _ = caps::drop(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_ADMIN,
            );
            let _ = caps::drop(
                None,
                caps::CapSet::Permitted,
                caps::Capability::CAP_SYS_ADMIN,
            );
        }
        Ok(())
    }

    /// Loads seccomp (the last thing before execve) and execs. Never
    /// returns.
    pub(crate) fn exec(self) -> ! {
        self.exec_under(false)
    }

    /// As [`exec`](Self::exec); with `reaper`, the program runs as the
    /// child of contd's init (see `reaper`), which stays under the same
    /// filter.
    pub(crate) fn exec_under(mut self, reaper: bool) -> ! {
        if let Some(filter) = self.seccomp.take() {
            if let Err(e) = filter.load() {
                eprintln!("contd: {e}");
                sys::exit_now(1);
            }
        }
        if reaper {
            crate::reaper::fork_off();
        }
        let err = sys::execve(&self.program, &self.argv, &self.env);
        // The parent no longer listens: say it where the user looks.
        eprintln!("contd: exec {}: {err}", self.program.to_string_lossy());
        sys::exit_now(127)
    }
}

/// The process's `oomScoreAdj`, or `default` (instead of the caller's),
/// written while the host's /proc is still reachable.
pub(crate) fn oom_score_adj(process: &Process, default: Option<i32>) -> Result<(), String> {
    if let Some(adj) = process.oom_score_adj().or(default) {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("oom_score_adj {adj}: {e}"))?;
    }
    Ok(())
}

/// rlimits, I/O priority, scheduler and memory policy, user and
/// groups, capabilities, `no_new_privs`, working directory, umask; finds
/// the program. Shared by init and `exec`.
///
/// The seccomp filter is left to [`Prepared::exec`], so nothing the
/// filter could block runs after it. Without `no_new_privs` loading needs
/// CAP_SYS_ADMIN: the process then keeps it in its effective and permitted
/// sets until execve, which drops it (the new permitted set is computed
/// from the inheritable, bounding and ambient sets only, none of which it
/// is added to).
pub(crate) fn prepare_process<'a>(
    process: &Process,
    extra_env: &[String],
    seccomp: Option<&'a crate::seccomp::Filter>,
    scheduler: Option<&crate::sched::SchedAttr>,
    memory_policy: Option<&crate::sched::MemPolicy>,
) -> Result<Prepared<'a>, String> {
    for r in process.rlimits().iter().flatten() {
        sys::setrlimit(rlimit_resource(r.typ()), r.soft(), r.hard())
            .map_err(|e| format!("setrlimit {:?}: {e}", r.typ()))?;
    }
    if let Some(io) = process.io_priority() {
        use oci_spec::runtime::IOPriorityClass as C;
        let class = match io.class() {
            C::IoprioClassRt => 1,
            C::IoprioClassBe => 2,
            C::IoprioClassIdle => 3,
        };
        sys::ioprio_set(class, io.priority()).map_err(|e| format!("ioprio_set: {e}"))?;
    }
    if let Some(attr) = scheduler {
        crate::sched::apply_scheduler(attr)?;
    }
    if let Some(p) = memory_policy {
        crate::sched::apply_memory_policy(p)?;
    }

    let nnp = process.no_new_privileges() == Some(true);
    let user = process.user();
    drop_bounding(process)?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).map_err(|e| format!("keepcaps: {e}"))?;
    let groups: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    sys::set_ids(user.uid(), user.gid(), &groups)
        .map_err(|e| format!("set user {}:{}: {e}", user.uid(), user.gid()))?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).map_err(|e| format!("keepcaps: {e}"))?;
    let kept_sys_admin = seccomp.is_some() && !nnp && !grants_sys_admin(process);
    capabilities(process, kept_sys_admin)?;
    if nnp {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| format!("no_new_privs: {e}"))?;
    }

    std::env::set_current_dir(process.cwd())
        .map_err(|e| format!("chdir {}: {e}", process.cwd().display()))?;
    // CVE-2024-21626: the working directory must be inside the container.
    let cwd = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?;
    if !cwd.is_absolute() || cwd.to_string_lossy().contains("(unreachable)") {
        return Err(format!(
            "working directory {} is outside the container",
            cwd.display()
        ));
    }
    sys::umask(user.umask().unwrap_or(0o022) as libc::mode_t);

    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(extra_env.iter().cloned());
    let argv: Vec<String> = process.args().clone().unwrap_or_default();
    let first = argv.first().ok_or("process.args is empty")?;
    let program = find_program(first, &env)?;
    let to_c = |v: &[String]| -> Result<Vec<CString>, String> {
        v.iter()
            .map(|s| CString::new(s.as_str()).map_err(|_| format!("{s:?} contains NUL")))
            .collect()
    };
    Ok(Prepared {
        program: sys::cpath(&program).map_err(|e| e.to_string())?,
        argv: to_c(&argv)?,
        env: to_c(&env)?,
        seccomp,
        kept_sys_admin,
    })
}

/// Whether the spec gives the process CAP_SYS_ADMIN itself.
fn grants_sys_admin(process: &Process) -> bool {
    process.capabilities().as_ref().is_some_and(|c| {
        c.effective()
            .as_ref()
            .is_some_and(|e| e.contains(&oci_spec::runtime::Capability::SysAdmin))
            && c.permitted()
                .as_ref()
                .is_some_and(|p| p.contains(&oci_spec::runtime::Capability::SysAdmin))
    })
}

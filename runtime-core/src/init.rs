//! The child side of `create`: runs in the freshly cloned init, in its new
//! namespaces, and never returns. Order, as DESIGN.md fixes it: namespaces →
//! mounts → (createRuntime hooks in the parent, createContainer hooks here)
//! → `pivot_root` → sysctl, console, read-only and masked paths → hostname →
//! rlimits → user/groups → capabilities → `no_new_privs` → wait for start →
//! startContainer hooks → seccomp → `execve`.
//!
//! Any failure before the ready report goes back to the parent as text over
//! the sync socket; init then exits with status 1.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
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
    sys::close(args.close);
    let sync = args.sync;
    let code = match setup(args) {
        Ok(never) => match never {},
        Err(msg) => {
            let mut packet = vec![tag::ERROR];
            packet.extend(msg.as_bytes());
            let _ = sys::send(borrow(sync), &packet);
            if READY_SENT.load(std::sync::atomic::Ordering::Relaxed) {
                // create has returned: nobody reads the sync socket any
                // more, so say it where the user looks.
                eprintln!("contd: container init: {msg}");
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
        return if is_exec(Path::new(arg0)) {
            Ok(PathBuf::from(arg0))
        } else {
            Err(format!("exec {arg0:?}: no such executable file"))
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
        .ok_or_else(|| format!("exec {arg0:?}: executable file not found in $PATH"))
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

fn capabilities(process: &Process) -> Result<(), String> {
    use caps::{CapSet, Capability, CapsHashSet};
    let Some(spec_caps) = process.capabilities() else {
        // No capabilities object: the process gets none (runc, youki #3554);
        // the bounding set is already empty.
        caps::clear(None, CapSet::Effective).map_err(|e| format!("clear effective: {e}"))?;
        caps::clear(None, CapSet::Permitted).map_err(|e| format!("clear permitted: {e}"))?;
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
    let effective = conv(spec_caps.effective());
    let permitted = conv(spec_caps.permitted());
    let inheritable = conv(spec_caps.inheritable());
    let ambient = conv(spec_caps.ambient());
    caps::set(None, CapSet::Effective, &effective).map_err(|e| format!("set effective: {e}"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| format!("set permitted: {e}"))?;
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| format!("set inheritable: {e}"))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clear ambient: {e}"))?;
    // The kernel refuses an ambient capability missing from the permitted
    // or inheritable set; like runc, such a request leaves it out (fewer
    // privileges, never more) instead of failing the container.
    for cap in ambient {
        if permitted.contains(&cap) && inheritable.contains(&cap) {
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

fn persona(p: &oci_spec::runtime::LinuxPersonality) -> Result<libc::c_ulong, String> {
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

    // In a new user namespace, wait until the parent has written our id
    // mappings. The cgroup move (slow on v1: the kernel waits for an RCU
    // grace period) runs in the parent while we mount; we wait for it only
    // where it matters: before the cgroup namespace, hooks and pivot.
    if ns.clone_flags & libc::CLONE_NEWUSER != 0 && ns.join_user.is_none() {
        wait_for(args.sync, tag::MAPPED)?;
    }
    let mut go: Option<Vec<u8>> = None;
    let ensure_go = |go: &mut Option<Vec<u8>>| -> Result<(), String> {
        if go.is_none() {
            *go = Some(wait_for(args.sync, tag::GO)?);
            if ns.new_cgroup {
                sys::unshare(libc::CLONE_NEWCGROUP)
                    .map_err(|e| format!("new cgroup namespace: {e}"))?;
            }
        }
        Ok(())
    };

    if let Some(path) = &ns.join_user {
        let fd =
            sys::open(path, libc::O_RDONLY).map_err(|e| format!("open {}: {e}", path.display()))?;
        sys::setns(fd.as_fd(), libc::CLONE_NEWUSER)
            .map_err(|e| format!("join {}: {e}", path.display()))?;
        sys::unshare(ns.clone_flags).map_err(|e| format!("unshare namespaces: {e}"))?;
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
    if ns.new_time {
        sys::unshare(crate::spec::CLONE_NEWTIME).map_err(|e| format!("new time namespace: {e}"))?;
        if let Some(o) = linux.time_offsets() {
            time_offsets(o)?;
        }
    }
    if ns.clone_flags & libc::CLONE_NEWNET != 0 {
        sys::loopback_up().map_err(|e| format!("bring lo up: {e}"))?;
    }
    if let Some(p) = linux.personality() {
        sys::personality(persona(p)?).map_err(|e| format!("personality: {e}"))?;
    }
    // The seccomp notify listener lives on the host: reach it before pivot.
    let listener = match linux
        .seccomp()
        .as_ref()
        .and_then(|s| s.listener_path().clone())
    {
        Some(p) => {
            Some(sys::connect_unix(&p).map_err(|e| format!("connect {}: {e}", p.display()))?)
        }
        None => None,
    };

    // Mounts happen with umask 0 so device nodes get exactly their mode.
    sys::umask(0);
    let root_prop = linux
        .rootfs_propagation()
        .as_deref()
        .and_then(rootfs::propagation_flag)
        .unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    let slash = CString::new("/").unwrap_or_default();
    sys::mount(None, &slash, None, root_prop, None)
        .map_err(|e| format!("set root propagation: {e}"))?;
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
            ensure_go(&mut go)?;
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

    ensure_go(&mut go)?;
    let state_json = go.unwrap_or_default();
    let hooks = spec.hooks().as_ref();
    if hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    }) {
        sys::send(borrow(args.sync), &[tag::HOOKS]).map_err(|e| format!("ask for hooks: {e}"))?;
        wait_for(args.sync, tag::HOOKS_DONE)?;
    }
    if let Some(list) = hooks.and_then(|h| h.create_container().as_ref()) {
        crate::hooks::run("createContainer", list, &state_json)?;
    }

    if args.no_pivot {
        rootfs::move_root(&checked.rootfs)?;
    } else {
        rootfs::pivot(&checked.rootfs)?;
    }
    if let Some(map) = linux.sysctl() {
        sysctls(map)?;
    }
    if process.terminal() == Some(true) {
        let sock = args.console.ok_or("a terminal needs a console socket")?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        console::setup(borrow(sock), size, true)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        rootfs::readonly_root()?;
    }
    rootfs::readonly_paths(linux.readonly_paths().as_deref().unwrap_or_default())?;
    rootfs::masked_paths(linux.masked_paths().as_deref().unwrap_or_default())?;

    if let Some(h) = spec.hostname() {
        sys::sethostname(h).map_err(|e| format!("sethostname {h:?}: {e}"))?;
    }
    if let Some(d) = spec.domainname() {
        sys::setdomainname(d).map_err(|e| format!("setdomainname {d:?}: {e}"))?;
    }
    let program = prepare_process(
        process,
        args.extra_env,
        linux.seccomp().as_ref().zip(checked.seccomp.as_ref()),
        listener,
        &state_json,
        args.default_oom_score_adj,
    )?;

    // Created: tell the parent, then block until start opens the fifo.
    sys::send(borrow(args.sync), &[tag::READY]).map_err(|e| format!("report ready: {e}"))?;
    READY_SENT.store(true, std::sync::atomic::Ordering::Relaxed);
    let fifo_path = PathBuf::from(format!("/proc/self/fd/{}", args.fifo));
    let fifo = sys::open(&fifo_path, libc::O_WRONLY).map_err(|e| format!("open exec fifo: {e}"))?;
    let mut f = std::fs::File::from(fifo);
    use std::io::Write;
    f.write_all(b"0")
        .map_err(|e| format!("write exec fifo: {e}"))?;
    drop(f);
    sys::close(args.fifo);
    sys::close(args.sync);

    if let Some(list) = hooks.and_then(|h| h.start_container().as_ref()) {
        let mut state: serde_json::Value = serde_json::from_slice(&state_json).unwrap_or_default();
        state["status"] = "created".into();
        let json = serde_json::to_vec(&state).unwrap_or_default();
        if let Err(e) = crate::hooks::run("startContainer", list, &json) {
            eprintln!("contd: {e}");
            sys::exit_now(1);
        }
    }
    program.exec()
}

/// A process ready to exec: credentials set, the rest prepared.
/// A profile (for its listener metadata) and its filter, built before the
/// clone.
pub(crate) type Seccomp<'a> = (
    &'a oci_spec::runtime::LinuxSeccomp,
    &'a crate::seccomp::Filter,
);

pub(crate) struct Prepared<'a> {
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    /// Seccomp still to load, right before execve.
    seccomp: Option<(Seccomp<'a>, Option<OwnedFd>, Vec<u8>)>,
}

impl Prepared<'_> {
    /// Loads seccomp (last, unless it had to come before the capabilities
    /// were dropped) and execs. Never returns.
    pub(crate) fn exec(self) -> ! {
        if let Some((s, listener, state_json)) = self.seccomp {
            if let Err(e) = load_seccomp(s, listener, &state_json) {
                eprintln!("contd: {e}");
                sys::exit_now(1);
            }
        }
        let err = sys::execve(&self.program, &self.argv, &self.env);
        // The parent no longer listens: say it where the user looks.
        eprintln!("contd: exec {}: {err}", self.program.to_string_lossy());
        sys::exit_now(127)
    }
}

fn load_seccomp(
    (s, filter): Seccomp<'_>,
    listener: Option<OwnedFd>,
    state_json: &[u8],
) -> Result<(), String> {
    let notify = filter.load()?;
    if let (Some(fd), Some(sock)) = (notify, listener) {
        let mut state: serde_json::Value = serde_json::from_slice(state_json).unwrap_or_default();
        state["status"] = "running".into();
        let msg = serde_json::json!({
            "ociVersion": crate::state::OCI_VERSION,
            "fds": ["seccompFd"],
            "pid": std::process::id(),
            "metadata": s.listener_metadata().clone().unwrap_or_default(),
            "state": state,
        });
        let data = serde_json::to_vec(&msg).unwrap_or_default();
        sys::send_fd(sock.as_fd(), &data, fd.as_fd())
            .map_err(|e| format!("send seccomp notify fd: {e}"))?;
    }
    Ok(())
}

/// rlimits, oom score, I/O priority, user and groups, capabilities,
/// `no_new_privs`, working directory, umask; finds the program. Shared by
/// init and `exec`.
pub(crate) fn prepare_process<'a>(
    process: &Process,
    extra_env: &[String],
    seccomp: Option<Seccomp<'a>>,
    listener: Option<OwnedFd>,
    state_json: &[u8],
    oom_default: Option<i32>,
) -> Result<Prepared<'a>, String> {
    for r in process.rlimits().iter().flatten() {
        sys::setrlimit(rlimit_resource(r.typ()), r.soft(), r.hard())
            .map_err(|e| format!("setrlimit {:?}: {e}", r.typ()))?;
    }
    if let Some(adj) = process.oom_score_adj().or(oom_default) {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("oom_score_adj {adj}: {e}"))?;
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

    let nnp = process.no_new_privileges() == Some(true);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
    // while init still has it (as runc); with it, load it last.
    let mut pending = None;
    if let Some(s) = seccomp {
        if nnp {
            pending = Some((s, listener, state_json.to_vec()));
        } else {
            load_seccomp(s, listener, state_json)?;
        }
    }
    let user = process.user();
    drop_bounding(process)?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).map_err(|e| format!("keepcaps: {e}"))?;
    let groups: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    sys::set_ids(user.uid(), user.gid(), &groups)
        .map_err(|e| format!("set user {}:{}: {e}", user.uid(), user.gid()))?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).map_err(|e| format!("keepcaps: {e}"))?;
    capabilities(process)?;
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
        seccomp: pending,
    })
}

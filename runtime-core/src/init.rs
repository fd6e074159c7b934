//! The child side of `create`: runs in the freshly cloned init, in its new
//! namespaces, and never returns. Order, as DESIGN.md fixes it: namespaces →
//! mounts → `pivot_root` → hostname → rlimits → user/groups → capabilities →
//! `no_new_privs` → (seccomp, not yet) → wait for start → `execve`.
//!
//! Any failure before the ready report goes back to the parent as text over
//! the sync socket; init then exits with status 1.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{PosixRlimitType, Process};

use crate::spec::Checked;
use crate::{rootfs, sys};

/// What the child needs from the parent, all prepared before the clone.
pub(crate) struct InitArgs<'a> {
    pub checked: &'a Checked,
    pub bundle: &'a Path,
    /// Child end of the sync socket.
    pub sync: OwnedFd,
    /// `O_PATH` fd of the exec fifo.
    pub fifo: OwnedFd,
    /// Fds to become 0, 1, 2 (`None` keeps the inherited one).
    pub stdio: [Option<RawFd>; 3],
}

/// Runs init; never returns.
pub(crate) fn run(args: InitArgs<'_>) -> ! {
    let sync = args.sync.as_fd().try_clone_to_owned();
    let code = match setup(args) {
        Ok(never) => match never {},
        Err(msg) => {
            if let Ok(s) = sync {
                let _ = sys::send(s.as_fd(), format!("E{msg}").as_bytes());
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

fn capabilities(process: &Process) -> Result<(), String> {
    use caps::{CapSet, Capability, CapsHashSet};
    let Some(spec_caps) = process.capabilities() else {
        // No capabilities object: the process gets none (runc, youki #3554).
        caps::clear(None, CapSet::Bounding).map_err(|e| format!("clear bounding set: {e}"))?;
        return Ok(());
    };
    let conv = |set: &Option<oci_spec::runtime::Capabilities>| -> CapsHashSet {
        set.iter()
            .flatten()
            // oci-spec displays `Chown` as "CHOWN"; caps parses "CAP_CHOWN".
            .filter_map(|c| Capability::from_str(&format!("CAP_{c}")).ok())
            .collect()
    };
    let all = caps::runtime::thread_all_supported();
    let bounding = conv(spec_caps.bounding());
    for cap in all.difference(&bounding) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| format!("drop {cap}: {e}"))?;
    }
    let effective = conv(spec_caps.effective());
    let permitted = conv(spec_caps.permitted());
    let inheritable = conv(spec_caps.inheritable());
    let ambient = conv(spec_caps.ambient());
    caps::set(None, CapSet::Effective, &effective).map_err(|e| format!("set effective: {e}"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| format!("set permitted: {e}"))?;
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| format!("set inheritable: {e}"))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clear ambient: {e}"))?;
    for cap in ambient {
        caps::raise(None, CapSet::Ambient, cap).map_err(|e| format!("raise ambient {cap}: {e}"))?;
    }
    Ok(())
}

fn setup(args: InitArgs<'_>) -> Result<std::convert::Infallible, String> {
    let checked = args.checked;
    let spec = &checked.spec;
    // Validated by spec::check: both exist.
    let process = spec.process().as_ref().ok_or("no process")?;
    let linux = spec.linux().as_ref().ok_or("no linux")?;

    // Nothing of the host may reach the container: every fd from 3 on closes
    // at exec (CVE-2024-21626).
    sys::cloexec_from(3).map_err(|e| format!("close_range: {e}"))?;
    for (target, fd) in args.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            sys::dup2(*fd, target as RawFd).map_err(|e| format!("dup2 stdio {target}: {e}"))?;
        }
    }

    // Wait until the parent has put us in our cgroup.
    let mut buf = [0u8; 1];
    match sys::recv(args.sync.as_fd(), &mut buf) {
        Ok(1) if buf[0] == b'g' => {}
        Ok(_) => return Err("parent went away before setup".into()),
        Err(e) => return Err(format!("wait for parent: {e}")),
    }

    sys::setsid().map_err(|e| format!("setsid: {e}"))?;
    for (path, flag) in &checked.namespaces.join {
        let fd =
            sys::open(path, libc::O_RDONLY).map_err(|e| format!("open {}: {e}", path.display()))?;
        sys::setns(fd.as_fd(), *flag).map_err(|e| format!("join {}: {e}", path.display()))?;
    }
    if checked.namespaces.new_cgroup {
        sys::unshare(libc::CLONE_NEWCGROUP).map_err(|e| format!("new cgroup namespace: {e}"))?;
    }
    if checked.namespaces.clone_flags & libc::CLONE_NEWNET != 0 {
        sys::loopback_up().map_err(|e| format!("bring lo up: {e}"))?;
    }

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
        rootfs::default_devices(rootfd.as_fd())?;
    }
    drop(rootfd);
    rootfs::pivot(&checked.rootfs)?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        rootfs::readonly_root()?;
    }
    rootfs::readonly_paths(linux.readonly_paths().as_deref().unwrap_or_default())?;
    rootfs::masked_paths(linux.masked_paths().as_deref().unwrap_or_default())?;

    if let Some(h) = spec.hostname() {
        sys::sethostname(h).map_err(|e| format!("sethostname {h:?}: {e}"))?;
    }
    for r in process.rlimits().iter().flatten() {
        sys::setrlimit(rlimit_resource(r.typ()), r.soft(), r.hard())
            .map_err(|e| format!("setrlimit {:?}: {e}", r.typ()))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("oom_score_adj {adj}: {e}"))?;
    }

    let user = process.user();
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).map_err(|e| format!("keepcaps: {e}"))?;
    let groups: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    sys::set_ids(user.uid(), user.gid(), &groups)
        .map_err(|e| format!("set user {}:{}: {e}", user.uid(), user.gid()))?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).map_err(|e| format!("keepcaps: {e}"))?;
    capabilities(process)?;
    if process.no_new_privileges() == Some(true) {
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

    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let argv: Vec<String> = process.args().clone().unwrap_or_default();
    let program = find_program(&argv[0], &env)?;
    let to_c = |v: &[String]| -> Result<Vec<CString>, String> {
        v.iter()
            .map(|s| CString::new(s.as_str()).map_err(|_| format!("{s:?} contains NUL")))
            .collect()
    };
    let cargv = to_c(&argv)?;
    let cenv = to_c(&env)?;
    let cprog = sys::cpath(&program).map_err(|e| e.to_string())?;

    // Created: tell the parent, then block until start opens the fifo.
    sys::send(args.sync.as_fd(), b"R").map_err(|e| format!("report ready: {e}"))?;
    let fifo_path = PathBuf::from(format!("/proc/self/fd/{}", args.fifo.as_raw_fd()));
    let fifo = sys::open(&fifo_path, libc::O_WRONLY).map_err(|e| format!("open exec fifo: {e}"))?;
    // SAFETY-free: a plain write of one byte through std.
    let mut f = std::fs::File::from(fifo);
    use std::io::Write;
    f.write_all(b"0")
        .map_err(|e| format!("write exec fifo: {e}"))?;
    drop(f);
    drop(args.fifo);
    drop(args.sync);

    let err = sys::execve(&cprog, &cargv, &cenv);
    // The parent no longer listens: say it where the user looks.
    eprintln!("contd: exec {}: {err}", program.display());
    sys::exit_now(127)
}

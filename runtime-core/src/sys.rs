//! Thin, safe wrappers over the raw system calls runtime-core needs and that
//! `nix`/`libc` do not wrap the way we need them. Every `unsafe` block of the
//! crate lives here.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Converts a path to a C string.
pub(crate) fn cpath(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// The outcome of [`clone_fork`] on each side.
pub(crate) enum Forked {
    /// In the parent, with the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// `clone(flags | SIGCHLD)` with no new stack: fork semantics plus new
/// namespaces.
///
/// # Safety
/// The caller must be single-threaded (true for the monitor and the CLI):
/// the child continues on a copy of the address space with only the calling
/// thread, so any lock another thread held would stay held forever.
pub(crate) unsafe fn clone_fork(flags: libc::c_int) -> io::Result<Forked> {
    // SAFETY: raw clone with a NULL stack behaves like fork(2); the caller
    // guarantees single-threadedness (see above). The ptid/ctid/tls arguments
    // are unused without the matching flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match cvt(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: signals exactly the process the
/// pidfd refers to, even if its pid has been reused.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a valid borrowed fd, a NULL siginfo and zero flags.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null_mut::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// `pivot_root(new_root, put_old)`.
pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: two valid NUL-terminated strings.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })?;
    Ok(())
}

/// How often an `openat2` that met a concurrent rename or mount
/// (`EAGAIN` with `RESOLVE_IN_ROOT`/`RESOLVE_BENEATH`) is tried again.
const OPENAT2_RETRIES: usize = 64;

/// `openat2(dirfd, path, {flags, mode, resolve})`. The kernel refuses a
/// scoped lookup with `EAGAIN` when any rename or mount happened on the
/// host meanwhile (other containers starting): that is retried, as
/// openat2(2) asks.
pub(crate) fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = mode as u64;
    how.resolve = resolve;
    let mut tries = 0;
    let fd = loop {
        // SAFETY: `how` is a valid open_how of the size we pass; the path
        // is a valid C string and the dirfd is borrowed for the call.
        match cvt(unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        }) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < OPENAT2_RETRIES => {
                tries += 1;
            }
            r => break r?,
        }
    };
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `openat(dirfd, name, flags | O_CLOEXEC)`: plain `openat`, which
/// seccomp profiles allow where they may not know `openat2`.
pub(crate) fn openat(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: valid C string, borrowed dirfd; mode is ignored without
    // O_CREAT.
    let fd = cvt_int(unsafe {
        libc::openat(dirfd.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, 0)
    })?;
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fchdir(fd)` (an `O_PATH` directory fd will do).
pub(crate) fn fchdir(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain syscall on a borrowed fd.
    cvt_int(unsafe { libc::fchdir(fd.as_raw_fd()) })?;
    Ok(())
}

/// `open(path, flags | O_CLOEXEC)`.
pub(crate) fn open(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: valid C string; mode is ignored without O_CREAT.
    let fd = cvt_int(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0) })?;
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(dirfd, name, mode)`; EEXIST is not an error.
pub(crate) fn mkdirat(dirfd: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    match cvt_int(unsafe { libc::mkdirat(dirfd.as_raw_fd(), name.as_ptr(), mode) }) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r.map(drop),
    }
}

/// `mknodat(dirfd, name, mode, dev)`.
pub(crate) fn mknodat(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    cvt_int(unsafe { libc::mknodat(dirfd.as_raw_fd(), name.as_ptr(), mode, dev) })?;
    Ok(())
}

/// `symlinkat(target, dirfd, name)`.
pub(crate) fn symlinkat(target: &CStr, dirfd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid fd and C strings.
    cvt_int(unsafe { libc::symlinkat(target.as_ptr(), dirfd.as_raw_fd(), name.as_ptr()) })?;
    Ok(())
}

/// `mount(2)` with optional arguments.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |o: Option<&CStr>| o.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either NULL or a valid C string.
    cvt_int(unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data).cast::<libc::c_void>(),
        )
    })?;
    Ok(())
}

/// `umount2(target, flags)`.
pub(crate) fn umount2(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt_int(unsafe { libc::umount2(target.as_ptr(), flags) })?;
    Ok(())
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: marks every fd from
/// `first` on close-on-exec, so nothing of the host leaks into the container.
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })?;
    Ok(())
}

/// `dup2(old, new)` (clears close-on-exec on `new`).
pub(crate) fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    if old == new {
        // dup2 to itself keeps FD_CLOEXEC: clear it by hand.
        // SAFETY: fcntl on an fd number; an invalid one yields EBADF.
        cvt_int(unsafe { libc::fcntl(old, libc::F_SETFD, 0) })?;
        return Ok(());
    }
    // SAFETY: fd numbers only; an invalid one yields EBADF.
    cvt_int(unsafe { libc::dup2(old, new) })?;
    Ok(())
}

/// Raw `setresgid`/`setresuid`/`setgroups`: glibc's wrappers broadcast to
/// every thread of the process, which is unsafe after a fork.
pub(crate) fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `groups`.
    cvt(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })?;
    Ok(())
}

/// `prctl(option, arg)`.
pub(crate) fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the options we use take one integer argument.
    cvt_int(unsafe { libc::prctl(option, arg, 0, 0, 0) })?;
    Ok(())
}

/// `setns(fd, nstype)`.
pub(crate) fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt_int(unsafe { libc::setns(fd.as_raw_fd(), nstype) })?;
    Ok(())
}

/// `unshare(flags)`.
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: integer argument.
    cvt_int(unsafe { libc::unshare(flags) })?;
    Ok(())
}

/// `sethostname`.
pub(crate) fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe `name`.
    cvt_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}

/// `setrlimit(resource, {soft, hard})`.
pub(crate) fn setrlimit(resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: valid rlimit struct; `resource` is checked by the kernel.
    cvt_int(unsafe { libc::setrlimit(resource as _, &lim) })?;
    Ok(())
}

/// `setsid()`.
pub(crate) fn setsid() -> io::Result<()> {
    // SAFETY: no arguments.
    cvt_int(unsafe { libc::setsid() })?;
    Ok(())
}

/// `umask(mask)`.
pub(crate) fn umask(mask: libc::mode_t) {
    // SAFETY: always succeeds.
    unsafe { libc::umask(mask) };
}

/// `execve(path, argv, envp)`; returns only on failure.
pub(crate) fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: installs a BPF filter
/// on the calling process. With `SECCOMP_FILTER_FLAG_NEW_LISTENER` in
/// `flags` the kernel returns the filter's user-notification fd.
pub(crate) fn seccomp_set_filter(program: &[u8], flags: u32) -> io::Result<Option<OwnedFd>> {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    const NEW_LISTENER: u32 = 1 << 3;
    // `program` is whole `struct sock_filter`s (8 bytes each).
    let len =
        u16::try_from(program.len() / 8).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `prog` points at `len` instructions that outlive the call
    // and that Rust never reads through the cast pointer; the kernel copies
    // the program (any alignment) before returning.
    let ret = cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    })?;
    if flags & NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the return value is a new fd owned by
    // nobody else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
}

/// `sched_setattr(0, attr, 0)`: the calling thread's scheduling policy.
pub(crate) fn sched_setattr(attr: &crate::sched::SchedAttr) -> io::Result<()> {
    // SAFETY: `attr` is a `struct sched_attr` (its `size` says which
    // version) that lives across the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::c_long,
            attr as *const crate::sched::SchedAttr,
            0 as libc::c_ulong,
        )
    })?;
    Ok(())
}

/// `set_mempolicy(mode, nodes, bits)`: the calling thread's NUMA policy.
pub(crate) fn set_mempolicy(mode: i32, nodes: &[u64]) -> io::Result<()> {
    let bits = nodes.len() * 64;
    // SAFETY: `nodes` holds `bits` bits; the kernel reads maxnode - 1 bits
    // (its historical off-by-one), so passing bits + 1 reads them all.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            mode as libc::c_long,
            nodes.as_ptr(),
            (bits + 1) as libc::c_ulong,
        )
    })?;
    Ok(())
}

/// `memfd_create(name, MFD_CLOEXEC)`: an anonymous file in memory.
pub(crate) fn memfd(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid C string; the fd is owned right away.
    let fd = cvt_int(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `clone3(NULL, 0)`: always fails, with EINVAL where clone3 exists and is
/// allowed; no process is created.
#[cfg(test)]
pub(crate) fn clone3_probe() -> io::Error {
    // SAFETY: a NULL args pointer with size 0 is rejected by the kernel
    // before anything is read or created.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::null_mut::<libc::c_void>(),
            0 as libc::size_t,
        )
    };
    if ret < 0 {
        io::Error::last_os_error()
    } else {
        io::Error::other(format!("clone3(NULL, 0) returned {ret}"))
    }
}

/// `_exit(code)`: leaves a forked child without running the parent's
/// destructors or atexit handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: always safe; never returns.
    unsafe { libc::_exit(code) }
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors.
    cvt_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: two new fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one packet.
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    // SAFETY: pointer and length describe `buf`.
    cvt(unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        ) as libc::c_long
    })?;
    Ok(())
}

/// Receives one packet (0 bytes at end of stream).
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: pointer and length describe `buf`.
        let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match cvt(r as libc::c_long) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// `poll` on a set of fds for readability; returns which are ready.
pub(crate) fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: pointer and length describe `p`.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        match cvt_int(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(p.iter().map(|x| x.revents != 0).collect()),
        }
    }
}

/// `mkfifo(path, mode)`.
pub(crate) fn mkfifo(path: &Path, mode: libc::mode_t) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    cvt_int(unsafe { libc::mkfifo(c.as_ptr(), mode) })?;
    Ok(())
}

/// The start time of a process in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), used to tell a pid from a reused one.
pub fn process_start_time(pid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))?;
    // After ')' come field 3 (state) onwards; start time is field 22.
    rest.split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))
}

/// The state letter of a process (`R`, `S`, `Z`, ...).
pub fn process_state(pid: i32) -> io::Result<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat.rsplit_once(')')
        .and_then(|(_, r)| r.trim_start().chars().next())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))
}

/// The `f_flag` word of `statvfs(path)`.
pub(crate) fn statvfs_flags(path: &CStr) -> io::Result<libc::c_ulong> {
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and a statvfs struct to fill.
    cvt_int(unsafe { libc::statvfs(path.as_ptr(), &mut st) })?;
    Ok(st.f_flag)
}

/// Sets `lo` up (`SIOCSIFFLAGS` with `IFF_UP | IFF_RUNNING`) in the current
/// network namespace.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket call.
    let s =
        cvt_int(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the kernel returned a fresh fd that nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: valid socket and a filled ifreq that outlives the call.
    cvt_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// `setdomainname(2)`.
pub(crate) fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe `name`.
    cvt_int(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}

/// `fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn fchownat(dirfd: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: `name` is a valid C string; fd is borrowed and open.
    cvt_int(unsafe {
        libc::fchownat(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// `fchmodat(dirfd, name, mode)` (follows nothing: `name` is a plain entry).
pub(crate) fn fchmodat(dirfd: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is a valid C string; fd is borrowed and open.
    cvt_int(unsafe { libc::fchmodat(dirfd.as_raw_fd(), name.as_ptr(), mode, 0) })?;
    Ok(())
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(dirfd, "", AT_EMPTY_PATH | AT_RECURSIVE, ...)`: sets and
/// clears `MOUNT_ATTR_*` bits on a whole mount tree.
pub(crate) fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64, clear: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: `attr` lives across the call and its size is passed.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// `personality(persona)`.
pub(crate) fn personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: plain syscall with an integer argument.
    cvt_int(unsafe { libc::personality(persona) })?;
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)`.
pub(crate) fn ioprio_set(class: i64, level: i64) -> io::Result<()> {
    let prio = (class << 13) | level;
    // SAFETY: plain syscall with integer arguments.
    cvt(unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio as libc::c_long) })?;
    Ok(())
}

/// Opens a new pty master with `posix_openpt`, unlocks it and returns it
/// with the path of its slave.
pub(crate) fn open_pty_master() -> io::Result<(OwnedFd, String)> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
    )?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    Ok((OwnedFd::from(master), name))
}

/// Makes `fd` (a tty) the controlling terminal of the calling session leader.
pub(crate) fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) })?;
    Ok(())
}

/// Sets a terminal's window size.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `winsize` that lives across the call.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })?;
    Ok(())
}

/// Sends `fd` over a unix socket with `SCM_RIGHTS`, with `name` as data.
pub(crate) fn send_fd(sock: BorrowedFd<'_>, name: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(if name.is_empty() {
        b"x"
    } else {
        name
    })];
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one fd sent with `SCM_RIGHTS` (and the data sent with it).
pub(crate) fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<(OwnedFd, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let (n, fd) = recv_with_fd(sock, &mut buf)?;
    let fd = fd.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no fd received"))?;
    buf.truncate(n);
    Ok((fd, buf))
}

/// Receives one packet and the fd that came with it, if one did.
pub(crate) fn recv_with_fd(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r?,
        }
    };
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed this fd for us.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, got))
}

/// `sched_setaffinity(pid, mask)`: another process's CPUs.
pub(crate) fn sched_setaffinity_of(pid: libc::pid_t, mask: &[u64]) -> io::Result<()> {
    // SAFETY: pointer and byte length describe `mask`.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid as libc::c_long,
            std::mem::size_of_val(mask) as libc::c_ulong,
            mask.as_ptr(),
        )
    })?;
    Ok(())
}

/// `connect`s a new `SOCK_STREAM` unix socket to `path`.
pub(crate) fn connect_unix(path: &Path) -> io::Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)?;
    Ok(OwnedFd::from(s))
}

/// `waitpid(pid, 0)`, retried on EINTR: the exit status as a shell reports
/// it (code, or 128 + signal).
pub fn wait_exit(pid: i32) -> io::Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `write(2)` to a path, once (for `/proc` files that take one write).
pub(crate) fn write_once(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(data)
}

/// `close(fd)`, ignoring errors (for fds whose owner never returns).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: closing an fd number; callers pass fds nothing else owns in
    // the calling process (inherited across clone, never returned to).
    unsafe {
        libc::close(fd);
    }
}

/// Borrows a raw fd for the rest of the process's life.
pub(crate) fn borrow_raw(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: only used in container init and exec children, which never
    // return and never close these fds but through `close` at the very end.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// A terminal's window size (rows, columns).
pub fn get_winsize(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a `winsize` that lives across the call.
    cvt_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok((ws.ws_row, ws.ws_col))
}

/// `open(path, O_WRONLY)`, one `write`, `close`: for kernel files that
/// take one write, with no allocation.
pub(crate) fn write_cstr_path(path: &CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is a valid C string; the fd is owned right away.
    let fd = cvt_int(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    // SAFETY: a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: pointer and length describe `data`.
    let n = cvt(unsafe {
        libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) as libc::c_long
    })?;
    if n as usize != data.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
    }
    Ok(())
}

/// Gives the calling process the signal state of a fresh one: every
/// handler back to `SIG_DFL` and nothing blocked. A caller that ignores
/// SIGPIPE or blocks SIGCHLD (a monitor) must not hand that to the
/// container: ignored signals stay ignored across `execve`.
pub(crate) fn reset_signals() -> io::Result<()> {
    /// The kernel's `struct sigaction` (x86_64 and aarch64 layout).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: the raw syscall (not glibc's wrapper, which refuses the
        // signals it reserves, 32 and 33) with a valid struct and size 8.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    // SAFETY: an empty set, initialised by sigemptyset before use.
    let r = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut())
    };
    cvt_int(r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_is_stable() {
        let pid = std::process::id() as i32;
        let a = process_start_time(pid).unwrap();
        let b = process_start_time(pid).unwrap();
        assert_eq!(a, b);
        assert!(matches!(process_state(pid).unwrap(), 'R' | 'S'));
    }
}

/// `union bpf_attr` as `BPF_PROG_LOAD` reads it (up to
/// `expected_attach_type`; the kernel takes the rest as zero).
#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` as `BPF_PROG_ATTACH` reads it.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program.
///
/// # Errors
/// The kernel's refusal; a verifier rejection carries the verifier's log.
pub(crate) fn bpf_load_device_prog(prog: &[crate::devfilter::Insn]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"contd_dev");
    let mut attr = BpfProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix of the size passed; the
    // instruction array (repr(C), 8 bytes each, as struct bpf_insn), the
    // license string and the log buffer outlive the call, which writes at
    // most `log_size` bytes into the log.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &mut attr as *mut BpfProgLoad,
            std::mem::size_of::<BpfProgLoad>() as u32,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&log[..end]);
        return Err(io::Error::new(
            e.kind(),
            format!(
                "load device filter: {e}{}{}",
                if text.is_empty() { "" } else { ": " },
                text.trim()
            ),
        ));
    }
    // SAFETY: a new fd that only we hold.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches a device program to a cgroup v2 directory (multi-attach: the
/// parents' programs keep applying).
///
/// # Errors
/// The kernel's refusal.
pub(crate) fn bpf_attach_device_prog(cgroup: &std::fs::File, prog: &OwnedFd) -> io::Result<()> {
    let mut attr = BpfProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: `attr` is a valid bpf_attr prefix of the size passed; both
    // fds are open for the duration of the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &mut attr as *mut BpfProgAttach,
            std::mem::size_of::<BpfProgAttach>() as u32,
        )
    })
    .map(drop)
    .map_err(|e| io::Error::new(e.kind(), format!("attach device filter: {e}")))
}

/// Blocks every signal; returns the mask there was.
pub(crate) fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigsets are plain data, filled by libc.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

/// Sets the signal mask.
pub(crate) fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: a valid sigset.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// Waits for any signal (all of them blocked); its number, or -1.
pub(crate) fn wait_signal() -> libc::c_int {
    // SAFETY: valid set and out-pointer.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::sigwaitinfo(&all, &mut info)
    }
}

/// A process group of its own, and the terminal's foreground when fd 0
/// is one (SIGTTOU must be blocked or ignored).
pub(crate) fn own_foreground_group() {
    // SAFETY: calls on this process and fd 0.
    unsafe {
        libc::setpgid(0, 0);
        if libc::isatty(0) == 1 {
            libc::tcsetpgrp(0, libc::getpid());
        }
    }
}

/// `kill(pid, sig)`.
pub(crate) fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt_int(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// Reaps one exited child without blocking: its pid and wait status.
pub(crate) fn reap_any() -> Option<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Replaces this process's command line (the argument area
/// `[start, end)` from /proc/self/stat) with `title`, the rest zeroed.
pub(crate) fn overwrite_args(start: usize, end: usize, title: &[u8]) {
    if end <= start || end - start <= title.len() || end - start > 1 << 20 {
        return;
    }
    // SAFETY: [start, end) is this process's own argument area, mapped
    // and writable (the kernel reads /proc/PID/cmdline from it); the
    // caller reads its arguments no more.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, end - start);
        std::ptr::copy_nonoverlapping(title.as_ptr(), p, title.len());
    }
}

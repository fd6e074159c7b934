//! The monitor's few unsafe system calls, each with its invariant.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Takes ownership of an fd number inherited from the parent.
///
/// # Errors
/// If `fd` is not open.
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only inspects the descriptor table.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked above) and, by the command-line
    // contract, handed to us to own; nothing else in this process uses it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Duplicates `fd` onto the number `target` (close-on-exec) and owns it.
///
/// # Errors
/// If `dup3` fails.
pub(crate) fn dup_to(fd: &OwnedFd, target: RawFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is open; `target` is a number the monitor does not use
    // (only stdio is below it), so replacing it closes nothing we own.
    if unsafe { libc::dup3(fd.as_raw_fd(), target, libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dup3 just made `target` a new descriptor that only we hold.
    Ok(unsafe { OwnedFd::from_raw_fd(target) })
}

/// Where `fork` returned.
pub(crate) enum Fork {
    Parent(libc::pid_t),
    Child,
}

/// `fork()`.
///
/// # Errors
/// If the kernel refuses.
pub(crate) fn fork() -> io::Result<Fork> {
    // SAFETY: the monitor is single-threaded (no threads are ever started),
    // so the child's copy of the address space holds no lock of another thread.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// `clone3(CLONE_INTO_CGROUP)`: `fork()`, the child starting in the cgroup
/// whose directory `cgroup` is (cgroup v2 only). Unlike moving a process,
/// this takes no threadgroup lock and waits for no RCU grace period.
///
/// # Errors
/// If the kernel refuses (before 5.7: `ENOSYS` or `E2BIG`).
pub(crate) fn fork_into(cgroup: std::os::fd::BorrowedFd<'_>) -> io::Result<Fork> {
    use std::os::fd::AsRawFd;
    /// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        // No stack: the child runs on a copy of ours, as after fork().
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: `args` is a valid clone_args of the size given; with no
    // stack and no CLONE_VM this is fork(), and the monitor is
    // single-threaded (see `fork`).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid as i32)),
    }
}

/// `_exit`.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: always safe; never returns.
    unsafe { libc::_exit(code) }
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphans of the container come to us.
pub(crate) fn set_subreaper() -> io::Result<()> {
    // SAFETY: integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ignores SIGPIPE: a vanished client is an EPIPE, not our death.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN has no handler code to be unsafe.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; the fd is owned right away.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Returns freed heap memory to the kernel (`malloc_trim(0)`): creating the
/// container leaves ~0.5 MB of freed but resident heap behind, which would
/// otherwise stay with the monitor for the container's whole life.
pub(crate) fn trim_heap() {
    // SAFETY: glibc's malloc_trim takes an integer and touches only the
    // allocator's own state; the monitor is single-threaded.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
///
/// # Errors
/// If `fd` is not open.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flag = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD changes only the descriptor's flags, on an fd number
    // the caller holds.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flag) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Closes the fds `first..=last` (nothing if `first > last`).
pub(crate) fn close_range(first: RawFd, last: RawFd) {
    if first > last || first < 0 {
        return;
    }
    // SAFETY: integer arguments only; the caller owns nothing in the range.
    unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) };
}

/// Unmaps from this process the pages of its executable mappings (the
/// monitor's code, libc's, the loader's) that it touched so far; they stay
/// in the page cache, and the poll loop faults back in only what it runs.
pub(crate) fn drop_code_pages() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or("");
        if perms != "r-xp" || !path.starts_with('/') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // SAFETY: a private, read-only, file-backed mapping: MADV_DONTNEED
        // only drops page-table entries; the next access maps the same
        // unmodified file pages again.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
    }
}

/// Reads all that a non-blocking `r` has now onto `into` (`buf` is
/// scratch); `false` once it is closed or broken.
pub(crate) fn read_ready(r: &mut impl io::Read, into: &mut Vec<u8>, buf: &mut [u8]) -> bool {
    loop {
        match r.read(buf) {
            Ok(0) => return false,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes what a non-blocking `w` takes now of `from`, and drops it from
/// there; `false` once the peer is gone.
pub(crate) fn write_ready(w: &mut impl io::Write, from: &mut Vec<u8>) -> bool {
    while !from.is_empty() {
        match w.write(from) {
            Ok(0) => return false,
            Ok(n) => {
                from.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Points stdin, stdout and stderr at /dev/null; returns it (the caller
/// keeps it open if it got one of those numbers).
pub(crate) fn stdio_to_null() -> Option<std::fs::File> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ok()?;
    let _ = nix::unistd::dup2_stdin(&null);
    let _ = nix::unistd::dup2_stdout(&null);
    let _ = nix::unistd::dup2_stderr(&null);
    Some(null)
}

/// `kill(pid, sig)` with the signal's number as given (real-time ones
/// included).
pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: a plain syscall on numbers.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

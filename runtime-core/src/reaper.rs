//! `--init`: the container's pid 1 stays runtime-core's own code, a reaper
//! that runs the command as its only child, passes signals on to it, reaps
//! every orphan the container's processes leave, and exits with the
//! child's code (128 + signal when it was killed), as docker's `--init`
//! (tini) does. Nothing is added to the rootfs: the reaper is the init
//! process already there, forked before the `execve`.
//!
//! Signals reach a namespace's init only when it handles them or has them
//! blocked; the reaper blocks them all and takes them with `sigwaitinfo`.

use crate::sys::{self, Forked};

/// The OCI annotation that asks for the reaper (`"true"`).
pub const INIT_ANNOTATION: &str = "run.contd.init";

/// What `ps` and `top` show for the reaper.
const TITLE: &[u8] = b"contd-init";

/// Forks: returns in the child, which goes on to exec the command; this
/// process becomes the reaper and never returns. Called with seccomp
/// loaded and credentials set, right before the `execve`.
pub(crate) fn fork_off() {
    // Every signal blocked from here: none is lost between the fork and
    // the reaper's first wait. The child unblocks what init had.
    let old = sys::block_all_signals();
    // SAFETY: a runtime's init is single-threaded.
    let child = match unsafe { sys::clone_fork(0) } {
        Ok(Forked::Parent(pid)) => pid,
        Ok(Forked::Child) => {
            // Its own process group, in the terminal's foreground when
            // there is one: ctrl-c reaches the command, not the reaper
            // too. SIGTTOU is still blocked, so taking the terminal works.
            sys::own_foreground_group();
            sys::set_signal_mask(&old);
            return;
        }
        Err(e) => {
            eprintln!("contd: init: fork: {e}");
            sys::exit_now(125)
        }
    };
    set_title();
    loop {
        match sys::wait_signal() {
            libc::SIGCHLD => {
                if let Some(code) = reap(child) {
                    sys::exit_now(code);
                }
            }
            // EINTR, and job control of a terminal the reaper does not use.
            -1 | libc::SIGTTIN | libc::SIGTTOU => {}
            sig => {
                let _ = sys::kill(child, sig);
            }
        }
    }
}

/// Reaps every exited process; the command's exit code once it is one of
/// them.
fn reap(child: libc::pid_t) -> Option<i32> {
    let mut code = None;
    while let Some((pid, status)) = sys::reap_any() {
        if pid == child {
            code = Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
    }
    code
}

/// Names the reaper `contd-init`: its comm and its command line, which
/// would otherwise be the runtime's, host paths included.
fn set_title() {
    let mut comm = TITLE.to_vec();
    comm.push(0);
    let _ = sys::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong);
    // The command line is the memory between arg_start and arg_end,
    // fields 48 and 49 of /proc/self/stat.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(rest) = stat.rfind(") ").map(|i| &stat[i + 2..]) else {
        return;
    };
    // `rest` starts at field 3.
    let fields: Vec<&str> = rest.split(' ').collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.trim().parse::<usize>().ok())
    };
    if let (Some(start), Some(end)) = (field(48), field(49)) {
        sys::overwrite_args(start, end, TITLE);
    }
}

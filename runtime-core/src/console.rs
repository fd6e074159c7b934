//! Terminals: a pty made inside the container, its master handed to the
//! caller over a console socket (runc's `--console-socket` protocol: one
//! `SCM_RIGHTS` message), its slave made the process's stdio and
//! controlling terminal.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use crate::sys;

/// Opens a pty from the container's `/dev/ptmx` (after the pivot), sends the
/// master over `socket`, and makes the slave fds 0–2 and the controlling
/// terminal. With `console`, binds the slave on `/dev/console` too.
pub(crate) fn setup(
    socket: BorrowedFd<'_>,
    size: Option<(u16, u16)>,
    console: bool,
) -> Result<(), String> {
    let (master, name) = sys::open_pty_master().map_err(|e| format!("open pty: {e}"))?;
    let slave = sys::open(Path::new(&name), libc::O_RDWR | libc::O_NOCTTY)
        .map_err(|e| format!("open {name}: {e}"))?;
    if let Some((rows, cols)) = size {
        sys::set_winsize(slave.as_fd(), rows, cols).map_err(|e| format!("set pty size: {e}"))?;
    }
    if console {
        bind_console(&name)?;
    }
    sys::send_fd(socket, b"/dev/ptmx", master.as_fd())
        .map_err(|e| format!("send pty master to the console socket: {e}"))?;
    drop(master);
    for target in 0..3 {
        sys::dup2(std::os::fd::AsRawFd::as_raw_fd(&slave), target as RawFd)
            .map_err(|e| format!("dup pty to fd {target}: {e}"))?;
    }
    sys::set_controlling_tty(slave.as_fd()).map_err(|e| format!("set controlling tty: {e}"))?;
    Ok(())
}

/// `/dev/console` is the pty slave (an empty file bind-mounted over).
fn bind_console(slave: &str) -> Result<(), String> {
    let console = Path::new("/dev/console");
    if !console.exists() {
        std::fs::File::create(console).map_err(|e| format!("create /dev/console: {e}"))?;
    }
    let src = sys::cpath(Path::new(slave)).map_err(|e| e.to_string())?;
    let dst = sys::cpath(console).map_err(|e| e.to_string())?;
    sys::mount(Some(&src), &dst, None, libc::MS_BIND, None)
        .map_err(|e| format!("bind {slave} on /dev/console: {e}"))
}

/// The receiving side of a console socket: accepts the pty master sent by
/// [`setup`] on a connected socket.
///
/// # Errors
/// If no fd arrives.
pub fn receive_master(sock: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    sys::recv_fd(sock).map(|(fd, _)| fd)
}

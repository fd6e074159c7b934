//! Foreground `run` and `exec`: signals to the CLI are forwarded to the
//! container process, and with a terminal the CLI proxies its own stdio to
//! the pty master (stdin in raw mode while it is a tty), until the process
//! exits; then the CLI exits with its code.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::termios;

/// A connected pair for the console-socket protocol.
pub fn socket_pair() -> Result<(OwnedFd, OwnedFd), String> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))
}

const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Blocks the forwarded signals and receives them on a signalfd.
pub struct Forwarder {
    sfd: SignalFd,
    old: SigSet,
}

impl Forwarder {
    /// Call after the container process exists (it must not inherit the
    /// blocked mask).
    pub fn new() -> Result<Self, String> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(|e| format!("block signals: {e}"))?;
        let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| format!("signalfd: {e}"))?;
        Ok(Forwarder { sfd, old })
    }

    /// Waits for `pid` (a child of ours) to exit, forwarding signals and
    /// proxying the terminal; returns its exit code (128 + signal if killed).
    pub fn wait(
        self,
        pid: i32,
        pidfd: BorrowedFd<'_>,
        master: Option<OwnedFd>,
    ) -> Result<i32, String> {
        let stdin = std::io::stdin();
        let raw = master.as_ref().and_then(|m| {
            let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
            let mut r = saved.clone();
            termios::cfmakeraw(&mut r);
            termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &r).ok()?;
            copy_winsize(m.as_fd());
            Some(saved)
        });
        let result = self.loop_until_exit(pid, pidfd, master.as_ref());
        if let Some(saved) = raw {
            let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &saved);
        }
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
        result
    }

    fn loop_until_exit(
        &self,
        pid: i32,
        pidfd: BorrowedFd<'_>,
        master: Option<&OwnedFd>,
    ) -> Result<i32, String> {
        let stdin = std::io::stdin();
        let mut stdin_open = master.is_some();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let mut fds = vec![
                PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(pidfd, PollFlags::POLLIN),
            ];
            if let Some(m) = master {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
                if stdin_open {
                    fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (sig_ready, exited, out_ready, in_ready) = (ready(0), ready(1), ready(2), ready(3));
            if sig_ready {
                while let Ok(Some(info)) = self.sfd.read_signal() {
                    let signo = info.ssi_signo as i32;
                    if signo == Signal::SIGWINCH as i32 {
                        if let Some(m) = master {
                            copy_winsize(m.as_fd());
                        }
                        continue;
                    }
                    let _ = runtime_core::pidfd_send_signal(pidfd, signo);
                }
            }
            if let Some(m) = master {
                if out_ready && !pump(m, &mut std::io::stdout(), &mut buf) && exited {
                    // EOF or EIO on the master: the output is drained.
                }
                if in_ready {
                    let n = stdin.lock().read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        stdin_open = false;
                    } else {
                        let mut f = std::fs::File::from(m.try_clone().map_err(|e| e.to_string())?);
                        let _ = f.write_all(&buf[..n]);
                    }
                }
            }
            if exited {
                if let Some(m) = master {
                    // Drain what the process wrote before it died.
                    let _ = nix::fcntl::fcntl(
                        m.as_fd(),
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    );
                    while pump(m, &mut std::io::stdout(), &mut buf) {}
                }
                return wait_code(pid);
            }
        }
    }
}

/// Copies once from the master to `out`; false at EOF, EIO or EAGAIN.
fn pump(master: &OwnedFd, out: &mut impl Write, buf: &mut [u8]) -> bool {
    match nix::unistd::read(master.as_fd(), buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
            true
        }
    }
}

fn copy_winsize(master: BorrowedFd<'_>) {
    let stdin = std::io::stdin();
    if let Ok((rows, cols)) = runtime_core::get_winsize(stdin.as_fd()) {
        let _ = runtime_core::set_winsize(master, rows, cols);
    }
}

fn wait_code(pid: i32) -> Result<i32, String> {
    runtime_core::wait_exit(pid).map_err(|e| format!("wait for {pid}: {e}"))
}

//! The service manager's notification protocol (`sd_notify(3)`): datagrams
//! of `KEY=VALUE` lines to the socket `NOTIFY_SOCKET` names. No libsystemd:
//! the protocol is one `sendto`.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where to send notifications, taken from the environment.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

/// Variables of the protocol that no child may inherit.
const VARS: [&str; 5] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
];

/// What the service manager asked of this process: where to notify, and
/// how often to pet the watchdog.
#[derive(Debug, Default)]
pub struct FromManager {
    /// `NOTIFY_SOCKET`, if set and usable.
    pub notifier: Option<Notifier>,
    /// Half of `WATCHDOG_USEC`, if the watchdog is on for this process.
    pub watchdog: Option<Duration>,
}

impl FromManager {
    /// Reads the protocol's variables and removes them from the
    /// environment, so that neither monitors nor containers inherit them
    /// (call it before any thread starts: it changes the environment).
    pub fn take_from_env() -> FromManager {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let socket = get("NOTIFY_SOCKET");
        let usec = get("WATCHDOG_USEC").and_then(|v| v.parse::<u64>().ok());
        let for_us =
            get("WATCHDOG_PID").is_none_or(|p| p.parse::<u32>().ok() == Some(std::process::id()));
        for k in VARS {
            // Single-threaded here (the caller's contract).
            std::env::remove_var(k);
        }
        FromManager {
            notifier: socket.and_then(|s| match Notifier::new(&s) {
                Ok(n) => Some(n),
                Err(e) => {
                    eprintln!("contd: NOTIFY_SOCKET {s}: {e}");
                    None
                }
            }),
            watchdog: usec
                .filter(|u| *u > 0 && for_us)
                .map(|u| Duration::from_micros(u / 2)),
        }
    }
}

impl Notifier {
    /// A notifier for the socket at `path` (`@name`: an abstract socket).
    ///
    /// # Errors
    /// The socket cannot be created or the address is invalid.
    pub fn new(path: &str) -> std::io::Result<Notifier> {
        let addr = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(path)?,
        };
        let sock = UnixDatagram::unbound()?;
        Ok(Notifier { sock, addr })
    }

    /// Sends one notification (lines of `KEY=VALUE`).
    ///
    /// # Errors
    /// The datagram could not be sent.
    pub fn notify(&self, msg: &str) -> std::io::Result<()> {
        self.sock.send_to_addr(msg.as_bytes(), &self.addr).map(drop)
    }
}

/// `MONOTONIC_USEC=` for `RELOADING=1` (systemd 253's `Type=notify-reload`
/// wants it; older ones ignore it).
pub fn monotonic_usec() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec the call fills in.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) } != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1000
}

//! The monitor re-executes itself once the container is created.
//!
//! Creating a container parses the spec, compiles a seccomp filter, walks
//! mounts: it leaves the monitor with a fragmented heap, a deep stack and
//! hundreds of kB of mapped code it will never run again, all resident for
//! the container's whole life (freed heap inside a fragmented arena cannot
//! be trimmed). So the creating process, once it has reported `Ready`,
//! `execve`s `/proc/self/exe` — the very binary it runs, even if a newer one
//! has replaced it on disk since — with `--adopt` and the numbers of the fds
//! it keeps: same pid (the supervisor's `monitor.pid` stays right), same
//! children (init is still ours to reap), same signal mask and pending
//! signals (a SIGCHLD that came meanwhile is not lost), same session,
//! subreaper flag and `oom_score_adj`. The new image starts with a clean
//! heap and stack and maps only the code the poll loop runs.
//!
//! A client that connects in between waits in the listening socket's
//! backlog. If `execve` fails, the creating process serves the container
//! itself: nothing is lost but memory.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use crate::Args;

/// What the creating process hands to the serving one.
#[derive(Debug)]
pub(crate) struct Handover {
    pub listener: UnixListener,
    pub log: std::fs::File,
    /// Init's stdout and stderr pipes (`None` with a terminal).
    pub outputs: [Option<std::fs::File>; 2],
    /// The write end of init's stdin pipe (`--stdin`, no terminal).
    pub stdin: Option<std::fs::File>,
    /// The pty master (terminal containers): output, input and resizes.
    pub tty: Option<std::fs::File>,
    pub init_pid: i32,
    /// When the container was created, unix nanoseconds.
    pub created_at: i64,
    /// When it was started (`--start`), unix nanoseconds.
    pub started_at: Option<i64>,
}

/// The fd numbers and values passed with `--adopt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Adopt {
    pub listener: RawFd,
    pub log: RawFd,
    pub out: Option<RawFd>,
    pub err: Option<RawFd>,
    pub stdin: Option<RawFd>,
    pub tty: Option<RawFd>,
    pub init_pid: i32,
    pub created_at: i64,
    pub started_at: Option<i64>,
}

impl Adopt {
    fn of(h: &Handover) -> Adopt {
        let raw = |f: &Option<std::fs::File>| f.as_ref().map(AsRawFd::as_raw_fd);
        Adopt {
            listener: h.listener.as_raw_fd(),
            log: h.log.as_raw_fd(),
            out: raw(&h.outputs[0]),
            err: raw(&h.outputs[1]),
            stdin: raw(&h.stdin),
            tty: raw(&h.tty),
            init_pid: h.init_pid,
            created_at: h.created_at,
            started_at: h.started_at,
        }
    }

    /// `listener=3,log=4,out=5,err=6,stdin=-,tty=-,pid=42,created=17…,started=-`
    pub(crate) fn encode(&self) -> String {
        let fd = |f: Option<RawFd>| f.map_or_else(|| "-".to_string(), |n| n.to_string());
        format!(
            "listener={},log={},out={},err={},stdin={},tty={},pid={},created={},started={}",
            self.listener,
            self.log,
            fd(self.out),
            fd(self.err),
            fd(self.stdin),
            fd(self.tty),
            self.init_pid,
            self.created_at,
            self.started_at
                .map_or_else(|| "-".to_string(), |t| t.to_string())
        )
    }

    pub(crate) fn parse(s: &str) -> Result<Adopt, String> {
        let bad = || format!("bad --adopt {s:?}");
        let mut fields = std::collections::HashMap::new();
        for kv in s.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            if fields.insert(k, v).is_some() {
                return Err(bad());
            }
        }
        let get = |k: &str| fields.get(k).copied().ok_or_else(bad);
        let fd = |k: &str| -> Result<RawFd, String> {
            get(k)?.parse().ok().filter(|n| *n > 2).ok_or_else(bad)
        };
        let opt = |k: &str| -> Result<Option<RawFd>, String> {
            match get(k)? {
                "-" => Ok(None),
                _ => fd(k).map(Some),
            }
        };
        let a = Adopt {
            listener: fd("listener")?,
            log: fd("log")?,
            out: opt("out")?,
            err: opt("err")?,
            stdin: opt("stdin")?,
            tty: opt("tty")?,
            init_pid: get("pid")?
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(bad)?,
            created_at: get("created")?.parse().map_err(|_| bad())?,
            started_at: match get("started")? {
                "-" => None,
                t => Some(t.parse().map_err(|_| bad())?),
            },
        };
        if fields.len() != 9 {
            return Err(bad());
        }
        let mut fds = a.fds();
        fds.sort_unstable();
        if fds.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad());
        }
        Ok(a)
    }

    fn fds(&self) -> Vec<RawFd> {
        [self.out, self.err, self.stdin, self.tty]
            .into_iter()
            .flatten()
            .chain([self.listener, self.log])
            .collect()
    }
}

/// Re-executes the monitor with `h`'s fds; returns only if that failed,
/// with the fds as they were.
pub(crate) fn exec_self(args: &Args, h: &Handover) -> io::Error {
    let adopt = Adopt::of(h);
    let mut argv = vec![
        "contd-monitor".to_string(),
        "--state-dir".into(),
        args.state_dir.display().to_string(),
        "--log-path".into(),
        args.log_path.display().to_string(),
        "--id".into(),
        args.id.clone(),
        "--log-max-size".into(),
        args.log_limits.max_size.to_string(),
        "--log-max-files".into(),
        args.log_limits.max_files.to_string(),
        "--adopt".into(),
        adopt.encode(),
    ];
    if let Some(l) = args.linger {
        argv.extend(["--linger".to_string(), l.as_secs().to_string()]);
    }
    if let Some(c) = &args.seccomp_cache {
        argv.extend(["--seccomp-cache".to_string(), c.display().to_string()]);
    }
    if let Some(b) = &args.bundle {
        argv.extend(["--bundle".to_string(), b.display().to_string()]);
    }
    if let Some(s) = &args.shim {
        match serde_json::to_string(s) {
            Ok(json) => argv.extend(["--shim".to_string(), json]),
            Err(e) => return io::Error::other(e),
        }
    }
    let Ok(argv) = argv
        .into_iter()
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
    else {
        return io::Error::new(io::ErrorKind::InvalidInput, "NUL in an argument");
    };
    let mut fds = adopt.fds();
    fds.extend(args.shim.as_ref().map(|s| s.fds()).unwrap_or_default());
    for &fd in &fds {
        if let Err(e) = crate::sys::set_cloexec(fd, false) {
            restore(&fds);
            return e;
        }
    }
    let e = match nix::unistd::execv(c"/proc/self/exe", &argv) {
        Err(e) => io::Error::from(e),
        Ok(never) => match never {},
    };
    restore(&fds);
    e
}

fn restore(fds: &[RawFd]) {
    for &fd in fds {
        let _ = crate::sys::set_cloexec(fd, true);
    }
}

/// Takes over the fds `a` names after the re-exec (and `extra`, the
/// shim's): closes every other fd from 3 on and marks the kept ones
/// close-on-exec again.
///
/// # Errors
/// If a named fd is not open.
pub(crate) fn take(a: &Adopt, extra: &[RawFd]) -> io::Result<Handover> {
    let mut keep = a.fds();
    keep.extend_from_slice(extra);
    keep.sort_unstable();
    let mut next = 3;
    for &fd in &keep {
        crate::sys::close_range(next, fd - 1);
        next = fd + 1;
    }
    crate::sys::close_range(next, RawFd::MAX);
    for &fd in &keep {
        crate::sys::set_cloexec(fd, true)?;
    }
    let own = |fd: RawFd| -> io::Result<OwnedFd> { crate::sys::adopt_fd(fd) };
    let file = |fd: Option<RawFd>| -> io::Result<Option<std::fs::File>> {
        fd.map(|n| own(n).map(std::fs::File::from)).transpose()
    };
    // A unix socket, as it should be (local_addr fails on anything else).
    let listener = UnixListener::from(own(a.listener)?);
    listener.local_addr()?;
    let h = Handover {
        listener,
        log: std::fs::File::from(own(a.log)?),
        outputs: [file(a.out)?, file(a.err)?],
        stdin: file(a.stdin)?,
        tty: file(a.tty)?,
        init_pid: a.init_pid,
        created_at: a.created_at,
        started_at: a.started_at,
    };
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopt_round_trips() {
        let a = Adopt {
            listener: 3,
            log: 4,
            out: Some(5),
            err: Some(6),
            stdin: None,
            tty: None,
            init_pid: 42,
            created_at: 1_700_000_000_123_456_789,
            started_at: None,
        };
        assert_eq!(Adopt::parse(&a.encode()).unwrap(), a);
        let t = Adopt {
            out: None,
            err: None,
            tty: Some(5),
            started_at: Some(1_700_000_000_223_456_789),
            ..a
        };
        assert_eq!(Adopt::parse(&t.encode()).unwrap(), t);
    }

    #[test]
    fn bad_adopt_is_refused() {
        for bad in [
            "",
            "listener=3",
            "listener=3,log=4,out=5,err=6,stdin=-,tty=-,pid=42",
            "listener=3,log=3,out=5,err=6,stdin=-,tty=-,pid=42,created=1,started=-",
            "listener=1,log=4,out=5,err=6,stdin=-,tty=-,pid=42,created=1,started=-",
            "listener=3,log=4,out=5,err=6,stdin=-,tty=-,pid=0,created=1,started=-",
            "listener=3,log=4,out=x,err=6,stdin=-,tty=-,pid=42,created=1,started=-",
            "listener=3,log=4,out=5,err=6,stdin=-,tty=-,pid=42,created=1,started=-,extra=1",
            "listener=3,log=4,out=5,err=6,stdin=-,tty=-,pid=42,pid=43,created=1,started=-",
            "listener=3,log=4,out=5,err=6,stdin=-,tty=-,pid=42,created=1",
            "listener=3,log=4,out=5,err=6,stdin=-,tty=-,pid=42,created=1,started=x",
        ] {
            assert!(Adopt::parse(bad).is_err(), "{bad:?}");
        }
    }
}

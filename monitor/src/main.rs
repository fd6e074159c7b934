//! contd-monitor: one per container. Started by contd, it detaches at once
//! (double fork, `setsid`), becomes child subreaper, creates the container
//! with runtime-core so that init is its own child, writes the container's
//! output to the log, writes the exit record durably, and serves
//! `monitor.sock` in the container's state dir, whether or not a supervisor
//! is connected. It is single-threaded: one poll loop, no async runtime.
//!
//! Usage: `contd-monitor --state-dir DIR --log-path FILE --id ID --sync-fd N
//! [--linger SECS] [--stdin] [--terminal] [--start] [--log-max-size BYTES]
//! [--log-max-files N] [--seccomp-cache DIR]`.
//! Once the container is created the monitor re-executes itself with
//! `--adopt FDS` in place of `--sync-fd` (see [`handover`]). With
//! `--terminal` (contd sets `process.terminal` in the bundle's config.json
//! and says so) the container gets a pty whose master the monitor holds.
//! With `--start` the monitor starts the container as soon as it is created
//! and reports `Ready::Started` (`docker run`: no round trip for the start).
//! The bundle is `DIR/bundle`; runtime-core keeps its state in `DIR/runtime`.
//! On fd N the monitor writes one [`proto::monitor::Ready`] frame.
//! `--log-max-size` rotates the log before it would grow past BYTES (0, the
//! default, never rotates); `--log-max-files` is how many files are kept, the
//! live one included (at least 1, the default; see [`log::LogLimits`]).
//!
//! # Layout
//!
//! - `main`: arguments and daemonizing.
//! - `handover`: the re-exec after create, for a lean serving process.
//! - `server`: the poll loop, clients, init's exit and the exit record.
//! - `log`: the CRI log writer.
//! - `oom`: live OOM-kill notifications (cgroup v1 eventfd, v2 inotify).
//! - `sys`: the few raw system calls.

mod fifo;
mod handover;
mod log;
mod oom;
mod pb;
mod server;
mod shim;
mod sys;
mod ttrpc;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use log::LogLimits;
use proto::monitor::Ready;
use proto::{ErrorKind, ErrorReply};

/// What contd tells a new monitor.
#[derive(Debug)]
pub(crate) struct Args {
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    pub id: String,
    /// Where to report `Ready` (not with `--adopt`).
    pub sync_fd: i32,
    /// After the container exits, release it by ourselves after this long
    /// if no supervisor did (`None`: wait for a supervisor forever).
    pub linger: Option<std::time::Duration>,
    /// Keep a stdin pipe open for attached clients (non-terminal containers;
    /// a terminal container's stdin is its pty).
    pub stdin: bool,
    /// `--terminal`: the container has a terminal (contd built the spec
    /// and says so; the monitor does not parse it a second time).
    pub terminal: bool,
    /// `--start`: start the container right after creating it.
    pub start: bool,
    /// Rotation of the log (`--log-max-size`, `--log-max-files`).
    pub log_limits: LogLimits,
    /// `--adopt`: the monitor re-executed itself after creating the
    /// container (see [`handover`]); these are the fds it kept.
    pub adopt: Option<handover::Adopt>,
    /// `--seccomp-cache DIR`: compiled seccomp programs, shared by the
    /// monitors of one contd (a profile is compiled once, not per create).
    pub seccomp_cache: Option<PathBuf>,
    /// `--cgroup PATH`: the cgroup (from each hierarchy's root) the
    /// monitor moves into before it creates the container, out of
    /// contd's own.
    pub cgroup: Option<String>,
    /// `--bundle DIR`: the OCI bundle, if not `DIR/bundle` of the state
    /// dir (a shim's is containerd's bundle, which is its state dir too).
    pub bundle: Option<PathBuf>,
    /// `--shim JSON`: this monitor is containerd's shim for a task.
    pub shim: Option<shim::ShimArgs>,
}

/// Reads the arguments (without the program name).
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let (mut state_dir, mut log_path, mut id, mut sync_fd) = (None, None, None, None);
    let mut linger = None;
    let mut stdin = false;
    let mut terminal = false;
    let mut start = false;
    let mut adopt = None;
    let mut seccomp_cache = None;
    let mut cgroup = None;
    let mut bundle = None;
    let mut shim = None;
    let mut log_limits = LogLimits::default();
    while let Some(flag) = it.next() {
        if flag == "--stdin" {
            stdin = true;
            continue;
        }
        if flag == "--terminal" {
            terminal = true;
            continue;
        }
        if flag == "--start" {
            start = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--state-dir" => state_dir = Some(PathBuf::from(value)),
            "--log-path" => log_path = Some(PathBuf::from(value)),
            "--id" => id = Some(value),
            "--seccomp-cache" => seccomp_cache = Some(PathBuf::from(value)),
            "--cgroup" => cgroup = Some(value),
            "--bundle" => bundle = Some(PathBuf::from(value)),
            "--shim" => {
                shim = Some(serde_json::from_str(&value).map_err(|e| format!("bad --shim: {e}"))?)
            }
            "--adopt" => adopt = Some(handover::Adopt::parse(&value)?),
            "--sync-fd" => sync_fd = Some(value.parse().map_err(|_| "bad --sync-fd")?),
            "--log-max-size" => {
                log_limits.max_size = value
                    .parse()
                    .map_err(|_| format!("bad --log-max-size {value:?}: a number of bytes"))?;
            }
            "--log-max-files" => {
                log_limits.max_files = match value.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(format!(
                            "bad --log-max-files {value:?}: a number, at least 1"
                        ))
                    }
                };
            }
            "--linger" => {
                let secs: u64 = value.parse().map_err(|_| "bad --linger (seconds)")?;
                linger = Some(std::time::Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        state_dir: state_dir.ok_or("--state-dir is required")?,
        log_path: log_path.ok_or("--log-path is required")?,
        id: id.ok_or("--id is required")?,
        sync_fd: match (sync_fd, &adopt) {
            (Some(fd), None) => fd,
            (None, Some(_)) => -1,
            (None, None) => return Err("--sync-fd is required".into()),
            (Some(_), Some(_)) => return Err("--sync-fd and --adopt exclude each other".into()),
        },
        linger,
        stdin,
        terminal,
        start,
        log_limits,
        adopt,
        seccomp_cache,
        cgroup,
        bundle,
        shim,
    })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    // containerd runs us as containerd-shim-contd-v2 (a link to this
    // binary): the shim's commands.
    let name = argv
        .first()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default();
    if name.starts_with("containerd-shim") {
        return shim::main(&argv[1..]);
    }
    if argv.get(1).map(String::as_str) == Some("--shim-serve") {
        shim::serve(argv.get(2).map(String::as_str).unwrap_or_default());
    }
    let args = match parse_args(argv.into_iter().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("contd-monitor: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(adopt) = args.adopt.clone() {
        // Already detached: this is the monitor itself, re-executed.
        sys::exit_now(match server::adopt(args, &adopt) {
            Ok(()) => 0,
            Err(()) => 1,
        });
    }
    let sync = match sys::adopt_fd(args.sync_fd) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("contd-monitor: sync fd {}: {e}", args.sync_fd);
            return ExitCode::from(2);
        }
    };
    // Fork before anything else exists: the first process returns to contd
    // at once, the second starts a session, the third is the monitor,
    // reparented away from contd so contd's death or restart never reaches it.
    match sys::fork() {
        Ok(sys::Fork::Parent(pid)) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            return ExitCode::SUCCESS;
        }
        Ok(sys::Fork::Child) => {}
        Err(e) => return fail(&sync, format!("fork: {e}")),
    }
    if let Err(e) = nix::unistd::setsid() {
        fail(&sync, format!("setsid: {e}"));
        sys::exit_now(1);
    }
    // The monitor starts in its v2 cgroup (no grace period to wait for, as
    // a move would); the v1 hierarchies it joins itself, cheaply.
    let v2 = match args.cgroup.as_deref().map(runtime_core::open_v2_cgroup) {
        Some(Ok(fd)) => fd,
        Some(Err(e)) => {
            fail(
                &sync,
                format!("move the monitor out of contd's cgroup: {e}"),
            );
            sys::exit_now(1);
        }
        None => None,
    };
    let forked = match &v2 {
        Some(fd) => match sys::fork_into(std::os::fd::AsFd::as_fd(fd)) {
            Ok(f) => Ok((f, true)),
            // An older kernel: a plain fork, and a move later.
            Err(_) => sys::fork().map(|f| (f, false)),
        },
        None => sys::fork().map(|f| (f, false)),
    };
    let in_v2 = match forked {
        Ok((sys::Fork::Parent(_), _)) => sys::exit_now(0),
        Ok((sys::Fork::Child, in_v2)) => in_v2,
        Err(e) => {
            fail(&sync, format!("fork: {e}"));
            sys::exit_now(1);
        }
    };
    drop(v2);
    sys::exit_now(match daemon(args, sync, in_v2) {
        Ok(()) => 0,
        Err(()) => 1,
    })
}

/// Reports a failure on the sync pipe (if still open).
fn fail(sync: &OwnedFd, message: String) -> ExitCode {
    let reply = Ready::Failed(ErrorReply::new(ErrorKind::Internal, message));
    let mut f = std::fs::File::from(sync.try_clone().unwrap_or_else(|_| {
        // Without a duplicate there is nothing to report on.
        sys::exit_now(1)
    }));
    let _ = proto::write_frame(&mut f, &reply);
    ExitCode::from(1)
}

fn daemon(args: Args, sync: OwnedFd, in_v2: bool) -> Result<(), ()> {
    // Keep only the sync fd: move it to 3 and close everything above.
    let sync = if sync.as_raw_fd() != 3 {
        match sys::dup_to(&sync, 3) {
            Ok(fd) => {
                drop(sync);
                fd
            }
            Err(e) => {
                fail(&sync, format!("dup sync fd: {e}"));
                return Err(());
            }
        }
    } else {
        sync
    };
    sys::close_range(4, std::os::fd::RawFd::MAX);
    if let Some(null) = sys::stdio_to_null() {
        // The sync fd may have been 0, 1 or 2 (contd passes its pipe as
        // stdout): then /dev/null took that number, and it must stay open.
        if null.as_raw_fd() <= 2 {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(null);
        }
    }
    sys::ignore_sigpipe();
    // The kernel's OOM killer should pick the container, never its monitor.
    // Lowering the score needs CAP_SYS_RESOURCE; without it (some sandboxes)
    // the monitor runs on with the score it has. The container gets its
    // own from the spec, or 0 (see server.rs), not ours.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    if let Err(e) = sys::set_subreaper() {
        fail(&sync, format!("set child subreaper: {e}"));
        return Err(());
    }
    // Out of contd's cgroup before the container exists, so that its
    // processes start outside it too (in the hierarchies the runtime does
    // not place them in).
    if let Some(cg) = &args.cgroup {
        if let Err(e) = runtime_core::join_cgroup(cg, !in_v2) {
            fail(
                &sync,
                format!("move the monitor out of contd's cgroup: {e}"),
            );
            return Err(());
        }
    }
    server::run(args, sync)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, String> {
        let base = [
            "--state-dir",
            "/s",
            "--log-path",
            "/l",
            "--id",
            "c",
            "--sync-fd",
            "3",
        ];
        parse_args(base.iter().chain(extra).map(|s| s.to_string()))
    }

    #[test]
    fn log_limits_default_to_no_rotation() {
        assert_eq!(parse(&[]).unwrap().log_limits, LogLimits::default());
        assert_eq!(LogLimits::default().max_size, 0);
        assert_eq!(LogLimits::default().max_files, 1);
    }

    #[test]
    fn log_limits_are_read() {
        let a = parse(&["--log-max-size", "1048576", "--log-max-files", "5"]).unwrap();
        assert_eq!(
            a.log_limits,
            LogLimits {
                max_size: 1 << 20,
                max_files: 5
            }
        );
    }

    #[test]
    fn bad_log_limits_are_refused() {
        for bad in [
            &["--log-max-files", "0"][..],
            &["--log-max-files", "-1"],
            &["--log-max-files", "many"],
            &["--log-max-size", "-5"],
            &["--log-max-size", "10M"],
            &["--log-max-size"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}

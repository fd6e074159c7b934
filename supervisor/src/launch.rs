//! Starting a monitor: the one place the supervisor forks, and it execs at
//! once (the container itself is created by the single-threaded monitor).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use proto::monitor::Ready;

use crate::Error;

/// What a new monitor reported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Launched {
    pub pid: i32,
    pub monitor_pid: i32,
    /// Set when the monitor was asked to start the container too.
    pub started_at: Option<i64>,
}

/// Runs `contd-monitor` for the container in `dir` and waits for its
/// readiness report. With `start` the monitor starts the container as soon
/// as it is created (one step for `run`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn launch(
    monitor_bin: &Path,
    dir: &Path,
    log_path: &Path,
    id: &str,
    config: &crate::config::Shared,
    stdin: bool,
    terminal: bool,
    start: bool,
) -> Result<Launched, Error> {
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::internal(format!("create sync pipe: {e}")))?;
    let mut cmd = tokio::process::Command::new(monitor_bin);
    cmd.arg("--state-dir")
        .arg(dir)
        .arg("--log-path")
        .arg(log_path)
        .arg("--id")
        .arg(id)
        .arg("--seccomp-cache")
        .arg(crate::seccomp_cache_dir(config))
        // The sync pipe is the monitor's stdout: std then spawns with
        // posix_spawn (no copy of contd's page tables, no code of ours
        // between fork and exec), and no other child inherits the pipe.
        .args(["--sync-fd", "1"])
        .arg("--cgroup")
        .arg(config.monitor_cgroup());
    if stdin {
        cmd.arg("--stdin");
    }
    if terminal {
        cmd.arg("--terminal");
    }
    if start {
        cmd.arg("--start");
    }
    if let Some(l) = config.monitor_linger {
        cmd.arg("--linger").arg(l.as_secs().to_string());
    }
    let t = config.tunables();
    if t.log_max_size > 0 {
        cmd.arg("--log-max-size")
            .arg(t.log_max_size.to_string())
            .arg("--log-max-files")
            .arg(t.log_max_files.max(1).to_string());
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::null());
    let spawned = cmd.spawn();
    // The command holds our copy of the write end: without dropping it the
    // read below would never see the end of a monitor that died silently.
    drop(cmd);
    let mut child = spawned
        .map_err(|e| Error::internal(format!("start monitor {}: {e}", monitor_bin.display())))?;
    // The monitor opens (creates) the log before it creates the container.
    // Creating a file can take a millisecond on a busy disk: do it here
    // while the monitor starts up, so that it finds the file there. Either
    // side may create it (no O_EXCL); a failure is the monitor's to report.
    let log = log_path.to_path_buf();
    let precreate = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(log)
    });
    let read = tokio::task::spawn_blocking(move || {
        proto::read_frame::<Ready>(&mut std::fs::File::from(r))
    });
    let ready = tokio::time::timeout(Duration::from_secs(60), read).await;
    // Done before a failed create removes an empty log again.
    let _ = precreate.await;
    // The launcher process exits right after its first fork.
    let _ = child.wait().await;
    match ready {
        Ok(Ok(Ok(Ready::Created { pid, monitor_pid }))) if !start => Ok(Launched {
            pid,
            monitor_pid,
            started_at: None,
        }),
        Ok(Ok(Ok(Ready::Started {
            pid,
            monitor_pid,
            started_at,
        }))) if start => Ok(Launched {
            pid,
            monitor_pid,
            started_at: Some(started_at),
        }),
        Ok(Ok(Ok(Ready::Failed(e)))) => Err(e.into()),
        Ok(Ok(Ok(other))) => Err(Error::internal(format!(
            "monitor reported {other:?} (start: {start})"
        ))),
        Ok(Ok(Err(e))) => Err(Error::internal(format!(
            "monitor exited without reporting: {e}"
        ))),
        Ok(Err(e)) => Err(Error::internal(format!("wait for monitor: {e}"))),
        Err(_) => Err(Error::internal("monitor did not report within 60 s")),
    }
}

//! Starting a monitor: the one place the supervisor forks, and it execs at
//! once (the container itself is created by the single-threaded monitor).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use proto::monitor::Ready;

use crate::Error;

/// Runs `contd-monitor` for the container in `dir` and waits for its
/// readiness report.
pub(crate) async fn launch(
    monitor_bin: &Path,
    dir: &Path,
    log_path: &Path,
    id: &str,
    config: &crate::Config,
    stdin: bool,
    terminal: bool,
) -> Result<(i32, i32), Error> {
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::internal(format!("create sync pipe: {e}")))?;
    let wfd = w.as_raw_fd();
    let mut cmd = tokio::process::Command::new(monitor_bin);
    cmd.arg("--state-dir")
        .arg(dir)
        .arg("--log-path")
        .arg(log_path)
        .arg("--id")
        .arg(id)
        .arg("--seccomp-cache")
        .arg(crate::seccomp_cache_dir(config))
        .args(["--sync-fd", "3"]);
    if stdin {
        cmd.arg("--stdin");
    }
    if terminal {
        cmd.arg("--terminal");
    }
    if let Some(l) = config.monitor_linger {
        cmd.arg("--linger").arg(l.as_secs().to_string());
    }
    if config.log_max_size > 0 {
        cmd.arg("--log-max-size")
            .arg(config.log_max_size.to_string())
            .arg("--log-max-files")
            .arg(config.log_max_files.max(1).to_string());
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure runs between fork and exec and calls only dup2,
    // which is async-signal-safe; `wfd` stays open in the parent until
    // `spawn` returns. dup2 clears close-on-exec on fd 3 only.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::internal(format!("start monitor {}: {e}", monitor_bin.display())))?;
    drop(w);
    let read = tokio::task::spawn_blocking(move || {
        proto::read_frame::<Ready>(&mut std::fs::File::from(r))
    });
    let ready = tokio::time::timeout(Duration::from_secs(60), read).await;
    // The launcher process exits right after its first fork.
    let _ = child.wait().await;
    match ready {
        Ok(Ok(Ok(Ready::Created { pid, monitor_pid }))) => Ok((pid, monitor_pid)),
        Ok(Ok(Ok(Ready::Failed(e)))) => Err(e.into()),
        Ok(Ok(Err(e))) => Err(Error::internal(format!(
            "monitor exited without reporting: {e}"
        ))),
        Ok(Err(e)) => Err(Error::internal(format!("wait for monitor: {e}"))),
        Err(_) => Err(Error::internal("monitor did not report within 60 s")),
    }
}

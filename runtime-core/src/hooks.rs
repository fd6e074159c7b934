//! OCI hooks: each runs with the container's state JSON on stdin, its own
//! `env`, and its `timeout` (seconds); a failing or timed-out hook fails the
//! operation that ran it, but for poststop hooks, which only warn and go on
//! to the next, as the runtime spec says ([`run_all`]).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// Runs `hooks` in order; stops at the first failure. A hook without
/// `env` gets `default_env` (startContainer hooks get the process's, as
/// with runc and crun), or an empty environment.
///
/// # Errors
/// Text naming the hook kind, its index and path, and what failed.
pub(crate) fn run(
    kind: &str,
    hooks: &[Hook],
    state_json: &[u8],
    default_env: Option<&[String]>,
) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state_json, default_env)
            .map_err(|e| format!("{kind} hook #{i} {}: {e}", h.path().display()))?;
    }
    Ok(())
}

/// Runs every hook of `hooks` in order, whatever fails; returns what
/// failed, one line each.
pub(crate) fn run_all(kind: &str, hooks: &[Hook], state_json: &[u8]) -> Vec<String> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            run_one(h, state_json, None)
                .err()
                .map(|e| format!("{kind} hook #{i} {}: {e}", h.path().display()))
        })
        .collect()
}

fn run_one(h: &Hook, state_json: &[u8], default_env: Option<&[String]>) -> Result<(), String> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for kv in h.env().as_deref().or(default_env).unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(state_json);
    }
    let deadline = h
        .timeout()
        .and_then(|t| u64::try_from(t).ok())
        .map(|t| Instant::now() + Duration::from_secs(t));
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("failed: {status}")),
            Ok(None) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", h.timeout().unwrap_or(0)));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

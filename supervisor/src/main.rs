//! `contd`: the container supervisor daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use supervisor::{Config, Supervisor};
use tokio::signal::unix::{signal, SignalKind};

/// The contd container supervisor. Stopping it never stops a container.
#[derive(Debug, Parser)]
#[command(name = "contd", version)]
struct Cli {
    /// Per-container state directories live here.
    #[arg(long, default_value = "/run/contd/containers")]
    state_dir: PathBuf,
    /// Container logs are written here, as <ns>/<name>.log.
    #[arg(long, default_value = "/var/log/contd")]
    log_dir: PathBuf,
    /// The api socket.
    #[arg(long, default_value = "/run/contd/contd.sock")]
    socket: PathBuf,
    /// The contd-monitor binary (default: beside contd).
    #[arg(long)]
    monitor: Option<PathBuf>,
    /// Parent of the containers' cgroups in every hierarchy.
    #[arg(long, default_value = "contd")]
    cgroup_parent: String,
    /// Seconds a monitor stays after its container exited if nobody removes
    /// the container (default: until removed). The exit record stays.
    #[arg(long)]
    monitor_linger: Option<u64>,
    /// Rotate a container's log before it grows past BYTES (0: never).
    #[arg(long, default_value_t = 0)]
    log_max_size: u64,
    /// Log files kept per container, the live one included.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    log_max_files: u32,
    /// On `rm`, move a container's log files aside (to
    /// <log-dir>/<ns>/.removed/<name>-<created>/) instead of deleting them.
    #[arg(long)]
    keep_logs: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONTD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("contd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One connection per container's monitor plus the clients: the soft
/// limit (often 1024) is raised to the hard one, as containerd and dockerd
/// do. Containers get their own limit from their spec.
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open files limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    raise_nofile_limit();
    let mut config = Config {
        state_dir: cli.state_dir,
        log_dir: cli.log_dir,
        socket: cli.socket,
        cgroup_parent: cli.cgroup_parent,
        monitor_linger: cli.monitor_linger.map(std::time::Duration::from_secs),
        log_max_size: cli.log_max_size,
        log_max_files: cli.log_max_files,
        keep_logs: cli.keep_logs,
        ..Config::default()
    };
    if let Some(m) = cli.monitor {
        config.monitor_bin = m;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(async {
        let sup = Supervisor::start(config).await.context("start contd")?;
        let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping; containers keep running");
        sup.shutdown().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

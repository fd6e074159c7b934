//! `contd-runtime`: a runc-compatible command line over runtime-core, so
//! OCI tooling (podman `--runtime`, containerd's runc shim with
//! `BinaryName`) can drive contd's runtime.
//!
//! Errors go to stderr as one line and, with `--log`, to the log file as a
//! logrus-style record (`--log-format json` is what containerd's shim
//! reads); the exit code is 1, as runc's.

mod cmd;
mod log;
mod tty;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "contd-runtime",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: ", "1.2.0"),
    about = "contd's OCI runtime, a drop-in for runc"
)]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/contd-runtime")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd cgroups (not supported: refused).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: only "false" or "auto" (as root) are accepted; a bare
    /// `--rootless` (as `spec --rootless`) means "true" and is refused.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CreateArgs {
    /// Container id.
    pub id: String,
    /// Bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write init's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Pass this many extra fds (from 3 on) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility (no session keyring is made).
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Accepted for runc compatibility; not supported (refused when given).
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Create a container (init waits for start).
    Create(CreateArgs),
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Print a container's state as JSON.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal to a container's init (or every process with --all).
    Kill {
        /// Container id.
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container's resources.
    Delete {
        /// Container id.
        id: String,
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
    },
    /// Create and start a container; wait for it unless detached.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach: return once started.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container after it exits (runc's --keep).
        #[arg(long)]
        keep: bool,
    },
    /// Freeze every process of a container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// List the processes of a container.
    Ps {
        /// Container id.
        id: String,
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Arguments for ps(1) (default -ef).
        #[arg(last = true)]
        ps_args: Vec<String>,
    },
    /// Run a process in a running container.
    Exec(cmd::ExecArgs),
    /// List containers.
    List {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        /// Bundle directory.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print what this runtime supports, as JSON.
    Features,
    /// Print a container's resource usage, as JSON (runc's `events --stats`).
    Events {
        /// Container id.
        id: String,
        /// One sample (the only mode).
        #[arg(long)]
        stats: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.as_deref(), &cli.log_format, cli.debug);
    match cmd::dispatch(&cli, &logger) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logger.error(&e);
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

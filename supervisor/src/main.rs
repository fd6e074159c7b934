//! `contd`: the container supervisor daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use supervisor::notify::{monotonic_usec, FromManager, Notifier};
use supervisor::{Config, Settings, Supervisor, SupervisorHandle};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};
use tracing_subscriber::{fmt, prelude::*, reload, EnvFilter, Registry};

/// The contd container supervisor. Stopping it never stops a container.
///
/// Every setting is also a key of the configuration file (TOML,
/// /etc/contd/config.toml or --config), spelled as the flag without its leading
/// dashes (`log-level = "debug"`); a flag overrides the file. SIGHUP reloads
/// the file: log-level, log-max-size, log-max-files, default-restart and
/// socket-group take effect at once (the log limits for containers created
/// from then on); other changes are logged as needing a restart.
#[derive(Debug, Parser)]
#[command(name = "contd", version)]
struct Cli {
    /// The configuration file [default: /etc/contd/config.toml, if present].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Per-container state directories live here [default: /run/contd/containers].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Container logs are written here, as <ns>/<name>.log [default: /var/log/contd].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// The api socket [default: /run/contd/contd.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Members of GROUP may use the api socket (mode 0660); without it, root alone.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// The contd-monitor binary [default: beside contd, then on PATH].
    #[arg(long, value_name = "PATH")]
    monitor: Option<PathBuf>,
    /// Parent of the containers' cgroups in every hierarchy; monitors go to
    /// <PARENT>-monitors [default: contd].
    #[arg(long, value_name = "PARENT")]
    cgroup_parent: Option<String>,
    /// Seconds a monitor stays after its container exited if nobody removes
    /// the container [default: until removed]. The exit record stays.
    #[arg(long, value_name = "SECS")]
    monitor_linger: Option<u64>,
    /// Rotate a container's log before it grows past SIZE (4096, 512k, 10m,
    /// 1g; 0: never) [default: 0].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    log_max_size: Option<u64>,
    /// Log files kept per container, the live one included [default: 1].
    #[arg(long, value_name = "N")]
    log_max_files: Option<u32>,
    /// On `rm`, move a container's log files aside (to
    /// <log-dir>/<ns>/.removed/<name>-<created>/) instead of deleting them.
    #[arg(long)]
    keep_logs: bool,
    /// The restart policy of containers created without one: no,
    /// on-failure[:N], always, unless-stopped [default: no].
    #[arg(long, value_name = "POLICY")]
    default_restart: Option<String>,
    /// Seconds to wait for one monitor when adopting containers at start;
    /// a monitor slower than this is listed as unknown and retried in the
    /// background [default: 3].
    #[arg(long, value_name = "SECS")]
    adopt_timeout: Option<u64>,
    /// contd's own log level: error, warn, info, debug, trace [default:
    /// info, or $CONTD_LOG].
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// contd's own log format on stderr: text or json [default: text].
    /// Colours only when stderr is a terminal and NO_COLOR is unset.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Check the configuration (the file and the flags) and exit: 0 if
    /// contd would start with it.
    #[arg(long)]
    validate: bool,
    /// Print a man page (`man`) and exit.
    #[arg(long, value_name = "WHAT", hide = true, value_parser = ["man"])]
    generate: Option<String>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    supervisor::parse_size(s)
}

impl Cli {
    /// The flags given, as settings (over the file's).
    fn settings(&self) -> Settings {
        Settings {
            state_dir: self.state_dir.clone(),
            log_dir: self.log_dir.clone(),
            socket: self.socket.clone(),
            socket_group: self.socket_group.clone(),
            monitor: self.monitor.clone(),
            cgroup_parent: self.cgroup_parent.clone(),
            monitor_linger: self.monitor_linger,
            log_max_size: self.log_max_size.map(supervisor::Size),
            log_max_files: self.log_max_files,
            keep_logs: self.keep_logs.then_some(true),
            default_restart: self.default_restart.clone(),
            adopt_timeout: self.adopt_timeout,
            log_level: self.log_level.clone(),
            log_format: self.log_format.clone(),
        }
    }

    /// The file's settings under the flags', and the checked config.
    fn load(&self) -> anyhow::Result<(Settings, Config)> {
        let mut s = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None if std::path::Path::new(supervisor::DEFAULT_CONFIG_PATH).exists() => {
                Settings::from_file(std::path::Path::new(supervisor::DEFAULT_CONFIG_PATH))?
            }
            None => Settings::default(),
        };
        s.overlay(self.settings());
        let config = Config::builder().settings(s.clone()).build()?;
        Ok((s, config))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.generate.is_some() {
        use clap::CommandFactory;
        let page = clap_mangen::Man::new(Cli::command()).section("8");
        let mut out = std::io::stdout();
        return match page.render(&mut out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("contd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Before any thread exists: the variables leave the environment.
    let manager = FromManager::take_from_env();
    let (settings, config) = match cli.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("contd: {e:#}");
            return ExitCode::from(2);
        }
    };
    if cli.validate {
        println!("contd: configuration OK");
        return ExitCode::SUCCESS;
    }
    let level = level_of(&settings);
    let format = settings.log_format.clone().unwrap_or_else(|| "text".into());
    let filter = match init_logging(&level, format == "json") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("contd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let logging = Logging {
        level,
        format,
        filter,
    };
    match run(cli, config, logging, manager) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("contd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// contd's own log as it runs: the level a reload may change, the format
/// it may not.
struct Logging {
    level: String,
    format: String,
    filter: FilterHandle,
}

/// The level the settings ask for: the key or flag, else `CONTD_LOG`,
/// else info.
fn level_of(s: &Settings) -> String {
    s.log_level
        .clone()
        .or_else(|| std::env::var("CONTD_LOG").ok())
        .unwrap_or_else(|| "info".into())
}

/// Text (coloured only on a terminal, never with `NO_COLOR`) or JSON lines
/// on stderr, at a level a reload can change.
fn init_logging(level: &str, json: bool) -> anyhow::Result<FilterHandle> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_new(level).with_context(|| format!("log-level {level:?}"))?;
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init();
    } else {
        registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .init();
    }
    Ok(handle)
}

/// One connection per container's monitor plus the clients: the soft
/// limit (often 1024) is raised to the hard one, as containerd and dockerd
/// do. Containers get their own limit from their spec.
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                warn!(error = %e, soft, hard, "cannot raise the open files limit");
            }
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot read the open files limit"),
    }
}

/// `STATUS=` for the service manager: how many containers, how many run.
async fn status_line(h: &SupervisorHandle) -> String {
    match h.list(None).await {
        Ok(all) => {
            let running = all
                .iter()
                .filter(|d| d.status == proto::Status::Running)
                .count();
            format!("STATUS={} containers, {running} running", all.len())
        }
        Err(e) => format!("STATUS=cannot list containers: {e}"),
    }
}

fn send(n: Option<&Notifier>, msg: &str) {
    if let Some(n) = n {
        if let Err(e) = n.notify(msg) {
            warn!(error = %e, "notify the service manager");
        }
    }
}

fn run(cli: Cli, config: Config, mut logging: Logging, manager: FromManager) -> anyhow::Result<()> {
    raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(async {
        let notifier = manager.notifier.as_ref();
        let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("install SIGHUP handler")?;
        let sup = Supervisor::start(config).await.context("start contd")?;
        let h = sup.handle();
        let found = sup.adopting();
        sup.adopted().await;
        let status = status_line(&h).await;
        info!(adopted = found, "ready");
        send(notifier, &format!("READY=1\n{status}"));
        let mut events = h.events(proto::api::EventFilter::default()).await?;
        let mut dirty = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut watchdog = manager.watchdog.map(tokio::time::interval);
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    send(notifier, &format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
                    reload(&cli, &sup, &mut logging);
                    let status = status_line(&h).await;
                    send(notifier, &format!("READY=1\n{status}"));
                }
                ev = events.next() => match ev {
                    Some(_) => dirty = true,
                    // Fell behind the events ring: listen again.
                    None => {
                        events = h.events(proto::api::EventFilter::default()).await?;
                        dirty = true;
                    }
                },
                _ = tick.tick(), if dirty => {
                    dirty = false;
                    send(notifier, &status_line(&h).await);
                }
                _ = async { watchdog.as_mut().unwrap().tick().await }, if watchdog.is_some() => {
                    // Only a supervisor that still answers pets the watchdog.
                    if tokio::time::timeout(Duration::from_secs(5), h.namespaces()).await.is_ok() {
                        send(notifier, "WATCHDOG=1");
                    }
                }
            }
        }
        send(notifier, "STOPPING=1");
        info!("stopping; containers keep running");
        sup.shutdown().await;
        Ok(())
    })
}

/// SIGHUP: the file again, under the same flags; what can change now does,
/// the rest is logged as needing a restart. A broken file changes nothing.
fn reload(cli: &Cli, sup: &Supervisor, logging: &mut Logging) {
    let (settings, config) = match cli.load() {
        Ok(c) => c,
        Err(e) => {
            error!("reload: {e:#}; the running configuration stays");
            return;
        }
    };
    let new_level = level_of(&settings);
    let level = &mut logging.level;
    let filter = &logging.filter;
    let new_filter = if new_level == *level {
        None
    } else {
        match EnvFilter::try_new(&new_level) {
            Ok(f) => Some(f),
            Err(e) => {
                error!("reload: log-level {new_level:?}: {e}; the running configuration stays");
                return;
            }
        }
    };
    // What changed is logged at the more verbose of the two levels: a
    // quieter level is set after, a louder one before.
    let rank = |l: &str| supervisor::LOG_LEVELS.iter().position(|x| *x == l);
    let louder = matches!((rank(level), rank(&new_level)), (Some(a), Some(b)) if b > a);
    let switch = |filter_now: Option<EnvFilter>, level: &mut String| {
        if let Some(f) = filter_now {
            let change = format!("log-level: {level:?} -> {new_level:?}");
            if !louder {
                info!(change = %change, "reloaded");
            }
            match filter.reload(f) {
                Ok(()) => *level = new_level.clone(),
                Err(e) => error!("reload: log-level: {e}"),
            }
            if louder {
                info!(change = %change, "reloaded");
            }
        }
    };
    let mut pending = new_filter;
    let changed = pending.is_some();
    if louder {
        switch(pending.take(), level);
    }
    if settings.log_format.as_deref().unwrap_or("text") != logging.format {
        warn!(
            key = "log-format",
            "changed in the configuration; takes effect after a restart"
        );
    }
    let r = sup.reload(&config);
    for change in &r.applied {
        info!(change = %change, "reloaded");
    }
    for key in &r.need_restart {
        warn!(key = %key, "changed in the configuration; takes effect after a restart");
    }
    if !changed && r.applied.is_empty() && r.need_restart.is_empty() {
        info!("reloaded; nothing changed");
    }
    switch(pending, level);
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

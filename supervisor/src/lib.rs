//! contd, the container supervisor, as a library: a service manager embeds
//! it with [`Supervisor::start`] and drives it through the cloneable
//! [`SupervisorHandle`], which offers the same operations as the api socket.
//!
//! contd keeps no database: on start it scans its state dir and adopts every
//! container found there, talking to each one's monitor, or reading the
//! durable exit record of a container whose monitor has gone. Stopping contd
//! never stops a container.
//!
//! # Embedding
//!
//! ```no_run
//! use supervisor::proto::api::{ContainerConfig, EventFilter, RestartPolicy};
//! use supervisor::{Config, Supervisor};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! // The daemon's defaults and checks; no api socket, the handle is the
//! // way in; contd-monitor is found beside this executable or on PATH.
//! let config = Config::builder()
//!     .state_dir("/run/my-manager/containers")
//!     .log_dir("/var/log/my-manager")
//!     .cgroup_parent("my-manager")
//!     .no_socket()
//!     .build()?;
//! let sup = Supervisor::start(config).await?;
//! sup.adopted().await; // what an earlier run left is adopted first
//! let h = sup.handle();
//! let mut events = h.events(EventFilter::default()).await?;
//! h.run(ContainerConfig {
//!     ns: "services".into(),
//!     name: "web".into(),
//!     rootfs: "/srv/rootfs".into(),
//!     args: vec!["httpd".into(), "-f".into()],
//!     restart: RestartPolicy::Always,
//!     ..ContainerConfig::default()
//! })
//! .await?;
//! while let Some(Ok(ev)) = events.next().await {
//!     println!("{} {}", ev.name, ev.kind.word());
//! }
//! sup.shutdown().await; // the containers keep running
//! # Ok(()) }
//! ```
//!
//! `examples/service_manager.rs` is a whole one: two services with restart
//! policies, their events, and adoption when it is started again.
//!
//! # Layout
//!
//! - `registry`: the supervisor actor, `(ns, name) → ContainerHandle`.
//! - `container`: one actor per container: its live link, its state, its
//!   restart policy.
//! - `link`: connections to a monitor, and the live link.
//! - `events`: the events broadcast and [`EventStream`].
//! - `restart`: restart policies and their state on disk.
//! - `logs`: reading logs back ([`LogStream`]).
//! - `session`: attach and exec ([`Session`]).
//! - `top`: a container's processes from `/proc`.
//! - `launch`: starting a monitor.
//! - `config`: [`Config`], its builder and the file's [`Settings`].
//! - [`notify`]: the service manager's readiness protocol.
//! - `spec`: request validation and the secure `config.json`.
//! - `api`: the api socket server: frames to handle calls and back.
//! - `error`: [`Error`].

mod api;
mod config;
mod container;
mod error;
mod events;
mod launch;
mod link;
mod logs;
pub mod notify;
mod registry;
mod restart;
mod session;
mod spec;
mod top;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::api::{
    ContainerConfig, ContainerDetails, Event, EventFilter, EventKind, ExecRequest, LogOptions,
    LogStatus, Process, RunOptions, Stats,
};
use proto::{ExitRecord, Resources, Status};
use tokio::sync::watch;
use tracing::{info, warn};

pub use config::{
    check_log_format, check_log_level, parse_size, Config, ConfigBuilder, ConfigError, Reloaded,
    Settings, Size, DEFAULT_CONFIG_PATH, LOG_LEVELS,
};
pub use error::Error;
pub use events::EventStream;
pub use logs::{LogChunk, LogStream};
/// The request and answer types (`ContainerConfig`, `EventKind`, …), so an
/// embedder needs no second dependency.
pub use proto;
pub use session::{Session, SessionInput, SessionOutput, SessionReader, SessionWriter};

use registry::Registry;

/// A running supervisor.
#[derive(Debug)]
pub struct Supervisor {
    handle: SupervisorHandle,
    shared: Arc<config::Shared>,
    shutdown: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    adopting: watch::Receiver<usize>,
}

/// The operations of contd; cheap to clone.
#[derive(Clone, Debug)]
pub struct SupervisorHandle {
    registry: Registry,
    bus: events::Bus,
}

/// Beside the namespaces in the state dir (no namespace name starts with
/// a dot): what the monitors keep for all containers.
const CACHE_DIR: &str = ".cache";

/// Where the monitors keep compiled seccomp programs: the default profile
/// is compiled by the first container's monitor, not by each one.
pub(crate) fn seccomp_cache_dir(config: &Config) -> PathBuf {
    config.state_dir.join(CACHE_DIR).join("seccomp")
}

/// Scans `<state_dir>/<ns>/<name>/meta.json` for containers to adopt.
fn scan(config: &Config) -> Vec<spec::Meta> {
    let mut found = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(&config.state_dir) else {
        return found;
    };
    for ns in namespaces.flatten() {
        if ns.file_name() == CACHE_DIR {
            continue;
        }
        let Ok(names) = std::fs::read_dir(ns.path()) else {
            continue;
        };
        for entry in names.flatten() {
            let path = entry.path();
            // A create or rm cut by a kill of contd: undone, or finished.
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with('.') {
                if file.ends_with(container::CREATING) || file.ends_with(container::REMOVING) {
                    info!(path = %path.display(), "removing a half-made or half-removed state dir");
                    let _ = std::fs::remove_dir_all(&path);
                }
                continue;
            }
            // The same from a contd before state dirs were made whole first:
            // no meta.json and no monitor ever started in it.
            if !path.join("meta.json").exists()
                && !path.join("monitor.pid").exists()
                && !path.join("monitor.sock").exists()
            {
                info!(path = %path.display(), "removing a state dir without meta.json or monitor");
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            let meta_path = path.join("meta.json");
            match std::fs::read(&meta_path)
                .ok()
                .and_then(|d| serde_json::from_slice::<spec::Meta>(&d).ok())
            {
                Some(m)
                    if proto::validate_name("namespace", &m.ns).is_ok()
                        && proto::validate_name("name", &m.name).is_ok()
                        && entry.path() == config.state_dir.join(&m.ns).join(m.dir_name()) =>
                {
                    info!(ns = m.ns, name = m.name, "adopted");
                    found.push(m);
                }
                _ => warn!(path = %entry.path().display(), "not a container state dir, left alone"),
            }
        }
    }
    found
}

impl Supervisor {
    /// Starts contd: finds the containers on disk, starts adopting them
    /// (each on its own, within [`Config::adopt_timeout`]) and serves the
    /// api socket at once, if the configuration has one.
    ///
    /// # Errors
    /// If the directories cannot be created or the socket cannot be bound
    /// (another contd serving it is an error).
    pub async fn start(config: Config) -> Result<Supervisor, Error> {
        for d in [&config.state_dir, &config.log_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::internal(format!("create {}: {e}", d.display())))?;
        }
        // Containers' specs hold their env: nobody but root looks inside.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| {
                    Error::internal(format!("chmod {}: {e}", config.state_dir.display()))
                })?;
        }
        if let Some(parent) = config.socket.as_deref().and_then(std::path::Path::parent) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::internal(format!("create {}: {e}", parent.display())))?;
        }
        let adopted = scan(&config);
        let (adopting_tx, adopting) = watch::channel(adopted.len());
        let adopting_tx = Arc::new(adopting_tx);
        let shared = Arc::new(config::Shared::new(config));
        let bus = events::Bus::new();
        let listener = match &shared.socket {
            Some(path) => Some(api::bind(path, shared.tunables().socket_gid()).await?),
            None => None,
        };
        let registry = Registry::spawn(shared.clone(), bus.clone(), adopted, &adopting_tx);
        drop(adopting_tx);
        let handle = SupervisorHandle { registry, bus };
        let (shutdown, rx) = watch::channel(false);
        let server = listener.map(|l| {
            if let Some(p) = &shared.socket {
                info!(socket = %p.display(), "serving");
            }
            tokio::spawn(api::serve(l, handle.clone(), shared.clone(), rx))
        });
        Ok(Supervisor {
            handle,
            shared,
            shutdown,
            server,
            adopting,
        })
    }

    /// The handle to drive this supervisor.
    pub fn handle(&self) -> SupervisorHandle {
        self.handle.clone()
    }

    /// Returns once every container found on disk at start has been
    /// adopted: its monitor answered, was found gone, or did not answer
    /// within the adoption timeout (then it is retried in the background).
    pub async fn adopted(&self) {
        let mut rx = self.adopting.clone();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// How many containers found at start are still being adopted.
    pub fn adopting(&self) -> usize {
        *self.adopting.borrow()
    }

    /// The configuration in effect (reloadable settings as they were at
    /// start).
    pub fn config(&self) -> &Config {
        &self.shared
    }

    /// Takes the reloadable settings of `new` (log limits for new
    /// containers, the default restart policy, the socket group); reports
    /// those that changed, and those that differ but need a restart.
    pub fn reload(&self, new: &Config) -> Reloaded {
        let r = self.shared.reload(new);
        if r.applied.iter().any(|a| a.starts_with("socket-group:")) {
            if let Some(path) = &self.shared.socket {
                if let Err(e) = api::set_access(path, self.shared.tunables().socket_gid()) {
                    warn!(error = %e, "socket permissions not changed");
                }
            }
        }
        r
    }

    /// Stops serving and removes the socket. Containers keep running.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server {
            let _ = server.await;
        }
        if let Some(socket) = &self.shared.socket {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl SupervisorHandle {
    /// Creates a container (and starts it when `config.start`).
    ///
    /// # Errors
    /// An invalid field (named), the name taken, or a creation failure
    /// (nothing is left).
    pub async fn create(&self, config: ContainerConfig) -> Result<ContainerDetails, Error> {
        self.create_with(config, RunOptions::default()).await
    }

    /// Creates a container (and starts it when `config.start`), with
    /// lifecycle options: `auto_remove` removes it once it has exited for
    /// good, as docker's `--rm`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn create_with(
        &self,
        config: ContainerConfig,
        options: RunOptions,
    ) -> Result<ContainerDetails, Error> {
        self.create_with_init(config, options, false).await
    }

    /// As [`create_with`](Self::create_with); with `init`, the container's
    /// init is contd's: a reaper that runs the command as its only child,
    /// passes signals on to it and exits with its code, as docker's
    /// `--init` (nothing is added to the rootfs).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn create_with_init(
        &self,
        config: ContainerConfig,
        options: RunOptions,
        init: bool,
    ) -> Result<ContainerDetails, Error> {
        proto::validate_name("namespace", &config.ns)?;
        proto::validate_name("name", &config.name)?;
        if let Some(s) = options.stop_signal.filter(|s| !(1..=64).contains(s)) {
            return Err(Error::invalid(format!(
                "stop_signal: {s} is not a signal (1 to 64)"
            )));
        }
        let (ns, name) = (config.ns.clone(), config.name.clone());
        let h = self.registry.reserve(&ns, &name).await?;
        match h.create(config, options, init).await {
            Ok(d) => Ok(d),
            Err(e) => {
                // Created but failed to start: it exists, keep it for
                // inspection.
                if h.inspect().await.is_err() {
                    self.registry.forget(&ns, &name).await;
                }
                Err(e)
            }
        }
    }

    /// Creates and starts a container (`create` with `start` set).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn run(&self, mut config: ContainerConfig) -> Result<ContainerDetails, Error> {
        config.start = true;
        self.create(config).await
    }

    async fn get(&self, ns: &str, name: &str) -> Result<container::ContainerHandle, Error> {
        proto::validate_name("namespace", ns)?;
        proto::validate_name("name", name)?;
        self.registry.get(ns, name).await
    }

    /// Starts a created container, or runs an exited one again (a new
    /// monitor, the same name, log and limits); a running one is left as
    /// it is.
    ///
    /// # Errors
    /// Unknown container, paused, or the start failed.
    pub async fn start(&self, ns: &str, name: &str) -> Result<(), Error> {
        self.get(ns, name).await?.start().await
    }

    /// Reports one container.
    ///
    /// # Errors
    /// Unknown container.
    pub async fn inspect(&self, ns: &str, name: &str) -> Result<ContainerDetails, Error> {
        self.get(ns, name).await?.inspect().await
    }

    /// Reports the containers of `ns`, or of every namespace, by name.
    ///
    /// # Errors
    /// Invalid namespace.
    pub async fn list(&self, ns: Option<&str>) -> Result<Vec<ContainerDetails>, Error> {
        if let Some(ns) = ns {
            proto::validate_name("namespace", ns)?;
        }
        let handles = self.registry.list(ns.map(str::to_string)).await?;
        let mut out = Vec::with_capacity(handles.len());
        for (_, h) in handles {
            match h.inspect().await {
                Ok(d) => out.push(d),
                // Removed meanwhile: no longer listed.
                Err(e) if e.kind == proto::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The namespaces that hold containers, sorted.
    ///
    /// # Errors
    /// The supervisor is shutting down.
    pub async fn namespaces(&self) -> Result<Vec<String>, Error> {
        let mut v: Vec<String> = self
            .registry
            .list(None)
            .await?
            .into_iter()
            .map(|((ns, _), _)| ns)
            .collect();
        v.dedup();
        Ok(v)
    }

    /// SIGTERM, then SIGKILL after `grace` (the monitor keeps the deadline,
    /// so a contd that dies meanwhile still ends in SIGKILL); returns once
    /// the container has exited. Holds off its restart policy until the
    /// next start.
    ///
    /// # Errors
    /// Unknown container or signalling failure.
    pub async fn stop(&self, ns: &str, name: &str, grace: Duration) -> Result<(), Error> {
        self.get(ns, name).await?.stop(Some(grace)).await
    }

    /// Stops a container with its own stop signal and, without `grace`,
    /// its own stop timeout (`RunOptions`; SIGTERM and 10 s by default).
    ///
    /// # Errors
    /// As [`stop`](Self::stop).
    pub async fn stop_with(
        &self,
        ns: &str,
        name: &str,
        grace: Option<Duration>,
    ) -> Result<(), Error> {
        self.get(ns, name).await?.stop(grace).await
    }

    /// Sends a signal to init; holds off the restart policy until the next
    /// start.
    ///
    /// # Errors
    /// Unknown container, invalid signal, or the container has exited.
    pub async fn kill(&self, ns: &str, name: &str, signal: i32) -> Result<(), Error> {
        self.get(ns, name).await?.kill(signal).await
    }

    /// Freezes every process of a running container.
    ///
    /// # Errors
    /// Unknown container, not running, or the freezer fails.
    pub async fn pause(&self, ns: &str, name: &str) -> Result<(), Error> {
        self.get(ns, name).await?.pause(true).await
    }

    /// Thaws a paused container.
    ///
    /// # Errors
    /// Unknown container, not paused, or the freezer fails.
    pub async fn resume(&self, ns: &str, name: &str) -> Result<(), Error> {
        self.get(ns, name).await?.pause(false).await
    }

    /// The container's processes: pid, parent, user, cpu time, command.
    ///
    /// # Errors
    /// Unknown container, or not running.
    pub async fn top(&self, ns: &str, name: &str) -> Result<Vec<Process>, Error> {
        self.get(ns, name).await?.top().await
    }

    /// Changes the memory, cpu or pids limits of a running container.
    ///
    /// # Errors
    /// An invalid limit (named), unknown container, not running, or the
    /// kernel refuses a value.
    pub async fn update(&self, ns: &str, name: &str, resources: Resources) -> Result<(), Error> {
        self.get(ns, name).await?.update(resources).await
    }

    /// Resource usage.
    ///
    /// # Errors
    /// Unknown container, or it has exited.
    pub async fn stats(&self, ns: &str, name: &str) -> Result<Stats, Error> {
        self.get(ns, name).await?.stats().await
    }

    /// Resizes the container's terminal.
    ///
    /// # Errors
    /// Unknown container, no terminal, or exited.
    pub async fn resize(&self, ns: &str, name: &str, rows: u16, cols: u16) -> Result<(), Error> {
        self.get(ns, name).await?.resize(rows, cols).await
    }

    /// Waits for init to exit and reports how.
    ///
    /// # Errors
    /// Unknown container, or the exit cannot be known (monitor lost).
    pub async fn wait(&self, ns: &str, name: &str) -> Result<ExitRecord, Error> {
        self.get(ns, name).await?.wait().await
    }

    /// Gives a container a new name, free in its namespace. Only the name
    /// changes (its log and cgroup keep theirs); it may be running.
    ///
    /// # Errors
    /// An invalid or taken new name, or an unknown container.
    pub async fn rename(&self, ns: &str, name: &str, new_name: &str) -> Result<(), Error> {
        proto::validate_name("namespace", ns)?;
        proto::validate_name("name", name)?;
        proto::validate_name("new_name", new_name)?;
        if name == new_name {
            return Err(Error::invalid(format!(
                "new_name: the container is called {name:?} already"
            )));
        }
        let h = self.registry.alias(ns, name, new_name).await?;
        match h.rename(name.to_string(), new_name.to_string()).await {
            Ok(()) => {
                self.registry.forget(ns, name).await;
                Ok(())
            }
            Err(e) => {
                self.registry.forget(ns, new_name).await;
                Err(e)
            }
        }
    }

    /// Releases every resource of the container and removes its log
    /// files (or moves them aside, [`Config::keep_logs`]).
    ///
    /// # Errors
    /// Unknown container, running without `force`, or a resource that
    /// cannot be released.
    pub async fn remove(&self, ns: &str, name: &str, force: bool) -> Result<(), Error> {
        let h = self.get(ns, name).await?;
        h.remove(force).await?;
        self.registry.forget(ns, name).await;
        Ok(())
    }

    /// The container's log: tail, since, follow.
    ///
    /// # Errors
    /// Unknown container.
    pub async fn logs(&self, ns: &str, name: &str, opts: LogOptions) -> Result<LogStream, Error> {
        self.log_stream(ns, name, opts, false).await
    }

    /// As [`logs`](Self::logs), one line per chunk, each with the time it
    /// was written (`logs -t`).
    ///
    /// # Errors
    /// Unknown container.
    pub async fn logs_lines(
        &self,
        ns: &str,
        name: &str,
        opts: LogOptions,
    ) -> Result<LogStream, Error> {
        self.log_stream(ns, name, opts, true).await
    }

    async fn log_stream(
        &self,
        ns: &str,
        name: &str,
        opts: LogOptions,
        per_line: bool,
    ) -> Result<LogStream, Error> {
        let h = self.get(ns, name).await?;
        // Subscribed first: an exit between the look and the follow is
        // not missed.
        let exits = self.bus.subscribe();
        let d = h.inspect().await?;
        let running = d.status != Status::Exited;
        Ok(logs::stream(
            h.log_path.clone(),
            opts,
            running,
            exits,
            (ns.to_string(), name.to_string()),
            per_line,
        ))
    }

    /// How the container's log writer fares (dropped output, errors).
    ///
    /// # Errors
    /// Unknown container; a monitor too old to tell (protocol < 3).
    pub async fn log_status(&self, ns: &str, name: &str) -> Result<LogStatus, Error> {
        self.get(ns, name).await?.log_status().await
    }

    /// Attaches to the container's terminal or output (`stdin`: also its
    /// input); `detach_keys` `None` for ctrl-p ctrl-q, empty for none.
    ///
    /// # Errors
    /// Unknown container, exited, or its monitor too old (protocol < 2).
    pub async fn attach(
        &self,
        ns: &str,
        name: &str,
        stdin: bool,
        detach_keys: Option<Vec<u8>>,
    ) -> Result<Session, Error> {
        let t = self.get(ns, name).await?.target().await?;
        if t.status == Status::Exited {
            return Err(Error::conflict(format!("container {name} has exited")));
        }
        let first = proto::monitor::Request::Attach { stdin, detach_keys };
        Session::open(&t.dir, name, first).await
    }

    /// Runs an extra process in the running container.
    ///
    /// # Errors
    /// Unknown container, not running, or its monitor too old.
    pub async fn exec(&self, ns: &str, name: &str, exec: ExecRequest) -> Result<Session, Error> {
        if let Some((uid, gid)) = exec.user {
            for (what, id) in [("uid", uid), ("gid", gid)] {
                if id == u32::MAX {
                    return Err(Error::invalid(format!(
                        "user: {what} {id} is not a valid id"
                    )));
                }
            }
        }
        let t = self.get(ns, name).await?.target().await?;
        if t.status == Status::Exited {
            return Err(Error::conflict(format!("container {name} is not running")));
        }
        Session::open(&t.dir, name, proto::monitor::Request::Exec(exec)).await
    }

    /// Subscribes to events that pass `filter`, starting with one event per
    /// existing container telling its current state when `filter.replay`.
    ///
    /// # Errors
    /// An invalid filter.
    pub async fn events(&self, filter: EventFilter) -> Result<EventStream, Error> {
        events::check_filter(&filter)?;
        let rx = self.bus.subscribe();
        let mut replay = std::collections::VecDeque::new();
        if filter.replay {
            for d in self.list(filter.ns.as_deref()).await? {
                let kind = match d.status {
                    Status::Created => EventKind::Created,
                    Status::Running => EventKind::Started,
                    Status::Paused => EventKind::Paused,
                    Status::Exited => match &d.exit {
                        Some(r) => EventKind::Exited {
                            code: r.code,
                            signal: r.signal,
                            oom_killed: r.oom_killed,
                        },
                        None => EventKind::MonitorLost,
                    },
                    Status::Unknown => EventKind::MonitorLost,
                };
                let e = Event {
                    time: proto::time::now_nanos(),
                    ns: d.ns,
                    name: d.name,
                    kind,
                };
                if filter.matches(&e) {
                    replay.push_back(e);
                }
            }
        }
        Ok(EventStream {
            replay,
            rx,
            filter,
            dropped: false,
        })
    }
}

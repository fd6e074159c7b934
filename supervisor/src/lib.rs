//! contd, the container supervisor, as a library: a service manager embeds
//! it with [`Supervisor::start`] and drives it through the cloneable
//! [`SupervisorHandle`], which offers the same operations as the api socket.
//!
//! contd keeps no database: on start it scans its state dir and adopts every
//! container found there, talking to each one's monitor, or reading the
//! durable exit record of a container whose monitor has gone. Stopping contd
//! never stops a container.
//!
//! # Layout
//!
//! - `registry`: the supervisor actor, `(ns, name) → ContainerHandle`.
//! - `container`: one actor per container.
//! - `monitor_client`: requests to a monitor's socket.
//! - `launch`: starting a monitor.
//! - `spec`: request validation and the secure `config.json`.
//! - `api`: the api socket server.
//! - `error`: [`Error`].

mod api;
mod container;
mod error;
mod launch;
mod monitor_client;
mod registry;
mod spec;

use std::path::PathBuf;
use std::time::Duration;

use proto::api::{ContainerInfo, CreateRequest};
use proto::ExitRecord;
use tokio::sync::watch;
use tracing::{info, warn};

pub use error::Error;

use registry::Registry;

/// Where contd keeps things; every path can be overridden, so tests run side
/// by side in temporary directories.
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-container state: `<state_dir>/<ns>/<name>/`.
    pub state_dir: PathBuf,
    /// Logs: `<log_dir>/<ns>/<name>.log`.
    pub log_dir: PathBuf,
    /// The api socket.
    pub socket: PathBuf,
    /// The `contd-monitor` binary.
    pub monitor_bin: PathBuf,
    /// cgroups are `<cgroup_parent>/<ns>/<name>` in each hierarchy.
    pub cgroup_parent: String,
    /// How long a monitor stays after its container exited when no
    /// supervisor releases it (`None`: until released). The exit record
    /// stays on disk either way.
    pub monitor_linger: Option<std::time::Duration>,
    /// Rotate a container's log before it grows past this many bytes
    /// (0: never).
    pub log_max_size: u64,
    /// Log files kept per container, the live one included (at least 1).
    pub log_max_files: u32,
}

impl Default for Config {
    fn default() -> Self {
        let monitor_bin = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("contd-monitor")))
            .unwrap_or_else(|| PathBuf::from("contd-monitor"));
        Config {
            state_dir: "/run/contd/containers".into(),
            log_dir: "/var/log/contd".into(),
            socket: "/run/contd/contd.sock".into(),
            monitor_bin,
            cgroup_parent: "contd".into(),
            monitor_linger: None,
            log_max_size: 0,
            log_max_files: 1,
        }
    }
}

/// A running supervisor.
#[derive(Debug)]
pub struct Supervisor {
    handle: SupervisorHandle,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    socket: PathBuf,
}

/// The operations of contd; cheap to clone.
#[derive(Clone, Debug)]
pub struct SupervisorHandle {
    registry: Registry,
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
            let meta_path = entry.path().join("meta.json");
            match std::fs::read(&meta_path)
                .ok()
                .and_then(|d| serde_json::from_slice::<spec::Meta>(&d).ok())
            {
                Some(m)
                    if proto::validate_name("namespace", &m.ns).is_ok()
                        && proto::validate_name("name", &m.name).is_ok()
                        && entry.path() == config.state_dir.join(&m.ns).join(&m.name) =>
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
    /// Starts contd: adopts the containers on disk and serves the api socket.
    ///
    /// # Errors
    /// If the directories cannot be created or the socket cannot be bound
    /// (another contd serving it is an error).
    pub async fn start(config: Config) -> Result<Supervisor, Error> {
        for d in [&config.state_dir, &config.log_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::internal(format!("create {}: {e}", d.display())))?;
        }
        if let Some(parent) = config.socket.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::internal(format!("create {}: {e}", parent.display())))?;
        }
        let adopted = scan(&config);
        let registry = Registry::spawn(config.clone(), adopted);
        let handle = SupervisorHandle { registry };
        let listener = api::bind(&config.socket).await?;
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(api::serve(listener, handle.clone(), rx));
        info!(socket = %config.socket.display(), "serving");
        Ok(Supervisor {
            handle,
            shutdown,
            server,
            socket: config.socket,
        })
    }

    /// The handle to drive this supervisor.
    pub fn handle(&self) -> SupervisorHandle {
        self.handle.clone()
    }

    /// Stops serving and removes the socket. Containers keep running.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl SupervisorHandle {
    /// Creates a container (and starts it when `req.start`).
    ///
    /// # Errors
    /// Invalid request, name taken, or creation failure (nothing is left).
    pub async fn create(&self, req: CreateRequest) -> Result<ContainerInfo, Error> {
        self.create_interactive(req, proto::api::Interactive::default())
            .await
    }

    /// Creates a container with a terminal and/or stdin.
    ///
    /// # Errors
    /// As [`create`](Self::create), and a terminal size of zero.
    pub async fn create_interactive(
        &self,
        req: CreateRequest,
        interactive: proto::api::Interactive,
    ) -> Result<ContainerInfo, Error> {
        if interactive.tty.is_some_and(|(r, c)| r == 0 || c == 0) {
            return Err(Error::new(
                proto::ErrorKind::InvalidArgument,
                "terminal size must be at least 1x1",
            ));
        }
        proto::validate_name("namespace", &req.ns)?;
        proto::validate_name("name", &req.name)?;
        let (ns, name) = (req.ns.clone(), req.name.clone());
        let h = self.registry.reserve(&ns, &name).await?;
        let r = h.create(req, interactive).await;
        if let Err(e) = &r {
            // Created but failed to start: it exists, keep it for inspection.
            if h.inspect().await.is_err() {
                self.registry.forget(&ns, &name).await;
            }
            return Err(e.clone());
        }
        r
    }

    async fn get(&self, ns: &str, name: &str) -> Result<container::ContainerHandle, Error> {
        proto::validate_name("namespace", ns)?;
        proto::validate_name("name", name)?;
        self.registry.get(ns, name).await
    }

    /// Starts a created container.
    ///
    /// # Errors
    /// Unknown container, or not in `created` state.
    pub async fn start_container(&self, ns: &str, name: &str) -> Result<(), Error> {
        self.get(ns, name).await?.start().await
    }

    /// Reports one container.
    ///
    /// # Errors
    /// Unknown container, or its monitor does not answer.
    pub async fn inspect(&self, ns: &str, name: &str) -> Result<ContainerInfo, Error> {
        self.get(ns, name).await?.inspect().await
    }

    /// Reports the containers of `ns`, or of every namespace.
    ///
    /// # Errors
    /// Invalid namespace.
    pub async fn list(&self, ns: Option<&str>) -> Result<Vec<ContainerInfo>, Error> {
        if let Some(ns) = ns {
            proto::validate_name("namespace", ns)?;
        }
        let handles = self.registry.list(ns.map(str::to_string)).await?;
        let tasks: Vec<_> = handles
            .into_iter()
            .map(|h| tokio::spawn(async move { h.inspect().await }))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            // A container removed meanwhile simply drops out of the list.
            if let Ok(Ok(info)) = t.await {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// SIGTERM, `grace`, SIGKILL.
    ///
    /// # Errors
    /// Unknown container or signalling failure.
    pub async fn stop(&self, ns: &str, name: &str, grace: Duration) -> Result<(), Error> {
        self.get(ns, name).await?.stop(grace).await
    }

    /// Sends a signal to init.
    ///
    /// # Errors
    /// Unknown container, invalid signal, or the container has exited.
    pub async fn kill(&self, ns: &str, name: &str, signal: i32) -> Result<(), Error> {
        self.get(ns, name).await?.kill(signal).await
    }

    /// Waits for init to exit.
    ///
    /// # Errors
    /// Unknown container, or the exit cannot be known.
    pub async fn wait(&self, ns: &str, name: &str) -> Result<ExitRecord, Error> {
        let h = self.get(ns, name).await?;
        h.wait(None)
            .await?
            .ok_or_else(|| Error::internal("wait ended without an exit"))
    }

    /// Releases every resource of the container; its log stays.
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

    /// The container's state dir (where its `monitor.sock` is).
    ///
    /// # Errors
    /// Unknown container.
    pub async fn container_dir(&self, ns: &str, name: &str) -> Result<PathBuf, Error> {
        Ok(self.get(ns, name).await?.dir.clone())
    }

    /// One request to the container's monitor, for requests that need no
    /// actor state (resize, stats).
    ///
    /// # Errors
    /// Unknown container, monitor gone or refusing.
    pub async fn monitor_call(
        &self,
        ns: &str,
        name: &str,
        req: proto::monitor::Request,
    ) -> Result<proto::monitor::Response, Error> {
        let dir = self.container_dir(ns, name).await?;
        match monitor_client::request(&dir, &req, Some(monitor_client::REQUEST_TIMEOUT)).await {
            Ok(r) => Ok(r),
            Err(monitor_client::Unreachable::Gone) => {
                Err(Error::conflict(format!("container {name} has exited")))
            }
            Err(monitor_client::Unreachable::Failed(e)) => Err(e),
        }
    }

    /// How the container's log writer fares: from its monitor, or, once the
    /// monitor is gone, from the status it left at exit (none left: nothing
    /// went wrong).
    ///
    /// # Errors
    /// Unknown container; a monitor too old to tell (protocol < 3).
    pub async fn log_status(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<proto::monitor::LogStatus, Error> {
        let dir = self.container_dir(ns, name).await?;
        let req = proto::monitor::Request::LogStatus;
        match monitor_client::request(&dir, &req, Some(monitor_client::REQUEST_TIMEOUT)).await {
            Ok(proto::monitor::Response::LogStatus(st)) => Ok(st),
            Ok(other) => Err(Error::internal(format!(
                "unexpected monitor answer {other:?}"
            ))),
            Err(monitor_client::Unreachable::Gone) => {
                match tokio::fs::read(dir.join("log-status")).await {
                    Ok(data) => serde_json::from_slice(&data).map_err(|e| {
                        Error::internal(format!("{}: {e}", dir.join("log-status").display()))
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Ok(proto::monitor::LogStatus::default())
                    }
                    Err(e) => Err(Error::internal(format!("read log status: {e}"))),
                }
            }
            Err(monitor_client::Unreachable::Failed(e)) => Err(e),
        }
    }

    /// The path of the container's log file.
    ///
    /// # Errors
    /// Unknown container.
    pub async fn log_path(&self, ns: &str, name: &str) -> Result<PathBuf, Error> {
        Ok(self.get(ns, name).await?.log_path.clone())
    }
}

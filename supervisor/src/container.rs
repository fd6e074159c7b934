//! One actor per container. It owns the container's state dir and
//! serialises what changes the container (create, start, kill, remove);
//! waiting and stopping run outside it, so one slow container never blocks
//! another, nor a quick `inspect` of itself.

use std::path::PathBuf;
use std::time::Duration;

use proto::api::{ContainerInfo, CreateRequest, Interactive};
use proto::monitor::{Request as MReq, Response as MResp};
use proto::{ExitRecord, Status};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, info_span, warn, Instrument};

use crate::monitor_client::{self, Unreachable, REQUEST_TIMEOUT};
use crate::spec::{self, Meta};
use crate::{launch, Config, Error};

type Reply<T> = oneshot::Sender<Result<T, Error>>;

enum Msg {
    Create {
        req: Box<CreateRequest>,
        interactive: Interactive,
        reply: Reply<ContainerInfo>,
    },
    Start {
        reply: Reply<()>,
    },
    Inspect {
        reply: Reply<ContainerInfo>,
    },
    Kill {
        signal: i32,
        reply: Reply<()>,
    },
    Remove {
        force: bool,
        reply: Reply<()>,
    },
}

/// The handle to a container's actor.
#[derive(Clone, Debug)]
pub(crate) struct ContainerHandle {
    tx: mpsc::Sender<Msg>,
    pub(crate) dir: PathBuf,
    pub(crate) log_path: PathBuf,
}

struct ContainerActor {
    rx: mpsc::Receiver<Msg>,
    config: Config,
    ns: String,
    name: String,
    dir: PathBuf,
    log_path: PathBuf,
    meta: Option<Meta>,
}

impl ContainerHandle {
    /// Spawns the actor of a container that is about to be created
    /// (`meta: None`) or that exists on disk (adopted).
    pub(crate) fn spawn(config: &Config, ns: &str, name: &str, meta: Option<Meta>) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let dir = config.state_dir.join(ns).join(name);
        let log_path = config.log_dir.join(ns).join(format!("{name}.log"));
        let actor = ContainerActor {
            rx,
            config: config.clone(),
            ns: ns.to_string(),
            name: name.to_string(),
            dir: dir.clone(),
            log_path: log_path.clone(),
            meta,
        };
        let span = info_span!("container", ns, name);
        tokio::spawn(actor.run().instrument(span));
        ContainerHandle { tx, dir, log_path }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Msg) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::internal("container actor is gone"))?;
        rx.await
            .map_err(|_| Error::internal("container actor dropped the request"))?
    }

    pub(crate) async fn create(
        &self,
        req: CreateRequest,
        interactive: Interactive,
    ) -> Result<ContainerInfo, Error> {
        self.call(|reply| Msg::Create {
            req: Box::new(req),
            interactive,
            reply,
        })
        .await
    }
    pub(crate) async fn start(&self) -> Result<(), Error> {
        self.call(|reply| Msg::Start { reply }).await
    }
    pub(crate) async fn inspect(&self) -> Result<ContainerInfo, Error> {
        self.call(|reply| Msg::Inspect { reply }).await
    }
    pub(crate) async fn kill(&self, signal: i32) -> Result<(), Error> {
        self.call(|reply| Msg::Kill { signal, reply }).await
    }
    pub(crate) async fn remove(&self, force: bool) -> Result<(), Error> {
        self.call(|reply| Msg::Remove { force, reply }).await
    }

    /// Waits for init's exit, up to `timeout` (`None`: forever).
    pub(crate) async fn wait(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Option<ExitRecord>, Error> {
        let fut = wait_exit(self.dir.clone());
        match timeout {
            None => fut.await.map(Some),
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            },
        }
    }

    /// SIGTERM, up to `grace` for the exit, then SIGKILL.
    pub(crate) async fn stop(&self, grace: Duration) -> Result<(), Error> {
        if self.inspect().await?.status == Status::Exited {
            return Ok(());
        }
        match self.kill(libc::SIGTERM).await {
            Ok(()) => {}
            // It exited in between: fine.
            Err(e) if e.kind == proto::ErrorKind::Conflict => return Ok(()),
            Err(e) => return Err(e),
        }
        if self.wait(Some(grace)).await?.is_some() {
            return Ok(());
        }
        match self.kill(libc::SIGKILL).await {
            Ok(()) => {}
            Err(e) if e.kind == proto::ErrorKind::Conflict => return Ok(()),
            Err(e) => return Err(e),
        }
        self.wait(Some(Duration::from_secs(30)))
            .await?
            .map(drop)
            .ok_or_else(|| Error::internal("container did not die after SIGKILL"))
    }
}

/// Reads the durable exit record the monitor wrote, if any.
fn read_exit_record(dir: &std::path::Path) -> Option<ExitRecord> {
    let data = std::fs::read(dir.join("exit")).ok()?;
    serde_json::from_slice(&data).ok()
}

async fn wait_exit(dir: PathBuf) -> Result<ExitRecord, Error> {
    match monitor_client::request(&dir, &MReq::Wait, None).await {
        Ok(MResp::Exited(rec)) => Ok(rec),
        Ok(other) => Err(Error::internal(format!(
            "unexpected monitor answer {other:?}"
        ))),
        Err(Unreachable::Gone) => read_exit_record(&dir)
            .ok_or_else(|| Error::internal("monitor is gone and left no exit record")),
        Err(Unreachable::Failed(e)) => Err(e),
    }
}

impl ContainerActor {
    async fn run(mut self) {
        while let Some(msg) = self.rx.recv().await {
            match msg {
                Msg::Create {
                    req,
                    interactive,
                    reply,
                } => {
                    let _ = reply.send(self.create(*req, interactive).await);
                }
                Msg::Start { reply } => {
                    let _ = reply.send(self.simple(MReq::Start).await);
                }
                Msg::Inspect { reply } => {
                    let _ = reply.send(self.inspect().await);
                }
                Msg::Kill { signal, reply } => {
                    let _ = reply.send(self.simple(MReq::Signal { signal }).await);
                }
                Msg::Remove { force, reply } => {
                    let r = self.remove(force).await;
                    let done = r.is_ok();
                    let _ = reply.send(r);
                    if done {
                        return;
                    }
                }
            }
        }
    }

    async fn simple(&mut self, req: MReq) -> Result<(), Error> {
        match monitor_client::request(&self.dir, &req, Some(REQUEST_TIMEOUT)).await {
            Ok(_) => Ok(()),
            Err(Unreachable::Gone) => Err(Error::conflict(format!(
                "container {} has exited",
                self.name
            ))),
            Err(Unreachable::Failed(e)) => Err(e),
        }
    }

    async fn create(
        &mut self,
        req: CreateRequest,
        interactive: Interactive,
    ) -> Result<ContainerInfo, Error> {
        let args = spec::validate(&req)?;
        let cgroup_path = format!("{}/{}/{}", self.config.cgroup_parent, self.ns, self.name);
        let mut config = spec::build(&req, &args, &cgroup_path);
        if let Some((rows, cols)) = interactive.tty {
            config["process"]["terminal"] = true.into();
            config["process"]["consoleSize"] = serde_json::json!({ "height": rows, "width": cols });
        }
        let meta = Meta {
            ns: self.ns.clone(),
            name: self.name.clone(),
            rootfs: req.rootfs.clone(),
            args,
            labels: req.labels.clone(),
            created_at: proto::time::now_nanos(),
            log_path: self.log_path.display().to_string(),
            cgroup_path,
        };
        if self.dir.exists() {
            return Err(Error::new(
                proto::ErrorKind::AlreadyExists,
                format!("state dir {} exists already", self.dir.display()),
            ));
        }
        let stdin = interactive.stdin && interactive.tty.is_none();
        let result = self.materialize(&meta, &config, stdin).await;
        if let Err(e) = result {
            // Undo: the monitor removed its own files; remove ours.
            let _ = std::fs::remove_dir_all(&self.dir);
            if std::fs::metadata(&self.log_path).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&self.log_path);
            }
            return Err(e);
        }
        self.meta = Some(meta);
        if req.start {
            self.simple(MReq::Start).await?;
        }
        self.inspect().await
    }

    async fn materialize(
        &self,
        meta: &Meta,
        config: &serde_json::Value,
        stdin: bool,
    ) -> Result<(), Error> {
        let io = |what: String| move |e: std::io::Error| Error::internal(format!("{what}: {e}"));
        let bundle = self.dir.join("bundle");
        tokio::fs::create_dir_all(&bundle)
            .await
            .map_err(io(format!("create {}", bundle.display())))?;
        let log_dir = self.config.log_dir.join(&self.ns);
        tokio::fs::create_dir_all(&log_dir)
            .await
            .map_err(io(format!("create {}", log_dir.display())))?;
        tokio::fs::write(bundle.join("config.json"), config.to_string())
            .await
            .map_err(io("write config.json".into()))?;
        let meta_json = serde_json::to_vec(meta).map_err(|e| Error::internal(e.to_string()))?;
        tokio::fs::write(self.dir.join("meta.json"), meta_json)
            .await
            .map_err(io("write meta.json".into()))?;
        let id = format!("{}.{}", self.ns, self.name);
        let (pid, monitor_pid) = launch::launch(
            &self.config.monitor_bin,
            &self.dir,
            &self.log_path,
            &id,
            &self.config,
            stdin,
        )
        .await?;
        info!(pid, monitor_pid, "created");
        Ok(())
    }

    async fn inspect(&self) -> Result<ContainerInfo, Error> {
        let meta = self
            .meta
            .as_ref()
            .ok_or_else(|| Error::not_found(&self.ns, &self.name))?;
        let mut info = ContainerInfo {
            ns: self.ns.clone(),
            name: self.name.clone(),
            status: Status::Exited,
            pid: None,
            exit: None,
            log_path: meta.log_path.clone(),
            rootfs: meta.rootfs.clone(),
            args: meta.args.clone(),
            created_at: meta.created_at,
            labels: meta.labels.clone(),
            error: None,
        };
        match monitor_client::request(&self.dir, &MReq::State, Some(REQUEST_TIMEOUT)).await {
            Ok(MResp::State(st)) => {
                info.status = st.status;
                info.pid = st.pid;
                info.exit = st.exit;
            }
            Ok(other) => {
                return Err(Error::internal(format!(
                    "unexpected monitor answer {other:?}"
                )))
            }
            Err(Unreachable::Gone) => match read_exit_record(&self.dir) {
                Some(rec) => info.exit = Some(rec),
                None => {
                    info.error = Some("monitor is gone and left no exit record".into());
                }
            },
            Err(Unreachable::Failed(e)) => return Err(e),
        }
        Ok(info)
    }

    async fn remove(&mut self, force: bool) -> Result<(), Error> {
        let info = self.inspect().await?;
        if info.status != Status::Exited {
            if !force {
                return Err(Error::conflict(format!(
                    "container {} is {}: stop it first or force the removal",
                    self.name,
                    info.status.as_str()
                )));
            }
            match self
                .simple(MReq::Signal {
                    signal: libc::SIGKILL,
                })
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == proto::ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
            tokio::time::timeout(Duration::from_secs(30), wait_exit(self.dir.clone()))
                .await
                .map_err(|_| Error::internal("container did not die after SIGKILL"))??;
        }
        match monitor_client::request(&self.dir, &MReq::Release, Some(REQUEST_TIMEOUT)).await {
            Ok(_) | Err(Unreachable::Gone) => {}
            Err(Unreachable::Failed(e)) => return Err(e),
        }
        // The monitor removes the cgroup on release; if it was gone, do it here.
        if let Some(meta) = &self.meta {
            let cg = meta.cgroup_path.clone();
            let removed = tokio::task::spawn_blocking(move || runtime_core::remove_cgroup(&cg))
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            if let Err(e) = removed {
                warn!(error = %e, "cgroup not removed");
                return Err(Error::internal(e.to_string()));
            }
        }
        tokio::fs::remove_dir_all(&self.dir)
            .await
            .map_err(|e| Error::internal(format!("remove {}: {e}", self.dir.display())))?;
        info!("removed");
        Ok(())
    }
}

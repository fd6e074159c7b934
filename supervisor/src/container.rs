//! One actor per container. It owns the container's state dir and its
//! live link to the monitor, serialises what changes the container, keeps
//! the live state (so inspect and list cost no monitor round trip), runs
//! the restart policy and publishes the container's events.

use std::path::PathBuf;
use std::time::Duration;

use proto::api::{ContainerConfig, ContainerDetails, EventKind, Process, RunOptions};
use proto::monitor::{LogStatus, MonitorEvent, Request as MReq, Response as MResp, Stats};
use proto::{ExitRecord, Resources, Status};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, info_span, warn, Instrument};

use crate::events::Bus;
use crate::link::{self, Link, LinkEvent, Unreachable};
use crate::restart::RestartState;
use crate::spec::{self, Meta};
use std::sync::Arc;

use crate::config::Shared;
use crate::registry::{AdoptGuard, Forgetter};
use crate::{launch, Error};

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// How long a forced removal waits for init to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(30);

enum Msg {
    Create(
        Box<(ContainerConfig, RunOptions, bool)>,
        Reply<ContainerDetails>,
    ),
    Rename(String, String, Reply<()>),
    Start(Reply<()>),
    Inspect(Reply<ContainerDetails>),
    Kill(i32, Reply<()>),
    Stop(Option<Duration>, Reply<()>),
    Wait(Reply<ExitRecord>),
    Pause(bool, Reply<()>),
    Update(Box<Resources>, Reply<()>),
    Top(Reply<Vec<Process>>),
    Stats(Reply<Stats>),
    LogStatus(Reply<LogStatus>),
    Resize(u16, u16, Reply<()>),
    Target(Reply<Target>),
    Remove(bool, Reply<()>),
}

/// Where a session (attach, exec) dials, and whether it may.
#[derive(Debug)]
pub(crate) struct Target {
    pub dir: PathBuf,
    pub status: Status,
}

/// The handle to a container's actor.
#[derive(Clone, Debug)]
pub(crate) struct ContainerHandle {
    tx: mpsc::Sender<Msg>,
    /// The log file (read by `logs`, written by the monitor).
    pub(crate) log_path: PathBuf,
    /// The state dir's name: the name the container was created with
    /// (and its log's and cgroup's), whatever it is called now.
    pub(crate) dir_name: String,
}

/// `stop`'s grace period when neither the request nor the container
/// gives one, as docker's.
const DEFAULT_STOP_SECS: u32 = 10;

/// The container as last seen.
#[derive(Debug, Default)]
struct Live {
    status: Option<Status>,
    pid: Option<i32>,
    started_at: Option<i64>,
    exit: Option<ExitRecord>,
    error: Option<String>,
}

struct ContainerActor {
    rx: mpsc::Receiver<Msg>,
    config: Arc<Shared>,
    bus: Bus,
    forgetter: Forgetter,
    ns: String,
    name: String,
    /// The state dir's name (see [`ContainerHandle::dir_name`]).
    dir_name: String,
    dir: PathBuf,
    log_path: PathBuf,
    meta: Option<Meta>,
    link: Option<Link>,
    /// A monitor that created and started the container in one step is
    /// linked to after the caller has its answer.
    link_pending: bool,
    live: Live,
    restart: RestartState,
    restart_at: Option<tokio::time::Instant>,
    /// A monitor that did not answer adoption in time is tried again
    /// then; operations other than inspect wait for it.
    relink_at: Option<tokio::time::Instant>,
    relink_every: Duration,
    waiters: Vec<Reply<ExitRecord>>,
    stoppers: Vec<Reply<()>>,
}

macro_rules! call {
    ($self:ident, $variant:ident $(, $arg:expr)*) => {{
        let (reply, rx) = oneshot::channel();
        $self
            .tx
            .send(Msg::$variant($($arg,)* reply))
            .await
            .map_err(|_| Error::internal("container actor is gone"))?;
        rx.await
            .map_err(|_| Error::internal("container actor dropped the request"))?
    }};
}

impl ContainerHandle {
    /// Spawns the actor of a container that is about to be created
    /// (`meta: None`; its state dir, log and cgroup are named `dir_name`)
    /// or that exists on disk (adopted: named as its `meta.json` says).
    pub(crate) fn spawn(
        config: &Arc<Shared>,
        bus: &Bus,
        forgetter: &Forgetter,
        ns: &str,
        name: &str,
        dir_name: &str,
        adopt: Option<(Meta, AdoptGuard)>,
    ) -> Self {
        let (meta, guard) = match adopt {
            Some((m, g)) => (Some(m), Some(g)),
            None => (None, None),
        };
        let (tx, rx) = mpsc::channel(16);
        let dir_name = meta.as_ref().map_or(dir_name, |m| m.dir_name()).to_string();
        let dir = config.state_dir.join(ns).join(&dir_name);
        let log_path = match &meta {
            Some(m) => PathBuf::from(&m.log_path),
            None => config.log_dir.join(ns).join(format!("{dir_name}.log")),
        };
        let adopted = meta.is_some();
        let actor = ContainerActor {
            rx,
            config: config.clone(),
            bus: bus.clone(),
            forgetter: forgetter.clone(),
            ns: ns.to_string(),
            name: name.to_string(),
            dir_name: dir_name.clone(),
            restart: if adopted {
                RestartState::load(&dir)
            } else {
                RestartState::default()
            },
            dir,
            log_path: log_path.clone(),
            meta,
            link: None,
            link_pending: false,
            live: Live::default(),
            restart_at: None,
            relink_at: None,
            relink_every: Duration::from_secs(1),
            waiters: Vec::new(),
            stoppers: Vec::new(),
        };
        let span = info_span!("container", ns, name);
        tokio::spawn(Box::new(actor).run(guard).instrument(span));
        ContainerHandle {
            tx,
            log_path,
            dir_name,
        }
    }

    pub(crate) async fn create(
        &self,
        config: ContainerConfig,
        options: RunOptions,
        init: bool,
    ) -> Result<ContainerDetails, Error> {
        call!(self, Create, Box::new((config, options, init)))
    }
    /// Renames the container from `from` (refused if it is no longer
    /// called that) to `to`.
    pub(crate) async fn rename(&self, from: String, to: String) -> Result<(), Error> {
        call!(self, Rename, from, to)
    }
    pub(crate) async fn start(&self) -> Result<(), Error> {
        call!(self, Start)
    }
    pub(crate) async fn inspect(&self) -> Result<ContainerDetails, Error> {
        call!(self, Inspect)
    }
    pub(crate) async fn kill(&self, signal: i32) -> Result<(), Error> {
        call!(self, Kill, signal)
    }
    /// `grace`: none, the container's own stop timeout.
    pub(crate) async fn stop(&self, grace: Option<Duration>) -> Result<(), Error> {
        call!(self, Stop, grace)
    }
    pub(crate) async fn wait(&self) -> Result<ExitRecord, Error> {
        call!(self, Wait)
    }
    pub(crate) async fn pause(&self, pause: bool) -> Result<(), Error> {
        call!(self, Pause, pause)
    }
    pub(crate) async fn update(&self, r: Resources) -> Result<(), Error> {
        call!(self, Update, Box::new(r))
    }
    pub(crate) async fn top(&self) -> Result<Vec<Process>, Error> {
        call!(self, Top)
    }
    pub(crate) async fn stats(&self) -> Result<Stats, Error> {
        call!(self, Stats)
    }
    pub(crate) async fn log_status(&self) -> Result<LogStatus, Error> {
        call!(self, LogStatus)
    }
    pub(crate) async fn resize(&self, rows: u16, cols: u16) -> Result<(), Error> {
        call!(self, Resize, rows, cols)
    }
    pub(crate) async fn target(&self) -> Result<Target, Error> {
        call!(self, Target)
    }
    pub(crate) async fn remove(&self, force: bool) -> Result<(), Error> {
        call!(self, Remove, force)
    }
}

/// The suffix of a state dir being made (`.NAME.creating`).
pub(crate) const CREATING: &str = ".creating";
/// The suffix of a state dir being deleted (`.NAME.removing`).
pub(crate) const REMOVING: &str = ".removing";

/// Whether the pid in `dir/monitor.pid` is a live contd-monitor.
fn monitor_alive(dir: &std::path::Path) -> bool {
    let Some(pid) = std::fs::read_to_string(dir.join("monitor.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !stat.contains(") Z ")
        && cmdline
            .split(|b| *b == 0)
            .any(|a| a == dir.as_os_str().as_encoded_bytes())
}

/// Writes a file only root can read (mode 0600), replacing it.
pub(crate) fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

/// Reads the durable exit record the monitor wrote, if any.
fn read_exit_record(dir: &std::path::Path) -> Option<ExitRecord> {
    let data = std::fs::read(dir.join("exit")).ok()?;
    serde_json::from_slice(&data).ok()
}

async fn next_link_event(link: &mut Option<Link>) -> LinkEvent {
    match link {
        Some(l) => l.next_event().await,
        None => std::future::pending().await,
    }
}

async fn restart_due(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn unreachable_err(name: &str, e: Unreachable) -> Error {
    match e {
        Unreachable::Gone => Error::conflict(format!("container {name} has exited")),
        Unreachable::Failed(e) => e,
    }
}

impl ContainerActor {
    /// The actor lives on the heap once: an async fn taking it by value
    /// would keep two copies in its future.
    async fn run(mut self: Box<Self>, adopting: Option<AdoptGuard>) {
        // The steps are boxed: the actor's own future, resident for the
        // container's whole life, then holds none of their state (5 kB).
        if let Some(guard) = adopting {
            Box::pin(self.adopt()).await;
            drop(guard);
        }
        loop {
            if Box::pin(self.auto_remove()).await {
                return;
            }
            if self.link_pending {
                self.link_pending = false;
                Box::pin(self.link_up()).await;
                // An exit before the link opened is in the state it
                // answered with, not in an event.
                if let (Some(Status::Exited), Some(rec)) =
                    (self.live.status, self.live.exit.clone())
                {
                    self.exited(rec);
                }
            }
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { return };
                    if Box::pin(self.handle(msg)).await {
                        return;
                    }
                }
                ev = next_link_event(&mut self.link) => Box::pin(self.on_link(ev)).await,
                () = restart_due(self.restart_at) => Box::pin(self.restart_now()).await,
                () = restart_due(self.relink_at) => Box::pin(self.relink()).await,
            }
        }
    }

    fn publish(&self, kind: EventKind) {
        self.bus.publish(&self.ns, &self.name, kind);
    }

    fn save_restart(&self) {
        if let Err(e) = self.restart.save(&self.dir) {
            warn!(error = %e, "restart state not saved");
        }
    }

    fn policy(&self) -> proto::api::RestartPolicy {
        self.meta
            .as_ref()
            .and_then(|m| m.config.as_ref())
            .map(|c| c.restart)
            .unwrap_or_default()
    }

    /// Opens the live link and takes the monitor's state as ours.
    async fn connect(&mut self) -> Result<(), Unreachable> {
        let (link, st) = Link::open(&self.dir).await?;
        self.live = Live {
            status: Some(st.status),
            pid: st.pid,
            started_at: st.started_at,
            exit: st.exit,
            error: None,
        };
        self.link = Some(link);
        Ok(())
    }

    /// The monitor is gone: the exit record tells how the container ended,
    /// or nothing can be vouched for: the status is `unknown`, with init's
    /// pid if the runtime's state shows it still running.
    fn monitor_gone(&mut self) {
        self.link = None;
        self.live.pid = None;
        match read_exit_record(&self.dir) {
            Some(rec) => {
                self.live.status = Some(Status::Exited);
                self.live.started_at = self.live.started_at.or(rec.started_at);
                self.live.exit = Some(rec);
            }
            None => {
                let orphan = self.orphan();
                self.live.status = Some(Status::Unknown);
                self.live.pid = orphan.as_ref().map(runtime_core::Container::pid);
                self.live.error = Some(if orphan.is_some() {
                    "monitor is gone and left no exit record; init still runs \
                     (stop, kill and rm -f reach it)"
                        .into()
                } else {
                    "monitor is gone and left no exit record".into()
                });
            }
        }
    }

    /// Init of a container whose monitor died, if it still runs: found
    /// through the runtime's state, whose pidfd (checked against init's
    /// start time) never signals a reused pid.
    fn orphan(&self) -> Option<runtime_core::Container> {
        runtime_core::Container::load(&self.dir.join("runtime"))
            .ok()
            .filter(|c| c.status() != runtime_core::Status::Stopped)
    }

    /// Stops the init of a container whose monitor died: `SIGTERM`, the
    /// grace period, then `SIGKILL` to everything in its cgroup. Its exit
    /// code cannot be known (it is no child of ours): the status becomes
    /// `exited` with no code, and the error says why.
    async fn stop_orphan(&mut self, grace: Duration) -> Result<(), Error> {
        if let Some(c) = self.orphan() {
            let gone = |c: &runtime_core::Container| c.status() == runtime_core::Status::Stopped;
            // A frozen init gets no signal: thawed first, as the monitor
            // does before a stop.
            if c.status() == runtime_core::Status::Paused {
                let _ = c.resume();
            }
            let _ = c.kill(libc::SIGTERM);
            let deadline = tokio::time::Instant::now() + grace;
            while !gone(&c) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !gone(&c) {
                let _ = c.kill_all(libc::SIGKILL);
                let deadline = tokio::time::Instant::now() + KILL_WAIT;
                while !gone(&c) {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::internal("container did not die after SIGKILL"));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        self.live.status = Some(Status::Exited);
        self.live.pid = None;
        self.live.error =
            Some("monitor was lost; contd stopped init, whose exit code is not known".into());
        Ok(())
    }

    /// Opens the link to a monitor that already runs; what it cannot
    /// reach is recorded in the live state.
    async fn link_up(&mut self) {
        // A monitor still setting up (contd was killed while launching it)
        // has not bound its socket yet: give it a moment.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut r = self.connect().await;
        while matches!(r, Err(Unreachable::Gone))
            && monitor_alive(&self.dir)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            r = self.connect().await;
        }
        match r {
            Ok(()) => {}
            Err(Unreachable::Gone) => self.monitor_gone(),
            Err(Unreachable::Failed(e)) => {
                warn!(error = %e, "monitor does not answer");
                self.live.error = Some(e.message);
            }
        }
    }

    /// The first link to the monitor of a container found on disk: within
    /// the adoption timeout, or it is listed as unknown and retried in the
    /// background.
    async fn adopt(&mut self) {
        let t = self.config.adopt_timeout;
        if tokio::time::timeout(t, self.link_up()).await.is_err() {
            self.unanswered();
            self.publish(EventKind::Adopted);
            return;
        }
        self.publish(EventKind::Adopted);
        self.linked_after_adoption().await;
    }

    /// The monitor did not answer in time: listed as unknown, retried.
    fn unanswered(&mut self) {
        let t = self.config.adopt_timeout;
        self.link = None;
        self.live.status = Some(Status::Unknown);
        self.live.error = Some(format!(
            "monitor did not answer within {} s; contd retries in the background",
            t.as_secs()
        ));
        warn!(retry_in = ?self.relink_every, "monitor did not answer adoption in time");
        self.relink_at = Some(tokio::time::Instant::now() + self.relink_every);
        self.relink_every = (self.relink_every * 2).min(Duration::from_secs(30));
    }

    /// Another try at a monitor that did not answer adoption.
    async fn relink(&mut self) {
        self.relink_at = None;
        let t = self.config.adopt_timeout;
        if tokio::time::timeout(t, self.link_up()).await.is_err() {
            self.unanswered();
            return;
        }
        info!("monitor answered at last");
        self.linked_after_adoption().await;
    }

    /// Refuses an operation while the monitor has not answered adoption.
    fn answered(&self) -> Result<(), Error> {
        match self.relink_at {
            Some(_) => Err(Error::conflict(format!(
                "container {}'s monitor does not answer; contd retries in the background: try again later",
                self.name
            ))),
            None => Ok(()),
        }
    }

    /// What adoption does once the monitor's state is known.
    async fn linked_after_adoption(&mut self) {
        if self.live.error.is_some() && self.live.exit.is_none() {
            if self.link.is_none() {
                self.publish(EventKind::MonitorLost);
            }
            return;
        }
        // A restart the previous contd had scheduled, or an exit it never
        // saw, is taken up here.
        if let Some(due) = self.restart.pending {
            match self.live.status {
                Some(Status::Exited) => {
                    let wait = (due - proto::time::now_nanos()).max(0) as u64;
                    self.restart_at =
                        Some(tokio::time::Instant::now() + Duration::from_nanos(wait));
                }
                Some(Status::Created) => {
                    // Relaunched, not yet started.
                    if let Err(e) = self.start_created().await {
                        warn!(error = %e, "pending restart: start failed");
                    }
                    self.restart.pending = None;
                    self.save_restart();
                }
                _ => {
                    self.restart.pending = None;
                    self.save_restart();
                }
            }
        } else if self.live.status == Some(Status::Exited) {
            if self.policy() == proto::api::RestartPolicy::Always && self.restart.stopped {
                // docker: `always` comes back when the daemon does.
                self.restart.stopped = false;
            }
            self.consider_restart();
        }
    }

    /// After an exit: schedules the restart the policy asks for.
    fn consider_restart(&mut self) {
        let Some(rec) = self.live.exit.clone() else {
            return;
        };
        let Some(delay) = self.restart.decide(self.policy(), &rec) else {
            return;
        };
        self.restart.pending = Some(proto::time::now_nanos() + delay.as_nanos() as i64);
        self.save_restart();
        self.restart_at = Some(tokio::time::Instant::now() + delay);
        info!(attempt = self.restart.count, ?delay, "restarting");
        self.publish(EventKind::Restarting {
            attempt: self.restart.count,
            delay_ms: delay.as_millis() as u64,
        });
    }

    async fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Event(MonitorEvent::Started(at)) => {
                self.live.status = Some(Status::Running);
                self.live.started_at = Some(at);
                self.publish(EventKind::Started);
            }
            LinkEvent::Event(MonitorEvent::Paused) => {
                self.live.status = Some(Status::Paused);
                self.publish(EventKind::Paused);
            }
            LinkEvent::Event(MonitorEvent::Resumed) => {
                self.live.status = Some(Status::Running);
                self.publish(EventKind::Resumed);
            }
            LinkEvent::Event(MonitorEvent::Oom) => self.publish(EventKind::Oom),
            LinkEvent::Event(MonitorEvent::Exited(rec)) => self.exited(rec),
            LinkEvent::Lost => {
                if self.live.status == Some(Status::Exited) && self.live.exit.is_some() {
                    // Released (or lingered out) after the exit: nothing lost.
                    self.link = None;
                    return;
                }
                self.monitor_gone();
                match self.live.exit.clone() {
                    Some(rec) => self.exited(rec),
                    None => {
                        warn!("monitor lost");
                        self.publish(EventKind::MonitorLost);
                        let e = Error::internal("monitor is gone and left no exit record");
                        for w in self.waiters.drain(..) {
                            let _ = w.send(Err(e.clone()));
                        }
                        // A stop the monitor was carrying out: finished here.
                        if !self.stoppers.is_empty() {
                            let r = self.stop_orphan(Duration::ZERO).await;
                            for s in self.stoppers.drain(..) {
                                let _ = s.send(r.clone());
                            }
                        }
                    }
                }
            }
        }
    }

    fn exited(&mut self, rec: ExitRecord) {
        self.live.status = Some(Status::Exited);
        self.live.pid = None;
        self.live.exit = Some(rec.clone());
        info!(code = rec.code, "exited");
        self.publish(EventKind::Exited {
            code: rec.code,
            signal: rec.signal,
            oom_killed: rec.oom_killed,
        });
        for w in self.waiters.drain(..) {
            let _ = w.send(Ok(rec.clone()));
        }
        for s in self.stoppers.drain(..) {
            let _ = s.send(Ok(()));
        }
        self.consider_restart();
    }

    /// `--rm`: a container that has exited for good (no restart due)
    /// removes itself; `true` when it did (the actor is done). A failure is
    /// logged and the container stays, for `rm` to take.
    async fn auto_remove(&mut self) -> bool {
        let due = self.meta.as_ref().is_some_and(|m| m.auto_remove)
            && self.live.status == Some(Status::Exited)
            && self.restart_at.is_none()
            && self.restart.pending.is_none()
            && self.relink_at.is_none();
        if !due {
            return false;
        }
        match self.remove(false).await {
            Ok(()) => {
                self.forgetter.forget(&self.ns, &self.name).await;
                true
            }
            Err(e) => {
                warn!(error = %e, "auto-remove failed; rm removes it");
                if let Some(m) = self.meta.as_mut() {
                    m.auto_remove = false;
                }
                false
            }
        }
    }

    /// Handles one message; `true` when the actor is done (removed).
    async fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Create(req, reply) => {
                let (config, options, init) = *req;
                let r = self.create(config, options, init).await;
                let _ = reply.send(r);
            }
            Msg::Rename(from, to, reply) => {
                let _ = reply.send(self.rename(&from, &to));
            }
            Msg::Start(reply) => {
                let r = self.start().await;
                let _ = reply.send(r);
            }
            Msg::Inspect(reply) => {
                let _ = reply.send(self.details());
            }
            Msg::Kill(signal, reply) => {
                let r = self.kill(signal).await;
                let _ = reply.send(r);
            }
            Msg::Stop(grace, reply) => self.stop(grace, reply).await,
            Msg::Wait(reply) => match (&self.live.exit, &self.live.error) {
                // The monitor is gone and left no record: nothing to wait for.
                (None, Some(e)) if self.link.is_none() => {
                    let _ = reply.send(Err(Error::internal(e.clone())));
                }
                (Some(rec), _) if self.live.status == Some(Status::Exited) => {
                    let _ = reply.send(Ok(rec.clone()));
                }
                _ if self.meta.is_none() => {
                    let _ = reply.send(Err(Error::not_found(&self.ns, &self.name)));
                }
                _ => self.waiters.push(reply),
            },
            Msg::Pause(pause, reply) => {
                let r = self.pause(pause).await;
                let _ = reply.send(r);
            }
            Msg::Update(res, reply) => {
                let r = match spec::check_resources(&res) {
                    Err(e) => Err(e),
                    Ok(()) if res.is_empty() => Err(Error::invalid("update: no limit given")),
                    Ok(()) => self.simple(MReq::Update(*res)).await,
                };
                let _ = reply.send(r);
            }
            Msg::Top(reply) => {
                let r = self.top().await;
                let _ = reply.send(r);
            }
            Msg::Stats(reply) => {
                let r = match self.monitor(MReq::Stats).await {
                    Ok(MResp::Stats(st)) => Ok(st),
                    Ok(other) => Err(Error::internal(format!(
                        "unexpected monitor answer {other:?}"
                    ))),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Msg::LogStatus(reply) => {
                let r = self.log_status().await;
                let _ = reply.send(r);
            }
            Msg::Resize(rows, cols, reply) => {
                let r = if rows == 0 || cols == 0 {
                    Err(Error::invalid("resize: terminal size must be at least 1x1"))
                } else {
                    self.simple(MReq::Resize { rows, cols }).await
                };
                let _ = reply.send(r);
            }
            Msg::Target(reply) => {
                let r = match (&self.meta, self.live.status) {
                    (None, _) => Err(Error::not_found(&self.ns, &self.name)),
                    (_, Some(status)) => Ok(Target {
                        dir: self.dir.clone(),
                        status,
                    }),
                    (_, None) => Err(Error::internal("container state unknown")),
                };
                let _ = reply.send(r);
            }
            Msg::Remove(force, reply) => {
                let r = self.remove(force).await;
                let done = r.is_ok();
                let _ = reply.send(r);
                return done;
            }
        }
        false
    }

    fn exists(&self) -> Result<&Meta, Error> {
        self.meta
            .as_ref()
            .ok_or_else(|| Error::not_found(&self.ns, &self.name))
    }

    /// One request to the monitor over the link.
    async fn monitor(&mut self, req: MReq) -> Result<MResp, Error> {
        self.exists()?;
        self.answered()?;
        let Some(link) = &mut self.link else {
            return Err(Error::conflict(
                if self.live.status == Some(Status::Unknown) {
                    format!(
                        "container {}'s monitor is gone: only stop, kill and rm reach it",
                        self.name
                    )
                } else {
                    format!("container {} has exited", self.name)
                },
            ));
        };
        link.call(req)
            .await
            .map_err(|e| unreachable_err(&self.name, e))
    }

    async fn simple(&mut self, req: MReq) -> Result<(), Error> {
        self.monitor(req).await.map(drop)
    }

    fn details(&self) -> Result<ContainerDetails, Error> {
        let meta = self.exists()?;
        let exit = self.live.exit.clone();
        Ok(ContainerDetails {
            ns: self.ns.clone(),
            name: self.name.clone(),
            status: self.live.status.unwrap_or(Status::Exited),
            pid: self.live.pid,
            finished_at: exit.as_ref().map(|r| r.finished_at),
            exit,
            error: self.live.error.clone(),
            args: meta.args.clone(),
            log_path: meta.log_path.clone(),
            created_at: meta.created_at,
            started_at: self.live.started_at,
            restart_count: self.restart.count,
            next_restart_at: self.restart.pending,
            config: meta.config(),
        })
    }

    async fn create(
        &mut self,
        mut config: ContainerConfig,
        options: RunOptions,
        init: bool,
    ) -> Result<ContainerDetails, Error> {
        if config.restart == proto::api::RestartPolicy::No {
            config.restart = self.config.tunables().default_restart;
        }
        let cgroup_path = format!(
            "{}/{}/{}",
            self.config.cgroup_parent, self.ns, self.dir_name
        );
        let (mut spec, args) = spec::build(&config, &cgroup_path)?;
        if init {
            spec::with_init(&mut spec);
        }
        if self.dir.exists() {
            return Err(Error::new(
                proto::ErrorKind::AlreadyExists,
                format!("state dir {} exists already", self.dir.display()),
            ));
        }
        let meta = Meta {
            ns: self.ns.clone(),
            name: self.name.clone(),
            rootfs: config.rootfs.clone(),
            args,
            labels: config.labels.clone(),
            created_at: proto::time::now_nanos(),
            log_path: self.log_path.display().to_string(),
            cgroup_path,
            config: Some(config.clone()),
            auto_remove: options.auto_remove,
            stop_signal: options.stop_signal,
            stop_timeout: options.stop_timeout,
            dir: (self.dir_name != self.name).then(|| self.dir_name.clone()),
            init,
        };
        self.meta = Some(meta.clone());
        let made = match self.materialize(&meta, &spec) {
            Ok(()) => self.launch(config.start).await,
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            // Undo: the monitor removed its own files; remove ours.
            self.meta = None;
            self.link = None;
            let _ = std::fs::remove_dir_all(&self.dir);
            if std::fs::metadata(&self.log_path).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&self.log_path);
            }
            return Err(e);
        }
        self.restart = RestartState::default();
        self.publish(EventKind::Created);
        if config.start {
            self.publish(EventKind::Started);
        }
        self.details()
    }

    /// Gives the container the name `to`: `meta.json` is replaced in one
    /// rename, so a contd killed at any point finds the old name or the
    /// new one. The state dir, log and cgroup keep their names.
    fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        if self.name != from {
            return Err(Error::not_found(&self.ns, from));
        }
        let mut meta = self.exists()?.clone();
        meta.name = to.to_string();
        meta.dir = (self.dir_name != to).then(|| self.dir_name.clone());
        if let Some(c) = meta.config.as_mut() {
            c.name = to.to_string();
        }
        let json = serde_json::to_vec(&meta).map_err(|e| Error::internal(e.to_string()))?;
        let tmp = self.dir.join(".meta.json.tmp");
        let io = |e: std::io::Error| Error::internal(format!("rename: write meta.json: {e}"));
        write_private(&tmp, &json)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("meta.json")))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io(e)
            })?;
        info!(new_name = to, "renamed");
        self.meta = Some(meta);
        self.name = to.to_string();
        Ok(())
    }

    /// Writes the bundle and meta.json. A few small files in the state
    /// dir (a tmpfs on a node): written in place, not through the blocking
    /// pool, whose thread hops cost more than the writes.
    fn materialize(&self, meta: &Meta, spec: &serde_json::Value) -> Result<(), Error> {
        let io = |what: String| move |e: std::io::Error| Error::internal(format!("{what}: {e}"));
        use std::os::unix::fs::DirBuilderExt;
        // The spec and the request hold the container's env (secrets):
        // 0700 dirs and 0600 files, as runc keeps its state.
        let log_dir = self.config.log_dir.join(&self.ns);
        std::fs::create_dir_all(&log_dir).map_err(io(format!("create {}", log_dir.display())))?;
        // Made whole under a hidden name, then renamed into place: a contd
        // killed half-way leaves a `.NAME.creating` that the next one
        // removes (see `scan`), never a state dir without its meta.json.
        let ns_dir = self.config.state_dir.join(&self.ns);
        let tmp = ns_dir.join(format!(".{}{CREATING}", self.dir_name));
        let _ = std::fs::remove_dir_all(&tmp);
        let bundle = tmp.join("bundle");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&bundle)
            .map_err(io(format!("create {}", bundle.display())))?;
        let made = write_private(&bundle.join("config.json"), spec.to_string().as_bytes())
            .map_err(io("write config.json".into()))
            .and_then(|()| {
                let meta_json =
                    serde_json::to_vec(meta).map_err(|e| Error::internal(e.to_string()))?;
                write_private(&tmp.join("meta.json"), &meta_json)
                    .map_err(io("write meta.json".into()))
            })
            .and_then(|()| {
                std::fs::rename(&tmp, &self.dir).map_err(|e| match e.raw_os_error() {
                    Some(libc::EEXIST | libc::ENOTEMPTY) => Error::new(
                        proto::ErrorKind::AlreadyExists,
                        format!("state dir {} exists already", self.dir.display()),
                    ),
                    _ => Error::internal(format!("rename to {}: {e}", self.dir.display())),
                })
            });
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        made
    }

    /// Starts a monitor for the bundle in the state dir (a new container,
    /// or the same one again) and links to it. With `start` the monitor
    /// starts the container too, and the link is opened once the caller
    /// has its answer (before the actor's next step).
    async fn launch(&mut self, start: bool) -> Result<(), Error> {
        let interactive = self.exists()?.config().interactive;
        let id = format!("{}.{}", self.ns, self.dir_name);
        let l = launch::launch(
            &self.config.monitor_bin,
            &self.dir,
            &self.log_path,
            &id,
            &self.config,
            interactive.stdin && interactive.tty.is_none(),
            interactive.tty.is_some(),
            start,
        )
        .await?;
        info!(pid = l.pid, monitor_pid = l.monitor_pid, start, "created");
        self.live = Live {
            status: Some(if start {
                Status::Running
            } else {
                Status::Created
            }),
            pid: Some(l.pid),
            started_at: l.started_at,
            ..Live::default()
        };
        if start {
            self.link_pending = true;
            return Ok(());
        }
        self.connect()
            .await
            .map_err(|e| unreachable_err(&self.name, e))
    }

    async fn start_created(&mut self) -> Result<(), Error> {
        self.simple(MReq::Start).await?;
        if self.live.status == Some(Status::Created) {
            self.live.status = Some(Status::Running);
            self.live.started_at = Some(proto::time::now_nanos());
            if self.link.as_ref().is_some_and(|l| l.version < 4) {
                self.publish(EventKind::Started);
            }
        }
        Ok(())
    }

    async fn start(&mut self) -> Result<(), Error> {
        self.exists()?;
        self.answered()?;
        match self.live.status {
            Some(Status::Created) => {
                self.restart.stopped = false;
                self.save_restart();
                self.start_created().await
            }
            Some(Status::Running) => Ok(()),
            Some(Status::Paused) => Err(Error::conflict(format!(
                "container {} is paused: unpause it",
                self.name
            ))),
            Some(Status::Unknown) if self.orphan().is_some() => Err(Error::conflict(format!(
                "container {}'s init still runs without its monitor: stop or remove it",
                self.name
            ))),
            Some(Status::Exited | Status::Unknown) | None => {
                // docker: the same container runs again; its restart policy
                // is back in force.
                self.restart_at = None;
                self.restart.pending = None;
                self.restart.stopped = false;
                self.save_restart();
                self.relaunch().await
            }
        }
    }

    /// The policy's restart is due.
    async fn restart_now(&mut self) {
        self.restart_at = None;
        if let Err(e) = self.relaunch().await {
            warn!(error = %e, "restart failed");
            self.live.error = Some(format!("restart failed: {e}"));
            self.restart.pending = None;
            self.save_restart();
        }
    }

    /// Runs the exited container again: the old monitor releases its
    /// resources, a new one starts from the same bundle and log. The
    /// pending restart is cleared only once it runs, so a contd killed in
    /// between takes it up again.
    async fn relaunch(&mut self) -> Result<(), Error> {
        self.release_monitor().await?;
        for f in ["exit", "log-status"] {
            match std::fs::remove_file(self.dir.join(f)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::internal(format!("remove {f}: {e}"))),
            }
        }
        self.launch(true).await?;
        self.publish(EventKind::Started);
        if self.restart.pending.take().is_some() {
            self.save_restart();
        }
        Ok(())
    }

    /// Releases the exited container's monitor (it removes the cgroup and
    /// its socket); if the monitor is gone, removes the cgroup here.
    async fn release_monitor(&mut self) -> Result<(), Error> {
        if let Some(mut link) = self.link.take() {
            match link.call(MReq::Release).await {
                Ok(_) | Err(Unreachable::Gone) => {}
                Err(Unreachable::Failed(e)) => {
                    self.link = Some(link);
                    return Err(e);
                }
            }
        } else {
            match link::request(&self.dir, &MReq::Release, Some(link::REQUEST_TIMEOUT)).await {
                Ok(_) | Err(Unreachable::Gone) => {}
                Err(Unreachable::Failed(e)) => return Err(e),
            }
        }
        let cg = self.exists()?.cgroup_path.clone();
        // Processes killed a moment ago (a monitor-less init) may still be
        // leaving the cgroup.
        let removed = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                match runtime_core::remove_cgroup(&cg) {
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    r => return r,
                }
            }
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
        removed.map_err(|e| Error::internal(e.to_string()))
    }

    /// Marks the container stopped through the api: its policy holds off
    /// until the next start, and a pending restart is cancelled.
    fn stopped_by_user(&mut self) {
        self.restart.stopped = true;
        self.restart.pending = None;
        self.restart_at = None;
        self.save_restart();
    }

    async fn kill(&mut self, signal: i32) -> Result<(), Error> {
        self.exists()?;
        self.answered()?;
        if !(1..=64).contains(&signal) {
            return Err(Error::invalid(format!("invalid signal {signal}")));
        }
        if self.live.status == Some(Status::Unknown) {
            let Some(c) = self.orphan() else {
                return Err(Error::conflict(format!(
                    "container {} is not running",
                    self.name
                )));
            };
            self.stopped_by_user();
            return c.kill(signal).map_err(|e| Error::internal(e.to_string()));
        }
        if self.live.status == Some(Status::Exited) {
            return Err(Error::conflict(format!(
                "container {} is not running",
                self.name
            )));
        }
        self.stopped_by_user();
        self.simple(MReq::Signal { signal }).await
    }

    /// Stops the container: its stop signal (SIGTERM), `grace` (or its
    /// stop timeout, or 10 s), then SIGKILL.
    async fn stop(&mut self, grace: Option<Duration>, reply: Reply<()>) {
        let meta = match self.exists().and_then(|m| self.answered().map(|()| m)) {
            Ok(m) => m,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let signal = meta.stop_signal.unwrap_or(libc::SIGTERM);
        let grace = grace.unwrap_or_else(|| {
            Duration::from_secs(u64::from(meta.stop_timeout.unwrap_or(DEFAULT_STOP_SECS)))
        });
        self.stopped_by_user();
        if self.live.status == Some(Status::Unknown) {
            let r = self.stop_orphan(grace).await;
            let _ = reply.send(r);
            return;
        }
        if self.live.status == Some(Status::Exited) || self.link.is_none() {
            let _ = reply.send(Ok(()));
            return;
        }
        let timeout_ms = grace.as_millis().min(u64::MAX as u128) as u64;
        let version = self.link.as_ref().map_or(0, |l| l.version);
        let r = if version >= 4 {
            // The monitor keeps the deadline: a contd that dies now still
            // ends in SIGKILL.
            self.simple(MReq::Terminate { signal, timeout_ms }).await
        } else if version >= 2 {
            let dir = self.dir.clone();
            tokio::spawn(async move {
                let req = MReq::Stop { signal, timeout_ms };
                let _ = link::request(&dir, &req, None).await;
            });
            Ok(())
        } else {
            let r = self.simple(MReq::Signal { signal }).await;
            let dir = self.dir.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let req = MReq::Signal {
                    signal: libc::SIGKILL,
                };
                let _ = link::request(&dir, &req, Some(link::REQUEST_TIMEOUT)).await;
            });
            r
        };
        match r {
            Ok(()) => self.stoppers.push(reply),
            // It exited in between: stopped.
            Err(e) if e.kind == proto::ErrorKind::Conflict => {
                let _ = reply.send(Ok(()));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn pause(&mut self, pause: bool) -> Result<(), Error> {
        self.exists()?;
        let want = if pause {
            Status::Running
        } else {
            Status::Paused
        };
        if self.live.status != Some(want) {
            return Err(Error::conflict(format!(
                "container {} is {}, not {}",
                self.name,
                self.live.status.unwrap_or(Status::Exited).as_str(),
                want.as_str()
            )));
        }
        self.simple(if pause { MReq::Pause } else { MReq::Resume })
            .await?;
        self.live.status = Some(if pause {
            Status::Paused
        } else {
            Status::Running
        });
        Ok(())
    }

    async fn top(&mut self) -> Result<Vec<Process>, Error> {
        let meta = self.exists()?;
        if self.live.status == Some(Status::Exited) {
            return Err(Error::conflict(format!(
                "container {} is not running",
                self.name
            )));
        }
        let cg = meta.cgroup_path.clone();
        let pids = if self.link.as_ref().is_some_and(|l| l.version >= 4) {
            match self.monitor(MReq::Pids).await? {
                MResp::Pids(p) => p,
                other => {
                    return Err(Error::internal(format!(
                        "unexpected monitor answer {other:?}"
                    )))
                }
            }
        } else {
            tokio::task::spawn_blocking(move || runtime_core::cgroup_procs(&cg))
                .await
                .map_err(|e| Error::internal(e.to_string()))?
        };
        tokio::task::spawn_blocking(move || crate::top::processes(&pids))
            .await
            .map_err(|e| Error::internal(e.to_string()))
    }

    /// How the log writer fares: from the monitor, or, once it is gone,
    /// from the status it left at exit (none left: nothing went wrong).
    async fn log_status(&mut self) -> Result<LogStatus, Error> {
        self.exists()?;
        if self.link.is_some() {
            match self.monitor(MReq::LogStatus).await {
                Ok(MResp::LogStatus(st)) => return Ok(st),
                Ok(other) => {
                    return Err(Error::internal(format!(
                        "unexpected monitor answer {other:?}"
                    )))
                }
                Err(e) if e.kind == proto::ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        let file = self.dir.join("log-status");
        match tokio::fs::read(&file).await {
            Ok(data) => serde_json::from_slice(&data)
                .map_err(|e| Error::internal(format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LogStatus::default()),
            Err(e) => Err(Error::internal(format!("read log status: {e}"))),
        }
    }

    /// Waits (here, holding off other requests) for the exit a SIGKILL
    /// brings.
    async fn await_exit(&mut self) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        while self.live.status != Some(Status::Exited) {
            match tokio::time::timeout_at(deadline, next_link_event(&mut self.link)).await {
                Ok(ev) => self.on_link(ev).await,
                Err(_) => return Err(Error::internal("container did not die after SIGKILL")),
            }
        }
        Ok(())
    }

    async fn remove(&mut self, force: bool) -> Result<(), Error> {
        self.exists()?;
        self.answered()?;
        if self.live.status == Some(Status::Unknown) {
            if !force && self.orphan().is_some() {
                return Err(Error::conflict(format!(
                    "container {}'s init still runs without its monitor: stop it first or force the removal",
                    self.name
                )));
            }
            self.stopped_by_user();
            self.stop_orphan(Duration::ZERO).await?;
        }
        if self.live.status != Some(Status::Exited) {
            if !force {
                return Err(Error::conflict(format!(
                    "container {} is {}: stop it first or force the removal",
                    self.name,
                    self.live.status.unwrap_or(Status::Exited).as_str()
                )));
            }
            self.stopped_by_user();
            let version = self.link.as_ref().map_or(0, |l| l.version);
            let req = if version >= 4 {
                MReq::Terminate {
                    signal: libc::SIGKILL,
                    timeout_ms: 0,
                }
            } else {
                MReq::Signal {
                    signal: libc::SIGKILL,
                }
            };
            match self.simple(req).await {
                Ok(()) => {}
                Err(e) if e.kind == proto::ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
            self.await_exit().await?;
        }
        self.restart_at = None;
        self.release_monitor().await?;
        // Renamed first: a contd killed while deleting leaves a hidden
        // `.NAME.removing` the next one finishes, never half a container.
        let doomed = self
            .dir
            .with_file_name(format!(".{}{REMOVING}", self.dir_name));
        let _ = std::fs::remove_dir_all(&doomed);
        std::fs::rename(&self.dir, &doomed)
            .map_err(|e| Error::internal(format!("remove {}: {e}", self.dir.display())))?;
        tokio::fs::remove_dir_all(&doomed)
            .await
            .map_err(|e| Error::internal(format!("remove {}: {e}", doomed.display())))?;
        crate::logs::remove(
            &self.log_path,
            self.config.keep_logs,
            self.exists()?.created_at,
        );
        info!("removed");
        self.publish(EventKind::Removed);
        Ok(())
    }
}

//! The supervisor actor: the registry `(ns, name) → ContainerHandle`.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Shared;
use crate::container::ContainerHandle;
use crate::events::Bus;
use crate::spec::Meta;
use crate::Error;

type Key = (String, String);

enum Msg {
    Reserve {
        key: Key,
        reply: oneshot::Sender<Result<ContainerHandle, Error>>,
    },
    /// Claims `to` for the container called `from`: both names lead to
    /// it until the rename is done (`Forget` of one of them).
    Alias {
        from: Key,
        to: String,
        reply: oneshot::Sender<Result<ContainerHandle, Error>>,
    },
    Get {
        key: Key,
        reply: oneshot::Sender<Option<ContainerHandle>>,
    },
    List {
        ns: Option<String>,
        reply: oneshot::Sender<Vec<(Key, ContainerHandle)>>,
    },
    Forget {
        key: Key,
    },
}

/// Held by a container actor until its first link attempt is over.
pub(crate) struct AdoptGuard(Arc<watch::Sender<usize>>);

impl Drop for AdoptGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Lets a container actor that removed itself (`--rm`) drop its name; weak,
/// so that it does not keep the registry alive.
#[derive(Debug, Clone)]
pub(crate) struct Forgetter(mpsc::WeakSender<Msg>);

impl Forgetter {
    /// Drops `(ns, name)` from the registry.
    pub(crate) async fn forget(&self, ns: &str, name: &str) {
        if let Some(tx) = self.0.upgrade() {
            let key = (ns.to_string(), name.to_string());
            let _ = tx.send(Msg::Forget { key }).await;
        }
    }
}

/// Handle to the registry actor.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    tx: mpsc::Sender<Msg>,
}

struct RegistryActor {
    rx: mpsc::Receiver<Msg>,
    config: Arc<Shared>,
    bus: Bus,
    forgetter: Forgetter,
    containers: BTreeMap<Key, ContainerHandle>,
}

impl Registry {
    /// Starts the registry with the containers found on disk.
    /// `adopting` counts down as each adopted container's monitor has
    /// answered, or failed to in time.
    pub(crate) fn spawn(
        config: Arc<Shared>,
        bus: Bus,
        adopted: Vec<Meta>,
        adopting: &Arc<watch::Sender<usize>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let forgetter = Forgetter(tx.downgrade());
        let containers = adopted
            .into_iter()
            .map(|m| {
                let key = (m.ns.clone(), m.name.clone());
                let guard = AdoptGuard(adopting.clone());
                let h = ContainerHandle::spawn(
                    &config,
                    &bus,
                    &forgetter,
                    &key.0,
                    &key.1,
                    &key.1,
                    Some((m, guard)),
                );
                (key, h)
            })
            .collect();
        let actor = RegistryActor {
            rx,
            config,
            bus,
            forgetter,
            containers,
        };
        tokio::spawn(actor.run());
        Registry { tx }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::internal("supervisor is shutting down"))?;
        rx.await
            .map_err(|_| Error::internal("supervisor is shutting down"))
    }

    /// Claims a name for a new container.
    pub(crate) async fn reserve(&self, ns: &str, name: &str) -> Result<ContainerHandle, Error> {
        let key = (ns.to_string(), name.to_string());
        self.ask(|reply| Msg::Reserve { key, reply }).await?
    }

    /// Claims `to` for the container `name` (see [`Msg::Alias`]).
    pub(crate) async fn alias(
        &self,
        ns: &str,
        name: &str,
        to: &str,
    ) -> Result<ContainerHandle, Error> {
        let from = (ns.to_string(), name.to_string());
        let to = to.to_string();
        self.ask(|reply| Msg::Alias { from, to, reply }).await?
    }

    /// Finds a container.
    pub(crate) async fn get(&self, ns: &str, name: &str) -> Result<ContainerHandle, Error> {
        let key = (ns.to_string(), name.to_string());
        self.ask(|reply| Msg::Get { key, reply })
            .await?
            .ok_or_else(|| Error::not_found(ns, name))
    }

    /// Containers of one namespace, or all.
    pub(crate) async fn list(
        &self,
        ns: Option<String>,
    ) -> Result<Vec<((String, String), ContainerHandle)>, Error> {
        self.ask(|reply| Msg::List { ns, reply }).await
    }

    /// Drops a container from the registry (removed, or failed to create).
    pub(crate) async fn forget(&self, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        let _ = self.tx.send(Msg::Forget { key }).await;
    }
}

/// A name in use.
fn taken(ns: &str, name: &str) -> Error {
    Error::new(
        proto::ErrorKind::AlreadyExists,
        format!(
            "container {name:?} exists already in namespace {ns:?} \
             (a run whose answer was lost may have created it: inspect shows it)"
        ),
    )
}

impl RegistryActor {
    /// The state dir name for a new container called `name`: its name,
    /// unless a container renamed since holds that dir; then `name@N`
    /// (`@` is in no name, so it never meets one).
    fn free_dir_name(&self, ns: &str, name: &str) -> String {
        let held = |d: &str| {
            self.containers
                .iter()
                .any(|((n, _), h)| n == ns && h.dir_name == d)
        };
        if !held(name) {
            return name.to_string();
        }
        (1u32..)
            .map(|i| format!("{name}@{i}"))
            .find(|d| !held(d))
            .unwrap_or_default()
    }

    async fn run(mut self) {
        while let Some(msg) = self.rx.recv().await {
            match msg {
                Msg::Reserve { key, reply } => {
                    let r = if self.containers.contains_key(&key) {
                        Err(taken(&key.0, &key.1))
                    } else {
                        let dir_name = self.free_dir_name(&key.0, &key.1);
                        let h = ContainerHandle::spawn(
                            &self.config,
                            &self.bus,
                            &self.forgetter,
                            &key.0,
                            &key.1,
                            &dir_name,
                            None,
                        );
                        self.containers.insert(key, h.clone());
                        Ok(h)
                    };
                    let _ = reply.send(r);
                }
                Msg::Alias { from, to, reply } => {
                    let to = (from.0.clone(), to);
                    let r = if self.containers.contains_key(&to) {
                        Err(Error::new(
                            proto::ErrorKind::AlreadyExists,
                            format!(
                                "new_name: container {:?} exists already in namespace {:?}",
                                to.1, to.0
                            ),
                        ))
                    } else {
                        match self.containers.get(&from).cloned() {
                            Some(h) => {
                                self.containers.insert(to, h.clone());
                                Ok(h)
                            }
                            None => Err(Error::not_found(&from.0, &from.1)),
                        }
                    };
                    let _ = reply.send(r);
                }
                Msg::Get { key, reply } => {
                    let _ = reply.send(self.containers.get(&key).cloned());
                }
                Msg::List { ns, reply } => {
                    // A container being renamed is under both names: once.
                    let mut seen = std::collections::BTreeSet::new();
                    let v = self
                        .containers
                        .iter()
                        .filter(|((n, _), _)| ns.as_ref().is_none_or(|want| want == n))
                        .filter(|((n, _), h)| seen.insert((n.clone(), h.dir_name.clone())))
                        .map(|(k, h)| (k.clone(), h.clone()))
                        .collect();
                    let _ = reply.send(v);
                }
                Msg::Forget { key } => {
                    self.containers.remove(&key);
                }
            }
        }
    }
}

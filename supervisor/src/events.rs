//! The events broadcast: every container actor publishes what happens to
//! its container; each subscriber reads at its own pace from a bounded
//! ring, and one that falls a whole ring behind is dropped, never waited
//! for.

use proto::api::{Event, EventFilter, EventKind};
use tokio::sync::broadcast;

use crate::Error;

/// Events a subscriber may lag behind before it is dropped.
const RING: usize = 4096;

/// The sending side, shared by every actor.
#[derive(Clone, Debug)]
pub(crate) struct Bus {
    tx: broadcast::Sender<Event>,
}

impl Bus {
    pub(crate) fn new() -> Self {
        Bus {
            tx: broadcast::channel(RING).0,
        }
    }

    /// Publishes an event of `ns/name` now.
    pub(crate) fn publish(&self, ns: &str, name: &str, kind: EventKind) {
        // No subscriber is not an error.
        let _ = self.tx.send(Event {
            time: proto::time::now_nanos(),
            ns: ns.to_string(),
            name: name.to_string(),
            kind,
        });
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

/// A subscription: the replayed state first (if asked), then live events
/// that pass the filter.
#[derive(Debug)]
pub struct EventStream {
    pub(crate) replay: std::collections::VecDeque<Event>,
    pub(crate) rx: broadcast::Receiver<Event>,
    pub(crate) filter: EventFilter,
    pub(crate) dropped: bool,
}

impl EventStream {
    /// The next event; `None` once the supervisor stops.
    ///
    /// # Errors
    /// Once, when the subscriber fell too far behind and was dropped; the
    /// stream ends after it.
    pub async fn next(&mut self) -> Option<Result<Event, Error>> {
        if self.dropped {
            return None;
        }
        if let Some(e) = self.replay.pop_front() {
            return Some(Ok(e));
        }
        loop {
            match self.rx.recv().await {
                Ok(e) if self.filter.matches(&e) => return Some(Ok(e)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.dropped = true;
                    return Some(Err(Error::new(
                        proto::ErrorKind::Conflict,
                        format!("events: the subscriber fell {n} events behind and was dropped"),
                    )));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Checks a filter's fields.
pub(crate) fn check_filter(f: &EventFilter) -> Result<(), Error> {
    if let Some(ns) = &f.ns {
        proto::validate_name("namespace", ns)?;
    }
    if let Some(n) = &f.name {
        proto::validate_name("name", n)?;
    }
    for k in &f.kinds {
        if !EventKind::WORDS.contains(&k.as_str()) {
            return Err(Error::invalid(format!(
                "events filter: type {k:?} is not one of {}",
                EventKind::WORDS.join(", ")
            )));
        }
    }
    Ok(())
}

//! The link to one container's monitor: connecting (one hello helper for
//! every connection), single requests, and the live link a container
//! actor keeps for the container's whole life.
//!
//! With a monitor of protocol 4 the live link is one connection: a
//! `Subscribe` answered with the state, then requests and their answers in
//! order, with the monitor's events pushed between them. An older monitor
//! has no events: its link is a held `Wait` (which reports the exit) and a
//! fresh connection per request.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::asynch::{read_frame, write_frame};
use proto::monitor::{MonitorEvent, MonitorState, Request, Response};
use proto::ErrorKind;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// How long one monitor request may take (not `Wait`).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a monitor could not be reached.
#[derive(Debug)]
pub(crate) enum Unreachable {
    /// No monitor listens (gone, or released): look for the exit record.
    Gone,
    /// Something else failed.
    Failed(Error),
}

/// What the live link tells its actor.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// The monitor pushed (or, for an old monitor, the held `Wait`
    /// answered) this.
    Event(MonitorEvent),
    /// The connection closed: the monitor released itself or died.
    Lost,
}

/// Connects to `dir/monitor.sock` (through `/proc/self/fd` when the path is
/// too long for `sun_path`), exchanges hellos and returns the protocol
/// version agreed on.
pub(crate) async fn connect(dir: &Path) -> Result<(UnixStream, u16), Unreachable> {
    let sock = dir.join("monitor.sock");
    let connected = if sock.as_os_str().len() < 100 {
        UnixStream::connect(&sock).await
    } else {
        match std::fs::File::open(dir) {
            Ok(d) => {
                use std::os::fd::AsRawFd;
                let short = PathBuf::from(format!("/proc/self/fd/{}/monitor.sock", d.as_raw_fd()));
                let r = UnixStream::connect(&short).await;
                drop(d);
                r
            }
            Err(e) => Err(e),
        }
    };
    let mut s = match connected {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(Unreachable::Gone)
        }
        Err(e) => {
            return Err(Unreachable::Failed(Error::internal(format!(
                "connect to monitor {}: {e}",
                sock.display()
            ))))
        }
    };
    let exchange = async {
        write_frame(&mut s, &proto::hello("contd")).await?;
        read_frame::<_, proto::Hello>(&mut s).await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok(h)) => match proto::accept_hello(&h) {
            Ok(v) => Ok((s, v)),
            Err(e) => Err(Unreachable::Failed(e.into())),
        },
        // A monitor that closes during the handshake is exiting (released).
        Ok(Err(proto::FrameError::Closed)) => Err(Unreachable::Gone),
        Ok(Err(e)) => Err(Unreachable::Failed(Error::internal(format!(
            "hello to monitor {}: {e}",
            sock.display()
        )))),
        Err(_) => Err(Unreachable::Failed(Error::internal(format!(
            "monitor {} does not answer",
            sock.display()
        )))),
    }
}

/// Refuses a request newer than the version agreed on.
fn check_version(req: &Request, version: u16) -> Result<(), Unreachable> {
    if req.since() > version {
        return Err(Unreachable::Failed(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the container's monitor speaks protocol {version}; this request needs {}",
                req.since()
            ),
        )));
    }
    Ok(())
}

fn answer(r: Result<Response, proto::FrameError>) -> Result<Response, Unreachable> {
    match r {
        Ok(Response::Error(e)) => Err(Unreachable::Failed(e.into())),
        Ok(r) => Ok(r),
        Err(proto::FrameError::Closed) => Err(Unreachable::Gone),
        Err(e) => Err(Unreachable::Failed(Error::internal(format!(
            "monitor request: {e}"
        )))),
    }
}

/// Sends one request on a fresh connection and reads the answer, within
/// `timeout` (`None`: as long as it takes, for `Wait`).
pub(crate) async fn request(
    dir: &Path,
    req: &Request,
    timeout: Option<Duration>,
) -> Result<Response, Unreachable> {
    let (mut s, version) = connect(dir).await?;
    check_version(req, version)?;
    let exchange = async {
        write_frame(&mut s, req).await?;
        read_frame::<_, Response>(&mut s).await
    };
    let res = match timeout {
        Some(t) => tokio::time::timeout(t, exchange)
            .await
            .map_err(|_| Unreachable::Failed(Error::internal("monitor request timed out")))?,
        None => exchange.await,
    };
    answer(res)
}

type Pending = (Request, oneshot::Sender<Result<Response, Unreachable>>);

/// The live link to a monitor; dropping it closes the connection.
#[derive(Debug)]
pub(crate) struct Link {
    dir: PathBuf,
    /// The protocol version agreed on.
    pub(crate) version: u16,
    /// Requests for the connection's writer (protocol 4).
    tx: Option<mpsc::UnboundedSender<Pending>>,
    /// The held `Wait` of an older monitor.
    waiter: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            w.abort();
        }
    }
}

impl Link {
    /// Opens the live link: the link, the monitor's state at that moment,
    /// and the events that follow it.
    pub(crate) async fn open(
        dir: &Path,
    ) -> Result<(Link, MonitorState, mpsc::UnboundedReceiver<LinkEvent>), Unreachable> {
        let (mut s, version) = connect(dir).await?;
        let (events, rx) = mpsc::unbounded_channel();
        // An old monitor has no events: its state, then a held Wait.
        let first = if version < 4 {
            Request::State
        } else {
            Request::Subscribe
        };
        let exchange = async {
            write_frame(&mut s, &first).await?;
            read_frame::<_, Response>(&mut s).await
        };
        let state = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => match answer(r)? {
                Response::State(st) => st,
                other => return Err(unexpected(&other)),
            },
            Err(_) => {
                return Err(Unreachable::Failed(Error::internal(
                    "monitor request timed out",
                )))
            }
        };
        if version < 4 {
            drop(s);
            let d = dir.to_path_buf();
            let waiter = tokio::spawn(async move {
                let ev = match request(&d, &Request::Wait, None).await {
                    Ok(Response::Exited(rec)) => LinkEvent::Event(MonitorEvent::Exited(rec)),
                    _ => LinkEvent::Lost,
                };
                let _ = events.send(ev);
            });
            let link = Link {
                dir: dir.to_path_buf(),
                version,
                tx: None,
                waiter: Some(waiter),
            };
            return Ok((link, state, rx));
        }
        let (mut rd, mut wr) = s.into_split();
        let queue: Arc<Mutex<VecDeque<oneshot::Sender<_>>>> = Arc::default();
        let (tx, mut requests) = mpsc::unbounded_channel::<Pending>();
        let q = queue.clone();
        tokio::spawn(async move {
            while let Some((req, reply)) = requests.recv().await {
                if let Ok(mut q) = q.lock() {
                    q.push_back(reply);
                }
                if write_frame(&mut wr, &req).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                match read_frame::<_, Response>(&mut rd).await {
                    Ok(Response::Event(ev)) => {
                        let _ = events.send(LinkEvent::Event(ev));
                    }
                    Ok(resp) => {
                        let reply = queue.lock().ok().and_then(|mut q| q.pop_front());
                        if let Some(reply) = reply {
                            let _ = reply.send(answer(Ok(resp)));
                        }
                    }
                    Err(_) => break,
                }
            }
            if let Ok(mut q) = queue.lock() {
                for reply in q.drain(..) {
                    let _ = reply.send(Err(Unreachable::Gone));
                }
            }
            let _ = events.send(LinkEvent::Lost);
        });
        let link = Link {
            dir: dir.to_path_buf(),
            version,
            tx: Some(tx),
            waiter: None,
        };
        Ok((link, state, rx))
    }

    /// One request on the link (a fresh connection for an old monitor).
    pub(crate) async fn call(&self, req: Request) -> Result<Response, Unreachable> {
        check_version(&req, self.version)?;
        let Some(tx) = &self.tx else {
            return request(&self.dir, &req, Some(REQUEST_TIMEOUT)).await;
        };
        let (reply, rx) = oneshot::channel();
        tx.send((req, reply)).map_err(|_| Unreachable::Gone)?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Unreachable::Gone),
            Err(_) => Err(Unreachable::Failed(Error::internal(
                "monitor request timed out",
            ))),
        }
    }
}

fn unexpected(r: &Response) -> Unreachable {
    Unreachable::Failed(Error::internal(format!("unexpected monitor answer {r:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A monitor of an older release: answers the hello with `version`,
    /// then reports whether any request frame reached it.
    fn old_monitor(dir: &Path, version: u16) -> std::thread::JoinHandle<bool> {
        let listener = std::os::unix::net::UnixListener::bind(dir.join("monitor.sock")).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _: proto::Hello = proto::read_frame(&mut s).unwrap();
            let hello = proto::Hello {
                protocol: version,
                software: "contd-monitor (old)".into(),
            };
            proto::write_frame(&mut s, &hello).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            proto::read_frame::<Request>(&mut s).is_ok()
        })
    }

    #[tokio::test]
    async fn a_request_newer_than_the_monitor_is_refused_not_sent() {
        for (version, req) in [
            (2, Request::LogStatus),
            (1, Request::Stats),
            (3, Request::Pause),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let monitor = old_monitor(dir.path(), version);
            match request(dir.path(), &req, Some(REQUEST_TIMEOUT)).await {
                Err(Unreachable::Failed(e)) => {
                    assert_eq!(e.kind, ErrorKind::Unsupported, "{e:?}");
                    assert!(
                        e.message
                            .contains(&format!("speaks protocol {version}; this request needs")),
                        "{e:?}"
                    );
                }
                other => panic!("{req:?} to a v{version} monitor: {other:?}"),
            }
            assert!(
                !monitor.join().unwrap(),
                "{req:?} reached a v{version} monitor"
            );
        }
    }

    #[tokio::test]
    async fn a_request_the_monitor_knows_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let monitor = old_monitor(dir.path(), 1);
        // The fake hangs up without answering; what matters is that the
        // request went out.
        let r = request(dir.path(), &Request::State, Some(Duration::from_secs(5))).await;
        assert!(matches!(r, Err(Unreachable::Gone)), "{r:?}");
        assert!(monitor.join().unwrap());
    }
}

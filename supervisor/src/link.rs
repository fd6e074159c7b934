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
use std::time::Duration;

use proto::asynch::{read_frame, write_frame};
use proto::monitor::{MonitorEvent, MonitorState, Request, Response};
use proto::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

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

/// The live link to a monitor; dropping it closes the connection. The
/// actor owns it outright: no tasks, no channels, and no buffer while idle
/// (a node has a thousand of these).
#[derive(Debug)]
pub(crate) struct Link {
    dir: PathBuf,
    /// The protocol version agreed on.
    pub(crate) version: u16,
    conn: Conn,
}

#[derive(Debug)]
enum Conn {
    /// Protocol 4: one connection; answers in order, events between them.
    Live(Live),
    /// An older monitor: the held `Wait`, done once it answered.
    Old(Option<tokio::task::JoinHandle<LinkEvent>>),
}

#[derive(Debug)]
struct Live {
    s: UnixStream,
    /// Bytes of a frame not complete yet.
    buf: Vec<u8>,
    /// Events that came while a request waited for its answer.
    events: VecDeque<MonitorEvent>,
    /// Answers still to come to requests that timed out: dropped.
    skip: u32,
    closed: bool,
}

impl Live {
    /// The next frame. Cancel-safe: a partial frame stays in `buf`.
    async fn frame(&mut self) -> Result<Response, proto::FrameError> {
        loop {
            if let Some(p) = proto::take_frame(&mut self.buf)? {
                if self.buf.is_empty() {
                    self.buf = Vec::new();
                }
                return proto::decode(&p);
            }
            self.buf.reserve(512);
            if self.s.read_buf(&mut self.buf).await? == 0 {
                return Err(proto::FrameError::Closed);
            }
        }
    }

    /// The next frame that is an answer to a request; events are queued.
    async fn answer(&mut self) -> Result<Response, Unreachable> {
        loop {
            match self.frame().await {
                Ok(Response::Event(ev)) => self.events.push_back(ev),
                Ok(_) if self.skip > 0 => self.skip -= 1,
                Ok(r) => return answer(Ok(r)),
                Err(e) => {
                    self.closed = true;
                    return answer(Err(e));
                }
            }
        }
    }

    async fn call(&mut self, req: &Request) -> Result<Response, Unreachable> {
        if self.closed {
            return Err(Unreachable::Gone);
        }
        let frame = proto::encode_frame(req)
            .map_err(|e| Unreachable::Failed(Error::internal(format!("encode request: {e}"))))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.s.write_all(&frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                self.closed = true;
                return Err(Unreachable::Gone);
            }
            // Part of a frame may be out: the connection is unusable.
            Err(_) => {
                self.closed = true;
                return Err(Unreachable::Failed(Error::internal(
                    "monitor request timed out",
                )));
            }
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, self.answer()).await {
            Ok(r) => r,
            Err(_) => {
                // Its answer, if it ever comes, is not the next request's.
                self.skip += 1;
                Err(Unreachable::Failed(Error::internal(
                    "monitor request timed out",
                )))
            }
        }
    }

    async fn next_event(&mut self) -> LinkEvent {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return LinkEvent::Event(ev);
            }
            if self.closed {
                return LinkEvent::Lost;
            }
            match self.frame().await {
                Ok(Response::Event(ev)) => return LinkEvent::Event(ev),
                // A late answer to a request that timed out.
                Ok(_) => self.skip = self.skip.saturating_sub(1),
                Err(_) => self.closed = true,
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Conn::Old(Some(w)) = &self.conn {
            w.abort();
        }
    }
}

impl Link {
    /// Opens the live link: the link and the monitor's state at that
    /// moment; [`Link::next_event`] brings what follows it.
    pub(crate) async fn open(dir: &Path) -> Result<(Link, MonitorState), Unreachable> {
        let (mut s, version) = connect(dir).await?;
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
        let conn = if version < 4 {
            drop(s);
            let d = dir.to_path_buf();
            Conn::Old(Some(tokio::spawn(async move {
                match request(&d, &Request::Wait, None).await {
                    Ok(Response::Exited(rec)) => LinkEvent::Event(MonitorEvent::Exited(rec)),
                    _ => LinkEvent::Lost,
                }
            })))
        } else {
            Conn::Live(Live {
                s,
                buf: Vec::new(),
                events: VecDeque::new(),
                skip: 0,
                closed: false,
            })
        };
        let link = Link {
            dir: dir.to_path_buf(),
            version,
            conn,
        };
        Ok((link, state))
    }

    /// One request on the link (a fresh connection for an old monitor).
    pub(crate) async fn call(&mut self, req: Request) -> Result<Response, Unreachable> {
        check_version(&req, self.version)?;
        match &mut self.conn {
            Conn::Live(l) => l.call(&req).await,
            Conn::Old(_) => request(&self.dir, &req, Some(REQUEST_TIMEOUT)).await,
        }
    }

    /// What the monitor tells next: an event, or that it is gone. Cancel-safe.
    pub(crate) async fn next_event(&mut self) -> LinkEvent {
        match &mut self.conn {
            Conn::Live(l) => l.next_event().await,
            Conn::Old(w) => match w {
                Some(h) => {
                    let ev = h.await.unwrap_or(LinkEvent::Lost);
                    *w = None;
                    ev
                }
                None => LinkEvent::Lost,
            },
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

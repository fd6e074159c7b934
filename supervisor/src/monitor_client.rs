//! Talking to one container's monitor over `monitor.sock`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::asynch::{read_frame, write_frame};
use proto::monitor::{Request, Response};
use proto::{ErrorKind, Hello};
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

/// Connects to `dir/monitor.sock` (through `/proc/self/fd` when the path is
/// too long for `sun_path`), exchanges hellos and returns the protocol
/// version agreed on.
pub(crate) async fn connect_versioned(dir: &Path) -> Result<(UnixStream, u16), Unreachable> {
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
    let hello = Hello {
        protocol: proto::PROTOCOL_VERSION,
        software: format!("contd {}", env!("CARGO_PKG_VERSION")),
    };
    let exchange = async {
        write_frame(&mut s, &hello).await?;
        read_frame::<_, Hello>(&mut s).await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok(h)) if proto::negotiate(h.protocol).is_some() => Ok((s, h.protocol)),
        Ok(Ok(h)) => Err(Unreachable::Failed(Error::new(
            ErrorKind::Unsupported,
            format!("monitor {} speaks protocol {}", sock.display(), h.protocol),
        ))),
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

/// Sends one request on a fresh connection and reads the answer, within
/// `timeout` (`None`: wait as long as it takes, for `Wait`).
pub(crate) async fn request(
    dir: &Path,
    req: &Request,
    timeout: Option<Duration>,
) -> Result<Response, Unreachable> {
    let (mut s, version) = connect_versioned(dir).await?;
    // Never send a message newer than the version agreed on.
    if req.since() > version {
        return Err(Unreachable::Failed(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the container's monitor speaks protocol {version}; this request needs {}",
                req.since()
            ),
        )));
    }
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
    match res {
        Ok(Response::Error(e)) => Err(Unreachable::Failed(e.into())),
        Ok(r) => Ok(r),
        Err(proto::FrameError::Closed) => Err(Unreachable::Gone),
        Err(e) => Err(Unreachable::Failed(Error::internal(format!(
            "monitor request: {e}"
        )))),
    }
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
            let _: Hello = proto::read_frame(&mut s).unwrap();
            let hello = Hello {
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
        for (version, req) in [(2, Request::LogStatus), (1, Request::Stats)] {
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

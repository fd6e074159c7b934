//! The api socket: one task per client connection. Every connection opens
//! with a hello; a malformed or oversize frame gets an error reply and the
//! connection is closed; nothing a client sends can panic the daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use proto::api::{Request, Response, Stream};
use proto::asynch::{read_frame, write_frame};
use proto::{ErrorKind, ErrorReply, FrameError, Hello};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use proto::monitor::{Request as MReq, Response as MResp};

use crate::{monitor_client, Error, SupervisorHandle};

/// Binds the api socket (mode 0600). A socket file nobody serves is
/// replaced; one that answers belongs to another contd and is an error.
pub(crate) async fn bind(path: &Path) -> Result<UnixListener, Error> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("another contd serves {}", path.display()),
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path)
        .map_err(|e| Error::internal(format!("bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::internal(format!("chmod {}: {e}", path.display())))?;
    Ok(l)
}

/// Accepts clients until shutdown.
pub(crate) async fn serve(
    l: UnixListener,
    h: SupervisorHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            r = l.accept() => match r {
                Ok((s, _)) => {
                    let h = h.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(s, h).await {
                            debug!(error = %e, "client connection ended");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

fn err(e: Error) -> Response {
    Response::Error(e.into())
}

async fn connection(mut s: UnixStream, h: SupervisorHandle) -> Result<(), FrameError> {
    let hello: Hello = match tokio::time::timeout(Duration::from_secs(10), read_frame(&mut s)).await
    {
        Ok(Ok(hello)) => hello,
        Ok(Err(FrameError::Closed)) | Err(_) => return Ok(()),
        Ok(Err(e)) => {
            let reply = Response::Error(ErrorReply::new(
                ErrorKind::InvalidArgument,
                format!("expected hello: {e}"),
            ));
            return write_frame(&mut s, &reply).await;
        }
    };
    let Some(version) = proto::negotiate(hello.protocol) else {
        let reply = Response::Error(ErrorReply::new(
            ErrorKind::Unsupported,
            format!("no common protocol version with {}", hello.protocol),
        ));
        return write_frame(&mut s, &reply).await;
    };
    write_frame(
        &mut s,
        &Hello {
            protocol: version,
            software: format!("contd {}", env!("CARGO_PKG_VERSION")),
        },
    )
    .await?;
    loop {
        let req: Request = match read_frame(&mut s).await {
            Ok(r) => r,
            Err(FrameError::Closed) => return Ok(()),
            Err(e @ (FrameError::TooLarge(_) | FrameError::Malformed(_))) => {
                let reply =
                    Response::Error(ErrorReply::new(ErrorKind::InvalidArgument, e.to_string()));
                return write_frame(&mut s, &reply).await;
            }
            Err(e) => return Err(e),
        };
        debug!(?req, "request");
        if matches!(req, Request::Attach { .. } | Request::Exec { .. }) {
            // The connection becomes the session's stream.
            return session(s, &h, req).await;
        }
        if let Request::Logs { ns, name } = &req {
            match h.log_path(ns, name).await {
                Ok(p) => stream_log(&mut s, &p).await?,
                Err(e) => write_frame(&mut s, &err(e)).await?,
            }
            continue;
        }
        let reply = dispatch(&h, req).await;
        write_frame(&mut s, &reply).await?;
    }
}

async fn dispatch(h: &SupervisorHandle, req: Request) -> Response {
    let ok = |r: Result<(), Error>| r.map_or_else(err, |()| Response::Ok);
    match req {
        Request::Create(c) => h.create(c).await.map_or_else(err, Response::Container),
        Request::Start { ns, name } => ok(h.start_container(&ns, &name).await),
        Request::Inspect { ns, name } => h
            .inspect(&ns, &name)
            .await
            .map_or_else(err, Response::Container),
        Request::List { ns } => h
            .list(ns.as_deref())
            .await
            .map_or_else(err, Response::Containers),
        Request::Stop {
            ns,
            name,
            timeout_secs,
        } => ok(h
            .stop(&ns, &name, Duration::from_secs(u64::from(timeout_secs)))
            .await),
        Request::Kill { ns, name, signal } => ok(h.kill(&ns, &name, signal).await),
        Request::Remove { ns, name, force } => ok(h.remove(&ns, &name, force).await),
        Request::Wait { ns, name } => h.wait(&ns, &name).await.map_or_else(err, Response::Exited),
        // Answered in `connection`, streaming.
        Request::Logs { .. } | Request::Attach { .. } | Request::Exec { .. } => {
            err(Error::internal("streamed"))
        }
        Request::CreateInteractive { req, interactive } => h
            .create_interactive(req, interactive)
            .await
            .map_or_else(err, Response::Container),
        Request::Resize {
            ns,
            name,
            rows,
            cols,
        } => match h
            .monitor_call(&ns, &name, MReq::Resize { rows, cols })
            .await
        {
            Ok(r) => from_monitor(r),
            Err(e) => err(e),
        },
        Request::Stats { ns, name } => match h.monitor_call(&ns, &name, MReq::Stats).await {
            Ok(r) => from_monitor(r),
            Err(e) => err(e),
        },
        Request::LogStatus { ns, name } => match h.log_status(&ns, &name).await {
            Ok(st) => Response::LogStatus(st),
            Err(e) => err(e),
        },
        Request::Input { .. } | Request::ExecInput { .. } => err(Error::new(
            ErrorKind::InvalidArgument,
            "input outside an attach or exec stream",
        )),
    }
}

/// A monitor's answer as the api says it.
fn from_monitor(r: MResp) -> Response {
    match r {
        MResp::Ok => Response::Ok,
        MResp::Exited(rec) => Response::Exited(rec),
        MResp::Error(e) => Response::Error(e),
        MResp::Output { stream, data } => Response::Output { stream, data },
        MResp::Detached => Response::Detached,
        MResp::ExecStarted { id, pid } => Response::ExecStarted { id, pid },
        MResp::ExecOutput { id, stream, data } => Response::ExecOutput { id, stream, data },
        MResp::ExecExited { id, code } => Response::ExecExited { id, code },
        MResp::Stats(st) => Response::Stats(st),
        MResp::LogStatus(st) => Response::LogStatus(st),
        MResp::State(_) => err(Error::internal("unexpected state from the monitor")),
    }
}

/// An attach or exec: the client's connection and a monitor connection
/// are joined until the session ends (detach, exit, or either side
/// closing). Input goes one way in its own task, output the other.
async fn session(client: UnixStream, h: &SupervisorHandle, req: Request) -> Result<(), FrameError> {
    let (mut cr, mut cw) = client.into_split();
    let (ns, name, first) = match req {
        Request::Attach {
            ns,
            name,
            stdin,
            detach_keys,
        } => (ns, name, MReq::Attach { stdin, detach_keys }),
        Request::Exec { ns, name, exec } => (ns, name, MReq::Exec(exec)),
        _ => return Ok(()),
    };
    let is_exec = matches!(first, MReq::Exec(_));
    let dir = match h.container_dir(&ns, &name).await {
        Ok(d) => d,
        Err(e) => return write_frame(&mut cw, &err(e)).await,
    };
    let mon = match monitor_client::connect_versioned(&dir).await {
        Ok((m, v)) if v >= 2 => m,
        Ok((_, v)) => {
            let e = Error::new(
                ErrorKind::Unsupported,
                format!("the container's monitor speaks protocol {v}, attach and exec need 2"),
            );
            return write_frame(&mut cw, &err(e)).await;
        }
        Err(monitor_client::Unreachable::Gone) => {
            let e = Error::conflict(format!("container {name} has exited"));
            return write_frame(&mut cw, &err(e)).await;
        }
        Err(monitor_client::Unreachable::Failed(e)) => return write_frame(&mut cw, &err(e)).await,
    };
    let (mut mr, mut mw) = mon.into_split();
    write_frame(&mut mw, &first).await?;
    let ns2 = ns.clone();
    let input = tokio::spawn(async move {
        loop {
            let req = match read_frame::<_, Request>(&mut cr).await {
                Ok(r) => r,
                Err(_) => return,
            };
            let fwd = match req {
                Request::Input { data } => MReq::Input { data },
                Request::ExecInput { id, data } => MReq::ExecInput { id, data },
                Request::Resize { rows, cols, .. } => MReq::Resize { rows, cols },
                other => {
                    debug!(ns = ns2, ?other, "ignored on a session stream");
                    continue;
                }
            };
            if write_frame(&mut mw, &fwd).await.is_err() {
                return;
            }
        }
    });
    let result = loop {
        let resp = match read_frame::<_, MResp>(&mut mr).await {
            Ok(r) => r,
            Err(FrameError::Closed) => break Ok(()),
            Err(e) => break Err(e),
        };
        let end = matches!(
            resp,
            MResp::Detached | MResp::Exited(_) | MResp::Error(_) | MResp::ExecExited { .. }
        );
        // An exec's session ends with its own exit; an attach's Ok and an
        // exec's ExecStarted are just the start.
        let end = end && !(is_exec && matches!(resp, MResp::Exited(_)));
        if let Err(e) = write_frame(&mut cw, &from_monitor(resp)).await {
            break Err(e);
        }
        if end {
            break Ok(());
        }
    };
    input.abort();
    result
}

/// Parses one CRI log record: stream, whether the line is complete, text.
pub(crate) fn parse_cri(line: &[u8]) -> Option<(Stream, bool, &[u8])> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let _ts = parts.next()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some((stream, full, parts.next().unwrap_or_default()))
}

/// The log's files, oldest first: the rotated `<log>.N` … `<log>.1` the
/// monitor keeps, then the live one.
fn log_files(path: &Path) -> Vec<std::path::PathBuf> {
    let mut rotated = Vec::new();
    for k in 1.. {
        let p = std::path::PathBuf::from(format!("{}.{k}", path.display()));
        if !p.exists() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

/// Sends the log's text (rotated files first), CRI prefixes removed, in
/// chunks, then `LogEnd`.
async fn stream_log(s: &mut UnixStream, path: &Path) -> Result<(), FrameError> {
    const CHUNK: usize = 256 * 1024;
    let mut current: Option<(Stream, Vec<u8>)> = None;
    for path in log_files(path) {
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            // Rotated away meanwhile, or no output yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return write_frame(
                    s,
                    &err(Error::internal(format!("open {}: {e}", path.display()))),
                )
                .await;
            }
        };
        let mut lines = BufReader::new(file).split(b'\n');
        while let Some(line) = lines.next_segment().await? {
            let Some((stream, full, text)) = parse_cri(&line) else {
                continue;
            };
            if current
                .as_ref()
                .is_some_and(|(st, buf)| *st != stream || buf.len() >= CHUNK)
            {
                if let Some((st, data)) = current.take() {
                    write_frame(s, &Response::LogData { stream: st, data }).await?;
                }
            }
            let buf = &mut current.get_or_insert_with(|| (stream, Vec::new())).1;
            buf.extend_from_slice(text);
            if full {
                buf.push(b'\n');
            }
        }
    }
    if let Some((stream, data)) = current {
        write_frame(s, &Response::LogData { stream, data }).await?;
    }
    write_frame(s, &Response::LogEnd).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_records_parse() {
        assert_eq!(
            parse_cri(b"2026-01-01T00:00:00.000000000Z stdout F hello world"),
            Some((Stream::Stdout, true, &b"hello world"[..]))
        );
        assert_eq!(
            parse_cri(b"2026-01-01T00:00:00.000000000Z stderr P "),
            Some((Stream::Stderr, false, &b""[..]))
        );
        assert_eq!(parse_cri(b"garbage"), None);
    }
}

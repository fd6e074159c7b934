//! The api socket: one task per client connection. Every connection opens
//! with a hello; a malformed or oversize frame gets an error reply and the
//! connection is closed; nothing a client sends can panic the daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proto::api::{ContainerDetails, ContainerInfo, LogOptions, Request, Response};
use proto::asynch::{read_frame, write_frame};
use proto::{ErrorKind, ErrorReply, FrameError, Hello, Status};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Shared;
use crate::{spec, Error, Session, SessionInput, SessionOutput, SupervisorHandle};

/// Binds the api socket (mode 0600, or 0660 with the socket group). A socket file nobody serves is
/// replaced; one that answers belongs to another contd and is an error;
/// anything that is not a socket is left alone and is an error. The socket
/// is bound under a temporary name, given its mode, then renamed into
/// place: it never exists at `path` with a looser mode.
/// Socket access: mode 0660 and the group `gid`, or 0600 for root alone.
pub(crate) fn set_access(path: &Path, gid: Option<u32>) -> Result<(), Error> {
    let (mode, group) = match gid {
        Some(g) => (0o660, g),
        None => (0o600, 0),
    };
    std::os::unix::fs::chown(path, None, Some(group))
        .map_err(|e| Error::internal(format!("chown {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::internal(format!("chmod {}: {e}", path.display())))
}

/// Whether a peer may use contd: root, or a member of the socket group
/// (its primary group, or a supplementary one of the connecting process).
fn permitted(
    cred: &tokio::net::unix::UCred,
    gid: Option<u32>,
    group: Option<&str>,
) -> Result<(), String> {
    if cred.uid() == 0 {
        return Ok(());
    }
    let Some(gid) = gid else {
        return Err(format!(
            "permission denied: uid {} is not root, and contd has no socket-group",
            cred.uid()
        ));
    };
    let supplementary = || {
        let Some(pid) = cred.pid() else { return false };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Groups:"))
                    .map(|g| g.split_whitespace().any(|g| g == gid.to_string()))
            })
            .unwrap_or(false)
    };
    if cred.gid() == gid || supplementary() {
        return Ok(());
    }
    Err(format!(
        "permission denied: uid {} is not in group {}",
        cred.uid(),
        group.unwrap_or("?")
    ))
}

pub(crate) async fn bind(path: &Path, gid: Option<u32>) -> Result<UnixListener, Error> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket: not removed", path.display()),
            ));
        }
        Ok(_) if UnixStream::connect(path).await.is_ok() => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("another contd serves {}", path.display()),
            ));
        }
        // A stale socket: the rename below replaces it.
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::internal(format!("stat {}: {e}", path.display()))),
    }
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("socket: {} names no file", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let l = UnixListener::bind(&tmp)
        .map_err(|e| Error::internal(format!("bind {}: {e}", path.display())))?;
    let placed = set_access(&tmp, gid).and_then(|()| {
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::internal(format!("rename to {}: {e}", path.display())))
    });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(l)
}

/// At most this many api connections at once; the next one is told so
/// and closed.
const MAX_CONNECTIONS: usize = 512;
/// A connection may wait this long between requests.
const IDLE: Duration = Duration::from_secs(300);
/// Once a frame has begun, the rest must arrive within this.
const FRAME: Duration = Duration::from_secs(10);

/// Accepts clients until shutdown.
pub(crate) async fn serve(
    l: UnixListener,
    h: SupervisorHandle,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            r = l.accept() => match r {
                Ok((s, _)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tokio::spawn(refuse(s));
                        continue;
                    };
                    let h = h.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(s, h, &shared).await {
                            debug!(error = %e, "client connection ended");
                        }
                        drop(slot);
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

/// Tells a client over the connection limit, in place of a hello.
async fn refuse(mut s: UnixStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), read_frame::<_, Hello>(&mut s)).await;
    let reply = Response::Error(ErrorReply::new(
        ErrorKind::Internal,
        format!("contd serves {MAX_CONNECTIONS} connections at most; try again"),
    ));
    let _ = write_frame(&mut s, &reply).await;
}

/// The next request: within [`IDLE`], and once it has begun, whole within
/// [`FRAME`]. `None`: the connection is to end quietly.
async fn next_request(s: &mut UnixStream) -> Result<Option<Request>, FrameError> {
    match tokio::time::timeout(IDLE, s.readable()).await {
        Ok(r) => r?,
        Err(_) => return Ok(None),
    }
    match tokio::time::timeout(FRAME, read_frame(s)).await {
        Ok(Ok(r)) => Ok(Some(r)),
        Ok(Err(FrameError::Closed)) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(FrameError::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

async fn connection(
    mut s: UnixStream,
    h: SupervisorHandle,
    shared: &Shared,
) -> Result<(), FrameError> {
    let cred = s.peer_cred()?;
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
    // Checked on every connection, with the socket group in force now
    // (a reload may change it); the answer takes the hello's place.
    let t = shared.tunables();
    if let Err(why) = permitted(&cred, t.socket_gid(), t.socket_group.as_deref()) {
        warn!(uid = cred.uid(), pid = cred.pid(), "{why}");
        let kind = ErrorKind::PermissionDenied.for_version(hello.protocol);
        let reply = Response::Error(ErrorReply::new(kind, why));
        return write_frame(&mut s, &reply).await;
    }
    let version = match proto::answer_hello(&hello, "contd") {
        Ok(ours) => {
            write_frame(&mut s, &ours).await?;
            ours.protocol
        }
        Err(e) => return write_frame(&mut s, &Response::Error(e)).await,
    };
    loop {
        let req: Request = match next_request(&mut s).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e @ (FrameError::TooLarge(_) | FrameError::Malformed(_))) => {
                let reply =
                    Response::Error(ErrorReply::new(ErrorKind::InvalidArgument, e.to_string()));
                return write_frame(&mut s, &reply).await;
            }
            Err(e) => return Err(e),
        };
        debug!(?req, "request");
        if let Some((op, ns, name)) = mutation(&req) {
            info!(op, ns, name, uid = cred.uid(), pid = cred.pid(), "request");
        }
        match req {
            // The connection becomes the session's stream.
            Request::Attach {
                ns,
                name,
                stdin,
                detach_keys,
            } => {
                return match h.attach(&ns, &name, stdin, detach_keys).await {
                    Ok(session) => pump(s, session).await,
                    Err(e) => write_frame(&mut s, &err(e)).await,
                }
            }
            Request::Exec { ns, name, exec } => {
                return match h.exec(&ns, &name, exec).await {
                    Ok(session) => pump(s, session).await,
                    Err(e) => write_frame(&mut s, &err(e)).await,
                }
            }
            Request::Events(filter) => {
                let mut events = match h.events(filter).await {
                    Ok(ev) => ev,
                    Err(e) => return write_frame(&mut s, &err(e)).await,
                };
                while let Some(ev) = events.next().await {
                    let frame = match ev {
                        Ok(ev) => Response::Event(ev),
                        Err(e) => err(e),
                    };
                    write_frame(&mut s, &frame).await?;
                }
                return Ok(());
            }
            Request::Logs { ns, name } => {
                stream_log(&mut s, &h, &ns, &name, LogOptions::default(), false).await?
            }
            Request::LogsWith { ns, name, options } => {
                stream_log(&mut s, &h, &ns, &name, options, false).await?
            }
            Request::LogsTimed { ns, name, options } => {
                stream_log(&mut s, &h, &ns, &name, options, true).await?
            }
            req => {
                let mut reply = dispatch(&h, req).await;
                for_version(&mut reply, version);
                write_frame(&mut s, &reply).await?;
            }
        }
    }
}

/// A request that changes something: what, and to which container.
fn mutation(req: &Request) -> Option<(&'static str, &str, &str)> {
    Some(match req {
        Request::Create(c) | Request::CreateInteractive { req: c, .. } => {
            ("create", &c.ns, &c.name)
        }
        Request::CreateContainer(c)
        | Request::CreateContainerWith { config: c, .. }
        | Request::CreateContainerWithInit { config: c, .. } => {
            (if c.start { "run" } else { "create" }, &c.ns, &c.name)
        }
        Request::Start { ns, name } => ("start", ns, name),
        Request::Stop { ns, name, .. } | Request::StopWith { ns, name, .. } => ("stop", ns, name),
        Request::Kill { ns, name, .. } => ("kill", ns, name),
        Request::Pause { ns, name } => ("pause", ns, name),
        Request::Resume { ns, name } => ("resume", ns, name),
        Request::Update { ns, name, .. } => ("update", ns, name),
        Request::Remove { ns, name, .. } => ("remove", ns, name),
        Request::Rename { ns, name, .. } => ("rename", ns, name),
        Request::Exec { ns, name, .. } => ("exec", ns, name),
        Request::Attach { ns, name, .. } => ("attach", ns, name),
        _ => return None,
    })
}

/// What a client of protocol `version` can decode: before 5 the status
/// `unknown` reads `exited` (with the error that says why); before 6 the
/// newer error kinds read `invalid argument`.
fn for_version(reply: &mut Response, version: u16) {
    // Error kinds of protocol 6 (a missing command, say) read as invalid
    // argument before it.
    if let Response::Error(e) = reply {
        e.kind = e.kind.for_version(version);
    }
    if version >= 5 {
        return;
    }
    let fix = |s: &mut Status| {
        if *s == Status::Unknown {
            *s = Status::Exited;
        }
    };
    match reply {
        Response::Container(i) => fix(&mut i.status),
        Response::Containers(l) => l.iter_mut().for_each(|i| fix(&mut i.status)),
        Response::Details(d) => fix(&mut d.status),
        Response::DetailsList(l) => l.iter_mut().for_each(|d| fix(&mut d.status)),
        _ => {}
    }
}

/// What a v1–v3 client knows of a container.
fn info(d: ContainerDetails) -> ContainerInfo {
    ContainerInfo {
        ns: d.ns,
        name: d.name,
        status: d.status,
        pid: d.pid,
        exit: d.exit,
        log_path: d.log_path,
        rootfs: d.config.rootfs,
        args: d.args,
        created_at: d.created_at,
        labels: d.config.labels,
        error: d.error,
    }
}

/// One request, one answer: the handle call the request names.
async fn dispatch(h: &SupervisorHandle, req: Request) -> Response {
    let ok = |r: Result<(), Error>| r.map_or_else(err, |()| Response::Ok);
    match req {
        Request::Create(c) => {
            let interactive = proto::api::Interactive::default();
            h.create(spec::from_v1(c, interactive))
                .await
                .map_or_else(err, |d| Response::Container(info(d)))
        }
        Request::CreateInteractive { req, interactive } => h
            .create(spec::from_v1(req, interactive))
            .await
            .map_or_else(err, |d| Response::Container(info(d))),
        Request::CreateContainer(c) => h.create(c).await.map_or_else(err, Response::Details),
        Request::CreateContainerWith { config, options } => h
            .create_with(config, options)
            .await
            .map_or_else(err, Response::Details),
        Request::CreateContainerWithInit {
            config,
            options,
            init,
        } => h
            .create_with_init(config, options, init)
            .await
            .map_or_else(err, Response::Details),
        Request::Rename { ns, name, new_name } => ok(h.rename(&ns, &name, &new_name).await),
        Request::Start { ns, name } => ok(h.start(&ns, &name).await),
        Request::Inspect { ns, name } => h
            .inspect(&ns, &name)
            .await
            .map_or_else(err, |d| Response::Container(info(d))),
        Request::Details { ns, name } => h
            .inspect(&ns, &name)
            .await
            .map_or_else(err, Response::Details),
        Request::List { ns } => h.list(ns.as_deref()).await.map_or_else(err, |l| {
            Response::Containers(l.into_iter().map(info).collect())
        }),
        Request::ListDetails { ns } => h
            .list(ns.as_deref())
            .await
            .map_or_else(err, Response::DetailsList),
        Request::Namespaces => h.namespaces().await.map_or_else(err, Response::Namespaces),
        Request::Stop {
            ns,
            name,
            timeout_secs,
        } => ok(h
            .stop(&ns, &name, Duration::from_secs(u64::from(timeout_secs)))
            .await),
        Request::StopWith {
            ns,
            name,
            timeout_secs,
        } => ok(h
            .stop_with(
                &ns,
                &name,
                timeout_secs.map(|s| Duration::from_secs(u64::from(s))),
            )
            .await),
        Request::Kill { ns, name, signal } => ok(h.kill(&ns, &name, signal).await),
        Request::Pause { ns, name } => ok(h.pause(&ns, &name).await),
        Request::Resume { ns, name } => ok(h.resume(&ns, &name).await),
        Request::Top { ns, name } => h
            .top(&ns, &name)
            .await
            .map_or_else(err, Response::Processes),
        Request::Update {
            ns,
            name,
            resources,
        } => ok(h.update(&ns, &name, resources).await),
        Request::Remove { ns, name, force } => ok(h.remove(&ns, &name, force).await),
        Request::Wait { ns, name } => h.wait(&ns, &name).await.map_or_else(err, Response::Exited),
        Request::Resize {
            ns,
            name,
            rows,
            cols,
        } => ok(h.resize(&ns, &name, rows, cols).await),
        Request::Stats { ns, name } => h.stats(&ns, &name).await.map_or_else(err, Response::Stats),
        Request::LogStatus { ns, name } => h
            .log_status(&ns, &name)
            .await
            .map_or_else(err, Response::LogStatus),
        Request::Input { .. } | Request::ExecInput { .. } => err(Error::new(
            ErrorKind::InvalidArgument,
            "input outside an attach or exec stream",
        )),
        // Streams, answered in `connection`.
        Request::Logs { .. }
        | Request::LogsWith { .. }
        | Request::LogsTimed { .. }
        | Request::Attach { .. }
        | Request::Exec { .. }
        | Request::Events(_) => err(Error::internal("streamed")),
    }
}

/// Sends the log as `LogData` frames (`timed`: a `LogLine` per line),
/// then `LogEnd`.
async fn stream_log(
    s: &mut UnixStream,
    h: &SupervisorHandle,
    ns: &str,
    name: &str,
    options: LogOptions,
    timed: bool,
) -> Result<(), FrameError> {
    let log = if timed {
        h.logs_lines(ns, name, options).await
    } else {
        h.logs(ns, name, options).await
    };
    let mut log = match log {
        Ok(l) => l,
        Err(e) => return write_frame(s, &err(e)).await,
    };
    while let Some(chunk) = log.next().await {
        match chunk {
            Ok(c) => {
                let frame = if timed {
                    Response::LogLine {
                        stream: c.stream,
                        time: c.time.unwrap_or(0),
                        data: c.data,
                    }
                } else {
                    Response::LogData {
                        stream: c.stream,
                        data: c.data,
                    }
                };
                write_frame(s, &frame).await?
            }
            Err(e) => return write_frame(s, &err(e)).await,
        }
    }
    write_frame(s, &Response::LogEnd).await
}

/// An attach or exec: the client's connection and the session are joined
/// until the session ends (detach, exit, or either side closing). Input
/// goes one way in its own task, output the other.
async fn pump(client: UnixStream, session: Session) -> Result<(), FrameError> {
    let (mut cr, mut cw) = client.into_split();
    let (mut reader, mut writer) = session.split();
    let input = tokio::spawn(async move {
        loop {
            let req = match read_frame::<_, Request>(&mut cr).await {
                Ok(r) => r,
                Err(_) => return,
            };
            let fwd = match req {
                Request::Input { data } => SessionInput::Input(data),
                Request::ExecInput { id, data } => SessionInput::ExecInput { id, data },
                Request::Resize { rows, cols, .. } => SessionInput::Resize { rows, cols },
                other => {
                    debug!(?other, "ignored on a session stream");
                    continue;
                }
            };
            if writer.send(fwd).await.is_err() {
                return;
            }
        }
    });
    let result = loop {
        let out = match reader.next().await {
            None => break Ok(()),
            Some(Ok(o)) => o,
            Some(Err(e)) => break write_frame(&mut cw, &err(e)).await,
        };
        let frame = match out {
            SessionOutput::Attached => Response::Ok,
            SessionOutput::Output { stream, data } => Response::Output { stream, data },
            SessionOutput::Detached => Response::Detached,
            SessionOutput::Exited(rec) => Response::Exited(rec),
            SessionOutput::ExecStarted { id, pid } => Response::ExecStarted { id, pid },
            SessionOutput::ExecOutput { id, stream, data } => {
                Response::ExecOutput { id, stream, data }
            }
            SessionOutput::ExecExited { id, code } => Response::ExecExited { id, code },
        };
        if let Err(e) = write_frame(&mut cw, &frame).await {
            break Err(e);
        }
    };
    input.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_before_protocol_5_read_unknown_as_exited() {
        let unknown = ContainerInfo {
            ns: "default".into(),
            name: "d".into(),
            status: Status::Unknown,
            pid: Some(7),
            exit: None,
            log_path: String::new(),
            rootfs: String::new(),
            args: Vec::new(),
            created_at: 0,
            labels: Vec::new(),
            error: Some("monitor is gone".into()),
        };
        for (version, want) in [(4, Status::Exited), (5, Status::Unknown)] {
            let mut r = Response::Containers(vec![unknown.clone()]);
            for_version(&mut r, version);
            let Response::Containers(l) = r else {
                unreachable!()
            };
            assert_eq!(l[0].status, want, "v{version}");
            assert_eq!(l[0].error, unknown.error);
        }
    }
}

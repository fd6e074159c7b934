//! The connection to contd's api socket: connect, exchange hellos, then one
//! response per request, or a stream of them for `logs`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use proto::api::{Request, Response};
use proto::{FrameError, Hello, MAX_FRAME, PROTOCOL_VERSION};

/// Longer socket paths are reached through their parent directory's fd:
/// `sun_path` holds only 108 bytes, the terminating NUL included.
const MAX_DIRECT_PATH: usize = 100;

/// How long contd may take to answer the hello. Requests have no limit:
/// `wait` and `logs` legitimately last as long as the container runs.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to contd, past the handshake.
#[derive(Debug)]
pub(crate) struct Client {
    stream: UnixStream,
    /// The protocol version agreed on with contd.
    version: u16,
    /// What contd said it is ("contd 0.1.0").
    server: String,
}

impl Client {
    /// Connects to contd's api socket at `path` and exchanges hellos.
    ///
    /// # Errors
    /// Nothing listens at `path`, or contd does not complete the handshake
    /// or speaks no protocol version contctl knows.
    pub(crate) fn connect(path: &Path) -> anyhow::Result<Self> {
        let stream = connect_socket(path).map_err(|e| unreachable(path, &e))?;
        let mut client = Self {
            stream,
            version: 0,
            server: String::new(),
        };
        client.hello().context("hello to contd")?;
        Ok(client)
    }

    fn hello(&mut self) -> anyhow::Result<()> {
        let ours = Hello {
            protocol: PROTOCOL_VERSION,
            software: format!("contctl {}", env!("CARGO_PKG_VERSION")),
        };
        self.stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
        proto::write_frame(&mut self.stream, &ours)?;
        let payload = match read_payload(&mut self.stream) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => bail!("connection closed"),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no answer within {}s", HELLO_TIMEOUT.as_secs())
            }
            Err(e) => return Err(e.into()),
        };
        // contd answers a hello it cannot accept (no common version) with a
        // Response::Error in place of its own Hello.
        let theirs: Hello = match proto::decode(&payload) {
            Ok(h) => h,
            Err(e) => match proto::decode::<Response>(&payload) {
                Ok(Response::Error(reply)) => return Err(reply.into()),
                _ => return Err(e.into()),
            },
        };
        if proto::negotiate(theirs.protocol).is_none() {
            bail!(
                "{:?} speaks protocol {}, contctl speaks {}",
                theirs.software,
                theirs.protocol,
                PROTOCOL_VERSION
            );
        }
        self.version = theirs.protocol.min(PROTOCOL_VERSION);
        self.server = theirs.software;
        self.stream.set_read_timeout(None)?;
        Ok(())
    }

    /// contd's software and version, and the protocol agreed on.
    pub(crate) fn server(&self) -> (&str, u16) {
        (&self.server, self.version)
    }

    /// Whether contd agreed on a protocol that has `req`.
    pub(crate) fn speaks(&self, req: &Request) -> bool {
        req.since() <= self.version
    }

    /// Sends `req` and reads the first response to it.
    ///
    /// # Errors
    /// I/O or framing failure, or contd's [`Response::Error`] (an
    /// [`proto::ErrorReply`] whose message is shown as is).
    pub(crate) fn request(&mut self, req: &Request) -> anyhow::Result<Response> {
        if !self.speaks(req) {
            bail!(
                "contd speaks protocol {}; this request needs {} (a newer contd)",
                self.version,
                req.since()
            );
        }
        proto::write_frame(&mut self.stream, req).context("send request to contd")?;
        self.next_response()
    }

    /// A second handle on the connection, for a thread that sends input
    /// while this one reads output.
    ///
    /// # Errors
    /// If the socket cannot be duplicated.
    pub(crate) fn sender(&self) -> anyhow::Result<Sender> {
        Ok(Sender {
            stream: self
                .stream
                .try_clone()
                .context("duplicate the connection")?,
        })
    }

    /// Reads one more response, for requests answered by a stream
    /// ([`Request::Logs`]).
    ///
    /// # Errors
    /// As [`Client::request`].
    pub(crate) fn next_response(&mut self) -> anyhow::Result<Response> {
        match proto::read_frame(&mut self.stream) {
            Ok(Response::Error(e)) => Err(e.into()),
            Ok(r) => Ok(r),
            Err(FrameError::Closed) => bail!("contd closed the connection"),
            Err(e) => Err(anyhow::Error::new(e).context("read response from contd")),
        }
    }
}

/// The sending half of a streaming connection (attach and exec input).
#[derive(Debug)]
pub(crate) struct Sender {
    stream: UnixStream,
}

impl Sender {
    /// Sends one request without reading anything.
    ///
    /// # Errors
    /// I/O failure (contd went away).
    pub(crate) fn send(&mut self, req: &Request) -> anyhow::Result<()> {
        proto::write_frame(&mut self.stream, req).context("send to contd")
    }
}

/// The error for a response that does not answer the request sent; names
/// only the variant, since a payload may be large.
pub(crate) fn unexpected(resp: &Response) -> anyhow::Error {
    let what = match resp {
        Response::Ok => "Ok",
        Response::Container(_) => "Container",
        Response::Containers(_) => "Containers",
        Response::LogData { .. } => "LogData",
        Response::LogLine { .. } => "LogLine",
        Response::LogEnd => "LogEnd",
        Response::Exited(_) => "Exited",
        Response::Error(_) => "Error",
        Response::Output { .. } => "Output",
        Response::Detached => "Detached",
        Response::ExecStarted { .. } => "ExecStarted",
        Response::ExecOutput { .. } => "ExecOutput",
        Response::ExecExited { .. } => "ExecExited",
        Response::Stats(_) => "Stats",
        Response::LogStatus(_) => "LogStatus",
        Response::Details(_) => "Details",
        Response::DetailsList(_) => "DetailsList",
        Response::Processes(_) => "Processes",
        Response::Event(_) => "Event",
        Response::Namespaces(_) => "Namespaces",
    };
    anyhow!("unexpected {what} response from contd")
}

/// Reads one frame's payload without decoding it, so the hello answer can be
/// tried as either message it may be.
fn read_payload(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            FrameError::TooLarge(len),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(payload)
}

/// Connects to a unix socket, through `/proc/self/fd/<dir fd>/<file name>`
/// when `path` does not fit in `sun_path`.
/// Why contd cannot be reached, in words that say what to do.
fn unreachable(path: &Path, e: &io::Error) -> anyhow::Error {
    let p = path.display();
    match e.kind() {
        io::ErrorKind::NotFound => {
            anyhow!("cannot reach contd at {p}: is it running? (no such socket)")
        }
        io::ErrorKind::ConnectionRefused => {
            anyhow!("cannot reach contd at {p}: is it running? (connection refused)")
        }
        io::ErrorKind::PermissionDenied => {
            let group = socket_group(path);
            anyhow!(
                "permission denied on {p}: contd lets root{} use it{}",
                group
                    .as_deref()
                    .map_or(String::new(), |g| format!(" and members of group {g}")),
                group.map_or(String::new(), |g| format!(
                    " (add yourself: usermod -aG {g} $USER, then log in again)"
                ))
            )
        }
        _ => anyhow!("cannot reach contd at {p}: {e}"),
    }
}

/// The name of the group that owns the socket, when it is not root's.
fn socket_group(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(path).ok()?.gid();
    if gid == 0 {
        return None;
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    Some(
        groups
            .lines()
            .find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == gid.to_string()).then(|| name.to_string())
            })
            .unwrap_or_else(|| gid.to_string()),
    )
}

fn connect_socket(path: &Path) -> io::Result<UnixStream> {
    match short_alias(path)? {
        None => UnixStream::connect(path),
        Some((dir, alias)) => {
            let s = UnixStream::connect(&alias);
            // The alias names the directory through this fd: keep it open
            // until connect has resolved the path.
            drop(dir);
            s
        }
    }
}

/// For a path too long for `sun_path`: its opened parent directory and a
/// short path naming the socket through that directory's fd. `None` when
/// the path can be used as is.
fn short_alias(path: &Path) -> io::Result<Option<(File, PathBuf)>> {
    if path.as_os_str().len() <= MAX_DIRECT_PATH {
        return Ok(None);
    }
    let (Some(parent), Some(file)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = File::open(parent)?;
    let mut alias = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    alias.push(file);
    Ok(Some((dir, alias)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::thread::{self, JoinHandle};

    use proto::api::Stream;
    use proto::{ErrorKind, ErrorReply};

    use super::*;

    /// A fresh directory whose socket path is longer than `sun_path` allows,
    /// removed on drop (also when the test fails).
    struct LongDir(PathBuf);

    impl LongDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir()
                .join(format!(
                    "contctl-{tag}-{}-{}",
                    std::process::id(),
                    proto::time::now_nanos()
                ))
                .join("d".repeat(110));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        fn socket(&self) -> PathBuf {
            self.0.join("api.sock")
        }
    }

    impl Drop for LongDir {
        fn drop(&mut self) {
            if let Some(top) = self.0.parent() {
                let _ = std::fs::remove_dir_all(top);
            }
        }
    }

    /// Binds `path` (through the parent's fd, as clients connect) and runs
    /// `serve` on the first connection.
    fn fake_contd(path: &Path, serve: impl FnOnce(UnixStream) + Send + 'static) -> JoinHandle<()> {
        let (dir, alias) = short_alias(path).unwrap().expect("path is long");
        let listener = UnixListener::bind(&alias).unwrap();
        drop(dir);
        thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            serve(s);
        })
    }

    fn answer_hello(s: &mut UnixStream, protocol: u16) {
        let h: Hello = proto::read_frame(s).unwrap();
        assert_eq!(h.protocol, PROTOCOL_VERSION);
        assert!(h.software.starts_with("contctl "), "{}", h.software);
        let ours = Hello {
            protocol,
            software: "fake contd".into(),
        };
        proto::write_frame(s, &ours).unwrap();
    }

    #[test]
    fn long_socket_path_requests_errors_and_streams() {
        let dir = LongDir::new("long");
        let sock = dir.socket();
        assert!(sock.as_os_str().len() > 108);
        let server = fake_contd(&sock, |mut s| {
            answer_hello(&mut s, PROTOCOL_VERSION);
            let req: Request = proto::read_frame(&mut s).unwrap();
            assert!(matches!(req, Request::Inspect { .. }), "{req:?}");
            let e = ErrorReply::new(ErrorKind::NotFound, "no container default/x");
            proto::write_frame(&mut s, &Response::Error(e)).unwrap();
            let req: Request = proto::read_frame(&mut s).unwrap();
            assert!(matches!(req, Request::Logs { .. }), "{req:?}");
            let data = Response::LogData {
                stream: Stream::Stderr,
                data: b"hi\n".to_vec(),
            };
            proto::write_frame(&mut s, &data).unwrap();
            proto::write_frame(&mut s, &Response::LogEnd).unwrap();
        });

        let mut c = Client::connect(&sock).unwrap();
        let name = || ("default".to_string(), "x".to_string());
        let (ns, n) = name();
        let err = c.request(&Request::Inspect { ns, name: n }).unwrap_err();
        assert_eq!(format!("{err:#}"), "no container default/x");
        let (ns, n) = name();
        let first = c.request(&Request::Logs { ns, name: n }).unwrap();
        assert_eq!(
            first,
            Response::LogData {
                stream: Stream::Stderr,
                data: b"hi\n".to_vec()
            }
        );
        assert_eq!(c.next_response().unwrap(), Response::LogEnd);
        let err = c.next_response().unwrap_err();
        assert_eq!(err.to_string(), "contd closed the connection");
        server.join().unwrap();
    }

    #[test]
    fn hello_refuses_unknown_protocol_and_hangups() {
        let dir = LongDir::new("hello");
        let sock = dir.socket();
        let server = fake_contd(&sock, |mut s| answer_hello(&mut s, 0));
        let err = Client::connect(&sock).unwrap_err();
        assert!(format!("{err:#}").contains("speaks protocol 0"), "{err:#}");
        server.join().unwrap();

        std::fs::remove_file(&sock).unwrap();
        let server = fake_contd(&sock, |mut s| {
            let _: Hello = proto::read_frame(&mut s).unwrap();
            let e = ErrorReply::new(ErrorKind::Unsupported, "no common protocol version with 9");
            proto::write_frame(&mut s, &Response::Error(e)).unwrap();
        });
        let err = Client::connect(&sock).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "hello to contd: no common protocol version with 9"
        );
        server.join().unwrap();

        std::fs::remove_file(&sock).unwrap();
        let server = fake_contd(&sock, |mut s| {
            let _: Hello = proto::read_frame(&mut s).unwrap();
        });
        let err = Client::connect(&sock).unwrap_err();
        assert!(format!("{err:#}").contains("connection closed"), "{err:#}");
        server.join().unwrap();
    }

    #[test]
    fn missing_socket_names_the_path() {
        let err = Client::connect(Path::new("/nonexistent/contd.sock")).unwrap_err();
        assert!(
            format!("{err:#}")
                == "cannot reach contd at /nonexistent/contd.sock: is it running? (no such socket)",
            "{err:#}"
        );
    }
}

//! `run -i/-t`, `attach` and `exec`: the terminal side of a session. The
//! local terminal goes raw (through stty(1), so contctl needs no unsafe code)
//! while attached with a tty; stdin is forwarded by a thread; output frames
//! go to stdout and stderr.

use std::io::{IsTerminal, Read, Write};
use std::process::{Command, ExitCode, Stdio};

use anyhow::bail;
use proto::api::{Request, Response, Stream};

use crate::client::{unexpected, Client, Sender};

/// The local terminal's size (rows, columns), when stdin is a terminal.
pub(crate) fn term_size() -> Option<(u16, u16)> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let out = Command::new("stty")
        .arg("size")
        .stdin(Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|v| v.parse::<u16>().ok());
    match (it.next()??, it.next()??) {
        (0, _) | (_, 0) => None,
        (r, c) => Some((r, c)),
    }
}

/// Raw mode on the local terminal while it lives; restored on drop.
struct Raw(Option<String>);

impl Raw {
    fn new(want: bool) -> Raw {
        if !want || !std::io::stdin().is_terminal() {
            return Raw(None);
        }
        let saved = Command::new("stty")
            .arg("-g")
            .stdin(Stdio::inherit())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let _ = Command::new("stty")
            .args(["raw", "-echo"])
            .stdin(Stdio::inherit())
            .status();
        Raw(saved)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            let _ = Command::new("stty").arg(s).stdin(Stdio::inherit()).status();
        }
    }
}

/// Detach keys as bytes (a type of its own: clap takes a bare `Vec` for
/// a list of values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DetachKeys(pub Vec<u8>);

/// Parses docker's detach-keys syntax: comma-separated, `ctrl-X` or one
/// character each ("ctrl-p,ctrl-q"; "" for none).
pub(crate) fn parse_detach_keys(spec: &str) -> Result<DetachKeys, String> {
    parse_keys(spec).map(DetachKeys)
}

fn parse_keys(spec: &str) -> Result<Vec<u8>, String> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|k| {
            if let Some(c) = k.strip_prefix("ctrl-") {
                match c.as_bytes() {
                    [b] if b.is_ascii_alphabetic() => Ok(b.to_ascii_lowercase() & 0x1f),
                    b"@" => Ok(0),
                    b"[" => Ok(0x1b),
                    b"\\" => Ok(0x1c),
                    b"]" => Ok(0x1d),
                    b"^" => Ok(0x1e),
                    b"_" => Ok(0x1f),
                    _ => Err(format!("bad detach key {k:?}")),
                }
            } else if k.len() == 1 {
                Ok(k.as_bytes()[0])
            } else {
                Err(format!("bad detach key {k:?}"))
            }
        })
        .collect()
}

/// Where the stdin thread sends: the session's connection, or none while
/// contctl reconnects to a restarted contd; input read meanwhile waits in
/// `held` (up to [`MAX_HELD`]) and goes first once a connection is back.
#[derive(Debug, Default)]
struct Outlet {
    tx: Option<Sender>,
    held: Vec<Request>,
    held_bytes: usize,
}

/// Input held while contd is away, at most.
const MAX_HELD: usize = 1 << 20;

type SharedOutlet = std::sync::Arc<std::sync::Mutex<Outlet>>;

fn lock(o: &SharedOutlet) -> std::sync::MutexGuard<'_, Outlet> {
    o.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Outlet {
    /// Sends `req`, or holds it if there is no connection (or it broke).
    fn send(&mut self, req: Request, len: usize) {
        if let Some(tx) = self.tx.as_mut() {
            if tx.send(&req).is_ok() {
                return;
            }
            self.tx = None;
        }
        if self.held_bytes + len <= MAX_HELD {
            self.held_bytes += len;
            self.held.push(req);
        }
    }

    /// A new connection: what was held goes first.
    fn connect(&mut self, mut tx: Sender) {
        for req in self.held.drain(..) {
            if tx.send(&req).is_err() {
                return;
            }
        }
        self.held_bytes = 0;
        self.tx = Some(tx);
    }
}

/// Forwards stdin in a thread, as `Input` (attach) or `ExecInput` (exec).
/// At end of input an empty one closes the process's stdin (for attach,
/// with `eof` only: `run -i` passes it on, `attach` does not).
fn forward_stdin(outlet: SharedOutlet, exec: Option<u32>, eof: bool) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdin = std::io::stdin();
        loop {
            let n = stdin.read(&mut buf).unwrap_or(0);
            let data = buf[..n].to_vec();
            let req = match exec {
                Some(id) => Request::ExecInput { id, data },
                None if n == 0 && !eof => return,
                None => Request::Input { data },
            };
            lock(&outlet).send(req, n);
            if n == 0 {
                return;
            }
        }
    });
}

fn write_out(stream: Stream, data: &[u8]) {
    let _ = match stream {
        Stream::Stdout => {
            let mut o = std::io::stdout();
            o.write_all(data).and_then(|()| o.flush())
        }
        Stream::Stderr => std::io::stderr().write_all(data),
    };
}

/// The exit code of a shell for a container's code.
pub(crate) fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(255))
}

/// What an attach session needs to find its container again after contd
/// restarts.
#[derive(Debug, Clone)]
pub(crate) struct Reattach {
    pub socket: std::path::PathBuf,
    pub ns: String,
    pub name: String,
    pub detach_keys: Option<Vec<u8>>,
}

/// How long an attached client waits for contd to come back.
const REATTACH_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs an attach session on `client` (already answered `Ok`) until the
/// detach keys (exit 0) or the container's exit (its code). If contd goes
/// away meanwhile (restarted, upgraded, killed), the session lives on in
/// the monitor: contctl says so in one line, reconnects for up to a minute
/// and attaches again; input typed meanwhile is held and sent then.
pub(crate) fn attach_session(
    client: &mut Client,
    stdin: bool,
    tty: bool,
    eof: bool,
    reattach: Option<Reattach>,
) -> anyhow::Result<ExitCode> {
    let _raw = Raw::new(tty && stdin);
    let outlet = SharedOutlet::default();
    if stdin {
        lock(&outlet).connect(client.sender()?);
        forward_stdin(outlet.clone(), None, eof);
    }
    let mut replaced: Option<Client> = None;
    loop {
        let c = replaced.as_mut().unwrap_or(&mut *client);
        let resp = match c.next_response() {
            Ok(r) => r,
            Err(e) => match (&reattach, e.downcast_ref::<proto::ErrorReply>()) {
                // contd's own answer, or nobody to find again: the end.
                (None, _) | (_, Some(_)) => return Err(e),
                (Some(r), None) => {
                    let nl = if tty && stdin { "\r\n" } else { "\n" };
                    let _ = write!(
                        std::io::stderr(),
                        "{nl}contctl: contd went away; the session lives on, reconnecting{nl}"
                    );
                    match reconnect(r, stdin)? {
                        Reconnected::Attached(new) => {
                            if stdin {
                                lock(&outlet).connect(new.sender()?);
                            }
                            replaced = Some(new);
                            continue;
                        }
                        Reconnected::Exited(code) => return Ok(exit_code(code)),
                    }
                }
            },
        };
        match resp {
            Response::Output { stream, data } => write_out(stream, &data),
            Response::Detached => return Ok(ExitCode::SUCCESS),
            Response::Exited(rec) => return Ok(exit_code(rec.code)),
            other => return Err(unexpected(&other)),
        }
    }
}

enum Reconnected {
    Attached(Client),
    /// The container exited while contd was away: its code.
    Exited(i32),
}

/// Attaches again once contd answers (within [`REATTACH_FOR`]).
fn reconnect(r: &Reattach, stdin: bool) -> anyhow::Result<Reconnected> {
    let deadline = std::time::Instant::now() + REATTACH_FOR;
    loop {
        let attempt = Client::connect(&r.socket).and_then(|mut c| {
            let req = Request::Attach {
                ns: r.ns.clone(),
                name: r.name.clone(),
                stdin,
                detach_keys: r.detach_keys.clone(),
            };
            match c.request(&req) {
                Ok(Response::Ok) => Ok(Reconnected::Attached(c)),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => {
                    // Exited while we were away: its record has the code
                    // (asked on a new connection: a refused attach ends
                    // its own).
                    let details = Client::connect(&r.socket).and_then(|mut c| {
                        c.request(&Request::Details {
                            ns: r.ns.clone(),
                            name: r.name.clone(),
                        })
                    });
                    match details {
                        Ok(Response::Details(d)) if d.status == proto::Status::Exited => {
                            Ok(Reconnected::Exited(d.exit.map_or(0, |x| x.code)))
                        }
                        _ => Err(e),
                    }
                }
            }
        });
        match attempt {
            Ok(done) => return Ok(done),
            Err(e) if std::time::Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "contd did not come back within {} s",
                    REATTACH_FOR.as_secs()
                )))
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// The signals a foreground `run` passes on to its container (docker's
/// `--sig-proxy`): each one contctl receives becomes a `Kill`, from a thread
/// for the rest of contctl's life.
///
/// # Errors
/// The handlers cannot be installed.
pub(crate) fn proxy_signals(
    socket: std::path::PathBuf,
    ns: String,
    name: String,
) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let req = Request::Kill {
                ns: ns.clone(),
                name: name.clone(),
                signal,
            };
            // The container may have exited meanwhile: nothing to pass on.
            if let Ok(mut c) = Client::connect(&socket) {
                let _ = c.request(&req);
            }
        }
    });
    Ok(())
}

/// Keeps the container's terminal the size of ours: the size now (an
/// attach from a window of another size), then after every SIGWINCH, each
/// as a `Resize`. Nothing without a local terminal.
///
/// # Errors
/// The handler cannot be installed.
pub(crate) fn follow_window(
    socket: std::path::PathBuf,
    ns: String,
    name: String,
) -> anyhow::Result<()> {
    if term_size().is_none() {
        return Ok(());
    }
    let mut winch = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH])?;
    let resize = move || {
        if let Some((rows, cols)) = term_size() {
            let req = Request::Resize {
                ns: ns.clone(),
                name: name.clone(),
                rows,
                cols,
            };
            if let Ok(mut c) = Client::connect(&socket) {
                let _ = c.request(&req);
            }
        }
    };
    resize();
    std::thread::spawn(move || {
        for _ in winch.forever() {
            resize();
        }
    });
    Ok(())
}

/// Runs an exec session: its output until it exits; its code.
pub(crate) fn exec_session(
    client: &mut Client,
    id: u32,
    stdin: bool,
    tty: bool,
) -> anyhow::Result<ExitCode> {
    let _raw = Raw::new(tty && stdin);
    if stdin {
        let outlet = SharedOutlet::default();
        lock(&outlet).connect(client.sender()?);
        forward_stdin(outlet, Some(id), true);
    }
    loop {
        match client.next_response()? {
            Response::ExecOutput { stream, data, .. } => write_out(stream, &data),
            Response::ExecExited { code, .. } => return Ok(exit_code(code)),
            Response::Exited(_) => bail!("the container exited"),
            other => return Err(unexpected(&other)),
        }
    }
}

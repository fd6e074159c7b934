//! The parent side: create, start, kill, delete, and derived status.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext};
use crate::state::{self, Persisted, FIFO};
use crate::{cgroup, init, spec, sys};

/// Status per the OCI runtime spec, derived from the live process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Init waits on the exec fifo.
    Created,
    /// Init has been released and lives.
    Running,
    /// Init is gone (or a zombie).
    Stopped,
}

impl Status {
    /// The OCI word for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// The standard streams init gets. `None` keeps the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Becomes fd 0.
    pub stdin: Option<OwnedFd>,
    /// Becomes fd 1.
    pub stdout: Option<OwnedFd>,
    /// Becomes fd 2.
    pub stderr: Option<OwnedFd>,
}

/// How to create a container.
#[derive(Debug)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory holding `config.json`.
    pub bundle: PathBuf,
    /// Runtime state dir of this container (`state.json`, `exec.fifo`);
    /// created if missing, removed again if create fails and it created it.
    pub state_dir: PathBuf,
    /// Init's standard streams.
    pub stdio: Stdio,
}

/// A created container.
#[derive(Debug)]
pub struct Container {
    state: Persisted,
    state_dir: PathBuf,
    pidfd: Option<OwnedFd>,
}

impl Container {
    /// Creates the container: validates the spec, clones init into its
    /// namespaces and cgroup, and returns once init blocks on the exec fifo
    /// (status `created`). Must be called from a single-threaded process.
    ///
    /// # Errors
    /// A [`SpecError`](crate::SpecError) before anything is created; any later
    /// failure undoes what was done (init killed and reaped, cgroup and state
    /// files removed) and says so if undoing failed too.
    pub fn create(opts: CreateOptions) -> Result<Container, Error> {
        let checked = spec::load(&opts.bundle, &opts.id)?;
        let made_dir = !opts.state_dir.exists();
        std::fs::create_dir_all(&opts.state_dir)
            .ctx(|| format!("create state dir {}", opts.state_dir.display()))?;
        let mut undo = Undo {
            state_dir: opts.state_dir.clone(),
            made_dir,
            cgroup: None,
            child: None,
        };
        match create_inner(&opts, &checked, &mut undo) {
            Ok(c) => Ok(c),
            Err(e) => Err(undo.run(e)),
        }
    }

    /// Finds a container created earlier, by its runtime state dir.
    ///
    /// # Errors
    /// If `state.json` is missing or unreadable.
    pub fn load(state_dir: &Path) -> Result<Container, Error> {
        let state = Persisted::load(state_dir)?;
        // A pidfd only if the pid still names our init (same start time).
        let pidfd = match sys::process_start_time(state.pid) {
            Ok(t) if t == state.pid_start_time => sys::pidfd_open(state.pid).ok(),
            _ => None,
        };
        Ok(Container {
            state,
            state_dir: state_dir.to_path_buf(),
            pidfd,
        })
    }

    /// Container id.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Host pid of init.
    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    /// A pidfd for init, while it lives.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.as_fd())
    }

    /// The persisted facts.
    pub fn persisted(&self) -> &Persisted {
        &self.state
    }

    /// The cgroup path relative to each hierarchy root.
    pub fn cgroup_path(&self) -> &str {
        &self.state.cgroup_path
    }

    /// The status, derived from the live process and the exec fifo.
    pub fn status(&self) -> Status {
        let alive = self.pidfd.is_some()
            && matches!(sys::process_state(self.state.pid), Ok(s) if s != 'Z' && s != 'X')
            && sys::process_start_time(self.state.pid).ok() == Some(self.state.pid_start_time);
        if !alive {
            Status::Stopped
        } else if self.state_dir.join(FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// Releases init from the exec fifo. Waits on the fifo and on init's
    /// pidfd together, so a dead init fails `start` instead of hanging it.
    ///
    /// # Errors
    /// If the container is not `created`, or init died before it read the
    /// fifo.
    pub fn start(&mut self) -> Result<(), Error> {
        let status = self.status();
        if status != Status::Created {
            return Err(self.state_error(status, "cannot start"));
        }
        let fifo_path = self.state_dir.join(FIFO);
        let fifo = sys::open(&fifo_path, libc::O_RDONLY | libc::O_NONBLOCK)
            .ctx(|| format!("open {}", fifo_path.display()))?;
        let Some(pidfd) = self.pidfd.as_ref() else {
            return Err(self.state_error(Status::Stopped, "cannot start"));
        };
        loop {
            let ready = sys::poll_readable(&[fifo.as_fd(), pidfd.as_fd()], -1)
                .ctx(|| "wait for init to start".into())?;
            if ready[0] {
                let mut f = std::fs::File::from(fifo);
                let mut b = [0u8; 1];
                let n = f.read(&mut b).ctx(|| "read exec fifo".into())?;
                if n == 1 {
                    break;
                }
                return Err(Error::Init(
                    "init closed the exec fifo without starting".into(),
                ));
            }
            if ready[1] {
                return Err(Error::Init("init exited before it was started".into()));
            }
        }
        std::fs::remove_file(&fifo_path).ctx(|| format!("remove {}", fifo_path.display()))?;
        Ok(())
    }

    /// Sends `signal` to init through its pidfd (never to a reused pid).
    ///
    /// # Errors
    /// If init is gone or the signal cannot be sent.
    pub fn kill(&self, signal: i32) -> Result<(), Error> {
        let Some(pidfd) = self.pidfd.as_ref() else {
            return Err(self.state_error(Status::Stopped, "cannot signal"));
        };
        sys::pidfd_send_signal(pidfd.as_fd(), signal)
            .ctx(|| format!("signal {signal} to container {}", self.state.id))
    }

    /// Releases the container's resources: its cgroup and its runtime state
    /// dir. Refuses a living container unless `force`, which kills it first
    /// (the caller, if it is init's parent, reaps it).
    ///
    /// # Errors
    /// If the container lives and `force` is false, or a resource cannot be
    /// removed.
    pub fn delete(self, force: bool) -> Result<(), Error> {
        let status = self.status();
        if status != Status::Stopped {
            if !force {
                return Err(self.state_error(status, "cannot delete without force"));
            }
            self.kill(libc::SIGKILL)?;
            // Wait until the kernel has torn init down, so its cgroup empties.
            if let Some(fd) = self.pidfd.as_ref() {
                let _ = sys::poll_readable(&[fd.as_fd()], 5000);
            }
        }
        remove_cgroup(&self.state.cgroup_path)?;
        std::fs::remove_dir_all(&self.state_dir)
            .ctx(|| format!("remove state dir {}", self.state_dir.display()))
    }

    fn state_error(&self, status: Status, message: &str) -> Error {
        Error::State {
            id: self.state.id.clone(),
            status: status.as_str().into(),
            message: message.into(),
        }
    }
}

/// Removes a cgroup, waiting briefly for exiting processes to leave it.
fn remove_cgroup(path: &str) -> Result<(), Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match cgroup::remove(path) {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// What a failing create must undo, in reverse order.
struct Undo {
    state_dir: PathBuf,
    made_dir: bool,
    cgroup: Option<String>,
    child: Option<(i32, OwnedFd)>,
}

impl Undo {
    fn run(self, error: Error) -> Error {
        let mut failed = Vec::new();
        if let Some((pid, pidfd)) = self.child {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = remove_cgroup(cg) {
                failed.push(e.to_string());
            }
        }
        let files = [state::STATE_FILE, FIFO];
        for f in files {
            let p = self.state_dir.join(f);
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    failed.push(format!("remove {}: {e}", p.display()));
                }
            }
        }
        if self.made_dir {
            if let Err(e) = std::fs::remove_dir(&self.state_dir) {
                failed.push(format!("remove {}: {e}", self.state_dir.display()));
            }
        }
        if failed.is_empty() {
            error
        } else {
            Error::Cleanup {
                error: Box::new(error),
                cleanup: failed.join("; "),
            }
        }
    }
}

fn create_inner(
    opts: &CreateOptions,
    checked: &spec::Checked,
    undo: &mut Undo,
) -> Result<Container, Error> {
    let fifo_path = opts.state_dir.join(FIFO);
    if opts.state_dir.join(state::STATE_FILE).exists() {
        return Err(Error::State {
            id: opts.id.clone(),
            status: "existing".into(),
            message: format!("state dir {} is in use", opts.state_dir.display()),
        });
    }
    sys::mkfifo(&fifo_path, 0o600).ctx(|| format!("mkfifo {}", fifo_path.display()))?;
    let fifo =
        sys::open(&fifo_path, libc::O_PATH).ctx(|| format!("open {}", fifo_path.display()))?;
    let (parent_sock, child_sock) = sys::seqpacket_pair().ctx(|| "create sync socket".into())?;
    let stdio = [
        opts.stdio.stdin.as_ref().map(|f| f.as_raw_fd()),
        opts.stdio.stdout.as_ref().map(|f| f.as_raw_fd()),
        opts.stdio.stderr.as_ref().map(|f| f.as_raw_fd()),
    ];

    // SAFETY: runtime-core's contract: create is called from a
    // single-threaded process (the monitor or the CLI).
    let forked = unsafe { sys::clone_fork(checked.namespaces.clone_flags) }
        .ctx(|| "clone container init".into())?;
    let pid = match forked {
        sys::Forked::Child => {
            drop(parent_sock);
            init::run(init::InitArgs {
                checked,
                bundle: &opts.bundle,
                sync: child_sock,
                fifo,
                stdio,
            })
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(child_sock);
    drop(fifo);
    let pidfd = sys::pidfd_open(pid).ctx(|| format!("pidfd_open {pid}"))?;
    undo.child = Some((pid, pidfd.try_clone().ctx(|| "dup pidfd".into())?));

    let limits = cgroup::Limits::from_spec(
        checked
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref()),
    );
    cgroup::create(&checked.cgroup_path, limits, pid)?;
    undo.cgroup = Some(checked.cgroup_path.clone());

    sys::send(parent_sock.as_fd(), b"g").ctx(|| "release init".into())?;
    let mut buf = vec![0u8; 8192];
    let n = sys::recv(parent_sock.as_fd(), &mut buf).ctx(|| "wait for init".into())?;
    match buf.first() {
        Some(b'R') if n == 1 => {}
        Some(b'E') if n > 0 => {
            return Err(Error::Init(
                String::from_utf8_lossy(&buf[1..n]).into_owned(),
            ));
        }
        _ => return Err(Error::Init("init died during setup".into())),
    }

    let pid_start_time =
        sys::process_start_time(pid).ctx(|| format!("read start time of {pid}"))?;
    let state = Persisted {
        id: opts.id.clone(),
        pid,
        pid_start_time,
        bundle: opts.bundle.clone(),
        rootfs: checked.rootfs.clone(),
        cgroup_path: checked.cgroup_path.clone(),
        created: state::rfc3339_nanos(state::now_nanos()),
        annotations: checked.spec.annotations().clone().unwrap_or_default(),
    };
    state.save(&opts.state_dir)?;
    undo.child = None;
    undo.cgroup = None;
    Ok(Container {
        state,
        state_dir: opts.state_dir.clone(),
        pidfd: Some(pidfd),
    })
}

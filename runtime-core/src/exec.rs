//! `exec`: an extra process in a living container — same namespaces,
//! cgroup, capabilities (unless overridden), seccomp and user (unless
//! overridden).
//!
//! The caller (single-threaded, as for create) enters the container's pid
//! namespace for its children and clones; the child makes itself
//! non-dumpable before it joins anything (CVE-2019-5736: the container
//! must never reach the host binary through `/proc/PID/exe`), waits until
//! the parent has put it in the container's cgroup, joins the other
//! namespaces (user first), sets up the process like init does, and execs.
//! The new process is the caller's child, so the caller can wait for it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::container::{in_pid_ns_for_children, tag, Container, Report, Status, Stdio};
use crate::error::{Error, IoContext};
use crate::{cgroup, console, init, sys};

/// How to exec a process in a container.
#[derive(Debug)]
pub struct ExecOptions {
    /// The process (`args`, `env`, `cwd`, `user`, `capabilities`, ...).
    pub process: Process,
    /// Its standard streams (ignored with a terminal).
    pub stdio: Stdio,
    /// A connected console socket, for `process.terminal`.
    pub console_socket: Option<OwnedFd>,
    /// How many fds from 3 on it keeps.
    pub preserve_fds: u32,
    /// oom_score_adj when the process sets none (instead of the caller's).
    pub default_oom_score_adj: Option<i32>,
    /// Exec into a paused container too (runc's `--ignore-paused`): the
    /// process joins the frozen cgroup, and `exec` returns once the
    /// container is resumed and the process is set up.
    pub ignore_paused: bool,
    /// Sub-cgroups of the container's to run the process in (runc's
    /// `exec --cgroup`): a path relative to the container's cgroup, for
    /// the listed v1 controllers (empty: all of them, or the v2 tree).
    /// They must exist.
    pub sub_cgroups: Vec<(Vec<String>, String)>,
    /// Where compiled seccomp programs are cached (see
    /// [`CreateOptions::seccomp_cache`](crate::CreateOptions)).
    pub seccomp_cache: Option<std::path::PathBuf>,
}

impl ExecOptions {
    /// Options for `process` with the caller's stdio and nothing extra.
    pub fn new(process: Process) -> Self {
        ExecOptions {
            process,
            stdio: Stdio::default(),
            console_socket: None,
            preserve_fds: 0,
            default_oom_score_adj: None,
            ignore_paused: false,
            sub_cgroups: Vec::new(),
            seccomp_cache: None,
        }
    }
}

fn ns_name(t: LinuxNamespaceType) -> (&'static str, libc::c_int) {
    match t {
        LinuxNamespaceType::User => ("user", libc::CLONE_NEWUSER),
        LinuxNamespaceType::Ipc => ("ipc", libc::CLONE_NEWIPC),
        LinuxNamespaceType::Uts => ("uts", libc::CLONE_NEWUTS),
        LinuxNamespaceType::Network => ("net", libc::CLONE_NEWNET),
        LinuxNamespaceType::Pid => ("pid", libc::CLONE_NEWPID),
        LinuxNamespaceType::Cgroup => ("cgroup", libc::CLONE_NEWCGROUP),
        LinuxNamespaceType::Time => ("time", crate::spec::CLONE_NEWTIME),
        LinuxNamespaceType::Mount => ("mnt", libc::CLONE_NEWNS),
    }
}

impl Container {
    /// Starts `opts.process` inside the container and returns its host pid;
    /// the process is the caller's child. Must be called from a
    /// single-threaded process.
    ///
    /// # Errors
    /// If the container is not created or running, or setting the process
    /// up fails (the message says what; nothing is left behind).
    pub fn exec(&self, opts: ExecOptions) -> Result<i32, Error> {
        let status = self.status();
        let paused_ok = opts.ignore_paused && status == Status::Paused;
        if !matches!(status, Status::Created | Status::Running) && !paused_ok {
            return Err(Error::State {
                id: self.id().into(),
                status: status.as_str().into(),
                message: "cannot exec".into(),
            });
        }
        let spec = self.spec()?;
        let linux = spec.linux().clone().unwrap_or_default();
        if opts.process.terminal() == Some(true) && opts.console_socket.is_none() {
            return Err(Error::Spec(crate::SpecError::invalid(
                "process.terminal",
                "a terminal needs a console socket (--console-socket)",
            )));
        }
        let args = opts.process.args().as_deref().unwrap_or_default();
        if args.is_empty() || args[0].is_empty() {
            return Err(Error::Spec(crate::SpecError::invalid(
                "process.args",
                "must name a program",
            )));
        }
        crate::spec::check_user(opts.process.user())?;
        let scheduler = match opts.process.scheduler() {
            Some(s) => Some(crate::sched::scheduler(s)?),
            None => None,
        };
        let (cpus_initial, cpus_final) = crate::sched::exec_affinity(&opts.process)?;
        let memory_policy = match linux.memory_policy() {
            Some(p) => Some(crate::sched::memory_policy(p)?),
            None => None,
        };
        let persona = match linux.personality() {
            Some(p) => Some(init::persona(p).map_err(Error::Exec)?),
            None => None,
        };
        let pid = self.pid();
        // Open init's namespaces now: the fds pin them even if init exits.
        let mut joins: Vec<(OwnedFd, libc::c_int)> = Vec::new();
        let mut pid_ns = None;
        for n in linux.namespaces().iter().flatten() {
            let (name, flag) = ns_name(n.typ());
            let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
            if flag == libc::CLONE_NEWPID {
                pid_ns = Some(path);
                continue;
            }
            let fd = sys::open(&path, libc::O_RDONLY).ctx(|| format!("open {}", path.display()))?;
            joins.push((fd, flag));
        }
        // Without a mount namespace of its own the container is a chroot:
        // the process gets init's root.
        let root = if linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Mount)
        {
            None
        } else {
            let path = PathBuf::from(format!("/proc/{pid}/root"));
            Some(
                sys::open(&path, libc::O_PATH | libc::O_DIRECTORY)
                    .ctx(|| format!("open {}", path.display()))?,
            )
        };
        // User namespace first, mount namespace last.
        joins.sort_by_key(|(_, f)| match *f {
            libc::CLONE_NEWUSER => 0,
            libc::CLONE_NEWNS => 2,
            _ => 1,
        });
        // The pid may have been reused since we looked: check it is still
        // our init now that the namespace fds are open.
        if self.status() == Status::Stopped {
            return Err(Error::State {
                id: self.id().into(),
                status: "stopped".into(),
                message: "cannot exec".into(),
            });
        }
        // Compiled here (or read from the cache), loaded by the child.
        let filter = match linux.seccomp() {
            Some(s) => Some(
                crate::seccomp::prepare(s, opts.seccomp_cache.as_deref()).map_err(Error::Exec)?,
            ),
            None => None,
        };
        let (parent_sock, child_sock) =
            sys::seqpacket_pair().ctx(|| "create sync socket".into())?;
        let stdio = [
            opts.stdio.stdin.as_ref().map(|f| f.as_raw_fd()),
            opts.stdio.stdout.as_ref().map(|f| f.as_raw_fd()),
            opts.stdio.stderr.as_ref().map(|f| f.as_raw_fd()),
        ];
        let state = self.oci_state();
        // The child joins the cgroup itself on v1 (no RCU wait).
        let tasks = cgroup::existing_task_files(self.cgroup_path(), &opts.sub_cgroups)?;
        let child = in_pid_ns_for_children(pid_ns.as_deref(), || {
            // SAFETY: runtime-core's contract: called from a single-threaded
            // process (the CLI or the monitor).
            let forked = unsafe { sys::clone_fork(0) }.ctx(|| "clone exec process".into())?;
            match forked {
                sys::Forked::Child => child_main(ChildArgs {
                    sync: child_sock.as_raw_fd(),
                    close: parent_sock.as_raw_fd(),
                    stdio,
                    joins: &joins,
                    root: root.as_ref(),
                    process: &opts.process,
                    console: opts.console_socket.as_ref().map(|f| f.as_raw_fd()),
                    preserve_fds: opts.preserve_fds,
                    seccomp: filter.as_ref(),
                    cgroup_tasks: &tasks,
                    default_oom_score_adj: opts.default_oom_score_adj,
                    scheduler: scheduler.as_ref(),
                    memory_policy: memory_policy.as_ref(),
                    persona,
                    // On v1 the child joins the cgroup itself: it sets the
                    // initial CPUs before; on v2 the parent does, before
                    // it moves the child.
                    cpus_initial: cpus_initial.as_deref().filter(|_| !tasks.is_empty()),
                    cpus_final: cpus_final.as_deref(),
                }),
                sys::Forked::Parent(p) => Ok(p),
            }
        })?;
        drop(child_sock);
        let kill_child = |e: Error| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = sys::wait_exit(child);
            e
        };
        if tasks.is_empty() {
            if let Some(m) = &cpus_initial {
                crate::sched::apply_cpu_mask(child, m).map_err(|e| {
                    kill_child(Error::Exec(format!("process.execCPUAffinity: {e}")))
                })?;
            }
            let path = cgroup::v2_exec_path(self.cgroup_path(), &opts.sub_cgroups);
            cgroup::attach(&path, child).map_err(|e| kill_child(e.into()))?;
        }
        sys::send(parent_sock.as_fd(), &[tag::GO])
            .ctx(|| "release exec process".into())
            .map_err(kill_child)?;
        loop {
            match crate::container::next_report(parent_sock.as_fd()).map_err(kill_child)? {
                Report::Ready => return Ok(child),
                Report::Seccomp(fd) => crate::container::hand_to_listener(
                    linux.seccomp().as_ref(),
                    parent_sock.as_fd(),
                    fd,
                    child,
                    &state,
                )
                .map_err(kill_child)?,
                Report::Failed(msg) => return Err(kill_child(Error::Init(msg))),
                Report::Unrunnable(code, message) => {
                    return Err(kill_child(Error::Unrunnable { code, message }))
                }
                Report::Hooks | Report::Died => {
                    return Err(kill_child(Error::Init(
                        "exec process died during setup".into(),
                    )))
                }
            }
        }
    }
}

struct ChildArgs<'a> {
    sync: RawFd,
    close: RawFd,
    stdio: [Option<RawFd>; 3],
    joins: &'a [(OwnedFd, libc::c_int)],
    /// Init's root, to chroot into (a container without a mount namespace).
    root: Option<&'a OwnedFd>,
    process: &'a Process,
    console: Option<RawFd>,
    preserve_fds: u32,
    seccomp: Option<&'a crate::seccomp::Filter>,
    cgroup_tasks: &'a [std::ffi::CString],
    default_oom_score_adj: Option<i32>,
    scheduler: Option<&'a crate::sched::SchedAttr>,
    memory_policy: Option<&'a crate::sched::MemPolicy>,
    /// `linux.personality`, as init has it.
    persona: Option<libc::c_ulong>,
    /// `execCPUAffinity.initial`, when the child joins the cgroup itself
    /// (v1): before it does.
    cpus_initial: Option<&'a [u64]>,
    /// `execCPUAffinity.final`: after.
    cpus_final: Option<&'a [u64]>,
}

fn child_main(a: ChildArgs<'_>) -> ! {
    sys::close(a.close);
    let sync = a.sync;
    let notify = a.seccomp.is_some_and(|f| f.notify());
    match child_setup(a).and_then(|mut p| {
        if notify {
            p.load_seccomp_now(sync)?;
        }
        Ok(p)
    }) {
        Ok(p) => {
            let _ = sys::send(sys::borrow_raw(sync), &[tag::READY]);
            sys::close(sync);
            p.exec()
        }
        Err(msg) => {
            let _ = sys::send(sys::borrow_raw(sync), &crate::init::failure_packet(&msg));
            sys::exit_now(1)
        }
    }
}

fn child_setup(a: ChildArgs<'_>) -> Result<init::Prepared<'_>, String> {
    // Before anything of the container can see us.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).map_err(|e| format!("set non-dumpable: {e}"))?;
    if let Some(m) = a.cpus_initial {
        crate::sched::apply_cpu_mask(0, m)?;
    }
    cgroup::join_self(a.cgroup_tasks)?;
    sys::reset_signals().map_err(|e| format!("reset signals: {e}"))?;
    sys::cloexec_from(3 + a.preserve_fds).map_err(|e| format!("close_range: {e}"))?;
    for (target, fd) in a.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            sys::dup2(*fd, target as RawFd).map_err(|e| format!("dup2 stdio {target}: {e}"))?;
        }
    }
    let mut buf = [0u8; 16];
    match sys::recv(sys::borrow_raw(a.sync), &mut buf) {
        Ok(n) if n >= 1 && buf[0] == tag::GO => {}
        _ => return Err("parent went away".into()),
    }
    // In the cgroup now (joined above on v1, moved by the parent on v2).
    if let Some(m) = a.cpus_final {
        crate::sched::apply_cpu_mask(0, m)?;
    }
    for (fd, flag) in a.joins {
        sys::setns(fd.as_fd(), *flag).map_err(|e| format!("join namespace {flag:#x}: {e}"))?;
    }
    if let Some(p) = a.persona {
        sys::personality(p).map_err(|e| format!("personality: {e}"))?;
    }
    init::oom_score_adj(a.process, a.default_oom_score_adj)?;
    sys::setsid().map_err(|e| format!("setsid: {e}"))?;
    if a.process.terminal() == Some(true) {
        let sock = a.console.ok_or("a terminal needs a console socket")?;
        let size = a
            .process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        console::setup(sys::borrow_raw(sock), size, false)?;
    }
    // After the terminal: a pty comes from the host's /dev/ptmx then.
    if let Some(root) = a.root {
        sys::fchdir(root.as_fd()).map_err(|e| format!("chdir to the container's root: {e}"))?;
        std::os::unix::fs::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    }
    init::prepare_process(a.process, &[], a.seccomp, a.scheduler, a.memory_policy)
}

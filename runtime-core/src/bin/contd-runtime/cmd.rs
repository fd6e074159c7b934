//! The commands. Each returns the process exit code or an error line.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use runtime_core::{Container, CreateOptions, ExecOptions, Status};

use crate::log::Logger;
use crate::{tty, Cli, Command, CreateArgs};

type Res<T> = Result<T, String>;

/// runc's id rule: letters, digits, `_`, `+`, `-`, `.`; not `.` or `..`.
fn check_id(id: &str) -> Res<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid container id format: {id}"))
    }
}

/// Under `--root`, beside the containers: compiled seccomp programs.
const CACHE_DIR: &str = ".cache";

fn state_dir(cli: &Cli, id: &str) -> Res<PathBuf> {
    check_id(id)?;
    if id == CACHE_DIR {
        return Err(format!(
            "container id {id} is reserved for the runtime's cache"
        ));
    }
    Ok(cli.root.join(id))
}

/// Where compiled seccomp programs are kept (crun's place for them too).
fn seccomp_cache(cli: &Cli) -> PathBuf {
    cli.root.join(CACHE_DIR).join("seccomp")
}

fn load(cli: &Cli, id: &str) -> Res<Container> {
    let dir = state_dir(cli, id)?;
    if !dir.join("state.json").exists() {
        return Err(format!("container {id} does not exist"));
    }
    Container::load(&dir).map_err(|e| e.to_string())
}

pub fn dispatch(cli: &Cli, log: &Logger) -> Res<u8> {
    if cli.systemd_cgroup {
        return Err("--systemd-cgroup is not supported: use cgroupfs paths".into());
    }
    if let Some(r) = &cli.rootless {
        if r == "true" {
            return Err("rootless mode is not supported".into());
        }
    }
    log.debug(&format!("{:?}", cli.command));
    match &cli.command {
        Command::Create(a) => {
            create(cli, log, a, None)?;
            Ok(0)
        }
        Command::Start { id } => {
            start(cli, log, id)?;
            Ok(0)
        }
        Command::State { id } => {
            let c = load(cli, id)?;
            let text = serde_json::to_string_pretty(&c.oci_state()).map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(0)
        }
        Command::Kill { id, signal, all } => {
            let c = load(cli, id)?;
            let sig = parse_signal(signal)?;
            if c.status() == Status::Stopped {
                return Err("container not running".into());
            }
            if *all {
                c.kill_all(sig).map_err(|e| e.to_string())?;
            } else {
                c.kill(sig).map_err(|e| e.to_string())?;
            }
            Ok(0)
        }
        Command::Delete { id, force } => {
            delete(cli, log, id, *force)?;
            Ok(0)
        }
        Command::Run {
            create: a,
            detach,
            keep,
        } => run(cli, log, a, *detach, *keep),
        Command::Pause { id } => {
            load(cli, id)?.pause().map_err(|e| e.to_string())?;
            Ok(0)
        }
        Command::Resume { id } => {
            load(cli, id)?.resume().map_err(|e| e.to_string())?;
            Ok(0)
        }
        Command::Ps {
            id,
            format,
            ps_args,
        } => ps(cli, id, format, ps_args),
        Command::Exec(a) => exec(cli, log, a),
        Command::List { format, quiet } => list(cli, format, *quiet),
        Command::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(format!("File {} exists. Remove it first", path.display()));
            }
            let mut spec = runtime_core::secure_default_spec("rootfs", &["sh".to_string()]);
            spec["process"]["terminal"] = true.into();
            spec["hostname"] = "contd".into();
            let text = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())?;
            std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
            Ok(0)
        }
        Command::Features => {
            let text = serde_json::to_string_pretty(&features()).map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(0)
        }
        Command::Events { id, .. } => {
            let c = load(cli, id)?;
            if c.status() == Status::Stopped {
                return Err("container not running".into());
            }
            let ev = serde_json::json!({ "type": "stats", "id": id, "data": c.stats() });
            println!("{ev}");
            Ok(0)
        }
    }
}

fn parse_signal(s: &str) -> Res<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(format!("invalid signal {s}"));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| format!("invalid signal {s}"))
}

/// Writes `pid` to `path` atomically, as runc does.
fn write_pid_file(path: &Path, pid: i32) -> Res<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("write pid file {}: {e}", path.display()))
}

fn create(cli: &Cli, log: &Logger, a: &CreateArgs, console: Option<OwnedFd>) -> Res<Container> {
    if a.pidfd_socket.is_some() {
        return Err("--pidfd-socket is not supported".into());
    }
    let dir = state_dir(cli, &a.id)?;
    if dir.exists() {
        return Err(format!("container with id exists: {}", a.id));
    }
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&cli.root)
        .map_err(|e| format!("create root {}: {e}", cli.root.display()))?;
    let bundle = std::fs::canonicalize(&a.bundle)
        .map_err(|e| format!("bundle {}: {e}", a.bundle.display()))?;
    let mut opts = CreateOptions::new(a.id.clone(), bundle, dir);
    opts.seccomp_cache = Some(seccomp_cache(cli));
    opts.no_pivot = a.no_pivot;
    opts.preserve_fds = a.preserve_fds;
    opts.console_socket = match (&a.console_socket, console) {
        (Some(p), _) => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(p)
                .map_err(|e| format!("connect console socket {}: {e}", p.display()))?,
        )),
        (None, c) => c,
    };
    // Socket activation: the fds after stdio go to the container too.
    if let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0)
    {
        opts.preserve_fds += n;
        opts.extra_env = vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".into()];
    }
    let c = Container::create(opts).map_err(|e| e.to_string())?;
    for w in c.warnings() {
        log.warn(w);
    }
    if let Some(p) = &a.pid_file {
        if let Err(e) = write_pid_file(p, c.pid()) {
            let _ = c.delete(true);
            return Err(e);
        }
    }
    Ok(c)
}

fn start_container(log: &Logger, c: &mut Container) -> Res<()> {
    match c.status() {
        Status::Created => {}
        Status::Stopped => return Err("cannot start a container that has stopped".into()),
        Status::Running | Status::Paused => {
            return Err("cannot start an already running container".into())
        }
    }
    c.start().map_err(|e| e.to_string())?;
    if let Err(e) = c.run_poststart_hooks() {
        // As runc: a failed poststart hook fails start and the container.
        log.warn(&format!("{e}; killing the container"));
        let _ = c.kill_all(libc::SIGKILL);
        return Err(e.to_string());
    }
    Ok(())
}

fn start(cli: &Cli, log: &Logger, id: &str) -> Res<()> {
    let mut c = load(cli, id)?;
    start_container(log, &mut c)
}

fn delete(cli: &Cli, log: &Logger, id: &str, force: bool) -> Res<()> {
    let dir = state_dir(cli, id)?;
    if !dir.join("state.json").exists() {
        if force {
            // Half-made state (no state.json) goes too.
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        return Err(format!("container {id} does not exist"));
    }
    let c = Container::load(&dir).map_err(|e| e.to_string())?;
    // The runtime spec: a container that is not stopped (created ones
    // too, which runc and crun delete anyway) is refused unless forced.
    let status = c.status();
    if status != Status::Stopped && !force {
        return Err(format!(
            "cannot delete container {id} that is not stopped: {}",
            status.as_str()
        ));
    }
    for w in c.delete(force).map_err(|e| e.to_string())? {
        log.warn(&w);
    }
    Ok(())
}

fn run(cli: &Cli, log: &Logger, a: &CreateArgs, detach: bool, keep: bool) -> Res<u8> {
    let spec_terminal = spec_wants_terminal(&a.bundle);
    let mut proxy = None;
    let console = if spec_terminal && a.console_socket.is_none() {
        if detach {
            return Err(
                "cannot allocate tty if runc will detach without setting console socket".into(),
            );
        }
        let (ours, theirs) = tty::socket_pair()?;
        proxy = Some(ours);
        Some(theirs)
    } else {
        None
    };
    let mut c = create(cli, log, a, console)?;
    let master = match proxy {
        Some(sock) => match runtime_core::receive_master(sock.as_fd()) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = c.delete(true);
                return Err(format!("receive pty master: {e}"));
            }
        },
        None => None,
    };
    let forwarder = if detach {
        None
    } else {
        Some(tty::Forwarder::new()?)
    };
    if let Err(e) = start_container(log, &mut c) {
        let _ = c.delete(true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let pidfd = c
        .pidfd()
        .ok_or("init is gone")?
        .try_clone_to_owned()
        .map_err(|e| e.to_string())?;
    let code = forwarder
        .ok_or("no forwarder")?
        .wait(c.pid(), pidfd.as_fd(), master)?;
    if !keep {
        for w in c.delete(true).map_err(|e| e.to_string())? {
            log.warn(&w);
        }
    }
    Ok(code as u8)
}

fn spec_wants_terminal(bundle: &Path) -> bool {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .and_then(|v| v["process"]["terminal"].as_bool())
        .unwrap_or(false)
}

fn ps(cli: &Cli, id: &str, format: &str, ps_args: &[String]) -> Res<u8> {
    let c = load(cli, id)?;
    if c.status() == Status::Stopped {
        return Err("container not running".into());
    }
    let pids = c.processes();
    match format {
        "json" => {
            println!(
                "{}",
                serde_json::to_string(&pids).map_err(|e| e.to_string())?
            );
            Ok(0)
        }
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .map_err(|e| format!("run ps: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                let pid = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{l}");
                }
            }
            Ok(0)
        }
        other => Err(format!("invalid format option {other:?}")),
    }
}

fn list(cli: &Cli, format: &str, quiet: bool) -> Res<u8> {
    let mut states = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&cli.root) {
        for e in rd.flatten() {
            if let Ok(c) = Container::load(&e.path()) {
                states.push(c.oci_state());
            }
        }
    }
    states.sort_by(|a, b| a.id.cmp(&b.id));
    if quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match format {
        "json" => {
            println!(
                "{}",
                serde_json::to_string(&states).map_err(|e| e.to_string())?
            );
        }
        "table" => {
            println!(
                "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for s in &states {
                println!(
                    "{:<12} {:<10} {:<10} {:<40} {:<30} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created,
                    if s.owner.is_empty() { "root" } else { &s.owner }
                );
            }
        }
        other => return Err(format!("invalid format option {other:?}")),
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Container id.
    pub id: String,
    /// Command and arguments (unless --process).
    pub command: Vec<String>,
    /// A process.json to run instead of a command.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// KEY=VALUE to add to the environment.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid].
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids.
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Capability to add.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Return once the process started.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra fds (from 3 on).
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Exec in a paused container too: the process starts when it is
    /// resumed (and exec returns then).
    #[arg(long)]
    pub ignore_paused: bool,
    /// AppArmor profile (not supported: refused).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label (not supported: refused).
    #[arg(long)]
    pub process_label: Option<String>,
    /// Run the process in an existing sub-cgroup of the container's:
    /// `PATH`, or `CONTROLLER[,CONTROLLER...]:PATH` (cgroup v1); repeatable.
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Accepted for runc compatibility; not supported (refused when given).
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
}

fn exec_process(c: &Container, a: &ExecArgs) -> Res<oci_spec::runtime::Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        return runtime_core::parse_process(&data)
            .map_err(|e| format!("parse {}: {e}", path.display()));
    }
    if a.command.is_empty() {
        return Err("exec needs a command or --process".into());
    }
    let spec = c.spec().map_err(|e| e.to_string())?;
    let mut p = spec
        .process()
        .clone()
        .ok_or("the container has no process")?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    runtime_core::merge_env(&mut env, &a.env);
    p.set_env(Some(env));
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        user.set_uid(
            uid.parse()
                .map_err(|_| format!("--user {u}: uid must be numeric"))?,
        );
        user.set_gid(match gid {
            Some(g) => g
                .parse()
                .map_err(|_| format!("--user {u}: gid must be numeric"))?,
            None => 0,
        });
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            // runc takes CAP_KILL; KILL too, in any case.
            let up = name.to_ascii_uppercase();
            let cap: oci_spec::runtime::Capability = up
                .strip_prefix("CAP_")
                .unwrap_or(&up)
                .parse()
                .map_err(|_| format!("unknown capability {name}"))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    _ => caps.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn exec(cli: &Cli, log: &Logger, a: &ExecArgs) -> Res<u8> {
    if a.apparmor.is_some() || a.process_label.is_some() {
        return Err("AppArmor and SELinux are not supported".into());
    }
    let sub_cgroups = a
        .cgroup
        .iter()
        .map(|c| parse_sub_cgroup(c))
        .collect::<Res<Vec<_>>>()?;
    if a.pidfd_socket.is_some() {
        return Err("--pidfd-socket is not supported".into());
    }
    let c = load(cli, &a.id)?;
    match c.status() {
        Status::Stopped => return Err("cannot exec in a stopped container".into()),
        Status::Paused if !a.ignore_paused => {
            return Err(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            )
        }
        _ => {}
    }
    let process = exec_process(&c, a)?;
    let terminal = process.terminal() == Some(true);
    let mut proxy = None;
    let console_socket = match &a.console_socket {
        Some(p) => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(p)
                .map_err(|e| format!("connect console socket {}: {e}", p.display()))?,
        )),
        None if terminal => {
            if a.detach {
                return Err(
                    "cannot allocate tty if runc will detach without setting console socket".into(),
                );
            }
            let (ours, theirs) = tty::socket_pair()?;
            proxy = Some(ours);
            Some(theirs)
        }
        None => None,
    };
    let forwarder = if a.detach {
        None
    } else {
        Some(tty::Forwarder::new()?)
    };
    let mut opts = ExecOptions::new(process);
    opts.console_socket = console_socket;
    opts.preserve_fds = a.preserve_fds;
    opts.ignore_paused = a.ignore_paused;
    opts.sub_cgroups = sub_cgroups;
    opts.seccomp_cache = Some(seccomp_cache(cli));
    let pid = c.exec(opts).map_err(|e| e.to_string())?;
    log.debug(&format!("exec pid {pid}"));
    if let Some(p) = &a.pid_file {
        write_pid_file(p, pid)?;
    }
    let master = match proxy {
        Some(sock) => Some(
            runtime_core::receive_master(sock.as_fd())
                .map_err(|e| format!("receive pty master: {e}"))?,
        ),
        None => None,
    };
    let Some(fw) = forwarder else {
        return Ok(0);
    };
    let pidfd = runtime_core::pidfd_open(pid).map_err(|e| format!("pidfd_open {pid}: {e}"))?;
    let code = fw.wait(pid, pidfd.as_fd(), master)?;
    Ok(code as u8)
}

/// `--cgroup PATH` or `--cgroup CONTROLLER[,CONTROLLER...]:PATH`.
fn parse_sub_cgroup(arg: &str) -> Res<(Vec<String>, String)> {
    let (controllers, path) = match arg.split_once(':') {
        Some((c, p)) => (c.split(',').map(str::to_string).collect::<Vec<_>>(), p),
        None => (Vec::new(), arg),
    };
    if path.is_empty() || controllers.iter().any(String::is_empty) {
        return Err(format!(
            "--cgroup {arg:?}: want PATH or CONTROLLER[,CONTROLLER...]:PATH"
        ));
    }
    Ok((controllers, path.to_string()))
}

fn features() -> serde_json::Value {
    let caps: Vec<String> = caps::runtime::thread_all_supported()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    let mut caps = caps;
    caps.sort();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": runtime_core::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "iversion", "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime",
            "noexec", "noiversion", "nolazytime", "nomand", "norelatime", "nostrictatime",
            "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev", "rdiratime",
            "relatime", "remount", "rexec", "rnoatime", "rnodev", "rnodiratime",
            "rnoexec", "rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro",
            "rprivate", "rrelatime", "rro", "rrw", "rshared", "rslave", "rstrictatime",
            "rsuid", "rsymfollow", "runbindable", "rw", "shared", "silent", "slave",
            "strictatime", "suid", "symfollow", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": [
                    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86",
                    "SCMP_ARCH_X86_64"
                ],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_LOG"
                ]
            },
            "memoryPolicy": {
                "modes": [
                    "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"
                ],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } }
        },
        "annotations": {
            "org.contd.runtime.version": env!("CARGO_PKG_VERSION"),
            "org.contd.runtime.libseccomp": "2.5"
        }
    })
}

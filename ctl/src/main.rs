//! `contctl`: the operator's client for contd.
//!
//! Exit codes follow docker: 125 when contctl itself fails (bad usage, an
//! invalid name, contd unreachable, contd refusing the request), otherwise 0,
//! except `run` without `--detach`, which exits with the container's code.
//!
//! # Layout
//!
//! - `main.rs`: the command line, name checks, one function per command.
//! - `client`: the connection to contd's api socket.
//! - `output`: the `inspect` JSON, the `ps` table, writes to stdout.
#![forbid(unsafe_code)]

mod client;
mod interactive;
mod output;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use proto::api::{
    ContainerConfig, EventFilter, LogOptions, Mount, MountKind, Request, Response, RestartPolicy,
};
use proto::{validate_name, NameError, Status};

use crate::client::{unexpected, Client};

/// Where contd listens unless `--socket` or [`SOCKET_ENV`] say otherwise.
const DEFAULT_SOCKET: &str = "/run/contd/contd.sock";

/// Names the socket when `--socket` is absent, so scripts and tests need not
/// repeat it.
const SOCKET_ENV: &str = "CONTD_SOCKET";

/// The exit code for contctl's own failures (docker's convention).
const EXIT_OWN_ERROR: u8 = 125;

/// Signal names `kill --signal` accepts, with their Linux numbers.
const SIGNALS: [(&str, i32); 9] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("KILL", 9),
    ("USR1", 10),
    ("USR2", 12),
    ("TERM", 15),
    ("CONT", 18),
    ("STOP", 19),
];

/// Manage contd containers.
#[derive(Debug, Parser)]
#[command(name = "contctl", version)]
struct Cli {
    /// Path of contd's api socket [env: CONTD_SOCKET] [default: /run/contd/contd.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Namespace to work in.
    #[arg(long, global = true, value_name = "NS", default_value = "default")]
    ns: String,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Create and start a container; unless detached, wait for it, print its
    /// log and exit with its code.
    Run(RunArgs),
    /// List the namespace's containers, newest first.
    Ps {
        /// Show exited containers too.
        #[arg(short, long)]
        all: bool,
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
        /// Only containers matching: name=SUBSTRING, status=STATUS,
        /// label=KEY or label=KEY=VALUE (repeatable: one key's values are
        /// alternatives, different keys must all match).
        #[arg(short, long, value_name = "FILTER", value_parser = parse_ps_filter)]
        filter: Vec<(String, String)>,
        /// Do not cut the COMMAND column.
        #[arg(long)]
        no_trunc: bool,
        /// table, json, or a template with docker's `{{.Field}}` of the
        /// `inspect` object ("{{.Name}} {{.Pid}}"; `{{.ExitCode}}` is
        /// `exit_code`), one line per container.
        #[arg(long, value_name = "FORMAT", default_value = "table", value_parser = parse_output)]
        format: Output,
    },
    /// Show containers as a JSON array, as docker does.
    Inspect {
        /// json, or a template with docker's `{{.Field}}` (one line per
        /// container).
        #[arg(short, long, value_name = "FORMAT", default_value = "json", value_parser = parse_output)]
        format: Output,
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Print a container's log.
    Logs {
        /// Keep printing new lines until the container exits.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines ("all": every line).
        #[arg(short = 'n', long, value_name = "N", value_parser = parse_tail)]
        tail: Option<Tail>,
        /// Only lines since a time: RFC 3339 (2026-11-27T10:00:00Z) or a
        /// duration ago (10s, 5m, 2h).
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<i64>,
        /// Start each line with the time it was written (RFC 3339, UTC,
        /// nanoseconds).
        #[arg(short, long)]
        timestamps: bool,
        /// Container name.
        name: String,
    },
    /// Create a container without starting it (`start` runs it).
    Create(CreateArgs),
    /// Freeze every process of containers.
    Pause {
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Thaw paused containers.
    Unpause {
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Give a container a new name (its log and cgroup keep theirs; it may
    /// be running).
    Rename {
        /// Container name (or a unique prefix of it).
        name: String,
        /// The new name.
        new_name: String,
    },
    /// Show a container's processes.
    Top {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Container name.
        name: String,
    },
    /// Change the limits of a running container.
    Update {
        /// Memory limit (bytes, or with a k, m or g suffix).
        #[arg(short, long, value_name = "BYTES", value_parser = parse_memory)]
        memory: Option<u64>,
        /// CPUs, as a fraction (1.5).
        #[arg(long, value_name = "N", value_parser = parse_cpus)]
        cpus: Option<u64>,
        /// Most processes (-1: no limit).
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        pids_limit: Option<i64>,
        /// Container name.
        name: String,
    },
    /// Stop containers, then start them again.
    Restart {
        /// Seconds before SIGKILL [default: the container's --stop-timeout,
        /// else 10].
        #[arg(short = 't', long = "time", value_name = "SECS")]
        time: Option<u32>,
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Show contctl's and contd's versions and protocols.
    Version {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// About contd.
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
    /// Print a shell completion script: `source <(contctl completion bash)`,
    /// or save it where your shell loads completions from.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (`man`) and exit; packaging uses it.
    #[command(hide = true)]
    Generate {
        /// What to print.
        #[arg(value_parser = ["man"])]
        what: String,
    },
    /// Print events as they happen (created, started, exited, oom, paused,
    /// resumed, restarting, removed, adopted, monitor-lost).
    Events {
        /// Only events of this type (repeatable), or `name=N`, `type=T`.
        #[arg(long, value_name = "FILTER")]
        filter: Vec<String>,
        /// Start with one event per container telling its current state.
        #[arg(long)]
        replay: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Stop containers: their stop signal (SIGTERM), then SIGKILL after a
    /// grace period.
    Stop {
        /// Seconds before SIGKILL [default: the container's --stop-timeout,
        /// else 10].
        #[arg(short = 't', long = "time", value_name = "SECS")]
        time: Option<u32>,
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Start created containers, or run exited ones again.
    Start {
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Send a signal to containers' init.
    Kill {
        /// Signal: a number, or a name such as TERM or SIGKILL.
        #[arg(short, long, value_name = "SIG", default_value = "KILL", value_parser = parse_signal)]
        signal: i32,
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Wait for containers to exit and print their exit codes.
    Wait {
        /// Container names (or unique prefixes of them).
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Attach to a running container's terminal or output; the detach keys
    /// (ctrl-p,ctrl-q) leave it running.
    Attach {
        /// Do not send stdin.
        #[arg(long)]
        no_stdin: bool,
        /// Detach keys, docker's syntax ("ctrl-p,ctrl-q"; "" for none).
        #[arg(long, value_name = "KEYS", value_parser = interactive::parse_detach_keys)]
        detach_keys: Option<interactive::DetachKeys>,
        /// Container name.
        name: String,
    },
    /// Run a command in a running container; exits with its code.
    Exec(ExecArgs),
    /// Show containers' resource usage live: CPU %, memory usage and
    /// limit, processes (ctrl-c ends it).
    Stats {
        /// Print once and exit (CPU % over half a second).
        #[arg(long)]
        no_stream: bool,
        /// Output format (json: an array per round).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Containers (or unique prefixes) [default: every running one].
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
}

/// `system` subcommands.
#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// contd's version, socket, protocol, and its namespaces with how many
    /// containers each holds, by status.
    Info {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Options of `exec`.
#[derive(Debug, Args)]
struct ExecArgs {
    /// Keep stdin open and send it to the process.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Start it and return.
    #[arg(short, long)]
    detach: bool,
    /// Set an environment variable (repeatable).
    #[arg(short, long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<String>,
    /// User as UID[:GID].
    #[arg(short, long, value_name = "UID[:GID]", value_parser = parse_user)]
    user: Option<(u32, u32)>,
    /// Working directory.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// Container name.
    name: String,
    /// Command and arguments.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true
    )]
    command: Vec<String>,
}

/// Options of `run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Print the container's name and return without waiting for it.
    #[arg(short, long)]
    detach: bool,

    /// Remove the container once it has exited (contd does it, also if
    /// contctl is gone by then).
    #[arg(long)]
    rm: bool,

    /// Pass the signals contctl receives (INT, TERM, HUP, QUIT, USR1, USR2)
    /// on to the container; `--sig-proxy=false` to keep them.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,

    /// Detach keys for `-it`, docker's syntax ("ctrl-p,ctrl-q"; "" for none).
    #[arg(long, value_name = "KEYS", value_parser = interactive::parse_detach_keys)]
    detach_keys: Option<interactive::DetachKeys>,

    #[command(flatten)]
    create: CreateArgs,
}

/// Options of `create` (and `run`).
#[derive(Debug, Args)]
struct CreateArgs {
    /// Container name [default: c- and 8 random hex digits].
    #[arg(long, value_name = "N")]
    name: Option<String>,

    /// Set an environment variable in the container (repeatable).
    #[arg(short, long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<String>,

    /// Memory limit in bytes, or with a k, m or g suffix (1024-based).
    #[arg(short, long, value_name = "BYTES", value_parser = parse_memory)]
    memory: Option<u64>,

    /// The signal `stop` sends first [default: TERM].
    #[arg(long, value_name = "SIG", value_parser = parse_signal)]
    stop_signal: Option<i32>,

    /// Seconds `stop` waits before SIGKILL [default: 10].
    #[arg(long, value_name = "SECS")]
    stop_timeout: Option<u32>,

    /// Run an init as pid 1 that reaps zombies and passes signals on to
    /// the command (contd's own; nothing is added to the rootfs).
    #[arg(long)]
    init: bool,

    /// Read environment variables from a file: KEY=VALUE lines, or KEY for
    /// contctl's own value; # starts a comment (repeatable; -e wins).
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,

    /// Keep stdin open and attach it.
    #[arg(short, long)]
    interactive: bool,

    /// Give the container a terminal.
    #[arg(short, long)]
    tty: bool,

    /// Restart policy: no, on-failure[:N], always, unless-stopped.
    #[arg(long, value_name = "POLICY", value_parser = RestartPolicy::parse, default_value = "no")]
    restart: RestartPolicy,

    /// Bind mount SRC:DST[:ro|rw] (SRC an absolute host path).
    #[arg(short, long = "volume", value_name = "SRC:DST[:ro]", value_parser = parse_volume)]
    volume: Vec<Mount>,

    /// A mount, docker's syntax: type=bind,source=S,target=T[,readonly]
    /// [,bind-propagation=P] or type=tmpfs,target=T[,tmpfs-size=SIZE].
    #[arg(long, value_name = "SPEC", value_parser = parse_mount)]
    mount: Vec<Mount>,

    /// A tmpfs at DST[:size=SIZE].
    #[arg(long, value_name = "DST[:size=SIZE]", value_parser = parse_tmpfs)]
    tmpfs: Vec<Mount>,

    /// CPUs, as a fraction (1.5).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    cpus: Option<u64>,

    /// Most processes (-1: no limit).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pids_limit: Option<i64>,

    /// Mount the root filesystem read-only.
    #[arg(long)]
    read_only: bool,

    /// Add a capability (NET_ADMIN, or ALL).
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,

    /// Drop a capability (NET_RAW, or ALL).
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,

    /// Network namespace: none (a private one, the default), a name under
    /// /var/run/netns, or a path.
    #[arg(long, value_name = "NAME|PATH")]
    network: Option<String>,

    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,

    /// User: UID[:GID] or a name of the container's /etc/passwd.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,

    /// Hostname (default: the container name).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,

    /// A command line put before CMD (split as a shell would).
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,

    /// A label KEY=VALUE (repeatable).
    #[arg(short, long, value_name = "K=V", value_parser = parse_label)]
    label: Vec<(String, String)>,

    /// Root filesystem directory (contd runs a directory, not an image).
    rootfs: PathBuf,

    /// Command to run and its arguments [default: sh].
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

/// `--format` of `ps` and `inspect`: a table, JSON, or a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Output {
    Table,
    Json,
    Template(String),
}

fn parse_output(s: &str) -> Result<Output, String> {
    match s {
        "table" => Ok(Output::Table),
        "json" => Ok(Output::Json),
        t if t.contains("{{") => {
            output::check_template(t)?;
            Ok(Output::Template(t.to_string()))
        }
        _ => Err("table, json, or a template such as \"{{.Name}} {{.Status}}\"".into()),
    }
}

/// Output formats of `events`, `stats`, `top`, `version` and `system info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned columns, or lines.
    Table,
    /// JSON.
    Json,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version land here too, on stdout, and are not
            // failures; usage errors exit like every other own error.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_OWN_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(io::stderr(), "contctl: {err:#}");
            ExitCode::from(exit_code_of(&err))
        }
    }
}

/// docker's codes for an error: 127 the container's command was not
/// found, 126 it cannot be executed, 125 anything else of ours or contd's.
fn exit_code_of(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<proto::ErrorReply>().map(|e| e.kind) {
        Some(proto::ErrorKind::CommandNotFound) => 127,
        Some(proto::ErrorKind::NotExecutable) => 126,
        _ => EXIT_OWN_ERROR,
    }
}

/// Checks names, connects, and runs the command.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    check_names(&cli)?;
    let socket = socket_path(cli.socket);
    let ns = cli.ns;
    match cli.command {
        Command::Completion { shell } => {
            use clap::CommandFactory;
            // Into a buffer: clap_complete panics on a write error (a
            // closed pipe); output::print takes that as the end.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "contctl", &mut script);
            output::print(&String::from_utf8_lossy(&script))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate { .. } => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run_container(&socket, ns, args),
        Command::Version { format } => version(&socket, format),
        Command::System {
            command: SystemCommand::Info { format },
        } => system_info(&socket, format),
        Command::Restart { time, names } => {
            let time = stop_time(&socket, time)?;
            for_each_name(&socket, names, |client, name| {
                named(client, &ns, name, |ns, name| stop_request(ns, name, time))?;
                named(client, &ns, name, |ns, name| Request::Start { ns, name })?;
                output::print(&format!("{name}\n"))
            })
        }
        Command::Create(args) => {
            let mut client = Client::connect(&socket)?;
            let stop = (args.stop_signal, args.stop_timeout);
            let init = args.init;
            let (config, name) = container_config(ns, args, false)?;
            match client.request(&create_request(config, false, stop, init))? {
                Response::Details(_) => {}
                other => return Err(unexpected(&other)),
            }
            output::print(&format!("{name}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause { names } => {
            each_name(&socket, &ns, names, |ns, name| Request::Pause { ns, name })
        }
        Command::Unpause { names } => {
            each_name(&socket, &ns, names, |ns, name| Request::Resume { ns, name })
        }
        Command::Rename { name, new_name } => {
            let name = resolve(&socket, &ns, &name)?;
            let req = Request::Rename { ns, name, new_name };
            match Client::connect(&socket)?.request(&req)? {
                Response::Ok => Ok(ExitCode::SUCCESS),
                other => Err(unexpected(&other)),
            }
        }
        Command::Top { name, format } => {
            let name = resolve(&socket, &ns, &name)?;
            match Client::connect(&socket)?.request(&Request::Top { ns, name })? {
                Response::Processes(list) => output::print(&match format {
                    Format::Table => output::top(&list),
                    Format::Json => output::pretty(&serde_json::to_value(&list)?)?,
                })?,
                other => return Err(unexpected(&other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Update {
            memory,
            cpus,
            pids_limit,
            name,
        } => {
            let name = resolve(&socket, &ns, &name)?;
            let req = Request::Update {
                ns,
                name: name.clone(),
                resources: proto::Resources {
                    memory,
                    nano_cpus: cpus,
                    pids_limit,
                    ..Default::default()
                },
            };
            ok_then_print(&socket, &req, &name)
        }
        Command::Events {
            filter,
            replay,
            format,
        } => events(&socket, ns, filter, replay, format),
        Command::Ps {
            all,
            quiet,
            filter,
            no_trunc,
            format,
        } => ps(
            &socket,
            ns,
            all || !filter.is_empty(),
            quiet,
            &filter,
            no_trunc,
            &format,
        ),
        Command::Inspect { names, format } => inspect(&socket, &ns, names, &format),
        Command::Logs {
            follow,
            tail,
            since,
            timestamps,
            name,
        } => {
            let name = resolve(&socket, &ns, &name)?;
            let options = LogOptions {
                tail: tail.and_then(|t| t.0),
                since,
                follow,
            };
            let mut client = Client::connect(&socket)?;
            stream_logs(&mut client, ns, name, options, timestamps)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop { time, names } => {
            let time = stop_time(&socket, time)?;
            each_name(&socket, &ns, names, |ns, name| stop_request(ns, name, time))
        }
        Command::Rm { force, names } => each_name(&socket, &ns, names, |ns, name| {
            Request::Remove { ns, name, force }
        }),
        Command::Start { names } => {
            each_name(&socket, &ns, names, |ns, name| Request::Start { ns, name })
        }
        Command::Kill { signal, names } => each_name(&socket, &ns, names, |ns, name| {
            Request::Kill { ns, name, signal }
        }),
        Command::Wait { names } => for_each_name(&socket, names, |client, name| {
            match named(client, &ns, name, |ns, name| Request::Wait { ns, name })? {
                Response::Exited(record) => output::print(&format!("{}\n", record.code)),
                other => Err(unexpected(&other)),
            }
        }),
        Command::Attach {
            no_stdin,
            detach_keys,
            name,
        } => {
            let name = resolve(&socket, &ns, &name)?;
            let detach_keys = detach_keys.map(|k| k.0);
            let mut client = Client::connect(&socket)?;
            let req = Request::Attach {
                ns: ns.clone(),
                name: name.clone(),
                stdin: !no_stdin,
                detach_keys: detach_keys.clone(),
            };
            match client.request(&req)? {
                Response::Ok => {}
                other => return Err(unexpected(&other)),
            }
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
            if tty {
                // A terminal container takes our size; another answers
                // the resize with an error nobody needs to see.
                interactive::follow_window(socket.clone(), ns.clone(), name.clone())?;
            }
            let again = interactive::Reattach {
                socket: socket.clone(),
                ns,
                name,
                detach_keys,
            };
            interactive::attach_session(&mut client, !no_stdin, tty, false, Some(again))
        }
        Command::Exec(mut a) => {
            a.name = resolve(&socket, &ns, &a.name)?;
            exec(&socket, ns, a)
        }
        Command::Stats {
            no_stream,
            format,
            names,
        } => stats(&socket, &ns, names, no_stream, format),
    }
}

fn exec(socket: &Path, ns: String, a: ExecArgs) -> anyhow::Result<ExitCode> {
    let tty = a.tty.then(|| interactive::term_size().unwrap_or((24, 80)));
    let req = Request::Exec {
        ns,
        name: a.name,
        exec: proto::monitor::ExecRequest {
            args: a.command,
            env: a.env,
            cwd: a.workdir,
            user: a.user,
            tty,
            stdin: a.interactive,
        },
    };
    let mut client = Client::connect(socket)?;
    let id = match client.request(&req)? {
        Response::ExecStarted { id, pid } => {
            if a.detach {
                output::print(&format!("{pid}\n"))?;
                return Ok(ExitCode::SUCCESS);
            }
            id
        }
        other => return Err(unexpected(&other)),
    };
    interactive::exec_session(&mut client, id, a.interactive, a.tty)
}

fn parse_user(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').unwrap_or((s, "0"));
    let uid = u
        .parse()
        .map_err(|_| format!("uid {u:?} is not a number"))?;
    let gid = g
        .parse()
        .map_err(|_| format!("gid {g:?} is not a number"))?;
    Ok((uid, gid))
}

/// Checks every namespace and container name on the command line, so a bad
/// one is refused before contctl connects to anything.
///
/// # Errors
/// The first invalid name.
fn check_names(cli: &Cli) -> Result<(), NameError> {
    validate_name("namespace", &cli.ns)?;
    let name = match &cli.command {
        Command::Run(args) => args.create.name.as_deref(),
        Command::Create(args) => args.name.as_deref(),
        Command::Events { .. }
        | Command::Generate { .. }
        | Command::Completion { .. }
        | Command::Version { .. }
        | Command::System { .. } => None,
        Command::Restart { names, .. } => {
            for n in names {
                validate_name("name", n)?;
            }
            None
        }
        Command::Top { name, .. } | Command::Update { name, .. } => Some(name.as_str()),
        Command::Rename { name, new_name } => {
            validate_name("name", new_name)?;
            Some(name.as_str())
        }
        Command::Ps { .. } => None,
        Command::Pause { names }
        | Command::Unpause { names }
        | Command::Inspect { names, .. }
        | Command::Stop { names, .. }
        | Command::Rm { names, .. }
        | Command::Start { names }
        | Command::Kill { names, .. }
        | Command::Wait { names } => {
            for n in names {
                validate_name("name", n)?;
            }
            None
        }
        Command::Stats { names, .. } => {
            for n in names {
                validate_name("name", n)?;
            }
            None
        }
        Command::Logs { name, .. } | Command::Attach { name, .. } => Some(name.as_str()),
        Command::Exec(a) => Some(a.name.as_str()),
    };
    match name {
        Some(n) => validate_name("name", n),
        None => Ok(()),
    }
}

/// The socket to use: `--socket`, else a non-empty [`SOCKET_ENV`], else
/// [`DEFAULT_SOCKET`].
fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os(SOCKET_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// The create request: the one every contd knows, or with lifecycle
/// options (`--rm`, `--stop-signal`, `--stop-timeout`: protocol 6;
/// `--init`: protocol 7).
fn create_request(
    config: ContainerConfig,
    auto_remove: bool,
    (stop_signal, stop_timeout): (Option<i32>, Option<u32>),
    init: bool,
) -> Request {
    let options = proto::api::RunOptions {
        auto_remove,
        stop_signal,
        stop_timeout,
    };
    if init {
        Request::CreateContainerWithInit {
            config,
            options,
            init,
        }
    } else if options != proto::api::RunOptions::default() {
        Request::CreateContainerWith { config, options }
    } else {
        Request::CreateContainer(config)
    }
}

/// The create request of `run`/`create`; returns it and the name.
fn container_config(
    ns: String,
    args: CreateArgs,
    start: bool,
) -> anyhow::Result<(ContainerConfig, String)> {
    let name = args.name.unwrap_or_else(random_name);
    // The server checks that the directory exists; we only anchor it to our
    // working directory, which the server does not share.
    let rootfs = std::path::absolute(&args.rootfs)
        .with_context(|| format!("resolve rootfs {}", args.rootfs.display()))?
        .into_os_string()
        .into_string()
        .map_err(|p| anyhow!("rootfs {} is not valid UTF-8", Path::new(&p).display()))?;
    let mut mounts = args.volume;
    mounts.extend(args.mount);
    mounts.extend(args.tmpfs);
    let config = ContainerConfig {
        ns,
        name: name.clone(),
        rootfs,
        entrypoint: args.entrypoint,
        args: args.command,
        env: {
            let mut env = Vec::new();
            for f in &args.env_file {
                env.extend(read_env_file(f)?);
            }
            env.extend(args.env);
            host_env(env)
        },
        cwd: args.workdir,
        user: args.user,
        hostname: args.hostname,
        resources: proto::Resources {
            memory: args.memory,
            nano_cpus: args.cpus,
            pids_limit: args.pids_limit,
            ..Default::default()
        },
        network: args.network,
        mounts,
        read_only: args.read_only,
        cap_add: args.cap_add,
        cap_drop: args.cap_drop,
        labels: args.label,
        restart: args.restart,
        interactive: proto::api::Interactive {
            tty: args
                .tty
                .then(|| interactive::term_size().unwrap_or((24, 80))),
            stdin: args.interactive,
        },
        oci_config: None,
        start,
    };
    Ok((config, name))
}

/// `run`: create and start; unless detached, attached before the start (no
/// output is missed), its output streamed as it comes, stdin forwarded with
/// `-i` (its end closes the container's), signals passed on; contctl exits
/// with the container's code.
fn run_container(socket: &Path, ns: String, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (stdin, tty) = (args.create.interactive, args.create.tty);
    let stop = (args.create.stop_signal, args.create.stop_timeout);
    let init = args.create.init;
    let (config, name) = container_config(ns.clone(), args.create, args.detach)?;
    let mut client = Client::connect(socket)?;
    match client.request(&create_request(config, args.rm, stop, init))? {
        Response::Details(_) => {}
        other => return Err(unexpected(&other)),
    }
    if args.detach {
        output::print(&format!("{name}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let detach_keys = args.detach_keys.map(|k| k.0);
    let mut att = Client::connect(socket)?;
    let req = Request::Attach {
        ns: ns.clone(),
        name: name.clone(),
        stdin,
        detach_keys: detach_keys.clone(),
    };
    match att.request(&req)? {
        Response::Ok => {}
        other => return Err(unexpected(&other)),
    }
    match client.request(&Request::Start {
        ns: ns.clone(),
        name: name.clone(),
    })? {
        Response::Ok => {}
        other => return Err(unexpected(&other)),
    }
    if tty {
        interactive::follow_window(socket.to_path_buf(), ns.clone(), name.clone())?;
    }
    if args.sig_proxy {
        interactive::proxy_signals(socket.to_path_buf(), ns.clone(), name.clone())?;
    }
    let again = interactive::Reattach {
        socket: socket.to_path_buf(),
        ns,
        name,
        detach_keys,
    };
    interactive::attach_session(&mut att, stdin, tty, stdin && !tty, Some(again))
}

/// `events`: prints events until contd ends the stream.
fn events(
    socket: &Path,
    ns: String,
    filters: Vec<String>,
    replay: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut filter = EventFilter {
        ns: Some(ns),
        replay,
        ..Default::default()
    };
    for f in filters {
        match f.split_once('=') {
            Some(("name" | "container", n)) => filter.name = Some(n.to_string()),
            Some(("type" | "event", t)) => filter.kinds.push(t.to_string()),
            None => filter.kinds.push(f),
            Some((k, _)) => anyhow::bail!("--filter {k}: use name=N or type=T"),
        }
    }
    let mut client = Client::connect(socket)?;
    let mut resp = client.request(&Request::Events(filter))?;
    loop {
        match resp {
            Response::Event(e) => {
                let line = match format {
                    Format::Json => format!("{}\n", output::event_json(&e)),
                    Format::Table => output::event_line(&e),
                };
                output::print(&line)?;
            }
            other => return Err(unexpected(&other)),
        }
        resp = match client.next_response() {
            Ok(r) => r,
            // contd went away: the stream is over.
            Err(_) => return Ok(ExitCode::SUCCESS),
        };
    }
}

/// `ps`: list, filter, newest first, print.
fn ps(
    socket: &Path,
    ns: String,
    all: bool,
    quiet: bool,
    filters: &[(String, String)],
    no_trunc: bool,
    format: &Output,
) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(socket)?;
    let mut list = match client.request(&Request::ListDetails {
        ns: Some(ns.clone()),
    })? {
        Response::DetailsList(v) => v,
        other => return Err(unexpected(&other)),
    };
    if list.is_empty() {
        empty_namespace_hint(&mut client, &ns);
    }
    if !all {
        list.retain(|i| i.status != Status::Exited);
    }
    list.retain(|i| ps_matches(i, filters));
    list.sort_by(|a, b| (b.created_at, &b.name).cmp(&(a.created_at, &a.name)));
    let text = match format {
        _ if quiet => list.iter().map(|i| format!("{}\n", i.name)).collect(),
        Output::Table => output::table(&list, proto::time::now_nanos(), no_trunc),
        Output::Json => output::json_list(&list)?,
        Output::Template(t) => {
            let mut text = String::new();
            for i in &list {
                text.push_str(&output::render(t, &output::info_json(i))?);
                text.push('\n');
            }
            text
        }
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// A namespace with no container at all is often a typo of `--ns`: says
/// so on stderr (stdout keeps the empty listing), naming the namespaces
/// that hold containers.
fn empty_namespace_hint(client: &mut Client, ns: &str) {
    if !client.speaks(&Request::Namespaces) {
        return;
    }
    if let Ok(Response::Namespaces(all)) = client.request(&Request::Namespaces) {
        if !all.iter().any(|n| n == ns) && !all.is_empty() {
            eprintln!(
                "contctl: namespace {ns:?} holds no containers; these do: {} (--ns NS)",
                all.join(", ")
            );
        }
    }
}

/// `--filter KEY=VALUE` of `ps`.
fn parse_ps_filter(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k @ ("name" | "status" | "label"), v)) if !v.is_empty() => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err("expected name=SUBSTRING, status=STATUS or label=KEY[=VALUE]".into()),
    }
}

/// Whether a container passes `ps`'s filters: per key any value, every key.
fn ps_matches(i: &proto::api::ContainerDetails, filters: &[(String, String)]) -> bool {
    let one = |k: &str, v: &str| match k {
        "name" => i.name.contains(v),
        "status" => i.status.as_str() == v,
        _ => match v.split_once('=') {
            Some((lk, lv)) => i.config.labels.iter().any(|(a, b)| a == lk && b == lv),
            None => i.config.labels.iter().any(|(a, _)| a == v),
        },
    };
    ["name", "status", "label"].iter().all(|k| {
        let mut of_key = filters.iter().filter(|(fk, _)| fk == k).peekable();
        of_key.peek().is_none() || of_key.any(|(_, v)| one(k, v))
    })
}

/// Sends a request answered by `Ok`, then prints the container's name.
fn ok_then_print(socket: &Path, req: &Request, name: &str) -> anyhow::Result<ExitCode> {
    match Client::connect(socket)?.request(req)? {
        Response::Ok => {}
        other => return Err(unexpected(&other)),
    }
    output::print(&format!("{name}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `-t` as the contd at `socket` can take it: a contd before protocol 6
/// knows no container stop timeout, so none given is its 10 s.
fn stop_time(socket: &Path, time: Option<u32>) -> anyhow::Result<Option<u32>> {
    let with = Request::StopWith {
        ns: String::new(),
        name: String::new(),
        timeout_secs: None,
    };
    Ok(match time {
        None if !Client::connect(socket)?.speaks(&with) => Some(10),
        t => t,
    })
}

/// `stop`'s request: with `-t`, the one every contd knows; without, the
/// container's own stop timeout (protocol 6, see [`stop_time`]).
fn stop_request(ns: String, name: String, time: Option<u32>) -> Request {
    match time {
        Some(t) => Request::Stop {
            ns,
            name,
            timeout_secs: t,
        },
        None => Request::StopWith {
            ns,
            name,
            timeout_secs: None,
        },
    }
}

/// `make`'s request for each of `names`, answered by `Ok`: each name that
/// succeeded is printed, each failure goes to stderr, and the others are
/// still tried (docker's `rm -f a b c`); 125 if any failed.
fn each_name(
    socket: &Path,
    ns: &str,
    names: Vec<String>,
    make: impl Fn(String, String) -> Request,
) -> anyhow::Result<ExitCode> {
    for_each_name(socket, names, |client, name| {
        match named(client, ns, name, &make)? {
            Response::Ok => output::print(&format!("{name}\n")),
            other => Err(unexpected(&other)),
        }
    })
}

/// `each` for every one of `names` on one connection: a failure goes to
/// stderr and the others are still done; 125 if any failed.
fn for_each_name(
    socket: &Path,
    names: Vec<String>,
    mut each: impl FnMut(&mut Client, &str) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(socket)?;
    let mut failed = false;
    for name in names {
        if let Err(e) = each(&mut client, &name) {
            failed = true;
            let _ = writeln!(io::stderr(), "contctl: {e:#}");
        }
    }
    Ok(if failed {
        ExitCode::from(EXIT_OWN_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// `make`'s request for container `name`; if no container has that name,
/// for the one whose name it is a unique prefix of (as docker takes id
/// prefixes).
fn named(
    client: &mut Client,
    ns: &str,
    name: &str,
    make: impl Fn(String, String) -> Request,
) -> anyhow::Result<Response> {
    match client.request(&make(ns.to_string(), name.to_string())) {
        Err(e) if is_not_found(&e) => {
            // None: the server's own "no container" answer stands.
            let full = match resolve_prefix(client, ns, name)? {
                Some(full) => full,
                None => return Err(e),
            };
            client.request(&make(ns.to_string(), full))
        }
        r => r,
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<proto::ErrorReply>()
        .is_some_and(|r| r.kind == proto::ErrorKind::NotFound)
}

/// The one container name of `ns` that starts with `prefix` (`None`: no
/// name does).
///
/// # Errors
/// Several do (the error names them).
fn resolve_prefix(client: &mut Client, ns: &str, prefix: &str) -> anyhow::Result<Option<String>> {
    let list = match client.request(&Request::ListDetails {
        ns: Some(ns.to_string()),
    })? {
        Response::DetailsList(v) => v,
        other => return Err(unexpected(&other)),
    };
    let mut found: Vec<String> = list
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(Some(found.remove(0))),
        0 => Ok(None),
        _ => anyhow::bail!(
            "{prefix:?} names several containers ({}): give more of the name",
            found.join(", ")
        ),
    }
}

/// The full name for `name` (itself, or the name it is a unique prefix of).
fn resolve(socket: &Path, ns: &str, name: &str) -> anyhow::Result<String> {
    let mut client = Client::connect(socket)?;
    match named(&mut client, ns, name, |ns, name| Request::Details {
        ns,
        name,
    })? {
        Response::Details(d) => Ok(d.name),
        other => Err(unexpected(&other)),
    }
}

/// `stats`: samples every container, then again every second (half a
/// second for `--no-stream`, which prints once); CPU % is the CPU time used
/// between two samples over the wall time between them (100 % = one CPU).
fn stats(
    socket: &Path,
    ns: &str,
    names: Vec<String>,
    no_stream: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(socket)?;
    let names: Vec<String> = if names.is_empty() {
        match client.request(&Request::ListDetails {
            ns: Some(ns.to_string()),
        })? {
            Response::DetailsList(v) => v
                .into_iter()
                .filter(|d| d.status == Status::Running)
                .map(|d| d.name)
                .collect(),
            other => return Err(unexpected(&other)),
        }
    } else {
        let mut full = Vec::new();
        for n in names {
            match named(&mut client, ns, &n, |ns, name| Request::Details {
                ns,
                name,
            })? {
                Response::Details(d) => full.push(d.name),
                other => return Err(unexpected(&other)),
            }
        }
        full
    };
    let sample = |client: &mut Client| -> anyhow::Result<Vec<proto::api::Stats>> {
        let mut v = Vec::with_capacity(names.len());
        for name in &names {
            let req = Request::Stats {
                ns: ns.to_string(),
                name: name.clone(),
            };
            match client
                .request(&req)
                .with_context(|| format!("stats of {name}"))?
            {
                Response::Stats(st) => v.push(st),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(v)
    };
    let clear =
        !no_stream && format == Format::Table && std::io::IsTerminal::is_terminal(&io::stdout());
    let mut prev = sample(&mut client)?;
    let mut at = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(if no_stream {
            500
        } else {
            1000
        }));
        let cur = sample(&mut client)?;
        let wall = at.elapsed().as_nanos().max(1) as f64;
        at = std::time::Instant::now();
        let rows: Vec<output::StatsRow> = names
            .iter()
            .zip(prev.iter().zip(&cur))
            .map(|(name, (p, c))| output::StatsRow {
                name: name.clone(),
                cpu_percent: c.cpu_usage_ns.saturating_sub(p.cpu_usage_ns) as f64 / wall * 100.0,
                stats: c.clone(),
            })
            .collect();
        let text = match format {
            Format::Table => output::stats_table(&rows),
            Format::Json => format!("{}\n", output::stats_json(&rows)),
        };
        if clear {
            // Home and clear, on a terminal only.
            output::print("\x1b[H\x1b[2J")?;
        }
        output::print(&text)?;
        if no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        prev = cur;
    }
}

/// `version`: ours, then contd's (or why it cannot be reached).
fn version(socket: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let client_line = format!(
        "Client: contctl {} (protocol {})\n",
        env!("CARGO_PKG_VERSION"),
        proto::PROTOCOL_VERSION
    );
    if format == Format::Table {
        // The client's half even when contd cannot be reached, as docker.
        output::print(&client_line)?;
    }
    let client = Client::connect(socket)?;
    let (server, protocol) = client.server();
    output::print(&match format {
        Format::Table => format!("Server: {server} (protocol {protocol} agreed)\n"),
        Format::Json => output::pretty(&serde_json::json!({
            "client": {
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": proto::PROTOCOL_VERSION,
            },
            "server": { "version": server, "protocol": protocol },
        }))?,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `system info`: contd's version and socket, its namespaces and their
/// containers by status.
fn system_info(socket: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(socket)?;
    let all = match client.request(&Request::ListDetails { ns: None })? {
        Response::DetailsList(v) => v,
        other => return Err(unexpected(&other)),
    };
    let (server, protocol) = client.server();
    let mut per_ns: std::collections::BTreeMap<&str, std::collections::BTreeMap<&str, u32>> =
        std::collections::BTreeMap::new();
    for d in &all {
        *per_ns
            .entry(d.ns.as_str())
            .or_default()
            .entry(d.status.as_str())
            .or_default() += 1;
    }
    let text = match format {
        Format::Json => {
            let v = serde_json::json!({
                "server": server,
                "protocol": protocol,
                "socket": socket.display().to_string(),
                "containers": all.len(),
                "namespaces": per_ns,
            });
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        Format::Table => {
            let mut t = format!(
                "Server: {server}\nProtocol: {protocol}\nSocket: {}\nContainers: {}\nNamespaces:\n",
                socket.display(),
                all.len()
            );
            if per_ns.is_empty() {
                t.push_str("  (none)\n");
            }
            for (ns, counts) in &per_ns {
                let by: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                t.push_str(&format!("  {ns}: {}\n", by.join(", ")));
            }
            t
        }
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `inspect`: a JSON array of the containers, as docker prints it.
fn inspect(
    socket: &Path,
    ns: &str,
    names: Vec<String>,
    format: &Output,
) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(socket)?;
    let mut all = Vec::new();
    let mut failed = false;
    for name in names {
        let info = match named(&mut client, ns, &name, |ns, name| Request::Details {
            ns,
            name,
        }) {
            Ok(Response::Details(info)) => info,
            Ok(other) => return Err(unexpected(&other)),
            Err(e) => {
                failed = true;
                let _ = writeln!(io::stderr(), "contctl: {e:#}");
                continue;
            }
        };
        let mut v = output::info_json(&info);
        // The log writer's health: null where contd or the container's
        // monitor is too old to tell (protocol < 3).
        let log_req = Request::LogStatus {
            ns: ns.to_string(),
            name: info.name.clone(),
        };
        let log = if client.speaks(&log_req) {
            match client.request(&log_req) {
                Ok(Response::LogStatus(st)) => Some(st),
                _ => None,
            }
        } else {
            None
        };
        v["log"] = output::log_status_json(log.as_ref());
        all.push(v);
    }
    match format {
        Output::Template(t) => {
            for v in &all {
                output::print(&format!("{}\n", output::render(t, v)?))?;
            }
        }
        _ => output::print(&output::pretty(&serde_json::Value::Array(all))?)?,
    }
    Ok(if failed {
        ExitCode::from(EXIT_OWN_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// Copies the container's log to our stdout and stderr, chunk by chunk,
/// until contd ends the stream or our reader goes away.
fn stream_logs(
    client: &mut Client,
    ns: String,
    name: String,
    options: LogOptions,
    timestamps: bool,
) -> anyhow::Result<()> {
    let req = if timestamps {
        Request::LogsTimed { ns, name, options }
    } else if options == LogOptions::default() {
        Request::Logs { ns, name }
    } else {
        Request::LogsWith { ns, name, options }
    };
    let mut resp = client.request(&req)?;
    loop {
        let written = match resp {
            Response::LogData { stream, data } => output::write_log(stream, &data),
            Response::LogLine { stream, time, data } => {
                let mut line = proto::time::rfc3339_nanos(time).into_bytes();
                line.push(b' ');
                line.extend_from_slice(&data);
                output::write_log(stream, &line)
            }
            Response::LogEnd => return Ok(()),
            other => return Err(unexpected(&other)),
        };
        match written {
            Ok(()) => {}
            // Nobody reads any more: not an error, just the end.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(anyhow::Error::new(e).context("write log")),
        }
        resp = client.next_response()?;
    }
}

/// `c-` and 8 hex digits. `RandomState` is seeded randomly per process;
/// time and pid make names from one process differ too.
fn random_name() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_i64(proto::time::now_nanos());
    h.write_u32(std::process::id());
    format!("c-{:08x}", h.finish() & 0xffff_ffff)
}

/// Parses `--memory`: bytes, or a number with a k, m or g suffix
/// (1024-based, any case).
fn parse_memory(s: &str) -> Result<u64, String> {
    match proto::parse_size(s)? {
        0 => Err("must be more than 0".into()),
        n => Ok(n),
    }
}

/// Parses `--signal`: a number from 1 to 64, or a name with or without
/// `SIG`, in any case.
fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err("signal numbers go from 1 to 64".into())
        };
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|&(_, n)| n)
        .ok_or_else(|| {
            let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
            format!("unknown signal; use a number or one of {}", names.join(" "))
        })
}

/// `--tail`: a count, or `all` (`None`).
#[derive(Debug, Clone, Copy)]
struct Tail(Option<u64>);

fn parse_tail(s: &str) -> Result<Tail, String> {
    if s == "all" {
        return Ok(Tail(None));
    }
    s.parse()
        .map(|n| Tail(Some(n)))
        .map_err(|_| "expected a number of lines or all".into())
}

/// `--since`: RFC 3339, or a duration ago (`10s`, `5m`, `2h`, `1d`).
fn parse_since(s: &str) -> Result<i64, String> {
    if let Some(t) = proto::time::parse_rfc3339(s) {
        return Ok(t);
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match num.parse::<i64>() {
        Ok(n) if secs > 0 && n >= 0 => {
            Ok(proto::time::now_nanos() - n.saturating_mul(secs).saturating_mul(1_000_000_000))
        }
        _ => Err("expected RFC 3339 (2026-11-27T10:00:00Z) or a duration (10s, 5m, 2h)".into()),
    }
}

/// `--cpus`: a positive fraction, as billionths.
fn parse_cpus(s: &str) -> Result<u64, String> {
    match s.parse::<f64>() {
        Ok(c) if c > 0.0 && c.is_finite() && c < 1e6 => Ok((c * 1e9).round() as u64),
        _ => Err("expected a positive number of cpus (0.5, 2)".into()),
    }
}

/// `--label`: `KEY=VALUE` (a bare KEY has an empty value).
fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() {
        return Err("expected KEY=VALUE".into());
    }
    Ok((k.to_string(), v.to_string()))
}

fn bind(source: &str, target: &str, readonly: bool, propagation: Option<String>) -> Mount {
    Mount {
        kind: MountKind::Bind,
        source: source.into(),
        target: target.into(),
        readonly,
        propagation,
        size: None,
    }
}

/// `-v SRC:DST[:ro|rw]`.
fn parse_volume(s: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        _ => return Err("expected SRC:DST[:ro|rw]".into()),
    };
    if !src.starts_with('/') {
        return Err(format!(
            "source {src:?} must be an absolute path (contd has no named volumes)"
        ));
    }
    Ok(bind(src, dst, ro, None))
}

/// `--tmpfs DST[:size=SIZE]`.
fn parse_tmpfs(s: &str) -> Result<Mount, String> {
    let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
    let mut size = None;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => size = Some(parse_memory(v)?),
            _ => return Err(format!("tmpfs option {o:?}: only size=SIZE is known")),
        }
    }
    Ok(Mount {
        kind: MountKind::Tmpfs,
        source: String::new(),
        target: dst.into(),
        readonly: false,
        propagation: None,
        size,
    })
}

/// `--mount type=bind,source=S,target=T[,readonly][,bind-propagation=P]`
/// or `type=tmpfs,target=T[,tmpfs-size=SIZE]`.
fn parse_mount(s: &str) -> Result<Mount, String> {
    let (mut kind, mut src, mut dst, mut ro, mut prop, mut size) =
        (None, String::new(), None, false, None, None);
    for field in s.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => kind = Some(v.to_string()),
            "source" | "src" => src = v.to_string(),
            "target" | "destination" | "dst" => dst = Some(v.to_string()),
            "readonly" | "ro" => ro = v.is_empty() || v == "true" || v == "1",
            "bind-propagation" => prop = Some(v.to_string()),
            "tmpfs-size" => size = Some(parse_memory(v)?),
            _ => return Err(format!("unknown mount field {k:?}")),
        }
    }
    let dst = dst.ok_or("a mount needs target=")?;
    match kind.as_deref() {
        Some("bind") | None => Ok(bind(&src, &dst, ro, prop)),
        Some("tmpfs") => Ok(Mount {
            kind: MountKind::Tmpfs,
            source: String::new(),
            target: dst,
            readonly: ro,
            propagation: None,
            size,
        }),
        Some(t) => Err(format!("mount type {t:?}: bind or tmpfs")),
    }
}

/// Parses `--env`: `KEY=VALUE` with a non-empty key.
/// `-e KEY=VALUE`, or `-e KEY`: the value contctl's own environment has
/// (docker's rule; a KEY set nowhere is left out, see [`host_env`]).
fn parse_env(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(s.to_string()),
        None if !s.is_empty() => Ok(match std::env::var(s) {
            Ok(v) => format!("{s}={v}"),
            Err(_) => s.to_string(),
        }),
        _ => Err("expected KEY=VALUE or KEY".into()),
    }
}

/// `--env-file`: docker's format, each line as `-e` takes it.
fn read_env_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--env-file {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.trim_start()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            parse_env(l).map_err(|e| anyhow!("--env-file {} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// The `-e` entries to send: a bare KEY the host does not set is dropped.
fn host_env(env: Vec<String>) -> Vec<String> {
    env.into_iter().filter(|e| e.contains('=')).collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use proto::ExitRecord;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("contctl").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_verbatim() {
        let cli = parse(&[
            "--ns",
            "t1",
            "run",
            "-d",
            "--name",
            "web",
            "-e",
            "A=1",
            "--env",
            "B=x=y",
            "--memory",
            "64M",
            "rootfs",
            "sh",
            "-c",
            "echo --name -d",
        ]);
        assert_eq!(cli.ns, "t1");
        let Command::Run(r) = cli.command else {
            panic!("not run: {:?}", cli.command)
        };
        assert!(r.detach);
        assert_eq!(r.create.name.as_deref(), Some("web"));
        assert_eq!(r.create.env, ["A=1", "B=x=y"]);
        assert_eq!(r.create.memory, Some(64 << 20));
        assert_eq!(r.create.rootfs, Path::new("rootfs"));
        assert_eq!(r.create.command, ["sh", "-c", "echo --name -d"]);

        let Command::Run(r) = parse(&["run", "/r"]).command else {
            panic!("not run")
        };
        assert!(r.create.command.is_empty() && !r.detach && r.create.name.is_none());

        let Command::Run(r) = parse(&["run", "/r", "ls", "-l", "--name", "x"]).command else {
            panic!("not run")
        };
        assert_eq!(r.create.command, ["ls", "-l", "--name", "x"]);
        assert!(r.create.name.is_none());

        assert!(Cli::try_parse_from(["contctl", "run", "-e", "=x", "/r"]).is_err());
        // -e KEY: the host's value, or nothing if the host has none.
        std::env::set_var("CONTCTL_TEST_HOST_VAR", "from host");
        let Command::Run(r) = parse(&[
            "run",
            "-e",
            "CONTCTL_TEST_HOST_VAR",
            "-e",
            "CONTCTL_TEST_UNSET_VAR",
            "/r",
        ])
        .command
        else {
            panic!("not run")
        };
        assert_eq!(host_env(r.create.env), ["CONTCTL_TEST_HOST_VAR=from host"]);
    }

    #[test]
    fn other_commands_parse() {
        let Command::Stop { time, names } = parse(&["stop", "web", "db"]).command else {
            panic!("not stop")
        };
        assert_eq!(
            (time, names),
            (None, vec!["web".to_string(), "db".to_string()])
        );
        let Command::Kill { signal, .. } = parse(&["kill", "web"]).command else {
            panic!("not kill")
        };
        assert_eq!(signal, 9);
        let Command::Kill { signal, .. } = parse(&["kill", "-s", "sigterm", "web"]).command else {
            panic!("not kill")
        };
        assert_eq!(signal, 15);
        let Command::Ps {
            all,
            format,
            filter,
            ..
        } = parse(&["ps", "-a", "--format", "json", "-f", "status=running"]).command
        else {
            panic!("not ps")
        };
        assert!(all);
        assert_eq!(format, Output::Json);
        assert_eq!(filter, [("status".to_string(), "running".to_string())]);
        assert!(Cli::try_parse_from(["contctl", "ps", "--filter", "colour=red"]).is_err());
        let cli = parse(&["--socket", "/x.sock", "rm", "-f", "web"]);
        assert_eq!(socket_path(cli.socket), Path::new("/x.sock"));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("1000"), Ok(1000));
        assert_eq!(parse_memory("1k"), Ok(1024));
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert_eq!(parse_memory("64M"), Ok(64 << 20));
        assert_eq!(parse_memory("2G"), Ok(2 << 30));
        assert_eq!(parse_memory("64mb"), Ok(64 << 20));
        assert_eq!(parse_memory("1.5g"), Ok(3 << 29));
        for bad in ["", "m", "0", "0k", "-1", "+5", "1 m", "1e3", "1.2.3", "x"] {
            assert!(parse_memory(bad).is_err(), "{bad:?}");
        }
        assert!(parse_memory("99999999999999999g").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("64"), Ok(64));
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert_eq!(parse_signal("SIGKILL"), Ok(9));
        assert_eq!(parse_signal("sigHup"), Ok(1));
        assert_eq!(parse_signal("usr2"), Ok(12));
        assert_eq!(parse_signal("CONT"), Ok(18));
        assert_eq!(parse_signal("STOP"), Ok(19));
        for bad in ["0", "65", "-9", "", "SIG", "BOGUS", "SIGSIGTERM"] {
            assert!(parse_signal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_names_are_refused_before_connecting() {
        let nowhere = "/nonexistent/contd.sock";
        for args in [
            &["inspect", "../etc"][..],
            &["--ns", "a/b", "ps"],
            &["run", "--name=-x", "/r"],
            &["kill", "-s", "TERM", "a b"],
            &["wait", ""],
        ] {
            let mut full = vec!["--socket", nowhere];
            full.extend_from_slice(args);
            let cli = parse(&full);
            assert!(check_names(&cli).is_err(), "{args:?}");
            // Had run() connected, the error would name the socket instead.
            let err = run(cli).unwrap_err();
            assert!(
                err.downcast_ref::<NameError>().is_some(),
                "{args:?}: {err:#}"
            );
        }
        assert!(check_names(&parse(&["--ns", "t-1", "logs", "web.1"])).is_ok());
        assert!(check_names(&parse(&["run", "/r"])).is_ok());
    }

    #[test]
    fn run_creates_waits_copies_the_log_and_exits_with_the_code() {
        use std::os::unix::net::UnixListener;

        use proto::api::Stream;
        use proto::Hello;

        /// Removes the socket on drop, also when the test fails.
        struct Sock(PathBuf);
        impl Drop for Sock {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }

        let sock = Sock(std::env::temp_dir().join(format!(
            "contctl-run-{}-{}.sock",
            std::process::id(),
            proto::time::now_nanos()
        )));
        let listener = UnixListener::bind(&sock.0).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let hello: Hello = proto::read_frame(&mut s).unwrap();
            proto::write_frame(&mut s, &hello).unwrap();
            let Request::CreateContainer(c) = proto::read_frame(&mut s).unwrap() else {
                panic!("not create")
            };
            assert_eq!((c.ns.as_str(), c.name.as_str()), ("t1", "job"));
            assert!(Path::new(&c.rootfs).is_absolute(), "{}", c.rootfs);
            assert!(c.rootfs.ends_with("/rel/rootfs"), "{}", c.rootfs);
            assert_eq!(c.args, ["sh", "-c", "exit 3"]);
            assert_eq!(c.env, ["A=1"]);
            assert_eq!(c.resources.memory, Some(1 << 20));
            // Started only once attached: no output is missed.
            assert!(!c.start);
            let info = proto::api::ContainerDetails {
                ns: c.ns.clone(),
                name: c.name.clone(),
                status: Status::Created,
                pid: Some(7),
                exit: None,
                error: None,
                args: c.args.clone(),
                log_path: String::new(),
                created_at: 0,
                started_at: None,
                finished_at: None,
                restart_count: 0,
                next_restart_at: None,
                config: c,
            };
            proto::write_frame(&mut s, &Response::Details(info)).unwrap();
            let (mut att, _) = listener.accept().unwrap();
            let hello: Hello = proto::read_frame(&mut att).unwrap();
            proto::write_frame(&mut att, &hello).unwrap();
            let req: Request = proto::read_frame(&mut att).unwrap();
            assert!(
                matches!(req, Request::Attach { stdin: false, .. }),
                "{req:?}"
            );
            proto::write_frame(&mut att, &Response::Ok).unwrap();
            let req: Request = proto::read_frame(&mut s).unwrap();
            assert!(matches!(req, Request::Start { .. }), "{req:?}");
            proto::write_frame(&mut s, &Response::Ok).unwrap();
            let data = Response::Output {
                stream: Stream::Stdout,
                data: b"from the container\n".to_vec(),
            };
            proto::write_frame(&mut att, &data).unwrap();
            let record = ExitRecord {
                code: 3,
                signal: None,
                oom_killed: false,
                started_at: Some(0),
                finished_at: 1,
                protocol: 1,
            };
            proto::write_frame(&mut att, &Response::Exited(record)).unwrap();
        });

        let socket = sock.0.to_str().unwrap();
        let cli = parse(&[
            "--socket",
            socket,
            "--ns",
            "t1",
            "run",
            "--name",
            "job",
            "-e",
            "A=1",
            "--memory",
            "1M",
            "rel/rootfs",
            "sh",
            "-c",
            "exit 3",
        ]);
        assert_eq!(run(cli).unwrap(), ExitCode::from(3));
        server.join().unwrap();
    }

    #[test]
    fn generated_names_are_valid() {
        let n = random_name();
        assert_eq!(n.len(), 10, "{n}");
        assert!(n.starts_with("c-"), "{n}");
        assert!(n[2..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert!(validate_name("name", &n).is_ok());
    }
}

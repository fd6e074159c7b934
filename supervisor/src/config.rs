//! contd's configuration: [`Config`], built and checked by [`ConfigBuilder`]
//! from defaults, [`Settings`] (the TOML file's keys, which are also the
//! daemon's flags) and setter calls. The daemon and an embedder share the
//! defaults and the checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::api::RestartPolicy;
use serde::Deserialize;

/// Where the daemon reads its configuration when no `--config` is given
/// (a missing file there is no error).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/contd/config.toml";

/// A configuration that cannot be used: the key (as the file and the
/// flags spell it), and, for a file, where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(key: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{key}: {why}"))
}

/// Where contd keeps things and how it runs containers. Build one with
/// [`Config::builder`]; [`Config::default`] is the daemon's defaults,
/// unchecked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-container state: `<state_dir>/<ns>/<name>/`.
    pub state_dir: PathBuf,
    /// Logs: `<log_dir>/<ns>/<name>.log`.
    pub log_dir: PathBuf,
    /// The api socket (`None`: an embedder that serves no socket).
    pub socket: Option<PathBuf>,
    /// The group whose members may use the api socket besides root (a
    /// name or a number); the socket is then mode 0660 and owned by it.
    pub socket_group: Option<String>,
    /// The `contd-monitor` binary.
    pub monitor_bin: PathBuf,
    /// cgroups are `<cgroup_parent>/<ns>/<name>` in each hierarchy; the
    /// monitors are in `<cgroup_parent>-monitors`.
    pub cgroup_parent: String,
    /// How long a monitor stays after its container exited when no
    /// supervisor releases it (`None`: until released). The exit record
    /// stays on disk either way.
    pub monitor_linger: Option<Duration>,
    /// Rotate a container's log before it grows past this many bytes
    /// (0: never).
    pub log_max_size: u64,
    /// Log files kept per container, the live one included (at least 1).
    pub log_max_files: u32,
    /// On removal, move a container's log files aside (to
    /// `<log_dir>/<ns>/.removed/<name>-<created>/`) instead of deleting them.
    pub keep_logs: bool,
    /// The restart policy of a container created with `no` (the wire has
    /// no "unset").
    pub default_restart: RestartPolicy,
    /// How long adoption waits for one monitor's answer before it lists
    /// the container with an error and retries in the background.
    pub adopt_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: "/run/contd/containers".into(),
            log_dir: "/var/log/contd".into(),
            socket: Some("/run/contd/contd.sock".into()),
            socket_group: None,
            monitor_bin: find_monitor(None).unwrap_or_else(|_| "contd-monitor".into()),
            cgroup_parent: "contd".into(),
            monitor_linger: None,
            log_max_size: 0,
            log_max_files: 1,
            keep_logs: false,
            default_restart: RestartPolicy::No,
            adopt_timeout: Duration::from_secs(3),
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The cgroup every monitor moves into (from each hierarchy's root),
    /// out of contd's own: `<cgroup_parent>-monitors`, beside the
    /// containers' `<cgroup_parent>/`. See `docs/decisions.md`.
    pub fn monitor_cgroup(&self) -> String {
        format!("{}-monitors", self.cgroup_parent.trim_end_matches('/'))
    }
}

/// A size in bytes: a number, or a string with a unit (`"10m"`, `"1.5g"`,
/// `"512k"`, `"100mb"`; powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SizeRepr")]
pub struct Size(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Bytes(u64),
    Text(String),
}

impl TryFrom<SizeRepr> for Size {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Bytes(n) => Ok(Size(n)),
            SizeRepr::Text(s) => parse_size(&s).map(Size),
        }
    }
}

pub use proto::parse_size;

/// Every setting by the name the config file and the daemon's flags give
/// it (`state-dir` is `--state-dir`); unset ones keep their defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Per-container state directories live here.
    pub state_dir: Option<PathBuf>,
    /// Container logs, as `<ns>/<name>.log`.
    pub log_dir: Option<PathBuf>,
    /// The api socket.
    pub socket: Option<PathBuf>,
    /// Members of this group may use the api socket (mode 0660).
    pub socket_group: Option<String>,
    /// The contd-monitor binary.
    pub monitor: Option<PathBuf>,
    /// Parent of the containers' cgroups.
    pub cgroup_parent: Option<String>,
    /// Seconds a monitor stays after its container exited.
    pub monitor_linger: Option<u64>,
    /// Rotate a container's log before it grows past this size.
    pub log_max_size: Option<Size>,
    /// Log files kept per container.
    pub log_max_files: Option<u32>,
    /// Move logs aside on `rm` instead of deleting them.
    pub keep_logs: Option<bool>,
    /// Restart policy of containers created without one.
    pub default_restart: Option<String>,
    /// Seconds adoption waits for one monitor.
    pub adopt_timeout: Option<u64>,
    /// contd's own log level: error, warn, info, debug or trace.
    pub log_level: Option<String>,
    /// contd's own log format: text or json.
    pub log_format: Option<String>,
}

macro_rules! overlay {
    ($a:ident, $b:ident, $($f:ident),*) => { $( if $b.$f.is_some() { $a.$f = $b.$f; } )* };
}

impl Settings {
    /// Reads a TOML file. An unknown key or a value of the wrong type is
    /// an error naming the file, the line and the key.
    ///
    /// # Errors
    /// The file cannot be read, or is not a valid configuration.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("config {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("config {}:{}", path.display(), e.0)))
    }

    /// Parses TOML text; an error starts with `LINE: KEY: `.
    ///
    /// # Errors
    /// Not TOML, an unknown key or a value of the wrong type.
    pub fn parse(text: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    let l = text.lines().nth(line - 1).unwrap_or("");
                    let key = l
                        .split_once('=')
                        .map(|(k, _)| k.trim().trim_matches('"').to_string())
                        .filter(|k| !k.is_empty() && !k.starts_with('['));
                    (line, key)
                }
                None => (0, None),
            };
            let msg = e.message().trim().replace('\n', " ");
            match key {
                Some(k) => ConfigError(format!("{line}: {k}: {msg}")),
                None => ConfigError(format!("{line}: {msg}")),
            }
        })
    }

    /// `other`'s settings over ours (flags over the file).
    pub fn overlay(&mut self, other: Settings) {
        overlay!(
            self,
            other,
            state_dir,
            log_dir,
            socket,
            socket_group,
            monitor,
            cgroup_parent,
            monitor_linger,
            log_max_size,
            log_max_files,
            keep_logs,
            default_restart,
            adopt_timeout,
            log_level,
            log_format
        );
    }
}

/// The levels `log-level` takes.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Builds a checked [`Config`]: the same defaults and checks as the daemon.
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    s: Settings,
    no_socket: bool,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $t:ty => $field:ident $(, $conv:expr)?) => {
        $(#[$doc])*
        pub fn $name(mut self, v: impl Into<$t>) -> Self {
            let v: $t = v.into();
            $( let v = $conv(v); )?
            self.s.$field = Some(v);
            self
        }
    };
}

impl ConfigBuilder {
    /// Applies every setting `s` has (over earlier ones).
    pub fn settings(mut self, s: Settings) -> Self {
        self.s.overlay(s);
        self
    }

    setter!(
        /// Per-container state directories (absolute).
        state_dir: PathBuf => state_dir
    );
    setter!(
        /// Log directory (absolute).
        log_dir: PathBuf => log_dir
    );
    setter!(
        /// The api socket (absolute).
        socket: PathBuf => socket
    );
    setter!(
        /// The group whose members may use the socket.
        socket_group: String => socket_group
    );
    setter!(
        /// The contd-monitor binary (default: beside the running
        /// executable, then on `PATH`).
        monitor_bin: PathBuf => monitor
    );
    setter!(
        /// Parent of the containers' cgroups.
        cgroup_parent: String => cgroup_parent
    );
    setter!(
        /// Rotate logs past this many bytes (0: never).
        log_max_size: u64 => log_max_size, Size
    );
    setter!(
        /// Log files kept per container (at least 1).
        log_max_files: u32 => log_max_files
    );
    setter!(
        /// Keep logs on `rm`.
        keep_logs: bool => keep_logs
    );
    setter!(
        /// Restart policy of containers created with `no`, in docker's
        /// spelling (`on-failure:3`).
        default_restart: String => default_restart
    );

    /// How long a monitor stays after its container exited.
    pub fn monitor_linger(mut self, d: Duration) -> Self {
        self.s.monitor_linger = Some(d.as_secs());
        self
    }

    /// How long adoption waits for one monitor (at least a second).
    pub fn adopt_timeout(mut self, d: Duration) -> Self {
        self.s.adopt_timeout = Some(d.as_secs());
        self
    }

    /// Serves no api socket: the embedder drives contd through its
    /// [`SupervisorHandle`](crate::SupervisorHandle) alone.
    pub fn no_socket(mut self) -> Self {
        self.no_socket = true;
        self
    }

    /// The checked configuration.
    ///
    /// # Errors
    /// The first setting that cannot be used, by name.
    pub fn build(self) -> Result<Config, ConfigError> {
        let s = self.s;
        let d = Config::default();
        let abs = |key: &str, p: Option<PathBuf>, def: PathBuf| -> Result<PathBuf, ConfigError> {
            let p = p.unwrap_or(def);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(bad(key, format!("{} is not an absolute path", p.display())))
            }
        };
        let socket = if self.no_socket {
            None
        } else {
            Some(abs("socket", s.socket, "/run/contd/contd.sock".into())?)
        };
        let cgroup_parent = s.cgroup_parent.unwrap_or(d.cgroup_parent);
        let trimmed = cgroup_parent.trim_matches('/');
        if trimmed.is_empty()
            || trimmed
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(bad(
                "cgroup-parent",
                format!("{cgroup_parent:?} is not a cgroup path (e.g. contd or system/contd)"),
            ));
        }
        let log_max_files = s.log_max_files.unwrap_or(1);
        if log_max_files == 0 {
            return Err(bad("log-max-files", "must be at least 1"));
        }
        let default_restart = match s.default_restart.as_deref() {
            None => RestartPolicy::No,
            Some(p) => RestartPolicy::parse(p).map_err(|e| bad("default-restart", e))?,
        };
        if let Some(g) = &s.socket_group {
            resolve_group(g).map_err(|e| bad("socket-group", e))?;
        }
        let adopt_timeout = match s.adopt_timeout {
            None => d.adopt_timeout,
            Some(0) => return Err(bad("adopt-timeout", "must be at least 1 second")),
            Some(n) => Duration::from_secs(n),
        };
        if let Some(l) = &s.log_level {
            check_log_level(l)?;
        }
        if let Some(f) = &s.log_format {
            check_log_format(f)?;
        }
        Ok(Config {
            state_dir: abs("state-dir", s.state_dir, d.state_dir)?,
            log_dir: abs("log-dir", s.log_dir, d.log_dir)?,
            socket,
            socket_group: s.socket_group,
            monitor_bin: find_monitor(s.monitor.as_deref()).map_err(|e| bad("monitor", e))?,
            cgroup_parent: trimmed.to_string(),
            monitor_linger: s.monitor_linger.map(Duration::from_secs),
            log_max_size: s.log_max_size.map_or(0, |s| s.0),
            log_max_files,
            keep_logs: s.keep_logs.unwrap_or(false),
            default_restart,
            adopt_timeout,
        })
    }
}

/// Checks a `log-level` value.
///
/// # Errors
/// Not one of [`LOG_LEVELS`].
pub fn check_log_level(l: &str) -> Result<(), ConfigError> {
    if LOG_LEVELS.contains(&l) {
        Ok(())
    } else {
        Err(bad(
            "log-level",
            format!("{l:?} is not one of {}", LOG_LEVELS.join(", ")),
        ))
    }
}

/// Checks a `log-format` value.
///
/// # Errors
/// Not `text` or `json`.
pub fn check_log_format(f: &str) -> Result<(), ConfigError> {
    if matches!(f, "text" | "json") {
        Ok(())
    } else {
        Err(bad("log-format", format!("{f:?} is not text or json")))
    }
}

/// A group name or number to its gid.
pub(crate) fn resolve_group(g: &str) -> Result<u32, String> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(g) {
        Ok(Some(gr)) => Ok(gr.gid.as_raw()),
        Ok(None) => Err(format!("no group named {g:?}")),
        Err(e) => Err(format!("look up group {g:?}: {e}")),
    }
}

/// The monitor binary: `given` (which must exist), else `contd-monitor`
/// beside the running executable, else on `PATH`.
fn find_monitor(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{} is not a file", p.display()))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("contd-monitor")));
    if let Some(p) = beside.as_ref().filter(|p| p.is_file()) {
        return Ok(p.clone());
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join("contd-monitor");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "contd-monitor is neither beside {} nor on PATH; give its path",
        beside.map_or_else(|| "this executable".into(), |p| p.display().to_string())
    ))
}

/// What a reload (SIGHUP) changes while contd runs; the rest of
/// [`Config`] needs a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tunables {
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub default_restart: RestartPolicy,
    pub socket_group: Option<String>,
}

impl Tunables {
    fn of(c: &Config) -> Self {
        Tunables {
            log_max_size: c.log_max_size,
            log_max_files: c.log_max_files,
            default_restart: c.default_restart,
            socket_group: c.socket_group.clone(),
        }
    }

    pub(crate) fn socket_gid(&self) -> Option<u32> {
        self.socket_group
            .as_deref()
            .and_then(|g| resolve_group(g).ok())
    }
}

/// The configuration every part of contd shares: fixed at start, but for
/// the [`Tunables`].
#[derive(Debug)]
pub(crate) struct Shared {
    config: Config,
    tunables: std::sync::RwLock<Tunables>,
}

impl std::ops::Deref for Shared {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

/// What [`Supervisor::reload`](crate::Supervisor::reload) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Settings now in effect, as `key: old -> new`.
    pub applied: Vec<String>,
    /// Settings that differ but take effect only after a restart, by key.
    pub need_restart: Vec<String>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        let tunables = std::sync::RwLock::new(Tunables::of(&config));
        Shared { config, tunables }
    }

    /// The current tunables.
    pub(crate) fn tunables(&self) -> Tunables {
        self.tunables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Takes `new`'s tunables; reports what changed and what would need a
    /// restart.
    pub(crate) fn reload(&self, new: &Config) -> Reloaded {
        let mut r = Reloaded::default();
        let old = self.config.clone();
        macro_rules! fixed {
            ($($f:ident => $k:literal),*) => {
                $( if format!("{:?}", old.$f) != format!("{:?}", new.$f) {
                    r.need_restart.push($k.to_string());
                } )*
            };
        }
        fixed!(state_dir => "state-dir", log_dir => "log-dir", socket => "socket",
               monitor_bin => "monitor", cgroup_parent => "cgroup-parent",
               monitor_linger => "monitor-linger", keep_logs => "keep-logs",
               adopt_timeout => "adopt-timeout");
        let next = Tunables::of(new);
        let mut t = self
            .tunables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        macro_rules! tunable {
            ($($f:ident => $k:literal),*) => {
                $( if t.$f != next.$f {
                    r.applied.push(format!("{}: {:?} -> {:?}", $k, t.$f, next.$f));
                } )*
            };
        }
        tunable!(log_max_size => "log-max-size", log_max_files => "log-max-files",
                 default_restart => "default-restart", socket_group => "socket-group");
        *t = next;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_docker_spells_them() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-1m").is_err());
    }

    #[test]
    fn an_unknown_key_names_the_line_and_the_key() {
        let e = Settings::parse("log-level = \"debug\"\n\nlog-levle = \"info\"\n").unwrap_err();
        assert!(e.0.starts_with("3: log-levle: unknown field"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_line_and_the_key() {
        let e = Settings::parse("keep-logs = true\nlog-max-files = \"many\"\n").unwrap_err();
        assert!(e.0.starts_with("2: log-max-files: invalid type"), "{e}");
        let e = Settings::parse("log-max-size = \"lots\"\n").unwrap_err();
        assert!(e.0.starts_with("1: log-max-size: "), "{e}");
        assert!(e.0.contains("not a size"), "{e}");
    }

    #[test]
    fn every_key_parses_and_flags_win() {
        let mut s = Settings::parse(
            r#"
state-dir = "/s"
log-dir = "/l"
socket = "/run/x.sock"
socket-group = "0"
cgroup-parent = "a/b"
monitor-linger = 5
log-max-size = "10m"
log-max-files = 3
keep-logs = true
default-restart = "on-failure:2"
adopt-timeout = 7
log-level = "debug"
log-format = "json"
"#,
        )
        .unwrap();
        s.overlay(Settings {
            log_max_files: Some(4),
            ..Settings::default()
        });
        let c = Config::builder()
            .settings(s)
            .monitor_bin("/proc/self/exe")
            .build()
            .unwrap();
        assert_eq!(c.state_dir, Path::new("/s"));
        assert_eq!(c.log_max_size, 10 << 20);
        assert_eq!(c.log_max_files, 4);
        assert_eq!(c.cgroup_parent, "a/b");
        assert_eq!(c.monitor_cgroup(), "a/b-monitors");
        assert_eq!(c.default_restart, RestartPolicy::OnFailure { max: 2 });
        assert_eq!(c.adopt_timeout, Duration::from_secs(7));
        assert_eq!(Tunables::of(&c).socket_gid(), Some(0));
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let cases: [(Settings, &str); 6] = [
            (
                Settings {
                    log_max_files: Some(0),
                    ..Settings::default()
                },
                "log-max-files:",
            ),
            (
                Settings {
                    cgroup_parent: Some("a/../b".into()),
                    ..Settings::default()
                },
                "cgroup-parent:",
            ),
            (
                Settings {
                    default_restart: Some("sometimes".into()),
                    ..Settings::default()
                },
                "default-restart:",
            ),
            (
                Settings {
                    socket_group: Some("no-such-group-here".into()),
                    ..Settings::default()
                },
                "socket-group:",
            ),
            (
                Settings {
                    state_dir: Some("relative".into()),
                    ..Settings::default()
                },
                "state-dir:",
            ),
            (
                Settings {
                    log_level: Some("loud".into()),
                    ..Settings::default()
                },
                "log-level:",
            ),
        ];
        for (s, key) in cases {
            let e = Config::builder()
                .settings(s)
                .monitor_bin("/proc/self/exe")
                .build()
                .unwrap_err();
            assert!(e.0.starts_with(key), "{e} (want {key})");
        }
        let e = Config::builder()
            .monitor_bin("/no/such/monitor")
            .build()
            .unwrap_err();
        assert!(e.0.starts_with("monitor:"), "{e}");
    }

    #[test]
    fn the_example_file_sets_every_key_and_parses() {
        let text = include_str!("../../contrib/config.toml");
        let mut keys = Vec::new();
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .inspect(|l| keys.push(l.split(' ').next().unwrap().to_string()))
            .map(|l| format!("{l}\n"))
            .collect();
        Settings::parse(&uncommented).unwrap();
        // One per field of Settings, no key twice.
        let fields = format!("{:?}", Settings::default())
            .matches(": None")
            .count();
        let n = keys.len();
        keys.dedup();
        assert_eq!((keys.len(), n), (fields, fields), "{keys:?}");
    }
}

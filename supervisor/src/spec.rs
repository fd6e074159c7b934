//! Turning a [`ContainerConfig`] into an OCI `config.json` with the secure
//! defaults, after checking every field: an invalid one is refused with
//! its name, before anything exists.

use std::path::Path;

use proto::api::{ContainerConfig, CreateRequest, Mount, MountKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::Error;

/// What the supervisor remembers of a container beside the monitor's state
/// (`meta.json` in the state dir): it survives any restart of contd.
///
/// A `meta.json` of an earlier contd has no `config`; it is rebuilt from
/// the fields every version wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub ns: String,
    pub name: String,
    pub rootfs: String,
    pub args: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub created_at: i64,
    pub log_path: String,
    pub cgroup_path: String,
    /// The request as given (protocol 4 on).
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    /// Removed once it has exited for good (protocol 6, `--rm`).
    #[serde(default)]
    pub auto_remove: bool,
    /// The signal `stop` sends first (protocol 6; none: SIGTERM).
    #[serde(default)]
    pub stop_signal: Option<i32>,
    /// `stop`'s grace period when the request gives none (protocol 6;
    /// none: 10 s).
    #[serde(default)]
    pub stop_timeout: Option<u32>,
    /// The state dir's name when it is not the container's name: a
    /// renamed container keeps its dir, log and cgroup (protocol 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Runs under contd's init (protocol 7, `--init`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

impl Meta {
    /// The name of the container's state dir.
    pub(crate) fn dir_name(&self) -> &str {
        self.dir.as_deref().unwrap_or(&self.name)
    }

    /// The request as given, or what an older `meta.json` says of it.
    pub(crate) fn config(&self) -> ContainerConfig {
        self.config.clone().unwrap_or_else(|| ContainerConfig {
            ns: self.ns.clone(),
            name: self.name.clone(),
            rootfs: self.rootfs.clone(),
            args: self.args.clone(),
            labels: self.labels.clone(),
            ..ContainerConfig::default()
        })
    }
}

/// A v1–v3 create request, as the complete one.
pub(crate) fn from_v1(req: CreateRequest, interactive: proto::api::Interactive) -> ContainerConfig {
    ContainerConfig {
        ns: req.ns,
        name: req.name,
        rootfs: req.rootfs,
        args: req.args,
        env: req.env,
        cwd: req.cwd,
        user: req.user.map(|(u, g)| format!("{u}:{g}")),
        hostname: req.hostname,
        resources: proto::Resources {
            memory: req.memory,
            pids_limit: req.pids_limit,
            ..Default::default()
        },
        network: req.network,
        labels: req.labels,
        interactive,
        start: req.start,
        ..ContainerConfig::default()
    }
}

/// The most processes a cgroup can be limited to (the kernel's
/// `PID_MAX_LIMIT`).
const MAX_PIDS: i64 = 4 << 20;
/// `/proc/sys/kernel/hostname` holds at most this many bytes.
const MAX_HOSTNAME: usize = 64;
/// The `f_type` of an nsfs file (a network namespace).
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Builds the OCI spec of a checked request; returns the spec and the
/// argument vector it runs.
///
/// # Errors
/// The first invalid field, named.
/// Labels are metadata, not storage: their keys and values together stay
/// under 64 KiB (every message that carries them stays far below a frame).
const MAX_LABEL_BYTES: usize = 64 * 1024;

/// Asks the runtime for its init as the container's pid 1 (`--init`),
/// through the annotation runtime-core reads.
pub(crate) fn with_init(spec: &mut Value) {
    spec["annotations"][runtime_core::INIT_ANNOTATION] = "true".into();
}

pub(crate) fn build(c: &ContainerConfig, cgroup_path: &str) -> Result<(Value, Vec<String>), Error> {
    proto::validate_name("namespace", &c.ns)?;
    proto::validate_name("name", &c.name)?;
    check_rootfs(&c.rootfs)?;
    if let Some(tty) = c.interactive.tty {
        if tty.0 == 0 || tty.1 == 0 {
            return Err(Error::invalid(
                "interactive.tty: terminal size must be at least 1x1",
            ));
        }
    }
    let mut label_bytes = 0;
    for (k, v) in &c.labels {
        if k.is_empty() || k.contains('\0') || v.contains('\0') {
            return Err(Error::invalid(format!("labels: {k:?} is not a valid key")));
        }
        label_bytes += k.len() + v.len();
    }
    if label_bytes > MAX_LABEL_BYTES {
        return Err(Error::invalid(format!(
            "labels: {label_bytes} bytes in all, more than the {MAX_LABEL_BYTES} allowed"
        )));
    }
    let mut spec = match &c.oci_config {
        Some(text) => given_spec(c, text)?,
        None => built_spec(c)?,
    };
    spec["root"]["path"] = c.rootfs.clone().into();
    spec["linux"]["cgroupsPath"] = cgroup_path.into();
    if let Some((rows, cols)) = c.interactive.tty {
        spec["process"]["terminal"] = true.into();
        spec["process"]["consoleSize"] = json!({ "height": rows, "width": cols });
    } else {
        spec["process"]["terminal"] = false.into();
    }
    if !c.labels.is_empty() {
        let ann = spec["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .chain(c.labels.iter().map(|(k, v)| (k.clone(), v.clone().into())))
            .collect::<serde_json::Map<_, _>>();
        spec["annotations"] = ann.into();
    }
    let args = spec["process"]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((spec, args))
}

/// A complete `config.json` handed in: it must be a JSON object with a
/// process; the runtime checks the rest as `contd-runtime` does, before
/// anything exists.
fn given_spec(c: &ContainerConfig, text: &str) -> Result<Value, Error> {
    let simple = ContainerConfig {
        ns: c.ns.clone(),
        name: c.name.clone(),
        rootfs: c.rootfs.clone(),
        labels: c.labels.clone(),
        restart: c.restart,
        interactive: c.interactive.clone(),
        oci_config: c.oci_config.clone(),
        start: c.start,
        ..ContainerConfig::default()
    };
    if *c != simple {
        return Err(Error::invalid(
            "oci_config: only ns, name, rootfs, labels, restart, interactive and start may be given beside a complete config.json",
        ));
    }
    let spec: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("oci_config: not JSON: {e}")))?;
    if !spec.is_object() || !spec["process"].is_object() {
        return Err(Error::invalid(
            "oci_config: a config.json object with a process is needed",
        ));
    }
    Ok(spec)
}

fn check_rootfs(rootfs: &str) -> Result<(), Error> {
    if !rootfs.starts_with('/') {
        return Err(Error::invalid(format!(
            "rootfs {rootfs:?} is not an absolute path"
        )));
    }
    match std::fs::metadata(rootfs) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::invalid(format!(
            "rootfs {rootfs} is not a directory"
        ))),
        Err(e) => Err(Error::invalid(format!("rootfs {rootfs}: {e}"))),
    }
}

/// The argument vector: the entrypoint's words, then the args; `sh` when
/// both are empty.
pub(crate) fn argv(c: &ContainerConfig) -> Result<Vec<String>, Error> {
    let mut args = match &c.entrypoint {
        Some(e) => shell_words::split(e)
            .map_err(|err| Error::invalid(format!("entrypoint {e:?}: {err}")))?,
        None => Vec::new(),
    };
    args.extend(c.args.iter().cloned());
    if args.is_empty() {
        args.push("sh".into());
    }
    if args[0].is_empty() || args.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid(
            "args: the program name is empty or an argument holds NUL",
        ));
    }
    Ok(args)
}

fn built_spec(c: &ContainerConfig) -> Result<Value, Error> {
    let args = argv(c)?;
    let mut spec = runtime_core::secure_default_spec(&c.rootfs, &args);
    for e in &c.env {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() && !e.contains('\0') => {}
            _ => return Err(Error::invalid(format!("env {e:?} is not KEY=VALUE"))),
        }
    }
    if let Some(cwd) = &c.cwd {
        if !cwd.starts_with('/') || cwd.contains('\0') {
            return Err(Error::invalid(format!(
                "cwd {cwd:?} is not an absolute path"
            )));
        }
        spec["process"]["cwd"] = cwd.clone().into();
    }
    let hostname = c.hostname.clone().unwrap_or_else(|| c.name.clone());
    if hostname.is_empty() || hostname.len() > MAX_HOSTNAME || hostname.contains(['\0', '/', ' ']) {
        return Err(Error::invalid(format!(
            "hostname {hostname:?} is not valid"
        )));
    }
    spec["hostname"] = hostname.clone().into();
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOSTNAME={hostname}"),
    ];
    if c.interactive.tty.is_some() {
        env.push("TERM=xterm".into());
    }
    let (uid, gid, home) = match &c.user {
        Some(u) => resolve_user(&c.rootfs, u)?,
        None => (0, 0, "/root".into()),
    };
    env.push(format!("HOME={home}"));
    runtime_core::merge_env(&mut env, &c.env);
    spec["process"]["env"] = env.into();
    spec["process"]["user"] = json!({ "uid": uid, "gid": gid });
    spec["root"]["readonly"] = c.read_only.into();
    spec["process"]["capabilities"] = capabilities(&c.cap_add, &c.cap_drop)?;
    resources(&mut spec, &c.resources)?;
    network(&mut spec, c.network.as_deref())?;
    let mounts = spec["mounts"]
        .as_array_mut()
        .ok_or_else(|| Error::internal("default spec has no mounts"))?;
    for (i, m) in c.mounts.iter().enumerate() {
        mounts.push(mount(i, m)?);
    }
    Ok(spec)
}

/// Checks the limits and puts them in `linux.resources`, beside the
/// default device rules.
pub(crate) fn resources(spec: &mut Value, r: &proto::Resources) -> Result<(), Error> {
    check_resources(r)?;
    let mut res = spec["linux"]["resources"].take();
    if !res.is_object() {
        res = json!({});
    }
    let oci = serde_json::to_value(runtime_core::linux_resources(r))
        .map_err(|e| Error::internal(format!("resources: {e}")))?;
    if let Some(o) = oci.as_object() {
        for (k, v) in o {
            if !v.is_null() {
                res[k] = v.clone();
            }
        }
    }
    spec["linux"]["resources"] = res;
    Ok(())
}

/// Every limit in its range; the field is named when one is not.
pub(crate) fn check_resources(r: &proto::Resources) -> Result<(), Error> {
    if let Some(m) = r.memory {
        if m < 6 << 20 || m > i64::MAX as u64 {
            return Err(Error::invalid(format!(
                "resources.memory: {m} bytes is below the 6 MiB minimum or too large"
            )));
        }
    }
    if let Some(n) = r.nano_cpus {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        if n < 10_000_000 || n > cpus * 1_000_000_000 {
            return Err(Error::invalid(format!(
                "resources.nano_cpus: {:.2} cpus is not between 0.01 and the {cpus} this machine has",
                n as f64 / 1e9
            )));
        }
        if r.cpu_quota.is_some() || r.cpu_period.is_some() {
            return Err(Error::invalid(
                "resources.nano_cpus: give cpus or a quota/period, not both",
            ));
        }
    }
    if let Some(s) = r.cpu_shares {
        if !(2..=262_144).contains(&s) {
            return Err(Error::invalid(format!(
                "resources.cpu_shares: {s} is not between 2 and 262144"
            )));
        }
    }
    if let Some(q) = r.cpu_quota {
        if q != -1 && q < 1000 {
            return Err(Error::invalid(format!(
                "resources.cpu_quota: {q} µs is below 1000 (or -1 for none)"
            )));
        }
    }
    if let Some(p) = r.cpu_period {
        if !(1000..=1_000_000).contains(&p) {
            return Err(Error::invalid(format!(
                "resources.cpu_period: {p} µs is not between 1000 and 1000000"
            )));
        }
    }
    if let Some(p) = r.pids_limit {
        if p != -1 && !(1..=MAX_PIDS).contains(&p) {
            return Err(Error::invalid(format!(
                "resources.pids_limit: {p} is not between 1 and {MAX_PIDS} (or -1 for none)"
            )));
        }
    }
    Ok(())
}

/// `None`/`none`: the default, a private namespace (init brings `lo` up);
/// a name: `/var/run/netns/NAME`; an absolute path: that namespace file.
fn network(spec: &mut Value, net: Option<&str>) -> Result<(), Error> {
    let path = match net {
        None | Some("none") => return Ok(()),
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(n) if proto::validate_name("network", n).is_ok() => format!("/var/run/netns/{n}"),
        Some(n) => {
            return Err(Error::invalid(format!(
                "network {n:?} is neither none, a name under /var/run/netns nor an absolute path"
            )))
        }
    };
    let st = nix::sys::statfs::statfs(Path::new(&path))
        .map_err(|e| Error::invalid(format!("network {path}: {e}")))?;
    if st.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err(Error::invalid(format!(
            "network {path} is not a network namespace (mount one with `ip netns add`)"
        )));
    }
    if let Some(list) = spec["linux"]["namespaces"].as_array_mut() {
        for ns in list.iter_mut() {
            if ns["type"] == "network" {
                ns["path"] = path.clone().into();
            }
        }
    }
    Ok(())
}

/// A capability's canonical name (`net_admin` → `CAP_NET_ADMIN`).
fn cap_name(field: &str, s: &str) -> Result<String, Error> {
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    name.parse::<caps::Capability>()
        .map(|_| name.clone())
        .map_err(|_| Error::invalid(format!("{field}: {s:?} is not a capability")))
}

/// The default set, with `add` added and `drop` removed (`ALL` in either
/// means every capability).
fn capabilities(add: &[String], drop: &[String]) -> Result<Value, Error> {
    let all = || {
        caps::all()
            .into_iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
    };
    let mut set: Vec<String> = runtime_core::DEFAULT_CAPABILITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    if drop.iter().any(|d| d.eq_ignore_ascii_case("all")) {
        set.clear();
    } else {
        for d in drop {
            let d = cap_name("cap_drop", d)?;
            set.retain(|c| *c != d);
        }
    }
    for a in add {
        if a.eq_ignore_ascii_case("all") {
            set = all();
            continue;
        }
        let a = cap_name("cap_add", a)?;
        if !set.contains(&a) {
            set.push(a);
        }
    }
    set.sort();
    Ok(json!({ "bounding": set, "effective": set, "permitted": set }))
}

/// One requested mount as an OCI mount.
fn mount(i: usize, m: &Mount) -> Result<Value, Error> {
    let field = |f: &str| format!("mounts[{i}].{f}");
    if !m.target.starts_with('/') || m.target.contains('\0') {
        return Err(Error::invalid(format!(
            "{}: {:?} is not an absolute path",
            field("target"),
            m.target
        )));
    }
    match m.kind {
        MountKind::Bind => {
            if !m.source.starts_with('/') {
                return Err(Error::invalid(format!(
                    "{}: {:?} is not an absolute path",
                    field("source"),
                    m.source
                )));
            }
            if let Err(e) = std::fs::metadata(&m.source) {
                return Err(Error::invalid(format!(
                    "{}: {}: {e}",
                    field("source"),
                    m.source
                )));
            }
            if m.size.is_some() {
                return Err(Error::invalid(format!(
                    "{}: only a tmpfs has a size",
                    field("size")
                )));
            }
            let prop = m.propagation.as_deref().unwrap_or("rprivate");
            if !matches!(
                prop,
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            ) {
                return Err(Error::invalid(format!(
                    "{}: {prop:?} is not one of private, rprivate, shared, rshared, slave, rslave",
                    field("propagation")
                )));
            }
            let rw = if m.readonly { "ro" } else { "rw" };
            Ok(json!({
                "destination": m.target, "type": "bind", "source": m.source,
                "options": ["rbind", rw, prop],
            }))
        }
        MountKind::Tmpfs => {
            if !m.source.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: a tmpfs has no source",
                    field("source")
                )));
            }
            if m.propagation.is_some() {
                return Err(Error::invalid(format!(
                    "{}: only a bind mount has a propagation",
                    field("propagation")
                )));
            }
            let mut options = vec![
                "nosuid".to_string(),
                "nodev".into(),
                "noexec".into(),
                "mode=1777".into(),
            ];
            if let Some(size) = m.size {
                if size == 0 {
                    return Err(Error::invalid(format!(
                        "{}: must be at least 1 byte",
                        field("size")
                    )));
                }
                options.push(format!("size={size}"));
            }
            if m.readonly {
                options.push("ro".into());
            }
            Ok(json!({
                "destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": options,
            }))
        }
    }
}

/// `uid[:gid]`, or `name[:group]` looked up in the rootfs's `/etc/passwd`
/// and `/etc/group`; returns uid, gid and home.
pub(crate) fn resolve_user(rootfs: &str, user: &str) -> Result<(u32, u32, String), Error> {
    let bad = |why: String| Error::invalid(format!("user {user:?}: {why}"));
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if u.is_empty() {
        return Err(bad("no user".into()));
    }
    let passwd = std::fs::read_to_string(Path::new(rootfs).join("etc/passwd")).unwrap_or_default();
    let entry = |pred: &dyn Fn(&[&str]) -> bool| {
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 6 && pred(f))
    };
    let id = |s: &str, what: &str| -> Result<u32, Error> {
        match s.parse::<u32>() {
            // (uid_t)-1 means "unchanged" to setuid: never a user.
            Ok(u32::MAX) => Err(bad(format!("{what} {s} is not a valid id"))),
            Ok(n) => Ok(n),
            Err(_) => Err(bad(format!("{what} {s:?} is not a number"))),
        }
    };
    let (uid, mut gid, home) = if u.bytes().all(|b| b.is_ascii_digit()) {
        let uid = id(u, "uid")?;
        match entry(&|f| f[2] == u) {
            Some(f) => (uid, f[3].parse().unwrap_or(uid), f[5].to_string()),
            None => (uid, uid, "/".to_string()),
        }
    } else {
        let f = entry(&|f| f[0] == u)
            .ok_or_else(|| bad(format!("no user {u:?} in the container's /etc/passwd")))?;
        (id(f[2], "uid")?, id(f[3], "gid")?, f[5].to_string())
    };
    if let Some(g) = g {
        gid = if g.bytes().all(|b| b.is_ascii_digit()) && !g.is_empty() {
            id(g, "gid")?
        } else {
            let groups =
                std::fs::read_to_string(Path::new(rootfs).join("etc/group")).unwrap_or_default();
            let f = groups
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .ok_or_else(|| bad(format!("no group {g:?} in the container's /etc/group")))?;
            id(f[2], "gid")?
        };
    }
    Ok((uid, gid, if home.is_empty() { "/".into() } else { home }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ContainerConfig {
        ContainerConfig {
            ns: "default".into(),
            name: "web".into(),
            rootfs: "/".into(),
            ..Default::default()
        }
    }

    #[test]
    fn refuses_bad_fields_naming_them() {
        type Edit = fn(&mut ContainerConfig);
        let bind = |src: &str, dst: &str| Mount {
            kind: MountKind::Bind,
            source: src.into(),
            target: dst.into(),
            readonly: false,
            propagation: None,
            size: None,
        };
        let _ = bind;
        let cases: Vec<(Edit, &str)> = vec![
            (|r| r.name = "../x".into(), "invalid name"),
            (|r| r.ns = "a/b".into(), "invalid namespace"),
            (|r| r.rootfs = "rel".into(), "not an absolute path"),
            (
                |r| r.rootfs = "/nonexistent-rootfs".into(),
                "/nonexistent-rootfs",
            ),
            (|r| r.env = vec!["NOEQUALS".into()], "not KEY=VALUE"),
            (|r| r.resources.memory = Some(10), "resources.memory"),
            (
                |r| r.resources.pids_limit = Some(i64::MAX),
                "resources.pids_limit",
            ),
            (|r| r.resources.cpu_shares = Some(1), "resources.cpu_shares"),
            (
                |r| r.resources.nano_cpus = Some(1 << 62),
                "resources.nano_cpus",
            ),
            (|r| r.cwd = Some("tmp".into()), "cwd"),
            (
                |r| r.entrypoint = Some("sh -c 'unterminated".into()),
                "entrypoint",
            ),
            (|r| r.cap_add = vec!["NOT_A_CAP".into()], "cap_add"),
            (|r| r.user = Some("4294967295".into()), "user"),
            (|r| r.user = Some("nosuchuser-xyz".into()), "user"),
            (
                |r| r.labels = vec![("big".into(), "x".repeat(512 * 1024))],
                "labels",
            ),
            (
                |r| r.network = Some("/etc/passwd".into()),
                "not a network namespace",
            ),
            (|r| r.network = Some("a b".into()), "network"),
            (
                |r| {
                    r.mounts = vec![Mount {
                        kind: MountKind::Bind,
                        source: "/nonexistent-src".into(),
                        target: "/data".into(),
                        readonly: false,
                        propagation: None,
                        size: None,
                    }]
                },
                "mounts[0].source",
            ),
            (
                |r| {
                    r.mounts = vec![Mount {
                        kind: MountKind::Tmpfs,
                        source: String::new(),
                        target: "rel".into(),
                        readonly: false,
                        propagation: None,
                        size: None,
                    }]
                },
                "mounts[0].target",
            ),
            (|r| r.oci_config = Some("{}".into()), "oci_config"),
            (
                |r| {
                    r.oci_config = Some(r#"{"process":{}}"#.into());
                    r.env = vec!["A=1".into()];
                },
                "oci_config",
            ),
        ];
        for (edit, want) in cases {
            let mut r = req();
            edit(&mut r);
            let e = build(&r, "x").unwrap_err();
            assert!(e.message.contains(want), "{} lacks {want}", e.message);
            assert_eq!(e.kind, proto::ErrorKind::InvalidArgument, "{e:?}");
        }
    }

    #[test]
    fn builds_secure_spec() {
        let mut r = req();
        r.resources.memory = Some(64 << 20);
        r.resources.nano_cpus = Some(500_000_000);
        r.env = vec!["A=1".into()];
        r.entrypoint = Some("sh -c".into());
        r.args = vec!["echo 'a b'".into()];
        r.cap_drop = vec!["net_raw".into()];
        r.cap_add = vec!["SYS_PTRACE".into()];
        r.read_only = true;
        r.user = Some("0:0".into());
        let (s, args) = build(&r, "contd/default/web").unwrap();
        assert_eq!(args, vec!["sh", "-c", "echo 'a b'"]);
        assert_eq!(s["hostname"], "web");
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(s["linux"]["cgroupsPath"], "contd/default/web");
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(s["linux"]["resources"]["cpu"]["period"], 100_000);
        assert!(s["linux"]["resources"]["devices"].is_array());
        assert_eq!(s["process"]["noNewPrivileges"], true);
        let env = s["process"]["env"].as_array().unwrap();
        assert!(env.contains(&"A=1".into()));
        assert!(env.contains(&"HOME=/root".into()));
        let bounding = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(bounding.contains(&"CAP_SYS_PTRACE".into()));
        assert!(!bounding.contains(&"CAP_NET_RAW".into()));
        assert_eq!(bounding.len(), 14);
    }

    #[test]
    fn users_resolve_in_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let root = dir.path().to_str().unwrap();
        assert_eq!(
            resolve_user(root, "www").unwrap(),
            (33, 34, "/var/www".into())
        );
        assert_eq!(
            resolve_user(root, "www:staff").unwrap(),
            (33, 50, "/var/www".into())
        );
        assert_eq!(
            resolve_user(root, "1000").unwrap(),
            (1000, 1000, "/".into())
        );
        assert_eq!(
            resolve_user(root, "33:7").unwrap(),
            (33, 7, "/var/www".into())
        );
        assert!(resolve_user(root, "www:nogroup").is_err());
    }
}

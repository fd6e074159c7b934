//! Turning a [`CreateRequest`] into an OCI `config.json` with the secure
//! defaults of DESIGN.md, after checking every field.

use std::path::Path;

use proto::api::CreateRequest;
use serde::{Deserialize, Serialize};

use crate::Error;

/// What the supervisor remembers of a container beside the monitor's state
/// (`meta.json` in the state dir): it survives any restart of contd.
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
}

/// Checks the request; returns the argument vector to run.
pub(crate) fn validate(req: &CreateRequest) -> Result<Vec<String>, Error> {
    proto::validate_name("namespace", &req.ns)?;
    proto::validate_name("name", &req.name)?;
    let rootfs = Path::new(&req.rootfs);
    if !rootfs.is_absolute() {
        return Err(Error::invalid(format!(
            "rootfs {:?} is not an absolute path",
            req.rootfs
        )));
    }
    match std::fs::metadata(rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::invalid(format!(
                "rootfs {} is not a directory",
                req.rootfs
            )))
        }
        Err(e) => return Err(Error::invalid(format!("rootfs {}: {e}", req.rootfs))),
    }
    let args = if req.args.is_empty() {
        vec!["sh".to_string()]
    } else {
        req.args.clone()
    };
    if args[0].is_empty() || args.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid(
            "args: the program name is empty or an argument holds NUL",
        ));
    }
    for e in &req.env {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() && !e.contains('\0') => {}
            _ => return Err(Error::invalid(format!("env {e:?} is not KEY=VALUE"))),
        }
    }
    if let Some(cwd) = &req.cwd {
        if !cwd.starts_with('/') {
            return Err(Error::invalid(format!(
                "cwd {cwd:?} is not an absolute path"
            )));
        }
    }
    if let Some(h) = &req.hostname {
        if h.is_empty() || h.len() > 64 || h.contains(['\0', '/']) {
            return Err(Error::invalid(format!("hostname {h:?} is not valid")));
        }
    }
    if let Some(m) = req.memory {
        if m < 4 << 20 || m > i64::MAX as u64 {
            return Err(Error::invalid(format!(
                "memory limit {m} is below 4 MiB or too large"
            )));
        }
    }
    if let Some(p) = req.pids_limit {
        if p < 1 {
            return Err(Error::invalid(format!("pids limit {p} must be positive")));
        }
    }
    if let Some(n) = &req.network {
        if !Path::new(n).exists() {
            return Err(Error::invalid(format!(
                "network namespace {n} does not exist"
            )));
        }
    }
    for (k, _) in &req.labels {
        if k.is_empty() {
            return Err(Error::invalid("labels: empty key"));
        }
    }
    Ok(args)
}

/// Builds the OCI spec for a validated request.
pub(crate) fn build(req: &CreateRequest, args: &[String], cgroup_path: &str) -> serde_json::Value {
    let mut spec = runtime_core::secure_default_spec(&req.rootfs, args);
    let hostname = req.hostname.clone().unwrap_or_else(|| req.name.clone());
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOSTNAME={hostname}"),
    ];
    env.extend(req.env.iter().cloned());
    spec["hostname"] = hostname.into();
    spec["process"]["env"] = env.into();
    if let Some(cwd) = &req.cwd {
        spec["process"]["cwd"] = cwd.clone().into();
    }
    if let Some((uid, gid)) = req.user {
        spec["process"]["user"] = serde_json::json!({ "uid": uid, "gid": gid });
    }
    spec["linux"]["cgroupsPath"] = cgroup_path.into();
    // Keep the default device rules; add the limits.
    let mut resources = spec["linux"]["resources"].take();
    if !resources.is_object() {
        resources = serde_json::json!({});
    }
    if let Some(m) = req.memory {
        resources["memory"] = serde_json::json!({ "limit": m });
    }
    if let Some(p) = req.pids_limit {
        resources["pids"] = serde_json::json!({ "limit": p });
    }
    spec["linux"]["resources"] = resources;
    if let Some(n) = &req.network {
        if let Some(list) = spec["linux"]["namespaces"].as_array_mut() {
            for ns in list.iter_mut() {
                if ns["type"] == "network" {
                    ns["path"] = n.clone().into();
                }
            }
        }
    }
    if !req.labels.is_empty() {
        let ann: serde_json::Map<String, serde_json::Value> = req
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        spec["annotations"] = ann.into();
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CreateRequest {
        CreateRequest {
            ns: "default".into(),
            name: "web".into(),
            rootfs: "/".into(),
            ..Default::default()
        }
    }

    #[test]
    fn refuses_bad_fields() {
        type Edit = fn(&mut CreateRequest);
        let cases: Vec<(Edit, &str)> = vec![
            (|r| r.name = "../x".into(), "invalid name"),
            (|r| r.ns = "a/b".into(), "invalid namespace"),
            (|r| r.rootfs = "rel".into(), "not an absolute path"),
            (
                |r| r.rootfs = "/nonexistent-rootfs".into(),
                "/nonexistent-rootfs",
            ),
            (|r| r.env = vec!["NOEQUALS".into()], "not KEY=VALUE"),
            (|r| r.memory = Some(10), "below 4 MiB"),
            (|r| r.cwd = Some("tmp".into()), "cwd"),
        ];
        for (edit, want) in cases {
            let mut r = req();
            edit(&mut r);
            let e = validate(&r).unwrap_err();
            assert!(e.message.contains(want), "{} lacks {want}", e.message);
        }
    }

    #[test]
    fn builds_secure_spec() {
        let mut r = req();
        r.memory = Some(64 << 20);
        r.env = vec!["A=1".into()];
        let args = validate(&r).unwrap();
        assert_eq!(args, vec!["sh"]);
        let s = build(&r, &args, "contd/default/web");
        assert_eq!(s["hostname"], "web");
        assert_eq!(s["linux"]["cgroupsPath"], "contd/default/web");
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert!(s["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&"A=1".into()));
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
    }
}

//! How contctl shows things: the JSON object of `inspect` (also the elements
//! of `ps --format json`), the `ps` table, and writes to stdout that treat a
//! reader who went away as the end rather than a failure.

use std::fmt::Write as _;
use std::io::{self, Write};

use anyhow::Context;
use proto::api::{ContainerDetails, Stream};
use proto::time::rfc3339_nanos;
use serde_json::{json, Map, Value};

/// One container as the JSON object `inspect` prints. Fields that only an
/// exited container has (or, like `pid`, only a live one) are `null`
/// otherwise.
pub(crate) fn info_json(info: &ContainerDetails) -> Value {
    let exit = info.exit.as_ref();
    let c = &info.config;
    let labels: Map<String, Value> = c
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let r = &c.resources;
    json!({
        "ns": info.ns,
        "name": info.name,
        "status": info.status.as_str(),
        "pid": info.pid,
        "exit_code": exit.map(|e| e.code),
        "exit_signal": exit.and_then(|e| e.signal),
        "oom_killed": exit.is_some_and(|e| e.oom_killed),
        "log_path": info.log_path,
        "rootfs": c.rootfs,
        "args": info.args,
        "created": rfc3339_nanos(info.created_at),
        "started_at": info.started_at.map(rfc3339_nanos),
        "finished_at": info.finished_at.map(rfc3339_nanos),
        "restart_policy": c.restart.to_string(),
        "restart_count": info.restart_count,
        "next_restart_at": info.next_restart_at.map(rfc3339_nanos),
        "labels": labels,
        "config": {
            "entrypoint": c.entrypoint,
            "env": c.env,
            "cwd": c.cwd,
            "user": c.user,
            "hostname": c.hostname,
            "memory": r.memory,
            "cpus": r.nano_cpus.map(|n| n as f64 / 1e9),
            "cpu_shares": r.cpu_shares,
            "cpu_quota": r.cpu_quota,
            "cpu_period": r.cpu_period,
            "pids_limit": r.pids_limit,
            "network": c.network,
            "mounts": c.mounts.iter().map(|m| json!({
                "type": match m.kind { proto::api::MountKind::Bind => "bind", proto::api::MountKind::Tmpfs => "tmpfs" },
                "source": m.source,
                "target": m.target,
                "readonly": m.readonly,
                "propagation": m.propagation,
                "size": m.size,
            })).collect::<Vec<_>>(),
            "read_only": c.read_only,
            "cap_add": c.cap_add,
            "cap_drop": c.cap_drop,
            "tty": c.interactive.tty.is_some(),
            "interactive": c.interactive.stdin,
        },
        "error": info.error,
    })
}

/// The `log` object of `inspect`: the log writer's first error, whether
/// writes still fail, and what was dropped (`null`: not known).
pub(crate) fn log_status_json(st: Option<&proto::monitor::LogStatus>) -> Value {
    match st {
        None => Value::Null,
        Some(st) => json!({
            "error": st.error,
            "error_at": st.error_at.map(rfc3339_nanos),
            "failing": st.failing,
            "dropped_records": st.dropped_records,
            "dropped_bytes": st.dropped_bytes,
        }),
    }
}

/// `ps --format json`: a pretty JSON array of [`info_json`] objects, with a
/// final newline.
pub(crate) fn json_list(infos: &[ContainerDetails]) -> anyhow::Result<String> {
    let list = Value::Array(infos.iter().map(info_json).collect());
    pretty(&list)
}

/// A JSON value, pretty-printed, with a final newline.
pub(crate) fn pretty(v: &Value) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(v).context("format JSON")?;
    s.push('\n');
    Ok(s)
}

/// `ps`: NAME, STATUS as docker words it ("Up 3 minutes", "Exited (7) 2
/// seconds ago"), PID, COMMAND (cut at 20 characters unless `no_trunc`),
/// CREATED ("5 minutes ago"); `now` in unix nanoseconds.
pub(crate) fn table(infos: &[ContainerDetails], now: i64, no_trunc: bool) -> String {
    let dash = || "-".to_string();
    let mut rows = vec![["NAME", "STATUS", "PID", "COMMAND", "CREATED"].map(String::from)];
    for i in infos {
        rows.push([
            i.name.clone(),
            status_words(i, now),
            i.pid.map_or_else(dash, |p| p.to_string()),
            command(&i.args, no_trunc),
            format!("{} ago", human(now - i.created_at)),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let [padded @ .., last] = row;
        for (cell, w) in padded.iter().zip(widths) {
            // Writing to a String cannot fail.
            let _ = write!(out, "{cell:<w$}   ");
        }
        out.push_str(last);
        out.push('\n');
    }
    out
}

/// docker's STATUS column.
pub(crate) fn status_words(i: &ContainerDetails, now: i64) -> String {
    let since = |t: Option<i64>| t.map_or_else(String::new, |t| format!(" {}", human(now - t)));
    match i.status {
        proto::Status::Created => "Created".into(),
        proto::Status::Running if i.next_restart_at.is_some() => "Restarting".into(),
        proto::Status::Running => format!("Up{}", since(i.started_at)),
        proto::Status::Paused => format!("Up{} (Paused)", since(i.started_at)),
        proto::Status::Exited => {
            let code = i
                .exit
                .as_ref()
                .map_or(String::new(), |e| format!(" ({})", e.code));
            match (i.next_restart_at, i.finished_at) {
                (Some(_), Some(t)) => format!("Restarting{code} {} ago", human(now - t)),
                (None, Some(t)) => format!("Exited{code} {} ago", human(now - t)),
                (_, None) => format!("Exited{code}"),
            }
        }
        proto::Status::Unknown => "Unknown".into(),
    }
}

/// A duration as docker words it: "Less than a second", "3 seconds",
/// "About a minute", "5 minutes", "About an hour", "3 hours", "2 days",
/// "3 weeks", "4 months", "2 years".
pub(crate) fn human(nanos: i64) -> String {
    let s = nanos.max(0) / 1_000_000_000;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match s {
        0 => "Less than a second".into(),
        1..=59 => plural(s, "second"),
        60..=119 => "About a minute".into(),
        120..=3599 => plural(s / 60, "minute"),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => plural(s / 3600, "hour"),
        172_800..=1_209_599 => plural(s / 86400, "day"),
        1_209_600..=7_775_999 => plural(s / 604_800, "week"),
        7_776_000..=63_071_999 => plural(s / 2_592_000, "month"),
        _ => plural(s / 31_536_000, "year"),
    }
}

/// The command line, quoted as docker shows it, cut to 20 characters.
fn command(args: &[String], no_trunc: bool) -> String {
    let line = args.join(" ");
    if no_trunc || line.chars().count() <= 20 {
        format!("\"{line}\"")
    } else {
        format!("\"{}…\"", line.chars().take(19).collect::<String>())
    }
}

/// Checks a template: every `{{` closed, each action `.Field` or
/// `.Field.Sub`.
pub(crate) fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(format!("unclosed {{{{ in {t:?}"));
        };
        let action = after[..j].trim();
        if !action.starts_with('.') {
            return Err(format!(
                "{{{{{action}}}}}: only fields are supported ({{{{.Name}}}}, {{{{.Labels.app}}}})"
            ));
        }
        rest = &after[j + 2..];
    }
    Ok(())
}

/// docker's field name to ours: `ExitCode` → `exit_code`.
fn snake(field: &str) -> String {
    let mut out = String::new();
    for (i, c) in field.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Renders a template over `v` (the `inspect` object): `{{.Name}}`,
/// `{{.Labels.app}}`; strings bare, other values as JSON, null as empty.
///
/// # Errors
/// A field the object does not have, by name.
pub(crate) fn render(t: &str, v: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after.find("}}").context("unclosed {{")?;
        let path = after[..j].trim().trim_start_matches('.');
        let mut cur = v;
        for (n, part) in path.split('.').filter(|p| !p.is_empty()).enumerate() {
            // Labels keep their own spelling; our keys are snake_case.
            let key = if n == 0 {
                snake(part)
            } else {
                part.to_string()
            };
            cur = cur
                .get(&key)
                .or_else(|| cur.get(part))
                .with_context(|| format!("no field {path:?} (the fields are inspect's)"))?;
        }
        match cur {
            Value::String(s) => out.push_str(s),
            Value::Null => {}
            other => out.push_str(&other.to_string()),
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One container's line of `stats`.
#[derive(Debug, Clone)]
pub(crate) struct StatsRow {
    pub name: String,
    pub cpu_percent: f64,
    pub stats: proto::api::Stats,
}

/// `stats`: NAME, CPU %, MEM USAGE / LIMIT, MEM %, PIDS, as docker shows
/// them (binary units; no limit: `-`).
pub(crate) fn stats_table(rows: &[StatsRow]) -> String {
    let mut out = format!(
        "{:<20} {:>8}   {:<22} {:>7}   {}\n",
        "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"
    );
    for r in rows {
        let s = &r.stats;
        let (limit, percent) = if s.memory_limit == 0 || s.memory_limit >= 1 << 62 {
            ("-".to_string(), "-".to_string())
        } else {
            (
                bytes(s.memory_limit),
                format!(
                    "{:.2}%",
                    s.memory_usage as f64 / s.memory_limit as f64 * 100.0
                ),
            )
        };
        let _ = writeln!(
            out,
            "{:<20} {:>7.2}%   {:<22} {:>7}   {}",
            r.name,
            r.cpu_percent,
            format!("{} / {limit}", bytes(s.memory_usage)),
            percent,
            s.pids_current
        );
    }
    out
}

/// `stats --format json`: one array per round.
pub(crate) fn stats_json(rows: &[StatsRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "cpu_percent": (r.cpu_percent * 100.0).round() / 100.0,
                    "memory_usage": r.stats.memory_usage,
                    "memory_limit": r.stats.memory_limit,
                    "cpu_usage_ns": r.stats.cpu_usage_ns,
                    "pids_current": r.stats.pids_current,
                    "pids_limit": r.stats.pids_limit,
                })
            })
            .collect(),
    )
}

/// Bytes in docker's binary units: `512B`, `1.5KiB`, `12.3MiB`, `2GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        let t = format!("{v:.2}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        format!("{t}{}", UNITS[u])
    }
}

/// `top`: PID, PPID, USER, TIME, COMMAND.
pub(crate) fn top(list: &[proto::api::Process]) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:<10} {:>9}  COMMAND\n",
        "PID", "PPID", "USER", "TIME"
    );
    for p in list {
        let secs = p.cpu_ms / 1000;
        let time = format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        let _ = writeln!(
            out,
            "{:<8} {:<8} {:<10} {:>9}  {}",
            p.pid, p.ppid, p.user, time, p.command
        );
    }
    out
}

/// An event as one JSON object.
pub(crate) fn event_json(e: &proto::api::Event) -> Value {
    let mut v = json!({
        "time": rfc3339_nanos(e.time),
        "ns": e.ns,
        "name": e.name,
        "type": e.kind.word(),
    });
    match &e.kind {
        proto::api::EventKind::Exited {
            code,
            signal,
            oom_killed,
        } => {
            v["exit_code"] = json!(code);
            v["signal"] = json!(signal);
            v["oom_killed"] = json!(oom_killed);
        }
        proto::api::EventKind::Restarting { attempt, delay_ms } => {
            v["attempt"] = json!(attempt);
            v["delay_ms"] = json!(delay_ms);
        }
        _ => {}
    }
    v
}

/// An event as a line: time, ns/name, type, details.
pub(crate) fn event_line(e: &proto::api::Event) -> String {
    let detail = match &e.kind {
        proto::api::EventKind::Exited {
            code, oom_killed, ..
        } => {
            format!(
                " (exit code {code}{})",
                if *oom_killed { ", oom killed" } else { "" }
            )
        }
        proto::api::EventKind::Restarting { attempt, delay_ms } => {
            format!(" (attempt {attempt} in {delay_ms} ms)")
        }
        _ => String::new(),
    };
    format!(
        "{} {}/{} {}{detail}\n",
        rfc3339_nanos(e.time),
        e.ns,
        e.name,
        e.kind.word()
    )
}

/// Writes `text` to stdout. A closed pipe is not an error: the reader has
/// gone, and every caller prints last, so nothing is lost by ending quietly.
///
/// # Errors
/// Any other write failure.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write to stdout"),
    }
}

/// Copies one chunk of container log to our stdout or stderr, flushed so the
/// two streams interleave as they arrived.
///
/// # Errors
/// The write failed (callers check for a broken pipe).
pub(crate) fn write_log(stream: Stream, data: &[u8]) -> io::Result<()> {
    match stream {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(data)?;
            out.flush()
        }
        Stream::Stderr => {
            let mut err = io::stderr().lock();
            err.write_all(data)?;
            err.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::{ExitRecord, Status};

    use super::*;

    const T0: i64 = 1_700_000_000_123_456_789;

    fn info(name: &str, status: Status) -> ContainerDetails {
        ContainerDetails {
            ns: "default".into(),
            name: name.into(),
            status,
            pid: None,
            exit: None,
            log_path: "/var/log/contd/default/web.log".into(),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            created_at: T0,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            next_restart_at: None,
            config: proto::api::ContainerConfig {
                rootfs: "/srv/rootfs".into(),
                ..Default::default()
            },
            error: None,
        }
    }

    #[test]
    fn json_of_a_running_container_has_nulls_for_exit_fields() {
        let mut i = info("web", Status::Running);
        i.pid = Some(42);
        i.config.labels = vec![("app".into(), "web".into())];
        let v = info_json(&i);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = [
            "ns",
            "name",
            "status",
            "pid",
            "exit_code",
            "exit_signal",
            "oom_killed",
            "log_path",
            "rootfs",
            "args",
            "created",
            "started_at",
            "finished_at",
            "restart_policy",
            "restart_count",
            "next_restart_at",
            "config",
            "labels",
            "error",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["status"], "running");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["args"], json!(["sh", "-c", "true"]));
        assert_eq!(v["created"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(v["labels"], json!({"app": "web"}));
        assert_eq!(v["oom_killed"], false);
        for k in [
            "exit_code",
            "exit_signal",
            "started_at",
            "finished_at",
            "next_restart_at",
            "error",
        ] {
            assert!(v[k].is_null(), "{k}: {}", v[k]);
        }
    }

    #[test]
    fn json_of_an_exited_container_reports_the_record() {
        let mut i = info("web", Status::Exited);
        i.exit = Some(ExitRecord {
            code: 137,
            signal: Some(9),
            oom_killed: true,
            started_at: Some(T0 + 1_000_000_000),
            finished_at: T0 + 2_000_000_000,
            protocol: 1,
        });
        i.started_at = Some(T0 + 1_000_000_000);
        i.finished_at = Some(T0 + 2_000_000_000);
        i.error = Some("monitor gone".into());
        let v = info_json(&i);
        assert_eq!(v["status"], "exited");
        assert!(v["pid"].is_null());
        assert_eq!(v["exit_code"], 137);
        assert_eq!(v["exit_signal"], 9);
        assert_eq!(v["oom_killed"], true);
        assert_eq!(v["started_at"], "2023-11-14T22:13:21.123456789Z");
        assert_eq!(v["finished_at"], "2023-11-14T22:13:22.123456789Z");
        assert_eq!(v["error"], "monitor gone");
        assert_eq!(v["labels"], json!({}));

        let list: Value = serde_json::from_str(&json_list(&[i]).unwrap()).unwrap();
        assert_eq!(list, json!([v]));
    }

    #[test]
    fn table_aligns_columns_and_words_status_and_times_as_docker() {
        let mut a = info("a-long-name", Status::Running);
        a.pid = Some(1234);
        a.started_at = Some(T0);
        let mut b = info("b", Status::Exited);
        b.args = vec!["sh".into(), "-c".into(), "while true; do date; done".into()];
        b.exit = Some(ExitRecord {
            code: 3,
            signal: None,
            oom_killed: false,
            started_at: None,
            finished_at: T0,
            protocol: 1,
        });
        b.finished_at = Some(T0);
        let now = T0 + 180 * 1_000_000_000;
        let t = table(&[a.clone(), b.clone()], now, false);
        let want = "\
NAME          STATUS                     PID    COMMAND                  CREATED
a-long-name   Up 3 minutes               1234   \"sh -c true\"             3 minutes ago
b             Exited (3) 3 minutes ago   -      \"sh -c while true; d…\"   3 minutes ago
";
        assert_eq!(t, want);
        assert!(table(&[b], now, true).contains("\"sh -c while true; do date; done\""));
        assert_eq!(
            table(&[], now, false),
            "NAME   STATUS   PID   COMMAND   CREATED\n"
        );
        for (secs, words) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (150, "2 minutes"),
            (3600, "About an hour"),
            (3 * 3600, "3 hours"),
            (3 * 86400, "3 days"),
            (21 * 86400, "3 weeks"),
            (100 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ] {
            assert_eq!(human(secs * 1_000_000_000), words);
        }
        a.status = Status::Paused;
        assert_eq!(status_words(&a, now), "Up 3 minutes (Paused)");
    }

    #[test]
    fn stats_table_in_binary_units() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(64 << 20), "64MiB");
        let row = |limit| StatsRow {
            name: "web".into(),
            cpu_percent: 12.345,
            stats: proto::api::Stats {
                memory_usage: 16 << 20,
                memory_limit: limit,
                cpu_usage_ns: 0,
                pids_current: 3,
                pids_limit: 0,
            },
        };
        let t = stats_table(&[row(64 << 20), row(0)]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{t}");
        assert!(
            lines[1].contains("12.35%") && lines[1].contains("16MiB / 64MiB"),
            "{t}"
        );
        assert!(
            lines[1].contains("25.00%") && lines[1].ends_with('3'),
            "{t}"
        );
        assert!(lines[2].contains("16MiB / -"), "{t}");
    }

    #[test]
    fn templates_as_docker_spells_them() {
        let mut i = info("web", Status::Running);
        i.pid = Some(42);
        i.config.labels = vec![("app".into(), "shop".into())];
        let v = info_json(&i);
        assert_eq!(
            render(
                "{{.Name}} {{ .Status }} pid={{.Pid}} {{.Labels.app}} {{.ExitCode}}.",
                &v
            )
            .unwrap(),
            "web running pid=42 shop ."
        );
        assert!(render("{{.Nope}}", &v).is_err());
        assert!(check_template("{{.Name}").is_err());
        assert!(check_template("{{json .}}").is_err());
        assert!(check_template("x {{.Name}} y").is_ok());
    }
}

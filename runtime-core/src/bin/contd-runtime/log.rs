//! Error, warning and debug records, in runc's shapes so that tools which
//! parse runc's output understand ours: on stderr one logfmt line as
//! logrus's text formatter writes it (`time="…" level=error msg="…"`),
//! and with `--log` a record in the log file (the same text, or a JSON
//! object per line with `--log-format json`, which containerd's shim
//! reads back).

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Logger {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
}

impl Logger {
    pub fn new(file: Option<&Path>, format: &str, debug: bool) -> Self {
        Logger {
            file: file.map(Path::to_path_buf),
            json: format == "json",
            debug,
        }
    }

    fn record(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else {
            return;
        };
        let time = runtime_core::rfc3339_nanos(runtime_core::now_nanos());
        let line = if self.json {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        } else {
            logfmt(&time, level, msg)
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// One line on stderr, as runc's logrus prints it (seconds, UTC).
    fn stderr(level: &str, msg: &str) {
        let time = runtime_core::rfc3339_nanos(runtime_core::now_nanos());
        // 2006-01-02T15:04:05.999999999Z -> 2006-01-02T15:04:05Z
        let secs = format!("{}Z", time.split('.').next().unwrap_or(&time));
        eprintln!("{}", logfmt(&secs, level, msg));
    }

    /// A fatal error: stderr and the log.
    pub fn error(&self, msg: &str) {
        Self::stderr("error", msg);
        self.record("error", msg);
    }

    /// A warning: stderr and the log.
    pub fn warn(&self, msg: &str) {
        Self::stderr("warning", msg);
        self.record("warning", msg);
    }

    /// With --debug only.
    pub fn debug(&self, msg: &str) {
        if self.debug {
            if self.file.is_none() {
                Self::stderr("debug", msg);
            }
            self.record("debug", msg);
        }
    }
}

/// `time=… level=… msg=…` with logrus's quoting.
fn logfmt(time: &str, level: &str, msg: &str) -> String {
    format!(
        "time={} level={} msg={}",
        value(time),
        value(level),
        value(msg)
    )
}

/// A logfmt value as logrus writes it: bare if it holds only
/// `[A-Za-z0-9-._/@^+]` (and is not empty), else quoted like Go's `%q`.
fn value(v: &str) -> String {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if bare {
        v.to_string()
    } else {
        go_quote(v)
    }
}

/// Go's `strconv.Quote`: `\a \b \f \n \r \t \v \\ \"` escaped, other
/// control characters as `\x..`, `\u....` or `\U........`, printable
/// Unicode as is.
fn go_quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_as_logrus() {
        assert_eq!(
            logfmt("2026-01-02T03:04:05Z", "error", "container \"x\" exists\n"),
            r#"time="2026-01-02T03:04:05Z" level=error msg="container \"x\" exists\n""#
        );
        assert_eq!(value("ok"), "ok");
        assert_eq!(value(""), r#""""#);
        assert_eq!(value("tab\there\u{1}é"), r#""tab\there\x01é""#);
        assert_eq!(value("a\\b"), r#""a\\b""#);
    }
}

//! Error and debug records: one plain line on stderr, and with `--log` a
//! logrus-style record in the log file (text `time=… level=… msg=…`, or a
//! JSON object per line), the format containerd's shim reads back.

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
            format!("time={time:?} level={level} msg={msg:?}")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// A fatal error: stderr and the log.
    pub fn error(&self, msg: &str) {
        eprintln!("contd-runtime: {msg}");
        self.record("error", msg);
    }

    /// A warning: stderr and the log.
    pub fn warn(&self, msg: &str) {
        eprintln!("contd-runtime: warning: {msg}");
        self.record("warning", msg);
    }

    /// With --debug only.
    pub fn debug(&self, msg: &str) {
        if self.debug {
            if self.file.is_none() {
                eprintln!("contd-runtime: debug: {msg}");
            }
            self.record("debug", msg);
        }
    }
}

//! What runtime-core keeps on disk for a container (`state.json` in the
//! container's runtime state dir), so another process can find it again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext};

/// The persisted facts; status itself is never stored, it is derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    /// Container id.
    pub id: String,
    /// Host pid of init.
    pub pid: i32,
    /// Init's start time in clock ticks since boot, to detect pid reuse.
    pub pid_start_time: u64,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Root filesystem.
    pub rootfs: PathBuf,
    /// cgroup path relative to each hierarchy root.
    pub cgroup_path: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Annotations from the spec.
    pub annotations: std::collections::HashMap<String, String>,
}

pub(crate) const STATE_FILE: &str = "state.json";
pub use proto::time::{now_nanos, rfc3339_nanos};

pub(crate) const FIFO: &str = "exec.fifo";

/// Copy of the checked spec kept in the state dir, for `exec`.
pub(crate) const CONFIG_COPY: &str = "config.json";

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The state of a container as the runtime spec (and runc) print it, and as
/// hooks get it on stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciState {
    /// Runtime-spec version.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Host pid of init; 0 once stopped.
    pub pid: i32,
    /// creating, created, running, paused or stopped.
    pub status: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Root filesystem.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Owner: the user who created it (empty for root, as runc).
    pub owner: String,
    /// Annotations from the spec.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

impl Persisted {
    /// Writes `state.json` atomically (temp file + rename).
    pub(crate) fn save(&self, dir: &Path) -> Result<(), Error> {
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec(self).map_err(|e| Error::Init(e.to_string()))?;
        std::fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(STATE_FILE)).ctx(|| format!("rename {}", tmp.display()))
    }

    /// Reads `state.json`.
    pub(crate) fn load(dir: &Path) -> Result<Self, Error> {
        let p = dir.join(STATE_FILE);
        let data = std::fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&data).map_err(|e| Error::Io {
            what: format!("parse {}", p.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }
}

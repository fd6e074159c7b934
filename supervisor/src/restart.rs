//! Restart policies with docker's semantics, and their state on disk
//! (`restart.json` in the container's state dir), so a restart of contd
//! neither resets the counters nor loses a pending restart.

use std::path::Path;
use std::time::Duration;

use proto::api::RestartPolicy;
use proto::ExitRecord;
use serde::{Deserialize, Serialize};

/// The first backoff; it doubles with each consecutive restart.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest backoff (docker's).
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A container that ran this long starts its backoff afresh.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// What the policy keeps across restarts of contd.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RestartState {
    /// Restarts the policy decided (shown by inspect).
    pub count: u32,
    /// Restarts in a row without a 10 s run between them (the backoff's
    /// exponent).
    pub consecutive: u32,
    /// Stopped or killed through the api: no restart until the next start.
    pub stopped: bool,
    /// When the pending restart is due (unix nanoseconds).
    pub pending: Option<i64>,
}

const FILE: &str = "restart.json";

impl RestartState {
    /// Reads the state (none on disk: the initial one).
    pub(crate) fn load(dir: &Path) -> Self {
        std::fs::read(dir.join(FILE))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    /// Writes the state durably (write, fsync, rename).
    pub(crate) fn save(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = dir.join(".restart.json.tmp");
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))
    }

    /// After `rec`, whether the policy restarts the container, and after
    /// what delay; counts the restart when it does.
    pub(crate) fn decide(&mut self, policy: RestartPolicy, rec: &ExitRecord) -> Option<Duration> {
        if self.stopped {
            return None;
        }
        let restart = match policy {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => rec.code != 0 && (max == 0 || self.count < max),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        };
        if !restart {
            return None;
        }
        let ran = rec
            .started_at
            .map(|s| Duration::from_nanos(rec.finished_at.saturating_sub(s).max(0) as u64));
        if ran.is_some_and(|r| r >= RESET_AFTER) {
            self.consecutive = 0;
        }
        let delay = FIRST_DELAY
            .saturating_mul(1u32 << self.consecutive.min(20))
            .min(MAX_DELAY);
        self.consecutive = self.consecutive.saturating_add(1);
        self.count = self.count.saturating_add(1);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32, ran_ms: i64) -> ExitRecord {
        ExitRecord {
            code,
            signal: None,
            oom_killed: false,
            started_at: Some(0),
            finished_at: ran_ms * 1_000_000,
            protocol: 4,
        }
    }

    #[test]
    fn docker_semantics() {
        let mut s = RestartState::default();
        assert_eq!(s.decide(RestartPolicy::No, &exit(1, 5)), None);
        assert_eq!(
            s.decide(RestartPolicy::OnFailure { max: 0 }, &exit(0, 5)),
            None
        );
        let delays: Vec<_> = (0..4)
            .map(|_| s.decide(RestartPolicy::OnFailure { max: 0 }, &exit(1, 5)))
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800].map(|ms| Some(Duration::from_millis(ms)))
        );
        assert_eq!(s.count, 4);
        // A 10 s run starts the backoff afresh.
        assert_eq!(
            s.decide(RestartPolicy::Always, &exit(0, 10_000)),
            Some(FIRST_DELAY)
        );
        let mut capped = RestartState {
            consecutive: 30,
            ..Default::default()
        };
        assert_eq!(
            capped.decide(RestartPolicy::Always, &exit(0, 1)),
            Some(MAX_DELAY)
        );
        let mut max = RestartState::default();
        let p = RestartPolicy::OnFailure { max: 2 };
        assert!(max.decide(p, &exit(1, 1)).is_some());
        assert!(max.decide(p, &exit(1, 1)).is_some());
        assert_eq!(max.decide(p, &exit(1, 1)), None);
        let mut stopped = RestartState {
            stopped: true,
            ..Default::default()
        };
        assert_eq!(stopped.decide(RestartPolicy::Always, &exit(1, 1)), None);
    }

    #[test]
    fn state_survives_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RestartState::load(dir.path()), RestartState::default());
        let s = RestartState {
            count: 3,
            consecutive: 2,
            stopped: false,
            pending: Some(42),
        };
        s.save(dir.path()).unwrap();
        assert_eq!(RestartState::load(dir.path()), s);
    }
}

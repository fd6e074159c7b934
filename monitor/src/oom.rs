//! Live OOM-kill notifications for the container's cgroup, so the exit
//! record says `oom_killed` even when the counter cannot be read after the
//! exit (the cgroup removed, or the kill was of a child, not init).
//!
//! - cgroup v1: an eventfd registered on `memory.oom_control` through
//!   `cgroup.event_control`; the kernel signals it on every OOM.
//! - cgroup v2: an inotify watch on `memory.events`: the kernel marks the
//!   file modified whenever one of its counters changes, and the monitor
//!   re-reads `oom_kill` (it only counts up).
//!
//! Both are best effort: without them the counter is still re-read once
//! after the exit (see `finalize`).

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// A registered watch.
#[derive(Debug)]
pub(crate) enum OomWatch {
    /// cgroup v1: the eventfd.
    EventFd(std::fs::File),
    /// cgroup v2: inotify on `memory.events`, and the `oom_kill` count
    /// when the watch was set.
    Events {
        inotify: Inotify,
        file: PathBuf,
        baseline: u64,
    },
}

/// What a readable watch meant.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// An OOM kill happened in the cgroup.
    Oom,
    /// Something else changed (another counter); keep watching.
    Nothing,
    /// The watch is dead (the cgroup is gone): stop polling it.
    Gone,
}

impl OomWatch {
    /// Watches the cgroup at `cgroup_path` (relative to the hierarchy).
    pub(crate) fn register(cgroup_path: &str) -> Option<OomWatch> {
        if runtime_core::cgroup_v2() {
            let file = Path::new("/sys/fs/cgroup")
                .join(cgroup_path.trim_start_matches('/'))
                .join("memory.events");
            Self::watch_events(file)
        } else {
            Self::eventfd(cgroup_path)
        }
    }

    /// The v2 watch on a `memory.events` file.
    pub(crate) fn watch_events(file: PathBuf) -> Option<OomWatch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        inotify.add_watch(&file, AddWatchFlags::IN_MODIFY).ok()?;
        let baseline = oom_kills(&file)?;
        Some(OomWatch::Events {
            inotify,
            file,
            baseline,
        })
    }

    fn eventfd(cgroup_path: &str) -> Option<OomWatch> {
        use std::os::fd::AsRawFd;
        let dir = Path::new("/sys/fs/cgroup/memory").join(cgroup_path.trim_start_matches('/'));
        let control = std::fs::File::open(dir.join("memory.oom_control")).ok()?;
        let efd = crate::sys::eventfd().ok()?;
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        std::fs::write(dir.join("cgroup.event_control"), line).ok()?;
        // The kernel holds its own reference to the control file now.
        Some(OomWatch::EventFd(std::fs::File::from(efd)))
    }

    /// The fd to poll for reading.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            OomWatch::EventFd(f) => f.as_fd(),
            OomWatch::Events { inotify, .. } => inotify.as_fd(),
        }
    }

    /// Reads what made the fd readable.
    pub(crate) fn read(&mut self) -> Event {
        match self {
            OomWatch::EventFd(f) => {
                let mut count = [0u8; 8];
                match f.read(&mut count) {
                    Ok(8) => Event::Oom,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Event::Nothing,
                    // The cgroup is gone (signalled at removal) or broken.
                    _ => Event::Gone,
                }
            }
            OomWatch::Events {
                inotify,
                file,
                baseline,
            } => {
                let mut gone = false;
                loop {
                    match inotify.read_events() {
                        Ok(evs) if evs.is_empty() => break,
                        Ok(evs) => {
                            gone |= evs.iter().any(|e| {
                                e.mask.intersects(
                                    AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF,
                                )
                            });
                        }
                        Err(nix::errno::Errno::EAGAIN) => break,
                        Err(_) => return Event::Gone,
                    }
                }
                match oom_kills(file) {
                    Some(n) if n > *baseline => Event::Oom,
                    Some(_) if !gone => Event::Nothing,
                    _ => Event::Gone,
                }
            }
        }
    }
}

/// The `oom_kill` counter of a v2 `memory.events` file (0 when the line is
/// missing: kernels before 4.13 count no kills there).
fn oom_kills(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    Some(runtime_core::oom_kill_field(&text).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\noom_group_kill 0\n";

    /// The v2 watch on a stand-in file: cgroupfs reports a `memory.events`
    /// change as IN_MODIFY, as a write does here (this machine's cgroup2
    /// mount has no memory controller to produce a real one).
    #[test]
    fn memory_events_watch_sees_an_oom_kill_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        std::fs::write(&file, EVENTS).unwrap();
        let mut w = OomWatch::watch_events(file.clone()).unwrap();
        assert_eq!(w.read(), Event::Nothing);
        // Another counter moves: not an OOM kill.
        std::fs::write(&file, EVENTS.replace("max 3", "max 4")).unwrap();
        assert!(poll_readable(&w));
        assert_eq!(w.read(), Event::Nothing);
        assert!(!poll_readable(&w), "events drained");
        std::fs::write(&file, EVENTS.replace("oom_kill 0", "oom_kill 1")).unwrap();
        assert!(poll_readable(&w));
        assert_eq!(w.read(), Event::Oom);
        // The cgroup removed: the watch ends.
        std::fs::remove_file(&file).unwrap();
        assert!(poll_readable(&w));
        assert_eq!(w.read(), Event::Gone);
    }

    #[test]
    fn a_count_from_before_the_watch_is_not_an_oom() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        std::fs::write(&file, EVENTS.replace("oom_kill 0", "oom_kill 2")).unwrap();
        let mut w = OomWatch::watch_events(file.clone()).unwrap();
        std::fs::write(&file, EVENTS.replace("oom_kill 0", "oom_kill 2")).unwrap();
        assert_eq!(w.read(), Event::Nothing);
        std::fs::write(&file, EVENTS.replace("oom_kill 0", "oom_kill 3")).unwrap();
        assert_eq!(w.read(), Event::Oom);
    }

    #[test]
    fn no_watch_without_the_file() {
        assert!(OomWatch::watch_events(PathBuf::from("/nonexistent/memory.events")).is_none());
    }

    fn poll_readable(w: &OomWatch) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(w.fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(1000u16)).unwrap() == 1
    }
}

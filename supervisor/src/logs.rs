//! Reading a container's log back (the format's home is `proto::cri`):
//! the whole log, its last lines, the lines since a time, and following
//! it until the container exits.

use std::collections::VecDeque;
use std::io::{BufRead, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::api::{EventKind, LogOptions, Stream};
use tokio::sync::{broadcast, mpsc};

use crate::Error;

/// Largest chunk sent at once.
const CHUNK: usize = 256 * 1024;
/// How often a followed log is looked at for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// A piece of a container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// stdout or stderr.
    pub stream: Stream,
    /// Whole lines, newline included where the container wrote one.
    pub data: Vec<u8>,
    /// When the first of them was written (unix nanoseconds), if its
    /// record says. From [`SupervisorHandle::logs_lines`](crate::SupervisorHandle::logs_lines)
    /// each chunk is one line.
    pub time: Option<i64>,
}

/// A log being read: chunks in order, then the end.
#[derive(Debug)]
pub struct LogStream {
    rx: mpsc::Receiver<Result<LogChunk, Error>>,
}

impl LogStream {
    /// The next chunk; `None` at the end of the log (with `follow`: once
    /// the container has exited and its last line is read).
    ///
    /// # Errors
    /// A log file that cannot be read.
    pub async fn next(&mut self) -> Option<Result<LogChunk, Error>> {
        self.rx.recv().await
    }
}

/// One line: its stream, its time, its text (newline included if whole).
struct Line {
    stream: Stream,
    time: Option<i64>,
    text: Vec<u8>,
}

/// Joins records into lines, across files and reads.
#[derive(Default)]
struct Assembler {
    partial: [Option<(Option<i64>, Vec<u8>)>; 2],
}

impl Assembler {
    fn feed(&mut self, record: &[u8]) -> Option<Line> {
        let r = proto::cri::parse(record)?;
        let slot = &mut self.partial[r.stream as usize];
        let (time, mut text) = slot.take().unwrap_or((r.time, Vec::new()));
        text.extend_from_slice(r.text);
        if r.full {
            text.push(b'\n');
            Some(Line {
                stream: r.stream,
                time,
                text,
            })
        } else {
            *slot = Some((time, text));
            None
        }
    }

    /// What is left unfinished (the container's last, unterminated line).
    fn rest(&mut self) -> Vec<Line> {
        let mut out = Vec::new();
        for (i, slot) in self.partial.iter_mut().enumerate() {
            if let Some((time, text)) = slot.take() {
                let stream = if i == 0 {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                out.push(Line { stream, time, text });
            }
        }
        out
    }
}

/// Sends lines as chunks, merging neighbours of one stream.
struct Sender {
    tx: mpsc::Sender<Result<LogChunk, Error>>,
    current: Option<LogChunk>,
    /// One line per chunk (with its time).
    per_line: bool,
}

impl Sender {
    async fn push(&mut self, line: Line) -> Result<(), ()> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| self.per_line || c.stream != line.stream || c.data.len() >= CHUNK)
        {
            self.flush().await?;
        }
        let c = self.current.get_or_insert_with(|| LogChunk {
            stream: line.stream,
            data: Vec::new(),
            time: line.time,
        });
        c.data.extend_from_slice(&line.text);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ()> {
        if let Some(c) = self.current.take() {
            self.tx.send(Ok(c)).await.map_err(drop)?;
        }
        Ok(())
    }
}

/// Reads complete records from `file` (from its current position) into
/// `out`; a record still being written (no newline yet) is left for the
/// next read.
fn read_records(
    file: &mut std::fs::File,
    asm: &mut Assembler,
    out: &mut Vec<Line>,
) -> std::io::Result<()> {
    let start = file.stream_position()?;
    let mut r = std::io::BufReader::new(&mut *file);
    let mut consumed = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        consumed += n as u64;
        if let Some(line) = asm.feed(&buf[..n - 1]) {
            out.push(line);
        }
    }
    drop(r);
    file.seek(std::io::SeekFrom::Start(start + consumed))?;
    Ok(())
}

/// Starts reading `path`'s log for `opts`. `exits` tells a follower the
/// container is done (subscribe before the first read: nothing is missed).
/// With `per_line`, each chunk is one line.
pub(crate) fn stream(
    path: PathBuf,
    opts: LogOptions,
    running: bool,
    mut exits: broadcast::Receiver<proto::api::Event>,
    who: (String, String),
    per_line: bool,
) -> LogStream {
    let (tx, rx) = mpsc::channel(if per_line { 64 } else { 8 });
    tokio::spawn(async move {
        let mut sender = Sender {
            tx,
            current: None,
            per_line,
        };
        let old = {
            let path = path.clone();
            let opts = opts.clone();
            let finished = !(opts.follow && running);
            tokio::task::spawn_blocking(move || read_all(&path, &opts, finished)).await
        };
        let (lines, mut live, mut asm) = match old {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = sender.tx.send(Err(e)).await;
                return;
            }
            Err(e) => {
                let _ = sender.tx.send(Err(Error::internal(e.to_string()))).await;
                return;
            }
        };
        for l in lines {
            if sender.push(l).await.is_err() {
                return;
            }
        }
        if !(opts.follow && running) {
            let _ = sender.flush().await;
            return;
        }
        let mut done = false;
        loop {
            if sender.flush().await.is_err() {
                return;
            }
            if !done {
                tokio::select! {
                    ev = exits.recv() => match ev {
                        Ok(e) if e.ns == who.0 && e.name == who.1 => {
                            done = matches!(
                                e.kind,
                                EventKind::Exited { .. } | EventKind::Removed | EventKind::MonitorLost
                            );
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => done = true,
                    },
                    () = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
            }
            let (more, next) = {
                let p = path.clone();
                let mut cur = live.take();
                let r = tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    let r = follow_step(&p, &mut cur, &mut asm, &mut out);
                    (r.map(|()| out), cur, asm)
                })
                .await;
                match r {
                    Ok((Ok(out), cur, a)) => {
                        asm = a;
                        (out, cur)
                    }
                    Ok((Err(e), _, _)) => {
                        let _ = sender
                            .tx
                            .send(Err(Error::internal(format!(
                                "read {}: {e}",
                                path.display()
                            ))))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = sender.tx.send(Err(Error::internal(e.to_string()))).await;
                        return;
                    }
                }
            };
            live = next;
            for l in more {
                if sender.push(l).await.is_err() {
                    return;
                }
            }
            if done {
                for l in asm.rest() {
                    if sender.push(l).await.is_err() {
                        return;
                    }
                }
                let _ = sender.flush().await;
                return;
            }
        }
    });
    LogStream { rx }
}

/// What [`read_all`] read: the lines, the live file positioned after
/// them and the unfinished line, for a follower.
type ReadAll = (Vec<Line>, Option<std::fs::File>, Assembler);

/// Reads what the log holds now, with tail and since applied. With
/// `finished` (no more is coming), the container's last words without a
/// newline count as a line; else they are left for the follower.
fn read_all(path: &Path, opts: &LogOptions, finished: bool) -> Result<ReadAll, Error> {
    let mut asm = Assembler::default();
    let mut lines = VecDeque::new();
    let mut live = None;
    let files = proto::cri::files(path);
    let last = files.len() - 1;
    for (i, f) in files.into_iter().enumerate() {
        let mut file = match std::fs::File::open(&f) {
            Ok(file) => file,
            // Rotated away meanwhile, or no output yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::internal(format!("open {}: {e}", f.display()))),
        };
        let mut out = Vec::new();
        read_records(&mut file, &mut asm, &mut out)
            .map_err(|e| Error::internal(format!("read {}: {e}", f.display())))?;
        for l in out {
            if opts.since.is_some_and(|s| l.time.is_some_and(|t| t < s)) {
                continue;
            }
            lines.push_back(l);
            if let Some(n) = opts.tail {
                while lines.len() as u64 > n {
                    lines.pop_front();
                }
            }
        }
        if i == last {
            live = Some(file);
        }
    }
    if finished {
        for l in asm.rest() {
            lines.push_back(l);
        }
        if let Some(n) = opts.tail {
            while lines.len() as u64 > n {
                lines.pop_front();
            }
        }
    }
    Ok((lines.into(), live, asm))
}

/// One look at a followed log: new lines of the open file and, once it
/// has been rotated away (the path names another file), of the new one.
fn follow_step(
    path: &Path,
    cur: &mut Option<std::fs::File>,
    asm: &mut Assembler,
    out: &mut Vec<Line>,
) -> std::io::Result<()> {
    if let Some(f) = cur.as_mut() {
        read_records(f, asm, out)?;
    }
    let now = match std::fs::metadata(path) {
        Ok(m) => Some((m.dev(), m.ino())),
        Err(_) => None,
    };
    let ours = match cur.as_ref() {
        Some(f) => {
            let m = f.metadata()?;
            Some((m.dev(), m.ino()))
        }
        None => None,
    };
    if now.is_some() && now != ours {
        let mut f = std::fs::File::open(path)?;
        read_records(&mut f, asm, out)?;
        *cur = Some(f);
    }
    Ok(())
}

/// Removes a removed container's log files, or with `keep` moves them
/// aside to `<log dir>/.removed/<name>-<created>/`: a new container of the
/// same name never shows an earlier one's lines.
pub(crate) fn remove(path: &Path, keep: bool, created_at: i64) {
    let files: Vec<PathBuf> = proto::cri::files(path)
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    if keep {
        let (Some(dir), Some(name)) = (path.parent(), path.file_stem()) else {
            return;
        };
        let aside = dir
            .join(".removed")
            .join(format!("{}-{created_at}", name.to_string_lossy()));
        if std::fs::create_dir_all(&aside).is_err() {
            return;
        }
        for f in files {
            if let Some(n) = f.file_name() {
                let _ = std::fs::rename(&f, aside.join(n));
            }
        }
    } else {
        for f in files {
            let _ = std::fs::remove_file(f);
        }
    }
    // The writer's spare file, left by a crash mid-rotation.
    if let (Some(dir), Some(n)) = (path.parent(), path.file_name()) {
        let _ = std::fs::remove_file(dir.join(format!(".{}.new", n.to_string_lossy())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_log(path: &Path, records: &[(i64, &str, bool, &str)]) {
        let mut buf = Vec::new();
        for (t, stream, full, text) in records {
            let s = if *stream == "out" {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            proto::cri::write_record(
                &mut buf,
                &proto::time::rfc3339_nanos(*t),
                s,
                *full,
                text.as_bytes(),
            );
        }
        std::fs::write(path, buf).unwrap();
    }

    fn text(lines: &[Line]) -> String {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text))
            .collect()
    }

    #[test]
    fn tail_since_and_partials() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        write_log(
            &proto::cri::rotated(&log, 1),
            &[(1, "out", true, "one"), (2, "out", false, "tw")],
        );
        write_log(
            &log,
            &[
                (3, "out", true, "o"),
                (4, "err", true, "three"),
                (5, "out", false, "four"),
            ],
        );
        let all = |o: LogOptions| text(&read_all(&log, &o, !o.follow).unwrap().0);
        assert_eq!(all(LogOptions::default()), "one\ntwo\nthree\nfour");
        assert_eq!(
            all(LogOptions {
                tail: Some(2),
                ..Default::default()
            }),
            "three\nfour"
        );
        assert_eq!(
            all(LogOptions {
                tail: Some(0),
                ..Default::default()
            }),
            ""
        );
        // A line's time is its first record's.
        assert_eq!(
            all(LogOptions {
                since: Some(3),
                ..Default::default()
            }),
            "three\nfour"
        );
    }

    #[test]
    fn removal_takes_every_file_or_keeps_them_aside() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        for keep in [false, true] {
            write_log(&log, &[(1, "out", true, "x")]);
            write_log(&proto::cri::rotated(&log, 1), &[(1, "out", true, "y")]);
            remove(&log, keep, 42);
            assert!(!log.exists() && !proto::cri::rotated(&log, 1).exists());
            assert_eq!(dir.path().join(".removed/c-42/c.log").exists(), keep);
        }
    }
}

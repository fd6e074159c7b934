//! The container's log, written by the monitor itself in the CRI format:
//! `<RFC 3339 UTC, nanoseconds> <stdout|stderr> <F|P> <text>\n`, one record
//! per line; a line longer than [`MAX_LINE`] is cut into `P` records ended by
//! an `F` one.
//!
//! # Rotation
//!
//! With [`LogLimits::max_size`] set, the live file never grows past it (but
//! for a single record longer than the limit, which gets a file of its own):
//! before a record that would not fit, the live file becomes `<log>.1`, the
//! older ones move one number up (`<log>.1` → `<log>.2` …), those beyond
//! [`LogLimits::max_files`]` - 1` are unlinked, and a fresh empty `<log>`
//! takes its place. Files are only renamed and unlinked, never truncated or
//! copied, and a record is never split across two files. The size counter
//! starts from the size of the file found at open (a restarted monitor, a
//! second container on the same path).
//!
//! # Write errors
//!
//! A record that cannot be written (full disk, quota, any error) is dropped
//! and counted; the first error is kept. Nothing is retried: the next record
//! is simply tried again, so logging resumes by itself once there is room.
//! The container is never blocked on its log and the monitor never panics
//! over it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

/// The longest text a single record carries.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// When the log is rotated and how many files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogLimits {
    /// The live file is rotated before a record would make it larger than
    /// this many bytes; 0 never rotates.
    pub max_size: u64,
    /// Files kept in all, the live one included (docker's json-file
    /// `max-file`): the rotated ones are `<log>.1` (the newest) up to
    /// `<log>.<max_files - 1>`. 1 keeps only the live file, so a rotation
    /// discards the old content and `<log>` starts again empty. 0 is read
    /// as 1.
    pub max_files: u32,
}

impl Default for LogLimits {
    /// No rotation: one file that grows for ever.
    fn default() -> Self {
        LogLimits {
            max_size: 0,
            max_files: 1,
        }
    }
}

pub(crate) use proto::api::Stream;

/// The log file and the unfinished line of each stream.
#[derive(Debug)]
pub(crate) struct LogWriter {
    path: PathBuf,
    limits: LogLimits,
    file: File,
    /// Bytes in the live file: its size when opened plus what was written.
    size: u64,
    /// Rotate when a record would take the live file past this: `max_size`,
    /// or further on after a failed rotation, so that a rotation that cannot
    /// be done is tried once per `max_size` bytes rather than per record.
    rotate_at: u64,
    /// Whether the path is a regular file; a device or a fifo (`/dev/null`,
    /// `/dev/stdout`) is never renamed.
    rotatable: bool,
    /// Names changed since the last [`LogWriter::sync`]: the directory needs
    /// an fsync too.
    renamed: bool,
    /// The live file ends in a piece of a record that could not be cut off
    /// again; the next record starts with a newline to close that line.
    torn: bool,
    pending: [Vec<u8>; 2],
    /// Records built from one read, written with one `write` (one per
    /// line cost twice the time per MB; conmon writes once per read too).
    batch: Vec<u8>,
    /// How many records `batch` holds.
    batch_records: u64,
    /// The timestamp of the records of the current read.
    stamp: String,
    /// The first error met writing or rotating the log, kept once; writing
    /// goes on being tried.
    pub(crate) error: Option<io::Error>,
    /// When `error` happened (unix nanoseconds).
    error_at: Option<i64>,
    /// The latest write failed.
    failing: bool,
    /// Records dropped because they could not be written.
    pub(crate) dropped_records: u64,
    /// Bytes of those records.
    pub(crate) dropped_bytes: u64,
}

impl LogWriter {
    /// Opens (or creates) the log at `path` for appending, rotated as
    /// `limits` say.
    ///
    /// # Errors
    /// If the file cannot be opened.
    #[cfg(test)]
    pub(crate) fn open(path: &Path, limits: LogLimits) -> io::Result<Self> {
        Ok(Self::from_file(path, open_append(path)?, limits))
    }

    /// A writer on `file`, opened for appending at `path` (see
    /// [`open_append`]); the size counter starts from the file's size.
    pub(crate) fn from_file(path: &Path, file: File, limits: LogLimits) -> Self {
        let (len, is_file) = file
            .metadata()
            .map_or((0, false), |m| (m.len(), m.is_file()));
        let limits = LogLimits {
            max_files: limits.max_files.max(1),
            ..limits
        };
        LogWriter {
            path: path.to_path_buf(),
            limits,
            file,
            size: len,
            rotate_at: limits.max_size,
            rotatable: is_file && path.file_name().is_some(),
            renamed: false,
            torn: false,
            pending: [Vec::new(), Vec::new()],
            batch: Vec::new(),
            batch_records: 0,
            stamp: String::new(),
            error: None,
            error_at: None,
            failing: false,
            dropped_records: 0,
            dropped_bytes: 0,
        }
    }

    /// Takes a chunk read from a stream and writes every complete line.
    pub(crate) fn feed(&mut self, stream: Stream, data: &[u8]) {
        let i = stream as usize;
        // One timestamp per read: the lines of one read arrived together.
        self.stamp = proto::time::rfc3339_nanos(proto::time::now_nanos());
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            if self.pending[i].is_empty() {
                self.record(stream, true, &rest[..pos]);
            } else {
                let mut line = std::mem::take(&mut self.pending[i]);
                line.extend_from_slice(&rest[..pos]);
                self.record(stream, true, &line);
            }
            rest = &rest[pos + 1..];
        }
        self.pending[i].extend_from_slice(rest);
        while self.pending[i].len() >= MAX_LINE {
            let chunk: Vec<u8> = self.pending[i].drain(..MAX_LINE).collect();
            self.record(stream, false, &chunk);
        }
        self.flush_batch();
    }

    /// The stream ended: a last line without newline is written as `F`.
    pub(crate) fn finish(&mut self, stream: Stream) {
        let line = std::mem::take(&mut self.pending[stream as usize]);
        if !line.is_empty() {
            self.stamp = proto::time::rfc3339_nanos(proto::time::now_nanos());
            self.record(stream, true, &line);
            self.flush_batch();
        }
    }

    /// Forces the log to disk (at exit, before the exit record), and its
    /// directory too if a rotation renamed files since the last call.
    pub(crate) fn sync(&mut self) {
        self.flush_batch();
        if let Err(e) = self.file.sync_data() {
            self.keep_error(e);
        }
        if self.renamed {
            match sync_dir(&self.path) {
                Ok(()) => self.renamed = false,
                Err(e) => {
                    self.keep_error(e);
                }
            }
        }
    }

    /// Adds one record to the batch; a rotation due first writes the batch
    /// to the old file, so a record never straddles two files.
    fn record(&mut self, stream: Stream, full: bool, text: &[u8]) {
        let len = proto::cri::record_len(&self.stamp, stream, text) as u64;
        if self.rotatable
            && self.limits.max_size > 0
            && self.size + self.batch.len() as u64 > 0
            && (self.size + self.batch.len() as u64).saturating_add(len) > self.rotate_at
        {
            self.flush_batch();
            match self.rotate() {
                Ok(()) => {
                    self.rotate_at = self.limits.max_size;
                    self.torn = false;
                }
                Err(e) => {
                    // The record goes into the old file, over the limit:
                    // better a big file than a lost line.
                    self.keep_error(e);
                    self.rotate_at = self.size.saturating_add(self.limits.max_size);
                }
            }
        }
        if self.batch.is_empty() && self.torn {
            self.batch.push(b'\n');
        }
        proto::cri::write_record(&mut self.batch, &self.stamp, stream, full, text);
        self.batch_records += 1;
    }

    /// Writes the batch with one `write` on the O_APPEND file, so records
    /// never interleave. A failure (full disk) is remembered and the batch's
    /// records dropped and counted; the container never waits on its log.
    fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let len = self.batch.len() as u64;
        match write_whole(&mut self.file, &self.batch) {
            Ok(()) => {
                self.size += len;
                self.torn = false;
                self.failing = false;
            }
            Err((written, e)) => {
                self.keep_error(e);
                self.failing = true;
                self.dropped_records += self.batch_records;
                self.dropped_bytes += len;
                if written > 0 {
                    // A short write, then a failure: the file ends in a piece
                    // of a record. Cut it off so the file still ends on a
                    // whole record; where that fails too (an append-only
                    // file), close the line with the next record instead.
                    match cut_back(&mut self.file, written) {
                        Ok(()) => {}
                        Err(e) => {
                            self.keep_error(e);
                            self.size += written;
                            self.torn = true;
                        }
                    }
                }
            }
        }
        self.batch.clear();
        self.batch_records = 0;
        // A flood leaves a big buffer; keep memory small between bursts.
        if self.batch.capacity() > 64 * 1024 {
            self.batch.shrink_to(16 * 1024);
        }
    }

    /// Moves the live file to `<log>.1`, the rotated ones one number up
    /// (dropping those beyond `max_files - 1`), and puts a fresh empty file
    /// at `<log>`, which then receives the records.
    ///
    /// `<log>` never goes missing: the fresh file is made first under a
    /// spare name, the live file gets its second name `<log>.1` by a hard
    /// link, and renaming the fresh file over `<log>` switches from the old
    /// file to the new in one atomic step. Only on a filesystem without hard
    /// links is the live file renamed to `<log>.1` instead; `<log>` is then
    /// absent for the one system call between the two renames. A reader that
    /// holds the old file open reads it to its end; one that follows the name
    /// (`tail -F`) reopens. While the rotated files shift, a reader listing
    /// them may see one number missing (`<log>.1` has moved to `<log>.2` and
    /// the link is not made yet), never a file under two numbers.
    ///
    /// Nothing is fsynced here, neither the old file nor the directory. The
    /// promise is that no line is lost when the supervisor or the monitor
    /// die, and a process's death never undoes a rename or a write that
    /// returned: every reader sees it at once. Only a host crash could lose
    /// them, and it can lose the lines themselves as well, which are not
    /// fsynced before the container exits either. An fsync per rotation would
    /// stall the single-threaded poll loop on the disk while the container's
    /// pipes fill up. Instead, [`LogWriter::sync`] at exit fsyncs the
    /// directory after the live file if names changed, so the log's names
    /// are on disk before the exit record that follows them.
    ///
    /// # Errors
    /// If the fresh file cannot be made or put in place; the live file is
    /// then left as it was (an error renaming or unlinking an old rotated
    /// file is only recorded). A failure after the older files have shifted
    /// (both the link and the rename of the live file refused, or the spare
    /// file not renamed, in a directory where it could just be created)
    /// leaves them shifted: the oldest is gone and `<log>.1` is missing
    /// until the next rotation that succeeds.
    fn rotate(&mut self) -> io::Result<()> {
        let spare = self.spare_path();
        // First the fresh file: if that fails (no inode left, quota), nothing
        // has moved yet.
        let fresh = open_append(&spare)?;
        let keep = u64::from(self.limits.max_files - 1);
        // The rotated files there are: `<log>.1` … `<log>.top`, numbered
        // without a gap.
        let mut top = 0u64;
        while std::fs::symlink_metadata(self.rotated(top + 1)).is_ok() {
            top += 1;
        }
        // Drop the oldest, and what a larger `max_files` left behind, from
        // the top down so a crash leaves no gap. `<log>.keep` would be
        // replaced by the rename below anyway; with keep 1, `<log>.1` must
        // go to make room for the link.
        for i in (keep.max(1)..=top).rev() {
            self.note(ignore_missing(std::fs::remove_file(self.rotated(i))));
        }
        for i in (1..=top.min(keep.saturating_sub(1))).rev() {
            self.note(ignore_missing(std::fs::rename(
                self.rotated(i),
                self.rotated(i + 1),
            )));
        }
        // How the old file got its second name, to undo it on failure.
        let mut moved = None;
        if keep > 0 {
            let first = self.rotated(1);
            match std::fs::hard_link(&self.path, &first) {
                Ok(()) => moved = Some(false),
                // The live file was deleted under us: nothing to keep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => match std::fs::rename(&self.path, &first) {
                    Ok(()) => moved = Some(true),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        let _ = std::fs::remove_file(&spare);
                        return Err(e);
                    }
                },
            }
        }
        if let Err(e) = std::fs::rename(&spare, &self.path) {
            // Back to the old file under `<log>`, which stays live.
            let first = self.rotated(1);
            let _ = match moved {
                Some(true) => std::fs::rename(&first, &self.path),
                Some(false) => std::fs::remove_file(&first),
                None => Ok(()),
            };
            let _ = std::fs::remove_file(&spare);
            return Err(e);
        }
        self.size = fresh.metadata().map_or(0, |m| m.len());
        self.file = fresh;
        self.renamed = true;
        Ok(())
    }

    /// Keeps the first error met, and when.
    fn keep_error(&mut self, e: io::Error) {
        if self.error.is_none() {
            self.error = Some(e);
            self.error_at = Some(proto::time::now_nanos());
        }
    }

    /// How the writer fares, for the supervisor.
    pub(crate) fn status(&self) -> proto::monitor::LogStatus {
        proto::monitor::LogStatus {
            error: self.error.as_ref().map(ToString::to_string),
            error_at: self.error_at,
            failing: self.failing,
            dropped_records: self.dropped_records,
            dropped_bytes: self.dropped_bytes,
        }
    }

    /// Keeps the first error of a step that does not stop the rotation.
    fn note(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.keep_error(e);
        }
    }

    /// `<log>.n`
    fn rotated(&self, n: u64) -> PathBuf {
        proto::cri::rotated(&self.path, n)
    }

    /// `.<log name>.new` beside the log: where the fresh file is made. A
    /// leftover of a crash is empty (nothing is written there before it is
    /// renamed) and simply reused.
    fn spare_path(&self) -> PathBuf {
        let mut name = OsString::from(".");
        if let Some(n) = self.path.file_name() {
            name.push(n);
        }
        name.push(".new");
        self.path.with_file_name(name)
    }
}

/// Opens `path` for appending, creating it (mode 0640) if needed;
/// close-on-exec.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Writes all of `buf`, retrying only interrupted and short writes; on
/// failure, says how much had been written.
fn write_whole(file: &mut File, buf: &[u8]) -> Result<(), (u64, io::Error)> {
    let mut done = 0;
    while done < buf.len() {
        match file.write(&buf[done..]) {
            Ok(0) => return Err((done as u64, io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done as u64, e)),
        }
    }
    Ok(())
}

/// Removes the last `written` bytes, the piece of a record a failed write
/// left at the end of an O_APPEND file (whose offset is its end).
fn cut_back(file: &mut File, written: u64) -> io::Result<()> {
    let end = file.stream_position()?;
    file.set_len(end.saturating_sub(written))
}

/// fsyncs the directory holding `path`.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits one line as CRI, checking every field: (stream, tag, text).
    fn parse(line: &str) -> (&str, &str, &str) {
        let mut it = line.splitn(4, ' ');
        let ts = it.next().unwrap();
        assert!(
            ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "timestamp in {line:?}"
        );
        let stream = it.next().unwrap_or_default();
        assert!(stream == "stdout" || stream == "stderr", "{line:?}");
        let tag = it.next().unwrap_or_default();
        assert!(tag == "F" || tag == "P", "{line:?}");
        (stream, tag, it.next().expect("text"))
    }

    /// The texts of a file's records, each line checked as whole CRI.
    fn texts(p: &Path) -> Vec<String> {
        let data = std::fs::read_to_string(p).unwrap();
        assert!(
            data.is_empty() || data.ends_with('\n'),
            "{p:?} ends mid-line"
        );
        data.lines()
            .map(|l| {
                let (stream, tag, text) = parse(l);
                assert_eq!((stream, tag), ("stdout", "F"));
                text.to_string()
            })
            .collect()
    }

    /// The texts of the log and its rotated files, oldest first.
    fn all_texts(p: &Path, max_files: u32) -> Vec<String> {
        let mut files: Vec<PathBuf> = (1..max_files)
            .rev()
            .map(|i| PathBuf::from(format!("{}.{i}", p.display())))
            .filter(|f| f.exists())
            .collect();
        files.push(p.to_path_buf());
        files.iter().flat_map(|f| texts(f)).collect()
    }

    /// The names in a directory, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// `line 0000` …: with the timestamp, every record is 50 bytes.
    fn lines(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("line {i:04}")).collect()
    }
    const REC: u64 = 50;

    fn write_lines(w: &mut LogWriter, lines: &[String]) {
        for l in lines {
            w.feed(Stream::Stdout, format!("{l}\n").as_bytes());
        }
    }

    fn limits(max_size: u64, max_files: u32) -> LogLimits {
        LogLimits {
            max_size,
            max_files,
        }
    }

    #[test]
    fn lines_partials_and_final_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p, LogLimits::default()).unwrap();
        w.feed(Stream::Stdout, b"one\ntw");
        w.feed(Stream::Stderr, b"err\n");
        w.feed(Stream::Stdout, b"o\n");
        w.feed(Stream::Stdout, &vec![b'x'; MAX_LINE + 5]);
        w.feed(Stream::Stdout, b"\nlast");
        w.finish(Stream::Stdout);
        let text = std::fs::read_to_string(&p).unwrap();
        let recs: Vec<(&str, &str, usize)> = text
            .lines()
            .map(|l| {
                let (stream, tag, text) = parse(l);
                (stream, tag, text.len())
            })
            .collect();
        assert_eq!(
            recs,
            vec![
                ("stdout", "F", 3),
                ("stderr", "F", 3),
                ("stdout", "F", 3),
                ("stdout", "P", MAX_LINE),
                ("stdout", "F", 5),
                ("stdout", "F", 4),
            ]
        );
        assert!(w.error.is_none());
        assert_eq!(w.dropped_records, 0);
    }

    #[test]
    fn rotation_keeps_every_line_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p, limits(4 * REC, 10)).unwrap();
        let sent = lines(30);
        write_lines(&mut w, &sent);
        w.sync();
        assert!(w.error.is_none(), "{:?}", w.error);
        // 7 full files of 4 records, 2 records in the live one.
        let mut want = vec!["c.log".to_string()];
        want.extend((1..=7).map(|i| format!("c.log.{i}")));
        want.sort();
        assert_eq!(names(dir.path()), want);
        for i in 1..=7 {
            let f = dir.path().join(format!("c.log.{i}"));
            assert_eq!(std::fs::metadata(&f).unwrap().len(), 4 * REC, "{f:?}");
        }
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 2 * REC);
        assert_eq!(all_texts(&p, 10), sent);
    }

    #[test]
    fn rotation_drops_the_oldest_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p, limits(4 * REC, 3)).unwrap();
        let sent = lines(30);
        write_lines(&mut w, &sent);
        assert!(w.error.is_none(), "{:?}", w.error);
        assert_eq!(names(dir.path()), ["c.log", "c.log.1", "c.log.2"]);
        assert_eq!(texts(&dir.path().join("c.log.2")), sent[20..24]);
        assert_eq!(texts(&dir.path().join("c.log.1")), sent[24..28]);
        assert_eq!(texts(&p), sent[28..]);
    }

    #[test]
    fn one_file_means_the_old_content_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p, limits(4 * REC, 1)).unwrap();
        let sent = lines(10);
        write_lines(&mut w, &sent);
        assert!(w.error.is_none(), "{:?}", w.error);
        assert_eq!(names(dir.path()), ["c.log"]);
        assert_eq!(texts(&p), sent[8..]);
    }

    #[test]
    fn leftovers_of_a_larger_max_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        for i in 1..=6 {
            std::fs::write(dir.path().join(format!("c.log.{i}")), format!("old {i}\n")).unwrap();
        }
        let mut w = LogWriter::open(&p, limits(4 * REC, 3)).unwrap();
        let sent = lines(5);
        write_lines(&mut w, &sent);
        assert!(w.error.is_none(), "{:?}", w.error);
        assert_eq!(names(dir.path()), ["c.log", "c.log.1", "c.log.2"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("c.log.2")).unwrap(),
            "old 1\n"
        );
        assert_eq!(texts(&dir.path().join("c.log.1")), sent[..4]);
        assert_eq!(texts(&p), sent[4..]);
    }

    #[test]
    fn size_counts_from_the_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let max = 4 * REC;
        let old = format!("{}\n", "x".repeat(max as usize - 11));
        std::fs::write(&p, &old).unwrap();
        let mut w = LogWriter::open(&p, limits(max, 5)).unwrap();
        write_lines(&mut w, &lines(1));
        assert!(w.error.is_none(), "{:?}", w.error);
        assert_eq!(names(dir.path()), ["c.log", "c.log.1"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("c.log.1")).unwrap(),
            old
        );
        assert_eq!(texts(&p), ["line 0000"]);

        // A second writer on the same path (a restarted monitor) goes on
        // counting: 1 record there, 3 more fit, the 4th rotates.
        drop(w);
        let mut w = LogWriter::open(&p, limits(max, 5)).unwrap();
        let sent = lines(5);
        write_lines(&mut w, &sent[1..4]);
        assert_eq!(names(dir.path()), ["c.log", "c.log.1"]);
        write_lines(&mut w, &sent[4..]);
        assert_eq!(names(dir.path()), ["c.log", "c.log.1", "c.log.2"]);
        assert_eq!(texts(&dir.path().join("c.log.1")), sent[..4]);
        assert_eq!(texts(&p), sent[4..]);
    }

    #[test]
    fn a_log_deleted_under_the_writer_comes_back_at_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p, limits(2 * REC, 3)).unwrap();
        let sent = lines(3);
        write_lines(&mut w, &sent[..2]);
        std::fs::remove_file(&p).unwrap();
        write_lines(&mut w, &sent[2..]);
        assert!(w.error.is_none(), "{:?}", w.error);
        assert_eq!(names(dir.path()), ["c.log"]);
        assert_eq!(texts(&p), sent[2..]);
    }

    #[test]
    fn a_record_larger_than_max_size_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p, limits(2 * REC, 5)).unwrap();
        let big = "y".repeat(300);
        write_lines(&mut w, &["a".to_string(), big.clone(), "b".to_string()]);
        assert!(w.error.is_none(), "{:?}", w.error);
        assert_eq!(texts(&dir.path().join("c.log.2")), ["a"]);
        assert_eq!(texts(&dir.path().join("c.log.1")), [big]);
        assert_eq!(texts(&p), ["b"]);
    }

    #[test]
    fn write_errors_drop_and_count_records() {
        // Every write to /dev/full fails with ENOSPC. (No rotation limits:
        // a device is never renamed anyway, but this is the host's.)
        let mut w = LogWriter::open(Path::new("/dev/full"), LogLimits::default()).unwrap();
        write_lines(&mut w, &lines(3));
        w.feed(Stream::Stderr, b"partial");
        w.finish(Stream::Stderr);
        w.sync();
        let e = w.error.as_ref().expect("an error");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert!(w.failing, "the last write failed");
        assert_eq!(w.dropped_records, 4);
        assert_eq!(w.dropped_bytes, 3 * REC + 30 + 10 + 8);
    }

    /// Where the child process of `torn_record_is_cut_off` works.
    const FSIZE_DIR: &str = "CONTD_LOG_TEST_FSIZE_DIR";

    #[test]
    fn torn_record_is_cut_off_and_writing_resumes() {
        // RLIMIT_FSIZE holds for the whole process: the test proper runs
        // alone in a child process, this test binary again.
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "log::tests::fsize_child", "--test-threads=1"])
            .env(FSIZE_DIR, dir.path())
            .output()
            .unwrap();
        let say = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{say}");
        assert!(dir.path().join("done").exists(), "child did not run: {say}");
    }

    /// Run by `torn_record_is_cut_off_and_writing_resumes` only.
    #[test]
    fn fsize_child() {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        use nix::sys::signal::{SigSet, Signal};
        let Some(dir) = std::env::var_os(FSIZE_DIR) else {
            return;
        };
        let dir = PathBuf::from(dir);
        let p = dir.join("c.log");
        // Past the limit the kernel sends SIGXFSZ; blocked, it only leaves
        // the write failing with EFBIG.
        let mut set = SigSet::empty();
        set.add(Signal::SIGXFSZ);
        set.thread_block().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
        let mut w = LogWriter::open(&p, LogLimits::default()).unwrap();
        // Two records fit, the third is cut short after 20 bytes.
        setrlimit(Resource::RLIMIT_FSIZE, 2 * REC + 20, hard).unwrap();
        let sent = lines(4);
        write_lines(&mut w, &sent[..3]);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 2 * REC);
        assert_eq!(w.dropped_records, 1);
        assert_eq!(w.dropped_bytes, REC);
        let e = w.error.as_ref().expect("an error");
        assert_eq!(e.raw_os_error(), Some(libc::EFBIG));
        // Room again: writing resumes on a record boundary.
        setrlimit(Resource::RLIMIT_FSIZE, soft, hard).unwrap();
        write_lines(&mut w, &sent[3..]);
        assert_eq!(texts(&p), [sent[0].as_str(), &sent[1], &sent[3]]);
        assert_eq!(w.dropped_records, 1);
        std::fs::write(dir.join("done"), "").unwrap();
    }
}

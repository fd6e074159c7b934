//! The container's log, written by the monitor itself in the CRI format:
//! `<RFC 3339 UTC, nanoseconds> <stdout|stderr> <F|P> <text>\n`, one record
//! per line; a line longer than [`MAX_LINE`] is cut into `P` records ended by
//! an `F` one.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// The longest text a single record carries.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// One of the two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn word(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file and the unfinished line of each stream.
#[derive(Debug)]
pub(crate) struct LogWriter {
    file: File,
    pending: [Vec<u8>; 2],
    /// The first write error, reported once; writing goes on being tried.
    pub(crate) error: Option<io::Error>,
}

impl LogWriter {
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(LogWriter {
            file,
            pending: [Vec::new(), Vec::new()],
            error: None,
        })
    }

    /// Takes a chunk read from a stream and writes every complete line.
    pub(crate) fn feed(&mut self, stream: Stream, data: &[u8]) {
        let i = stream as usize;
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[i]);
            line.extend_from_slice(&rest[..pos]);
            self.record(stream, b'F', &line);
            rest = &rest[pos + 1..];
        }
        self.pending[i].extend_from_slice(rest);
        while self.pending[i].len() >= MAX_LINE {
            let chunk: Vec<u8> = self.pending[i].drain(..MAX_LINE).collect();
            self.record(stream, b'P', &chunk);
        }
    }

    /// The stream ended: a last line without newline is written as `F`.
    pub(crate) fn finish(&mut self, stream: Stream) {
        let line = std::mem::take(&mut self.pending[stream as usize]);
        if !line.is_empty() {
            self.record(stream, b'F', &line);
        }
    }

    /// Forces the log to disk (at exit, before the exit record).
    pub(crate) fn sync(&mut self) {
        if let Err(e) = self.file.sync_data() {
            self.error.get_or_insert(e);
        }
    }

    fn record(&mut self, stream: Stream, tag: u8, text: &[u8]) {
        let ts = proto::time::rfc3339_nanos(proto::time::now_nanos());
        let mut rec = Vec::with_capacity(ts.len() + text.len() + 12);
        rec.extend_from_slice(ts.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.word().as_bytes());
        rec.push(b' ');
        rec.push(tag);
        rec.push(b' ');
        rec.extend_from_slice(text);
        rec.push(b'\n');
        // One write per record on an O_APPEND file: records never interleave.
        // A failure (full disk) is remembered and the record dropped; the
        // container is never blocked on its log.
        if let Err(e) = self.file.write_all(&rec) {
            self.error.get_or_insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_partials_and_final_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p).unwrap();
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
                let mut it = l.splitn(4, ' ');
                let ts = it.next().unwrap();
                assert!(ts.ends_with('Z') && ts.len() == 30, "{ts}");
                (
                    it.next().unwrap(),
                    it.next().unwrap(),
                    it.next().unwrap().len(),
                )
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
    }
}

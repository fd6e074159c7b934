//! The CRI log format, its one home: the monitor writes it, contd reads
//! it back for `logs`.
//!
//! Each record is one line: `<RFC 3339 nanos> <stdout|stderr> <F|P> <text>`,
//! `F` ending a line the container wrote, `P` a part of a longer one. A log
//! at `<path>` rotates to `<path>.1` (newest) … `<path>.N` (oldest).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::api::Stream;

/// The stream's word in a record.
pub fn stream_word(s: Stream) -> &'static str {
    match s {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// Appends one record to `out`.
pub fn write_record(out: &mut Vec<u8>, stamp: &str, stream: Stream, full: bool, text: &[u8]) {
    out.extend_from_slice(stamp.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream_word(stream).as_bytes());
    out.push(b' ');
    out.push(if full { b'F' } else { b'P' });
    out.push(b' ');
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// The length of a record of `text` stamped with `stamp`, newline included.
pub fn record_len(stamp: &str, stream: Stream, text: &[u8]) -> usize {
    stamp.len() + stream_word(stream).len() + text.len() + 5
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its timestamp (unix nanoseconds), if it parses.
    pub time: Option<i64>,
    /// Which stream.
    pub stream: Stream,
    /// Whether it ends a line.
    pub full: bool,
    /// The text, without the newline.
    pub text: &'a [u8],
}

/// Parses one record (the line without its newline).
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = parts.next()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let time = std::str::from_utf8(ts)
        .ok()
        .and_then(crate::time::parse_rfc3339);
    Some(Record {
        time,
        stream,
        full,
        text: parts.next().unwrap_or_default(),
    })
}

/// `<path>.n`, the n-th rotated file (1 is the newest).
pub fn rotated(path: &Path, n: u64) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The log's files that exist, oldest first: `<path>.N` … `<path>.1`, then
/// `<path>` (listed even if it does not exist yet).
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for k in 1.. {
        let p = rotated(path, k);
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out.reverse();
    out.push(path.to_path_buf());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        let stamp = crate::time::rfc3339_nanos(1_700_000_000_123_456_789);
        write_record(&mut buf, &stamp, Stream::Stderr, false, b"hello world");
        assert_eq!(
            buf.len(),
            record_len(&stamp, Stream::Stderr, b"hello world")
        );
        let r = parse(&buf[..buf.len() - 1]).unwrap();
        assert_eq!(
            r,
            Record {
                time: Some(1_700_000_000_123_456_789),
                stream: Stream::Stderr,
                full: false,
                text: b"hello world",
            }
        );
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(parse(b"t stdout X text"), None);
    }

    #[test]
    fn files_are_oldest_first() {
        let dir = std::env::temp_dir().join(format!("cri-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("a.log");
        for n in [1, 2] {
            std::fs::write(rotated(&log, n), "").unwrap();
        }
        assert_eq!(
            files(&log),
            vec![rotated(&log, 2), rotated(&log, 1), log.clone()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

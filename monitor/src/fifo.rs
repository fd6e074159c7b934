//! A container's output into a fifo that containerd (or ctr) reads, without
//! ever blocking the container: the monitor keeps reading its pipes
//! whatever the reader does. What the fifo cannot take now waits in
//! memory, then in a spill file beside it, and drains to the fifo in order
//! when the reader is back (containerd restarted, a slow log writer caught
//! up). The spill is bounded; past the bound output is dropped and counted
//! (never silently: the count is logged when the sink closes).
//!
//! The fifo is opened read-write: the open never blocks or fails for want
//! of a reader, and a reader that goes away leaves no EPIPE, only a full
//! pipe, which the next reader empties.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Pending output kept in memory before the spill file is used.
const MEMORY: usize = 64 << 10;
/// The spill file's bound (bytes not yet drained). The bundle is on a
/// tmpfs on most nodes: this is memory.
pub(crate) const SPILL_LIMIT: u64 = 256 << 20;
/// Drained spill is given back (a hole punched) in steps of this much.
const PUNCH: u64 = 1 << 20;

#[derive(Debug)]
pub(crate) struct FifoSink {
    fifo: Option<File>,
    /// Pending bytes held in memory, oldest first.
    mem: Vec<u8>,
    /// Bytes past `mem`, in the spill file: `[read, len)` still to drain.
    spill: Option<File>,
    spill_path: PathBuf,
    spill_read: u64,
    spill_len: u64,
    /// Drained bytes before this offset are punched out of the file.
    punched: u64,
    limit: u64,
    dropped: u64,
    /// Close once the pending output is drained (the process ended).
    closing: bool,
}

/// Opens a fifo for writing without blocking and without needing a reader.
pub(crate) fn open_fifo_rw(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

impl FifoSink {
    /// A sink into the fifo at `path`; what waits goes to `spill_path`.
    pub(crate) fn open(path: &Path, spill_path: PathBuf) -> io::Result<FifoSink> {
        Ok(FifoSink::new(open_fifo_rw(path)?, spill_path, SPILL_LIMIT))
    }

    pub(crate) fn new(fifo: File, spill_path: PathBuf, limit: u64) -> FifoSink {
        FifoSink {
            fifo: Some(fifo),
            mem: Vec::new(),
            spill: None,
            spill_path,
            spill_read: 0,
            spill_len: 0,
            punched: 0,
            limit,
            dropped: 0,
            closing: false,
        }
    }

    /// Output of the process: to the fifo if it takes it now, else queued
    /// behind what already waits.
    pub(crate) fn write(&mut self, mut data: &[u8]) {
        if self.fifo.is_none() {
            return;
        }
        if !self.pending() {
            let n = self.write_now(data);
            data = &data[n..];
        }
        if data.is_empty() {
            return;
        }
        if self.spill_len == 0 && self.mem.len() + data.len() <= MEMORY {
            self.mem.extend_from_slice(data);
            return;
        }
        self.spill_out(data);
    }

    fn write_now(&mut self, data: &[u8]) -> usize {
        let Some(f) = self.fifo.as_mut() else {
            return data.len();
        };
        let mut done = 0;
        while done < data.len() {
            match f.write(&data[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock: full; anything else: kept for a later try.
                Err(_) => break,
            }
        }
        done
    }

    fn spill_out(&mut self, data: &[u8]) {
        if self.spill_len - self.spill_read + data.len() as u64 > self.limit {
            self.dropped += data.len() as u64;
            return;
        }
        if self.spill.is_none() {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&self.spill_path)
            {
                Ok(f) => self.spill = Some(f),
                Err(_) => {
                    self.dropped += data.len() as u64;
                    return;
                }
            }
        }
        let Some(f) = self.spill.as_mut() else {
            return;
        };
        let written = f
            .seek(SeekFrom::Start(self.spill_len))
            .and_then(|_| f.write_all(data));
        match written {
            Ok(()) => self.spill_len += data.len() as u64,
            Err(_) => self.dropped += data.len() as u64,
        }
    }

    /// Whether output waits for the fifo (poll it for writing).
    pub(crate) fn pending(&self) -> bool {
        !self.mem.is_empty() || self.spill_read < self.spill_len
    }

    /// The fifo, while open.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fifo.as_ref().map(AsFd::as_fd)
    }

    /// Moves what waits into the fifo, as much as it takes now.
    pub(crate) fn drain(&mut self) {
        if !self.mem.is_empty() {
            let mem = std::mem::take(&mut self.mem);
            let n = self.write_now(&mem);
            self.mem = mem[n..].to_vec();
            if !self.mem.is_empty() {
                return;
            }
        }
        let mut buf = vec![0u8; 64 << 10];
        while self.spill_read < self.spill_len {
            let Some(f) = self.spill.as_mut() else {
                return;
            };
            let want = ((self.spill_len - self.spill_read) as usize).min(buf.len());
            let got = f
                .seek(SeekFrom::Start(self.spill_read))
                .and_then(|_| f.read(&mut buf[..want]));
            let n = match got {
                Ok(0) | Err(_) => {
                    // The spill file lost what it held: counted, gone.
                    self.dropped += self.spill_len - self.spill_read;
                    self.spill_read = self.spill_len;
                    break;
                }
                Ok(n) => n,
            };
            let w = self.write_now(&buf[..n]);
            self.spill_read += w as u64;
            self.punch();
            if w < n {
                return;
            }
        }
        if self.spill.is_some() {
            // Drained: the file goes, the next spill starts afresh.
            self.spill = None;
            self.spill_read = 0;
            self.spill_len = 0;
            self.punched = 0;
            let _ = std::fs::remove_file(&self.spill_path);
        }
        if self.closing {
            self.fifo = None;
        }
    }

    /// Gives back what the reader has taken from the spill file, so a
    /// reader that keeps pace without catching up does not grow it.
    fn punch(&mut self) {
        let upto = self.spill_read / PUNCH * PUNCH;
        if upto <= self.punched {
            return;
        }
        if let Some(f) = self.spill.as_ref() {
            let flags = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
            let len = (upto - self.punched) as i64;
            if nix::fcntl::fallocate(f, flags, self.punched as i64, len).is_ok() {
                self.punched = upto;
            }
        }
    }

    /// The process ended: the fifo closes once what waits is drained (its
    /// reader then sees the end).
    pub(crate) fn finish(&mut self) {
        self.closing = true;
        if !self.pending() {
            self.fifo = None;
        }
    }

    /// Closes at once, whatever still waits (the task is deleted).
    pub(crate) fn close(&mut self) {
        self.fifo = None;
        self.mem.clear();
        if self.spill.take().is_some() {
            let _ = std::fs::remove_file(&self.spill_path);
        }
    }

    /// Bytes dropped because the spill was full (or failed).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(dir: &Path) -> PathBuf {
        let p = dir.join("f");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p
    }

    #[test]
    fn a_full_fifo_spills_and_drains_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = fifo(dir.path());
        let mut sink = FifoSink::new(open_fifo_rw(&p).unwrap(), dir.path().join("spill"), 1 << 30);
        // Nobody reads: 1 MiB goes in without blocking, most of it spilled.
        let mut sent = Vec::new();
        for i in 0..1024u32 {
            let chunk: Vec<u8> = std::iter::repeat_n((i % 251) as u8, 1024).collect();
            sink.write(&chunk);
            sent.extend_from_slice(&chunk);
        }
        assert!(sink.pending());
        assert!(dir.path().join("spill").exists());
        sink.finish();
        // A reader comes: everything arrives, in order, then the end.
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            sink.drain();
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.len(), sent.len());
        assert!(got == sent);
        assert_eq!(sink.dropped(), 0);
        assert!(!dir.path().join("spill").exists());
        assert!(sink.fd().is_none());
    }

    #[test]
    fn drained_spill_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = fifo(dir.path());
        let spill = dir.path().join("spill");
        let mut sink = FifoSink::new(open_fifo_rw(&p).unwrap(), spill.clone(), 1 << 30);
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..64 {
            sink.write(&chunk);
        }
        let blocks = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).unwrap().blocks()
        };
        let before = blocks(&spill);
        // A reader takes about half; the rest still waits.
        let mut reader = std::fs::File::open(&p).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        for _ in 0..32 {
            sink.drain();
            let _ = reader.read(&mut buf).unwrap();
        }
        assert!(sink.pending());
        assert!(blocks(&spill) < before, "{} !< {before}", blocks(&spill));
    }

    #[test]
    fn past_the_bound_output_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = fifo(dir.path());
        let mut sink = FifoSink::new(open_fifo_rw(&p).unwrap(), dir.path().join("spill"), 4096);
        let chunk = [7u8; 1024];
        for _ in 0..200 {
            sink.write(&chunk);
        }
        // 64 KiB pipe + 64 KiB memory + 4 KiB spill taken; the rest counted.
        assert_eq!(sink.dropped(), 200 * 1024 - (64 << 10) - (64 << 10) - 4096);
    }
}

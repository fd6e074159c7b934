//! A cache of compiled seccomp programs, so that the same profile is
//! compiled by libseccomp once, not once per container (13 ms of CPU for
//! moby's default profile on our machines; loading the compiled program is
//! one system call).
//!
//! An entry is a file in the cache directory named after a hash of its key
//! (the profile and everything its compilation depends on, see
//! `seccomp::cache_key`). The file holds the whole key, so a hit is an exact
//! match of the key, never a hash collision, and a checksum over the whole
//! file, so a torn or damaged file is a miss. Only root (the effective uid)
//! may have written the directory and the file: anything else is ignored,
//! never trusted. Entries are written to a temporary name and renamed; at
//! most [`MAX_ENTRIES`] are kept, the oldest go first.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::seccomp::Filter;

const MAGIC: &[u8; 8] = b"CONTDBPF";
const FORMAT: u32 = 1;
/// Entries kept; a node runs a handful of distinct profiles.
const MAX_ENTRIES: usize = 64;
/// No entry is larger (4096 instructions of 8 bytes, a key of a few kB).
const MAX_FILE: u64 = 4 << 20;

/// FNV-1a, 64 bits: names files and checks their contents. Not a defence
/// against an attacker (who could not write the directory anyway): the
/// key is compared in full.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn file_name(key: &[u8]) -> String {
    format!("{:016x}.bpf", fnv(key))
}

/// Owned by us and writable by nobody else.
fn trusted(m: &std::fs::Metadata) -> bool {
    m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0
}

/// The directory if it is a real directory only we can write.
fn trusted_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && trusted(&m))
}

fn encode(key: &[u8], f: &Filter) -> Vec<u8> {
    let (program, flags, notify) = f.parts();
    let mut out = Vec::with_capacity(32 + key.len() + program.len());
    out.extend_from_slice(MAGIC);
    out.extend(FORMAT.to_le_bytes());
    out.extend((key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend(flags.to_le_bytes());
    out.push(u8::from(notify));
    out.extend((program.len() as u32).to_le_bytes());
    out.extend_from_slice(program);
    let sum = fnv(&out);
    out.extend(sum.to_le_bytes());
    out
}

/// The filter in `data` if it is whole and for `key`.
fn decode(data: &[u8], key: &[u8]) -> Option<Filter> {
    let (body, sum) = data.split_at_checked(data.len().checked_sub(8)?)?;
    if fnv(body).to_le_bytes() != sum {
        return None;
    }
    let mut rest = body.strip_prefix(MAGIC.as_slice())?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = rest.split_at_checked(n)?;
        rest = b;
        Some(a)
    };
    let u32_at = |b: &[u8]| b.try_into().ok().map(u32::from_le_bytes);
    if u32_at(take(4)?)? != FORMAT {
        return None;
    }
    let key_len = u32_at(take(4)?)? as usize;
    if take(key_len)? != key {
        return None;
    }
    let flags = u32_at(take(4)?)?;
    let notify = take(1)?[0] != 0;
    let len = u32_at(take(4)?)? as usize;
    let program = take(len)?.to_vec();
    if !rest.is_empty() {
        return None;
    }
    Filter::new(program, flags, notify)
}

/// The entry for `key`, if the cache holds a sound one. The directory is
/// checked through the fd the entry is then opened from, so it cannot be
/// swapped in between. A hit is touched, so the entries in use are the
/// last to go.
pub(crate) fn lookup(dir: &Path, key: &[u8]) -> Option<Filter> {
    let dirfd = crate::sys::open(dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW).ok()?;
    let dirfd = std::fs::File::from(dirfd);
    if !dirfd.metadata().is_ok_and(|m| m.is_dir() && trusted(&m)) {
        return None;
    }
    let name = std::ffi::CString::new(file_name(key)).ok()?;
    let fd = crate::sys::openat(dirfd.as_fd(), &name, libc::O_RDONLY | libc::O_NOFOLLOW).ok()?;
    let mut f = std::fs::File::from(fd);
    let m = f.metadata().ok()?;
    if !m.is_file() || !trusted(&m) || m.nlink() != 1 || m.len() > MAX_FILE {
        return None;
    }
    let mut data = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut data).ok()?;
    let entry = decode(&data, key)?;
    let _ = f.set_modified(std::time::SystemTime::now());
    Some(entry)
}

/// Stores the filter for `key`, creating the directory (0700) if needed.
///
/// # Errors
/// If the directory cannot be made or is not ours, or writing fails; the
/// cache is then left as it was.
pub(crate) fn store(dir: &Path, key: &[u8], f: &Filter) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if !trusted_dir(dir) {
        return Err(std::io::Error::other(format!(
            "{} is not a directory only root can write",
            dir.display()
        )));
    }
    let name = file_name(key);
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut file| file.write_all(&encode(key, f)))
        .and_then(|()| std::fs::rename(&tmp, dir.join(&name)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    evict(dir, &name);
    Ok(())
}

/// Removes the oldest entries beyond [`MAX_ENTRIES`] (never `keep`), and
/// temporary files a writer that died left behind (older than a minute).
fn evict(dir: &Path, keep: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let stale = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let mut entries = Vec::new();
    for e in rd.flatten() {
        let (Some(name), Ok(modified)) = (
            e.file_name().to_str().map(str::to_string),
            e.metadata().and_then(|m| m.modified()),
        ) else {
            continue;
        };
        if name.starts_with('.') && modified < stale {
            let _ = std::fs::remove_file(e.path());
        } else if name.ends_with(".bpf") && name != keep {
            entries.push((modified, e.path()));
        }
    }
    if entries.len() < MAX_ENTRIES {
        return;
    }
    entries.sort();
    for (_, p) in &entries[..entries.len() + 1 - MAX_ENTRIES] {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Filter {
        Filter::new((0..64).collect(), 5, true).unwrap()
    }

    #[test]
    fn round_trip_and_exact_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("seccomp");
        assert_eq!(lookup(&cache, b"k1"), None);
        store(&cache, b"k1", &entry()).unwrap();
        assert_eq!(lookup(&cache, b"k1"), Some(entry()));
        assert_eq!(lookup(&cache, b"k2"), None);
        // A different key whose file name is the same: no hit.
        let other = b"k1".to_vec();
        let path = cache.join(file_name(&other));
        let mut data = std::fs::read(&path).unwrap();
        assert_eq!(decode(&data, b"k1x"), None);
        // Any damage is a miss.
        let n = data.len();
        data[n / 2] ^= 1;
        std::fs::write(&path, &data).unwrap();
        assert_eq!(lookup(&cache, b"k1"), None);
        data.truncate(n - 3);
        assert_eq!(decode(&data, b"k1"), None);
    }

    #[test]
    fn untrusted_files_and_dirs_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("seccomp");
        store(&cache, b"k", &entry()).unwrap();
        let path = cache.join(file_name(b"k"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(lookup(&cache, b"k"), None, "a world-writable entry");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(lookup(&cache, b"k").is_some());
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(lookup(&cache, b"k"), None, "a world-writable dir");
        assert!(store(&cache, b"k", &entry()).is_err());
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A symlink in place of the entry is not followed.
        std::fs::remove_file(&path).unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, encode(b"k", &entry())).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert_eq!(lookup(&cache, b"k"), None, "a symlinked entry");
    }

    #[test]
    fn at_most_max_entries_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("seccomp");
        for i in 0..MAX_ENTRIES + 5 {
            store(&cache, format!("key-{i}").as_bytes(), &entry()).unwrap();
        }
        let n = std::fs::read_dir(&cache).unwrap().count();
        assert_eq!(n, MAX_ENTRIES);
        let last = format!("key-{}", MAX_ENTRIES + 4);
        assert!(lookup(&cache, last.as_bytes()).is_some());
        // A writer that died before its rename leaves a temporary file:
        // gone at the next store once it is old.
        let tmp = cache.join(".0123456789abcdef.bpf.999999");
        let f = std::fs::File::create(&tmp).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
        store(&cache, b"one more", &entry()).unwrap();
        assert!(!tmp.exists(), "stale temporary file kept");
    }
}

//! Inside init, before `pivot_root`: the rootfs, the spec's mounts, the
//! default devices; after it: read-only root, masked and read-only paths.
//!
//! Mount targets are resolved with `openat2(RESOLVE_IN_ROOT)` against a
//! directory fd of the rootfs, created one component at a time, and mounted
//! on through `/proc/self/fd/N`: a symlink in the rootfs can never send a
//! mount outside it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path};

use oci_spec::runtime::Mount;

use crate::sys;

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;

fn c(s: &str) -> CString {
    // Our own literals and validated spec strings never hold NUL: the spec
    // check refuses them, and serde_json cannot produce them in paths we use.
    CString::new(s).unwrap_or_default()
}

fn fd_path(fd: BorrowedFd<'_>) -> CString {
    c(&format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Maps a propagation keyword to its mount flags.
pub(crate) fn propagation_flag(word: &str) -> Option<libc::c_ulong> {
    Some(match word {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// How `linux.rootfsPropagation` is applied: what `/` gets before
/// `pivot_root` and what the new root gets after it. Nothing may be shared
/// while the root moves (`pivot_root` and `MS_MOVE` refuse a shared mount
/// or parent, and the rootfs bind would propagate to the host), and an
/// unbindable `/` cannot be bound: those two are applied after the pivot,
/// with everything made a slave of the host before it.
pub(crate) fn root_propagation(requested: Option<&str>) -> (libc::c_ulong, Option<libc::c_ulong>) {
    let slave = libc::MS_SLAVE | libc::MS_REC;
    match requested.and_then(propagation_flag) {
        None => (slave, None),
        Some(f) if f & (libc::MS_SHARED | libc::MS_UNBINDABLE) != 0 => (slave, Some(f)),
        Some(f) => (f, None),
    }
}

/// Makes the mount that holds `rootfs` private (in the container's own
/// mount namespace), as runc does, when `/` was not changed recursively:
/// a shared parent would make `pivot_root` fail and the rootfs bind
/// propagate to the host.
pub(crate) fn make_parent_mount_private(rootfs: &Path) -> Result<(), String> {
    let mut dir = Some(rootfs);
    while let Some(d) = dir {
        let cd = sys::cpath(d).map_err(|e| e.to_string())?;
        match sys::mount(None, &cd, None, libc::MS_PRIVATE, None) {
            Ok(()) => return Ok(()),
            // Not a mount point: try the directory above.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => dir = d.parent(),
            Err(e) => return Err(format!("make the mount of {} private: {e}", d.display())),
        }
    }
    Ok(())
}

/// `chroot` into the rootfs, for a container without a mount namespace of
/// its own: the host's mount table is left as it is.
pub(crate) fn chroot(rootfs: &Path) -> Result<(), String> {
    std::os::unix::fs::chroot(rootfs).map_err(|e| format!("chroot {}: {e}", rootfs.display()))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
}

/// Mount options split into flags, propagation and filesystem data.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    pub flags: libc::c_ulong,
    pub propagation: libc::c_ulong,
    pub bind: bool,
    pub data: Vec<String>,
    /// `MOUNT_ATTR_*` bits set on the whole tree (`rro`, `rnosuid`, ...).
    pub rec_set: u64,
    /// `MOUNT_ATTR_*` bits cleared on the whole tree (`rrw`, `rsuid`, ...).
    pub rec_clear: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
const MS_NOSYMFOLLOW: libc::c_ulong = 256;

/// The recursive (`mount_setattr`) options of the runtime spec: (set, clear).
fn recursive_option(word: &str) -> Option<(u64, u64)> {
    Some(match word {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnorelatime" => (0, MOUNT_ATTR__ATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "ratime" => (0, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rnostrictatime" => (0, MOUNT_ATTR__ATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

pub(crate) fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let (set, clear) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "nosymfollow" => (MS_NOSYMFOLLOW, 0),
            "symfollow" => (0, MS_NOSYMFOLLOW),
            "bind" => {
                o.bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                o.bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            other => {
                if let Some(p) = propagation_flag(other) {
                    o.propagation |= p;
                } else if let Some((set, clear)) = recursive_option(other) {
                    o.rec_set = (o.rec_set & !clear) | set;
                    o.rec_clear = (o.rec_clear & !set) | clear;
                } else {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o
}

/// Opens (as `O_PATH`) the path `rel` inside `root`, creating missing
/// components: directories, and a file for the last one unless `dir`.
pub(crate) fn mkdir_all_in_root(
    root: BorrowedFd<'_>,
    rel: &Path,
    dir: bool,
) -> io::Result<OwnedFd> {
    let comps: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut cur = sys::openat2(
        root,
        &c("."),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_IN_ROOT,
    )?;
    let mut prefix = std::path::PathBuf::new();
    for (i, name) in comps.iter().enumerate() {
        prefix.push(name);
        let cprefix = sys::cpath(&prefix)?;
        match sys::openat2(
            root,
            &cprefix,
            libc::O_PATH,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        ) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let cname = sys::cpath(Path::new(name))?;
                // A dangling symlink: creating "through" it could build its
                // target anywhere the link says; refuse, as securejoin does.
                let probe = sys::openat2(
                    cur.as_fd(),
                    &cname,
                    libc::O_PATH | libc::O_NOFOLLOW,
                    0,
                    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
                );
                if probe.is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} is a dangling symlink", prefix.display()),
                    ));
                }
                let last = i + 1 == comps.len();
                if last && !dir {
                    let f = sys::openat2(
                        cur.as_fd(),
                        &cname,
                        libc::O_CREAT | libc::O_WRONLY,
                        0o644,
                        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
                    )?;
                    drop(f);
                } else {
                    sys::mkdirat(cur.as_fd(), &cname, 0o755)?;
                }
                cur = sys::openat2(
                    root,
                    &cprefix,
                    libc::O_PATH,
                    0,
                    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                )?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

fn mount_err(m: &Mount, what: &str, e: io::Error) -> String {
    format!(
        "mount {} on {}: {what}: {e}",
        m.source()
            .as_ref()
            .map_or_else(|| "none".into(), |s| s.display().to_string()),
        m.destination().display()
    )
}

/// Performs one spec mount inside the rootfs whose dirfd is `root`.
pub(crate) fn mount_one(root: BorrowedFd<'_>, bundle: &Path, m: &Mount) -> Result<(), String> {
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = opts.bind || typ == "bind";
    let source = m.source().as_ref().map(|s| {
        if bind && s.is_relative() {
            bundle.join(s)
        } else {
            s.clone()
        }
    });
    let is_dir = if bind {
        let src = source
            .as_ref()
            .ok_or_else(|| format!("bind mount on {} has no source", m.destination().display()))?;
        std::fs::metadata(src)
            .map_err(|e| format!("bind source {}: {e}", src.display()))?
            .is_dir()
    } else {
        true
    };
    let rel = m.destination().strip_prefix("/").unwrap_or(m.destination());
    let target = mkdir_all_in_root(root, rel, is_dir).map_err(|e| mount_err(m, "target", e))?;
    let tpath = fd_path(target.as_fd());
    let data = c(&opts.data.join(","));
    let data = (!opts.data.is_empty()).then_some(data.as_c_str());

    if bind {
        let src = sys::cpath(source.as_deref().unwrap_or(Path::new("")))
            .map_err(|e| mount_err(m, "source", e))?;
        let rec = opts.flags & libc::MS_REC;
        sys::mount(Some(&src), &tpath, None, libc::MS_BIND | rec, None)
            .map_err(|e| mount_err(m, "bind", e))?;
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            // Flags of a bind mount only take effect on a remount; reopen the
            // target so the fd names the new mount, not the one below it.
            let target =
                mkdir_all_in_root(root, rel, is_dir).map_err(|e| mount_err(m, "target", e))?;
            sys::mount(
                None,
                &fd_path(target.as_fd()),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | extra,
                None,
            )
            .map_err(|e| mount_err(m, "remount", e))?;
        }
    } else {
        let src = c(&source
            .as_ref()
            .map_or_else(|| typ.to_string(), |s| s.display().to_string()));
        let ctyp = c(typ);
        let flags = opts.flags & !libc::MS_REMOUNT;
        match sys::mount(Some(&src), &tpath, Some(&ctyp), flags, data) {
            Ok(()) => {}
            // sysfs cannot be mounted in a network namespace we do not own
            // (one joined by path): bind the host's read-only instead, as runc.
            Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                sys::mount(
                    Some(&c("/sys")),
                    &tpath,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .map_err(|e| mount_err(m, "bind /sys", e))?;
                let target =
                    mkdir_all_in_root(root, rel, true).map_err(|e| mount_err(m, "target", e))?;
                sys::mount(
                    None,
                    &fd_path(target.as_fd()),
                    None,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags,
                    None,
                )
                .map_err(|e| mount_err(m, "remount /sys", e))?;
            }
            Err(e) => return Err(mount_err(m, typ, e)),
        }
    }
    if opts.propagation != 0 {
        let target = mkdir_all_in_root(root, rel, is_dir).map_err(|e| mount_err(m, "target", e))?;
        sys::mount(None, &fd_path(target.as_fd()), None, opts.propagation, None)
            .map_err(|e| mount_err(m, "propagation", e))?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        let target = mkdir_all_in_root(root, rel, is_dir).map_err(|e| mount_err(m, "target", e))?;
        sys::mount_setattr_recursive(target.as_fd(), opts.rec_set, opts.rec_clear)
            .map_err(|e| mount_err(m, "recursive options", e))?;
    }
    Ok(())
}

/// A `cgroup` mount: on v2 the container's cgroup2; on v1 a tmpfs with one
/// mount per hierarchy. In a cgroup namespace a fresh mount shows the
/// container's own cgroup as root; without one, the container's cgroup
/// directories are bound instead.
pub(crate) fn mount_cgroup(
    root: BorrowedFd<'_>,
    m: &Mount,
    cgroup_path: &str,
    cgroupns: bool,
) -> Result<(), String> {
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let rel = m.destination().strip_prefix("/").unwrap_or(m.destination());
    let flags = opts.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
    let target = mkdir_all_in_root(root, rel, true).map_err(|e| mount_err(m, "target", e))?;
    let tpath = fd_path(target.as_fd());
    if crate::cgroup::is_v2() {
        if cgroupns {
            sys::mount(
                Some(&c("cgroup2")),
                &tpath,
                Some(&c("cgroup2")),
                flags,
                None,
            )
            .map_err(|e| mount_err(m, "cgroup2", e))?;
        } else {
            let src = c(&format!("/sys/fs/cgroup/{cgroup_path}"));
            sys::mount(Some(&src), &tpath, None, libc::MS_BIND, None)
                .map_err(|e| mount_err(m, "bind cgroup", e))?;
            remount(&tpath, flags).map_err(|e| mount_err(m, "remount cgroup", e))?;
        }
        return Ok(());
    }
    sys::mount(
        Some(&c("tmpfs")),
        &tpath,
        Some(&c("tmpfs")),
        flags & !libc::MS_RDONLY,
        Some(&c("mode=755")),
    )
    .map_err(|e| mount_err(m, "tmpfs", e))?;
    let dir = mkdir_all_in_root(root, rel, true).map_err(|e| mount_err(m, "target", e))?;
    for h in crate::cgroup::hierarchies() {
        let sub = mkdir_all_in_root(dir.as_fd(), Path::new(&h.name), true)
            .map_err(|e| mount_err(m, &h.name, e))?;
        let spath = fd_path(sub.as_fd());
        if cgroupns {
            sys::mount(
                Some(&c("cgroup")),
                &spath,
                Some(&c(&h.fstype)),
                flags & !libc::MS_RDONLY,
                (!h.options.is_empty()).then(|| c(&h.options)).as_deref(),
            )
            .map_err(|e| mount_err(m, &h.name, e))?;
        } else {
            // Our own cgroup in this hierarchy, as the kernel reports it.
            let own = own_cgroup(&h).unwrap_or_else(|| format!("/{cgroup_path}"));
            let src = c(&format!("{}{own}", h.mount_point.display()));
            sys::mount(Some(&src), &spath, None, libc::MS_BIND, None)
                .map_err(|e| mount_err(m, &h.name, e))?;
        }
        if flags & libc::MS_RDONLY != 0 {
            let sub = mkdir_all_in_root(dir.as_fd(), Path::new(&h.name), true)
                .map_err(|e| mount_err(m, &h.name, e))?;
            remount(&fd_path(sub.as_fd()), flags).map_err(|e| mount_err(m, "remount", e))?;
        }
        // Co-mounted controllers get a symlink per name, as on the host.
        if h.name.contains(',') {
            for part in h.name.split(',') {
                let _ = sys::symlinkat(&c(&h.name), dir.as_fd(), &c(part));
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        let dir = mkdir_all_in_root(root, rel, true).map_err(|e| mount_err(m, "target", e))?;
        remount(&fd_path(dir.as_fd()), flags).map_err(|e| mount_err(m, "remount tmpfs", e))?;
    }
    Ok(())
}

/// The calling process's cgroup in hierarchy `h`, from `/proc/self/cgroup`.
fn own_cgroup(h: &crate::cgroup::Hierarchy) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let ctrls = parts.next()?;
        let path = parts.next()?;
        crate::cgroup::same_hierarchy(h, ctrls).then(|| path.to_string())
    })
}

fn remount(path: &std::ffi::CStr, flags: libc::c_ulong) -> io::Result<()> {
    sys::mount(
        None,
        path,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags,
        None,
    )
}

/// `linux.devices`: each node made in the container's `/dev` with its mode
/// and owner; in a user namespace, where `mknod` is not allowed, the host's
/// node is bound instead (as runc).
pub(crate) fn spec_devices(
    root: BorrowedFd<'_>,
    devices: &[oci_spec::runtime::LinuxDevice],
    userns: bool,
) -> Result<(), String> {
    use oci_spec::runtime::LinuxDeviceType as T;
    for d in devices {
        let rel = d.path().strip_prefix("/").unwrap_or(d.path());
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .ok_or_else(|| format!("device {} has no name", d.path().display()))?;
        let dir = mkdir_all_in_root(root, parent, true)
            .map_err(|e| format!("device {}: {e}", d.path().display()))?;
        let dir = sys::openat2(
            dir.as_fd(),
            &c("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
            RESOLVE_BENEATH,
        )
        .map_err(|e| format!("device {}: {e}", d.path().display()))?;
        let cname = c(&name.to_string_lossy());
        if userns {
            let target = mkdir_all_in_root(root, rel, false)
                .map_err(|e| format!("device {}: {e}", d.path().display()))?;
            let src = sys::cpath(d.path()).map_err(|e| e.to_string())?;
            sys::mount(
                Some(&src),
                &fd_path(target.as_fd()),
                None,
                libc::MS_BIND,
                None,
            )
            .map_err(|e| format!("bind device {}: {e}", d.path().display()))?;
            continue;
        }
        let kind = match d.typ() {
            T::B => libc::S_IFBLK,
            T::P => libc::S_IFIFO,
            _ => libc::S_IFCHR,
        };
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        let dev = libc::makedev(d.major() as u32, d.minor() as u32);
        match sys::mknodat(dir.as_fd(), &cname, kind | mode, dev) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Replace what the default set (or the image) put there.
                let _ = std::fs::remove_file(format!(
                    "/proc/self/fd/{}/{}",
                    dir.as_raw_fd(),
                    name.to_string_lossy()
                ));
                sys::mknodat(dir.as_fd(), &cname, kind | mode, dev)
                    .map_err(|e| format!("mknod {}: {e}", d.path().display()))?;
            }
            Err(e) => return Err(format!("mknod {}: {e}", d.path().display())),
        }
        sys::fchmodat(dir.as_fd(), &cname, mode)
            .map_err(|e| format!("chmod {}: {e}", d.path().display()))?;
        sys::fchownat(
            dir.as_fd(),
            &cname,
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        )
        .map_err(|e| format!("chown {}: {e}", d.path().display()))?;
    }
    Ok(())
}

/// `--no-pivot`: move the rootfs over `/` and `chroot` into it, for a
/// rootfs where `pivot_root` cannot work (ramfs).
pub(crate) fn move_root(rootfs: &Path) -> Result<(), String> {
    std::env::set_current_dir(rootfs).map_err(|e| format!("chdir {}: {e}", rootfs.display()))?;
    let dot = c(".");
    sys::mount(Some(&dot), &c("/"), None, libc::MS_MOVE, None)
        .map_err(|e| format!("move {} to /: {e}", rootfs.display()))?;
    std::os::unix::fs::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// Creates the standard device nodes and symlinks in the container's `/dev`.
pub(crate) fn default_devices(root: BorrowedFd<'_>, userns: bool) -> Result<(), String> {
    let dev = mkdir_all_in_root(root, Path::new("dev"), true)
        .map_err(|e| format!("open /dev in rootfs: {e}"))?;
    // mknodat/symlinkat need a real directory fd, not an O_PATH one.
    let dev = sys::openat2(
        dev.as_fd(),
        &c("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        RESOLVE_BENEATH,
    )
    .map_err(|e| format!("open /dev in rootfs: {e}"))?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        if userns {
            // No mknod in a user namespace: bind the host's node.
            let target = mkdir_all_in_root(dev.as_fd(), Path::new(name), false)
                .map_err(|e| format!("/dev/{name}: {e}"))?;
            sys::mount(
                Some(&c(&format!("/dev/{name}"))),
                &fd_path(target.as_fd()),
                None,
                libc::MS_BIND,
                None,
            )
            .map_err(|e| format!("bind /dev/{name}: {e}"))?;
            continue;
        }
        match sys::mknodat(
            dev.as_fd(),
            &c(name),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        ) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("mknod /dev/{name}: {e}")),
        }
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        match sys::symlinkat(&c(target), dev.as_fd(), &c(name)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("symlink /dev/{name}: {e}")),
        }
    }
    Ok(())
}

/// Makes `rootfs` the root: `pivot_root(".", ".")`, then detaches the old
/// root (made a slave first so the unmount does not reach the host).
pub(crate) fn pivot(rootfs: &Path) -> Result<(), String> {
    std::env::set_current_dir(rootfs).map_err(|e| format!("chdir {}: {e}", rootfs.display()))?;
    let dot = c(".");
    sys::pivot_root(&dot, &dot).map_err(|e| format!("pivot_root {}: {e}", rootfs.display()))?;
    sys::mount(None, &dot, None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| format!("make old root rslave: {e}"))?;
    sys::umount2(&dot, libc::MNT_DETACH).map_err(|e| format!("detach old root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// Flags of the mount holding `path` that a remount must keep.
fn mount_flags(path: &str) -> io::Result<libc::c_ulong> {
    // ST_* values equal the MS_* values for the flags a remount keeps.
    let keep = libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME;
    Ok(sys::statvfs_flags(&c(path))? & keep)
}

/// Remounts a path (already a mount point) read-only, keeping its flags.
fn remount_ro(path: &str) -> io::Result<()> {
    let flags = mount_flags(path)?;
    sys::mount(
        None,
        &c(path),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags,
        None,
    )
}

/// After the pivot: `root.readonly`.
pub(crate) fn readonly_root() -> Result<(), String> {
    remount_ro("/").map_err(|e| format!("remount / read-only: {e}"))
}

/// After the pivot: bind each path on itself and make it read-only.
pub(crate) fn readonly_paths(paths: &[String]) -> Result<(), String> {
    for p in paths {
        let cp = c(p);
        match sys::mount(Some(&cp), &cp, None, libc::MS_BIND | libc::MS_REC, None) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(format!("readonly path {p}: {e}")),
        }
        remount_ro(p).map_err(|e| format!("readonly path {p}: {e}"))?;
    }
    Ok(())
}

/// After the pivot: hide each path, a file under a verified `/dev/null`, a
/// directory under an empty read-only tmpfs.
pub(crate) fn masked_paths(paths: &[String]) -> Result<(), String> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = sys::open(Path::new("/dev/null"), libc::O_PATH)
        .map_err(|e| format!("open /dev/null for masking: {e}"))?;
    let meta = std::fs::metadata(Path::new(&format!("/proc/self/fd/{}", null.as_raw_fd())))
        .map_err(|e| format!("stat /dev/null: {e}"))?;
    if !meta.file_type().is_char_device() || meta.rdev() != libc::makedev(1, 3) {
        return Err("/dev/null in the container is not the null device".into());
    }
    let null_path = fd_path(null.as_fd());
    for p in paths {
        let cp = c(p);
        let is_dir = match std::fs::symlink_metadata(p) {
            Ok(m) => m.is_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("masked path {p}: {e}")),
        };
        let r = if is_dir {
            sys::mount(
                Some(&c("tmpfs")),
                &cp,
                Some(&c("tmpfs")),
                libc::MS_RDONLY,
                Some(&c("size=0")),
            )
        } else {
            sys::mount(Some(&null_path), &cp, None, libc::MS_BIND, None)
        };
        r.map_err(|e| format!("mask {p}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_options(&[
            "nosuid".into(),
            "ro".into(),
            "rw".into(),
            "rbind".into(),
            "rslave".into(),
            "mode=755".into(),
            "size=65536k".into(),
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_BIND | libc::MS_REC);
        assert_eq!(o.propagation, libc::MS_SLAVE | libc::MS_REC);
        assert!(o.bind);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
    }

    #[test]
    fn targets_stay_inside_the_root_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // An absolute symlink and a dot-dot one, both pointing out.
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("rel")).unwrap();
        let rootfd = sys::open(&root, libc::O_PATH | libc::O_DIRECTORY).unwrap();
        // Both resolve inside the root to paths that do not exist there.
        for link in ["abs/x", "rel/y"] {
            let err = mkdir_all_in_root(rootfd.as_fd(), Path::new(link), true).unwrap_err();
            assert!(err.to_string().contains("dangling"), "{err}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "escaped");
        // A link resolving inside the root is followed there, and a file
        // target is created as a file.
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/../../real", root.join("ok")).unwrap();
        mkdir_all_in_root(rootfd.as_fd(), Path::new("ok/z/f"), false).unwrap();
        assert!(root.join("real/z/f").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "escaped");
    }
}

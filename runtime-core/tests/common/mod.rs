//! Helpers shared by runtime-core's integration tests.

use std::path::{Path, PathBuf};

pub mod cli;

/// The repository root, canonical (podman 4.3 mishandles a rootfs path
/// holding "..": it turns /dev into a mount destination under it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// The shared busybox rootfs (read-only use only).
pub fn busybox_rootfs() -> PathBuf {
    let p = repo_root().join("target/rootfs");
    assert!(
        p.join("bin/busybox").exists(),
        "{} is missing: run scripts/setup.sh to build the busybox rootfs",
        p.display()
    );
    p
}

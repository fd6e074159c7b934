//! Links contd-monitor as a position-dependent executable: a PIE gets its
//! read-only relocated data (~170 kB of vtables and string tables) patched
//! at load time, a private dirty copy in every monitor; without PIE the
//! linker resolves it once and the pages stay shared with the file.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}

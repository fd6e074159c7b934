//! What a hostile or careless local user could do to contd, each test
//! named after what used to break.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;

use contd_tests::{bin_dir, TestEnv};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_containers_env_is_not_readable_by_other_users() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "-e",
        "TOKEN=hunter2",
        root,
        "sleep",
        "1000",
    ]);
    let dir = env.state_dir.join("default/s");
    for d in [
        env.state_dir.clone(),
        env.state_dir.join("default"),
        dir.clone(),
        dir.join("bundle"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in [dir.join("bundle/config.json"), dir.join("meta.json")] {
        assert!(std::fs::read_to_string(&f).unwrap().contains("hunter2"));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let sock = std::fs::symlink_metadata(&env.socket).unwrap();
    assert!(sock.file_type().is_socket());
    assert_eq!(sock.permissions().mode() & 0o7777, 0o600);
    env.ok(&["rm", "-f", "s"]);
}

#[test]
fn uid_4294967295_is_refused_instead_of_running_as_root() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    for user in ["4294967295", "0:4294967295"] {
        let out = env.contctl(&["run", "-d", "--name", "r", "-u", user, root, "id"]);
        assert_eq!(out.status.code(), Some(125));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("user") && err.contains("4294967295 is not a valid id"),
            "{err}"
        );
        assert!(
            !env.contctl(&["inspect", "r"]).status.success(),
            "created anyway"
        );
    }
    env.ok(&["run", "-d", "--name", "w", root, "sleep", "1000"]);
    let out = env.contctl(&["exec", "-u", "4294967295", "w", "id"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("user: uid 4294967295 is not a valid id"),
        "{err}"
    );
    assert!(env
        .ok(&["exec", "-u", "1000", "w", "id"])
        .starts_with("uid=1000"));
    env.ok(&["rm", "-f", "w"]);
}

#[test]
fn socket_flag_never_deletes_a_file_that_is_not_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("precious");
    std::fs::write(&file, "data").unwrap();
    let out = Command::new(bin_dir().join("contd"))
        .arg("--socket")
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[test]
fn a_run_cut_before_its_state_was_complete_does_not_keep_the_name() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    env.stop_contd(libc::SIGKILL);
    // What a contd killed inside `run` leaves: the hidden dir being made
    // (today), or a state dir with a bundle and no meta.json (before).
    let ns = env.state_dir.join("default");
    for d in [ns.join(".web.creating/bundle"), ns.join("old/bundle")] {
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), "{}").unwrap();
    }
    env.start_contd();
    assert!(!ns.join(".web.creating").exists());
    assert!(!ns.join("old").exists());
    assert_eq!(env.ok(&["ps", "-a"]).lines().count(), 1);
    for name in ["web", "old"] {
        env.ok(&["run", "-d", "--name", name, &root, "sleep", "1000"]);
        assert_eq!(env.inspect(name)["status"], "running");
        env.ok(&["rm", "-f", name]);
    }
}

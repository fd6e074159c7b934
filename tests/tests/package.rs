//! The Debian package `scripts/package.sh` builds, installed into a scratch
//! root with `dpkg -x`: its files, its unit, its configuration, its man
//! pages, and its binaries running a container together.

use std::path::{Path, PathBuf};
use std::process::Command;

use contd_tests::{bin_dir, TestEnv};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_package_installs_the_binaries_unit_config_and_man_pages() {
    bin_dir();
    let mut env = TestEnv::without_contd();
    let out = env.dir.path().join("pkg");
    let deb = sh(Command::new(repo().join("scripts/package.sh"))
        .args(["--profile", "debug", "--no-build", "--out"])
        .arg(&out)
        .current_dir(repo()));
    let deb = PathBuf::from(deb.trim());
    let root = env.dir.path().join("root");
    sh(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));

    let mut files: Vec<String> = sh(Command::new("dpkg-deb").arg("-c").arg(&deb))
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            // A link's line ends in " -> target".
            l.split(" -> ")
                .next()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .trim_start_matches('.')
                .to_string()
        })
        .collect();
    files.sort();
    println!("package files:\n{}", files.join("\n"));
    assert_eq!(
        files,
        [
            "/etc/contd/config.toml",
            "/lib/systemd/system/contd.service",
            "/usr/bin/containerd-shim-contd-v2",
            "/usr/bin/contctl",
            "/usr/bin/contd",
            "/usr/bin/contd-monitor",
            "/usr/bin/contd-runtime",
            "/usr/share/doc/contd/README.md.gz",
            "/usr/share/doc/contd/architecture.md.gz",
            "/usr/share/doc/contd/copyright",
            "/usr/share/man/man1/contctl.1.gz",
            "/usr/share/man/man8/contd.8.gz",
        ]
    );
    // containerd's shim is the monitor, under the name containerd runs.
    assert_eq!(
        std::fs::read_link(root.join("usr/bin/containerd-shim-contd-v2")).unwrap(),
        PathBuf::from("contd-monitor")
    );
    let control = sh(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(control.contains("Package: contd"), "{control}");
    let conffiles = sh(Command::new("dpkg-deb")
        .args(["--info"])
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/contd/config.toml");

    let unit = std::fs::read_to_string(root.join("lib/systemd/system/contd.service")).unwrap();
    for line in [
        "Type=notify",
        "Delegate=yes",
        "KillMode=process",
        "Restart=always",
        "RuntimeDirectory=contd",
        "RuntimeDirectoryPreserve=yes",
        "LogsDirectory=contd",
        "ExecStart=/usr/bin/contd --config /etc/contd/config.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=30",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in the unit");
    }

    let usr_bin = root.join("usr/bin");
    let v = sh(Command::new(usr_bin.join("contd")).arg("--version"));
    assert_eq!(v.trim(), format!("contd {}", env!("CARGO_PKG_VERSION")));
    // The shipped configuration is valid as it stands.
    let ok = sh(Command::new(usr_bin.join("contd"))
        .arg("--validate")
        .arg("--config")
        .arg(root.join("etc/contd/config.toml")));
    assert!(ok.contains("configuration OK"), "{ok}");

    for (page, head) in [
        ("usr/share/man/man8/contd.8.gz", ".TH contd 8"),
        ("usr/share/man/man1/contctl.1.gz", ".TH contctl 1"),
    ] {
        let text = sh(Command::new("zcat").arg(root.join(page)));
        assert!(text.lines().any(|l| l.starts_with(head)), "{page}: {text}");
        assert!(text.contains("SYNOPSIS"), "{page}");
    }

    // The installed binaries run a container together.
    env.start_contd_from(&usr_bin);
    let rootfs = env.rootfs.to_str().unwrap().to_string();
    let ctl = |args: &[&str]| {
        sh(Command::new(usr_bin.join("contctl"))
            .arg("--socket")
            .arg(&env.socket)
            .args(args))
    };
    ctl(&["run", "-d", "--name", "a", &rootfs, "sleep", "100"]);
    let monitor = std::fs::read_to_string(env.state_dir.join("default/a/monitor.pid")).unwrap();
    let exe = std::fs::read_link(format!("/proc/{}/exe", monitor.trim())).unwrap();
    assert_eq!(exe, usr_bin.join("contd-monitor"));
    ctl(&["rm", "-f", "a"]);
    env.stop_contd(libc::SIGTERM);
}

//! contctl as a docker user drives it: a foreground `run` streams its
//! output as it comes (stdout and stderr apart), passes its input on with
//! `-i` (the end of it too), passes signals on, and exits with the
//! container's code.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contd_tests::{bin_dir, TestEnv};

fn contctl(env: &TestEnv) -> Command {
    let mut c = Command::new(bin_dir().join("contctl"));
    c.arg("--socket").arg(&env.socket);
    c
}

/// Waits for a child with a deadline; its exit code.
fn wait_code(child: &mut std::process::Child, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("contctl did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_foreground_run_streams_its_output_as_it_comes() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let mut child = contctl(&env)
        .args(["run", "--name", "live", root, "sh", "-c"])
        .arg("echo first; echo oops >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second; exit 4")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // The container still runs (it waits for /tmp/go): the line came live.
    assert_eq!(line, "first\n");
    assert_eq!(env.inspect("live")["status"], "running");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut eline = String::new();
    err.read_line(&mut eline).unwrap();
    assert_eq!(eline, "oops\n");
    env.ok(&["exec", "live", "touch", "/tmp/go"]);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "second\n");
    assert_eq!(wait_code(&mut child, 20), 4);
    env.ok(&["rm", "live"]);
}

#[test]
fn the_end_of_input_reaches_the_container() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let mut child = contctl(&env)
        .args([
            "run",
            "-i",
            "--name",
            "cat",
            root,
            "sh",
            "-c",
            "cat; echo done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    // stdin is dropped: end of input.
    let code = wait_code(&mut child, 20);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "hello\nworld\ndone\n");
    assert_eq!(code, 0);
    env.ok(&["rm", "cat"]);
}

#[test]
fn signals_to_a_foreground_run_reach_the_container() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let script = "trap 'echo got INT; exit 7' INT; echo ready; while true; do sleep 0.05; done";
    let mut child = contctl(&env)
        .args(["run", "--name", "sig", root, "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got INT\n");
    assert_eq!(wait_code(&mut child, 20), 7);

    // --sig-proxy=false: the signal stays with contctl (which dies of it),
    // the container runs on.
    let mut child = contctl(&env)
        .args([
            "run",
            "--sig-proxy=false",
            "--name",
            "nosig",
            root,
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    wait_code(&mut child, 20);
    assert_eq!(env.inspect("nosig")["status"], "running");
    env.ok(&["rm", "-f", "sig"]);
    env.ok(&["rm", "-f", "nosig"]);
}

//! Terminals, attach and exec through contd's api and contctl, across a
//! supervisor restart. As root.

use contd_tests::{api, attach, call, input, until, TestEnv};
use proto::api::{CreateRequest, Interactive, Request, Response};

#[test]
fn a_terminal_session_outlives_a_supervisor_restart() {
    let mut env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap().to_string();
    let create = Request::CreateInteractive {
        req: CreateRequest {
            ns: "default".into(),
            name: "shell".into(),
            rootfs: root,
            args: vec!["sh".into()],
            start: true,
            ..Default::default()
        },
        interactive: Interactive {
            tty: Some((30, 100)),
            stdin: true,
        },
    };
    assert!(matches!(call(&env, &create), Response::Container(_)));

    let mut a = attach(&env, "shell");
    input(&mut a, b"export X=42; stty size; echo set-$X\n");
    let text = until(&mut a, "set-42");
    assert!(text.contains("30 100"), "{text}");
    input(&mut a, &[0x10, 0x11]);
    loop {
        match proto::read_frame::<Response>(&mut a).unwrap() {
            Response::Output { .. } => continue,
            Response::Detached => break,
            other => panic!("detach: {other:?}"),
        }
    }

    // contd dies and comes back; the shell never noticed.
    env.stop_contd(libc::SIGKILL);
    env.start_contd();
    let resize = Request::Resize {
        ns: "default".into(),
        name: "shell".into(),
        rows: 40,
        cols: 90,
    };
    assert_eq!(call(&env, &resize), Response::Ok);
    let mut b = attach(&env, "shell");
    input(&mut b, b"stty size; echo again-$X\n");
    let text = until(&mut b, "again-42");
    assert!(text.contains("40 90"), "{text}");

    // Exec through the api, then through contctl.
    let mut e = api(&env);
    proto::write_frame(
        &mut e,
        &Request::Exec {
            ns: "default".into(),
            name: "shell".into(),
            exec: proto::monitor::ExecRequest {
                args: vec!["sh".into(), "-c".into(), "echo from-exec; exit 3".into()],
                env: vec![],
                cwd: None,
                user: None,
                tty: None,
                stdin: false,
            },
        },
    )
    .unwrap();
    let mut out = String::new();
    let code = loop {
        match proto::read_frame::<Response>(&mut e).unwrap() {
            Response::ExecStarted { pid, .. } => assert!(pid > 0),
            Response::ExecOutput { data, .. } => out.push_str(&String::from_utf8_lossy(&data)),
            Response::ExecExited { code, .. } => break code,
            other => panic!("exec: {other:?}"),
        }
    };
    assert_eq!((out.trim(), code), ("from-exec", 3));
    let o = env.contctl(&["exec", "shell", "sh", "-c", "echo via-contctl; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "via-contctl");
    let stats: serde_json::Value =
        serde_json::from_str(&env.ok(&["stats", "--no-stream", "--format", "json", "shell"]))
            .unwrap();
    assert!(stats[0]["memory_usage"].as_u64().unwrap() > 0, "{stats}");

    // The shell's exit ends the attach with its code.
    input(&mut b, b"exit 6\n");
    loop {
        match proto::read_frame::<Response>(&mut b).unwrap() {
            Response::Output { .. } => continue,
            Response::Exited(rec) => {
                assert_eq!(rec.code, 6);
                break;
            }
            other => panic!("exit: {other:?}"),
        }
    }
    env.ok(&["rm", "shell"]);
}

#[test]
fn contctl_run_interactive_pipes_stdin_and_exits_with_the_code() {
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    let mut child = std::process::Command::new(contd_tests::bin_dir().join("contctl"))
        .arg("--socket")
        .arg(&env.socket)
        .args([
            "run",
            "-i",
            "--name",
            "cat",
            root,
            "sh",
            "-c",
            "read l; echo got-$l; exit 9",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "got-hello");
    env.ok(&["rm", "cat"]);
}

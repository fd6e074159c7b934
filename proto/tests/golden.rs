//! Golden bytes: the exact encoding of every message, stored under
//! `tests/golden/v1/` (version 1) and `tests/golden/vN/` (what version N
//! added). A change to any encoding fails here; a
//! monitor started by an older contd must stay adoptable. To add the files
//! of new messages (never to change old ones): `BLESS=1 cargo test -p proto`.

use proto::api::{ContainerInfo, CreateRequest, Request, Response, Stream};
use proto::monitor::{MonitorState, Ready, Request as MReq, Response as MResp};
use proto::{ErrorKind, ErrorReply, ExitRecord, Hello, Status};

fn record() -> ExitRecord {
    ExitRecord {
        code: 137,
        signal: Some(9),
        oom_killed: true,
        started_at: Some(1_700_000_000_000_000_000),
        finished_at: 1_700_000_001_000_000_000,
        protocol: 1,
    }
}

fn info() -> ContainerInfo {
    ContainerInfo {
        ns: "default".into(),
        name: "web".into(),
        status: Status::Running,
        pid: Some(42),
        exit: None,
        log_path: "/var/log/contd/default/web.log".into(),
        rootfs: "/srv/rootfs".into(),
        args: vec!["sh".into(), "-c".into(), "true".into()],
        created_at: 1_700_000_000_000_000_000,
        labels: vec![("k".into(), "v".into())],
        error: None,
    }
}

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let e = |m: &dyn erased::Enc| m.enc();
    let (ns, name) = (String::from("default"), String::from("web"));
    vec![
        (
            "hello",
            e(&Hello {
                protocol: 1,
                software: "contd 0.1.0".into(),
            }),
        ),
        ("exit_record", e(&record())),
        (
            "error_reply",
            e(&ErrorReply::new(ErrorKind::Conflict, "busy")),
        ),
        (
            "api_create",
            e(&Request::Create(CreateRequest {
                ns: ns.clone(),
                name: name.clone(),
                rootfs: "/srv/rootfs".into(),
                args: vec!["sleep".into(), "1".into()],
                env: vec!["A=1".into()],
                cwd: Some("/".into()),
                user: Some((1000, 1000)),
                hostname: Some("h".into()),
                memory: Some(64 << 20),
                pids_limit: Some(100),
                network: Some("/run/netns/x".into()),
                labels: vec![("k".into(), "v".into())],
                start: true,
            })),
        ),
        (
            "api_start",
            e(&Request::Start {
                ns: ns.clone(),
                name: name.clone(),
            }),
        ),
        (
            "api_inspect",
            e(&Request::Inspect {
                ns: ns.clone(),
                name: name.clone(),
            }),
        ),
        (
            "api_list",
            e(&Request::List {
                ns: Some(ns.clone()),
            }),
        ),
        (
            "api_logs",
            e(&Request::Logs {
                ns: ns.clone(),
                name: name.clone(),
            }),
        ),
        (
            "api_stop",
            e(&Request::Stop {
                ns: ns.clone(),
                name: name.clone(),
                timeout_secs: 10,
            }),
        ),
        (
            "api_kill",
            e(&Request::Kill {
                ns: ns.clone(),
                name: name.clone(),
                signal: 15,
            }),
        ),
        (
            "api_remove",
            e(&Request::Remove {
                ns: ns.clone(),
                name: name.clone(),
                force: true,
            }),
        ),
        ("api_wait", e(&Request::Wait { ns, name })),
        ("api_resp_ok", e(&Response::Ok)),
        ("api_resp_container", e(&Response::Container(info()))),
        (
            "api_resp_containers",
            e(&Response::Containers(vec![info()])),
        ),
        (
            "api_resp_logdata",
            e(&Response::LogData {
                stream: Stream::Stderr,
                data: b"x\n".to_vec(),
            }),
        ),
        ("api_resp_logend", e(&Response::LogEnd)),
        ("api_resp_exited", e(&Response::Exited(record()))),
        (
            "api_resp_error",
            e(&Response::Error(ErrorReply::new(ErrorKind::NotFound, "no"))),
        ),
        ("mon_state", e(&MReq::State)),
        ("mon_start", e(&MReq::Start)),
        ("mon_signal", e(&MReq::Signal { signal: 9 })),
        ("mon_wait", e(&MReq::Wait)),
        ("mon_release", e(&MReq::Release)),
        ("mon_resp_ok", e(&MResp::Ok)),
        (
            "mon_resp_state",
            e(&MResp::State(MonitorState {
                status: Status::Exited,
                pid: None,
                exit: Some(record()),
                created_at: 1,
                started_at: Some(2),
                log_path: "/l".into(),
                monitor_pid: 7,
            })),
        ),
        ("mon_resp_exited", e(&MResp::Exited(record()))),
        (
            "mon_resp_error",
            e(&MResp::Error(ErrorReply::new(ErrorKind::Internal, "x"))),
        ),
        (
            "ready_created",
            e(&Ready::Created {
                pid: 10,
                monitor_pid: 9,
            }),
        ),
        (
            "ready_failed",
            e(&Ready::Failed(ErrorReply::new(
                ErrorKind::InvalidArgument,
                "bad",
            ))),
        ),
    ]
}

mod erased {
    pub trait Enc {
        fn enc(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Enc for T {
        fn enc(&self) -> Vec<u8> {
            proto::encode(self).expect("encode sample")
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Version 2's additions (the version-1 messages are pinned under v1).
fn samples_v2() -> Vec<(&'static str, Vec<u8>)> {
    use proto::api::Stream;
    use proto::monitor::{ExecRequest, Stats};
    let e = |m: &dyn erased::Enc| m.enc();
    vec![
        (
            "mon_stop",
            e(&MReq::Stop {
                signal: 15,
                timeout_ms: 10_000,
            }),
        ),
        (
            "mon_attach",
            e(&MReq::Attach {
                stdin: true,
                detach_keys: Some(vec![16, 17]),
            }),
        ),
        (
            "mon_input",
            e(&MReq::Input {
                data: b"ls\n".to_vec(),
            }),
        ),
        ("mon_resize", e(&MReq::Resize { rows: 24, cols: 80 })),
        (
            "mon_exec",
            e(&MReq::Exec(ExecRequest {
                args: vec!["sh".into()],
                env: vec!["A=1".into()],
                cwd: Some("/tmp".into()),
                user: Some((1000, 1000)),
                tty: Some((24, 80)),
                stdin: true,
            })),
        ),
        (
            "mon_exec_input",
            e(&MReq::ExecInput {
                id: 1,
                data: b"x".to_vec(),
            }),
        ),
        ("mon_stats", e(&MReq::Stats)),
        (
            "mon_resp_output",
            e(&MResp::Output {
                stream: Stream::Stderr,
                data: b"hi".to_vec(),
            }),
        ),
        ("mon_resp_detached", e(&MResp::Detached)),
        (
            "mon_resp_exec_started",
            e(&MResp::ExecStarted { id: 1, pid: 4242 }),
        ),
        (
            "mon_resp_exec_output",
            e(&MResp::ExecOutput {
                id: 1,
                stream: Stream::Stdout,
                data: b"out".to_vec(),
            }),
        ),
        (
            "mon_resp_exec_exited",
            e(&MResp::ExecExited { id: 1, code: 3 }),
        ),
        (
            "api_create_interactive",
            e(&Request::CreateInteractive {
                req: CreateRequest {
                    ns: "default".into(),
                    name: "sh".into(),
                    rootfs: "/srv/rootfs".into(),
                    args: vec!["sh".into()],
                    start: false,
                    ..Default::default()
                },
                interactive: proto::api::Interactive {
                    tty: Some((24, 80)),
                    stdin: true,
                },
            }),
        ),
        (
            "api_attach",
            e(&Request::Attach {
                ns: "default".into(),
                name: "sh".into(),
                stdin: true,
                detach_keys: None,
            }),
        ),
        (
            "api_input",
            e(&Request::Input {
                data: b"ls\n".to_vec(),
            }),
        ),
        (
            "api_resize",
            e(&Request::Resize {
                ns: "default".into(),
                name: "sh".into(),
                rows: 24,
                cols: 80,
            }),
        ),
        (
            "api_exec",
            e(&Request::Exec {
                ns: "default".into(),
                name: "sh".into(),
                exec: ExecRequest {
                    args: vec!["true".into()],
                    env: vec![],
                    cwd: None,
                    user: None,
                    tty: None,
                    stdin: false,
                },
            }),
        ),
        (
            "api_exec_input",
            e(&Request::ExecInput {
                id: 2,
                data: vec![],
            }),
        ),
        (
            "api_stats",
            e(&Request::Stats {
                ns: "default".into(),
                name: "sh".into(),
            }),
        ),
        (
            "api_resp_output",
            e(&Response::Output {
                stream: Stream::Stdout,
                data: b"$ ".to_vec(),
            }),
        ),
        ("api_resp_detached", e(&Response::Detached)),
        (
            "api_resp_exec_started",
            e(&Response::ExecStarted { id: 2, pid: 99 }),
        ),
        (
            "api_resp_exec_output",
            e(&Response::ExecOutput {
                id: 2,
                stream: Stream::Stderr,
                data: b"e".to_vec(),
            }),
        ),
        (
            "api_resp_exec_exited",
            e(&Response::ExecExited { id: 2, code: 0 }),
        ),
        (
            "api_resp_stats",
            e(&Response::Stats(Stats {
                memory_usage: 1,
                memory_limit: 2,
                cpu_usage_ns: 3,
                pids_current: 4,
                pids_limit: 5,
            })),
        ),
        (
            "mon_resp_stats",
            e(&MResp::Stats(Stats {
                memory_usage: 1 << 20,
                memory_limit: 64 << 20,
                cpu_usage_ns: 123_456,
                pids_current: 2,
                pids_limit: 100,
            })),
        ),
    ]
}

/// Version 3's additions.
fn samples_v3() -> Vec<(&'static str, Vec<u8>)> {
    use proto::monitor::LogStatus;
    let e = |m: &dyn erased::Enc| m.enc();
    let status = LogStatus {
        error: Some("No space left on device (os error 28)".into()),
        error_at: Some(1_700_000_000_500_000_000),
        failing: true,
        dropped_records: 12,
        dropped_bytes: 3456,
    };
    vec![
        ("mon_log_status", e(&MReq::LogStatus)),
        ("mon_resp_log_status", e(&MResp::LogStatus(status.clone()))),
        (
            "api_log_status",
            e(&Request::LogStatus {
                ns: "default".into(),
                name: "web".into(),
            }),
        ),
        ("api_resp_log_status", e(&Response::LogStatus(status))),
    ]
}

/// Version 4's additions.
fn samples_v4() -> Vec<(&'static str, Vec<u8>)> {
    use proto::api::{
        ContainerConfig, ContainerDetails, Event, EventFilter, EventKind, Interactive, LogOptions,
        Mount, MountKind, Process, RestartPolicy,
    };
    use proto::monitor::MonitorEvent;
    use proto::Resources;
    let e = |m: &dyn erased::Enc| m.enc();
    let (ns, name) = (String::from("default"), String::from("web"));
    let resources = Resources {
        memory: Some(64 << 20),
        nano_cpus: Some(1_500_000_000),
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        pids_limit: Some(100),
    };
    let config = ContainerConfig {
        ns: ns.clone(),
        name: name.clone(),
        rootfs: "/srv/rootfs".into(),
        entrypoint: Some("sh -c".into()),
        args: vec!["echo hi".into()],
        env: vec!["A=1".into()],
        cwd: Some("/tmp".into()),
        user: Some("1000:1000".into()),
        hostname: Some("h".into()),
        resources: resources.clone(),
        network: Some("none".into()),
        mounts: vec![
            Mount {
                kind: MountKind::Bind,
                source: "/srv/data".into(),
                target: "/data".into(),
                readonly: true,
                propagation: Some("rslave".into()),
                size: None,
            },
            Mount {
                kind: MountKind::Tmpfs,
                source: String::new(),
                target: "/scratch".into(),
                readonly: false,
                propagation: None,
                size: Some(1 << 20),
            },
        ],
        read_only: true,
        cap_add: vec!["NET_ADMIN".into()],
        cap_drop: vec!["CHOWN".into()],
        labels: vec![("k".into(), "v".into())],
        restart: RestartPolicy::OnFailure { max: 3 },
        interactive: Interactive {
            tty: Some((24, 80)),
            stdin: true,
        },
        oci_config: None,
        start: true,
    };
    let details = ContainerDetails {
        ns: ns.clone(),
        name: name.clone(),
        status: Status::Running,
        pid: Some(42),
        exit: Some(record()),
        error: None,
        args: vec!["sh".into(), "-c".into(), "echo hi".into()],
        log_path: "/var/log/contd/default/web.log".into(),
        created_at: 1_700_000_000_000_000_000,
        started_at: Some(1_700_000_000_100_000_000),
        finished_at: None,
        restart_count: 2,
        next_restart_at: Some(1_700_000_002_000_000_000),
        config: config.clone(),
    };
    let event = Event {
        time: 1_700_000_000_000_000_000,
        ns: ns.clone(),
        name: name.clone(),
        kind: EventKind::Exited {
            code: 1,
            signal: None,
            oom_killed: false,
        },
    };
    let restarting = Event {
        kind: EventKind::Restarting {
            attempt: 3,
            delay_ms: 400,
        },
        ..event.clone()
    };
    let (ns2, name2) = (ns.clone(), name.clone());
    let id = move || (ns2.clone(), name2.clone());
    vec![
        ("mon_subscribe", e(&MReq::Subscribe)),
        (
            "mon_terminate",
            e(&MReq::Terminate {
                signal: 15,
                timeout_ms: 10_000,
            }),
        ),
        ("mon_pause", e(&MReq::Pause)),
        ("mon_resume", e(&MReq::Resume)),
        ("mon_update", e(&MReq::Update(resources.clone()))),
        ("mon_pids", e(&MReq::Pids)),
        (
            "mon_resp_event_started",
            e(&MResp::Event(MonitorEvent::Started(
                1_700_000_000_000_000_000,
            ))),
        ),
        ("mon_resp_event_oom", e(&MResp::Event(MonitorEvent::Oom))),
        (
            "mon_resp_event_exited",
            e(&MResp::Event(MonitorEvent::Exited(record()))),
        ),
        ("mon_resp_pids", e(&MResp::Pids(vec![42, 43]))),
        ("api_create_container", e(&Request::CreateContainer(config))),
        (
            "api_details",
            e(&{
                let (ns, name) = id();
                Request::Details { ns, name }
            }),
        ),
        (
            "api_list_details",
            e(&Request::ListDetails {
                ns: Some(ns.clone()),
            }),
        ),
        (
            "api_pause",
            e(&{
                let (ns, name) = id();
                Request::Pause { ns, name }
            }),
        ),
        (
            "api_resume",
            e(&{
                let (ns, name) = id();
                Request::Resume { ns, name }
            }),
        ),
        (
            "api_top",
            e(&{
                let (ns, name) = id();
                Request::Top { ns, name }
            }),
        ),
        (
            "api_update",
            e(&{
                let (ns, name) = id();
                Request::Update {
                    ns,
                    name,
                    resources,
                }
            }),
        ),
        (
            "api_events",
            e(&Request::Events(EventFilter {
                ns: Some(ns.clone()),
                name: None,
                kinds: vec!["exited".into(), "oom".into()],
                replay: true,
            })),
        ),
        (
            "api_logs_with",
            e(&{
                let (ns, name) = id();
                Request::LogsWith {
                    ns,
                    name,
                    options: LogOptions {
                        tail: Some(10),
                        since: Some(1_700_000_000_000_000_000),
                        follow: true,
                    },
                }
            }),
        ),
        ("api_namespaces", e(&Request::Namespaces)),
        ("api_resp_details", e(&Response::Details(details.clone()))),
        (
            "api_resp_details_list",
            e(&Response::DetailsList(vec![details])),
        ),
        (
            "api_resp_processes",
            e(&Response::Processes(vec![Process {
                pid: 42,
                ppid: 41,
                user: "root".into(),
                cpu_ms: 1234,
                command: "sleep 100".into(),
            }])),
        ),
        ("api_resp_event", e(&Response::Event(event))),
        ("api_resp_event_restarting", e(&Response::Event(restarting))),
        (
            "api_resp_namespaces",
            e(&Response::Namespaces(vec!["default".into(), "x".into()])),
        ),
    ]
}

/// Compares `samples` with the golden files of `version` (BLESS=1 writes
/// missing ones, never changes existing ones).
fn check_frozen(version: &str, samples: Vec<(&'static str, Vec<u8>)>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(version);
    let bless = std::env::var_os("BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut missing = Vec::new();
    for (name, bytes) in samples {
        let path = dir.join(format!("{name}.hex"));
        match std::fs::read_to_string(&path) {
            Ok(want) => assert_eq!(
                hex(&bytes),
                want.trim(),
                "encoding of {version}/{name} changed"
            ),
            Err(_) if bless => std::fs::write(&path, hex(&bytes) + "\n").unwrap(),
            Err(_) => missing.push(name),
        }
    }
    assert!(
        missing.is_empty(),
        "no golden file for {version}/{missing:?} (BLESS=1 to add)"
    );
}

/// Version 5's additions.
fn samples_v5() -> Vec<(&'static str, Vec<u8>)> {
    use proto::api::ContainerInfo;
    let e = |m: &dyn erased::Enc| m.enc();
    vec![
        (
            "api_resp_containers_unknown",
            e(&Response::Containers(vec![ContainerInfo {
                status: Status::Unknown,
                pid: None,
                exit: None,
                ..info()
            }])),
        ),
        (
            "ready_started",
            e(&Ready::Started {
                pid: 10,
                monitor_pid: 9,
                started_at: 1_700_000_000_000_000_001,
            }),
        ),
    ]
}

fn samples_v6() -> Vec<(&'static str, Vec<u8>)> {
    let e = |m: &dyn erased::Enc| m.enc();
    vec![
        (
            "api_create_container_with",
            e(&Request::CreateContainerWith {
                config: proto::api::ContainerConfig {
                    ns: "default".into(),
                    name: "once".into(),
                    rootfs: "/srv/rootfs".into(),
                    args: vec!["true".into()],
                    start: true,
                    ..Default::default()
                },
                options: proto::api::RunOptions {
                    auto_remove: true,
                    stop_signal: Some(10),
                    stop_timeout: Some(3),
                },
            }),
        ),
        (
            "api_stop_with",
            e(&Request::StopWith {
                ns: "default".into(),
                name: "web".into(),
                timeout_secs: None,
            }),
        ),
        (
            "api_resp_error_command_not_found",
            e(&Response::Error(ErrorReply::new(
                ErrorKind::CommandNotFound,
                "exec \"x\": executable file not found in $PATH",
            ))),
        ),
        (
            "api_resp_error_not_executable",
            e(&Response::Error(ErrorReply::new(
                ErrorKind::NotExecutable,
                "x",
            ))),
        ),
        (
            "api_resp_error_permission_denied",
            e(&Response::Error(ErrorReply::new(
                ErrorKind::PermissionDenied,
                "x",
            ))),
        ),
    ]
}

/// Version 7's additions.
fn samples_v7() -> Vec<(&'static str, Vec<u8>)> {
    let e = |m: &dyn erased::Enc| m.enc();
    vec![
        (
            "api_rename",
            e(&Request::Rename {
                ns: "default".into(),
                name: "old".into(),
                new_name: "new".into(),
            }),
        ),
        (
            "api_logs_timed",
            e(&Request::LogsTimed {
                ns: "default".into(),
                name: "web".into(),
                options: proto::api::LogOptions {
                    tail: Some(5),
                    since: None,
                    follow: true,
                },
            }),
        ),
        (
            "api_create_container_with_init",
            e(&Request::CreateContainerWithInit {
                config: proto::api::ContainerConfig {
                    ns: "default".into(),
                    name: "reaper".into(),
                    rootfs: "/srv/rootfs".into(),
                    args: vec!["sleep".into(), "9".into()],
                    start: true,
                    ..Default::default()
                },
                options: proto::api::RunOptions::default(),
                init: true,
            }),
        ),
        (
            "api_resp_log_line",
            e(&Response::LogLine {
                stream: proto::api::Stream::Stderr,
                time: 1_700_000_000_123_456_789,
                data: b"hello\n".to_vec(),
            }),
        ),
    ]
}

#[test]
fn v1_encodings_are_frozen() {
    check_frozen("v1", samples());
}

#[test]
fn v2_encodings_are_frozen() {
    check_frozen("v2", samples_v2());
}

#[test]
fn v3_encodings_are_frozen() {
    check_frozen("v3", samples_v3());
}

#[test]
fn v4_encodings_are_frozen() {
    check_frozen("v4", samples_v4());
}

#[test]
fn v5_encodings_are_frozen() {
    check_frozen("v5", samples_v5());
}

#[test]
fn v6_encodings_are_frozen() {
    check_frozen("v6", samples_v6());
}

#[test]
fn v7_encodings_are_frozen() {
    check_frozen("v7", samples_v7());
}

/// Every request says the version that introduced it, and it is the
/// version whose golden files hold it.
#[test]
fn requests_know_their_version() {
    for (version, samples) in [
        (1, samples()),
        (2, samples_v2()),
        (3, samples_v3()),
        (4, samples_v4()),
        (5, samples_v5()),
        (6, samples_v6()),
        (7, samples_v7()),
    ] {
        for (name, bytes) in samples {
            if name.starts_with("mon_") && !name.starts_with("mon_resp_") {
                let r: MReq = proto::decode(&bytes).unwrap();
                assert_eq!(r.since(), version, "{name}");
            } else if name.starts_with("api_") && !name.starts_with("api_resp_") {
                let r: Request = proto::decode(&bytes).unwrap();
                assert_eq!(r.since(), version, "{name}");
            }
        }
    }
}

#[test]
fn golden_files_decode_back() {
    // The stored bytes of a few messages decode into the same values.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1");
    let read = |n: &str| -> Vec<u8> {
        let h = std::fs::read_to_string(dir.join(format!("{n}.hex"))).unwrap();
        (0..h.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    let r: ExitRecord = proto::decode(&read("exit_record")).unwrap();
    assert_eq!(r, record());
    let c: Response = proto::decode(&read("api_resp_container")).unwrap();
    assert_eq!(c, Response::Container(info()));
}

#[test]
fn random_and_truncated_input_never_panics() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (_, bytes) in samples()
        .into_iter()
        .chain(samples_v2())
        .chain(samples_v3())
    {
        for cut in 0..bytes.len() {
            let _ = proto::decode::<Request>(&bytes[..cut]);
            let _ = proto::decode::<MResp>(&bytes[..cut]);
        }
    }
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = proto::decode::<Request>(&buf);
        let _ = proto::decode::<Response>(&buf);
        let _ = proto::decode::<MReq>(&buf);
        let _ = proto::decode::<MResp>(&buf);
        let _ = proto::read_frame::<Request>(&mut buf.as_slice());
    }
}

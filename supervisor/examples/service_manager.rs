//! A small service manager that embeds contd: it keeps two services
//! running from a rootfs, each with a restart policy, prints their events,
//! and survives its own restart: run it again (after a crash, a kill -9 or
//! an upgrade) and it adopts the containers it left running instead of
//! starting them twice.
//!
//! ```text
//! service_manager --rootfs DIR --state DIR [--cgroup-parent P] [--for SECS] [--down]
//! ```
//!
//! - `--for SECS`: print events for that long, then exit, leaving the
//!   services running (default: until SIGINT or SIGTERM).
//! - `--down`: stop and remove both services, then exit.
//!
//! No api socket is served: the `SupervisorHandle` is the only way in.
//! `contd-monitor` is found beside this executable or on `PATH`.

use std::path::PathBuf;
use std::time::Duration;

use supervisor::proto::api::{ContainerConfig, EventFilter, EventKind, RestartPolicy};
use supervisor::{Config, Supervisor, SupervisorHandle};

const NS: &str = "services";

/// The services this manager keeps: a name, a command, a restart policy.
fn services(rootfs: &str) -> Vec<ContainerConfig> {
    let service = |name: &str, script: &str, restart| ContainerConfig {
        ns: NS.into(),
        name: name.into(),
        rootfs: rootfs.into(),
        args: vec!["sh".into(), "-c".into(), script.into()],
        restart,
        ..ContainerConfig::default()
    };
    vec![
        // A long-running service, brought back whatever happens to it.
        service(
            "ticker",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done",
            RestartPolicy::Always,
        ),
        // A service that fails after a moment: restarted at most 3 times.
        service(
            "flaky",
            "echo starting; sleep 0.3; echo failing; exit 3",
            RestartPolicy::OnFailure { max: 3 },
        ),
    ]
}

struct Args {
    rootfs: String,
    state: PathBuf,
    cgroup_parent: String,
    run_for: Option<Duration>,
    down: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        rootfs: String::new(),
        state: PathBuf::new(),
        cgroup_parent: "service-manager".into(),
        run_for: None,
        down: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--rootfs" => a.rootfs = value()?,
            "--state" => a.state = value()?.into(),
            "--cgroup-parent" => a.cgroup_parent = value()?,
            "--for" => {
                let secs: f64 = value()?.parse().map_err(|_| "--for takes seconds")?;
                a.run_for = Some(Duration::from_secs_f64(secs));
            }
            "--down" => a.down = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.rootfs.is_empty() || a.state.as_os_str().is_empty() {
        return Err("usage: service_manager --rootfs DIR --state DIR [--cgroup-parent P] [--for SECS] [--down]".into());
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    // The same builder, defaults and checks as the contd daemon.
    let config = Config::builder()
        .state_dir(a.state.join("containers"))
        .log_dir(a.state.join("logs"))
        .cgroup_parent(a.cgroup_parent.clone())
        .no_socket()
        .build()?;
    let sup = Supervisor::start(config).await?;
    // Whatever a previous run of this manager left is adopted first.
    sup.adopted().await;
    let h = sup.handle();
    if a.down {
        for s in services(&a.rootfs) {
            match h.remove(NS, &s.name, true).await {
                Ok(()) => println!("removed {}", s.name),
                Err(e) => println!("{}: {e}", s.name),
            }
        }
        sup.shutdown().await;
        return Ok(());
    }
    let mut events = h
        .events(EventFilter {
            ns: Some(NS.into()),
            ..EventFilter::default()
        })
        .await?;
    ensure_running(&h, &a.rootfs).await?;
    let stop = async {
        match a.run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            ev = events.next() => match ev {
                Some(Ok(ev)) => println!("event {} {}", ev.name, describe(&ev.kind)),
                Some(Err(e)) => println!("events: {e}"),
                None => break,
            },
        }
    }
    // The services keep running: the next start of this manager adopts them.
    println!("leaving the services running");
    sup.shutdown().await;
    Ok(())
}

/// Creates the services that do not exist yet; reports the adopted ones.
async fn ensure_running(
    h: &SupervisorHandle,
    rootfs: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    for s in services(rootfs) {
        match h.inspect(NS, &s.name).await {
            Ok(d) => println!(
                "adopted {} ({:?}, pid {})",
                s.name,
                d.status,
                d.pid.map_or("-".into(), |p| p.to_string())
            ),
            Err(e) if e.kind == supervisor::proto::ErrorKind::NotFound => {
                let d = h.run(s.clone()).await?;
                println!(
                    "started {} (pid {})",
                    s.name,
                    d.pid.map_or("-".into(), |p| p.to_string())
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn describe(k: &EventKind) -> String {
    match k {
        EventKind::Exited { code, .. } => format!("exited {code}"),
        EventKind::Restarting { attempt, delay_ms } => {
            format!("restarting (attempt {attempt}, in {delay_ms} ms)")
        }
        other => other.word().to_string(),
    }
}

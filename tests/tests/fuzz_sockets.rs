//! Frames thrown at both sockets: contd's api socket and a container's
//! `monitor.sock` receive seeded garbage — random bytes, truncated frames,
//! oversize headers, and valid requests with bytes flipped (so that many
//! decode into odd but well-formed requests the dispatcher must handle).
//! Neither panics nor stops serving: after the barrage contd answers, the
//! container still runs under the same init, and contd's memory is back
//! near where it was. `CONTD_FUZZ_FRAMES` (default 2000 per socket) makes a
//! longer run; it prints its figures.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use contd_tests::{rss_kb, Rng, TestEnv};
use proto::api::Request;

/// Valid api requests to mutate (any byte): they name a namespace and a
/// container that do not exist, so whatever they decode into touches
/// nothing of the test's.
fn api_seeds() -> Vec<Vec<u8>> {
    let (ns, name) = (String::from("fz"), String::from("nope"));
    [
        Request::List {
            ns: Some(ns.clone()),
        },
        Request::Inspect {
            ns: ns.clone(),
            name: name.clone(),
        },
        Request::Details {
            ns: ns.clone(),
            name: name.clone(),
        },
        Request::Namespaces,
        Request::Top {
            ns: ns.clone(),
            name: name.clone(),
        },
        Request::Wait { ns, name },
    ]
    .iter()
    .map(|r| proto::encode(r).unwrap())
    .collect()
}

/// Valid monitor requests that only read. Their variant (the first four
/// bytes) is kept, so that the mutants stay readers: a mutant `Pause` or
/// `Signal` would be a legitimate request, not garbage.
fn monitor_seeds() -> Vec<Vec<u8>> {
    use proto::monitor::Request as M;
    [M::State, M::Stats, M::LogStatus, M::Pids]
        .iter()
        .map(|r| proto::encode(r).unwrap())
        .collect()
}

/// One connection's worth of abuse; returns how many frames it sent. The
/// first `keep` bytes of a mutated seed are left as they are.
///
/// With `keep` > 0 a connection carries one frame: after a truncated or
/// lying frame the stream is out of step, and the next frame's bytes could
/// name any variant (a legitimate `Pause`, say) instead of the kept one.
fn barrage(sock: &Path, rng: &mut Rng, seeds: &[Vec<u8>], keep: usize) -> u64 {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return 0;
    };
    s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    if rng.below(4) != 0 {
        let _ = proto::write_frame(&mut s, &proto::hello("fuzz"));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = proto::read_frame::<proto::Hello>(&mut s);
        s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    }
    let mut sent = 0;
    let frames = if keep > 0 { 1 } else { 1 + rng.below(4) };
    for _ in 0..frames {
        let (mut payload, keep): (Vec<u8>, usize) = match rng.below(3) {
            // Random: a random first word names no variant.
            0 => (
                (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect(),
                0,
            ),
            _ => (seeds[rng.below(seeds.len() as u64) as usize].clone(), keep),
        };
        for _ in 0..rng.below(4) {
            if payload.len() > keep {
                let i = keep + rng.below((payload.len() - keep) as u64) as usize;
                payload[i] = rng.next_u64() as u8;
            }
        }
        let len = match rng.below(10) {
            0 => u32::MAX,
            1 => payload.len() as u32 + 1 + rng.below(100) as u32,
            _ => payload.len() as u32,
        };
        let mut frame = len.to_le_bytes().to_vec();
        frame.extend_from_slice(&payload);
        if rng.below(5) == 0 {
            frame.truncate(rng.below(frame.len() as u64) as usize);
        }
        if s.write_all(&frame).is_err() {
            break;
        }
        sent += 1;
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
    }
    sent
}

#[test]
fn garbage_on_both_sockets_breaks_nothing() {
    let frames: u64 = std::env::var("CONTD_FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let env = TestEnv::new();
    let root = env.rootfs.to_str().unwrap();
    env.ok(&["run", "-d", "--name", "t", root, "sleep", "1000"]);
    let init = env.inspect("t")["pid"].clone();
    let contd = env.contd_pid().unwrap();
    env.ok(&["ps"]);
    let rss_before = rss_kb(contd);
    let (api_seeds, monitor_seeds) = (api_seeds(), monitor_seeds());
    let monitor_sock = env.state_dir.join("default/t/monitor.sock");
    let mut rng = Rng(0x5eed_f00d_1234_5678);
    let (mut api, mut mon) = (0, 0);
    while api < frames {
        api += barrage(&env.socket, &mut rng, &api_seeds, 0);
    }
    while mon < frames {
        mon += barrage(&monitor_sock, &mut rng, &monitor_seeds, 4);
    }
    // Both still serve, and nothing about the container changed.
    env.wait_for("contd to answer", 20, || {
        env.contctl(&["ps"]).status.success()
    });
    let v = env.inspect("t");
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["pid"], init, "{v}");
    assert!(env.ok(&["top", "t"]).contains("sleep 1000"));
    env.ok(&["stop", "-t", "1", "t"]);
    assert_eq!(env.inspect("t")["exit_code"], 137);
    env.ok(&["rm", "t"]);
    let log = env.contd_log();
    assert!(!log.contains("panicked"), "contd panicked: {log}");
    let rss_after = rss_kb(contd);
    println!(
        "fuzzed frames: {api} to contd, {mon} to the monitor; panics 0; \
         contd RSS {rss_before} kB before, {rss_after} kB after"
    );
    assert!(
        rss_after < rss_before + 8 * 1024,
        "contd grew from {rss_before} kB to {rss_after} kB"
    );
}

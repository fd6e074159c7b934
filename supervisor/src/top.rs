//! The processes of a container as `top` shows them, read from `/proc`.

use proto::api::Process;

/// Describes each pid that still exists.
pub(crate) fn processes(pids: &[i32]) -> Vec<Process> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let users = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    pids.iter()
        .filter_map(|&pid| one(pid, tick, &users))
        .collect()
}

fn one(pid: i32, tick: u64, users: &str) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces and ')'.
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let user = users
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid)
        .map_or(uid, |f| f[0].to_string());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Some(Process {
        pid,
        ppid,
        user,
        cpu_ms: (utime + stime) * 1000 / tick,
        command,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn describes_this_process() {
        let me = std::process::id() as i32;
        let p = super::processes(&[me, -1]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].pid, me);
        assert!(p[0].command.contains("supervisor"), "{:?}", p[0]);
    }
}

//! What Linux's /proc says about a process or thread: CPU time and peak memory, for the load
//! tools' reports on a shared machine (where the wall clock also measures the neighbours).

use std::path::Path;
use std::time::Duration;

/// User + system CPU time from a `/proc/.../stat` file.
pub fn cpu_time(stat: &Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // After the parenthesised name, the state is field 3; utime is field 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ, sysconf(_SC_CLK_TCK), is 100 on the Linux ABIs this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of this process's thread named `name`.
pub fn thread_cpu(name: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return cpu_time(&task.path().join("stat"));
        }
    }
    None
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

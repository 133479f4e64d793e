//! What a server process costs, read from `/proc`: CPU time of all its threads (nanosecond
//! precision, from each thread's `schedstat`) and resident memory; and the sums of both over
//! several processes (`--server-pid A,B`: the nodes of a cluster).

use std::fs;

/// CPU time in nanoseconds of every live thread of `pid` (user + system, as the scheduler
/// accounts it). Falls back to `/proc/PID/stat`'s utime + stime (clock ticks) when schedstat
/// is not available.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(text) = fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
                any = true;
            }
        }
    }
    if any {
        return Some(total);
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000_000 / USER_HZ)
}

/// Clock ticks per second in `/proc/PID/stat`: Linux reports USER_HZ = 100 to user space on
/// every architecture.
const USER_HZ: u64 = 100;

/// CPU time in nanoseconds of all the processes `pids`, summed; none when `pids` is empty or
/// one of them cannot be read (a sum missing a node would look like a cheaper server).
pub fn cpu_ns_sum(pids: &[u32]) -> Option<u64> {
    sum(pids, cpu_ns)
}

/// Resident set size in bytes of all the processes `pids`, summed (see [`cpu_ns_sum`]).
pub fn rss_bytes_sum(pids: &[u32]) -> Option<u64> {
    sum(pids, rss_bytes)
}

fn sum(pids: &[u32], of: fn(u32) -> Option<u64>) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| of(pid)).sum()
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_and_rss() {
        let pid = std::process::id();
        let spin: u64 = (0..5_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(cpu_ns(pid).unwrap() > 0);
        assert!(rss_bytes(pid).unwrap() > 0);
    }

    #[test]
    fn sums_cover_every_process_or_none() {
        let pid = std::process::id();
        assert_eq!(cpu_ns_sum(&[]), None);
        assert_eq!(rss_bytes_sum(&[]), None);
        let one = rss_bytes(pid).unwrap();
        let twice = rss_bytes_sum(&[pid, pid]).unwrap();
        // RSS moves a little between the reads.
        assert!(twice > one && twice < 3 * one, "{one} {twice}");
        assert!(cpu_ns_sum(&[pid, pid]).unwrap() >= cpu_ns(pid).unwrap());
        // No such process (pid_max is at most 2^22).
        assert_eq!(cpu_ns_sum(&[pid, u32::MAX]), None);
        assert_eq!(rss_bytes_sum(&[pid, u32::MAX]), None);
    }
}

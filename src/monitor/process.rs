//! The process's resident memory and CPU use, read from `/proc` as nats-server's `pse` does on
//! Linux: `mem` is the resident set in bytes, `cpu` the percentage of one core used since the
//! previous reading (since start for the first).

use std::time::Instant;

/// The last CPU reading, to measure the next one against.
#[derive(Debug)]
pub struct CpuSampler {
    last: (Instant, u64),
}

impl CpuSampler {
    pub fn new() -> CpuSampler {
        CpuSampler {
            last: (Instant::now(), cpu_ticks().unwrap_or(0)),
        }
    }

    /// Percent of one core used since the last call (since the sampler was made, the first
    /// time), rounded to a tenth as nats-server's is; 0 when `/proc` cannot be read.
    pub fn percent(&mut self) -> f64 {
        let Some(ticks) = cpu_ticks() else {
            return 0.0;
        };
        let now = Instant::now();
        let (since, before) = self.last;
        self.last = (now, ticks);
        let elapsed = now.duration_since(since).as_secs_f64();
        if elapsed <= 0.0 {
            return 0.0;
        }
        let per_second = rustix::param::clock_ticks_per_second() as f64;
        let used = ticks.saturating_sub(before) as f64 / per_second;
        (used / elapsed * 1000.0).round() / 10.0
    }
}

/// User and system CPU time of the process, in seconds; 0 when `/proc` cannot be read.
pub fn cpu_seconds() -> f64 {
    cpu_ticks().map_or(0.0, |ticks| {
        ticks as f64 / rustix::param::clock_ticks_per_second() as f64
    })
}

/// User and system time of the process, in clock ticks (`/proc/self/stat` fields 14 and 15).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Resident memory in bytes (`VmRSS` of `/proc/self/status`); 0 when unreadable.
pub fn resident_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_come_from_proc() {
        assert!(
            resident_bytes() > 1024 * 1024,
            "a test process has over 1 MiB resident"
        );
        assert!(cpu_ticks().is_some());
        let mut sampler = CpuSampler::new();
        let spin = Instant::now();
        while spin.elapsed().as_millis() < 50 {
            std::hint::black_box(0);
        }
        let percent = sampler.percent();
        // This thread spun the whole time; others of the test process may have run too.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!((0.0..=100.0 * cores + 1.0).contains(&percent), "{percent}");
    }
}

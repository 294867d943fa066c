//! CPU accounting from /proc, so a benchmark result says how busy each process was: the load
//! generator itself (if it is near one full core, the numbers measure the generator, not the
//! server), the server, and optionally the database. A watched process counts with its live
//! child processes and the children it has already reaped (PostgreSQL forks one backend per
//! connection). Linux only; elsewhere the watch reports nothing.

use std::collections::BTreeMap;
use std::time::Instant;

/// Linux reports CPU times to user space in USER_HZ, which is 100 on every architecture the
/// server targets.
const TICKS_PER_SECOND: f64 = 100.0;

/// The processes to account for, by label. The load generator itself is always `loadgen`.
#[derive(Debug, Clone, Default)]
pub struct CpuWatch {
    pids: Vec<(String, u32)>,
}

/// CPU ticks consumed so far by each watched process, at one instant.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    ticks: BTreeMap<String, u64>,
}

/// The fields of /proc/PID/stat this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    /// utime + stime of the process (all its threads).
    pub own: u64,
    /// cutime + cstime: reaped children.
    pub children: u64,
}

/// Parse a /proc/PID/stat line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from its closing parenthesis.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    let num = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        ppid: u32::try_from(num(4)?).ok()?,
        own: num(14)? + num(15)?,
        children: num(16)? + num(17)?,
    })
}

fn read_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl CpuWatch {
    pub fn new(watched: Vec<(String, u32)>) -> CpuWatch {
        let mut pids = vec![("loadgen".to_string(), std::process::id())];
        pids.extend(watched);
        CpuWatch { pids }
    }

    pub fn sample(&self) -> CpuSample {
        // One pass over /proc for the children of every watched process.
        let mut live_children: BTreeMap<u32, u64> = BTreeMap::new();
        if self.pids.len() > 1
            && let Ok(dir) = std::fs::read_dir("/proc")
        {
            for entry in dir.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                if let Some(st) = read_stat(pid)
                    && self.pids.iter().any(|(_, p)| *p == st.ppid)
                {
                    *live_children.entry(st.ppid).or_default() += st.own + st.children;
                }
            }
        }
        let ticks = self
            .pids
            .iter()
            .filter_map(|(label, pid)| {
                let st = read_stat(*pid)?;
                let children = live_children.get(pid).copied().unwrap_or(0);
                Some((label.clone(), st.own + st.children + children))
            })
            .collect();
        CpuSample {
            at: Instant::now(),
            ticks,
        }
    }

    /// Cores used by each watched process since `before` (1.0 = one core fully busy).
    pub fn usage_since(&self, before: &CpuSample) -> BTreeMap<String, f64> {
        let now = self.sample();
        let secs = now.at.duration_since(before.at).as_secs_f64();
        if secs <= 0.0 {
            return BTreeMap::new();
        }
        now.ticks
            .iter()
            .filter_map(|(label, t)| {
                let t0 = before.ticks.get(label)?;
                let used = t.saturating_sub(*t0) as f64 / TICKS_PER_SECOND;
                Some((label.clone(), used / secs))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_command_name() {
        // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime …
        let line = "4242 (postgres: bench (idle)) S 17 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 50 7 3 20 0 1 0 12345 100000 500 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                ppid: 17,
                own: 300,
                children: 10
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_busy_loop_shows_up_as_cpu_use() {
        let watch = CpuWatch::new(vec![]);
        let before = watch.sample();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = watch.usage_since(&before)["loadgen"];
        // One thread spinning: close to one core, less when the machine is busy, more when
        // other tests of this process run at the same time — but never nothing.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(used >= 0.05 && used <= cores + 0.5, "{used}");
    }
}

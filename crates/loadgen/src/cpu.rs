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

/// CPU ticks consumed so far by each watched process, at one instant, and the busy and total
/// ticks of each CPU of the machine (whoever used them: the machine may be shared).
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    ticks: BTreeMap<String, u64>,
    cpus: BTreeMap<String, (u64, u64)>,
}

/// Per-CPU `(busy, total)` ticks from /proc/stat: busy is everything but idle and iowait.
pub fn parse_proc_stat(text: &str) -> BTreeMap<String, (u64, u64)> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_string();
            let v: Vec<u64> = f.map_while(|x| x.parse().ok()).collect();
            if v.len() < 5 {
                return None;
            }
            // user nice system idle iowait irq softirq steal (guest time is already in user).
            let total: u64 = v.iter().take(8).sum();
            let idle = v[3] + v[4];
            Some((name, (total - idle, total)))
        })
        .collect()
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
        let cpus = std::fs::read_to_string("/proc/stat")
            .map(|t| parse_proc_stat(&t))
            .unwrap_or_default();
        CpuSample {
            at: Instant::now(),
            ticks,
            cpus,
        }
    }

    /// Cores used by each watched process since `before` (1.0 = one core fully busy).
    pub fn usage_since(&self, before: &CpuSample) -> BTreeMap<String, f64> {
        let now = self.sample();
        let secs = now.at.duration_since(before.at).as_secs_f64();
        if secs <= 0.0 {
            return BTreeMap::new();
        }
        let mut out: BTreeMap<String, f64> = now
            .ticks
            .iter()
            .filter_map(|(label, t)| {
                let t0 = before.ticks.get(label)?;
                let used = t.saturating_sub(*t0) as f64 / TICKS_PER_SECOND;
                Some((label.clone(), used / secs))
            })
            .collect();
        // How busy each CPU was, by anyone: if a CPU was busy while the watched processes on
        // it were not, other work on the machine took its share.
        for (cpu, (busy, total)) in &now.cpus {
            if let Some((b0, t0)) = before.cpus.get(cpu) {
                let dt = total.saturating_sub(*t0);
                if dt > 0 {
                    out.insert(
                        format!("{cpu}_busy"),
                        busy.saturating_sub(*b0) as f64 / dt as f64,
                    );
                }
            }
        }
        out
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

    #[test]
    fn per_cpu_busy_time_excludes_idle_and_iowait() {
        let text = "cpu  10 0 10 100 5 0 0 0 0 0\n\
                    cpu0 6 1 3 40 2 1 1 1 0 0\n\
                    cpu1 4 0 6 60 3 0 0 0 0 0\n\
                    intr 12345\nctxt 999\n";
        let m = parse_proc_stat(text);
        assert_eq!(m.len(), 2, "the aggregate line is not a CPU: {m:?}");
        assert_eq!(m["cpu0"], (13, 55));
        assert_eq!(m["cpu1"], (10, 73));
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

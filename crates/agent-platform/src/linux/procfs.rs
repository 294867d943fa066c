//! Small parsers for /proc files that more than one collector reads.

use std::collections::BTreeMap;

/// Parses /proc/meminfo into bytes per key (`MemTotal`, `SwapFree`, …). Lines with a unit
/// are in KiB; lines without one (`HugePages_Total`) are counts and kept as they are.
pub(crate) fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(Ok(n)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let value = match parts.next() {
            Some("kB") => n.saturating_mul(1024),
            _ => n,
        };
        out.insert(key.trim().to_string(), value);
    }
    out
}

/// `btime` of /proc/stat: boot time in Unix seconds.
pub(crate) fn parse_btime(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime"))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads `/proc/<pid>/comm` of every process and returns the set of command names. Entries
/// vanish while we read; those are skipped.
pub(crate) fn process_names(root: &crate::root::Root) -> std::collections::BTreeSet<String> {
    root.list("/proc")
        .into_iter()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| root.read_trimmed(&format!("/proc/{pid}/comm")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_values_are_bytes() {
        let m =
            parse_meminfo("MemTotal:       24684092 kB\nHugePages_Total:       3\nbogus line\n");
        assert_eq!(m.get("MemTotal"), Some(&(24_684_092 * 1024)));
        assert_eq!(m.get("HugePages_Total"), Some(&3));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn btime_is_found() {
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1\n"), None);
    }
}

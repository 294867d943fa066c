//! Volatile measurements for every check-in: load, CPU busy %, memory and swap, uptime, and
//! usage of the file systems that hold data.
//!
//! Which mounts are reported: everything except pseudo and memory file systems (proc, sysfs,
//! tmpfs, devtmpfs, cgroup, …), read-only images (squashfs: snaps are always 100 % full) and
//! overlay mounts other than `/` (container layers; an overlay root *is* the container's disk).
//! A file system mounted in several places (bind mounts) is reported once, at its first mount
//! point, and a mount point that was mounted over is reported for the visible mount.

use std::time::Duration;

use capstan_proto::inventory::{MountUsage, PerformanceSnapshot};

use crate::root::Root;

/// Time between the two /proc/stat samples.
const CPU_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);
/// statvfs on a dead network file system can hang; give up on that mount after this.
const STATVFS_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn snapshot(root: &Root) -> PerformanceSnapshot {
    let first = root
        .read("/proc/stat")
        .ok()
        .and_then(|s| parse_cpu_times(&s));
    tokio::time::sleep(CPU_SAMPLE_INTERVAL).await;
    let second = root
        .read("/proc/stat")
        .ok()
        .and_then(|s| parse_cpu_times(&s));
    let cpu_percent = match (first, second) {
        (Some(a), Some(b)) => cpu_percent(a, b),
        _ => None,
    };
    let load = root
        .read("/proc/loadavg")
        .ok()
        .and_then(|t| parse_loadavg(&t));
    let mem = root
        .read("/proc/meminfo")
        .map(|t| super::procfs::parse_meminfo(&t))
        .unwrap_or_default();
    let memory_total_bytes = mem.get("MemTotal").copied();
    let memory_used_bytes = memory_total_bytes.and_then(|total| {
        let available = mem.get("MemAvailable").copied().or_else(|| {
            // Kernels before 3.14 have no MemAvailable.
            Some(
                mem.get("MemFree")?
                    + mem.get("Buffers").copied().unwrap_or(0)
                    + mem.get("Cached").copied().unwrap_or(0),
            )
        })?;
        Some(total.saturating_sub(available))
    });
    let swap_total_bytes = mem.get("SwapTotal").copied();
    let swap_used_bytes =
        swap_total_bytes.and_then(|t| Some(t.saturating_sub(*mem.get("SwapFree")?)));
    let mounts = match root
        .read("/proc/self/mounts")
        .or_else(|_| root.read("/proc/mounts"))
    {
        Ok(text) if root.is_live() => usage(reportable_mounts(&text)).await,
        _ => Vec::new(),
    };
    PerformanceSnapshot {
        load_1: load.map(|l| l.0),
        load_5: load.map(|l| l.1),
        load_15: load.map(|l| l.2),
        cpu_percent,
        memory_total_bytes,
        memory_used_bytes,
        swap_total_bytes,
        swap_used_bytes,
        uptime_seconds: root
            .read("/proc/uptime")
            .ok()
            .and_then(|t| parse_uptime(&t)),
        mounts,
    }
}

pub(crate) fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

pub(crate) fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// Aggregate CPU jiffies from the `cpu` line of /proc/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    pub total: u64,
    pub idle: u64,
}

/// `cpu user nice system idle iowait irq softirq steal guest guest_nice`; guest time is
/// already contained in user time, so only the first eight columns are summed.
pub(crate) fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if v.len() < 4 {
        return None;
    }
    Some(CpuTimes {
        total: v.iter().sum(),
        idle: v[3] + v.get(4).copied().unwrap_or(0),
    })
}

pub(crate) fn cpu_percent(a: CpuTimes, b: CpuTimes) -> Option<f64> {
    let total = b.total.checked_sub(a.total)?;
    let idle = b.idle.checked_sub(a.idle)?;
    if total == 0 {
        return Some(0.0);
    }
    Some((total.saturating_sub(idle) as f64 * 100.0 / total as f64).clamp(0.0, 100.0))
}

/// One line of /proc/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub device: String,
    pub mount_point: String,
    pub fstype: String,
}

/// File systems without backing storage of their own, or whose usage is meaningless.
const SKIPPED_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "ramfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "pstore",
    "bpf",
    "autofs",
    "binfmt_misc",
    "efivarfs",
    "rpc_pipefs",
    "nsfs",
    "selinuxfs",
    "squashfs",
    "nfsd",
    "fuse.gvfsd-fuse",
    "fuse.portal",
    "fuse.lxcfs",
    "fuse.snapfuse",
    "overlay",
    "aufs",
    "iso9660",
    "udf",
];

/// Applies the module's mount rule to /proc/mounts content.
pub(crate) fn reportable_mounts(text: &str) -> Vec<MountEntry> {
    let mut visible: Vec<MountEntry> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let m = MountEntry {
            device: unescape(f[0]),
            mount_point: unescape(f[1]),
            fstype: f[2].to_string(),
        };
        let overlay_root = (m.fstype == "overlay" || m.fstype == "aufs") && m.mount_point == "/";
        if SKIPPED_FS.contains(&m.fstype.as_str()) && !overlay_root {
            continue;
        }
        // A later mount on the same point hides the earlier one.
        visible.retain(|v| v.mount_point != m.mount_point);
        visible.push(m);
    }
    let mut out: Vec<MountEntry> = Vec::new();
    for m in visible {
        let bind_duplicate = m.device.starts_with('/')
            && out
                .iter()
                .any(|o| o.device == m.device && o.fstype == m.fstype);
        if !bind_duplicate {
            out.push(m);
        }
    }
    out
}

/// /proc/mounts escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(digits) = b.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            out.push(
                digits
                    .iter()
                    .fold(0u8, |acc, d| acc.wrapping_mul(8).wrapping_add(d - b'0')),
            );
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(unix)]
async fn usage(mounts: Vec<MountEntry>) -> Vec<MountUsage> {
    let mut out = Vec::new();
    for m in mounts {
        let point = m.mount_point.clone();
        let stat = tokio::time::timeout(
            STATVFS_TIMEOUT,
            tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(point.as_str())),
        );
        let Ok(Ok(Ok(st))) = stat.await else { continue };
        // The field types are u32 or u64 depending on the target.
        let frsize = widen(st.fragment_size());
        let total = widen(st.blocks()).saturating_mul(frsize);
        let used = widen(st.blocks())
            .saturating_sub(widen(st.blocks_free()))
            .saturating_mul(frsize);
        if total == 0 {
            continue;
        }
        out.push(MountUsage {
            mount_point: m.mount_point,
            filesystem: Some(m.fstype),
            device: Some(m.device),
            total_bytes: total,
            used_bytes: used,
        });
    }
    out
}

#[cfg(unix)]
fn widen<T: Into<u64>>(v: T) -> u64 {
    v.into()
}

#[cfg(not(unix))]
async fn usage(_mounts: Vec<MountEntry>) -> Vec<MountUsage> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_and_uptime() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/389 12345\n"),
            Some((0.52, 0.58, 0.59))
        );
        assert_eq!(parse_loadavg("garbage"), None);
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735));
    }

    #[test]
    fn cpu_busy_percentage_between_samples() {
        let a = parse_cpu_times("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = parse_cpu_times("cpu  150 0 150 880 20 0 0 0 0 0\n").unwrap();
        assert_eq!(
            a,
            CpuTimes {
                total: 1000,
                idle: 800
            }
        );
        // 200 jiffies elapsed, 100 idle (80 idle + 20 iowait): 50 % busy.
        assert_eq!(cpu_percent(a, b), Some(50.0));
        assert_eq!(cpu_percent(b, a), None);
    }

    #[test]
    fn mount_rule() {
        let mounts = "proc /proc proc rw 0 0\n\
            /dev/vda / ext4 rw 0 0\n\
            tmpfs /dev/shm tmpfs rw 0 0\n\
            /dev/vdb1 /srv/my\\040data xfs rw 0 0\n\
            /dev/vdb1 /var/lib/docker/volumes/x xfs rw 0 0\n\
            /dev/loop3 /snap/core22/1033 squashfs ro 0 0\n\
            overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0\n\
            server:/export /mnt/nfs nfs4 rw 0 0\n\
            cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n\
            /dev/sdc1 /mnt/usb vfat rw 0 0\n\
            /dev/sdd1 /mnt/usb ext4 rw 0 0\n";
        let got: Vec<(String, String)> = reportable_mounts(mounts)
            .into_iter()
            .map(|m| (m.mount_point, m.fstype))
            .collect();
        let want: Vec<(String, String)> = [
            ("/", "ext4"),
            ("/srv/my data", "xfs"),
            ("/mnt/nfs", "nfs4"),
            ("/mnt/usb", "ext4"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
        let container =
            reportable_mounts("overlay / overlay rw,lowerdir=/a 0 0\nproc /proc proc rw 0 0\n");
        assert_eq!(container.len(), 1);
    }
}

//! OS seams of the Capstan agent: the inventory collectors (hardware, virtualization, OS,
//! network, software, security) and the volatile performance snapshot. Only this crate knows
//! how an operating system exposes those facts; everything it returns is a `capstan_proto`
//! type, already cut to the limits the server enforces.
//!
//! Linux collectors live in `linux/`, one module per section, each reading through a
//! configurable root so tests run them against fixture trees. Windows parsing lives in
//! `windows/` and is portable (tested here); the few OS calls are behind `cfg(windows)`.

mod command;
pub mod detect;
#[cfg(target_os = "linux")]
mod linux;
pub mod network;
mod root;
mod sanitize;
mod windows;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use capstan_proto::inventory::{
    CollectorStatus, INVENTORY_SCHEMA_VERSION, InventoryDocument, PerformanceSnapshot,
};

/// How [`collect_inventory`] runs.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Upper bound for each collector; a collector that exceeds it is reported as failed.
    pub collector_timeout: Duration,
    /// Root of the file system the collectors read (`/` in production, a fixture tree in
    /// tests). External commands and system calls are only used when this is `/`.
    pub root: PathBuf,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            collector_timeout: Duration::from_secs(20),
            root: PathBuf::from("/"),
        }
    }
}

/// Runs all collectors concurrently, each with its own timeout; one failing or timing-out
/// collector is recorded in `collectors` (ok=false, error text) and leaves its section None;
/// never panics.
pub async fn collect_inventory(opts: &CollectOptions) -> InventoryDocument {
    let collected_at_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut doc = InventoryDocument {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at_ms,
        ..Default::default()
    };
    platform_collect(opts, &mut doc).await;
    sanitize::sanitize(&mut doc);
    doc
}

/// Per-command bound inside a collector: long enough for a slow `rpm -qa`, short enough that
/// one stuck program does not eat the whole collector budget.
fn command_timeout(opts: &CollectOptions) -> Duration {
    (opts.collector_timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(15))
}

/// Runs one collector as its own task with a timeout and turns every outcome into a status.
async fn run_collector<T, F>(name: &str, timeout: Duration, fut: F) -> (Option<T>, CollectorStatus)
where
    T: Send + 'static,
    F: Future<Output = Result<T, String>> + Send + 'static,
{
    let started = Instant::now();
    let mut handle = tokio::spawn(fut);
    let outcome = tokio::time::timeout(timeout, &mut handle).await;
    let (value, error) = match outcome {
        Ok(Ok(Ok(v))) => (Some(v), None),
        Ok(Ok(Err(e))) => (None, Some(e)),
        Ok(Err(join)) if join.is_panic() => (None, Some("collector panicked".to_string())),
        Ok(Err(join)) => (None, Some(format!("collector task failed: {join}"))),
        Err(_) => {
            handle.abort();
            (
                None,
                Some(format!("timed out after {} s", timeout.as_secs())),
            )
        }
    };
    if let Some(e) = &error {
        tracing::warn!(collector = name, error = %e, "inventory collector failed");
    }
    let status = CollectorStatus {
        name: name.to_string(),
        ok: error.is_none(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error,
    };
    (value, status)
}

/// Runs synchronous file-reading work off the async worker threads.
#[cfg(target_os = "linux")]
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        if e.is_panic() {
            "collector panicked".into()
        } else {
            e.to_string()
        }
    })
}

#[cfg(target_os = "linux")]
async fn platform_collect(opts: &CollectOptions, doc: &mut InventoryDocument) {
    use linux::*;
    let root = root::Root::new(&opts.root);
    let t = opts.collector_timeout;
    let ct = command_timeout(opts);
    let (r1, r2, r3, r4, r5, r6) = (
        root.clone(),
        root.clone(),
        root.clone(),
        root.clone(),
        root.clone(),
        root,
    );
    let (hw, virt, os, net, sw, sec) = tokio::join!(
        run_collector("hardware", t, blocking(move || hardware::collect(&r1))),
        run_collector("virtualization", t, async move {
            let detect_virt = if r2.is_live() {
                virt::systemd_detect_virt(ct).await
            } else {
                None
            };
            blocking(move || virt::detect(&r2, detect_virt.as_deref())).await
        }),
        run_collector("os", t, async move { Ok(os::collect(&r3, ct).await) }),
        run_collector("network", t, blocking(move || network::collect(&r4))),
        run_collector(
            "software",
            t,
            async move { software::collect(&r5, ct).await }
        ),
        run_collector("security", t, async move {
            Ok(security::collect(&r6, ct).await)
        }),
    );
    doc.hardware = hw.0;
    doc.virtualization = virt.0;
    doc.os = os.0;
    doc.network = net.0;
    doc.software = sw.0;
    doc.security = sec.0;
    doc.collectors = vec![hw.1, virt.1, os.1, net.1, sw.1, sec.1];
}

#[cfg(windows)]
async fn platform_collect(opts: &CollectOptions, doc: &mut InventoryDocument) {
    windows::collect::collect(opts, doc).await;
}

#[cfg(not(any(target_os = "linux", windows)))]
async fn platform_collect(_opts: &CollectOptions, doc: &mut InventoryDocument) {
    doc.os = Some(capstan_proto::inventory::OperatingSystem {
        family: std::env::consts::OS.to_string(),
        hostname: hostname(),
        architecture: Some(std::env::consts::ARCH.to_string()),
        ..Default::default()
    });
    doc.collectors = [
        "hardware",
        "virtualization",
        "network",
        "software",
        "security",
    ]
    .iter()
    .map(|n| CollectorStatus {
        name: n.to_string(),
        ok: false,
        duration_ms: 0,
        error: Some(format!("not supported on {}", std::env::consts::OS)),
    })
    .collect();
}

/// Volatile measurements: load average, CPU % (two /proc/stat samples 250 ms apart),
/// memory/swap from /proc/meminfo, uptime, and used/total of the file systems that hold data
/// (the mount rule is documented in `linux/perf.rs`: pseudo, memory, squashfs and non-root
/// overlay file systems are skipped; bind mounts are reported once).
pub async fn performance_snapshot() -> PerformanceSnapshot {
    #[cfg(target_os = "linux")]
    let mut p = linux::perf::snapshot(&root::Root::new("/")).await;
    #[cfg(not(target_os = "linux"))]
    let mut p = PerformanceSnapshot::default();
    sanitize::sanitize_performance(&mut p);
    p
}

/// Stable machine identifiers the agent derives its device identity from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityMaterial {
    pub machine_id: Option<String>,
    pub hardware_uuid: Option<String>,
}

/// /etc/machine-id (or /var/lib/dbus/machine-id) and /sys/class/dmi/id/product_uuid (needs
/// root; None if unreadable or an all-zero/ff placeholder).
pub fn identity_material() -> IdentityMaterial {
    #[cfg(target_os = "linux")]
    {
        let root = root::Root::new("/");
        IdentityMaterial {
            machine_id: linux::identity::machine_id(&root),
            hardware_uuid: linux::identity::hardware_uuid(&root),
        }
    }
    #[cfg(windows)]
    {
        windows::collect::identity_material()
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        IdentityMaterial::default()
    }
}

/// /proc/sys/kernel/random/boot_id (changes on every boot; `None` where there is none).
pub fn boot_id() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        linux::identity::boot_id(&root::Root::new("/"))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The host name as `hostname` prints it; never empty (`localhost` as a last resort).
pub fn hostname() -> String {
    #[cfg(target_os = "linux")]
    {
        linux::os::hostname_at(&root::Root::new("/"))
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::env::var("COMPUTERNAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_collector_times_out_and_others_are_unaffected() {
        let (v, status) = run_collector("slow", Duration::from_millis(100), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, String>(1)
        })
        .await;
        assert_eq!(v, None);
        assert!(!status.ok);
        assert_eq!(status.error.as_deref(), Some("timed out after 0 s"));
    }

    #[tokio::test]
    async fn a_panicking_collector_is_reported_not_propagated() {
        let (v, status) = run_collector("bad", Duration::from_secs(1), async {
            let empty: Vec<u8> = Vec::new();
            Ok::<u8, String>(empty[usize::from(empty.is_empty())])
        })
        .await;
        assert_eq!(v, None);
        assert_eq!(status.error.as_deref(), Some("collector panicked"));
    }

    #[tokio::test]
    async fn fixture_root_collects_without_touching_the_host() {
        let opts = CollectOptions {
            root: root::testing::fixture("virt/kvm"),
            collector_timeout: Duration::from_secs(5),
        };
        let doc = collect_inventory(&opts).await;
        assert_eq!(doc.validate(), Ok(()));
        assert!(doc.collectors.iter().all(|c| c.ok), "{:?}", doc.collectors);
        assert_eq!(
            doc.virtualization.and_then(|v| v.technology).as_deref(),
            Some("kvm")
        );
        assert_eq!(doc.software, Some(Vec::new()));
        // No host facts leak in: the fixture has no hostname file.
        assert_eq!(doc.os.map(|o| o.hostname).as_deref(), Some("localhost"));
    }
}

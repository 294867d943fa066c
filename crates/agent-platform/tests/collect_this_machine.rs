//! Runs the real collectors on the machine the tests run on and compares what they report
//! with what the system's own tools say: host name (`hostname`), kernel (`uname -r`), RAM
//! (`MemTotal`), and the number of installed dpkg packages (`dpkg-query`). Also checks that
//! the document passes the server's validation and that collection is fast.
#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::{Duration, Instant};

use capstan_agent_platform::{
    CollectOptions, boot_id, collect_inventory, hostname, identity_material, performance_snapshot,
};
use capstan_proto::inventory::INVENTORY_SCHEMA_VERSION;

fn tool(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn mem_total_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_this_machine() {
    let started = Instant::now();
    let doc = collect_inventory(&CollectOptions::default()).await;
    let elapsed = started.elapsed();
    println!("collect_inventory took {elapsed:?}");
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());

    assert_eq!(doc.schema_version, INVENTORY_SCHEMA_VERSION);
    assert_eq!(doc.validate(), Ok(()));
    assert!(
        elapsed < Duration::from_secs(10),
        "collection took {elapsed:?}"
    );
    // Every collector can run on a Linux machine; none may fail here.
    for c in &doc.collectors {
        assert!(c.ok, "collector {} failed: {:?}", c.name, c.error);
    }
    let names: Vec<&str> = doc.collectors.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hardware",
            "virtualization",
            "os",
            "network",
            "software",
            "security"
        ]
    );

    let os = doc.os.as_ref().expect("os section");
    assert_eq!(os.family, "linux");
    assert_eq!(Some(os.hostname.clone()), tool("hostname", &[]));
    assert_eq!(os.hostname, hostname());
    assert_eq!(os.kernel, tool("uname", &["-r"]));
    assert_eq!(os.architecture, tool("uname", &["-m"]));
    assert!(doc.collected_at_ms > 1_600_000_000_000);

    let hw = doc.hardware.as_ref().expect("hardware section");
    assert_eq!(hw.memory_bytes, Some(mem_total_bytes()));
    let cpu = hw.cpu.as_ref().expect("cpu");
    let nproc: u32 = tool("nproc", &["--all"])
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(cpu.threads, Some(nproc));

    let software = doc.software.as_ref().expect("software section");
    if std::path::Path::new("/var/lib/dpkg/status").exists() {
        let statuses =
            tool("dpkg-query", &["-W", "-f=${db:Status-Status}\\n"]).expect("dpkg-query");
        let installed = statuses.lines().filter(|l| *l == "installed").count();
        let ours = software.iter().filter(|p| p.source == "dpkg").count();
        assert_eq!(
            ours, installed,
            "dpkg packages: ours {ours}, dpkg-query {installed}"
        );
        assert!(installed > 0);
    }

    let net = doc.network.as_ref().expect("network section");
    assert!(net.interfaces.iter().any(|i| i.name == "lo"
        && i.up == Some(true)
        && i.ipv4.iter().any(|a| a == "127.0.0.1/8")));

    let sec = doc.security.as_ref().expect("security section");
    assert!(
        sec.local_admins
            .iter()
            .any(|a| a.name == "root" && a.via == "uid0")
    );
    assert!(doc.virtualization.is_some());
}

#[tokio::test]
async fn performance_snapshot_of_this_machine() {
    let p = performance_snapshot().await;
    println!("{}", serde_json::to_string_pretty(&p).unwrap());
    assert_eq!(p.validate(), Ok(()));
    assert_eq!(p.memory_total_bytes, Some(mem_total_bytes()));
    assert!(
        p.memory_used_bytes
            .is_some_and(|u| u > 0 && u <= mem_total_bytes())
    );
    assert!(p.cpu_percent.is_some_and(|c| (0.0..=100.0).contains(&c)));
    assert!(p.load_1.is_some() && p.uptime_seconds.is_some());
    assert!(
        p.mounts.iter().any(|m| m.mount_point == "/"),
        "{:?}",
        p.mounts
    );
    assert!(
        p.mounts
            .iter()
            .all(|m| m.filesystem.as_deref() != Some("proc") && m.used_bytes <= m.total_bytes)
    );
}

#[test]
fn identity_of_this_machine() {
    let id = identity_material();
    let expected = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
        .ok()
        .map(|s| s.trim().to_string());
    assert_eq!(id.machine_id, expected);
    assert_eq!(
        boot_id(),
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
    );
    assert!(!hostname().is_empty());
}

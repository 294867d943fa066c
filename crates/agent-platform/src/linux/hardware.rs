//! Hardware inventory (E1-01): CPU from /proc/cpuinfo (sysfs topology as a fallback), RAM from
//! /proc/meminfo, disks from /sys/block, firmware and system identity from
//! /sys/class/dmi/id, boot mode and Secure Boot from /sys/firmware/efi.

use std::collections::BTreeSet;

use capstan_proto::inventory::{BootMode, Cpu, Disk, Firmware, Hardware, SystemInfo};

use crate::root::Root;

/// Collects the hardware section. Every part is best effort: a missing source leaves its
/// field `None` rather than failing the collector.
pub(crate) fn collect(root: &Root) -> Hardware {
    let mut cpu = root.read("/proc/cpuinfo").ok().map(|t| parse_cpuinfo(&t));
    if let Some(cpu) = &mut cpu {
        if cpu.sockets.is_none() || cpu.cores.is_none() {
            let (sockets, cores) = sysfs_topology(root);
            cpu.sockets = cpu.sockets.or(sockets);
            cpu.cores = cpu.cores.or(cores);
        }
        cpu.architecture = super::os::architecture(root);
    }
    let memory_bytes = root
        .read("/proc/meminfo")
        .ok()
        .and_then(|t| super::procfs::parse_meminfo(&t).get("MemTotal").copied());
    Hardware {
        cpu,
        memory_bytes,
        disks: disks(root),
        firmware: firmware(root),
        system: system(root),
    }
}

/// Parses /proc/cpuinfo of x86, ARM (with or without `model name`), POWER and s390.
pub(crate) fn parse_cpuinfo(text: &str) -> Cpu {
    let mut threads = 0u32;
    let mut packages = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut model_name = None;
    let mut vendor_id = None;
    let mut arm_parts: Vec<(String, String)> = Vec::new();
    let mut other_model = None;
    for block in text.split("\n\n") {
        let mut physical = None;
        let mut core = None;
        let mut implementer = None;
        let mut part = None;
        let mut is_processor = false;
        for line in block.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "processor" => is_processor = true,
                "model name" if model_name.is_none() && !v.is_empty() => {
                    model_name = Some(v.to_string())
                }
                "vendor_id" | "vendor" if vendor_id.is_none() => vendor_id = Some(v.to_string()),
                "physical id" => physical = Some(v.to_string()),
                "core id" => core = Some(v.to_string()),
                "CPU implementer" => implementer = Some(v.to_string()),
                "CPU part" => part = Some(v.to_string()),
                // POWER ("cpu : POWER9, altivec supported") and old ARM ("Processor : …").
                "cpu" | "Processor" if other_model.is_none() && !v.is_empty() => {
                    other_model = Some(v.split(',').next().unwrap_or(v).trim().to_string())
                }
                _ => {}
            }
        }
        if is_processor {
            threads += 1;
        }
        if let Some(p) = &physical {
            packages.insert(p.clone());
            if let Some(c) = core {
                cores.insert((p.clone(), c));
            }
        }
        if let (Some(i), Some(p)) = (implementer, part)
            && !arm_parts.contains(&(i.clone(), p.clone()))
        {
            arm_parts.push((i, p));
        }
    }
    let arm_vendor = arm_parts.first().map(|(i, _)| arm_implementer(i));
    let arm_model = (!arm_parts.is_empty()).then(|| {
        arm_parts
            .iter()
            .map(|(i, p)| {
                arm_part(i, p)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("part {p}"))
            })
            .collect::<Vec<_>>()
            .join(" + ")
    });
    // An ARM `model name` is the generic "ARMv7 Processor rev 4 (v7l)"; the part table names
    // the actual core when we know it.
    let model = match (&arm_model, &model_name) {
        (Some(m), _) if !m.starts_with("part ") => Some(m.clone()),
        (_, Some(n)) => Some(n.clone()),
        (Some(m), None) => Some(m.clone()),
        (None, None) => other_model,
    };
    let vendor = vendor_id.map(|v| x86_vendor(&v)).or(arm_vendor);
    Cpu {
        model,
        vendor,
        sockets: (!packages.is_empty()).then_some(packages.len() as u32),
        cores: (!cores.is_empty()).then_some(cores.len() as u32),
        threads: (threads > 0).then_some(threads),
        architecture: None,
    }
}

fn x86_vendor(id: &str) -> String {
    match id {
        "GenuineIntel" => "Intel".into(),
        "AuthenticAMD" => "AMD".into(),
        "HygonGenuine" => "Hygon".into(),
        "CentaurHauls" => "Centaur".into(),
        "  Shanghai  " | "Shanghai" => "Zhaoxin".into(),
        other => other.to_string(),
    }
}

/// ARM "CPU implementer" codes (Arm ARM, MIDR_EL1.Implementer).
fn arm_implementer(code: &str) -> String {
    let name = match code.to_ascii_lowercase().as_str() {
        "0x41" => "ARM",
        "0x42" => "Broadcom",
        "0x43" => "Cavium",
        "0x46" => "Fujitsu",
        "0x48" => "HiSilicon",
        "0x4e" => "NVIDIA",
        "0x50" => "APM",
        "0x51" => "Qualcomm",
        "0x53" => "Samsung",
        "0x56" => "Marvell",
        "0x61" => "Apple",
        "0x69" => "Intel",
        "0xc0" => "Ampere",
        _ => return format!("implementer {code}"),
    };
    name.to_string()
}

/// The most common ARM-designed and server cores; unknown parts are reported by number.
fn arm_part(implementer: &str, part: &str) -> Option<&'static str> {
    let name = match (
        implementer.to_ascii_lowercase().as_str(),
        part.to_ascii_lowercase().as_str(),
    ) {
        ("0x41", "0xd03") => "Cortex-A53",
        ("0x41", "0xd04") => "Cortex-A35",
        ("0x41", "0xd05") => "Cortex-A55",
        ("0x41", "0xd07") => "Cortex-A57",
        ("0x41", "0xd08") => "Cortex-A72",
        ("0x41", "0xd09") => "Cortex-A73",
        ("0x41", "0xd0a") => "Cortex-A75",
        ("0x41", "0xd0b") => "Cortex-A76",
        ("0x41", "0xd0c") => "Neoverse-N1",
        ("0x41", "0xd0d") => "Cortex-A77",
        ("0x41", "0xd40") => "Neoverse-V1",
        ("0x41", "0xd41") => "Cortex-A78",
        ("0x41", "0xd46") => "Cortex-A510",
        ("0x41", "0xd47") => "Cortex-A710",
        ("0x41", "0xd48") => "Cortex-X2",
        ("0x41", "0xd49") => "Neoverse-N2",
        ("0x41", "0xd4f") => "Neoverse-V2",
        ("0x41", "0xd80") => "Cortex-A520",
        ("0x41", "0xd81") => "Cortex-A720",
        ("0x41", "0xd8e") => "Neoverse-N3",
        ("0x41", "0xd84") => "Neoverse-V3",
        ("0x43", "0x0af") => "ThunderX2",
        ("0x48", "0xd01") => "Kunpeng-920",
        ("0xc0", "0xac3") => "Ampere-1",
        ("0xc0", "0xac4") => "Ampere-1a",
        _ => return None,
    };
    Some(name)
}

/// Sockets and cores from sysfs: the number of distinct package and core sibling sets. Used
/// where /proc/cpuinfo has no `physical id` (ARM, POWER).
fn sysfs_topology(root: &Root) -> (Option<u32>, Option<u32>) {
    let mut packages = BTreeSet::new();
    let mut cores = BTreeSet::new();
    for cpu in root.list("/sys/devices/system/cpu") {
        let Some(n) = cpu.strip_prefix("cpu") else {
            continue;
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let topo = format!("/sys/devices/system/cpu/{cpu}/topology");
        let package = root
            .read_trimmed(&format!("{topo}/package_cpus_list"))
            .or_else(|| root.read_trimmed(&format!("{topo}/core_siblings_list")));
        let core = root
            .read_trimmed(&format!("{topo}/core_cpus_list"))
            .or_else(|| root.read_trimmed(&format!("{topo}/thread_siblings_list")));
        if let Some(p) = package {
            packages.insert(p);
        }
        if let Some(c) = core {
            cores.insert(c);
        }
    }
    let count = |s: &BTreeSet<String>| (!s.is_empty()).then_some(s.len() as u32);
    (count(&packages), count(&cores))
}

/// Block devices that are not hardware: loop devices, RAM disks, compressed swap, device
/// mapper (LVM, LUKS, multipath) and md RAID arrays. md arrays are skipped because their member
/// disks are listed themselves, and a hardware inventory that listed both would double-count
/// capacity; the array is a logical volume like an LVM one.
const VIRTUAL_BLOCK_PREFIXES: &[&str] = &["loop", "ram", "zram", "dm-", "md", "nbd", "fd"];

pub(crate) fn disks(root: &Root) -> Vec<Disk> {
    let mut out = Vec::new();
    for name in root.list("/sys/block") {
        if VIRTUAL_BLOCK_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let base = format!("/sys/block/{name}");
        let sectors = root
            .read_trimmed(&format!("{base}/size"))
            .and_then(|s| s.parse::<u64>().ok());
        let model = root
            .read_trimmed(&format!("{base}/device/model"))
            .or_else(|| root.read_trimmed(&format!("{base}/device/name")));
        let serial = root
            .read_trimmed(&format!("{base}/device/serial"))
            .or_else(|| root.read_trimmed(&format!("{base}/serial")))
            .or_else(|| {
                root.read_bytes(&format!("{base}/device/vpd_pg80"))
                    .ok()
                    .and_then(|b| parse_vpd_pg80(&b))
            })
            .or_else(|| root.read_trimmed(&format!("{base}/device/wwid")))
            .or_else(|| root.read_trimmed(&format!("{base}/wwid")));
        let rotational = root
            .read_trimmed(&format!("{base}/queue/rotational"))
            .and_then(|r| match r.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            });
        let link = root.read_link(&base).unwrap_or_default();
        let driver = root
            .read_link(&format!("{base}/device/driver"))
            .unwrap_or_default();
        out.push(Disk {
            transport: disk_transport(&name, &link, &driver),
            name,
            model,
            serial,
            size_bytes: sectors.map(|s| s.saturating_mul(512)),
            rotational,
        });
    }
    out
}

/// Transport from the kernel name, the /sys/block symlink target (the device path through
/// the buses) and the driver symlink. USB is checked before ATA/SCSI because a USB disk sits
/// behind a SCSI host too.
pub(crate) fn disk_transport(name: &str, link: &str, driver: &str) -> Option<String> {
    let t = if name.starts_with("nvme") {
        "nvme"
    } else if link.contains("/usb") {
        "usb"
    } else if name.starts_with("vd") || driver.contains("virtio") || link.contains("/virtio") {
        "virtio"
    } else if name.starts_with("mmcblk") || link.contains("/mmc") {
        "mmc"
    } else if link.contains("/ata") {
        "sata"
    } else if name.starts_with("xvd") || link.contains("/xen") || link.contains("vbd-") {
        "xen"
    } else if link.contains("/host") || name.starts_with("sd") || name.starts_with("sr") {
        "scsi"
    } else {
        return None;
    };
    Some(t.to_string())
}

/// Unit serial number VPD page: a 4-byte header whose last byte is the length, then ASCII.
pub(crate) fn parse_vpd_pg80(bytes: &[u8]) -> Option<String> {
    let len = usize::from(*bytes.get(3)?);
    let data = bytes.get(4..4 + len.min(bytes.len().saturating_sub(4)))?;
    let s = String::from_utf8_lossy(data)
        .trim()
        .trim_matches('\0')
        .trim()
        .to_string();
    (!s.is_empty()).then_some(s)
}

pub(crate) fn firmware(root: &Root) -> Option<Firmware> {
    let dmi = |f: &str| {
        root.read_trimmed(&format!("/sys/class/dmi/id/{f}"))
            .filter(|v| !is_placeholder(v))
    };
    let boot_mode = if root.exists("/sys/firmware/efi") {
        Some(BootMode::Uefi)
    } else if !root.list("/sys/firmware").is_empty() {
        Some(BootMode::Legacy)
    } else {
        // Containers often mask /sys/firmware with an empty tmpfs: no evidence either way.
        None
    };
    let secure_boot = match boot_mode {
        Some(BootMode::Uefi) => root
            .read_bytes("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")
            .ok()
            .and_then(|b| parse_secure_boot(&b)),
        Some(BootMode::Legacy) => Some(false),
        None => None,
    };
    let fw = Firmware {
        vendor: dmi("bios_vendor"),
        version: dmi("bios_version"),
        date: dmi("bios_date").map(|d| normalise_bios_date(&d)),
        boot_mode,
        secure_boot,
    };
    (fw != Firmware::default()).then_some(fw)
}

/// efivarfs file: 4 bytes of attributes, then the variable's data (1 byte: 1 = enabled).
pub(crate) fn parse_secure_boot(bytes: &[u8]) -> Option<bool> {
    match bytes.get(4)? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// SMBIOS dates are `MM/DD/YYYY` (or `MM/DD/YY` before SMBIOS 2.3); anything else is kept
/// as reported.
pub(crate) fn normalise_bios_date(raw: &str) -> String {
    let parts: Vec<&str> = raw.trim().split('/').collect();
    if let [m, d, y] = parts.as_slice()
        && let (Ok(m), Ok(d), Ok(y)) = (m.parse::<u32>(), d.parse::<u32>(), y.parse::<u32>())
        && (1..=12).contains(&m)
        && (1..=31).contains(&d)
    {
        let year = match y {
            0..=79 => 2000 + y,
            80..=99 => 1900 + y,
            1900..=2999 => y,
            _ => return raw.trim().to_string(),
        };
        return format!("{year:04}-{m:02}-{d:02}");
    }
    raw.trim().to_string()
}

pub(crate) fn system(root: &Root) -> Option<SystemInfo> {
    let dmi = |f: &str| {
        root.read_trimmed(&format!("/sys/class/dmi/id/{f}"))
            .filter(|v| !is_placeholder(v))
    };
    let info = SystemInfo {
        manufacturer: dmi("sys_vendor"),
        product: dmi("product_name"),
        serial_number: dmi("product_serial"),
        uuid: dmi("product_uuid").and_then(|u| normalise_uuid(&u)),
        chassis: dmi("chassis_type")
            .and_then(|t| t.parse::<u32>().ok())
            .and_then(chassis_name)
            .map(str::to_string),
    };
    (info != SystemInfo::default()).then_some(info)
}

/// Lower-case UUID, or `None` for the all-zero / all-ones / sequential placeholders that
/// cheap boards ship with (they would make every such machine look identical).
pub(crate) fn normalise_uuid(raw: &str) -> Option<String> {
    let u = raw.trim().to_ascii_lowercase();
    let hex: String = u.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if hex.chars().all(|c| c == '0')
        || hex.chars().all(|c| c == 'f')
        || u == "03000200-0400-0500-0006-000700080009"
    {
        return None;
    }
    Some(u)
}

/// DMI strings vendors leave unfilled.
pub(crate) fn is_placeholder(v: &str) -> bool {
    const PLACEHOLDERS: &[&str] = &[
        "to be filled by o.e.m.",
        "to be filled by oem",
        "default string",
        "not specified",
        "not applicable",
        "not available",
        "system manufacturer",
        "system product name",
        "system serial number",
        "system version",
        "chassis serial number",
        "0123456789",
        "none",
        "n/a",
        "oem",
        "o.e.m.",
        "unknown",
    ];
    let v = v.trim().to_ascii_lowercase();
    v.is_empty() || PLACEHOLDERS.contains(&v.as_str()) || v.chars().all(|c| c == '0' || c == ' ')
}

/// SMBIOS chassis types (DSP0134 §7.4.1) in words. The brief's coarse classes are used for the
/// common types (desktop, laptop, server); the rest keep their SMBIOS names. A VM reports
/// whatever its hypervisor puts here ("other" for QEMU): being virtual is the virtualization
/// section's business, not the chassis'.
pub(crate) fn chassis_name(code: u32) -> Option<&'static str> {
    // Bit 7 is the "chassis lock present" flag, not part of the type.
    let name = match code & 0x7f {
        1 => "other",
        3 => "desktop",
        4 => "low profile desktop",
        5 => "pizza box",
        6 => "mini tower",
        7 => "tower",
        8 | 9 | 10 | 14 => "laptop",
        11 => "hand held",
        12 => "docking station",
        13 => "all in one",
        15 => "space-saving",
        16 => "lunch box",
        17 | 23 => "server",
        18 => "expansion chassis",
        19 => "sub chassis",
        20 => "bus expansion chassis",
        21 => "peripheral chassis",
        22 => "raid chassis",
        24 => "sealed-case pc",
        25 => "multi-system chassis",
        26 => "compact pci",
        27 => "advanced tca",
        28 => "blade",
        29 => "blade enclosure",
        30 => "tablet",
        31 => "convertible",
        32 => "detachable",
        33 => "iot gateway",
        34 => "embedded pc",
        35 => "mini pc",
        36 => "stick pc",
        _ => return None, // 2 = unknown, and anything newer than this table
    };
    Some(name)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::{Tree, fixture};

    fn cpuinfo(name: &str) -> Cpu {
        let text = std::fs::read_to_string(fixture(&format!("cpuinfo/{name}"))).unwrap();
        parse_cpuinfo(&text)
    }

    #[test]
    fn x86_two_sockets_with_hyperthreading() {
        let cpu = cpuinfo("x86_2socket_ht.txt");
        assert_eq!(cpu.vendor.as_deref(), Some("Intel"));
        assert_eq!(
            cpu.model.as_deref(),
            Some("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz")
        );
        assert_eq!(
            (cpu.sockets, cpu.cores, cpu.threads),
            (Some(2), Some(4), Some(8))
        );
    }

    #[test]
    fn arm64_without_model_name_uses_the_part_table() {
        let cpu = cpuinfo("arm64_neoverse.txt");
        assert_eq!(cpu.vendor.as_deref(), Some("ARM"));
        assert_eq!(cpu.model.as_deref(), Some("Neoverse-N1"));
        assert_eq!(cpu.threads, Some(4));
        // No physical id / core id: left to the sysfs fallback.
        assert_eq!((cpu.sockets, cpu.cores), (None, None));
    }

    #[test]
    fn raspberry_pi_big_little_and_armv7() {
        let cpu = cpuinfo("armv7_rpi.txt");
        assert_eq!(cpu.model.as_deref(), Some("Cortex-A53"));
        assert_eq!(cpu.threads, Some(4));
        let cpu = parse_cpuinfo(
            "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n\n\
             processor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n\
             processor\t: 2\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n",
        );
        assert_eq!(cpu.model.as_deref(), Some("Cortex-A76 + Cortex-A55"));
        assert_eq!(cpu.threads, Some(3));
    }

    #[test]
    fn arm_topology_comes_from_sysfs() {
        let mut tree = Tree::new();
        for cpu in 0..4 {
            let t = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
            tree = tree
                .file(&format!("{t}/package_cpus_list"), "0-3\n")
                .file(&format!("{t}/core_cpus_list"), format!("{cpu}\n"));
        }
        let tree = tree.file("/sys/devices/system/cpu/online", "0-3\n");
        assert_eq!(sysfs_topology(&tree.root()), (Some(1), Some(4)));
    }

    #[test]
    fn disks_skip_virtual_devices_and_detect_transport() {
        let pci = "/sys/devices/pci0000:00";
        let tree = Tree::new()
            // SATA SSD with the serial only in VPD page 0x80.
            .file(&format!("{pci}/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/size"), "1953525168\n")
            .file(&format!("{pci}/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/queue/rotational"), "0\n")
            .file(&format!("{pci}/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/model"), "Samsung SSD 860 \n")
            .file(
                &format!("{pci}/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/vpd_pg80"),
                b"\x00\x80\x00\x0fS3Z9NB0K123456A",
            )
            .symlink("/sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/device", "../..")
            .symlink("/sys/block/sda", "../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda")
            // NVMe.
            .file(&format!("{pci}/0000:00:1d.0/nvme/nvme0/nvme0n1/size"), "1000215216\n")
            .file(&format!("{pci}/0000:00:1d.0/nvme/nvme0/nvme0n1/queue/rotational"), "0\n")
            .file(&format!("{pci}/0000:00:1d.0/nvme/nvme0/model"), "WD Blue SN570 500GB\n")
            .file(&format!("{pci}/0000:00:1d.0/nvme/nvme0/serial"), "  22123A801234  \n")
            .symlink("/sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1/device", "..")
            .symlink("/sys/block/nvme0n1", "../devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1")
            // USB stick behind a SCSI host.
            .file(&format!("{pci}/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb/size"), "60063744\n")
            .file(&format!("{pci}/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb/queue/rotational"), "1\n")
            .symlink("/sys/block/sdb", "../devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb")
            // virtio disk with the serial directly under the block device.
            .file(&format!("{pci}/0000:00:02.0/virtio1/block/vda/size"), "536870912\n")
            .file(&format!("{pci}/0000:00:02.0/virtio1/block/vda/serial"), "vol-0abc\n")
            .symlink("/sys/block/vda", "../devices/pci0000:00/0000:00:02.0/virtio1/block/vda")
            // Not hardware.
            .file("/sys/devices/virtual/block/loop0/size", "0\n")
            .symlink("/sys/block/loop0", "../devices/virtual/block/loop0")
            .file("/sys/devices/virtual/block/dm-0/size", "100\n")
            .symlink("/sys/block/dm-0", "../devices/virtual/block/dm-0")
            .file("/sys/devices/virtual/block/zram0/size", "100\n")
            .symlink("/sys/block/zram0", "../devices/virtual/block/zram0")
            .file("/sys/devices/virtual/block/md127/size", "100\n")
            .symlink("/sys/block/md127", "../devices/virtual/block/md127");
        let disks = disks(&tree.root());
        let summary: Vec<_> = disks
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    d.transport.as_deref(),
                    d.size_bytes,
                    d.rotational,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "nvme0n1",
                    Some("nvme"),
                    Some(1_000_215_216 * 512),
                    Some(false)
                ),
                ("sda", Some("sata"), Some(1_953_525_168 * 512), Some(false)),
                ("sdb", Some("usb"), Some(60_063_744 * 512), Some(true)),
                ("vda", Some("virtio"), Some(536_870_912 * 512), None),
            ]
        );
        assert_eq!(disks[0].model.as_deref(), Some("WD Blue SN570 500GB"));
        assert_eq!(disks[0].serial.as_deref(), Some("22123A801234"));
        assert_eq!(disks[1].model.as_deref(), Some("Samsung SSD 860"));
        assert_eq!(disks[1].serial.as_deref(), Some("S3Z9NB0K123456A"));
        assert_eq!(disks[3].serial.as_deref(), Some("vol-0abc"));
    }

    #[test]
    fn firmware_and_system_from_dmi() {
        let tree = Tree::new()
            .file("/sys/class/dmi/id/bios_vendor", "Dell Inc.\n")
            .file("/sys/class/dmi/id/bios_version", "1.18.0\n")
            .file("/sys/class/dmi/id/bios_date", "07/12/2023\n")
            .file("/sys/class/dmi/id/sys_vendor", "Dell Inc.\n")
            .file("/sys/class/dmi/id/product_name", "Latitude 7420\n")
            .file("/sys/class/dmi/id/product_serial", "ABC1234\n")
            .file(
                "/sys/class/dmi/id/product_uuid",
                "4C4C4544-0042-3510-8051-B4C04F4D3733\n",
            )
            .file("/sys/class/dmi/id/chassis_type", "10\n")
            .dir("/sys/firmware/efi/efivars")
            .file(
                "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
                [6u8, 0, 0, 0, 1],
            );
        let root = tree.root();
        let fw = firmware(&root).unwrap();
        assert_eq!(fw.vendor.as_deref(), Some("Dell Inc."));
        assert_eq!(fw.date.as_deref(), Some("2023-07-12"));
        assert_eq!(fw.boot_mode, Some(BootMode::Uefi));
        assert_eq!(fw.secure_boot, Some(true));
        let sys = system(&root).unwrap();
        assert_eq!(sys.product.as_deref(), Some("Latitude 7420"));
        assert_eq!(
            sys.uuid.as_deref(),
            Some("4c4c4544-0042-3510-8051-b4c04f4d3733")
        );
        assert_eq!(sys.chassis.as_deref(), Some("laptop"));
    }

    #[test]
    fn placeholders_and_unreadable_root_only_files_are_none() {
        let tree = Tree::new()
            .file("/sys/class/dmi/id/sys_vendor", "To Be Filled By O.E.M.\n")
            .file("/sys/class/dmi/id/product_name", "Default string\n")
            .file(
                "/sys/class/dmi/id/product_uuid",
                "03000200-0400-0500-0006-000700080009\n",
            )
            .file("/sys/class/dmi/id/chassis_type", "3\n")
            .dir("/sys/firmware/acpi");
        let root = tree.root();
        let sys = system(&root).unwrap();
        assert_eq!(
            sys,
            SystemInfo {
                chassis: Some("desktop".into()),
                ..Default::default()
            }
        );
        let fw = firmware(&root).unwrap();
        assert_eq!(
            (fw.boot_mode, fw.secure_boot),
            (Some(BootMode::Legacy), Some(false))
        );
    }

    #[test]
    fn bios_dates_are_normalised() {
        assert_eq!(normalise_bios_date("12/01/2006"), "2006-12-01");
        assert_eq!(normalise_bios_date("04/01/14"), "2014-04-01");
        assert_eq!(normalise_bios_date("2023-01-02"), "2023-01-02");
        assert_eq!(normalise_bios_date("13/45/2020"), "13/45/2020");
    }

    #[test]
    fn chassis_types_keep_their_smbios_meaning() {
        assert_eq!(chassis_name(3), Some("desktop"));
        assert_eq!(chassis_name(9), Some("laptop"));
        assert_eq!(chassis_name(23), Some("server"));
        assert_eq!(chassis_name(1), Some("other"));
        assert_eq!(chassis_name(0x80 | 17), Some("server"));
        assert_eq!(chassis_name(2), None);
    }

    #[test]
    fn secure_boot_variable_data_byte() {
        assert_eq!(parse_secure_boot(&[6, 0, 0, 0, 0]), Some(false));
        assert_eq!(parse_secure_boot(&[6, 0, 0, 0]), None);
    }
}

//! The inventory document an agent reports: hardware, virtualization, OS, network, software,
//! security facts, plus the status of each collector. Everything in it comes from the node and
//! is untrusted on the server: [`InventoryDocument::validate`] enforces the size and shape
//! limits before anything is stored.
//!
//! Volatile measurements (load, CPU %, memory in use, disk usage) are *not* part of this
//! document: they travel with every check-in as a [`PerformanceSnapshot`], so the document's
//! digest only changes when something an administrator would call a change happens (delta mode).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Current schema version of [`InventoryDocument`].
pub const INVENTORY_SCHEMA_VERSION: u32 = 1;

/// Hard limits applied to agent-reported inventory. A real machine is far below them
/// (a developer workstation has ~3,000 packages); they exist to bound hostile input.
pub mod limits {
    /// Maximum number of software entries in one document.
    pub const MAX_SOFTWARE: usize = 50_000;
    /// Maximum number of entries in any other list (disks, interfaces, addresses, users…).
    pub const MAX_LIST: usize = 4_096;
    /// Maximum length of any string, in bytes.
    pub const MAX_STRING: usize = 4_096;
    /// Maximum length of names such as hostnames and package names, in bytes.
    pub const MAX_NAME: usize = 512;
}

/// One full inventory report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryDocument {
    /// Always [`INVENTORY_SCHEMA_VERSION`] for documents produced by this build.
    pub schema_version: u32,
    /// Unix time in milliseconds when collection started (agent clock).
    pub collected_at_ms: i64,
    pub hardware: Option<Hardware>,
    pub virtualization: Option<Virtualization>,
    pub os: Option<OperatingSystem>,
    pub network: Option<Network>,
    /// Installed software from every package source found on the node.
    pub software: Option<Vec<SoftwarePackage>>,
    pub security: Option<Security>,
    /// Outcome of each collector; a failed collector leaves its section `None`.
    #[serde(default)]
    pub collectors: Vec<CollectorStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Hardware {
    pub cpu: Option<Cpu>,
    /// Physical memory in bytes.
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub disks: Vec<Disk>,
    pub firmware: Option<Firmware>,
    pub system: Option<SystemInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cpu {
    pub model: Option<String>,
    pub vendor: Option<String>,
    /// Physical sockets.
    pub sockets: Option<u32>,
    /// Physical cores in total.
    pub cores: Option<u32>,
    /// Logical processors (hardware threads) in total.
    pub threads: Option<u32>,
    pub architecture: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Disk {
    /// Kernel name (`sda`, `nvme0n1`) or Windows device id.
    pub name: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub size_bytes: Option<u64>,
    /// `Some(true)` for spinning disks, `Some(false)` for SSD/NVMe, `None` when unknown.
    pub rotational: Option<bool>,
    /// Transport where known: nvme, sata, usb, virtio, scsi.
    pub transport: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Firmware {
    pub vendor: Option<String>,
    pub version: Option<String>,
    /// Release date as the firmware reports it (normalised to YYYY-MM-DD when parseable).
    pub date: Option<String>,
    pub boot_mode: Option<BootMode>,
    /// `None` when the state cannot be read (legacy boot, no efivars access).
    pub secure_boot: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BootMode {
    Uefi,
    Legacy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial_number: Option<String>,
    /// SMBIOS system UUID.
    pub uuid: Option<String>,
    /// Chassis type in words (desktop, laptop, server, virtual machine, …).
    pub chassis: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Virtualization {
    pub kind: VirtualizationKind,
    /// The hypervisor or container engine, e.g. `kvm`, `vmware`, `hyperv`, `virtualbox`, `xen`,
    /// `amazon`, `google`, `azure`, `docker`, `podman`, `lxc`, `systemd-nspawn`.
    pub technology: Option<String>,
    /// Which evidence decided (for the administrator wondering why).
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VirtualizationKind {
    #[default]
    Physical,
    VirtualMachine,
    Container,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperatingSystem {
    /// `linux` or `windows` (or another `std::env::consts::OS` value).
    pub family: String,
    /// Distribution or product name, e.g. "Debian GNU/Linux".
    pub name: Option<String>,
    /// os-release `ID`, e.g. `debian`, `ubuntu`, `rhel`.
    pub id: Option<String>,
    /// os-release `ID_LIKE`, split on whitespace.
    #[serde(default)]
    pub id_like: Vec<String>,
    pub version: Option<String>,
    pub version_id: Option<String>,
    pub codename: Option<String>,
    pub build: Option<String>,
    pub kernel: Option<String>,
    pub architecture: Option<String>,
    pub hostname: String,
    pub fqdn: Option<String>,
    pub timezone: Option<String>,
    /// Unix time in seconds of the last boot.
    pub boot_time: Option<i64>,
    pub domain: Option<DomainMembership>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DomainMembership {
    /// `active_directory`, `kerberos`, `workgroup` or `none`.
    pub kind: String,
    /// Domain (realm) or workgroup name.
    pub name: Option<String>,
    /// How membership was found: realmd, sssd, winbind, registry…
    pub source: Option<String>,
    /// Organisational unit (Windows) where known.
    pub ou: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Network {
    #[serde(default)]
    pub interfaces: Vec<NetworkInterface>,
    pub default_gateway_v4: Option<String>,
    pub default_gateway_v6: Option<String>,
    #[serde(default)]
    pub dns_servers: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkInterface {
    pub name: String,
    pub mac: Option<String>,
    /// Addresses in CIDR notation (`192.0.2.10/24`, `2001:db8::1/64`).
    #[serde(default)]
    pub ipv4: Vec<String>,
    #[serde(default)]
    pub ipv6: Vec<String>,
    pub up: Option<bool>,
    pub mtu: Option<u32>,
    /// Link speed in Mbit/s where known.
    pub speed_mbps: Option<u32>,
    pub virtual_interface: Option<bool>,
}

/// One installed software package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SoftwarePackage {
    pub name: String,
    pub version: String,
    pub architecture: Option<String>,
    /// Where the entry comes from: `dpkg`, `rpm`, `pacman`, `snap`, `flatpak`, `msi`,
    /// `windows_uninstall`.
    pub source: String,
    pub publisher: Option<String>,
    /// Unix time in seconds, when the package manager records it.
    pub install_date: Option<i64>,
    /// MSI ProductCode (`{GUID}`) for Windows Installer packages.
    pub product_code: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Security {
    /// Accounts with administrative rights (uid 0, members of sudo/wheel/admin, Windows
    /// local Administrators).
    #[serde(default)]
    pub local_admins: Vec<LocalAdmin>,
    pub ssh: Option<SshServer>,
    pub remote_desktop: Option<RemoteDesktop>,
    pub firewall: Option<Firewall>,
    pub pending_reboot: Option<bool>,
    /// Why a reboot is pending (e.g. packages listed in /run/reboot-required.pkgs).
    #[serde(default)]
    pub pending_reboot_reasons: Vec<String>,
    #[serde(default)]
    pub encrypted_volumes: Vec<EncryptedVolume>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LocalAdmin {
    pub name: String,
    /// Why the account counts as an administrator: `uid0`, `group:sudo`, `group:wheel`, …
    pub via: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SshServer {
    pub installed: bool,
    pub enabled: Option<bool>,
    pub running: Option<bool>,
    /// Effective `PermitRootLogin` (`yes`, `no`, `prohibit-password`, `forced-commands-only`).
    pub permit_root_login: Option<String>,
    pub password_authentication: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RemoteDesktop {
    /// `xrdp` on Linux, `rdp` on Windows.
    pub kind: String,
    pub installed: bool,
    pub enabled: Option<bool>,
    pub running: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Firewall {
    /// `nftables`, `iptables`, `ufw`, `firewalld`, `windows` — the active front-end.
    pub backend: Option<String>,
    pub enabled: bool,
    /// Number of rules seen where countable.
    pub rule_count: Option<u32>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EncryptedVolume {
    /// Block device, e.g. `nvme0n1p3`.
    pub device: String,
    /// `luks`, `luks2`, `bitlocker`.
    pub kind: String,
    /// Mapped name / mount point where known.
    pub mapped_as: Option<String>,
}

/// Outcome of one collector run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CollectorStatus {
    /// Collector name: hardware, virtualization, os, network, software, security.
    pub name: String,
    pub ok: bool,
    pub duration_ms: u64,
    /// Error text when `ok` is false (timeout, permission denied, …).
    pub error: Option<String>,
}

/// Volatile measurements sent with every check-in (not part of the digest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PerformanceSnapshot {
    pub load_1: Option<f64>,
    pub load_5: Option<f64>,
    pub load_15: Option<f64>,
    /// CPU busy percentage over the sampling interval.
    pub cpu_percent: Option<f64>,
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_used_bytes: Option<u64>,
    pub uptime_seconds: Option<u64>,
    #[serde(default)]
    pub mounts: Vec<MountUsage>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MountUsage {
    pub mount_point: String,
    pub filesystem: Option<String>,
    pub device: Option<String>,
    pub total_bytes: u64,
    pub used_bytes: u64,
}

/// Why an inventory document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ValidationError {
    /// JSON-path-like location of the offending value, e.g. `software[12].name`.
    pub path: String,
    pub reason: String,
}

struct Checker {
    errors: Option<ValidationError>,
}

impl Checker {
    fn fail(&mut self, path: impl FnOnce() -> String, reason: String) {
        if self.errors.is_none() {
            self.errors = Some(ValidationError {
                path: path(),
                reason,
            });
        }
    }

    fn str(&mut self, path: &str, value: &str, max: usize) {
        if value.len() > max {
            self.fail(|| path.to_string(), format!("longer than {max} bytes"));
        }
        if value.chars().any(|c| c == '\0') {
            self.fail(|| path.to_string(), "contains a NUL character".into());
        }
    }

    fn opt(&mut self, path: &str, value: &Option<String>, max: usize) {
        if let Some(v) = value {
            self.str(path, v, max);
        }
    }

    fn list<T>(&mut self, path: &str, list: &[T], max: usize) -> bool {
        if list.len() > max {
            self.fail(
                || path.to_string(),
                format!("{} entries, at most {max} are accepted", list.len()),
            );
            return false;
        }
        true
    }

    fn strings(&mut self, path: &str, list: &[String], max_len: usize) {
        if self.list(path, list, limits::MAX_LIST) {
            for (i, s) in list.iter().enumerate() {
                self.str(&format!("{path}[{i}]"), s, max_len);
            }
        }
    }
}

impl InventoryDocument {
    /// Check every limit. Returns the first violation with its path.
    pub fn validate(&self) -> Result<(), ValidationError> {
        use limits::*;
        let mut c = Checker { errors: None };
        if self.schema_version == 0 || self.schema_version > INVENTORY_SCHEMA_VERSION {
            c.fail(
                || "schema_version".into(),
                format!(
                    "unsupported schema version {} (this server reads 1..={INVENTORY_SCHEMA_VERSION})",
                    self.schema_version
                ),
            );
        }
        if let Some(hw) = &self.hardware {
            if let Some(cpu) = &hw.cpu {
                c.opt("hardware.cpu.model", &cpu.model, MAX_NAME);
                c.opt("hardware.cpu.vendor", &cpu.vendor, MAX_NAME);
                c.opt("hardware.cpu.architecture", &cpu.architecture, MAX_NAME);
            }
            if c.list("hardware.disks", &hw.disks, MAX_LIST) {
                for (i, d) in hw.disks.iter().enumerate() {
                    let p = format!("hardware.disks[{i}]");
                    c.str(&format!("{p}.name"), &d.name, MAX_NAME);
                    c.opt(&format!("{p}.model"), &d.model, MAX_NAME);
                    c.opt(&format!("{p}.serial"), &d.serial, MAX_NAME);
                    c.opt(&format!("{p}.transport"), &d.transport, MAX_NAME);
                }
            }
            if let Some(fw) = &hw.firmware {
                c.opt("hardware.firmware.vendor", &fw.vendor, MAX_NAME);
                c.opt("hardware.firmware.version", &fw.version, MAX_NAME);
                c.opt("hardware.firmware.date", &fw.date, MAX_NAME);
            }
            if let Some(s) = &hw.system {
                c.opt("hardware.system.manufacturer", &s.manufacturer, MAX_NAME);
                c.opt("hardware.system.product", &s.product, MAX_NAME);
                c.opt("hardware.system.serial_number", &s.serial_number, MAX_NAME);
                c.opt("hardware.system.uuid", &s.uuid, MAX_NAME);
                c.opt("hardware.system.chassis", &s.chassis, MAX_NAME);
            }
        }
        if let Some(v) = &self.virtualization {
            c.opt("virtualization.technology", &v.technology, MAX_NAME);
            c.opt("virtualization.evidence", &v.evidence, MAX_STRING);
        }
        if let Some(os) = &self.os {
            c.str("os.family", &os.family, MAX_NAME);
            if os.hostname.is_empty() {
                c.fail(|| "os.hostname".into(), "must not be empty".into());
            }
            c.str("os.hostname", &os.hostname, 255);
            for (p, v) in [
                ("os.name", &os.name),
                ("os.id", &os.id),
                ("os.version", &os.version),
                ("os.version_id", &os.version_id),
                ("os.codename", &os.codename),
                ("os.build", &os.build),
                ("os.kernel", &os.kernel),
                ("os.architecture", &os.architecture),
                ("os.fqdn", &os.fqdn),
                ("os.timezone", &os.timezone),
            ] {
                c.opt(p, v, MAX_NAME);
            }
            c.strings("os.id_like", &os.id_like, MAX_NAME);
            if let Some(d) = &os.domain {
                c.str("os.domain.kind", &d.kind, MAX_NAME);
                c.opt("os.domain.name", &d.name, MAX_NAME);
                c.opt("os.domain.source", &d.source, MAX_NAME);
                c.opt("os.domain.ou", &d.ou, MAX_STRING);
            }
        }
        if let Some(net) = &self.network {
            if c.list("network.interfaces", &net.interfaces, MAX_LIST) {
                for (i, nic) in net.interfaces.iter().enumerate() {
                    let p = format!("network.interfaces[{i}]");
                    c.str(&format!("{p}.name"), &nic.name, MAX_NAME);
                    c.opt(&format!("{p}.mac"), &nic.mac, MAX_NAME);
                    c.strings(&format!("{p}.ipv4"), &nic.ipv4, MAX_NAME);
                    c.strings(&format!("{p}.ipv6"), &nic.ipv6, MAX_NAME);
                }
            }
            c.opt(
                "network.default_gateway_v4",
                &net.default_gateway_v4,
                MAX_NAME,
            );
            c.opt(
                "network.default_gateway_v6",
                &net.default_gateway_v6,
                MAX_NAME,
            );
            c.strings("network.dns_servers", &net.dns_servers, MAX_NAME);
            c.strings("network.dns_search", &net.dns_search, MAX_NAME);
        }
        if let Some(sw) = &self.software
            && c.list("software", sw, MAX_SOFTWARE)
        {
            for (i, s) in sw.iter().enumerate() {
                if s.name.is_empty() {
                    c.fail(|| format!("software[{i}].name"), "must not be empty".into());
                }
                c.str(&format!("software[{i}].name"), &s.name, MAX_NAME);
                c.str(&format!("software[{i}].version"), &s.version, MAX_NAME);
                c.str(&format!("software[{i}].source"), &s.source, 64);
                c.opt(&format!("software[{i}].architecture"), &s.architecture, 64);
                c.opt(&format!("software[{i}].publisher"), &s.publisher, MAX_NAME);
                c.opt(
                    &format!("software[{i}].product_code"),
                    &s.product_code,
                    MAX_NAME,
                );
                if c.errors.is_some() {
                    break;
                }
            }
        }
        if let Some(sec) = &self.security {
            if c.list("security.local_admins", &sec.local_admins, MAX_LIST) {
                for (i, a) in sec.local_admins.iter().enumerate() {
                    c.str(
                        &format!("security.local_admins[{i}].name"),
                        &a.name,
                        MAX_NAME,
                    );
                    c.str(&format!("security.local_admins[{i}].via"), &a.via, MAX_NAME);
                }
            }
            if let Some(ssh) = &sec.ssh {
                c.opt(
                    "security.ssh.permit_root_login",
                    &ssh.permit_root_login,
                    MAX_NAME,
                );
            }
            if let Some(rd) = &sec.remote_desktop {
                c.str("security.remote_desktop.kind", &rd.kind, MAX_NAME);
            }
            if let Some(fw) = &sec.firewall {
                c.opt("security.firewall.backend", &fw.backend, MAX_NAME);
                c.opt("security.firewall.detail", &fw.detail, MAX_STRING);
            }
            c.strings(
                "security.pending_reboot_reasons",
                &sec.pending_reboot_reasons,
                MAX_NAME,
            );
            if c.list(
                "security.encrypted_volumes",
                &sec.encrypted_volumes,
                MAX_LIST,
            ) {
                for (i, v) in sec.encrypted_volumes.iter().enumerate() {
                    c.str(
                        &format!("security.encrypted_volumes[{i}].device"),
                        &v.device,
                        MAX_NAME,
                    );
                    c.str(
                        &format!("security.encrypted_volumes[{i}].kind"),
                        &v.kind,
                        MAX_NAME,
                    );
                    c.opt(
                        &format!("security.encrypted_volumes[{i}].mapped_as"),
                        &v.mapped_as,
                        MAX_NAME,
                    );
                }
            }
        }
        if c.list("collectors", &self.collectors, 64) {
            for (i, s) in self.collectors.iter().enumerate() {
                c.str(&format!("collectors[{i}].name"), &s.name, MAX_NAME);
                c.opt(&format!("collectors[{i}].error"), &s.error, MAX_STRING);
            }
        }
        match c.errors {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl PerformanceSnapshot {
    /// Check the limits of a snapshot sent with a check-in.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut c = Checker { errors: None };
        if c.list("performance.mounts", &self.mounts, limits::MAX_LIST) {
            for (i, m) in self.mounts.iter().enumerate() {
                c.str(
                    &format!("performance.mounts[{i}].mount_point"),
                    &m.mount_point,
                    limits::MAX_STRING,
                );
                c.opt(
                    &format!("performance.mounts[{i}].filesystem"),
                    &m.filesystem,
                    limits::MAX_NAME,
                );
                c.opt(
                    &format!("performance.mounts[{i}].device"),
                    &m.device,
                    limits::MAX_STRING,
                );
            }
        }
        for (p, v) in [
            ("performance.load_1", self.load_1),
            ("performance.load_5", self.load_5),
            ("performance.load_15", self.load_15),
            ("performance.cpu_percent", self.cpu_percent),
        ] {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0)
            {
                c.fail(
                    || p.to_string(),
                    format!("{v} is not a non-negative number"),
                );
            }
        }
        match c.errors {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> InventoryDocument {
        InventoryDocument {
            schema_version: INVENTORY_SCHEMA_VERSION,
            collected_at_ms: 1,
            os: Some(OperatingSystem {
                family: "linux".into(),
                hostname: "node1".into(),
                ..Default::default()
            }),
            software: Some(vec![SoftwarePackage {
                name: "bash".into(),
                version: "5.2".into(),
                source: "dpkg".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn valid_document_passes() {
        assert_eq!(doc().validate(), Ok(()));
    }

    #[test]
    fn too_many_software_entries_is_refused_with_path() {
        let mut d = doc();
        let one = d.software.as_ref().unwrap()[0].clone();
        d.software = Some(vec![one; limits::MAX_SOFTWARE + 1]);
        let err = d.validate().unwrap_err();
        assert_eq!(err.path, "software");
        assert!(err.reason.contains("50000"), "{}", err.reason);
    }

    #[test]
    fn overlong_and_nul_strings_are_refused() {
        let mut d = doc();
        d.software.as_mut().unwrap()[0].name = "x".repeat(limits::MAX_NAME + 1);
        assert_eq!(d.validate().unwrap_err().path, "software[0].name");
        let mut d = doc();
        d.os.as_mut().unwrap().hostname = "a\0b".into();
        assert_eq!(d.validate().unwrap_err().path, "os.hostname");
    }

    #[test]
    fn unknown_schema_version_is_refused() {
        let mut d = doc();
        d.schema_version = 99;
        assert_eq!(d.validate().unwrap_err().path, "schema_version");
    }

    #[test]
    fn unknown_top_level_fields_are_refused() {
        let err = serde_json::from_str::<InventoryDocument>(
            r#"{"schema_version":1,"collected_at_ms":0,"bogus":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("bogus"));
    }

    #[test]
    fn nan_load_is_refused() {
        let p = PerformanceSnapshot {
            load_1: Some(-1.0),
            ..Default::default()
        };
        assert_eq!(p.validate().unwrap_err().path, "performance.load_1");
    }
}

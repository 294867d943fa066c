//! Synthetic but realistic devices and rules for benchmarks and scale tests: a seeded generator
//! (no randomness source, the same seed gives the same device) of inventories with thousands of
//! packages in each ecosystem's version format, and a fixed set of 100 group rules of the kinds
//! administrators write. Used by the engine's tests, `examples/rules_bench.rs`, and available
//! to server-side benchmarks (full re-evaluation over 100,000 devices).

use std::collections::{BTreeMap, BTreeSet};

use capstan_proto::inventory::*;
use serde_json::{Value, json};

use super::facts::{CustomValue, DeviceStatus};
use super::validate::{CustomFieldType, ValidationContext};

/// splitmix64: tiny, deterministic, good enough to vary synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; 0 yields 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // The slices passed here are non-empty constants; below(len) < len fits usize.
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Package names that rules in [`rules`] look for, so some rules match.
const WELL_KNOWN: &[&str] = &[
    "nginx",
    "openssl",
    "openssh-server",
    "bash",
    "curl",
    "python3",
    "postgresql",
    "docker-ce",
    "telnet",
    "zabbix-agent",
    "firefox",
    "git",
    "sudo",
    "rsync",
    "vim",
    "apache2",
    "mariadb-server",
    "redis-server",
    "nodejs",
    "java-17-openjdk",
];

const SYLLABLES: &[&str] = &[
    "ac", "bel", "cor", "dra", "ex", "fon", "gal", "hy", "io", "jun", "kal", "lum", "mor", "nex",
    "or", "pix", "qu", "ros", "syn", "tor", "ul", "vex", "wil", "xen", "yor", "zed",
];

#[derive(Clone, Copy)]
enum Flavour {
    Debian,
    Ubuntu,
    Rhel,
    Arch,
    Windows,
}

fn version(rng: &mut Rng, flavour: Flavour) -> String {
    let (a, b, c) = (rng.below(12), rng.below(30), rng.below(200));
    match flavour {
        Flavour::Debian => {
            let epoch = if rng.chance(5) { "1:" } else { "" };
            let suffix = if rng.chance(20) { "~deb12u1" } else { "" };
            format!("{epoch}{a}.{b}.{c}-{}{suffix}", 1 + rng.below(5))
        }
        Flavour::Ubuntu => format!("{a}.{b}.{c}-{}ubuntu{}", 1 + rng.below(5), rng.below(3)),
        Flavour::Rhel => format!("{a}.{b}.{c}-{}.el9", 1 + rng.below(30)),
        Flavour::Arch => format!("{a}.{b}.{c}-{}", 1 + rng.below(3)),
        Flavour::Windows => format!("{a}.{b}.{c}.{}", rng.below(5000)),
    }
}

/// A device inventory with `packages` software entries (about 3,000 is a workstation).
pub fn inventory(seed: u64, packages: usize) -> InventoryDocument {
    let mut rng = Rng::new(seed);
    let flavour = *rng.pick(&[
        Flavour::Debian,
        Flavour::Debian,
        Flavour::Ubuntu,
        Flavour::Rhel,
        Flavour::Arch,
        Flavour::Windows,
    ]);
    let (family, name, id, id_like, version_id, source) = match flavour {
        Flavour::Debian => ("linux", "Debian GNU/Linux", "debian", vec![], "12", "dpkg"),
        Flavour::Ubuntu => (
            "linux",
            "Ubuntu",
            "ubuntu",
            vec!["debian".to_string()],
            "22.04",
            "dpkg",
        ),
        Flavour::Rhel => (
            "linux",
            "Red Hat Enterprise Linux",
            "rhel",
            vec!["fedora".to_string()],
            "9.3",
            "rpm",
        ),
        Flavour::Arch => ("linux", "Arch Linux", "arch", vec![], "", "pacman"),
        Flavour::Windows => (
            "windows",
            "Windows 11 Pro",
            "windows",
            vec![],
            "10.0.22631",
            "windows_uninstall",
        ),
    };
    let mut software = Vec::with_capacity(packages);
    for (i, known) in WELL_KNOWN.iter().enumerate() {
        if software.len() < packages && rng.chance(60) {
            software.push(SoftwarePackage {
                name: (*known).to_string(),
                version: version(&mut rng, flavour),
                source: source.to_string(),
                architecture: Some("x86_64".into()),
                install_date: Some(1_700_000_000 + i as i64),
                ..Default::default()
            });
        }
    }
    let mut n = 0u64;
    while software.len() < packages {
        let name = format!(
            "lib{}{}{}-{n}",
            rng.pick(SYLLABLES),
            rng.pick(SYLLABLES),
            rng.pick(SYLLABLES)
        );
        n += 1;
        software.push(SoftwarePackage {
            name,
            version: version(&mut rng, flavour),
            source: source.to_string(),
            architecture: Some("x86_64".into()),
            ..Default::default()
        });
    }
    let subnet = rng.below(4);
    let host = format!(
        "{}{:03}",
        rng.pick(&["web", "db", "app", "ws", "build"]),
        seed % 1000
    );
    let virtual_machine = rng.chance(40);
    InventoryDocument {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at_ms: 1_795_000_000_000,
        hardware: Some(Hardware {
            cpu: Some(Cpu {
                model: Some("Intel(R) Xeon(R) Silver 4310".into()),
                vendor: Some(rng.pick(&["GenuineIntel", "AuthenticAMD"]).to_string()),
                sockets: Some(1),
                cores: Some(*rng.pick(&[2, 4, 8, 16])),
                threads: Some(*rng.pick(&[4, 8, 16, 32])),
                architecture: Some("x86_64".into()),
            }),
            memory_bytes: Some((1u64 << 30) * rng.pick(&[2, 4, 8, 16, 32, 64])),
            disks: vec![Disk {
                name: "sda".into(),
                size_bytes: Some(256_000_000_000 * (1 + rng.below(8))),
                rotational: Some(rng.chance(30)),
                transport: Some("sata".into()),
                ..Default::default()
            }],
            firmware: Some(Firmware {
                vendor: Some("Dell Inc.".into()),
                version: Some(format!("1.{}.{}", rng.below(20), rng.below(10))),
                date: None,
                boot_mode: Some(if rng.chance(80) {
                    BootMode::Uefi
                } else {
                    BootMode::Legacy
                }),
                secure_boot: Some(rng.chance(60)),
            }),
            system: Some(SystemInfo {
                manufacturer: Some(rng.pick(&["Dell Inc.", "LENOVO", "HP", "QEMU"]).to_string()),
                product: Some("Model X".into()),
                serial_number: Some(format!("SN{seed:08}")),
                uuid: None,
                chassis: Some(rng.pick(&["server", "desktop", "laptop"]).to_string()),
            }),
        }),
        virtualization: Some(Virtualization {
            kind: if virtual_machine {
                VirtualizationKind::VirtualMachine
            } else {
                VirtualizationKind::Physical
            },
            technology: virtual_machine.then(|| "kvm".to_string()),
            evidence: None,
        }),
        os: Some(OperatingSystem {
            family: family.into(),
            name: Some(name.into()),
            id: Some(id.into()),
            id_like,
            version: None,
            version_id: (!version_id.is_empty()).then(|| version_id.to_string()),
            codename: None,
            build: None,
            kernel: Some(format!("6.1.0-{}-amd64", 10 + rng.below(15))),
            architecture: Some("x86_64".into()),
            hostname: host.clone(),
            fqdn: Some(format!("{host}.corp.example.com")),
            timezone: Some("Europe/Berlin".into()),
            boot_time: Some(1_795_000_000 - rng.below(3_000_000) as i64),
            domain: None,
        }),
        network: Some(Network {
            interfaces: vec![NetworkInterface {
                name: "eth0".into(),
                mac: Some(format!(
                    "52:54:00:00:{:02x}:{:02x}",
                    seed % 256,
                    (seed / 256) % 256
                )),
                ipv4: vec![format!(
                    "10.{subnet}.{}.{}/16",
                    rng.below(256),
                    1 + rng.below(254)
                )],
                ipv6: vec![format!("2001:db8:{subnet}::{:x}/64", seed % 65536)],
                up: Some(true),
                ..Default::default()
            }],
            default_gateway_v4: Some(format!("10.{subnet}.0.1")),
            dns_servers: vec!["10.0.0.53".into()],
            ..Default::default()
        }),
        software: Some(software),
        security: Some(Security {
            local_admins: vec![LocalAdmin {
                name: "root".into(),
                via: "uid0".into(),
            }],
            ssh: Some(SshServer {
                installed: true,
                running: Some(rng.chance(90)),
                permit_root_login: Some(rng.pick(&["no", "prohibit-password", "yes"]).to_string()),
                password_authentication: Some(rng.chance(30)),
                ..Default::default()
            }),
            firewall: Some(Firewall {
                backend: Some("nftables".into()),
                enabled: rng.chance(70),
                ..Default::default()
            }),
            pending_reboot: Some(rng.chance(20)),
            ..Default::default()
        }),
        collectors: Vec::new(),
    }
}

/// A performance snapshot with three mounts.
pub fn performance(seed: u64) -> PerformanceSnapshot {
    let mut rng = Rng::new(seed.wrapping_add(1));
    let mount = |rng: &mut Rng, point: &str| {
        let total = 100_000_000_000 * (1 + rng.below(10));
        MountUsage {
            mount_point: point.into(),
            filesystem: Some("ext4".into()),
            device: None,
            total_bytes: total,
            used_bytes: total / 100 * rng.below(100),
        }
    };
    PerformanceSnapshot {
        load_1: Some(rng.below(400) as f64 / 100.0),
        memory_total_bytes: Some(16 << 30),
        memory_used_bytes: Some((16 << 30) / 100 * rng.below(100)),
        mounts: vec![
            mount(&mut rng, "/"),
            mount(&mut rng, "/var"),
            mount(&mut rng, "/home"),
        ],
        ..Default::default()
    }
}

/// Tags, custom field values, static group memberships and status of a synthetic device.
pub fn extras(
    seed: u64,
    now_ms: i64,
) -> (
    BTreeSet<String>,
    BTreeMap<String, CustomValue>,
    BTreeSet<String>,
    DeviceStatus,
) {
    let mut rng = Rng::new(seed.wrapping_add(2));
    let mut tags = BTreeSet::new();
    for t in ["web", "db", "prod", "staging", "pci", "kiosk"] {
        if rng.chance(25) {
            tags.insert(t.to_string());
        }
    }
    let mut custom = BTreeMap::new();
    custom.insert(
        "owner".to_string(),
        CustomValue::String(rng.pick(&["it", "finance", "dev", "ops"]).to_string()),
    );
    custom.insert(
        "cost".to_string(),
        CustomValue::Number(rng.below(5000) as f64),
    );
    custom.insert("managed".to_string(), CustomValue::Bool(rng.chance(80)));
    custom.insert(
        "warranty_end".to_string(),
        CustomValue::Date(now_ms + (rng.below(1000) as i64 - 300) * 86_400_000),
    );
    let mut groups = BTreeSet::new();
    for g in ["static-pilot", "static-servers", "static-eu"] {
        if rng.chance(30) {
            groups.insert(g.to_string());
        }
    }
    let status = DeviceStatus {
        online: rng.chance(85),
        last_seen_ms: Some(now_ms - rng.below(20 * 86_400_000) as i64),
        enrolled_at_ms: now_ms - rng.below(400 * 86_400_000) as i64,
    };
    (tags, custom, groups, status)
}

/// The id of the `i`-th rule of [`rules`].
pub fn rule_id(i: usize) -> String {
    format!("dyn-{i:03}")
}

/// What [`rules`] need to validate: their custom fields and group ids.
pub fn validation_context() -> ValidationContext {
    let mut ctx = ValidationContext::default();
    ctx.custom_fields
        .insert("owner".into(), CustomFieldType::String);
    ctx.custom_fields
        .insert("cost".into(), CustomFieldType::Number);
    ctx.custom_fields
        .insert("managed".into(), CustomFieldType::Bool);
    ctx.custom_fields
        .insert("warranty_end".into(), CustomFieldType::Date);
    for g in ["static-pilot", "static-servers", "static-eu"] {
        ctx.group_ids.insert(g.into());
    }
    for i in 0..100 {
        ctx.group_ids.insert(rule_id(i));
    }
    ctx
}

/// 100 rules of the kinds administrators write: OS and version targeting, "has package ≥ X",
/// offline devices, subnets, low disk, security posture, custom fields, and groups built
/// from other groups. Rule `i` belongs to group [`rule_id`]`(i)`.
pub fn rules() -> Vec<Value> {
    let os_ids: [&[&str]; 5] = [
        &["debian", "ubuntu"],
        &["rhel"],
        &["arch"],
        &["windows"],
        &["debian"],
    ];
    let prefixes = ["web", "db", "app", "ws", "build"];
    let owners = ["it", "finance", "dev", "ops"];
    let tags = ["web", "db", "prod", "staging", "pci"];
    let kinds = ["physical", "virtual_machine"];
    let mut out = Vec::with_capacity(100);
    for i in 0..100usize {
        let k = i / 10;
        let v = i % 10;
        let pkg = WELL_KNOWN[i % WELL_KNOWN.len()];
        let rule = match k {
            0 => json!({"all": [
                {"field": "os.id", "op": "in", "value": (os_ids[v % 5])},
                {"software": {"name": pkg, "op": "version_gte", "value": format!("{}.{}", v, v * 2)}}
            ]}),
            1 => {
                json!({"field": "status.last_seen", "op": "older_than", "value": format!("{}d", v + 1)})
            }
            2 => {
                json!({"field": "network.interfaces[].ipv4", "op": "cidr", "value": format!("10.{}.0.0/16", v % 4)})
            }
            3 => {
                json!({"field": "performance.mounts[].free_percent", "op": "lt", "value": 5 + v * 2})
            }
            4 => json!({"any": [
                {"field": "security.ssh.permit_root_login", "op": "eq", "value": "yes"},
                {"field": "security.ssh.password_authentication", "op": "eq", "value": true},
                {"not": {"field": "security.firewall.enabled", "op": "eq", "value": true}},
                {"software": {"name": "telnet"}}
            ]}),
            5 => json!({"all": [
                {"field": "hardware.memory_bytes", "op": "gte", "value": (1u64 << 30) * (2 << (v % 5))},
                {"field": "hardware.system.manufacturer", "op": "regex", "value": "^(dell|lenovo)", "case_insensitive": true},
                {"field": "os.hostname", "op": "starts_with", "value": (prefixes[v % 5])}
            ]}),
            6 => json!({"all": [
                {"field": "custom.owner", "op": "eq", "value": (owners[v % 4])},
                {"field": "custom.cost", "op": "gt", "value": v * 400},
                {"field": "custom.managed", "op": "eq", "value": true},
                {"field": "custom.warranty_end", "op": "older_than", "value": "30d"}
            ]}),
            7 => json!({"all": [
                {"group": rule_id(v)},
                {"not": {"group": rule_id(10 + v)}},
                {"tag": (tags[v % 5])}
            ]}),
            8 => json!({"any": [
                {"software": {"name": pkg, "op": "version_lt", "value": format!("{}.0", v + 1)}},
                {"software": {"name": WELL_KNOWN[(i + 7) % WELL_KNOWN.len()]}},
                {"not": {"software": {"name": WELL_KNOWN[(i + 3) % WELL_KNOWN.len()]}}}
            ]}),
            _ => json!({"all": [
                {"field": "virtualization.kind", "op": "eq", "value": (kinds[v % 2])},
                {"field": "hardware.firmware.boot_mode", "op": "eq", "value": "uefi"},
                {"field": "os.kernel", "op": "version_gte", "value": format!("6.1.0-{}", 10 + v), "scheme": "dpkg"},
                {"any": [{"group": "static-pilot"}, {"group": rule_id(70 + v)}]},
                {"field": "status.online", "op": "eq", "value": true}
            ]}),
        };
        out.push(rule);
    }
    out
}

//! Synthetic but realistic agent data: identities, check-in requests with a performance
//! snapshot, and full inventory documents of a Debian-like machine with P dpkg packages.
//!
//! Inventory uploads are by far the largest requests (a few hundred kilobytes), so they are
//! prepared before the measurement starts: the software list — the bulk of the document — is
//! generated and serialised once and shared by every simulated agent, and each agent keeps
//! only its small machine-specific head and tail of the JSON body plus the digest of each
//! variant. A request body is then three slices joined, byte-for-byte what serialising the
//! whole upload would give. Each agent alternates between two variants that differ in the
//! versions of K packages, so every upload after the first is a full report carrying exactly
//! K changes — the steady state of a fleet.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, bail};
use capstan_proto::agent::{
    CAP_INVENTORY_DELTA, CAP_WAKE_LONGPOLL, CheckinRequest, InventoryUpload,
};
use capstan_proto::inventory::*;

/// SplitMix64: tiny, fast and good enough to make synthetic data look varied. Not for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// 64 hex digits, the shape of a SHA-256 (identity keys, boot ids, digests).
    pub fn hex64(&mut self) -> String {
        (0..4)
            .map(|_| format!("{:016x}", self.next_u64()))
            .collect()
    }
}

/// A seed that differs between runs, so a second run against the same database enrolls new
/// devices instead of re-enrolling the previous run's identities.
pub fn run_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = Rng::new(nanos ^ (u64::from(std::process::id()) << 32));
    rng.next_u64()
}

/// Who one simulated agent is.
#[derive(Debug, Clone)]
pub struct AgentProfile {
    pub index: usize,
    pub hostname: String,
    /// Random per-agent `instance` identity key (64 hex).
    pub identity_key: String,
    pub boot_id: String,
    /// Seeds everything machine-specific in the inventory and snapshots.
    pub seed: u64,
}

impl AgentProfile {
    pub fn new(run_seed: u64, index: usize) -> AgentProfile {
        let mut rng = Rng::new(run_seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let identity_key = rng.hex64();
        let boot = rng.hex64();
        // A kernel boot id is a UUID.
        let boot_id = format!(
            "{}-{}-{}-{}-{}",
            &boot[0..8],
            &boot[8..12],
            &boot[12..16],
            &boot[16..20],
            &boot[20..32]
        );
        AgentProfile {
            index,
            hostname: format!("bench-{:04x}-{index:05}", run_seed & 0xffff),
            identity_key,
            boot_id,
            seed: rng.next_u64(),
        }
    }
}

pub const AGENT_VERSION: &str = concat!("loadgen-", env!("CARGO_PKG_VERSION"));

pub fn capabilities() -> Vec<String> {
    vec![
        CAP_INVENTORY_DELTA.to_string(),
        CAP_WAKE_LONGPOLL.to_string(),
    ]
}

/// A check-in as the agent sends it: a performance snapshot with a few mounts and the digest
/// of the agent's current inventory. `seq` varies the measurements between check-ins.
pub fn checkin_request(profile: &AgentProfile, seq: u64, digest: Option<String>) -> CheckinRequest {
    let mut rng = Rng::new(profile.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let gib = 1u64 << 30;
    let mem_total = [8, 16, 32, 64][(profile.seed % 4) as usize] * gib;
    let load = rng.below(400) as f64 / 100.0;
    let mount = |point: &str, fs: &str, dev: &str, total: u64, rng: &mut Rng| MountUsage {
        mount_point: point.into(),
        filesystem: Some(fs.into()),
        device: Some(dev.into()),
        total_bytes: total,
        used_bytes: total / 100 * (20 + rng.below(60)),
    };
    CheckinRequest {
        agent_version: AGENT_VERSION.into(),
        boot_id: Some(profile.boot_id.clone()),
        inventory_digest: digest,
        performance: Some(PerformanceSnapshot {
            load_1: Some(load),
            load_5: Some(load * 0.9),
            load_15: Some(load * 0.8),
            cpu_percent: Some(rng.below(10_000) as f64 / 100.0),
            memory_total_bytes: Some(mem_total),
            memory_used_bytes: Some(mem_total / 100 * (30 + rng.below(50))),
            swap_total_bytes: Some(2 * gib),
            swap_used_bytes: Some(rng.below(256) << 20),
            uptime_seconds: Some(86_400 + seq * 10),
            mounts: vec![
                mount("/", "ext4", "/dev/nvme0n1p2", 240 * gib, &mut rng),
                mount("/boot", "ext4", "/dev/nvme0n1p1", gib, &mut rng),
                mount("/boot/efi", "vfat", "/dev/nvme0n1p0", 512 << 20, &mut rng),
                mount("/home", "ext4", "/dev/mapper/vg0-home", 700 * gib, &mut rng),
            ],
        }),
        capabilities: capabilities(),
    }
}

const STEMS: &[&str] = &[
    "ssl",
    "xml2",
    "curl",
    "gtk",
    "glib",
    "python",
    "perl",
    "ruby",
    "zstd",
    "lzma",
    "bz2",
    "ncurses",
    "readline",
    "pam",
    "systemd",
    "udev",
    "dbus",
    "avahi",
    "cups",
    "pulse",
    "alsa",
    "x11",
    "xcb",
    "wayland",
    "mesa",
    "drm",
    "vulkan",
    "icu",
    "nss",
    "krb5",
    "ldap",
    "sasl",
    "gnutls",
    "gcrypt",
    "gpg",
    "assuan",
    "ksba",
    "npth",
    "sqlite",
    "pq",
    "mysql",
    "uv",
    "ev",
    "event",
    "jansson",
    "yaml",
    "json",
    "pcre",
    "onig",
    "tiff",
    "png",
    "jpeg",
    "webp",
    "gif",
    "heif",
    "opus",
    "vorbis",
    "flac",
    "ogg",
    "lame",
    "x264",
    "x265",
    "vpx",
    "dav1d",
    "aom",
    "sdl",
    "harfbuzz",
    "freetype",
    "fontconfig",
    "cairo",
    "pango",
    "pixman",
    "atk",
    "secret",
    "soup",
    "gstreamer",
    "poppler",
    "lcms",
    "openjp",
    "exif",
    "gphoto",
    "usb",
    "pci",
    "hwloc",
    "numa",
    "cap",
    "acl",
    "attr",
    "selinux",
    "apparmor",
    "seccomp",
    "bpf",
    "elf",
    "dw",
    "unwind",
    "ffi",
    "gmp",
    "mpfr",
    "mpc",
    "isl",
    "gcc",
    "tinfo",
    "magic",
    "archive",
    "zip",
    "snappy",
    "lz4",
    "brotli",
    "nghttp2",
    "ssh",
    "idn2",
    "psl",
    "unistring",
    "tasn1",
    "p11-kit",
    "nettle",
    "keyutils",
    "tirpc",
    "nsl",
    "crypt",
    "xxhash",
    "md",
    "bsd",
    "edit",
    "expat",
    "uuid",
    "blkid",
    "mount",
    "fdisk",
    "smartcols",
    "parted",
    "lvm2",
    "cryptsetup",
    "iscsi",
    "nfs",
    "samba",
    "smbclient",
    "talloc",
    "tdb",
    "tevent",
    "ldb",
    "boost",
    "qt5",
    "kf5",
    "gnome",
    "nautilus",
    "evince",
    "totem",
    "rhythmbox",
    "shotwell",
    "vim",
    "emacs",
    "git",
];

const FORMS: &[(&str, &str)] = &[
    ("lib", ""),
    ("lib", "0"),
    ("lib", "1"),
    ("lib", "2"),
    ("lib", "6"),
    ("lib", "-dev"),
    ("lib", "-1.0-0"),
    ("", "-common"),
    ("", "-data"),
    ("", "-doc"),
    ("", "-utils"),
    ("python3-", ""),
    ("ruby-", ""),
    ("node-", ""),
    ("fonts-", ""),
    ("gir1.2-", "-1.0"),
    ("", ""),
];

const MAINTAINERS: &[&str] = &[
    "Debian Python Team",
    "Debian GNOME Maintainers",
    "Ubuntu Developers",
    "Matthias Klose",
    "Debian X Strike Force",
    "Debian Perl Group",
    "Debian Ruby Team",
    "Debian Javascript Maintainers",
    "Debian Fonts Task Force",
    "Debian Security Tools",
    "Michael Biebl",
    "Debian QA Group",
];

fn version(rng: &mut Rng) -> String {
    let epoch = if rng.below(20) == 0 {
        format!("{}:", 1 + rng.below(3))
    } else {
        String::new()
    };
    let upstream = format!("{}.{}.{}", rng.below(12), rng.below(40), rng.below(30));
    let revision = match rng.below(4) {
        0 => format!("-{}", 1 + rng.below(9)),
        1 => format!("-{}+deb12u{}", 1 + rng.below(9), 1 + rng.below(5)),
        2 => format!("-{}ubuntu{}", 1 + rng.below(9), rng.below(4)),
        _ => format!("-{}+b{}", 1 + rng.below(9), 1 + rng.below(3)),
    };
    format!("{epoch}{upstream}{revision}")
}

/// `p` installed dpkg packages with plausible, unique names and versions. Deterministic in
/// `seed`.
pub fn software(p: usize, seed: u64) -> Vec<SoftwarePackage> {
    let mut rng = Rng::new(seed);
    let mut names = HashSet::with_capacity(p);
    let mut out = Vec::with_capacity(p);
    let mut round = 0u64;
    while out.len() < p {
        let (prefix, suffix) = *rng.pick(FORMS);
        let stem = rng.pick(STEMS);
        // Once the plausible combinations run out (P in the thousands), number them.
        let name = if round < 20 * (STEMS.len() * FORMS.len()) as u64 {
            format!("{prefix}{stem}{suffix}")
        } else {
            format!("{prefix}{stem}{suffix}-{}", rng.below(1_000_000))
        };
        round += 1;
        if !names.insert(name.clone()) {
            continue;
        }
        let arch = if prefix == "fonts-" || suffix == "-doc" || suffix == "-data" {
            "all"
        } else {
            "amd64"
        };
        out.push(SoftwarePackage {
            name,
            version: version(&mut rng),
            architecture: Some(arch.into()),
            source: "dpkg".into(),
            publisher: Some(rng.pick(MAINTAINERS).to_string()),
            install_date: Some(1_690_000_000 + rng.below(20_000_000) as i64),
            product_code: None,
        });
    }
    out
}

/// `base` with the versions of `k` packages (spread evenly over the list) upgraded.
pub fn with_upgrades(base: &[SoftwarePackage], k: usize) -> Vec<SoftwarePackage> {
    let mut out = base.to_vec();
    let k = k.min(out.len());
    for i in 0..k {
        let idx = i * out.len() / k;
        let p = &mut out[idx];
        p.version = format!("{}.1", p.version);
    }
    out
}

/// The whole document of one simulated machine, with the given software list.
pub fn document(profile: &AgentProfile, software: Vec<SoftwarePackage>) -> InventoryDocument {
    let mut rng = Rng::new(profile.seed);
    let gib = 1u64 << 30;
    let i = profile.index;
    let mac = |n: u8| {
        format!(
            "52:54:{:02x}:{:02x}:{:02x}:{n:02x}",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        )
    };
    let serial = format!("PF{:08X}", rng.next_u64() as u32);
    let cpu_model = rng.pick(&[
        "Intel(R) Core(TM) i7-1185G7 @ 3.00GHz",
        "AMD Ryzen 7 PRO 5850U with Radeon Graphics",
        "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        "AMD EPYC 7543 32-Core Processor",
    ]);
    let cores = [4u32, 8, 16][(profile.seed % 3) as usize];
    InventoryDocument {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at_ms: 1_735_000_000_000 + (i as i64) * 1_000,
        hardware: Some(Hardware {
            cpu: Some(Cpu {
                model: Some(cpu_model.to_string()),
                vendor: Some(if cpu_model.starts_with("Intel") {
                    "GenuineIntel".into()
                } else {
                    "AuthenticAMD".into()
                }),
                sockets: Some(1),
                cores: Some(cores),
                threads: Some(cores * 2),
                architecture: Some("x86_64".into()),
            }),
            memory_bytes: Some([8, 16, 32, 64][(profile.seed % 4) as usize] * gib),
            disks: vec![
                Disk {
                    name: "nvme0n1".into(),
                    model: Some("Samsung SSD 980 PRO 1TB".into()),
                    serial: Some(format!("S5GXNF0R{:06}", rng.below(1_000_000))),
                    size_bytes: Some(1_000_204_886_016),
                    rotational: Some(false),
                    transport: Some("nvme".into()),
                },
                Disk {
                    name: "sda".into(),
                    model: Some("WDC WD40EFRX-68N32N0".into()),
                    serial: Some(format!("WD-WCC7K{:07}", rng.below(10_000_000))),
                    size_bytes: Some(4_000_787_030_016),
                    rotational: Some(true),
                    transport: Some("sata".into()),
                },
            ],
            firmware: Some(Firmware {
                vendor: Some("LENOVO".into()),
                version: Some("N32ET86W (1.62 )".into()),
                date: Some("2024-03-12".into()),
                boot_mode: Some(BootMode::Uefi),
                secure_boot: Some(true),
            }),
            system: Some(SystemInfo {
                manufacturer: Some("LENOVO".into()),
                product: Some("20XW0055GE".into()),
                serial_number: Some(serial),
                uuid: Some(profile.identity_key[..32].to_string()),
                chassis: Some("laptop".into()),
            }),
        }),
        virtualization: Some(Virtualization {
            kind: VirtualizationKind::Physical,
            technology: None,
            evidence: Some("systemd-detect-virt: none".into()),
        }),
        os: Some(OperatingSystem {
            family: "linux".into(),
            name: Some("Debian GNU/Linux".into()),
            id: Some("debian".into()),
            id_like: vec![],
            version: Some("12 (bookworm)".into()),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
            build: None,
            kernel: Some("6.1.0-28-amd64".into()),
            architecture: Some("x86_64".into()),
            hostname: profile.hostname.clone(),
            fqdn: Some(format!("{}.corp.example.net", profile.hostname)),
            timezone: Some("Europe/Berlin".into()),
            boot_time: Some(1_735_000_000 - 86_400),
            domain: Some(DomainMembership {
                kind: "active_directory".into(),
                name: Some("CORP.EXAMPLE.NET".into()),
                source: Some("realmd".into()),
                ou: None,
            }),
        }),
        network: Some(Network {
            interfaces: vec![
                NetworkInterface {
                    name: "enp0s31f6".into(),
                    mac: Some(mac(1)),
                    ipv4: vec![format!(
                        "10.{}.{}.{}/16",
                        20 + (i >> 16) % 200,
                        (i >> 8) & 0xff,
                        i & 0xff
                    )],
                    ipv6: vec![format!(
                        "fe80::5054:ff:fe{:02x}:{:04x}/64",
                        (i >> 16) & 0xff,
                        i & 0xffff
                    )],
                    up: Some(true),
                    mtu: Some(1500),
                    speed_mbps: Some(1000),
                    virtual_interface: Some(false),
                },
                NetworkInterface {
                    name: "wlp0s20f3".into(),
                    mac: Some(mac(2)),
                    ipv4: vec![],
                    ipv6: vec![],
                    up: Some(false),
                    mtu: Some(1500),
                    speed_mbps: None,
                    virtual_interface: Some(false),
                },
            ],
            default_gateway_v4: Some(format!("10.{}.0.1", 20 + (i >> 16) % 200)),
            default_gateway_v6: None,
            dns_servers: vec!["10.0.0.53".into(), "10.0.1.53".into()],
            dns_search: vec!["corp.example.net".into()],
        }),
        software: Some(software),
        security: Some(Security {
            local_admins: vec![
                LocalAdmin {
                    name: "root".into(),
                    via: "uid0".into(),
                },
                LocalAdmin {
                    name: format!("user{}", i % 997),
                    via: "group:sudo".into(),
                },
            ],
            ssh: Some(SshServer {
                installed: true,
                enabled: Some(true),
                running: Some(true),
                permit_root_login: Some("prohibit-password".into()),
                password_authentication: Some(false),
            }),
            remote_desktop: None,
            firewall: Some(Firewall {
                backend: Some("nftables".into()),
                enabled: true,
                rule_count: Some(24),
                detail: None,
            }),
            pending_reboot: Some(false),
            pending_reboot_reasons: vec![],
            encrypted_volumes: vec![EncryptedVolume {
                device: "nvme0n1p3".into(),
                kind: "luks2".into(),
                mapped_as: Some("nvme0n1p3_crypt".into()),
            }],
        }),
        collectors: [
            "hardware",
            "virtualization",
            "os",
            "network",
            "software",
            "security",
        ]
        .iter()
        .enumerate()
        .map(|(n, name)| CollectorStatus {
            name: (*name).into(),
            ok: true,
            duration_ms: 5 + n as u64 * 7,
            error: None,
        })
        .collect(),
    }
}

/// The software lists every agent shares: variant 0 and variant 1 differ in K versions.
#[derive(Debug)]
pub struct SharedSoftware {
    pub lists: [Vec<SoftwarePackage>; 2],
    /// Compact JSON of each list, exactly as serde_json writes it inside the upload.
    pub json: [Arc<Vec<u8>>; 2],
}

impl SharedSoftware {
    pub fn new(packages: usize, changes: usize, seed: u64) -> anyhow::Result<SharedSoftware> {
        let a = software(packages, seed);
        let b = with_upgrades(&a, changes);
        let json = [
            Arc::new(serde_json::to_vec(&a).context("serialising the software list")?),
            Arc::new(serde_json::to_vec(&b).context("serialising the software list")?),
        ];
        Ok(SharedSoftware {
            lists: [a, b],
            json,
        })
    }
}

/// The part of one agent's upload body before and after the software list, and the digest
/// of the whole document.
#[derive(Debug, Clone)]
pub struct PreparedVariant {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub digest: String,
}

/// One agent's two inventory variants.
#[derive(Debug, Clone)]
pub struct PreparedInventory {
    pub variants: [PreparedVariant; 2],
}

const SOFTWARE_PLACEHOLDER: &[u8] = br#""software":[]"#;

fn prepare_variant(
    profile: &AgentProfile,
    software: &[SoftwarePackage],
) -> anyhow::Result<PreparedVariant> {
    let mut doc = document(profile, software.to_vec());
    let digest = capstan_core::inventory::digest(&doc);
    doc.software = Some(Vec::new());
    let skeleton = serde_json::to_vec(&InventoryUpload {
        digest: digest.clone(),
        document: doc,
    })
    .context("serialising the inventory upload")?;
    let positions: Vec<usize> = skeleton
        .windows(SOFTWARE_PLACEHOLDER.len())
        .enumerate()
        .filter(|(_, w)| *w == SOFTWARE_PLACEHOLDER)
        .map(|(i, _)| i)
        .collect();
    let [at] = positions[..] else {
        bail!(
            "expected the software key once in the serialised upload, found it {} times",
            positions.len()
        );
    };
    let split = at + br#""software":"#.len();
    Ok(PreparedVariant {
        head: skeleton[..split].to_vec(),
        tail: skeleton[split + 2..].to_vec(),
        digest,
    })
}

impl PreparedInventory {
    pub fn new(profile: &AgentProfile, shared: &SharedSoftware) -> anyhow::Result<Self> {
        Ok(PreparedInventory {
            variants: [
                prepare_variant(profile, &shared.lists[0])?,
                prepare_variant(profile, &shared.lists[1])?,
            ],
        })
    }

    /// The request body of variant `v` (0 or 1).
    pub fn body(&self, shared: &SharedSoftware, v: usize) -> Vec<u8> {
        let part = &self.variants[v];
        let software = &shared.json[v];
        let mut body = Vec::with_capacity(part.head.len() + software.len() + part.tail.len());
        body.extend_from_slice(&part.head);
        body.extend_from_slice(software);
        body.extend_from_slice(&part.tail);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_core::inventory::{ChangeKind, diff};

    fn profile() -> AgentProfile {
        AgentProfile::new(42, 7)
    }

    #[test]
    fn synthetic_document_is_valid_and_realistically_sized() {
        let doc = document(&profile(), software(2000, 1));
        assert_eq!(doc.validate(), Ok(()));
        let sw = doc.software.as_ref().unwrap();
        assert_eq!(sw.len(), 2000);
        let unique: HashSet<_> = sw.iter().map(|p| (&p.name, &p.architecture)).collect();
        assert_eq!(unique.len(), 2000, "package identities must be unique");
        let bytes = serde_json::to_vec(&doc).unwrap().len();
        // A real Debian desktop with ~2,000 packages reports a few hundred kilobytes.
        assert!((150_000..600_000).contains(&bytes), "{bytes} bytes");
    }

    #[test]
    fn many_packages_stay_unique_beyond_the_plausible_combinations() {
        let sw = software(6000, 3);
        let unique: HashSet<_> = sw.iter().map(|p| &p.name).collect();
        assert_eq!(unique.len(), 6000);
    }

    #[test]
    fn variants_differ_by_exactly_k_version_changes() {
        let shared = SharedSoftware::new(2000, 10, 1).unwrap();
        let p = profile();
        let a = document(&p, shared.lists[0].clone());
        let b = document(&p, shared.lists[1].clone());
        let changes = diff(&a, &b);
        assert_eq!(changes.len(), 10, "{changes:#?}");
        assert!(
            changes
                .iter()
                .all(|c| matches!(c.kind, ChangeKind::Changed) && c.category == "software")
        );
        // And back again: the alternating steady state also records K changes.
        assert_eq!(diff(&b, &a).len(), 10);
        let prepared = PreparedInventory::new(&p, &shared).unwrap();
        assert_ne!(prepared.variants[0].digest, prepared.variants[1].digest);
    }

    #[test]
    fn no_changes_means_the_same_digest() {
        let shared = SharedSoftware::new(300, 0, 1).unwrap();
        let prepared = PreparedInventory::new(&profile(), &shared).unwrap();
        assert_eq!(prepared.variants[0].digest, prepared.variants[1].digest);
    }

    #[test]
    fn spliced_body_is_exactly_the_serialised_upload() {
        let shared = SharedSoftware::new(500, 5, 9).unwrap();
        let p = profile();
        let prepared = PreparedInventory::new(&p, &shared).unwrap();
        for v in 0..2 {
            let doc = document(&p, shared.lists[v].clone());
            let expected = serde_json::to_vec(&InventoryUpload {
                digest: capstan_core::inventory::digest(&doc),
                document: doc,
            })
            .unwrap();
            let body = prepared.body(&shared, v);
            assert!(body == expected, "variant {v}: spliced body differs");
            // What the server does with it: parse, validate, and recompute the digest.
            let up: InventoryUpload = serde_json::from_slice(&body).unwrap();
            assert_eq!(up.document.validate(), Ok(()));
            assert_eq!(capstan_core::inventory::digest(&up.document), up.digest);
        }
    }

    #[test]
    fn agents_have_distinct_identities_and_hostnames() {
        let a = AgentProfile::new(5, 1);
        let b = AgentProfile::new(5, 2);
        assert_ne!(a.identity_key, b.identity_key);
        assert_ne!(a.hostname, b.hostname);
        assert_eq!(a.identity_key.len(), 64);
        assert!(a.identity_key.bytes().all(|c| c.is_ascii_hexdigit()));
        // A second run (another seed) must not reuse the identities of the first.
        assert_ne!(AgentProfile::new(6, 1).identity_key, a.identity_key);
    }

    #[test]
    fn checkin_snapshot_passes_server_validation() {
        let req = checkin_request(&profile(), 3, Some("ab".repeat(32)));
        let perf = req.performance.as_ref().unwrap();
        assert_eq!(perf.validate(), Ok(()));
        assert_eq!(perf.mounts.len(), 4);
        assert!(perf.mounts.iter().all(|m| m.used_bytes <= m.total_bytes));
        assert_ne!(
            checkin_request(&profile(), 4, None).performance,
            req.performance,
            "successive snapshots should vary"
        );
    }
}

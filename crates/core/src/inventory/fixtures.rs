//! A realistic inventory document shared by the digest and diff tests, so each test states only
//! the change it is about.

use capstan_proto::inventory::*;

pub(crate) fn pkg(source: &str, name: &str, version: &str, arch: Option<&str>) -> SoftwarePackage {
    SoftwarePackage {
        name: name.into(),
        version: version.into(),
        architecture: arch.map(Into::into),
        source: source.into(),
        ..Default::default()
    }
}

pub(crate) fn collector(name: &str, duration_ms: u64) -> CollectorStatus {
    CollectorStatus {
        name: name.into(),
        ok: true,
        duration_ms,
        error: None,
    }
}

/// A Debian 12 server with two disks, two interfaces and a handful of packages.
pub(crate) fn sample() -> InventoryDocument {
    InventoryDocument {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at_ms: 1_700_000_000_000,
        hardware: Some(Hardware {
            cpu: Some(Cpu {
                model: Some("AMD EPYC 7543".into()),
                vendor: Some("AuthenticAMD".into()),
                sockets: Some(1),
                cores: Some(4),
                threads: Some(8),
                architecture: Some("x86_64".into()),
            }),
            memory_bytes: Some(8 << 30),
            disks: vec![
                Disk {
                    name: "sda".into(),
                    size_bytes: Some(500 << 30),
                    rotational: Some(false),
                    ..Default::default()
                },
                Disk {
                    name: "sdb".into(),
                    size_bytes: Some(2 << 40),
                    rotational: Some(true),
                    ..Default::default()
                },
            ],
            firmware: Some(Firmware {
                vendor: Some("SeaBIOS".into()),
                version: Some("1.16.2".into()),
                boot_mode: Some(BootMode::Legacy),
                ..Default::default()
            }),
            system: None,
        }),
        virtualization: Some(Virtualization {
            kind: VirtualizationKind::VirtualMachine,
            technology: Some("kvm".into()),
            evidence: Some("systemd-detect-virt".into()),
        }),
        os: Some(OperatingSystem {
            family: "linux".into(),
            name: Some("Debian GNU/Linux".into()),
            id: Some("debian".into()),
            id_like: vec![],
            version: Some("12 (bookworm)".into()),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
            kernel: Some("6.1.0-18-amd64".into()),
            architecture: Some("x86_64".into()),
            hostname: "web1".into(),
            ..Default::default()
        }),
        network: Some(Network {
            interfaces: vec![
                NetworkInterface {
                    name: "eth0".into(),
                    mac: Some("52:54:00:12:34:56".into()),
                    ipv4: vec!["192.0.2.10/24".into()],
                    ipv6: vec![
                        "2001:db8::10/64".into(),
                        "fe80::5054:ff:fe12:3456/64".into(),
                    ],
                    up: Some(true),
                    mtu: Some(1500),
                    ..Default::default()
                },
                NetworkInterface {
                    name: "lo".into(),
                    ipv4: vec!["127.0.0.1/8".into()],
                    up: Some(true),
                    ..Default::default()
                },
            ],
            default_gateway_v4: Some("192.0.2.1".into()),
            default_gateway_v6: None,
            dns_servers: vec!["192.0.2.53".into(), "192.0.2.54".into()],
            dns_search: vec!["example.net".into()],
        }),
        software: Some(vec![
            pkg("dpkg", "bash", "5.2.15-2+b2", Some("amd64")),
            pkg("dpkg", "libc6", "2.36-9+deb12u4", Some("amd64")),
            pkg("dpkg", "libc6", "2.36-9+deb12u4", Some("i386")),
            pkg("dpkg", "openssl", "3.0.11-1~deb12u2", Some("amd64")),
            pkg("snap", "core22", "20240111", None),
        ]),
        security: Some(Security {
            local_admins: vec![
                LocalAdmin {
                    name: "root".into(),
                    via: "uid0".into(),
                },
                LocalAdmin {
                    name: "alice".into(),
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
                rule_count: Some(12),
                detail: None,
            }),
            pending_reboot: Some(false),
            pending_reboot_reasons: vec![],
            encrypted_volumes: vec![EncryptedVolume {
                device: "sda3".into(),
                kind: "luks2".into(),
                mapped_as: Some("root".into()),
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
        .map(|n| collector(n, 12))
        .collect(),
    }
}

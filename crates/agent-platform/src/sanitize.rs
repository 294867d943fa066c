//! Brings a collected document within the limits the server enforces
//! (`InventoryDocument::validate`): strings are cut at a character boundary and stripped of
//! NUL, lists are capped. Doing it once here, after collection, means no collector can emit a
//! document the server would refuse because one package had a 600-byte version string.

use capstan_proto::inventory::limits::{MAX_LIST, MAX_NAME, MAX_SOFTWARE, MAX_STRING};
use capstan_proto::inventory::{InventoryDocument, PerformanceSnapshot};

/// Longest host name the server accepts.
const MAX_HOSTNAME: usize = 255;
/// Longest `source` / `architecture` of a software entry.
const MAX_SHORT: usize = 64;

/// Removes NUL characters and truncates to at most `max` bytes.
pub(crate) fn clip(s: &mut String, max: usize) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn clip_opt(s: &mut Option<String>, max: usize) {
    if let Some(v) = s {
        clip(v, max);
    }
}

fn clip_all(list: &mut Vec<String>, max: usize) {
    list.truncate(MAX_LIST);
    for s in list {
        clip(s, max);
    }
}

/// Applies every limit of the inventory schema to `doc`.
pub(crate) fn sanitize(doc: &mut InventoryDocument) {
    if let Some(hw) = &mut doc.hardware {
        if let Some(cpu) = &mut hw.cpu {
            clip_opt(&mut cpu.model, MAX_NAME);
            clip_opt(&mut cpu.vendor, MAX_NAME);
            clip_opt(&mut cpu.architecture, MAX_NAME);
        }
        hw.disks.truncate(MAX_LIST);
        for d in &mut hw.disks {
            clip(&mut d.name, MAX_NAME);
            clip_opt(&mut d.model, MAX_NAME);
            clip_opt(&mut d.serial, MAX_NAME);
            clip_opt(&mut d.transport, MAX_NAME);
        }
        if let Some(fw) = &mut hw.firmware {
            clip_opt(&mut fw.vendor, MAX_NAME);
            clip_opt(&mut fw.version, MAX_NAME);
            clip_opt(&mut fw.date, MAX_NAME);
        }
        if let Some(s) = &mut hw.system {
            for v in [
                &mut s.manufacturer,
                &mut s.product,
                &mut s.serial_number,
                &mut s.uuid,
                &mut s.chassis,
            ] {
                clip_opt(v, MAX_NAME);
            }
        }
    }
    if let Some(v) = &mut doc.virtualization {
        clip_opt(&mut v.technology, MAX_NAME);
        clip_opt(&mut v.evidence, MAX_STRING);
    }
    if let Some(os) = &mut doc.os {
        clip(&mut os.family, MAX_NAME);
        clip(&mut os.hostname, MAX_HOSTNAME);
        if os.hostname.is_empty() {
            os.hostname = "localhost".into();
        }
        for v in [
            &mut os.name,
            &mut os.id,
            &mut os.version,
            &mut os.version_id,
            &mut os.codename,
            &mut os.build,
            &mut os.kernel,
            &mut os.architecture,
            &mut os.fqdn,
            &mut os.timezone,
        ] {
            clip_opt(v, MAX_NAME);
        }
        clip_all(&mut os.id_like, MAX_NAME);
        if let Some(d) = &mut os.domain {
            clip(&mut d.kind, MAX_NAME);
            clip_opt(&mut d.name, MAX_NAME);
            clip_opt(&mut d.source, MAX_NAME);
            clip_opt(&mut d.ou, MAX_STRING);
        }
    }
    if let Some(net) = &mut doc.network {
        net.interfaces.truncate(MAX_LIST);
        for nic in &mut net.interfaces {
            clip(&mut nic.name, MAX_NAME);
            clip_opt(&mut nic.mac, MAX_NAME);
            clip_all(&mut nic.ipv4, MAX_NAME);
            clip_all(&mut nic.ipv6, MAX_NAME);
        }
        clip_opt(&mut net.default_gateway_v4, MAX_NAME);
        clip_opt(&mut net.default_gateway_v6, MAX_NAME);
        clip_all(&mut net.dns_servers, MAX_NAME);
        clip_all(&mut net.dns_search, MAX_NAME);
    }
    if let Some(sw) = &mut doc.software {
        sw.retain(|p| !p.name.trim_matches('\0').is_empty());
        sw.truncate(MAX_SOFTWARE);
        for p in sw {
            clip(&mut p.name, MAX_NAME);
            clip(&mut p.version, MAX_NAME);
            clip(&mut p.source, MAX_SHORT);
            clip_opt(&mut p.architecture, MAX_SHORT);
            clip_opt(&mut p.publisher, MAX_NAME);
            clip_opt(&mut p.product_code, MAX_NAME);
        }
    }
    if let Some(sec) = &mut doc.security {
        sec.local_admins.truncate(MAX_LIST);
        for a in &mut sec.local_admins {
            clip(&mut a.name, MAX_NAME);
            clip(&mut a.via, MAX_NAME);
        }
        if let Some(ssh) = &mut sec.ssh {
            clip_opt(&mut ssh.permit_root_login, MAX_NAME);
        }
        if let Some(rd) = &mut sec.remote_desktop {
            clip(&mut rd.kind, MAX_NAME);
        }
        if let Some(fw) = &mut sec.firewall {
            clip_opt(&mut fw.backend, MAX_NAME);
            clip_opt(&mut fw.detail, MAX_STRING);
        }
        clip_all(&mut sec.pending_reboot_reasons, MAX_NAME);
        sec.encrypted_volumes.truncate(MAX_LIST);
        for v in &mut sec.encrypted_volumes {
            clip(&mut v.device, MAX_NAME);
            clip(&mut v.kind, MAX_NAME);
            clip_opt(&mut v.mapped_as, MAX_NAME);
        }
    }
    doc.collectors.truncate(64);
    for c in &mut doc.collectors {
        clip(&mut c.name, MAX_NAME);
        clip_opt(&mut c.error, MAX_STRING);
    }
}

/// Applies the limits of a performance snapshot.
pub(crate) fn sanitize_performance(p: &mut PerformanceSnapshot) {
    p.mounts.truncate(MAX_LIST);
    for m in &mut p.mounts {
        clip(&mut m.mount_point, MAX_STRING);
        clip_opt(&mut m.filesystem, MAX_NAME);
        clip_opt(&mut m.device, MAX_STRING);
    }
    for v in [
        &mut p.load_1,
        &mut p.load_5,
        &mut p.load_15,
        &mut p.cpu_percent,
    ] {
        if v.is_some_and(|x| !x.is_finite() || x < 0.0) {
            *v = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::inventory::{
        INVENTORY_SCHEMA_VERSION, Network, NetworkInterface, OperatingSystem, SoftwarePackage,
    };

    #[test]
    fn clip_cuts_at_a_character_boundary_and_drops_nul() {
        let mut s = "aé\0b".to_string();
        clip(&mut s, 2);
        assert_eq!(s, "a");
        let mut s = "a\0b".to_string();
        clip(&mut s, 10);
        assert_eq!(s, "ab");
    }

    #[test]
    fn hostile_document_becomes_valid() {
        let mut doc = InventoryDocument {
            schema_version: INVENTORY_SCHEMA_VERSION,
            os: Some(OperatingSystem {
                family: "linux".into(),
                hostname: String::new(),
                ..Default::default()
            }),
            network: Some(Network {
                interfaces: vec![NetworkInterface {
                    name: "x".repeat(10_000),
                    ..Default::default()
                }],
                dns_servers: vec!["1.1.1.1".into(); MAX_LIST + 5],
                ..Default::default()
            }),
            software: Some(vec![
                SoftwarePackage {
                    name: "\0".into(),
                    version: "1".into(),
                    source: "dpkg".into(),
                    ..Default::default()
                },
                SoftwarePackage {
                    name: "p".into(),
                    version: "9".repeat(MAX_NAME * 2),
                    source: "dpkg".into(),
                    architecture: Some("a".repeat(100)),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        assert!(doc.validate().is_err());
        sanitize(&mut doc);
        assert_eq!(doc.validate(), Ok(()));
        assert_eq!(doc.software.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            doc.os.as_ref().map(|o| o.hostname.as_str()),
            Some("localhost")
        );
    }
}

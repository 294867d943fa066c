//! The inventory digest: a SHA-256 over the canonical form of a document. The agent compares it
//! with the digest the server last acknowledged and sends the full document only when it moved,
//! so it must ignore what changes on every collection (timestamps, durations, list order) and
//! catch everything else, including a collector that starts to fail.

use std::cmp::Ordering;

use sha2::{Digest as _, Sha256};

use capstan_proto::inventory::InventoryDocument;

/// Lowercase hex SHA-256 of the canonical JSON form of `doc`.
///
/// Excluded: `collected_at_ms` and every `collectors[].duration_ms`. Lists whose order carries
/// no meaning (software, disks, interfaces, addresses, DNS servers and search domains, `id_like`,
/// local administrators, pending-reboot reasons, encrypted volumes, collectors) are sorted, and
/// lists of plain values are de-duplicated, before hashing — the same list rules the diff
/// follows (`canonical::list_rule`), which a test holds them to.
///
/// This runs on every report the server ingests, so it works on the typed document and streams
/// the JSON into the hash: the struct's field order is fixed, so serialising the normalised copy
/// is canonical without building a JSON tree.
pub fn digest(doc: &InventoryDocument) -> String {
    let mut d = doc.clone();
    normalize(&mut d);
    let mut hasher = HashWriter(Sha256::new());
    // Plain structs with string keys: serialisation cannot fail.
    serde_json::to_writer(&mut hasher, &d).expect("inventory types always serialise to JSON");
    hex::encode(hasher.0.finalize())
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn set(list: &mut Vec<String>) {
    list.sort_unstable();
    list.dedup();
}

/// Entries with equal keys are ordered by their full JSON text, so the order is total.
fn by_text<T: serde::Serialize>(a: &T, b: &T) -> Ordering {
    let text = |v: &T| serde_json::to_string(v).unwrap_or_default();
    text(a).cmp(&text(b))
}

fn normalize(d: &mut InventoryDocument) {
    d.collected_at_ms = 0;
    for c in &mut d.collectors {
        c.duration_ms = 0;
    }
    d.collectors
        .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| by_text(a, b)));
    if let Some(sw) = &mut d.software {
        sw.sort_by(|a, b| {
            (&a.source, &a.name, &a.architecture, &a.version)
                .cmp(&(&b.source, &b.name, &b.architecture, &b.version))
                .then_with(|| by_text(a, b))
        });
    }
    if let Some(hw) = &mut d.hardware {
        hw.disks
            .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| by_text(a, b)));
    }
    if let Some(os) = &mut d.os {
        set(&mut os.id_like);
    }
    if let Some(net) = &mut d.network {
        for nic in &mut net.interfaces {
            set(&mut nic.ipv4);
            set(&mut nic.ipv6);
        }
        net.interfaces
            .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| by_text(a, b)));
        set(&mut net.dns_servers);
        set(&mut net.dns_search);
    }
    if let Some(sec) = &mut d.security {
        sec.local_admins.sort_by(|a, b| {
            (&a.name, &a.via)
                .cmp(&(&b.name, &b.via))
                .then_with(|| by_text(a, b))
        });
        set(&mut sec.pending_reboot_reasons);
        sec.encrypted_volumes
            .sort_by(|a, b| a.device.cmp(&b.device).then_with(|| by_text(a, b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::fixtures::{pkg, sample};
    use capstan_proto::inventory::{CollectorStatus, LocalAdmin};

    /// Same machine, collected again: other time, other durations, lists in another order.
    fn recollected() -> InventoryDocument {
        let mut d = sample();
        d.collected_at_ms += 3_600_000;
        for c in &mut d.collectors {
            c.duration_ms += 731;
        }
        d.collectors.reverse();
        d.software.as_mut().unwrap().reverse();
        d.hardware.as_mut().unwrap().disks.reverse();
        let net = d.network.as_mut().unwrap();
        net.interfaces.reverse();
        net.interfaces[1].ipv6.reverse();
        net.dns_servers.reverse();
        d.security.as_mut().unwrap().local_admins.reverse();
        d
    }

    #[test]
    fn digest_is_lowercase_hex_sha256() {
        let d = digest(&sample());
        assert_eq!(d.len(), 64);
        assert!(
            d.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{d}"
        );
    }

    #[test]
    fn recollecting_an_unchanged_machine_keeps_the_digest() {
        assert_eq!(digest(&sample()), digest(&recollected()));
    }

    #[test]
    fn repeated_set_entries_do_not_change_the_digest() {
        let mut d = sample();
        d.network
            .as_mut()
            .unwrap()
            .dns_servers
            .push("192.0.2.53".into());
        assert_eq!(digest(&sample()), digest(&d));
    }

    #[test]
    fn every_meaningful_change_moves_the_digest() {
        type Edit = fn(&mut InventoryDocument);
        let edits: &[(&str, Edit)] = &[
            ("package version", |d| {
                d.software.as_mut().unwrap()[3].version = "3.0.13-1~deb12u1".into()
            }),
            ("package added", |d| {
                d.software
                    .as_mut()
                    .unwrap()
                    .push(pkg("dpkg", "nginx", "1.22.1-9", Some("amd64")))
            }),
            ("package removed", |d| {
                d.software.as_mut().unwrap().remove(0);
            }),
            ("package publisher", |d| {
                d.software.as_mut().unwrap()[0].publisher = Some("Debian".into())
            }),
            ("memory", |d| {
                d.hardware.as_mut().unwrap().memory_bytes = Some(16 << 30)
            }),
            ("ip address", |d| {
                d.network.as_mut().unwrap().interfaces[0].ipv4 = vec!["192.0.2.11/24".into()]
            }),
            ("os version", |d| {
                d.os.as_mut().unwrap().version_id = Some("12.5".into())
            }),
            ("local admin", |d| {
                d.security.as_mut().unwrap().local_admins.push(LocalAdmin {
                    name: "bob".into(),
                    via: "group:sudo".into(),
                })
            }),
            ("section gone", |d| d.security = None),
            ("collector failing", |d| {
                d.collectors[5] = CollectorStatus {
                    name: "security".into(),
                    ok: false,
                    duration_ms: 5,
                    error: Some("timeout".into()),
                }
            }),
            ("schema version", |d| d.schema_version += 1),
        ];
        let base = digest(&sample());
        for (what, edit) in edits {
            let mut d = sample();
            edit(&mut d);
            assert_ne!(digest(&d), base, "{what} must change the digest");
        }
    }
}

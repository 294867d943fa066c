//! The inventory digest: a SHA-256 over the canonical form of a document. The agent compares it
//! with the digest the server last acknowledged and sends the full document only when it moved,
//! so it must ignore what changes on every collection (timestamps, durations, list order) and
//! catch everything else, including a collector that starts to fail.

use sha2::{Digest as _, Sha256};

use super::canonical;
use capstan_proto::inventory::InventoryDocument;

/// Lowercase hex SHA-256 of the canonical JSON form of `doc`.
///
/// Excluded: `collected_at_ms` and every `collectors[].duration_ms`. Lists whose order carries
/// no meaning (software, disks, interfaces, addresses, DNS servers and search domains, `id_like`,
/// local administrators, pending-reboot reasons, encrypted volumes, collectors) are sorted, and
/// lists of plain values are de-duplicated, before hashing.
pub fn digest(doc: &InventoryDocument) -> String {
    let mut value = canonical::to_json(doc);
    canonical::strip_volatile(&mut value);
    canonical::canonicalize(&mut value, "");
    let mut text = String::with_capacity(64 * 1024);
    canonical::write(&value, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
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

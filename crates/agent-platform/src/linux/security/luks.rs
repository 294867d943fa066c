//! LUKS-encrypted block devices: from `lsblk -J` (which also sees closed volumes through
//! udev's database) and from device-mapper's sysfs entries of opened volumes, whose
//! `CRYPT-LUKS<n>-` uuid tells the LUKS version when lsblk cannot.

use std::time::Duration;

use capstan_proto::inventory::EncryptedVolume;
use serde_json::Value;

use crate::command;
use crate::root::Root;

pub(crate) async fn detect(root: &Root, timeout: Duration) -> Vec<EncryptedVolume> {
    let mut from_lsblk = Vec::new();
    if root.is_live() {
        for columns in [
            "NAME,TYPE,FSTYPE,FSVER,MOUNTPOINT",
            "NAME,TYPE,FSTYPE,MOUNTPOINT",
        ] {
            // FSVER needs util-linux 2.35; older lsblk refuses the column list.
            if let Some(Ok(out)) =
                command::run_named("lsblk", &["-J", "-o", columns], timeout).await
                && out.success()
            {
                from_lsblk = parse_lsblk(&out.stdout);
                break;
            }
        }
    }
    merge(from_lsblk, from_sysfs(root))
}

/// A volume and whether its LUKS version is known.
type Found = (EncryptedVolume, bool);

/// Walks lsblk's device tree for `crypto_LUKS` file systems; the mapping is the child of
/// type `crypt`.
pub(crate) fn parse_lsblk(json: &str) -> Vec<Found> {
    fn walk(node: &Value, out: &mut Vec<Found>) {
        let s = |k: &str| node.get(k).and_then(Value::as_str);
        let children = node.get("children").and_then(Value::as_array);
        if s("fstype") == Some("crypto_LUKS")
            && let Some(name) = s("name")
        {
            let version = s("fsver");
            let mapped = children
                .into_iter()
                .flatten()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("crypt"))
                .and_then(|c| c.get("name").and_then(Value::as_str))
                .map(str::to_string);
            out.push((
                EncryptedVolume {
                    device: name.to_string(),
                    kind: luks_kind(version).into(),
                    mapped_as: mapped,
                },
                version.is_some(),
            ));
        }
        for c in children.into_iter().flatten() {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    if let Ok(doc) = serde_json::from_str::<Value>(json) {
        for dev in doc
            .get("blockdevices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(dev, &mut out);
        }
    }
    out
}

fn luks_kind(version: Option<&str>) -> &'static str {
    match version {
        Some("2") => "luks2",
        _ => "luks",
    }
}

/// Opened LUKS volumes: /sys/block/dm-N/dm/uuid is `CRYPT-LUKS2-<uuid>-<name>`, the
/// underlying device is the one entry in slaves/.
fn from_sysfs(root: &Root) -> Vec<Found> {
    let mut out = Vec::new();
    for dm in root
        .list("/sys/block")
        .into_iter()
        .filter(|n| n.starts_with("dm-"))
    {
        let Some(uuid) = root.read_trimmed(&format!("/sys/block/{dm}/dm/uuid")) else {
            continue;
        };
        let version = match uuid
            .strip_prefix("CRYPT-LUKS")
            .and_then(|r| r.chars().next())
        {
            Some('1') => "1",
            Some('2') => "2",
            _ => continue,
        };
        let device = root
            .list(&format!("/sys/block/{dm}/slaves"))
            .into_iter()
            .next()
            .unwrap_or_else(|| dm.clone());
        let mapped = root.read_trimmed(&format!("/sys/block/{dm}/dm/name"));
        out.push((
            EncryptedVolume {
                device,
                kind: luks_kind(Some(version)).into(),
                mapped_as: mapped,
            },
            true,
        ));
    }
    out
}

/// lsblk's list, with versions and missing volumes filled in from sysfs.
pub(crate) fn merge(lsblk: Vec<Found>, sysfs: Vec<Found>) -> Vec<EncryptedVolume> {
    let mut out = lsblk;
    for (vol, known) in sysfs {
        match out.iter_mut().find(|(v, _)| v.device == vol.device) {
            Some((existing, existing_known)) => {
                if !*existing_known && known {
                    existing.kind = vol.kind;
                    *existing_known = true;
                }
                if existing.mapped_as.is_none() {
                    existing.mapped_as = vol.mapped_as;
                }
            }
            None => out.push((vol, known)),
        }
    }
    out.into_iter().map(|(v, _)| v).collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::Tree;

    const LSBLK: &str = r#"{
   "blockdevices": [
      {"name": "nvme0n1", "type": "disk", "fstype": null, "mountpoint": null,
         "children": [
            {"name": "nvme0n1p1", "type": "part", "fstype": "vfat", "mountpoint": "/boot/efi"},
            {"name": "nvme0n1p3", "type": "part", "fstype": "crypto_LUKS", "mountpoint": null,
               "children": [
                  {"name": "luks-5f2a", "type": "crypt", "fstype": "LVM2_member", "mountpoint": null,
                     "children": [ {"name": "vg-root", "type": "lvm", "fstype": "ext4", "mountpoint": "/"} ]}
               ]}
         ]},
      {"name": "sdb", "type": "disk", "fstype": "crypto_LUKS", "mountpoint": null}
   ]
}"#;

    #[test]
    fn lsblk_tree_without_fsver() {
        let got = parse_lsblk(LSBLK);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].0,
            EncryptedVolume {
                device: "nvme0n1p3".into(),
                kind: "luks".into(),
                mapped_as: Some("luks-5f2a".into())
            }
        );
        assert!(!got[0].1);
        assert_eq!(
            (got[1].0.device.as_str(), got[1].0.mapped_as.as_deref()),
            ("sdb", None)
        );
        assert!(parse_lsblk("not json").is_empty());
    }

    #[test]
    fn lsblk_with_fsver_reports_luks2() {
        let json = r#"{"blockdevices":[{"name":"sda2","type":"part","fstype":"crypto_LUKS","fsver":"2","mountpoint":null}]}"#;
        assert_eq!(parse_lsblk(json)[0].0.kind, "luks2");
    }

    #[test]
    fn sysfs_fills_versions_and_adds_volumes() {
        let tree = Tree::new()
            .file(
                "/sys/devices/virtual/block/dm-0/dm/uuid",
                "CRYPT-LUKS2-5f2a0000000000000000000000000000-luks-5f2a\n",
            )
            .file("/sys/devices/virtual/block/dm-0/dm/name", "luks-5f2a\n")
            .dir("/sys/devices/virtual/block/dm-0/slaves/nvme0n1p3")
            .symlink("/sys/block/dm-0", "../devices/virtual/block/dm-0")
            .file("/sys/devices/virtual/block/dm-1/dm/uuid", "LVM-abcdef\n")
            .symlink("/sys/block/dm-1", "../devices/virtual/block/dm-1")
            .file(
                "/sys/devices/virtual/block/dm-2/dm/uuid",
                "CRYPT-LUKS1-1111-swap\n",
            )
            .file("/sys/devices/virtual/block/dm-2/dm/name", "cryptswap\n")
            .dir("/sys/devices/virtual/block/dm-2/slaves/sda3")
            .symlink("/sys/block/dm-2", "../devices/virtual/block/dm-2");
        let vols = merge(parse_lsblk(LSBLK), from_sysfs(&tree.root()));
        let got: Vec<_> = vols
            .iter()
            .map(|v| (v.device.as_str(), v.kind.as_str(), v.mapped_as.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("nvme0n1p3", "luks2", Some("luks-5f2a")),
                ("sdb", "luks", None),
                ("sda3", "luks", Some("cryptswap"))
            ]
        );
    }
}

//! Stable machine identifiers the agent derives its device identity from, and the boot id
//! that tells it the machine restarted.

use crate::root::Root;

/// machine-id(5): 32 lower-case hex characters. "uninitialized" (first boot) and empty
/// files are not an identity.
pub(crate) fn machine_id(root: &Root) -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| {
            let id = root.read_trimmed(p)?.to_ascii_lowercase();
            (id.len() == 32
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && id.bytes().any(|b| b != b'0'))
            .then_some(id)
        })
}

/// SMBIOS system UUID (root-only file); placeholders are rejected.
pub(crate) fn hardware_uuid(root: &Root) -> Option<String> {
    root.read_trimmed("/sys/class/dmi/id/product_uuid")
        .and_then(|u| super::hardware::normalise_uuid(&u))
}

pub(crate) fn boot_id(root: &Root) -> Option<String> {
    root.read_trimmed("/proc/sys/kernel/random/boot_id")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::Tree;

    #[test]
    fn machine_id_fallback_and_validation() {
        let tree = Tree::new().file("/etc/machine-id", "uninitialized\n").file(
            "/var/lib/dbus/machine-id",
            "3D1219C7C4C5404AAA1F6D2A48ADFDA4\n",
        );
        assert_eq!(
            machine_id(&tree.root()).as_deref(),
            Some("3d1219c7c4c5404aaa1f6d2a48adfda4")
        );
        assert_eq!(machine_id(&Tree::new().root()), None);
    }

    #[test]
    fn placeholder_hardware_uuids_are_rejected() {
        let tree = Tree::new().file(
            "/sys/class/dmi/id/product_uuid",
            "00000000-0000-0000-0000-000000000000\n",
        );
        assert_eq!(hardware_uuid(&tree.root()), None);
        let tree = Tree::new().file(
            "/sys/class/dmi/id/product_uuid",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\n",
        );
        assert_eq!(hardware_uuid(&tree.root()), None);
        let tree = Tree::new().file(
            "/sys/class/dmi/id/product_uuid",
            "EC2A1B2C-3D4E-5F60-7182-93A4B5C6D7E8\n",
        );
        assert_eq!(
            hardware_uuid(&tree.root()).as_deref(),
            Some("ec2a1b2c-3d4e-5f60-7182-93a4b5c6d7e8")
        );
    }
}

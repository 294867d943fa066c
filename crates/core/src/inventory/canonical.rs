//! How the diff sees the lists of an inventory document: which lists are sets and how the
//! entries of the others are identified (a disk by its name, a local administrator by name and
//! reason). The digest applies the same rules on the typed document (`digest::normalize`); the
//! test `digest_moves_exactly_when_the_diff_is_not_empty` holds the two to each other.

use serde::Serialize;
use serde_json::Value;

/// How the entries of one list in the document are identified.
#[derive(Clone, Copy)]
pub(crate) enum ListRule {
    /// Order is meaningless and entries are plain values: compared as a set.
    Set,
    /// Entries are objects identified by a natural key (a disk by its name).
    Keyed(Keyed),
    /// The software list: identified by (source, name, architecture, version).
    Software,
}

#[derive(Clone, Copy)]
pub(crate) struct Keyed {
    /// Identity of an entry as it appears in a field path: `hardware.disks[sda]`.
    pub key: fn(&Value) -> String,
    /// What one entry is called in a human summary ("disk", "local administrator").
    pub noun: &'static str,
    /// How one entry is named in a human summary.
    pub describe: fn(&Value) -> String,
}

/// The rule for the list at `schema_path` (a dotted path without list keys, e.g.
/// `network.interfaces.ipv4`). Lists without a rule keep their order and are compared by index.
pub(crate) fn list_rule(schema_path: &str) -> Option<ListRule> {
    let by_name = |noun| {
        ListRule::Keyed(Keyed {
            key: |v| text(v, "name").to_string(),
            noun,
            describe: |v| text(v, "name").to_string(),
        })
    };
    Some(match schema_path {
        "software" => ListRule::Software,
        "hardware.disks" => ListRule::Keyed(Keyed {
            key: |v| text(v, "name").to_string(),
            noun: "disk",
            describe: describe_disk,
        }),
        "network.interfaces" => by_name("network interface"),
        "collectors" => by_name("collector"),
        "security.local_admins" => ListRule::Keyed(Keyed {
            key: |v| format!("{}/{}", text(v, "name"), text(v, "via")),
            noun: "local administrator",
            describe: |v| format!("{} ({})", text(v, "name"), text(v, "via")),
        }),
        "security.encrypted_volumes" => ListRule::Keyed(Keyed {
            key: |v| text(v, "device").to_string(),
            noun: "encrypted volume",
            describe: |v| format!("{} ({})", text(v, "device"), text(v, "kind")),
        }),
        "network.interfaces.ipv4"
        | "network.interfaces.ipv6"
        | "network.dns_servers"
        | "network.dns_search"
        | "os.id_like"
        | "security.pending_reboot_reasons" => ListRule::Set,
        _ => return None,
    })
}

fn describe_disk(v: &Value) -> String {
    let name = text(v, "name");
    match v.get("size_bytes").and_then(Value::as_u64) {
        Some(size) => format!("{name} ({})", super::format::bytes(size)),
        None => name.to_string(),
    }
}

/// A string field of an object, or "" when it is absent or not a string.
pub(crate) fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Serialises a wire type to a JSON value.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Value {
    // The inventory types are plain structs with string keys and no custom serialisers, for
    // which serde_json cannot fail; a failure would be a programming error in capstan-proto.
    serde_json::to_value(value).expect("inventory types always serialise to JSON")
}

/// Child path used when walking the document.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

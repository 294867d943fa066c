//! The canonical JSON view of an inventory document that both the digest and the diff work on.
//! It removes what is volatile (collection time, collector durations) and puts every list whose
//! order carries no meaning into a fixed order, so that two collections of an unchanged machine
//! produce byte-identical text. The list rules live here, in one table, so the digest and the
//! diff cannot disagree about which lists are sets and how list entries are identified.

use serde::Serialize;
use serde_json::{Map, Value};

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

/// Removes the fields that change on every collection without anything having changed.
pub(crate) fn strip_volatile(doc: &mut Value) {
    if let Value::Object(map) = doc {
        map.remove("collected_at_ms");
        if let Some(Value::Array(collectors)) = map.get_mut("collectors") {
            for c in collectors {
                if let Value::Object(c) = c {
                    c.remove("duration_ms");
                }
            }
        }
    }
}

/// Child path used when walking the document.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Puts every list below `value` (which sits at `schema_path`) into canonical order. Sets are
/// also de-duplicated: a repeated DNS server is not a change of configuration.
pub(crate) fn canonicalize(value: &mut Value, schema_path: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                canonicalize(v, &join(schema_path, k));
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                canonicalize(item, schema_path);
            }
            match list_rule(schema_path) {
                None => {}
                Some(ListRule::Set) => {
                    sort_by_key(items, |_| ());
                    items.dedup();
                }
                Some(ListRule::Keyed(k)) => sort_by_key(items, |v| (k.key)(v)),
                Some(ListRule::Software) => sort_by_key(items, |v| {
                    let arch = v.get("architecture").and_then(Value::as_str);
                    (
                        text(v, "source").to_string(),
                        text(v, "name").to_string(),
                        arch.map(str::to_string),
                        text(v, "version").to_string(),
                    )
                }),
            }
        }
        _ => {}
    }
}

/// Sorts by `key`, breaking ties by the entries' canonical text so the order is total.
fn sort_by_key<K: Ord>(items: &mut Vec<Value>, key: impl Fn(&Value) -> K) {
    let mut keyed: Vec<(K, String, Value)> = items
        .drain(..)
        .map(|v| {
            let mut text = String::new();
            write(&v, &mut text);
            (key(&v), text, v)
        })
        .collect();
    keyed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    items.extend(keyed.into_iter().map(|(_, _, v)| v));
}

/// Writes `value` as compact JSON with object keys in byte order, whatever order the map
/// iterates in (serde_json keeps insertion order when its `preserve_order` feature is enabled
/// anywhere in the dependency graph, so the map type alone guarantees nothing).
pub(crate) fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        // Display of a scalar Value is its compact JSON text, with strings escaped.
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut String) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        write(v, out);
    }
    out.push('}');
}

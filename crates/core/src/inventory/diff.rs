//! Field-level difference between two inventory documents of one device, recorded as the
//! device's history (what changed, when). Software is compared package by package; every other
//! section is flattened into paths of scalar values where list entries are named by a natural
//! key (`hardware.disks[sda].size_bytes`), so that a new disk does not shift the others.
//!
//! Choices the console relies on:
//! - Lists of plain values (addresses, DNS servers and search domains, `id_like`, pending-reboot
//!   reasons) are compared as sets and reported as ONE `Changed` entry carrying the full sorted
//!   old and new lists, so "192.0.2.10/24 → 192.0.2.11/24" reads as one event.
//! - A keyed list entry that appears or disappears (a disk, an interface, a local administrator,
//!   an encrypted volume, a collector) is one `Added`/`Removed` entry carrying the whole entry;
//!   its fields are not listed separately.
//! - A whole section appearing or disappearing (its collector failed, or recovered) is one entry
//!   with `field` = the section name and no values.
//! - `collected_at_ms` and collector durations are never reported; `schema_version` neither.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::canonical::{self, Keyed, ListRule, join, list_rule};
use super::format;
use capstan_proto::inventory::{InventoryDocument, SoftwarePackage};

/// One field-level change between two inventory documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `hardware`, `virtualization`, `os`, `network`, `software`, `security` or `collectors`.
    pub category: String,
    /// Where the change is: `hardware.memory_bytes`, `network.interfaces[eth0].ipv4`,
    /// `software/dpkg/libc6:i386`, or the bare section name for a whole section.
    pub field: String,
    pub kind: ChangeKind,
    /// Value before the change (`None` for `Added` and for whole sections).
    pub old: Option<Value>,
    /// Value after the change (`None` for `Removed` and for whole sections).
    pub new: Option<Value>,
    /// One line for the device timeline, e.g. `software updated: openssl 3.0.11 → 3.0.13 (dpkg)`.
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// Sections in the order the timeline shows them; changes are sorted by this, then by field.
const SECTIONS: [&str; 7] = [
    "hardware",
    "virtualization",
    "os",
    "network",
    "software",
    "security",
    "collectors",
];

/// Every change from `old` to `new`, ordered by category (in [`SECTIONS`] order) then field.
/// Entries sharing a field (several versions of one package) keep removals before additions.
pub fn diff(old: &InventoryDocument, new: &InventoryDocument) -> Vec<Change> {
    let mut changes = Vec::new();
    let section_pairs = [
        (
            "hardware",
            canonical::to_json(&old.hardware),
            canonical::to_json(&new.hardware),
        ),
        (
            "virtualization",
            canonical::to_json(&old.virtualization),
            canonical::to_json(&new.virtualization),
        ),
        (
            "os",
            canonical::to_json(&old.os),
            canonical::to_json(&new.os),
        ),
        (
            "network",
            canonical::to_json(&old.network),
            canonical::to_json(&new.network),
        ),
        (
            "security",
            canonical::to_json(&old.security),
            canonical::to_json(&new.security),
        ),
    ];
    for (section, before, after) in section_pairs {
        match (before.is_null(), after.is_null()) {
            (true, true) => {}
            (false, true) => changes.push(section_gone(section, new)),
            (true, false) => changes.push(section_back(section)),
            (false, false) => diff_values(section, section, before, after, &mut changes),
        }
    }
    match (&old.software, &new.software) {
        (None, None) => {}
        (Some(_), None) => changes.push(section_gone("software", new)),
        (None, Some(_)) => changes.push(section_back("software")),
        (Some(before), Some(after)) => diff_software(before, after, &mut changes),
    }
    // Only the collectors list, without its volatile durations (serialising the whole
    // document here would cost more than the rest of the diff).
    let collectors = |doc: &InventoryDocument| {
        let mut v = canonical::to_json(&doc.collectors);
        if let Value::Array(items) = &mut v {
            for c in items {
                if let Value::Object(c) = c {
                    c.remove("duration_ms");
                }
            }
        }
        v
    };
    diff_values(
        "collectors",
        "collectors",
        collectors(old),
        collectors(new),
        &mut changes,
    );

    let rank = |c: &Change| {
        SECTIONS
            .iter()
            .position(|s| *s == c.category)
            .unwrap_or(SECTIONS.len())
    };
    // Stable: entries under one field keep the order they were produced in.
    changes.sort_by(|a, b| (rank(a), &a.field).cmp(&(rank(b), &b.field)));
    changes
}

fn section_gone(section: &str, new: &InventoryDocument) -> Change {
    let failure = new.collectors.iter().find(|c| c.name == section && !c.ok);
    let reason = match failure.and_then(|c| c.error.as_deref()) {
        Some(error) => format!("collector failed: {}", shorten(error, 160)),
        None if failure.is_some() => "collector failed".to_string(),
        None => "not reported".to_string(),
    };
    Change {
        category: section.into(),
        field: section.into(),
        kind: ChangeKind::Removed,
        old: None,
        new: None,
        summary: format!("{section} inventory unavailable ({reason})"),
    }
}

fn section_back(section: &str) -> Change {
    Change {
        category: section.into(),
        field: section.into(),
        kind: ChangeKind::Added,
        old: None,
        new: None,
        summary: format!("{section} inventory available"),
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Software

/// Identity of a package: the same name may be installed for several architectures (multiarch
/// `libc6:amd64` and `libc6:i386`), and, with RPM install-only packages such as `kernel`, in
/// several versions at once.
type PackageKey<'a> = (&'a str, &'a str, Option<&'a str>);

fn group(list: &[SoftwarePackage]) -> BTreeMap<PackageKey<'_>, BTreeMap<&str, &SoftwarePackage>> {
    let mut groups: BTreeMap<PackageKey<'_>, BTreeMap<&str, &SoftwarePackage>> = BTreeMap::new();
    for p in list {
        let key = (
            p.source.as_str(),
            p.name.as_str(),
            p.architecture.as_deref().filter(|a| !a.is_empty()),
        );
        // A repeated (key, version) is a duplicate report; the first one wins.
        groups
            .entry(key)
            .or_default()
            .entry(p.version.as_str())
            .or_insert(p);
    }
    groups
}

fn diff_software(old: &[SoftwarePackage], new: &[SoftwarePackage], out: &mut Vec<Change>) {
    let before = group(old);
    let after = group(new);
    let empty = BTreeMap::new();
    let keys: BTreeSet<&PackageKey<'_>> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let was = before.get(key).unwrap_or(&empty);
        let is = after.get(key).unwrap_or(&empty);
        if was == is {
            continue;
        }
        let (source, name, arch) = *key;
        let field = match arch {
            Some(arch) => format!("software/{source}/{name}:{arch}"),
            None => format!("software/{source}/{name}"),
        };
        let label = match arch {
            Some(arch) => format!("{name}:{arch}"),
            None => name.to_string(),
        };
        let gone: Vec<&SoftwarePackage> = was
            .iter()
            .filter(|(v, _)| !is.contains_key(*v))
            .map(|(_, p)| *p)
            .collect();
        let came: Vec<&SoftwarePackage> = is
            .iter()
            .filter(|(v, _)| !was.contains_key(*v))
            .map(|(_, p)| *p)
            .collect();
        let change = |kind, old, new, summary| Change {
            category: "software".into(),
            field: field.clone(),
            kind,
            old,
            new,
            summary,
        };

        if let ([from], [to]) = (gone.as_slice(), came.as_slice()) {
            out.push(change(
                ChangeKind::Changed,
                Some(json!(from.version)),
                Some(json!(to.version)),
                format!(
                    "software updated: {label} {} → {} ({source})",
                    from.version, to.version
                ),
            ));
        } else {
            for p in gone {
                let summary = format!("software removed: {label} {} ({source})", p.version);
                out.push(change(
                    ChangeKind::Removed,
                    Some(canonical::to_json(p)),
                    None,
                    summary,
                ));
            }
            for p in came {
                let summary = format!("software added: {label} {} ({source})", p.version);
                out.push(change(
                    ChangeKind::Added,
                    None,
                    Some(canonical::to_json(p)),
                    summary,
                ));
            }
        }
        // Same version on both sides but other details differ: a reinstall (install date) or a
        // repackaging (publisher, product code). Reported with only the fields that differ.
        for (version, p) in was {
            let Some(q) = is.get(version) else { continue };
            let (mut from, mut to) = (serde_json::Map::new(), serde_json::Map::new());
            let mut differing = Vec::new();
            for (field, a, b) in [
                ("publisher", json!(p.publisher), json!(q.publisher)),
                ("install_date", json!(p.install_date), json!(q.install_date)),
                ("product_code", json!(p.product_code), json!(q.product_code)),
            ] {
                if a != b {
                    from.insert(field.into(), a);
                    to.insert(field.into(), b);
                    differing.push(field);
                }
            }
            if !differing.is_empty() {
                let summary = format!(
                    "software details changed: {label} {version} ({source}): {}",
                    differing.join(", ")
                );
                out.push(change(
                    ChangeKind::Changed,
                    Some(Value::Object(from)),
                    Some(Value::Object(to)),
                    summary,
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every other section

/// A scalar (or a set of scalars) at a field path.
struct Leaf {
    value: Value,
    /// Keyed entries this leaf belongs to, outermost first.
    within: Vec<String>,
}

/// A keyed list entry at a field path, e.g. `hardware.disks[sda]`.
struct Entry {
    value: Value,
    rule: Keyed,
    within: Vec<String>,
}

#[derive(Default)]
struct Flat {
    leaves: BTreeMap<String, Leaf>,
    entries: BTreeMap<String, Entry>,
}

fn flatten(value: Value, schema: &str, path: &str, within: &[String], flat: &mut Flat) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                flatten(v, &join(schema, &k), &join(path, &k), within, flat);
            }
        }
        Value::Array(items) => match list_rule(schema) {
            Some(ListRule::Set) => {
                let mut items = items;
                items.sort_by_cached_key(Value::to_string);
                items.dedup();
                flat.leaves.insert(
                    path.to_string(),
                    Leaf {
                        value: Value::Array(items),
                        within: within.to_vec(),
                    },
                );
            }
            Some(ListRule::Keyed(rule)) => {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                let mut items = items;
                // Entries with the same key (a malformed report) are told apart by their order
                // after sorting, which does not depend on the order they were reported in.
                items.sort_by_cached_key(|v| ((rule.key)(v), v.to_string()));
                for item in items {
                    let key = (rule.key)(&item);
                    let n = seen.entry(key.clone()).or_insert(0);
                    *n += 1;
                    let entry_path = if *n == 1 {
                        format!("{path}[{key}]")
                    } else {
                        format!("{path}[{key}#{n}]")
                    };
                    let mut inner = within.to_vec();
                    inner.push(entry_path.clone());
                    flatten(item.clone(), schema, &entry_path, &inner, flat);
                    flat.entries.insert(
                        entry_path,
                        Entry {
                            value: item,
                            rule,
                            within: within.to_vec(),
                        },
                    );
                }
            }
            // Software never reaches here; a list without a rule is ordered, so compare by index.
            Some(ListRule::Software) | None => {
                for (i, item) in items.into_iter().enumerate() {
                    flatten(item, schema, &format!("{path}[{i}]"), within, flat);
                }
            }
        },
        scalar => {
            flat.leaves.insert(
                path.to_string(),
                Leaf {
                    value: scalar,
                    within: within.to_vec(),
                },
            );
        }
    }
}

fn diff_values(category: &str, section: &str, old: Value, new: Value, out: &mut Vec<Change>) {
    let (mut before, mut after) = (Flat::default(), Flat::default());
    flatten(old, section, section, &[], &mut before);
    flatten(new, section, section, &[], &mut after);
    let change = |field: &str, kind, old: Option<Value>, new: Option<Value>, summary| Change {
        category: category.into(),
        field: field.into(),
        kind,
        old,
        new,
        summary,
    };

    // Entries that appeared or disappeared are reported whole; nothing below them is listed.
    let mut whole: HashSet<&str> = HashSet::new();
    for (path, e) in &before.entries {
        if !after.entries.contains_key(path) {
            whole.insert(path);
            if !e.within.iter().any(|w| whole.contains(w.as_str())) {
                let summary = format!("{} removed: {}", e.rule.noun, (e.rule.describe)(&e.value));
                out.push(change(
                    path,
                    ChangeKind::Removed,
                    Some(e.value.clone()),
                    None,
                    summary,
                ));
            }
        }
    }
    for (path, e) in &after.entries {
        if !before.entries.contains_key(path) {
            whole.insert(path);
            if !e.within.iter().any(|w| whole.contains(w.as_str())) {
                let summary = format!("{} added: {}", e.rule.noun, (e.rule.describe)(&e.value));
                out.push(change(
                    path,
                    ChangeKind::Added,
                    None,
                    Some(e.value.clone()),
                    summary,
                ));
            }
        }
    }
    let inside_whole = |leaf: &Leaf| leaf.within.iter().any(|w| whole.contains(w.as_str()));

    for (path, leaf) in &before.leaves {
        if inside_whole(leaf) {
            continue;
        }
        match after.leaves.get(path) {
            None => {
                let summary = format!("{} removed: {}", label(path), show(path, &leaf.value));
                out.push(change(
                    path,
                    ChangeKind::Removed,
                    Some(leaf.value.clone()),
                    None,
                    summary,
                ));
            }
            Some(now) if now.value != leaf.value => {
                let summary = changed_summary(path, &leaf.value, &now.value);
                out.push(change(
                    path,
                    ChangeKind::Changed,
                    Some(leaf.value.clone()),
                    Some(now.value.clone()),
                    summary,
                ));
            }
            Some(_) => {}
        }
    }
    for (path, leaf) in &after.leaves {
        if !inside_whole(leaf) && !before.leaves.contains_key(path) {
            let summary = format!("{} added: {}", label(path), show(path, &leaf.value));
            out.push(change(
                path,
                ChangeKind::Added,
                None,
                Some(leaf.value.clone()),
                summary,
            ));
        }
    }
}

fn changed_summary(path: &str, old: &Value, new: &Value) -> String {
    if let Some(collector) = path
        .strip_prefix("collectors[")
        .and_then(|p| p.strip_suffix("].ok"))
    {
        return match new.as_bool() {
            Some(false) => format!("collector {collector} started failing"),
            _ => format!("collector {collector} recovered"),
        };
    }
    format!(
        "{} changed: {} → {}",
        label(path),
        show(path, old),
        show(path, new)
    )
}

/// What an administrator calls a field, where the path is not already plain enough.
fn label(path: &str) -> String {
    match path {
        "hardware.memory_bytes" => "RAM".into(),
        "os.version" => "OS version".into(),
        "os.version_id" => "OS version id".into(),
        "os.name" => "OS name".into(),
        "os.kernel" => "kernel".into(),
        "os.hostname" => "hostname".into(),
        _ => path.into(),
    }
}

fn show(path: &str, value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if path.ends_with("_bytes") => n
            .as_u64()
            .map(format::bytes)
            .unwrap_or_else(|| n.to_string()),
        Value::Array(items) if items.is_empty() => "(none)".into(),
        Value::Array(items) => items
            .iter()
            .map(|v| show(path, v))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The timeline's first entry for a device, e.g.
/// `first inventory: Debian GNU/Linux 12, 1,234 packages, 8 GiB RAM`.
pub fn first_inventory_summary(doc: &InventoryDocument) -> String {
    let os = match &doc.os {
        Some(os) => {
            let name = os.name.as_deref().unwrap_or(&os.family);
            match os.version_id.as_deref().or(os.version.as_deref()) {
                Some(version) => format!("{name} {version}"),
                None => name.to_string(),
            }
        }
        None => "operating system unknown".into(),
    };
    let software = match &doc.software {
        Some(list) if list.len() == 1 => "1 package".into(),
        Some(list) => format!("{} packages", format::thousands(list.len())),
        None => "software unknown".into(),
    };
    let ram = match doc.hardware.as_ref().and_then(|h| h.memory_bytes) {
        Some(bytes) => format!("{} RAM", format::bytes(bytes)),
        None => "RAM unknown".into(),
    };
    format!("first inventory: {os}, {software}, {ram}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::digest;
    use crate::inventory::fixtures::{pkg, sample};
    use capstan_proto::inventory::*;

    type Edit = fn(&mut InventoryDocument);

    /// One line per change: `kind field: old → new | summary`, values as compact JSON.
    fn render(changes: &[Change]) -> String {
        let json = |v: &Option<Value>| v.as_ref().map_or("-".to_string(), Value::to_string);
        changes
            .iter()
            .map(|c| {
                format!(
                    "{:?} [{}] {}: {} → {} | {}\n",
                    c.kind,
                    c.category,
                    c.field,
                    json(&c.old),
                    json(&c.new),
                    c.summary
                )
            })
            .collect()
    }

    fn sw(d: &mut InventoryDocument) -> &mut Vec<SoftwarePackage> {
        d.software.get_or_insert_with(Vec::new)
    }

    /// (what, edit applied to the sample to get the new document, expected rendering).
    const CASES: &[(&str, Edit, &str)] = &[
        (
            "recollected unchanged machine",
            |d| {
                d.collected_at_ms += 86_400_000;
                d.collectors.iter_mut().for_each(|c| c.duration_ms *= 3);
                d.collectors.reverse();
                sw(d).reverse();
                d.network.as_mut().unwrap().interfaces.reverse();
                d.network.as_mut().unwrap().dns_servers.reverse();
                d.security.as_mut().unwrap().local_admins.reverse();
            },
            "",
        ),
        (
            "RAM upgraded",
            |d| d.hardware.as_mut().unwrap().memory_bytes = Some(16 << 30),
            "Changed [hardware] hardware.memory_bytes: 8589934592 → 17179869184 | RAM changed: 8 GiB → 16 GiB\n",
        ),
        (
            "disk added",
            |d| {
                let disk = Disk {
                    name: "nvme0n1".into(),
                    size_bytes: Some(1 << 40),
                    transport: Some("nvme".into()),
                    ..Default::default()
                };
                d.hardware.as_mut().unwrap().disks.push(disk);
            },
            r#"Added [hardware] hardware.disks[nvme0n1]: - → {"model":null,"name":"nvme0n1","rotational":null,"serial":null,"size_bytes":1099511627776,"transport":"nvme"} | disk added: nvme0n1 (1 TiB)
"#,
        ),
        (
            "disk replaced by a larger one",
            |d| d.hardware.as_mut().unwrap().disks[0].size_bytes = Some(1 << 40),
            "Changed [hardware] hardware.disks[sda].size_bytes: 536870912000 → 1099511627776 | hardware.disks[sda].size_bytes changed: 500 GiB → 1 TiB\n",
        ),
        (
            "IP address changed",
            |d| d.network.as_mut().unwrap().interfaces[0].ipv4 = vec!["192.0.2.77/24".into()],
            r#"Changed [network] network.interfaces[eth0].ipv4: ["192.0.2.10/24"] → ["192.0.2.77/24"] | network.interfaces[eth0].ipv4 changed: 192.0.2.10/24 → 192.0.2.77/24
"#,
        ),
        (
            "interface removed: reported once, not per address",
            |d| {
                d.network.as_mut().unwrap().interfaces.remove(1);
            },
            r#"Removed [network] network.interfaces[lo]: {"ipv4":["127.0.0.1/8"],"ipv6":[],"mac":null,"mtu":null,"name":"lo","speed_mbps":null,"up":true,"virtual_interface":null} → - | network interface removed: lo
"#,
        ),
        (
            "DNS server added",
            |d| {
                d.network
                    .as_mut()
                    .unwrap()
                    .dns_servers
                    .insert(0, "198.51.100.53".into())
            },
            r#"Changed [network] network.dns_servers: ["192.0.2.53","192.0.2.54"] → ["192.0.2.53","192.0.2.54","198.51.100.53"] | network.dns_servers changed: 192.0.2.53, 192.0.2.54 → 192.0.2.53, 192.0.2.54, 198.51.100.53
"#,
        ),
        (
            "OS point release",
            |d| {
                let os = d.os.as_mut().unwrap();
                os.version_id = Some("12.5".into());
                os.kernel = Some("6.1.0-21-amd64".into());
            },
            "Changed [os] os.kernel: \"6.1.0-18-amd64\" → \"6.1.0-21-amd64\" | kernel changed: 6.1.0-18-amd64 → 6.1.0-21-amd64\n\
             Changed [os] os.version_id: \"12\" → \"12.5\" | OS version id changed: 12 → 12.5\n",
        ),
        (
            "joined a domain (optional object appears field by field)",
            |d| {
                d.os.as_mut().unwrap().domain = Some(DomainMembership {
                    kind: "active_directory".into(),
                    name: Some("CORP.EXAMPLE".into()),
                    ..Default::default()
                })
            },
            "Added [os] os.domain.kind: - → \"active_directory\" | os.domain.kind added: active_directory\n\
             Added [os] os.domain.name: - → \"CORP.EXAMPLE\" | os.domain.name added: CORP.EXAMPLE\n",
        ),
        (
            "package added, removed and updated",
            |d| {
                let list = sw(d);
                list.retain(|p| p.name != "bash");
                list.push(pkg("dpkg", "nginx", "1.22.1-9", Some("amd64")));
                list.iter_mut()
                    .filter(|p| p.name == "openssl")
                    .for_each(|p| p.version = "3.0.13-1~deb12u1".into());
            },
            r#"Removed [software] software/dpkg/bash:amd64: {"architecture":"amd64","install_date":null,"name":"bash","product_code":null,"publisher":null,"source":"dpkg","version":"5.2.15-2+b2"} → - | software removed: bash:amd64 5.2.15-2+b2 (dpkg)
Added [software] software/dpkg/nginx:amd64: - → {"architecture":"amd64","install_date":null,"name":"nginx","product_code":null,"publisher":null,"source":"dpkg","version":"1.22.1-9"} | software added: nginx:amd64 1.22.1-9 (dpkg)
Changed [software] software/dpkg/openssl:amd64: "3.0.11-1~deb12u2" → "3.0.13-1~deb12u1" | software updated: openssl:amd64 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1 (dpkg)
"#,
        ),
        (
            "multiarch: only the i386 libc6 goes away",
            |d| sw(d).retain(|p| !(p.name == "libc6" && p.architecture.as_deref() == Some("i386"))),
            r#"Removed [software] software/dpkg/libc6:i386: {"architecture":"i386","install_date":null,"name":"libc6","product_code":null,"publisher":null,"source":"dpkg","version":"2.36-9+deb12u4"} → - | software removed: libc6:i386 2.36-9+deb12u4 (dpkg)
"#,
        ),
        (
            "package without architecture updated",
            |d| {
                sw(d)
                    .iter_mut()
                    .filter(|p| p.name == "core22")
                    .for_each(|p| p.version = "20240207".into())
            },
            "Changed [software] software/snap/core22: \"20240111\" → \"20240207\" | software updated: core22 20240111 → 20240207 (snap)\n",
        ),
        (
            "second version installed next to the first (as rpm does with kernels)",
            |d| {
                sw(d).push(pkg("dpkg", "openssl", "3.0.13-1~deb12u1", Some("amd64")));
            },
            r#"Added [software] software/dpkg/openssl:amd64: - → {"architecture":"amd64","install_date":null,"name":"openssl","product_code":null,"publisher":null,"source":"dpkg","version":"3.0.13-1~deb12u1"} | software added: openssl:amd64 3.0.13-1~deb12u1 (dpkg)
"#,
        ),
        (
            "package reinstalled in the same version",
            |d| sw(d)[0].install_date = Some(1_700_000_000),
            r#"Changed [software] software/dpkg/bash:amd64: {"install_date":null} → {"install_date":1700000000} | software details changed: bash:amd64 5.2.15-2+b2 (dpkg): install_date
"#,
        ),
        (
            "security collector failed",
            |d| {
                d.security = None;
                let c = d
                    .collectors
                    .iter_mut()
                    .find(|c| c.name == "security")
                    .unwrap();
                c.ok = false;
                c.error = Some("timed out after 30 s".into());
            },
            "Removed [security] security: - → - | security inventory unavailable (collector failed: timed out after 30 s)\n\
             Added [collectors] collectors[security].error: - → \"timed out after 30 s\" | collectors[security].error added: timed out after 30 s\n\
             Changed [collectors] collectors[security].ok: true → false | collector security started failing\n",
        ),
        (
            "software section no longer reported",
            |d| d.software = None,
            "Removed [software] software: - → - | software inventory unavailable (not reported)\n",
        ),
        (
            "local administrator added",
            |d| {
                d.security.as_mut().unwrap().local_admins.push(LocalAdmin {
                    name: "bob".into(),
                    via: "group:wheel".into(),
                })
            },
            r#"Added [security] security.local_admins[bob/group:wheel]: - → {"name":"bob","via":"group:wheel"} | local administrator added: bob (group:wheel)
"#,
        ),
        (
            "changes in several sections come out in section order",
            |d| {
                d.collectors.retain(|c| c.name != "virtualization");
                d.security
                    .as_mut()
                    .unwrap()
                    .ssh
                    .as_mut()
                    .unwrap()
                    .password_authentication = Some(true);
                d.virtualization = None;
                d.hardware.as_mut().unwrap().cpu.as_mut().unwrap().threads = Some(16);
            },
            r#"Changed [hardware] hardware.cpu.threads: 8 → 16 | hardware.cpu.threads changed: 8 → 16
Removed [virtualization] virtualization: - → - | virtualization inventory unavailable (not reported)
Changed [security] security.ssh.password_authentication: false → true | security.ssh.password_authentication changed: false → true
Removed [collectors] collectors[virtualization]: {"error":null,"name":"virtualization","ok":true} → - | collector removed: virtualization
"#,
        ),
    ];

    #[test]
    fn diff_cases() {
        let mut failures = Vec::new();
        for (what, edit, want) in CASES {
            let mut new = sample();
            edit(&mut new);
            let got = render(&diff(&sample(), &new));
            if got != *want {
                failures.push(format!("--- {what}\nwant:\n{want}got:\n{got}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn reverse_diff_mirrors_kinds() {
        for (what, edit, _) in CASES {
            let mut new = sample();
            edit(&mut new);
            let forward = diff(&sample(), &new);
            let backward = diff(&new, &sample());
            assert_eq!(forward.len(), backward.len(), "{what}");
            for f in &forward {
                let b = backward
                    .iter()
                    .find(|b| b.field == f.field)
                    .unwrap_or_else(|| panic!("{what}: {} missing backwards", f.field));
                let mirrored = match f.kind {
                    ChangeKind::Added => ChangeKind::Removed,
                    ChangeKind::Removed => ChangeKind::Added,
                    ChangeKind::Changed => ChangeKind::Changed,
                };
                assert_eq!(b.kind, mirrored, "{what}: {}", f.field);
                assert_eq!((&b.old, &b.new), (&f.new, &f.old), "{what}: {}", f.field);
            }
        }
    }

    #[test]
    fn digest_moves_exactly_when_the_diff_is_not_empty() {
        for (what, edit, _) in CASES {
            let mut new = sample();
            edit(&mut new);
            let changed = !diff(&sample(), &new).is_empty();
            assert_eq!(digest(&sample()) != digest(&new), changed, "{what}");
        }
    }

    #[test]
    fn change_serialises_with_snake_case_kind() {
        let mut new = sample();
        new.hardware.as_mut().unwrap().memory_bytes = Some(16 << 30);
        let json = serde_json::to_value(&diff(&sample(), &new)[0]).unwrap();
        assert_eq!(json["kind"], "changed");
        assert_eq!(json["field"], "hardware.memory_bytes");
        assert_eq!(json["new"], 17179869184u64);
    }

    #[test]
    fn large_inventories_report_only_what_changed() {
        let base: Vec<SoftwarePackage> = (0..5000)
            .map(|i| {
                pkg(
                    "dpkg",
                    &format!("pkg{i:04}"),
                    &format!("1.{i}"),
                    Some("amd64"),
                )
            })
            .collect();
        let mut old = sample();
        old.software = Some(base.clone());
        let mut new = sample();
        let mut list = base;
        for i in 0..50 {
            list[i * 100].version = format!("2.{i}");
        }
        list.reverse();
        new.software = Some(list);
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 50);
        assert!(
            changes
                .iter()
                .all(|c| c.kind == ChangeKind::Changed && c.category == "software")
        );
        assert_eq!(changes[0].field, "software/dpkg/pkg0000:amd64");
        assert_eq!(changes[49].field, "software/dpkg/pkg4900:amd64");
    }

    #[test]
    fn first_inventory_summaries() {
        let mut many = sample();
        many.software = Some(vec![pkg("dpkg", "x", "1", None); 1234]);
        let mut bare = sample();
        bare.os = None;
        bare.software = None;
        bare.hardware = None;
        let mut one = sample();
        one.software = Some(vec![pkg("msi", "x", "1", None)]);
        one.os.as_mut().unwrap().version_id = None;
        for (doc, want) in [
            (
                many,
                "first inventory: Debian GNU/Linux 12, 1,234 packages, 8 GiB RAM",
            ),
            (
                one,
                "first inventory: Debian GNU/Linux 12 (bookworm), 1 package, 8 GiB RAM",
            ),
            (
                bare,
                "first inventory: operating system unknown, software unknown, RAM unknown",
            ),
        ] {
            assert_eq!(first_inventory_summary(&doc), want);
        }
    }
}

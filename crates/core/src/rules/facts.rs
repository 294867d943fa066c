//! What rules are evaluated over: [`DeviceFacts`], built by the caller from storage, and the
//! per-device [`FactIndex`] built from it once and shared by every rule, so that a software
//! lookup is a binary search instead of a scan of thousands of packages.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use capstan_proto::inventory::{
    Hardware, InventoryDocument, Network, OperatingSystem, PerformanceSnapshot, Security,
    SoftwarePackage,
};

use crate::version::Scheme;

/// A custom field value of a device, typed by its field definition.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomValue {
    String(String),
    Number(f64),
    Bool(bool),
    /// Milliseconds since 1970-01-01 UTC (a date is its midnight UTC).
    Date(i64),
}

/// Connection status of a device, kept by the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStatus {
    pub online: bool,
    /// Last check-in, milliseconds since 1970; `None` when the device never checked in.
    pub last_seen_ms: Option<i64>,
    pub enrolled_at_ms: i64,
}

/// Everything a rule can look at for one device. Inventory and performance are borrowed,
/// because the caller already holds them and they can be large.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts<'a> {
    pub inventory: Option<&'a InventoryDocument>,
    pub performance: Option<&'a PerformanceSnapshot>,
    pub tags: BTreeSet<String>,
    pub custom: BTreeMap<String, CustomValue>,
    /// Ids of the groups the device belongs to. Include the ancestors of static groups the
    /// device is in (membership of a child counts for its parent). When a rule is evaluated on
    /// its own, include the current dynamic memberships and their ancestors too; through a
    /// [`RuleSet`](super::RuleSet), leave out the dynamic groups of the set, which it decides
    /// fresh (see there).
    pub groups: BTreeSet<String>,
    pub status: DeviceStatus,
}

impl<'a> DeviceFacts<'a> {
    /// Build the lookup structures rules need; do it once per device and evaluate every rule
    /// against the result.
    pub fn index(&'a self) -> FactIndex<'a> {
        FactIndex::new(self)
    }
}

/// One installed package found by name, with the comparison scheme of its source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SoftwareEntry<'a> {
    pub(crate) package: &'a SoftwarePackage,
    pub(crate) scheme: Scheme,
}

/// A package name as rules look it up: lowercased character by character, and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameKey {
    lower: String,
    hash: u64,
}

impl NameKey {
    pub(crate) fn new(name: &str) -> NameKey {
        NameKey {
            lower: name.chars().flat_map(char::to_lowercase).collect(),
            hash: name_hash(name),
        }
    }
}

/// FNV-1a over the lowercased UTF-8 of `name`, without allocating: indexing a device hashes
/// every package name, so this is the cost that matters. Deterministic (no random seed).
fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    if name.is_ascii() {
        name.bytes().for_each(|b| feed(b.to_ascii_lowercase()));
        return h;
    }
    for c in name.chars() {
        if c.is_ascii() {
            feed(c.to_ascii_lowercase() as u8);
        } else {
            for l in c.to_lowercase() {
                let mut buf = [0u8; 4];
                l.encode_utf8(&mut buf).bytes().for_each(&mut feed);
            }
        }
    }
    h
}

/// [`DeviceFacts`] prepared for evaluation. The software index is built on the first software
/// lookup, so rules without software conditions cost nothing for it.
#[derive(Debug, Clone)]
pub struct FactIndex<'a> {
    pub(crate) facts: &'a DeviceFacts<'a>,
    packages: &'a [SoftwarePackage],
    /// (name hash, position in `packages`), sorted: equal names keep inventory order.
    by_name: OnceLock<Vec<(u64, u32)>>,
}

impl<'a> FactIndex<'a> {
    pub fn new(facts: &'a DeviceFacts<'a>) -> FactIndex<'a> {
        let packages = facts
            .inventory
            .and_then(|i| i.software.as_deref())
            .unwrap_or_default();
        FactIndex {
            facts,
            packages,
            by_name: OnceLock::new(),
        }
    }

    fn by_name(&self) -> &[(u64, u32)] {
        self.by_name.get_or_init(|| {
            // Inventory validation caps software at 50,000 entries, far below u32::MAX.
            let mut by_name: Vec<(u64, u32)> = self
                .packages
                .iter()
                .zip(0u32..)
                .map(|(p, i)| (name_hash(&p.name), i))
                .collect();
            by_name.sort_unstable();
            by_name
        })
    }

    /// The installed packages whose name equals `name` ignoring case, any source, in
    /// inventory order.
    pub(crate) fn software<'s>(
        &'s self,
        name: &'s NameKey,
    ) -> impl Iterator<Item = SoftwareEntry<'a>> + 's {
        let by_name = self.by_name();
        let start = by_name.partition_point(|(h, _)| *h < name.hash);
        by_name[start..]
            .iter()
            .take_while(move |(h, _)| *h == name.hash)
            .filter_map(move |(_, i)| self.packages.get(*i as usize))
            .filter(move |p| {
                p.name
                    .chars()
                    .flat_map(char::to_lowercase)
                    .eq(name.lower.chars())
            })
            .map(|package| SoftwareEntry {
                package,
                scheme: Scheme::for_source(&package.source),
            })
    }

    pub(crate) fn os(&self) -> Option<&'a OperatingSystem> {
        self.facts.inventory.and_then(|i| i.os.as_ref())
    }

    pub(crate) fn hardware(&self) -> Option<&'a Hardware> {
        self.facts.inventory.and_then(|i| i.hardware.as_ref())
    }

    pub(crate) fn network(&self) -> Option<&'a Network> {
        self.facts.inventory.and_then(|i| i.network.as_ref())
    }

    pub(crate) fn security(&self) -> Option<&'a Security> {
        self.facts.inventory.and_then(|i| i.security.as_ref())
    }

    pub(crate) fn inventory(&self) -> Option<&'a InventoryDocument> {
        self.facts.inventory
    }

    pub(crate) fn performance(&self) -> Option<&'a PerformanceSnapshot> {
        self.facts.performance
    }
}

/// Lowercase without allocating in the common case of an already-lowercase ASCII name.
pub(crate) fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|c| c.is_ascii_uppercase() || !c.is_ascii()) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// One value of a field, as a condition sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'f> {
    Str(&'f str),
    Num(f64),
    Bool(bool),
    /// Milliseconds since 1970.
    Time(i64),
}

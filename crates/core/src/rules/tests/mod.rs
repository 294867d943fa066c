//! Tests of the rule engine: the data-driven case table over device fixtures, validation
//! errors, boolean laws over generated rules, group dependencies, and a realistic-scale run.

mod catalogue;
mod deps;
mod laws;
mod scale;
mod sets;
mod table;
mod validation;

use std::collections::{BTreeMap, BTreeSet};

use capstan_proto::inventory::{InventoryDocument, PerformanceSnapshot};
use serde::Deserialize;

use super::literal::Timestamp;
use super::*;

/// The evaluation time of the case table unless a case says otherwise.
pub(super) const NOW: &str = "2026-11-25T12:00:00Z";

pub(super) fn ms(text: &str) -> i64 {
    Timestamp::parse(text)
        .unwrap_or_else(|| panic!("bad time {text:?} in a fixture"))
        .ms
}

/// Custom fields and groups the fixtures and cases use.
pub(super) fn context() -> ValidationContext {
    let mut ctx = ValidationContext::default();
    for (name, ty) in [
        ("owner", CustomFieldType::String),
        ("cost", CustomFieldType::Number),
        ("managed", CustomFieldType::Bool),
        ("warranty_end", CustomFieldType::Date),
        (
            "tier",
            CustomFieldType::Enum(vec!["gold".into(), "silver".into(), "bronze".into()]),
        ),
    ] {
        ctx.custom_fields.insert(name.into(), ty);
    }
    for g in ["pilot", "servers", "g-web"] {
        ctx.group_ids.insert(g.into());
    }
    ctx
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum CustomFixture {
    String(String),
    Number(f64),
    Bool(bool),
    Date(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusFixture {
    online: bool,
    last_seen: Option<String>,
    enrolled_at: String,
}

/// A device as stored in `testdata/devices/*.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Device {
    inventory: Option<InventoryDocument>,
    performance: Option<PerformanceSnapshot>,
    tags: Vec<String>,
    custom: BTreeMap<String, CustomFixture>,
    groups: Vec<String>,
    status: StatusFixture,
}

impl Device {
    pub(super) fn facts(&self) -> DeviceFacts<'_> {
        DeviceFacts {
            inventory: self.inventory.as_ref(),
            performance: self.performance.as_ref(),
            tags: self.tags.iter().cloned().collect(),
            custom: self
                .custom
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        CustomFixture::String(s) => CustomValue::String(s.clone()),
                        CustomFixture::Number(x) => CustomValue::Number(*x),
                        CustomFixture::Bool(b) => CustomValue::Bool(*b),
                        CustomFixture::Date(d) => CustomValue::Date(ms(d)),
                    };
                    (k.clone(), v)
                })
                .collect(),
            groups: self.groups.iter().cloned().collect::<BTreeSet<_>>(),
            status: DeviceStatus {
                online: self.status.online,
                last_seen_ms: self.status.last_seen.as_deref().map(ms),
                enrolled_at_ms: ms(&self.status.enrolled_at),
            },
        }
    }
}

const DEVICES: &[(&str, &str)] = &[
    (
        "debian_web",
        include_str!("../testdata/devices/debian_web.json"),
    ),
    ("rhel_db", include_str!("../testdata/devices/rhel_db.json")),
    (
        "win11_laptop",
        include_str!("../testdata/devices/win11_laptop.json"),
    ),
    (
        "arch_desktop",
        include_str!("../testdata/devices/arch_desktop.json"),
    ),
    ("bare", include_str!("../testdata/devices/bare.json")),
];

/// Every device fixture by name, checked against the inventory limits like a real report.
pub(super) fn devices() -> BTreeMap<&'static str, Device> {
    DEVICES
        .iter()
        .map(|(name, json)| {
            let device: Device =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("device fixture {name}: {e}"));
            if let Some(inv) = &device.inventory {
                inv.validate()
                    .unwrap_or_else(|e| panic!("device fixture {name}: {e}"));
            }
            (*name, device)
        })
        .collect()
}

/// Validate and compile, panicking with the errors (for rules a test knows are valid).
pub(super) fn compile(json: &serde_json::Value) -> CompiledRule {
    validate(json, &context())
        .unwrap_or_else(|e| panic!("rule {json} is invalid: {e:?}"))
        .compile()
}

//! Property tests: the boolean laws hold for generated rules over generated devices, the
//! explanation always agrees with evaluation, and the canonical JSON evaluates the same.

use std::collections::{BTreeMap, BTreeSet};

use capstan_proto::inventory::*;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const NOW_MS: i64 = 1_795_000_000_000;
const DAY: i64 = 86_400_000;

/// Leaf conditions the generated rules are built from; together they touch every kind of
/// condition and value type.
fn leaves() -> Vec<Value> {
    vec![
        json!({"field": "os.id", "op": "in", "value": ["debian", "ubuntu"]}),
        json!({"field": "os.id", "op": "eq", "value": "RHEL", "case_insensitive": true}),
        json!({"field": "os.id", "op": "not_exists"}),
        json!({"field": "hardware.memory_bytes", "op": "gte", "value": 8589934592i64}),
        json!({"software": {"name": "nginx", "op": "version_gte", "value": "1.22"}}),
        json!({"software": {"name": "nginx"}}),
        json!({"software": {"name": "openssl", "source": "rpm", "op": "version_lt", "value": "1:3.0.7-26"}}),
        json!({"tag": "web"}),
        json!({"tag": "db"}),
        json!({"group": "pilot"}),
        json!({"field": "status.last_seen", "op": "older_than", "value": "7d"}),
        json!({"field": "status.online", "op": "eq", "value": true}),
        json!({"field": "network.interfaces[].ipv4", "op": "cidr", "value": "10.0.0.0/8"}),
        json!({"field": "network.interfaces[].ipv4", "op": "regex", "value": "^192\\."}),
        json!({"field": "custom.owner", "op": "eq", "value": "IT", "case_insensitive": true}),
        json!({"field": "custom.cost", "op": "gt", "value": 100}),
        json!({"field": "performance.mounts[].free_percent", "op": "lt", "value": 10}),
        json!({"field": "tags", "op": "contains", "value": "db"}),
    ]
}

fn rule() -> impl Strategy<Value = Value> {
    let leaf = (0..leaves().len()).prop_map(|i| leaves()[i].clone());
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| json!({ "all": v })),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| json!({ "any": v })),
            inner.prop_map(|r| json!({ "not": r })),
        ]
    })
}

/// The generated parts of a device; owns what [`DeviceFacts`] borrows.
#[derive(Debug, Clone)]
struct Spec {
    inventory: InventoryDocument,
    performance: PerformanceSnapshot,
    tags: BTreeSet<String>,
    groups: BTreeSet<String>,
    custom: BTreeMap<String, CustomValue>,
    status: DeviceStatus,
}

impl Spec {
    fn facts(&self) -> DeviceFacts<'_> {
        DeviceFacts {
            inventory: Some(&self.inventory),
            performance: Some(&self.performance),
            tags: self.tags.clone(),
            custom: self.custom.clone(),
            groups: self.groups.clone(),
            status: self.status,
        }
    }
}

fn subset(items: &'static [&'static str]) -> impl Strategy<Value = BTreeSet<String>> {
    proptest::sample::subsequence(items, 0..=items.len())
        .prop_map(|v| v.into_iter().map(String::from).collect())
}

fn device() -> impl Strategy<Value = Spec> {
    let os = proptest::option::of(proptest::sample::select(
        &["debian", "ubuntu", "rhel", "windows"][..],
    ));
    let memory = proptest::option::of(proptest::sample::select(
        &[4u64 << 30, 8 << 30, 16 << 30][..],
    ));
    let nginx = proptest::option::of(proptest::sample::select(
        &["1.18.0-6", "1.22.1-9", "1:1.2", "1.22~rc1"][..],
    ));
    let openssl = proptest::option::of(proptest::sample::select(
        &["1:3.0.7-25.el9", "1:3.0.7-27.el9", "3.0.7-1"][..],
    ));
    let addresses = subset(&["10.1.2.3/24", "192.168.1.5/24", "172.16.0.9/16"]);
    let owner = proptest::option::of(proptest::sample::select(&["it", "IT", "finance"][..]));
    let cost = proptest::option::of(0.0f64..500.0);
    let last_seen = proptest::option::of(0i64..20);
    let free = proptest::collection::vec(0u64..100, 0..3);
    (
        (os, memory, nginx, openssl, addresses),
        (
            subset(&["web", "db", "prod"]),
            subset(&["pilot", "servers"]),
        ),
        (owner, cost, last_seen, any::<bool>(), free),
    )
        .prop_map(
            |(
                (os, memory, nginx, openssl, addresses),
                (tags, groups),
                (owner, cost, last_seen, online, free),
            )| {
                let mut software = Vec::new();
                if let Some(v) = nginx {
                    software.push(SoftwarePackage {
                        name: "nginx".into(),
                        version: v.into(),
                        source: "dpkg".into(),
                        ..Default::default()
                    });
                }
                if let Some(v) = openssl {
                    software.push(SoftwarePackage {
                        name: "openssl".into(),
                        version: v.into(),
                        source: "rpm".into(),
                        ..Default::default()
                    });
                }
                let mut custom = BTreeMap::new();
                if let Some(o) = owner {
                    custom.insert("owner".to_string(), CustomValue::String(o.into()));
                }
                if let Some(c) = cost {
                    custom.insert("cost".to_string(), CustomValue::Number(c));
                }
                Spec {
                    inventory: InventoryDocument {
                        os: Some(OperatingSystem {
                            family: "linux".into(),
                            id: os.map(String::from),
                            hostname: "h".into(),
                            ..Default::default()
                        }),
                        hardware: Some(Hardware {
                            memory_bytes: memory,
                            ..Default::default()
                        }),
                        network: Some(Network {
                            interfaces: vec![NetworkInterface {
                                name: "eth0".into(),
                                ipv4: addresses.into_iter().collect(),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                        software: Some(software),
                        ..Default::default()
                    },
                    performance: PerformanceSnapshot {
                        mounts: free
                            .into_iter()
                            .map(|f| MountUsage {
                                mount_point: "/".into(),
                                total_bytes: 100,
                                used_bytes: 100 - f,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    },
                    tags,
                    groups,
                    custom,
                    status: DeviceStatus {
                        online,
                        last_seen_ms: last_seen.map(|d| NOW_MS - d * DAY),
                        enrolled_at_ms: NOW_MS - 100 * DAY,
                    },
                }
            },
        )
}

fn eval(rule: &Value, spec: &Spec) -> bool {
    let facts = spec.facts();
    compile(rule).evaluate(&facts.index(), NOW_MS)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn double_negation(r in rule(), d in device()) {
        prop_assert_eq!(eval(&json!({"not": {"not": r.clone()}}), &d), eval(&r, &d));
    }

    #[test]
    fn negation_flips(r in rule(), d in device()) {
        prop_assert_eq!(eval(&json!({"not": r.clone()}), &d), !eval(&r, &d));
    }

    #[test]
    fn de_morgan(a in rule(), b in rule(), d in device()) {
        let all = eval(&json!({"all": [a.clone(), b.clone()]}), &d);
        let not_any_not = eval(&json!({"not": {"any": [{"not": a.clone()}, {"not": b.clone()}]}}), &d);
        prop_assert_eq!(all, not_any_not);
        let any = eval(&json!({"any": [a.clone(), b.clone()]}), &d);
        let not_all_not = eval(&json!({"not": {"all": [{"not": a}, {"not": b}]}}), &d);
        prop_assert_eq!(any, not_all_not);
    }

    #[test]
    fn commutative_and_identity(a in rule(), b in rule(), d in device()) {
        prop_assert_eq!(eval(&json!({"any": [a.clone(), b.clone()]}), &d), eval(&json!({"any": [b.clone(), a.clone()]}), &d));
        prop_assert_eq!(eval(&json!({"all": [a.clone(), b.clone()]}), &d), eval(&json!({"all": [b, a.clone()]}), &d));
        let (empty_all, empty_any) = (eval(&json!({"all": []}), &d), eval(&json!({"any": []}), &d));
        prop_assert!(empty_all);
        prop_assert!(!empty_any);
        prop_assert_eq!(eval(&json!({"all": [a.clone()]}), &d), eval(&a, &d));
        prop_assert_eq!(eval(&json!({"any": [a.clone()]}), &d), eval(&a, &d));
    }

    #[test]
    fn explanation_agrees_with_evaluation(r in rule(), d in device()) {
        let facts = d.facts();
        let index = facts.index();
        let compiled = compile(&r);
        let explanation = compiled.explain(&index, NOW_MS);
        prop_assert_eq!(explanation.matched, compiled.evaluate(&index, NOW_MS));
        // Every line of every node ends with its own verdict.
        fn check(e: &Explanation) -> bool {
            let verdict = format!(": {}", e.matched);
            (e.text.ends_with(&verdict) || e.text.contains(&format!("{verdict} (")))
                && e.children.iter().all(check)
        }
        prop_assert!(check(&explanation), "{}", explanation);
    }

    #[test]
    fn canonical_json_evaluates_the_same(r in rule(), d in device()) {
        let parsed = validate(&r, &context()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(eval(&parsed.to_json(), &d), eval(&r, &d));
    }
}

//! The data-driven table of rule sets in a group tree (`testdata/rule_sets.json`): groups with
//! parents and rules, devices with tags and static memberships, and which dynamic groups each
//! device lands in — or the cycle that makes the set impossible. Each case also runs with its
//! groups listed in reverse (the order must not depend on it), and every group's explanation
//! and a preview of its rule ([`RuleSet::attach`]) must agree with the set's evaluation.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    id: String,
    #[serde(default)]
    parent: Option<String>,
    /// A dynamic group's rule; absent for a static group.
    #[serde(default)]
    rule: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Device {
    #[serde(default)]
    tags: Vec<String>,
    /// Static groups the device is a direct member of.
    #[serde(default, rename = "static")]
    static_groups: Vec<String>,
    /// The dynamic groups whose rule matches, in any order.
    expect: Vec<String>,
    /// Expected explanations of some groups, rendered line by line.
    #[serde(default)]
    explain: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    groups: Vec<Group>,
    #[serde(default)]
    devices: Vec<Device>,
    /// The groups of the cycle the set must be refused for.
    #[serde(default)]
    cycle: Option<BTreeSet<String>>,
    /// The cycle error's text for the groups in the listed order.
    #[serde(default)]
    cycle_text: Option<String>,
}

fn cases() -> Vec<Case> {
    serde_json::from_str(include_str!("../testdata/rule_sets.json"))
        .unwrap_or_else(|e| panic!("testdata/rule_sets.json: {e}"))
}

/// Build the set from `groups` (in the given order).
fn build(groups: &[&Group]) -> (Result<RuleSet, CycleError>, GroupTree) {
    let tree = GroupTree::new(groups.iter().map(|g| (g.id.as_str(), g.parent.as_deref())));
    let mut ctx = context();
    ctx.group_ids.extend(groups.iter().map(|g| g.id.clone()));
    let rules: Vec<(String, CompiledRule)> = groups
        .iter()
        .filter_map(|g| {
            let json = g.rule.as_ref()?;
            let ctx = ValidationContext {
                self_group: Some(g.id.clone()),
                ..ctx.clone()
            };
            let rule = validate(json, &ctx)
                .unwrap_or_else(|e| panic!("rule of {} is invalid: {e:?}", g.id))
                .compile();
            Some((g.id.clone(), rule))
        })
        .collect();
    (RuleSet::with_tree(rules, &tree), tree)
}

/// The device's facts as the server builds them: static groups with their ancestors.
fn facts<'a>(device: &Device, tree: &GroupTree) -> DeviceFacts<'a> {
    let mut groups = BTreeSet::new();
    for g in &device.static_groups {
        groups.insert(g.clone());
        groups.extend(tree.ancestors(g).into_iter().map(String::from));
    }
    DeviceFacts {
        tags: device.tags.iter().cloned().collect(),
        groups,
        ..Default::default()
    }
}

#[test]
fn rule_set_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let listed: Vec<&Group> = case.groups.iter().collect();
        let reversed: Vec<&Group> = case.groups.iter().rev().collect();
        for (order, groups) in [("listed", &listed), ("reversed", &reversed)] {
            let name = format!("{} ({order})", case.name);
            let (set, tree) = build(groups);
            match (set, &case.cycle) {
                (Err(e), Some(want)) => {
                    let got: BTreeSet<String> = e.cycle.iter().cloned().collect();
                    if got != *want || e.cycle.first() != e.cycle.last() {
                        failures.push(format!("{name}: wrong cycle {:?}", e.cycle));
                    }
                    if order == "listed"
                        && let Some(text) = &case.cycle_text
                        && e.to_string() != *text
                    {
                        failures.push(format!("{name}: cycle reads {e}, expected {text}"));
                    }
                }
                (Err(e), None) => failures.push(format!("{name}: unexpected {e}")),
                (Ok(_), Some(want)) => {
                    failures.push(format!("{name}: the cycle {want:?} was not refused"))
                }
                (Ok(set), None) => {
                    for (i, device) in case.devices.iter().enumerate() {
                        check_device(&set, &tree, groups, device, &format!("{name} device {i}"))
                            .into_iter()
                            .for_each(|f| failures.push(f));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn check_device(
    set: &RuleSet,
    tree: &GroupTree,
    groups: &[&Group],
    device: &Device,
    name: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    let facts = facts(device, tree);
    let index = facts.index();
    let results: BTreeMap<String, bool> = set
        .evaluate(&index, 0)
        .into_iter()
        .map(|(id, m)| (id.to_string(), m))
        .collect();
    let got: BTreeSet<&str> = results
        .iter()
        .filter(|(_, m)| **m)
        .map(|(id, _)| id.as_str())
        .collect();
    let want: BTreeSet<&str> = device.expect.iter().map(String::as_str).collect();
    if got != want {
        failures.push(format!("{name}: matched {got:?}, expected {want:?}"));
    }
    let mut ctx = context();
    ctx.group_ids.extend(groups.iter().map(|g| g.id.clone()));
    for (id, matched) in &results {
        let explanation = set
            .explain(id, &index, 0)
            .unwrap_or_else(|| panic!("{name}: {id} is in the set"));
        if explanation.matched != *matched {
            failures.push(format!(
                "{name}: the explanation of {id} says {}, evaluation {matched}\n{explanation}",
                explanation.matched
            ));
        }
        if let Some(lines) = device.explain.get(id) {
            let rendered: Vec<String> = explanation.to_string().lines().map(String::from).collect();
            if rendered != *lines {
                failures.push(format!(
                    "{name}: explanation of {id}:\n{explanation}expected:\n{}",
                    lines.join("\n")
                ));
            }
        }
        // A preview of the same rule, outside the set, sees the same fresh memberships.
        let json = groups
            .iter()
            .find(|g| g.id == *id)
            .and_then(|g| g.rule.as_ref())
            .unwrap_or_else(|| panic!("{name}: {id} has a rule"));
        let preview = set.attach(
            validate(json, &ctx)
                .unwrap_or_else(|e| panic!("{e:?}"))
                .compile(),
        );
        if set.evaluate_attached(&preview, &index, 0) != *matched {
            failures.push(format!("{name}: a preview of {id}'s rule disagrees"));
        }
    }
    for id in device.explain.keys() {
        if !results.contains_key(id) {
            failures.push(format!("{name}: no group {id} to explain"));
        }
    }
    failures
}

#[test]
fn the_tree_answers_ancestors_and_subtrees_and_survives_a_loop() {
    let mut tree = GroupTree::new([
        ("a", None),
        ("b", Some("a")),
        ("c", Some("b")),
        ("d", Some("a")),
    ]);
    assert_eq!(tree.ancestors("c"), ["b", "a"]);
    assert_eq!(tree.subtree("b"), BTreeSet::from(["b", "c"]));
    assert_eq!(tree.subtree("a"), BTreeSet::from(["a", "b", "c", "d"]));
    assert_eq!(tree.subtree("unknown"), BTreeSet::from(["unknown"]));
    tree.set_parent("b", Some("d"));
    assert_eq!(tree.ancestors("c"), ["b", "d", "a"]);
    assert_eq!(tree.children("a").collect::<Vec<_>>(), ["d"]);
    tree.set_parent("d", None);
    assert_eq!(tree.ancestors("c"), ["b", "d"]);

    // Stored rows can never form a loop, but a walk over one must still end.
    let looped = GroupTree::new([("x", Some("y")), ("y", Some("x"))]);
    assert_eq!(looped.ancestors("x"), ["y"]);
    assert_eq!(looped.subtree("x"), BTreeSet::from(["x", "y"]));
    let rules = vec![("x".to_string(), BTreeSet::new())];
    assert!(
        tree_evaluation_order(&rules, &looped).is_err(),
        "a loop in the tree is reported as a cycle"
    );
}

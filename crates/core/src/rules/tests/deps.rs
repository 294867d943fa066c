//! Group dependencies: references, evaluation order, cycles, and a [`RuleSet`] giving each rule
//! the fresh results of the groups it references.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;

fn graph(edges: &[(&str, &[&str])]) -> Vec<(String, BTreeSet<String>)> {
    edges
        .iter()
        .map(|(id, refs)| (id.to_string(), refs.iter().map(|r| r.to_string()).collect()))
        .collect()
}

#[test]
fn referenced_groups_are_collected_from_every_depth() {
    let rule = validate(
        &json!({"all": [{"group": "pilot"}, {"any": [{"tag": "x"}, {"not": {"group": "servers"}}]}, {"group": "pilot"}]}),
        &context(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let want: BTreeSet<String> = ["pilot", "servers"].map(String::from).into();
    assert_eq!(referenced_groups(&rule), want);
    assert_eq!(rule.compile().referenced_groups(), want);
}

#[test]
fn dependencies_come_first_otherwise_input_order() {
    let order = evaluation_order(&graph(&[
        ("a", &["b", "static-1"]),
        ("x", &[]),
        ("b", &["c"]),
        ("c", &[]),
        ("d", &["a", "c"]),
    ]));
    assert_eq!(
        order,
        Ok(["c", "b", "a", "x", "d"].map(String::from).to_vec())
    );
}

#[test]
fn cycles_are_named() {
    let err = evaluation_order(&graph(&[("a", &["b"]), ("b", &["a"])])).unwrap_err();
    assert_eq!(err.cycle, ["a", "b", "a"]);
    assert_eq!(err.to_string(), "group rules form a cycle: a → b → a");

    let err = evaluation_order(&graph(&[("a", &["a"])])).unwrap_err();
    assert_eq!(err.to_string(), "group rules form a cycle: a → a");

    // The cycle is reported without the path that led into it.
    let err = evaluation_order(&graph(&[
        ("x", &["a"]),
        ("a", &["b"]),
        ("b", &["c"]),
        ("c", &["a"]),
    ]))
    .unwrap_err();
    assert_eq!(err.cycle, ["a", "b", "c", "a"]);
}

#[test]
fn long_chains_do_not_overflow_the_stack() {
    let n = 20_000;
    let groups: Vec<(String, BTreeSet<String>)> = (0..n)
        .map(|i| {
            let refs = if i + 1 < n {
                BTreeSet::from([format!("g{}", i + 1)])
            } else {
                BTreeSet::new()
            };
            (format!("g{i}"), refs)
        })
        .collect();
    let order = evaluation_order(&groups).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(order.first().map(String::as_str), Some("g19999"));
    assert_eq!(order.last().map(String::as_str), Some("g0"));
}

#[test]
fn a_rule_set_uses_fresh_results_of_referenced_groups() {
    let mut ctx = context();
    ctx.group_ids
        .extend(["web-servers".to_string(), "web-pilot".to_string()]);
    let rule = |j: serde_json::Value| {
        validate(&j, &ctx)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .compile()
    };
    // Listed before the group it depends on: the set must reorder them.
    let web_pilot = rule(json!({"all": [{"group": "web-servers"}, {"group": "pilot"}]}));
    let web_servers = rule(json!({"tag": "web"}));
    let set = RuleSet::new(vec![
        ("web-pilot".into(), web_pilot.clone()),
        ("web-servers".into(), web_servers),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.ids().collect::<Vec<_>>(), ["web-servers", "web-pilot"]);

    // The stored memberships do not yet include web-servers (the tag was just added).
    let facts = DeviceFacts {
        tags: BTreeSet::from(["web".to_string()]),
        groups: BTreeSet::from(["pilot".to_string()]),
        ..Default::default()
    };
    let index = facts.index();
    assert_eq!(
        set.evaluate(&index, 0),
        [("web-servers", true), ("web-pilot", true)]
    );
    assert!(
        !web_pilot.evaluate(&index, 0),
        "alone, the rule reads facts.groups"
    );
    let explanation = set
        .explain("web-pilot", &index, 0)
        .unwrap_or_else(|| panic!("web-pilot is in the set"));
    assert_eq!(
        explanation.to_string(),
        "all of 2 conditions: true (2 of 2 true)\n  member of group \"web-servers\": true\n  member of group \"pilot\": true\n"
    );
    assert!(set.explain("unknown", &index, 0).is_none());

    let cyclic = RuleSet::new(vec![
        ("a".into(), rule(json!({"group": "pilot"}))),
        ("pilot".into(), rule(json!({"group": "web-servers"}))),
        (
            "web-servers".into(),
            rule(json!({"not": {"group": "pilot"}})),
        ),
    ]);
    assert_eq!(
        cyclic.map(|_| ()).unwrap_err().to_string(),
        "group rules form a cycle: pilot → web-servers → pilot"
    );
}

#[test]
fn explanation_nodes_carry_json_pointers() {
    let rule = compile(
        &json!({"all": [{"tag": "a"}, {"any": [{"tag": "b"}, {"not": {"group": "pilot"}}]}]}),
    );
    let facts = DeviceFacts::default();
    let e = rule.explain(&facts.index(), 0);
    let mut paths = Vec::new();
    fn walk(e: &Explanation, out: &mut Vec<String>) {
        out.push(e.path.clone());
        e.children.iter().for_each(|c| walk(c, out));
    }
    walk(&e, &mut paths);
    assert_eq!(
        paths,
        [
            "",
            "/all/0",
            "/all/1",
            "/all/1/any/0",
            "/all/1/any/1",
            "/all/1/any/1/not"
        ]
    );
}

#[test]
fn rules_report_what_they_depend_on() {
    let ctx = context();
    let parse = |j: serde_json::Value| validate(&j, &ctx).unwrap_or_else(|e| panic!("{e:?}"));
    let rule = parse(json!({"all": [
        {"field": "custom.owner", "op": "eq", "value": "it"},
        {"not": {"field": "tags", "op": "contains", "value": "x"}},
        {"any": [{"field": "status.last_seen", "op": "older_than", "value": "7d"}]}
    ]}));
    assert_eq!(
        rule.referenced_fields(),
        ["custom.owner", "status.last_seen", "tags"]
            .map(String::from)
            .into()
    );
    assert!(rule.uses_clock());
    assert!(!rule.uses_software());

    let rule = parse(json!({"any": [
        {"field": "status.last_seen", "op": "lt", "value": "2026-01-01"},
        {"not": {"software": {"name": "telnet"}}}
    ]}));
    assert!(
        !rule.uses_clock(),
        "an absolute date does not move with the clock"
    );
    assert!(rule.uses_software());
}

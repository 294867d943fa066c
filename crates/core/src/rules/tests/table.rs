//! The data-driven table: `testdata/cases.json` rows of (device fixture, rule, evaluation time,
//! expected result, and for some rows the expected explanation), plus checks that every
//! operator and every device fixture is exercised, and that the explanation always agrees
//! with evaluation.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    device: String,
    rule: serde_json::Value,
    #[serde(default)]
    now: Option<String>,
    expect: bool,
    /// The explanation as rendered by `Display`, line by line.
    #[serde(default)]
    explain: Option<Vec<String>>,
}

fn cases() -> Vec<Case> {
    serde_json::from_str(include_str!("../testdata/cases.json"))
        .unwrap_or_else(|e| panic!("testdata/cases.json: {e}"))
}

#[test]
fn case_table() {
    let devices = devices();
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let device = devices
            .get(case.device.as_str())
            .unwrap_or_else(|| panic!("case {i}: unknown device {}", case.device));
        let facts = device.facts();
        let index = facts.index();
        let now = ms(case.now.as_deref().unwrap_or(NOW));
        let rule = compile(&case.rule);
        let got = rule.evaluate(&index, now);
        let explanation = rule.explain(&index, now);
        let rendered: Vec<String> = explanation.to_string().lines().map(String::from).collect();
        if got != case.expect {
            failures.push(format!(
                "case {i} ({} on {}): expected {}, got {got}\n{explanation}",
                case.rule, case.device, case.expect
            ));
        }
        if explanation.matched != got {
            failures.push(format!(
                "case {i}: explanation says {} but evaluation {got}\n{explanation}",
                explanation.matched
            ));
        }
        if let Some(want) = &case.explain
            && *want != rendered
        {
            failures.push(format!(
                "case {i} ({} on {}): explanation differs\nexpected:\n{}\ngot:\n{explanation}",
                case.rule,
                case.device,
                want.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every operator and condition kind appears in the table, on a true and a false row.
#[test]
fn case_table_covers_every_operator_both_ways() {
    let mut seen: BTreeSet<(String, bool)> = BTreeSet::new();
    fn walk(v: &serde_json::Value, expect: bool, seen: &mut BTreeSet<(String, bool)>) {
        if let Some(obj) = v.as_object() {
            if let Some(op) = obj.get("op").and_then(|o| o.as_str()) {
                seen.insert((op.to_string(), expect));
            }
            for kind in ["all", "any", "not", "software", "tag", "group"] {
                if obj.contains_key(kind) {
                    seen.insert((kind.to_string(), expect));
                }
            }
            obj.values().for_each(|c| walk(c, expect, seen));
        } else if let Some(list) = v.as_array() {
            list.iter().for_each(|c| walk(c, expect, seen));
        }
    }
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for case in &cases {
        walk(&case.rule, case.expect, &mut seen);
    }
    let mut missing = Vec::new();
    let kinds = ["all", "any", "not", "software", "tag", "group"];
    for name in Op::ALL.iter().map(|o| o.as_str()).chain(kinds) {
        for expect in [true, false] {
            if !seen.contains(&(name.to_string(), expect)) {
                missing.push(format!("{name} → {expect}"));
            }
        }
    }
    assert!(missing.is_empty(), "not covered: {missing:?}");
    let used: BTreeSet<&str> = cases.iter().map(|c| c.device.as_str()).collect();
    assert_eq!(used.len(), devices().len());
}

/// Package names match ignoring case, also beyond ASCII, and several packages of one name
/// (two sources, two architectures) are all considered.
#[test]
fn software_names_match_ignoring_case_beyond_ascii() {
    use capstan_proto::inventory::{InventoryDocument, SoftwarePackage};
    let pkg = |name: &str, version: &str, source: &str| SoftwarePackage {
        name: name.into(),
        version: version.into(),
        source: source.into(),
        ..Default::default()
    };
    let inventory = InventoryDocument {
        software: Some(vec![
            pkg("Übersetzer Pro", "2.1", "windows_uninstall"),
            pkg("curl", "7.88.1-10", "dpkg"),
            pkg("CURL", "8.5.0", "snap"),
        ]),
        ..Default::default()
    };
    let facts = DeviceFacts {
        inventory: Some(&inventory),
        ..Default::default()
    };
    let index = facts.index();
    let check = |rule: serde_json::Value| compile(&rule).evaluate(&index, 0);
    assert!(check(
        serde_json::json!({"software": {"name": "übersetzer pro"}})
    ));
    assert!(check(
        serde_json::json!({"software": {"name": "ÜBERSETZER PRO", "op": "version_gte", "value": "2.1.0.0"}})
    ));
    assert!(!check(
        serde_json::json!({"software": {"name": "übersetzer"}})
    ));
    // dpkg's curl is older than 8, snap's is not: one matching package is enough.
    assert!(check(
        serde_json::json!({"software": {"name": "curl", "op": "version_gte", "value": "8.0"}})
    ));
    assert!(!check(
        serde_json::json!({"software": {"name": "curl", "source": "dpkg", "op": "version_gte", "value": "8.0"}})
    ));
    let explanation = compile(
        &serde_json::json!({"software": {"name": "curl", "op": "version_gte", "value": "9"}}),
    )
    .explain(&index, 0)
    .to_string();
    assert_eq!(
        explanation,
        "software curl: none of (dpkg) 7.88.1-10, (snap) 8.5.0 is ≥ 9: false\n"
    );
}

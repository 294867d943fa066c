//! The rule-field list clients build rules from ([`rule_fields`]) against validation: a name
//! is listed exactly when validation accepts it, and an operator is listed for a name exactly
//! when validation accepts it there, for every operator and a broad set of candidate names.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;

/// Names validation might accept: every catalogue path, its forms without `[]`, its parents,
/// custom fields (defined or not) and near misses.
fn candidates() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in catalogue() {
        out.insert(f.path.to_string());
        out.insert(f.path.trim_end_matches("[]").to_string());
        out.insert(f.path.replace("[]", ""));
        out.insert(format!("{}[]", f.path));
        out.insert(f.path.to_uppercase());
        let mut parent = f.path;
        while let Some((p, _)) = parent.rsplit_once('.') {
            out.insert(p.to_string());
            parent = p;
        }
    }
    for name in context().custom_fields.keys() {
        out.insert(format!("custom.{name}"));
        out.insert(format!("custom.{name}[]"));
    }
    for other in [
        "custom.nope",
        "custom.",
        "custom",
        "tag",
        "group",
        "software",
        "",
    ] {
        out.insert(other.to_string());
    }
    out
}

#[test]
fn listed_names_and_operators_are_exactly_those_validation_accepts() {
    let ctx = context();
    let fields = rule_fields(&ctx.custom_fields);
    let mut checked = 0;
    for name in candidates() {
        let listed = fields.iter().find(|f| f.name == name);
        for op in Op::ALL {
            let rule = json!({"field": name, "op": op.as_str(), "value": "x"});
            let errors = validate(&rule, &ctx).err().unwrap_or_default();
            let field_ok = !errors.iter().any(|e| e.path == "/field");
            let op_ok = field_ok && !errors.iter().any(|e| e.path == "/op");
            assert_eq!(
                field_ok,
                listed.is_some(),
                "{name:?}: validation accepts it: {field_ok}, listed: {}",
                listed.is_some()
            );
            if let Some(f) = listed {
                assert_eq!(
                    op_ok,
                    f.operators.contains(&op),
                    "{name:?} {op}: validation accepts it: {op_ok}, listed: {:?}",
                    f.operators
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 3000, "only {checked} combinations checked");
}

#[test]
fn the_list_covers_the_catalogue_whole_lists_and_custom_fields() {
    let ctx = context();
    let fields = rule_fields(&ctx.custom_fields);
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    for f in catalogue() {
        assert!(names.contains(&f.path), "{} missing", f.path);
    }
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "duplicate names in {names:?}");

    let tags = fields
        .iter()
        .find(|f| f.name == "tags")
        .expect("tags as a whole list");
    assert!(tags.whole_list);
    assert_eq!(tags.operators, [Op::Contains, Op::Exists, Op::NotExists]);
    let kind = fields
        .iter()
        .find(|f| f.name == "virtualization.kind")
        .expect("virtualization.kind");
    assert_eq!(kind.values, ["physical", "virtual_machine", "container"]);

    let tier = fields
        .iter()
        .find(|f| f.name == "custom.tier")
        .expect("custom.tier");
    assert!(tier.custom);
    assert_eq!(
        (tier.ty, tier.values.as_slice()),
        (
            FieldType::String,
            &["gold".to_string(), "silver".into(), "bronze".into()][..]
        )
    );
    let warranty = fields
        .iter()
        .find(|f| f.name == "custom.warranty_end")
        .expect("custom.warranty_end");
    assert_eq!(warranty.ty, FieldType::Timestamp);
    assert!(warranty.operators.contains(&Op::OlderThan));
}

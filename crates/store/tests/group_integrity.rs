//! Group references and cycles are decided inside the store's write transaction: deleting a
//! group a rule references, saving a rule (its references must exist and it must not close a
//! cycle) and re-parenting a group (the tree counts: a group's members include its
//! descendants', so a rule cannot depend on a group above its own). Each case runs on SQLite
//! and on a real PostgreSQL, and the concurrent ones race two requests many times: exactly one
//! may win, and what is stored never breaks the rules, whatever the interleaving.

use std::sync::Arc;

use capstan_store::*;
use serde_json::json;

mod common;
use common::on_both;

on_both!(
    references_and_cycles_are_refused_with_names,
    deleting_a_group_races_with_a_rule_that_references_it,
    two_rule_saves_never_close_a_cycle_together,
    a_re_parent_and_a_rule_save_never_close_a_cycle_together,
    deleting_a_custom_field_races_with_a_rule_that_reads_it,
);

/// Races per concurrent case: enough to hit both orders on either backend.
const ROUNDS: usize = 12;

fn audit(action: &str) -> AuditEntry {
    AuditEntry {
        at: 1,
        actor: "user:test".into(),
        action: action.into(),
        target: None,
        details: json!({}),
    }
}

fn group(name: &str, parent: Option<&str>) -> NewGroup {
    NewGroup {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.into(),
        description: String::new(),
        parent_id: parent.map(str::to_string),
        now: 5,
    }
}

async fn static_group(s: &Store, name: &str, parent: Option<&str>) -> String {
    let g = group(name, parent);
    s.create_group(&g, &audit("group.create")).await.unwrap();
    g.id
}

async fn dynamic_group(s: &Store, name: &str, parent: Option<&str>, rule: &str) -> String {
    let g = group(name, parent);
    s.create_dynamic_group(&g, rule, &audit("group.create"))
        .await
        .unwrap();
    g.id
}

fn refers(id: &str) -> String {
    json!({"all": [{"tag": "x"}, {"not": {"group": id}}]}).to_string()
}

fn reparent(parent: Option<&str>) -> GroupUpdate {
    GroupUpdate {
        parent_id: Some(parent.map(str::to_string)),
        ..Default::default()
    }
}

fn conflict_message<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn rule_of(s: &Store, id: &str) -> Option<String> {
    s.group(id).await.unwrap().and_then(|g| g.rule)
}

async fn references_and_cycles_are_refused_with_names(s: &Store) {
    let top = static_group(s, "Top", None).await;
    let mid = static_group(s, "Mid", Some(&top)).await;
    let leaf = dynamic_group(s, "Leaf", Some(&mid), r#"{"tag":"x"}"#).await;

    // A rule may not reference a group above its own: Top's members include Leaf's.
    let m = conflict_message(s.set_group_rule(&leaf, &refers(&top), 6, &audit("x")).await);
    assert_eq!(m, "group rules would form a cycle: Leaf → Top → Mid → Leaf");
    assert_eq!(rule_of(s, &leaf).await.as_deref(), Some(r#"{"tag":"x"}"#));
    let m = conflict_message(
        s.create_dynamic_group(&group("New", Some(&mid)), &refers(&mid), &audit("x"))
            .await,
    );
    assert_eq!(m, "group rules would form a cycle: New → Mid → New");
    assert!(s.group_by_id_or_name("New").await.unwrap().is_none());

    // Below its own group is fine: a parent's rule may name its child.
    let reader = dynamic_group(s, "Reader", None, &refers(&top)).await;
    let parent_rule = dynamic_group(s, "Parent", None, r#"{"tag":"p"}"#).await;
    s.update_group(&leaf, &reparent(Some(&parent_rule)), 7, &audit("x"))
        .await
        .unwrap();
    s.set_group_rule(&parent_rule, &refers(&leaf), 8, &audit("x"))
        .await
        .unwrap();

    // Moving Reader under Top would make Top contain a group whose rule reads Top.
    let m = conflict_message(
        s.update_group(&reader, &reparent(Some(&mid)), 9, &audit("x"))
            .await,
    );
    assert_eq!(
        m,
        "group rules would form a cycle: Reader → Top → Mid → Reader"
    );
    assert_eq!(s.group(&reader).await.unwrap().unwrap().parent_id, None);
    // A cycle through rules only, and through a rule and a move of a static group.
    let a = dynamic_group(s, "A", None, &refers(&reader)).await;
    let m = conflict_message(
        s.set_group_rule(&reader, &refers(&a), 10, &audit("x"))
            .await,
    );
    assert_eq!(m, "group rules would form a cycle: Reader → A → Reader");
    let m = conflict_message(
        s.update_group(&a, &reparent(Some(&mid)), 11, &audit("x"))
            .await,
    );
    assert_eq!(
        m,
        "group rules would form a cycle: A → Reader → Top → Mid → A"
    );

    // References must exist; a referenced group stays until the rules change.
    let r = s
        .set_group_rule(&a, &refers("no-such-group"), 12, &audit("x"))
        .await;
    assert!(
        matches!(&r, Err(StoreError::Invalid(m)) if m.contains("no-such-group")),
        "{r:?}"
    );
    let m = conflict_message(s.delete_group(&reader, 13, &audit("x")).await);
    assert_eq!(
        m,
        "group \"Reader\" is used by the rules of group(s): A; change those rules first"
    );
    s.set_group_rule(&a, r#"{"tag":"a"}"#, 14, &audit("x"))
        .await
        .unwrap();
    s.delete_group(&reader, 15, &audit("x")).await.unwrap();
    // Refused changes left no audit rows behind.
    let rows = s
        .audit_entries(&AuditFilter {
            action: Some("x".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 4, "only the changes that were made are audited");
}

/// No stored rule references a group that does not exist.
async fn assert_references_exist(s: &Store) {
    let groups = s.all_groups().await.unwrap();
    for g in &groups {
        let Some(rule) = &g.rule else { continue };
        let v: serde_json::Value = serde_json::from_str(rule).unwrap();
        let mut refs = Vec::new();
        collect_refs(&v, &mut refs);
        for r in refs {
            assert!(
                groups.iter().any(|o| o.id == r),
                "the rule of {} references the deleted group {r}",
                g.name
            );
        }
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(g) = m.get("group").and_then(|g| g.as_str()) {
                out.push(g.to_string());
            }
            m.values().for_each(|c| collect_refs(c, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

async fn deleting_a_group_races_with_a_rule_that_references_it(s: &Store) {
    let s = Arc::new(s.clone());
    let mut outcomes = (0, 0);
    for round in 0..ROUNDS {
        let target = static_group(&s, &format!("Target {round}"), None).await;
        let user = dynamic_group(&s, &format!("User {round}"), None, r#"{"tag":"u"}"#).await;
        let (deleted, saved) = tokio::join!(
            {
                let s = s.clone();
                let target = target.clone();
                tokio::spawn(
                    async move { s.delete_group(&target, 20, &audit("group.delete")).await },
                )
            },
            {
                let s = s.clone();
                let (user, target) = (user.clone(), target.clone());
                tokio::spawn(async move {
                    s.set_group_rule(&user, &refers(&target), 20, &audit("group.rule_change"))
                        .await
                })
            }
        );
        match (deleted.unwrap(), saved.unwrap()) {
            // The delete went first: the rule names a group that no longer exists.
            (Ok(()), Err(StoreError::Invalid(_))) => outcomes.0 += 1,
            // The rule went first: the group is in use.
            (Err(StoreError::Conflict(_)), Ok(())) => outcomes.1 += 1,
            other => panic!("round {round}: both or neither succeeded: {other:?}"),
        }
        assert_references_exist(&s).await;
        // Clean up so the next round starts alike.
        s.set_group_rule(&user, r#"{"tag":"u"}"#, 21, &audit("x"))
            .await
            .unwrap();
    }
    assert_eq!(outcomes.0 + outcomes.1, ROUNDS);
}

async fn two_rule_saves_never_close_a_cycle_together(s: &Store) {
    let s = Arc::new(s.clone());
    for round in 0..ROUNDS {
        let a = dynamic_group(&s, &format!("A{round}"), None, r#"{"tag":"a"}"#).await;
        let b = dynamic_group(&s, &format!("B{round}"), None, r#"{"tag":"b"}"#).await;
        let save = |from: &str, to: &str| {
            let s = s.clone();
            let (from, rule) = (from.to_string(), refers(to));
            tokio::spawn(async move { s.set_group_rule(&from, &rule, 30, &audit("x")).await })
        };
        let (x, y) = tokio::join!(save(&a, &b), save(&b, &a));
        match (x.unwrap(), y.unwrap()) {
            (Ok(()), Err(StoreError::Conflict(m))) | (Err(StoreError::Conflict(m)), Ok(())) => {
                assert!(m.contains("cycle"), "{m}")
            }
            other => panic!("round {round}: expected exactly one refusal, got {other:?}"),
        }
        let stored = (rule_of(&s, &a).await, rule_of(&s, &b).await);
        let a_reads_b = stored.0.as_deref() == Some(refers(&b).as_str());
        let b_reads_a = stored.1.as_deref() == Some(refers(&a).as_str());
        assert!(a_reads_b != b_reads_a, "round {round}: {stored:?}");
    }
}

async fn a_re_parent_and_a_rule_save_never_close_a_cycle_together(s: &Store) {
    let s = Arc::new(s.clone());
    for round in 0..ROUNDS {
        let parent = static_group(&s, &format!("P{round}"), None).await;
        let child = dynamic_group(&s, &format!("C{round}"), None, r#"{"tag":"c"}"#).await;
        let (moved, saved) = tokio::join!(
            {
                let s = s.clone();
                let (child, parent) = (child.clone(), parent.clone());
                tokio::spawn(async move {
                    s.update_group(&child, &reparent(Some(&parent)), 40, &audit("x"))
                        .await
                })
            },
            {
                let s = s.clone();
                let (child, parent) = (child.clone(), parent.clone());
                tokio::spawn(async move {
                    s.set_group_rule(&child, &refers(&parent), 40, &audit("x"))
                        .await
                })
            }
        );
        match (moved.unwrap(), saved.unwrap()) {
            (Ok(()), Err(StoreError::Conflict(_))) | (Err(StoreError::Conflict(_)), Ok(())) => {}
            other => panic!("round {round}: expected exactly one refusal, got {other:?}"),
        }
        let under = s.group(&child).await.unwrap().unwrap().parent_id == Some(parent.clone());
        let reads = rule_of(&s, &child).await == Some(refers(&parent));
        assert!(
            under != reads,
            "round {round}: moved {under}, rule saved {reads}"
        );
    }
}

/// A rule save that starts reading a custom field and the deletion of that field, at the same
/// time: exactly one wins, and no stored rule is left reading a field that does not exist.
async fn deleting_a_custom_field_races_with_a_rule_that_reads_it(s: &Store) {
    let s = Arc::new(s.clone());
    let mut outcomes = (0, 0);
    for round in 0..ROUNDS {
        let name = format!("owner_{round}");
        s.create_field(
            &capstan_store::FieldRow {
                name: name.clone(),
                field_type: "string".into(),
                enum_values: "[]".into(),
                default_value: None,
                required: false,
                description: String::new(),
                created_at: 1,
                updated_at: 1,
            },
            &audit("custom_field.create"),
        )
        .await
        .unwrap();
        let user = dynamic_group(&s, &format!("Owners {round}"), None, r#"{"tag":"u"}"#).await;
        let rule = format!(r#"{{"field":"custom.{name}","op":"eq","value":"it"}}"#);
        let (deleted, saved) = tokio::join!(
            {
                let (s, name) = (s.clone(), name.clone());
                tokio::spawn(
                    async move { s.delete_field(&name, &audit("custom_field.delete")).await },
                )
            },
            {
                let (s, user) = (s.clone(), user.clone());
                tokio::spawn(async move {
                    s.set_group_rule(&user, &rule, 20, &audit("group.rule_change"))
                        .await
                })
            }
        );
        match (deleted.unwrap(), saved.unwrap()) {
            (Ok(()), Err(StoreError::Invalid(m))) => {
                assert!(m.contains(&name), "{m}");
                outcomes.0 += 1;
            }
            (Err(StoreError::Conflict(m)), Ok(())) => {
                assert!(m.contains(&format!("Owners {round}")), "{m}");
                outcomes.1 += 1;
                // Clean up: the rule lets go, then the field can go.
                s.set_group_rule(&user, r#"{"tag":"u"}"#, 21, &audit("x"))
                    .await
                    .unwrap();
                s.delete_field(&name, &audit("x")).await.unwrap();
            }
            other => panic!("round {round}: both or neither succeeded: {other:?}"),
        }
        assert_eq!(
            rule_of(&s, &user).await.as_deref(),
            Some(r#"{"tag":"u"}"#),
            "round {round}: the stored rule reads no deleted field"
        );
    }
    assert_eq!(outcomes.0 + outcomes.1, ROUNDS);
}

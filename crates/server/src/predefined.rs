//! The predefined dynamic groups (All devices, Offline > 7 days, …), created once when the
//! server first starts. Each is an ordinary dynamic group afterwards: operators may edit or
//! delete it. A settings row per group (`predefined_group.<key>`) records that it was offered,
//! so a deleted or renamed group is never created again; a group of the same name that an
//! operator made first is left alone.

use capstan_core::rules::{ValidationContext, validate};
use capstan_store::{AuditEntry, NewGroup, Store, StoreError};
use serde_json::{Value, json};

use crate::auth::secrets;
use crate::state::now_ms;

/// `(settings key, group name, description, rule)` of every predefined group.
pub fn definitions() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![
        (
            "all_devices",
            "All devices",
            "Every enrolled device.",
            json!({"all": []}),
        ),
        (
            "offline_7d",
            "Offline > 7 days",
            "Devices whose last check-in (or, if they never checked in, enrollment) is more than 7 days ago.",
            json!({"any": [
                {"field": "status.last_seen", "op": "older_than", "value": "7d"},
                {"all": [
                    {"field": "status.last_seen", "op": "not_exists"},
                    {"field": "status.enrolled_at", "op": "older_than", "value": "7d"}
                ]}
            ]}),
        ),
        (
            "debian_ubuntu",
            "Debian/Ubuntu",
            "Debian, Ubuntu and distributions derived from Debian.",
            json!({"any": [
                {"field": "os.id", "op": "in", "value": ["debian", "ubuntu"]},
                {"field": "os.id_like", "op": "contains", "value": "debian"}
            ]}),
        ),
        (
            "rhel_family",
            "RHEL family",
            "Red Hat Enterprise Linux and its rebuilds (CentOS, Rocky, AlmaLinux, Oracle Linux).",
            json!({"any": [
                {"field": "os.id", "op": "in", "value": ["rhel", "centos", "rocky", "almalinux", "ol"]},
                {"field": "os.id_like", "op": "contains", "value": "rhel"}
            ]}),
        ),
        (
            "windows_11",
            "Windows 11",
            "Windows 11 clients (build 22000 or later, not Windows Server).",
            json!({"all": [
                {"field": "os.family", "op": "eq", "value": "windows"},
                {"field": "os.version_id", "op": "version_gte", "value": "10.0.22000", "scheme": "windows"},
                {"not": {"field": "os.name", "op": "contains", "value": "Server"}}
            ]}),
        ),
        (
            "virtual_machines",
            "Virtual machines",
            "Devices that report running in a virtual machine.",
            json!({"field": "virtualization.kind", "op": "eq", "value": "virtual_machine"}),
        ),
        (
            "low_disk",
            "Low disk",
            "Some mounted file system has less than 10 % free space.",
            json!({"field": "performance.mounts[].free_percent", "op": "lt", "value": 10}),
        ),
        (
            "pending_reboot",
            "Pending reboot",
            "The operating system waits for a reboot.",
            json!({"field": "security.pending_reboot", "op": "eq", "value": true}),
        ),
    ]
}

/// Create the predefined groups not offered before. Returns the names created.
pub async fn ensure(store: &Store) -> anyhow::Result<Vec<String>> {
    let mut created = Vec::new();
    for (key, name, description, rule) in definitions() {
        let flag = format!("predefined_group.{key}");
        if store.setting(&flag).await?.is_some() {
            continue;
        }
        let rule = match validate(&rule, &ValidationContext::default()) {
            Ok(r) => r,
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                tracing::error!(group = name, errors = %text.join("; "), "predefined rule is invalid; skipped");
                continue;
            }
        };
        let outcome = if store.group_by_id_or_name(name).await?.is_some() {
            "exists".to_string()
        } else {
            let g = NewGroup {
                id: secrets::new_id(),
                name: name.to_string(),
                description: description.to_string(),
                parent_id: None,
                now: now_ms(),
            };
            let audit = AuditEntry {
                at: g.now,
                actor: "system".into(),
                action: "group.create".into(),
                target: Some(g.id.clone()),
                details: json!({"name": name, "kind": "dynamic", "predefined": key, "rule": rule.to_json()}),
            };
            match store
                .create_dynamic_group(&g, &rule.to_json().to_string(), &audit)
                .await
            {
                Ok(()) => {
                    created.push(name.to_string());
                    g.id
                }
                // Another replica starting at the same moment made it.
                Err(StoreError::Conflict(_)) => "exists".to_string(),
                Err(e) => return Err(e.into()),
            }
        };
        store.setting_get_or_init(&flag, &outcome).await?;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_predefined_rule_validates_and_names_are_unique() {
        let defs = definitions();
        let names: std::collections::BTreeSet<&str> = defs.iter().map(|d| d.1).collect();
        assert_eq!(names.len(), 8);
        for (_, name, _, rule) in defs {
            if let Err(e) = validate(&rule, &ValidationContext::default()) {
                panic!("{name}: {e:?}");
            }
        }
    }
}

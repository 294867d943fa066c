//! Storage for dynamic groups: their rules, the memberships their evaluation computes
//! (`group_members.source = 'dynamic'`) and the sequence-numbered `events` log.
//!
//! Evaluation happens in the server; this module only reads the facts it needs and applies a
//! computed difference. [`Store::apply_dynamic_membership`] writes joins and leaves with
//! conditional statements (`ON CONFLICT DO NOTHING`, `DELETE … RETURNING`), and only rows that
//! actually changed get their timeline entry and event, all in one transaction: two replicas
//! evaluating the same device at once converge on the same rows and never record a change
//! twice.

use crate::BeginWrite;
use crate::devices::DEVICE_COLS;
use crate::{AuditEntry, GroupRow, Result, Store, StoreError, with_pool};

/// One row of the domain event log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    /// Monotonic; readers remember the last id they processed.
    pub id: i64,
    pub at: i64,
    /// `group.member_added`, `group.member_removed`, …
    pub kind: String,
    /// The device.
    pub subject: String,
    /// The group.
    pub object: Option<String>,
    /// JSON text.
    pub data: String,
}

/// The stored facts of one device, as [`Store::device_facts_batch`] reads them.
#[derive(Debug, Clone)]
pub struct DeviceFactRows {
    pub device: crate::DeviceRow,
    /// The inventory document (JSON text).
    pub inventory: Option<String>,
    /// The device's own custom field values: (name, canonical JSON text).
    pub field_values: Vec<(String, String)>,
    /// Static groups and all their ancestors.
    pub static_groups: Vec<String>,
    /// Current dynamic memberships.
    pub dynamic_groups: Vec<String>,
}

type Pair = (String, String);
/// Devices, inventory documents, field values, static closures, dynamic memberships.
type BatchRows = (
    Vec<crate::DeviceRow>,
    Vec<Pair>,
    Vec<(String, String, String)>,
    Vec<Pair>,
    Vec<Pair>,
);

/// What [`Store::apply_dynamic_membership`] actually changed (group ids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChangeOutcome {
    pub joined: Vec<String>,
    pub left: Vec<String>,
}

/// The timeline entry and event of one dynamic join or leave, inside the caller's
/// transaction (a macro so the same statements expand for both backends).
macro_rules! note {
    ($tx:ident, $device:expr, $group:expr, $name:expr, $joined:expr, $now:expr) => {{
        let (verb, event, summary) = if $joined {
            ("group_joined", "group.member_added", format!("joined group {} (dynamic)", $name))
        } else {
            ("group_left", "group.member_removed", format!("left group {} (dynamic)", $name))
        };
        sqlx::query(
            "INSERT INTO device_timeline (device_id, at, kind, field, summary)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($device)
        .bind($now)
        .bind(verb)
        .bind($group)
        .bind(summary)
        .execute(&mut *$tx)
        .await?;
        let data = serde_json::json!({"group_name": $name, "source": "dynamic"}).to_string();
        sqlx::query(
            "INSERT INTO events (at, kind, subject, object, data) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($now)
        .bind(event)
        .bind($device)
        .bind($group)
        .bind(data)
        .execute(&mut *$tx)
        .await?;
    }};
}

const GROUP_COLS: &str = "id, name, description, parent_id, kind, rule, created_at, updated_at";

impl Store {
    /// Every group, by id (for building validation contexts and the group tree).
    pub async fn all_groups(&self) -> Result<Vec<GroupRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLS} FROM device_groups ORDER BY id"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await?))
    }

    /// Replace a dynamic group's rule (JSON text). `NotFound` for an unknown group,
    /// `Conflict` for a static one or when the rule would close a cycle, `Invalid` when it
    /// references a group that does not exist — checked in the transaction, under the group
    /// tree lock, so a concurrent delete or rule change cannot slip between check and write.
    pub async fn set_group_rule(
        &self,
        id: &str,
        rule: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            crate::groups::lock_tree(&mut *tx, now).await?;
            let found: Option<(String, String)> =
                sqlx::query_as("SELECT name, kind FROM device_groups WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((name, kind)) = found else {
                return Err(StoreError::NotFound);
            };
            if kind != "dynamic" {
                return Err(StoreError::Conflict(format!(
                    "group {name:?} is {kind}: only dynamic groups have a rule"
                )));
            }
            crate::groups::check_rule_fields!(tx, rule);
            let groups: Vec<GroupRow> = sqlx::query_as(crate::groups::ALL_GROUPS_SQL)
                .fetch_all(&mut *tx)
                .await?;
            crate::groups::check_graph(&groups, &crate::groups::GraphChange::SetRule { id, rule })?;
            sqlx::query("UPDATE device_groups SET rule = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(rule)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Ids of the static groups a device is in, plus all their ancestors (membership of a
    /// child counts for its parent).
    pub async fn static_group_closure(&self, device_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "WITH RECURSIVE anc(id) AS (
                     SELECT group_id FROM group_members WHERE device_id = $1 AND source = 'static'
                     UNION SELECT g.parent_id FROM device_groups g JOIN anc ON g.id = anc.id
                           WHERE g.parent_id IS NOT NULL)
                 SELECT id FROM anc ORDER BY id",
            )
            .bind(device_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Ids of the dynamic groups a device is currently recorded in.
    pub async fn dynamic_memberships(&self, device_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT group_id FROM group_members WHERE device_id = $1 AND source = 'dynamic'
                 ORDER BY group_id",
            )
            .bind(device_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Device ids in id order after `after` (exclusive; `""` for the first page), at most
    /// `limit`, for walking every device in batches.
    pub async fn device_ids_after(&self, after: &str, limit: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT id FROM devices WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Apply a computed membership difference for one device: join `joins`, leave `leaves`
    /// (pairs of group id and name). Only rows that really change are recorded, each with a
    /// `group_joined` / `group_left` timeline entry and a `group.member_added` /
    /// `group.member_removed` event, in one transaction. Groups that are no longer dynamic
    /// (or gone) and devices that are gone are skipped.
    pub async fn apply_dynamic_membership(
        &self,
        device_id: &str,
        joins: &[(String, String)],
        leaves: &[(String, String)],
        now: i64,
    ) -> Result<MembershipChangeOutcome> {
        if joins.is_empty() && leaves.is_empty() {
            return Ok(MembershipChangeOutcome::default());
        }
        let out = with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut out = MembershipChangeOutcome::default();
            for (gid, name) in joins {
                let added: Option<(String,)> = sqlx::query_as(
                    "INSERT INTO group_members (group_id, device_id, source, added_at)
                     SELECT g.id, d.id, 'dynamic', $3 FROM device_groups g, devices d
                     WHERE g.id = $1 AND g.kind = 'dynamic' AND d.id = $2
                     ON CONFLICT (group_id, device_id) DO NOTHING
                     RETURNING group_id",
                )
                .bind(gid)
                .bind(device_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if added.is_some() {
                    note!(tx, device_id, gid, name, true, now);
                    out.joined.push(gid.clone());
                }
            }
            for (gid, name) in leaves {
                let removed: Option<(String,)> = sqlx::query_as(
                    "DELETE FROM group_members
                     WHERE group_id = $1 AND device_id = $2 AND source = 'dynamic'
                     RETURNING group_id",
                )
                .bind(gid)
                .bind(device_id)
                .fetch_optional(&mut *tx)
                .await?;
                if removed.is_some() {
                    note!(tx, device_id, gid, name, false, now);
                    out.left.push(gid.clone());
                }
            }
            tx.commit().await?;
            out
        });
        Ok(out)
    }

    /// Everything the evaluation reads for a page of devices (at most 500 ids), in five
    /// queries instead of five per device, for full re-evaluations.
    pub async fn device_facts_batch(&self, ids: &[String]) -> Result<Vec<DeviceFactRows>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = crate::groups::placeholders(1, ids.len());
        let devices_sql = sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLS} FROM devices d
             LEFT JOIN device_inventory i ON i.device_id = d.id WHERE d.id IN ({list})"
        ));
        let docs_sql = sqlx::AssertSqlSafe(format!(
            "SELECT device_id, document FROM device_inventory WHERE device_id IN ({list})"
        ));
        let values_sql = sqlx::AssertSqlSafe(format!(
            "SELECT device_id, field_name, value FROM device_field_values WHERE device_id IN ({list})"
        ));
        let statics_sql = sqlx::AssertSqlSafe(format!(
            "WITH RECURSIVE anc(device_id, id) AS (
                 SELECT device_id, group_id FROM group_members
                 WHERE source = 'static' AND device_id IN ({list})
                 UNION SELECT anc.device_id, g.parent_id FROM device_groups g
                       JOIN anc ON g.id = anc.id WHERE g.parent_id IS NOT NULL)
             SELECT device_id, id FROM anc"
        ));
        let dynamic_sql = sqlx::AssertSqlSafe(format!(
            "SELECT device_id, group_id FROM group_members
             WHERE source = 'dynamic' AND device_id IN ({list})"
        ));
        let (devices, docs, values, statics, dynamics): BatchRows = with_pool!(self, |pool| {
            macro_rules! bound {
                ($sql:expr) => {{
                    let mut q = sqlx::query_as($sql);
                    for id in ids {
                        q = q.bind(id);
                    }
                    q.fetch_all(pool).await?
                }};
            }
            (
                bound!(devices_sql),
                bound!(docs_sql),
                bound!(values_sql),
                bound!(statics_sql),
                bound!(dynamic_sql),
            )
        });
        let mut by_id: std::collections::BTreeMap<String, DeviceFactRows> = devices
            .into_iter()
            .map(|d| {
                (
                    d.id.clone(),
                    DeviceFactRows {
                        device: d,
                        inventory: None,
                        field_values: Vec::new(),
                        static_groups: Vec::new(),
                        dynamic_groups: Vec::new(),
                    },
                )
            })
            .collect();
        for (id, doc) in docs {
            if let Some(r) = by_id.get_mut(&id) {
                r.inventory = Some(doc);
            }
        }
        for (id, name, value) in values {
            if let Some(r) = by_id.get_mut(&id) {
                r.field_values.push((name, value));
            }
        }
        for (id, group) in statics {
            if let Some(r) = by_id.get_mut(&id) {
                r.static_groups.push(group);
            }
        }
        for (id, group) in dynamics {
            if let Some(r) = by_id.get_mut(&id) {
                r.dynamic_groups.push(group);
            }
        }
        Ok(by_id.into_values().collect())
    }

    /// Events with an id greater than `after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at, kind, subject, object, data FROM events
                 WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

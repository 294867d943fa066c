//! Device groups and their static membership. Groups form a tree (`parent_id`); targeting a
//! group means its direct members plus the members of every descendant, which the device
//! filter resolves with a recursive CTE. Tree changes (create, re-parent, delete) first write
//! one lock row in `settings`, so concurrent changes on several replicas are serialised by the
//! database and can never build a cycle between them. Every membership change writes a
//! `group_joined` / `group_left` timeline row per device, a `group.member_added` /
//! `group.member_removed` event per device and one audit row, in the same transaction.
//! Dynamic groups (`kind`, `rule`, members with `source = 'dynamic'`) have their members
//! computed by the server's evaluation (see `dynamic.rs`); operators cannot add to or remove
//! from them here.
//!
//! **Rule references are checked inside the write transaction**, after the tree lock, against
//! the groups as stored at that moment ([`check_graph`]): a group another rule references is
//! not deleted, a rule names only existing groups, and no rule change, new group or re-parent
//! closes a cycle. Membership of a group includes its descendants' members, so the dependency
//! graph has an edge from each dynamic group to the groups its rule references and from each
//! group to its children. The server checks the same first for its error messages; this check
//! is the one concurrent requests and replicas cannot race past.

use std::collections::{BTreeMap, BTreeSet};

use crate::BeginWrite;
use crate::devices::{FILTER_WHERE, bind_filter};
use crate::{AuditEntry, DeviceFilter, Result, Store, StoreError, conflict_or, with_pool};

/// At most this many ids in one `IN (…)` list, well below both backends' parameter limits.
const CHUNK: usize = 500;

/// A group id with a number of devices.
type Count = (String, i64);

/// The settings row whose update serialises changes to the group tree.
const TREE_LOCK: &str = "group_tree_lock";

/// Take the tree lock inside a write transaction: updating one well-known row makes concurrent
/// tree changes (on any replica) wait for each other, so no two can build a cycle together.
pub(crate) async fn lock_tree<'c, E, DB>(ex: E, now: i64) -> Result<()>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    String: sqlx::Encode<'c, DB> + sqlx::Type<DB>,
    &'c str: sqlx::Encode<'c, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>(
        "INSERT INTO settings (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(TREE_LOCK)
    .bind(now.to_string())
    .execute(ex)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub parent_id: Option<String>,
    /// `static` or `dynamic`.
    pub kind: String,
    /// A dynamic group's rule (JSON text).
    pub rule: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A group with its member counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupWithCounts {
    pub group: GroupRow,
    /// Members of the group itself.
    pub direct_members: i64,
    /// Distinct members of the group and all its descendants.
    pub members: i64,
}

#[derive(Debug, Clone)]
pub struct NewGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub parent_id: Option<String>,
    pub now: i64,
}

/// Changes to a group; `None` leaves a field as it is, `parent_id: Some(None)` makes the group
/// top-level.
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub parent_id: Option<Option<String>>,
}

/// A device's membership of one group.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MembershipRow {
    pub id: String,
    pub name: String,
    pub source: String,
}

/// Devices chosen for a bulk change: explicit ids and/or a device-list filter (union).
#[derive(Debug, Clone, Default)]
pub struct DeviceSelection {
    pub ids: Option<Vec<String>>,
    pub filter: Option<DeviceFilter>,
}

const GROUP_COLS: &str = "id, name, description, parent_id, kind, rule, created_at, updated_at";

/// Every group, for [`check_graph`] inside a write transaction.
pub(crate) const ALL_GROUPS_SQL: &str = "SELECT id, name, description, parent_id, kind, rule, created_at, updated_at FROM device_groups";

/// `$1, $2, …` starting at `first`, for an `IN (…)` list of `n` ids.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A change to the group graph, checked by [`check_graph`] before it is written.
pub(crate) enum GraphChange<'a> {
    /// A new dynamic group.
    Insert {
        id: &'a str,
        name: &'a str,
        parent: Option<&'a str>,
        rule: &'a str,
    },
    /// A group moves under `parent` (`None`: top level).
    Reparent {
        id: &'a str,
        parent: Option<&'a str>,
    },
    /// A dynamic group's rule is replaced.
    SetRule { id: &'a str, rule: &'a str },
    /// A group is deleted.
    Delete { id: &'a str },
}

/// Call `visit` with every condition object of a stored rule (under `all`, `any` and `not`).
/// The store does not validate rules (the server did when it saved them); this walk only needs
/// their shape, and text that is not a rule has no conditions.
fn each_condition(rule: &str, visit: &mut dyn FnMut(&serde_json::Map<String, serde_json::Value>)) {
    fn walk(
        v: &serde_json::Value,
        visit: &mut dyn FnMut(&serde_json::Map<String, serde_json::Value>),
    ) {
        let Some(obj) = v.as_object() else { return };
        visit(obj);
        for key in ["all", "any"] {
            if let Some(items) = obj.get(key).and_then(|c| c.as_array()) {
                items.iter().for_each(|c| walk(c, visit));
            }
        }
        if let Some(inner) = obj.get("not") {
            walk(inner, visit);
        }
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(rule) {
        walk(&v, visit);
    }
}

/// The ids of the groups a stored rule references (every `{"group": id}`).
pub(crate) fn rule_references(rule: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    each_condition(rule, &mut |c| {
        if let Some(g) = c.get("group").and_then(|g| g.as_str()) {
            out.insert(g.to_string());
        }
    });
    out
}

/// The custom fields a stored rule reads (`{"field": "custom.<name>", …}`), by name.
pub(crate) fn rule_custom_fields(rule: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    each_condition(rule, &mut |c| {
        if let Some(name) = c
            .get("field")
            .and_then(|f| f.as_str())
            .and_then(|f| f.strip_prefix("custom."))
        {
            out.insert(name.to_string());
        }
    });
    out
}

/// Refuse a rule that reads a custom field that does not exist (any more): checked inside the
/// write transaction, under the tree lock that deleting a field also takes, so a rule save and
/// a field deletion cannot both succeed.
macro_rules! check_rule_fields {
    ($tx:ident, $rule:expr) => {{
        let wanted = crate::groups::rule_custom_fields($rule);
        if !wanted.is_empty() {
            let names: Vec<(String,)> = sqlx::query_as("SELECT name FROM custom_fields")
                .fetch_all(&mut *$tx)
                .await?;
            let have: std::collections::BTreeSet<String> = names.into_iter().map(|n| n.0).collect();
            if let Some(missing) = wanted.iter().find(|w| !have.contains(*w)) {
                return Err(crate::StoreError::Invalid(format!(
                    "the rule reads custom field {missing:?}, which does not exist"
                )));
            }
        }
    }};
}
pub(crate) use check_rule_fields;

/// Check `change` against `groups` (every group, read inside the write transaction after
/// the tree lock). `Conflict` when a rule still references a group being deleted or when the
/// change closes a cycle through the changed group (older cycles elsewhere, which the
/// evaluation skips, do not block unrelated changes); `Invalid` when a new rule references a
/// group that does not exist.
pub(crate) fn check_graph(groups: &[GroupRow], change: &GraphChange<'_>) -> Result<()> {
    struct Node {
        name: String,
        parent: Option<String>,
        refs: BTreeSet<String>,
    }
    let mut nodes: BTreeMap<String, Node> = groups
        .iter()
        .map(|g| {
            let refs = match (g.kind.as_str(), &g.rule) {
                ("dynamic", Some(r)) => rule_references(r),
                _ => BTreeSet::new(),
            };
            let node = Node {
                name: g.name.clone(),
                parent: g.parent_id.clone(),
                refs,
            };
            (g.id.clone(), node)
        })
        .collect();
    let name_of = |nodes: &BTreeMap<String, Node>, id: &str| {
        nodes
            .get(id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let (changed, new_refs) = match change {
        GraphChange::Delete { id } => {
            let users: Vec<String> = nodes
                .iter()
                .filter(|(g, n)| g.as_str() != *id && n.refs.contains(*id))
                .map(|(_, n)| n.name.clone())
                .collect();
            if users.is_empty() {
                return Ok(());
            }
            return Err(StoreError::Conflict(format!(
                "group {:?} is used by the rules of group(s): {}; change those rules first",
                name_of(&nodes, id),
                users.join(", ")
            )));
        }
        GraphChange::Insert {
            id,
            name,
            parent,
            rule,
        } => {
            let refs = rule_references(rule);
            nodes.insert(
                id.to_string(),
                Node {
                    name: name.to_string(),
                    parent: parent.map(str::to_string),
                    refs: refs.clone(),
                },
            );
            (*id, Some(refs))
        }
        GraphChange::Reparent { id, parent } => {
            if let Some(n) = nodes.get_mut(*id) {
                n.parent = parent.map(str::to_string);
            }
            (*id, None)
        }
        GraphChange::SetRule { id, rule } => {
            let refs = rule_references(rule);
            if let Some(n) = nodes.get_mut(*id) {
                n.refs = refs.clone();
            }
            (*id, Some(refs))
        }
    };
    if let Some(missing) = new_refs.iter().flatten().find(|r| !nodes.contains_key(*r)) {
        return Err(StoreError::Invalid(format!(
            "the rule references group {missing}, which does not exist"
        )));
    }
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, n) in &nodes {
        if let Some(p) = &n.parent {
            children.entry(p.as_str()).or_default().push(id.as_str());
        }
    }
    let successors = |id: &str| -> Vec<&str> {
        let mut out: Vec<&str> = nodes
            .get(id)
            .map(|n| n.refs.iter().map(String::as_str).collect())
            .unwrap_or_default();
        out.extend(children.get(id).into_iter().flatten().copied());
        out
    };
    // Every edge the change adds starts or ends at `changed`, so a new cycle runs through it:
    // look for a path from it back to itself (iteratively; chains can be long).
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<(&str, Vec<&str>)> = vec![(changed, successors(changed))];
    while let Some((_, next)) = stack.last_mut() {
        let Some(n) = next.pop() else {
            stack.pop();
            continue;
        };
        if n == changed {
            let mut path: Vec<String> = stack.iter().map(|(g, _)| name_of(&nodes, g)).collect();
            path.push(name_of(&nodes, changed));
            return Err(StoreError::Conflict(format!(
                "group rules would form a cycle: {}",
                path.join(" → ")
            )));
        }
        if seen.insert(n) {
            let succ = successors(n);
            stack.push((n, succ));
        }
    }
    Ok(())
}

impl Store {
    /// Resolve a selection to distinct device ids (sorted). Explicit ids that name no device
    /// fail the whole selection with `UnknownDevices`, so a typo never half-applies a change.
    pub async fn resolve_devices(&self, sel: &DeviceSelection) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        if let Some(ids) = &sel.ids {
            let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
            let wanted: Vec<&str> = wanted.into_iter().collect();
            let mut unknown = Vec::new();
            for chunk in wanted.chunks(CHUNK) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT id FROM devices WHERE id IN ({})",
                    placeholders(1, chunk.len())
                ));
                let found: Vec<(String,)> = with_pool!(self, |pool| {
                    let mut q = sqlx::query_as(sql);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.fetch_all(pool).await?
                });
                let found: BTreeSet<String> = found.into_iter().map(|r| r.0).collect();
                for id in chunk {
                    if found.contains(*id) {
                        out.insert((*id).to_string());
                    } else {
                        unknown.push((*id).to_string());
                    }
                }
            }
            if !unknown.is_empty() {
                return Err(StoreError::UnknownDevices(unknown));
            }
        }
        if let Some(f) = &sel.filter {
            let sql = sqlx::AssertSqlSafe(format!("SELECT d.id FROM devices d {FILTER_WHERE}"));
            let b = f.binds();
            let rows: Vec<(String,)> = with_pool!(self, |pool| {
                bind_filter!(sqlx::query_as(sql), b).fetch_all(pool).await?
            });
            out.extend(rows.into_iter().map(|r| r.0));
        }
        Ok(out.into_iter().collect())
    }

    pub async fn group(&self, id: &str) -> Result<Option<GroupRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLS} FROM device_groups WHERE id = $1"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// A group by id, or else by name (case-insensitive).
    pub async fn group_by_id_or_name(&self, key: &str) -> Result<Option<GroupRow>> {
        if let Some(g) = self.group(key).await? {
            return Ok(Some(g));
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLS} FROM device_groups WHERE LOWER(name) = LOWER($1)"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(pool)
            .await?))
    }

    /// Every group with its member counts, ordered by name.
    pub async fn list_groups(&self) -> Result<Vec<GroupWithCounts>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLS} FROM device_groups ORDER BY LOWER(name), id"
        ));
        let (groups, direct, total): (Vec<GroupRow>, Vec<Count>, Vec<Count>) = with_pool!(
            self,
            |pool| {
                let groups = sqlx::query_as(sql).fetch_all(pool).await?;
                let direct = sqlx::query_as(
                    "SELECT group_id, COUNT(*) FROM group_members GROUP BY group_id",
                )
                .fetch_all(pool)
                .await?;
                // Each (ancestor, descendant) pair, then the distinct devices under each
                // ancestor: a device in two subgroups counts once.
                let total = sqlx::query_as(
                    "WITH RECURSIVE tree(root, id) AS (
                         SELECT id, id FROM device_groups
                         UNION SELECT t.root, g.id FROM tree t JOIN device_groups g ON g.parent_id = t.id)
                     SELECT t.root, COUNT(DISTINCT m.device_id)
                     FROM tree t JOIN group_members m ON m.group_id = t.id
                     GROUP BY t.root",
                )
                .fetch_all(pool)
                .await?;
                (groups, direct, total)
            }
        );
        let direct: BTreeMap<String, i64> = direct.into_iter().collect();
        let total: BTreeMap<String, i64> = total.into_iter().collect();
        Ok(groups
            .into_iter()
            .map(|g| GroupWithCounts {
                direct_members: direct.get(&g.id).copied().unwrap_or(0),
                members: total.get(&g.id).copied().unwrap_or(0),
                group: g,
            })
            .collect())
    }

    /// One group with its member counts.
    pub async fn group_with_counts(&self, id: &str) -> Result<Option<GroupWithCounts>> {
        let Some(group) = self.group(id).await? else {
            return Ok(None);
        };
        let (direct, members): ((i64,), (i64,)) = with_pool!(self, |pool| {
            let direct = sqlx::query_as("SELECT COUNT(*) FROM group_members WHERE group_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
            let members = sqlx::query_as(
                "WITH RECURSIVE sub(id) AS (
                     SELECT CAST($1 AS TEXT)
                     UNION SELECT g.id FROM device_groups g JOIN sub ON g.parent_id = sub.id)
                 SELECT COUNT(DISTINCT device_id) FROM group_members
                 WHERE group_id IN (SELECT id FROM sub)",
            )
            .bind(id)
            .fetch_one(pool)
            .await?;
            (direct, members)
        });
        Ok(Some(GroupWithCounts {
            group,
            direct_members: direct.0,
            members: members.0,
        }))
    }

    /// The groups a device is a direct member of, by name.
    pub async fn device_groups(&self, device_id: &str) -> Result<Vec<MembershipRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT g.id, g.name, m.source FROM group_members m
                 JOIN device_groups g ON g.id = m.group_id
                 WHERE m.device_id = $1 ORDER BY LOWER(g.name), g.id",
            )
            .bind(device_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Create a static group. `Conflict` on a duplicate name, `Invalid` for an unknown parent.
    pub async fn create_group(&self, g: &NewGroup, audit: &AuditEntry) -> Result<()> {
        self.insert_group(g, None, audit).await
    }

    /// Create a dynamic group with its (validated) rule as JSON text; errors as
    /// [`Store::create_group`], plus `Invalid` when the rule references a group that does not
    /// exist and `Conflict` when it would close a cycle (checked in the transaction). Its
    /// members are written by the evaluation, never by operators.
    pub async fn create_dynamic_group(
        &self,
        g: &NewGroup,
        rule: &str,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.insert_group(g, Some(rule), audit).await
    }

    async fn insert_group(
        &self,
        g: &NewGroup,
        rule: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<()> {
        let kind = if rule.is_some() { "dynamic" } else { "static" };
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_tree(&mut *tx, g.now).await?;
            if let Some(p) = &g.parent_id {
                let found: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM device_groups WHERE id = $1")
                        .bind(p)
                        .fetch_optional(&mut *tx)
                        .await?;
                if found.is_none() {
                    return Err(StoreError::Invalid(format!("parent group {p} not found")));
                }
            }
            if let Some(rule) = rule {
                check_rule_fields!(tx, rule);
                let groups: Vec<GroupRow> =
                    sqlx::query_as(ALL_GROUPS_SQL).fetch_all(&mut *tx).await?;
                check_graph(
                    &groups,
                    &GraphChange::Insert {
                        id: &g.id,
                        name: &g.name,
                        parent: g.parent_id.as_deref(),
                        rule,
                    },
                )?;
            }
            sqlx::query(
                "INSERT INTO device_groups (id, name, description, parent_id, kind, rule, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $6, $7, $5, $5)",
            )
            .bind(&g.id)
            .bind(&g.name)
            .bind(&g.description)
            .bind(&g.parent_id)
            .bind(g.now)
            .bind(kind)
            .bind(rule)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "a group with this name exists"))?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Rename, describe or re-parent a group. A parent that is the group itself or one of its
    /// descendants is refused with `Conflict` (it would make a cycle), and so is a parent that
    /// would close a cycle with group rules (a rule of the group or below it referencing a
    /// group that would then contain it); an unknown parent is `Invalid`.
    pub async fn update_group(
        &self,
        id: &str,
        u: &GroupUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_tree(&mut *tx, now).await?;
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT id FROM device_groups WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            if let Some(Some(p)) = &u.parent_id {
                let found: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM device_groups WHERE id = $1")
                        .bind(p)
                        .fetch_optional(&mut *tx)
                        .await?;
                if found.is_none() {
                    return Err(StoreError::Invalid(format!("parent group {p} not found")));
                }
                let (cycle,): (i64,) = sqlx::query_as(
                    "WITH RECURSIVE sub(id) AS (
                         SELECT CAST($1 AS TEXT)
                         UNION SELECT g.id FROM device_groups g JOIN sub ON g.parent_id = sub.id)
                     SELECT COUNT(*) FROM sub WHERE id = $2",
                )
                .bind(id)
                .bind(p)
                .fetch_one(&mut *tx)
                .await?;
                if cycle > 0 {
                    return Err(StoreError::Conflict(
                        "the new parent is the group itself or one of its descendants".into(),
                    ));
                }
            }
            if let Some(parent) = &u.parent_id {
                let groups: Vec<GroupRow> =
                    sqlx::query_as(ALL_GROUPS_SQL).fetch_all(&mut *tx).await?;
                check_graph(
                    &groups,
                    &GraphChange::Reparent {
                        id,
                        parent: parent.as_deref(),
                    },
                )?;
            }
            let (set_parent, parent) = match &u.parent_id {
                None => (0i64, None),
                Some(p) => (1i64, p.clone()),
            };
            sqlx::query(
                "UPDATE device_groups SET name = COALESCE($2, name),
                        description = COALESCE($3, description),
                        parent_id = CASE WHEN $4 = 1 THEN $5 ELSE parent_id END,
                        updated_at = $6
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&u.name)
            .bind(&u.description)
            .bind(set_parent)
            .bind(parent)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "a group with this name exists"))?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Delete a group. Refused with `Conflict` while it has child groups (delete or move them
    /// first, so a subtree never disappears by accident) or while another group's rule
    /// references it. Its members leave it, each with a timeline entry.
    pub async fn delete_group(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_tree(&mut *tx, now).await?;
            let found: Option<(String,)> =
                sqlx::query_as("SELECT name FROM device_groups WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((name,)) = found else {
                return Err(StoreError::NotFound);
            };
            let (children,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM device_groups WHERE parent_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            if children > 0 {
                return Err(StoreError::Conflict(format!(
                    "group {name:?} has {children} child group(s); delete or move them first"
                )));
            }
            let groups: Vec<GroupRow> = sqlx::query_as(ALL_GROUPS_SQL).fetch_all(&mut *tx).await?;
            check_graph(&groups, &GraphChange::Delete { id })?;
            sqlx::query(
                "INSERT INTO device_timeline (device_id, at, kind, field, summary)
                 SELECT device_id, $2, 'group_left', $1, $3 FROM group_members WHERE group_id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(format!(
                "left group {name} (group deleted by {})",
                audit.actor
            ))
            .execute(&mut *tx)
            .await?;
            // Subscribers of the event log see the members leave too.
            sqlx::query(
                "INSERT INTO events (at, kind, subject, object, data)
                 SELECT $2, 'group.member_removed', device_id, $1, $3 FROM group_members
                 WHERE group_id = $1 ORDER BY device_id",
            )
            .bind(id)
            .bind(now)
            .bind(
                serde_json::json!({"group_name": name, "reason": "group_deleted", "actor": audit.actor})
                    .to_string(),
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM device_groups WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Add (`add`) or remove static members. Devices already in the requested state are left
    /// alone, so repeating a request changes nothing. Returns the number of devices changed.
    /// `NotFound` for an unknown group, `Conflict` for a dynamic one.
    pub async fn change_group_members(
        &self,
        group_id: &str,
        device_ids: &[String],
        add: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<u64> {
        let mut audit = audit.clone();
        let changed = with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let found: Option<(String, String)> =
                sqlx::query_as("SELECT name, kind FROM device_groups WHERE id = $1")
                    .bind(group_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((name, kind)) = found else {
                return Err(StoreError::NotFound);
            };
            if kind != "static" {
                return Err(StoreError::Conflict(format!(
                    "group {name:?} is {kind}: its members come from its rule"
                )));
            }
            let (verb, summary) = if add {
                (
                    "group_joined",
                    format!("joined group {name} ({})", audit.actor),
                )
            } else {
                ("group_left", format!("left group {name} ({})", audit.actor))
            };
            let event = if add {
                "group.member_added"
            } else {
                "group.member_removed"
            };
            let event_data =
                serde_json::json!({"group_name": name, "source": "static", "actor": audit.actor})
                    .to_string();
            let mut changed: Vec<String> = Vec::new();
            for chunk in device_ids.chunks(CHUNK) {
                let mut q = if add {
                    let sql = format!(
                        "INSERT INTO group_members (group_id, device_id, source, added_at)
                         SELECT $1, d.id, 'static', $2 FROM devices d WHERE d.id IN ({})
                         ON CONFLICT (group_id, device_id) DO NOTHING
                         RETURNING device_id",
                        placeholders(3, chunk.len())
                    );
                    sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql))
                        .bind(group_id)
                        .bind(now)
                } else {
                    let sql = format!(
                        "DELETE FROM group_members
                         WHERE group_id = $1 AND source = 'static' AND device_id IN ({})
                         RETURNING device_id",
                        placeholders(2, chunk.len())
                    );
                    sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql)).bind(group_id)
                };
                for id in chunk {
                    q = q.bind(id);
                }
                let rows = q.fetch_all(&mut *tx).await?;
                for (device_id,) in rows {
                    sqlx::query(
                        "INSERT INTO device_timeline (device_id, at, kind, field, summary)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&device_id)
                    .bind(now)
                    .bind(verb)
                    .bind(group_id)
                    .bind(&summary)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO events (at, kind, subject, object, data)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(now)
                    .bind(event)
                    .bind(&device_id)
                    .bind(group_id)
                    .bind(&event_data)
                    .execute(&mut *tx)
                    .await?;
                    changed.push(device_id);
                }
            }
            if let serde_json::Value::Object(map) = &mut audit.details {
                map.insert("changed".into(), changed.len().into());
                map.insert("matched".into(), device_ids.len().into());
                // A bounded sample keeps one audit row small even for 100,000 devices.
                changed.sort();
                map.insert(
                    "device_ids".into(),
                    changed.iter().take(100).cloned().collect::<Vec<_>>().into(),
                );
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
            changed.len() as u64
        });
        Ok(changed)
    }
}

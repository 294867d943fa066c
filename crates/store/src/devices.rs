//! Devices, their latest inventory document and their timeline (field-level inventory history
//! and lifecycle events, newest first). Storing an inventory, its denormalised summary columns
//! and its timeline rows is one transaction, guarded by the digest it replaces, so concurrent
//! uploads from one device can never interleave into a wrong history.

use crate::BeginWrite;
use crate::audit::TimelineNote;
use crate::{AuditEntry, Result, Store, StoreError, with_pool};

/// What the agent authenticator needs for one device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceAuth {
    pub id: String,
    pub secret_hash: String,
    pub identity_key: String,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: String,
    pub hostname: String,
    pub identity_source: String,
    pub os_family: String,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub agent_version: Option<String>,
    pub boot_id: Option<String>,
    pub tags: String,
    pub enrolled_at: i64,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub refresh_requested_at: Option<i64>,
    pub performance: Option<String>,
    pub inventory_digest: Option<String>,
    pub inventory_updated_at: Option<i64>,
}

impl DeviceRow {
    pub fn tags(&self) -> Vec<String> {
        crate::decode_json("devices.tags", &self.tags).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InventoryRow {
    pub digest: String,
    pub document: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineRow {
    pub id: i64,
    pub device_id: String,
    pub at: i64,
    pub kind: String,
    pub category: Option<String>,
    pub field: Option<String>,
    pub change: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub summary: String,
}

#[derive(Debug, Clone, Default)]
pub struct NewTimelineEntry {
    pub kind: String,
    pub category: Option<String>,
    pub field: Option<String>,
    pub change: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub summary: String,
}

/// Sort orders of the device list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSort {
    #[default]
    Hostname,
    LastSeen,
    Enrolled,
}

/// What recording a check-in found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinRecorded {
    pub refresh_requested_at: Option<i64>,
    /// Digest of the stored inventory.
    pub digest: Option<String>,
    /// The device has a job run it could claim now.
    pub runs_pending: bool,
    /// The device's current manifest revision, if it has a manifest.
    pub manifest_revision: Option<i64>,
    /// The runs this check-in claimed (when it asked to, [`CheckinRecord::claim_runs`]).
    pub claimed: Vec<crate::jobs::ClaimedRun>,
}

/// One check-in for [`Store::record_checkins_batch`].
#[derive(Debug, Clone)]
pub struct CheckinRecord {
    pub device_id: String,
    pub agent_version: String,
    pub boot_id: Option<String>,
    /// JSON text of the performance snapshot; `None` keeps the stored one.
    pub performance: Option<String>,
    /// Claim the device's runnable job runs in the same transaction (the agent runs jobs).
    pub claim_runs: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Case-insensitive hostname substring.
    pub search: Option<String>,
    /// `Some(true)`: last seen at or after `online_cutoff`; `Some(false)`: before or never.
    pub online: Option<bool>,
    pub online_cutoff: i64,
    /// Members of this group or of any of its descendants.
    pub group_id: Option<String>,
    /// Devices carrying this tag (exact, case-sensitive).
    pub tag: Option<String>,
    /// Devices whose effective custom field value equals the given one.
    pub field: Option<FieldMatch>,
    pub sort: DeviceSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// An exact match on a custom field's effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMatch {
    pub name: String,
    /// The canonical JSON text of the value (as stored).
    pub value_json: String,
    /// Whether the field's default equals the value, so devices without their own value match.
    pub matches_default: bool,
}

/// The device filter as SQL over `devices d`, with parameters `$1..=$8` bound by
/// [`bind_filter!`]. Group membership walks the group tree with a recursive CTE, tags are
/// matched as the exact JSON string element in `devices.tags` (`REPLACE` is case-sensitive on
/// both backends, unlike `LIKE`), custom fields by their canonical JSON text.
pub(crate) const FILTER_WHERE: &str = "WHERE ($1 IS NULL OR LOWER(d.hostname) LIKE $1 ESCAPE '\\')
      AND ($2 IS NULL
           OR ($2 = 1 AND d.last_seen_at >= $3)
           OR ($2 = 0 AND (d.last_seen_at IS NULL OR d.last_seen_at < $3)))
      AND ($4 IS NULL OR d.id IN (
           SELECT m.device_id FROM group_members m WHERE m.group_id IN (
               WITH RECURSIVE sub(id) AS (
                   SELECT CAST($4 AS TEXT)
                   UNION SELECT g.id FROM device_groups g JOIN sub ON g.parent_id = sub.id)
               SELECT id FROM sub)))
      AND ($5 IS NULL OR REPLACE(d.tags, $5, '') <> d.tags)
      AND ($6 IS NULL
           OR EXISTS (SELECT 1 FROM device_field_values v
                      WHERE v.device_id = d.id AND v.field_name = $6 AND v.value = $7)
           OR ($8 = 1 AND NOT EXISTS (SELECT 1 FROM device_field_values v
                      WHERE v.device_id = d.id AND v.field_name = $6)))";

/// The filter's parameters in `$1..=$8` order.
pub(crate) struct FilterBinds {
    pub search: Option<String>,
    pub online: Option<i64>,
    pub cutoff: i64,
    pub group: Option<String>,
    pub tag: Option<String>,
    pub field_name: Option<String>,
    pub field_value: Option<String>,
    pub field_default: i64,
}

impl DeviceFilter {
    pub(crate) fn binds(&self) -> FilterBinds {
        FilterBinds {
            search: self
                .search
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(like_pattern),
            online: self.online.map(i64::from),
            cutoff: self.online_cutoff,
            group: self.group_id.clone(),
            // Tags are validated to contain no quote or backslash, so their JSON form is
            // the tag in quotes.
            tag: self
                .tag
                .as_ref()
                .map(|t| serde_json::Value::String(t.clone()).to_string()),
            field_name: self.field.as_ref().map(|f| f.name.clone()),
            field_value: self.field.as_ref().map(|f| f.value_json.clone()),
            field_default: i64::from(self.field.as_ref().is_some_and(|f| f.matches_default)),
        }
    }
}

/// Bind [`FilterBinds`] as `$1..=$8` of a query using [`FILTER_WHERE`].
macro_rules! bind_filter {
    ($q:expr, $b:expr) => {
        $q.bind($b.search.clone())
            .bind($b.online)
            .bind($b.cutoff)
            .bind($b.group.clone())
            .bind($b.tag.clone())
            .bind($b.field_name.clone())
            .bind($b.field_value.clone())
            .bind($b.field_default)
    };
}
pub(crate) use bind_filter;

pub(crate) const DEVICE_COLS: &str =
    "d.id, d.hostname, d.identity_source, d.os_family, d.os_name, d.os_version,
    d.agent_version, d.boot_id, d.tags, d.enrolled_at, d.last_seen_at, d.revoked_at,
    d.refresh_requested_at, d.performance, i.digest AS inventory_digest,
    i.updated_at AS inventory_updated_at";

/// Escape LIKE wildcards so a search for `50%` means the literal text.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    pub async fn device_auth(&self, id: &str) -> Result<Option<DeviceAuth>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, secret_hash, identity_key, revoked_at FROM devices WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Record a check-in. Returns `(refresh_requested_at, stored inventory digest)`;
    /// `NotFound` for an unknown or revoked device.
    pub async fn record_checkin(
        &self,
        id: &str,
        now: i64,
        agent_version: &str,
        boot_id: Option<&str>,
        performance_json: Option<&str>,
    ) -> Result<(Option<i64>, Option<String>)> {
        let item = CheckinRecord {
            device_id: id.to_string(),
            agent_version: agent_version.to_string(),
            boot_id: boot_id.map(str::to_string),
            performance: performance_json.map(str::to_string),
            claim_runs: false,
        };
        self.record_checkins_batch(std::slice::from_ref(&item), now, 0)
            .await?
            .pop()
            .unwrap_or(Err(StoreError::NotFound))
            .map(|r| (r.refresh_requested_at, r.digest))
    }

    /// [`Store::record_checkin`] for many check-ins, in one transaction with one statement per
    /// 200 (check-ins are the hottest write; after a fan-out wake-up thousands arrive at once).
    /// Devices that ask for it ([`CheckinRecord::claim_runs`]) and have runnable runs claim up
    /// to `claim_limit` of them in the same transaction, so a woken agent's check-in and the
    /// delivery of its runs take one turn at the database, not two. One result per item.
    pub async fn record_checkins_batch(
        &self,
        items: &[CheckinRecord],
        now: i64,
        claim_limit: i64,
    ) -> Result<Vec<Result<CheckinRecorded>>> {
        let mut found: std::collections::HashMap<String, CheckinRecorded> =
            std::collections::HashMap::new();
        with_pool!(self, |pool| {
            // A check-in delivers work: it goes ahead of other writes (see `gate`).
            let mut tx = pool.begin_write_as(true).await?;
            for part in items.chunks(200) {
                let rows = (0..part.len())
                    .map(|k| {
                        let b = 4 * k + 1;
                        format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                // The values of each device come from the VALUES list.
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE devices SET last_seen_at = $1, agent_version = v.column2, boot_id = v.column3,
                            performance = COALESCE(v.column4, devices.performance)
                     FROM (VALUES {rows}) AS v
                     WHERE devices.id = v.column1 AND devices.revoked_at IS NULL
                     RETURNING devices.id, devices.refresh_requested_at,
                               (SELECT digest FROM device_inventory i WHERE i.device_id = devices.id),
                               (SELECT COUNT(*) FROM (SELECT 1 FROM job_runs r
                                   WHERE r.device_id = devices.id AND r.state IN ('queued', 'delivered')
                                     AND r.not_before <= $1 AND r.expires_at > $1 LIMIT 1) AS pending),
                               (SELECT revision FROM device_manifests m WHERE m.device_id = devices.id)"
                ));
                type Row = (String, Option<i64>, Option<String>, i64, Option<i64>);
                let mut q = sqlx::query_as::<_, Row>(sql).bind(now);
                for it in part {
                    q = q
                        .bind(&it.device_id)
                        .bind(&it.agent_version)
                        .bind(&it.boot_id)
                        .bind(&it.performance);
                }
                for (id, refresh, digest, pending, manifest_revision) in
                    q.fetch_all(&mut *tx).await?
                {
                    found.insert(
                        id,
                        CheckinRecorded {
                            refresh_requested_at: refresh,
                            digest,
                            runs_pending: pending > 0,
                            manifest_revision,
                            claimed: Vec::new(),
                        },
                    );
                }
            }
            let claimers: Vec<String> = items
                .iter()
                .filter(|it| {
                    it.claim_runs && found.get(&it.device_id).is_some_and(|r| r.runs_pending)
                })
                .map(|it| it.device_id.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !claimers.is_empty() {
                let claimed = crate::jobs::claim_in_tx!(tx, &claimers, now, claim_limit);
                for (device, runs) in claimed {
                    if let Some(r) = found.get_mut(&device) {
                        // Whatever is left beyond the limit stays pending.
                        r.runs_pending = runs.len() as i64 >= claim_limit;
                        r.claimed = runs;
                    }
                }
                for id in &claimers {
                    if let Some(r) = found.get_mut(id)
                        && r.claimed.is_empty()
                    {
                        // Pending a moment ago, but nothing runnable was left to claim.
                        r.runs_pending = false;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(items
            .iter()
            .map(|it| {
                found
                    .get(&it.device_id)
                    .cloned()
                    .ok_or(StoreError::NotFound)
            })
            .collect())
    }

    pub async fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLS} FROM devices d LEFT JOIN device_inventory i ON i.device_id = d.id
             WHERE d.id = $1"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// One page of devices and the total matching the filter.
    pub async fn list_devices(&self, f: &DeviceFilter) -> Result<(Vec<DeviceRow>, i64)> {
        let dir = if f.descending { "DESC" } else { "ASC" };
        // NULLs (never seen) sort last whatever the direction. Hostname and enrollment time are
        // NOT NULL, and leaving the NULL term out for them lets SQLite walk the
        // `devices_hostname` index instead of sorting every match (29–69 ms → 1–5 ms per page
        // at 100,000 devices).
        let order = match f.sort {
            DeviceSort::Hostname => format!("LOWER(d.hostname) {dir}, d.id {dir}"),
            DeviceSort::Enrolled => format!("d.enrolled_at {dir}, d.id {dir}"),
            DeviceSort::LastSeen => {
                format!("(d.last_seen_at IS NULL), d.last_seen_at {dir}, d.id {dir}")
            }
        };
        let page_sql = sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLS} FROM devices d LEFT JOIN device_inventory i ON i.device_id = d.id
             {FILTER_WHERE}
             ORDER BY {order}
             LIMIT $9 OFFSET $10"
        ));
        let count_sql =
            sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM devices d {FILTER_WHERE}"));
        let b = f.binds();
        Ok(with_pool!(self, |pool| {
            let rows: Vec<DeviceRow> = bind_filter!(sqlx::query_as(page_sql), b)
                .bind(f.limit)
                .bind(f.offset)
                .fetch_all(pool)
                .await?;
            let (total,): (i64,) = bind_filter!(sqlx::query_as(count_sql), b)
                .fetch_one(pool)
                .await?;
            (rows, total)
        }))
    }

    /// Delete a device and everything stored about it. `NotFound` if absent.
    pub async fn delete_device(&self, id: &str, audit: &AuditEntry) -> Result<()> {
        self.audited_change("DELETE FROM devices WHERE id = $1", id, None, None, audit)
            .await
    }

    /// Revoke a device's credential, keeping its record and history.
    pub async fn revoke_device(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<()> {
        let note = TimelineNote {
            kind: "revoked",
            summary: format!("credential revoked by {}", audit.actor),
        };
        self.audited_change(
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            id,
            Some(now),
            Some(note),
            audit,
        )
        .await
    }

    /// Mark that an operator wants a fresh inventory; kept until an inventory arrives.
    pub async fn request_inventory_refresh(
        &self,
        id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        let note = TimelineNote {
            kind: "refresh_requested",
            summary: format!("inventory refresh requested by {}", audit.actor),
        };
        self.audited_change(
            "UPDATE devices SET refresh_requested_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            id,
            Some(now),
            Some(note),
            audit,
        )
        .await
    }

    pub async fn inventory(&self, device_id: &str) -> Result<Option<InventoryRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT digest, document, updated_at FROM device_inventory WHERE device_id = $1",
            )
            .bind(device_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Replace the device's inventory and append its timeline entries, atomically.
    /// `replaces` is the digest the caller diffed against (`None` = first inventory); if another
    /// upload won the race the result is `Conflict` and nothing is written.
    #[allow(clippy::too_many_arguments)] // one transaction's worth of data; a struct would only rename it
    pub async fn store_inventory(
        &self,
        device_id: &str,
        replaces: Option<&str>,
        digest: &str,
        document_json: &str,
        hostname: &str,
        os_name: Option<&str>,
        os_version: Option<&str>,
        entries: &[NewTimelineEntry],
        now: i64,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let n = match replaces {
                None => sqlx::query(
                    "INSERT INTO device_inventory (device_id, digest, document, updated_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO NOTHING",
                )
                .bind(device_id)
                .bind(digest)
                .bind(document_json)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                Some(old) => sqlx::query(
                    "UPDATE device_inventory SET digest = $2, document = $3, updated_at = $4
                     WHERE device_id = $1 AND digest = $5",
                )
                .bind(device_id)
                .bind(digest)
                .bind(document_json)
                .bind(now)
                .bind(old)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            };
            if n == 0 {
                return Err(StoreError::Conflict(
                    "inventory changed concurrently".into(),
                ));
            }
            let n = sqlx::query(
                "UPDATE devices SET hostname = $2, os_name = $3, os_version = $4,
                        refresh_requested_at = NULL
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(device_id)
            .bind(hostname)
            .bind(os_name)
            .bind(os_version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            for e in entries {
                sqlx::query(
                    "INSERT INTO device_timeline (device_id, at, kind, category, field, change,
                                                  old_value, new_value, summary)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(device_id)
                .bind(now)
                .bind(&e.kind)
                .bind(&e.category)
                .bind(&e.field)
                .bind(&e.change)
                .bind(&e.old_value)
                .bind(&e.new_value)
                .bind(&e.summary)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Timeline entries of a device, newest first, with ids below `before`.
    pub async fn timeline(
        &self,
        device_id: &str,
        before: Option<i64>,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TimelineRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, device_id, at, kind, category, field, change, old_value, new_value, summary
                 FROM device_timeline
                 WHERE device_id = $1 AND ($2 IS NULL OR id < $2) AND ($3 IS NULL OR kind = $3)
                 ORDER BY id DESC LIMIT $4",
            )
            .bind(device_id)
            .bind(before)
            .bind(kind)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(super::like_pattern("Web_01%"), "%web\\_01\\%%");
    }
}

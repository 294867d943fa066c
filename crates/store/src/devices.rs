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
    /// Devices whose OS name, or name and version joined by a space, equals this exactly
    /// (`Debian GNU/Linux` or `Debian GNU/Linux 12`; the values [`FleetSummary::os`] lists).
    pub os: Option<String>,
    /// Devices whose hardware model ([`hardware_model`]) equals this exactly.
    pub model: Option<String>,
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

/// The device filter as SQL over `devices d`, with parameters `$1..=$10` bound by
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
                      WHERE v.device_id = d.id AND v.field_name = $6)))
      AND ($9 IS NULL OR d.os_name = $9 OR d.os_name || ' ' || d.os_version = $9)
      AND ($10 IS NULL OR d.hw_model = $10)";

/// The filter's parameters in `$1..=$10` order.
pub(crate) struct FilterBinds {
    pub search: Option<String>,
    pub online: Option<i64>,
    pub cutoff: i64,
    pub group: Option<String>,
    pub tag: Option<String>,
    pub field_name: Option<String>,
    pub field_value: Option<String>,
    pub field_default: i64,
    pub os: Option<String>,
    pub model: Option<String>,
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
            os: self.os.clone().filter(|s| !s.is_empty()),
            model: self.model.clone().filter(|s| !s.is_empty()),
        }
    }
}

/// Bind [`FilterBinds`] as `$1..=$10` of a query using [`FILTER_WHERE`].
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
            .bind($b.os.clone())
            .bind($b.model.clone())
    };
}
pub(crate) use bind_filter;

pub(crate) const DEVICE_COLS: &str =
    "d.id, d.hostname, d.identity_source, d.os_family, d.os_name, d.os_version,
    d.agent_version, d.boot_id, d.tags, d.enrolled_at, d.last_seen_at, d.revoked_at,
    d.refresh_requested_at, d.performance, i.digest AS inventory_digest,
    i.updated_at AS inventory_updated_at";

/// The part of an inventory document the hardware model is read from (everything else is
/// skipped by the parser).
#[derive(serde::Deserialize)]
struct ModelDoc {
    hardware: Option<ModelHardware>,
}

#[derive(serde::Deserialize)]
struct ModelHardware {
    system: Option<ModelSystem>,
}

#[derive(serde::Deserialize)]
struct ModelSystem {
    manufacturer: Option<String>,
    product: Option<String>,
}

/// The hardware model of an inventory document (JSON text) as stored in `devices.hw_model`:
/// the system manufacturer and product, each trimmed, joined by a space; `None` when both are
/// missing or blank (or the text is not a document). Migration 0009 computes the same in SQL
/// for inventories stored before the column existed.
pub fn hardware_model(document_json: &str) -> Option<String> {
    let doc: ModelDoc = serde_json::from_str(document_json).ok()?;
    let system = doc.hardware?.system?;
    let part = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_string();
    let joined = format!("{} {}", part(&system.manufacturer), part(&system.product));
    let joined = joined.trim();
    (!joined.is_empty()).then(|| joined.to_string())
}

/// One value of a distribution and how many devices have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueCountRow {
    pub value: String,
    pub count: i64,
}

/// How the fleet divides over one property: the most common values (most devices first, ties
/// by value), the devices with any other value, and those without a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DistributionRows {
    pub top: Vec<ValueCountRow>,
    pub other: i64,
    pub unknown: i64,
}

/// Counters and distributions over all devices, from [`Store::fleet_summary`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FleetSummary {
    pub total: i64,
    /// Last seen at or after the cutoff (the same rule as the `online` filter).
    pub online: i64,
    /// `os_name`, or `os_name os_version` when a version is known — values the `os` filter
    /// accepts.
    pub os: DistributionRows,
    /// `devices.hw_model` — values the `model` filter accepts.
    pub model: DistributionRows,
}

/// The SQL of the OS label of `devices d`; NULL without an OS name.
const OS_LABEL: &str = "CASE WHEN d.os_name IS NULL OR d.os_name = '' THEN NULL
     WHEN d.os_version IS NULL OR d.os_version = '' THEN d.os_name
     ELSE d.os_name || ' ' || d.os_version END";

/// A device whose announced presence changed, from [`Store::announce_presence`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PresenceChange {
    pub id: String,
    pub hostname: String,
    pub last_seen_at: Option<i64>,
}

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
                let mut claimed = crate::jobs::claim_in_tx!(tx, &claimers, now, claim_limit);
                for id in &claimers {
                    if let Some(r) = found.get_mut(id) {
                        let runs = claimed.remove(id).unwrap_or_default();
                        // A full claim may have left more behind; a short one took everything.
                        r.runs_pending = runs.len() as i64 >= claim_limit;
                        r.claimed = runs;
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
             LIMIT $11 OFFSET $12"
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

    /// Counters and the OS and hardware-model distributions of all devices (each distribution
    /// keeps its `top` most common values), grouped in SQL.
    pub async fn fleet_summary(&self, online_cutoff: i64, top: i64) -> Result<FleetSummary> {
        let counts_sql = sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*),
                    COALESCE(SUM(CASE WHEN d.last_seen_at >= $1 THEN 1 ELSE 0 END), 0),
                    COUNT({OS_LABEL}),
                    COUNT(d.hw_model)
             FROM devices d"
        ));
        let os_sql = sqlx::AssertSqlSafe(format!(
            "SELECT v, COUNT(*) AS n FROM (SELECT {OS_LABEL} AS v FROM devices d) AS labels
             WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT $1"
        ));
        let model_sql = "SELECT hw_model, COUNT(*) AS n FROM devices WHERE hw_model IS NOT NULL
             GROUP BY hw_model ORDER BY n DESC, hw_model LIMIT $1";
        let (counts, os, model) = with_pool!(self, |pool| {
            let counts: (i64, i64, i64, i64) = sqlx::query_as(counts_sql)
                .bind(online_cutoff)
                .fetch_one(pool)
                .await?;
            let os: Vec<(String, i64)> = sqlx::query_as(os_sql).bind(top).fetch_all(pool).await?;
            let model: Vec<(String, i64)> =
                sqlx::query_as(model_sql).bind(top).fetch_all(pool).await?;
            (counts, os, model)
        });
        let (total, online, with_os, with_model) = counts;
        let distribution = |rows: Vec<(String, i64)>, known: i64| {
            let top: Vec<ValueCountRow> = rows
                .into_iter()
                .map(|(value, count)| ValueCountRow { value, count })
                .collect();
            let shown: i64 = top.iter().map(|r| r.count).sum();
            DistributionRows {
                top,
                other: (known - shown).max(0),
                unknown: (total - known).max(0),
            }
        };
        Ok(FleetSummary {
            total,
            online,
            os: distribution(os, with_os),
            model: distribution(model, with_model),
        })
    }

    /// Bring the announced presence (`devices.presence`) up to date with `online_cutoff` and
    /// record a `device.online` / `device.offline` event for each device that changed, in one
    /// transaction. Devices in `keep_online` (they hold a wake-up connection) are not announced
    /// offline. Rows whose presence is unknown (they predate the column) are settled without
    /// an event. Only devices whose presence actually flips are returned, so two passes racing
    /// (two replicas) announce each change once. Returns (came online, went offline).
    pub async fn announce_presence(
        &self,
        now: i64,
        online_cutoff: i64,
        keep_online: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Vec<PresenceChange>, Vec<PresenceChange>)> {
        // Candidates are read outside the write transaction: both reads walk the
        // (presence, last_seen_at) index, so a quiet fleet costs two empty range scans.
        let (unknown, mut offline, online) = with_pool!(self, |pool| {
            let (unknown,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM devices WHERE presence IS NULL")
                    .fetch_one(pool)
                    .await?;
            let offline: Vec<(String,)> =
                sqlx::query_as("SELECT id FROM devices WHERE presence = 1 AND last_seen_at < $1")
                    .bind(online_cutoff)
                    .fetch_all(pool)
                    .await?;
            let online: Vec<(String,)> = sqlx::query_as(
                "SELECT id FROM devices
                 WHERE presence = 0 AND last_seen_at >= $1 AND revoked_at IS NULL",
            )
            .bind(online_cutoff)
            .fetch_all(pool)
            .await?;
            (unknown, offline, online)
        });
        offline.retain(|(id,)| !keep_online(id));
        if unknown == 0 && offline.is_empty() && online.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut came = Vec::new();
        let mut went = Vec::new();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if unknown > 0 {
                sqlx::query(
                    "UPDATE devices SET presence = CASE
                         WHEN revoked_at IS NULL AND last_seen_at >= $1 THEN 1 ELSE 0 END
                     WHERE presence IS NULL",
                )
                .bind(online_cutoff)
                .execute(&mut *tx)
                .await?;
            }
            // The conditions are repeated in the updates, so a device that checked in (or
            // was announced by another replica) since the read is left alone.
            for (ids, to_online) in [(&online, true), (&offline, false)] {
                for chunk in ids.chunks(500) {
                    let list = crate::groups::placeholders(2, chunk.len());
                    let sql = sqlx::AssertSqlSafe(if to_online {
                        format!(
                            "UPDATE devices SET presence = 1
                             WHERE presence = 0 AND last_seen_at >= $1 AND revoked_at IS NULL
                               AND id IN ({list})
                             RETURNING id, hostname, last_seen_at"
                        )
                    } else {
                        format!(
                            "UPDATE devices SET presence = 0
                             WHERE presence = 1 AND last_seen_at < $1 AND id IN ({list})
                             RETURNING id, hostname, last_seen_at"
                        )
                    });
                    let mut q = sqlx::query_as(sql).bind(online_cutoff);
                    for (id,) in chunk {
                        q = q.bind(id);
                    }
                    let mut changed: Vec<PresenceChange> = q.fetch_all(&mut *tx).await?;
                    changed.sort_by(|a, b| a.id.cmp(&b.id));
                    if !changed.is_empty() {
                        // One statement per chunk: a restart of the whole fleet's network
                        // announces thousands at once.
                        let rows = (0..changed.len())
                            .map(|k| format!("($1, $2, ${}, ${})", 2 * k + 3, 2 * k + 4))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let sql = sqlx::AssertSqlSafe(format!(
                            "INSERT INTO events (at, kind, subject, data) VALUES {rows}"
                        ));
                        let kind = if to_online {
                            "device.online"
                        } else {
                            "device.offline"
                        };
                        let mut q = sqlx::query(sql).bind(now).bind(kind);
                        for c in &changed {
                            let data = serde_json::json!({
                                "hostname": c.hostname,
                                "last_seen_at_ms": c.last_seen_at,
                            })
                            .to_string();
                            q = q.bind(c.id.clone()).bind(data);
                        }
                        q.execute(&mut *tx).await?;
                    }
                    if to_online {
                        came.extend(changed);
                    } else {
                        went.extend(changed);
                    }
                }
            }
            tx.commit().await?;
        });
        Ok((came, went))
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
        let hw_model = hardware_model(document_json);
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
                        hw_model = $5, refresh_requested_at = NULL
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(device_id)
            .bind(hostname)
            .bind(os_name)
            .bind(os_version)
            .bind(&hw_model)
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
    fn hardware_model_joins_trimmed_manufacturer_and_product() {
        for (doc, want) in [
            (
                r#"{"hardware":{"system":{"manufacturer":" LENOVO ","product":"20XW "}}}"#,
                Some("LENOVO 20XW"),
            ),
            (
                r#"{"hardware":{"system":{"product":"Virtual"}}}"#,
                Some("Virtual"),
            ),
            (
                r#"{"hardware":{"system":{"manufacturer":"Dell Inc.","product":null}}}"#,
                Some("Dell Inc."),
            ),
            (r#"{"hardware":{"system":{"manufacturer":"  "}}}"#, None),
            (r#"{"hardware":{"cpu":{"model":"x"}}}"#, None),
            (r#"{"os":{"hostname":"h"}}"#, None),
            ("not json", None),
        ] {
            assert_eq!(super::hardware_model(doc).as_deref(), want, "{doc}");
        }
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(super::like_pattern("Web_01%"), "%web\\_01\\%%");
    }
}

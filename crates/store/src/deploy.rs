//! Desired software state: assignments and deployments (`assignments`), maintenance windows
//! (`maintenance_windows`, `maintenance_window_groups`), each device's compiled manifest
//! (`device_manifests`), and where each package stands on each device (`device_software`) with
//! its history (`device_software_history`).
//!
//! The server's manifest compiler reads the inputs in bulk ([`Store::compile_inputs`]) and
//! writes what changed per device in one transaction per batch
//! ([`Store::write_compiled`]); agent reports go through [`Store::record_item_reports`], which
//! writes status, history, timeline and event rows together.

use std::collections::HashMap;

use crate::groups::placeholders;
use crate::{AuditEntry, BeginWrite, Result, Store, StoreError, conflict_or, with_pool};

const CHUNK: usize = 400;

/// One assignment (and, when `name` is set, the deployment it belongs to).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AssignmentRow {
    pub id: String,
    pub package_id: String,
    pub version_id: Option<String>,
    /// `device` or `group`.
    pub target_kind: String,
    pub target_id: String,
    pub intent: String,
    pub leave_installed: bool,
    pub name: Option<String>,
    pub description: Option<String>,
    pub available_from: Option<i64>,
    pub deadline: Option<i64>,
    /// `respect` or `ignore`.
    pub window_policy: String,
    /// JSON of the network policy.
    pub network: String,
    /// JSON of the rollout strategy.
    pub rollout: String,
    pub paused: bool,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
}

const ASSIGNMENT_COLS: &str = "id, package_id, version_id, target_kind, target_id, intent, \
     leave_installed, name, description, available_from, deadline, window_policy, network, \
     rollout, paused, created_at, created_by, updated_at";

/// One maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WindowRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// JSON of the schedule.
    pub schedule: String,
    pub timezone: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A device's stored manifest.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ManifestRow {
    pub device_id: String,
    pub revision: i64,
    pub digest: String,
    pub payload: String,
    pub compiled_at: i64,
    pub next_eval_at: Option<i64>,
    pub acked_revision: Option<i64>,
    pub acked_at: Option<i64>,
}

/// Where one package stands on one device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SoftwareStateRow {
    pub device_id: String,
    pub hostname: String,
    pub package_id: String,
    pub package_name: String,
    pub version: Option<String>,
    pub desired: Option<String>,
    pub status: String,
    pub detail: Option<String>,
    pub exit_code: Option<i64>,
    pub progress_received: Option<i64>,
    pub progress_total: Option<i64>,
    pub assignment_id: Option<String>,
    pub managed: bool,
    pub leave_installed: bool,
    pub requested_at: Option<i64>,
    pub drift_repairs: i64,
    pub log: Option<String>,
    pub updated_at: i64,
}

const STATE_COLS: &str = "s.device_id, d.hostname, s.package_id, p.name AS package_name, \
     s.version, s.desired, s.status, s.detail, s.exit_code, s.progress_received, \
     s.progress_total, s.assignment_id, s.managed, s.leave_installed, s.requested_at, \
     s.drift_repairs, s.log, s.updated_at";
const STATE_FROM: &str = "device_software s JOIN devices d ON d.id = s.device_id \
     JOIN packages p ON p.id = s.package_id";

/// One history entry of a package on a device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SoftwareHistoryRow {
    pub id: i64,
    pub at: i64,
    pub status: String,
    pub version: Option<String>,
    pub detail: Option<String>,
    pub exit_code: Option<i64>,
    pub log: Option<String>,
    pub drift: bool,
}

/// What the compiler needs to know of a device's current state per package.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StateBrief {
    pub device_id: String,
    pub package_id: String,
    pub version: Option<String>,
    pub desired: Option<String>,
    pub status: String,
    pub managed: bool,
    pub leave_installed: bool,
    pub requested_at: Option<i64>,
}

/// Everything a compile pass reads for a batch of devices.
#[derive(Debug, Clone, Default)]
pub struct CompileInputs {
    /// (device id, group id) of direct memberships, static and dynamic.
    pub memberships: Vec<(String, String)>,
    pub states: Vec<StateBrief>,
    /// (device id, revision, digest, next evaluation time).
    pub manifests: Vec<(String, i64, String, Option<i64>)>,
}

/// One package the compiled manifest wants on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredItem {
    pub package_id: String,
    pub version: String,
    /// `present`, `absent` or `available`.
    pub desired: String,
    pub assignment_id: Option<String>,
    pub leave_installed: bool,
    /// Why the agent must wait, if it must.
    pub hold: Option<String>,
}

/// A device whose compiled manifest differs from the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledManifest {
    pub device_id: String,
    /// The revision read before compiling (`None`: the device had none); the write is skipped
    /// when another compiler changed it meanwhile.
    pub previous_revision: Option<i64>,
    pub revision: i64,
    pub digest: String,
    pub payload: String,
    pub items: Vec<DesiredItem>,
    /// When the manifest may change by itself (a window, a schedule).
    pub next_eval: Option<i64>,
    /// Packages that had a desired state on the device and are no longer in its manifest.
    pub left: Vec<String>,
}

/// One agent report of one item, validated by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReportRow {
    pub package_id: String,
    pub version: String,
    pub status: String,
    pub detail: Option<String>,
    pub exit_code: Option<i64>,
    pub log: Option<String>,
    pub progress: Option<(i64, i64)>,
    pub drift: bool,
    pub at: i64,
}

/// What [`Store::record_item_reports`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOutcome {
    /// Items whose status changed.
    pub changed: u64,
    /// Reports for packages the device's manifest does not mention (ignored).
    pub unknown: Vec<String>,
}

/// An item's status, desired state, assignment, package name and `managed` flag.
type CurrentItem = (String, Option<String>, Option<String>, String, bool);

/// A status transition worth a timeline line.
fn timeline_summary(
    name: &str,
    version: &str,
    status: &str,
    drift: bool,
    detail: Option<&str>,
) -> Option<String> {
    let why = detail.map(|d| format!(": {d}")).unwrap_or_default();
    Some(match (status, drift) {
        ("installed", true) => {
            format!("drift repaired: {name} {version} was missing and is installed again")
        }
        ("removed", true) => {
            format!("drift repaired: {name} {version} was present and is removed again")
        }
        ("installing", true) | ("uninstalling", true) => {
            format!("drift found: {name} {version} changed outside Capstan; repairing")
        }
        ("installed", false) => format!("software installed: {name} {version}"),
        ("removed", false) => format!("software removed: {name} {version}"),
        ("failed", _) => format!("software failed: {name} {version}{why}"),
        ("not_applicable", _) => format!("software not applicable: {name} {version}{why}"),
        ("reboot_pending", _) => format!("software installed, reboot pending: {name} {version}"),
        _ => return None,
    })
}

impl Store {
    // -----------------------------------------------------------------------------------------
    // Assignments
    // -----------------------------------------------------------------------------------------

    /// Create an assignment. `Conflict` when the package already has an assignment to the
    /// same target or a deployment has the name; `Invalid` when a referenced row is gone.
    pub async fn create_assignment(&self, row: &AssignmentRow, audit: &AuditEntry) -> Result<()> {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO assignments ({ASSIGNMENT_COLS}, device_id, group_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                     $18, $19, $20)"
        ));
        let (device, group) = match row.target_kind.as_str() {
            "device" => (Some(&row.target_id), None),
            _ => (None, Some(&row.target_id)),
        };
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sql)
                .bind(&row.id)
                .bind(&row.package_id)
                .bind(&row.version_id)
                .bind(&row.target_kind)
                .bind(&row.target_id)
                .bind(&row.intent)
                .bind(row.leave_installed)
                .bind(&row.name)
                .bind(&row.description)
                .bind(row.available_from)
                .bind(row.deadline)
                .bind(&row.window_policy)
                .bind(&row.network)
                .bind(&row.rollout)
                .bind(row.paused)
                .bind(row.created_at)
                .bind(&row.created_by)
                .bind(row.updated_at)
                .bind(device)
                .bind(group)
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                        StoreError::Invalid(
                            "the package, version, device or group no longer exists".into(),
                        )
                    }
                    _ => conflict_or(
                        e,
                        "the package already has an assignment to this target (or a deployment \
                         has this name)",
                    ),
                })?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// An assignment by id, or a deployment by id or name.
    pub async fn assignment(&self, id_or_name: &str) -> Result<Option<AssignmentRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ASSIGNMENT_COLS} FROM assignments WHERE id = $1 OR LOWER(name) = LOWER($1)"
        ));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(id_or_name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every assignment, oldest first.
    pub async fn assignments(&self) -> Result<Vec<AssignmentRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ASSIGNMENT_COLS} FROM assignments ORDER BY created_at, id"
        ));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql).fetch_all(pool).await?
        }))
    }

    /// Pause or resume a deployment. `NotFound` when there is none with this id.
    pub async fn set_assignment_paused(
        &self,
        id: &str,
        paused: bool,
        at: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(
                "UPDATE assignments SET paused = $2, updated_at = $3
                 WHERE id = $1 AND name IS NOT NULL",
            )
            .bind(id)
            .bind(paused)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Delete an assignment; its devices' rows keep their state (the compiler decides what to
    /// remove). `NotFound` when it does not exist.
    pub async fn delete_assignment(&self, id: &str, audit: &AuditEntry) -> Result<()> {
        self.audited_change(
            "DELETE FROM assignments WHERE id = $1",
            id,
            None,
            None,
            audit,
        )
        .await
    }

    /// Names of what refers to a group and stops it from being deleted: assignments (by
    /// package name) and maintenance windows.
    pub async fn group_deploy_references(&self, group_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT 'assignment of ' || p.name FROM assignments a
                   JOIN packages p ON p.id = a.package_id WHERE a.group_id = $1
                 UNION ALL
                 SELECT 'maintenance window ' || w.name FROM maintenance_window_groups g
                   JOIN maintenance_windows w ON w.id = g.window_id WHERE g.group_id = $1",
            )
            .bind(group_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Ids of assignments of a package (all, or pinned to one version).
    pub async fn package_assignment_ids(
        &self,
        package_id: &str,
        version_id: Option<&str>,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id FROM assignments WHERE package_id = $1
                   AND ($2 IS NULL OR version_id = $2) ORDER BY id",
            )
            .bind(package_id)
            .bind(version_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Devices where Capstan installed the package and has not removed it yet.
    pub async fn package_managed_devices(&self, package_id: &str) -> Result<i64> {
        let row: (i64,) = with_pool!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM device_software WHERE package_id = $1 AND managed")
                .bind(package_id)
                .fetch_one(pool)
                .await?
        });
        Ok(row.0)
    }

    // -----------------------------------------------------------------------------------------
    // Maintenance windows
    // -----------------------------------------------------------------------------------------

    /// Create a window scoped to groups. `Conflict` on a duplicate name, `Invalid` when a group
    /// does not exist.
    pub async fn create_window(
        &self,
        row: &WindowRow,
        group_ids: &[String],
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO maintenance_windows (id, name, description, schedule, timezone,
                        created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.description)
            .bind(&row.schedule)
            .bind(&row.timezone)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "a maintenance window with this name exists"))?;
            for g in group_ids {
                let found: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM device_groups WHERE id = $1")
                        .bind(g)
                        .fetch_optional(&mut *tx)
                        .await?;
                if found.is_none() {
                    return Err(StoreError::Invalid(format!("group {g} not found")));
                }
                sqlx::query(
                    "INSERT INTO maintenance_window_groups (window_id, group_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&row.id)
                .bind(g)
                .execute(&mut *tx)
                .await?;
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every window, by name.
    pub async fn windows(&self) -> Result<Vec<WindowRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, description, schedule, timezone, created_at, updated_at
                 FROM maintenance_windows ORDER BY LOWER(name)",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every (window id, group id, group name).
    pub async fn window_groups(&self) -> Result<Vec<(String, String, String)>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT w.window_id, g.id, g.name FROM maintenance_window_groups w
                   JOIN device_groups g ON g.id = w.group_id ORDER BY g.name, g.id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Delete a window. `NotFound` when it does not exist.
    pub async fn delete_window(&self, id: &str, audit: &AuditEntry) -> Result<()> {
        self.audited_change(
            "DELETE FROM maintenance_windows WHERE id = $1",
            id,
            None,
            None,
            audit,
        )
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Compiling
    // -----------------------------------------------------------------------------------------

    /// The newest event's id (0 when there is none).
    pub async fn last_event_id(&self) -> Result<i64> {
        let row: (Option<i64>,) = with_pool!(self, |pool| {
            sqlx::query_as("SELECT MAX(id) FROM events")
                .fetch_one(pool)
                .await?
        });
        Ok(row.0.unwrap_or(0))
    }

    /// Ids of every device that is not revoked, in id order.
    pub async fn active_device_ids(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT id FROM devices WHERE revoked_at IS NULL ORDER BY id")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Devices whose compiled manifest may have changed by itself by `now`.
    pub async fn manifests_due(&self, now: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT device_id FROM device_manifests WHERE next_eval_at <= $1 ORDER BY device_id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Memberships, software states and current manifest revisions of `device_ids`.
    pub async fn compile_inputs(&self, device_ids: &[String]) -> Result<CompileInputs> {
        let mut out = CompileInputs::default();
        for chunk in device_ids.chunks(CHUNK) {
            let list = placeholders(1, chunk.len());
            let members = sqlx::AssertSqlSafe(format!(
                "SELECT device_id, group_id FROM group_members WHERE device_id IN ({list})"
            ));
            let states = sqlx::AssertSqlSafe(format!(
                "SELECT device_id, package_id, version, desired, status, managed,
                        leave_installed, requested_at
                 FROM device_software WHERE device_id IN ({list})"
            ));
            let manifests = sqlx::AssertSqlSafe(format!(
                "SELECT device_id, revision, digest, next_eval_at FROM device_manifests
                 WHERE device_id IN ({list})"
            ));
            with_pool!(self, |pool| {
                let mut q = sqlx::query_as::<_, (String, String)>(members);
                for d in chunk {
                    q = q.bind(d);
                }
                out.memberships.extend(q.fetch_all(pool).await?);
                let mut q = sqlx::query_as::<_, StateBrief>(states);
                for d in chunk {
                    q = q.bind(d);
                }
                out.states.extend(q.fetch_all(pool).await?);
                let mut q = sqlx::query_as::<_, (String, i64, String, Option<i64>)>(manifests);
                for d in chunk {
                    q = q.bind(d);
                }
                out.manifests.extend(q.fetch_all(pool).await?);
            });
        }
        Ok(out)
    }

    /// Inventory documents' `os.timezone` of `device_ids` (devices without one are absent).
    pub async fn device_timezones(&self, device_ids: &[String]) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for chunk in device_ids.chunks(CHUNK) {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT device_id, document FROM device_inventory WHERE device_id IN ({})",
                placeholders(1, chunk.len())
            ));
            let rows: Vec<(String, String)> = with_pool!(self, |pool| {
                let mut q = sqlx::query_as(sql);
                for d in chunk {
                    q = q.bind(d);
                }
                q.fetch_all(pool).await?
            });
            for (device, doc) in rows {
                let tz = serde_json::from_str::<serde_json::Value>(&doc)
                    .ok()
                    .and_then(|v| v.pointer("/os/timezone")?.as_str().map(str::to_string));
                if let Some(tz) = tz {
                    out.insert(device, tz);
                }
            }
        }
        Ok(out)
    }

    /// Write the compiled manifests that changed (one transaction), bringing each device's
    /// `device_software` rows in line with its items, and set the next evaluation time of
    /// devices whose manifest did not change (`next_evals`). A manifest whose stored revision
    /// moved since it was read (another compiler wrote it), or whose device is gone, is skipped;
    /// the ids written are returned. Everything is written with multi-row statements: a pass
    /// over thousands of devices is a few hundred statements, not tens of thousands.
    pub async fn write_compiled(
        &self,
        changed: &[CompiledManifest],
        next_evals: &[(String, Option<i64>)],
        now: i64,
    ) -> Result<Vec<String>> {
        const ROWS: usize = 100;
        let mut written: Vec<String> = Vec::new();
        let fresh: Vec<&CompiledManifest> = changed
            .iter()
            .filter(|m| m.previous_revision.is_none())
            .collect();
        let updated: Vec<&CompiledManifest> = changed
            .iter()
            .filter(|m| m.previous_revision.is_some())
            .collect();
        let tuple = |k: usize, width: usize| {
            let b = width * k;
            format!(
                "({})",
                (1..=width)
                    .map(|i| format!("${}", b + i))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let rows_of = |n: usize, width: usize| {
            (0..n)
                .map(|k| tuple(k, width))
                .collect::<Vec<_>>()
                .join(", ")
        };
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for part in fresh.chunks(ROWS) {
                // `WHERE EXISTS`: a device deleted meanwhile is skipped, not an error.
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO device_manifests (device_id, revision, digest, payload, compiled_at,
                            next_eval_at)
                     SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6
                     FROM (VALUES {}) AS v
                     WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = v.column1)
                     ON CONFLICT (device_id) DO NOTHING
                     RETURNING device_id",
                    rows_of(part.len(), 6)
                ));
                let mut q = sqlx::query_as::<_, (String,)>(sql);
                for m in part {
                    q = q
                        .bind(&m.device_id)
                        .bind(m.revision)
                        .bind(&m.digest)
                        .bind(&m.payload)
                        .bind(now)
                        .bind(m.next_eval);
                }
                written.extend(q.fetch_all(&mut *tx).await?.into_iter().map(|r| r.0));
            }
            for part in updated.chunks(ROWS) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE device_manifests SET revision = v.column2, digest = v.column3,
                            payload = v.column4, compiled_at = v.column5, next_eval_at = v.column6
                     FROM (VALUES {}) AS v
                     WHERE device_manifests.device_id = v.column1
                       AND device_manifests.revision = v.column7
                     RETURNING device_manifests.device_id",
                    rows_of(part.len(), 7)
                ));
                let mut q = sqlx::query_as::<_, (String,)>(sql);
                for m in part {
                    q = q
                        .bind(&m.device_id)
                        .bind(m.revision)
                        .bind(&m.digest)
                        .bind(&m.payload)
                        .bind(now)
                        .bind(m.next_eval)
                        .bind(m.previous_revision);
                }
                written.extend(q.fetch_all(&mut *tx).await?.into_iter().map(|r| r.0));
            }
            let done: std::collections::HashSet<&str> =
                written.iter().map(String::as_str).collect();
            let items: Vec<(&str, &DesiredItem)> = changed
                .iter()
                .filter(|m| done.contains(m.device_id.as_str()))
                .flat_map(|m| m.items.iter().map(move |i| (m.device_id.as_str(), i)))
                .collect();
            for part in items.chunks(ROWS) {
                // A new row, or a row whose desired state or version changed, starts over as
                // planned (or waiting, or available); otherwise the agent's last report stands.
                let values = (0..part.len())
                    .map(|k| {
                        let b = 8 * k;
                        format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, FALSE, ${}, 0, $1)",
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5,
                            b + 6,
                            b + 7,
                            b + 8,
                            b + 9
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO device_software (device_id, package_id, version, desired,
                            status, detail, assignment_id, managed, leave_installed,
                            drift_repairs, updated_at)
                     VALUES {values}
                     ON CONFLICT (device_id, package_id) DO UPDATE SET
                       status = CASE
                         WHEN device_software.version IS DISTINCT FROM excluded.version
                              OR device_software.desired IS DISTINCT FROM excluded.desired
                              OR device_software.status IN ('waiting', 'planned')
                         THEN excluded.status ELSE device_software.status END,
                       detail = CASE
                         WHEN device_software.version IS DISTINCT FROM excluded.version
                              OR device_software.desired IS DISTINCT FROM excluded.desired
                              OR device_software.status IN ('waiting', 'planned')
                         THEN excluded.detail ELSE device_software.detail END,
                       version = excluded.version,
                       desired = excluded.desired,
                       assignment_id = excluded.assignment_id,
                       leave_installed = excluded.leave_installed,
                       updated_at = excluded.updated_at"
                ));
                let mut q = sqlx::query(sql).bind(now);
                for (device, item) in part {
                    let initial = if item.hold.is_some() {
                        "waiting"
                    } else if item.desired == "available" {
                        "available"
                    } else {
                        "planned"
                    };
                    q = q
                        .bind(*device)
                        .bind(&item.package_id)
                        .bind(&item.version)
                        .bind(&item.desired)
                        .bind(initial)
                        .bind(&item.hold)
                        .bind(&item.assignment_id)
                        .bind(item.leave_installed);
                }
                q.execute(&mut *tx).await?;
            }
            // Packages that left a written manifest keep their row (status, history) without a
            // desired state. (Clearing only these — not every row before the upsert — keeps an
            // unchanged item's reported status when the manifest around it changes.)
            let left: Vec<(&str, &String)> = changed
                .iter()
                .filter(|m| done.contains(m.device_id.as_str()))
                .flat_map(|m| m.left.iter().map(move |p| (m.device_id.as_str(), p)))
                .collect();
            for part in left.chunks(ROWS * 2) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE device_software SET desired = NULL, assignment_id = NULL
                     FROM (VALUES {}) AS v
                     WHERE device_software.device_id = v.column1
                       AND device_software.package_id = v.column2",
                    rows_of(part.len(), 2)
                ));
                let mut q = sqlx::query(sql);
                for (device, package) in part {
                    q = q.bind(*device).bind(*package);
                }
                q.execute(&mut *tx).await?;
            }
            for part in next_evals.chunks(ROWS * 2) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE device_manifests SET next_eval_at = v.column2
                     FROM (VALUES {}) AS v WHERE device_manifests.device_id = v.column1",
                    rows_of(part.len(), 2)
                ));
                let mut q = sqlx::query(sql);
                for (device, next) in part {
                    q = q.bind(device).bind(next);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(written)
    }

    /// A device's stored manifest.
    pub async fn manifest(&self, device_id: &str) -> Result<Option<ManifestRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT device_id, revision, digest, payload, compiled_at, next_eval_at,
                        acked_revision, acked_at
                 FROM device_manifests WHERE device_id = $1",
            )
            .bind(device_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Current manifest revisions of `device_ids` (devices without a manifest are absent).
    pub async fn manifest_revisions(&self, device_ids: &[String]) -> Result<HashMap<String, i64>> {
        let mut out = HashMap::new();
        for chunk in device_ids.chunks(CHUNK) {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT device_id, revision FROM device_manifests WHERE device_id IN ({})",
                placeholders(1, chunk.len())
            ));
            let rows: Vec<(String, i64)> = with_pool!(self, |pool| {
                let mut q = sqlx::query_as(sql);
                for d in chunk {
                    q = q.bind(d);
                }
                q.fetch_all(pool).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------------------------
    // Status
    // -----------------------------------------------------------------------------------------

    /// Record an agent's item reports for `device_id`: status, detail, exit code, log and
    /// progress per package, a history row whenever the status changes (or drift is reported,
    /// or a log arrives), timeline rows for installs, removals, failures and drift, and a
    /// `software.status` event per change — in one transaction. `complete` acknowledges
    /// `revision`. Reports for packages without a row are ignored and returned.
    pub async fn record_item_reports(
        &self,
        device_id: &str,
        revision: i64,
        complete: bool,
        reports: &[ItemReportRow],
        now: i64,
    ) -> Result<ReportOutcome> {
        let mut outcome = ReportOutcome::default();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for r in reports {
                let current: Option<CurrentItem> = sqlx::query_as(
                    "SELECT s.status, s.desired, s.assignment_id, p.name, s.managed
                         FROM device_software s JOIN packages p ON p.id = s.package_id
                         WHERE s.device_id = $1 AND s.package_id = $2",
                )
                .bind(device_id)
                .bind(&r.package_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((old_status, desired, assignment, name, managed)) = current else {
                    outcome.unknown.push(r.package_id.clone());
                    continue;
                };
                // Capstan owns what it installed (or found installed while required) until it
                // is removed.
                let managed = match r.status.as_str() {
                    "installed" | "reboot_pending" => {
                        managed || desired.as_deref() == Some("present")
                    }
                    "removed" => false,
                    _ => managed,
                };
                let (received, total) = r.progress.unzip();
                sqlx::query(
                    "UPDATE device_software SET status = $3, detail = $4, exit_code = $5,
                            log = COALESCE($6, log), progress_received = $7, progress_total = $8,
                            managed = $9, drift_repairs = drift_repairs + $10,
                            requested_at = CASE WHEN $3 IN ('installed', 'reboot_pending')
                                                THEN NULL ELSE requested_at END,
                            updated_at = $11
                     WHERE device_id = $1 AND package_id = $2",
                )
                .bind(device_id)
                .bind(&r.package_id)
                .bind(&r.status)
                .bind(&r.detail)
                .bind(r.exit_code)
                .bind(&r.log)
                .bind(received)
                .bind(total)
                .bind(managed)
                .bind(i64::from(
                    r.drift && matches!(r.status.as_str(), "installed" | "removed"),
                ))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if old_status == r.status && !r.drift && r.log.is_none() {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO device_software_history (device_id, package_id, at, status,
                            version, detail, exit_code, log, drift)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(device_id)
                .bind(&r.package_id)
                .bind(r.at)
                .bind(&r.status)
                .bind(&r.version)
                .bind(&r.detail)
                .bind(r.exit_code)
                .bind(&r.log)
                .bind(r.drift)
                .execute(&mut *tx)
                .await?;
                if old_status == r.status {
                    continue;
                }
                outcome.changed += 1;
                if let Some(summary) =
                    timeline_summary(&name, &r.version, &r.status, r.drift, r.detail.as_deref())
                {
                    sqlx::query(
                        "INSERT INTO device_timeline (device_id, at, kind, category, field, change,
                                old_value, new_value, summary)
                         VALUES ($1, $2, $3, 'software', $4, 'modified', $5, $6, $7)",
                    )
                    .bind(device_id)
                    .bind(now)
                    .bind(if r.drift {
                        "software_drift"
                    } else {
                        "software"
                    })
                    .bind(&name)
                    .bind(&old_status)
                    .bind(&r.status)
                    .bind(&summary)
                    .execute(&mut *tx)
                    .await?;
                }
                let data = serde_json::json!({
                    "package": name,
                    "version": r.version,
                    "status": r.status,
                    "previous": old_status,
                    "assignment": assignment,
                    "exit_code": r.exit_code,
                    "drift": r.drift,
                })
                .to_string();
                sqlx::query(
                    "INSERT INTO events (at, kind, subject, object, data)
                     VALUES ($1, 'software.status', $2, $3, $4)",
                )
                .bind(now)
                .bind(device_id)
                .bind(&r.package_id)
                .bind(data)
                .execute(&mut *tx)
                .await?;
            }
            if complete {
                sqlx::query(
                    "UPDATE device_manifests SET acked_revision = $2, acked_at = $3
                     WHERE device_id = $1 AND revision >= $2",
                )
                .bind(device_id)
                .bind(revision)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(outcome)
    }

    /// Mark an available package as requested on a device (someone asked to install it).
    /// `NotFound` when the device's manifest does not offer it.
    pub async fn request_software(
        &self,
        device_id: &str,
        package_id: &str,
        now: i64,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let n = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE device_software SET requested_at = $3, updated_at = $3
                 WHERE device_id = $1 AND package_id = $2 AND desired = 'available'",
            )
            .bind(device_id)
            .bind(package_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A device's software rows, by package name.
    pub async fn device_software(&self, device_id: &str) -> Result<Vec<SoftwareStateRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {STATE_COLS} FROM {STATE_FROM} WHERE s.device_id = $1 ORDER BY p.name"
        ));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql).bind(device_id).fetch_all(pool).await?
        }))
    }

    /// The rows an assignment decides, failed first, then by hostname; at most `limit`.
    pub async fn assignment_software(
        &self,
        assignment_id: &str,
        limit: i64,
    ) -> Result<Vec<SoftwareStateRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {STATE_COLS} FROM {STATE_FROM} WHERE s.assignment_id = $1
             ORDER BY CASE WHEN s.status = 'failed' THEN 0 ELSE 1 END, LOWER(d.hostname), s.device_id
             LIMIT $2"
        ));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(assignment_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Devices per status of the rows an assignment decides.
    pub async fn assignment_status_counts(
        &self,
        assignment_id: &str,
    ) -> Result<Vec<(String, i64)>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM device_software WHERE assignment_id = $1
                 GROUP BY status ORDER BY status",
            )
            .bind(assignment_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Failures of an assignment's devices grouped by exit code: (code, devices, one detail).
    pub async fn assignment_failures(
        &self,
        assignment_id: &str,
    ) -> Result<Vec<(Option<i64>, i64, Option<String>)>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT exit_code, COUNT(*), MIN(detail) FROM device_software
                 WHERE assignment_id = $1 AND status = 'failed'
                 GROUP BY exit_code ORDER BY COUNT(*) DESC, exit_code",
            )
            .bind(assignment_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The history of one package on one device, newest first.
    pub async fn software_history(
        &self,
        device_id: &str,
        package_id: &str,
        limit: i64,
    ) -> Result<Vec<SoftwareHistoryRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at, status, version, detail, exit_code, log, drift
                 FROM device_software_history WHERE device_id = $1 AND package_id = $2
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(device_id)
            .bind(package_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

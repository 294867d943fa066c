//! Depot sources (`depot_sources`): HTTP mirrors and file shares agents may download
//! artifacts from, their group scope (`depot_source_groups`) and what was copied to each
//! (`depot_source_blobs`), from which the per-source status and the drift report are read.

use crate::BeginWrite;
use crate::{AuditEntry, Result, Store, StoreError, conflict_or, with_pool};

/// One source.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SourceRow {
    pub id: String,
    pub name: String,
    /// `http` or `path`.
    pub kind: String,
    /// The base URL or directory agents use.
    pub location: String,
    /// The directory the server writes to when syncing, if it can.
    pub sync_path: Option<String>,
    pub priority: i64,
    /// Devices this source serves do not fall back to the server.
    pub exclusive: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What is recorded about one blob on one source.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SourceBlobRow {
    pub source_id: String,
    pub sha256: String,
    /// `pending`, `synced`, `failed` or `missing`.
    pub state: String,
    pub error: Option<String>,
    pub updated_at: i64,
}

/// One artifact of the catalogue: which version it belongs to and its blob.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CatalogueArtifactRow {
    pub package: String,
    pub version: String,
    pub platform: String,
    pub arch: String,
    pub sha256: String,
    pub size: i64,
    pub file_name: String,
}

/// Scope source `$id` to each of `$groups` inside transaction `$tx` (one backend's, inside
/// `with_pool!`); `Invalid` when a group does not exist.
macro_rules! add_source_groups {
    ($tx:ident, $id:expr, $groups:expr) => {
        for g in $groups {
            let found: Option<(String,)> =
                sqlx::query_as("SELECT id FROM device_groups WHERE id = $1")
                    .bind(g)
                    .fetch_optional(&mut *$tx)
                    .await?;
            if found.is_none() {
                return Err(StoreError::Invalid(format!("group {g} not found")));
            }
            sqlx::query(
                "INSERT INTO depot_source_groups (source_id, group_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind($id)
            .bind(g)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

const SOURCE_COLS: &str =
    "id, name, kind, location, sync_path, priority, exclusive, created_at, updated_at";

impl Store {
    /// Create a source scoped to `group_ids` (none: every device). `Conflict` on a duplicate
    /// name; `Invalid` when a group does not exist.
    pub async fn create_source(
        &self,
        row: &SourceRow,
        group_ids: &[String],
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO depot_sources (id, name, kind, location, sync_path, priority, exclusive, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.kind)
            .bind(&row.location)
            .bind(&row.sync_path)
            .bind(row.priority)
            .bind(row.exclusive)
            .bind(row.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "a depot source with this name exists"))?;
            add_source_groups!(tx, &row.id, group_ids);
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Replace a source's settings and (when `group_ids` is given) its scope.
    pub async fn update_source(
        &self,
        row: &SourceRow,
        group_ids: Option<&[String]>,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE depot_sources SET location = $2, sync_path = $3, priority = $4,
                        exclusive = $5, updated_at = $6 WHERE id = $1",
            )
            .bind(&row.id)
            .bind(&row.location)
            .bind(&row.sync_path)
            .bind(row.priority)
            .bind(row.exclusive)
            .bind(row.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            if let Some(groups) = group_ids {
                sqlx::query("DELETE FROM depot_source_groups WHERE source_id = $1")
                    .bind(&row.id)
                    .execute(&mut *tx)
                    .await?;
                add_source_groups!(tx, &row.id, groups);
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Delete a source with its scope and sync records. `NotFound` when it does not exist.
    pub async fn delete_source(&self, id: &str, audit: &AuditEntry) -> Result<()> {
        self.audited_change(
            "DELETE FROM depot_sources WHERE id = $1",
            id,
            None,
            None,
            audit,
        )
        .await
    }

    /// A source by id or name.
    pub async fn source(&self, id_or_name: &str) -> Result<Option<SourceRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {SOURCE_COLS} FROM depot_sources WHERE id = $1 OR name = $1"
        ));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(id_or_name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every source, by priority then name.
    pub async fn sources(&self) -> Result<Vec<SourceRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {SOURCE_COLS} FROM depot_sources ORDER BY priority, name"
        ));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql).fetch_all(pool).await?
        }))
    }

    /// Every scope pair as (source id, group id, group name), by group name.
    pub async fn source_groups(&self) -> Result<Vec<(String, String, String)>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.source_id, g.id, g.name FROM depot_source_groups s
                   JOIN device_groups g ON g.id = s.group_id
                  ORDER BY g.name, g.id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Record the state of a blob on a source (insert or replace).
    pub async fn set_source_blob(&self, r: &SourceBlobRow) -> Result<()> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO depot_source_blobs (source_id, sha256, state, error, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (source_id, sha256) DO UPDATE
                    SET state = excluded.state, error = excluded.error, updated_at = excluded.updated_at",
            )
            .bind(&r.source_id)
            .bind(&r.sha256)
            .bind(&r.state)
            .bind(&r.error)
            .bind(r.updated_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// What is recorded for the blobs on one source (`Some`) or on every source (`None`).
    pub async fn source_blobs(&self, source_id: Option<&str>) -> Result<Vec<SourceBlobRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT source_id, sha256, state, error, updated_at FROM depot_source_blobs
                  WHERE $1 IS NULL OR source_id = $1
                  ORDER BY source_id, sha256",
            )
            .bind(source_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every artifact of every version, by package, version, platform and architecture.
    pub async fn catalogue_artifacts(&self) -> Result<Vec<CatalogueArtifactRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT p.name AS package, v.version, a.platform, a.arch, a.sha256, a.size, a.file_name
                   FROM package_artifacts a
                   JOIN package_versions v ON v.id = a.version_id
                   JOIN packages p ON p.id = v.package_id
                  ORDER BY p.name, v.created_at, a.platform, a.arch",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// The groups a device belongs to directly (any source of membership).
    pub async fn device_group_ids(&self, device_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT group_id FROM group_members WHERE device_id = $1")
                .bind(device_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

impl Store {
    /// Every group's parent (`None` for top-level groups), for walking up the tree.
    pub async fn group_parents(&self) -> Result<Vec<(String, Option<String>)>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as("SELECT id, parent_id FROM device_groups")
                .fetch_all(pool)
                .await?
        }))
    }
}

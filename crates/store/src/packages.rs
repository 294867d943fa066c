//! Software packages (`packages`), their versions (`package_versions`, the spec as validated
//! JSON) and the artifacts of each version (`package_artifacts`, each naming a depot blob).
//! A version is created with its artifacts in one transaction that also checks every blob is
//! recorded, and a blob named by an artifact cannot be deleted (see `delete_blob`).

use crate::BeginWrite;
use crate::{AuditEntry, Result, Store, StoreError, conflict_or, with_pool};

/// One package.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PackageRow {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub publisher: Option<String>,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Number of versions (computed).
    pub version_count: i64,
    /// The most recently created version (computed).
    pub latest_version: Option<String>,
}

/// One version; `spec` is the JSON text of `capstan_proto::software::VersionSpec`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionRow {
    pub id: String,
    pub package_id: String,
    pub package: String,
    pub version: String,
    pub spec: String,
    pub created_at: i64,
    pub created_by: String,
}

/// One artifact of a version.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ArtifactRow {
    pub version_id: String,
    pub platform: String,
    pub arch: String,
    pub sha256: String,
    pub size: i64,
    pub file_name: String,
}

/// A version to create (its artifacts' `version_id` and `size` are filled by the store).
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub id: String,
    pub package_id: String,
    pub version: String,
    pub spec: String,
    pub created_at: i64,
    pub created_by: String,
    pub artifacts: Vec<ArtifactRow>,
}

/// Changes to a package's descriptive fields (`None` keeps a field).
#[derive(Debug, Clone, Default)]
pub struct PackageUpdate {
    pub display_name: Option<String>,
    pub publisher: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

const PACKAGE_SELECT: &str = "SELECT p.id, p.name, p.display_name, p.publisher, p.description,
        p.created_at, p.updated_at,
        (SELECT COUNT(*) FROM package_versions v WHERE v.package_id = p.id) AS version_count,
        (SELECT v.version FROM package_versions v WHERE v.package_id = p.id
          ORDER BY v.created_at DESC, v.id DESC LIMIT 1) AS latest_version
   FROM packages p";

const VERSION_SELECT: &str = "SELECT v.id, v.package_id, p.name AS package, v.version, v.spec,
        v.created_at, v.created_by
   FROM package_versions v JOIN packages p ON p.id = v.package_id";

impl Store {
    /// Create a package. `Conflict` when the name is taken.
    pub async fn create_package(&self, row: &PackageRow, audit: &AuditEntry) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO packages (id, name, display_name, publisher, description, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.display_name)
            .bind(&row.publisher)
            .bind(&row.description)
            .bind(row.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "a package with this name exists"))?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A package by id or by name.
    pub async fn package(&self, id_or_name: &str) -> Result<Option<PackageRow>> {
        let sql = sqlx::AssertSqlSafe(format!("{PACKAGE_SELECT} WHERE p.id = $1 OR p.name = $1"));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(id_or_name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// One page of packages ordered by display name, optionally filtered by a case-insensitive
    /// substring of the name or display name, and the number of matches.
    pub async fn list_packages(
        &self,
        search: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<PackageRow>, i64)> {
        let pattern = search.map(|s| {
            let escaped = s
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let filter = "($1 IS NULL OR LOWER(p.name) LIKE $1 ESCAPE '\\' OR LOWER(p.display_name) LIKE $1 ESCAPE '\\')";
        let sql = sqlx::AssertSqlSafe(format!(
            "{PACKAGE_SELECT} WHERE {filter} ORDER BY LOWER(p.display_name), p.id LIMIT $2 OFFSET $3"
        ));
        let count_sql =
            sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM packages p WHERE {filter}"));
        Ok(with_pool!(self, |pool| {
            let rows = sqlx::query_as(sql)
                .bind(&pattern)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let (total,): (i64,) = sqlx::query_as(count_sql)
                .bind(&pattern)
                .fetch_one(pool)
                .await?;
            (rows, total)
        }))
    }

    /// Change a package's descriptive fields. `NotFound` when it does not exist.
    pub async fn update_package(
        &self,
        id: &str,
        u: &PackageUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let found: Option<(Option<String>, Option<String>)> =
                sqlx::query_as("SELECT publisher, description FROM packages WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((publisher, description)) = found else {
                return Err(StoreError::NotFound);
            };
            sqlx::query(
                "UPDATE packages SET display_name = COALESCE($2, display_name), publisher = $3,
                        description = $4, updated_at = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(&u.display_name)
            .bind(u.publisher.clone().unwrap_or(publisher))
            .bind(u.description.clone().unwrap_or(description))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Delete a package with all its versions and their artifacts (the blobs stay in the
    /// depot). `NotFound` when it does not exist.
    pub async fn delete_package(&self, id: &str, audit: &AuditEntry) -> Result<()> {
        self.audited_change("DELETE FROM packages WHERE id = $1", id, None, None, audit)
            .await
    }

    /// Create a version with its artifacts. `Conflict` when the package already has this
    /// version, `NotFound` when the package is gone, `Invalid` when an artifact names a blob
    /// the depot does not hold. Artifact sizes are taken from the blob records.
    pub async fn create_version(&self, v: &NewVersion, audit: &AuditEntry) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let pkg: Option<(String,)> = sqlx::query_as("SELECT id FROM packages WHERE id = $1")
                .bind(&v.package_id)
                .fetch_optional(&mut *tx)
                .await?;
            if pkg.is_none() {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "INSERT INTO package_versions (id, package_id, version, spec, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&v.id)
            .bind(&v.package_id)
            .bind(&v.version)
            .bind(&v.spec)
            .bind(v.created_at)
            .bind(&v.created_by)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "the package already has this version"))?;
            for a in &v.artifacts {
                let size: Option<(i64,)> =
                    sqlx::query_as("SELECT size FROM depot_blobs WHERE sha256 = $1")
                        .bind(&a.sha256)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((size,)) = size else {
                    return Err(StoreError::Invalid(format!(
                        "the depot holds no blob {}; upload the file first",
                        a.sha256
                    )));
                };
                sqlx::query(
                    "INSERT INTO package_artifacts (version_id, platform, arch, sha256, size, file_name)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&v.id)
                .bind(&a.platform)
                .bind(&a.arch)
                .bind(&a.sha256)
                .bind(size)
                .bind(&a.file_name)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    conflict_or(e, "two artifacts of the version are for the same platform and architecture")
                })?;
            }
            sqlx::query("UPDATE packages SET updated_at = $2 WHERE id = $1")
                .bind(&v.package_id)
                .bind(v.created_at)
                .execute(&mut *tx)
                .await?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Replace a version's spec (its artifacts stay). `NotFound` when it does not exist.
    pub async fn update_version_spec(
        &self,
        version_id: &str,
        spec: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE package_versions SET spec = $2 WHERE id = $1")
                .bind(version_id)
                .bind(spec)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "UPDATE packages SET updated_at = $2
                  WHERE id = (SELECT package_id FROM package_versions WHERE id = $1)",
            )
            .bind(version_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Delete a version and its artifact rows. `NotFound` when it does not exist.
    pub async fn delete_version(&self, version_id: &str, audit: &AuditEntry) -> Result<()> {
        self.audited_change(
            "DELETE FROM package_versions WHERE id = $1",
            version_id,
            None,
            None,
            audit,
        )
        .await
    }

    /// A package's versions, newest first.
    pub async fn package_versions(&self, package_id: &str) -> Result<Vec<VersionRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{VERSION_SELECT} WHERE v.package_id = $1 ORDER BY v.created_at DESC, v.id DESC"
        ));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql).bind(package_id).fetch_all(pool).await?
        }))
    }

    /// One version of a package by its version string, or the newest with `None`.
    pub async fn package_version(
        &self,
        package_id: &str,
        version: Option<&str>,
    ) -> Result<Option<VersionRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{VERSION_SELECT} WHERE v.package_id = $1 AND ($2 IS NULL OR v.version = $2)
             ORDER BY v.created_at DESC, v.id DESC LIMIT 1"
        ));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(package_id)
                .bind(version)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The artifacts of several versions (a plan's few steps), in the order of `version_ids`
    /// and then by platform and architecture.
    pub async fn version_artifacts(&self, version_ids: &[String]) -> Result<Vec<ArtifactRow>> {
        let mut out = Vec::new();
        with_pool!(self, |pool| {
            for id in version_ids {
                let rows: Vec<ArtifactRow> = sqlx::query_as(
                    "SELECT version_id, platform, arch, sha256, size, file_name FROM package_artifacts
                      WHERE version_id = $1 ORDER BY platform, arch",
                )
                .bind(id)
                .fetch_all(pool)
                .await?;
                out.extend(rows);
            }
        });
        Ok(out)
    }

    /// The versions (as `package version`) whose artifacts name a blob.
    pub async fn blob_users(&self, sha256: &str) -> Result<Vec<String>> {
        let rows: Vec<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT p.name, v.version FROM package_artifacts a
                   JOIN package_versions v ON v.id = a.version_id
                   JOIN packages p ON p.id = v.package_id
                  WHERE a.sha256 = $1 ORDER BY p.name, v.version",
            )
            .bind(sha256)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(p, v)| format!("{p} {v}")).collect())
    }
}

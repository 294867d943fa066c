//! Records of the software depot's blobs (`depot_blobs`): which content-addressed blobs are
//! part of the depot, how big they are and who uploaded them first. The bytes themselves live
//! in the server's blob store; a row is what makes a stored file a blob (garbage collection
//! removes files no row names), so a row is written only after its file is in place.

use crate::BeginWrite;
use crate::{AuditEntry, Result, Store, StoreError, with_pool};

/// One blob record.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlobRow {
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub size: i64,
    pub created_at: i64,
    /// `user:<username>` of the first uploader.
    pub created_by: String,
}

impl Store {
    /// Record a blob whose bytes are stored, with the upload's audit entry, in one
    /// transaction. Returns `false` when the blob was already recorded (a de-duplicated upload:
    /// the first record, with its uploader and time, stays).
    pub async fn insert_blob(&self, row: &BlobRow, audit: &AuditEntry) -> Result<bool> {
        let mut audit = audit.clone();
        Ok(with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let created = sqlx::query(
                "INSERT INTO depot_blobs (sha256, size, created_at, created_by)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&row.sha256)
            .bind(row.size)
            .bind(row.created_at)
            .bind(&row.created_by)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if let serde_json::Value::Object(map) = &mut audit.details {
                map.insert("created".into(), created.into());
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
            created
        }))
    }

    /// The record of one blob.
    pub async fn blob(&self, sha256: &str) -> Result<Option<BlobRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT sha256, size, created_at, created_by FROM depot_blobs WHERE sha256 = $1",
            )
            .bind(sha256)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// One page of blob records, newest first, and the total number of records.
    pub async fn list_blobs(&self, offset: i64, limit: i64) -> Result<(Vec<BlobRow>, i64)> {
        Ok(with_pool!(self, |pool| {
            let rows = sqlx::query_as(
                "SELECT sha256, size, created_at, created_by FROM depot_blobs
                 ORDER BY created_at DESC, sha256 LIMIT $1 OFFSET $2",
            )
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM depot_blobs")
                .fetch_one(pool)
                .await?;
            (rows, total)
        }))
    }

    /// Every recorded blob's digest (for garbage collection).
    pub async fn blob_digests(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT sha256 FROM depot_blobs")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Delete a blob's record (`NotFound` when there is none; `Conflict` naming the package
    /// versions whose artifacts use it), with its audit entry. The caller removes the stored
    /// file afterwards.
    pub async fn delete_blob(&self, sha256: &str, audit: &AuditEntry) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let users: Vec<(String, String)> = sqlx::query_as(
                "SELECT p.name, v.version FROM package_artifacts a
                   JOIN package_versions v ON v.id = a.version_id
                   JOIN packages p ON p.id = v.package_id
                  WHERE a.sha256 = $1 ORDER BY p.name, v.version LIMIT 10",
            )
            .bind(sha256)
            .fetch_all(&mut *tx)
            .await?;
            if !users.is_empty() {
                let names: Vec<String> = users.iter().map(|(p, v)| format!("{p} {v}")).collect();
                return Err(StoreError::Conflict(format!(
                    "the blob is an artifact of {}; delete those versions first",
                    names.join(", ")
                )));
            }
            let done = sqlx::query("DELETE FROM depot_blobs WHERE sha256 = $1")
                .bind(sha256)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Write an audit entry on its own, for actions whose effects are not rows (a depot garbage
    /// collection changes stored files) or are written later by background work (a sync).
    pub async fn record_audit(&self, audit: &AuditEntry) -> Result<()> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| audit.insert(pool).await?);
        Ok(())
    }
}

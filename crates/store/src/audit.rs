//! The audit log: who did what to which object, written in the same transaction as the change
//! it describes, so there is never a change without its record (or a record without its change).

use crate::BeginWrite;
use crate::{Result, Store, with_pool};

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: i64,
    /// `user:<username>` or `api_token:<id>` or `system`.
    pub actor: String,
    /// Dotted verb, e.g. `enrollment_token.create`, `device.delete`.
    pub action: String,
    pub target: Option<String>,
    /// JSON object with before/after or other details. Never secrets.
    pub details: serde_json::Value,
}

/// Which audit entries to read: newest first, ids below `before`, optionally only one actor's
/// or one action's.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub before: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: String,
}

impl AuditEntry {
    pub(crate) async fn insert<'c, E, DB>(&self, ex: E) -> Result<()>
    where
        DB: sqlx::Database,
        E: sqlx::Executor<'c, Database = DB>,
        for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
        i64: sqlx::Encode<'c, DB> + sqlx::Type<DB>,
        String: sqlx::Encode<'c, DB> + sqlx::Type<DB>,
        Option<String>: sqlx::Encode<'c, DB> + sqlx::Type<DB>,
    {
        sqlx::query::<DB>(
            "INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.at)
        .bind(self.actor.clone())
        .bind(self.action.clone())
        .bind(self.target.clone())
        .bind(self.details.to_string())
        .execute(ex)
        .await?;
        Ok(())
    }
}

/// A device timeline line written together with an audited change.
pub(crate) struct TimelineNote {
    pub kind: &'static str,
    pub summary: String,
}

impl Store {
    /// The shape of most operator actions on one row: run `sql` with `$1 = id` (and
    /// `$2 = at` when given), fail with `NotFound` when no row matched, optionally note it in
    /// the device timeline (the row is a device), and write the audit entry — one transaction.
    pub(crate) async fn audited_change(
        &self,
        sql: &'static str,
        id: &str,
        at: Option<i64>,
        note: Option<TimelineNote>,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut query = sqlx::query(sql).bind(id);
            if let Some(at) = at {
                query = query.bind(at);
            }
            if query.execute(&mut *tx).await?.rows_affected() == 0 {
                return Err(crate::StoreError::NotFound);
            }
            if let Some(note) = &note {
                sqlx::query(
                    "INSERT INTO device_timeline (device_id, at, kind, summary) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(at.unwrap_or(audit.at))
                .bind(note.kind)
                .bind(&note.summary)
                .execute(&mut *tx)
                .await?;
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>> {
        self.audit_entries(&AuditFilter {
            limit,
            ..Default::default()
        })
        .await
    }

    /// Audit entries matching `f`, newest first (ids are monotonic, so paging by `before`
    /// never skips or repeats an entry).
    pub async fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at, actor, action, target, details FROM audit_log
                 WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR actor = $2)
                   AND ($3 IS NULL OR action = $3)
                 ORDER BY id DESC LIMIT $4",
            )
            .bind(f.before)
            .bind(f.actor.as_deref())
            .bind(f.action.as_deref())
            .bind(f.limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

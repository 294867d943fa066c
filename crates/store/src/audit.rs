//! The audit log: who did what to which object, written in the same transaction as the change
//! it describes, so there is never a change without its record (or a record without its change).

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

impl Store {
    /// Newest audit entries first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at, actor, action, target, details FROM audit_log ORDER BY id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

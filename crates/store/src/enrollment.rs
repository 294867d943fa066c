//! Enrollment tokens and the enrollment transaction: consuming one use of a token and creating
//! (or, for a machine that enrolled before, re-keying) its device happen atomically, so a token
//! limited to N uses enrolls at most N devices even under concurrent requests.

use crate::BeginWrite;
use crate::{AuditEntry, Result, Store, StoreError, decode_json, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnrollmentTokenRow {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub created_by: String,
    pub expires_at: i64,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub default_tags: String,
    pub revoked_at: Option<i64>,
}

impl EnrollmentTokenRow {
    pub fn tags(&self) -> Vec<String> {
        decode_json("enrollment_tokens.default_tags", &self.default_tags).unwrap_or_default()
    }

    /// `active`, `expired`, `exhausted` or `revoked` at time `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            "exhausted"
        } else {
            "active"
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEnrollmentToken {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub created_by: String,
    pub expires_at: i64,
    pub max_uses: Option<i64>,
    pub default_tags: Vec<String>,
}

/// Everything the enrollment transaction needs; the token secret was already verified.
#[derive(Debug, Clone)]
pub struct EnrollInput {
    pub token_id: String,
    pub now: i64,
    /// Id for a new device (ignored when the identity is already known).
    pub new_device_id: String,
    pub secret_hash: String,
    pub identity_key: String,
    pub identity_source: String,
    pub hostname: String,
    pub os_family: String,
    pub agent_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollOutcome {
    pub device_id: String,
    pub reenrolled: bool,
}

/// Why enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("enrollment token is unknown or revoked")]
    Invalid,
    #[error("enrollment token has expired")]
    Expired,
    #[error("enrollment token has been used {0} times, its maximum")]
    Exhausted(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EnrollError {
    fn from(e: sqlx::Error) -> Self {
        EnrollError::Store(StoreError::Database(e))
    }
}

const TOKEN_COLS: &str = "id, name, secret_hash, created_at, created_by, expires_at, max_uses, uses, default_tags, revoked_at";

impl Store {
    pub async fn create_enrollment_token(
        &self,
        t: &NewEnrollmentToken,
        audit: &AuditEntry,
    ) -> Result<()> {
        let tags = serde_json::to_string(&t.default_tags).unwrap_or_else(|_| "[]".into());
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO enrollment_tokens (id, name, secret_hash, created_at, created_by, expires_at,
                                                max_uses, uses, default_tags, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, NULL)",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.secret_hash)
            .bind(t.created_at)
            .bind(&t.created_by)
            .bind(t.expires_at)
            .bind(t.max_uses)
            .bind(&tags)
            .execute(&mut *tx)
            .await?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn enrollment_token(&self, id: &str) -> Result<Option<EnrollmentTokenRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM enrollment_tokens WHERE id = $1"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// All enrollment tokens, newest first.
    pub async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM enrollment_tokens ORDER BY created_at DESC, id"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await?))
    }

    pub async fn revoke_enrollment_token(
        &self,
        id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.audited_change(
            "UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            id,
            Some(now),
            None,
            audit,
        )
        .await
    }

    /// Consume one use of the token and create or re-key the device, atomically.
    pub async fn enroll_device(
        &self,
        input: &EnrollInput,
    ) -> std::result::Result<EnrollOutcome, EnrollError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // The conditional update is the whole admission check: it cannot over-consume,
            // whatever runs concurrently.
            let consumed: Option<(String,)> = sqlx::query_as(
                "UPDATE enrollment_tokens SET uses = uses + 1
                 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2
                   AND (max_uses IS NULL OR uses < max_uses)
                 RETURNING default_tags",
            )
            .bind(&input.token_id)
            .bind(input.now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((tags_json,)) = consumed else {
                drop(tx);
                let row = self.enrollment_token(&input.token_id).await?;
                return Err(match row {
                    None => EnrollError::Invalid,
                    Some(r) if r.revoked_at.is_some() => EnrollError::Invalid,
                    Some(r) if r.expires_at <= input.now => EnrollError::Expired,
                    Some(r) => EnrollError::Exhausted(r.uses),
                });
            };
            let token_tags: Vec<String> =
                decode_json("enrollment_tokens.default_tags", &tags_json)?;

            let existing: Option<(String, String)> =
                sqlx::query_as("SELECT id, tags FROM devices WHERE identity_key = $1")
                    .bind(&input.identity_key)
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = match existing {
                Some((id, tags)) => {
                    let mut merged: Vec<String> = decode_json("devices.tags", &tags)?;
                    for t in token_tags {
                        if !merged.contains(&t) {
                            merged.push(t);
                        }
                    }
                    sqlx::query(
                        "UPDATE devices SET secret_hash = $2, hostname = $3, os_family = $4,
                                agent_version = $5, identity_source = $6, revoked_at = NULL,
                                enrollment_token_id = $7, tags = $8, last_seen_at = $9
                         WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(&input.secret_hash)
                    .bind(&input.hostname)
                    .bind(&input.os_family)
                    .bind(&input.agent_version)
                    .bind(&input.identity_source)
                    .bind(&input.token_id)
                    .bind(serde_json::to_string(&merged).unwrap_or_else(|_| "[]".into()))
                    .bind(input.now)
                    .execute(&mut *tx)
                    .await?;
                    EnrollOutcome {
                        device_id: id,
                        reenrolled: true,
                    }
                }
                None => {
                    sqlx::query(
                        "INSERT INTO devices (id, secret_hash, identity_key, identity_source, hostname,
                                              os_family, agent_version, tags, enrollment_token_id,
                                              enrolled_at, last_seen_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                    )
                    .bind(&input.new_device_id)
                    .bind(&input.secret_hash)
                    .bind(&input.identity_key)
                    .bind(&input.identity_source)
                    .bind(&input.hostname)
                    .bind(&input.os_family)
                    .bind(&input.agent_version)
                    .bind(serde_json::to_string(&token_tags).unwrap_or_else(|_| "[]".into()))
                    .bind(&input.token_id)
                    .bind(input.now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::conflict_or(e, "a device with this identity is enrolling concurrently"))?;
                    EnrollOutcome {
                        device_id: input.new_device_id.clone(),
                        reenrolled: false,
                    }
                }
            };
            let (kind, summary) = if outcome.reenrolled {
                (
                    "reenrolled",
                    format!("re-enrolled as {} (new credential)", input.hostname),
                )
            } else {
                ("enrolled", format!("enrolled as {}", input.hostname))
            };
            sqlx::query(
                "INSERT INTO device_timeline (device_id, at, kind, summary, new_value)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&outcome.device_id)
            .bind(input.now)
            .bind(kind)
            .bind(summary)
            .bind(serde_json::json!({"enrollment_token_id": input.token_id, "agent_version": input.agent_version}).to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(outcome)
        })
    }
}

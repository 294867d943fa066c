//! Operators, their login sessions and their long-lived API tokens. Secrets are never stored:
//! rows keep only hashes, computed by the server's `auth` module.

use crate::BeginWrite;
use crate::{AuditEntry, Result, Store, StoreError, conflict_or, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: i64,
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiTokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// An administrator's change to a user; `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<String>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
}

const USER_COLS: &str = "id, username, password_hash, role, created_at, disabled";

/// The role whose last enabled holder must never be removed.
const ADMIN: &str = "admin";

impl UserRow {
    fn is_enabled_admin(&self) -> bool {
        self.role == ADMIN && !self.disabled
    }
}

/// `audit` with `extra`'s keys added to its details object (the store knows some details, like
/// the state before a change, only inside the transaction).
fn audited(audit: &AuditEntry, extra: serde_json::Value) -> AuditEntry {
    let mut entry = audit.clone();
    let mut details = match entry.details {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("details".to_string(), other)]),
    };
    if let serde_json::Value::Object(more) = extra {
        details.extend(more);
    }
    entry.details = serde_json::Value::Object(details);
    entry
}

fn last_admin(u: &UserRow, verb: &str) -> StoreError {
    StoreError::Conflict(format!(
        "cannot {verb} {:?}: it is the last enabled admin; make another user admin first",
        u.username
    ))
}

/// The first statement of every transaction that may remove an enabled admin. It is a write,
/// so SQLite takes its single writer lock right away (a transaction that read first could not
/// upgrade safely), and PostgreSQL row-locks every enabled admin: a concurrent demotion of
/// another admin waits here until this transaction ends and then counts what it left behind.
/// Without it, two demotions under READ COMMITTED would each count the other admin and both
/// succeed. Touching the rows changes nothing (`disabled = disabled`).
const LOCK_ENABLED_ADMINS: &str =
    "UPDATE users SET disabled = disabled WHERE role = 'admin' AND NOT disabled";

impl Store {
    /// Create a user; `Conflict` when the username is taken.
    pub async fn create_user(&self, u: &NewUser, audit: Option<&AuditEntry>) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, role, created_at, disabled)
                 VALUES ($1, $2, $3, $4, $5, FALSE)",
            )
            .bind(&u.id)
            .bind(&u.username)
            .bind(&u.password_hash)
            .bind(&u.role)
            .bind(u.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, &format!("user {:?} already exists", u.username)))?;
            if let Some(a) = audit {
                a.insert(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Create the initial admin unless any user exists. Returns true if it was created.
    /// Safe against two replicas starting at once: the loser's insert conflicts and is ignored.
    pub async fn bootstrap_admin(&self, u: &NewUser) -> Result<bool> {
        if self.count_users().await? > 0 {
            return Ok(false);
        }
        match self.create_user(u, None).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn count_users(&self) -> Result<i64> {
        let (n,): (i64,) = with_pool!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE username = $1"));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(username)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1"));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users ORDER BY username"));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await?))
    }

    /// Replace a user's password hash and end its sessions, except `keep_session` (the one
    /// changing its own password stays logged in). Returns how many sessions ended; the count
    /// is added to the audit details as `sessions_ended`. `NotFound` if the user is gone.
    pub async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<u64> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(user_id)
                .bind(password_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let ended =
                sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
                    .bind(user_id)
                    .bind(keep_session)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            audited(audit, serde_json::json!({"sessions_ended": ended}))
                .insert(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ended)
        })
    }

    /// Change a user's role, enabled state or password, atomically with its audit row, whose
    /// details gain `username`, `before`/`after` (`{role, disabled}`), `password_reset` and
    /// `sessions_ended`. A role change, disabling or a new password ends all of the user's
    /// sessions. `Conflict` when the change would leave no enabled admin — checked under
    /// [`LOCK_ENABLED_ADMINS`], so concurrent changes cannot both pass. Returns the new row.
    pub async fn update_user(
        &self,
        id: &str,
        change: &UserUpdate,
        audit: &AuditEntry,
    ) -> Result<UserRow> {
        let select = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1"));
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(LOCK_ENABLED_ADMINS).execute(&mut *tx).await?;
            let before: UserRow = sqlx::query_as(select)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            let mut after = before.clone();
            if let Some(role) = &change.role {
                after.role = role.clone();
            }
            if let Some(disabled) = change.disabled {
                after.disabled = disabled;
            }
            if let Some(hash) = &change.password_hash {
                after.password_hash = hash.clone();
            }
            if before.is_enabled_admin() && !after.is_enabled_admin() {
                let (admins,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled",
                )
                .fetch_one(&mut *tx)
                .await?;
                if admins <= 1 {
                    let verb = if after.disabled { "disable" } else { "demote" };
                    return Err(last_admin(&before, verb));
                }
            }
            sqlx::query(
                "UPDATE users SET role = $2, disabled = $3, password_hash = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(&after.role)
            .bind(after.disabled)
            .bind(&after.password_hash)
            .execute(&mut *tx)
            .await?;
            let ends_sessions = after.role != before.role
                || (after.disabled && !before.disabled)
                || change.password_hash.is_some();
            let ended = if ends_sessions {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            } else {
                0
            };
            let details = serde_json::json!({
                "username": before.username,
                "before": {"role": before.role, "disabled": before.disabled},
                "after": {"role": after.role, "disabled": after.disabled},
                "password_reset": change.password_hash.is_some(),
                "sessions_ended": ended,
            });
            audited(audit, details).insert(&mut *tx).await?;
            tx.commit().await?;
            Ok(after)
        })
    }

    /// Delete a user with its sessions and API tokens (the foreign keys cascade), atomically
    /// with its audit row (details gain `username`, `role`, `disabled`). `Conflict` for the
    /// last enabled admin, `NotFound` if absent. Returns the deleted row.
    pub async fn delete_user(&self, id: &str, audit: &AuditEntry) -> Result<UserRow> {
        let select = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1"));
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(LOCK_ENABLED_ADMINS).execute(&mut *tx).await?;
            let before: UserRow = sqlx::query_as(select)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            if before.is_enabled_admin() {
                let (admins,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled",
                )
                .fetch_one(&mut *tx)
                .await?;
                if admins <= 1 {
                    return Err(last_admin(&before, "delete"));
                }
            }
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let details = serde_json::json!({
                "username": before.username,
                "role": before.role,
                "disabled": before.disabled,
            });
            audited(audit, details).insert(&mut *tx).await?;
            tx.commit().await?;
            Ok(before)
        })
    }

    pub async fn create_session(&self, s: &SessionRow) -> Result<()> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (id, user_id, secret_hash, created_at, expires_at, last_used_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&s.id)
            .bind(&s.user_id)
            .bind(&s.secret_hash)
            .bind(s.created_at)
            .bind(s.expires_at)
            .bind(s.last_used_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, secret_hash, created_at, expires_at, last_used_at
                 FROM sessions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Slide the session's expiry (idle timeout) and record its use.
    pub async fn touch_session(&self, id: &str, now: i64, expires_at: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            sqlx::query("UPDATE sessions SET last_used_at = $2, expires_at = $3 WHERE id = $1")
                .bind(id)
                .bind(now)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn delete_session(&self, id: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Remove sessions past their expiry; returns how many.
    pub async fn purge_expired_sessions(&self, now: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        Ok(with_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    pub async fn create_api_token(&self, t: &ApiTokenRow, audit: &AuditEntry) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, secret_hash, created_at, expires_at,
                                         last_used_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
            )
            .bind(&t.id)
            .bind(&t.user_id)
            .bind(&t.name)
            .bind(&t.secret_hash)
            .bind(t.created_at)
            .bind(t.expires_at)
            .execute(&mut *tx)
            .await?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn api_token(&self, id: &str) -> Result<Option<ApiTokenRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, name, secret_hash, created_at, expires_at, last_used_at, revoked_at
                 FROM api_tokens WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// API tokens of one user (or of everyone when `user_id` is `None`), newest first.
    pub async fn list_api_tokens(&self, user_id: Option<&str>) -> Result<Vec<ApiTokenRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, name, secret_hash, created_at, expires_at, last_used_at, revoked_at
                 FROM api_tokens WHERE ($1 IS NULL OR user_id = $1) ORDER BY created_at DESC, id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Record the use of an API token, at most once a minute per token to spare the database.
    pub async fn touch_api_token(&self, id: &str, now: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2 - 60000)",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Revoke a token; `NotFound` if it does not exist. Revoking twice is not an error.
    pub async fn revoke_api_token(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<()> {
        self.audited_change(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            id,
            Some(now),
            None,
            audit,
        )
        .await
    }
}

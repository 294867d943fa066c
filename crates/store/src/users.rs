//! Operators, their login sessions and their long-lived API tokens. Secrets are never stored:
//! rows keep only hashes, computed by the server's `auth` module.

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

const USER_COLS: &str = "id, username, password_hash, role, created_at, disabled";

impl Store {
    /// Create a user; `Conflict` when the username is taken.
    pub async fn create_user(&self, u: &NewUser, audit: Option<&AuditEntry>) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
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

    pub async fn create_session(&self, s: &SessionRow) -> Result<()> {
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
            let mut tx = pool.begin().await?;
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
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            )
            .bind(id)
            .bind(now)
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
}

//! Small server-wide settings (e.g. the server signing key), written once and read at start.

use crate::{Result, Store, with_pool};

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|r| r.0))
    }

    /// Store `value` under `key` unless a value exists; return the value that is stored.
    /// Two replicas racing to initialise the same key both end up with the winner's value.
    pub async fn setting_get_or_init(&self, key: &str, value: &str) -> Result<String> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?;
        });
        self.setting(key).await?.ok_or(crate::StoreError::Corrupt {
            what: "settings",
            reason: format!("{key} vanished"),
        })
    }
}

//! Cross-replica hints over PostgreSQL LISTEN/NOTIFY. A server replica that wakes a device
//! publishes the device id; every replica listens and wakes its own long-polls. NOTIFY is lost
//! while a listener reconnects, which is fine for hints: the durable state read at check-in
//! remains the truth (DESIGN.md). On SQLite — one server process by construction — publishing
//! is a no-op and there is nothing to listen to.

use sqlx::postgres::PgListener;

use crate::{Pool, Result, Store};

/// The NOTIFY channel for device wake-ups.
pub const WAKE_CHANNEL: &str = "capstan_wake";

/// A subscription to cross-replica notifications (PostgreSQL only).
pub struct Subscription {
    listener: PgListener,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

impl Subscription {
    /// The next payload. Reconnects transparently after a dropped connection (notifications
    /// sent meanwhile are lost); errors only when reconnecting fails.
    pub async fn recv(&mut self) -> Result<String> {
        let n = self.listener.recv().await?;
        Ok(n.payload().to_string())
    }
}

impl Store {
    /// Publish `payload` on `channel` to every replica (no-op on SQLite).
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Subscribe to `channel`; `None` on SQLite, where there are no other replicas.
    pub async fn subscribe(&self, channel: &str) -> Result<Option<Subscription>> {
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(channel).await?;
                Ok(Some(Subscription { listener }))
            }
            Pool::Sqlite(_) => Ok(None),
        }
    }
}

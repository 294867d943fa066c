//! The SQLite write gate: one per database file in this process. SQLite has one writer, and its
//! busy handler waits for the lock by sleeping in growing steps, so writers here queue on this
//! gate first (FIFO, no polling) and only then begin.
//!
//! Deliveries go first. When thousands of woken agents check in at once, each check-in claims
//! the agent's runs (its work), while agents woken earlier are already reporting starts and
//! finishes. Taking turns in arrival order would make the last agents wait for the bookkeeping of
//! the first; instead, while check-ins are waiting ([`Store::urgent_write`] intents), other
//! writers hold back — for at most [`MAX_YIELD`] each, so results are delayed, never starved.
//! Nothing is reordered within a kind, and every write still commits before it is answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

/// The longest a normal writer holds back for urgent ones.
pub(crate) const MAX_YIELD: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    turn: Arc<Mutex<()>>,
    /// Urgent writes announced and not yet done.
    urgent: AtomicUsize,
    /// Signalled when `urgent` drops to zero.
    calm: Notify,
}

impl WriteGate {
    /// This process's turn to write. A normal writer first waits (bounded) until no urgent
    /// write is pending; an urgent one queues at once.
    pub(crate) async fn enter(&self, urgent: bool) -> OwnedMutexGuard<()> {
        if !urgent {
            self.hold_back().await;
        }
        self.turn.clone().lock_owned().await
    }

    /// Wait (at most [`MAX_YIELD`]) until no urgent write is announced.
    pub(crate) async fn hold_back(&self) {
        let deadline = tokio::time::Instant::now() + MAX_YIELD;
        loop {
            let calm = self.calm.notified();
            tokio::pin!(calm);
            // Registered before the check, so a drop to zero in between is not missed.
            calm.as_mut().enable();
            if self.urgent.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, calm).await.is_err() {
                return;
            }
        }
    }

    fn announce(self: &Arc<Self>) -> UrgentWrite {
        self.urgent.fetch_add(1, Ordering::SeqCst);
        UrgentWrite {
            gate: Some(self.clone()),
        }
    }
}

/// An announced urgent write (a check-in on its way to the database); normal writers hold back
/// while any exist. Dropping it ends the announcement.
#[derive(Debug)]
pub struct UrgentWrite {
    gate: Option<Arc<WriteGate>>,
}

impl Drop for UrgentWrite {
    fn drop(&mut self) {
        if let Some(g) = self.gate.take()
            && g.urgent.fetch_sub(1, Ordering::SeqCst) == 1
        {
            g.calm.notify_waiters();
        }
    }
}

/// The gate of a SQLite database file.
pub(crate) fn sqlite_gate(pool: &sqlx::SqlitePool) -> Arc<WriteGate> {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{LazyLock, Mutex};
    static GATES: LazyLock<Mutex<HashMap<PathBuf, Arc<WriteGate>>>> =
        LazyLock::new(Default::default);
    let options = pool.connect_options();
    let file = options.get_filename();
    let mut gates = GATES.lock().unwrap_or_else(|p| p.into_inner());
    // Every write asks: look up without allocating, insert only the first time.
    if let Some(gate) = gates.get(file) {
        return gate.clone();
    }
    gates.entry(file.to_path_buf()).or_default().clone()
}

/// The gate of a PostgreSQL database (by server and database name). PostgreSQL writes
/// concurrently, so only the holding back applies: while check-ins wait, other writes of this
/// process leave the database's CPU to them.
pub(crate) fn pg_gate(pool: &sqlx::PgPool) -> Arc<WriteGate> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static GATES: LazyLock<Mutex<HashMap<String, Arc<WriteGate>>>> =
        LazyLock::new(Default::default);
    let o = pool.connect_options();
    let key = format!(
        "{}:{}/{}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or_default()
    );
    let mut gates = GATES.lock().unwrap_or_else(|p| p.into_inner());
    gates.entry(key).or_default().clone()
}

impl crate::Store {
    /// Announce an urgent write (a check-in that may deliver runs): until the returned value is
    /// dropped, other writers hold back (bounded). A no-op on PostgreSQL, which has many
    /// writers.
    pub fn urgent_write(&self) -> UrgentWrite {
        match &self.pool {
            crate::Pool::Sqlite(p) => sqlite_gate(p).announce(),
            crate::Pool::Postgres(p) => pg_gate(p).announce(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test]
    async fn normal_writers_hold_back_while_urgent_ones_are_announced_but_not_forever() {
        let gate = Arc::new(WriteGate::default());
        let announced = gate.announce();
        let ended = Arc::new(AtomicBool::new(false));
        let (g, e) = (gate.clone(), ended.clone());
        let normal = tokio::spawn(async move {
            let _turn = g.enter(false).await;
            e.load(Ordering::SeqCst)
        });
        // The urgent writer takes its turn at once while the normal one holds back.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let turn = gate.enter(true).await;
        drop(turn);
        ended.store(true, Ordering::SeqCst);
        drop(announced);
        assert!(
            normal.await.unwrap(),
            "the normal writer entered only after the announcement ended"
        );

        // An announcement that never ends delays a normal writer by MAX_YIELD, then it enters.
        let _stuck = gate.announce();
        let started = std::time::Instant::now();
        let _turn = gate.enter(false).await;
        assert!(started.elapsed() >= MAX_YIELD);
    }
}

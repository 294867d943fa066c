//! Capstan's storage layer: one [`Store`] over SQLite (the embedded default) and PostgreSQL
//! (scale-out). Every query is written once in portable SQL (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`) and run on whichever pool is configured through [`with_pool!`], which expands
//! the same body once per backend — there are no per-backend query copies to drift apart.
//! Only this crate knows SQL. Times are Unix milliseconds, ids are UUID strings, documents JSON
//! text, so the same Rust row types decode on both backends.

mod audit;
mod blobs;
mod deploy;
mod devices;
mod dynamic;
mod enrollment;
mod fields;
mod gate;
mod groups;
mod jobs;
mod migrations;
mod notify;
mod packages;
mod settings;
mod sources;
mod tags;
mod users;

pub use audit::{AuditEntry, AuditFilter, AuditRow};
pub use blobs::BlobRow;
pub use deploy::{
    AssignmentRow, CompileInputs, CompiledManifest, DesiredItem, ItemReportRow, ManifestRow,
    ReportOutcome, SoftwareHistoryRow, SoftwareStateRow, StateBrief, WindowRow,
};
pub use devices::{
    CheckinRecord, CheckinRecorded, DeviceAuth, DeviceFilter, DeviceRow, DeviceSort,
    DistributionRows, FieldMatch, FleetSummary, InventoryRow, NewTimelineEntry, PresenceChange,
    TimelineRow, ValueCountRow, hardware_model,
};
pub use dynamic::{DeviceFactRows, EventRow, MembershipChangeOutcome};
pub use enrollment::{
    EnrollError, EnrollInput, EnrollOutcome, EnrollmentTokenRow, NewEnrollmentToken,
};
pub use fields::{FieldRow, FieldValueRow};
pub use gate::UrgentWrite;
pub use groups::{
    DeviceSelection, GroupRow, GroupUpdate, GroupWithCounts, MembershipRow, NewGroup,
};
pub use jobs::{
    AttemptRow, BreakerRow, ClaimedRun, Control, DeviceRunRow, FinishOutcome, FinishReport,
    HistoryRow, JobRow, NewJob, OutputRow, RunRow, ScriptRow, ScriptVersion, StartReport,
    SweepOutcome,
};
pub use migrations::{MIGRATIONS, MigrationPair};
pub use notify::{Subscription, WAKE_CHANNEL};
pub use packages::{ArtifactRow, NewVersion, PackageRow, PackageUpdate, VersionRow};
pub use sources::{CatalogueArtifactRow, SourceBlobRow, SourceRow};
pub use users::{ApiTokenRow, NewUser, SessionRow, UserRow, UserUpdate};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Storage errors. `Conflict` and `NotFound` are expected outcomes callers map to API errors;
/// everything else is a server fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request names something that does not exist or is not acceptable (e.g. an unknown
    /// parent group); the message says what.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Explicit device ids that name no device; nothing was changed.
    #[error("unknown device ids: {0:?}")]
    UnknownDevices(Vec<String>),
    #[error("invalid database URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt stored value in {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Run the same body against whichever pool the store holds. The body is expanded once per
/// backend, so it must only use API that both `sqlx::Sqlite` and `sqlx::Postgres` offer.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// How write transactions begin. On SQLite a plain `BEGIN` is deferred: a transaction that
/// reads before it writes must upgrade its lock, and in WAL mode that fails at once with
/// `SQLITE_BUSY` (no busy-wait) when another writer committed meanwhile. `BEGIN IMMEDIATE` takes
/// the write lock up front. SQLite has one writer, and its busy handler waits for the lock by
/// sleeping in growing steps (up to 100 ms), so many concurrent writers waste most of their time
/// asleep; writers in this process therefore queue on an async gate per database file first
/// (no polling; deliveries first, see [`gate`]) and only then begin. PostgreSQL needs neither.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    /// `urgent`: a delivery that goes ahead of other writes ([`gate`]).
    fn begin_write_as(
        &self,
        urgent: bool,
    ) -> impl std::future::Future<Output = std::result::Result<WriteTx<Self::Db>, sqlx::Error>> + Send;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = std::result::Result<WriteTx<Self::Db>, sqlx::Error>> + Send
    {
        self.begin_write_as(false)
    }
}

/// A write transaction (and, on SQLite, this process's turn to write). Dereferences to the
/// connection like [`sqlx::Transaction`]; dropped without `commit` it rolls back.
pub(crate) struct WriteTx<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<DB: sqlx::Database> WriteTx<DB> {
    pub(crate) async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl<DB: sqlx::Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write_as(
        &self,
        urgent: bool,
    ) -> impl std::future::Future<Output = std::result::Result<WriteTx<sqlx::Sqlite>, sqlx::Error>> + Send
    {
        let gate = gate::sqlite_gate(self);
        async move {
            let turn = gate.enter(urgent).await;
            let tx = self.begin_with("BEGIN IMMEDIATE").await?;
            Ok(WriteTx {
                tx,
                _turn: Some(turn),
            })
        }
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write_as(
        &self,
        urgent: bool,
    ) -> std::result::Result<WriteTx<sqlx::Postgres>, sqlx::Error> {
        if !urgent {
            gate::pg_gate(self).hold_back().await;
        }
        Ok(WriteTx {
            tx: self.begin().await?,
            _turn: None,
        })
    }
}

/// Options for [`Store::connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Maximum pool size (PostgreSQL). SQLite uses a small pool regardless: it has one writer.
    pub max_connections: u32,
    /// How long to wait for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 32,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// The storage handle; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
}

impl Store {
    /// Connect to `sqlite://PATH` (created if missing, WAL mode) or `postgres://…`.
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<Store> {
        if url.starts_with("sqlite:") {
            let co = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl {
                    url: url.into(),
                    reason: e.to_string(),
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL: every commit survives a crash of the server process; a power loss can
                // lose the last commits (never corrupt the database). That is safe for what is
                // stored today because agent reports reconcile: a lost inventory leaves the old
                // digest stored, so the agent is asked for the document again at its next
                // check-in. FULL (an fdatasync per commit) measurably slowed check-ins here.
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.clamp(1, 8))
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(co)
                .await?;
            Ok(Store {
                pool: Pool::Sqlite(pool),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let co = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
                url: redact(url),
                reason: e.to_string(),
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections.max(1))
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(co)
                .await?;
            Ok(Store {
                pool: Pool::Postgres(pool),
            })
        } else {
            Err(StoreError::BadUrl {
                url: redact(url),
                reason: "expected sqlite://PATH or postgres://…".into(),
            })
        }
    }

    /// This process's turn to write to SQLite, for single autocommit statements (a transaction
    /// gets it from `begin_write`); `None` on PostgreSQL.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.pool {
            Pool::Sqlite(p) => Some(gate::sqlite_gate(p).enter(false).await),
            Pool::Postgres(_) => None,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Apply pending migrations (PostgreSQL takes an advisory lock, so replicas starting
    /// together migrate once).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = migrations::migrator(self.backend());
        with_pool!(self, |pool| migrator.run(pool).await?);
        Ok(())
    }

    /// Versions of the migrations applied to this database, ascending.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Cheap liveness check of the database (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

/// Hide the password of a database URL in messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Decode a JSON text column, reporting corruption with context instead of panicking.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

/// Map a unique-constraint violation to `Conflict`, anything else to `Database`.
pub(crate) fn conflict_or(err: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        return StoreError::Conflict(what.to_string());
    }
    StoreError::Database(err)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_password_only() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}

//! Storage of the job system: jobs, their per-device runs, attempts, output chunks, the run
//! history, per-device circuit breakers and the script library.
//!
//! Invariants kept here, each by doing the whole change in one transaction:
//! - a job and all its runs (and their first history rows) appear together or not at all;
//! - a run changes state only along the state machine, and every change writes a history row;
//! - every agent report is checked against the reporting device and the run's current attempt,
//!   and repeating a report changes nothing (the agent re-sends from its outbox);
//! - a run reaches exactly one terminal state; a late report for a run that is already
//!   terminal (e.g. cancelled) is kept on its attempt but does not change the run.

use capstan_core::jobs::{AfterAttempt, AttemptEnd, after_attempt};
use capstan_proto::jobs::{AttemptOutcome, OutputStream, RetryPolicy, RunFinished, RunState};

use crate::BeginWrite;
use crate::groups::placeholders;
use crate::{AuditEntry, Result, Store, StoreError, conflict_or, decode_json, with_pool};

pub(crate) const CHUNK: usize = 400;

/// Terminal states as an SQL list.
const TERMINAL: &str = "('succeeded', 'failed', 'timed_out', 'cancelled', 'expired')";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// JSON of `JobSpec`.
    pub spec: String,
    /// JSON of `JobTargets`.
    pub targets: String,
    /// JSON of `RetryPolicy`.
    pub retry: String,
    pub script_id: Option<String>,
    pub script_version: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub timeout_secs: i64,
    pub cancelled_at: Option<i64>,
}

const JOB_COLS: &str = "id, name, kind, spec, targets, retry, script_id, script_version, created_by, created_at, expires_at, timeout_secs, cancelled_at";

/// A new job and the devices it targets.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub job: JobRow,
    /// Resolved target devices (distinct).
    pub devices: Vec<String>,
    /// Group ids whose future members also get runs (only with `follow_group_joins`).
    pub follow_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub job_id: String,
    pub device_id: String,
    pub hostname: String,
    pub state: String,
    pub attempt: i64,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub not_before: i64,
    pub expires_at: i64,
    pub held: bool,
    pub updated_at: i64,
}

const RUN_COLS: &str = "r.id, r.job_id, r.device_id, d.hostname, r.state, r.attempt, r.exit_code, r.reason, r.not_before, r.expires_at, r.held, r.updated_at";

/// A run of one device with its job and the times of its current attempt, for the device's
/// job history.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceRunRow {
    #[sqlx(flatten)]
    pub run: RunRow,
    pub job_name: String,
    pub job_kind: String,
    pub job_created_at: i64,
    pub job_created_by: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i64,
    pub outcome: Option<String>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub delivered_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub boot_id: Option<String>,
    pub stdout_bytes: i64,
    pub stderr_bytes: i64,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HistoryRow {
    pub id: i64,
    pub job_id: String,
    pub run_id: String,
    pub attempt: i64,
    pub state: String,
    pub at: i64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutputRow {
    pub id: i64,
    pub job_id: String,
    pub run_id: String,
    pub attempt: i64,
    pub stream: String,
    pub off: i64,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BreakerRow {
    pub device_id: String,
    pub hostname: String,
    pub consecutive_failures: i64,
    pub opened_at: Option<i64>,
    pub held_runs: i64,
}

/// A run handed to the agent by [`Store::claim_runs_batch`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedRun {
    pub run_id: String,
    pub job_id: String,
    pub attempt: i64,
    pub expires_at: i64,
    /// JSON of the job's spec.
    pub spec: String,
}

/// Answer to an agent's start/output/rebooting report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// The attempt must stop: the run was cancelled, expired, or a newer attempt exists.
    pub cancel: bool,
}

/// What [`Store::finish_runs_batch`] did with one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishOutcome {
    /// The run's state afterwards.
    pub state: RunState,
    /// Whether this report changed anything (false for a repeated or stale report).
    pub changed: bool,
    /// A retry was scheduled at this time.
    pub retry_at: Option<i64>,
    /// The device's breaker opened with this report.
    pub breaker_opened: bool,
}

/// What the periodic sweep changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Runs that expired before an agent picked them up.
    pub expired: u64,
    /// Runs given up because their agent never reported (timeout plus grace passed).
    pub lost: u64,
    /// Jobs whose runs changed, for live views.
    pub jobs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScriptRow {
    pub id: String,
    pub name: String,
    pub latest_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub description: String,
    pub interpreter: String,
    pub body: String,
    /// JSON array of `ScriptParameter`.
    pub parameters: String,
    /// Who wrote this version.
    pub created_by: String,
    pub version: i64,
}

const SCRIPT_COLS: &str = "s.id, v.name, s.latest_version, s.created_at, s.updated_at, v.description, v.interpreter, v.body, v.parameters, v.created_by, v.version";

/// A script version to store.
#[derive(Debug, Clone)]
pub struct ScriptVersion {
    pub name: String,
    pub description: String,
    pub interpreter: String,
    pub body: String,
    pub parameters: String,
}

/// Insert one history row inside a transaction (a macro so it expands for both backends).
macro_rules! history {
    ($tx:ident, $job:expr, $run:expr, $attempt:expr, $state:expr, $at:expr, $reason:expr) => {
        sqlx::query(
            "INSERT INTO job_run_history (job_id, run_id, attempt, state, at, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($job)
        .bind($run)
        .bind($attempt)
        .bind($state)
        .bind($at)
        .bind($reason)
        .execute(&mut *$tx)
        .await?
    };
}

/// End the swept runs `(run id, job id, attempt, state)` in state `$to` with the reason
/// `$reason(state)`, each with its history row, noting their jobs in `$jobs`.
macro_rules! end_runs {
    ($tx:ident, $runs:expr, $to:literal, $now:expr, $jobs:ident, $reason:expr) => {
        for (run_id, job_id, attempt, state) in $runs {
            let reason: &str = ($reason)(state.as_str());
            sqlx::query(
                "UPDATE job_runs SET state = $4, reason = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(run_id)
            .bind(reason)
            .bind($now)
            .bind($to)
            .execute(&mut *$tx)
            .await?;
            history!(
                $tx,
                job_id,
                run_id,
                *attempt,
                $to,
                $now,
                Some(reason.to_string())
            );
            $jobs.insert(job_id.clone());
        }
    };
}

/// Load the reporting device's run inside a transaction; `NotFound` for anyone else's.
macro_rules! own_run {
    ($tx:ident, $device:expr, $run:expr) => {{
        let row: Option<OwnRun> = sqlx::query_as(
            "SELECT job_id, state, attempt FROM job_runs WHERE id = $1 AND device_id = $2",
        )
        .bind($run)
        .bind($device)
        .fetch_optional(&mut *$tx)
        .await?;
        match row {
            Some(r) => r,
            None => return Err(StoreError::NotFound),
        }
    }};
}

/// Cancel the non-terminal runs matching `cond` (with `$1` bound to `key`) inside a
/// transaction; evaluates to (count, devices that had a running attempt).
macro_rules! cancel_where {
    ($tx:ident, $cond:literal, $key:expr, $reason:expr, $now:expr) => {{
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT id, job_id, device_id, attempt, state FROM job_runs WHERE {} AND state NOT IN {TERMINAL}",
            $cond
        ));
        let runs: Vec<(String, String, String, i64, String)> =
            sqlx::query_as(sql).bind($key).fetch_all(&mut *$tx).await?;
        let mut running = Vec::new();
        for (run_id, job_id, device, attempt, state) in &runs {
            sqlx::query(
                "UPDATE job_runs SET state = 'cancelled', reason = $2, held = FALSE, updated_at = $3 WHERE id = $1",
            )
            .bind(run_id)
            .bind($reason)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
            history!($tx, job_id, run_id, *attempt, "cancelled", $now, Some($reason.to_string()));
            if matches!(state.as_str(), "running" | "delivered" | "rebooting") {
                running.push(device.clone());
            }
        }
        (runs.len() as u64, running)
    }};
}

macro_rules! insert_version {
    ($tx:ident, $id:expr, $version:expr, $v:expr, $by:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO script_versions (script_id, version, name, description, interpreter, body, parameters, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind($id)
        .bind($version)
        .bind(&$v.name)
        .bind(&$v.description)
        .bind(&$v.interpreter)
        .bind(&$v.body)
        .bind(&$v.parameters)
        .bind($now)
        .bind($by)
        .execute(&mut *$tx)
        .await?
    };
}

/// A run's new values after a finish: (run id, state, attempt, exit code, reason, held,
/// not_before).
type RunUpdate = (
    String,
    &'static str,
    i64,
    Option<i64>,
    Option<String>,
    bool,
    i64,
);

/// One `start` report for [`Store::start_runs_batch`].
#[derive(Debug, Clone)]
pub struct StartReport {
    pub device_id: String,
    pub run_id: String,
    pub attempt: i64,
    pub started_at: i64,
}

/// One `finish` report for [`Store::finish_runs_batch`].
#[derive(Debug, Clone)]
pub struct FinishReport {
    pub device_id: String,
    pub run_id: String,
    pub report: RunFinished,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct FinishRun {
    id: String,
    device_id: String,
    job_id: String,
    state: String,
    attempt: i64,
    not_before: i64,
    expires_at: i64,
    retry: String,
}

/// Insert history rows `(job id, run id, attempt)` all entering `$state` at `$now`, a few
/// hundred per statement, inside a transaction.
macro_rules! history_rows {
    ($tx:ident, $rows:expr, $state:literal, $now:expr) => {
        for part in $rows.chunks($crate::jobs::CHUNK / 3) {
            let values = (0..part.len())
                .map(|k| {
                    format!(
                        "(${}, ${}, ${}, '{}', $1)",
                        3 * k + 2,
                        3 * k + 3,
                        3 * k + 4,
                        $state
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = sqlx::AssertSqlSafe(format!(
                "INSERT INTO job_run_history (job_id, run_id, attempt, state, at) VALUES {values}"
            ));
            let mut q = sqlx::query(sql).bind($now);
            for (job, run, attempt) in part {
                q = q.bind(*job).bind(*run).bind(*attempt);
            }
            q.execute(&mut *$tx).await?;
        }
    };
}
pub(crate) use history_rows;

/// Claims the runnable runs of `$devices` (a slice of device ids) inside the write transaction
/// `$tx`: queued runs become delivered (attempt row and history written), runs delivered before
/// but never started are handed out again. At most `$limit` per device. Evaluates to a map from
/// device id to its runs. A macro because the statements are the same on both backends but the
/// transaction types differ; [`Store::claim_runs_batch`] and the check-in batch use it.
macro_rules! claim_in_tx {
    ($tx:ident, $devices:expr, $now:expr, $limit:expr) => {{
        let now: i64 = $now;
        let limit: i64 = $limit;
        let mut by_device: std::collections::HashMap<String, Vec<$crate::jobs::ClaimedRun>> =
            std::collections::HashMap::new();
            for chunk in $devices.chunks($crate::jobs::CHUNK) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT r.device_id, r.id, r.job_id, r.attempt, r.expires_at, r.state, j.spec
                     FROM job_runs r JOIN jobs j ON j.id = r.job_id
                     WHERE r.device_id IN ({}) AND r.state IN ('queued', 'delivered')
                       AND r.not_before <= $1 AND r.expires_at > $1
                     ORDER BY r.device_id, r.not_before, r.id",
                    $crate::groups::placeholders(2, chunk.len())
                ));
                let mut q =
                    sqlx::query_as::<_, (String, String, String, i64, i64, String, String)>(sql)
                        .bind(now);
                for d in chunk {
                    q = q.bind(d);
                }
                let rows = q.fetch_all(&mut *$tx).await?;
                let mut fresh: Vec<(String, String, i64)> = Vec::new();
                for (device, run_id, job_id, attempt, expires_at, state, spec) in rows {
                    let list = by_device.entry(device).or_default();
                    if list.len() as i64 >= limit {
                        continue;
                    }
                    if state == "queued" {
                        fresh.push((run_id.clone(), job_id.clone(), attempt));
                    }
                    list.push($crate::jobs::ClaimedRun {
                        run_id,
                        job_id,
                        attempt,
                        expires_at,
                        spec,
                    });
                }
                for part in fresh.chunks($crate::jobs::CHUNK) {
                    let sql = sqlx::AssertSqlSafe(format!(
                        "UPDATE job_runs SET state = 'delivered', updated_at = $1 WHERE id IN ({})",
                        $crate::groups::placeholders(2, part.len())
                    ));
                    let mut q = sqlx::query(sql).bind(now);
                    for (run_id, _, _) in part {
                        q = q.bind(run_id);
                    }
                    q.execute(&mut *$tx).await?;
                    let rows = (0..part.len())
                        .map(|k| format!("(${}, ${}, $1)", 2 * k + 2, 2 * k + 3))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = sqlx::AssertSqlSafe(format!(
                        "INSERT INTO job_attempts (run_id, attempt, delivered_at) VALUES {rows}
                         ON CONFLICT (run_id, attempt) DO UPDATE SET delivered_at = excluded.delivered_at"
                    ));
                    let mut q = sqlx::query(sql).bind(now);
                    for (run_id, _, attempt) in part {
                        q = q.bind(run_id).bind(*attempt);
                    }
                    q.execute(&mut *$tx).await?;
                    let rows: Vec<(&str, &str, i64)> = part
                        .iter()
                        .map(|(run, job, attempt)| (job.as_str(), run.as_str(), *attempt))
                        .collect();
                    $crate::jobs::history_rows!($tx, &rows, "delivered", now);
                }
            }
        by_device
    }};
}
pub(crate) use claim_in_tx;

/// The run as an agent report sees it: only the reporting device's own runs are found.
#[derive(Debug, Clone, sqlx::FromRow)]
struct OwnRun {
    job_id: String,
    state: String,
    attempt: i64,
}

fn state_of(s: &str) -> Result<RunState> {
    RunState::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: "job_runs.state",
        reason: format!("unknown state {s:?}"),
    })
}

fn stream_name(s: OutputStream) -> &'static str {
    match s {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    }
}

/// Whether an agent report for `attempt` must stop: anything but the current, live attempt.
fn must_stop(run: &OwnRun, attempt: i64) -> Result<bool> {
    let state = state_of(&run.state)?;
    Ok(run.attempt != attempt || state.is_terminal())
}

impl Store {
    /// Create a job and one queued run per target device, atomically. Devices deleted since
    /// the targets were resolved are skipped. Returns the number of runs.
    pub async fn create_job(&self, new: &NewJob, audit: &AuditEntry) -> Result<u64> {
        let j = &new.job;
        let created: Result<u64> = with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "INSERT INTO jobs ({JOB_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ));
            sqlx::query(sql)
                .bind(&j.id)
                .bind(&j.name)
                .bind(&j.kind)
                .bind(&j.spec)
                .bind(&j.targets)
                .bind(&j.retry)
                .bind(&j.script_id)
                .bind(j.script_version)
                .bind(&j.created_by)
                .bind(j.created_at)
                .bind(j.expires_at)
                .bind(j.timeout_secs)
                .bind(j.cancelled_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "a job with this id exists"))?;
            for g in &new.follow_groups {
                sqlx::query("INSERT INTO job_follow_groups (job_id, group_id) VALUES ($1, $2)")
                    .bind(&j.id)
                    .bind(g)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut created = 0u64;
            for chunk in new.devices.chunks(CHUNK) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT id FROM devices WHERE id IN ({})",
                    placeholders(1, chunk.len())
                ));
                let mut q = sqlx::query_as::<_, (String,)>(sql);
                for d in chunk {
                    q = q.bind(d);
                }
                let existing: Vec<(String,)> = q.fetch_all(&mut *tx).await?;
                if existing.is_empty() {
                    continue;
                }
                let ids: Vec<(String, String)> = existing
                    .into_iter()
                    .map(|(d,)| (uuid::Uuid::now_v7().to_string(), d))
                    .collect();
                let rows = (0..ids.len())
                    .map(|i| {
                        let b = i * 2 + 4;
                        format!("(${}, $1, ${}, 'queued', 1, $2, $3, $2)", b, b + 1)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO job_runs (id, job_id, device_id, state, attempt, not_before, expires_at, updated_at) VALUES {rows}"
                ));
                let mut q = sqlx::query(sql)
                    .bind(&j.id)
                    .bind(j.created_at)
                    .bind(j.expires_at);
                for (rid, d) in &ids {
                    q = q.bind(rid).bind(d);
                }
                q.execute(&mut *tx).await?;
                let rows: Vec<(&str, &str, i64)> = ids
                    .iter()
                    .map(|(rid, _)| (j.id.as_str(), rid.as_str(), 1))
                    .collect();
                history_rows!(tx, &rows, "queued", j.created_at);
                created += ids.len() as u64;
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
            Ok(created)
        });
        created.map_err(|e| match e {
            StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                StoreError::Conflict(
                    "a target device was deleted while the job was created; nothing was created, try again"
                        .into(),
                )
            }
            other => other,
        })
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// Jobs, newest first, with the total count.
    /// Jobs, newest first, and how many there are; with `failed_only`, just the jobs with at
    /// least one run that ended failed or timed out (an interrupted last attempt ends its run
    /// as failed; runs have no state of their own for it).
    pub async fn list_jobs(
        &self,
        limit: i64,
        offset: i64,
        failed_only: bool,
    ) -> Result<(Vec<JobRow>, i64)> {
        // The EXISTS probes job_runs(job_id, state) twice per job.
        let filter = "WHERE ($1 = 0 OR EXISTS (SELECT 1 FROM job_runs r WHERE r.job_id = jobs.id
                           AND r.state IN ('failed', 'timed_out')))";
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLS} FROM jobs {filter}
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        ));
        let count_sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM jobs {filter}"));
        let failed_only = i64::from(failed_only);
        Ok(with_pool!(self, |pool| {
            let rows = sqlx::query_as(sql)
                .bind(failed_only)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let (total,): (i64,) = sqlx::query_as(count_sql)
                .bind(failed_only)
                .fetch_one(pool)
                .await?;
            (rows, total)
        }))
    }

    /// Run counts by state for each of `job_ids`: (job id, state, count).
    pub async fn run_counts(&self, job_ids: &[String]) -> Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        for chunk in job_ids.chunks(CHUNK) {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT job_id, state, COUNT(*) FROM job_runs WHERE job_id IN ({}) GROUP BY job_id, state",
                placeholders(1, chunk.len())
            ));
            let rows: Vec<(String, String, i64)> = with_pool!(self, |pool| {
                let mut q = sqlx::query_as(sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(pool).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// A job's runs (optionally in one state), by hostname, with the total count.
    pub async fn list_runs(
        &self,
        job_id: &str,
        state: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<RunRow>, i64)> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLS} FROM job_runs r JOIN devices d ON d.id = r.device_id
             WHERE r.job_id = $1 AND ($2 IS NULL OR r.state = $2)
             ORDER BY d.hostname, r.id LIMIT $3 OFFSET $4"
        ));
        Ok(with_pool!(self, |pool| {
            let rows = sqlx::query_as(sql)
                .bind(job_id)
                .bind(state)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let (total,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM job_runs WHERE job_id = $1 AND ($2 IS NULL OR state = $2)",
            )
            .bind(job_id)
            .bind(state)
            .fetch_one(pool)
            .await?;
            (rows, total)
        }))
    }

    /// Runs by id (any job), for live views.
    pub async fn runs_by_id(&self, ids: &[String]) -> Result<Vec<RunRow>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLS} FROM job_runs r JOIN devices d ON d.id = r.device_id WHERE r.id IN ({})",
                placeholders(1, chunk.len())
            ));
            let rows: Vec<RunRow> = with_pool!(self, |pool| {
                let mut q = sqlx::query_as(sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(pool).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// One device's runs across jobs, newest job first, with the total count.
    pub async fn device_runs(
        &self,
        device_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<DeviceRunRow>, i64)> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLS}, j.name AS job_name, j.kind AS job_kind,
                    j.created_at AS job_created_at, j.created_by AS job_created_by,
                    a.started_at, a.finished_at
             FROM job_runs r
             JOIN devices d ON d.id = r.device_id
             JOIN jobs j ON j.id = r.job_id
             LEFT JOIN job_attempts a ON a.run_id = r.id AND a.attempt = r.attempt
             WHERE r.device_id = $1
             ORDER BY j.created_at DESC, j.id DESC LIMIT $2 OFFSET $3"
        ));
        Ok(with_pool!(self, |pool| {
            let rows = sqlx::query_as(sql)
                .bind(device_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let (total,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM job_runs WHERE device_id = $1")
                    .bind(device_id)
                    .fetch_one(pool)
                    .await?;
            (rows, total)
        }))
    }

    pub async fn run(&self, job_id: &str, run_id: &str) -> Result<Option<RunRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLS} FROM job_runs r JOIN devices d ON d.id = r.device_id
             WHERE r.job_id = $1 AND (r.id = $2 OR r.device_id = $2)"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(job_id)
            .bind(run_id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn run_attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT attempt, outcome, exit_code, error, delivered_at, started_at, finished_at, boot_id,
                    stdout_bytes, stderr_bytes, stdout_truncated, stderr_truncated
             FROM job_attempts WHERE run_id = $1 ORDER BY attempt"
        )
        .bind(run_id)
        .fetch_all(pool)
        .await?
        }))
    }

    pub async fn run_history(&self, run_id: &str) -> Result<Vec<HistoryRow>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, job_id, run_id, attempt, state, at, reason FROM job_run_history
             WHERE run_id = $1 ORDER BY id"
        )
        .bind(run_id)
        .fetch_all(pool)
        .await?))
    }

    /// All output of a run, in stream order per attempt.
    pub async fn run_output(&self, run_id: &str) -> Result<Vec<OutputRow>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, job_id, run_id, attempt, stream, off, data FROM job_output
             WHERE run_id = $1 ORDER BY attempt, stream, off"
        )
        .bind(run_id)
        .fetch_all(pool)
        .await?))
    }

    /// Output of one stream of an attempt from byte `from` (and before `to`), by offset: what a
    /// live view fills a gap with.
    pub async fn output_between(
        &self,
        run_id: &str,
        attempt: i64,
        stream: &str,
        from: i64,
        to: Option<i64>,
    ) -> Result<Vec<OutputRow>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, job_id, run_id, attempt, stream, off, data FROM job_output
             WHERE run_id = $1 AND attempt = $2 AND stream = $3 AND off >= $4
               AND ($5 IS NULL OR off < $5)
             ORDER BY off LIMIT 1000"
        )
        .bind(run_id)
        .bind(attempt)
        .bind(stream)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?))
    }

    /// History rows of a job after `after` (by id), oldest first.
    pub async fn job_history_after(
        &self,
        job_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<HistoryRow>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, job_id, run_id, attempt, state, at, reason FROM job_run_history
             WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        )
        .bind(job_id)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// Output chunks of a job after `after` (by id), oldest first.
    pub async fn job_output_after(
        &self,
        job_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OutputRow>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, job_id, run_id, attempt, stream, off, data FROM job_output
             WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        )
        .bind(job_id)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// Hand each device its runnable runs: queued ones become delivered (their attempt row and
    /// history are written); runs delivered before but never started are handed out again with
    /// the same attempt, which the agent recognises by the idempotency key. One transaction
    /// with a handful of set-based statements for all devices (a fan-out wakes thousands of
    /// agents at once; per-device transactions would queue behind each other). Returns one list
    /// per device, in order. A check-in claims in its own batch
    /// ([`Store::record_checkins_batch`]); this is for agents that still had runs pending.
    pub async fn claim_runs_batch(
        &self,
        device_ids: &[String],
        now: i64,
        limit: i64,
    ) -> Result<Vec<Vec<ClaimedRun>>> {
        let mut by_device = with_pool!(self, |pool| {
            let mut tx = pool.begin_write_as(true).await?;
            let by_device = claim_in_tx!(tx, device_ids, now, limit);
            tx.commit().await?;
            by_device
        });
        Ok(device_ids
            .iter()
            .map(|d| by_device.remove(d).unwrap_or_default())
            .collect())
    }

    /// The agents are starting these attempts, in one transaction; one result per report
    /// (`NotFound` unless the run is the reporting device's; `cancel` when it must not start).
    pub async fn start_runs_batch(
        &self,
        items: &[StartReport],
        now: i64,
    ) -> Result<Vec<Result<Control>>> {
        let ids: Vec<String> = items.iter().map(|i| i.run_id.clone()).collect();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut runs: std::collections::HashMap<String, (String, String, String, i64)> =
                std::collections::HashMap::new();
            for chunk in ids.chunks(CHUNK) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT id, device_id, job_id, state, attempt FROM job_runs WHERE id IN ({})",
                    placeholders(1, chunk.len())
                ));
                let mut q = sqlx::query_as::<_, (String, String, String, String, i64)>(sql);
                for id in chunk {
                    q = q.bind(id);
                }
                for (id, device, job, state, attempt) in q.fetch_all(&mut *tx).await? {
                    runs.insert(id, (device, job, state, attempt));
                }
            }
            let mut out = Vec::with_capacity(items.len());
            // (run id, job id, attempt, started_at) of runs that start now.
            let mut starting: Vec<(String, String, i64, i64)> = Vec::new();
            for it in items {
                let Some((device, job, state, attempt)) = runs.get_mut(&it.run_id) else {
                    out.push(Err(StoreError::NotFound));
                    continue;
                };
                if *device != it.device_id {
                    out.push(Err(StoreError::NotFound));
                    continue;
                }
                let st = state_of(state)?;
                if *attempt != it.attempt || st.is_terminal() {
                    out.push(Ok(Control { cancel: true }));
                    continue;
                }
                if matches!(st, RunState::Queued | RunState::Delivered) {
                    starting.push((it.run_id.clone(), job.clone(), it.attempt, it.started_at));
                    *state = "running".to_string();
                }
                out.push(Ok(Control { cancel: false }));
            }
            for part in starting.chunks(CHUNK / 2) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE job_runs SET state = 'running', updated_at = $1 WHERE id IN ({})",
                    placeholders(2, part.len())
                ));
                let mut q = sqlx::query(sql).bind(now);
                for (run_id, ..) in part {
                    q = q.bind(run_id);
                }
                q.execute(&mut *tx).await?;
                let rows = (0..part.len())
                    .map(|k| {
                        format!(
                            "(${}, ${}, ${}, ${})",
                            3 * k + 1,
                            3 * k + 2,
                            3 * k + 3,
                            3 * k + 3
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO job_attempts (run_id, attempt, delivered_at, started_at) VALUES {rows}
                     ON CONFLICT (run_id, attempt) DO UPDATE SET started_at = excluded.started_at"
                ));
                let mut q = sqlx::query(sql);
                for (run_id, _, attempt, started_at) in part {
                    q = q.bind(run_id).bind(*attempt).bind(*started_at);
                }
                q.execute(&mut *tx).await?;
                let rows: Vec<(&str, &str, i64)> = part
                    .iter()
                    .map(|(run, job, attempt, _)| (job.as_str(), run.as_str(), *attempt))
                    .collect();
                history_rows!(tx, &rows, "running", now);
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Store output chunks of an attempt (each offset once). `chunks` are (stream, offset,
    /// byte length, text). Output of a finished attempt is still kept (it may arrive after the
    /// result when the agent re-sends from its outbox).
    pub async fn append_output(
        &self,
        device_id: &str,
        run_id: &str,
        attempt: i64,
        chunks: &[(OutputStream, i64, i64, String)],
    ) -> Result<Control> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let run = own_run!(tx, device_id, run_id);
            if attempt < 1 || attempt > run.attempt {
                return Err(StoreError::Invalid(format!(
                    "attempt {attempt} does not exist (current attempt: {})",
                    run.attempt
                )));
            }
            for (stream, off, len, data) in chunks {
                sqlx::query(
                    "INSERT INTO job_output (job_id, run_id, attempt, stream, off, len, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (run_id, attempt, stream, off) DO NOTHING",
                )
                .bind(&run.job_id)
                .bind(run_id)
                .bind(attempt)
                .bind(stream_name(*stream))
                .bind(*off)
                .bind(*len)
                .bind(data)
                .execute(&mut *tx)
                .await?;
            }
            let stop = must_stop(&run, attempt)?;
            tx.commit().await?;
            Ok(Control { cancel: stop })
        })
    }

    /// The attempt asked for a reboot that is about to happen.
    pub async fn rebooting_run(
        &self,
        device_id: &str,
        run_id: &str,
        attempt: i64,
        boot_id: &str,
        now: i64,
    ) -> Result<Control> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let run = own_run!(tx, device_id, run_id);
            if must_stop(&run, attempt)? {
                return Ok(Control { cancel: true });
            }
            if run.state != "rebooting" {
                sqlx::query(
                    "UPDATE job_runs SET state = 'rebooting', updated_at = $2 WHERE id = $1",
                )
                .bind(run_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO job_attempts (run_id, attempt, boot_id) VALUES ($1, $2, $3)
                     ON CONFLICT (run_id, attempt) DO UPDATE SET boot_id = $3",
                )
                .bind(run_id)
                .bind(attempt)
                .bind(boot_id)
                .execute(&mut *tx)
                .await?;
                let reason = format!("rebooting (boot id before: {boot_id})");
                history!(
                    tx,
                    &run.job_id,
                    run_id,
                    attempt,
                    "rebooting",
                    now,
                    Some(reason)
                );
            }
            tx.commit().await?;
        });
        Ok(Control { cancel: false })
    }

    /// Record attempts' results and move their runs on: finish them, or queue the next attempt
    /// by the job's retry policy, counting the devices' consecutive failures for their circuit
    /// breakers (`breaker_threshold`). One transaction: the reports are decided one after the
    /// other in memory (so two reports of one device count for its breaker in order)
    /// and written with a few set-based statements. One result per report.
    pub async fn finish_runs_batch(
        &self,
        items: &[FinishReport],
        breaker_threshold: u32,
        now: i64,
    ) -> Result<Vec<Result<FinishOutcome>>> {
        use std::collections::{HashMap, HashSet};
        let ids: Vec<String> = items.iter().map(|i| i.run_id.clone()).collect();
        let mut devices: Vec<String> = items.iter().map(|i| i.device_id.clone()).collect();
        devices.sort();
        devices.dedup();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut runs: HashMap<String, FinishRun> = HashMap::new();
            let mut recorded: HashSet<(String, i64)> = HashSet::new();
            for chunk in ids.chunks(CHUNK) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT r.id, r.device_id, r.job_id, r.state, r.attempt, r.not_before, r.expires_at, j.retry
                     FROM job_runs r JOIN jobs j ON j.id = r.job_id WHERE r.id IN ({})",
                    placeholders(1, chunk.len())
                ));
                let mut q = sqlx::query_as::<_, FinishRun>(sql);
                for id in chunk {
                    q = q.bind(id);
                }
                for r in q.fetch_all(&mut *tx).await? {
                    runs.insert(r.id.clone(), r);
                }
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT run_id, attempt FROM job_attempts WHERE outcome IS NOT NULL AND run_id IN ({})",
                    placeholders(1, chunk.len())
                ));
                let mut q = sqlx::query_as::<_, (String, i64)>(sql);
                for id in chunk {
                    q = q.bind(id);
                }
                recorded.extend(q.fetch_all(&mut *tx).await?);
            }
            let mut breakers: HashMap<String, (i64, Option<i64>, bool)> = HashMap::new();
            for chunk in devices.chunks(CHUNK) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT device_id, consecutive_failures, opened_at FROM device_breakers WHERE device_id IN ({})",
                    placeholders(1, chunk.len())
                ));
                let mut q = sqlx::query_as::<_, (String, i64, Option<i64>)>(sql);
                for d in chunk {
                    q = q.bind(d);
                }
                for (d, c, o) in q.fetch_all(&mut *tx).await? {
                    breakers.insert(d, (c, o, false));
                }
            }

            let mut out = Vec::with_capacity(items.len());
            let mut attempt_rows: Vec<(&str, i64, &RunFinished)> = Vec::new();
            let mut run_rows: Vec<RunUpdate> = Vec::new();
            // (job id, run id, attempt, state, reason)
            let mut history_rows: Vec<(String, String, i64, &'static str, Option<String>)> =
                Vec::new();
            for it in items {
                let report = &it.report;
                let attempt = i64::from(report.attempt);
                let Some(run) = runs
                    .get_mut(&it.run_id)
                    .filter(|r| r.device_id == it.device_id)
                else {
                    out.push(Err(StoreError::NotFound));
                    continue;
                };
                if attempt < 1 || attempt > run.attempt {
                    out.push(Err(StoreError::Invalid(format!(
                        "attempt {attempt} does not exist (current attempt: {})",
                        run.attempt
                    ))));
                    continue;
                }
                let state = state_of(&run.state)?;
                if !recorded.insert((it.run_id.clone(), attempt)) {
                    // A repeated report: the first one counted.
                    out.push(Ok(FinishOutcome {
                        state,
                        changed: false,
                        retry_at: None,
                        breaker_opened: false,
                    }));
                    continue;
                }
                attempt_rows.push((&it.run_id, attempt, report));
                if run.attempt != attempt || state.is_terminal() {
                    // Late result of a cancelled/expired run or of an older attempt: kept on
                    // the attempt, the run stays as it is.
                    out.push(Ok(FinishOutcome {
                        state,
                        changed: false,
                        retry_at: None,
                        breaker_opened: false,
                    }));
                    continue;
                }
                // The circuit breaker counts consecutive failed attempts of the device.
                let failed = matches!(
                    report.outcome,
                    AttemptOutcome::Failed | AttemptOutcome::TimedOut | AttemptOutcome::Interrupted
                );
                let entry = breakers.get(&it.device_id).copied();
                let (count_before, opened_before) = entry.map_or((0, None), |(c, o, _)| (c, o));
                let (count, opened_at) = if failed {
                    let c = count_before + 1;
                    let open = opened_before
                        .or((breaker_threshold > 0 && c >= i64::from(breaker_threshold))
                            .then_some(now));
                    (c, open)
                } else if report.outcome == AttemptOutcome::Succeeded {
                    (0, opened_before)
                } else {
                    (count_before, opened_before)
                };
                if entry.is_some() || failed {
                    breakers.insert(it.device_id.clone(), (count, opened_at, true));
                }
                let policy: RetryPolicy = decode_json("jobs.retry", &run.retry)?;
                let decision = after_attempt(&AttemptEnd {
                    policy: &policy,
                    attempt: report.attempt,
                    outcome: report.outcome,
                    exit_code: report.exit_code,
                    error: report.error.as_deref(),
                    breaker_open: opened_at.is_some(),
                    consecutive_failures: u32::try_from(count).unwrap_or(u32::MAX),
                    now,
                    expires_at: run.expires_at,
                });
                let exit = report.exit_code.map(i64::from);
                match decision {
                    AfterAttempt::Finish {
                        state,
                        reason,
                        held,
                    } => {
                        run_rows.push((
                            it.run_id.clone(),
                            state.as_str(),
                            attempt,
                            exit,
                            reason.clone(),
                            held,
                            run.not_before,
                        ));
                        history_rows.push((
                            run.job_id.clone(),
                            it.run_id.clone(),
                            attempt,
                            state.as_str(),
                            reason,
                        ));
                        run.state = state.as_str().to_string();
                        out.push(Ok(FinishOutcome {
                            state,
                            changed: true,
                            retry_at: None,
                            breaker_opened: opened_before.is_none() && opened_at.is_some(),
                        }));
                    }
                    AfterAttempt::Retry {
                        failed_state,
                        attempt: next,
                        not_before,
                        reason,
                    } => {
                        let next = i64::from(next);
                        run_rows.push((
                            it.run_id.clone(),
                            "queued",
                            next,
                            exit,
                            Some(reason.clone()),
                            false,
                            not_before,
                        ));
                        history_rows.push((
                            run.job_id.clone(),
                            it.run_id.clone(),
                            attempt,
                            failed_state.as_str(),
                            Some(reason),
                        ));
                        history_rows.push((
                            run.job_id.clone(),
                            it.run_id.clone(),
                            next,
                            "queued",
                            None,
                        ));
                        run.state = "queued".to_string();
                        run.attempt = next;
                        run.not_before = not_before;
                        out.push(Ok(FinishOutcome {
                            state: RunState::Queued,
                            changed: true,
                            retry_at: Some(not_before),
                            breaker_opened: false,
                        }));
                    }
                }
            }

            for part in attempt_rows.chunks(60) {
                let rows = (0..part.len())
                    .map(|k| {
                        let b = 11 * k;
                        format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5,
                            b + 6,
                            b + 7,
                            b + 8,
                            b + 9,
                            b + 10,
                            b + 11
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO job_attempts (run_id, attempt, outcome, exit_code, error, started_at, finished_at,
                         stdout_bytes, stderr_bytes, stdout_truncated, stderr_truncated)
                     VALUES {rows}
                     ON CONFLICT (run_id, attempt) DO UPDATE SET outcome = excluded.outcome,
                         exit_code = excluded.exit_code, error = excluded.error,
                         started_at = COALESCE(job_attempts.started_at, excluded.started_at),
                         finished_at = excluded.finished_at, stdout_bytes = excluded.stdout_bytes,
                         stderr_bytes = excluded.stderr_bytes, stdout_truncated = excluded.stdout_truncated,
                         stderr_truncated = excluded.stderr_truncated"
                ));
                let mut q = sqlx::query(sql);
                for (run_id, attempt, r) in part {
                    q = q
                        .bind(*run_id)
                        .bind(*attempt)
                        .bind(r.outcome.as_str())
                        .bind(r.exit_code.map(i64::from))
                        .bind(r.error.clone())
                        .bind(r.started_at_ms)
                        .bind(r.finished_at_ms)
                        .bind(i64::try_from(r.stdout_bytes).unwrap_or(i64::MAX))
                        .bind(i64::try_from(r.stderr_bytes).unwrap_or(i64::MAX))
                        .bind(r.stdout_truncated)
                        .bind(r.stderr_truncated);
                }
                q.execute(&mut *tx).await?;
            }
            let dirty: Vec<(&String, i64, Option<i64>)> = breakers
                .iter()
                .filter(|(_, (_, _, d))| *d)
                .map(|(k, (c, o, _))| (k, *c, *o))
                .collect();
            for part in dirty.chunks(CHUNK / 3) {
                let rows = (0..part.len())
                    .map(|k| format!("(${}, ${}, ${})", 3 * k + 1, 3 * k + 2, 3 * k + 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO device_breakers (device_id, consecutive_failures, opened_at) VALUES {rows}
                     ON CONFLICT (device_id) DO UPDATE SET consecutive_failures = excluded.consecutive_failures,
                         opened_at = excluded.opened_at"
                ));
                let mut q = sqlx::query(sql);
                for (d, c, o) in part {
                    q = q.bind(*d).bind(*c).bind(*o);
                }
                q.execute(&mut *tx).await?;
            }
            for part in run_rows.chunks(CHUNK / 8) {
                let rows = (0..part.len())
                    .map(|k| {
                        let b = 7 * k + 1;
                        format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5,
                            b + 6,
                            b + 7
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE job_runs SET state = v.column2, attempt = v.column3, exit_code = v.column4,
                         reason = v.column5, held = v.column6, not_before = v.column7, updated_at = $1
                     FROM (VALUES {rows}) AS v WHERE job_runs.id = v.column1"
                ));
                let mut q = sqlx::query(sql).bind(now);
                for (run_id, state, attempt, exit, reason, held, not_before) in part {
                    q = q
                        .bind(run_id)
                        .bind(*state)
                        .bind(*attempt)
                        .bind(*exit)
                        .bind(reason.clone())
                        .bind(*held)
                        .bind(*not_before);
                }
                q.execute(&mut *tx).await?;
            }
            for part in history_rows.chunks(CHUNK / 5) {
                let rows = (0..part.len())
                    .map(|k| {
                        let b = 5 * k + 1;
                        format!(
                            "(${}, ${}, ${}, ${}, $1, ${})",
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = sqlx::AssertSqlSafe(format!(
                    "INSERT INTO job_run_history (job_id, run_id, attempt, state, at, reason) VALUES {rows}"
                ));
                let mut q = sqlx::query(sql).bind(now);
                for (job, run, attempt, state, reason) in part {
                    q = q
                        .bind(job)
                        .bind(run)
                        .bind(*attempt)
                        .bind(*state)
                        .bind(reason.clone());
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Cancel a job: every run not yet terminal becomes `cancelled` (an agent running one is
    /// told at its next report and kills the process). Returns the number of runs cancelled
    /// and the devices that were running one. `NotFound` for an unknown job.
    pub async fn cancel_job(
        &self,
        job_id: &str,
        reason: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(u64, Vec<String>)> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let found = sqlx::query(
                "UPDATE jobs SET cancelled_at = COALESCE(cancelled_at, $2) WHERE id = $1",
            )
            .bind(job_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if found.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            let out = cancel_where!(tx, "job_id = $1", job_id, reason, now);
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Cancel one run (by run id or device id within the job).
    pub async fn cancel_run(
        &self,
        job_id: &str,
        run_id: &str,
        reason: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(u64, Vec<String>)> {
        let Some(run) = self.run(job_id, run_id).await? else {
            return Err(StoreError::NotFound);
        };
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let out = cancel_where!(tx, "id = $1", &run.id, reason, now);
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Queue a new attempt for every failed or timed-out run of a job ("retry failed runs"),
    /// with a fresh expiry of `expires_in_ms`. Runs of a cancelled job are not retried.
    /// Returns the runs retried and their devices.
    pub async fn retry_failed_runs(
        &self,
        job_id: &str,
        expires_in_ms: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(u64, Vec<String>)> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let job: Option<(Option<i64>,)> =
                sqlx::query_as("SELECT cancelled_at FROM jobs WHERE id = $1")
                    .bind(job_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match job {
                None => return Err(StoreError::NotFound),
                Some((Some(_),)) => {
                    return Err(StoreError::Conflict(
                        "the job was cancelled; create a new job instead".into(),
                    ));
                }
                Some((None,)) => {}
            }
            let runs: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT id, device_id, attempt FROM job_runs
                 WHERE job_id = $1 AND state IN ('failed', 'timed_out')",
            )
            .bind(job_id)
            .fetch_all(&mut *tx)
            .await?;
            let expires_at = now.saturating_add(expires_in_ms);
            let mut devices = Vec::with_capacity(runs.len());
            for (run_id, device, attempt) in &runs {
                let next = attempt + 1;
                sqlx::query(
                    "UPDATE job_runs SET state = 'queued', attempt = $2, reason = 'retried by an operator',
                         held = FALSE, not_before = $3, expires_at = $4, updated_at = $3 WHERE id = $1",
                )
                .bind(run_id)
                .bind(next)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                history!(
                    tx,
                    job_id,
                    run_id,
                    next,
                    "queued",
                    now,
                    Some("retried by an operator".to_string())
                );
                devices.push(device.clone());
            }
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
            Ok((runs.len() as u64, devices))
        })
    }

    /// Expire runs nobody picked up in time and give up on runs whose agent never reported
    /// (`grace_ms` after their timeout).
    pub async fn sweep_runs(&self, now: i64, grace_ms: i64) -> Result<SweepOutcome> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let expired: Vec<(String, String, i64, String)> = sqlx::query_as(
                "SELECT id, job_id, attempt, state FROM job_runs
                 WHERE state IN ('queued', 'delivered') AND expires_at <= $1",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let mut jobs = std::collections::BTreeSet::new();
            end_runs!(
                tx,
                &expired,
                "expired",
                now,
                jobs,
                |state: &str| if state == "queued" {
                    "expired before the device picked it up"
                } else {
                    "expired: delivered but never started"
                }
            );
            let lost: Vec<(String, String, i64, String)> = sqlx::query_as(
                "SELECT r.id, r.job_id, r.attempt, r.state FROM job_runs r
                 JOIN jobs j ON j.id = r.job_id
                 JOIN job_attempts a ON a.run_id = r.id AND a.attempt = r.attempt
                 WHERE r.state IN ('running', 'rebooting')
                   AND COALESCE(a.started_at, a.delivered_at, r.updated_at) + j.timeout_secs * 1000 + $2 < $1",
            )
            .bind(now)
            .bind(grace_ms)
            .fetch_all(&mut *tx)
            .await?;
            end_runs!(
                tx,
                &lost,
                "failed",
                now,
                jobs,
                |state: &str| if state == "rebooting" {
                    "the device did not report back after the reboot"
                } else {
                    "no result from the agent within the timeout and grace period"
                }
            );
            tx.commit().await?;
            Ok(SweepOutcome {
                expired: expired.len() as u64,
                lost: lost.len() as u64,
                jobs: jobs.into_iter().collect(),
            })
        })
    }

    /// Devices with a queued run that became due in `(after, now]` (retry backoff ended).
    pub async fn devices_with_due_runs(&self, after: i64, now: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| sqlx::query_as(
            "SELECT DISTINCT device_id FROM job_runs
             WHERE state = 'queued' AND not_before > $1 AND not_before <= $2"
        )
        .bind(after)
        .bind(now)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Give runs to devices that are now members of a group an active job follows (directly or
    /// through a descendant group) and have no run of that job yet — at most `limit` per call.
    /// The tree walk starts from the followed groups only, so without such jobs it is empty.
    /// Returns the (job, device) pairs created.
    pub async fn add_follow_runs(&self, now: i64, limit: i64) -> Result<Vec<(String, String)>> {
        let pairs: Vec<(String, String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "WITH RECURSIVE tree(job, id) AS (
                     SELECT f.job_id, f.group_id FROM job_follow_groups f
                     JOIN jobs j ON j.id = f.job_id
                     WHERE j.cancelled_at IS NULL AND j.expires_at > $1
                     UNION SELECT tree.job, g.id FROM device_groups g JOIN tree ON g.parent_id = tree.id)
                 SELECT DISTINCT j.id, m.device_id, j.expires_at FROM tree
                 JOIN jobs j ON j.id = tree.job
                 JOIN group_members m ON m.group_id = tree.id
                 WHERE NOT EXISTS (SELECT 1 FROM job_runs r WHERE r.job_id = j.id AND r.device_id = m.device_id)
                 LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let mut created = Vec::new();
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for (job, device, expires_at) in &pairs {
                let run_id = uuid::Uuid::now_v7().to_string();
                let inserted = sqlx::query(
                    "INSERT INTO job_runs (id, job_id, device_id, state, attempt, not_before, expires_at, updated_at)
                     VALUES ($1, $2, $3, 'queued', 1, $4, $5, $4)
                     ON CONFLICT (job_id, device_id) DO NOTHING",
                )
                .bind(&run_id)
                .bind(job)
                .bind(device)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    history!(
                        tx,
                        job,
                        &run_id,
                        1i64,
                        "queued",
                        now,
                        Some("the device joined a target group".to_string())
                    );
                    created.push((job.clone(), device.clone()));
                }
            }
            tx.commit().await?;
        });
        Ok(created)
    }

    /// Circuit breakers (only open ones with `open_only`).
    pub async fn breakers(&self, open_only: bool) -> Result<Vec<BreakerRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT b.device_id, d.hostname, b.consecutive_failures, b.opened_at,
                    (SELECT COUNT(*) FROM job_runs r WHERE r.device_id = b.device_id AND r.held) AS held_runs
             FROM device_breakers b JOIN devices d ON d.id = b.device_id
             WHERE ($1 = FALSE OR b.opened_at IS NOT NULL)
             ORDER BY d.hostname"
        )
        .bind(open_only)
        .fetch_all(pool)
        .await?
        }))
    }

    pub async fn breaker(&self, device_id: &str) -> Result<Option<BreakerRow>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT d.id AS device_id, d.hostname, COALESCE(b.consecutive_failures, 0) AS consecutive_failures,
                    b.opened_at,
                    (SELECT COUNT(*) FROM job_runs r WHERE r.device_id = d.id AND r.held) AS held_runs
             FROM devices d LEFT JOIN device_breakers b ON b.device_id = d.id
             WHERE d.id = $1"
        )
        .bind(device_id)
        .fetch_optional(pool)
        .await?
        }))
    }

    /// Close a device's breaker and queue the retries it held (of jobs that are neither
    /// cancelled nor expired). Returns how many runs were re-queued. `NotFound` for an unknown
    /// device.
    pub async fn reset_breaker(
        &self,
        device_id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<u64> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM device_breakers WHERE device_id = $1")
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            let held: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT r.id, r.job_id, r.attempt FROM job_runs r JOIN jobs j ON j.id = r.job_id
                 WHERE r.device_id = $1 AND r.held AND j.cancelled_at IS NULL AND r.expires_at > $2",
            )
            .bind(device_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            for (run_id, job_id, attempt) in &held {
                let next = attempt + 1;
                let reason = "retry after the circuit breaker was reset".to_string();
                sqlx::query(
                    "UPDATE job_runs SET state = 'queued', attempt = $2, held = FALSE, reason = $3,
                         not_before = $4, updated_at = $4 WHERE id = $1",
                )
                .bind(run_id)
                .bind(next)
                .bind(&reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                history!(tx, job_id, run_id, next, "queued", now, Some(reason));
            }
            sqlx::query("UPDATE job_runs SET held = FALSE WHERE device_id = $1 AND held")
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
            Ok(held.len() as u64)
        })
    }

    // ---- script library ----------------------------------------------------------------

    /// Create a script with its first version. `Conflict` when the name is taken.
    pub async fn create_script(
        &self,
        id: &str,
        v: &ScriptVersion,
        by: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO scripts (id, name, latest_version, created_at, updated_at) VALUES ($1, $2, 1, $3, $3)",
            )
            .bind(id)
            .bind(&v.name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "a script with this name exists"))?;
            insert_version!(tx, id, 1i64, v, by, now);
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Add a new version of a script (the caller merged the edit into the latest version).
    /// `expected_latest` guards against a lost update: `Conflict` if someone else edited it.
    pub async fn add_script_version(
        &self,
        id: &str,
        expected_latest: i64,
        v: &ScriptVersion,
        by: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64> {
        let next = expected_latest + 1;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE scripts SET latest_version = $2, name = $3, updated_at = $4
                 WHERE id = $1 AND latest_version = $5",
            )
            .bind(id)
            .bind(next)
            .bind(&v.name)
            .bind(now)
            .bind(expected_latest)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "a script with this name exists"))?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::Conflict(
                    "the script changed meanwhile; reload and edit again".into(),
                ));
            }
            insert_version!(tx, id, next, v, by, now);
            audit.insert(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(next)
    }

    /// A script's latest version (by id or name).
    pub async fn script(&self, key: &str) -> Result<Option<ScriptRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {SCRIPT_COLS} FROM scripts s JOIN script_versions v
               ON v.script_id = s.id AND v.version = s.latest_version
             WHERE s.id = $1 OR s.name = $1 ORDER BY (s.id = $1) DESC LIMIT 1"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(pool)
            .await?))
    }

    /// One version of a script.
    pub async fn script_version(&self, id: &str, version: i64) -> Result<Option<ScriptRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {SCRIPT_COLS} FROM scripts s JOIN script_versions v ON v.script_id = s.id
             WHERE s.id = $1 AND v.version = $2"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(version)
            .fetch_optional(pool)
            .await?))
    }

    /// Every version of a script, newest first.
    pub async fn script_versions(&self, id: &str) -> Result<Vec<ScriptRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {SCRIPT_COLS} FROM scripts s JOIN script_versions v ON v.script_id = s.id
             WHERE s.id = $1 ORDER BY v.version DESC"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_all(pool)
            .await?))
    }

    /// Every script at its latest version, by name.
    pub async fn list_scripts(&self) -> Result<Vec<ScriptRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {SCRIPT_COLS} FROM scripts s JOIN script_versions v
               ON v.script_id = s.id AND v.version = s.latest_version ORDER BY v.name"
        ));
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await?))
    }

    /// Delete a script and its versions. Jobs that ran it keep their own copy.
    pub async fn delete_script(&self, id: &str, audit: &AuditEntry) -> Result<()> {
        self.audited_change("DELETE FROM scripts WHERE id = $1", id, None, None, audit)
            .await
    }
}

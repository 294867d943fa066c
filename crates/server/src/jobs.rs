//! Jobs: the console routes (create, list, show, runs, live events, cancel, retry, circuit
//! breakers), the agent routes that deliver runs and take their reports, and the background
//! ticker that expires runs, wakes devices whose retry is due and gives runs to devices that
//! joined a followed group.
//!
//! A job's targets are resolved when it is created; the job and all its runs are written in one
//! transaction, and then every target device is woken. Delivery is at least once: a run stays
//! `delivered` until the agent says it started, and is handed out again (same attempt, same
//! idempotency key) until then; the agent's journal makes sure the key never runs twice. Each run
//! payload is signed with the server key, and every agent report is checked against the
//! reporting device — an agent only ever sees and changes its own runs (another device's run
//! id is a plain 404).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use capstan_core::jobs::{Problem, validate_retry, validate_spec};
use capstan_proto::error::{DetailedErrorBody, ErrorBody, ErrorDetail};
use capstan_proto::jobs::{
    AttemptInfo, AttemptOutcome, BreakerInfo, ClaimResponse, CreateJobRequest, DeliveredRun,
    JobEvent, JobInfo, JobPage, JobSpec, OutputReport, OutputStream, RunControl, RunCounts,
    RunDetail, RunFinished, RunInfo, RunPage, RunPayload, RunRebooting, RunStarted, RunState,
    RunTransition, RunsChanged, limits,
};
use capstan_store::{FinishReport, JobRow, NewJob, RunRow, StartReport, StoreError};

use crate::batch::BatchError;
use ed25519_dalek::Signer;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use utoipa::IntoParams;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::agent_api::AgentDevice;
use crate::auth::{Authz, JobsRead, JobsRun, Operator};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::{AppState, now_ms};

/// Default time until runs nobody picked up expire.
pub const DEFAULT_EXPIRY_SECS: u64 = 24 * 3600;
pub const MAX_EXPIRY_SECS: u64 = 30 * 24 * 3600;
/// How long after its timeout a run whose agent went silent is given up.
pub const LOST_GRACE_MS: i64 = 3600 * 1000;
/// Runs handed to an agent per claim.
pub const CLAIM_LIMIT: usize = 50;
/// Slack on top of the output cap for the agent's truncation marker.
const OUTPUT_SLACK: u64 = 4096;

/// In-process state of the job system: a counter bumped whenever any run changes, which live
/// views wait on (they then read what changed from the database, so they also see changes
/// made by other replicas within their poll interval).
#[derive(Debug)]
pub struct JobsRuntime {
    feed: watch::Sender<u64>,
}

impl Default for JobsRuntime {
    fn default() -> Self {
        JobsRuntime {
            feed: watch::Sender::new(0),
        }
    }
}

fn batch_error(run: &str, e: BatchError) -> ApiError {
    e.into_api(|| run_not_found(run))
}

impl JobsRuntime {
    pub fn changed(&self) {
        self.feed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.feed.subscribe()
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, create_job))
        .routes(routes!(get_job))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(job_events))
        .routes(routes!(cancel_job))
        .routes(routes!(cancel_run))
        .routes(routes!(retry_job))
        .routes(routes!(list_breakers))
        .routes(routes!(get_breaker))
        .routes(routes!(reset_breaker))
        .routes(routes!(device_runs))
}

pub fn agent_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(claim_runs))
        .routes(routes!(run_start))
        .routes(
            routes!(run_output).layer(axum::extract::DefaultBodyLimit::max(
                limits::MAX_OUTPUT_CHUNK_BYTES * 6 + 64 * 1024,
            )),
        )
        .routes(routes!(run_rebooting))
        .routes(routes!(run_finish))
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

fn run_state(s: &str) -> ApiResult<RunState> {
    RunState::parse(s).ok_or_else(|| ApiError::corrupt("run state", s))
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn exit_code(v: Option<i64>) -> Option<i32> {
    v.and_then(|c| i32::try_from(c).ok())
}

pub(crate) fn run_info(r: &RunRow) -> ApiResult<RunInfo> {
    let state = run_state(&r.state)?;
    Ok(RunInfo {
        id: r.id.clone(),
        job_id: r.job_id.clone(),
        device_id: r.device_id.clone(),
        hostname: r.hostname.clone(),
        state,
        attempt: to_u32(r.attempt),
        exit_code: exit_code(r.exit_code),
        reason: r.reason.clone(),
        next_attempt_at_ms: (state == RunState::Queued && r.attempt > 1).then_some(r.not_before),
        updated_at_ms: r.updated_at,
    })
}

fn job_info(j: &JobRow, counts: RunCounts) -> ApiResult<JobInfo> {
    Ok(JobInfo {
        id: j.id.clone(),
        name: j.name.clone(),
        kind: j.kind.clone(),
        spec: serde_json::from_str(&j.spec).map_err(|e| ApiError::corrupt("job spec", e))?,
        targets: serde_json::from_str(&j.targets)
            .map_err(|e| ApiError::corrupt("job targets", e))?,
        retry: serde_json::from_str(&j.retry)
            .map_err(|e| ApiError::corrupt("job retry policy", e))?,
        script_id: j.script_id.clone(),
        script_version: j.script_version.map(to_u32),
        created_by: j.created_by.clone(),
        created_at_ms: j.created_at,
        expires_at_ms: j.expires_at,
        cancelled_at_ms: j.cancelled_at,
        counts,
    })
}

async fn counts_for(state: &AppState, ids: &[String]) -> ApiResult<BTreeMap<String, RunCounts>> {
    let mut out: BTreeMap<String, RunCounts> = BTreeMap::new();
    for (job, st, n) in state.store.run_counts(ids).await? {
        let st = run_state(&st)?;
        out.entry(job)
            .or_default()
            .add(st, u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

async fn load_job(state: &AppState, id: &str) -> ApiResult<JobInfo> {
    let job = state
        .store
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    let mut counts = counts_for(state, std::slice::from_ref(&job.id)).await?;
    job_info(&job, counts.remove(&job.id).unwrap_or_default())
}

pub(crate) fn problems_error(prefix: &str, problems: Vec<Problem>) -> ApiError {
    let text: Vec<String> = problems
        .iter()
        .map(|p| format!("{prefix}{}: {}", p.path, p.message))
        .collect();
    let mut e = ApiError::validation(text.join("; "));
    e.details = problems
        .into_iter()
        .map(|p| ErrorDetail {
            path: format!("{prefix}{}", p.path),
            message: p.message,
            valid: p.valid,
        })
        .collect();
    e
}

fn default_name(spec: &JobSpec) -> String {
    use capstan_proto::jobs::JobAction;
    let s = match &spec.action {
        JobAction::Command { argv } => argv.join(" "),
        JobAction::Script {
            interpreter, body, ..
        } => {
            let first = body
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with("#!"))
                .unwrap_or("");
            format!("{} script: {}", interpreter.as_str(), first.trim())
        }
        JobAction::Reboot => "reboot".to_string(),
        JobAction::SoftwareInstall {
            package, version, ..
        } => format!("install {package} {}", version.as_deref().unwrap_or("")),
        JobAction::SoftwareUninstall {
            package, version, ..
        } => format!("uninstall {package} {}", version.as_deref().unwrap_or("")),
    };
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(120).collect();
    if out.is_empty() {
        out = spec.action.kind().to_string();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Creating jobs (also used by the script library)
// ---------------------------------------------------------------------------------------------

/// Where a job's spec came from, when it came from the script library.
pub(crate) struct ScriptRef {
    pub id: String,
    pub version: i64,
}

/// Validate, resolve targets and create the job with its runs; then wake the targets.
pub(crate) async fn create(
    state: &AppState,
    operator: &Operator,
    req: CreateJobRequest,
    script: Option<ScriptRef>,
) -> ApiResult<JobInfo> {
    let CreateJobRequest {
        name,
        spec,
        targets,
        expires_in_secs,
        retry,
    } = req;
    let mut problems: Vec<Problem> = validate_spec(&spec)
        .into_iter()
        .map(|mut p| {
            p.path = format!("/spec{}", p.path);
            p
        })
        .collect();
    problems.extend(validate_retry(&retry).into_iter().map(|mut p| {
        p.path = format!("/retry{}", p.path);
        p
    }));
    let expiry = expires_in_secs.unwrap_or(DEFAULT_EXPIRY_SECS);
    if expiry == 0 || expiry > MAX_EXPIRY_SECS {
        problems.push(Problem {
            path: "/expires_in_secs".into(),
            message: format!("must be between 1 and {MAX_EXPIRY_SECS} seconds"),
            valid: vec![],
        });
    }
    if let Some(n) = &name
        && (n.trim().is_empty() || n.len() > 200 || n.chars().any(char::is_control))
    {
        problems.push(Problem {
            path: "/name".into(),
            message: "1..=200 bytes without control characters".into(),
            valid: vec![],
        });
    }
    if targets.devices.is_empty() && targets.groups.is_empty() {
        problems.push(Problem {
            path: "/targets".into(),
            message: "name at least one device or group".into(),
            valid: vec![],
        });
    }
    if targets.follow_group_joins && targets.groups.is_empty() {
        problems.push(Problem {
            path: "/targets/follow_group_joins".into(),
            message: "following group joins needs at least one group".into(),
            valid: vec![],
        });
    }
    if targets.devices.len() > limits::MAX_TARGET_DEVICES || targets.groups.len() > 100 {
        problems.push(Problem {
            path: "/targets".into(),
            message: format!(
                "at most {} device ids and 100 groups",
                limits::MAX_TARGET_DEVICES
            ),
            valid: vec![],
        });
    }
    if !problems.is_empty() {
        return Err(problems_error("", problems));
    }
    let mut spec = spec;
    if spec.action.is_software() {
        if spec.pre_script.is_some() || spec.post_script.is_some() || spec.run_as.is_some() {
            return Err(ApiError::validation(
                "/spec: software jobs run as the agent with the version's own hooks; pre/post scripts and run_as do not apply",
            ));
        }
        let (action, timeout) = crate::packages::resolve(state, &spec.action).await?;
        spec.action = action;
        spec.timeout_secs = spec.timeout_secs.max(timeout);
    }

    // Resolve the targets now: explicit ids must all exist; groups by id or name.
    let mut devices = std::collections::BTreeSet::new();
    if !targets.devices.is_empty() {
        let ids = crate::groups::select_devices(state, Some(&targets.devices), None).await?;
        devices.extend(ids);
    }
    let mut group_ids = Vec::new();
    for (i, g) in targets.groups.iter().enumerate() {
        let row = state.store.group_by_id_or_name(g).await?.ok_or_else(|| {
            let mut e = ApiError::validation(format!("/targets/groups/{i}: unknown group {g:?}"));
            e.details = vec![ErrorDetail {
                path: format!("/targets/groups/{i}"),
                message: format!("unknown group {g:?}"),
                valid: vec![],
            }];
            e
        })?;
        let sel = capstan_proto::api::DeviceSelector {
            group: Some(row.id.clone()),
            ..Default::default()
        };
        devices.extend(crate::groups::select_devices(state, None, Some(&sel)).await?);
        group_ids.push(row.id);
    }
    if devices.is_empty() && !targets.follow_group_joins {
        return Err(ApiError::validation(
            "the targets resolve to no devices (empty groups?); nothing was created",
        ));
    }
    if devices.len() > limits::MAX_TARGET_DEVICES {
        return Err(ApiError::validation(format!(
            "the targets resolve to {} devices; one job can reach at most {}",
            devices.len(),
            limits::MAX_TARGET_DEVICES
        )));
    }
    let now = now_ms();
    let id = uuid::Uuid::now_v7().to_string();
    let name = name.unwrap_or_else(|| default_name(&spec));
    let kind = spec.action.kind().to_string();
    let expires_at = now.saturating_add(i64::try_from(expiry).unwrap_or(0) * 1000);
    let row = JobRow {
        id: id.clone(),
        name: name.clone(),
        kind: kind.clone(),
        spec: serde_json::to_string(&spec).map_err(ApiError::internal)?,
        targets: serde_json::to_string(&targets).map_err(ApiError::internal)?,
        retry: serde_json::to_string(&retry).map_err(ApiError::internal)?,
        script_id: script.as_ref().map(|s| s.id.clone()),
        script_version: script.as_ref().map(|s| s.version),
        created_by: operator.actor(),
        created_at: now,
        expires_at,
        timeout_secs: i64::try_from(spec.timeout_secs).unwrap_or(i64::MAX),
        cancelled_at: None,
    };
    let devices: Vec<String> = devices.into_iter().collect();
    let audit = operator.audit(
        "job.create",
        Some(&id),
        json!({"name": name, "kind": kind, "devices": devices.len(), "groups": group_ids,
               "script_id": row.script_id, "script_version": row.script_version}),
    );
    let new = NewJob {
        job: row.clone(),
        devices: devices.clone(),
        follow_groups: if targets.follow_group_joins {
            group_ids
        } else {
            Vec::new()
        },
    };
    let created = state.store.create_job(&new, &audit).await?;
    metrics::counter!("capstan_jobs_created_total").increment(1);
    // The answer is built from what was just written: after the wake-up the database is busy
    // with the woken agents, and the operator should not wait behind them.
    let mut counts = RunCounts::default();
    counts.add(RunState::Queued, created);
    let info = job_info(&row, counts)?;
    state.wake_devices(&devices).await;
    state.jobs.changed();
    Ok(info)
}

// ---------------------------------------------------------------------------------------------
// Console routes
// ---------------------------------------------------------------------------------------------

/// Create a job: resolve the targets, create one run per device and wake them.
///
/// Runs that no device picks up before `expires_in_secs` become `expired`.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = CreateJobRequest,
    responses((status = 201, body = JobInfo),
              (status = 400, body = DetailedErrorBody, description = "invalid spec, unknown devices or groups, empty target"),
              (status = 403, body = ErrorBody)))]
async fn create_job(
    State(state): State<AppState>,
    auth: Authz<JobsRun>,
    Json(req): Json<CreateJobRequest>,
) -> ApiResult<(StatusCode, Json<JobInfo>)> {
    let job = create(&state, &auth.operator, req, None).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

fn page(limit: Option<u64>, offset: Option<u64>) -> ApiResult<(i64, i64)> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            capstan_proto::error::ErrorCode::InvalidQuery,
            "limit must be between 1 and 500",
        ));
    }
    let offset = i64::try_from(offset.unwrap_or(0)).unwrap_or(i64::MAX);
    Ok((limit as i64, offset))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct JobListParams {
    /// 1..=500, default 50.
    limit: Option<u64>,
    offset: Option<u64>,
    /// `true`: only jobs with at least one run that failed or timed out (an interrupted last
    /// attempt counts as failed).
    failed: Option<bool>,
}

/// Jobs, newest first, with run counts.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobListParams),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody)))]
async fn list_jobs(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Query(q): Query<JobListParams>,
) -> ApiResult<Json<JobPage>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (rows, total) = state
        .store
        .list_jobs(limit, offset, q.failed.unwrap_or(false))
        .await?;
    let ids: Vec<String> = rows.iter().map(|j| j.id.clone()).collect();
    let mut counts = counts_for(&state, &ids).await?;
    let items = rows
        .iter()
        .map(|j| job_info(j, counts.remove(&j.id).unwrap_or_default()))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(JobPage {
        items,
        total: u64::try_from(total).unwrap_or(0),
    }))
}

/// One job with its run counts.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, body = JobInfo), (status = 404, body = ErrorBody)))]
async fn get_job(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobInfo>> {
    Ok(Json(load_job(&state, &id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Only runs in this state.
    state: Option<String>,
    /// 1..=500, default 50.
    limit: Option<u64>,
    offset: Option<u64>,
}

/// A job's runs, by hostname.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/runs", tag = "jobs", params(("id" = String, Path), RunsQuery),
    responses((status = 200, body = RunPage), (status = 404, body = ErrorBody)))]
async fn list_runs(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<RunPage>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = &q.state
        && RunState::parse(s).is_none()
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            capstan_proto::error::ErrorCode::InvalidQuery,
            format!(
                "unknown state {s:?}; valid: {}",
                RunState::ALL.map(RunState::as_str).join(", ")
            ),
        ));
    }
    if state.store.job(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("job {id}")));
    }
    let (rows, total) = state
        .store
        .list_runs(&id, q.state.as_deref(), limit, offset)
        .await?;
    Ok(Json(RunPage {
        items: rows.iter().map(run_info).collect::<ApiResult<_>>()?,
        total: u64::try_from(total).unwrap_or(0),
    }))
}

/// Assemble a run's attempts with their output, and its history.
pub(crate) async fn run_detail(state: &AppState, run: &RunRow) -> ApiResult<RunDetail> {
    let attempts = state.store.run_attempts(&run.id).await?;
    let output = state.store.run_output(&run.id).await?;
    let history = state.store.run_history(&run.id).await?;
    let mut by_attempt: BTreeMap<i64, (String, String)> = BTreeMap::new();
    for o in output {
        let slot = by_attempt.entry(o.attempt).or_default();
        if o.stream == "stderr" {
            slot.1.push_str(&o.data);
        } else {
            slot.0.push_str(&o.data);
        }
    }
    let attempts = attempts
        .into_iter()
        .map(|a| {
            let (stdout, stderr) = by_attempt.remove(&a.attempt).unwrap_or_default();
            AttemptInfo {
                attempt: to_u32(a.attempt),
                outcome: a.outcome.as_deref().and_then(parse_outcome),
                exit_code: exit_code(a.exit_code),
                error: a.error,
                delivered_at_ms: a.delivered_at,
                started_at_ms: a.started_at,
                finished_at_ms: a.finished_at,
                stdout,
                stderr,
                stdout_bytes: u64::try_from(a.stdout_bytes).unwrap_or(0),
                stderr_bytes: u64::try_from(a.stderr_bytes).unwrap_or(0),
                stdout_truncated: a.stdout_truncated,
                stderr_truncated: a.stderr_truncated,
            }
        })
        .collect();
    let history = history
        .iter()
        .map(|h| {
            Ok(RunTransition {
                attempt: to_u32(h.attempt),
                state: run_state(&h.state)?,
                at_ms: h.at,
                reason: h.reason.clone(),
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(RunDetail {
        run: run_info(run)?,
        attempts,
        history,
    })
}

fn parse_outcome(s: &str) -> Option<AttemptOutcome> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

/// One run (by run id, or by device id within the job) with every attempt, its output and
/// the full state history.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/runs/{run}", tag = "jobs",
    params(("id" = String, Path), ("run" = String, Path, description = "run id or device id")),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path((id, run)): Path<(String, String)>,
) -> ApiResult<Json<RunDetail>> {
    let row = state
        .store
        .run(&id, &run)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run} of job {id}")))?;
    Ok(Json(run_detail(&state, &row).await?))
}

/// Cancel the whole job: runs not yet finished become `cancelled`; running processes are
/// killed by their agents within about a second.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = RunsChanged), (status = 404, body = ErrorBody)))]
async fn cancel_job(
    State(state): State<AppState>,
    auth: Authz<JobsRun>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunsChanged>> {
    let now = now_ms();
    let reason = format!("cancelled by {}", auth.operator.username);
    let audit = auth.operator.audit("job.cancel", Some(&id), json!({}));
    let (n, running) = state
        .store
        .cancel_job(&id, &reason, now, &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!("job {id}")),
            other => other.into(),
        })?;
    state.wake_devices(&running).await;
    state.jobs.changed();
    Ok(Json(RunsChanged { changed: n }))
}

/// Cancel one run (by run id or device id).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/runs/{run}/cancel", tag = "jobs",
    params(("id" = String, Path), ("run" = String, Path)),
    responses((status = 200, body = RunsChanged), (status = 404, body = ErrorBody)))]
async fn cancel_run(
    State(state): State<AppState>,
    auth: Authz<JobsRun>,
    Path((id, run)): Path<(String, String)>,
) -> ApiResult<Json<RunsChanged>> {
    let now = now_ms();
    let reason = format!("cancelled by {}", auth.operator.username);
    let audit = auth
        .operator
        .audit("job.run.cancel", Some(&id), json!({"run": run}));
    let (n, running) = state
        .store
        .cancel_run(&id, &run, &reason, now, &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!("run {run} of job {id}")),
            other => other.into(),
        })?;
    state.wake_devices(&running).await;
    state.jobs.changed();
    Ok(Json(RunsChanged { changed: n }))
}

/// Retry every failed and timed-out run of the job as a new attempt (with a fresh expiry of
/// the job's original length).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = RunsChanged), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the job was cancelled")))]
async fn retry_job(
    State(state): State<AppState>,
    auth: Authz<JobsRun>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunsChanged>> {
    let job = state
        .store
        .job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    let now = now_ms();
    let audit = auth.operator.audit("job.retry", Some(&id), json!({}));
    let (n, devices) = state
        .store
        .retry_failed_runs(&id, job.expires_at - job.created_at, now, &audit)
        .await?;
    state.wake_devices(&devices).await;
    state.jobs.changed();
    Ok(Json(RunsChanged { changed: n }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeviceRunsQuery {
    /// 1..=500, default 50.
    limit: Option<u64>,
    offset: Option<u64>,
}

/// A device's runs across all jobs, newest job first, each with its job's name and kind and
/// the times of its current attempt: the device's job history.
#[utoipa::path(get, path = "/api/v1/devices/{id}/runs", tag = "jobs",
    params(("id" = String, Path, description = "Device id"), DeviceRunsQuery),
    responses((status = 200, body = capstan_proto::jobs::DeviceRunPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn device_runs(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path(id): Path<String>,
    Query(q): Query<DeviceRunsQuery>,
) -> ApiResult<Json<capstan_proto::jobs::DeviceRunPage>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if state.store.device(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id}")));
    }
    let (rows, total) = state.store.device_runs(&id, limit, offset).await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(capstan_proto::jobs::DeviceRunInfo {
                run: run_info(&r.run)?,
                job_name: r.job_name.clone(),
                job_kind: r.job_kind.clone(),
                job_created_at_ms: r.job_created_at,
                job_created_by: r.job_created_by.clone(),
                started_at_ms: r.started_at,
                finished_at_ms: r.finished_at,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(capstan_proto::jobs::DeviceRunPage {
        items,
        total: u64::try_from(total).unwrap_or(0),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct BreakerQuery {
    /// Only open breakers (default true).
    open: Option<bool>,
}

fn breaker_info(b: &capstan_store::BreakerRow, threshold: u32) -> BreakerInfo {
    BreakerInfo {
        device_id: b.device_id.clone(),
        hostname: b.hostname.clone(),
        consecutive_failures: to_u32(b.consecutive_failures),
        threshold,
        opened_at_ms: b.opened_at,
        held_runs: u64::try_from(b.held_runs).unwrap_or(0),
    }
}

/// Devices' circuit breakers: after `threshold` consecutive failed attempts a device's retries
/// stop until an operator resets it.
#[utoipa::path(get, path = "/api/v1/breakers", tag = "jobs", params(BreakerQuery),
    responses((status = 200, body = Vec<BreakerInfo>)))]
async fn list_breakers(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Query(q): Query<BreakerQuery>,
) -> ApiResult<Json<Vec<BreakerInfo>>> {
    let rows = state.store.breakers(q.open.unwrap_or(true)).await?;
    let t = state.config.job_breaker_threshold;
    Ok(Json(rows.iter().map(|b| breaker_info(b, t)).collect()))
}

/// One device's circuit breaker.
#[utoipa::path(get, path = "/api/v1/devices/{id}/breaker", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = BreakerInfo), (status = 404, body = ErrorBody)))]
async fn get_breaker(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<BreakerInfo>> {
    let row = state
        .store
        .breaker(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id}")))?;
    Ok(Json(breaker_info(&row, state.config.job_breaker_threshold)))
}

/// Reset a device's circuit breaker: the failure count starts over and the retries it held are
/// queued again.
#[utoipa::path(post, path = "/api/v1/devices/{id}/breaker/reset", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = RunsChanged), (status = 404, body = ErrorBody)))]
async fn reset_breaker(
    State(state): State<AppState>,
    auth: Authz<JobsRun>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunsChanged>> {
    let audit = auth
        .operator
        .audit("device.breaker.reset", Some(&id), json!({}));
    let n = state
        .store
        .reset_breaker(&id, now_ms(), &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!("device {id}")),
            other => other.into(),
        })?;
    if n > 0 {
        state.wake_device(&id).await;
        state.jobs.changed();
    }
    Ok(Json(RunsChanged { changed: n }))
}

// ---------------------------------------------------------------------------------------------
// Live events (SSE)
// ---------------------------------------------------------------------------------------------

/// Where a live stream is: the last history row and output chunk it sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cursor {
    history: i64,
    output: i64,
}

impl Cursor {
    fn parse(s: &str) -> Option<Cursor> {
        let (h, o) = s.split_once('-')?;
        Some(Cursor {
            history: h.parse().ok()?,
            output: o.parse().ok()?,
        })
    }

    fn id(&self) -> String {
        format!("{}-{}", self.history, self.output)
    }
}

/// Live events of a job as server-sent events: every run state change (`run`), output as it
/// arrives (`output`) and `finished` when no run is left unfinished. Starts from the beginning
/// of the job (so a late viewer sees everything) or, on reconnect, after the `Last-Event-ID`
/// the browser sends.
///
/// The cursor is the row ids of the history and output tables. On PostgreSQL with concurrent
/// writers an id can become visible after a higher one was already read; output is therefore
/// also tracked by byte offset per stream — a chunk beyond the expected offset makes the
/// stream read the skipped range first, a run that ends sends the rest of its output, and a
/// chunk seen twice is sent once. A skipped *state* row only delays that run's event to its
/// next change (its final state is in `finished`'s counts and the run list); views that must
/// be exact (the CLI's result collection) read the run list.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = JobEvent), (status = 404, body = ErrorBody)))]
async fn job_events(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    if state.store.job(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("job {id}")));
    }
    let cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Cursor::parse)
        .unwrap_or_default();
    let feed = state.jobs.subscribe();
    let shutdown = state.shutdown.clone();
    let init = EventsState {
        state,
        job: id,
        cursor,
        feed,
        shutdown,
        pending: std::collections::VecDeque::new(),
        finished_sent: false,
        first: true,
        expected: std::collections::HashMap::new(),
    };
    let stream = futures_util::stream::unfold(init, |mut s| async move {
        loop {
            if let Some(ev) = s.pending.pop_front() {
                return Some((Ok(ev), s));
            }
            if *s.shutdown.borrow() {
                return None;
            }
            if !s.first {
                // Wait for a change here, or poll (changes by other replicas).
                let mut shutdown = s.shutdown.clone();
                tokio::select! {
                    _ = s.feed.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait_for(|v| *v) => return None,
                }
            }
            s.first = false;
            if let Err(e) = s.fill().await {
                tracing::warn!(error = %e.message, job = %s.job, "job event stream failed");
                return None;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct EventsState {
    state: AppState,
    job: String,
    cursor: Cursor,
    feed: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    pending: std::collections::VecDeque<Event>,
    finished_sent: bool,
    first: bool,
    /// Next expected byte offset per (run, attempt, stream): a chunk beyond it means rows the
    /// cursor skipped (on PostgreSQL a lower id can commit after a higher one), which are then
    /// read by offset; a chunk before it was already sent.
    expected: std::collections::HashMap<(String, i64, String), i64>,
}

impl EventsState {
    /// Read what changed since the cursor into `pending`.
    async fn fill(&mut self) -> ApiResult<()> {
        // A handle of its own (cheap clone), so `self` stays free to take the events.
        let store = self.state.store.clone();
        // Counts first: everything that made the job finished is then in the rows read
        // below, so `finished` never overtakes the last state change or output.
        let counts = counts_for(&self.state, std::slice::from_ref(&self.job))
            .await?
            .remove(&self.job)
            .unwrap_or_default();
        let history = store
            .job_history_after(&self.job, self.cursor.history, 500)
            .await?;
        let output = store
            .job_output_after(&self.job, self.cursor.output, 200)
            .await?;
        let mut changed_runs: Vec<String> = history.iter().map(|h| h.run_id.clone()).collect();
        changed_runs.sort();
        changed_runs.dedup();
        let mut all_runs = changed_runs.clone();
        all_runs.extend(output.iter().map(|o| o.run_id.clone()));
        all_runs.sort();
        all_runs.dedup();
        let runs = store.runs_by_id(&all_runs).await?;
        let runs: BTreeMap<&str, &RunRow> = runs.iter().map(|r| (r.id.as_str(), r)).collect();
        if let Some(last) = history.last() {
            self.cursor.history = last.id;
        }
        for o in &output {
            self.cursor.output = o.id;
            let key = (o.run_id.clone(), o.attempt, o.stream.clone());
            let next = self.expected.get(&key).copied().unwrap_or(0);
            if o.off > next {
                // Rows the cursor skipped: read them by offset, in order, before this one.
                let gap = store
                    .output_between(&o.run_id, o.attempt, &o.stream, next, Some(o.off))
                    .await?;
                for g in &gap {
                    self.push_output(g, &runs)?;
                }
            }
            self.push_output(o, &runs)?;
        }
        // A run that just ended: send whatever of its output the cursor has not delivered.
        for run_id in &changed_runs {
            let Some(r) = runs.get(run_id.as_str()) else {
                continue;
            };
            if run_state(&r.state)?.is_terminal() {
                for stream in ["stdout", "stderr"] {
                    let key = (r.id.clone(), r.attempt, stream.to_string());
                    let next = self.expected.get(&key).copied().unwrap_or(0);
                    let tail = store
                        .output_between(&r.id, r.attempt, stream, next, None)
                        .await?;
                    for t in &tail {
                        self.push_output(t, &runs)?;
                    }
                }
            }
        }
        // One `run` event per changed run with its current state (intermediate states are in
        // the run's history).
        for run_id in &changed_runs {
            if let Some(r) = runs.get(run_id.as_str()) {
                let ev = JobEvent::Run { run: run_info(r)? };
                self.push(&ev)?;
            }
        }
        let done = counts.total > 0 && counts.finished() == counts.total;
        let caught_up = history.len() < 500 && output.len() < 200;
        if done && caught_up && !self.finished_sent {
            self.finished_sent = true;
            self.push(&JobEvent::Finished { counts })?;
        } else if !done {
            self.finished_sent = false;
        }
        Ok(())
    }

    /// Send one output row unless it was sent already (by offset), and advance its stream.
    fn push_output(
        &mut self,
        o: &capstan_store::OutputRow,
        runs: &BTreeMap<&str, &RunRow>,
    ) -> ApiResult<()> {
        let key = (o.run_id.clone(), o.attempt, o.stream.clone());
        let next = self.expected.get(&key).copied().unwrap_or(0);
        if o.off < next {
            return Ok(());
        }
        self.expected
            .insert(key, o.off.saturating_add(o.data.len() as i64));
        let device_id = runs
            .get(o.run_id.as_str())
            .map(|r| r.device_id.clone())
            .unwrap_or_default();
        let ev = JobEvent::Output {
            run_id: o.run_id.clone(),
            device_id,
            attempt: to_u32(o.attempt),
            stream: if o.stream == "stderr" {
                OutputStream::Stderr
            } else {
                OutputStream::Stdout
            },
            offset: u64::try_from(o.off).unwrap_or(0),
            data: o.data.clone(),
        };
        self.push(&ev)
    }

    fn push(&mut self, ev: &JobEvent) -> ApiResult<()> {
        let data = serde_json::to_string(ev).map_err(ApiError::internal)?;
        let name = match ev {
            JobEvent::Run { .. } => "run",
            JobEvent::Output { .. } => "output",
            JobEvent::Finished { .. } => "finished",
        };
        self.pending
            .push_back(Event::default().event(name).id(self.cursor.id()).data(data));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Agent routes
// ---------------------------------------------------------------------------------------------

fn sign_run(state: &AppState, payload: &RunPayload) -> ApiResult<DeliveredRun> {
    let text = serde_json::to_string(payload).map_err(ApiError::internal)?;
    let signature = state.signing_key.sign(text.as_bytes());
    Ok(DeliveredRun {
        payload: text,
        signature: hex::encode(signature.to_bytes()),
    })
}

fn run_not_found(run: &str) -> ApiError {
    ApiError::not_found(format!("run {run}"))
}

fn agent_store_error(run: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => run_not_found(run),
        other => other.into(),
    }
}

/// Claim the device's runnable runs and sign them (the claim route, and check-ins of agents
/// that take their runs with the check-in).
pub(crate) async fn claim_for(state: &AppState, device_id: &str) -> ApiResult<Vec<DeliveredRun>> {
    let urgent = state.store.urgent_write();
    let claimed = crate::batch::writes(state)
        .claim
        .call(device_id.to_string())
        .await
        .map_err(|e| batch_error(device_id, e))?;
    drop(urgent);
    deliver(state, device_id, claimed).await
}

/// The payloads of runs claimed for a device, each signed by the server key (software runs
/// carry the device's download sources).
pub(crate) async fn deliver(
    state: &AppState,
    device_id: &str,
    claimed: Vec<capstan_store::ClaimedRun>,
) -> ApiResult<Vec<DeliveredRun>> {
    let mut runs = Vec::with_capacity(claimed.len());
    // A software run carries the device's download sources; they are looked up once.
    let mut sources: Option<Vec<capstan_proto::software::DownloadSource>> = None;
    for c in &claimed {
        let spec: JobSpec =
            serde_json::from_str(&c.spec).map_err(|e| ApiError::corrupt("job spec", e))?;
        let run_sources = if spec.action.is_software() {
            if sources.is_none() {
                sources =
                    Some(Box::pin(crate::sources::sources_for_device(state, device_id)).await?);
            }
            sources.clone().unwrap_or_default()
        } else {
            Vec::new()
        };
        let attempt = to_u32(c.attempt);
        runs.push(sign_run(
            state,
            &RunPayload {
                run_id: c.run_id.clone(),
                job_id: c.job_id.clone(),
                device_id: device_id.to_string(),
                attempt,
                idempotency_key: format!("{}:{attempt}", c.run_id),
                sources: run_sources,
                spec,
                expires_at_ms: c.expires_at,
            },
        )?);
    }
    if !runs.is_empty() {
        metrics::counter!("capstan_job_runs_delivered_total").increment(runs.len() as u64);
        state.jobs.changed();
    }
    Ok(runs)
}

/// Claim this device's runnable runs. Each comes signed by the server key; runs delivered
/// earlier but never started are delivered again with the same idempotency key.
#[utoipa::path(post, path = "/agent/v1/runs/claim", tag = "agent",
    responses((status = 200, body = ClaimResponse), (status = 401, body = ErrorBody)), security(("device" = [])))]
async fn claim_runs(
    State(state): State<AppState>,
    device: AgentDevice,
) -> ApiResult<Json<ClaimResponse>> {
    let runs = claim_for(&state, &device.id).await?;
    Ok(Json(ClaimResponse { runs }))
}

fn check_attempt(attempt: u32) -> ApiResult<i64> {
    if attempt == 0 || attempt > limits::MAX_ATTEMPTS + 1000 {
        return Err(ApiError::validation(format!(
            "attempt {attempt} is out of range"
        )));
    }
    Ok(i64::from(attempt))
}

fn check_time(what: &str, t: i64, now: i64) -> ApiResult<()> {
    // Agent clocks drift; refuse only nonsense (before 2020, or more than a day ahead).
    if !(1_577_836_800_000..=now + 86_400_000).contains(&t) {
        return Err(ApiError::validation(format!(
            "{what} {t} is not a plausible Unix millisecond time"
        )));
    }
    Ok(())
}

/// The agent starts an attempt. `cancel: true` means the run was cancelled (or superseded)
/// meanwhile: do not start.
#[utoipa::path(post, path = "/agent/v1/runs/{id}/start", tag = "agent", params(("id" = String, Path)),
    request_body = RunStarted,
    responses((status = 200, body = RunControl), (status = 404, body = ErrorBody, description = "not this device's run")),
    security(("device" = [])))]
async fn run_start(
    State(state): State<AppState>,
    device: AgentDevice,
    Path(id): Path<String>,
    Json(req): Json<RunStarted>,
) -> ApiResult<Json<RunControl>> {
    let attempt = check_attempt(req.attempt)?;
    let now = now_ms();
    check_time("started_at_ms", req.started_at_ms, now)?;
    let c = crate::batch::writes(&state)
        .start
        .call(StartReport {
            device_id: device.id.clone(),
            run_id: id.clone(),
            attempt,
            started_at: req.started_at_ms,
        })
        .await
        .map_err(|e| batch_error(&id, e))?;
    state.jobs.changed();
    Ok(Json(RunControl { cancel: c.cancel }))
}

/// Output of a running attempt, in chunks with byte offsets (re-sending is harmless). Also the
/// agent's heartbeat: the answer says whether to cancel.
#[utoipa::path(post, path = "/agent/v1/runs/{id}/output", tag = "agent", params(("id" = String, Path)),
    request_body = OutputReport,
    responses((status = 200, body = RunControl), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("device" = [])))]
async fn run_output(
    State(state): State<AppState>,
    device: AgentDevice,
    Path(id): Path<String>,
    Json(req): Json<OutputReport>,
) -> ApiResult<Json<RunControl>> {
    let attempt = check_attempt(req.attempt)?;
    if req.chunks.len() > 64 {
        return Err(ApiError::validation("at most 64 chunks per report"));
    }
    let cap = limits::OUTPUT_CAP_BYTES as u64 + OUTPUT_SLACK;
    let mut chunks = Vec::with_capacity(req.chunks.len());
    for (i, c) in req.chunks.iter().enumerate() {
        let len = c.data.len() as u64;
        if len > limits::MAX_OUTPUT_CHUNK_BYTES as u64 {
            return Err(ApiError::validation(format!(
                "chunk {i} has {len} bytes; at most {} per chunk",
                limits::MAX_OUTPUT_CHUNK_BYTES
            )));
        }
        if c.offset.saturating_add(len) > cap {
            return Err(ApiError::validation(format!(
                "chunk {i} ends at byte {}, beyond the output cap of {} bytes per stream",
                c.offset.saturating_add(len),
                limits::OUTPUT_CAP_BYTES
            )));
        }
        if c.data.is_empty() {
            continue;
        }
        chunks.push((
            c.stream,
            i64::try_from(c.offset).unwrap_or(i64::MAX),
            i64::try_from(len).unwrap_or(i64::MAX),
            c.data.clone(),
        ));
    }
    let c = state
        .store
        .append_output(&device.id, &id, attempt, &chunks)
        .await
        .map_err(|e| agent_store_error(&id, e))?;
    if !chunks.is_empty() {
        state.jobs.changed();
    }
    Ok(Json(RunControl { cancel: c.cancel }))
}

/// The attempt asked for a reboot, which is about to happen. The run completes when the agent
/// reports from a new boot.
#[utoipa::path(post, path = "/agent/v1/runs/{id}/rebooting", tag = "agent", params(("id" = String, Path)),
    request_body = RunRebooting,
    responses((status = 200, body = RunControl), (status = 404, body = ErrorBody)),
    security(("device" = [])))]
async fn run_rebooting(
    State(state): State<AppState>,
    device: AgentDevice,
    Path(id): Path<String>,
    Json(req): Json<RunRebooting>,
) -> ApiResult<Json<RunControl>> {
    let attempt = check_attempt(req.attempt)?;
    if req.boot_id.is_empty() || req.boot_id.len() > 64 || req.boot_id.chars().any(char::is_control)
    {
        return Err(ApiError::validation(
            "boot_id must be 1..=64 printable bytes",
        ));
    }
    let c = state
        .store
        .rebooting_run(&device.id, &id, attempt, &req.boot_id, now_ms())
        .await
        .map_err(|e| agent_store_error(&id, e))?;
    state.jobs.changed();
    Ok(Json(RunControl { cancel: c.cancel }))
}

/// An attempt's result. Idempotent: a repeated report changes nothing. A retry, when the job's
/// policy asks for one, is scheduled here.
#[utoipa::path(post, path = "/agent/v1/runs/{id}/finish", tag = "agent", params(("id" = String, Path)),
    request_body = RunFinished,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("device" = [])))]
async fn run_finish(
    State(state): State<AppState>,
    device: AgentDevice,
    Path(id): Path<String>,
    Json(req): Json<RunFinished>,
) -> ApiResult<StatusCode> {
    check_attempt(req.attempt)?;
    let now = now_ms();
    check_time("finished_at_ms", req.finished_at_ms, now)?;
    if let Some(s) = req.started_at_ms {
        check_time("started_at_ms", s, now)?;
    }
    if let Some(e) = &req.error
        && e.len() > 4096
    {
        return Err(ApiError::validation("error is limited to 4096 bytes"));
    }
    let outcome = req.outcome;
    let out = crate::batch::writes(&state)
        .finish
        .call(FinishReport {
            device_id: device.id.clone(),
            run_id: id.clone(),
            report: req,
        })
        .await
        .map_err(|e| batch_error(&id, e))?;
    if out.changed {
        metrics::counter!("capstan_job_attempts_finished_total", "outcome" => outcome.as_str())
            .increment(1);
        state.jobs.changed();
    }
    if out.breaker_opened {
        tracing::warn!(device = %device.id, "circuit breaker opened: job retries on this device stop until it is reset");
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Background ticker
// ---------------------------------------------------------------------------------------------

/// One pass of the job ticker: expire runs, give up on silent agents, wake devices whose retry
/// became due since `last`, and give runs to devices that joined a followed group. Returns the
/// time to pass as `last` next time.
pub async fn tick(state: &AppState, last: i64, now: i64) -> ApiResult<()> {
    let sweep = state.store.sweep_runs(now, LOST_GRACE_MS).await?;
    if sweep.expired + sweep.lost > 0 {
        tracing::info!(
            expired = sweep.expired,
            lost = sweep.lost,
            "job runs expired or given up"
        );
        state.jobs.changed();
    }
    let due = state.store.devices_with_due_runs(last, now).await?;
    state.wake_devices(&due).await;
    let created = state.store.add_follow_runs(now, 1000).await?;
    if !created.is_empty() {
        let mut devices: Vec<String> = created.into_iter().map(|(_, d)| d).collect();
        devices.sort();
        devices.dedup();
        tracing::info!(
            devices = devices.len(),
            "devices that joined followed groups got job runs"
        );
        state.wake_devices(&devices).await;
        state.jobs.changed();
    }
    Ok(())
}

/// Run [`tick`] every second until the server shuts down.
pub async fn run_ticker(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Retries that became due while the server was down are woken on the first tick.
    let mut last = 0;
    loop {
        interval.tick().await;
        if *state.shutdown.borrow() {
            return;
        }
        let now = now_ms();
        match tick(&state, last, now).await {
            Ok(()) => last = now,
            Err(e) => tracing::warn!(error = %e.message, "job ticker pass failed"),
        }
    }
}

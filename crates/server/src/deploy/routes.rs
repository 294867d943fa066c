//! Console API of desired software state: `/api/v1/assignments`, `/api/v1/deployments`,
//! `/api/v1/maintenance-windows`, a device's software state (`/api/v1/devices/{id}/software`)
//! and the test clock. Every change marks the affected devices for the compiler.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use capstan_core::windows::CompiledWindow;
use capstan_proto::deploy::{
    AssignmentConflict, AssignmentInfo, AssignmentQuery, CreateAssignmentRequest,
    CreateDeploymentRequest, CreateWindowRequest, DeploymentInfo, DeploymentStatus,
    DeviceItemState, DeviceSoftwareState, ExitCodeGroup, Intent, ItemHistoryEntry, ItemIntent,
    ItemStatus, NetworkPolicy, Progress, Rollout, StatusCounts, TargetKind, TargetRef, WindowInfo,
    WindowPolicy, WindowSchedule, limits,
};
use capstan_proto::error::ErrorBody;
use capstan_proto::software::SourceGroup;
use capstan_store::{AssignmentRow, SoftwareStateRow, WindowRow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, DeploymentsManage, DeploymentsRead, DevicesRead, UsersManage};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_assignments, create_assignment))
        .routes(routes!(get_assignment, delete_assignment))
        .routes(routes!(list_deployments, create_deployment))
        .routes(routes!(get_deployment, delete_deployment))
        .routes(routes!(pause_deployment))
        .routes(routes!(resume_deployment))
        .routes(routes!(deployment_status))
        .routes(routes!(list_windows, create_window))
        .routes(routes!(get_window, delete_window))
        .routes(routes!(device_software))
        .routes(routes!(software_history))
        .routes(routes!(request_install))
        .routes(routes!(set_clock))
}

// ---------------------------------------------------------------------------------------------
// Shared
// ---------------------------------------------------------------------------------------------

/// Earliest and latest times accepted for schedules: 2000-01-01 and 3000-01-01.
const MIN_TIME_MS: i64 = 946_684_800_000;
const MAX_TIME_MS: i64 = 32_503_680_000_000;

fn parse_intent(s: &str) -> ApiResult<Intent> {
    Intent::parse(s).ok_or_else(|| ApiError::corrupt("assignment intent", s))
}

/// An assignment as the API shows it.
async fn assignment_info(state: &AppState, r: &AssignmentRow) -> ApiResult<AssignmentInfo> {
    let pkg = state.store.package(&r.package_id).await?;
    let package_name = pkg.map(|p| p.name).unwrap_or_else(|| r.package_id.clone());
    let version = match &r.version_id {
        Some(vid) => state
            .store
            .package_versions(&r.package_id)
            .await?
            .into_iter()
            .find(|v| v.id == *vid)
            .map(|v| v.version),
        None => None,
    };
    let resolved_version = match &version {
        Some(v) => Some(v.clone()),
        None => crate::packages::latest_version(state, &r.package_id)
            .await?
            .map(|v| v.version),
    };
    let (target_kind, target_name) = if r.target_kind == "device" {
        let name = state
            .store
            .device(&r.target_id)
            .await?
            .map(|d| d.hostname)
            .unwrap_or_else(|| r.target_id.clone());
        (TargetKind::Device, name)
    } else {
        let name = state
            .store
            .group(&r.target_id)
            .await?
            .map(|g| g.name)
            .unwrap_or_else(|| r.target_id.clone());
        (TargetKind::Group, name)
    };
    Ok(AssignmentInfo {
        id: r.id.clone(),
        package_id: r.package_id.clone(),
        package_name,
        version,
        resolved_version,
        target_kind,
        target_id: r.target_id.clone(),
        target_name,
        intent: parse_intent(&r.intent)?,
        leave_installed: r.leave_installed,
        deployment: r.name.as_ref().map(|_| r.id.clone()),
        created_at_ms: r.created_at,
        created_by: r.created_by.clone(),
        counts: Some(counts_of(
            &state.store.assignment_status_counts(&r.id).await?,
        )),
    })
}

/// The fields an assignment and a deployment share, checked; returns the row to store.
struct AssignmentDraft<'a> {
    package: &'a str,
    version: Option<&'a str>,
    target: &'a TargetRef,
    intent: Intent,
    leave_installed: bool,
}

async fn draft_row(
    state: &AppState,
    d: AssignmentDraft<'_>,
    created_by: String,
) -> ApiResult<AssignmentRow> {
    let mut problems = Vec::new();
    let pkg = if d.package.is_empty() || d.package.len() > 128 {
        problems.push("/package: a package id or name".to_string());
        None
    } else {
        let p = state.store.package(d.package).await?;
        if p.is_none() {
            problems.push(format!("/package: there is no package {:?}", d.package));
        }
        p
    };
    let mut version_id = None;
    if let (Some(p), Some(v)) = (&pkg, d.version) {
        match state.store.package_version(&p.id, Some(v)).await? {
            Some(row) => version_id = Some(row.id),
            None => problems.push(format!("/version: package {} has no version {v:?}", p.name)),
        }
    } else if let Some(p) = &pkg
        && state.store.package_versions(&p.id).await?.is_empty()
    {
        problems.push(format!(
            "/package: package {} has no versions yet; upload one first",
            p.name
        ));
    }
    let target_id = match d.target.kind {
        TargetKind::Device => match state.store.device(&d.target.id).await? {
            Some(dev) if dev.revoked_at.is_none() => Some(dev.id),
            Some(_) => {
                problems.push(format!("/target/id: device {} is revoked", d.target.id));
                None
            }
            None => {
                problems.push(format!("/target/id: there is no device {:?}", d.target.id));
                None
            }
        },
        TargetKind::Group => match state.store.group_by_id_or_name(&d.target.id).await? {
            Some(g) => Some(g.id),
            None => {
                problems.push(format!("/target/id: there is no group {:?}", d.target.id));
                None
            }
        },
    };
    if d.intent == Intent::Uninstall && d.leave_installed {
        problems.push(
            "/leave_installed: an uninstall assignment installs nothing to leave behind".into(),
        );
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems.join("; ")));
    }
    let (Some(pkg), Some(target_id)) = (pkg, target_id) else {
        return Err(ApiError::internal(
            "checked assignment without package or target",
        ));
    };
    // A second assignment of the package to the same target is refused with the one that
    // exists, so the operator edits or removes it instead of guessing which wins.
    if let Some(existing) = state.store.assignments().await?.into_iter().find(|a| {
        a.package_id == pkg.id
            && a.target_kind == d.target.kind.as_str()
            && a.target_id == target_id
    }) {
        return Err(ApiError::conflict(format!(
            "package {} already has assignment {} ({}) to this {}; remove it first or change that one",
            pkg.name,
            existing.id,
            existing.intent,
            d.target.kind.as_str()
        )));
    }
    let now = now_ms();
    Ok(AssignmentRow {
        id: uuid::Uuid::now_v7().to_string(),
        package_id: pkg.id,
        version_id,
        target_kind: d.target.kind.as_str().to_string(),
        target_id,
        intent: d.intent.as_str().to_string(),
        leave_installed: d.leave_installed,
        name: None,
        description: None,
        available_from: None,
        deadline: None,
        window_policy: "respect".into(),
        network: "{}".into(),
        rollout: "\"all_at_once\"".into(),
        paused: false,
        created_at: now,
        created_by,
        updated_at: now,
    })
}

/// Checks a deployment's or window's name and description; returns the trimmed name.
fn check_label<'a>(
    name: &'a str,
    description: Option<&str>,
    problems: &mut Vec<String>,
) -> &'a str {
    let name = name.trim();
    if name.is_empty() || name.len() > limits::MAX_NAME_BYTES || name.chars().any(char::is_control)
    {
        problems.push(format!(
            "/name: 1 to {} bytes without control characters",
            limits::MAX_NAME_BYTES
        ));
    }
    if description.is_some_and(|d| d.len() > limits::MAX_DESCRIPTION_BYTES) {
        problems.push(format!(
            "/description: at most {} bytes",
            limits::MAX_DESCRIPTION_BYTES
        ));
    }
    name
}

/// Stores a new assignment or deployment with its audit entry and marks every device for the
/// compiler.
async fn save(
    state: &AppState,
    row: &AssignmentRow,
    audit: &capstan_store::AuditEntry,
    what: &str,
) -> ApiResult<()> {
    state
        .store
        .create_assignment(row, audit)
        .await
        .map_err(|e| ApiError::from_store(e, what))?;
    state.deploy.mark_all();
    Ok(())
}

async fn find_assignment(state: &AppState, id: &str) -> ApiResult<AssignmentRow> {
    state
        .store
        .assignment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("assignment {id}")))
}

async fn find_deployment(state: &AppState, id: &str) -> ApiResult<AssignmentRow> {
    match state.store.assignment(id).await? {
        Some(r) if r.name.is_some() => Ok(r),
        _ => Err(ApiError::not_found(format!("deployment {id}"))),
    }
}

fn stored_network(text: &str) -> ApiResult<NetworkPolicy> {
    serde_json::from_str(text).map_err(|e| ApiError::corrupt("deployment network policy", e))
}

fn stored_rollout(text: &str) -> ApiResult<Rollout> {
    serde_json::from_str(text).map_err(|e| ApiError::corrupt("deployment rollout", e))
}

fn counts_of(rows: &[(String, i64)]) -> StatusCounts {
    let mut c = StatusCounts::default();
    for (status, n) in rows {
        let n = u64::try_from(*n).unwrap_or(0);
        c.total += n;
        match ItemStatus::parse(status) {
            Some(ItemStatus::Planned) => c.planned += n,
            Some(ItemStatus::Waiting) => c.waiting += n,
            Some(ItemStatus::Downloading) => c.downloading += n,
            Some(ItemStatus::Installing) => c.installing += n,
            Some(ItemStatus::Installed) => c.installed += n,
            Some(ItemStatus::Failed) => c.failed += n,
            Some(ItemStatus::NotApplicable) => c.not_applicable += n,
            Some(ItemStatus::Uninstalling) => c.uninstalling += n,
            Some(ItemStatus::Removed) => c.removed += n,
            Some(ItemStatus::RebootPending) => c.reboot_pending += n,
            Some(ItemStatus::Available) => c.available += n,
            None => {}
        }
    }
    c
}

async fn deployment_info(state: &AppState, r: &AssignmentRow) -> ApiResult<DeploymentInfo> {
    let mut assignment = assignment_info(state, r).await?;
    // The deployment carries the counts itself; once is enough.
    let counts = assignment.counts.take().unwrap_or_default();
    Ok(DeploymentInfo {
        id: r.id.clone(),
        name: r.name.clone().unwrap_or_default(),
        description: r.description.clone(),
        assignment,
        available_from_ms: r.available_from,
        deadline_ms: r.deadline,
        window_policy: if r.window_policy == "ignore" {
            WindowPolicy::Ignore
        } else {
            WindowPolicy::Respect
        },
        network: stored_network(&r.network)?,
        rollout: stored_rollout(&r.rollout)?,
        paused: r.paused,
        counts,
    })
}

fn item_state(r: SoftwareStateRow) -> DeviceItemState {
    let desired = match r.desired.as_deref() {
        Some("present") => Some(ItemIntent::Present),
        Some("absent") => Some(ItemIntent::Absent),
        Some("available") => Some(ItemIntent::Available),
        _ => None,
    };
    DeviceItemState {
        device_id: r.device_id,
        hostname: r.hostname,
        package_id: r.package_id,
        package_name: r.package_name,
        version: r.version,
        desired,
        status: ItemStatus::parse(&r.status).unwrap_or(ItemStatus::Planned),
        detail: r.detail,
        exit_code: r.exit_code.and_then(|c| i32::try_from(c).ok()),
        progress: match (r.progress_received, r.progress_total) {
            (Some(a), Some(b)) => Some(Progress {
                received: u64::try_from(a).unwrap_or(0),
                total: u64::try_from(b).unwrap_or(0),
            }),
            _ => None,
        },
        assignment_id: r.assignment_id,
        drift_repairs: u64::try_from(r.drift_repairs).unwrap_or(0),
        updated_at_ms: r.updated_at,
    }
}

// ---------------------------------------------------------------------------------------------
// Assignments
// ---------------------------------------------------------------------------------------------

/// Assignments, optionally only one package's, one group's, or those reaching one device.
#[utoipa::path(get, path = "/api/v1/assignments", tag = "deployments", params(AssignmentQuery),
    responses((status = 200, body = Vec<AssignmentInfo>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_assignments(
    State(state): State<AppState>,
    _auth: Authz<DeploymentsRead>,
    Query(q): Query<AssignmentQuery>,
) -> ApiResult<Json<Vec<AssignmentInfo>>> {
    let mut rows = state.store.assignments().await?;
    if let Some(p) = &q.package {
        let pkg =
            state.store.package(p).await?.ok_or_else(|| {
                ApiError::validation(format!("package: there is no package {p:?}"))
            })?;
        rows.retain(|r| r.package_id == pkg.id);
    }
    if let Some(g) = &q.group {
        let group = state
            .store
            .group_by_id_or_name(g)
            .await?
            .ok_or_else(|| ApiError::validation(format!("group: there is no group {g:?}")))?;
        rows.retain(|r| r.target_kind == "group" && r.target_id == group.id);
    }
    if let Some(d) = &q.device {
        let reach = reaching(&state, d).await?;
        rows.retain(|r| reach.contains(&r.id));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(assignment_info(&state, r).await?);
    }
    Ok(Json(out))
}

/// Ids of the assignments that reach a device (directly or through its groups).
async fn reaching(state: &AppState, device: &str) -> ApiResult<Vec<String>> {
    if state.store.device(device).await?.is_none() {
        return Err(ApiError::not_found(format!("device {device}")));
    }
    let parents: HashMap<String, Option<String>> =
        state.store.group_parents().await?.into_iter().collect();
    let mine = crate::groups::with_ancestors(&parents, state.store.device_group_ids(device).await?);
    Ok(state
        .store
        .assignments()
        .await?
        .into_iter()
        .filter(|a| super::compile::reaches(a, device, &mine))
        .map(|a| a.id)
        .collect())
}

/// Assign a package (a version, or "latest") to a device or group as required, available or
/// uninstall. A second assignment of the same package to the same target is refused (409).
#[utoipa::path(post, path = "/api/v1/assignments", tag = "deployments",
    request_body = CreateAssignmentRequest,
    responses((status = 201, body = AssignmentInfo), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_assignment(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Json(req): Json<CreateAssignmentRequest>,
) -> ApiResult<(StatusCode, Json<AssignmentInfo>)> {
    let row = draft_row(
        &state,
        AssignmentDraft {
            package: &req.package,
            version: req.version.as_deref(),
            target: &req.target,
            intent: req.intent,
            leave_installed: req.leave_installed,
        },
        auth.operator.actor(),
    )
    .await?;
    let audit = auth.operator.audit(
        "assignment.create",
        Some(&row.id),
        json!({"package": row.package_id, "version": req.version, "target": req.target,
               "intent": row.intent, "leave_installed": row.leave_installed}),
    );
    save(&state, &row, &audit, "assignment").await?;
    Ok((
        StatusCode::CREATED,
        Json(assignment_info(&state, &row).await?),
    ))
}

/// One assignment.
#[utoipa::path(get, path = "/api/v1/assignments/{id}", tag = "deployments",
    params(("id" = String, Path)),
    responses((status = 200, body = AssignmentInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_assignment(
    State(state): State<AppState>,
    _auth: Authz<DeploymentsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<AssignmentInfo>> {
    let r = find_assignment(&state, &id).await?;
    Ok(Json(assignment_info(&state, &r).await?))
}

/// Remove an assignment (and its deployment, if it has one). Devices it no longer reaches
/// uninstall what it installed, unless it was created with `leave_installed`.
#[utoipa::path(delete, path = "/api/v1/assignments/{id}", tag = "deployments",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_assignment(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let r = find_assignment(&state, &id).await?;
    remove(&state, &auth.operator, &r, "assignment.delete").await
}

async fn remove(
    state: &AppState,
    operator: &crate::auth::Operator,
    r: &AssignmentRow,
    action: &str,
) -> ApiResult<StatusCode> {
    let audit = operator.audit(
        action,
        Some(&r.id),
        json!({"package": r.package_id, "target": r.target_id, "intent": r.intent,
               "leave_installed": r.leave_installed, "name": r.name}),
    );
    state
        .store
        .delete_assignment(&r.id, &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("assignment {}", r.id)))?;
    state.deploy.mark_all();
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------------------------------

/// Every deployment, with its devices per status.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments",
    responses((status = 200, body = Vec<DeploymentInfo>)),
    security(("bearer" = [])))]
async fn list_deployments(
    State(state): State<AppState>,
    _auth: Authz<DeploymentsRead>,
) -> ApiResult<Json<Vec<DeploymentInfo>>> {
    let mut out = Vec::new();
    for r in state.store.assignments().await? {
        if r.name.is_some() {
            out.push(deployment_info(&state, &r).await?);
        }
    }
    Ok(Json(out))
}

/// Create a deployment: an assignment with a name, an available-from time, a deadline, a
/// maintenance-window policy and a network policy.
#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments",
    request_body = CreateDeploymentRequest,
    responses((status = 201, body = DeploymentInfo), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_deployment(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Json(req): Json<CreateDeploymentRequest>,
) -> ApiResult<(StatusCode, Json<DeploymentInfo>)> {
    let mut problems = Vec::new();
    let name = check_label(&req.name, req.description.as_deref(), &mut problems);
    for (path, t) in [
        ("/available_from_ms", req.available_from_ms),
        ("/deadline_ms", req.deadline_ms),
    ] {
        if let Some(t) = t
            && !(MIN_TIME_MS..=MAX_TIME_MS).contains(&t)
        {
            problems.push(format!(
                "{path}: Unix milliseconds between 2000-01-01 and 3000-01-01"
            ));
        }
    }
    if let (Some(from), Some(deadline)) = (req.available_from_ms, req.deadline_ms)
        && deadline < from
    {
        problems.push("/deadline_ms: the deadline is before available-from".into());
    }
    if req.deadline_ms.is_some() && req.intent != Intent::Available {
        problems.push(
            "/deadline_ms: a deadline turns an available deployment into a required one; \
             use intent available"
                .into(),
        );
    }
    if req.network.max_bytes_per_sec.is_some_and(|b| b < 1024) {
        problems.push("/network/max_bytes_per_sec: at least 1024 bytes per second".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems.join("; ")));
    }
    let mut row = draft_row(
        &state,
        AssignmentDraft {
            package: &req.package,
            version: req.version.as_deref(),
            target: &req.target,
            intent: req.intent,
            leave_installed: req.leave_installed,
        },
        auth.operator.actor(),
    )
    .await?;
    row.name = Some(name.to_string());
    row.description = req.description.clone();
    row.available_from = req.available_from_ms;
    row.deadline = req.deadline_ms;
    row.window_policy = match req.window_policy {
        WindowPolicy::Respect => "respect".into(),
        WindowPolicy::Ignore => "ignore".into(),
    };
    row.network = serde_json::to_string(&req.network).map_err(ApiError::internal)?;
    row.rollout = serde_json::to_string(&req.rollout).map_err(ApiError::internal)?;
    let audit = auth.operator.audit(
        "deployment.create",
        Some(&row.id),
        json!({"name": name, "package": row.package_id, "version": req.version,
               "target": req.target, "intent": row.intent,
               "available_from_ms": req.available_from_ms, "deadline_ms": req.deadline_ms,
               "window_policy": row.window_policy, "network": req.network}),
    );
    save(&state, &row, &audit, "deployment").await?;
    Ok((
        StatusCode::CREATED,
        Json(deployment_info(&state, &row).await?),
    ))
}

/// One deployment, by id or name.
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "id or name")),
    responses((status = 200, body = DeploymentInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_deployment(
    State(state): State<AppState>,
    _auth: Authz<DeploymentsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentInfo>> {
    let r = find_deployment(&state, &id).await?;
    Ok(Json(deployment_info(&state, &r).await?))
}

/// Delete a deployment and its assignment; devices uninstall what it installed unless it was
/// created with `leave_installed`.
#[utoipa::path(delete, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "id or name")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_deployment(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let r = find_deployment(&state, &id).await?;
    remove(&state, &auth.operator, &r, "deployment.delete").await
}

async fn set_paused(
    state: &AppState,
    operator: &crate::auth::Operator,
    id: &str,
    paused: bool,
) -> ApiResult<Json<DeploymentInfo>> {
    let r = find_deployment(state, id).await?;
    let audit = operator.audit(
        if paused {
            "deployment.pause"
        } else {
            "deployment.resume"
        },
        Some(&r.id),
        json!({"name": r.name}),
    );
    state
        .store
        .set_assignment_paused(&r.id, paused, now_ms(), &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("deployment {id}")))?;
    state.deploy.mark_all();
    let r = find_deployment(state, &r.id).await?;
    Ok(Json(deployment_info(state, &r).await?))
}

/// Pause a deployment: its devices keep what they have; nothing new is installed or removed
/// for it until it is resumed.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/pause", tag = "deployments",
    params(("id" = String, Path, description = "id or name")),
    responses((status = 200, body = DeploymentInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn pause_deployment(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentInfo>> {
    set_paused(&state, &auth.operator, &id, true).await
}

/// Resume a paused deployment.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/resume", tag = "deployments",
    params(("id" = String, Path, description = "id or name")),
    responses((status = 200, body = DeploymentInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn resume_deployment(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentInfo>> {
    set_paused(&state, &auth.operator, &id, false).await
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Devices to list (failed first), 1–1000 [default: 100].
    #[serde(default)]
    pub limit: Option<i64>,
}

/// A deployment's progress: devices per status, the success rate, failures grouped by exit
/// code, and a page of devices (failed first).
#[utoipa::path(get, path = "/api/v1/deployments/{id}/status", tag = "deployments",
    params(("id" = String, Path, description = "id or name"), StatusQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn deployment_status(
    State(state): State<AppState>,
    _auth: Authz<DeploymentsRead>,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> ApiResult<Json<DeploymentStatus>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit: between 1 and 1000"));
    }
    let r = find_deployment(&state, &id).await?;
    let deployment = deployment_info(&state, &r).await?;
    let c = &deployment.counts;
    let good = if r.intent == "uninstall" {
        c.removed
    } else {
        c.installed + c.reboot_pending
    };
    let ended = good + c.failed + c.not_applicable;
    let success_rate = (ended > 0).then(|| good as f64 / ended as f64);
    let failures_by_exit_code = state
        .store
        .assignment_failures(&r.id)
        .await?
        .into_iter()
        .map(|(code, n, example)| ExitCodeGroup {
            exit_code: code.and_then(|c| i32::try_from(c).ok()),
            devices: u64::try_from(n).unwrap_or(0),
            example,
        })
        .collect();
    let devices = state
        .store
        .assignment_software(&r.id, limit)
        .await?
        .into_iter()
        .map(item_state)
        .collect();
    Ok(Json(DeploymentStatus {
        deployment,
        success_rate,
        failures_by_exit_code,
        devices,
    }))
}

// ---------------------------------------------------------------------------------------------
// Maintenance windows
// ---------------------------------------------------------------------------------------------

fn window_info(
    r: WindowRow,
    scope: &[(String, String, String)],
    now: i64,
) -> ApiResult<WindowInfo> {
    let schedule: WindowSchedule = serde_json::from_str(&r.schedule)
        .map_err(|e| ApiError::corrupt("maintenance window schedule", e))?;
    let next_open_ms = if r.timezone == "device" {
        None
    } else {
        CompiledWindow::compile(&schedule, &r.timezone)
            .ok()
            .and_then(|w| w.next_open(now, None))
    };
    Ok(WindowInfo {
        groups: scope
            .iter()
            .filter(|(w, _, _)| *w == r.id)
            .map(|(_, id, name)| SourceGroup {
                id: id.clone(),
                name: name.clone(),
            })
            .collect(),
        id: r.id,
        name: r.name,
        description: r.description,
        schedule,
        timezone: r.timezone,
        next_open_ms,
        created_at_ms: r.created_at,
    })
}

async fn find_window(state: &AppState, key: &str) -> ApiResult<WindowRow> {
    state
        .store
        .windows()
        .await?
        .into_iter()
        .find(|w| w.id == key || w.name.eq_ignore_ascii_case(key))
        .ok_or_else(|| ApiError::not_found(format!("maintenance window {key}")))
}

/// Every maintenance window, with its groups and when it next opens.
#[utoipa::path(get, path = "/api/v1/maintenance-windows", tag = "deployments",
    responses((status = 200, body = Vec<WindowInfo>)),
    security(("bearer" = [])))]
async fn list_windows(
    State(state): State<AppState>,
    _auth: Authz<DeploymentsRead>,
) -> ApiResult<Json<Vec<WindowInfo>>> {
    let scope = state.store.window_groups().await?;
    let now = state.deploy.now();
    let out = state
        .store
        .windows()
        .await?
        .into_iter()
        .map(|w| window_info(w, &scope, now))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(out))
}

/// Create a recurring maintenance window (weekly days and time, or a cron expression, with a
/// duration) in a time zone or each device's own, for the members of groups. Required installs
/// and uninstalls on those devices wait for an open window unless a deployment ignores windows.
#[utoipa::path(post, path = "/api/v1/maintenance-windows", tag = "deployments",
    request_body = CreateWindowRequest,
    responses((status = 201, body = WindowInfo), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_window(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Json(req): Json<CreateWindowRequest>,
) -> ApiResult<(StatusCode, Json<WindowInfo>)> {
    let mut problems: Vec<String> = Vec::new();
    let name = check_label(&req.name, req.description.as_deref(), &mut problems);
    if req.groups.is_empty() || req.groups.len() > limits::MAX_WINDOW_GROUPS {
        problems.push(format!(
            "/groups: 1 to {} groups the window applies to",
            limits::MAX_WINDOW_GROUPS
        ));
    }
    if let Err(p) = CompiledWindow::compile(&req.schedule, &req.timezone) {
        problems.extend(p.into_iter().map(|p| {
            if p.valid.is_empty() {
                format!("{}: {}", p.path, p.message)
            } else {
                format!("{}: {} (valid: {})", p.path, p.message, p.valid.join(", "))
            }
        }));
    }
    let mut groups = Vec::new();
    for (i, g) in req.groups.iter().enumerate() {
        match state.store.group_by_id_or_name(g).await? {
            Some(row) if !groups.contains(&row.id) => groups.push(row.id),
            Some(_) => {}
            None => problems.push(format!("/groups/{i}: there is no group {g:?}")),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems.join("; ")));
    }
    let now = now_ms();
    let row = WindowRow {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        description: req.description.clone(),
        schedule: serde_json::to_string(&req.schedule).map_err(ApiError::internal)?,
        timezone: req.timezone.clone(),
        created_at: now,
        updated_at: now,
    };
    let audit = auth.operator.audit(
        "maintenance_window.create",
        Some(&row.id),
        json!({"name": row.name, "schedule": req.schedule, "timezone": row.timezone,
               "groups": groups}),
    );
    state
        .store
        .create_window(&row, &groups, &audit)
        .await
        .map_err(|e| ApiError::from_store(e, "maintenance window"))?;
    state.deploy.mark_all();
    let scope = state.store.window_groups().await?;
    Ok((
        StatusCode::CREATED,
        Json(window_info(row, &scope, state.deploy.now())?),
    ))
}

/// One maintenance window, by id or name.
#[utoipa::path(get, path = "/api/v1/maintenance-windows/{id}", tag = "deployments",
    params(("id" = String, Path, description = "id or name")),
    responses((status = 200, body = WindowInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_window(
    State(state): State<AppState>,
    _auth: Authz<DeploymentsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<WindowInfo>> {
    let w = find_window(&state, &id).await?;
    let scope = state.store.window_groups().await?;
    Ok(Json(window_info(w, &scope, state.deploy.now())?))
}

/// Delete a maintenance window; installs that waited for it proceed if no other window holds
/// them.
#[utoipa::path(delete, path = "/api/v1/maintenance-windows/{id}", tag = "deployments",
    params(("id" = String, Path, description = "id or name")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_window(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let w = find_window(&state, &id).await?;
    let audit = auth.operator.audit(
        "maintenance_window.delete",
        Some(&w.id),
        json!({"name": w.name}),
    );
    state
        .store
        .delete_window(&w.id, &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("maintenance window {id}")))?;
    state.deploy.mark_all();
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// A device's software
// ---------------------------------------------------------------------------------------------

/// A device's software state: each package's status, the assignments that reach it and the
/// conflicts between them (with the rule step that decided).
#[utoipa::path(get, path = "/api/v1/devices/{id}/software", tag = "deployments",
    params(("id" = String, Path)),
    responses((status = 200, body = DeviceSoftwareState), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn device_software(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceSoftwareState>> {
    let reach = reaching(&state, &id).await?;
    let manifest = state.store.manifest(&id).await?;
    let items = state
        .store
        .device_software(&id)
        .await?
        .into_iter()
        .map(item_state)
        .collect();
    let mut assignments = Vec::new();
    let rows: Vec<AssignmentRow> = state
        .store
        .assignments()
        .await?
        .into_iter()
        .filter(|a| reach.contains(&a.id))
        .collect();
    for r in &rows {
        assignments.push(assignment_info(&state, r).await?);
    }
    let conflicts = super::compile::conflicts_for(&state, &id)
        .await?
        .into_iter()
        .map(|c| {
            let name = assignments
                .iter()
                .find(|a| a.package_id == c.package_id)
                .map(|a| a.package_name.clone())
                .unwrap_or_default();
            AssignmentConflict {
                package_id: c.package_id,
                package_name: name,
                winner: c.winner,
                loser: c.loser,
                reason: c.reason,
            }
        })
        .collect();
    Ok(Json(DeviceSoftwareState {
        device_id: id,
        revision: manifest
            .as_ref()
            .and_then(|m| u64::try_from(m.revision).ok())
            .unwrap_or(0),
        acknowledged_revision: manifest
            .and_then(|m| m.acked_revision)
            .and_then(|r| u64::try_from(r).ok()),
        items,
        assignments,
        conflicts,
    }))
}

/// The history of one package on a device (status changes with exit codes and logs), newest
/// first.
#[utoipa::path(get, path = "/api/v1/devices/{id}/software/{package}/history", tag = "deployments",
    params(("id" = String, Path), ("package" = String, Path, description = "id or name")),
    responses((status = 200, body = Vec<ItemHistoryEntry>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn software_history(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Path((id, package)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ItemHistoryEntry>>> {
    let pkg = state
        .store
        .package(&package)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("package {package}")))?;
    if state.store.device(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id}")));
    }
    let rows = state.store.software_history(&id, &pkg.id, 200).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| ItemHistoryEntry {
                at_ms: r.at,
                status: ItemStatus::parse(&r.status).unwrap_or(ItemStatus::Planned),
                version: r.version,
                detail: r.detail,
                exit_code: r.exit_code.and_then(|c| i32::try_from(c).ok()),
                log: r.log,
                drift: r.drift,
            })
            .collect(),
    ))
}

/// Install a package that is available to the device now (on demand).
#[utoipa::path(post, path = "/api/v1/devices/{id}/software/{package}/install", tag = "deployments",
    params(("id" = String, Path), ("package" = String, Path, description = "id or name")),
    responses((status = 202), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn request_install(
    State(state): State<AppState>,
    auth: Authz<DeploymentsManage>,
    Path((id, package)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    super::agent::request(&state, &id, &package).await?;
    let audit = auth
        .operator
        .audit("software.request", Some(&id), json!({"package": package}));
    state.store.record_audit(&audit).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockRequest {
    /// The deployment clock's new time, Unix ms.
    pub now_ms: i64,
}

/// Testing only (the server must run with `--enable-test-clock`): move the deployment clock,
/// which decides schedules and maintenance windows. 404 otherwise.
#[utoipa::path(put, path = "/api/v1/system/clock", tag = "system", request_body = ClockRequest,
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_clock(
    State(state): State<AppState>,
    _auth: Authz<UsersManage>,
    Json(req): Json<ClockRequest>,
) -> ApiResult<StatusCode> {
    if !state.config.test_clock {
        return Err(ApiError::not_found("route /api/v1/system/clock"));
    }
    if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&req.now_ms) {
        return Err(ApiError::validation(
            "now_ms: between 2000-01-01 and 3000-01-01",
        ));
    }
    state.deploy.set_now(req.now_ms);
    Ok(StatusCode::NO_CONTENT)
}

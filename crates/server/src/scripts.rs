//! The script library: saved scripts with a description and typed parameters. Every edit is a
//! new immutable version (an edit names the version it started from, so two operators editing
//! at once cannot silently overwrite each other), and a job run from the library records the
//! version it ran. Running binds the arguments to the parameters by type: each value reaches
//! the script as data — a positional argument in declaration order and the environment variable
//! `CAPSTAN_PARAM_<NAME>` — never spliced into a command line.

use axum::extract::State;
use axum::http::StatusCode;
use capstan_core::jobs::{Problem, bind_arguments, validate_parameters};
use capstan_proto::error::{DetailedErrorBody, ErrorBody};
use capstan_proto::jobs::{
    CreateJobRequest, CreateScriptRequest, Interpreter, JobAction, JobInfo, JobSpec,
    RunScriptRequest, ScriptInfo, ScriptParameter, ScriptVersionInfo, UpdateScriptRequest, limits,
};
use capstan_store::{ScriptRow, ScriptVersion, StoreError};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, JobsRead, JobsRun, ScriptsManage};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::jobs::problems_error;
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_scripts, create_script))
        .routes(routes!(get_script, update_script, delete_script))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(run_script))
}

fn corrupt(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("stored script is unreadable: {e}"))
}

fn interpreter(s: &str) -> ApiResult<Interpreter> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(corrupt)
}

fn parameters(s: &str) -> ApiResult<Vec<ScriptParameter>> {
    serde_json::from_str(s).map_err(corrupt)
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn script_info(r: &ScriptRow) -> ApiResult<ScriptInfo> {
    Ok(ScriptInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        latest_version: to_u32(r.latest_version),
        interpreter: interpreter(&r.interpreter)?,
        body: r.body.clone(),
        parameters: parameters(&r.parameters)?,
        created_at_ms: r.created_at,
        updated_at_ms: r.updated_at,
        updated_by: r.created_by.clone(),
    })
}

fn version_info(r: &ScriptRow) -> ApiResult<ScriptVersionInfo> {
    Ok(ScriptVersionInfo {
        script_id: r.id.clone(),
        version: to_u32(r.version),
        name: r.name.clone(),
        description: r.description.clone(),
        interpreter: interpreter(&r.interpreter)?,
        body: r.body.clone(),
        parameters: parameters(&r.parameters)?,
        created_at_ms: r.created_at,
        created_by: r.created_by.clone(),
    })
}

/// Check a complete script version; every problem with its JSON pointer.
fn check(name: &str, description: &str, body: &str, params: &[ScriptParameter]) -> ApiResult<()> {
    let mut problems: Vec<Problem> = Vec::new();
    let p = |path: &str, message: String| Problem {
        path: path.into(),
        message,
        valid: vec![],
    };
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        problems.push(p(
            "/name",
            "1..=200 bytes without control characters".into(),
        ));
    }
    if description.len() > 10_000 {
        problems.push(p("/description", "at most 10000 bytes".into()));
    }
    if body.trim().is_empty() {
        problems.push(p("/body", "the script is empty".into()));
    } else if body.len() > limits::MAX_SCRIPT_BYTES {
        problems.push(p(
            "/body",
            format!(
                "the script is {} bytes; the limit is {} bytes",
                body.len(),
                limits::MAX_SCRIPT_BYTES
            ),
        ));
    } else if body.contains('\0') {
        problems.push(p("/body", "the script contains a NUL byte".into()));
    }
    problems.extend(validate_parameters(params));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems_error("", problems))
    }
}

async fn find(state: &AppState, key: &str) -> ApiResult<ScriptRow> {
    state
        .store
        .script(key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("script {key}")))
}

/// Every script at its latest version, by name.
#[utoipa::path(get, path = "/api/v1/scripts", tag = "scripts",
    responses((status = 200, body = Vec<ScriptInfo>)))]
async fn list_scripts(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
) -> ApiResult<Json<Vec<ScriptInfo>>> {
    let rows = state.store.list_scripts().await?;
    Ok(Json(
        rows.iter().map(script_info).collect::<ApiResult<_>>()?,
    ))
}

/// Save a new script (version 1).
#[utoipa::path(post, path = "/api/v1/scripts", tag = "scripts", request_body = CreateScriptRequest,
    responses((status = 201, body = ScriptInfo), (status = 400, body = DetailedErrorBody),
              (status = 409, body = ErrorBody, description = "name taken")))]
async fn create_script(
    State(state): State<AppState>,
    auth: Authz<ScriptsManage>,
    Json(req): Json<CreateScriptRequest>,
) -> ApiResult<(StatusCode, Json<ScriptInfo>)> {
    check(&req.name, &req.description, &req.body, &req.parameters)?;
    let id = uuid::Uuid::now_v7().to_string();
    let v = ScriptVersion {
        name: req.name.clone(),
        description: req.description.clone(),
        interpreter: req.interpreter.as_str().to_string(),
        body: req.body.clone(),
        parameters: serde_json::to_string(&req.parameters).map_err(ApiError::internal)?,
    };
    let audit = auth
        .operator
        .audit("script.create", Some(&id), json!({"name": req.name}));
    state
        .store
        .create_script(&id, &v, &auth.operator.actor(), now_ms(), &audit)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(script_info(&find(&state, &id).await?)?),
    ))
}

/// A script (by id or name) at its latest version.
#[utoipa::path(get, path = "/api/v1/scripts/{id}", tag = "scripts", params(("id" = String, Path)),
    responses((status = 200, body = ScriptInfo), (status = 404, body = ErrorBody)))]
async fn get_script(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<ScriptInfo>> {
    Ok(Json(script_info(&find(&state, &id).await?)?))
}

/// Edit a script: a new version with the given fields changed.
#[utoipa::path(patch, path = "/api/v1/scripts/{id}", tag = "scripts", params(("id" = String, Path)),
    request_body = UpdateScriptRequest,
    responses((status = 200, body = ScriptInfo), (status = 400, body = DetailedErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_script(
    State(state): State<AppState>,
    auth: Authz<ScriptsManage>,
    Path(id): Path<String>,
    Json(req): Json<UpdateScriptRequest>,
) -> ApiResult<Json<ScriptInfo>> {
    let cur = find(&state, &id).await?;
    let params = match req.parameters {
        Some(p) => p,
        None => parameters(&cur.parameters)?,
    };
    let v = ScriptVersion {
        name: req.name.unwrap_or_else(|| cur.name.clone()),
        description: req.description.unwrap_or_else(|| cur.description.clone()),
        interpreter: match req.interpreter {
            Some(i) => i.as_str().to_string(),
            None => cur.interpreter.clone(),
        },
        body: req.body.unwrap_or_else(|| cur.body.clone()),
        parameters: serde_json::to_string(&params).map_err(ApiError::internal)?,
    };
    check(&v.name, &v.description, &v.body, &params)?;
    let audit = auth.operator.audit(
        "script.update",
        Some(&cur.id),
        json!({"name": v.name, "version": cur.latest_version + 1}),
    );
    state
        .store
        .add_script_version(
            &cur.id,
            cur.latest_version,
            &v,
            &auth.operator.actor(),
            now_ms(),
            &audit,
        )
        .await?;
    Ok(Json(script_info(&find(&state, &cur.id).await?)?))
}

/// Delete a script and all its versions. Jobs that ran it keep their own copy.
#[utoipa::path(delete, path = "/api/v1/scripts/{id}", tag = "scripts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_script(
    State(state): State<AppState>,
    auth: Authz<ScriptsManage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let cur = find(&state, &id).await?;
    let audit = auth
        .operator
        .audit("script.delete", Some(&cur.id), json!({"name": cur.name}));
    state
        .store
        .delete_script(&cur.id, &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!("script {id}")),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every version of a script, newest first.
#[utoipa::path(get, path = "/api/v1/scripts/{id}/versions", tag = "scripts", params(("id" = String, Path)),
    responses((status = 200, body = Vec<ScriptVersionInfo>), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ScriptVersionInfo>>> {
    let cur = find(&state, &id).await?;
    let rows = state.store.script_versions(&cur.id).await?;
    Ok(Json(
        rows.iter().map(version_info).collect::<ApiResult<_>>()?,
    ))
}

#[derive(Debug, Deserialize)]
struct VersionPath {
    id: String,
    version: u32,
}

/// One version of a script.
#[utoipa::path(get, path = "/api/v1/scripts/{id}/versions/{version}", tag = "scripts",
    params(("id" = String, Path), ("version" = u32, Path)),
    responses((status = 200, body = ScriptVersionInfo), (status = 404, body = ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    _auth: Authz<JobsRead>,
    Path(p): Path<VersionPath>,
) -> ApiResult<Json<ScriptVersionInfo>> {
    let cur = find(&state, &p.id).await?;
    let row = state
        .store
        .script_version(&cur.id, i64::from(p.version))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("version {} of script {}", p.version, p.id)))?;
    Ok(Json(version_info(&row)?))
}

/// Run a library script (the latest or a given version) on devices and groups, with arguments
/// bound to its parameters. Creates a job like `POST /api/v1/jobs`.
#[utoipa::path(post, path = "/api/v1/scripts/{id}/run", tag = "scripts", params(("id" = String, Path)),
    request_body = RunScriptRequest,
    responses((status = 201, body = JobInfo), (status = 400, body = DetailedErrorBody),
              (status = 404, body = ErrorBody)))]
async fn run_script(
    State(state): State<AppState>,
    auth: Authz<JobsRun>,
    Path(id): Path<String>,
    Json(req): Json<RunScriptRequest>,
) -> ApiResult<(StatusCode, Json<JobInfo>)> {
    let cur = find(&state, &id).await?;
    let row = match req.version {
        None => cur,
        Some(v) => state
            .store
            .script_version(&cur.id, i64::from(v))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("version {v} of script {id}")))?,
    };
    let params = parameters(&row.parameters)?;
    let bound = bind_arguments(&params, &req.arguments).map_err(|p| problems_error("", p))?;
    let mut env = req.env;
    let mut args = Vec::with_capacity(bound.len());
    for (name, value) in bound {
        env.insert(
            format!("CAPSTAN_PARAM_{}", name.to_ascii_uppercase()),
            value.clone(),
        );
        args.push(value);
    }
    let spec = JobSpec {
        action: JobAction::Script {
            interpreter: interpreter(&row.interpreter)?,
            body: row.body.clone(),
            args,
        },
        timeout_secs: req.timeout_secs.unwrap_or(limits::DEFAULT_TIMEOUT_SECS),
        env,
        working_dir: req.working_dir,
        run_as: req.run_as,
        pre_script: None,
        post_script: None,
        post_script_always: false,
        reboot_exit_codes: Vec::new(),
    };
    let job = crate::jobs::create(
        &state,
        &auth.operator,
        CreateJobRequest {
            name: Some(format!("{} (v{})", row.name, row.version)),
            spec,
            targets: req.targets,
            expires_in_secs: req.expires_in_secs,
            retry: req.retry,
        },
        Some(crate::jobs::ScriptRef {
            id: row.id.clone(),
            version: row.version,
        }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(job)))
}

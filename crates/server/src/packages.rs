//! Software packages: the catalogue (`/api/v1/packages`), versions with their artifacts and
//! specs, the upload that parses a package file and pre-fills a version, software jobs
//! (`/api/v1/software/{install,uninstall}`, resolved to a plan that the job keeps), and the
//! agent's artifact download (`/agent/v1/depot/blobs/{sha256}`).

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use capstan_core::jobs::{Problem, problem};
use capstan_core::software::{
    fill_defaults, is_package_name, is_plain_file_name, validate_version_spec,
};
use capstan_proto::depot::is_sha256_hex;
use capstan_proto::error::ErrorBody;
use capstan_proto::jobs::{CreateJobRequest, JobAction, JobInfo, JobSpec};
use capstan_proto::software::{
    Arch, Artifact, ArtifactRequest, CreatePackageRequest, CreateVersionRequest, Detection,
    DetectionManager, InstallerType, OsFamily, PackageInfo, PackageListQuery, PackagePage,
    PackageUploadQuery, PlanStep, SoftwareJobRequest, SoftwarePlan, StepOperation, SupersedeMode,
    UpdatePackageRequest, UploadAnalysis, VersionCheck, VersionInfo, VersionOp, VersionSpec,
    limits,
};
use capstan_store::{ArtifactRow, NewVersion, PackageRow, PackageUpdate, VersionRow};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agent_api::AgentDevice;
use crate::auth::{Authz, DepotManage, DepotRead, JobsRun, Operator};
use crate::depot::StagedBlob;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::jobs::problems_error;
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_packages, create_package))
        .routes(routes!(get_package, update_package, delete_package))
        .routes(routes!(list_versions, create_version))
        .routes(routes!(get_version, update_version, delete_version))
        .routes(routes!(upload_package))
        .routes(routes!(software_install))
        .routes(routes!(software_uninstall))
}

pub fn agent_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(agent_blob))
}

// ---------------------------------------------------------------------------------------------
// Conversions and checks
// ---------------------------------------------------------------------------------------------

fn package_info(r: PackageRow) -> PackageInfo {
    PackageInfo {
        id: r.id,
        name: r.name,
        display_name: r.display_name,
        publisher: r.publisher,
        description: r.description,
        version_count: u64::try_from(r.version_count).unwrap_or(0),
        latest_version: r.latest_version,
        created_at_ms: r.created_at,
        updated_at_ms: r.updated_at,
    }
}

fn artifact(r: &ArtifactRow) -> ApiResult<Artifact> {
    let platform = OsFamily::parse(&r.platform)
        .ok_or_else(|| ApiError::corrupt("artifact platform", &r.platform))?;
    let arch =
        Arch::normalise(&r.arch).ok_or_else(|| ApiError::corrupt("artifact arch", &r.arch))?;
    Ok(Artifact {
        platform,
        arch,
        sha256: r.sha256.clone(),
        size: u64::try_from(r.size).unwrap_or(0),
        file_name: r.file_name.clone(),
    })
}

async fn version_info(state: &AppState, r: VersionRow) -> ApiResult<VersionInfo> {
    let rows = state
        .store
        .version_artifacts(std::slice::from_ref(&r.id))
        .await?;
    version_with(r, &rows)
}

fn version_with(r: VersionRow, rows: &[ArtifactRow]) -> ApiResult<VersionInfo> {
    let artifacts = rows.iter().map(artifact).collect::<ApiResult<Vec<_>>>()?;
    let spec: VersionSpec =
        serde_json::from_str(&r.spec).map_err(|e| ApiError::corrupt("version spec", e))?;
    Ok(VersionInfo {
        id: r.id,
        package_id: r.package_id,
        package: r.package,
        version: r.version,
        artifacts,
        spec,
        created_at_ms: r.created_at,
        created_by: r.created_by,
    })
}

async fn find_package(state: &AppState, name: &str) -> ApiResult<PackageRow> {
    state
        .store
        .package(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("package {name}")))
}

async fn find_version(state: &AppState, pkg: &PackageRow, version: &str) -> ApiResult<VersionRow> {
    state
        .store
        .package_version(&pkg.id, Some(version))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("version {version} of package {}", pkg.name)))
}

fn text_problem(path: &str, v: &Option<String>, max: usize, out: &mut Vec<Problem>) {
    if let Some(s) = v
        && (s.len() > max || s.chars().any(|c| c.is_control() && c != '\n'))
    {
        out.push(Problem {
            path: path.into(),
            message: format!("at most {max} bytes without control characters"),
            valid: vec![],
        });
    }
}

fn detection_problems(d: &Detection) -> Vec<Problem> {
    capstan_core::detection::validate(d)
}

/// Validates a create-version request and fills the spec's defaults.
fn checked_version(req: &mut CreateVersionRequest) -> ApiResult<()> {
    let mut problems = Vec::new();
    let v = &req.version;
    if v.is_empty()
        || v.len() > limits::MAX_VERSION_BYTES
        || v.starts_with('-')
        || v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        problems.push(problem(
            "/version",
            "1 to 128 bytes without spaces, slashes or control characters, not starting with -",
        ));
    }
    let has = req.spec.installer_type.has_artifacts();
    if has && req.artifacts.is_empty() {
        problems.push(problem(
            "/artifacts",
            format!(
                "{} versions need at least one artifact (an uploaded file)",
                req.spec.installer_type.as_str()
            ),
        ));
    }
    if !has && !req.artifacts.is_empty() {
        problems.push(problem(
            "/artifacts",
            "package-manager versions have no artifacts",
        ));
    }
    if req.artifacts.len() > limits::MAX_ARTIFACTS {
        problems.push(problem(
            "/artifacts",
            format!("at most {}", limits::MAX_ARTIFACTS),
        ));
    }
    let mut seen = HashSet::new();
    for (i, a) in req.artifacts.iter().enumerate() {
        if !is_sha256_hex(&a.sha256) {
            problems.push(problem(
                format!("/artifacts/{i}/sha256"),
                "64 lowercase hexadecimal digits",
            ));
        }
        if !is_plain_file_name(&a.file_name) {
            problems.push(problem(
                format!("/artifacts/{i}/file_name"),
                "a plain file name (no path, no leading dot, no characters Windows forbids)",
            ));
        }
        if !seen.insert((a.platform, a.arch)) {
            problems.push(problem(
                format!("/artifacts/{i}"),
                "another artifact has the same platform and architecture",
            ));
        }
    }
    problems.extend(
        validate_version_spec(&req.spec, detection_problems)
            .into_iter()
            .map(|mut p| {
                p.path = format!("/spec{}", p.path);
                p
            }),
    );
    if !problems.is_empty() {
        return Err(problems_error("", problems));
    }
    fill_defaults(&mut req.spec);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Packages
// ---------------------------------------------------------------------------------------------

/// Packages, ordered by display name; `search` matches a substring of the name or display name.
#[utoipa::path(get, path = "/api/v1/packages", tag = "packages", params(PackageListQuery),
    responses((status = 200, body = PackagePage), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_packages(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Query(q): Query<PackageListQuery>,
) -> ApiResult<Json<PackagePage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            capstan_proto::error::ErrorCode::InvalidQuery,
            "limit must be between 1 and 1000",
        ));
    }
    if q.search.as_ref().is_some_and(|s| s.len() > 200) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            capstan_proto::error::ErrorCode::InvalidQuery,
            "search is at most 200 bytes",
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let (rows, total) = state
        .store
        .list_packages(
            q.search.as_deref().filter(|s| !s.is_empty()),
            i64::try_from(offset).unwrap_or(i64::MAX),
            limit as i64,
        )
        .await?;
    Ok(Json(PackagePage {
        items: rows.into_iter().map(package_info).collect(),
        total: u64::try_from(total).unwrap_or(0),
        offset,
        limit,
    }))
}

fn package_problems(req: &CreatePackageRequest) -> Vec<Problem> {
    let mut out = Vec::new();
    if !is_package_name(&req.name) {
        out.push(problem(
            "/name",
            "lowercase letters, digits and . _ + -, starting with a letter or digit (at most 128 bytes)",
        ));
    }
    text_problem("/display_name", &req.display_name, 200, &mut out);
    if req
        .display_name
        .as_ref()
        .is_some_and(|d| d.trim().is_empty())
    {
        out.push(problem("/display_name", "must not be blank"));
    }
    text_problem("/publisher", &req.publisher, 200, &mut out);
    text_problem(
        "/description",
        &req.description,
        limits::MAX_TEXT_BYTES,
        &mut out,
    );
    out
}

async fn insert_package(
    state: &AppState,
    operator: &Operator,
    req: CreatePackageRequest,
) -> ApiResult<PackageRow> {
    let problems = package_problems(&req);
    if !problems.is_empty() {
        return Err(problems_error("", problems));
    }
    let now = now_ms();
    let row = PackageRow {
        id: uuid::Uuid::now_v7().to_string(),
        display_name: req.display_name.unwrap_or_else(|| req.name.clone()),
        name: req.name,
        publisher: req.publisher,
        description: req.description,
        created_at: now,
        updated_at: now,
        version_count: 0,
        latest_version: None,
    };
    let audit = operator.audit("package.create", Some(&row.id), json!({"name": row.name}));
    state.store.create_package(&row, &audit).await?;
    Ok(row)
}

/// Create a package (a catalogue entry; versions are added to it).
#[utoipa::path(post, path = "/api/v1/packages", tag = "packages", request_body = CreatePackageRequest,
    responses((status = 201, body = PackageInfo), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the name is taken")),
    security(("bearer" = [])))]
async fn create_package(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Json(req): Json<CreatePackageRequest>,
) -> ApiResult<(StatusCode, Json<PackageInfo>)> {
    let row = insert_package(&state, &auth.operator, req).await?;
    Ok((StatusCode::CREATED, Json(package_info(row))))
}

/// One package, by id or name.
#[utoipa::path(get, path = "/api/v1/packages/{package}", tag = "packages",
    params(("package" = String, Path, description = "id or name")),
    responses((status = 200, body = PackageInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_package(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Path(package): Path<String>,
) -> ApiResult<Json<PackageInfo>> {
    Ok(Json(package_info(find_package(&state, &package).await?)))
}

/// Change a package's display name, publisher or description.
#[utoipa::path(patch, path = "/api/v1/packages/{package}", tag = "packages",
    params(("package" = String, Path, description = "id or name")), request_body = UpdatePackageRequest,
    responses((status = 200, body = PackageInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_package(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path(package): Path<String>,
    Json(req): Json<UpdatePackageRequest>,
) -> ApiResult<Json<PackageInfo>> {
    let pkg = find_package(&state, &package).await?;
    let mut problems = Vec::new();
    text_problem("/display_name", &req.display_name, 200, &mut problems);
    if req
        .display_name
        .as_ref()
        .is_some_and(|d| d.trim().is_empty())
    {
        problems.push(problem("/display_name", "must not be blank"));
    }
    text_problem(
        "/publisher",
        &req.publisher.clone().flatten(),
        200,
        &mut problems,
    );
    text_problem(
        "/description",
        &req.description.clone().flatten(),
        limits::MAX_TEXT_BYTES,
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(problems_error("", problems));
    }
    let audit = auth.operator.audit(
        "package.update",
        Some(&pkg.id),
        json!({"name": pkg.name, "changes": req}),
    );
    let update = PackageUpdate {
        display_name: req.display_name,
        publisher: req.publisher,
        description: req.description,
    };
    state
        .store
        .update_package(&pkg.id, &update, now_ms(), &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("package {package}")))?;
    Ok(Json(package_info(find_package(&state, &pkg.id).await?)))
}

/// Delete a package with all its versions (their blobs stay in the depot until deleted or
/// collected).
#[utoipa::path(delete, path = "/api/v1/packages/{package}", tag = "packages",
    params(("package" = String, Path, description = "id or name")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_package(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path(package): Path<String>,
) -> ApiResult<StatusCode> {
    let pkg = find_package(&state, &package).await?;
    let assigned = state.store.package_assignment_ids(&pkg.id, None).await?;
    if !assigned.is_empty() {
        return Err(ApiError::conflict(format!(
            "package {} has {} assignment(s) ({}); remove them first",
            pkg.name,
            assigned.len(),
            assigned.join(", ")
        )));
    }
    let managed = state.store.package_managed_devices(&pkg.id).await?;
    if managed > 0 {
        return Err(ApiError::conflict(format!(
            "package {} is still installed by Capstan on {managed} device(s) and is being              removed there; delete it once they report it removed",
            pkg.name
        )));
    }
    let audit = auth.operator.audit(
        "package.delete",
        Some(&pkg.id),
        json!({"name": pkg.name, "versions": pkg.version_count}),
    );
    state
        .store
        .delete_package(&pkg.id, &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("package {package}")))?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

/// A package's versions, newest first.
#[utoipa::path(get, path = "/api/v1/packages/{package}/versions", tag = "packages",
    params(("package" = String, Path, description = "id or name")),
    responses((status = 200, body = Vec<VersionInfo>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_versions(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Path(package): Path<String>,
) -> ApiResult<Json<Vec<VersionInfo>>> {
    let pkg = find_package(&state, &package).await?;
    let rows = state.store.package_versions(&pkg.id).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let artifacts = state.store.version_artifacts(&ids).await?;
    rows.into_iter()
        .map(|r| {
            let mine: Vec<ArtifactRow> = artifacts
                .iter()
                .filter(|a| a.version_id == r.id)
                .cloned()
                .collect();
            version_with(r, &mine)
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

async fn insert_version(
    state: &AppState,
    operator: &Operator,
    pkg: &PackageRow,
    mut req: CreateVersionRequest,
) -> ApiResult<VersionInfo> {
    checked_version(&mut req)?;
    let id = uuid::Uuid::now_v7().to_string();
    let artifacts = req
        .artifacts
        .iter()
        .map(|a: &ArtifactRequest| ArtifactRow {
            version_id: id.clone(),
            platform: a.platform.as_str().to_string(),
            arch: a.arch.as_str().to_string(),
            sha256: a.sha256.clone(),
            size: 0,
            file_name: a.file_name.clone(),
        })
        .collect();
    let new = NewVersion {
        id: id.clone(),
        package_id: pkg.id.clone(),
        version: req.version.clone(),
        spec: serde_json::to_string(&req.spec).map_err(ApiError::internal)?,
        created_at: now_ms(),
        created_by: operator.actor(),
        artifacts,
    };
    let audit = operator.audit(
        "package_version.create",
        Some(&id),
        json!({"package": pkg.name, "version": req.version,
               "installer_type": req.spec.installer_type.as_str(),
               "artifacts": req.artifacts.iter().map(|a| &a.sha256).collect::<Vec<_>>()}),
    );
    state
        .store
        .create_version(&new, &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("package {}", pkg.name)))?;
    // "Latest" may have changed for assignments of this package.
    state.deploy.mark_all();
    let row = find_version(state, pkg, &req.version).await?;
    Box::pin(version_info(state, row)).await
}

/// Add a version: its artifacts (blobs already uploaded to the depot) and its spec. Commands and
/// exit codes left out get the installer type's defaults, which the answer shows.
#[utoipa::path(post, path = "/api/v1/packages/{package}/versions", tag = "packages",
    params(("package" = String, Path, description = "id or name")), request_body = CreateVersionRequest,
    responses((status = 201, body = VersionInfo), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the version exists")),
    security(("bearer" = [])))]
async fn create_version(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path(package): Path<String>,
    Json(req): Json<CreateVersionRequest>,
) -> ApiResult<(StatusCode, Json<VersionInfo>)> {
    let pkg = find_package(&state, &package).await?;
    let info = Box::pin(insert_version(&state, &auth.operator, &pkg, req)).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// One version with its artifacts and spec.
#[utoipa::path(get, path = "/api/v1/packages/{package}/versions/{version}", tag = "packages",
    params(("package" = String, Path, description = "id or name"), ("version" = String, Path)),
    responses((status = 200, body = VersionInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_version(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Path((package, version)): Path<(String, String)>,
) -> ApiResult<Json<VersionInfo>> {
    let pkg = find_package(&state, &package).await?;
    let row = find_version(&state, &pkg, &version).await?;
    Ok(Json(version_info(&state, row).await?))
}

/// Replace a version's spec (commands, exit codes, requirements, hooks, dependencies,
/// supersedence, detection). Its artifacts cannot change: upload a new version instead. Jobs
/// created before keep the spec they were created with.
#[utoipa::path(put, path = "/api/v1/packages/{package}/versions/{version}", tag = "packages",
    params(("package" = String, Path, description = "id or name"), ("version" = String, Path)),
    request_body = VersionSpec,
    responses((status = 200, body = VersionInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_version(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path((package, version)): Path<(String, String)>,
    Json(spec): Json<VersionSpec>,
) -> ApiResult<Json<VersionInfo>> {
    let pkg = find_package(&state, &package).await?;
    let row = find_version(&state, &pkg, &version).await?;
    let old: VersionSpec =
        serde_json::from_str(&row.spec).map_err(|e| ApiError::corrupt("version spec", e))?;
    let existing = state
        .store
        .version_artifacts(std::slice::from_ref(&row.id))
        .await?;
    if spec.installer_type != old.installer_type {
        return Err(ApiError::validation(
            "/installer_type: the installer type follows the artifacts and cannot change; add a new version",
        ));
    }
    // Validate as a whole request so the artifact rules apply too.
    let mut req = CreateVersionRequest {
        version: row.version.clone(),
        artifacts: existing
            .iter()
            .map(|a| {
                artifact(a).map(|a| ArtifactRequest {
                    platform: a.platform,
                    arch: a.arch,
                    sha256: a.sha256,
                    file_name: a.file_name,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?,
        spec,
    };
    checked_version(&mut req)?;
    let text = serde_json::to_string(&req.spec).map_err(ApiError::internal)?;
    let audit = auth.operator.audit(
        "package_version.update",
        Some(&row.id),
        json!({"package": pkg.name, "version": row.version}),
    );
    state
        .store
        .update_version_spec(&row.id, &text, now_ms(), &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("version {version}")))?;
    state.deploy.mark_all();
    let row = find_version(&state, &pkg, &version).await?;
    Ok(Json(version_info(&state, row).await?))
}

/// Delete a version (its blobs stay in the depot until deleted or collected).
#[utoipa::path(delete, path = "/api/v1/packages/{package}/versions/{version}", tag = "packages",
    params(("package" = String, Path, description = "id or name"), ("version" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_version(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path((package, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let pkg = find_package(&state, &package).await?;
    let row = find_version(&state, &pkg, &version).await?;
    let pinned = state
        .store
        .package_assignment_ids(&pkg.id, Some(&row.id))
        .await?;
    if !pinned.is_empty() {
        return Err(ApiError::conflict(format!(
            "version {} of {} is pinned by {} assignment(s) ({}); remove or change them first",
            row.version,
            pkg.name,
            pinned.len(),
            pinned.join(", ")
        )));
    }
    let audit = auth.operator.audit(
        "package_version.delete",
        Some(&row.id),
        json!({"package": pkg.name, "version": row.version}),
    );
    state
        .store
        .delete_version(&row.id, &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("version {version}")))?;
    state.deploy.mark_all();
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Upload with metadata
// ---------------------------------------------------------------------------------------------

/// A package name from a name the file declares (lowercased, other characters → `-`).
fn slug(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '+' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= limits::MAX_NAME_BYTES {
            break;
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    is_package_name(&out).then_some(out)
}

fn str_field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
}

/// The version request a parsed package file suggests.
fn suggest(
    meta: &serde_json::Value,
    detection: Option<serde_json::Value>,
    sha256: &str,
    file_name: &str,
) -> Result<(String, CreateVersionRequest), String> {
    let format = str_field(meta, "format").ok_or("the parser named no format")?;
    let installer_type = match format {
        "deb" => InstallerType::Deb,
        "rpm" => InstallerType::Rpm,
        "pacman" => InstallerType::Pacman,
        "msi" => InstallerType::Msi,
        "exe" => InstallerType::Exe,
        "script_archive" => InstallerType::ScriptArchive,
        other => return Err(format!("unsupported package format {other:?}")),
    };
    let name = str_field(meta, "name").ok_or("the file names no package")?;
    let package = slug(name).ok_or_else(|| format!("{name:?} cannot be made a package name"))?;
    let version = str_field(meta, "version")
        .ok_or("the file states no version")?
        .to_string();
    let platform = match str_field(meta, "platform") {
        Some("windows") => OsFamily::Windows,
        Some("macos") => OsFamily::Macos,
        _ => OsFamily::Linux,
    };
    let arch = str_field(meta, "architecture")
        .and_then(Arch::normalise)
        .unwrap_or(Arch::Any);
    let detection = detection
        .and_then(|d| serde_json::from_value::<Detection>(d).ok())
        .or_else(|| {
            // The parser's older suggestion shape, or none: derive one from the fields.
            let manager = match installer_type {
                InstallerType::Deb => DetectionManager::Dpkg,
                InstallerType::Rpm => DetectionManager::Rpm,
                InstallerType::Pacman => DetectionManager::Pacman,
                _ => return None,
            };
            Some(Detection::Package {
                manager,
                name: name.to_string(),
                version: Some(VersionCheck {
                    op: VersionOp::Gte,
                    version: version.clone(),
                }),
            })
        })
        .or_else(|| {
            let code = str_field(meta, "product_code")?;
            Some(Detection::MsiProduct {
                product_code: code.to_string(),
                version: Some(VersionCheck {
                    op: VersionOp::Gte,
                    version: version.clone(),
                }),
            })
        })
        .ok_or_else(|| {
            format!(
                "a {} file says nothing about how to detect it; create the version with a detection rule",
                installer_type.as_str()
            )
        })?;
    let (install_command, uninstall_command) = match (installer_type, meta.get("manifest")) {
        (InstallerType::ScriptArchive, Some(m)) => {
            let cmd = |k: &str| -> Vec<String> {
                let Some(step) = m.get(k) else {
                    return Vec::new();
                };
                let interp = str_field(step, "interpreter").unwrap_or("sh");
                let script = str_field(step, "script").unwrap_or("");
                let mut argv = vec![interp.to_string(), format!("{{dir}}/{script}")];
                if let Some(args) = step.get("args").and_then(|a| a.as_array()) {
                    argv.extend(
                        args.iter()
                            .filter_map(|a| a.as_str())
                            .map(|a| a.replace('{', "{{").replace('}', "}}")),
                    );
                }
                argv
            };
            (cmd("install"), cmd("uninstall"))
        }
        _ => (Vec::new(), Vec::new()),
    };
    let spec = VersionSpec {
        installer_type,
        manager_package: None,
        package_id: matches!(
            installer_type,
            InstallerType::Deb | InstallerType::Rpm | InstallerType::Pacman
        )
        .then(|| name.to_string()),
        product_code: str_field(meta, "product_code").map(str::to_string),
        install_command,
        uninstall_command,
        success_exit_codes: Vec::new(),
        soft_reboot_exit_codes: None,
        hard_reboot_exit_codes: None,
        timeout_secs: 3600,
        requirements: Default::default(),
        pre_install: None,
        post_install: None,
        dependencies: Vec::new(),
        supersedes: Vec::new(),
        detection,
    };
    Ok((
        package,
        CreateVersionRequest {
            version,
            artifacts: vec![ArtifactRequest {
                platform,
                arch,
                sha256: sha256.to_string(),
                file_name: file_name.to_string(),
            }],
            spec,
        },
    ))
}

/// Upload a package file (`.deb`, `.rpm`, and the other formats the parser reads): the body is
/// the file, streamed into the depot and hashed on the way, then parsed. A file that is not a
/// readable package is refused and nothing is stored. The answer carries what the parser read
/// and a pre-filled version request; with `create=true` the package (if new) and the version
/// are created at once.
#[utoipa::path(post, path = "/api/v1/packages/upload", tag = "packages", params(PackageUploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = UploadAnalysis),
              (status = 400, body = ErrorBody, description = "not a readable package, or the suggestion is not valid"),
              (status = 409, body = ErrorBody, description = "create: the version exists"),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
async fn upload_package(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Query(q): Query<PackageUploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<UploadAnalysis>)> {
    let file_name = q.file_name.clone().unwrap_or_else(|| "package".into());
    if !is_plain_file_name(&file_name) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            capstan_proto::error::ErrorCode::InvalidQuery,
            "file_name must be a plain file name (no path, no leading dot)",
        ));
    }
    let staged = Box::pin(crate::depot::stage_request(&state, &headers, body)).await?;
    let path = staged.local_path().to_path_buf();
    let label = file_name.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("reading the upload: {e}"))?;
        capstan_pkgmeta::parse_reader(std::io::BufReader::new(file), &label)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(ApiError::internal)?;
    let meta = parsed.map_err(|e| {
        ApiError::validation(format!(
            "{e}; nothing was stored (files that are not packages go to POST /api/v1/depot/blobs)"
        ))
    })?;
    let mut metadata = serde_json::to_value(&meta).map_err(ApiError::internal)?;
    let detection = metadata
        .as_object_mut()
        .and_then(|m| m.remove("suggested_detection"))
        .filter(|d| !d.is_null());
    let (package, mut suggested) = suggest(&metadata, detection, staged.sha256(), &file_name)
        .map_err(|e| ApiError::validation(format!("{e}; nothing was stored")))?;
    if q.create == Some(true) {
        // Check before anything is stored, so a refused create leaves no blob behind.
        checked_version(&mut suggested)?;
    }
    let uploaded = Box::pin(crate::depot::commit_and_record(
        &state,
        staged,
        &auth.operator,
    ))
    .await?;
    let mut analysis = UploadAnalysis {
        sha256: uploaded.sha256.clone(),
        size: uploaded.size,
        file_name,
        metadata: Some(metadata),
        parse_error: None,
        package: Some(package.clone()),
        suggested: Some(suggested.clone()),
        created: None,
    };
    if q.create == Some(true) {
        let pkg = match state.store.package(&package).await? {
            Some(p) => p,
            None => {
                let display = analysis
                    .metadata
                    .as_ref()
                    .and_then(|m| str_field(m, "product_name").or(str_field(m, "name")))
                    .map(str::to_string);
                let req = CreatePackageRequest {
                    name: package.clone(),
                    display_name: display,
                    publisher: analysis.metadata.as_ref().and_then(|m| {
                        str_field(m, "vendor")
                            .or(str_field(m, "manufacturer"))
                            .or(str_field(m, "company"))
                            .map(|s| s.chars().take(200).collect())
                    }),
                    description: analysis.metadata.as_ref().and_then(|m| {
                        str_field(m, "summary").map(|s| s.chars().take(1000).collect())
                    }),
                };
                match Box::pin(insert_package(&state, &auth.operator, req)).await {
                    Ok(p) => p,
                    // Created meanwhile by another upload: use it.
                    Err(e) if e.status == StatusCode::CONFLICT => {
                        find_package(&state, &package).await?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        analysis.created =
            Some(Box::pin(insert_version(&state, &auth.operator, &pkg, suggested)).await?);
    }
    Ok((StatusCode::CREATED, Json(analysis)))
}

// ---------------------------------------------------------------------------------------------
// Software jobs
// ---------------------------------------------------------------------------------------------

/// Dependency chains deeper than this are refused (they are almost certainly a mistake).
const MAX_DEPENDENCY_DEPTH: usize = 8;

/// "Latest": the package's highest version by its installer's version scheme
/// ([`capstan_core::software::latest_index`]).
pub(crate) async fn latest_version(
    state: &AppState,
    package_id: &str,
) -> ApiResult<Option<VersionRow>> {
    let mut rows = state.store.package_versions(package_id).await?;
    let specs = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<VersionSpec>(&r.spec)
                .map_err(|e| ApiError::corrupt("version spec", e))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let pairs: Vec<(&str, &VersionSpec)> = rows
        .iter()
        .zip(&specs)
        .map(|(r, s)| (r.version.as_str(), s))
        .collect();
    Ok(capstan_core::software::latest_index(&pairs).map(|i| rows.swap_remove(i)))
}

pub(crate) async fn plan_step(
    state: &AppState,
    operation: StepOperation,
    package: &str,
    version: Option<&str>,
    path: &str,
) -> ApiResult<PlanStep> {
    let pkg =
        state.store.package(package).await?.ok_or_else(|| {
            ApiError::validation(format!("{path}: there is no package {package:?}"))
        })?;
    let row = match version {
        Some(_) => state.store.package_version(&pkg.id, version).await?,
        None => latest_version(state, &pkg.id).await?,
    }
    .ok_or_else(|| match version {
        Some(v) => ApiError::validation(format!("{path}: package {package} has no version {v:?}")),
        None => ApiError::validation(format!("{path}: package {package} has no versions")),
    })?;
    let info = version_info(state, row).await?;
    Ok(PlanStep {
        operation,
        package: pkg.name,
        version: info.version,
        artifacts: info.artifacts,
        spec: info.spec,
    })
}

/// Adds the install steps of `step`'s dependencies (depth first, each package once) and then
/// `step` itself, refusing cycles.
fn add_with_dependencies<'a>(
    state: &'a AppState,
    step: PlanStep,
    chain: &'a mut Vec<String>,
    steps: &'a mut Vec<PlanStep>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<()>> + Send + 'a>> {
    Box::pin(async move {
        if chain.len() > MAX_DEPENDENCY_DEPTH {
            return Err(ApiError::validation(format!(
                "the dependency chain {} is deeper than {MAX_DEPENDENCY_DEPTH}",
                chain.join(" → ")
            )));
        }
        chain.push(step.package.clone());
        for (i, d) in step.spec.dependencies.clone().iter().enumerate() {
            if chain.contains(&d.package) {
                return Err(ApiError::validation(format!(
                    "dependency cycle: {} → {}",
                    chain.join(" → "),
                    d.package
                )));
            }
            if steps.iter().any(|s| s.package == d.package) {
                continue;
            }
            let dep = plan_step(
                state,
                StepOperation::Install,
                &d.package,
                d.version.as_deref(),
                &format!("{} dependency {i}", step.package),
            )
            .await?;
            add_with_dependencies(state, dep, chain, steps).await?;
        }
        chain.pop();
        if steps.len() >= limits::MAX_PLAN_STEPS {
            return Err(ApiError::validation(format!(
                "the plan would have more than {} steps",
                limits::MAX_PLAN_STEPS
            )));
        }
        steps.push(step);
        Ok(())
    })
}

/// Resolves a software action into its plan: the requested version (the newest when none is
/// named), its dependencies first, and the versions it supersedes with `uninstall_first`
/// removed before it. Returns the action with the plan and the timeout the whole run needs.
pub(crate) async fn resolve(state: &AppState, action: &JobAction) -> ApiResult<(JobAction, u64)> {
    let mut steps = Vec::new();
    let resolved = match action {
        JobAction::SoftwareInstall {
            package,
            version,
            force,
            ..
        } => {
            let main = plan_step(
                state,
                StepOperation::Install,
                package,
                version.as_deref(),
                "/spec/action",
            )
            .await?;
            let mut chain = Vec::new();
            let supersedes = main.spec.supersedes.clone();
            let mut deps = Vec::new();
            add_with_dependencies(state, main, &mut chain, &mut deps).await?;
            let main = deps.pop().ok_or_else(|| ApiError::internal("empty plan"))?;
            steps.extend(deps);
            for s in supersedes
                .iter()
                .filter(|s| s.mode == SupersedeMode::UninstallFirst)
            {
                // A superseded version that was deleted from the catalogue has nothing to run.
                if let Ok(old) = plan_step(
                    state,
                    StepOperation::UninstallIfPresent,
                    &s.package,
                    Some(&s.version),
                    "/spec/action",
                )
                .await
                {
                    steps.push(old);
                }
            }
            let (pkg, ver) = (main.package.clone(), main.version.clone());
            steps.push(main);
            JobAction::SoftwareInstall {
                package: pkg,
                version: Some(ver),
                force: *force,
                plan: Some(SoftwarePlan {
                    steps: std::mem::take(&mut steps),
                    force: *force,
                }),
            }
        }
        JobAction::SoftwareUninstall {
            package, version, ..
        } => {
            let step = plan_step(
                state,
                StepOperation::Uninstall,
                package,
                version.as_deref(),
                "/spec/action",
            )
            .await?;
            let (pkg, ver) = (step.package.clone(), step.version.clone());
            JobAction::SoftwareUninstall {
                package: pkg,
                version: Some(ver),
                plan: Some(SoftwarePlan {
                    steps: vec![step],
                    force: false,
                }),
            }
        }
        other => return Ok((other.clone(), 0)),
    };
    let plan = match &resolved {
        JobAction::SoftwareInstall { plan: Some(p), .. }
        | JobAction::SoftwareUninstall { plan: Some(p), .. } => p,
        _ => return Err(ApiError::internal("resolved action without a plan")),
    };
    let problems = capstan_core::software::validate_plan(plan);
    if !problems.is_empty() {
        return Err(problems_error("", problems));
    }
    // Each step may take its own timeout (plus hooks and detection), and downloads need time
    // of their own.
    let timeout: u64 = plan
        .steps
        .iter()
        .map(|s| s.spec.timeout_secs.saturating_mul(2).saturating_add(600))
        .sum::<u64>()
        .saturating_add(3600)
        .min(capstan_proto::jobs::limits::MAX_TIMEOUT_SECS);
    Ok((resolved, timeout))
}

async fn software_job(
    state: &AppState,
    operator: &Operator,
    req: SoftwareJobRequest,
    install: bool,
) -> ApiResult<JobInfo> {
    let action = if install {
        JobAction::SoftwareInstall {
            package: req.package,
            version: req.version,
            force: req.force,
            plan: None,
        }
    } else {
        if req.force {
            return Err(ApiError::validation("/force: only installs can be forced"));
        }
        JobAction::SoftwareUninstall {
            package: req.package,
            version: req.version,
            plan: None,
        }
    };
    let spec = JobSpec {
        action,
        timeout_secs: capstan_proto::jobs::limits::DEFAULT_TIMEOUT_SECS,
        env: Default::default(),
        working_dir: None,
        run_as: None,
        pre_script: None,
        post_script: None,
        post_script_always: false,
        reboot_exit_codes: Vec::new(),
    };
    crate::jobs::create(
        state,
        operator,
        CreateJobRequest {
            name: None,
            spec,
            targets: req.targets,
            expires_in_secs: req.expires_in_secs,
            retry: req.retry,
        },
        None,
    )
    .await
}

/// Install a package version on devices and groups: a job whose plan (the version, its
/// dependencies, what it supersedes) is resolved now and kept with the job.
#[utoipa::path(post, path = "/api/v1/software/install", tag = "packages", request_body = SoftwareJobRequest,
    responses((status = 201, body = JobInfo), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn software_install(
    State(state): State<AppState>,
    auth: Authz<JobsRun>,
    Json(req): Json<SoftwareJobRequest>,
) -> ApiResult<(StatusCode, Json<JobInfo>)> {
    let job = software_job(&state, &auth.operator, req, true).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// Uninstall a package version (the newest when none is named) from devices and groups.
#[utoipa::path(post, path = "/api/v1/software/uninstall", tag = "packages", request_body = SoftwareJobRequest,
    responses((status = 201, body = JobInfo), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn software_uninstall(
    State(state): State<AppState>,
    auth: Authz<JobsRun>,
    Json(req): Json<SoftwareJobRequest>,
) -> ApiResult<(StatusCode, Json<JobInfo>)> {
    let job = software_job(&state, &auth.operator, req, false).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

// ---------------------------------------------------------------------------------------------
// Agent download
// ---------------------------------------------------------------------------------------------

/// An artifact's bytes for an agent (device credential), with `Range` support for resumed
/// downloads. Only blobs that are artifacts of a package version are served.
#[utoipa::path(get, path = "/agent/v1/depot/blobs/{sha256}", tag = "agent",
    params(("sha256" = String, Path, description = "64 lowercase hex digits"),
           ("Range" = Option<String>, Header, description = "one byte range, e.g. `bytes=1024-`")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 206, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)),
    security(("device" = [])))]
async fn agent_blob(
    State(state): State<AppState>,
    _device: AgentDevice,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !is_sha256_hex(&sha256) {
        return Err(ApiError::validation(
            "a blob is named by its SHA-256: 64 lowercase hexadecimal digits",
        ));
    }
    if state.store.blob_users(&sha256).await?.is_empty() {
        return Err(ApiError::not_found(format!("artifact {sha256}")));
    }
    crate::depot::serve_blob(&state, &sha256, &headers).await
}

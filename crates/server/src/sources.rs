//! Depot sources (`/api/v1/depot/sources`): HTTP mirrors and file shares that agents download
//! artifacts from before (or, for an air-gapped site, instead of) the server, scoped to
//! groups and ordered by priority. The server copies artifacts to a source it can write to
//! ("sync", verified by size and SHA-256), keeps a per-source status, and reports which source
//! lacks which version (the drift report). [`sources_for_device`] gives a device its fallback
//! order, which travels signed with each software run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path as FsPath, PathBuf};

use axum::extract::State;
use axum::http::StatusCode;
use capstan_proto::error::ErrorBody;
use capstan_proto::software::{
    Arch, CreateSourceRequest, DepotSourceInfo, DownloadSource, DriftReport, DriftRow, OsFamily,
    SourceArtifactStatus, SourceBlobState, SourceGroup, SourceKind, SourceStatus,
    SourceStatusQuery, SyncRequest, SyncStarted, UpdateSourceRequest,
};
use capstan_store::{CatalogueArtifactRow, SourceBlobRow, SourceRow};
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, DepotManage, DepotRead};
use crate::depot::{BlobStore, DepotStore};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(get_source, update_source, delete_source))
        .routes(routes!(sync_source))
        .routes(routes!(source_status))
        .routes(routes!(drift_report))
}

const DEFAULT_PRIORITY: i64 = 100;
const MAX_PRIORITY: i64 = 10_000;

fn kind_of(s: &str) -> ApiResult<SourceKind> {
    match s {
        "http" => Ok(SourceKind::Http),
        "path" => Ok(SourceKind::Path),
        other => Err(ApiError::internal(format!(
            "stored source kind {other:?} is unknown"
        ))),
    }
}

fn is_source_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// A mirror URL: `http(s)://host[:port][/path]`, no query, fragment, credentials or spaces.
fn check_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("a mirror's location is an http:// or https:// URL")?;
    if s.len() > 2048
        || rest.is_empty()
        || rest.starts_with('/')
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\'))
    {
        return Err(
            "a mirror's URL has a host and no spaces, query (?), fragment (#) or backslashes"
                .into(),
        );
    }
    if rest
        .split('/')
        .next()
        .is_some_and(|host| host.contains('@'))
    {
        return Err("credentials do not belong in a mirror URL".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// A share directory as agents see it: absolute on Linux (`/mnt/depot`), a drive path
/// (`D:\depot`) or a UNC path (`\\server\share\depot`) on Windows.
fn check_share(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let unix = s.starts_with('/');
    let drive = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\';
    let unc = s.starts_with("\\\\") && s.len() > 2;
    if !(unix || drive || unc) || s.len() > 4096 || s.chars().any(|c| c.is_control()) {
        return Err(
            "a share is an absolute directory: /mnt/depot, D:\\depot or \\\\server\\share".into(),
        );
    }
    if s.split(['/', '\\']).any(|c| c == "..") {
        return Err("a share path must not contain ..".into());
    }
    let trimmed = s.trim_end_matches(['/', '\\']);
    Ok(if trimmed.is_empty() {
        s.to_string()
    } else {
        trimmed.to_string()
    })
}

/// A directory the server can write to now.
fn check_sync_path(s: &str) -> Result<String, String> {
    if s.starts_with("s3://") {
        // Parsed and checked against the bucket by the caller.
        return Ok(s.trim_end_matches('/').to_string());
    }
    let p = FsPath::new(s);
    if !p.is_absolute() || s.split('/').any(|c| c == "..") || s.chars().any(|c| c.is_control()) {
        return Err("sync_path is an absolute directory on the server".into());
    }
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Ok(s.trim_end_matches('/').to_string()),
        Ok(_) => Err(format!("{s} is not a directory")),
        Err(e) => Err(format!("the server cannot see {s}: {e}")),
    }
}

/// Where the server copies a source's blobs.
#[derive(Debug, Clone)]
enum SyncTarget {
    /// `<dir>/<sha256>` on a file system the server can write.
    Dir(PathBuf),
    /// `<prefix>/<sha256>` in an S3 bucket (`s3://bucket/prefix`), reached with the depot's
    /// S3 endpoint and credentials when the depot is on S3, else the standard AWS
    /// configuration of the server's environment.
    S3 { settings: crate::config::S3Settings },
}

impl SyncTarget {
    fn parse(config: &crate::config::Config, sync_path: &str) -> Result<SyncTarget, String> {
        let Some(rest) = sync_path.strip_prefix("s3://") else {
            return Ok(SyncTarget::Dir(PathBuf::from(sync_path)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(format!("{bucket:?} is not an S3 bucket name"));
        }
        if prefix
            .split('/')
            .any(|c| c == ".." || c == "." || (c.is_empty() && !prefix.is_empty()))
            || prefix.chars().any(|c| c.is_control() || c == '\\')
        {
            return Err(format!("{prefix:?} is not a usable key prefix"));
        }
        let mut settings = match &config.depot_backend {
            crate::config::DepotBackend::S3(s) => s.clone(),
            crate::config::DepotBackend::Fs => crate::config::S3Settings {
                bucket: String::new(),
                endpoint: None,
                region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
                prefix: String::new(),
                allow_http: false,
                access_key_id: None,
                secret_access_key: None,
                session_token: None,
            },
        };
        settings.bucket = bucket.to_string();
        settings.prefix = prefix.to_string();
        Ok(SyncTarget::S3 { settings })
    }

    fn s3_key(settings: &crate::config::S3Settings, sha256: &str) -> object_store::path::Path {
        if settings.prefix.is_empty() {
            object_store::path::Path::from(sha256)
        } else {
            object_store::path::Path::from(format!("{}/{sha256}", settings.prefix))
        }
    }

    /// Whether the server can reach the target now (a clear error at configuration time is
    /// better than a failed sync later).
    async fn check(&self) -> Result<(), String> {
        match self {
            SyncTarget::Dir(_) => Ok(()),
            SyncTarget::S3 { settings } => {
                use object_store::ObjectStore;
                let client = crate::depot::s3::client_for(settings).map_err(|e| e.to_string())?;
                let prefix = (!settings.prefix.is_empty())
                    .then(|| object_store::path::Path::from(settings.prefix.as_str()));
                client
                    .list_with_delimiter(prefix.as_ref())
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        format!(
                            "the server cannot reach s3://{}/{}: {e}",
                            settings.bucket, settings.prefix
                        )
                    })
            }
        }
    }
}

/// A sync target that parses and that the server can reach now.
async fn checked_target(state: &AppState, sync_path: &str) -> ApiResult<SyncTarget> {
    let t = SyncTarget::parse(&state.config, sync_path)
        .map_err(|e| ApiError::validation(format!("/sync_path: {e}")))?;
    t.check()
        .await
        .map_err(|e| ApiError::validation(format!("/sync_path: {e}")))?;
    Ok(t)
}

async fn resolve_groups(state: &AppState, keys: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let g = state
            .store
            .group_by_id_or_name(k)
            .await?
            .ok_or_else(|| ApiError::validation(format!("/groups/{i}: unknown group {k:?}")))?;
        if !out.contains(&g.id) {
            out.push(g.id);
        }
    }
    Ok(out)
}

async fn source_info(state: &AppState, r: SourceRow) -> ApiResult<DepotSourceInfo> {
    let scope = state.store.source_groups().await?;
    source_info_with(r, &scope)
}

/// A source's info given every scope pair (source id, group id, group name).
fn source_info_with(
    r: SourceRow,
    scope: &[(String, String, String)],
) -> ApiResult<DepotSourceInfo> {
    let groups = scope
        .iter()
        .filter(|(sid, _, _)| *sid == r.id)
        .map(|(_, id, name)| SourceGroup {
            id: id.clone(),
            name: name.clone(),
        })
        .collect();
    Ok(DepotSourceInfo {
        kind: kind_of(&r.kind)?,
        id: r.id,
        name: r.name,
        location: r.location,
        sync_path: r.sync_path,
        priority: r.priority,
        exclusive: r.exclusive,
        groups,
        created_at_ms: r.created_at,
        updated_at_ms: r.updated_at,
    })
}

async fn find_source(state: &AppState, key: &str) -> ApiResult<SourceRow> {
    state
        .store
        .source(key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("depot source {key}")))
}

/// The depot sources, by priority.
#[utoipa::path(get, path = "/api/v1/depot/sources", tag = "depot",
    responses((status = 200, body = Vec<DepotSourceInfo>)),
    security(("bearer" = [])))]
async fn list_sources(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
) -> ApiResult<Json<Vec<DepotSourceInfo>>> {
    let scope = state.store.source_groups().await?;
    state
        .store
        .sources()
        .await?
        .into_iter()
        .map(|r| source_info_with(r, &scope))
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

/// Add a depot source. `sync_path` must be a directory the server can see now.
#[utoipa::path(post, path = "/api/v1/depot/sources", tag = "depot", request_body = CreateSourceRequest,
    responses((status = 201, body = DepotSourceInfo), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the name is taken")),
    security(("bearer" = [])))]
async fn create_source(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Json(req): Json<CreateSourceRequest>,
) -> ApiResult<(StatusCode, Json<DepotSourceInfo>)> {
    let mut problems = Vec::new();
    if !is_source_name(&req.name) {
        problems.push("/name: lowercase letters, digits and . _ -, at most 64 bytes".to_string());
    }
    let location = match req.kind {
        SourceKind::Http => check_url(&req.location),
        SourceKind::Path => check_share(&req.location),
    }
    .unwrap_or_else(|e| {
        problems.push(format!("/location: {e}"));
        String::new()
    });
    let sync_path = match req.sync_path.as_deref().map(check_sync_path) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            problems.push(format!("/sync_path: {e}"));
            None
        }
        None => None,
    };
    let priority = req.priority.unwrap_or(DEFAULT_PRIORITY);
    if !(0..=MAX_PRIORITY).contains(&priority) {
        problems.push(format!("/priority: between 0 and {MAX_PRIORITY}"));
    }
    if req.groups.len() > 100 {
        problems.push("/groups: at most 100".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems.join("; ")));
    }
    if let Some(sp) = &sync_path {
        checked_target(&state, sp).await?;
    }
    let groups = resolve_groups(&state, &req.groups).await?;
    let now = now_ms();
    let row = SourceRow {
        id: uuid::Uuid::now_v7().to_string(),
        name: req.name.clone(),
        kind: req.kind.as_str().to_string(),
        location,
        sync_path,
        priority,
        exclusive: req.exclusive,
        created_at: now,
        updated_at: now,
    };
    let audit = auth.operator.audit(
        "depot_source.create",
        Some(&row.id),
        json!({"name": row.name, "kind": row.kind, "location": row.location,
               "exclusive": row.exclusive, "groups": groups}),
    );
    state
        .store
        .create_source(&row, &groups, &audit)
        .await
        .map_err(|e| ApiError::from_store(e, "depot source"))?;
    Ok((StatusCode::CREATED, Json(source_info(&state, row).await?)))
}

/// One depot source, by id or name.
#[utoipa::path(get, path = "/api/v1/depot/sources/{source}", tag = "depot",
    params(("source" = String, Path, description = "id or name")),
    responses((status = 200, body = DepotSourceInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_source(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Path(source): Path<String>,
) -> ApiResult<Json<DepotSourceInfo>> {
    let r = find_source(&state, &source).await?;
    Ok(Json(source_info(&state, r).await?))
}

/// Change a depot source's location, sync path, priority, exclusivity or groups.
#[utoipa::path(patch, path = "/api/v1/depot/sources/{source}", tag = "depot",
    params(("source" = String, Path, description = "id or name")), request_body = UpdateSourceRequest,
    responses((status = 200, body = DepotSourceInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_source(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path(source): Path<String>,
    Json(req): Json<UpdateSourceRequest>,
) -> ApiResult<Json<DepotSourceInfo>> {
    let mut row = find_source(&state, &source).await?;
    let kind = kind_of(&row.kind)?;
    if let Some(l) = &req.location {
        row.location = match kind {
            SourceKind::Http => check_url(l),
            SourceKind::Path => check_share(l),
        }
        .map_err(|e| ApiError::validation(format!("/location: {e}")))?;
    }
    if let Some(sp) = &req.sync_path {
        row.sync_path = match sp {
            Some(p) => {
                let p = check_sync_path(p)
                    .map_err(|e| ApiError::validation(format!("/sync_path: {e}")))?;
                checked_target(&state, &p).await?;
                Some(p)
            }
            None => None,
        };
    }
    if let Some(p) = req.priority {
        if !(0..=MAX_PRIORITY).contains(&p) {
            return Err(ApiError::validation(format!(
                "/priority: between 0 and {MAX_PRIORITY}"
            )));
        }
        row.priority = p;
    }
    if let Some(x) = req.exclusive {
        row.exclusive = x;
    }
    let groups = match &req.groups {
        Some(g) => Some(resolve_groups(&state, g).await?),
        None => None,
    };
    row.updated_at = now_ms();
    let audit = auth.operator.audit(
        "depot_source.update",
        Some(&row.id),
        json!({"name": row.name, "changes": req}),
    );
    state
        .store
        .update_source(&row, groups.as_deref(), &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("depot source {source}")))?;
    Ok(Json(source_info(&state, row).await?))
}

/// Remove a depot source (the files on it stay).
#[utoipa::path(delete, path = "/api/v1/depot/sources/{source}", tag = "depot",
    params(("source" = String, Path, description = "id or name")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_source(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path(source): Path<String>,
) -> ApiResult<StatusCode> {
    let row = find_source(&state, &source).await?;
    let audit = auth.operator.audit(
        "depot_source.delete",
        Some(&row.id),
        json!({"name": row.name}),
    );
    state
        .store
        .delete_source(&row.id, &audit)
        .await
        .map_err(|e| ApiError::from_store(e, format!("depot source {source}")))?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

/// The recorded state of each blob on a source, by digest.
async fn recorded_states(state: &AppState, source_id: &str) -> ApiResult<HashMap<String, String>> {
    Ok(state
        .store
        .source_blobs(Some(source_id))
        .await?
        .into_iter()
        .map(|r| (r.sha256, r.state))
        .collect())
}

/// Copies one blob from the depot to a sync target.
async fn copy_to(
    config: &crate::config::Config,
    sha256: &str,
    size: u64,
    target: &SyncTarget,
) -> Result<(), String> {
    match target {
        SyncTarget::Dir(dir) => copy_blob(config, sha256, size, dir).await,
        SyncTarget::S3 { settings } => copy_blob_s3(config, sha256, size, settings).await,
    }
}

/// Objects up to this size are sent in one PUT; larger ones in parts of this size.
const S3_PART: usize = 8 << 20;

/// Copies one blob from the depot to `<prefix>/<sha256>` in a bucket, hashed on the way; the
/// object only appears when the upload completes, and an upload whose bytes do not match is
/// aborted.
async fn copy_blob_s3(
    config: &crate::config::Config,
    sha256: &str,
    size: u64,
    settings: &crate::config::S3Settings,
) -> Result<(), String> {
    use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
    let store = DepotStore::from_config(config).map_err(|e| e.to_string())?;
    let content = store
        .read(sha256, None)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the depot no longer holds the blob")?;
    let client = crate::depot::s3::client_for(settings).map_err(|e| e.to_string())?;
    let key = SyncTarget::s3_key(settings, sha256);
    let dest = format!("s3://{}/{key}", settings.bucket);
    let mut hasher = Sha256::new();
    let mut n: u64 = 0;
    let mut bytes = content.bytes;
    let check = |n: u64, hasher: Sha256| {
        let got = hex::encode(hasher.finalize());
        (n == size && got == sha256).then_some(()).ok_or(format!(
            "the copy has {n} bytes with SHA-256 {got}; expected {size} bytes with {sha256}"
        ))
    };
    if size <= S3_PART as u64 {
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|e| format!("reading the blob: {e}"))?;
            n += chunk.len() as u64;
            if n > size {
                break;
            }
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        check(n, hasher)?;
        client
            .put(&key, PutPayload::from(buf))
            .await
            .map_err(|e| format!("writing {dest}: {e}"))?;
        return Ok(());
    }
    let upload = client
        .put_multipart(&key)
        .await
        .map_err(|e| format!("starting the upload to {dest}: {e}"))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, S3_PART);
    let mut failed = None;
    while let Some(chunk) = bytes.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failed = Some(format!("reading the blob: {e}"));
                break;
            }
        };
        n += chunk.len() as u64;
        hasher.update(&chunk);
        // At most two parts in flight: memory stays bounded whatever the blob's size.
        if let Err(e) = writer.wait_for_capacity(2).await {
            failed = Some(format!("writing {dest}: {e}"));
            break;
        }
        writer.write(&chunk);
    }
    let failed = failed.or_else(|| check(n, hasher).err());
    match failed {
        Some(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
        None => writer
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| format!("completing the upload to {dest}: {e}")),
    }
}

/// Copies one blob from the depot into `dir/<sha256>`: written to a temporary file, hashed on
/// the way, synced, and renamed into place only when size and SHA-256 match.
async fn copy_blob(
    config: &crate::config::Config,
    sha256: &str,
    size: u64,
    dir: &FsPath,
) -> Result<(), String> {
    let store = DepotStore::from_config(config).map_err(|e| e.to_string())?;
    let content = store
        .read(sha256, None)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the depot no longer holds the blob")?;
    let final_path = dir.join(sha256);
    let tmp: PathBuf = dir.join(format!(".{sha256}.capstan-sync-{}", uuid::Uuid::now_v7()));
    let result = async {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut hasher = Sha256::new();
        let mut n: u64 = 0;
        let mut bytes = content.bytes;
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|e| format!("reading the blob: {e}"))?;
            n += chunk.len() as u64;
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        }
        out.flush()
            .await
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        out.get_ref()
            .sync_all()
            .await
            .map_err(|e| format!("syncing {}: {e}", tmp.display()))?;
        let got = hex::encode(hasher.finalize());
        if n != size || got != sha256 {
            return Err(format!(
                "the copy has {n} bytes with SHA-256 {got}; expected {size} bytes with {sha256}"
            ));
        }
        tokio::fs::rename(&tmp, &final_path)
            .await
            .map_err(|e| format!("moving into {}: {e}", final_path.display()))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

async fn set_state(
    state: &AppState,
    source_id: &str,
    sha256: &str,
    s: SourceBlobState,
    error: Option<String>,
) {
    let row = SourceBlobRow {
        source_id: source_id.to_string(),
        sha256: sha256.to_string(),
        state: s.as_str().to_string(),
        error,
        updated_at: now_ms(),
    };
    if let Err(e) = state.store.set_source_blob(&row).await {
        tracing::warn!(source_id, sha256, error = %e, "could not record a depot source's sync state");
    }
}

/// Copy a package's artifacts (one version, or all) to a source the server can write to
/// (`sync_path`). Answers at once with what was queued; the copies run in the background and
/// their progress shows in the source's status.
#[utoipa::path(post, path = "/api/v1/depot/sources/{source}/sync", tag = "depot",
    params(("source" = String, Path, description = "id or name")), request_body = SyncRequest,
    responses((status = 202, body = SyncStarted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn sync_source(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path(source): Path<String>,
    Json(req): Json<SyncRequest>,
) -> ApiResult<(StatusCode, Json<SyncStarted>)> {
    let src = find_source(&state, &source).await?;
    let Some(sync_path) = src.sync_path.clone() else {
        return Err(ApiError::validation(format!(
            "the server cannot write to source {}: set its sync_path (the directory the server copies into)",
            src.name
        )));
    };
    let target = SyncTarget::parse(&state.config, &sync_path)
        .map_err(|e| ApiError::validation(format!("sync_path of source {}: {e}", src.name)))?;
    let pkg = state
        .store
        .package(&req.package)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("package {}", req.package)))?;
    let versions = match &req.version {
        Some(v) => vec![
            state
                .store
                .package_version(&pkg.id, Some(v))
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("version {v} of package {}", pkg.name))
                })?,
        ],
        None => state.store.package_versions(&pkg.id).await?,
    };
    let ids: Vec<String> = versions.iter().map(|v| v.id.clone()).collect();
    let artifacts = state.store.version_artifacts(&ids).await?;
    let recorded = recorded_states(&state, &src.id).await?;
    let mut queued = Vec::new();
    let mut already = Vec::new();
    let mut seen = HashSet::new();
    for a in &artifacts {
        if !seen.insert(a.sha256.clone()) {
            continue;
        }
        let synced = recorded.get(&a.sha256).map(String::as_str) == Some("synced");
        if synced
            && matches!(
                present_on(
                    &src,
                    &a.sha256,
                    u64::try_from(a.size).unwrap_or(0),
                    &state.config
                )
                .await,
                Some(Ok(true))
            )
        {
            already.push(a.sha256.clone());
        } else {
            queued.push((a.sha256.clone(), u64::try_from(a.size).unwrap_or(0)));
        }
    }
    let audit = auth.operator.audit(
        "depot_source.sync",
        Some(&src.id),
        json!({"source": src.name, "package": pkg.name, "version": req.version,
               "queued": queued.len(), "already_synced": already.len()}),
    );
    state.store.record_audit(&audit).await?;
    for (sha, _) in &queued {
        set_state(&state, &src.id, sha, SourceBlobState::Pending, None).await;
    }
    let answer = SyncStarted {
        source: src.name.clone(),
        queued: queued.iter().map(|(s, _)| s.clone()).collect(),
        already_synced: already,
    };
    let st = state.clone();
    tokio::spawn(async move {
        for (sha, size) in queued {
            let r = copy_to(&st.config, &sha, size, &target).await;
            match r {
                Ok(()) => set_state(&st, &src.id, &sha, SourceBlobState::Synced, None).await,
                Err(e) => {
                    tracing::warn!(source = %src.name, sha256 = %sha, error = %e, "depot source sync failed");
                    set_state(&st, &src.id, &sha, SourceBlobState::Failed, Some(e)).await;
                }
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

// ---------------------------------------------------------------------------------------------
// Status and drift
// ---------------------------------------------------------------------------------------------

/// Checks one blob on a source: the file on `sync_path`, or `HEAD` on a mirror. `None` when
/// the server has no way to look.
async fn present_on(
    src: &SourceRow,
    sha256: &str,
    size: u64,
    config: &crate::config::Config,
) -> Option<Result<bool, String>> {
    if let Some(sync_path) = &src.sync_path {
        return Some(match SyncTarget::parse(config, sync_path) {
            Err(e) => Err(e),
            Ok(SyncTarget::Dir(dir)) => {
                Ok(std::fs::metadata(dir.join(sha256))
                    .is_ok_and(|m| m.is_file() && m.len() == size))
            }
            Ok(SyncTarget::S3 { settings }) => {
                use object_store::ObjectStoreExt;
                match crate::depot::s3::client_for(&settings) {
                    Err(e) => Err(e.to_string()),
                    Ok(client) => match client.head(&SyncTarget::s3_key(&settings, sha256)).await {
                        Ok(meta) => Ok(meta.size == size),
                        Err(object_store::Error::NotFound { .. }) => Ok(false),
                        Err(e) => Err(format!("s3://{}: {e}", settings.bucket)),
                    },
                }
            }
        });
    }
    if src.kind != "http" {
        return None;
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()?;
    let url = format!("{}/{sha256}", src.location);
    Some(match client.head(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(r.content_length().is_none_or(|l| l == size)),
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => Ok(false),
        Ok(r) => Err(format!("HEAD {url}: {}", r.status())),
        Err(e) => Err(format!("HEAD {url}: {e}")),
    })
}

fn artifact_status(a: &CatalogueArtifactRow, rec: Option<&SourceBlobRow>) -> SourceArtifactStatus {
    SourceArtifactStatus {
        package: a.package.clone(),
        version: a.version.clone(),
        // Stored by the server from the same enum; an unreadable value reads as Linux rather
        // than hiding the artifact from the status.
        platform: OsFamily::parse(&a.platform).unwrap_or(OsFamily::Linux),
        arch: Arch::normalise(&a.arch).unwrap_or(Arch::Any),
        sha256: a.sha256.clone(),
        size: u64::try_from(a.size).unwrap_or(0),
        file_name: a.file_name.clone(),
        state: rec
            .and_then(|r| SourceBlobState::parse(&r.state))
            .unwrap_or(SourceBlobState::Absent),
        error: rec.and_then(|r| r.error.clone()),
        updated_at_ms: rec.map(|r| r.updated_at),
    }
}

/// Every artifact of the catalogue and its state on this source. With `verify=true` the
/// server looks at the source now (file sizes on `sync_path`, `HEAD` on a mirror) and records
/// what is there and what went missing.
#[utoipa::path(get, path = "/api/v1/depot/sources/{source}/status", tag = "depot",
    params(("source" = String, Path, description = "id or name"), SourceStatusQuery),
    responses((status = 200, body = SourceStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn source_status(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Path(source): Path<String>,
    Query(q): Query<SourceStatusQuery>,
) -> ApiResult<Json<SourceStatus>> {
    let src = find_source(&state, &source).await?;
    let artifacts = state.store.catalogue_artifacts().await?;
    if q.verify == Some(true) {
        let mut done = HashSet::new();
        let recorded = recorded_states(&state, &src.id).await?;
        for a in &artifacts {
            if !done.insert(a.sha256.clone()) {
                continue;
            }
            let was = recorded.get(&a.sha256).map(String::as_str);
            if was == Some("pending") {
                continue;
            }
            let Some(check) = present_on(
                &src,
                &a.sha256,
                u64::try_from(a.size).unwrap_or(0),
                &state.config,
            )
            .await
            else {
                break;
            };
            let (new, error) = match check {
                Ok(true) => (SourceBlobState::Synced, None),
                Ok(false) if was == Some("synced") => (SourceBlobState::Missing, None),
                Ok(false) => continue,
                Err(e) => (SourceBlobState::Failed, Some(e)),
            };
            if was != Some(new.as_str()) {
                set_state(&state, &src.id, &a.sha256, new, error).await;
            }
        }
    }
    let recs: HashMap<String, SourceBlobRow> = state
        .store
        .source_blobs(Some(&src.id))
        .await?
        .into_iter()
        .map(|r| (r.sha256.clone(), r))
        .collect();
    let items: Vec<SourceArtifactStatus> = artifacts
        .iter()
        .map(|a| artifact_status(a, recs.get(&a.sha256)))
        .collect();
    let count =
        |f: &dyn Fn(SourceBlobState) -> bool| items.iter().filter(|i| f(i.state)).count() as u64;
    Ok(Json(SourceStatus {
        synced: count(&|s| s == SourceBlobState::Synced),
        pending: count(&|s| s == SourceBlobState::Pending),
        failed: count(&|s| s == SourceBlobState::Failed),
        lacking: count(&|s| matches!(s, SourceBlobState::Absent | SourceBlobState::Missing)),
        source: source_info(&state, src).await?,
        artifacts: items,
    }))
}

/// Which source lacks which version: for every version with artifacts, the sources holding
/// all of them and the ones that do not (from the recorded states; verify a source's status to
/// refresh them).
#[utoipa::path(get, path = "/api/v1/depot/drift", tag = "depot",
    responses((status = 200, body = DriftReport)),
    security(("bearer" = [])))]
async fn drift_report(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
) -> ApiResult<Json<DriftReport>> {
    let sources = state.store.sources().await?;
    let synced: HashSet<(String, String)> = state
        .store
        .source_blobs(None)
        .await?
        .into_iter()
        .filter(|r| r.state == "synced")
        .map(|r| (r.source_id, r.sha256))
        .collect();
    let mut versions: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for a in state.store.catalogue_artifacts().await? {
        versions
            .entry((a.package, a.version))
            .or_default()
            .push(a.sha256);
    }
    let mut rows = Vec::new();
    for ((package, version), blobs) in versions {
        let (mut lacking, mut complete) = (Vec::new(), Vec::new());
        for s in &sources {
            if blobs
                .iter()
                .all(|b| synced.contains(&(s.id.clone(), b.clone())))
            {
                complete.push(s.name.clone());
            } else {
                lacking.push(s.name.clone());
            }
        }
        if !lacking.is_empty() {
            rows.push(DriftRow {
                package,
                version,
                lacking,
                complete,
            });
        }
    }
    Ok(Json(DriftReport {
        sources: sources.into_iter().map(|s| s.name).collect(),
        rows,
    }))
}

// ---------------------------------------------------------------------------------------------
// A device's fallback order
// ---------------------------------------------------------------------------------------------

/// Where a device downloads artifacts from, in order: the sources serving it (unscoped ones,
/// and those scoped to one of its groups or their ancestors) by priority, then the server —
/// unless one of those sources is exclusive (an air-gapped site).
pub async fn sources_for_device(
    state: &AppState,
    device_id: &str,
) -> ApiResult<Vec<DownloadSource>> {
    let sources = state.store.sources().await?;
    if sources.is_empty() {
        return Ok(vec![DownloadSource::Server]);
    }
    let scope = state.store.source_groups().await?;
    let parents: HashMap<String, Option<String>> =
        state.store.group_parents().await?.into_iter().collect();
    let mine =
        crate::groups::with_ancestors(&parents, state.store.device_group_ids(device_id).await?);
    Ok(sources_in_order(&sources, &scope, &mine))
}

/// The fallback order for a device in the groups `mine` (its groups and their ancestors):
/// the sources serving it by priority, then the server unless one of them is exclusive.
/// `scope` is every (source id, group id, group name).
pub(crate) fn sources_in_order(
    sources: &[SourceRow],
    scope: &[(String, String, String)],
    mine: &HashSet<String>,
) -> Vec<DownloadSource> {
    let mut out = Vec::new();
    let mut exclusive = false;
    for s in sources {
        let mut groups = scope
            .iter()
            .filter(|(sid, _, _)| *sid == s.id)
            .map(|(_, g, _)| g)
            .peekable();
        if groups.peek().is_some() && !groups.any(|g| mine.contains(g)) {
            continue;
        }
        exclusive |= s.exclusive;
        out.push(match s.kind.as_str() {
            "http" => DownloadSource::Http {
                name: s.name.clone(),
                base_url: s.location.clone(),
            },
            _ => DownloadSource::Path {
                name: s.name.clone(),
                path: s.location.clone(),
            },
        });
    }
    if !exclusive {
        out.push(DownloadSource::Server);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_checked_by_kind() {
        assert_eq!(
            check_url("http://mirror.site-a:8080/depot/").unwrap(),
            "http://mirror.site-a:8080/depot"
        );
        for bad in [
            "ftp://x",
            "http://",
            "http:///x",
            "http://u:p@host/x",
            "http://h/x?y",
            "http://h/a b",
            "mirror",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert_eq!(check_share("/mnt/depot/").unwrap(), "/mnt/depot");
        assert_eq!(
            check_share("\\\\srv\\share\\depot").unwrap(),
            "\\\\srv\\share\\depot"
        );
        assert_eq!(check_share("D:\\depot").unwrap(), "D:\\depot");
        for bad in ["relative", "/mnt/../etc", "\\\\", "C:depot", "/a\nb"] {
            assert!(check_share(bad).is_err(), "{bad}");
        }
        assert!(is_source_name("site-a.share_1"));
        for bad in ["", "Site", "-x", "a b", &"a".repeat(65)] {
            assert!(!is_source_name(bad), "{bad}");
        }
    }
}

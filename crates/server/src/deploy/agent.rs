//! The agent's side of desired state: `GET /agent/v1/manifest` (the device's compiled
//! manifest, signed like run payloads), `POST /agent/v1/manifest/report` (per-item status,
//! checked — agent data is untrusted — and recorded with history, timeline and events), and
//! `POST /agent/v1/software/request` (someone on the node asks for an available package).

use axum::extract::State;
use axum::http::StatusCode;
use capstan_proto::deploy::{ManifestReport, SignedManifest, SoftwareRequest, limits};
use capstan_proto::error::ErrorBody;
use capstan_store::ItemReportRow;
use ed25519_dalek::Signer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::agent_api::AgentDevice;
use crate::error::{ApiError, ApiResult, Json};
use crate::state::{AppState, now_ms};

/// A report carries at most this much (logs are capped per item as well).
const MAX_REPORT_BYTES: usize = 1 << 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_manifest))
        .routes(routes!(report).layer(axum::extract::DefaultBodyLimit::max(MAX_REPORT_BYTES)))
        .routes(routes!(software_request))
}

/// The device's current manifest (desired software state), signed with the server's key over
/// the exact payload bytes. 404 when the device has none yet.
#[utoipa::path(get, path = "/agent/v1/manifest", tag = "agent",
    responses((status = 200, body = SignedManifest), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("device" = [])))]
async fn get_manifest(
    State(state): State<AppState>,
    device: AgentDevice,
) -> ApiResult<Json<SignedManifest>> {
    let m = state
        .store
        .manifest(&device.id)
        .await?
        .ok_or_else(|| ApiError::not_found("manifest: the device has none yet"))?;
    let signature = state.signing_key.sign(m.payload.as_bytes());
    Ok(Json(SignedManifest {
        payload: m.payload,
        signature: hex::encode(signature.to_bytes()),
    }))
}

fn check_text(path: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("{path}: at most {max} bytes"));
    }
    if s.contains('\0') {
        return Err(format!("{path}: contains NUL"));
    }
    Ok(())
}

/// Checks an agent report; the first problem refuses the whole report.
fn validate(r: &ManifestReport, current: i64) -> Result<Vec<ItemReportRow>, String> {
    if r.items.len() > limits::MAX_REPORT_ITEMS {
        return Err(format!("items: at most {}", limits::MAX_REPORT_ITEMS));
    }
    let revision = i64::try_from(r.revision).map_err(|_| "revision: out of range".to_string())?;
    if revision > current {
        return Err(format!(
            "revision: {revision} is newer than the device's manifest ({current})"
        ));
    }
    let now = now_ms();
    let mut out = Vec::with_capacity(r.items.len());
    for (i, it) in r.items.iter().enumerate() {
        let p = format!("items/{i}");
        check_text(&format!("{p}/package_id"), &it.package_id, 64)?;
        check_text(&format!("{p}/version"), &it.version, 128)?;
        if let Some(d) = &it.detail {
            check_text(&format!("{p}/detail"), d, limits::MAX_ITEM_DETAIL_BYTES)?;
        }
        if let Some(l) = &it.log {
            check_text(&format!("{p}/log"), l, limits::MAX_ITEM_LOG_BYTES)?;
        }
        if let Some(pr) = it.progress
            && (pr.received > pr.total || pr.total > (1 << 50))
        {
            return Err(format!("{p}/progress: received exceeds total"));
        }
        // Agent clocks drift; a wildly wrong time is replaced by the server's.
        let at = if (now - 366 * 86_400_000..=now + 86_400_000).contains(&it.at_ms) {
            it.at_ms
        } else {
            now
        };
        let progress = it.progress.map(|pr| {
            (
                i64::try_from(pr.received).unwrap_or(0),
                i64::try_from(pr.total).unwrap_or(0),
            )
        });
        out.push(ItemReportRow {
            package_id: it.package_id.clone(),
            version: it.version.clone(),
            status: it.status.as_str().to_string(),
            detail: it.detail.clone(),
            exit_code: it.exit_code.map(i64::from),
            log: it.log.clone(),
            progress,
            drift: it.drift,
            at,
        });
    }
    Ok(out)
}

/// Report the status of manifest items (detect, download progress, install, verify, failure
/// with exit code and log). `complete` acknowledges the revision. Reports for packages the
/// device's manifest never named are ignored.
#[utoipa::path(post, path = "/agent/v1/manifest/report", tag = "agent",
    request_body = ManifestReport,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("device" = [])))]
async fn report(
    State(state): State<AppState>,
    device: AgentDevice,
    Json(req): Json<ManifestReport>,
) -> ApiResult<StatusCode> {
    let current = *state
        .store
        .manifest_revisions(std::slice::from_ref(&device.id))
        .await?
        .get(&device.id)
        .ok_or_else(|| ApiError::not_found("manifest: the device has none"))?;
    let rows = validate(&req, current).map_err(ApiError::validation)?;
    let outcome = state
        .store
        .record_item_reports(
            &device.id,
            current.min(req.revision as i64),
            req.complete,
            &rows,
            now_ms(),
        )
        .await?;
    if !outcome.unknown.is_empty() {
        tracing::debug!(device = %device.id, unknown = ?outcome.unknown, "reports for packages outside the manifest ignored");
    }
    if outcome.changed > 0 {
        // Installed or removed items change what Capstan manages on the device.
        state.deploy.mark([device.id.clone()]);
        state.deploy.changed();
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Marks an available package as requested on a device and recompiles it, so the agent
/// installs it. 404 when the device's manifest does not offer the package.
pub(crate) async fn request(state: &AppState, device: &str, package: &str) -> ApiResult<()> {
    if package.is_empty() || package.len() > 128 {
        return Err(ApiError::validation("package: a package id or name"));
    }
    let pkg = state
        .store
        .package(package)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("package {package}")))?;
    state
        .store
        .request_software(device, &pkg.id, now_ms())
        .await
        .map_err(|e| match e {
            capstan_store::StoreError::NotFound => ApiError::not_found(format!(
                "package {} is not available to this device",
                pkg.name
            )),
            other => other.into(),
        })?;
    state.deploy.mark([device.to_string()]);
    Ok(())
}

/// Install a package that is available to this device (`capstan-agent software install
/// NAME` on the node). The agent receives it with its next manifest.
#[utoipa::path(post, path = "/agent/v1/software/request", tag = "agent",
    request_body = SoftwareRequest,
    responses((status = 202), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("device" = [])))]
async fn software_request(
    State(state): State<AppState>,
    device: AgentDevice,
    Json(req): Json<SoftwareRequest>,
) -> ApiResult<StatusCode> {
    request(&state, &device.id, &req.package).await?;
    Ok(StatusCode::ACCEPTED)
}

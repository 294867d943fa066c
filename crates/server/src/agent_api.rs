//! The agent protocol under `/agent/v1`: enrollment, check-in, inventory upload and the
//! wake-up long-poll. Everything an agent sends is untrusted: bodies are size-limited, parsed
//! into concrete types, validated, and every authenticated request is bound to one device —
//! a device credential can only ever read or write its own device's data.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use capstan_core::inventory as inv;
use capstan_proto::agent::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, InventoryAccepted,
    InventoryUpload, WaitResponse,
};
use capstan_proto::error::{ErrorBody, ErrorCode};
use capstan_proto::{AGENT_PROTOCOL_VERSION, DEVICE_TOKEN_PREFIX, ENROLLMENT_TOKEN_PREFIX};
use capstan_store::{EnrollError, EnrollInput, NewTimelineEntry, StoreError};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::auth::{presented_token, secrets};
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::ratelimit::ClientIp;
use crate::state::{AppState, now_ms};

pub fn router(max_inventory_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enroll))
        .routes(routes!(checkin))
        .routes(routes!(upload_inventory).layer(DefaultBodyLimit::max(max_inventory_bytes)))
        .routes(routes!(wait))
        // Everything but the inventory is small.
        .layer(DefaultBodyLimit::max(256 << 10))
}

/// The device a request is authenticated as.
#[derive(Debug, Clone)]
pub struct AgentDevice {
    pub id: String,
}

fn revoked() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::DeviceRevoked,
        "device credential is unknown, revoked or the device was deleted; re-enroll the agent",
    )
}

impl FromRequestParts<AppState> for AgentDevice {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = presented_token(parts).ok_or_else(|| {
            ApiError::unauthenticated("device credential required: `Authorization: Bearer capd_…`")
        })?;
        let (id, secret) = secrets::parse(DEVICE_TOKEN_PREFIX, &token)
            .ok_or_else(|| ApiError::unauthenticated("malformed device credential"))?;
        if state.device_auth.verify(id, secret) {
            return Ok(AgentDevice { id: id.to_string() });
        }
        let device = state.store.device_auth(id).await?.ok_or_else(revoked)?;
        if !secrets::verify_secret(secret, &device.secret_hash) || device.revoked_at.is_some() {
            return Err(revoked());
        }
        state.device_auth.remember(&device.id, &device.secret_hash);
        Ok(AgentDevice { id: device.id })
    }
}

/// How long a verified device credential is trusted without reading the database again.
const AUTH_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Verified device credentials (their hashes), so an agent's requests do not each read the
/// devices table. Revoking or deleting a device forgets it here at once, and on other replicas
/// when their wake relay delivers the wake-up the revocation sends; if that notification is lost,
/// another replica accepts the old credential for at most [`AUTH_CACHE_TTL`]. A credential that
/// does not match the cached hash (e.g. after re-enrollment) is checked against the database.
#[derive(Debug, Default)]
pub struct DeviceAuthCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

impl DeviceAuthCache {
    fn verify(&self, id: &str, secret: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).is_some_and(|(hash, at)| {
            at.elapsed() < AUTH_CACHE_TTL && secrets::verify_secret(secret, hash)
        })
    }

    fn remember(&self, id: &str, hash: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            id.to_string(),
            (hash.to_string(), std::time::Instant::now()),
        );
    }

    /// Forget a device (revoked, deleted, or changed on another replica).
    pub fn forget(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

fn check_len(what: &str, v: &str, max: usize) -> ApiResult<()> {
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{what} must be 1..={max} bytes without control characters"
        )));
    }
    Ok(())
}

/// Enroll a device with an enrollment token; returns the device credential (once).
///
/// The same machine (same identity key) enrolling again gets its existing device back with a
/// new credential — no duplicate device.
#[utoipa::path(post, path = "/agent/v1/enroll", tag = "agent", request_body = EnrollRequest,
    responses((status = 200, body = EnrollResponse),
              (status = 401, body = ErrorBody, description = "enrollment_token_invalid / _expired / _exhausted"),
              (status = 429, body = ErrorBody, description = "rate_limited: too many refused enrollments from this address")))]
async fn enroll(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<Json<EnrollResponse>> {
    let ip_key = ip.key("enroll");
    if let Some(k) = &ip_key {
        state
            .limits
            .enroll_ip
            .check(k)
            .map_err(ApiError::rate_limited)?;
    }
    let result = enroll_checked(&state, req).await;
    // Only refused credentials count against the address, not malformed requests.
    if let (Err(e), Some(k)) = (&result, &ip_key)
        && e.status == StatusCode::UNAUTHORIZED
    {
        state.limits.enroll_ip.record_failure(k);
    }
    result
}

async fn enroll_checked(state: &AppState, req: EnrollRequest) -> ApiResult<Json<EnrollResponse>> {
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::EnrollmentTokenInvalid,
            "enrollment token is invalid or revoked",
        )
    };
    let (token_id, secret) =
        secrets::parse(ENROLLMENT_TOKEN_PREFIX, req.token.trim()).ok_or_else(invalid)?;
    check_len("hostname", &req.hostname, 255)?;
    check_len("agent_version", &req.agent_version, 64)?;
    check_len("os_family", &req.os_family, 32)?;
    if req.identity.identity_key.len() != 64
        || !req
            .identity
            .identity_key
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
    {
        return Err(ApiError::validation(
            "identity.identity_key must be 64 hex digits (SHA-256)",
        ));
    }
    if !matches!(req.identity.source.as_str(), "hardware" | "instance") {
        return Err(ApiError::validation(
            "identity.source must be `hardware` or `instance`",
        ));
    }
    let token = state
        .store
        .enrollment_token(token_id)
        .await?
        .ok_or_else(invalid)?;
    if !secrets::verify_secret(secret, &token.secret_hash) {
        return Err(invalid());
    }
    let new_id = secrets::new_id();
    let minted = secrets::mint(DEVICE_TOKEN_PREFIX, &new_id);
    let input = EnrollInput {
        token_id: token.id.clone(),
        now: now_ms(),
        new_device_id: new_id,
        secret_hash: minted.hash,
        identity_key: req.identity.identity_key.to_ascii_lowercase(),
        identity_source: req.identity.source.clone(),
        hostname: req.hostname.clone(),
        os_family: req.os_family.clone(),
        agent_version: req.agent_version.clone(),
    };
    let outcome = state
        .store
        .enroll_device(&input)
        .await
        .map_err(|e| match e {
            EnrollError::Invalid => invalid(),
            EnrollError::Expired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::EnrollmentTokenExpired,
                "enrollment token has expired",
            ),
            EnrollError::Exhausted(n) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::EnrollmentTokenExhausted,
                format!("enrollment token has reached its maximum of {n} uses"),
            ),
            EnrollError::Store(e) => e.into(),
        })?;
    // A re-enrolled device keeps its id, so the credential is assembled with the final id.
    let device_token = format!(
        "{DEVICE_TOKEN_PREFIX}_{}_{}",
        outcome.device_id, minted.secret
    );
    metrics::counter!("capstan_enrollments_total").increment(1);
    // A re-enrollment replaced the credential: the old one must not live on in the cache.
    state.device_auth.forget(&outcome.device_id);
    crate::membership::device_changed(state, &outcome.device_id).await;
    tracing::info!(device = %outcome.device_id, hostname = %req.hostname.escape_debug(), reenrolled = outcome.reenrolled, "device enrolled");
    Ok(Json(EnrollResponse {
        device_id: outcome.device_id,
        device_token,
        reenrolled: outcome.reenrolled,
        checkin_interval_secs: state.config.checkin_interval_secs,
        signing_public_key: hex::encode(state.signing_key.verifying_key().as_bytes()),
        protocol_version: AGENT_PROTOCOL_VERSION,
    }))
}

/// Periodic check-in: records liveness and a performance snapshot, and tells the agent whether
/// to upload its inventory.
#[utoipa::path(post, path = "/agent/v1/checkin", tag = "agent", request_body = CheckinRequest,
    responses((status = 200, body = CheckinResponse), (status = 401, body = ErrorBody)), security(("device" = [])))]
async fn checkin(
    State(state): State<AppState>,
    device: AgentDevice,
    Json(req): Json<CheckinRequest>,
) -> ApiResult<Json<CheckinResponse>> {
    check_len("agent_version", &req.agent_version, 64)?;
    if let Some(b) = &req.boot_id {
        check_len("boot_id", b, 64)?;
    }
    if let Some(d) = &req.inventory_digest {
        check_len("inventory_digest", d, 64)?;
    }
    if req.capabilities.len() > 64 || req.capabilities.iter().any(|c| c.len() > 64) {
        return Err(ApiError::validation(
            "capabilities: at most 64 entries of at most 64 bytes",
        ));
    }
    let perf = match &req.performance {
        Some(p) => {
            p.validate()
                .map_err(|e| ApiError::validation(e.to_string()))?;
            Some(serde_json::to_string(p).map_err(ApiError::internal)?)
        }
        None => None,
    };
    let now = now_ms();
    let runs_jobs = req
        .capabilities
        .iter()
        .any(|c| c == capstan_proto::jobs::CAP_JOBS);
    // Announced before queueing, so writes of other kinds hold back while check-ins (which
    // deliver runs) wait for the database; see capstan_store's write gate.
    let urgent = state.store.urgent_write();
    let recorded = crate::batch::writes(&state)
        .checkin
        .call(capstan_store::CheckinRecord {
            device_id: device.id.clone(),
            agent_version: req.agent_version.clone(),
            boot_id: req.boot_id.clone(),
            performance: perf,
            claim_runs: runs_jobs,
        })
        .await
        .map_err(|e| e.into_api(revoked))?;
    drop(urgent);
    let refresh = recorded.refresh_requested_at;
    let stored_digest = recorded.digest.clone();
    metrics::counter!("capstan_agent_checkins_total").increment(1);
    crate::membership::checked_in(&state, &device.id, now).await;
    let digest_differs = match (&stored_digest, &req.inventory_digest) {
        (Some(stored), Some(reported)) => stored != reported,
        _ => true,
    };
    // The check-in claimed this device's runnable runs in the same write; they are delivered
    // with the answer (signed), and `runs_pending` says whether more are left to claim.
    let runs = crate::jobs::deliver(&state, &device.id, recorded.claimed).await?;
    let runs_pending = recorded.runs_pending;
    Ok(Json(CheckinResponse {
        runs_pending,
        runs,
        server_time_ms: now,
        checkin_interval_secs: state.config.checkin_interval_secs,
        send_inventory: digest_differs || refresh.is_some(),
        recollect_inventory: refresh.is_some(),
        wake_generation: state.wake.generation(&device.id),
        protocol_version: AGENT_PROTOCOL_VERSION,
        manifest_revision: recorded
            .manifest_revision
            .and_then(|r| u64::try_from(r).ok()),
    }))
}

/// Upload the full inventory document. The server verifies the digest, validates every limit,
/// diffs against the previous document and records field-level changes in the timeline — all
/// in one transaction, durable before this call returns.
#[utoipa::path(put, path = "/agent/v1/inventory", tag = "agent", request_body = InventoryUpload,
    responses((status = 200, body = InventoryAccepted), (status = 400, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 401, body = ErrorBody)), security(("device" = [])))]
async fn upload_inventory(
    State(state): State<AppState>,
    device: AgentDevice,
    Json(up): Json<InventoryUpload>,
) -> ApiResult<Json<InventoryAccepted>> {
    up.document
        .validate()
        .map_err(|e| ApiError::validation(format!("inventory rejected: {e}")))?;
    let hostname = up
        .document
        .os
        .as_ref()
        .map(|o| o.hostname.clone())
        .ok_or_else(|| {
            ApiError::validation("inventory rejected: os section (with hostname) is required")
        })?;
    // Hashing, serialising and diffing a large document is CPU work: keep it off the reactor.
    let doc = up.document;
    let claimed = up.digest;
    let (digest, json, doc) = tokio::task::spawn_blocking(move || {
        let digest = inv::digest(&doc);
        let json = serde_json::to_string(&doc);
        (digest, json, doc)
    })
    .await
    .map_err(ApiError::internal)?;
    let json = json.map_err(ApiError::internal)?;
    if !claimed.eq_ignore_ascii_case(&digest) {
        return Err(ApiError::validation(format!(
            "inventory rejected: digest {claimed:?} does not match the document (server computed {digest})"
        )));
    }
    let os_name = doc.os.as_ref().and_then(|o| o.name.clone());
    let os_version = doc
        .os
        .as_ref()
        .and_then(|o| o.version_id.clone().or_else(|| o.version.clone()));

    for attempt in 0..3 {
        let now = now_ms();
        let previous = state.store.inventory(&device.id).await?;
        let (entries, first) = match &previous {
            None => (
                vec![NewTimelineEntry {
                    kind: "inventory_first".into(),
                    category: None,
                    field: None,
                    change: None,
                    old_value: None,
                    new_value: None,
                    summary: inv::first_inventory_summary(&doc),
                }],
                true,
            ),
            Some(prev) if prev.digest == digest => (Vec::new(), false),
            Some(prev) => {
                let old: capstan_proto::inventory::InventoryDocument =
                    serde_json::from_str(&prev.document).map_err(|e| {
                        ApiError::internal(format!(
                            "stored inventory of {} is corrupt: {e}",
                            device.id
                        ))
                    })?;
                let changes = inv::diff(&old, &doc);
                let entries = changes
                    .into_iter()
                    .map(|c| NewTimelineEntry {
                        kind: "inventory_change".into(),
                        category: Some(c.category),
                        field: Some(c.field),
                        change: Some(change_kind(&c.kind).to_string()),
                        old_value: c.old.map(|v| v.to_string()),
                        new_value: c.new.map(|v| v.to_string()),
                        summary: c.summary,
                    })
                    .collect();
                (entries, false)
            }
        };
        let n = if first { 0 } else { entries.len() as u64 };
        match state
            .store
            .store_inventory(
                &device.id,
                previous.as_ref().map(|p| p.digest.as_str()),
                &digest,
                &json,
                &hostname,
                os_name.as_deref(),
                os_version.as_deref(),
                &entries,
                now,
            )
            .await
        {
            Ok(()) => {
                metrics::counter!("capstan_inventory_ingests_total").increment(1);
                crate::membership::device_changed(&state, &device.id).await;
                return Ok(Json(InventoryAccepted { changes: n, first }));
            }
            Err(StoreError::Conflict(_)) if attempt < 2 => continue,
            Err(StoreError::NotFound) => return Err(revoked()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict("inventory changed concurrently; retry"))
}

fn change_kind(k: &inv::ChangeKind) -> &'static str {
    match k {
        inv::ChangeKind::Added => "added",
        inv::ChangeKind::Removed => "removed",
        inv::ChangeKind::Changed => "changed",
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct WaitQuery {
    /// The wake generation from the last check-in or wait.
    generation: u64,
    /// Seconds to hold the request when nothing happens (1..=120, default 50).
    timeout_secs: Option<u64>,
}

/// Long-poll for a wake-up: answers at once when the generation moved, otherwise when the
/// server wakes this device or the timeout passes.
#[utoipa::path(get, path = "/agent/v1/wait", tag = "agent", params(WaitQuery),
    responses((status = 200, body = WaitResponse), (status = 401, body = ErrorBody)), security(("device" = [])))]
async fn wait(
    State(state): State<AppState>,
    device: AgentDevice,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<WaitResponse>> {
    let timeout = Duration::from_secs(q.timeout_secs.unwrap_or(50).clamp(1, 120));
    let mut shutdown = state.shutdown.clone();
    let cancel = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let out = state
        .wake
        .wait(&device.id, q.generation, timeout, cancel)
        .await;
    Ok(Json(WaitResponse {
        wake: out.woken,
        wake_generation: out.generation,
    }))
}

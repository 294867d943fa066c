//! Console routes for enrollment tokens: create (secret shown once, with a ready install
//! command), list with their state, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use capstan_proto::ENROLLMENT_TOKEN_PREFIX;
use capstan_proto::api::{
    CreateEnrollmentTokenRequest, CreatedEnrollmentToken, EnrollmentTokenInfo,
};
use capstan_proto::error::ErrorBody;
use capstan_store::{EnrollmentTokenRow, NewEnrollmentToken};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, EnrollmentManage, EnrollmentRead, secrets};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

fn info(t: &EnrollmentTokenRow, now: i64) -> EnrollmentTokenInfo {
    EnrollmentTokenInfo {
        id: t.id.clone(),
        name: t.name.clone(),
        created_at_ms: t.created_at,
        created_by: t.created_by.clone(),
        expires_at_ms: t.expires_at,
        max_uses: t.max_uses.map(|m| m.clamp(0, u32::MAX as i64) as u32),
        uses: t.uses.clamp(0, u32::MAX as i64) as u32,
        default_tags: t.tags(),
        revoked: t.revoked_at.is_some(),
        state: t.state(now).to_string(),
    }
}

/// The one-line install command for a token. With TLS it pins the server's public key, so
/// even the script download cannot be intercepted (`--insecure` only skips CA validation,
/// which a self-signed certificate cannot pass; the pin is the stronger check); the script
/// then pins the certificate for everything after.
pub fn install_command(state: &AppState, token: &str) -> String {
    let curl = match &state.spki_pin {
        Some(pin) => format!("curl -fsSL --insecure --pinnedpubkey 'sha256//{pin}'"),
        None => "curl -fsSL".to_string(),
    };
    format!(
        "{curl} {}/install.sh | sudo sh -s -- --token {token}",
        state.public_url
    )
}

/// Tags are short identifiers: letters, digits and `-_.:/=`.
pub fn validate_tag(tag: &str) -> ApiResult<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.:/=".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "invalid tag {tag:?}: 1..=64 characters of letters, digits and -_.:/="
        )))
    }
}

/// List enrollment tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/enrollment-tokens", tag = "enrollment",
    responses((status = 200, body = Vec<EnrollmentTokenInfo>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    _auth: Authz<EnrollmentRead>,
) -> ApiResult<Json<Vec<EnrollmentTokenInfo>>> {
    let now = now_ms();
    let rows = state.store.list_enrollment_tokens().await?;
    Ok(Json(rows.iter().map(|t| info(t, now)).collect()))
}

/// Create an enrollment token. The secret and a ready install command are in this response
/// only; the server keeps a hash.
#[utoipa::path(post, path = "/api/v1/enrollment-tokens", tag = "enrollment", request_body = CreateEnrollmentTokenRequest,
    responses((status = 201, body = CreatedEnrollmentToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_token(
    State(state): State<AppState>,
    auth: Authz<EnrollmentManage>,
    Json(req): Json<CreateEnrollmentTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedEnrollmentToken>)> {
    if req.name.trim().is_empty() || req.name.len() > 200 || req.name.chars().any(char::is_control)
    {
        return Err(ApiError::validation(
            "name must be 1..=200 bytes without control characters",
        ));
    }
    let lifetime = req.expires_in_secs.unwrap_or(7 * 86_400);
    if lifetime == 0 || lifetime > 366 * 86_400 {
        return Err(ApiError::validation(
            "expires_in_secs must be between 1 and 31622400 (one year)",
        ));
    }
    if req.max_uses == Some(0) {
        return Err(ApiError::validation(
            "max_uses must be at least 1 (omit it for unlimited)",
        ));
    }
    if req.default_tags.len() > 32 {
        return Err(ApiError::validation("at most 32 default tags"));
    }
    for t in &req.default_tags {
        validate_tag(t)?;
    }
    let now = now_ms();
    let id = secrets::new_id();
    let minted = secrets::mint(ENROLLMENT_TOKEN_PREFIX, &id);
    let mut tags = req.default_tags.clone();
    tags.dedup();
    let new = NewEnrollmentToken {
        id: id.clone(),
        name: req.name.clone(),
        secret_hash: minted.hash,
        created_at: now,
        created_by: auth.operator.actor(),
        expires_at: now + lifetime as i64 * 1000,
        max_uses: req.max_uses.map(i64::from),
        default_tags: tags,
    };
    let audit = auth.operator.audit(
        "enrollment_token.create",
        Some(&id),
        json!({"name": new.name, "expires_at": new.expires_at, "max_uses": new.max_uses, "default_tags": new.default_tags}),
    );
    state.store.create_enrollment_token(&new, &audit).await?;
    let row = state
        .store
        .enrollment_token(&id)
        .await?
        .ok_or_else(|| ApiError::internal("token vanished after insert"))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEnrollmentToken {
            info: info(&row, now),
            install_command: install_command(&state, &minted.token),
            token: minted.token,
        }),
    ))
}

/// Revoke an enrollment token; devices already enrolled with it are not affected.
#[utoipa::path(delete, path = "/api/v1/enrollment-tokens/{id}", tag = "enrollment", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: Authz<EnrollmentManage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let audit = auth
        .operator
        .audit("enrollment_token.revoke", Some(&id), json!({}));
    state
        .store
        .revoke_enrollment_token(&id, now_ms(), &audit)
        .await
        .map_err(|e| match e {
            capstan_store::StoreError::NotFound => {
                ApiError::not_found(format!("enrollment token {id}"))
            }
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

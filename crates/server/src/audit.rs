//! The audit log read API: who did what to which object, newest first, paged by id like the
//! device timeline. Only admins read it (`audit.read`): entries name users, devices and
//! tokens across the whole installation. Writing happens elsewhere, in the same transaction
//! as each change (see the store).

use axum::extract::State;
use axum::http::StatusCode;
use capstan_proto::api::{AuditEntryInfo, AuditPage, AuditQuery};
use capstan_proto::error::{ErrorBody, ErrorCode};
use capstan_store::{AuditFilter, AuditRow};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuditRead, Authz};
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_log))
}

fn entry(r: &AuditRow) -> AuditEntryInfo {
    // Details are written by the server as JSON; should a row ever hold something else, show
    // it as text rather than hide the whole page.
    let details = serde_json::from_str(&r.details)
        .unwrap_or_else(|_| serde_json::Value::String(r.details.clone()));
    AuditEntryInfo {
        id: r.id,
        at_ms: r.at,
        actor: r.actor.clone(),
        action: r.action.clone(),
        target: r.target.clone(),
        details,
    }
}

fn invalid_query(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, message)
}

/// The audit log, newest first. Requires `audit.read` (admin).
///
/// Filter by `actor` (e.g. `user:admin`) and `action` (e.g. `device.delete`), both exact.
/// Page back by passing `next_before` as `before`.
#[utoipa::path(get, path = "/api/v1/audit-log", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_audit_log(
    State(state): State<AppState>,
    _auth: Authz<AuditRead>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(invalid_query("limit must be between 1 and 500"));
    }
    for (name, value) in [("actor", &q.actor), ("action", &q.action)] {
        if value.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(invalid_query(format!("{name} is longer than 256 bytes")));
        }
    }
    // Fetch one extra row to know whether an older page exists.
    let mut rows = state
        .store
        .audit_entries(&AuditFilter {
            before: q.before,
            actor: q.actor.clone().filter(|s| !s.is_empty()),
            action: q.action.clone().filter(|s| !s.is_empty()),
            limit: limit as i64 + 1,
        })
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let items: Vec<AuditEntryInfo> = rows.iter().map(entry).collect();
    let next_before = if more {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage { items, next_before }))
}

//! Bulk tag changes: `POST /api/v1/tags/add` and `/api/v1/tags/remove` on devices chosen by
//! ids and/or a device-list filter. Tags are validated like enrollment default tags; each
//! device's change is a `tag_added` / `tag_removed` timeline entry, the request one audit row.

use axum::extract::State;
use capstan_proto::api::{BulkResult, TagChange};
use capstan_proto::error::ErrorBody;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, GroupsManage};
use crate::enrollment::validate_tag;
use crate::error::{ApiError, ApiResult, Json};
use crate::groups::select_devices;
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_tags))
        .routes(routes!(remove_tags))
}

async fn change(
    state: &AppState,
    auth: &Authz<GroupsManage>,
    req: &TagChange,
    add: bool,
) -> ApiResult<Json<BulkResult>> {
    if req.tags.is_empty() || req.tags.len() > 32 {
        return Err(ApiError::validation("give 1..=32 tags"));
    }
    for t in &req.tags {
        validate_tag(t)?;
    }
    let ids = select_devices(state, req.device_ids.as_ref(), req.filter.as_ref()).await?;
    let action = if add { "tags.add" } else { "tags.remove" };
    let audit = auth.operator.audit(
        action,
        None,
        json!({"tags": req.tags, "filter": req.filter}),
    );
    let changed = state
        .store
        .change_tags(&ids, &req.tags, add, now_ms(), &audit)
        .await?;
    crate::membership::devices_changed(state, &ids).await;
    Ok(Json(BulkResult {
        matched: ids.len() as u64,
        changed,
    }))
}

/// Add tags to devices chosen by ids (at most 10,000, all known) and/or a device-list filter.
#[utoipa::path(post, path = "/api/v1/tags/add", tag = "tags", request_body = TagChange,
    responses((status = 200, body = BulkResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn add_tags(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Json(req): Json<TagChange>,
) -> ApiResult<Json<BulkResult>> {
    change(&state, &auth, &req, true).await
}

/// Remove tags from devices chosen by ids and/or a device-list filter.
#[utoipa::path(post, path = "/api/v1/tags/remove", tag = "tags", request_body = TagChange,
    responses((status = 200, body = BulkResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn remove_tags(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Json(req): Json<TagChange>,
) -> ApiResult<Json<BulkResult>> {
    change(&state, &auth, &req, false).await
}

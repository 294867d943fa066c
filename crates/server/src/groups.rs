//! Console routes for static device groups: create, list (with member counts), show, rename /
//! describe / re-parent, delete, list members, and bulk membership changes by device ids or by
//! a device-list filter.
//!
//! Groups form a tree. **Targeting a group means its direct members plus the members of all
//! its descendants**: the member list, the `members` count and the device list's `group`
//! filter all use that set. A group cannot be its own ancestor (409), and a group with child
//! groups cannot be deleted until they are deleted or moved (409), so a subtree never vanishes
//! by accident. Groups are addressed by id or by name in paths.

use axum::extract::State;
use axum::http::StatusCode;
use capstan_proto::api::{
    BulkResult, CreateGroupRequest, DeviceListQuery, DevicePage, DeviceSelector, GroupInfo,
    MembershipChange, UpdateGroupRequest,
};
use capstan_proto::error::ErrorBody;
use capstan_store::{
    DeviceSelection, GroupRow, GroupUpdate, GroupWithCounts, NewGroup, StoreError,
};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, DevicesRead, GroupsManage, secrets};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::{AppState, now_ms};

/// Most explicit device ids one bulk request may name.
pub const MAX_BULK_IDS: usize = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(list_members, add_members))
        .routes(routes!(remove_members))
}

fn info(g: &GroupWithCounts) -> GroupInfo {
    GroupInfo {
        id: g.group.id.clone(),
        name: g.group.name.clone(),
        description: g.group.description.clone(),
        parent_id: g.group.parent_id.clone(),
        kind: g.group.kind.clone(),
        rule: g
            .group
            .rule
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
        direct_members: g.direct_members.max(0) as u64,
        members: g.members.max(0) as u64,
        created_at_ms: g.group.created_at,
        updated_at_ms: g.group.updated_at,
    }
}

fn validate_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty()
        || name.trim() != name
        || name.chars().count() > 200
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::validation(
            "group name must be 1..=200 characters without control characters or surrounding spaces",
        ));
    }
    Ok(())
}

fn validate_description(d: &str) -> ApiResult<()> {
    if d.len() > 2000 || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::validation(
            "description must be at most 2000 bytes without control characters",
        ));
    }
    Ok(())
}

async fn find(state: &AppState, key: &str) -> ApiResult<GroupRow> {
    // No stored id or name holds control characters (and PostgreSQL refuses NUL in text).
    if key.is_empty() || key.len() > 200 * 4 || key.chars().any(char::is_control) {
        return Err(ApiError::not_found(format!("group {key:?}")));
    }
    state
        .store
        .group_by_id_or_name(key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {key}")))
}

/// The id of a parent group named by id or name; an unknown one is a 400.
async fn parent(state: &AppState, key: &str) -> ApiResult<String> {
    match find(state, key).await {
        Ok(g) => Ok(g.id),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(ApiError::validation(format!(
            "parent group {key:?} not found"
        ))),
        Err(e) => Err(e),
    }
}

fn store_error(e: StoreError, key: &str) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found(format!("group {key}")),
        StoreError::Invalid(m) => ApiError::validation(m),
        other => other.into(),
    }
}

/// The devices a bulk request names: explicit ids (at most [`MAX_BULK_IDS`], all known)
/// and/or a filter. Unknown ids are a 400 listing the first few; nothing is changed.
pub(crate) async fn select_devices(
    state: &AppState,
    device_ids: Option<&Vec<String>>,
    filter: Option<&DeviceSelector>,
) -> ApiResult<Vec<String>> {
    if device_ids.is_none() && filter.is_none() {
        return Err(ApiError::validation(
            "name the devices with device_ids, filter, or both",
        ));
    }
    if let Some(ids) = device_ids {
        if ids.len() > MAX_BULK_IDS {
            return Err(ApiError::validation(format!(
                "{} device ids in one request; at most {MAX_BULK_IDS} (use a filter for more)",
                ids.len()
            )));
        }
        if let Some(bad) = ids
            .iter()
            .find(|i| i.is_empty() || i.len() > 64 || i.chars().any(char::is_control))
        {
            return Err(ApiError::validation(format!("invalid device id {bad:?}")));
        }
    }
    let filter = match filter {
        Some(f) => Some(crate::devices::device_filter(state, f, now_ms()).await?),
        None => None,
    };
    let sel = DeviceSelection {
        ids: device_ids.cloned(),
        filter,
    };
    match state.store.resolve_devices(&sel).await {
        Ok(ids) => Ok(ids),
        Err(StoreError::UnknownDevices(unknown)) => {
            let first: Vec<&str> = unknown.iter().take(5).map(String::as_str).collect();
            let more = unknown.len().saturating_sub(first.len());
            Err(ApiError::validation(format!(
                "{} unknown device id(s): {}{}; nothing was changed",
                unknown.len(),
                first.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Every group with its member counts, by name.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups",
    responses((status = 200, body = Vec<GroupInfo>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn list_groups(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
) -> ApiResult<Json<Vec<GroupInfo>>> {
    let rows = state.store.list_groups().await?;
    Ok(Json(rows.iter().map(info).collect()))
}

/// Create a static group, optionally under a parent group.
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroupRequest,
    responses((status = 201, body = GroupInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn create_group(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Json(req): Json<CreateGroupRequest>,
) -> ApiResult<(StatusCode, Json<GroupInfo>)> {
    validate_name(&req.name)?;
    validate_description(&req.description)?;
    let parent_id = match &req.parent_id {
        Some(p) => Some(parent(&state, p).await?),
        None => None,
    };
    let g = NewGroup {
        id: secrets::new_id(),
        name: req.name.clone(),
        description: req.description.clone(),
        parent_id,
        now: now_ms(),
    };
    let audit = auth.operator.audit(
        "group.create",
        Some(&g.id),
        json!({"name": g.name, "parent_id": g.parent_id}),
    );
    state
        .store
        .create_group(&g, &audit)
        .await
        .map_err(|e| store_error(e, &g.id))?;
    let row = state
        .store
        .group_with_counts(&g.id)
        .await?
        .ok_or_else(|| ApiError::internal("group vanished after insert"))?;
    Ok((StatusCode::CREATED, Json(info(&row))))
}

/// One group (by id or name) with its member counts.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = String, Path, description = "Group id or name")),
    responses((status = 200, body = GroupInfo), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_group(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Path(key): Path<String>,
) -> ApiResult<Json<GroupInfo>> {
    let g = find(&state, &key).await?;
    let row = state
        .store
        .group_with_counts(&g.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {key}")))?;
    Ok(Json(info(&row)))
}

/// Rename, describe or re-parent a group (`parent_id: null` makes it top-level). A parent
/// that is the group itself or one of its descendants is refused (409).
#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = String, Path, description = "Group id or name")),
    request_body = UpdateGroupRequest,
    responses((status = 200, body = GroupInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn update_group(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Path(key): Path<String>,
    Json(req): Json<UpdateGroupRequest>,
) -> ApiResult<Json<GroupInfo>> {
    let g = find(&state, &key).await?;
    if let Some(n) = &req.name {
        validate_name(n)?;
    }
    if let Some(d) = &req.description {
        validate_description(d)?;
    }
    let parent_id = match &req.parent_id {
        Some(Some(p)) => Some(Some(parent(&state, p).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let update = GroupUpdate {
        name: req.name.clone(),
        description: req.description.clone(),
        parent_id,
    };
    let audit = auth.operator.audit(
        "group.update",
        Some(&g.id),
        json!({"before": {"name": g.name, "description": g.description, "parent_id": g.parent_id},
               "after": {"name": update.name, "description": update.description, "parent_id": update.parent_id}}),
    );
    state
        .store
        .update_group(&g.id, &update, now_ms(), &audit)
        .await
        .map_err(|e| store_error(e, &key))?;
    let row = state
        .store
        .group_with_counts(&g.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {key}")))?;
    Ok(Json(info(&row)))
}

/// Delete a group; its members leave it (noted in their timelines). Refused (409) while it
/// has child groups.
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = String, Path, description = "Group id or name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_group(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let g = find(&state, &key).await?;
    let audit = auth
        .operator
        .audit("group.delete", Some(&g.id), json!({"name": g.name}));
    state
        .store
        .delete_group(&g.id, now_ms(), &audit)
        .await
        .map_err(|e| store_error(e, &key))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The devices targeted by a group: its members and the members of all its descendants,
/// paged and sortable like the device list (the `group` parameter is ignored).
#[utoipa::path(get, path = "/api/v1/groups/{id}/members", tag = "groups",
    params(("id" = String, Path, description = "Group id or name"), DeviceListQuery),
    responses((status = 200, body = DevicePage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_members(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Path(key): Path<String>,
    Query(mut q): Query<DeviceListQuery>,
) -> ApiResult<Json<DevicePage>> {
    let g = find(&state, &key).await?;
    q.group = Some(g.id);
    crate::devices::device_page(&state, &q).await.map(Json)
}

async fn change_members(
    state: &AppState,
    auth: &Authz<GroupsManage>,
    key: &str,
    req: &MembershipChange,
    add: bool,
) -> ApiResult<Json<BulkResult>> {
    let g = find(state, key).await?;
    let ids = select_devices(state, req.device_ids.as_ref(), req.filter.as_ref()).await?;
    let action = if add {
        "group.members_add"
    } else {
        "group.members_remove"
    };
    let audit = auth.operator.audit(
        action,
        Some(&g.id),
        json!({"name": g.name, "filter": req.filter}),
    );
    let changed = state
        .store
        .change_group_members(&g.id, &ids, add, now_ms(), &audit)
        .await
        .map_err(|e| store_error(e, key))?;
    Ok(Json(BulkResult {
        matched: ids.len() as u64,
        changed,
    }))
}

/// Add devices to a static group, by ids (at most 10,000; an unknown id fails the whole
/// request) and/or by a device-list filter. Devices already members are left alone. Each
/// device that joins gets a `group_joined` timeline entry.
#[utoipa::path(post, path = "/api/v1/groups/{id}/members", tag = "groups",
    params(("id" = String, Path, description = "Group id or name")), request_body = MembershipChange,
    responses((status = 200, body = BulkResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn add_members(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Path(key): Path<String>,
    Json(req): Json<MembershipChange>,
) -> ApiResult<Json<BulkResult>> {
    change_members(&state, &auth, &key, &req, true).await
}

/// Remove devices from a static group (same selection as adding). Each device that leaves
/// gets a `group_left` timeline entry. Members of descendant groups stay where they are.
#[utoipa::path(post, path = "/api/v1/groups/{id}/members/remove", tag = "groups",
    params(("id" = String, Path, description = "Group id or name")), request_body = MembershipChange,
    responses((status = 200, body = BulkResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn remove_members(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Path(key): Path<String>,
    Json(req): Json<MembershipChange>,
) -> ApiResult<Json<BulkResult>> {
    change_members(&state, &auth, &key, &req, false).await
}

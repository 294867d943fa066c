//! Console routes for device groups: create, list (with member counts), show, rename /
//! describe / re-parent, delete, list members, and bulk membership changes by device ids or by
//! a device-list filter (static groups only). Dynamic groups carry a rule (validated against
//! the current custom fields and groups, every problem reported with its JSON pointer in
//! `details[]`; a rule closing a cycle between group rules is a 409); their members are
//! computed by [`crate::membership`]. A rule can be previewed before saving and explained for
//! any device afterwards; `rule-fields` lists the fields and operators validation accepts, so
//! a rule builder offers exactly those. A group or custom field another rule references cannot
//! be deleted.
//!
//! Groups form a tree. **Targeting a group means its direct members plus the members of all
//! its descendants**: the member list, the `members` count, the device list's `group` filter
//! and a rule's `{"group": …}` condition all use that set. A group cannot be its own ancestor
//! (409), and a group with child groups cannot be deleted until they are deleted or moved
//! (409), so a subtree never vanishes by accident. Because a rule referencing a group depends
//! on every group below it, a rule may not reference an ancestor of its own group, and a
//! re-parent that would close such a cycle is refused too (409). Groups are addressed by id or
//! by name in paths.
//!
//! The reference and cycle checks here give the error messages; the store repeats them inside
//! its write transaction, under the group tree lock, so concurrent requests (or replicas)
//! cannot race past them.

use axum::extract::State;
use axum::http::StatusCode;
use capstan_proto::api::{
    BulkResult, CreateGroupRequest, DeviceListQuery, DevicePage, DeviceSelector, ExplanationNode,
    GroupExplanation, GroupInfo, GroupPreview, GroupPreviewRequest, MembershipChange,
    RuleFieldInfo, RuleFieldType, UpdateGroupRequest,
};
use capstan_proto::error::{DetailedErrorBody, ErrorBody};
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
        .routes(routes!(preview_rule))
        .routes(routes!(explain_membership))
        .routes(routes!(rule_fields))
}

/// Validate a rule for `group` (its id when it exists already) against the current custom
/// fields and groups, and refuse one that would close a cycle between group rules and the
/// tree (409). `parent` is the group's parent when it is being set in the same request (or
/// created): `Some(None)` for top level.
async fn check_rule(
    state: &AppState,
    rule: &serde_json::Value,
    group: &str,
    exists: bool,
    parent: Option<Option<&str>>,
) -> ApiResult<capstan_core::rules::Rule> {
    let (ctx, _) = crate::membership::validation_context(state, exists.then_some(group)).await?;
    let rule = capstan_core::rules::validate(rule, &ctx)
        .map_err(|errors| crate::membership::rule_errors(&errors))?;
    let compiled = crate::membership::compiled(state).await?;
    refuse_cycle(
        &compiled,
        crate::membership::GraphChange {
            group,
            rule_refs: Some(capstan_core::rules::referenced_groups(&rule)),
            parent,
        },
    )?;
    Ok(rule)
}

fn refuse_cycle(
    compiled: &crate::membership::Compiled,
    change: crate::membership::GraphChange<'_>,
) -> ApiResult<()> {
    match crate::membership::cycle_with(compiled, change) {
        Some(cycle) => Err(ApiError::conflict(format!(
            "group rules would form a cycle: {cycle} (a group's members include those of its \
             descendants, so a rule cannot depend on a group above its own)"
        ))),
        None => Ok(()),
    }
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
    ApiError::from_store(e, format!("group {key}"))
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
    let dynamic = match (req.kind.as_deref(), &req.rule) {
        (None | Some("static"), None) => false,
        (None | Some("dynamic"), Some(_)) => true,
        (Some("dynamic"), None) => {
            return Err(ApiError::validation("a dynamic group needs a rule"));
        }
        (Some("static"), Some(_)) => {
            return Err(ApiError::validation(
                "a static group has no rule; use kind \"dynamic\"",
            ));
        }
        (Some(other), _) => {
            return Err(ApiError::validation(format!(
                "unknown group kind {other:?}; use static or dynamic"
            )));
        }
    };
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
    let rule = match (&req.rule, dynamic) {
        (Some(r), true) => {
            Some(check_rule(&state, r, &g.id, false, Some(g.parent_id.as_deref())).await?)
        }
        _ => None,
    };
    let audit = auth.operator.audit(
        "group.create",
        Some(&g.id),
        json!({"name": g.name, "parent_id": g.parent_id, "kind": if dynamic { "dynamic" } else { "static" },
               "rule": rule.as_ref().map(|r| r.to_json())}),
    );
    match &rule {
        Some(r) => state
            .store
            .create_dynamic_group(&g, &r.to_json().to_string(), &audit)
            .await
            .map_err(|e| store_error(e, &g.id))?,
        None => state
            .store
            .create_group(&g, &audit)
            .await
            .map_err(|e| store_error(e, &g.id))?,
    }
    state.membership.invalidate();
    if rule.is_some() {
        crate::membership::spawn_reevaluation(&state);
    }
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
    let new_parent = parent_id.as_ref().map(|p| p.as_deref());
    let rule = match &req.rule {
        Some(r) if g.kind == "dynamic" => {
            Some(check_rule(&state, r, &g.id, true, new_parent).await?)
        }
        Some(_) => {
            return Err(ApiError::conflict(format!(
                "group {:?} is static: only dynamic groups have a rule",
                g.name
            )));
        }
        None => {
            if new_parent.is_some() {
                let compiled = crate::membership::compiled(&state).await?;
                refuse_cycle(
                    &compiled,
                    crate::membership::GraphChange {
                        group: &g.id,
                        rule_refs: None,
                        parent: new_parent,
                    },
                )?;
            }
            None
        }
    };
    let update = GroupUpdate {
        name: req.name.clone(),
        description: req.description.clone(),
        parent_id,
    };
    let reparented = update.parent_id.is_some();
    let attributes = update.name.is_some() || update.description.is_some() || reparented;
    // The store checks each step on its own, so with a new parent and a new rule in one
    // request, store the rule first when that alone closes no cycle (the new rule may drop a
    // reference to the new parent), else move first (the new rule may reference the old one).
    let rule_first = match &rule {
        Some(r) if reparented => {
            let compiled = crate::membership::compiled(&state).await?;
            crate::membership::cycle_with(
                &compiled,
                crate::membership::GraphChange {
                    group: &g.id,
                    rule_refs: Some(capstan_core::rules::referenced_groups(r)),
                    parent: None,
                },
            )
            .is_none()
        }
        _ => true,
    };
    if let Some(rule) = rule.as_ref().filter(|_| rule_first) {
        store_rule(&state, &auth, &g, &key, rule).await?;
    }
    if attributes || rule.is_none() {
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
    }
    if let Some(rule) = rule.as_ref().filter(|_| !rule_first) {
        store_rule(&state, &auth, &g, &key, rule).await?;
    }
    // Names appear in timeline entries; the tree decides which groups count as ancestors.
    state.membership.invalidate();
    if rule.is_some() || reparented {
        crate::membership::spawn_reevaluation(&state);
    }
    let row = state
        .store
        .group_with_counts(&g.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {key}")))?;
    Ok(Json(info(&row)))
}

async fn store_rule(
    state: &AppState,
    auth: &Authz<GroupsManage>,
    g: &GroupRow,
    key: &str,
    rule: &capstan_core::rules::Rule,
) -> ApiResult<()> {
    let text = rule.to_json().to_string();
    let audit = auth.operator.audit(
        "group.rule_change",
        Some(&g.id),
        json!({"name": g.name,
               "before": g.rule.as_deref().and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok()),
               "after": rule.to_json()}),
    );
    state
        .store
        .set_group_rule(&g.id, &text, now_ms(), &audit)
        .await
        .map_err(|e| store_error(e, key))
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
    let compiled = crate::membership::compiled(&state).await?;
    let users = compiled.rules_using_group(&g.id);
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "group {:?} is used by the rules of group(s): {}; change those rules first",
            g.name,
            users.join(", ")
        )));
    }
    let deploy = state.store.group_deploy_references(&g.id).await?;
    if !deploy.is_empty() {
        return Err(ApiError::conflict(format!(
            "group {:?} is used by {}; remove those first",
            g.name,
            deploy.join(", ")
        )));
    }
    let audit = auth
        .operator
        .audit("group.delete", Some(&g.id), json!({"name": g.name}));
    state
        .store
        .delete_group(&g.id, now_ms(), &audit)
        .await
        .map_err(|e| store_error(e, &key))?;
    state.membership.invalidate();
    // Its members were members of its ancestors too, which rules may reference.
    if !compiled.set.is_empty() && g.parent_id.is_some() {
        crate::membership::spawn_reevaluation(&state);
    }
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
    if changed > 0 {
        crate::membership::devices_changed(state, &ids).await;
    }
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

/// Evaluate a rule over every device without saving it: how many match, and the first
/// `limit` of them by hostname. Validation errors as when saving a rule.
#[utoipa::path(post, path = "/api/v1/groups/preview", tag = "groups", request_body = GroupPreviewRequest,
    responses((status = 200, body = GroupPreview), (status = 400, body = DetailedErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn preview_rule(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Json(req): Json<GroupPreviewRequest>,
) -> ApiResult<Json<GroupPreview>> {
    let limit = req.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit must be 1..=1000"));
    }
    let (ctx, _) = crate::membership::validation_context(&state, None).await?;
    let rule = capstan_core::rules::validate(&req.rule, &ctx)
        .map_err(|errors| crate::membership::rule_errors(&errors))?
        .compile();
    let compiled = crate::membership::compiled(&state).await?;
    // Group conditions see the same fresh memberships a saved rule would.
    let rule = compiled.set.attach(rule);
    let now = now_ms();
    let mut after = String::new();
    let mut total = 0u64;
    let mut matched = Vec::new();
    loop {
        let ids = state
            .store
            .device_ids_after(&after, crate::membership::BATCH)
            .await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for rows in state.store.device_facts_batch(&ids).await? {
            let owned = crate::membership::facts_from_rows(&state, &compiled, rows, now);
            let hit = {
                let facts = owned.facts();
                compiled.set.evaluate_attached(&rule, &facts.index(), now)
            };
            if hit {
                total += 1;
                matched.push(crate::devices::summary(&state, &owned.device, now));
            }
        }
    }
    matched.sort_by(|a, b| {
        a.hostname
            .to_lowercase()
            .cmp(&b.hostname.to_lowercase())
            .then_with(|| a.id.cmp(&b.id))
    });
    matched.truncate(limit as usize);
    Ok(Json(GroupPreview {
        total,
        devices: matched,
    }))
}

fn rule_field_type(t: capstan_core::rules::FieldType) -> RuleFieldType {
    use capstan_core::rules::FieldType as F;
    match t {
        F::String => RuleFieldType::String,
        F::Address => RuleFieldType::Address,
        F::Number => RuleFieldType::Number,
        F::Bool => RuleFieldType::Boolean,
        F::Timestamp => RuleFieldType::Timestamp,
    }
}

/// The fields a rule may name, with the operators each accepts, as validation sees them now:
/// the built-in catalogue (lists of plain values also by their whole-list name) and every
/// defined custom field. A rule builder offers exactly these.
#[utoipa::path(get, path = "/api/v1/groups/rule-fields", tag = "groups",
    responses((status = 200, body = Vec<RuleFieldInfo>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rule_fields(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
) -> ApiResult<Json<Vec<RuleFieldInfo>>> {
    let (ctx, _) = crate::membership::validation_context(&state, None).await?;
    let fields = capstan_core::rules::rule_fields(&ctx.custom_fields)
        .into_iter()
        .map(|f| RuleFieldInfo {
            multi: f.name.contains("[]"),
            ty: rule_field_type(f.ty),
            operators: f.operators.iter().map(|o| o.as_str().to_string()).collect(),
            name: f.name,
            description: f.description,
            values: f.values,
            whole_list: f.whole_list,
            custom: f.custom,
        })
        .collect();
    Ok(Json(fields))
}

fn node(e: capstan_core::rules::Explanation) -> ExplanationNode {
    ExplanationNode {
        matched: e.matched,
        text: e.text,
        path: e.path,
        children: e.children.into_iter().map(node).collect(),
    }
}

/// Why a device is or is not a member of a group: for a dynamic group the rule's
/// explanation, condition by condition, evaluated now; for a static group whether the device
/// is a direct member or a member through a descendant group.
#[utoipa::path(get, path = "/api/v1/groups/{id}/explain/{device_id}", tag = "groups",
    params(("id" = String, Path, description = "Group id or name"), ("device_id" = String, Path)),
    responses((status = 200, body = GroupExplanation), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn explain_membership(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Path((key, device_id)): Path<(String, String)>,
) -> ApiResult<Json<GroupExplanation>> {
    let g = find(&state, &key).await?;
    if device_id.is_empty() || device_id.len() > 64 || device_id.chars().any(char::is_control) {
        return Err(ApiError::not_found(format!("device {device_id:?}")));
    }
    if state.store.device(&device_id).await?.is_none() {
        return Err(ApiError::not_found(format!("device {device_id}")));
    }
    let explanation = if g.kind == "dynamic" {
        crate::membership::explain(&state, &g.id, &device_id, now_ms())
            .await?
            .map(node)
            .ok_or_else(|| {
                ApiError::conflict(format!(
                    "the rule of group {:?} no longer validates; edit it first",
                    g.name
                ))
            })?
    } else {
        let groups = state.store.all_groups().await?;
        let parents: std::collections::BTreeMap<&str, Option<&str>> = groups
            .iter()
            .map(|r| (r.id.as_str(), r.parent_id.as_deref()))
            .collect();
        let names: std::collections::BTreeMap<&str, &str> = groups
            .iter()
            .map(|r| (r.id.as_str(), r.name.as_str()))
            .collect();
        let direct = state.store.device_groups(&device_id).await?;
        let via = direct.iter().find_map(|m| {
            // Walk up from each group the device is in; the tree has no cycles, but bound the
            // walk anyway.
            let mut cur = parents.get(m.id.as_str()).copied().flatten();
            for _ in 0..groups.len() {
                let c = cur?;
                if c == g.id {
                    return Some(m);
                }
                cur = parents.get(c).copied().flatten();
            }
            None
        });
        if direct.iter().any(|m| m.id == g.id) {
            ExplanationNode {
                matched: true,
                text: format!("the device is a direct member of group {}: true", g.name),
                path: String::new(),
                children: Vec::new(),
            }
        } else if let Some(m) = via {
            ExplanationNode {
                matched: true,
                text: format!(
                    "the device is a member of {}, a descendant group of {}: true",
                    names.get(m.id.as_str()).copied().unwrap_or(m.name.as_str()),
                    g.name
                ),
                path: String::new(),
                children: Vec::new(),
            }
        } else {
            ExplanationNode {
                matched: false,
                text: format!(
                    "the device is not a member of group {} or any of its descendant groups: false",
                    g.name
                ),
                path: String::new(),
                children: Vec::new(),
            }
        }
    };
    Ok(Json(GroupExplanation {
        group_id: g.id,
        device_id,
        kind: g.kind,
        member: explanation.matched,
        explanation,
    }))
}

/// The groups `direct` names plus all their ancestors, given every group's parent. The walk is
/// bounded: the tree has no cycles, but stored data is never trusted blindly.
pub(crate) fn with_ancestors<I, S>(
    parents: &std::collections::HashMap<String, Option<String>>,
    direct: I,
) -> std::collections::HashSet<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut mine = std::collections::HashSet::new();
    for g in direct {
        let mut cur = Some(g.into());
        for _ in 0..=parents.len() {
            let Some(id) = cur else { break };
            if !mine.insert(id.clone()) {
                break;
            }
            cur = parents.get(&id).cloned().flatten();
        }
    }
    mine
}

//! Console routes for devices: the paged list (filtered in SQL by hostname, status, tag, group
//! including descendants, custom field value, operating system and hardware model), the fleet
//! summary (counters and OS / hardware-model distributions, grouped in SQL), the full detail
//! with the latest inventory, custom fields and groups, the timeline (inventory history and
//! lifecycle events, newest first), refresh, revoke, delete.

use axum::extract::State;
use axum::http::StatusCode;
use capstan_proto::api::{
    DeviceDetail, DeviceFleetSummary, DeviceGroupRef, DeviceListQuery, DevicePage, DeviceSelector,
    DeviceSummary, Distribution, RefreshResponse, TimelineEntry, TimelinePage, TimelineQuery,
    ValueCount,
};
use capstan_proto::error::ErrorBody;
use capstan_store::{DeviceFilter, DeviceRow, DeviceSort, StoreError};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, DevicesAction, DevicesDelete, DevicesRead};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices))
        .routes(routes!(fleet_summary))
        .routes(routes!(get_device, delete_device))
        .routes(routes!(revoke_device))
        .routes(routes!(refresh_inventory))
        .routes(routes!(timeline))
}

/// A device counts as online when it checked in within three check-in intervals, or holds a
/// wake-up connection right now.
pub(crate) fn online_cutoff(state: &AppState, now: i64) -> i64 {
    now - 3 * state.config.checkin_interval_secs as i64 * 1000
}

pub(crate) fn summary(state: &AppState, d: &DeviceRow, now: i64) -> DeviceSummary {
    let online = d.revoked_at.is_none()
        && (d
            .last_seen_at
            .is_some_and(|t| t >= online_cutoff(state, now))
            || state.wake.is_waiting(&d.id));
    DeviceSummary {
        id: d.id.clone(),
        hostname: d.hostname.clone(),
        online,
        last_seen_at_ms: d.last_seen_at,
        enrolled_at_ms: d.enrolled_at,
        os_family: d.os_family.clone(),
        os_name: d.os_name.clone(),
        os_version: d.os_version.clone(),
        agent_version: d.agent_version.clone(),
        tags: d.tags(),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("device {id}"))
}

/// The filter part of a device query as a store filter (no sort or paging): a group given by
/// id or name becomes its id, `field=name=value` the canonical stored value. An unknown group
/// or field is a 400, not an empty page, so a typo is noticed.
pub(crate) async fn device_filter(
    state: &AppState,
    sel: &DeviceSelector,
    now: i64,
) -> ApiResult<DeviceFilter> {
    let online = match sel.status.as_deref() {
        None | Some("") => None,
        Some("online") => Some(true),
        Some("offline") => Some(false),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                capstan_proto::error::ErrorCode::InvalidQuery,
                format!("unknown status {other:?}; use online or offline"),
            ));
        }
    };
    for (name, value) in [
        ("search", &sel.search),
        ("tag", &sel.tag),
        ("group", &sel.group),
        ("field", &sel.field),
    ] {
        if value.as_ref().is_some_and(|s| s.len() > 255) {
            return Err(ApiError::validation(format!(
                "{name} is longer than 255 bytes"
            )));
        }
        if name != "search"
            && value
                .as_ref()
                .is_some_and(|s| s.chars().any(char::is_control))
        {
            return Err(ApiError::validation(format!(
                "{name} contains control characters"
            )));
        }
    }
    let group_id = match sel.group.as_deref().filter(|g| !g.is_empty()) {
        None => None,
        Some(key) => Some(
            state
                .store
                .group_by_id_or_name(key)
                .await?
                .ok_or_else(|| ApiError::validation(format!("unknown group {key:?}")))?
                .id,
        ),
    };
    let field = match sel.field.as_deref().filter(|f| !f.is_empty()) {
        None => None,
        Some(expr) => Some(crate::fields::field_match(state, expr).await?),
    };
    Ok(DeviceFilter {
        search: sel.search.clone(),
        online,
        online_cutoff: online_cutoff(state, now),
        group_id,
        tag: sel.tag.clone().filter(|t| !t.is_empty()),
        field,
        ..Default::default()
    })
}

/// List devices, paged, filtered and sorted on the server.
///
/// `group` selects the members of a group *and of all its descendant groups* (the same set a
/// job targeting the group reaches); `tag` is an exact tag; `field=name=value` matches the
/// effective custom field value (a device without its own value matches the default); `os`
/// is the exact OS name or "name version", `model` the exact hardware model — the values
/// `GET /api/v1/devices/summary` lists.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceListQuery),
    responses((status = 200, body = DevicePage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
async fn list_devices(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Query(q): Query<DeviceListQuery>,
) -> ApiResult<Json<DevicePage>> {
    device_page(&state, &q).await.map(Json)
}

/// One page of the device list for `q` (shared with a group's member list).
pub(crate) async fn device_page(state: &AppState, q: &DeviceListQuery) -> ApiResult<DevicePage> {
    let now = now_ms();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            capstan_proto::error::ErrorCode::InvalidQuery,
            "limit must be between 1 and 1000",
        ));
    }
    let offset = q.offset.unwrap_or(0).min(i64::MAX as u64);
    let (descending, key) = match q.sort.as_deref() {
        None => (false, "hostname"),
        Some(s) => match s.strip_prefix('-') {
            Some(k) => (true, k),
            None => (false, s),
        },
    };
    let sort = match key {
        "hostname" => DeviceSort::Hostname,
        "last_seen" => DeviceSort::LastSeen,
        "enrolled" => DeviceSort::Enrolled,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                capstan_proto::error::ErrorCode::InvalidQuery,
                format!(
                    "unknown sort key {other:?}; use hostname, last_seen or enrolled (prefix - for descending)"
                ),
            ));
        }
    };
    let sel = DeviceSelector {
        search: q.search.clone(),
        status: q.status.clone(),
        tag: q.tag.clone(),
        group: q.group.clone(),
        field: q.field.clone(),
    };
    for (name, value) in [("os", &q.os), ("model", &q.model)] {
        if value.as_ref().is_some_and(|s| s.len() > 512) {
            return Err(ApiError::validation(format!(
                "{name} is longer than 512 bytes"
            )));
        }
    }
    let filter = DeviceFilter {
        sort,
        descending,
        offset: offset as i64,
        limit: limit as i64,
        os: q.os.clone().filter(|s| !s.is_empty()),
        model: q.model.clone().filter(|s| !s.is_empty()),
        ..device_filter(state, &sel, now).await?
    };
    let (rows, total) = state.store.list_devices(&filter).await?;
    Ok(DevicePage {
        items: rows.iter().map(|d| summary(state, d, now)).collect(),
        total: total.max(0) as u64,
        offset,
        limit,
    })
}

/// Values kept per distribution of the summary; the rest are counted as `other`.
const SUMMARY_TOP: i64 = 20;

/// Counters (total, online, offline) and the OS and hardware-model distributions of all
/// devices, each value usable as the device list's `os` / `model` filter. Online has the
/// meaning of the list's `status=online`: checked in within three check-in intervals.
#[utoipa::path(get, path = "/api/v1/devices/summary", tag = "devices",
    responses((status = 200, body = DeviceFleetSummary)), security(("bearer" = [])))]
async fn fleet_summary(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
) -> ApiResult<Json<DeviceFleetSummary>> {
    let s = state
        .store
        .fleet_summary(online_cutoff(&state, now_ms()), SUMMARY_TOP)
        .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let dist = |d: capstan_store::DistributionRows| Distribution {
        top: d
            .top
            .into_iter()
            .map(|r| ValueCount {
                value: r.value,
                count: count(r.count),
            })
            .collect(),
        other: count(d.other),
        unknown: count(d.unknown),
    };
    Ok(Json(DeviceFleetSummary {
        total: count(s.total),
        online: count(s.online),
        offline: count(s.total - s.online),
        os: dist(s.os),
        model: dist(s.model),
    }))
}

/// One device with its full latest inventory, last performance snapshot, effective custom
/// field values and the groups it is a direct member of.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = DeviceDetail), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_device(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceDetail>> {
    let d = state
        .store
        .device(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    // The document, its digest and its time come from one read of the inventory row, so they
    // always agree (the device row read above may predate an upload that landed meanwhile).
    let (inventory, inventory_digest, inventory_updated_at) =
        match state.store.inventory(&id).await? {
            Some(row) => (
                Some(serde_json::from_str(&row.document).map_err(|e| {
                    ApiError::internal(format!("device {id}: stored inventory: {e}"))
                })?),
                Some(row.digest),
                Some(row.updated_at),
            ),
            None => (None, None, None),
        };
    let performance = match &d.performance {
        Some(p) => serde_json::from_str(p).ok(),
        None => None,
    };
    let custom_fields = crate::fields::effective_values(&state, &id).await?;
    let groups = state
        .store
        .device_groups(&id)
        .await?
        .into_iter()
        .map(|g| DeviceGroupRef {
            id: g.id,
            name: g.name,
            source: g.source,
        })
        .collect();
    Ok(Json(DeviceDetail {
        summary: summary(&state, &d, now_ms()),
        identity_source: d.identity_source.clone(),
        boot_id: d.boot_id.clone(),
        inventory_updated_at_ms: inventory_updated_at,
        inventory_digest,
        inventory,
        performance,
        custom_fields,
        groups,
    }))
}

/// Delete a device and all its data. Its credential stops working immediately; the machine
/// can enroll again later as a new device.
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_device(
    State(state): State<AppState>,
    auth: Authz<DevicesDelete>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let d = state
        .store
        .device(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let audit = auth
        .operator
        .audit("device.delete", Some(&id), json!({"hostname": d.hostname}));
    state
        .store
        .delete_device(&id, &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_found(&id),
            other => other.into(),
        })?;
    state.device_auth.forget(&id);
    state.wake.remove(&id);
    state.publish_wake(&id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a device's credential but keep its record and history.
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "devices", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn revoke_device(
    State(state): State<AppState>,
    auth: Authz<DevicesDelete>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let audit = auth.operator.audit("device.revoke", Some(&id), json!({}));
    state
        .store
        .revoke_device(&id, now_ms(), &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_found(&id),
            other => other.into(),
        })?;
    state.device_auth.forget(&id);
    // End its long-poll so the agent learns at once (other replicas forget its credential
    // when the relayed wake-up arrives).
    state.wake_device(&id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask the agent for a fresh inventory now. An online agent is woken within a second; an
/// offline one collects when it next checks in.
#[utoipa::path(post, path = "/api/v1/devices/{id}/refresh-inventory", tag = "devices", params(("id" = String, Path)),
    responses((status = 202, body = RefreshResponse), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn refresh_inventory(
    State(state): State<AppState>,
    auth: Authz<DevicesAction>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RefreshResponse>)> {
    let audit = auth
        .operator
        .audit("device.refresh_inventory", Some(&id), json!({}));
    state
        .store
        .request_inventory_refresh(&id, now_ms(), &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_found(&id),
            other => other.into(),
        })?;
    let delivered_now = state.wake_device(&id).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(RefreshResponse { delivered_now }),
    ))
}

/// The device timeline, newest first: field-level inventory changes and lifecycle events.
#[utoipa::path(get, path = "/api/v1/devices/{id}/timeline", tag = "devices", params(("id" = String, Path), TimelineQuery),
    responses((status = 200, body = TimelinePage), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn timeline(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<Json<TimelinePage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            capstan_proto::error::ErrorCode::InvalidQuery,
            "limit must be between 1 and 500",
        ));
    }
    if q.kind.as_ref().is_some_and(|k| k.len() > 64) {
        return Err(ApiError::validation("kind is longer than 64 bytes"));
    }
    if state.store.device(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    // Fetch one extra row to know whether an older page exists.
    let mut rows = state
        .store
        .timeline(&id, q.before, q.kind.as_deref(), limit as i64 + 1)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let parse = |v: &Option<String>| v.as_deref().and_then(|s| serde_json::from_str(s).ok());
    let items: Vec<TimelineEntry> = rows
        .iter()
        .map(|r| TimelineEntry {
            id: r.id,
            at_ms: r.at,
            kind: r.kind.clone(),
            category: r.category.clone(),
            field: r.field.clone(),
            change: r.change.clone(),
            old_value: parse(&r.old_value),
            new_value: parse(&r.new_value),
            summary: r.summary.clone(),
        })
        .collect();
    let next_before = if more {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(TimelinePage { items, next_before }))
}

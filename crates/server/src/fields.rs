//! Custom fields: definitions (`/api/v1/custom-fields`) and per-device values
//! (`/api/v1/devices/{id}/custom-fields/{name}`). Every value is validated against its field's
//! type here and stored as canonical JSON text — strings and enum values as JSON strings,
//! numbers as finite f64, booleans, dates as Unix milliseconds — so the store compares values
//! as text and the device-list filter `field=name=value` is an indexed exact match. A wrong
//! type is a 400 `validation_failed` naming the field and the expected type; nothing is stored.
//! A field that a dynamic group's rule reads cannot be deleted (409); the store decides that
//! inside the delete's transaction under the group tree lock, which rule saves also take.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use capstan_proto::api::{
    CreateCustomFieldRequest, CustomFieldInfo, FieldType, SetCustomFieldValue,
    UpdateCustomFieldRequest,
};
use capstan_proto::error::ErrorBody;
use capstan_store::{FieldMatch, FieldRow, StoreError};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, DevicesRead, GroupsManage};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_fields, create_field))
        .routes(routes!(update_field, delete_field))
        .routes(routes!(set_value, unset_value))
}

/// Field names are identifiers: `[a-z][a-z0-9_]{0,62}`.
fn validate_name(name: &str) -> ApiResult<()> {
    let mut chars = name.chars();
    let ok = name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "invalid field name {name:?}: a lowercase letter, then up to 62 of a-z, 0-9 and _"
        )))
    }
}

fn field_type(row: &FieldRow) -> ApiResult<FieldType> {
    FieldType::parse(&row.field_type).ok_or_else(|| {
        ApiError::internal(format!(
            "custom field {} has unknown type {:?}",
            row.name, row.field_type
        ))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// An RFC 3339 date (`2026-01-31`, midnight UTC) or date-time (`2026-01-31T12:00:00Z`,
/// `…T12:00:00.5+02:00`) as Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    let day_ms = days_from_civil(y, m, d) * 86_400_000;
    if b.len() == 10 {
        return Some(day_ms);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let ms: String = r[..n].chars().chain("000".chars()).take(3).collect();
        frac_ms = digits(&ms)?;
        rest = &r[n..];
    }
    let offset_ms = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return None;
            }
            let (oh, om) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = (oh * 60 + om) * 60_000;
            if rb[0] == b'+' { off } else { -off }
        }
    };
    Some(day_ms + ((hh * 60 + mm) * 60 + ss) * 1000 + frac_ms - offset_ms)
}

/// Validate `value` against a field's type; the canonical JSON text to store.
pub fn canonical(
    name: &str,
    ty: FieldType,
    enum_values: &[String],
    value: &Value,
) -> ApiResult<String> {
    let wrong = |detail: String| {
        ApiError::validation(format!(
            "custom field {name} expects a {}: {detail}",
            ty.as_str()
        ))
    };
    let canon = match (ty, value) {
        (FieldType::String, Value::String(s)) => {
            if s.len() > 4096 || s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return Err(wrong(
                    "at most 4096 bytes without control characters".into(),
                ));
            }
            value.clone()
        }
        (FieldType::Number, Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Value::from(f),
            _ => return Err(wrong(format!("{n} is not a finite number"))),
        },
        (FieldType::Boolean, Value::Bool(_)) => value.clone(),
        (FieldType::Date, Value::String(s)) => match parse_rfc3339_ms(s) {
            Some(ms) => Value::from(ms),
            None => {
                return Err(wrong(format!(
                    "{s:?} is not an RFC 3339 date (2026-01-31) or date-time (2026-01-31T12:00:00Z)"
                )));
            }
        },
        (FieldType::Date, Value::Number(n)) => match n.as_i64() {
            Some(ms) => Value::from(ms),
            None => return Err(wrong(format!("{n} is not whole Unix milliseconds"))),
        },
        (FieldType::Enum, Value::String(s)) => {
            if !enum_values.contains(s) {
                return Err(wrong(format!(
                    "{s:?} is not one of {}",
                    enum_values.join(", ")
                )));
            }
            value.clone()
        }
        (_, other) => return Err(wrong(format!("got {other}"))),
    };
    Ok(canon.to_string())
}

/// Read a filter value written as text (`42`, `true`, `2026-01-31`, `gold`) as the field's type.
fn value_from_text(ty: FieldType, text: &str) -> Value {
    match ty {
        FieldType::String | FieldType::Enum => Value::String(text.to_string()),
        FieldType::Number => text
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or_else(|| Value::String(text.to_string())),
        FieldType::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        FieldType::Date => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_string())),
    }
}

/// `name=value` of the device filter as a store match.
pub(crate) async fn field_match(state: &AppState, expr: &str) -> ApiResult<FieldMatch> {
    let (name, text) = expr
        .split_once('=')
        .ok_or_else(|| ApiError::validation(format!("field filter {expr:?} must be name=value")))?;
    let row = match find_field(state, name).await {
        Ok(row) => row,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            return Err(ApiError::validation(format!(
                "unknown custom field {name:?}"
            )));
        }
        Err(e) => return Err(e),
    };
    let ty = field_type(&row)?;
    let value_json = canonical(name, ty, &row.enum_values(), &value_from_text(ty, text))?;
    Ok(FieldMatch {
        name: name.to_string(),
        matches_default: row.default_value.as_deref() == Some(value_json.as_str()),
        value_json,
    })
}

/// A device's effective values: its own, else the field's default.
pub(crate) async fn effective_values(
    state: &AppState,
    device_id: &str,
) -> ApiResult<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for f in state.store.fields().await? {
        if let Some(d) = f
            .default_value
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
        {
            out.insert(f.name, d);
        }
    }
    for v in state.store.device_field_values(device_id).await? {
        if let Ok(value) = serde_json::from_str(&v.value) {
            out.insert(v.field_name, value);
        }
    }
    Ok(out)
}

fn info(r: &FieldRow) -> ApiResult<CustomFieldInfo> {
    Ok(CustomFieldInfo {
        name: r.name.clone(),
        field_type: field_type(r)?,
        enum_values: r.enum_values(),
        default: r
            .default_value
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok()),
        required: r.required,
        description: r.description.clone(),
        created_at_ms: r.created_at,
        updated_at_ms: r.updated_at,
    })
}

/// Check a whole definition; the canonical default.
fn check_definition(
    name: &str,
    ty: FieldType,
    enum_values: &[String],
    default: Option<&Value>,
    required: bool,
    description: &str,
) -> ApiResult<Option<String>> {
    if ty == FieldType::Enum {
        if enum_values.is_empty() || enum_values.len() > 100 {
            return Err(ApiError::validation(
                "an enum field needs 1..=100 enum_values",
            ));
        }
        for (i, v) in enum_values.iter().enumerate() {
            if v.is_empty() || v.len() > 200 || v.chars().any(char::is_control) {
                return Err(ApiError::validation(format!(
                    "enum value {v:?}: 1..=200 bytes without control characters"
                )));
            }
            if enum_values[..i].contains(v) {
                return Err(ApiError::validation(format!(
                    "enum value {v:?} is listed twice"
                )));
            }
        }
    } else if !enum_values.is_empty() {
        return Err(ApiError::validation(
            "enum_values are only allowed for enum fields",
        ));
    }
    if description.len() > 1000 {
        return Err(ApiError::validation(
            "description is longer than 1000 bytes",
        ));
    }
    let default = default
        .map(|d| canonical(name, ty, enum_values, d))
        .transpose()?;
    if required && default.is_none() {
        return Err(ApiError::validation(format!(
            "custom field {name} is required, so it needs a default"
        )));
    }
    Ok(default)
}

fn field_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("custom field {name:?}"))
}

/// A field named in a path; a name that cannot exist is simply not found.
async fn find_field(state: &AppState, name: &str) -> ApiResult<FieldRow> {
    if validate_name(name).is_err() {
        return Err(field_not_found(name));
    }
    state
        .store
        .field(name)
        .await?
        .ok_or_else(|| field_not_found(name))
}

/// Custom field definitions, by name.
#[utoipa::path(get, path = "/api/v1/custom-fields", tag = "custom-fields",
    responses((status = 200, body = Vec<CustomFieldInfo>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn list_fields(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
) -> ApiResult<Json<Vec<CustomFieldInfo>>> {
    let rows = state.store.fields().await?;
    Ok(Json(rows.iter().map(info).collect::<ApiResult<_>>()?))
}

/// Define a custom field. The default is validated against the type; a required field must
/// have one.
#[utoipa::path(post, path = "/api/v1/custom-fields", tag = "custom-fields", request_body = CreateCustomFieldRequest,
    responses((status = 201, body = CustomFieldInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn create_field(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Json(req): Json<CreateCustomFieldRequest>,
) -> ApiResult<(StatusCode, Json<CustomFieldInfo>)> {
    validate_name(&req.name)?;
    let default = check_definition(
        &req.name,
        req.field_type,
        &req.enum_values,
        req.default.as_ref(),
        req.required,
        &req.description,
    )?;
    let now = now_ms();
    let row = FieldRow {
        name: req.name.clone(),
        field_type: req.field_type.as_str().to_string(),
        enum_values: json!(req.enum_values).to_string(),
        default_value: default,
        required: req.required,
        description: req.description.clone(),
        created_at: now,
        updated_at: now,
    };
    let audit = auth.operator.audit(
        "custom_field.create",
        Some(&req.name),
        json!({"type": row.field_type, "enum_values": req.enum_values, "default": req.default, "required": req.required}),
    );
    state.store.create_field(&row, &audit).await?;
    state.membership.invalidate();
    Ok((StatusCode::CREATED, Json(info(&row)?)))
}

/// Change a definition. The type cannot change while devices have values, and an enum cannot
/// drop a value devices have (409).
#[utoipa::path(patch, path = "/api/v1/custom-fields/{name}", tag = "custom-fields", params(("name" = String, Path)),
    request_body = UpdateCustomFieldRequest,
    responses((status = 200, body = CustomFieldInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn update_field(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Path(name): Path<String>,
    Json(req): Json<UpdateCustomFieldRequest>,
) -> ApiResult<Json<CustomFieldInfo>> {
    let old = find_field(&state, &name).await?;
    let ty = req.field_type.unwrap_or(field_type(&old)?);
    let enum_values = match (&req.enum_values, ty) {
        (Some(v), _) => v.clone(),
        (None, FieldType::Enum) => old.enum_values(),
        (None, _) => Vec::new(),
    };
    let default: Option<Value> = match &req.default {
        Some(d) => d.clone(),
        None => old
            .default_value
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok()),
    };
    let required = req.required.unwrap_or(old.required);
    let description = req.description.clone().unwrap_or(old.description.clone());
    let default = check_definition(
        &name,
        ty,
        &enum_values,
        default.as_ref(),
        required,
        &description,
    )?;
    let allowed: Option<Vec<String>> = (ty == FieldType::Enum).then(|| {
        enum_values
            .iter()
            .map(|v| Value::String(v.clone()).to_string())
            .collect()
    });
    let row = FieldRow {
        name: name.clone(),
        field_type: ty.as_str().to_string(),
        enum_values: json!(enum_values).to_string(),
        default_value: default,
        required,
        description,
        created_at: old.created_at,
        updated_at: now_ms(),
    };
    let audit = auth.operator.audit(
        "custom_field.update",
        Some(&name),
        json!({"before": info(&old)?, "after": info(&row)?}),
    );
    state
        .store
        .update_field(&row, allowed.as_deref(), &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => field_not_found(&name),
            other => other.into(),
        })?;
    // A new type or default can change what rules see for every device.
    state.membership.invalidate();
    crate::membership::spawn_reevaluation(&state);
    Ok(Json(info(&row)?))
}

/// Delete a definition and every device's value of it.
#[utoipa::path(delete, path = "/api/v1/custom-fields/{name}", tag = "custom-fields", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_field(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let path = format!("custom.{name}");
    let compiled = crate::membership::compiled(&state).await?;
    let users = compiled.rules_using_field(&path);
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "custom field {name:?} is used by the rules of group(s): {}; change those rules first",
            users.join(", ")
        )));
    }
    let audit = auth
        .operator
        .audit("custom_field.delete", Some(&name), json!({}));
    state
        .store
        .delete_field(&name, &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => field_not_found(&name),
            other => other.into(),
        })?;
    state.membership.invalidate();
    Ok(StatusCode::NO_CONTENT)
}

async fn device_exists(state: &AppState, id: &str) -> ApiResult<()> {
    if id.chars().any(char::is_control) {
        return Err(ApiError::not_found(format!("device {id:?}")));
    }
    match state.store.device(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("device {id}"))),
    }
}

/// Set a device's value of a custom field, validated against the field's type (dates: RFC
/// 3339 date or date-time, or Unix milliseconds). Recorded in the device timeline.
#[utoipa::path(put, path = "/api/v1/devices/{id}/custom-fields/{name}", tag = "custom-fields",
    params(("id" = String, Path), ("name" = String, Path)), request_body = SetCustomFieldValue,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_value(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Path((id, name)): Path<(String, String)>,
    Json(req): Json<SetCustomFieldValue>,
) -> ApiResult<StatusCode> {
    device_exists(&state, &id).await?;
    let def = find_field(&state, &name).await?;
    let ty = field_type(&def)?;
    let value = canonical(&name, ty, &def.enum_values(), &req.value)?;
    let audit = auth.operator.audit(
        "device.custom_field_set",
        Some(&id),
        json!({"field": name, "value": serde_json::from_str::<Value>(&value).unwrap_or(Value::Null)}),
    );
    state
        .store
        .set_field_value(&id, &name, ty.as_str(), &value, now_ms(), &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::not_found(format!("device {id} or custom field {name}"))
            }
            other => other.into(),
        })?;
    crate::membership::device_changed(&state, &id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a device's own value, so the field's default applies again.
#[utoipa::path(delete, path = "/api/v1/devices/{id}/custom-fields/{name}", tag = "custom-fields",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn unset_value(
    State(state): State<AppState>,
    auth: Authz<GroupsManage>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    device_exists(&state, &id).await?;
    find_field(&state, &name).await?;
    let audit = auth.operator.audit(
        "device.custom_field_unset",
        Some(&id),
        json!({"field": name}),
    );
    state
        .store
        .unset_field_value(&id, &name, now_ms(), &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!("device {id}")),
            other => other.into(),
        })?;
    crate::membership::device_changed(&state, &id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates_and_date_times() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01", Some(0)),
            ("2026-01-31", Some(1_769_817_600_000)),
            ("2024-02-29", Some(1_709_164_800_000)),
            ("2023-02-29", None),
            ("2026-13-01", None),
            ("2026-01-31T12:00:00Z", Some(1_769_860_800_000)),
            ("2026-01-31T12:00:00.5Z", Some(1_769_860_800_500)),
            ("2026-01-31T14:00:00+02:00", Some(1_769_860_800_000)),
            ("2026-01-31T12:00:00", None),
            ("2026-01-31T25:00:00Z", None),
            ("1969-12-31", Some(-86_400_000)),
            ("31.01.2026", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339_ms(text), *want, "{text}");
        }
    }

    #[test]
    fn values_are_checked_against_the_type() {
        let e = vec!["gold".to_string(), "silver".to_string()];
        let ok: &[(FieldType, Value, &str)] = &[
            (FieldType::String, json!("x"), "\"x\""),
            (FieldType::Number, json!(42), "42.0"),
            (FieldType::Number, json!(-0.5), "-0.5"),
            (FieldType::Boolean, json!(false), "false"),
            (FieldType::Date, json!("1970-01-02"), "86400000"),
            (FieldType::Date, json!(5), "5"),
            (FieldType::Enum, json!("gold"), "\"gold\""),
        ];
        for (ty, v, want) in ok {
            assert_eq!(canonical("f", *ty, &e, v).unwrap(), *want, "{ty:?} {v}");
        }
        let bad: &[(FieldType, Value)] = &[
            (FieldType::String, json!(1)),
            (FieldType::Number, json!("1")),
            (FieldType::Boolean, json!("true")),
            (FieldType::Date, json!("yesterday")),
            (FieldType::Date, json!(1.5)),
            (FieldType::Enum, json!("bronze")),
            (FieldType::Enum, json!(null)),
        ];
        for (ty, v) in bad {
            let err = canonical("rack", *ty, &e, v).unwrap_err();
            assert!(
                err.message.contains("rack") && err.message.contains(ty.as_str()),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn field_names_are_identifiers() {
        for ok in ["a", "rack_u", "x9", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "9a", "_a", "Rack", "rack-u", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}

//! Types of the console REST API under `/api/v1`, shared by the server (which documents them in
//! its OpenAPI spec) and the typed client used by the CLI, tests and the load generator.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::inventory::{InventoryDocument, PerformanceSnapshot};

/// Built-in roles. Each maps to a fixed set of permissions (see the server's `auth` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for the CLI; the console receives the same value as an HttpOnly cookie.
    pub token: String,
    /// Unix milliseconds.
    pub expires_at_ms: i64,
    pub user: UserInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub created_at_ms: i64,
    /// A disabled user cannot log in, and its API tokens stop working until it is enabled.
    #[serde(default)]
    pub disabled: bool,
}

/// Change the caller's own password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// 12 to 1024 characters.
    pub new_password: String,
}

/// An administrator's change to another operator; omitted fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// A new password (12 to 1024 characters), set without knowing the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiTokenRequest {
    pub name: String,
    /// Lifetime in seconds; omitted = never expires.
    pub expires_in_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiTokenInfo {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiToken {
    #[serde(flatten)]
    pub info: ApiTokenInfo,
    /// The secret, shown only in this response.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentTokenRequest {
    /// Free-form description ("Berlin office laptops").
    pub name: String,
    /// Lifetime in seconds; omitted = 7 days. At most one year.
    pub expires_in_secs: Option<u64>,
    /// Maximum number of enrollments; omitted = unlimited until expiry.
    pub max_uses: Option<u32>,
    /// Tags given to every device enrolled with this token.
    #[serde(default)]
    pub default_tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentTokenInfo {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub created_by: String,
    pub expires_at_ms: i64,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub default_tags: Vec<String>,
    pub revoked: bool,
    /// `active`, `expired`, `exhausted` or `revoked`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedEnrollmentToken {
    #[serde(flatten)]
    pub info: EnrollmentTokenInfo,
    /// The secret, shown only in this response.
    pub token: String,
    /// A ready-to-paste install command for Linux nodes.
    pub install_command: String,
}

/// One row of the device list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceSummary {
    pub id: String,
    pub hostname: String,
    pub online: bool,
    /// Unix milliseconds of the last check-in.
    pub last_seen_at_ms: Option<i64>,
    pub enrolled_at_ms: i64,
    pub os_family: String,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub agent_version: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub summary: DeviceSummary,
    pub identity_source: String,
    pub boot_id: Option<String>,
    pub inventory_updated_at_ms: Option<i64>,
    pub inventory_digest: Option<String>,
    /// The full, latest inventory document (absent until the first report).
    pub inventory: Option<InventoryDocument>,
    /// The performance snapshot of the last check-in.
    pub performance: Option<PerformanceSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DevicePage {
    pub items: Vec<DeviceSummary>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceListQuery {
    /// Case-insensitive substring of the hostname.
    pub search: Option<String>,
    /// `online` or `offline`.
    pub status: Option<String>,
    /// Sort key: `hostname` (default), `last_seen`, `enrolled`. Prefix `-` for descending.
    pub sort: Option<String>,
    pub offset: Option<u64>,
    /// Page size, 1..=1000, default 100.
    pub limit: Option<u64>,
}

/// One entry of a device's timeline (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    /// Monotonic id; pass the smallest id you have as `before` to page back.
    pub id: i64,
    pub at_ms: i64,
    /// `inventory_change`, `enrolled`, `reenrolled`, `refresh_requested`, …
    pub kind: String,
    /// For inventory changes: the section (`software`, `hardware`, `os`, `network`, …).
    pub category: Option<String>,
    /// For inventory changes: the field path, e.g. `software/dpkg/nginx` or `hardware.memory_bytes`.
    pub field: Option<String>,
    /// `added`, `removed` or `changed` for inventory changes.
    pub change: Option<String>,
    pub old_value: Option<serde_json::Value>,
    pub new_value: Option<serde_json::Value>,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelinePage {
    pub items: Vec<TimelineEntry>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Return entries with an id lower than this.
    pub before: Option<i64>,
    /// Page size, 1..=500, default 100.
    pub limit: Option<u64>,
    /// Only entries of this kind.
    pub kind: Option<String>,
}

/// One entry of the audit log: who did what to which object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryInfo {
    /// Monotonic id; pass the smallest id you have as `before` to page back.
    pub id: i64,
    pub at_ms: i64,
    /// `user:<username>` for operators, `system` for the server itself.
    pub actor: String,
    /// Dotted verb: `user.create`, `user.update`, `user.delete`, `user.password_change`,
    /// `api_token.create`, `enrollment_token.create`, `device.delete`, …
    pub action: String,
    /// The id of the object acted on, if any.
    pub target: Option<String>,
    /// Action-specific details, e.g. `before`/`after` of a change. Never secrets.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntryInfo>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Return entries with an id lower than this.
    pub before: Option<i64>,
    /// Page size, 1..=500, default 100.
    pub limit: Option<u64>,
    /// Only entries by this actor, exactly (e.g. `user:admin`).
    pub actor: Option<String>,
    /// Only entries with this action, exactly (e.g. `device.delete`).
    pub action: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefreshResponse {
    /// True when the agent holds a wake-up connection and was told immediately; otherwise it
    /// collects at its next check-in.
    pub delivered_now: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

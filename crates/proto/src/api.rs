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
    /// Effective custom field values (the device's own, else the field's default; dates as
    /// Unix milliseconds). Fields without either are absent.
    #[serde(default)]
    pub custom_fields: std::collections::BTreeMap<String, serde_json::Value>,
    /// The groups the device is a direct member of.
    #[serde(default)]
    pub groups: Vec<DeviceGroupRef>,
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
    /// Devices carrying this tag (exact).
    pub tag: Option<String>,
    /// Members of this group (id or name), including members of its descendants.
    pub group: Option<String>,
    /// `name=value`: devices whose effective custom field value equals `value` (the field's
    /// type decides how `value` is read, e.g. `true`, `42`, `2026-01-31`).
    pub field: Option<String>,
    /// Devices whose operating system is exactly this: the OS name (`Debian GNU/Linux`, every
    /// version) or the name and version joined by a space (`Debian GNU/Linux 12`) — the values
    /// `GET /api/v1/devices/summary` lists.
    pub os: Option<String>,
    /// Devices whose hardware model is exactly this: system manufacturer and product joined by
    /// a space (`LENOVO 20XW0055GE`), as `GET /api/v1/devices/summary` lists them.
    pub model: Option<String>,
    /// Sort key: `hostname` (default), `last_seen`, `enrolled`. Prefix `-` for descending.
    pub sort: Option<String>,
    pub offset: Option<u64>,
    /// Page size, 1..=1000, default 100.
    pub limit: Option<u64>,
}

/// One value of a distribution and how many devices have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

/// How the devices divide over one property.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Distribution {
    /// The 20 most common values, most devices first (ties by value).
    pub top: Vec<ValueCount>,
    /// Devices with a value not in `top`.
    pub other: u64,
    /// Devices without a value (no inventory yet, or the property was not reported).
    pub unknown: u64,
}

/// Counters and distributions over all devices (`GET /api/v1/devices/summary`). Each value of
/// a distribution is accepted by the device list's filter of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceFleetSummary {
    pub total: u64,
    /// Checked in within three check-in intervals (the device list's `status=online`).
    pub online: u64,
    pub offline: u64,
    /// By operating system: name and version (`Debian GNU/Linux 12`), or the name alone.
    pub os: Distribution,
    /// By hardware model: system manufacturer and product.
    pub model: Distribution,
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

/// Which devices a bulk change applies to, by the same filters as the device list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSelector {
    /// Case-insensitive substring of the hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// `online` or `offline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Devices carrying this tag (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Members of this group (id or name), including members of its descendants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `name=value`: devices whose effective custom field value equals `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A device group. Groups form a tree; targeting a group means its direct members plus the
/// members of all its descendants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The parent group's id; absent for a top-level group.
    pub parent_id: Option<String>,
    /// `static` (members added by operators) or `dynamic` (members computed from `rule`).
    pub kind: String,
    /// The membership rule of a dynamic group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<serde_json::Value>,
    /// Devices that are members of this group itself.
    pub direct_members: u64,
    /// Distinct devices in this group or any descendant (what targeting the group reaches).
    pub members: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// 1..=200 characters, unique (case-insensitive).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Place the new group under this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// `static` (default) or `dynamic`; a dynamic group needs `rule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The membership rule of a dynamic group (see the rule language documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<serde_json::Value>,
}

/// Omitted fields stay as they are. `parent_id: null` moves the group to the top level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub parent_id: Option<Option<String>>,
    /// A new rule for a dynamic group (replaces the old one; members are re-evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<serde_json::Value>,
}

/// The type of a rule field's values, which decides its operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleFieldType {
    String,
    /// An IP address, possibly with a prefix length; also accepts `cidr`.
    Address,
    Number,
    Boolean,
    Timestamp,
}

/// A field a group rule may name, with the operators it accepts (`GET /api/v1/groups/rule-fields`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RuleFieldInfo {
    /// The name written in rules: `os.id`, `network.interfaces[].ipv4`, `tags`, `custom.owner`.
    pub name: String,
    #[serde(rename = "type")]
    pub ty: RuleFieldType,
    /// Operators accepted on this field (`eq`, `in`, `version_gte`, …).
    pub operators: Vec<String>,
    pub description: String,
    /// The allowed values of a field with a closed set (enums), else empty.
    #[serde(default)]
    pub values: Vec<String>,
    /// Any element of a list must satisfy the condition (`[]` in the name).
    #[serde(default)]
    pub multi: bool,
    /// A list of plain values named without `[]`, tested as a whole.
    #[serde(default)]
    pub whole_list: bool,
    /// A custom field defined by an administrator.
    #[serde(default)]
    pub custom: bool,
}

/// Evaluate a rule over every device without saving it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPreviewRequest {
    pub rule: serde_json::Value,
    /// How many matching devices to list (1..=1000, default 100); `total` counts all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupPreview {
    /// How many devices match.
    pub total: u64,
    /// The first matching devices, by hostname.
    pub devices: Vec<DeviceSummary>,
}

/// Why a device matches a group's rule or not, condition by condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExplanationNode {
    pub matched: bool,
    /// One sentence ending in `: true` or `: false`.
    pub text: String,
    /// JSON pointer of the condition in the rule (empty for the root).
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    #[schema(no_recursion)]
    pub children: Vec<ExplanationNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupExplanation {
    pub group_id: String,
    pub device_id: String,
    /// `static` or `dynamic`.
    pub kind: String,
    /// Whether the device is a member (for a static group: directly or through a
    /// descendant group; for a dynamic group: whether the rule holds now).
    pub member: bool,
    /// The rule's explanation tree (dynamic groups) or one node saying why (static groups).
    pub explanation: ExplanationNode,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn present_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A device's membership of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceGroupRef {
    pub id: String,
    pub name: String,
    /// `static` or `dynamic`.
    pub source: String,
}

/// Which devices a bulk change applies to: explicit ids (at most 10,000), a filter, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<DeviceSelector>,
}

/// Add or remove tags on many devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagChange {
    /// 1..=32 tags: letters, digits and `-_.:/=`, at most 64 characters each.
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<DeviceSelector>,
}

/// The outcome of a bulk change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BulkResult {
    /// Devices selected by the ids and/or filter.
    pub matched: u64,
    /// Devices actually changed (the others already were in the requested state).
    pub changed: u64,
}

/// The type of a custom field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    /// A finite floating-point number.
    Number,
    Boolean,
    /// Written as an RFC 3339 date (`2026-01-31`) or date-time, or Unix milliseconds; read as
    /// Unix milliseconds.
    Date,
    /// One of `enum_values`.
    Enum,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Enum => "enum",
        }
    }

    pub fn parse(s: &str) -> Option<FieldType> {
        match s {
            "string" => Some(FieldType::String),
            "number" => Some(FieldType::Number),
            "boolean" => Some(FieldType::Boolean),
            "date" => Some(FieldType::Date),
            "enum" => Some(FieldType::Enum),
            _ => None,
        }
    }
}

/// The definition of a custom field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CustomFieldInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// The allowed values of an `enum` field.
    #[serde(default)]
    pub enum_values: Vec<String>,
    /// The value of devices without their own (dates as Unix milliseconds).
    pub default: Option<serde_json::Value>,
    /// A required field always has a default, so every device has a value.
    pub required: bool,
    pub description: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomFieldRequest {
    /// An identifier: `[a-z][a-z0-9_]{0,62}`.
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Required for (and only for) `enum`: 1..=100 distinct values.
    #[serde(default)]
    pub enum_values: Vec<String>,
    /// Validated against the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// When true, `default` is mandatory.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: String,
}

/// Omitted fields stay as they are; `default: null` removes the default. The type can only
/// change while no device has a value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomFieldRequest {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub field_type: Option<FieldType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<serde_json::Value>, nullable)]
    pub default: Option<Option<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A device's own value of a custom field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCustomFieldValue {
    pub value: serde_json::Value,
}

//! Desired software state: assignments (which package belongs on which devices, with which
//! intent), deployments (an assignment with a schedule, a maintenance-window policy and a
//! network policy), maintenance windows, the per-device manifest the server compiles from them
//! and the agent reconciles, and the agent's per-item status reports.
//!
//! The flow: an operator assigns `nginx` *required* to group `web`. The server compiles, for
//! every device the assignment covers, a [`ManifestPayload`] — a revisioned, signed list of
//! items (present / absent / available, each with its resolved [`SoftwarePlan`]) after
//! schedules and maintenance windows — and wakes the device. The agent fetches the manifest
//! when the revision changed (and re-checks on an interval), runs detect → act → verify per
//! item, and reports each item's [`ItemStatus`]. A device the assignment no longer covers (it
//! left the group, or the assignment was removed) gets an *absent* item for what Capstan
//! installed there, unless the assignment said to leave it installed.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::software::{DownloadSource, SoftwarePlan};

pub mod limits {
    /// Manifest items of one device.
    pub const MAX_MANIFEST_ITEMS: usize = 512;
    /// Items in one status report.
    pub const MAX_REPORT_ITEMS: usize = 512;
    /// The installer-log tail an item report may carry.
    pub const MAX_ITEM_LOG_BYTES: usize = 16 * 1024;
    /// An item report's `detail`.
    pub const MAX_ITEM_DETAIL_BYTES: usize = 2048;
    /// Days of one weekly window.
    pub const MAX_WINDOW_GROUPS: usize = 64;
    /// The longest maintenance window, in minutes (one week).
    pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;
    pub const MAX_NAME_BYTES: usize = 128;
    pub const MAX_DESCRIPTION_BYTES: usize = 4096;
}

// ---------------------------------------------------------------------------------------------
// Assignments
// ---------------------------------------------------------------------------------------------

/// What an assignment wants on its devices.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Installed and kept installed (drift is repaired).
    Required,
    /// Offered: installed when an operator or someone on the node asks for it.
    Available,
    /// Removed and kept removed.
    Uninstall,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Required => "required",
            Intent::Available => "available",
            Intent::Uninstall => "uninstall",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "required" => Some(Intent::Required),
            "available" => Some(Intent::Available),
            "uninstall" => Some(Intent::Uninstall),
            _ => None,
        }
    }
}

/// Whether an assignment targets one device or a group (its members and the members of its
/// descendants, static and dynamic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Device,
    Group,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Device => "device",
            TargetKind::Group => "group",
        }
    }
}

/// A device or group, by id (a group may also be named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    pub kind: TargetKind,
    /// Device id; group id or name.
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAssignmentRequest {
    /// Package id or name.
    pub package: String,
    /// A version; absent means "latest": the highest version of the package at any time, so a
    /// newer version upgrades every device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub target: TargetRef,
    pub intent: Intent,
    /// When the assignment is removed or a device leaves its group, leave the software
    /// installed instead of uninstalling it.
    #[serde(default)]
    pub leave_installed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignmentInfo {
    pub id: String,
    pub package_id: String,
    pub package_name: String,
    /// The pinned version; absent for "latest".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What "latest" or the pin resolves to now (absent when the package has no version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_version: Option<String>,
    pub target_kind: TargetKind,
    pub target_id: String,
    pub target_name: String,
    pub intent: Intent,
    pub leave_installed: bool,
    /// Set when the assignment belongs to a deployment (the same id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    pub created_at_ms: i64,
    pub created_by: String,
    /// Devices per status of the items this assignment decides (filled by the server in
    /// lists and single reads; absent from older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<StatusCounts>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssignmentQuery {
    /// Package id or name.
    #[serde(default)]
    pub package: Option<String>,
    /// Group id or name.
    #[serde(default)]
    pub group: Option<String>,
    /// Assignments that reach this device (directly or through its groups).
    #[serde(default)]
    pub device: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------------------------------

/// Whether required installs and uninstalls wait for the device's maintenance windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowPolicy {
    /// Act only while one of the device's maintenance windows is open (devices without any
    /// window are not restricted).
    #[default]
    Respect,
    /// Act at once, windows or not.
    Ignore,
}

/// How the agent may download a deployment's artifacts (E5-07).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    /// Per-device download limit, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_sec: Option<u64>,
    /// Only from the device's depot sources, never from the server.
    #[serde(default)]
    pub site_sources_only: bool,
    /// Do not download while the device's connection is metered (it waits instead).
    #[serde(default)]
    pub skip_metered: bool,
}

/// How a deployment reaches its devices. Staged rollouts (waves, canaries) come later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rollout {
    #[default]
    AllAtOnce,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeploymentRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Package id or name.
    pub package: String,
    /// A version; absent means "latest".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub target: TargetRef,
    pub intent: Intent,
    #[serde(default)]
    pub leave_installed: bool,
    /// Unix ms; nothing is offered or installed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from_ms: Option<i64>,
    /// Unix ms; from then on an `available` deployment is installed as if required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
    #[serde(default)]
    pub window_policy: WindowPolicy,
    #[serde(default)]
    pub network: NetworkPolicy,
    #[serde(default)]
    pub rollout: Rollout,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentInfo {
    /// Also the id of its assignment.
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub assignment: AssignmentInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
    pub window_policy: WindowPolicy,
    pub network: NetworkPolicy,
    pub rollout: Rollout,
    /// A paused deployment changes nothing on its devices (they keep what they have).
    pub paused: bool,
    pub counts: StatusCounts,
}

/// Devices per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusCounts {
    pub total: u64,
    pub planned: u64,
    pub waiting: u64,
    pub downloading: u64,
    pub installing: u64,
    pub installed: u64,
    pub failed: u64,
    pub not_applicable: u64,
    pub uninstalling: u64,
    pub removed: u64,
    pub reboot_pending: u64,
    pub available: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExitCodeGroup {
    /// Absent for failures without an exit code (download, detection, timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub devices: u64,
    /// One device's failure detail, as an example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentStatus {
    pub deployment: DeploymentInfo,
    /// Succeeded devices (installed, or removed for uninstalls) over those that reached an end
    /// (succeeded, failed, not applicable); absent before any did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    pub failures_by_exit_code: Vec<ExitCodeGroup>,
    /// One page of devices, failed first.
    pub devices: Vec<DeviceItemState>,
}

// ---------------------------------------------------------------------------------------------
// Maintenance windows
// ---------------------------------------------------------------------------------------------

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// When a window opens, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowSchedule {
    /// Opens on each of `days` at `start` (`HH:MM`, local to the window's time zone).
    Weekly {
        days: Vec<Weekday>,
        start: String,
        duration_minutes: u32,
    },
    /// Opens at every time the 5-field cron expression matches (minute hour day-of-month month
    /// day-of-week, local to the window's time zone).
    Cron {
        expression: String,
        duration_minutes: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWindowRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schedule: WindowSchedule,
    /// An IANA time zone (`Europe/Berlin`), `UTC`, or `device` for each device's own time zone
    /// (from its inventory; UTC when unknown).
    pub timezone: String,
    /// Groups (ids or names) whose members the window applies to, descendants included.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WindowInfo {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schedule: WindowSchedule,
    pub timezone: String,
    pub groups: Vec<crate::software::SourceGroup>,
    /// The next time it opens, in UTC Unix ms (absent for `device` time zones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open_ms: Option<i64>,
    pub created_at_ms: i64,
}

// ---------------------------------------------------------------------------------------------
// Per-device status
// ---------------------------------------------------------------------------------------------

/// Where one package stands on one device.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// In the manifest; the agent has not reported on it yet.
    Planned,
    /// A maintenance window, the available-from time, a paused deployment or a metered
    /// connection holds it (the detail says which).
    Waiting,
    Downloading,
    Installing,
    Installed,
    Failed,
    /// Requirements not met (the detail says why); nothing was changed.
    NotApplicable,
    Uninstalling,
    Removed,
    /// Installed; the installer asked for a reboot to complete.
    RebootPending,
    /// Offered and not installed.
    Available,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Planned => "planned",
            ItemStatus::Waiting => "waiting",
            ItemStatus::Downloading => "downloading",
            ItemStatus::Installing => "installing",
            ItemStatus::Installed => "installed",
            ItemStatus::Failed => "failed",
            ItemStatus::NotApplicable => "not_applicable",
            ItemStatus::Uninstalling => "uninstalling",
            ItemStatus::Removed => "removed",
            ItemStatus::RebootPending => "reboot_pending",
            ItemStatus::Available => "available",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "planned" => ItemStatus::Planned,
            "waiting" => ItemStatus::Waiting,
            "downloading" => ItemStatus::Downloading,
            "installing" => ItemStatus::Installing,
            "installed" => ItemStatus::Installed,
            "failed" => ItemStatus::Failed,
            "not_applicable" => ItemStatus::NotApplicable,
            "uninstalling" => ItemStatus::Uninstalling,
            "removed" => ItemStatus::Removed,
            "reboot_pending" => ItemStatus::RebootPending,
            "available" => ItemStatus::Available,
            _ => return None,
        })
    }

    /// A state the agent moves on from by itself.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ItemStatus::Downloading | ItemStatus::Installing | ItemStatus::Uninstalling
        )
    }
}

/// Download progress of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub received: u64,
    pub total: u64,
}

/// One package on one device, as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceItemState {
    pub device_id: String,
    pub hostname: String,
    pub package_id: String,
    pub package_name: String,
    /// The version the manifest asks for (or removes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What the manifest wants: `present`, `absent` or `available`; absent once the item left
    /// the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<ItemIntent>,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The assignment that decided the item (after conflict resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<String>,
    /// Times drift (a change made outside Capstan) was found and repaired.
    pub drift_repairs: u64,
    pub updated_at_ms: i64,
}

/// An assignment that lost to another for the same package on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignmentConflict {
    pub package_id: String,
    pub package_name: String,
    /// The assignment that decides.
    pub winner: String,
    /// The assignment that lost.
    pub loser: String,
    /// Which step of the documented rule decided.
    pub reason: String,
}

/// A device's software state: its items, the assignments that reach it and any conflicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceSoftwareState {
    pub device_id: String,
    /// The latest compiled manifest revision and the one the agent last acknowledged.
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_revision: Option<u64>,
    pub items: Vec<DeviceItemState>,
    pub assignments: Vec<AssignmentInfo>,
    pub conflicts: Vec<AssignmentConflict>,
}

/// One entry of an item's history (status changes with their logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemHistoryEntry {
    pub at_ms: i64,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    pub drift: bool,
}

// ---------------------------------------------------------------------------------------------
// The manifest (agent protocol)
// ---------------------------------------------------------------------------------------------

/// What the manifest wants of a package on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemIntent {
    Present,
    Absent,
    Available,
}

/// One package in a device's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ManifestItem {
    pub package_id: String,
    pub package_name: String,
    pub version: String,
    pub intent: ItemIntent,
    /// Why the agent must not act on the item yet (it still detects and reports): a closed
    /// maintenance window, a time before available-from, a paused deployment. Absent when it
    /// may act now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    /// The resolved plan: installs for `present` and `available`, the uninstall for `absent`.
    pub plan: SoftwarePlan,
    #[serde(default)]
    pub network: NetworkPolicy,
    /// The assignment that decided the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<String>,
}

/// A device's desired software state, compiled by the server. The agent verifies the signature
/// (as for runs) and that it names this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ManifestPayload {
    pub device_id: String,
    pub revision: u64,
    pub compiled_at_ms: i64,
    pub items: Vec<ManifestItem>,
    /// Where to download artifacts, in order (the device's fallback order).
    pub sources: Vec<DownloadSource>,
    /// How often the agent re-checks the manifest when nothing changed (drift repair).
    pub reconcile_interval_secs: u64,
}

/// `payload` (UTF-8 JSON of [`ManifestPayload`]) and its Ed25519 signature, hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignedManifest {
    pub payload: String,
    pub signature: String,
}

/// One item's status, reported by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemReport {
    pub package_id: String,
    pub version: String,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The tail of the installer's log and the agent's narration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The item had drifted (a required package was missing, an uninstalled one present) and
    /// the agent is repairing it.
    #[serde(default)]
    pub drift: bool,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestReport {
    /// The revision the agent is reconciling.
    pub revision: u64,
    pub items: Vec<ItemReport>,
    /// The agent has gone through every item of `revision` once.
    #[serde(default)]
    pub complete: bool,
}

/// A package someone on the node asked for (`capstan-agent software install NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwareRequest {
    /// Package id or name; it must be available to the device.
    pub package: String,
}

//! The agent protocol: HTTPS + JSON under `/agent/v1`. Enrollment trades an enrollment token for
//! a device credential; afterwards every request carries `Authorization: Bearer capd_<id>_<secret>`
//! and is bound to that one device.
//!
//! Flow: `enroll` once → then loop { `checkin` (with a performance snapshot and the digest of the
//! last inventory) → upload the full inventory when the server asks → hold `wait` (long-poll)
//! until woken or timed out }. The wake-up is only a hint: what to do is always read from the
//! check-in response, which reflects durable state in the database.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::inventory::{InventoryDocument, PerformanceSnapshot};

/// Capabilities this build of the agent announces.
pub const CAP_INVENTORY_DELTA: &str = "inventory.delta";
pub const CAP_WAKE_LONGPOLL: &str = "wake.longpoll";

/// What identifies a machine across re-enrollments. Both values are hashed by the agent into
/// `identity_key`; the raw identifiers never leave the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceIdentity {
    /// Hex SHA-256 of the identity material (machine-id + SMBIOS UUID by default, or a random
    /// per-state-directory instance id). The same machine re-enrolling presents the same key.
    pub identity_key: String,
    /// Which source produced the key: `hardware` or `instance`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment token secret (`cape_…`).
    pub token: String,
    pub identity: DeviceIdentity,
    pub hostname: String,
    pub agent_version: String,
    /// `linux`, `windows`, …
    pub os_family: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    pub device_id: String,
    /// The device credential (`capd_<id>_<secret>`). Shown once; stored hashed on the server.
    pub device_token: String,
    /// True when an existing device with the same identity was re-enrolled (no duplicate).
    pub reenrolled: bool,
    /// Interval between periodic check-ins, in seconds (jittered by the agent).
    pub checkin_interval_secs: u64,
    /// Server's Ed25519 public key (hex), for verifying signed manifests and metadata.
    pub signing_public_key: String,
    pub protocol_version: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    pub agent_version: String,
    /// Kernel boot id (changes on every reboot).
    pub boot_id: Option<String>,
    /// Digest of the agent's current inventory document (hex SHA-256), if it has one.
    pub inventory_digest: Option<String>,
    pub performance: Option<PerformanceSnapshot>,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckinResponse {
    /// Server time, Unix milliseconds.
    pub server_time_ms: i64,
    pub checkin_interval_secs: u64,
    /// The agent must upload its full inventory document: the digest differs from the stored
    /// one, nothing is stored yet, or an operator asked for a refresh.
    pub send_inventory: bool,
    /// An operator asked for a fresh collection (the agent re-collects before sending rather
    /// than sending a cached document).
    pub recollect_inventory: bool,
    /// Current wake generation; pass it to `wait` so a wake-up between check-in and wait is
    /// not missed.
    pub wake_generation: u64,
    pub protocol_version: u32,
    /// The device has job runs to claim (`POST /agent/v1/runs/claim`). Absent from older
    /// servers.
    #[serde(default)]
    pub runs_pending: bool,
    /// Runs delivered with this check-in, exactly as a claim would return them — only to
    /// agents that announce `jobs.v1` in the check-in's capabilities. Saves the claim round
    /// trip when a job wakes the agent. `runs_pending` is then true only if more are waiting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<crate::jobs::DeliveredRun>,
    /// The device's current manifest revision (desired software state); the agent fetches
    /// `GET /agent/v1/manifest` when it differs from the one it holds. Absent when the device
    /// has never had a manifest, and from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_revision: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryUpload {
    /// Hex SHA-256 digest of `document` as computed by `capstan_core::inventory::digest`.
    pub digest: String,
    pub document: InventoryDocument,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryAccepted {
    /// Number of field-level changes recorded in the device timeline.
    pub changes: u64,
    /// True if this was the first inventory of the device.
    pub first: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WaitResponse {
    /// True when the server has something for the agent; it should check in now.
    pub wake: bool,
    pub wake_generation: u64,
}

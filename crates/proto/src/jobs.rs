//! Jobs: one-shot work (a command, a script, a reboot) fanned out to per-device runs.
//!
//! A job is created with a spec and targets; the server resolves the targets to devices at
//! creation and creates one *run* per device in the same transaction. A run is tried in
//! *attempts*; each attempt has an idempotency key (`<run id>:<attempt>`) the agent persists
//! before it starts the process, so a restarted agent never starts the same attempt twice and
//! reports an attempt it lost to a crash as `interrupted`.
//!
//! Run states: `queued → delivered → running → succeeded | failed | timed_out | cancelled |
//! expired`, plus `rebooting` while a reboot that is part of the run is in progress. Every
//! transition is recorded with its time and reason.
//!
//! Agent side (all under `/agent/v1`, bound to the calling device): the check-in says
//! `runs_pending`; the agent claims its runnable runs (`POST runs/claim`), gets each run's spec
//! signed by the server, and reports `start`, `output` chunks, `rebooting` and `finish`. Every
//! report is idempotent (repeating it is harmless), so the agent can re-send from its outbox
//! after any failure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::FieldType;

/// Capability of agents that run jobs.
pub const CAP_JOBS: &str = "jobs.v1";

/// Default and maximum sizes, shared by the server's validation and the agent.
pub mod limits {
    /// Per stream (stdout, stderr) and attempt, the agent keeps at most this many bytes and
    /// then appends a truncation marker.
    pub const OUTPUT_CAP_BYTES: usize = 1024 * 1024;
    /// A script body (and each pre/post script).
    pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;
    pub const MAX_ARGS: usize = 256;
    pub const MAX_ARG_BYTES: usize = 16 * 1024;
    pub const MAX_ENV: usize = 128;
    pub const MAX_ENV_VALUE_BYTES: usize = 16 * 1024;
    pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;
    pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
    pub const MAX_ATTEMPTS: u32 = 20;
    /// Targets of one job after resolution.
    pub const MAX_TARGET_DEVICES: usize = 100_000;
    /// One output report from the agent.
    pub const MAX_OUTPUT_CHUNK_BYTES: usize = 256 * 1024;
    pub const MAX_SCRIPT_PARAMETERS: usize = 64;
}

/// Interpreters a script can name. Windows-only ones are accepted by the server and run only
/// by Windows agents (a Linux agent fails the run with a clear reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interpreter {
    Sh,
    Bash,
    Python3,
    Powershell,
    Cmd,
}

impl Interpreter {
    pub const ALL: [Interpreter; 5] = [
        Interpreter::Sh,
        Interpreter::Bash,
        Interpreter::Python3,
        Interpreter::Powershell,
        Interpreter::Cmd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interpreter::Sh => "sh",
            Interpreter::Bash => "bash",
            Interpreter::Python3 => "python3",
            Interpreter::Powershell => "powershell",
            Interpreter::Cmd => "cmd",
        }
    }
}

/// A script to run: the body is written to a private temporary file and passed to the
/// interpreter as a path, never spliced into a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptBody {
    pub interpreter: Interpreter,
    pub body: String,
}

/// What a job does on each device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobAction {
    /// A program and its arguments, executed directly (no shell). `argv[0]` is looked up in
    /// `PATH` when it has no slash.
    Command { argv: Vec<String> },
    /// A script; `args` become its positional parameters.
    Script {
        interpreter: Interpreter,
        body: String,
        #[serde(default)]
        args: Vec<String>,
    },
    /// Reboot the device; the run succeeds when the agent reports from a new boot.
    Reboot,
    /// Install a package version from the depot (with its dependencies, replacing what it
    /// supersedes). The operator names `package` (and optionally `version`); the server
    /// resolves it and stores the `plan` in the job — a plan sent by a client is refused.
    SoftwareInstall {
        package: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// Install even when detection finds the version present.
        #[serde(default)]
        force: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<crate::software::SoftwarePlan>,
    },
    /// Uninstall a package version (the newest when `version` is absent; its own detection
    /// rule decides whether anything is present).
    SoftwareUninstall {
        package: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<crate::software::SoftwarePlan>,
    },
}

impl JobAction {
    pub fn kind(&self) -> &'static str {
        match self {
            JobAction::Command { .. } => "command",
            JobAction::Script { .. } => "script",
            JobAction::Reboot => "reboot",
            JobAction::SoftwareInstall { .. } => "software_install",
            JobAction::SoftwareUninstall { .. } => "software_uninstall",
        }
    }

    /// Whether this installs or uninstalls software (a run the agent executes as a plan).
    pub fn is_software(&self) -> bool {
        matches!(
            self,
            JobAction::SoftwareInstall { .. } | JobAction::SoftwareUninstall { .. }
        )
    }
}

/// Which outcomes of an attempt are retried.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// Non-zero exit code (or the process could not be started).
    Failed,
    TimedOut,
    /// The agent stopped (crash, kill -9, power loss) while the attempt ran.
    Interrupted,
}

/// Retry policy of a job. One attempt (no retries) by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts per device, 1..=20.
    #[serde(default = "one")]
    pub max_attempts: u32,
    /// Delay before the 2nd attempt; doubled for each further one.
    #[serde(default = "sixty")]
    pub backoff_secs: u64,
    /// Upper bound of the delay.
    #[serde(default = "hour")]
    pub max_backoff_secs: u64,
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<RetryOn>,
}

fn one() -> u32 {
    1
}
fn sixty() -> u64 {
    60
}
fn hour() -> u64 {
    3600
}
fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::Failed, RetryOn::TimedOut, RetryOn::Interrupted]
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff_secs: 60,
            max_backoff_secs: 3600,
            retry_on: default_retry_on(),
        }
    }
}

/// Everything the agent needs to execute one attempt. Part of the job, identical for every
/// device (script parameters are already bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub action: JobAction,
    /// Seconds until the process group is killed (TERM, then KILL after 5 s).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Extra environment variables (names `[A-Za-z_][A-Za-z0-9_]*`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (absolute); the agent's temporary directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Local user to run as; the agent's own user (root) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Runs before the action; if it fails the action is not run and the attempt fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_script: Option<ScriptBody>,
    /// Runs after the action succeeded (or after any outcome with `post_script_always`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_script: Option<ScriptBody>,
    #[serde(default)]
    pub post_script_always: bool,
    /// Exit codes of the action that mean "succeeded, reboot now" (e.g. 3010/1641 on
    /// Windows). A script can also ask for a reboot by creating the file named in
    /// `CAPSTAN_REBOOT_REQUEST`.
    #[serde(default)]
    pub reboot_exit_codes: Vec<i32>,
}

fn default_timeout() -> u64 {
    crate::jobs::limits::DEFAULT_TIMEOUT_SECS
}

/// Targets of a job, resolved to devices when it is created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobTargets {
    #[serde(default)]
    pub devices: Vec<String>,
    /// Group ids or names; members of descendant groups are included.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Also create runs for devices that join one of the groups while the job is active
    /// (until it expires or is cancelled).
    #[serde(default)]
    pub follow_group_joins: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobRequest {
    /// Shown in lists; defaults to a summary of the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub spec: JobSpec,
    pub targets: JobTargets,
    /// Seconds after creation when runs that no device has picked up become `expired`
    /// (default 24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// States of a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Delivered,
    Running,
    Rebooting,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Expired,
}

impl RunState {
    pub const ALL: [RunState; 9] = [
        RunState::Queued,
        RunState::Delivered,
        RunState::Running,
        RunState::Rebooting,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Cancelled,
        RunState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Delivered => "delivered",
            RunState::Running => "running",
            RunState::Rebooting => "rebooting",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Cancelled => "cancelled",
            RunState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded
                | RunState::Failed
                | RunState::TimedOut
                | RunState::Cancelled
                | RunState::Expired
        )
    }
}

/// How an attempt ended, as reported by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    /// Non-zero exit, killed by a signal, a failed pre-script, or the process could not start
    /// (see `error`).
    Failed,
    TimedOut,
    /// Cancelled on request; the process group was killed.
    Cancelled,
    /// The agent lost the attempt (it stopped while the attempt ran). Reported after restart.
    Interrupted,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::TimedOut => "timed_out",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Interrupted => "interrupted",
        }
    }
}

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

// ---------------------------------------------------------------------------------------------
// Agent protocol
// ---------------------------------------------------------------------------------------------

/// The signed part of a delivered run. The agent verifies `signature` over the exact bytes of
/// `payload` (UTF-8 JSON of [`RunPayload`]) with the server key it got at enrollment, then
/// parses it — so a run cannot be altered between the server and the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveredRun {
    pub payload: String,
    /// Ed25519 signature of `payload`, hex.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunPayload {
    pub run_id: String,
    pub job_id: String,
    /// The device the run is for; an agent refuses a payload for another device.
    pub device_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// `<run id>:<attempt>`; the agent never starts the same key twice.
    pub idempotency_key: String,
    pub spec: JobSpec,
    /// Unix ms; the agent does not start an attempt after this.
    pub expires_at_ms: i64,
    /// For software runs: where to download artifacts from, in order (the device's fallback
    /// order; the server itself last unless the device's sources exclude it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<crate::software::DownloadSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimResponse {
    pub runs: Vec<DeliveredRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunStarted {
    pub attempt: u32,
    pub started_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputChunk {
    pub stream: OutputStream,
    /// Byte offset of `data` within the stream of this attempt (after any truncation the
    /// agent applied); the server stores each offset once, so re-sending is harmless.
    pub offset: u64,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputReport {
    pub attempt: u32,
    #[serde(default)]
    pub chunks: Vec<OutputChunk>,
}

/// Answer to `start` and `output`: whether the agent should stop the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunControl {
    /// The run was cancelled (or is no longer this attempt): kill the process group and
    /// finish with `cancelled`.
    pub cancel: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRebooting {
    pub attempt: u32,
    /// The boot id before the reboot; the run completes when the agent reports from another.
    pub boot_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFinished {
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Human-readable reason for anything but a plain exit (signal, timeout, start failure,
    /// pre-script failure, reboot completed …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: i64,
    /// Total bytes the process wrote, including what was dropped by the cap.
    #[serde(default)]
    pub stdout_bytes: u64,
    #[serde(default)]
    pub stderr_bytes: u64,
    #[serde(default)]
    pub stdout_truncated: bool,
    #[serde(default)]
    pub stderr_truncated: bool,
}

// ---------------------------------------------------------------------------------------------
// Console API
// ---------------------------------------------------------------------------------------------

/// Run counts of a job by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunCounts {
    pub total: u64,
    pub queued: u64,
    pub delivered: u64,
    pub running: u64,
    pub rebooting: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub expired: u64,
}

impl RunCounts {
    pub fn add(&mut self, state: RunState, n: u64) {
        self.total += n;
        let slot = match state {
            RunState::Queued => &mut self.queued,
            RunState::Delivered => &mut self.delivered,
            RunState::Running => &mut self.running,
            RunState::Rebooting => &mut self.rebooting,
            RunState::Succeeded => &mut self.succeeded,
            RunState::Failed => &mut self.failed,
            RunState::TimedOut => &mut self.timed_out,
            RunState::Cancelled => &mut self.cancelled,
            RunState::Expired => &mut self.expired,
        };
        *slot += n;
    }

    /// Runs in a terminal state.
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.timed_out + self.cancelled + self.expired
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobInfo {
    pub id: String,
    pub name: String,
    /// `command`, `script` or `reboot`.
    pub kind: String,
    pub spec: JobSpec,
    pub targets: JobTargets,
    pub retry: RetryPolicy,
    /// Library script and version this job runs, if it came from the library.
    pub script_id: Option<String>,
    pub script_version: Option<u32>,
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// Set when the whole job was cancelled.
    pub cancelled_at_ms: Option<i64>,
    pub counts: RunCounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobInfo>,
    pub total: u64,
}

/// One run (a device's share of a job) in lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunInfo {
    pub id: String,
    pub job_id: String,
    pub device_id: String,
    pub hostname: String,
    pub state: RunState,
    /// The current (or last) attempt, 1-based.
    pub attempt: u32,
    pub exit_code: Option<i32>,
    /// Why the run is in its state, when it is not obvious (`interrupted`, `circuit breaker
    /// open`, `expired before delivery`, …).
    pub reason: Option<String>,
    /// When a retry is scheduled, its earliest time.
    pub next_attempt_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunInfo>,
    pub total: u64,
}

/// One run of a device with its job, for the device's job history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceRunInfo {
    pub run: RunInfo,
    pub job_name: String,
    /// `command`, `script`, `reboot`, … (the job's kind).
    pub job_kind: String,
    pub job_created_at_ms: i64,
    pub job_created_by: String,
    /// When the current (or last) attempt started and finished on the device.
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    #[serde(default)]
    pub finished_at_ms: Option<i64>,
}

/// A device's runs across jobs, newest job first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceRunPage {
    pub items: Vec<DeviceRunInfo>,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunTransition {
    pub attempt: u32,
    pub state: RunState,
    pub at_ms: i64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttemptInfo {
    pub attempt: u32,
    pub outcome: Option<AttemptOutcome>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub delivered_at_ms: Option<i64>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunInfo,
    pub attempts: Vec<AttemptInfo>,
    pub history: Vec<RunTransition>,
}

/// One event of a job's live stream (`GET /api/v1/jobs/{id}/events`, server-sent events;
/// the SSE `id` lets a reconnecting client resume with `Last-Event-ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// A run changed state.
    Run { run: RunInfo },
    /// Output of a run's attempt.
    Output {
        run_id: String,
        device_id: String,
        attempt: u32,
        stream: OutputStream,
        offset: u64,
        data: String,
    },
    /// Every run is in a terminal state (sent once, then the stream stays open for retries).
    Finished { counts: RunCounts },
}

/// A device's circuit breaker: after `threshold` consecutive failed attempts (any job), the
/// server stops retrying runs on the device until an operator resets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BreakerInfo {
    pub device_id: String,
    pub hostname: String,
    pub consecutive_failures: u32,
    pub threshold: u32,
    /// Set while the breaker is open.
    pub opened_at_ms: Option<i64>,
    /// Runs waiting for a reset.
    pub held_runs: u64,
}

/// Answer of "retry failed runs" and bulk cancels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunsChanged {
    pub changed: u64,
}

// ---------------------------------------------------------------------------------------------
// Script library
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptParameter {
    /// `[A-Za-z_][A-Za-z0-9_]{0,62}`; reaches the script as `CAPSTAN_PARAM_<NAME>` (upper
    /// case) and as a positional argument in declaration order.
    pub name: String,
    #[serde(rename = "type")]
    pub param_type: FieldType,
    #[serde(default)]
    pub enum_values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScriptRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub interpreter: Interpreter,
    pub body: String,
    #[serde(default)]
    pub parameters: Vec<ScriptParameter>,
}

/// An edit creates a new version; omitted fields are copied from the latest version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateScriptRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<Interpreter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<ScriptParameter>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScriptInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub latest_version: u32,
    pub interpreter: Interpreter,
    pub body: String,
    pub parameters: Vec<ScriptParameter>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScriptVersionInfo {
    pub script_id: String,
    pub version: u32,
    pub name: String,
    pub description: String,
    pub interpreter: Interpreter,
    pub body: String,
    pub parameters: Vec<ScriptParameter>,
    pub created_at_ms: i64,
    pub created_by: String,
}

/// Run a library script: the job's action is the script (the given or latest version) with
/// its parameters bound from `arguments` (validated by type; defaults fill the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunScriptRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default)]
    pub arguments: BTreeMap<String, serde_json::Value>,
    pub targets: JobTargets,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
    #[serde(default)]
    pub retry: RetryPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_wire_form_is_tagged() {
        let a: JobAction =
            serde_json::from_str(r#"{"type":"command","argv":["echo","hi"]}"#).unwrap();
        assert_eq!(
            a,
            JobAction::Command {
                argv: vec!["echo".into(), "hi".into()]
            }
        );
        assert!(serde_json::from_str::<JobAction>(r#"{"type":"shell","cmd":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<JobAction>(r#"{"type":"command","argv":[],"x":1}"#).is_err()
        );
    }

    #[test]
    fn spec_defaults_apply() {
        let s: JobSpec = serde_json::from_str(r#"{"action":{"type":"reboot"}}"#).unwrap();
        assert_eq!(s.timeout_secs, limits::DEFAULT_TIMEOUT_SECS);
        assert!(s.env.is_empty() && s.run_as.is_none() && !s.post_script_always);
        let r: RetryPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(r, RetryPolicy::default());
    }

    #[test]
    fn run_state_round_trips_and_terminality() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        let terminal: Vec<_> = RunState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal.len(), 5);
        assert!(!RunState::Rebooting.is_terminal());
    }

    #[test]
    fn counts_add_up() {
        let mut c = RunCounts::default();
        c.add(RunState::Succeeded, 3);
        c.add(RunState::Queued, 2);
        c.add(RunState::Expired, 1);
        assert_eq!((c.total, c.finished(), c.queued), (6, 4, 2));
    }
}

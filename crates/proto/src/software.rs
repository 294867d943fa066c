//! Software: packages, their versions and per-platform artifacts, detection rules, and the
//! resolved plan an agent executes for `software_install` / `software_uninstall` jobs.
//!
//! A **package** (`firefox`) has **versions** (`128.0`); a version has one or more
//! **artifacts** (the installer file for one platform and architecture, stored in the depot by
//! its SHA-256) — or none, when the version refers to a package manager's package (`apt`
//! `nginx=1.22*`). A version carries everything needed to install and remove it unattended:
//! command templates, exit-code meanings, timeout, requirements, hooks, dependencies,
//! supersedence and a **detection rule** that tells whether it is present.
//!
//! When an operator asks to install a package on devices, the server resolves the request to a
//! [`SoftwarePlan`] (the version, its dependencies first, what it supersedes) and stores it in
//! the job, so every device runs exactly what was resolved, signed with the run.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::jobs::Interpreter;

/// Limits shared by the server's validation and the agent.
pub mod limits {
    pub const MAX_NAME_BYTES: usize = 128;
    pub const MAX_VERSION_BYTES: usize = 128;
    pub const MAX_TEXT_BYTES: usize = 4096;
    pub const MAX_ARTIFACTS: usize = 16;
    pub const MAX_COMMAND_ARGS: usize = 64;
    pub const MAX_COMMAND_ARG_BYTES: usize = 4096;
    pub const MAX_EXIT_CODES: usize = 32;
    pub const MAX_DEPENDENCIES: usize = 16;
    pub const MAX_SUPERSEDES: usize = 16;
    /// Nodes of one detection rule (groups and conditions together).
    pub const MAX_DETECTION_NODES: usize = 64;
    pub const MAX_DETECTION_DEPTH: usize = 8;
    /// A detection script's body.
    pub const MAX_DETECTION_SCRIPT_BYTES: usize = 64 * 1024;
    /// Steps of a resolved plan (dependencies + supersedence + the package itself).
    pub const MAX_PLAN_STEPS: usize = 32;
}

// ---------------------------------------------------------------------------------------------
// Platforms and installers
// ---------------------------------------------------------------------------------------------

/// Operating system family an artifact installs on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OsFamily {
    Linux,
    Windows,
    Macos,
}

impl OsFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            OsFamily::Linux => "linux",
            OsFamily::Windows => "windows",
            OsFamily::Macos => "macos",
        }
    }

    /// The inverse of [`OsFamily::as_str`].
    pub fn parse(s: &str) -> Option<OsFamily> {
        [OsFamily::Linux, OsFamily::Windows, OsFamily::Macos]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// CPU architecture of an artifact, normalised (`amd64` and `x86_64` are both `x86_64`).
/// `Any` installs everywhere (`all`, `noarch`, scripts).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Any,
    X86_64,
    Aarch64,
    X86,
    Armv7,
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::Any,
        Arch::X86_64,
        Arch::Aarch64,
        Arch::X86,
        Arch::Armv7,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Any => "any",
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::X86 => "x86",
            Arch::Armv7 => "armv7",
        }
    }

    /// Reads the spellings package formats and operating systems use.
    pub fn normalise(s: &str) -> Option<Arch> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "any" | "all" | "noarch" | "neutral" => Arch::Any,
            "x86_64" | "amd64" | "x64" => Arch::X86_64,
            "aarch64" | "arm64" => Arch::Aarch64,
            "x86" | "i386" | "i486" | "i586" | "i686" | "intel" => Arch::X86,
            "armv7" | "armv7l" | "armhf" | "armv7hl" => Arch::Armv7,
            _ => return None,
        })
    }

    /// Whether an artifact built for `self` runs on a machine of `machine`.
    pub fn runs_on(self, machine: Arch) -> bool {
        self == Arch::Any || self == machine || (self == Arch::X86 && machine == Arch::X86_64)
    }
}

/// How an artifact (or a package-manager reference) is installed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InstallerType {
    Deb,
    Rpm,
    /// A pacman package file (`.pkg.tar.zst`).
    Pacman,
    Msi,
    Exe,
    /// A zip or tar.gz archive with a `capstan-package.json` manifest naming its install and
    /// uninstall scripts.
    ScriptArchive,
    /// No artifact: the node's package manager installs `manager_package` by name.
    PackageManager,
}

impl InstallerType {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallerType::Deb => "deb",
            InstallerType::Rpm => "rpm",
            InstallerType::Pacman => "pacman",
            InstallerType::Msi => "msi",
            InstallerType::Exe => "exe",
            InstallerType::ScriptArchive => "script_archive",
            InstallerType::PackageManager => "package_manager",
        }
    }

    /// Whether versions of this type carry artifacts (everything but package-manager refs).
    pub fn has_artifacts(self) -> bool {
        self != InstallerType::PackageManager
    }
}

/// A package manager a node can have, for package-manager references.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PackageManagerKind {
    Apt,
    Dnf,
    Zypper,
    Pacman,
    Winget,
    Choco,
}

impl PackageManagerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageManagerKind::Apt => "apt",
            PackageManagerKind::Dnf => "dnf",
            PackageManagerKind::Zypper => "zypper",
            PackageManagerKind::Pacman => "pacman",
            PackageManagerKind::Winget => "winget",
            PackageManagerKind::Choco => "choco",
        }
    }
}

/// A package in a package manager's repositories: name plus an optional version constraint in
/// that manager's syntax (`1.22.*` for apt, `1.22.1-1.el9` for dnf …); absent means the
/// newest available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagerPackage {
    pub manager: PackageManagerKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Detection rules
// ---------------------------------------------------------------------------------------------

/// Version comparison operators of detection rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VersionOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// "The found version compares to `version` with `op`", in the semantics of the source (dpkg,
/// rpm, pacman, or Windows dotted versions for MSI, registry, file and winget/choco).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionCheck {
    pub op: VersionOp,
    pub version: String,
}

/// Package databases a detection rule can query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectionManager {
    Dpkg,
    Rpm,
    Pacman,
    Winget,
    Choco,
}

impl DetectionManager {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionManager::Dpkg => "dpkg",
            DetectionManager::Rpm => "rpm",
            DetectionManager::Pacman => "pacman",
            DetectionManager::Winget => "winget",
            DetectionManager::Choco => "choco",
        }
    }
}

/// Registry hive of a registry condition (Windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistryHive {
    Hklm,
    Hkcu,
    Hkcr,
    Hku,
}

/// What a registry condition checks of a value (or the key, when `value` is absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum RegistryCheck {
    /// The key (or the named value) exists.
    Exists,
    /// The value's string form equals this (case-insensitive, as Windows compares).
    Equals { data: String },
    /// The value is a dotted version comparing with `op`.
    Version { op: VersionOp, version: String },
}

/// A detection rule: an AND/OR tree of conditions. Detected means the software is present in
/// the wanted state. Conditions that cannot be evaluated on a node (a registry condition on
/// Linux, a manager the node lacks) make the rule's result an error, never "absent" — an
/// install is not run on a guess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Detection {
    /// Every rule holds (an empty list is refused).
    All {
        #[schema(no_recursion)]
        rules: Vec<Detection>,
    },
    /// At least one rule holds (an empty list is refused).
    Any {
        #[schema(no_recursion)]
        rules: Vec<Detection>,
    },
    /// An MSI product is installed (`{GUID}`), optionally at a version.
    MsiProduct {
        product_code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<VersionCheck>,
    },
    /// A registry key or value (Windows); `key` is the path below the hive, `\`-separated.
    Registry {
        hive: RegistryHive,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        check: RegistryCheck,
        /// Read the 32-bit view on 64-bit Windows (WOW6432Node).
        #[serde(default)]
        wow64_32: bool,
    },
    /// A file or directory exists (absolute path; `%VAR%` on Windows is expanded by the agent).
    FileExists { path: String },
    /// The file's version resource (Windows PE files) compares with the check.
    FileVersion { path: String, check: VersionCheck },
    /// The file's SHA-256 is exactly this (lowercase hex).
    FileSha256 { path: String, sha256: String },
    /// A service (systemd unit on Linux, Windows service) exists.
    ServiceExists { name: String },
    /// A service is running.
    ServiceRunning { name: String },
    /// A package manager knows the package, optionally at a version (in that manager's
    /// version semantics).
    Package {
        manager: DetectionManager,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<VersionCheck>,
    },
    /// A script: detected when it exits 0 and writes something to stdout (as Intune does).
    Script {
        interpreter: Interpreter,
        body: String,
        /// Seconds, 1..=600, default 60.
        #[serde(default = "detection_script_timeout")]
        timeout_secs: u64,
    },
}

fn detection_script_timeout() -> u64 {
    60
}

/// The result of evaluating a detection rule on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DetectionOutcome {
    pub detected: bool,
    /// One line per condition evaluated, for the run's log ("dpkg hello 2.10-3 >= 2.10: yes").
    pub explanation: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Versions and artifacts
// ---------------------------------------------------------------------------------------------

/// A command template: an argv (never a shell string). Placeholders, replaced as whole
/// arguments or inside them: `{file}` (the downloaded artifact), `{dir}` (the extracted
/// archive or the artifact's directory), `{log}` (a log file whose tail is kept with the
/// result), `{package}` (the manager's package name), `{version}`, `{product_code}`.
pub type CommandTemplate = Vec<String>;

/// What must hold on a node before an install is attempted; a node that fails them gets
/// "not applicable" with the reason, not a failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// OS families (empty: the artifacts' platforms decide).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os_families: Vec<OsFamily>,
    /// Minimum OS version (dotted, compared numerically: `12`, `10.0.19045`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_os_version: Option<String>,
    /// Free space needed on the install volume, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_free_disk_mb: Option<u64>,
}

/// Another package that must be installed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// Package name.
    pub package: String,
    /// A version of it; the newest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// How a new version replaces an older one it supersedes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SupersedeMode {
    /// Install over it (the installer upgrades in place).
    Update,
    /// Run the old version's uninstall first, then install.
    UninstallFirst,
}

/// "This version replaces version `version` of `package`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Supersedence {
    pub package: String,
    pub version: String,
    pub mode: SupersedeMode,
}

/// An installer file of a version for one platform and architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    pub platform: OsFamily,
    pub arch: Arch,
    /// Depot blob (lowercase hex SHA-256).
    pub sha256: String,
    pub size: u64,
    /// The original file name (the agent saves the download under it; installers care).
    pub file_name: String,
}

/// Everything that describes how to install, detect and remove one version. The shape an
/// operator posts (with [`CreateVersionRequest`]) and the shape a plan carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    pub installer_type: InstallerType,
    /// For `package_manager` versions: the package in the manager's repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_package: Option<ManagerPackage>,
    /// The name the node's package database knows (`{package}`), for deb/rpm/pacman.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<String>,
    /// MSI ProductCode (`{product_code}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    /// Install command; the installer type's default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install_command: CommandTemplate,
    /// Uninstall command; the installer type's default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uninstall_command: CommandTemplate,
    /// Exit codes meaning success; the type's default when empty (`[0]`, MSI `[0, 1707]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_exit_codes: Vec<i32>,
    /// Success, a reboot is needed but may wait (MSI 3010).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_reboot_exit_codes: Option<Vec<i32>>,
    /// Success, the installer needs a reboot now (MSI 1641).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_reboot_exit_codes: Option<Vec<i32>>,
    /// Seconds per install/uninstall command, default 3600.
    #[serde(default = "default_install_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub requirements: Requirements,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_install: Option<crate::jobs::ScriptBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<crate::jobs::ScriptBody>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<Supersedence>,
    /// Whether the version is present on a node.
    pub detection: Detection,
}

fn default_install_timeout() -> u64 {
    3600
}

// ---------------------------------------------------------------------------------------------
// Console API
// ---------------------------------------------------------------------------------------------

/// A package in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PackageInfo {
    pub id: String,
    /// Unique, `[a-z0-9][a-z0-9._+-]*`.
    pub name: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub version_count: u64,
    /// The newest version (by creation), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PackagePage {
    pub items: Vec<PackageInfo>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PackageListQuery {
    /// Case-insensitive substring of the name or display name.
    pub search: Option<String>,
    pub offset: Option<u64>,
    /// 1..=1000, default 100.
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePackageRequest {
    pub name: String,
    /// Defaults to `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Fields to change; absent ones stay. `null` clears an optional text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePackageRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::api::present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub publisher: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::api::present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
}

/// An artifact in a create-version request: a blob already in the depot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRequest {
    pub platform: OsFamily,
    pub arch: Arch,
    pub sha256: String,
    pub file_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersionRequest {
    pub version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactRequest>,
    pub spec: VersionSpec,
}

/// A stored version: its spec with every default filled in, and its artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    pub id: String,
    pub package_id: String,
    pub package: String,
    pub version: String,
    pub artifacts: Vec<Artifact>,
    pub spec: VersionSpec,
    pub created_at_ms: i64,
    pub created_by: String,
}

/// The answer to `POST /api/v1/packages/upload`: the stored blob, what the parser read, and a
/// version request pre-filled from it (the operator reviews and posts it, or the upload
/// created it at once with `?create=true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UploadAnalysis {
    pub sha256: String,
    pub size: u64,
    pub file_name: String,
    /// The parser's findings (format-specific fields), or absent when the format is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Why the file could not be parsed, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// Suggested package name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested: Option<CreateVersionRequest>,
    /// The version created from the suggestion (only with `create=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<VersionInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PackageUploadQuery {
    /// The file's name (its format is read from the content; the name is kept for the agent).
    pub file_name: Option<String>,
    /// Create the package (if new) and the version from the parsed metadata at once.
    pub create: Option<bool>,
}

/// A request to install or uninstall a package on devices (a job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwareJobRequest {
    pub package: String,
    /// A version; the newest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub targets: crate::jobs::JobTargets,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
    #[serde(default)]
    pub retry: crate::jobs::RetryPolicy,
    /// Install even when detection says the version is present (install only).
    #[serde(default)]
    pub force: bool,
}

// ---------------------------------------------------------------------------------------------
// Resolved plans (inside the job spec, signed with the run)
// ---------------------------------------------------------------------------------------------

/// What to do with one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepOperation {
    Install,
    Uninstall,
    /// Uninstall only if detection finds it (a superseded version replaced by uninstall-first).
    UninstallIfPresent,
}

/// One step of a plan: a version, fully described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanStep {
    pub operation: StepOperation,
    pub package: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    pub spec: VersionSpec,
}

/// A resolved install or uninstall, in execution order: dependencies, superseded versions to
/// remove, then the requested version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwarePlan {
    pub steps: Vec<PlanStep>,
    /// Install even when detection says it is present.
    #[serde(default)]
    pub force: bool,
}

/// Where an agent may download an artifact from, in the order given (the server's fallback
/// order for the device). Each source is tried in turn; a failure or a SHA-256 mismatch moves
/// on to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DownloadSource {
    /// The Capstan server itself (`/agent/v1/depot/blobs/{sha256}`, with the device
    /// credential).
    Server,
    /// An HTTP(S) mirror holding blobs as `{base_url}/{sha256}`.
    Http { name: String, base_url: String },
    /// A directory (a mounted file share on Linux, a UNC path on Windows) holding blobs as
    /// `{path}/{sha256}`.
    Path { name: String, path: String },
}

// ---------------------------------------------------------------------------------------------
// Depot sources
// ---------------------------------------------------------------------------------------------

/// What kind of place a depot source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An HTTP(S) server holding blobs as `{location}/{sha256}`.
    Http,
    /// A directory (a mounted share on Linux, a UNC path on Windows) holding blobs as
    /// `{location}/{sha256}`.
    Path,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Http => "http",
            SourceKind::Path => "path",
        }
    }
}

/// A group a source serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceGroup {
    pub id: String,
    pub name: String,
}

/// A depot source: another place agents download artifacts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DepotSourceInfo {
    pub id: String,
    pub name: String,
    pub kind: SourceKind,
    /// What agents use: the mirror's base URL or the share's directory.
    pub location: String,
    /// Where the server copies blobs when syncing: a directory (the same share or the
    /// mirror's document root as the server sees it), or `s3://bucket/prefix` for a mirror
    /// that is an S3 bucket (written with the depot's S3 endpoint and credentials when the
    /// depot is on S3, else the server's standard AWS configuration). Absent when the server
    /// cannot write to the source (sync is then refused; status is checked over HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_path: Option<String>,
    /// Lower is tried first.
    pub priority: i64,
    /// Devices this source serves never fall back to the server (an air-gapped site).
    pub exclusive: bool,
    /// The groups (with their descendants) this source serves; empty means every device.
    pub groups: Vec<SourceGroup>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSourceRequest {
    /// `[a-z0-9][a-z0-9._-]*`, at most 64 bytes.
    pub name: String,
    pub kind: SourceKind,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_path: Option<String>,
    /// Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default)]
    pub exclusive: bool,
    /// Group ids or names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Fields to change; absent ones stay. `sync_path: null` clears it; `groups` replaces the
/// scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSourceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::api::present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub sync_path: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// What to copy to a source: one version's artifacts, or every version of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    pub package: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The state of one blob on one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceBlobState {
    /// Never copied (and not seen there).
    Absent,
    /// A copy is under way.
    Pending,
    /// Copied and verified (size and SHA-256).
    Synced,
    /// The copy failed; see `error`.
    Failed,
    /// Was synced, but a check found it gone or different.
    Missing,
}

impl SourceBlobState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceBlobState::Absent => "absent",
            SourceBlobState::Pending => "pending",
            SourceBlobState::Synced => "synced",
            SourceBlobState::Failed => "failed",
            SourceBlobState::Missing => "missing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SourceBlobState::Absent,
            SourceBlobState::Pending,
            SourceBlobState::Synced,
            SourceBlobState::Failed,
            SourceBlobState::Missing,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One artifact on one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceArtifactStatus {
    pub package: String,
    pub version: String,
    pub platform: OsFamily,
    pub arch: Arch,
    pub sha256: String,
    pub size: u64,
    pub file_name: String,
    pub state: SourceBlobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<i64>,
}

/// A source's status: every artifact of the catalogue and its state there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceStatus {
    pub source: DepotSourceInfo,
    pub synced: u64,
    pub pending: u64,
    pub failed: u64,
    /// Absent or missing.
    pub lacking: u64,
    pub artifacts: Vec<SourceArtifactStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourceStatusQuery {
    /// Check every artifact on the source now (file size on `sync_path`, or `HEAD` on an HTTP
    /// mirror without one) and record what is gone.
    pub verify: Option<bool>,
}

/// The answer to a sync request: what was queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SyncStarted {
    pub source: String,
    /// Digests being copied (already synced ones are skipped).
    pub queued: Vec<String>,
    pub already_synced: Vec<String>,
}

/// One version that some sources lack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriftRow {
    pub package: String,
    pub version: String,
    /// Source names lacking at least one artifact of the version (absent, missing, failed or
    /// still pending).
    pub lacking: Vec<String>,
    /// Source names holding every artifact.
    pub complete: Vec<String>,
}

/// Which source lacks which version (opsi's depot diff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriftReport {
    pub sources: Vec<String>,
    /// Only versions that at least one source lacks.
    pub rows: Vec<DriftRow>,
}

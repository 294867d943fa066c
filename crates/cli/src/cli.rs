//! The command-line grammar of `capstan` (clap derive). Help texts here are what operators read
//! in `capstan --help`, so they say what a command does and which permission it needs.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::deploy_cli;
use crate::duration::parse_duration_secs;
use crate::params::{parse_arg, parse_env, parse_param};

/// Operator command line of Capstan: enroll, inventory and manage devices.
#[derive(Debug, Parser)]
#[command(
    name = "capstan",
    version,
    after_help = "Credentials come from --server/--token/--fingerprint, then the environment \
                  (CAPSTAN_SERVER, CAPSTAN_TOKEN, CAPSTAN_FINGERPRINT), then the file written by \
                  `capstan login` ($CAPSTAN_CONFIG, $XDG_CONFIG_HOME/capstan/cli.toml or \
                  ~/.config/capstan/cli.toml)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

const GLOBAL: &str = "Global options";

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Server URL, e.g. https://capstan.example.com:8443
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    pub server: Option<String>,
    /// Session or API token (prefer CAPSTAN_TOKEN: arguments are visible to other local users)
    #[arg(long, global = true, value_name = "TOKEN", help_heading = GLOBAL)]
    pub token: Option<String>,
    /// Pin the server certificate by its SHA-256 fingerprint (sha256:<64 hex digits>)
    #[arg(long, global = true, value_name = "FINGERPRINT", help_heading = GLOBAL)]
    pub fingerprint: Option<String>,
    /// Output format of commands that print data (json is stable, see the README)
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value_t = OutputFormat::Table,
        help_heading = GLOBAL
    )]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    // Human-readable tables and summaries.
    Table,
    // Stable JSON, documented in the README of capstan-cli.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in with a username and password and save the session for later commands
    Login(LoginArgs),
    /// End the saved session on the server and forget it locally
    Logout,
    /// Show the user the current credentials belong to
    Whoami,
    /// Change your own password (asks for the current one); your other sessions end
    Passwd,
    /// Manage enrollment tokens (what new devices enroll with)
    #[command(subcommand, after_help = TOKENS_EXAMPLES)]
    Tokens(TokensCommand),
    /// Manage your API tokens (long-lived credentials for scripts)
    #[command(subcommand, name = "api-tokens")]
    ApiTokens(ApiTokensCommand),
    /// Manage console users (admin only)
    #[command(subcommand, after_help = USERS_EXAMPLES)]
    Users(UsersCommand),
    /// Read the audit log: who did what, newest first (admin only)
    #[command(subcommand, after_help = AUDIT_EXAMPLES)]
    Audit(AuditCommand),
    /// List, inspect and act on enrolled devices
    #[command(subcommand, after_help = DEVICES_EXAMPLES)]
    Devices(DevicesCommand),
    /// Manage device groups; a group's members include the members of its descendants
    #[command(subcommand, after_help = GROUPS_EXAMPLES)]
    Groups(GroupsCommand),
    /// Add or remove device tags in bulk
    #[command(subcommand, after_help = TAGS_EXAMPLES)]
    Tags(TagsCommand),
    /// Define custom fields and set their values on devices
    #[command(subcommand, after_help = FIELDS_EXAMPLES)]
    Fields(FieldsCommand),
    /// Run a command, a script or a reboot on devices and groups and print each device's
    /// result as it arrives
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// List, inspect, watch, cancel and retry jobs; circuit breakers
    #[command(subcommand, after_help = JOBS_EXAMPLES)]
    Jobs(JobsCommand),
    /// The script library: saved scripts with typed parameters; every edit is a new version
    #[command(subcommand, after_help = SCRIPTS_EXAMPLES)]
    Scripts(ScriptsCommand),
    /// Software packages: upload installer files, inspect and edit packages and versions
    #[command(subcommand, after_help = PACKAGES_EXAMPLES)]
    Packages(PackagesCommand),
    /// Install or uninstall a package on devices and groups and print each device's result
    /// as it arrives (output and exit status as for `capstan run`)
    #[command(subcommand, after_help = SOFTWARE_EXAMPLES)]
    Software(SoftwareCommand),
    /// Depot sources (file shares and HTTP mirrors agents download from) and the drift report
    #[command(subcommand, after_help = DEPOT_EXAMPLES)]
    Depot(DepotCommand),
    /// Assign a package to a group or a device: required, available or uninstall
    #[command(after_help = deploy_cli::ASSIGN_HELP)]
    Assign(deploy_cli::AssignmentArgs),
    /// List, show and remove assignments (which package belongs on which devices)
    #[command(subcommand, after_help = deploy_cli::ASSIGNMENTS_EXAMPLES)]
    Assignments(deploy_cli::AssignmentsCommand),
    /// Deployments: assignments with a schedule, window and network policies; their progress
    #[command(subcommand, after_help = deploy_cli::DEPLOYMENTS_EXAMPLES)]
    Deployments(deploy_cli::DeploymentsCommand),
    /// Maintenance windows: when required installs and uninstalls may happen on a group
    #[command(
        subcommand,
        visible_alias = "maintenance-windows",
        after_help = deploy_cli::WINDOWS_EXAMPLES
    )]
    Windows(deploy_cli::WindowsCommand),
    /// Print a shell completion script to standard output
    Completions {
        /// Shell to generate the script for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const DEVICES_EXAMPLES: &str = "Examples:
  capstan devices list --status offline --sort -last_seen
  capstan devices list --search web --all -o json
  capstan devices list --group Europe --tag prod --field tier=gold
  capstan devices show 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b
  capstan devices timeline 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b --kind inventory_change
  capstan devices delete 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b --yes
  capstan devices software 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b
  capstan devices software-history 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b nginx --logs";

const GROUPS_EXAMPLES: &str = "Examples:
  capstan groups create Europe --description \"All European sites\"
  capstan groups create Berlin --parent Europe
  capstan groups add Berlin --device 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b
  capstan groups add Berlin --filter-search ber- --filter-tag prod
  capstan groups members Europe
  capstan groups edit Berlin --top-level
  capstan groups delete Berlin --yes
  capstan groups preview --rule debian.json
  capstan groups create Debian --rule debian.json
  echo '{\"tag\": \"web\"}' | capstan groups edit Web --rule -
  capstan groups explain Debian 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b";

const TAGS_EXAMPLES: &str = "Examples:
  capstan tags add web prod --device 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b
  capstan tags remove prod --filter-group Europe --filter-status offline";

const FIELDS_EXAMPLES: &str = "Examples:
  capstan fields define tier --type enum --enum-value gold --enum-value silver --default silver
  capstan fields define warranty_end --type date --description \"End of hardware warranty\"
  capstan fields set 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b warranty_end 2027-03-31
  capstan fields unset 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b tier
  capstan fields list";

/// The output contract of `capstan run`, `capstan scripts run` and `capstan jobs watch`.
/// Scripts and tests parse it: keep it stable, and keep the README in step.
const RUN_HELP: &str = "Targets: --device takes device ids (see `capstan devices list`), --group a
group id or name; repeat both as needed. The command after `--` runs directly (no shell);
options go before `--`.

Output while waiting (table): for each device as its run ends, a header line
  HOSTNAME: STATE (exit CODE, SECONDS s, attempt N)
(parts that do not apply are left out; STATE is succeeded, failed, timed_out, cancelled or
expired; `HOSTNAME [DEVICE-ID]` when several devices of the job share the hostname), then `  reason: TEXT` when the run has a reason other than its exit code, its
standard output indented by four spaces, and `  stderr:` followed by its standard error
indented by four spaces when there is any. At the end one line
  Done: N succeeded, N failed, N timed out, N cancelled, N expired (job ID).
With --output json: one JSON object per line (NDJSON): {\"type\":\"result\", job_id, run_id,
device_id, hostname, state, attempt, exit_code, reason, error, started_at_ms, finished_at_ms,
duration_ms, stdout, stderr, stdout_truncated, stderr_truncated} per device, then
{\"type\":\"summary\", job_id, complete, counts}. A progress line is drawn on standard error
when it is a terminal. Ctrl-C stops watching but not the job: watch again with `capstan jobs
watch ID`, cancel it with `capstan jobs cancel ID`.
With --no-wait: the job id on standard output (--output json: the job).

Exit status: 0 every run succeeded; 6 (runs_failed) some run failed, timed out, was cancelled
or expired; 130 (interrupted) Ctrl-C; otherwise as for every command (1, 2, 3, 4, 5).

Examples:
  capstan run --group web -- systemctl restart nginx
  capstan run --device 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b --timeout 30s -- df -h /
  capstan run --group web --script deploy.sh --attempts 3 --backoff 30s -- v1.2.3
  capstan run --group lab --reboot --expires 2h
  capstan run --group web --no-wait -o json -- uptime";

const JOBS_EXAMPLES: &str = "Examples:
  capstan jobs list
  capstan jobs show 0190c3a4-0000-7000-8000-0000000000a1
  capstan jobs watch 0190c3a4-0000-7000-8000-0000000000a1
  capstan jobs runs 0190c3a4-0000-7000-8000-0000000000a1 --state failed
  capstan jobs run 0190c3a4-0000-7000-8000-0000000000a1 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b
  capstan jobs cancel 0190c3a4-0000-7000-8000-0000000000a1
  capstan jobs retry 0190c3a4-0000-7000-8000-0000000000a1
  capstan jobs breakers --all
  capstan jobs breaker-reset 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b";

const SCRIPTS_EXAMPLES: &str = "Parameters are declared as name:type[=default][!] with type string,
number, boolean, date or enum(a|b|c); a trailing ! makes the parameter required. A script
receives each value as a positional argument (in declaration order) and as the environment
variable CAPSTAN_PARAM_<NAME>.

Examples:
  capstan scripts add restart-service --file restart.sh --description \"Restart a unit\" \\
      --param unit:string! --param wait:number=5
  capstan scripts run restart-service --group web --arg unit=nginx
  capstan scripts edit restart-service --file restart.sh
  capstan scripts show restart-service --version 1
  capstan scripts versions restart-service";

const PACKAGES_EXAMPLES: &str =
    "The server reads the uploaded file (deb, rpm, pacman, msi, exe, script
archive) and suggests a version from its metadata: name, version, platform, install and
uninstall commands and a detection rule. Without --create nothing but the file is stored.

Examples:
  capstan packages upload hello_2.10-3_amd64.deb
  capstan packages upload hello_2.10-3_amd64.deb --create
  capstan packages upload setup.msi --create --package acme-agent
  capstan packages list --search hello
  capstan packages show hello
  capstan packages versions hello
  capstan packages edit hello --display-name \"GNU Hello\" --clear-publisher
  capstan packages version show hello 2.10-3 -o json > spec.json
  capstan packages version edit hello 2.10-3 --spec spec.json
  capstan packages version delete hello 2.10-3 --yes
  capstan packages delete hello --yes";

const SOFTWARE_EXAMPLES: &str =
    "PACKAGE is a package name or id, optionally with @VERSION (split at
the first @; versions may contain : and -); without a version the newest is used. The server
resolves the version, its dependencies and what it supersedes when the job is created; each
device checks detection first and skips what is already in the wanted state (--force installs
anyway).

Examples:
  capstan software install hello --group web
  capstan software install hello@1:2.10-3 --device 0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b
  capstan software install hello --group lab --force --no-wait -o json
  capstan software uninstall hello@2.10-3 --group web";

const DEPOT_EXAMPLES: &str =
    "A source is a place agents download artifacts from before the server, tried by
priority (lower first), for every device or only for the members of its groups. An exclusive
source's devices never fall back to the server (an air-gapped site). The server copies artifacts
to a source it can write to (its sync path) and records each artifact's state there.

Examples:
  capstan depot sources add berlin-share --path /mnt/depot --sync-path /srv/depot --group Berlin
  capstan depot sources add mirror --http https://mirror.example.com/capstan --priority 50
  capstan depot sources sync berlin-share hello@1:2.10-3 --wait
  capstan depot sources status berlin-share --verify
  capstan depot sources list
  capstan depot sources remove mirror --yes
  capstan depot drift";

const TOKENS_EXAMPLES: &str = "Examples:
  capstan tokens create --name \"Berlin laptops\" --expires-in 7d --max-uses 50 --tag berlin
  capstan tokens list
  capstan tokens revoke 0190c3a4-0000-7000-8000-000000000001";

const USERS_EXAMPLES: &str = "Examples:
  capstan users create --username ops1 --role operator
  capstan users update 0190c3a4-0000-7000-8000-000000000002 --role viewer
  capstan users update 0190c3a4-0000-7000-8000-000000000002 --disable
  capstan users update 0190c3a4-0000-7000-8000-000000000002 --reset-password
  capstan users delete 0190c3a4-0000-7000-8000-000000000002 --yes";

const AUDIT_EXAMPLES: &str = "Examples:
  capstan audit list
  capstan audit list --actor admin --action device.delete
  capstan audit list --all -o json";

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Console username
    #[arg(long, short = 'u')]
    pub username: String,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an enrollment token and print it with a ready-to-paste install command
    Create(CreateEnrollmentTokenArgs),
    /// List enrollment tokens
    List,
    /// Revoke an enrollment token (devices already enrolled keep working)
    Revoke {
        /// Token id (from `capstan tokens list`)
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateEnrollmentTokenArgs {
    /// Description, e.g. "Berlin office laptops"
    #[arg(long)]
    pub name: String,
    /// Lifetime, e.g. 30m, 12h, 7d, 1d12h (server default: 7d, at most 365d)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub expires_in: Option<u64>,
    /// How many devices may enroll with it (default: unlimited until expiry)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_uses: Option<u32>,
    /// Tag given to every device enrolled with this token (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ApiTokensCommand {
    /// Create an API token for your user; the secret is shown only once
    Create {
        /// Description, e.g. "backup script"
        #[arg(long)]
        name: String,
        /// Lifetime, e.g. 30m, 12h, 90d (default: never expires)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
        expires_in: Option<u64>,
    },
    /// List your API tokens
    List,
    /// Revoke an API token
    Revoke {
        /// Token id (from `capstan api-tokens list`)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List console users
    List,
    /// Create a console user; the password is read like `capstan login` reads it
    Create {
        #[arg(long, short = 'u')]
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Change a user's role, disable or enable it, or set a new password for it. A role
    /// change, disabling or a new password ends the user's sessions
    Update(UpdateUserArgs),
    /// Delete a user with its sessions and API tokens
    Delete {
        /// User id (from `capstan users list`)
        id: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)))]
pub struct UpdateUserArgs {
    /// User id (from `capstan users list`)
    pub id: String,
    /// New role
    #[arg(long, value_enum, group = "change")]
    pub role: Option<RoleArg>,
    /// Disable the user: no login, its API tokens stop working
    #[arg(long, conflicts_with = "enable", group = "change")]
    pub disable: bool,
    /// Enable a disabled user again
    #[arg(long, group = "change")]
    pub enable: bool,
    /// Set a new password, read like `capstan login` reads it (asked twice on a terminal)
    #[arg(long, group = "change")]
    pub reset_password: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, newest first (one page unless --all)
    List(AuditListArgs),
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Number of entries, 1 to 500 (server default: 100; with --all, the page size)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=500))]
    pub limit: Option<u64>,
    /// Only entries older than this entry id (for paging back)
    #[arg(long, value_name = "ID")]
    pub before: Option<i64>,
    /// Only entries by this actor: a username, or an actor as logged (user:NAME, system)
    #[arg(long, value_name = "ACTOR")]
    pub actor: Option<String>,
    /// Only entries with this action, e.g. device.delete, user.update
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Fetch every older page too
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything, including users and deleting devices
    Admin,
    /// Read everything, manage enrollment tokens, act on devices
    Operator,
    /// Read-only
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List devices (one page unless --all)
    List(DeviceListArgs),
    /// Show one device: hardware, OS, network, software summary
    Show {
        /// Device id
        id: String,
    },
    /// Show what changed on a device, newest first
    Timeline(TimelineArgs),
    /// Ask the agent to report its inventory now
    Refresh {
        /// Device id
        id: String,
    },
    /// Revoke the device credential; the record and its history are kept
    Revoke {
        /// Device id
        id: String,
    },
    /// Delete the device and all its data; its agent can no longer connect
    Delete {
        /// Device id
        id: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// A device's software: each package's status, the assignments that reach it and the
    /// conflicts between them
    Software {
        /// Device id
        device: String,
    },
    /// One package's status changes on a device, newest first
    SoftwareHistory {
        /// Device id
        device: String,
        /// Package id or name
        package: String,
        /// Also print the installer log of each change
        #[arg(long)]
        logs: bool,
    },
    /// Install a package that is available to the device now
    SoftwareInstall {
        /// Device id
        device: String,
        /// Package id or name
        package: String,
    },
}

#[derive(Debug, Args)]
pub struct DeviceListArgs {
    /// Only devices whose hostname contains this text (case-insensitive)
    #[arg(long, short = 's')]
    pub search: Option<String>,
    /// Only online or only offline devices
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Sort key: hostname (default), last_seen, enrolled; prefix with - for descending
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Page size, 1 to 1000 (server default: 100)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: Option<u64>,
    /// Skip this many devices
    #[arg(long, value_name = "N")]
    pub offset: Option<u64>,
    /// Fetch every page instead of one
    #[arg(long, conflicts_with = "offset")]
    pub all: bool,
    /// Only members of this group (id or name) or of its descendant groups
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Only devices with this tag (exact)
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// Only devices whose custom field has this value, e.g. tier=gold (defaults count)
    #[arg(long, value_name = "NAME=VALUE")]
    pub field: Option<String>,
    /// Only devices with this OS: its name ("Debian GNU/Linux") or name and version
    /// ("Debian GNU/Linux 12"), exact
    #[arg(long, value_name = "OS")]
    pub os: Option<String>,
    /// Only devices of this hardware model: manufacturer and product ("LENOVO 20XW"), exact
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
}

/// Devices selected by the same filters as `devices list`.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Devices whose hostname contains this text
    #[arg(long, value_name = "TEXT")]
    pub filter_search: Option<String>,
    /// Online or offline devices
    #[arg(long, value_enum, value_name = "STATUS")]
    pub filter_status: Option<StatusArg>,
    /// Devices with this tag
    #[arg(long, value_name = "TAG")]
    pub filter_tag: Option<String>,
    /// Members of this group or its descendants
    #[arg(long, value_name = "GROUP")]
    pub filter_group: Option<String>,
    /// Devices whose custom field has this value (NAME=VALUE)
    #[arg(long, value_name = "NAME=VALUE")]
    pub filter_field: Option<String>,
}

impl FilterArgs {
    pub fn is_empty(&self) -> bool {
        self.filter_search.is_none()
            && self.filter_status.is_none()
            && self.filter_tag.is_none()
            && self.filter_group.is_none()
            && self.filter_field.is_none()
    }
}

/// Which devices a bulk command changes: `--device` ids, filters, or both (united).
#[derive(Debug, Args)]
pub struct SelectionArgs {
    /// Device id (repeatable, at most 10,000)
    #[arg(long = "device", value_name = "ID")]
    pub devices: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// List groups with their member counts
    List,
    /// Show one group (by id or name)
    Show {
        /// Group id or name
        group: String,
    },
    /// Create a static group, or a dynamic one with --rule
    Create {
        /// Group name (unique, case-insensitive)
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Parent group (id or name)
        #[arg(long, value_name = "GROUP")]
        parent: Option<String>,
        /// Make a dynamic group with the JSON rule in FILE (`-` for standard input)
        #[arg(long, value_name = "FILE")]
        rule: Option<String>,
    },
    /// Rename, describe or move a group
    #[command(group(ArgGroup::new("change").required(true).multiple(true)))]
    Edit {
        /// Group id or name
        group: String,
        /// New name
        #[arg(long, group = "change")]
        name: Option<String>,
        /// New description
        #[arg(long, group = "change")]
        description: Option<String>,
        /// New parent group (id or name); refused if it would make a cycle
        #[arg(
            long,
            value_name = "GROUP",
            group = "change",
            conflicts_with = "top_level"
        )]
        parent: Option<String>,
        /// Make the group top-level
        #[arg(long, group = "change")]
        top_level: bool,
        /// Replace a dynamic group's rule with the JSON in FILE (`-` for standard input)
        #[arg(long, value_name = "FILE", group = "change")]
        rule: Option<String>,
    },
    /// Show which devices a rule would match, without saving it
    Preview {
        /// The JSON rule in FILE (`-` for standard input)
        #[arg(long, value_name = "FILE")]
        rule: String,
        /// How many matching devices to list, 1 to 1000 (server default: 100)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: Option<u64>,
    },
    /// Explain, condition by condition, why a device is or is not a member of a group
    Explain {
        /// Group id or name
        group: String,
        /// Device id
        device: String,
    },
    /// Delete a group (refused while it has child groups); its devices leave it
    Delete {
        /// Group id or name
        group: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// List the devices of a group and of its descendant groups
    Members {
        /// Group id or name
        group: String,
        /// Page size, 1 to 1000 (server default: 100)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: Option<u64>,
        /// Skip this many devices
        #[arg(long, value_name = "N")]
        offset: Option<u64>,
    },
    /// Add devices to a static group
    Add {
        /// Group id or name
        group: String,
        #[command(flatten)]
        selection: SelectionArgs,
    },
    /// Remove devices from a static group
    Remove {
        /// Group id or name
        group: String,
        #[command(flatten)]
        selection: SelectionArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TagsCommand {
    /// Add tags to devices
    Add {
        /// Tags: letters, digits and -_.:/=
        #[arg(required = true, value_name = "TAG")]
        tags: Vec<String>,
        #[command(flatten)]
        selection: SelectionArgs,
    },
    /// Remove tags from devices
    Remove {
        /// Tags: letters, digits and -_.:/=
        #[arg(required = true, value_name = "TAG")]
        tags: Vec<String>,
        #[command(flatten)]
        selection: SelectionArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FieldTypeArg {
    String,
    Number,
    Boolean,
    /// RFC 3339 date (2026-01-31) or date-time
    Date,
    /// One of the --enum-value values
    Enum,
}

#[derive(Debug, Subcommand)]
pub enum FieldsCommand {
    /// Define a custom field
    Define {
        /// Field name: a lowercase letter, then a-z, 0-9 and _
        name: String,
        #[arg(long = "type", value_enum)]
        field_type: FieldTypeArg,
        /// Allowed value of an enum field (repeatable)
        #[arg(long = "enum-value", value_name = "VALUE")]
        enum_values: Vec<String>,
        /// Value of devices without their own
        #[arg(long, value_name = "VALUE")]
        default: Option<String>,
        /// Every device must have a value (needs --default)
        #[arg(long, requires = "default")]
        required: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List custom field definitions
    List,
    /// Delete a custom field and every device's value of it
    Delete {
        name: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Set a device's value (read as the field's type: 42, true, 2026-01-31, text)
    Set {
        /// Device id
        device: String,
        name: String,
        value: String,
    },
    /// Remove a device's own value, so the default applies again
    Unset {
        /// Device id
        device: String,
        name: String,
    },
}

/// Which devices a job runs on (at least one `--device` or `--group`).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").args(["devices", "groups"]).required(true).multiple(true)))]
pub struct TargetArgs {
    /// Device id (repeatable); ids only, see `capstan devices list`
    #[arg(long = "device", value_name = "ID")]
    pub devices: Vec<String>,
    /// Group id or name (repeatable); members of its descendant groups are included
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Also run on devices that join one of the groups later, until the job expires
    #[arg(long, requires = "groups")]
    pub follow_joins: bool,
}

/// How each device runs the job.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Kill the process group after this long, e.g. 30s, 10m (server default 1h)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub timeout: Option<u64>,
    /// Runs no device has picked up by then become expired, e.g. 2h (server default 24h)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub expires: Option<u64>,
    /// Attempts per device, 1 to 20 (default 1); failed, timed-out and interrupted attempts
    /// are retried
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: Option<u32>,
    /// Delay before the second attempt, doubled for each further one (default 60s)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs, requires = "attempts")]
    pub backoff: Option<u64>,
    /// Local user to run as (default: the agent's user, root)
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    /// Absolute working directory (default: a private temporary directory)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Environment variable of the process (repeatable); NAME= sets an empty value
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Print the job id and return at once instead of waiting for the results
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InterpreterArg {
    Sh,
    Bash,
    Python3,
    /// Windows agents only
    Powershell,
    /// Windows agents only
    Cmd,
}

impl InterpreterArg {
    pub fn wire(self) -> capstan_proto::jobs::Interpreter {
        use capstan_proto::jobs::Interpreter;
        match self {
            InterpreterArg::Sh => Interpreter::Sh,
            InterpreterArg::Bash => Interpreter::Bash,
            InterpreterArg::Python3 => Interpreter::Python3,
            InterpreterArg::Powershell => Interpreter::Powershell,
            InterpreterArg::Cmd => Interpreter::Cmd,
        }
    }
}

/// `capstan run`: what to run (a command after `--`, `--script FILE` or `--reboot`) and where.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Run the script in FILE (`-` for standard input); the words after `--` become its
    /// positional arguments
    #[arg(long, value_name = "FILE", conflicts_with = "reboot")]
    pub script: Option<String>,
    /// Interpreter of --script (default: the one its #! line names, else sh)
    #[arg(long, value_enum, requires = "script")]
    pub interpreter: Option<InterpreterArg>,
    /// Reboot the devices; a run succeeds when its agent reports from the new boot
    #[arg(long, conflicts_with = "command")]
    pub reboot: bool,
    /// Name shown in job lists (default: the command line)
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub exec: ExecArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// The program and its arguments, after `--`: run directly, never through a shell
    #[arg(last = true, value_name = "CMD", required_unless_present_any = ["script", "reboot"])]
    pub command: Vec<String>,
}

fn parse_run_state(s: &str) -> Result<capstan_proto::jobs::RunState, String> {
    use capstan_proto::jobs::RunState;
    RunState::parse(s).ok_or_else(|| {
        format!(
            "unknown state {s:?}; one of {}",
            RunState::ALL.map(RunState::as_str).join(", ")
        )
    })
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first, with their progress
    List {
        /// Page size, 1 to 500 (server default: 50)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=500))]
        limit: Option<u64>,
        /// Skip this many jobs
        #[arg(long, value_name = "N")]
        offset: Option<u64>,
    },
    /// Show a job: what it runs, its targets, its run counts and its runs
    Show {
        /// Job id
        job: String,
    },
    /// Print each device's result as it arrives, starting with those already there (output
    /// and exit status as for `capstan run`)
    Watch {
        /// Job id
        job: String,
    },
    /// List a job's runs (one per device), by hostname
    Runs {
        /// Job id
        job: String,
        /// Only runs in this state: queued, delivered, running, rebooting, succeeded, failed,
        /// timed_out, cancelled, expired
        #[arg(long, value_name = "STATE", value_parser = parse_run_state)]
        state: Option<capstan_proto::jobs::RunState>,
        /// Page size, 1 to 500 (server default: 50)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=500))]
        limit: Option<u64>,
        /// Skip this many runs
        #[arg(long, value_name = "N", conflicts_with = "all")]
        offset: Option<u64>,
        /// Fetch every page
        #[arg(long)]
        all: bool,
    },
    /// Show one run: every attempt with its output, and the run's state history
    Run {
        /// Job id
        job: String,
        /// Run id, or the id of the device the run is for
        run: String,
    },
    /// Cancel a job's unfinished runs (or one run with --run); running processes are killed
    Cancel {
        /// Job id
        job: String,
        /// Cancel only this run (run id or device id)
        #[arg(long, value_name = "RUN_OR_DEVICE")]
        run: Option<String>,
    },
    /// Give every failed and timed-out run of a job a new attempt
    Retry {
        /// Job id
        job: String,
    },
    /// Devices' circuit breakers: after repeated failed attempts a device's retries stop
    /// until the breaker is reset
    Breakers {
        /// Every device with failures, not only open breakers
        #[arg(long)]
        all: bool,
    },
    /// Reset a device's circuit breaker; the retries it held are queued again
    BreakerReset {
        /// Device id
        device: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScriptsCommand {
    /// List saved scripts at their latest version
    List,
    /// Show a script (by id or name): parameters and body
    Show {
        /// Script id or name
        script: String,
        /// This version instead of the latest
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },
    /// List a script's versions, newest first
    Versions {
        /// Script id or name
        script: String,
    },
    /// Save a new script (version 1)
    Add {
        /// Script name (unique)
        name: String,
        /// The script body (`-` for standard input)
        #[arg(long, value_name = "FILE")]
        file: String,
        /// Interpreter (default: the one the #! line names, else sh)
        #[arg(long, value_enum)]
        interpreter: Option<InterpreterArg>,
        #[arg(long, default_value = "")]
        description: String,
        /// Parameter, name:type[=default][!] (repeatable, in positional order)
        #[arg(long = "param", value_name = "SPEC", value_parser = parse_param)]
        params: Vec<capstan_proto::jobs::ScriptParameter>,
    },
    /// Edit a script: saves a new version with the given changes
    #[command(group(ArgGroup::new("change").required(true).multiple(true)))]
    Edit {
        /// Script id or name
        script: String,
        /// New body (`-` for standard input); its #! line sets the interpreter unless
        /// --interpreter is given
        #[arg(long, value_name = "FILE", group = "change")]
        file: Option<String>,
        #[arg(long, value_enum, group = "change")]
        interpreter: Option<InterpreterArg>,
        #[arg(long, group = "change")]
        description: Option<String>,
        /// New name
        #[arg(long, value_name = "NAME", group = "change")]
        rename: Option<String>,
        /// Replace the parameters with these (repeatable; name:type[=default][!])
        #[arg(long = "param", value_name = "SPEC", value_parser = parse_param, group = "change")]
        params: Vec<capstan_proto::jobs::ScriptParameter>,
        /// Remove every parameter
        #[arg(long, conflicts_with = "params", group = "change")]
        no_params: bool,
    },
    /// Delete a script and all its versions (jobs that ran it keep their copy)
    Delete {
        /// Script id or name
        script: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Run a script on devices and groups (output and exit status as for `capstan run`)
    #[command(
        after_help = "Each --arg value is read as the parameter's declared type (numbers and \
booleans as JSON, the rest as text); a value that does not fit, an unknown parameter or a missing \
required one is refused before the job is created."
    )]
    Run(ScriptRunArgs),
}

#[derive(Debug, Args)]
pub struct ScriptRunArgs {
    /// Script id or name
    pub script: String,
    /// Run this version instead of the latest
    #[arg(long, value_name = "N")]
    pub version: Option<u32>,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Argument of a parameter (repeatable); parameters without one get their default
    #[arg(long = "arg", value_name = "NAME=VALUE", value_parser = parse_arg)]
    pub args: Vec<(String, String)>,
    #[command(flatten)]
    pub exec: ExecArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Subcommand)]
pub enum PackagesCommand {
    /// Upload an installer file; prints what the server read from it and the version it
    /// suggests (or, with --create, the version it created)
    Upload {
        /// The installer file (.deb, .rpm, .pkg.tar.zst, .msi, .exe, script archive)
        file: std::path::PathBuf,
        /// Create the package (if new) and the version at once
        #[arg(long)]
        create: bool,
        /// Create the version in this package (created if new) instead of the one the
        /// metadata names
        #[arg(long, value_name = "NAME", requires = "create")]
        package: Option<String>,
    },
    /// List packages, by display name (one page unless --all)
    List {
        /// Only packages whose name or display name contains this text (case-insensitive)
        #[arg(long, short = 's')]
        search: Option<String>,
        /// Page size, 1 to 1000 (server default: 100; with --all, the page size)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: Option<u64>,
        /// Skip this many packages
        #[arg(long, value_name = "N", conflicts_with = "all")]
        offset: Option<u64>,
        /// Fetch every page
        #[arg(long)]
        all: bool,
    },
    /// Show a package (by id or name)
    Show {
        /// Package id or name
        package: String,
    },
    /// List a package's versions, newest first, with their installer type and artifacts
    Versions {
        /// Package id or name
        package: String,
    },
    /// Change a package's display name, publisher or description
    #[command(group(ArgGroup::new("change").required(true).multiple(true)))]
    Edit {
        /// Package id or name
        package: String,
        #[arg(long, value_name = "TEXT", group = "change")]
        display_name: Option<String>,
        #[arg(
            long,
            value_name = "TEXT",
            group = "change",
            conflicts_with = "clear_publisher"
        )]
        publisher: Option<String>,
        /// Remove the publisher
        #[arg(long, group = "change")]
        clear_publisher: bool,
        #[arg(
            long,
            value_name = "TEXT",
            group = "change",
            conflicts_with = "clear_description"
        )]
        description: Option<String>,
        /// Remove the description
        #[arg(long, group = "change")]
        clear_description: bool,
    },
    /// Delete a package and all its versions (their files stay in the depot until collected)
    Delete {
        /// Package id or name
        package: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Show, edit or delete one version of a package
    #[command(subcommand)]
    Version(VersionCommand),
}

#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    /// Show a version: artifacts, commands, exit codes, requirements, detection
    Show {
        /// Package id or name
        package: String,
        version: String,
    },
    /// Replace a version's spec with the JSON in FILE (a VersionSpec, or the output of
    /// `version show -o json`, whose `spec` is used); its artifacts stay
    Edit {
        /// Package id or name
        package: String,
        version: String,
        /// The spec as JSON (`-` for standard input)
        #[arg(long, value_name = "FILE")]
        spec: String,
    },
    /// Delete a version (its files stay in the depot until collected)
    Delete {
        /// Package id or name
        package: String,
        version: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `PACKAGE[@VERSION]` as the operator typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRef {
    pub package: String,
    pub version: Option<String>,
}

/// Split `PACKAGE[@VERSION]` at the first `@`: package names never contain one, versions may
/// contain `:`, `-`, `+` and `~` (`hello@1:2.10-3`).
pub fn parse_package_ref(s: &str) -> Result<PackageRef, String> {
    let (package, version) = match s.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (s, None),
    };
    if package.trim().is_empty() {
        return Err(format!(
            "{s:?} names no package; expected PACKAGE or PACKAGE@VERSION"
        ));
    }
    if package.trim() != package {
        return Err(format!(
            "package {package:?} has leading or trailing spaces"
        ));
    }
    match version {
        Some(v) if v.trim().is_empty() => Err(format!(
            "{s:?} has an empty version after @; leave out @ for the newest version"
        )),
        Some(v) if v.trim() != v => Err(format!("version {v:?} has leading or trailing spaces")),
        v => Ok(PackageRef {
            package: package.to_string(),
            version: v.map(str::to_string),
        }),
    }
}

#[derive(Debug, Subcommand)]
pub enum DepotCommand {
    /// Manage depot sources
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Which source lacks which version (recorded states; `sources status --verify` refreshes
    /// a source's)
    Drift,
}

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// List depot sources by priority
    List,
    /// Add a file share (--path) or an HTTP mirror (--http)
    Add(SourceAddArgs),
    /// Remove a depot source (the files on it stay)
    Remove {
        /// Source id or name
        source: String,
        /// Do not ask for confirmation (required when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Copy a package's artifacts (one version, or every version) to a source; the server
    /// copies in the background
    Sync {
        /// Source id or name
        source: String,
        /// PACKAGE (every version) or PACKAGE@VERSION
        #[arg(value_name = "PACKAGE[@VERSION]", value_parser = parse_package_ref)]
        package: PackageRef,
        /// Wait until the copies are done and print their states (exit 1 if one failed)
        #[arg(long)]
        wait: bool,
    },
    /// Every artifact of the catalogue and its state on a source
    Status {
        /// Source id or name
        source: String,
        /// Look at the source now (file sizes on the sync path, HEAD on a mirror) and record
        /// what is there and what went missing
        #[arg(long)]
        verify: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("kind").args(["http", "path"]).required(true)))]
pub struct SourceAddArgs {
    /// Source name: lowercase letters, digits and . _ -
    pub name: String,
    /// An HTTP(S) mirror holding blobs as URL/SHA256
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// A file share holding blobs as DIR/SHA256, as agents see it: /mnt/depot, D:\depot or
    /// \\server\share
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    /// Where the server copies blobs when syncing: a directory (the share, or the mirror's
    /// document root, as the server sees it) or s3://BUCKET/PREFIX (a bucket agents read over
    /// HTTP); without it the source cannot be synced
    #[arg(long, value_name = "DIR")]
    pub sync_path: Option<String>,
    /// Lower is tried first, 0 to 10000 (server default 100)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..=10_000))]
    pub priority: Option<i64>,
    /// Devices this source serves never fall back to the server (an air-gapped site)
    #[arg(long)]
    pub exclusive: bool,
    /// Serve only the members of this group and its descendants (id or name; repeatable);
    /// default: every device
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SoftwareCommand {
    /// Install a package version on devices and groups (skipped where detection finds it)
    Install {
        #[command(flatten)]
        job: SoftwareJobArgs,
        /// Install even where detection says the version is present
        #[arg(long)]
        force: bool,
    },
    /// Uninstall a package version from devices and groups
    Uninstall {
        #[command(flatten)]
        job: SoftwareJobArgs,
    },
}

#[derive(Debug, Args)]
pub struct SoftwareJobArgs {
    /// PACKAGE or PACKAGE@VERSION (the newest version when none is given)
    #[arg(value_name = "PACKAGE[@VERSION]", value_parser = parse_package_ref)]
    pub package: PackageRef,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Runs no device has picked up by then become expired, e.g. 2h (server default 24h)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub expires: Option<u64>,
    /// Attempts per device, 1 to 20 (default 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: Option<u32>,
    /// Delay before the second attempt, doubled for each further one (default 60s)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs, requires = "attempts")]
    pub backoff: Option<u64>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Online,
    Offline,
}

impl StatusArg {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusArg::Online => "online",
            StatusArg::Offline => "offline",
        }
    }
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// Device id
    pub id: String,
    /// Number of entries, 1 to 500 (server default: 100)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=500))]
    pub limit: Option<u64>,
    /// Only entries older than this entry id (for paging back)
    #[arg(long, value_name = "ID")]
    pub before: Option<i64>,
    /// Only entries of this kind, e.g. inventory_change, enrolled, refresh_requested
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "capstan",
            "devices",
            "list",
            "--status",
            "online",
            "--sort",
            "-last_seen",
            "-o",
            "json",
            "--server",
            "https://s",
        ])
        .unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.server.as_deref(), Some("https://s"));
        let Command::Devices(DevicesCommand::List(args)) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(args.status, Some(StatusArg::Online));
        assert_eq!(args.sort.as_deref(), Some("-last_seen"));
    }

    #[test]
    fn token_flags_parse_durations_and_repeat_tags() {
        let cli = Cli::try_parse_from([
            "capstan",
            "tokens",
            "create",
            "--name",
            "lab",
            "--expires-in",
            "12h",
            "--max-uses",
            "5",
            "--tag",
            "lab",
            "--tag",
            "linux",
        ])
        .unwrap();
        let Command::Tokens(TokensCommand::Create(args)) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(args.expires_in, Some(43_200));
        assert_eq!(args.max_uses, Some(5));
        assert_eq!(args.tags, ["lab", "linux"]);
    }

    #[test]
    fn users_update_combines_changes() {
        let cli = Cli::try_parse_from([
            "capstan",
            "users",
            "update",
            "u1",
            "--role",
            "viewer",
            "--disable",
        ])
        .unwrap();
        let Command::Users(UsersCommand::Update(args)) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(args.role, Some(RoleArg::Viewer));
        assert!(args.disable && !args.enable && !args.reset_password);
    }

    #[test]
    fn bulk_commands_take_ids_and_filters() {
        let cli = Cli::try_parse_from([
            "capstan",
            "tags",
            "add",
            "web",
            "prod",
            "--device",
            "d1",
            "--device",
            "d2",
            "--filter-status",
            "offline",
            "--filter-field",
            "tier=gold",
        ])
        .unwrap();
        let Command::Tags(TagsCommand::Add { tags, selection }) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(tags, ["web", "prod"]);
        assert_eq!(selection.devices, ["d1", "d2"]);
        assert_eq!(selection.filter.filter_status, Some(StatusArg::Offline));
        assert_eq!(selection.filter.filter_field.as_deref(), Some("tier=gold"));
        let cli =
            Cli::try_parse_from(["capstan", "groups", "edit", "Berlin", "--top-level"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Groups(GroupsCommand::Edit {
                top_level: true,
                parent: None,
                ..
            })
        ));
    }

    #[test]
    fn everything_after_the_double_dash_is_the_command() {
        let cli = Cli::try_parse_from([
            "capstan", "run", "--group", "web", "--env", "A=b=c", "-o", "json", "--", "ls", "-o",
            "--device", "x", "--",
        ])
        .unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        let Command::Run(args) = cli.command else {
            panic!("wrong command parsed");
        };
        assert_eq!(args.command, ["ls", "-o", "--device", "x", "--"]);
        assert_eq!(args.targets.groups, ["web"]);
        assert!(args.targets.devices.is_empty());
        assert_eq!(args.exec.env, [("A".to_string(), "b=c".to_string())]);
    }

    #[test]
    fn package_at_version_splits_at_the_first_at() {
        for (given, package, version) in [
            ("hello", "hello", None),
            ("hello@2.10-3", "hello", Some("2.10-3")),
            ("hello@1:2.10-3", "hello", Some("1:2.10-3")),
            (
                "hello@1.0+dfsg-1~bpo12+1",
                "hello",
                Some("1.0+dfsg-1~bpo12+1"),
            ),
            ("hello@1.0@beta", "hello", Some("1.0@beta")),
            (
                "0190c3a4-0000-7000-8000-000000000001@4.2.0.1",
                "0190c3a4-0000-7000-8000-000000000001",
                Some("4.2.0.1"),
            ),
        ] {
            assert_eq!(
                parse_package_ref(given),
                Ok(PackageRef {
                    package: package.into(),
                    version: version.map(str::to_string),
                }),
                "{given}"
            );
        }
        for (given, why) in [
            ("", "names no package"),
            ("@1.0", "names no package"),
            ("hello@", "empty version"),
            ("hello@ ", "empty version"),
            (" hello@1", "leading or trailing spaces"),
            ("hello@1.0 ", "leading or trailing spaces"),
        ] {
            let err = parse_package_ref(given).unwrap_err();
            assert!(err.contains(why), "{given:?}: {err}");
        }
    }

    #[test]
    fn software_install_takes_a_package_targets_and_force() {
        let cli = Cli::try_parse_from([
            "capstan",
            "software",
            "install",
            "hello@1:2.10-3",
            "--group",
            "web",
            "--device",
            "d1",
            "--force",
            "--attempts",
            "3",
            "--no-wait",
        ])
        .unwrap();
        let Command::Software(SoftwareCommand::Install { job, force }) = cli.command else {
            panic!("wrong command parsed");
        };
        assert!(force && job.wait.no_wait);
        assert_eq!(job.package.version.as_deref(), Some("1:2.10-3"));
        assert_eq!(job.targets.groups, ["web"]);
        assert_eq!(job.targets.devices, ["d1"]);
        assert_eq!(job.attempts, Some(3));
    }

    #[test]
    fn package_edit_and_upload_flags() {
        let cli = Cli::try_parse_from([
            "capstan",
            "packages",
            "edit",
            "hello",
            "--display-name",
            "GNU Hello",
            "--clear-publisher",
        ])
        .unwrap();
        let Command::Packages(PackagesCommand::Edit {
            display_name,
            publisher,
            clear_publisher,
            ..
        }) = cli.command
        else {
            panic!("wrong command parsed");
        };
        assert_eq!(display_name.as_deref(), Some("GNU Hello"));
        assert!(publisher.is_none() && clear_publisher);
        let cli = Cli::try_parse_from([
            "capstan",
            "packages",
            "upload",
            "a.msi",
            "--create",
            "--package",
            "acme",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Packages(PackagesCommand::Upload { create: true, package: Some(ref p), .. }) if p == "acme"
        ));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &[
                "capstan",
                "tokens",
                "create",
                "--name",
                "x",
                "--expires-in",
                "7 days",
            ][..],
            &[
                "capstan",
                "tokens",
                "create",
                "--name",
                "x",
                "--max-uses",
                "0",
            ],
            &["capstan", "devices", "list", "--status", "sleeping"],
            &["capstan", "devices", "list", "--limit", "5000"],
            &["capstan", "users", "create", "-u", "bob", "--role", "root"],
            &["capstan", "users", "update", "u1"],
            &["capstan", "users", "update", "u1", "--disable", "--enable"],
            &["capstan", "audit", "list", "--limit", "501"],
            &["capstan", "groups", "edit", "g"],
            &[
                "capstan",
                "groups",
                "edit",
                "g",
                "--parent",
                "p",
                "--top-level",
            ],
            &["capstan", "tags", "add", "--device", "d1"],
            &["capstan", "fields", "define", "x", "--type", "color"],
            &[
                "capstan",
                "fields",
                "define",
                "x",
                "--type",
                "string",
                "--required",
            ],
            &["capstan", "software", "install", "hello"],
            &["capstan", "software", "install", "hello@", "--group", "g"],
            &[
                "capstan",
                "software",
                "uninstall",
                "hello",
                "--group",
                "g",
                "--force",
            ],
            &["capstan", "packages", "edit", "hello"],
            &[
                "capstan",
                "packages",
                "edit",
                "hello",
                "--publisher",
                "x",
                "--clear-publisher",
            ],
            &["capstan", "packages", "upload", "a.deb", "--package", "x"],
            &["capstan", "packages", "list", "--limit", "1001"],
            &["capstan", "packages", "version", "edit", "hello", "1.0"],
            &["capstan", "depot", "sources", "add", "x"],
            &[
                "capstan", "depot", "sources", "add", "x", "--http", "h", "--path", "/p",
            ],
            &[
                "capstan",
                "depot",
                "sources",
                "add",
                "x",
                "--path",
                "/p",
                "--priority",
                "-1",
            ],
            &["capstan", "depot", "sources", "sync", "s", "hello@"],
        ] {
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }
}

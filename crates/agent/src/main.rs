//! `capstan-agent`, the daemon on every managed node: `enroll` trades an enrollment token for a
//! device credential, `run` is the check-in / inventory / wake-up loop, `inventory` and
//! `status` help an administrator see what the agent sees. Exit status 78 (EX_CONFIG) means
//! "fix the configuration or re-enroll; restarting will not help", and the systemd unit does
//! not restart on it.

mod config;
mod daemon;
mod fetch;
mod identity;
mod jobs;
mod machine;
mod reconcile;
mod software;
mod state;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use capstan_client::agent::AgentClient;
use capstan_client::tls::{ClientOptions, Fingerprint, normalize_base_url};
use capstan_proto::agent::EnrollRequest;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{FileConfig, LogFormat};
use crate::identity::IdentitySource;
use crate::machine::EXIT_CONFIG;
use crate::state::Credentials;

/// A problem only the administrator can fix (bad config, not enrolled, identity mismatch):
/// the process exits with [`EXIT_CONFIG`] so that systemd does not restart it in a loop.
#[derive(Debug)]
pub struct FatalConfig(pub String);

impl std::fmt::Display for FatalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FatalConfig {}

#[derive(Debug, Parser)]
#[command(name = "capstan-agent", version, about = "The Capstan endpoint agent")]
struct Cli {
    /// Config file (TOML). Default: /etc/capstan/agent.toml if it exists.
    #[arg(long, global = true, env = "CAPSTAN_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Log format (overrides `log_format` in the config file). Level: CAPSTAN_AGENT_LOG.
    #[arg(long, global = true, value_enum, env = "CAPSTAN_AGENT_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this machine with a server and store the device credential.
    Enroll(EnrollArgs),
    /// Run the agent (check-ins, inventory, wake-ups, jobs) until SIGTERM/SIGINT.
    Run(StateArgs),
    /// Collect the inventory once and print it as JSON (its digest goes to stderr).
    Inventory {
        /// Indent the JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Software this device's manifest offers or requires: `available` lists it, `install
    /// NAME` asks the server for an available package (the running agent installs it).
    Software {
        #[command(flatten)]
        state: StateArgs,
        #[command(subcommand)]
        action: SoftwareAction,
    },
    /// Show the enrollment stored in the state directory (never the credential itself).
    Status {
        #[command(flatten)]
        state: StateArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SoftwareAction {
    /// List the packages available to this device (and those it must have), with their state.
    Available {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Install an available package now (it stays installed; the server records who asked).
    Install {
        /// Package name (or id).
        name: String,
    },
}

#[derive(Debug, Args)]
struct StateArgs {
    /// State directory (credentials, instance id). Default: /var/lib/capstan-agent.
    #[arg(long, env = "CAPSTAN_AGENT_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EnrollArgs {
    /// Server base URL, e.g. https://capstan.example.com:8443
    #[arg(long)]
    server: String,
    /// Enrollment token (`cape_…`). Prefer the environment variable: arguments show in `ps`.
    #[arg(long, env = "CAPSTAN_AGENT_ENROLL_TOKEN", hide_env_values = true)]
    token: String,
    /// SHA-256 fingerprint of the server certificate (`sha256:…`) to pin; empty = none.
    #[arg(long)]
    fingerprint: Option<String>,
    #[command(flatten)]
    state: StateArgs,
    /// What identifies this device across re-enrollments.
    #[arg(long, value_enum, default_value_t = IdentitySource::Hardware)]
    identity: IdentitySource,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_run = matches!(cli.command, Command::Run(_));
    let file = match FileConfig::load(cli.config.as_deref()).and_then(|mut f| {
        f.apply_env(|name| std::env::var(name).ok())
            .map_err(|e| FatalConfig(format!("invalid environment: {e}")))?;
        Ok(f)
    }) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("capstan-agent: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The daemon logs its life at info; the one-shot commands speak through stdout and only
    // need warnings on stderr.
    init_logging(
        cli.log_format.unwrap_or(file.log_format),
        if is_run { "info" } else { "warn" },
    );

    // One thread for the agent itself (footprint matters on every node); a few blocking threads
    // for file reads of the collectors, released soon after a collection.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .thread_keep_alive(Duration::from_secs(2))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("capstan-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Enroll(args) => enroll(&file, args).await,
            Command::Run(args) => run(&file, args).await,
            Command::Inventory { pretty } => inventory(&file, pretty).await,
            Command::Status { state, json } => status(&file, state, json),
            Command::Software { state, action } => software_cmd(&file, state, action).await,
        }
    });
    // Do not wait for blocking collector threads that a shutdown left behind.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(err) => {
            let fatal = err.downcast_ref::<FatalConfig>().is_some();
            // reqwest repeats itself across its source chain; print each cause once.
            let text = daemon::error_chain(err.as_ref());
            if is_run {
                tracing::error!("{text}");
            } else {
                eprintln!("capstan-agent: {text}");
            }
            if fatal {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = match std::env::var("CAPSTAN_AGENT_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("capstan-agent: ignoring invalid CAPSTAN_AGENT_LOG {spec:?}: {e}");
            EnvFilter::new(default_level)
        }),
        Err(_) => EnvFilter::new(default_level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn client_options(fingerprint: Option<&str>) -> anyhow::Result<ClientOptions> {
    let pin = fingerprint
        .map(Fingerprint::parse)
        .transpose()
        .map_err(|e| FatalConfig(e.to_string()))?;
    Ok(ClientOptions {
        pin,
        // Inventory documents of a few MB on a slow link need more than the 30 s default.
        timeout: Some(Duration::from_secs(60)),
        user_agent: Some(format!("capstan-agent/{}", env!("CARGO_PKG_VERSION"))),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn enroll(file: &FileConfig, args: EnrollArgs) -> anyhow::Result<ExitCode> {
    let state_dir = file.state_dir(args.state.state_dir.as_deref());
    let server = normalize_base_url(&args.server).map_err(|e| FatalConfig(e.to_string()))?;
    // The install script passes an empty fingerprint for plain-HTTP servers.
    let fingerprint = args
        .fingerprint
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| Fingerprint::parse(f).map(|fp| fp.to_string()))
        .transpose()
        .map_err(|e| FatalConfig(e.to_string()))?;
    if server.starts_with("http://") {
        eprintln!(
            "warning: {server} is plain HTTP; the device credential and inventory travel \
             unencrypted"
        );
    }
    let token = args.token.trim().to_string();
    if token.is_empty() {
        return Err(FatalConfig("the enrollment token is empty".to_string()).into());
    }

    let material = capstan_agent_platform::identity_material();
    let ident = identity::for_enroll(args.identity, &material, &state_dir)
        .with_context(|| format!("preparing the device identity in {}", state_dir.display()))?;
    if ident.fell_back_to_instance {
        eprintln!(
            "warning: this machine offers no machine-id or SMBIOS UUID; using an identity \
             stored in {} (a copy of that directory would be the same device)",
            state_dir.join(state::INSTANCE_ID_FILE).display()
        );
    }

    let client = AgentClient::new(&server, &client_options(fingerprint.as_deref())?)?;
    let request = EnrollRequest {
        token,
        identity: ident.identity.clone(),
        hostname: capstan_agent_platform::hostname(),
        agent_version: daemon::agent_version(),
        os_family: std::env::consts::OS.to_string(),
        capabilities: daemon::capabilities(),
    };
    let resp = client
        .enroll(&request)
        .await
        .with_context(|| format!("enrolling with {server}"))?;

    let creds = Credentials {
        server_url: server,
        fingerprint,
        device_id: resp.device_id.clone(),
        device_token: resp.device_token,
        identity_key: ident.identity.identity_key,
        identity_source: ident.identity.source,
        signing_public_key: resp.signing_public_key,
        enrolled_at_ms: now_ms(),
    };
    creds.save(&state_dir).with_context(|| {
        format!(
            "device {} was enrolled on the server but its credential could not be saved in {}",
            resp.device_id,
            state_dir.display()
        )
    })?;
    let mut out = std::io::stdout().lock();
    if resp.reenrolled {
        writeln!(out, "re-enrolled existing device {}", resp.device_id)?;
    } else {
        writeln!(out, "enrolled device {}", resp.device_id)?;
    }
    writeln!(
        out,
        "credentials written to {}",
        state::credentials_path(&state_dir).display()
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn run(file: &FileConfig, args: StateArgs) -> anyhow::Result<ExitCode> {
    let state_dir = file.state_dir(args.state_dir.as_deref());
    let creds = Credentials::load(&state_dir)?;
    identity::verify(
        &creds,
        &capstan_agent_platform::identity_material(),
        &state_dir,
    )?;
    let client = AgentClient::new(
        &creds.server_url,
        &client_options(creds.fingerprint.as_deref())?,
    )
    .map_err(|e| FatalConfig(format!("credentials.json: {e}")))?
    .with_device_token(creds.device_token.clone());
    let signing_key = jobs::verify::parse_public_key(&creds.signing_public_key).map_err(|e| {
        FatalConfig(format!(
            "{}: {e}; re-enroll the agent",
            state::credentials_path(&state_dir).display()
        ))
    })?;
    let mut jobs =
        jobs::RunnerSettings::new(creds.device_id.clone(), signing_key, state_dir.clone());
    jobs.reboot.command = file.reboot_command.clone();
    jobs.reboot.boot_id_path = file.boot_id_path();
    jobs.exec.kill_grace = file.job_kill_grace();
    // Downloads get their own clients: an artifact may take far longer than an API call, and
    // mirrors must never see the device credential.
    let download_client = AgentClient::new(
        &creds.server_url,
        &ClientOptions {
            timeout: Some(Duration::from_secs(6 * 3600)),
            ..client_options(creds.fingerprint.as_deref())?
        },
    )
    .map_err(|e| FatalConfig(format!("credentials.json: {e}")))?
    .with_device_token(creds.device_token.clone());
    let mirror_client = capstan_client::tls::build_http_client(&ClientOptions {
        pin: None,
        timeout: Some(Duration::from_secs(6 * 3600)),
        user_agent: Some(format!("capstan-agent/{}", env!("CARGO_PKG_VERSION"))),
    })
    .map_err(|e| FatalConfig(format!("HTTP client for mirrors: {e}")))?;
    jobs.software = Some(software::SoftwareContext {
        fetcher: fetch::Fetcher::new(
            state_dir.join("cache"),
            file.software_cache_max_bytes(),
            download_client,
            mirror_client,
        ),
        node: software::NodeFacts::of_this_machine(),
        probe: std::sync::Arc::new(capstan_agent_platform::detect::host_probe),
        max_bytes_per_sec: None,
        phase: None,
    });
    let settings = daemon::RunSettings {
        device_id: creds.device_id.clone(),
        inventory_interval: file.inventory_interval(),
        collect: file.collect_options(),
        boot_id_path: file.boot_id_path(),
        jobs,
    };
    drop(creds);
    match daemon::run(client, settings).await? {
        daemon::Outcome::Stopped => Ok(ExitCode::SUCCESS),
        daemon::Outcome::Exit(reason) => Ok(ExitCode::from(reason.exit_code())),
    }
}

/// `capstan-agent software available|install`: talks to the server with this device's
/// credential (so it needs the state directory, i.e. root), never to the running agent.
async fn software_cmd(
    file: &FileConfig,
    args: StateArgs,
    action: SoftwareAction,
) -> anyhow::Result<ExitCode> {
    use capstan_proto::deploy::{ItemIntent, SoftwareRequest};
    let state_dir = file.state_dir(args.state_dir.as_deref());
    let creds = Credentials::load(&state_dir)?;
    let client = AgentClient::new(
        &creds.server_url,
        &client_options(creds.fingerprint.as_deref())?,
    )
    .map_err(|e| FatalConfig(format!("credentials.json: {e}")))?
    .with_device_token(creds.device_token.clone());
    let key = jobs::verify::parse_public_key(&creds.signing_public_key)
        .map_err(|e| FatalConfig(format!("credentials.json: {e}; re-enroll the agent")))?;
    let manifest = match client
        .manifest()
        .await
        .with_context(|| format!("asking {} for this device's software", creds.server_url))?
    {
        Some(signed) => reconcile::verify_manifest(&signed, &key, &creds.device_id)
            .map_err(|e| anyhow::anyhow!("the server's manifest was refused: {e}"))?,
        None => {
            eprintln!("no software is assigned to this device");
            return Ok(match action {
                SoftwareAction::Available { .. } => ExitCode::SUCCESS,
                SoftwareAction::Install { .. } => ExitCode::FAILURE,
            });
        }
    };
    let reported = reconcile::Reported::load(&state_dir, None);
    let statuses: std::collections::BTreeMap<String, capstan_proto::deploy::ItemStatus> = reported
        .items
        .into_iter()
        .map(|(k, v)| (k, v.status))
        .collect();
    match action {
        SoftwareAction::Available { json } => {
            let mut out = std::io::stdout().lock();
            if json {
                let rows: Vec<serde_json::Value> = manifest
                    .items
                    .iter()
                    .map(|i| {
                        serde_json::json!({
                            "package": i.package_name,
                            "version": i.version,
                            "intent": i.intent,
                            "status": statuses.get(&i.package_id),
                            "hold": i.hold,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<32} {:<20} {:<10} STATUS",
                "PACKAGE", "VERSION", "OFFER"
            )?;
            for i in &manifest.items {
                let offer = match i.intent {
                    ItemIntent::Available => "available",
                    ItemIntent::Present => "required",
                    ItemIntent::Absent => "removed",
                };
                let status = statuses
                    .get(&i.package_id)
                    .map(|s| s.as_str())
                    .unwrap_or("-");
                let hold = i
                    .hold
                    .as_deref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<32} {:<20} {:<10} {status}{hold}",
                    i.package_name.escape_debug().to_string(),
                    i.version.escape_debug().to_string(),
                    offer
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        SoftwareAction::Install { name } => {
            let Some(item) = manifest
                .items
                .iter()
                .find(|i| i.package_name == name || i.package_id == name)
            else {
                eprintln!(
                    "{name} is not offered to this device; `capstan-agent software available` lists what is"
                );
                return Ok(ExitCode::FAILURE);
            };
            if item.intent != ItemIntent::Available {
                eprintln!(
                    "{name} is not an available package here (it is {}); nothing to ask for",
                    match item.intent {
                        ItemIntent::Present => "required and installed by the agent",
                        _ => "to be removed",
                    }
                );
                return Ok(ExitCode::FAILURE);
            }
            client
                .request_software(&SoftwareRequest {
                    package: item.package_id.clone(),
                })
                .await
                .with_context(|| format!("asking the server for {name}"))?;
            println!(
                "requested {name} {}; the agent installs it within moments (watch `capstan-agent software available`)",
                item.version
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn inventory(file: &FileConfig, pretty: bool) -> anyhow::Result<ExitCode> {
    let opts = file.collect_options();
    let document = capstan_agent_platform::collect_inventory(&opts).await;
    let digest = capstan_core::inventory::digest(&document);
    let json = if pretty {
        serde_json::to_string_pretty(&document)
    } else {
        serde_json::to_string(&document)
    }
    .context("encoding the inventory")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}")?;
    out.flush()?;
    eprintln!("digest: {digest}");
    Ok(ExitCode::SUCCESS)
}

/// The status lines shown to the administrator; the device token is never among them.
fn status_text(creds: &Credentials, state_dir: &Path, json: bool) -> anyhow::Result<String> {
    if json {
        let value = serde_json::json!({
            "state_dir": state_dir,
            "device_id": creds.device_id,
            "server_url": creds.server_url,
            "fingerprint": creds.fingerprint,
            "identity_source": creds.identity_source,
            "identity_key": creds.identity_key,
            "enrolled_at_ms": creds.enrolled_at_ms,
        });
        return Ok(serde_json::to_string_pretty(&value)?);
    }
    Ok(format!(
        "device id:        {}\nserver:           {}\nfingerprint:      {}\n\
         identity source:  {}\nenrolled at (ms): {}\nstate dir:        {}",
        creds.device_id,
        creds.server_url,
        creds.fingerprint.as_deref().unwrap_or("(none)"),
        creds.identity_source,
        creds.enrolled_at_ms,
        state_dir.display(),
    ))
}

fn status(file: &FileConfig, args: StateArgs, json: bool) -> anyhow::Result<ExitCode> {
    let state_dir = file.state_dir(args.state_dir.as_deref());
    let creds = Credentials::load(&state_dir)?;
    println!("{}", status_text(&creds, &state_dir, json)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn status_never_shows_the_device_token() {
        let creds = Credentials {
            server_url: "https://capstan.example".into(),
            fingerprint: Some("sha256:00".into()),
            device_id: "dev-9".into(),
            device_token: "capd_dev-9_topsecretvalue".into(),
            identity_key: "ab".repeat(32),
            identity_source: "hardware".into(),
            signing_public_key: "cd".repeat(32),
            enrolled_at_ms: 5,
        };
        for json in [false, true] {
            let text = status_text(&creds, Path::new("/var/lib/capstan-agent"), json).unwrap();
            assert!(!text.contains("topsecretvalue"), "{text}");
            assert!(
                text.contains("dev-9") && text.contains("https://capstan.example"),
                "{text}"
            );
            assert!(
                text.contains("hardware") && text.contains("sha256:00"),
                "{text}"
            );
        }
    }
}

//! Runs a parsed command: resolves credentials (see `config.rs`), builds the API client and
//! hands over to the module of the command group. Data goes to standard output (a table or
//! JSON); confirmations of actions that return no data go to standard error, so standard
//! output only ever carries what a script would parse.

mod audit;
mod auth;
mod deploy;
mod depot;
mod devices;
mod fields;
mod groups;
mod jobs;
mod packages;
mod scripts;
mod software;
mod tokens;
mod users;

use std::io::Write as _;
use std::path::PathBuf;

use capstan_client::api::ApiClient;
use capstan_client::tls::{ClientOptions, Fingerprint};
use clap::CommandFactory;
use serde::Serialize;

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat};
use crate::config::{self, Resolved, Settings};
use crate::failure::{Failure, FailureKind};
use crate::output;

/// What every command needs besides its own arguments.
pub struct Context {
    pub global: GlobalArgs,
    pub now_ms: i64,
    pub config_path: Option<PathBuf>,
}

impl Context {
    fn flags(&self) -> Settings {
        Settings {
            server: self.global.server.clone(),
            token: self.global.token.clone(),
            fingerprint: self.global.fingerprint.clone(),
        }
    }

    fn file_settings(&self) -> anyhow::Result<Settings> {
        match &self.config_path {
            Some(path) => config::load(path),
            None => Ok(Settings::default()),
        }
    }

    /// Server, token and pin after applying flag > environment > file.
    pub fn resolved(&self) -> anyhow::Result<Resolved> {
        Ok(config::resolve(
            &self.flags(),
            &config::from_env(),
            &self.file_settings()?,
        ))
    }

    /// A client for `server` with an optional token and pin.
    pub fn client_for(
        &self,
        server: &str,
        token: Option<String>,
        fingerprint: Option<&str>,
    ) -> anyhow::Result<ApiClient> {
        let pin = fingerprint
            .map(Fingerprint::parse)
            .transpose()
            .map_err(|e| Failure::new(FailureKind::Config, e.to_string()))?;
        let opts = ClientOptions {
            pin,
            timeout: None,
            user_agent: Some(format!("capstan-cli/{}", env!("CARGO_PKG_VERSION"))),
        };
        ApiClient::new(server, token, &opts)
            .map_err(|e| Failure::new(FailureKind::Config, e.to_string()).into())
    }

    /// A client with credentials, or the "not logged in" failure.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        let resolved = self.resolved()?;
        let (Some(server), Some((token, _))) = (&resolved.server, resolved.token) else {
            return Err(Failure::not_logged_in().into());
        };
        self.client_for(server, Some(token), resolved.fingerprint.as_deref())
    }

    pub fn json_output(&self) -> bool {
        self.global.output == OutputFormat::Json
    }

    /// Print `value` as JSON, or the table text from `table`.
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        value: &T,
        table: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let text = if self.json_output() {
            output::json(value)?
        } else {
            table()
        };
        write_stdout(&text)
    }

    /// Tell the operator an action succeeded (standard error: not data).
    pub fn note(&self, message: &str) {
        eprintln!("{}", output::sanitize_for_terminal(message));
    }

    pub fn config_path(&self) -> anyhow::Result<&PathBuf> {
        self.config_path.as_ref().ok_or_else(|| {
            Failure::new(
                FailureKind::Config,
                "cannot find a place for the config file: set CAPSTAN_CONFIG or HOME",
            )
            .into()
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Run one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context {
        global: cli.global,
        now_ms: now_ms(),
        config_path: config::default_config_path(),
    };
    match cli.command {
        Command::Login(args) => auth::login(&ctx, &args).await,
        Command::Logout => auth::logout(&ctx).await,
        Command::Whoami => auth::whoami(&ctx).await,
        Command::Passwd => auth::passwd(&ctx).await,
        Command::Tokens(cmd) => tokens::enrollment(&ctx, cmd).await,
        Command::ApiTokens(cmd) => tokens::api(&ctx, cmd).await,
        Command::Users(cmd) => users::run(&ctx, cmd).await,
        Command::Devices(cmd) => devices::run(&ctx, cmd).await,
        Command::Audit(cmd) => audit::run(&ctx, cmd).await,
        Command::Groups(cmd) => groups::run(&ctx, cmd).await,
        Command::Tags(cmd) => groups::tags(&ctx, cmd).await,
        Command::Fields(cmd) => fields::run(&ctx, cmd).await,
        Command::Run(args) => jobs::run(&ctx, args).await,
        Command::Jobs(cmd) => jobs::jobs(&ctx, cmd).await,
        Command::Scripts(cmd) => scripts::run(&ctx, cmd).await,
        Command::Packages(cmd) => packages::run(&ctx, cmd).await,
        Command::Software(cmd) => software::run(&ctx, cmd).await,
        Command::Depot(cmd) => depot::run(&ctx, cmd).await,
        Command::Assign(args) => deploy::assign(&ctx, args).await,
        Command::Assignments(cmd) => deploy::assignments(&ctx, cmd).await,
        Command::Deployments(cmd) => deploy::deployments(&ctx, cmd).await,
        Command::Windows(cmd) => deploy::windows(&ctx, cmd).await,
        Command::Completions { shell } => write_stdout(&completions(shell)),
    }
}

/// Write to standard output. A closed pipe (`capstan devices list | head`) is not an error:
/// the reader has what it wanted.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to standard output"))
        }
        _ => Ok(()),
    }
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "capstan", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_scripts_name_the_binary_and_its_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
            clap_complete::Shell::Elvish,
        ] {
            let script = completions(shell);
            assert!(script.contains("capstan"), "{shell:?}");
            assert!(script.contains("timeline"), "{shell:?} misses subcommands");
        }
        assert!(completions(clap_complete::Shell::Bash).contains("complete -F _capstan"));
    }
}

//! Server configuration, layered: built-in defaults < TOML file < `CAPSTAN_*` environment
//! variables < command-line flags. Secrets can also come from `CAPSTAN_<NAME>_FILE`. The result
//! is a plain [`Config`] passed in the application state — there is no global configuration, so
//! several servers can run in one process (the tests do).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Flags and environment variables of `capstan-server serve` (clap gives flags precedence
/// over the environment).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file [default: /etc/capstan/server.toml if it exists].
    #[arg(long, env = "CAPSTAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, TLS material and the local depot [default: ./capstan-data].
    #[arg(long, env = "CAPSTAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a free port.
    #[arg(long, env = "CAPSTAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// `sqlite://PATH` or `postgres://…` [default: SQLite file in the data dir].
    #[arg(long, env = "CAPSTAN_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PEM certificate (chain) to serve; with --tls-key. Without both, a self-signed certificate
    /// is generated in the data dir on first start.
    #[arg(long, env = "CAPSTAN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CAPSTAN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP. Allowed on loopback addresses; elsewhere also needs --allow-insecure-http.
    #[arg(long, env = "CAPSTAN_NO_TLS")]
    pub no_tls: bool,
    /// Permit --no-tls on a non-loopback address (e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "CAPSTAN_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
    /// URL agents and the install script use to reach this server [default: derived from --listen].
    #[arg(long, env = "CAPSTAN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "CAPSTAN_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Agent check-in interval in seconds [default: 60].
    #[arg(long, env = "CAPSTAN_CHECKIN_INTERVAL_SECS")]
    pub checkin_interval_secs: Option<u64>,
    /// Largest accepted inventory upload in bytes [default: 16 MiB].
    #[arg(long, env = "CAPSTAN_MAX_INVENTORY_BYTES")]
    pub max_inventory_bytes: Option<usize>,
    /// The agent binary served at /download/capstan-agent [default: capstan-agent next to this binary].
    #[arg(long, env = "CAPSTAN_AGENT_BINARY")]
    pub agent_binary: Option<PathBuf>,
    /// Consecutive failed job attempts after which a device's retries stop until an operator
    /// resets its circuit breaker (0 disables the breaker) [default: 5].
    #[arg(long, env = "CAPSTAN_JOB_BREAKER_THRESHOLD")]
    pub job_breaker_threshold: Option<u32>,
    /// How often agents re-check their software manifest when nothing changed, repairing
    /// drift [default: 900].
    #[arg(long, env = "CAPSTAN_RECONCILE_INTERVAL_SECS")]
    pub reconcile_interval_secs: Option<u64>,
    /// Testing only: lets an admin move the server's deployment clock
    /// (`PUT /api/v1/system/clock`) to test schedules and maintenance windows. Never in
    /// production.
    #[arg(long, env = "CAPSTAN_ENABLE_TEST_CLOCK", hide = true)]
    pub enable_test_clock: bool,
    /// Largest accepted depot upload in bytes [default: 4 GiB].
    #[arg(long, env = "CAPSTAN_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Where depot blobs are stored: fs (under the data dir) or s3 [default: fs]. S3
    /// credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN),
    /// never from a flag.
    #[arg(long, env = "CAPSTAN_DEPOT_BACKEND")]
    pub depot_backend: Option<String>,
    /// S3 bucket of the depot (required with --depot-backend s3).
    #[arg(long, env = "CAPSTAN_DEPOT_S3_BUCKET")]
    pub depot_s3_bucket: Option<String>,
    /// Endpoint URL of an S3-compatible server [default: AWS S3 of the region].
    #[arg(long, env = "CAPSTAN_DEPOT_S3_ENDPOINT")]
    pub depot_s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long, env = "CAPSTAN_DEPOT_S3_REGION")]
    pub depot_s3_region: Option<String>,
    /// Key prefix of the depot's objects in the bucket [default: none].
    #[arg(long, env = "CAPSTAN_DEPOT_S3_PREFIX")]
    pub depot_s3_prefix: Option<String>,
    /// Permit a plain-HTTP --depot-s3-endpoint (a test or loopback server).
    #[arg(long, env = "CAPSTAN_DEPOT_S3_ALLOW_HTTP")]
    pub depot_s3_allow_http: bool,
}

/// The TOML file's shape; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub no_tls: Option<bool>,
    pub allow_insecure_http: Option<bool>,
    pub public_url: Option<String>,
    pub log_format: Option<String>,
    pub checkin_interval_secs: Option<u64>,
    pub max_inventory_bytes: Option<usize>,
    pub agent_binary: Option<PathBuf>,
    pub session_ttl_secs: Option<u64>,
    /// Create the predefined dynamic groups on first start (default true).
    pub predefined_groups: Option<bool>,
    pub job_breaker_threshold: Option<u32>,
    pub reconcile_interval_secs: Option<u64>,
    pub max_upload_bytes: Option<u64>,
    pub depot_backend: Option<String>,
    pub depot_s3_bucket: Option<String>,
    pub depot_s3_endpoint: Option<String>,
    pub depot_s3_region: Option<String>,
    pub depot_s3_prefix: Option<String>,
    pub depot_s3_allow_http: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Generate (once) and serve a self-signed certificate from the data dir.
    SelfSigned,
    /// Serve the given PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: String,
    pub tls: TlsMode,
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    pub checkin_interval_secs: u64,
    pub max_inventory_bytes: usize,
    pub agent_binary: Option<PathBuf>,
    pub session_ttl_secs: u64,
    /// From `CAPSTAN_ADMIN_PASSWORD` / `_FILE`: the initial admin's password on first start.
    pub admin_password: Option<String>,
    /// Create the predefined dynamic groups (All devices, …) on first start.
    pub predefined_groups: bool,
    /// Consecutive failed job attempts that open a device's circuit breaker (0: never).
    pub job_breaker_threshold: u32,
    /// Largest accepted depot upload (one blob) in bytes.
    pub max_upload_bytes: u64,
    /// Where depot blobs are stored.
    pub depot_backend: DepotBackend,
    /// How often agents re-check their manifest when nothing changed.
    pub reconcile_interval_secs: u64,
    /// The deployment clock can be moved through the API (tests only).
    pub test_clock: bool,
}

/// Where the depot keeps blob bytes (uploads are always staged under the data dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepotBackend {
    /// Files under `<data_dir>/depot/blobs`.
    Fs,
    /// Objects in an S3 (or S3-compatible) bucket.
    S3(S3Settings),
}

/// The S3 depot's bucket, endpoint and credentials. Its `Debug` hides the secrets, so a
/// logged configuration does not leak them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct S3Settings {
    pub bucket: String,
    /// `http(s)://host[:port]` of an S3-compatible server; `None` is AWS S3 itself.
    pub endpoint: Option<String>,
    pub region: String,
    /// Key prefix without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
    pub allow_http: bool,
    /// Static credentials (from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
    /// `AWS_SESSION_TOKEN`); without them the standard AWS chain (web identity, container or
    /// instance credentials) is used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .finish()
    }
}

/// Default of [`S3Settings::region`].
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Default of [`Config::max_upload_bytes`]: 4 GiB, room for large installers.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 4 << 30;

impl Config {
    /// Defaults suitable for tests: a data dir, loopback on port 0, plain HTTP, SQLite.
    pub fn for_tests(data_dir: &Path) -> Config {
        Config {
            data_dir: data_dir.to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("literal address"),
            database_url: sqlite_url(&data_dir.join("capstan.db")),
            tls: TlsMode::Off,
            public_url: None,
            log_format: LogFormat::Text,
            checkin_interval_secs: 60,
            max_inventory_bytes: 16 << 20,
            agent_binary: None,
            session_ttl_secs: 12 * 3600,
            admin_password: Some("test-admin-password".into()),
            // Tests start from an empty group list unless they ask for these.
            predefined_groups: false,
            job_breaker_threshold: 5,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            depot_backend: DepotBackend::Fs,
            reconcile_interval_secs: 900,
            test_clock: false,
        }
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Read `CAPSTAN_<NAME>` or, failing that, the file named by `CAPSTAN_<NAME>_FILE`
/// (trailing newline stripped).
pub fn secret_from_env(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<String>> {
    if let Some(v) = env(&format!("CAPSTAN_{name}")) {
        return Ok(Some(v));
    }
    if let Some(path) = env(&format!("CAPSTAN_{name}_FILE")) {
        let v = std::fs::read_to_string(&path)
            .with_context(|| format!("reading CAPSTAN_{name}_FILE={path}"))?;
        return Ok(Some(v.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(None)
}

impl ServeArgs {
    /// Merge the layers. `env` is injectable for tests.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let file_path = match &self.config {
            Some(p) => Some(p.clone()),
            None => {
                let p = PathBuf::from("/etc/capstan/server.toml");
                p.exists().then_some(p)
            }
        };
        let file: FileConfig = match &file_path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let depot_backend = self.depot_backend(&file, env)?;

        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./capstan-data"));
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("literal"));
        // clap already folded CAPSTAN_DATABASE_URL into the flag; the _FILE variant is ours.
        let database_url = match &self.database_url {
            Some(url) => url.clone(),
            None => match env("CAPSTAN_DATABASE_URL_FILE") {
                Some(_) => secret_from_env("DATABASE_URL", &|k| {
                    if k.ends_with("_FILE") { env(k) } else { None }
                })?
                .unwrap_or_default(),
                None => file
                    .database_url
                    .unwrap_or_else(|| sqlite_url(&data_dir.join("capstan.db"))),
            },
        };
        let no_tls = self.no_tls || file.no_tls.unwrap_or(false);
        let allow_insecure = self.allow_insecure_http || file.allow_insecure_http.unwrap_or(false);
        let cert = self.tls_cert.clone().or(file.tls_cert);
        let key = self.tls_key.clone().or(file.tls_key);
        let tls = if no_tls {
            if !listen.ip().is_loopback() && !allow_insecure {
                bail!(
                    "refusing plain HTTP on non-loopback address {listen}: agent credentials would travel \
                     unencrypted. Use TLS, or add --allow-insecure-http if a TLS proxy fronts this server"
                );
            }
            TlsMode::Off
        } else {
            match (cert, key) {
                (Some(cert), Some(key)) => TlsMode::Files { cert, key },
                (None, None) => TlsMode::SelfSigned,
                _ => bail!("--tls-cert and --tls-key must be given together"),
            }
        };
        let log_format = match self.log_format.clone().or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("unknown log format {other:?} (expected text or json)"),
        };
        let checkin_interval_secs = self
            .checkin_interval_secs
            .or(file.checkin_interval_secs)
            .unwrap_or(60);
        if !(5..=86_400).contains(&checkin_interval_secs) {
            bail!(
                "checkin interval must be between 5 and 86400 seconds, got {checkin_interval_secs}"
            );
        }
        let max_inventory_bytes = self
            .max_inventory_bytes
            .or(file.max_inventory_bytes)
            .unwrap_or(16 << 20);
        if max_inventory_bytes < 64 << 10 {
            bail!("max inventory bytes must be at least 65536, got {max_inventory_bytes}");
        }
        let max_upload_bytes = self
            .max_upload_bytes
            .or(file.max_upload_bytes)
            .unwrap_or(DEFAULT_MAX_UPLOAD_BYTES);
        if max_upload_bytes == 0 {
            bail!("max upload bytes must be at least 1");
        }
        let reconcile_interval_secs = self
            .reconcile_interval_secs
            .or(file.reconcile_interval_secs)
            .unwrap_or(900);
        if !(1..=86_400).contains(&reconcile_interval_secs) {
            bail!(
                "reconcile interval must be between 1 and 86400 seconds, got {reconcile_interval_secs}"
            );
        }
        Ok(Config {
            reconcile_interval_secs,
            test_clock: self.enable_test_clock,
            data_dir,
            listen,
            database_url,
            tls,
            public_url: self
                .public_url
                .clone()
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            log_format,
            checkin_interval_secs,
            max_inventory_bytes,
            agent_binary: self.agent_binary.clone().or(file.agent_binary),
            session_ttl_secs: file.session_ttl_secs.unwrap_or(12 * 3600),
            admin_password: secret_from_env("ADMIN_PASSWORD", env)?,
            predefined_groups: file.predefined_groups.unwrap_or(true),
            job_breaker_threshold: self
                .job_breaker_threshold
                .or(file.job_breaker_threshold)
                .unwrap_or(5),
            max_upload_bytes,
            depot_backend,
        })
    }

    /// The depot backend and, for S3, its checked settings. S3 options with the fs backend
    /// are refused rather than ignored: they mean the operator expects S3.
    fn depot_backend(
        &self,
        file: &FileConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<DepotBackend> {
        let pick = |flag: &Option<String>, file: &Option<String>| {
            flag.clone()
                .or_else(|| file.clone())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let bucket = pick(&self.depot_s3_bucket, &file.depot_s3_bucket);
        let endpoint = pick(&self.depot_s3_endpoint, &file.depot_s3_endpoint);
        let region = pick(&self.depot_s3_region, &file.depot_s3_region);
        let prefix = pick(&self.depot_s3_prefix, &file.depot_s3_prefix);
        let allow_http = self.depot_s3_allow_http || file.depot_s3_allow_http.unwrap_or(false);
        let backend = pick(&self.depot_backend, &file.depot_backend);
        match backend.as_deref() {
            None | Some("fs") => {
                let given = [
                    ("--depot-s3-bucket", bucket.is_some()),
                    ("--depot-s3-endpoint", endpoint.is_some()),
                    ("--depot-s3-region", region.is_some()),
                    ("--depot-s3-prefix", prefix.is_some()),
                    ("--depot-s3-allow-http", allow_http),
                ];
                if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                    bail!("{flag} is set but the depot backend is fs; add --depot-backend s3");
                }
                Ok(DepotBackend::Fs)
            }
            Some("s3") => {
                let Some(bucket) = bucket else {
                    bail!(
                        "the s3 depot backend needs a bucket: set --depot-s3-bucket \
                         (CAPSTAN_DEPOT_S3_BUCKET)"
                    );
                };
                if let Some(url) = &endpoint {
                    let lower = url.to_ascii_lowercase();
                    if lower.starts_with("http://") {
                        if !allow_http {
                            bail!(
                                "--depot-s3-endpoint {url} is plain HTTP; add --depot-s3-allow-http \
                                 if that is intended"
                            );
                        }
                    } else if !lower.starts_with("https://") {
                        bail!(
                            "--depot-s3-endpoint must be an http:// or https:// URL, got {url:?}"
                        );
                    }
                }
                let prefix = prefix.unwrap_or_default();
                let prefix = prefix.trim_matches('/');
                if prefix
                    .split('/')
                    .any(|p| matches!(p, "." | "..") || (p.is_empty() && !prefix.is_empty()))
                {
                    bail!(
                        "--depot-s3-prefix {prefix:?} must be key segments separated by single \
                         slashes, without `.` or `..`"
                    );
                }
                let key = env("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty());
                let secret = env("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty());
                if key.is_some() != secret.is_some() {
                    bail!("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
                }
                Ok(DepotBackend::S3(S3Settings {
                    bucket,
                    endpoint: endpoint.map(|e| e.trim_end_matches('/').to_string()),
                    region: region.unwrap_or_else(|| DEFAULT_S3_REGION.to_string()),
                    prefix: prefix.to_string(),
                    allow_http,
                    access_key_id: key,
                    secret_access_key: secret,
                    session_token: env("AWS_SESSION_TOKEN").filter(|v| !v.is_empty()),
                }))
            }
            Some(other) => bail!("unknown depot backend {other:?} (expected fs or s3)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_without_any_layer() {
        let cfg = ServeArgs {
            config: Some(PathBuf::from("/nonexistent-but-unused")),
            ..Default::default()
        };
        // An explicit config file that does not exist is an error…
        assert!(cfg.resolve(&env_of(&[])).is_err());
        // …while no config file at all gives the defaults.
        let cfg = ServeArgs::default().resolve(&env_of(&[])).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.data_dir, PathBuf::from("./capstan-data"));
        assert_eq!(cfg.database_url, "sqlite://./capstan-data/capstan.db");
        assert_eq!(cfg.tls, TlsMode::SelfSigned);
    }

    #[test]
    fn file_then_flags_win_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/capstan\"\ncheckin_interval_secs = 30\n").unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let cfg = args.resolve(&env_of(&[])).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(cfg.database_url, "sqlite:///srv/capstan/capstan.db");
        assert_eq!(cfg.checkin_interval_secs, 30);
        // A flag (or env var, which clap folds into the same field) beats the file.
        let args = ServeArgs {
            config: Some(file),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            args.resolve(&env_of(&[])).unwrap().listen.to_string(),
            "127.0.0.1:9100"
        );
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = ServeArgs {
            config: Some(file),
            ..Default::default()
        }
        .resolve(&env_of(&[]))
        .unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }

    #[test]
    fn secrets_come_from_file_variables() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let env = env_of(&[("CAPSTAN_ADMIN_PASSWORD_FILE", pw.to_str().unwrap())]);
        let cfg = ServeArgs::default().resolve(&env).unwrap();
        assert_eq!(cfg.admin_password.as_deref(), Some("s3cret"));
        let env = env_of(&[
            ("CAPSTAN_ADMIN_PASSWORD", "direct"),
            ("CAPSTAN_ADMIN_PASSWORD_FILE", "/nonexistent"),
        ]);
        assert_eq!(
            ServeArgs::default()
                .resolve(&env)
                .unwrap()
                .admin_password
                .as_deref(),
            Some("direct")
        );
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let args = ServeArgs {
            no_tls: true,
            listen: Some("0.0.0.0:8080".parse().unwrap()),
            ..Default::default()
        };
        assert!(args.resolve(&env_of(&[])).is_err());
        let args = ServeArgs {
            allow_insecure_http: true,
            ..args
        };
        assert_eq!(args.resolve(&env_of(&[])).unwrap().tls, TlsMode::Off);
        let args = ServeArgs {
            no_tls: true,
            ..Default::default()
        };
        assert_eq!(args.resolve(&env_of(&[])).unwrap().tls, TlsMode::Off);
    }

    #[test]
    fn upload_limit_defaults_to_4_gib_and_layers_like_the_rest() {
        let cfg = ServeArgs::default().resolve(&env_of(&[])).unwrap();
        assert_eq!(cfg.max_upload_bytes, 4 << 30);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "max_upload_bytes = 1048576\n").unwrap();
        let args = ServeArgs {
            config: Some(file),
            ..Default::default()
        };
        assert_eq!(
            args.resolve(&env_of(&[])).unwrap().max_upload_bytes,
            1 << 20
        );
        let args = ServeArgs {
            max_upload_bytes: Some(0),
            ..args
        };
        assert!(args.resolve(&env_of(&[])).is_err(), "a zero limit");
    }

    #[test]
    fn tls_files_must_come_in_pairs() {
        let args = ServeArgs {
            tls_cert: Some("/c.pem".into()),
            ..Default::default()
        };
        assert!(args.resolve(&env_of(&[])).is_err());
    }

    fn s3_args(bucket: Option<&str>) -> ServeArgs {
        ServeArgs {
            depot_backend: Some("s3".into()),
            depot_s3_bucket: bucket.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn the_depot_defaults_to_the_file_system() {
        let cfg = ServeArgs::default().resolve(&env_of(&[])).unwrap();
        assert_eq!(cfg.depot_backend, DepotBackend::Fs);
    }

    #[test]
    fn an_s3_depot_takes_its_settings_from_flags_file_and_aws_env() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ]);
        let args = ServeArgs {
            depot_s3_endpoint: Some("http://127.0.0.1:9000/".into()),
            depot_s3_prefix: Some("/capstan/depot/".into()),
            depot_s3_allow_http: true,
            ..s3_args(Some("software"))
        };
        let DepotBackend::S3(s3) = args.resolve(&env).unwrap().depot_backend else {
            panic!("expected the s3 backend");
        };
        assert_eq!(s3.bucket, "software");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.prefix, "capstan/depot");
        assert_eq!(s3.access_key_id.as_deref(), Some("AKIDEXAMPLE"));
        assert_eq!(s3.secret_access_key.as_deref(), Some("very-secret"));
        let shown = format!("{s3:?}");
        assert!(!shown.contains("very-secret"), "{shown}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "depot_backend = \"s3\"\ndepot_s3_bucket = \"from-file\"\ndepot_s3_region = \"eu-west-1\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            ..Default::default()
        };
        let DepotBackend::S3(s3) = args.resolve(&env_of(&[])).unwrap().depot_backend else {
            panic!("expected the s3 backend from the file");
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.region.as_str()),
            ("from-file", "eu-west-1")
        );
        assert_eq!(s3.access_key_id, None);
    }

    #[test]
    fn bad_depot_settings_are_refused_at_start_up() {
        /// Arguments, environment, and a part of the expected error.
        type Case = (
            ServeArgs,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (s3_args(None), &[], "needs a bucket"),
            (
                ServeArgs {
                    depot_backend: Some("gcs".into()),
                    ..Default::default()
                },
                &[],
                "unknown depot backend",
            ),
            (
                ServeArgs {
                    depot_s3_bucket: Some("b".into()),
                    ..Default::default()
                },
                &[],
                "add --depot-backend s3",
            ),
            (
                ServeArgs {
                    depot_s3_endpoint: Some("http://10.0.0.1:9000".into()),
                    ..s3_args(Some("b"))
                },
                &[],
                "--depot-s3-allow-http",
            ),
            (
                ServeArgs {
                    depot_s3_endpoint: Some("ftp://host".into()),
                    ..s3_args(Some("b"))
                },
                &[],
                "http:// or https://",
            ),
            (
                ServeArgs {
                    depot_s3_prefix: Some("a/../b".into()),
                    ..s3_args(Some("b"))
                },
                &[],
                "--depot-s3-prefix",
            ),
            (
                ServeArgs {
                    depot_s3_prefix: Some("a//b".into()),
                    ..s3_args(Some("b"))
                },
                &[],
                "--depot-s3-prefix",
            ),
            (
                s3_args(Some("b")),
                &[("AWS_ACCESS_KEY_ID", "AKID")],
                "must be set together",
            ),
        ];
        for (args, env, want) in cases {
            let err = args.resolve(&env_of(env)).unwrap_err();
            assert!(format!("{err:#}").contains(want), "{want}: {err:#}");
        }
    }
}

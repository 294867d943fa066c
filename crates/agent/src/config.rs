//! The agent's configuration: an optional TOML file (default `/etc/capstan/agent.toml`) layered
//! under command-line flags and `CAPSTAN_AGENT_*` environment variables. Everything has a
//! default, so a freshly enrolled agent runs without any file; unknown keys are refused so a
//! typo does not silently leave a setting at its default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::FatalConfig;

/// Where the config file is looked for when neither `--config` nor `CAPSTAN_AGENT_CONFIG` is set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/capstan/agent.toml";
/// Where credentials and the instance id live unless configured otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/capstan-agent";

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The settings of the config file; every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub state_dir: Option<PathBuf>,
    /// How often the inventory is re-collected (a changed digest is then reported).
    pub inventory_interval_secs: u64,
    /// Upper bound for each inventory collector.
    pub collector_timeout_secs: u64,
    pub log_format: LogFormat,
    /// The command that reboots the machine for a job, as argv. Default: `systemctl reboot`,
    /// or `shutdown -r now` where systemd is missing.
    pub reboot_command: Option<Vec<String>>,
    /// The file holding the current boot id; a job's reboot counts as done once it changed.
    pub boot_id_path: Option<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL when a job's process group is stopped (timeout,
    /// cancel, agent shutdown).
    pub job_kill_grace_secs: u64,
    /// Size limit of the downloaded-artifact cache in MiB (least recently used files are
    /// evicted beyond it; an artifact larger than the limit is still downloaded).
    pub software_cache_max_mb: u64,
    /// Collect the inventory from this directory as if it were `/` (a system image mounted
    /// elsewhere, a test fixture). Only files are read there (the host name from its
    /// `/etc/hostname`); what needs programs or system calls of the running system (rpm and
    /// flatpak packages, network addresses, mount usage) is left out. Default: `/`.
    pub inventory_root: Option<PathBuf>,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            inventory_interval_secs: 3600,
            collector_timeout_secs: 20,
            log_format: LogFormat::Text,
            reboot_command: None,
            boot_id_path: None,
            job_kill_grace_secs: 5,
            software_cache_max_mb: 4096,
            inventory_root: None,
        }
    }
}

/// Environment variables that override the job settings of the config file.
pub const ENV_REBOOT_COMMAND: &str = "CAPSTAN_AGENT_REBOOT_COMMAND";
pub const ENV_BOOT_ID_PATH: &str = "CAPSTAN_AGENT_BOOT_ID_PATH";
pub const ENV_JOB_KILL_GRACE_SECS: &str = "CAPSTAN_AGENT_JOB_KILL_GRACE_SECS";
pub const ENV_SOFTWARE_CACHE_MAX_MB: &str = "CAPSTAN_AGENT_SOFTWARE_CACHE_MAX_MB";

/// A command line from the environment: a JSON array of strings (`["/opt/reboot", "--now"]`)
/// or, for simple cases, words separated by spaces.
fn parse_command_env(value: &str) -> Result<Vec<String>, String> {
    let value = value.trim();
    let argv: Vec<String> = if value.starts_with('[') {
        serde_json::from_str(value)
            .map_err(|e| format!("{ENV_REBOOT_COMMAND} is not a JSON array of strings: {e}"))?
    } else {
        value.split_whitespace().map(str::to_string).collect()
    };
    Ok(argv)
}

impl FileConfig {
    /// Parse and check the TOML text of a config file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if cfg.inventory_interval_secs == 0 {
            return Err("inventory_interval_secs must be at least 1".to_string());
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.collector_timeout_secs == 0 {
            return Err("collector_timeout_secs must be at least 1".to_string());
        }
        if let Some(argv) = &self.reboot_command
            && argv.first().is_none_or(|p| p.trim().is_empty())
        {
            return Err("reboot_command must name a program".to_string());
        }
        if self
            .boot_id_path
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err("boot_id_path must not be empty".to_string());
        }
        if self
            .inventory_root
            .as_ref()
            .is_some_and(|p| !p.is_absolute())
        {
            return Err("inventory_root must be an absolute path".to_string());
        }
        if self.job_kill_grace_secs > 600 {
            return Err("job_kill_grace_secs must be at most 600".to_string());
        }
        Ok(())
    }

    /// Apply `CAPSTAN_AGENT_REBOOT_COMMAND`, `CAPSTAN_AGENT_BOOT_ID_PATH`,
    /// `CAPSTAN_AGENT_JOB_KILL_GRACE_SECS` and `CAPSTAN_AGENT_SOFTWARE_CACHE_MAX_MB` (read
    /// through `get`), which win over the file.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(v) = get(ENV_REBOOT_COMMAND).filter(|v| !v.trim().is_empty()) {
            self.reboot_command = Some(parse_command_env(&v)?);
        }
        if let Some(v) = get(ENV_BOOT_ID_PATH).filter(|v| !v.trim().is_empty()) {
            self.boot_id_path = Some(PathBuf::from(v));
        }
        if let Some(v) = get(ENV_JOB_KILL_GRACE_SECS).filter(|v| !v.trim().is_empty()) {
            self.job_kill_grace_secs = v
                .trim()
                .parse()
                .map_err(|e| format!("{ENV_JOB_KILL_GRACE_SECS}={v:?}: {e}"))?;
        }
        if let Some(v) = get(ENV_SOFTWARE_CACHE_MAX_MB).filter(|v| !v.trim().is_empty()) {
            self.software_cache_max_mb = v
                .trim()
                .parse()
                .map_err(|e| format!("{ENV_SOFTWARE_CACHE_MAX_MB}={v:?}: {e}"))?;
        }
        self.validate()
    }

    /// How the inventory is collected: the collector timeout and the root read.
    pub fn collect_options(&self) -> capstan_agent_platform::CollectOptions {
        capstan_agent_platform::CollectOptions {
            collector_timeout: self.collector_timeout(),
            root: self
                .inventory_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("/")),
        }
    }

    /// Where the boot id is read.
    pub fn boot_id_path(&self) -> PathBuf {
        self.boot_id_path
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::jobs::reboot::DEFAULT_BOOT_ID_PATH))
    }

    pub fn job_kill_grace(&self) -> Duration {
        Duration::from_secs(self.job_kill_grace_secs)
    }

    /// The artifact cache's size limit in bytes.
    pub fn software_cache_max_bytes(&self) -> u64 {
        self.software_cache_max_mb.saturating_mul(1024 * 1024)
    }

    /// Load the explicitly given file (which must exist), or the default file if it exists,
    /// or the built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self, FatalConfig> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from(DEFAULT_CONFIG_PATH);
                if !p.exists() {
                    return Ok(Self::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| FatalConfig(format!("cannot read config file {}: {e}", path.display())))?;
        Self::parse(&text)
            .map_err(|e| FatalConfig(format!("invalid config file {}: {e}", path.display())))
    }

    pub fn inventory_interval(&self) -> Duration {
        Duration::from_secs(self.inventory_interval_secs)
    }

    pub fn collector_timeout(&self) -> Duration {
        Duration::from_secs(self.collector_timeout_secs)
    }

    /// The state directory: the flag or environment value wins, then the file, then the default.
    pub fn state_dir(&self, from_cli: Option<&Path>) -> PathBuf {
        from_cli
            .map(Path::to_path_buf)
            .or_else(|| self.state_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_means_defaults() {
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
        let d = FileConfig::default();
        assert_eq!(d.inventory_interval(), Duration::from_secs(3600));
        assert_eq!(d.collector_timeout(), Duration::from_secs(20));
        assert_eq!(d.state_dir(None), PathBuf::from("/var/lib/capstan-agent"));
    }

    #[test]
    fn file_values_are_used_and_the_flag_wins_for_the_state_dir() {
        let cfg = FileConfig::parse(
            "state_dir = \"/srv/agent\"\ninventory_interval_secs = 600\n\
             collector_timeout_secs = 5\nlog_format = \"json\"\n\
             inventory_root = \"/mnt/image\"\n",
        )
        .unwrap();
        assert_eq!(cfg.inventory_interval(), Duration::from_secs(600));
        assert_eq!(cfg.collector_timeout(), Duration::from_secs(5));
        let collect = cfg.collect_options();
        assert_eq!(collect.root, PathBuf::from("/mnt/image"));
        assert_eq!(collect.collector_timeout, Duration::from_secs(5));
        assert_eq!(
            FileConfig::default().collect_options().root,
            PathBuf::from("/")
        );
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.state_dir(None), PathBuf::from("/srv/agent"));
        assert_eq!(
            cfg.state_dir(Some(Path::new("/tmp/x"))),
            PathBuf::from("/tmp/x")
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_offending_key() {
        for (text, needle) in [
            ("inventory_intervall_secs = 5", "inventory_intervall_secs"),
            ("inventory_interval_secs = 0", "inventory_interval_secs"),
            ("collector_timeout_secs = 0", "collector_timeout_secs"),
            ("log_format = \"xml\"", "xml"),
            ("inventory_root = \"images/web\"", "inventory_root"),
            (
                "inventory_interval_secs = \"hourly\"",
                "inventory_interval_secs",
            ),
        ] {
            let err = FileConfig::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn job_settings_come_from_the_file_and_the_environment_wins() {
        let mut cfg = FileConfig::parse(
            "reboot_command = [\"/sbin/reboot\", \"-f\"]\nboot_id_path = \"/tmp/boot\"\n\
             job_kill_grace_secs = 2\n",
        )
        .unwrap();
        assert_eq!(
            cfg.reboot_command.as_deref(),
            Some(&["/sbin/reboot".to_string(), "-f".to_string()][..])
        );
        assert_eq!(cfg.boot_id_path(), PathBuf::from("/tmp/boot"));
        assert_eq!(cfg.job_kill_grace(), Duration::from_secs(2));

        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        cfg.apply_env(env(&[
            (ENV_REBOOT_COMMAND, r#"["/opt/sim reboot", "a b"]"#),
            (ENV_BOOT_ID_PATH, "/srv/boot_id"),
            (ENV_JOB_KILL_GRACE_SECS, "1"),
        ]))
        .unwrap();
        assert_eq!(
            cfg.reboot_command.as_deref(),
            Some(&["/opt/sim reboot".to_string(), "a b".to_string()][..])
        );
        assert_eq!(cfg.boot_id_path(), PathBuf::from("/srv/boot_id"));
        assert_eq!(cfg.job_kill_grace(), Duration::from_secs(1));

        cfg.apply_env(env(&[(ENV_REBOOT_COMMAND, "/usr/bin/sim-reboot --now")]))
            .unwrap();
        assert_eq!(
            cfg.reboot_command.as_deref(),
            Some(&["/usr/bin/sim-reboot".to_string(), "--now".to_string()][..])
        );

        let d = FileConfig::default();
        assert_eq!(d.reboot_command, None);
        assert_eq!(
            d.boot_id_path(),
            PathBuf::from("/proc/sys/kernel/random/boot_id")
        );
        assert_eq!(d.job_kill_grace(), Duration::from_secs(5));

        for (bad, needle) in [
            (&[(ENV_REBOOT_COMMAND, "[1, 2]")][..], ENV_REBOOT_COMMAND),
            (&[(ENV_REBOOT_COMMAND, "[]")][..], "reboot_command"),
            (
                &[(ENV_JOB_KILL_GRACE_SECS, "soon")][..],
                ENV_JOB_KILL_GRACE_SECS,
            ),
        ] {
            let mut cfg = FileConfig::default();
            let err = cfg.apply_env(env(bad)).unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
        for text in [
            "reboot_command = []",
            "reboot_command = [\"\"]",
            "boot_id_path = \"\"",
        ] {
            assert!(FileConfig::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn software_cache_limit_comes_from_the_file_and_the_environment_wins() {
        assert_eq!(
            FileConfig::default().software_cache_max_bytes(),
            4096 * 1024 * 1024
        );
        let mut cfg = FileConfig::parse("software_cache_max_mb = 10").unwrap();
        assert_eq!(cfg.software_cache_max_bytes(), 10 * 1024 * 1024);
        cfg.apply_env(|k| (k == ENV_SOFTWARE_CACHE_MAX_MB).then(|| " 3 ".to_string()))
            .unwrap();
        assert_eq!(cfg.software_cache_max_mb, 3);
        let err = cfg
            .apply_env(|k| (k == ENV_SOFTWARE_CACHE_MAX_MB).then(|| "lots".to_string()))
            .unwrap_err();
        assert!(err.contains(ENV_SOFTWARE_CACHE_MAX_MB), "{err}");
        assert!(FileConfig::parse("software_cache_max_mb = -1").is_err());
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileConfig::load(Some(&dir.path().join("nope.toml"))).unwrap_err();
        assert!(err.0.contains("nope.toml"), "{}", err.0);
    }
}

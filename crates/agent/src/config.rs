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
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            inventory_interval_secs: 3600,
            collector_timeout_secs: 20,
            log_format: LogFormat::Text,
        }
    }
}

impl FileConfig {
    /// Parse and check the TOML text of a config file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if cfg.inventory_interval_secs == 0 {
            return Err("inventory_interval_secs must be at least 1".to_string());
        }
        if cfg.collector_timeout_secs == 0 {
            return Err("collector_timeout_secs must be at least 1".to_string());
        }
        Ok(cfg)
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
             collector_timeout_secs = 5\nlog_format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(cfg.inventory_interval(), Duration::from_secs(600));
        assert_eq!(cfg.collector_timeout(), Duration::from_secs(5));
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
    fn an_explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileConfig::load(Some(&dir.path().join("nope.toml"))).unwrap_err();
        assert!(err.0.contains("nope.toml"), "{}", err.0);
    }
}

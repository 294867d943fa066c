//! Where `capstan` finds its server, token and certificate pin: command-line flags first, then
//! the environment (`CAPSTAN_SERVER`, `CAPSTAN_TOKEN`, `CAPSTAN_FINGERPRINT`), then the TOML file
//! that `capstan login` writes (mode 0600, directory 0700). The precedence rule is a pure
//! function ([`resolve`]) so it is tested without touching the process environment.
//!
//! A token or pin from the file is only used for the server it was saved for: pointing the CLI
//! at another server with `--server` must never send that server the saved session.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The contents of `cli.toml`, and the shape of every credential source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// Where a resolved value came from (for messages and for `logout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
}

/// The settings a command runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub server: Option<String>,
    pub token: Option<(String, Source)>,
    pub fingerprint: Option<String>,
}

/// Combine the three sources: flag > environment > file, field by field, except that the
/// file's token and fingerprint only count when the chosen server is the file's server.
pub fn resolve(flags: &Settings, env: &Settings, file: &Settings) -> Resolved {
    let server = first([&flags.server, &env.server, &file.server]).map(|(s, _)| s);
    let file_matches = match (&server, &file.server) {
        (Some(chosen), Some(saved)) => same_server(chosen, saved),
        _ => false,
    };
    let pick = |f: &Option<String>, e: &Option<String>, saved: &Option<String>| {
        let saved = if file_matches { saved } else { &None };
        first([f, e, saved])
    };
    Resolved {
        server,
        token: pick(&flags.token, &env.token, &file.token),
        fingerprint: pick(&flags.fingerprint, &env.fingerprint, &file.fingerprint).map(|(s, _)| s),
    }
}

fn first(candidates: [&Option<String>; 3]) -> Option<(String, Source)> {
    let sources = [Source::Flag, Source::Env, Source::File];
    candidates
        .into_iter()
        .zip(sources)
        .find_map(|(value, source)| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| (v.to_string(), source))
        })
}

/// Whether two spellings of a server URL name the same server (`https://h/` = `https://h`).
pub fn same_server(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    norm(a) == norm(b)
}

/// The credential settings from the process environment; empty variables count as unset.
pub fn from_env() -> Settings {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    Settings {
        server: var("CAPSTAN_SERVER"),
        token: var("CAPSTAN_TOKEN"),
        fingerprint: var("CAPSTAN_FINGERPRINT"),
    }
}

/// The config file path: `$CAPSTAN_CONFIG`, else `$XDG_CONFIG_HOME/capstan/cli.toml`, else
/// `$HOME/.config/capstan/cli.toml`. A relative `XDG_CONFIG_HOME` is ignored, as the XDG base
/// directory specification requires.
pub fn config_path(
    capstan_config: Option<&str>,
    xdg_config_home: Option<&str>,
    home: Option<&str>,
) -> Option<PathBuf> {
    let set = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(p) = set(capstan_config) {
        return Some(p);
    }
    if let Some(xdg) = set(xdg_config_home).filter(|p| p.is_absolute()) {
        return Some(xdg.join("capstan").join("cli.toml"));
    }
    set(home).map(|h| h.join(".config").join("capstan").join("cli.toml"))
}

/// [`config_path`] for this process.
pub fn default_config_path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var(name).ok();
    config_path(
        var("CAPSTAN_CONFIG").as_deref(),
        var("XDG_CONFIG_HOME").as_deref(),
        var("HOME").as_deref(),
    )
}

/// Read the config file; a missing file is an empty configuration.
pub fn load(path: &Path) -> anyhow::Result<Settings> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid capstan config", path.display()))
}

/// Write the config file so that only its owner can read it: the directory is created 0700,
/// the file is written 0600 under a temporary name and renamed over the old one, so a crash
/// never leaves a half-written file and an old, laxer mode never survives.
pub fn save(path: &Path, settings: &Settings) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = toml::to_string(settings).context("cannot encode the config file")?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cli.toml".into());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = private_file_options().open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn private_file_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(server: Option<&str>, token: Option<&str>, fingerprint: Option<&str>) -> Settings {
        Settings {
            server: server.map(String::from),
            token: token.map(String::from),
            fingerprint: fingerprint.map(String::from),
        }
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let file = s(Some("https://a"), Some("caps_file"), Some("sha256:file"));
        let env = s(Some("https://a"), Some("caps_env"), Some("sha256:env"));
        let flags = s(Some("https://a/"), Some("caps_flag"), Some("sha256:flag"));
        let r = resolve(&flags, &env, &file);
        assert_eq!(r.server.as_deref(), Some("https://a/"));
        assert_eq!(r.token, Some(("caps_flag".into(), Source::Flag)));
        assert_eq!(r.fingerprint.as_deref(), Some("sha256:flag"));

        let r = resolve(&Settings::default(), &env, &file);
        assert_eq!(r.token, Some(("caps_env".into(), Source::Env)));
        assert_eq!(r.fingerprint.as_deref(), Some("sha256:env"));

        let r = resolve(&Settings::default(), &Settings::default(), &file);
        assert_eq!(r.server.as_deref(), Some("https://a"));
        assert_eq!(r.token, Some(("caps_file".into(), Source::File)));
        assert_eq!(r.fingerprint.as_deref(), Some("sha256:file"));
    }

    #[test]
    fn fields_resolve_independently() {
        let file = s(Some("https://a"), Some("caps_file"), None);
        let env = s(None, None, Some("sha256:env"));
        let flags = s(None, Some("capt_flag"), None);
        let r = resolve(&flags, &env, &file);
        assert_eq!(r.server.as_deref(), Some("https://a"));
        assert_eq!(r.token, Some(("capt_flag".into(), Source::Flag)));
        assert_eq!(r.fingerprint.as_deref(), Some("sha256:env"));
    }

    #[test]
    fn saved_token_is_not_sent_to_another_server() {
        let file = s(Some("https://a"), Some("caps_file"), Some("sha256:file"));
        let flags = s(Some("https://b"), None, None);
        let r = resolve(&flags, &Settings::default(), &file);
        assert_eq!(r.server.as_deref(), Some("https://b"));
        assert_eq!(r.token, None);
        assert_eq!(r.fingerprint, None);
        // The same server spelled with a trailing slash or other case still matches.
        let flags = s(Some("HTTPS://A/"), None, None);
        let r = resolve(&flags, &Settings::default(), &file);
        assert_eq!(r.token, Some(("caps_file".into(), Source::File)));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = s(Some(""), Some("  "), None);
        let file = s(Some("https://a"), Some("caps_file"), None);
        let r = resolve(&Settings::default(), &env, &file);
        assert_eq!(r.server.as_deref(), Some("https://a"));
        assert_eq!(r.token, Some(("caps_file".into(), Source::File)));
    }

    #[test]
    fn config_path_precedence() {
        assert_eq!(
            config_path(Some("/x/c.toml"), Some("/xdg"), Some("/home/u")),
            Some(PathBuf::from("/x/c.toml"))
        );
        assert_eq!(
            config_path(None, Some("/xdg"), Some("/home/u")),
            Some(PathBuf::from("/xdg/capstan/cli.toml"))
        );
        assert_eq!(
            config_path(Some(""), Some("relative"), Some("/home/u")),
            Some(PathBuf::from("/home/u/.config/capstan/cli.toml"))
        );
        assert_eq!(config_path(None, None, None), None);
    }

    #[test]
    fn save_then_load_round_trips_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("capstan").join("cli.toml");
        let settings = s(Some("https://a"), Some("caps_secret"), Some("sha256:ab"));
        save(&path, &settings).unwrap();
        assert_eq!(load(&path).unwrap(), settings);
        save(&path, &s(Some("https://a"), None, None)).unwrap();
        assert_eq!(load(&path).unwrap(), s(Some("https://a"), None, None));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }

    #[test]
    fn existing_lax_file_becomes_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cli.toml");
        std::fs::write(&path, "server = \"https://old\"\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            save(&path, &s(Some("https://a"), Some("caps_x"), None)).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn missing_file_is_empty_and_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load(&dir.path().join("none.toml")).unwrap(),
            Settings::default()
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "server = [").unwrap();
        let err = format!("{:#}", load(&bad).unwrap_err());
        assert!(err.contains("bad.toml"), "{err}");
    }
}

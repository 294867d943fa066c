//! The agent's state directory: `credentials.json` (the device credential and how it was
//! obtained) and, for the `instance` identity, `instance-id`. Secrets are written with mode
//! 0600 through a temporary file and a rename, so a crash or a full disk never leaves a
//! half-written credential behind, and a directory we create is 0700.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FatalConfig;

pub const CREDENTIALS_FILE: &str = "credentials.json";
pub const INSTANCE_ID_FILE: &str = "instance-id";

/// What `enroll` obtained and `run` needs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub server_url: String,
    /// `sha256:…` pin of the server certificate; `None` for plain HTTP or the system trust store.
    pub fingerprint: Option<String>,
    pub device_id: String,
    pub device_token: String,
    pub identity_key: String,
    /// `hardware` or `instance`.
    pub identity_source: String,
    /// The server's Ed25519 public key (hex), kept for verifying signed manifests.
    pub signing_public_key: String,
    pub enrolled_at_ms: i64,
}

// Written by hand so the device token cannot reach a log line through `{:?}`.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server_url", &self.server_url)
            .field("fingerprint", &self.fingerprint)
            .field("device_id", &self.device_id)
            .field("device_token", &"<redacted>")
            .field("identity_key", &self.identity_key)
            .field("identity_source", &self.identity_source)
            .field("enrolled_at_ms", &self.enrolled_at_ms)
            .finish()
    }
}

pub fn credentials_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CREDENTIALS_FILE)
}

impl Credentials {
    /// Read `credentials.json`; a missing file means "not enrolled", which is a configuration
    /// problem no restart fixes.
    pub fn load(state_dir: &Path) -> Result<Self, FatalConfig> {
        let path = credentials_path(state_dir);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FatalConfig(format!(
                    "not enrolled: {} does not exist; run `capstan-agent enroll --server URL \
                     --token TOKEN --state-dir {}` first",
                    path.display(),
                    state_dir.display()
                )));
            }
            Err(e) => {
                return Err(FatalConfig(format!("cannot read {}: {e}", path.display())));
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            FatalConfig(format!(
                "{} is damaged ({e}); re-enroll the agent",
                path.display()
            ))
        })
    }

    /// Write `credentials.json` atomically with mode 0600, creating the state directory.
    pub fn save(&self, state_dir: &Path) -> io::Result<()> {
        ensure_state_dir(state_dir)?;
        let mut json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        json.push(b'\n');
        write_private_atomic(&credentials_path(state_dir), &json)
    }
}

/// Create the state directory (mode 0700) if it does not exist. An existing directory keeps
/// its mode: the admin may have pointed us at a directory shared with other things, and the
/// secrets inside are 0600 anyway.
pub fn ensure_state_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", parent.display())))?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => Ok(()),
        // Lost a race with another enroll: the directory exists now, which is all we need.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("create {}: {e}", dir.display()),
        )),
    }
}

/// Replace `path` with `contents`, readable only by the owner. Readers see either the old or
/// the new file, never a mix: the bytes go to a fresh temporary file in the same directory,
/// are synced, and the temporary file is renamed over the target.
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        random_hex(4)?
    ));
    let ctx = |e: io::Error, what: &str, p: &Path| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
    };
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp).map_err(|e| ctx(e, "create", &tmp))?;
        file.write_all(contents)
            .map_err(|e| ctx(e, "write", &tmp))?;
        file.sync_all().map_err(|e| ctx(e, "sync", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| ctx(e, "rename to", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Make the rename itself durable; a file system that cannot sync directories is no reason
    // to fail an enrollment that already succeeded on the server.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> io::Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(format!("random source: {e}")))?;
    Ok(hex::encode(buf))
}

/// The instance id of this state directory, if one was generated.
pub fn read_instance_id(state_dir: &Path) -> io::Result<Option<String>> {
    let path = state_dir.join(INSTANCE_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_ascii_lowercase();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Some(id))
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a 128-bit hex id", path.display()),
                ))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("read {}: {e}", path.display()),
        )),
    }
}

/// The instance id of this state directory, generated (128 random bits) on first use.
pub fn instance_id_or_create(state_dir: &Path) -> io::Result<String> {
    if let Some(id) = read_instance_id(state_dir)? {
        return Ok(id);
    }
    ensure_state_dir(state_dir)?;
    let id = random_hex(16)?;
    write_private_atomic(
        &state_dir.join(INSTANCE_ID_FILE),
        format!("{id}\n").as_bytes(),
    )?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            server_url: "https://capstan.example:8443".into(),
            fingerprint: Some(format!("sha256:{}", "ab".repeat(32))),
            device_id: "dev-1".into(),
            device_token: "capd_dev-1_supersecret".into(),
            identity_key: "k".repeat(64),
            identity_source: "hardware".into(),
            signing_public_key: "00".repeat(32),
            enrolled_at_ms: 1_700_000_000_000,
        }
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn credentials_round_trip_with_private_modes_and_no_temp_files() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("nested").join("state");
        let creds = sample();
        creds.save(&state).unwrap();
        assert_eq!(Credentials::load(&state).unwrap(), creds);
        #[cfg(unix)]
        {
            assert_eq!(mode(&state), 0o700);
            assert_eq!(mode(&credentials_path(&state)), 0o600);
        }
        let names: Vec<_> = fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![CREDENTIALS_FILE.to_string()]);
    }

    #[test]
    fn saving_again_replaces_the_file_whole() {
        let root = tempfile::tempdir().unwrap();
        let mut creds = sample();
        creds.save(root.path()).unwrap();
        creds.device_id = "dev-2".into();
        creds.device_token = "t".into();
        creds.save(root.path()).unwrap();
        let loaded = Credentials::load(root.path()).unwrap();
        assert_eq!(loaded.device_id, "dev-2");
        assert_eq!(loaded.device_token, "t");
        #[cfg(unix)]
        assert_eq!(mode(&credentials_path(root.path())), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_that_was_world_readable_becomes_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let path = credentials_path(root.path());
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        sample().save(root.path()).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn missing_or_damaged_credentials_tell_the_admin_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        let err = Credentials::load(root.path()).unwrap_err();
        assert!(err.0.contains("not enrolled"), "{}", err.0);
        assert!(err.0.contains("capstan-agent enroll"), "{}", err.0);
        fs::write(credentials_path(root.path()), "{\"server_url\":").unwrap();
        let err = Credentials::load(root.path()).unwrap_err();
        assert!(err.0.contains("re-enroll"), "{}", err.0);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("dev-1"));
    }

    #[test]
    fn instance_id_is_generated_once_and_kept() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(read_instance_id(root.path()).unwrap(), None);
        let first = instance_id_or_create(root.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(instance_id_or_create(root.path()).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(instance_id_or_create(other.path()).unwrap(), first);
        #[cfg(unix)]
        assert_eq!(mode(&root.path().join(INSTANCE_ID_FILE)), 0o600);
    }

    #[test]
    fn a_corrupt_instance_id_is_an_error_not_a_new_identity() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join(INSTANCE_ID_FILE), "not-hex\n").unwrap();
        assert!(read_instance_id(root.path()).is_err());
        assert!(instance_id_or_create(root.path()).is_err());
    }
}

//! File access relative to a configurable root directory, so that every collector can be run
//! against a fixture tree in tests exactly as it runs against `/` in production. Reads are
//! size-capped and decoded lossily because everything under /proc, /sys and /etc is input we
//! do not control.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Largest file any collector reads (the dpkg status file of a big workstation is ~10 MiB).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The file system a collector looks at.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    base: PathBuf,
    live: bool,
}

impl Root {
    pub(crate) fn new(base: impl Into<PathBuf>) -> Self {
        let base = base.into();
        let live = base == Path::new("/");
        Self { base, live }
    }

    /// True when the root is the running system: only then may collectors run external
    /// commands or make system calls, whose answers would not match a fixture tree.
    pub(crate) fn is_live(&self) -> bool {
        self.live
    }

    /// Maps an absolute path of the inspected system to a path on this one.
    pub(crate) fn path(&self, abs: &str) -> PathBuf {
        self.base.join(abs.trim_start_matches('/'))
    }

    /// Reads a whole file (lossy UTF-8, capped).
    pub(crate) fn read(&self, abs: &str) -> io::Result<String> {
        read_capped(&self.path(abs))
    }

    /// Reads a file and returns its trimmed content, or `None` when it is missing,
    /// unreadable or blank.
    pub(crate) fn read_trimmed(&self, abs: &str) -> Option<String> {
        let text = self.read(abs).ok()?;
        let t = text.trim();
        (!t.is_empty()).then(|| t.to_string())
    }

    /// Reads raw bytes (capped), for binary sysfs/efivarfs attributes.
    pub(crate) fn read_bytes(&self, abs: &str) -> io::Result<Vec<u8>> {
        let file = fs::File::open(self.path(abs))?;
        let mut buf = Vec::new();
        file.take(MAX_FILE_BYTES).read_to_end(&mut buf)?;
        Ok(buf)
    }

    pub(crate) fn exists(&self, abs: &str) -> bool {
        // symlink_metadata so that a dangling symlink (e.g. a systemd wants/ link whose unit
        // is elsewhere) still counts as present.
        fs::symlink_metadata(self.path(abs)).is_ok()
    }

    pub(crate) fn is_dir(&self, abs: &str) -> bool {
        self.path(abs).is_dir()
    }

    /// Names of the entries of a directory, sorted; empty when it cannot be read.
    pub(crate) fn list(&self, abs: &str) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.path(abs)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Target of a symbolic link, as written in the link.
    pub(crate) fn read_link(&self, abs: &str) -> Option<String> {
        fs::read_link(self.path(abs))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    pub(crate) fn mtime(&self, abs: &str) -> Option<SystemTime> {
        fs::metadata(self.path(abs)).and_then(|m| m.modified()).ok()
    }
}

pub(crate) fn read_capped(path: &Path) -> io::Result<String> {
    let file = fs::File::open(path)?;
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES).read_to_end(&mut buf)?;
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Seconds since the Unix epoch, for install dates taken from file times.
pub(crate) fn unix_seconds(t: SystemTime) -> Option<i64> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}

#[cfg(all(test, unix))]
pub(crate) mod testing {
    //! Throw-away fixture trees built by tests, removed on drop.

    use super::Root;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    pub(crate) struct Tree {
        dir: PathBuf,
    }

    impl Tree {
        pub(crate) fn new() -> Self {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "capstan-agent-platform-test-{}-{n}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self { dir }
        }

        fn at(&self, abs: &str) -> PathBuf {
            let p = self.dir.join(abs.trim_start_matches('/'));
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            p
        }

        pub(crate) fn file(self, abs: &str, content: impl AsRef<[u8]>) -> Self {
            std::fs::write(self.at(abs), content).unwrap();
            self
        }

        pub(crate) fn dir(self, abs: &str) -> Self {
            std::fs::create_dir_all(self.dir.join(abs.trim_start_matches('/'))).unwrap();
            self
        }

        pub(crate) fn symlink(self, abs: &str, target: &str) -> Self {
            std::os::unix::fs::symlink(target, self.at(abs)).unwrap();
            self
        }

        pub(crate) fn root(&self) -> Root {
            Root::new(&self.dir)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Root of the fixture trees committed under tests/fixtures.
    pub(crate) fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel)
    }
}

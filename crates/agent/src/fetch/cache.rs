//! The on-disk artifact cache: verified downloads live as `<dir>/<sha256>`, partial downloads
//! as `<dir>/partial/<sha256>` (kept for resume), and `<dir>/index.json` records for each file
//! when it was last used and the file-system stamp (size, mtime, ctime, inode) it had when its
//! SHA-256 was last checked. A hit whose stamp is unchanged is trusted without re-reading the
//! file (a cheap check for gigabyte installers); any other hit is re-hashed, and a file that
//! no longer matches its name is deleted so the caller downloads it again. Eviction removes the
//! least recently used files until the total fits the limit, skipping files pinned by a running
//! install. The index survives restarts; a lost or unreadable index only costs re-hashing.
//!
//! Index updates do small synchronous file IO under a mutex: the index is a few KB and updated
//! once per fetch, which is cheaper than shuttling it to a blocking thread.

use capstan_proto::depot::is_sha256_hex;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tracing::{debug, warn};

const INDEX_FILE: &str = "index.json";
const INDEX_TMP_FILE: &str = "index.json.tmp";
pub(super) const PARTIAL_DIR: &str = "partial";
/// An index larger than this is not ours (or is damaged): it is ignored, not parsed.
const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;
pub(super) const READ_BUF: usize = 256 * 1024;

/// What a file looked like when its hash was last checked. On Unix the ctime and inode are
/// part of it because, unlike the mtime, a process cannot set them back after a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        #[cfg(unix)]
        let (ctime_ns, ino) = {
            use std::os::unix::fs::MetadataExt;
            (
                i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
                meta.ino(),
            )
        };
        #[cfg(not(unix))]
        let (ctime_ns, ino) = (0, 0);
        Stamp {
            len: meta.len(),
            mtime_ns,
            ctime_ns,
            ino,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    /// A logical clock (milliseconds, made strictly increasing) of the last fetch that used it.
    last_used: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    clock: u64,
    entries: BTreeMap<String, Entry>,
}

impl Index {
    fn tick(&mut self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.clock = now.max(self.clock + 1);
        self.clock
    }
}

#[derive(Debug, Default)]
struct State {
    /// Loaded on first use, so that constructing the cache does no IO.
    index: Option<Index>,
    pins: HashMap<String, usize>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

/// The cache; clones share it.
#[derive(Debug, Clone)]
pub(super) struct Cache {
    inner: Arc<Inner>,
}

/// Keeps a cached file from being evicted while it is held (an install is using it).
#[derive(Debug)]
pub struct Pin {
    inner: Arc<Inner>,
    sha256: String,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut state = lock(&self.inner.state);
        if let Some(n) = state.pins.get_mut(&self.sha256) {
            *n -= 1;
            if *n == 0 {
                state.pins.remove(&self.sha256);
            }
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent between statements, so a panic elsewhere does not poison it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opening options that refuse to follow a symlink someone placed where our file should be.
pub(super) fn open_options() -> tokio::fs::OpenOptions {
    #[allow(unused_mut)] // only Unix adds flags
    let mut o = tokio::fs::OpenOptions::new();
    #[cfg(unix)]
    o.custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
    o
}

/// A new private (0600) file; fails if anything, a symlink included, is already there.
pub(super) async fn create_new_private(path: &Path) -> io::Result<tokio::fs::File> {
    let mut o = open_options();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path).await
}

/// Remove a file (or a symlink itself, never its target); a missing file is fine.
pub(super) async fn remove_if_present(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// SHA-256 and length of the first `limit` bytes of a regular file (never a symlink).
pub(super) async fn hash_prefix(path: &Path, limit: u64) -> io::Result<(Sha256, u64)> {
    let mut file = open_options().read(true).open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_BUF];
    let mut total = 0u64;
    while total < limit {
        let want = usize::try_from(limit - total).map_or(buf.len(), |r| r.min(buf.len()));
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher, total))
}

impl Cache {
    pub(super) fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Cache {
            inner: Arc::new(Inner {
                dir,
                max_bytes,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(super) fn path(&self, sha256: &str) -> PathBuf {
        self.inner.dir.join(sha256)
    }

    pub(super) fn partial_path(&self, sha256: &str) -> PathBuf {
        self.inner.dir.join(PARTIAL_DIR).join(sha256)
    }

    /// Create the cache directories (private to the agent) if they are missing.
    pub(super) async fn prepare(&self) -> io::Result<()> {
        let mut builder = tokio::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(self.inner.dir.join(PARTIAL_DIR)).await
    }

    pub(super) fn pin(&self, sha256: &str) -> Pin {
        *lock(&self.inner.state)
            .pins
            .entry(sha256.to_string())
            .or_insert(0) += 1;
        Pin {
            inner: self.inner.clone(),
            sha256: sha256.to_string(),
        }
    }

    /// The cached file for `sha256` if it is there and still holds exactly those `size` bytes;
    /// a damaged file is deleted and `None` returned.
    pub(super) async fn lookup(&self, sha256: &str, size: u64) -> io::Result<Option<PathBuf>> {
        let path = self.path(sha256);
        let meta = match tokio::fs::symlink_metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !meta.is_file() || meta.len() != size {
            warn!(sha256, path = %path.display(), "cached artifact has the wrong type or size; discarding it");
            return self.discard(sha256, &path).await.map(|()| None);
        }
        let stamp = Stamp::of(&meta);
        let known = {
            let mut state = lock(&self.inner.state);
            self.index(&mut state)
                .entries
                .get(sha256)
                .is_some_and(|e| e.stamp == stamp)
        };
        if !known {
            debug!(
                sha256,
                "cached artifact changed since it was verified; re-hashing it"
            );
            let good = match hash_prefix(&path, size.saturating_add(1)).await {
                Ok((hasher, len)) => len == size && hex::encode(hasher.finalize()) == sha256,
                Err(e) => {
                    warn!(sha256, error = %e, "cannot read the cached artifact");
                    false
                }
            };
            if !good {
                warn!(sha256, path = %path.display(), "cached artifact is corrupt; discarding it");
                return self.discard(sha256, &path).await.map(|()| None);
            }
        }
        self.record_stamp(sha256, stamp);
        Ok(Some(path))
    }

    async fn discard(&self, sha256: &str, path: &Path) -> io::Result<()> {
        remove_if_present(path).await?;
        let mut state = lock(&self.inner.state);
        let index = self.index(&mut state);
        if index.entries.remove(sha256).is_some() {
            self.save_index(index);
        }
        Ok(())
    }

    /// Note that the verified file for `sha256` was just used (downloaded or hit).
    pub(super) fn record(&self, sha256: &str) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(self.path(sha256))?;
        self.record_stamp(sha256, Stamp::of(&meta));
        Ok(())
    }

    fn record_stamp(&self, sha256: &str, stamp: Stamp) {
        let mut state = lock(&self.inner.state);
        let index = self.index(&mut state);
        let last_used = index.tick();
        index
            .entries
            .insert(sha256.to_string(), Entry { stamp, last_used });
        self.save_index(index);
    }

    /// Evict least recently used, unpinned files until the cached total plus `incoming` bytes
    /// fits the limit (or nothing evictable is left). Returns the shas evicted.
    pub(super) fn evict(&self, incoming: u64) -> Vec<String> {
        let mut state = lock(&self.inner.state);
        let State { index, pins } = &mut *state;
        let index = index.get_or_insert_with(|| load_index(&self.inner.dir));
        let mut files = Vec::new();
        let entries = match std::fs::read_dir(&self.inner.dir) {
            Ok(rd) => rd,
            Err(e) => {
                warn!(dir = %self.inner.dir.display(), error = %e, "cannot list the artifact cache");
                return Vec::new();
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| is_sha256_hex(n)) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                // Only our own regular files belong here: a symlink under a cache name is
                // removed, never followed.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            // Files missing from the index (a lost index) count as the oldest.
            let last_used = index.entries.get(name).map_or(0, |e| e.last_used);
            files.push((last_used, name.to_string(), meta.len()));
        }
        let before = index.entries.len();
        index
            .entries
            .retain(|sha, _| files.iter().any(|(_, n, _)| n == sha));
        let mut changed = before != index.entries.len();
        files.sort();
        let mut total: u64 = files.iter().map(|(_, _, len)| len).sum();
        let mut evicted = Vec::new();
        for (_, sha, len) in files {
            if total.saturating_add(incoming) <= self.inner.max_bytes {
                break;
            }
            if pins.contains_key(&sha) {
                continue;
            }
            match std::fs::remove_file(self.inner.dir.join(&sha)) {
                Ok(()) => {
                    debug!(sha256 = %sha, bytes = len, "evicted from the artifact cache");
                    total -= len;
                    index.entries.remove(&sha);
                    changed = true;
                    evicted.push(sha);
                }
                Err(e) => warn!(sha256 = %sha, error = %e, "cannot evict a cached artifact"),
            }
        }
        if changed {
            self.save_index(index);
        }
        evicted
    }

    fn index<'a>(&self, state: &'a mut State) -> &'a mut Index {
        state
            .index
            .get_or_insert_with(|| load_index(&self.inner.dir))
    }

    /// Write the index atomically (temp file + rename). A failure only costs re-hashing after
    /// a restart, so it is logged, not returned.
    fn save_index(&self, index: &Index) {
        let tmp = self.inner.dir.join(INDEX_TMP_FILE);
        let result = (|| -> io::Result<()> {
            let json = serde_json::to_vec(index).map_err(io::Error::other)?;
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            let mut file = o.open(&tmp)?;
            file.write_all(&json)?;
            std::fs::rename(&tmp, self.inner.dir.join(INDEX_FILE))
        })();
        if let Err(e) = result {
            warn!(dir = %self.inner.dir.display(), error = %e, "cannot save the artifact cache index");
        }
    }
}

fn load_index(dir: &Path) -> Index {
    let path = dir.join(INDEX_FILE);
    let read = || -> io::Result<Index> {
        let meta = std::fs::symlink_metadata(&path)?;
        if !meta.is_file() || meta.len() > MAX_INDEX_BYTES {
            return Err(io::Error::other("not a regular file of sensible size"));
        }
        let bytes = std::fs::read(&path)?;
        serde_json::from_slice(&bytes).map_err(io::Error::other)
    };
    match read() {
        Ok(index) => index,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Index::default(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "ignoring the unreadable artifact cache index; cached files will be re-hashed");
            Index::default()
        }
    }
}

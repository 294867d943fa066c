//! Artifact download for software installs: [`Fetcher::fetch`] returns a local, SHA-256
//! verified copy of a depot artifact, from the cache when it holds one, otherwise downloaded
//! from the job's ordered sources (the server, HTTP mirrors, mounted shares) with resume,
//! fallback to the next source on any failure or hash mismatch, and progress reports. The
//! returned [`Fetched`] pins the file in the cache until it is dropped, so an install never
//! loses its installer to eviction. Concurrent fetches of one artifact share one download.
//!
//! Decisions: a cache hit is re-hashed only when the file's stamp changed since it was last
//! verified (see [`cache`]); an artifact larger than the whole cache limit is still downloaded
//! (everything unpinned is evicted for it, and it is evicted in turn by the next fetch once it
//! is no longer pinned); partial downloads are not counted against the limit and are kept until
//! their artifact completes or turns out corrupt. A deployment's bandwidth limit
//! ([`Fetcher::fetch_limited`]) paces one fetch across all its sources and retries (see
//! [`throttle`]); a cache hit is not limited, since it moves nothing over the network.

mod cache;
mod download;
#[cfg(test)]
mod tests;
mod throttle;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use capstan_client::agent::AgentClient;
use capstan_proto::software::{Artifact, DownloadSource};
use tracing::{info, warn};

use self::cache::{Cache, Pin};
use self::throttle::Throttle;
use capstan_proto::depot::is_sha256_hex;

/// Progress of one download, reported at most every ~256 KiB or 500 ms (and at its start and
/// end). `received` counts from byte 0, so a resumed download starts above zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchProgress {
    pub source: String,
    pub received: u64,
    pub total: u64,
}

/// A verified artifact on local disk.
#[derive(Debug)]
pub struct Fetched {
    /// `<cache_dir>/<sha256>`; copy or link it under the artifact's file name if the installer
    /// cares about the name. Do not modify it in place.
    pub path: PathBuf,
    /// `"cache"`, `"server"`, or the name of the mirror or share it came from.
    pub source: String,
    pub from_cache: bool,
    /// Sources tried before the one that delivered, and why each failed (worth reporting:
    /// a mirror serving corrupt files needs an operator).
    pub failures: Vec<SourceFailure>,
    /// Keeps the file from eviction until this value is dropped.
    _pin: Pin,
}

/// Why one source could not deliver the artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Could not connect, or the source answered with an error status (5xx, 404 …), or the
    /// file is missing from the share.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The transfer broke off (after retries with resume); the partial file is kept.
    #[error("interrupted after {received} of {size} bytes: {reason}")]
    Interrupted {
        received: u64,
        size: u64,
        reason: String,
    },
    /// The body ended cleanly before the artifact's size.
    #[error("ended after {received} of {size} bytes")]
    Truncated { received: u64, size: u64 },
    /// The source sent (or announced) more bytes than the artifact has.
    #[error("sent more than the artifact's {size} bytes")]
    Oversize { size: u64 },
    /// The complete file does not have the artifact's SHA-256; it was discarded.
    #[error("SHA-256 mismatch: expected {expected}, got {actual}")]
    HashMismatch { expected: String, actual: String },
    /// Writing the download to the local disk failed.
    #[error("local file error: {0}")]
    Local(String),
}

/// One source's failure, named as in [`Fetched::source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFailure {
    pub source: String,
    pub error: SourceError,
}

impl std::fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.error)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The artifact's hash is not lowercase hex SHA-256 (it would become a file name).
    #[error("artifact {file_name:?} has an invalid sha256 {sha256:?}")]
    InvalidArtifact { sha256: String, file_name: String },
    /// Every source failed (or none was given); each failure in source order.
    #[error("artifact {sha256} could not be downloaded: {}", describe(.failures))]
    AllSourcesFailed {
        sha256: String,
        failures: Vec<SourceFailure>,
    },
    /// A bandwidth limit of 0 bytes per second would never finish; "no limit" is `None`.
    #[error("a download limit of 0 bytes per second is invalid (leave it unset for no limit)")]
    ZeroBandwidthLimit,
    /// The cache directory itself is unusable.
    #[error("artifact cache {}: {source}", .path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn describe(failures: &[SourceFailure]) -> String {
    if failures.is_empty() {
        return "no download source was given".to_string();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The name a source goes by in progress, results and errors.
pub fn source_name(source: &DownloadSource) -> &str {
    match source {
        DownloadSource::Server => "server",
        DownloadSource::Http { name, .. } | DownloadSource::Path { name, .. } => name,
    }
}

type ShaLocks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

struct Inner {
    cache: Cache,
    server: AgentClient,
    mirror_http: reqwest::Client,
    locks: ShaLocks,
}

/// Downloads and caches artifacts; clones share the cache, the clients and the per-artifact
/// locks.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

/// Holds the per-artifact lock; drops the map entry when nobody else waits for it.
struct ShaGuard<'a> {
    locks: &'a ShaLocks,
    sha256: String,
    lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for ShaGuard<'_> {
    fn drop(&mut self) {
        self.lock.take();
        let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&self.sha256)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.sha256);
        }
    }
}

impl Fetcher {
    /// A fetcher caching in `cache_dir` (created on first use, mode 0700) up to
    /// `max_cache_bytes`, fetching `Server` sources with `server` (which carries the device
    /// credential) and HTTP mirrors with `mirror_http` (which must not: mirrors are not the
    /// server). Nothing is read from disk until the first fetch.
    pub fn new(
        cache_dir: PathBuf,
        max_cache_bytes: u64,
        server: AgentClient,
        mirror_http: reqwest::Client,
    ) -> Self {
        Fetcher {
            inner: Arc::new(Inner {
                cache: Cache::new(cache_dir, max_cache_bytes),
                server,
                mirror_http,
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A verified local copy of `artifact`: from the cache, or from the first of `sources`
    /// that delivers the right bytes. (The agent itself always goes through
    /// [`Fetcher::fetch_limited`]; this is the unlimited form the tests use.)
    #[cfg(test)]
    pub async fn fetch(
        &self,
        artifact: &Artifact,
        sources: &[DownloadSource],
        progress: &mut (dyn FnMut(FetchProgress) + Send),
    ) -> Result<Fetched, FetchError> {
        self.fetch_limited(artifact, sources, progress, None).await
    }

    /// [`Fetcher::fetch`] at no more than `max_bytes_per_sec` on average (a deployment's
    /// `NetworkPolicy::max_bytes_per_sec`), from every kind of source, counted over the whole
    /// fetch including retries and fallbacks. `None` is no limit; `Some(0)` is refused with
    /// [`FetchError::ZeroBandwidthLimit`] before anything is read. The limit is per call: two
    /// concurrent fetches of different artifacts each get the full rate.
    pub async fn fetch_limited(
        &self,
        artifact: &Artifact,
        sources: &[DownloadSource],
        progress: &mut (dyn FnMut(FetchProgress) + Send),
        max_bytes_per_sec: Option<u64>,
    ) -> Result<Fetched, FetchError> {
        let limit = match max_bytes_per_sec {
            None => None,
            Some(n) => Some(NonZeroU64::new(n).ok_or(FetchError::ZeroBandwidthLimit)?),
        };
        let sha256 = artifact.sha256.as_str();
        // Lowercase hex only, so the name can never be a path in the cache.
        if !is_sha256_hex(sha256) {
            return Err(FetchError::InvalidArtifact {
                sha256: sha256.to_string(),
                file_name: artifact.file_name.clone(),
            });
        }
        let _guard = self.lock_sha(sha256).await;
        let cache = &self.inner.cache;
        let cache_err = |path: PathBuf| move |source| FetchError::Cache { path, source };
        cache
            .prepare()
            .await
            .map_err(cache_err(cache.dir().to_path_buf()))?;
        // Pinned before anything can find it in the cache, so a concurrent eviction for another
        // artifact cannot remove it between the check and the install.
        let pin = cache.pin(sha256);
        if let Some(path) = cache
            .lookup(sha256, artifact.size)
            .await
            .map_err(cache_err(cache.path(sha256)))?
        {
            return Ok(Fetched {
                path,
                source: "cache".to_string(),
                from_cache: true,
                failures: Vec::new(),
                _pin: pin,
            });
        }
        cache.evict(artifact.size);

        let partial = cache.partial_path(sha256);
        // One bucket for the whole fetch, so a retry or the next source cannot start with a
        // fresh burst.
        let mut throttle = limit.map(Throttle::new);
        let mut failures = Vec::new();
        for source in sources {
            let name = source_name(source).to_string();
            let ctx = download::Ctx {
                server: &self.inner.server,
                mirror_http: &self.inner.mirror_http,
                artifact,
                partial: &partial,
                source_name: &name,
            };
            match download::from_source(&ctx, source, progress, throttle.as_mut()).await {
                Ok(()) => {
                    let path = cache.path(sha256);
                    tokio::fs::rename(&partial, &path)
                        .await
                        .map_err(cache_err(path.clone()))?;
                    cache.record(sha256).map_err(cache_err(path.clone()))?;
                    cache.evict(0);
                    info!(sha256, source = %name, bytes = artifact.size, "artifact downloaded");
                    return Ok(Fetched {
                        path,
                        source: name,
                        from_cache: false,
                        failures,
                        _pin: pin,
                    });
                }
                Err(error) => {
                    warn!(sha256, source = %name, %error, "download source failed");
                    failures.push(SourceFailure {
                        source: name,
                        error,
                    });
                }
            }
        }
        Err(FetchError::AllSourcesFailed {
            sha256: sha256.to_string(),
            failures,
        })
    }

    async fn lock_sha(&self, sha256: &str) -> ShaGuard<'_> {
        let mutex = {
            let mut map = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(sha256.to_string()).or_default().clone()
        };
        ShaGuard {
            locks: &self.inner.locks,
            sha256: sha256.to_string(),
            lock: Some(mutex.lock_owned().await),
        }
    }
}

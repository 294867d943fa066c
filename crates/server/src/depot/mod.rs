//! The software depot's blob store and its API (`/api/v1/depot/…`): content-addressed blobs
//! named by the SHA-256 of their bytes. Uploads are streamed to a temporary file while they are
//! hashed and counted, and only a complete, verified upload is renamed into place, so a failed,
//! oversized or cancelled upload never leaves a partial blob visible. Downloads are streamed
//! from storage with single-range support (resume). Storage sits behind [`BlobStore`]:
//! [`FsBlobStore`] keeps blobs under `<data_dir>/depot/` (the default) and
//! [`S3BlobStore`](s3::S3BlobStore) in an S3 bucket (`--depot-backend s3`); [`DepotStore`] is
//! the one configured. Either way uploads are staged on local disk. The database records which
//! blobs are part of the depot; garbage collection removes stored blobs no record names.

pub mod s3;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::SeekFrom;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use capstan_proto::depot::{
    BlobInfo, BlobListQuery, BlobPage, BlobUploadQuery, BlobUploaded, GcReport, is_sha256_hex,
};
use capstan_proto::error::{ErrorBody, ErrorCode};
use capstan_store::{BlobRow, StoreError};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, DepotManage, DepotRead};
use crate::config::{Config, DepotBackend};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::{AppState, now_ms};

/// Temporary upload files older than this are abandoned (no upload writes nothing for an
/// hour) and removed by garbage collection.
pub const TEMP_MAX_AGE: Duration = Duration::from_secs(3600);

/// Size of the chunks a download is read and sent in.
const READ_CHUNK: usize = 128 << 10;

/// Buffer between the upload stream and the temporary file, so small network chunks do not
/// each cost a write.
const WRITE_BUFFER: usize = 256 << 10;

/// Failures of the blob store. Each says what it was doing; the API maps them to responses.
#[derive(Debug, thiserror::Error)]
pub enum DepotError {
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload is empty")]
    Empty,
    #[error("reading the upload failed: {0}")]
    Body(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    ObjectStore {
        context: String,
        source: object_store::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DepotError {
    move |source| DepotError::Io {
        context: context.into(),
        source,
    }
}

/// A blob's bytes, streamed.
pub type ByteStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

/// An opened blob (or a byte range of it).
pub struct BlobContent {
    /// Size of the whole blob.
    pub size: u64,
    /// Offset of the first byte sent and how many bytes are sent.
    pub first: u64,
    pub len: u64,
    /// The requested bytes.
    pub bytes: ByteStream,
}

/// What a sweep of the store did (see [`BlobStore::sweep`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepOutcome {
    pub temp_files_removed: u64,
    pub orphan_blobs_removed: u64,
    pub bytes_freed: u64,
    /// Digests of the blobs the store holds after the sweep.
    pub present: HashSet<String>,
}

/// Where blob bytes live. Uploads are two steps — [`stage`](BlobStore::stage) writes and
/// hashes the bytes somewhere invisible, [`commit`](BlobStore::commit) makes them visible under
/// their digest — so the caller can check the digest and record the blob in between, and a
/// staged blob dropped without a commit leaves nothing behind. Digests passed in are always
/// validated by [`is_sha256_hex`] first.
pub trait BlobStore: Send + Sync {
    type Staged: StagedBlob;

    /// Store `body` invisibly while hashing it; fails with `TooLarge` as soon as more than
    /// `limit` bytes arrived and with `Empty` for no bytes.
    fn stage<S, E>(
        &self,
        body: S,
        limit: u64,
    ) -> impl Future<Output = Result<Self::Staged, DepotError>> + Send
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display + Send;

    /// Make a staged blob visible under its digest. Returns `false` when the store already
    /// held those bytes (the staged copy is discarded).
    fn commit(&self, staged: Self::Staged)
    -> impl Future<Output = Result<bool, DepotError>> + Send;

    /// Bytes `first..=last` of a blob (all of it for `None`); `None` when it is not stored.
    /// The range must lie within the blob (see [`parse_range`]).
    fn read(
        &self,
        sha256: &str,
        range: Option<(u64, u64)>,
    ) -> impl Future<Output = Result<Option<BlobContent>, DepotError>> + Send;

    /// The size of a stored blob; `None` when it is not stored.
    fn size(&self, sha256: &str) -> impl Future<Output = Result<Option<u64>, DepotError>> + Send;

    /// Remove a blob; `false` when it was not stored.
    fn remove(&self, sha256: &str) -> impl Future<Output = Result<bool, DepotError>> + Send;

    /// Remove staged uploads older than `temp_max_age` and stored blobs not in `keep`.
    fn sweep(
        &self,
        keep: &HashSet<String>,
        temp_max_age: Duration,
    ) -> impl Future<Output = Result<SweepOutcome, DepotError>> + Send;
}

/// A hashed, counted, not yet visible upload.
pub trait StagedBlob: Send {
    /// Lowercase hex SHA-256 of the bytes.
    fn sha256(&self) -> &str;
    fn size(&self) -> u64;
    /// A local file holding the staged bytes, so they can be inspected (package metadata)
    /// before they become a blob. Every backend stages on local disk.
    fn local_path(&self) -> &FsPath;
}

/// Blobs as files: `<root>/blobs/sha256/<aa>/<bb>/<digest>`, uploads staged in `<root>/tmp/`
/// (on the same file system, so the final rename is atomic).
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

/// A temporary file that is removed when dropped unless it was renamed into place. Dropping
/// covers every way an upload can end early: an error, a rejected digest, and the request
/// future being dropped when the client disconnects.
#[derive(Debug)]
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an abandoned upload file; depot gc will");
        }
    }
}

/// An upload staged by [`FsBlobStore`].
#[derive(Debug)]
pub struct FsStaged {
    sha256: String,
    size: u64,
    temp: TempFile,
}

impl StagedBlob for FsStaged {
    fn sha256(&self) -> &str {
        &self.sha256
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn local_path(&self) -> &FsPath {
        // The path is only taken when the file is renamed into place, which consumes `self`.
        self.temp.0.as_deref().unwrap_or(FsPath::new(""))
    }
}

impl FsBlobStore {
    /// The store of a server's data directory (`<data_dir>/depot`).
    pub fn in_data_dir(data_dir: &FsPath) -> FsBlobStore {
        FsBlobStore {
            root: data_dir.join("depot"),
        }
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The file of a blob. Only ever called with a validated digest, so the name cannot leave
    /// the store.
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        debug_assert!(is_sha256_hex(sha256));
        self.blobs_dir()
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256)
    }

    async fn write_staged<S, E>(
        &self,
        file: tokio::fs::File,
        path: &FsPath,
        mut body: S,
        limit: u64,
    ) -> Result<(String, u64), DepotError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display + Send,
    {
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| DepotError::Body(e.to_string()))?;
            size = size.saturating_add(chunk.len() as u64);
            if size > limit {
                return Err(DepotError::TooLarge { limit });
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(io_err(format!("writing {}", path.display())))?;
        }
        if size == 0 {
            return Err(DepotError::Empty);
        }
        out.flush()
            .await
            .map_err(io_err(format!("writing {}", path.display())))?;
        // The bytes must be on disk before the rename makes them a blob: a crash must never
        // leave a visible blob with lost content.
        out.get_ref()
            .sync_all()
            .await
            .map_err(io_err(format!("syncing {}", path.display())))?;
        Ok((hex::encode(hasher.finalize()), size))
    }
}

impl FsBlobStore {
    /// Remove staged uploads not written to for `max_age` (abandoned by a crash; a live
    /// upload keeps its file fresh).
    async fn sweep_temp(
        &self,
        max_age: Duration,
        out: &mut SweepOutcome,
    ) -> Result<(), DepotError> {
        let cutoff = SystemTime::now()
            .checked_sub(max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for entry in list_dir(&self.temp_dir()).await? {
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if !meta.is_file() || meta.modified().map_or(true, |m| m > cutoff) {
                continue;
            }
            if remove_counted(&entry.path(), &mut out.bytes_freed).await? {
                out.temp_files_removed += 1;
            }
        }
        Ok(())
    }
}

impl BlobStore for FsBlobStore {
    type Staged = FsStaged;

    async fn stage<S, E>(&self, body: S, limit: u64) -> Result<FsStaged, DepotError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display + Send,
    {
        let dir = self.temp_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_err(format!("creating {}", dir.display())))?;
        let path = dir.join(format!("upload-{}", uuid::Uuid::new_v4()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(io_err(format!("creating {}", path.display())))?;
        let temp = TempFile(Some(path.clone()));
        let (sha256, size) = self.write_staged(file, &path, body, limit).await?;
        Ok(FsStaged { sha256, size, temp })
    }

    async fn commit(&self, mut staged: FsStaged) -> Result<bool, DepotError> {
        let target = self.blob_path(&staged.sha256);
        if tokio::fs::try_exists(&target)
            .await
            .map_err(io_err(format!("checking {}", target.display())))?
        {
            // Same digest, same bytes: keep the stored copy; dropping `staged` removes ours.
            return Ok(false);
        }
        let parent = target.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(io_err(format!("creating {}", parent.display())))?;
        let Some(temp) = staged.temp.0.clone() else {
            return Err(DepotError::Io {
                context: format!("committing blob {}", staged.sha256),
                source: std::io::Error::other("the staged file is gone"),
            });
        };
        tokio::fs::rename(&temp, &target)
            .await
            .map_err(io_err(format!(
                "moving {} to {}",
                temp.display(),
                target.display()
            )))?;
        staged.temp.0 = None;
        // Persist the new directory entry too, or a crash could forget the rename.
        #[cfg(unix)]
        if let Ok(dir) = tokio::fs::File::open(&parent).await
            && let Err(e) = dir.sync_all().await
        {
            tracing::warn!(dir = %parent.display(), error = %e, "could not sync the blob directory");
        }
        Ok(true)
    }

    async fn read(
        &self,
        sha256: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<BlobContent>, DepotError> {
        let path = self.blob_path(sha256);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(format!("opening {}", path.display()))(e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(io_err(format!("reading metadata of {}", path.display())))?
            .len();
        let (first, len) = match range {
            Some((first, last)) if first < size => (first, (last.min(size - 1) - first) + 1),
            Some(_) => (size, 0),
            None => (0, size),
        };
        if first > 0 {
            file.seek(SeekFrom::Start(first))
                .await
                .map_err(io_err(format!("seeking in {}", path.display())))?;
        }
        let reader = file.take(len);
        let bytes = futures_util::stream::try_unfold(reader, |mut reader| async move {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), reader)))
        });
        Ok(Some(BlobContent {
            size,
            first,
            len,
            bytes: bytes.boxed(),
        }))
    }

    async fn size(&self, sha256: &str) -> Result<Option<u64>, DepotError> {
        let path = self.blob_path(sha256);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("reading metadata of {}", path.display()))(e)),
        }
    }

    async fn remove(&self, sha256: &str) -> Result<bool, DepotError> {
        let path = self.blob_path(sha256);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
        }
    }

    async fn sweep(
        &self,
        keep: &HashSet<String>,
        temp_max_age: Duration,
    ) -> Result<SweepOutcome, DepotError> {
        let mut out = SweepOutcome::default();
        self.sweep_temp(temp_max_age, &mut out).await?;
        // Only names this store writes are considered; anything else in the tree is left
        // alone (and logged), never deleted on a guess.
        for level1 in list_dir(&self.blobs_dir()).await? {
            let l1 = level1.file_name().to_string_lossy().into_owned();
            for level2 in list_dir(&level1.path()).await? {
                let l2 = level2.file_name().to_string_lossy().into_owned();
                for file in list_dir(&level2.path()).await? {
                    let name = file.file_name().to_string_lossy().into_owned();
                    let ours = is_sha256_hex(&name) && name[..2] == l1 && name[2..4] == l2;
                    if !ours || !file.file_type().await.is_ok_and(|t| t.is_file()) {
                        tracing::warn!(path = %file.path().display(), "unexpected entry in the depot; left alone");
                        continue;
                    }
                    if keep.contains(&name) {
                        out.present.insert(name);
                    } else if remove_counted(&file.path(), &mut out.bytes_freed).await? {
                        out.orphan_blobs_removed += 1;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The entries of a directory; none when it does not exist (yet).
async fn list_dir(dir: &FsPath) -> Result<Vec<tokio::fs::DirEntry>, DepotError> {
    let mut rd = match tokio::fs::read_dir(dir).await {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("listing {}", dir.display()))(e)),
    };
    let mut entries = Vec::new();
    while let Some(e) = rd
        .next_entry()
        .await
        .map_err(io_err(format!("listing {}", dir.display())))?
    {
        entries.push(e);
    }
    Ok(entries)
}

/// Remove a file, adding its size to `freed`; `false` when it was already gone.
async fn remove_counted(path: &FsPath, freed: &mut u64) -> Result<bool, DepotError> {
    let len = tokio::fs::metadata(path).await.map_or(0, |m| m.len());
    match tokio::fs::remove_file(path).await {
        Ok(()) => {
            *freed += len;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
    }
}

/// The configured blob store: blobs as files or as S3 objects. Both stage uploads on local
/// disk, so the staged type is the file store's.
#[derive(Debug, Clone)]
pub enum DepotStore {
    Fs(FsBlobStore),
    S3(s3::S3BlobStore),
}

impl DepotStore {
    /// The store `config` names. An S3 client is built once per distinct setting and then
    /// shared, so calling this per request is cheap.
    pub fn from_config(config: &Config) -> Result<DepotStore, DepotError> {
        Ok(match &config.depot_backend {
            DepotBackend::Fs => DepotStore::Fs(FsBlobStore::in_data_dir(&config.data_dir)),
            DepotBackend::S3(settings) => {
                DepotStore::S3(s3::S3BlobStore::new(settings, &config.data_dir)?)
            }
        })
    }

    /// Names the storage for [`depot_lock`]: servers sharing it share the lock.
    fn lock_key(&self) -> String {
        match self {
            DepotStore::Fs(fs) => format!("fs:{}", fs.root.display()),
            DepotStore::S3(s3) => s3.describe(),
        }
    }
}

// The S3 futures are boxed so that their state (an upload's parts in flight, the client's
// request futures) does not enlarge every depot handler's future when S3 is not in use.
impl BlobStore for DepotStore {
    type Staged = FsStaged;

    async fn stage<S, E>(&self, body: S, limit: u64) -> Result<FsStaged, DepotError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display + Send,
    {
        match self {
            DepotStore::Fs(st) => st.stage(body, limit).await,
            DepotStore::S3(st) => Box::pin(st.stage(body, limit)).await,
        }
    }

    async fn commit(&self, staged: FsStaged) -> Result<bool, DepotError> {
        match self {
            DepotStore::Fs(st) => st.commit(staged).await,
            DepotStore::S3(st) => Box::pin(st.commit(staged)).await,
        }
    }

    async fn read(
        &self,
        sha256: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<BlobContent>, DepotError> {
        match self {
            DepotStore::Fs(st) => st.read(sha256, range).await,
            DepotStore::S3(st) => Box::pin(st.read(sha256, range)).await,
        }
    }

    async fn size(&self, sha256: &str) -> Result<Option<u64>, DepotError> {
        match self {
            DepotStore::Fs(st) => st.size(sha256).await,
            DepotStore::S3(st) => Box::pin(st.size(sha256)).await,
        }
    }

    async fn remove(&self, sha256: &str) -> Result<bool, DepotError> {
        match self {
            DepotStore::Fs(st) => st.remove(sha256).await,
            DepotStore::S3(st) => Box::pin(st.remove(sha256)).await,
        }
    }

    async fn sweep(
        &self,
        keep: &HashSet<String>,
        temp_max_age: Duration,
    ) -> Result<SweepOutcome, DepotError> {
        match self {
            DepotStore::Fs(st) => st.sweep(keep, temp_max_age).await,
            DepotStore::S3(st) => Box::pin(st.sweep(keep, temp_max_age)).await,
        }
    }
}

/// Checks at start-up that the configured depot can be used: for S3, that the bucket answers
/// with the given credentials, so a typo fails the start instead of the first upload.
pub async fn check_backend(config: &Config) -> Result<(), DepotError> {
    match DepotStore::from_config(config)? {
        DepotStore::Fs(_) => Ok(()),
        DepotStore::S3(s3) => s3.check_reachable().await,
    }
}

/// The blob store of this server.
fn blob_store(state: &AppState) -> ApiResult<DepotStore> {
    DepotStore::from_config(&state.config).map_err(depot_failure)
}

/// Serialises the steps that must see stored blobs and records agree: making a blob visible
/// and recording it, deleting a record and its blob, and garbage collection (which would
/// otherwise take a just-committed, not yet recorded blob for an orphan). One lock per storage
/// location, so servers in one test process do not wait on each other. Replicas sharing one
/// location are not covered: a sweep in one can race an upload in another (the blob is then
/// reported missing by the next gc and restored by uploading it again).
fn depot_lock(key: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.to_string())
        .or_default()
        .clone()
}

/// Which part of a blob a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything (200).
    Full,
    /// Bytes `first..=last` (206).
    Partial { first: u64, last: u64 },
    /// A well-formed range that selects nothing of this blob (416).
    Unsatisfiable,
}

/// Interpret a `Range` header for a blob of `size` bytes (RFC 9110 §14). One range is served
/// as asked: `bytes=a-b` (`b` clamped to the end), `bytes=a-`, `bytes=-n` (the last `n`
/// bytes). A header that is not a byte-range (malformed, another unit) is ignored, as the RFC
/// allows, and so is a list of several ranges: the whole blob is sent with 200, which every
/// client handles, instead of a multipart body nobody here needs. A well-formed range that
/// cannot be satisfied (starts at or after the end, `-0`, or ends before it starts) is 416.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(value) = header else {
        return RangeRequest::Full;
    };
    let value = value.trim();
    let Some(unit_end) = value.find('=') else {
        return RangeRequest::Full;
    };
    if !value[..unit_end].trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Full;
    }
    let spec = value[unit_end + 1..].trim();
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Digit strings too long for u64 are still well-formed: as a start they lie beyond any
    // blob, as an end they mean "to the end".
    let number = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    match (digits(first), digits(last), first.is_empty()) {
        (true, true, _) => {
            let (a, b) = (number(first), number(last));
            if b < a || a >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    first: a,
                    last: b.min(size - 1),
                }
            }
        }
        (true, false, _) if last.is_empty() => {
            let a = number(first);
            if a >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    first: a,
                    last: size - 1,
                }
            }
        }
        (false, true, true) => {
            let n = number(last);
            if n == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    first: size.saturating_sub(n),
                    last: size - 1,
                }
            }
        }
        _ => RangeRequest::Full,
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_blobs, upload_blob))
        .routes(routes!(get_blob, delete_blob))
        .routes(routes!(download_blob))
        .routes(routes!(collect_garbage))
        .routes(routes!(depot_limits))
}

/// The depot's limits (the largest upload), for clients to check a file before sending it.
#[utoipa::path(get, path = "/api/v1/depot/limits", tag = "depot",
    responses((status = 200, body = capstan_proto::depot::DepotLimits)),
    security(("bearer" = [])))]
async fn depot_limits(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
) -> Json<capstan_proto::depot::DepotLimits> {
    Json(capstan_proto::depot::DepotLimits {
        max_upload_bytes: state.config.max_upload_bytes,
    })
}

/// A digest from a path, checked before it comes near the file system.
fn digest(s: &str) -> ApiResult<&str> {
    if is_sha256_hex(s) {
        Ok(s)
    } else {
        Err(ApiError::validation(
            "a blob is named by its SHA-256: 64 lowercase hexadecimal digits",
        ))
    }
}

fn depot_failure(e: DepotError) -> ApiError {
    match e {
        DepotError::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the upload exceeds the depot's limit of {limit} bytes"),
        ),
        DepotError::Empty => {
            ApiError::validation("the upload is empty; a blob has at least one byte")
        }
        DepotError::Body(m) => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            format!("could not read the upload: {m}"),
        ),
        e @ (DepotError::Io { .. } | DepotError::ObjectStore { .. }) => {
            ApiError::internal(format!("depot: {e}"))
        }
    }
}

fn blob_info(r: BlobRow) -> BlobInfo {
    BlobInfo {
        sha256: r.sha256,
        size: u64::try_from(r.size).unwrap_or(0),
        created_at_ms: r.created_at,
        created_by: r.created_by,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Upload a blob: the raw request body (`Content-Type: application/octet-stream`) is the
/// content, streamed to storage and hashed on the way. The depot's size limit
/// (`max_upload_bytes`) is enforced up front from `Content-Length` and again while reading;
/// an upload that fails, is too large, is empty or does not match `sha256` leaves nothing
/// behind. Uploading bytes the depot already holds answers `created: false`.
#[utoipa::path(post, path = "/api/v1/depot/blobs", tag = "depot", params(BlobUploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = BlobUploaded),
              (status = 400, body = ErrorBody, description = "empty upload, digest mismatch or invalid `sha256`"),
              (status = 413, body = ErrorBody, description = "payload_too_large"),
              (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
async fn upload_blob(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Query(q): Query<BlobUploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<BlobUploaded>)> {
    let expected = match q.sha256.as_deref() {
        Some(s) if !is_sha256_hex(s) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                "sha256 must be 64 lowercase hexadecimal digits",
            ));
        }
        other => other,
    };
    let staged = stage_request(&state, &headers, body).await?;
    if let Some(want) = expected
        && staged.sha256() != want
    {
        return Err(ApiError::validation(format!(
            "the upload's SHA-256 is {}, not the expected {want}; nothing was stored",
            staged.sha256()
        )));
    }
    let uploaded = commit_and_record(&state, staged, &auth.operator).await?;
    Ok((StatusCode::CREATED, Json(uploaded)))
}

/// The staged upload type of this server's blob store.
pub type Staged = FsStaged;

/// Checks an upload request's content type and announced length and stages its body
/// (hashed, counted, not yet visible). Dropping the result discards the bytes.
pub async fn stage_request(state: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Staged> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if mime.as_deref() != Some("application/octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "expected `Content-Type: application/octet-stream` with the file as the body",
        ));
    }
    let limit = state.config.max_upload_bytes;
    match content_length(headers) {
        Some(n) if n > limit => return Err(depot_failure(DepotError::TooLarge { limit })),
        Some(0) => return Err(depot_failure(DepotError::Empty)),
        _ => {}
    }
    blob_store(state)?
        .stage(body.into_data_stream(), limit)
        .await
        .map_err(depot_failure)
}

/// Makes a staged upload a blob and records it (with its audit row); a blob already held is
/// de-duplicated (`created: false`).
pub async fn commit_and_record(
    state: &AppState,
    staged: Staged,
    operator: &crate::auth::Operator,
) -> ApiResult<BlobUploaded> {
    let store = blob_store(state)?;
    let (sha256, size) = (staged.sha256().to_string(), staged.size());
    let lock = depot_lock(&store.lock_key());
    let _guard = lock.lock().await;
    let stored_now = store.commit(staged).await.map_err(depot_failure)?;
    let row = BlobRow {
        sha256: sha256.clone(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        created_at: now_ms(),
        created_by: operator.actor(),
    };
    let audit = operator.audit("depot_blob.upload", Some(&sha256), json!({"size": size}));
    let created = match state.store.insert_blob(&row, &audit).await {
        Ok(created) => created,
        Err(e) => {
            // No record, no blob: take back a file this upload put in place.
            if stored_now && let Err(re) = store.remove(&sha256).await {
                tracing::warn!(sha256, error = %re, "could not remove an unrecorded blob; depot gc will");
            }
            return Err(e.into());
        }
    };
    Ok(BlobUploaded {
        sha256,
        size,
        created,
    })
}

/// The depot's blobs, newest first, paged by `offset` and `limit`.
#[utoipa::path(get, path = "/api/v1/depot/blobs", tag = "depot", params(BlobListQuery),
    responses((status = 200, body = BlobPage), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_blobs(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Query(q): Query<BlobListQuery>,
) -> ApiResult<Json<BlobPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "limit must be between 1 and 1000",
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let offset_i = i64::try_from(offset).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "offset is too large",
        )
    })?;
    let (rows, total) = state.store.list_blobs(offset_i, limit as i64).await?;
    Ok(Json(BlobPage {
        items: rows.into_iter().map(blob_info).collect(),
        total: u64::try_from(total).unwrap_or(0),
        offset,
        limit,
    }))
}

async fn find(state: &AppState, sha256: &str) -> ApiResult<BlobRow> {
    state
        .store
        .blob(sha256)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blob {sha256}")))
}

/// One blob's metadata.
#[utoipa::path(get, path = "/api/v1/depot/blobs/{sha256}", tag = "depot",
    params(("sha256" = String, Path, description = "64 lowercase hex digits")),
    responses((status = 200, body = BlobInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_blob(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Path(sha256): Path<String>,
) -> ApiResult<Json<BlobInfo>> {
    Ok(Json(blob_info(find(&state, digest(&sha256)?).await?)))
}

/// Delete a blob: its record and its bytes. Blobs are not referenced by anything yet; once
/// package versions name their artifacts' blobs, deleting a referenced blob will answer 409.
#[utoipa::path(delete, path = "/api/v1/depot/blobs/{sha256}", tag = "depot",
    params(("sha256" = String, Path, description = "64 lowercase hex digits")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the blob is referenced")),
    security(("bearer" = [])))]
async fn delete_blob(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
    Path(sha256): Path<String>,
) -> ApiResult<StatusCode> {
    let sha256 = digest(&sha256)?;
    let row = find(&state, sha256).await?;
    let store = blob_store(&state)?;
    let lock = depot_lock(&store.lock_key());
    let _guard = lock.lock().await;
    let audit = auth
        .operator
        .audit("depot_blob.delete", Some(sha256), json!({"size": row.size}));
    state
        .store
        .delete_blob(sha256, &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!("blob {sha256}")),
            other => other.into(),
        })?;
    // The record is gone, so the blob is gone for every client; a file that cannot be removed
    // now is an orphan that garbage collection removes later.
    if let Err(e) = store.remove(sha256).await {
        tracing::warn!(sha256, error = %e, "could not remove a deleted blob's file; depot gc will");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A blob's bytes, streamed, with `ETag` (the quoted digest) and resume support: one
/// `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` answers 206 with `Content-Range`; a range
/// beyond the end answers 416 with `Content-Range: bytes */<size>`. A malformed `Range` or a
/// list of several ranges is ignored and the whole blob sent with 200.
#[utoipa::path(get, path = "/api/v1/depot/blobs/{sha256}/content", tag = "depot",
    params(("sha256" = String, Path, description = "64 lowercase hex digits"),
           ("Range" = Option<String>, Header, description = "one byte range, e.g. `bytes=1024-`")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 206, content_type = "application/octet-stream", body = Vec<u8>, description = "the requested range"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 416, body = ErrorBody, description = "range not satisfiable")),
    security(("bearer" = [])))]
async fn download_blob(
    State(state): State<AppState>,
    _auth: Authz<DepotRead>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let sha256 = digest(&sha256)?;
    find(&state, sha256).await?;
    serve_blob(&state, sha256, &headers).await
}

/// Streams a recorded blob (validated digest) with `ETag` and `Range` support; shared by the
/// console download and the agent download route.
pub async fn serve_blob(
    state: &AppState,
    sha256: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let store = blob_store(state)?;
    let missing = || {
        ApiError::internal(format!(
            "blob {sha256} is recorded but missing from the depot storage (see depot gc)"
        ))
    };
    let size = store
        .size(sha256)
        .await
        .map_err(depot_failure)?
        .ok_or_else(missing)?;
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, span) = match range {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial { first, last } => (StatusCode::PARTIAL_CONTENT, Some((first, last))),
        RangeRequest::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::ValidationFailed,
                format!("the range is outside the blob's {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let content = store
        .read(sha256, span)
        .await
        .map_err(depot_failure)?
        .ok_or_else(missing)?;
    let (first, len, size) = (content.first, content.len, content.size);
    let mut resp = Response::new(Body::from_stream(content.bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let mut set = |name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, "application/octet-stream".into());
    set(header::CONTENT_LENGTH, len.to_string());
    set(header::ETAG, format!("\"{sha256}\""));
    set(header::ACCEPT_RANGES, "bytes".into());
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            header::CONTENT_RANGE,
            format!("bytes {first}-{}/{size}", first + len - 1),
        );
    }
    Ok(resp)
}

/// Garbage-collect the depot: remove abandoned uploads (temporary files older than an hour)
/// and stored files that no blob record names, and report records whose file is missing.
#[utoipa::path(post, path = "/api/v1/depot/gc", tag = "depot",
    responses((status = 200, body = GcReport), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn collect_garbage(
    State(state): State<AppState>,
    auth: Authz<DepotManage>,
) -> ApiResult<Json<GcReport>> {
    let store = blob_store(&state)?;
    let lock = depot_lock(&store.lock_key());
    let _guard = lock.lock().await;
    let recorded: HashSet<String> = state.store.blob_digests().await?.into_iter().collect();
    let swept = store
        .sweep(&recorded, TEMP_MAX_AGE)
        .await
        .map_err(depot_failure)?;
    let mut missing: Vec<String> = recorded.difference(&swept.present).cloned().collect();
    missing.sort();
    let report = GcReport {
        temp_files_removed: swept.temp_files_removed,
        orphan_blobs_removed: swept.orphan_blobs_removed,
        bytes_freed: swept.bytes_freed,
        missing_blobs: missing,
    };
    if !report.missing_blobs.is_empty() {
        tracing::warn!(missing = ?report.missing_blobs, "depot blobs recorded without a stored file");
    }
    let audit = auth.operator.audit(
        "depot.gc",
        None,
        json!({
            "temp_files_removed": report.temp_files_removed,
            "orphan_blobs_removed": report.orphan_blobs_removed,
            "bytes_freed": report.bytes_freed,
            "missing_blobs": report.missing_blobs.len(),
        }),
    );
    state.store.record_audit(&audit).await?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::{RangeRequest, parse_range};

    #[test]
    fn range_headers_are_read_as_documented() {
        use RangeRequest::{Full, Partial, Unsatisfiable};
        let p = |first, last| Partial { first, last };
        let size = 1000;
        let cases: &[(Option<&str>, RangeRequest)] = &[
            (None, Full),
            (Some("bytes=0-99"), p(0, 99)),
            (Some("bytes=100-"), p(100, 999)),
            (Some("bytes=-10"), p(990, 999)),
            (Some("bytes=-5000"), p(0, 999)),
            (Some("bytes=900-5000"), p(900, 999)),
            (Some("bytes=999-999"), p(999, 999)),
            (Some("BYTES = 1-2"), p(1, 2)),
            (Some("bytes=99999999999999999999-"), Unsatisfiable),
            (Some("bytes=5-99999999999999999999"), p(5, 999)),
            (Some("bytes=1000-"), Unsatisfiable),
            (Some("bytes=1000-1001"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=5-2"), Unsatisfiable),
            (Some("bytes=0-1,5-6"), Full),
            (Some("bytes=abc"), Full),
            (Some("bytes=-"), Full),
            (Some("bytes=1-x"), Full),
            (Some("bytes=+1-2"), Full),
            (Some("items=0-1"), Full),
            (Some("0-1"), Full),
            (Some(""), Full),
        ];
        for (header, want) in cases {
            assert_eq!(parse_range(*header, size), *want, "{header:?}");
        }
    }
}

//! The depot's S3 backend: blobs as objects `<prefix>/sha256/<aa>/<bb>/<digest>` in one bucket
//! of AWS S3 or an S3-compatible server, through `object_store`. Uploads are staged on local
//! disk exactly as the file store stages them (hashed while streaming, same limits, removed
//! when dropped); a commit first asks whether the object exists (content addressing makes that
//! the de-duplication) and otherwise uploads the staged file part by part, so memory holds a
//! few parts, never the file. Downloads are ranged GETs streamed back to the client.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path as FsPath;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use tokio::io::AsyncReadExt;

use super::{
    BlobContent, BlobStore, DepotError, FsBlobStore, FsStaged, StagedBlob, SweepOutcome, io_err,
};
use crate::config::S3Settings;

/// Size of an uploaded part (S3 wants at least 5 MiB for all but the last), grown for files
/// that would otherwise need more than [`MAX_PARTS`] parts.
const PART_SIZE: u64 = 8 << 20;
/// S3's limit on the parts of one upload.
const MAX_PARTS: u64 = 10_000;
/// Parts uploaded at once: enough to keep the link busy, while memory stays at a few parts.
const PARTS_IN_FLIGHT: usize = 2;
/// One part must be sent within this, or the upload fails (and is aborted) instead of hanging.
const PART_TIMEOUT: Duration = Duration::from_secs(300);
/// A response that sends nothing for this long is broken off. There is deliberately no limit
/// on a whole request: a download streams as slowly as the agent reading it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Blobs as objects in an S3 bucket, staged under `<data_dir>/depot/tmp`.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Arc<AmazonS3>,
    settings: Arc<S3Settings>,
    staging: FsBlobStore,
}

fn remote(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> DepotError {
    move |source| DepotError::ObjectStore {
        context: context.into(),
        source,
    }
}

/// Each distinct setting gets one client, built on first use and shared afterwards, so its
/// connection pool is reused across requests.
pub(crate) fn client_for(settings: &S3Settings) -> Result<Arc<AmazonS3>, DepotError> {
    static CLIENTS: LazyLock<Mutex<HashMap<S3Settings, Arc<AmazonS3>>>> =
        LazyLock::new(Default::default);
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(client) = clients.get(settings) {
        return Ok(client.clone());
    }
    let client = Arc::new(build_client(settings)?);
    clients.insert(settings.clone(), client.clone());
    Ok(client)
}

fn build_client(s: &S3Settings) -> Result<AmazonS3, DepotError> {
    let options = ClientOptions::new()
        .with_timeout_disabled()
        .with_read_timeout(READ_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT);
    // Bounded retries: a dead endpoint fails the start-up check in seconds, not minutes.
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    };
    // `from_env` brings the rest of the standard AWS credential chain (web identity, container
    // and instance credentials); what the configuration names explicitly wins.
    let mut builder = AmazonS3Builder::from_env()
        .with_client_options(options)
        .with_retry(retry)
        .with_bucket_name(&s.bucket)
        .with_region(&s.region)
        .with_allow_http(s.allow_http);
    if let Some(endpoint) = &s.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let (Some(key), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
        builder = builder
            .with_access_key_id(key)
            .with_secret_access_key(secret);
        if let Some(token) = &s.session_token {
            builder = builder.with_token(token);
        }
    }
    builder
        .build()
        .map_err(remote(format!("configuring the S3 depot {}", describe(s))))
}

fn describe(s: &S3Settings) -> String {
    let mut d = format!("s3://{}/{}", s.bucket, s.prefix);
    if let Some(endpoint) = &s.endpoint {
        d.push_str(&format!(" at {endpoint}"));
    }
    d
}

/// Reads exactly `n` bytes of the staged file (one part).
async fn read_part(file: &mut tokio::fs::File, n: u64, path: &FsPath) -> Result<Bytes, DepotError> {
    let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    file.take(n)
        .read_to_end(&mut buf)
        .await
        .map_err(io_err(format!("reading {}", path.display())))?;
    if buf.len() as u64 != n {
        return Err(DepotError::Io {
            context: format!("reading {}", path.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the staged file is shorter than the upload",
            ),
        });
    }
    Ok(Bytes::from(buf))
}

impl S3BlobStore {
    /// The store for `settings`, staging under `<data_dir>/depot/tmp`.
    pub fn new(settings: &S3Settings, data_dir: &FsPath) -> Result<S3BlobStore, DepotError> {
        Ok(S3BlobStore {
            client: client_for(settings)?,
            settings: Arc::new(settings.clone()),
            staging: FsBlobStore::in_data_dir(data_dir),
        })
    }

    /// `s3://bucket/prefix at endpoint`, for messages and the depot lock.
    pub fn describe(&self) -> String {
        describe(&self.settings)
    }

    /// `<prefix>/sha256`: every object of this store lies below it.
    fn blobs_root(&self) -> ObjectPath {
        ObjectPath::from_iter(
            self.settings
                .prefix
                .split('/')
                .filter(|p| !p.is_empty())
                .chain(["sha256"]),
        )
    }

    /// The object of a blob. Only ever called with a validated digest.
    pub fn blob_key(&self, sha256: &str) -> ObjectPath {
        debug_assert!(super::is_sha256_hex(sha256));
        let root = self.blobs_root();
        let parts = [&sha256[..2], &sha256[2..4], sha256];
        ObjectPath::from_iter(root.parts().chain(parts.into_iter().map(Into::into)))
    }

    /// The digest an object of this store is named by; `None` for a key this store does not
    /// write (left alone by gc).
    fn digest_of<'a>(&self, root: &ObjectPath, key: &'a ObjectPath) -> Option<&'a str> {
        let rest = key
            .as_ref()
            .strip_prefix(root.as_ref())?
            .strip_prefix('/')?;
        let mut parts = rest.split('/');
        let (l1, l2, name) = (parts.next()?, parts.next()?, parts.next()?);
        let ours = parts.next().is_none()
            && super::is_sha256_hex(name)
            && name[..2] == *l1
            && name[2..4] == *l2;
        ours.then_some(name)
    }

    /// Start-up check: lists (at most one page of) the prefix, which needs the bucket to exist
    /// and the credentials to be accepted.
    pub async fn check_reachable(&self) -> Result<(), DepotError> {
        self.client
            .list_with_delimiter(Some(&self.blobs_root()))
            .await
            .map(|_| ())
            .map_err(remote(format!(
                "the S3 depot {} is not usable (check the bucket, the endpoint and the AWS \
                 credentials)",
                self.describe()
            )))
    }

    async fn head(&self, key: &ObjectPath) -> Result<Option<ObjectMeta>, DepotError> {
        match self
            .client
            .get_opts(key, GetOptions::new().with_head(true))
            .await
        {
            Ok(r) => Ok(Some(r.meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote(format!("looking up {key} in {}", self.describe()))(
                e,
            )),
        }
    }

    async fn delete(&self, keys: Vec<ObjectPath>) -> Result<(), DepotError> {
        let input = futures_util::stream::iter(keys.into_iter().map(Ok)).boxed();
        let mut done = self.client.delete_stream(input);
        while let Some(r) = done.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(remote(format!("deleting from {}", self.describe()))(e)),
            }
        }
        Ok(())
    }

    /// Uploads the staged file: one PUT when it fits in a part, otherwise a multipart upload
    /// that is aborted (its parts deleted) when any step fails.
    async fn upload(&self, key: &ObjectPath, path: &FsPath, size: u64) -> Result<(), DepotError> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(io_err(format!("opening {}", path.display())))?;
        let part = PART_SIZE.max(size.div_ceil(MAX_PARTS));
        let context = || format!("uploading {key} to {}", self.describe());
        if size <= part {
            let bytes = read_part(&mut file, size, path).await?;
            self.client
                .put_opts(key, PutPayload::from(bytes), PutOptions::default())
                .await
                .map_err(remote(context()))?;
            return Ok(());
        }
        let mut upload = self
            .client
            .put_multipart_opts(key, PutMultipartOptions::default())
            .await
            .map_err(remote(context()))?;
        let sent = match send_parts(&mut upload, &mut file, path, size, part).await {
            Ok(()) => upload
                .complete()
                .await
                .map(|_| ())
                .map_err(remote(context())),
            Err(e) => Err(e),
        };
        if sent.is_err()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(key = %key, error = %e, "could not abort a failed multipart upload; its parts stay until the bucket's lifecycle rule removes them");
        }
        sent
    }
}

/// Sends the file's parts in order, [`PARTS_IN_FLIGHT`] at a time. On failure the parts
/// still running are stopped before the caller aborts the upload.
async fn send_parts(
    upload: &mut Box<dyn MultipartUpload>,
    file: &mut tokio::fs::File,
    path: &FsPath,
    size: u64,
    part: u64,
) -> Result<(), DepotError> {
    let mut running: VecDeque<tokio::task::JoinHandle<Result<(), DepotError>>> = VecDeque::new();
    let result = async {
        let mut left = size;
        while left > 0 {
            let n = left.min(part);
            let bytes = read_part(file, n, path).await?;
            left -= n;
            if running.len() >= PARTS_IN_FLIGHT
                && let Some(first) = running.pop_front()
            {
                join_part(first).await?;
            }
            let put = upload.put_part(PutPayload::from(bytes));
            running.push_back(tokio::spawn(async move {
                match tokio::time::timeout(PART_TIMEOUT, put).await {
                    Ok(r) => r.map_err(remote("uploading a part")),
                    Err(_) => Err(DepotError::Io {
                        context: "uploading a part".into(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no answer within {} s", PART_TIMEOUT.as_secs()),
                        ),
                    }),
                }
            }));
        }
        while let Some(next) = running.pop_front() {
            join_part(next).await?;
        }
        Ok(())
    }
    .await;
    for task in running {
        task.abort();
    }
    result
}

async fn join_part(
    task: tokio::task::JoinHandle<Result<(), DepotError>>,
) -> Result<(), DepotError> {
    task.await.map_err(|e| DepotError::Io {
        context: "uploading a part".into(),
        source: std::io::Error::other(e.to_string()),
    })?
}

impl BlobStore for S3BlobStore {
    type Staged = FsStaged;

    async fn stage<S, E>(&self, body: S, limit: u64) -> Result<FsStaged, DepotError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display + Send,
    {
        self.staging.stage(body, limit).await
    }

    async fn commit(&self, staged: FsStaged) -> Result<bool, DepotError> {
        let key = self.blob_key(staged.sha256());
        if self.head(&key).await?.is_some() {
            // Same key, same bytes: dropping `staged` removes the local copy.
            return Ok(false);
        }
        self.upload(&key, staged.local_path(), staged.size())
            .await?;
        Ok(true)
    }

    async fn read(
        &self,
        sha256: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<BlobContent>, DepotError> {
        let key = self.blob_key(sha256);
        let options = GetOptions::new().with_range(
            range.map(|(first, last)| GetRange::Bounded(first..last.saturating_add(1))),
        );
        let got = match self.client.get_opts(&key, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(remote(format!("reading {key} from {}", self.describe()))(e)),
        };
        let (size, first, len) = (
            got.meta.size,
            got.range.start,
            got.range.end - got.range.start,
        );
        let bytes = got.into_stream().map_err(std::io::Error::from).boxed();
        Ok(Some(BlobContent {
            size,
            first,
            len,
            bytes,
        }))
    }

    async fn size(&self, sha256: &str) -> Result<Option<u64>, DepotError> {
        Ok(self.head(&self.blob_key(sha256)).await?.map(|m| m.size))
    }

    async fn remove(&self, sha256: &str) -> Result<bool, DepotError> {
        let key = self.blob_key(sha256);
        // S3 deletes answer the same whether the object existed or not.
        if self.head(&key).await?.is_none() {
            return Ok(false);
        }
        self.delete(vec![key]).await?;
        Ok(true)
    }

    async fn sweep(
        &self,
        keep: &HashSet<String>,
        temp_max_age: Duration,
    ) -> Result<SweepOutcome, DepotError> {
        let mut out = SweepOutcome::default();
        self.staging.sweep_temp(temp_max_age, &mut out).await?;
        let root = self.blobs_root();
        let listed: Vec<ObjectMeta> = self
            .client
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(remote(format!("listing {}", self.describe())))?;
        let mut orphans = Vec::new();
        for meta in listed {
            match self.digest_of(&root, &meta.location) {
                Some(name) if keep.contains(name) => {
                    out.present.insert(name.to_string());
                }
                Some(_) => {
                    out.bytes_freed += meta.size;
                    out.orphan_blobs_removed += 1;
                    orphans.push(meta.location);
                }
                None => {
                    tracing::warn!(key = %meta.location, "unexpected object in the depot bucket; left alone");
                }
            }
        }
        if !orphans.is_empty() {
            self.delete(orphans).await?;
        }
        Ok(out)
    }
}

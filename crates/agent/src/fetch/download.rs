//! Downloading one artifact from one source into its partial file: resume from what the
//! partial already holds (`Range: bytes=<len>-`; a 200 answer restarts from 0, a 416 discards
//! the partial), hash while writing (a resumed partial's prefix is hashed first), refuse more
//! bytes than the artifact has whatever the source announces, and verify size and SHA-256 at
//! the end. A transfer that breaks off after making progress is resumed on the same source a
//! few times before the source is given up; the partial file stays for the next source or the
//! next fetch, since it is addressed by the content's hash and not by where it came from.
//! Under a bandwidth limit every byte passes the fetch's [`Throttle`] before it is written,
//! whichever source it came from.

use std::path::Path;
use std::time::{Duration, Instant};

use capstan_client::agent::{AgentClient, BLOB_TIMEOUT};
use capstan_proto::software::{Artifact, DownloadSource};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tracing::debug;

use super::cache::{READ_BUF, create_new_private, hash_prefix, open_options, remove_if_present};
use super::throttle::Throttle;
use super::{FetchProgress, SourceError};

/// Attempts per source; each after the first needs the previous one to have made progress
/// (or to have asked for a restart), so a source cannot loop forever.
const MAX_ATTEMPTS: u32 = 4;
/// No byte for this long counts as a broken transfer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const PROGRESS_BYTES: u64 = 256 * 1024;
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

pub(super) struct Ctx<'a> {
    pub server: &'a AgentClient,
    pub mirror_http: &'a reqwest::Client,
    pub artifact: &'a Artifact,
    pub partial: &'a Path,
    pub source_name: &'a str,
}

/// How one attempt ended, when it did not deliver.
enum AttemptError {
    /// Start again from byte 0 (the partial was discarded).
    Restart(String),
    /// The transfer broke off; `progressed` says whether this attempt added bytes.
    Interrupted {
        reason: String,
        progressed: bool,
    },
    /// A complete file with the wrong hash; `resumed` says whether its prefix came from an
    /// earlier transfer (possibly from another source), which deserves one clean retry.
    Mismatch {
        actual: String,
        resumed: bool,
    },
    Failed(SourceError),
}

impl From<SourceError> for AttemptError {
    fn from(e: SourceError) -> Self {
        AttemptError::Failed(e)
    }
}

fn local(e: std::io::Error) -> SourceError {
    SourceError::Local(e.to_string())
}

/// Download the artifact from `source` into the partial file, verified; on error the partial
/// file is either gone or a plausible prefix worth resuming.
pub(super) async fn from_source(
    ctx: &Ctx<'_>,
    source: &DownloadSource,
    progress: &mut (dyn FnMut(FetchProgress) + Send),
    mut throttle: Option<&mut Throttle>,
) -> Result<(), SourceError> {
    let size = ctx.artifact.size;
    let mut clean_retry_done = false;
    let mut last_reason = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        match attempt_once(ctx, source, progress, throttle.as_deref_mut()).await {
            Ok(()) => return Ok(()),
            Err(AttemptError::Restart(reason)) => {
                debug!(source = ctx.source_name, %reason, "restarting the download from byte 0");
                last_reason = reason;
            }
            Err(AttemptError::Interrupted { reason, progressed }) => {
                debug!(source = ctx.source_name, %reason, "download interrupted");
                if !progressed || attempt == MAX_ATTEMPTS {
                    let received = partial_len(ctx.partial).await;
                    return Err(SourceError::Interrupted {
                        received,
                        size,
                        reason,
                    });
                }
                last_reason = reason;
            }
            Err(AttemptError::Mismatch { actual, resumed }) => {
                if !resumed || clean_retry_done {
                    return Err(SourceError::HashMismatch {
                        expected: ctx.artifact.sha256.clone(),
                        actual,
                    });
                }
                clean_retry_done = true;
                last_reason = "hash mismatch of a resumed download".to_string();
            }
            Err(AttemptError::Failed(e)) => return Err(e),
        }
    }
    Err(SourceError::Unavailable(format!(
        "gave up after {MAX_ATTEMPTS} attempts: {last_reason}"
    )))
}

async fn partial_len(path: &Path) -> u64 {
    tokio::fs::symlink_metadata(path)
        .await
        .map_or(0, |m| m.len())
}

/// The partial file ready to append to, the hasher fed with what it holds, and its length.
async fn open_partial(path: &Path, size: u64) -> std::io::Result<(tokio::fs::File, Sha256, u64)> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.is_file() && meta.len() <= size => {
            let (hasher, len) = hash_prefix(path, meta.len()).await?;
            let mut file = open_options().read(true).write(true).open(path).await?;
            // The file may have been shorter than its metadata said a moment ago; append
            // exactly after what was hashed.
            file.set_len(len).await?;
            file.seek(std::io::SeekFrom::Start(len)).await?;
            return Ok((file, hasher, len));
        }
        Ok(_) => remove_if_present(path).await?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok((create_new_private(path).await?, Sha256::new(), 0))
}

/// Where the bytes of one attempt go: the partial file and the hasher, with the size limit,
/// the bandwidth limit and throttled progress.
struct Sink<'p, 'f> {
    file: tokio::fs::File,
    hasher: Sha256,
    received: u64,
    started_at: u64,
    size: u64,
    source: &'p str,
    progress: &'f mut (dyn FnMut(FetchProgress) + Send),
    last_report: (u64, Instant),
    throttle: Option<&'f mut Throttle>,
}

impl Sink<'_, '_> {
    fn report(&mut self) {
        (self.progress)(FetchProgress {
            source: self.source.to_string(),
            received: self.received,
            total: self.size,
        });
        self.last_report = (self.received, Instant::now());
    }

    async fn restart(&mut self) -> std::io::Result<()> {
        self.file.set_len(0).await?;
        self.file.seek(std::io::SeekFrom::Start(0)).await?;
        self.hasher = Sha256::new();
        self.received = 0;
        self.started_at = 0;
        self.last_report = (0, Instant::now());
        Ok(())
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), SourceError> {
        if self.received + data.len() as u64 > self.size {
            return Err(SourceError::Oversize { size: self.size });
        }
        if let Some(throttle) = self.throttle.as_deref_mut() {
            throttle.consume(data.len()).await;
        }
        self.file.write_all(data).await.map_err(local)?;
        self.hasher.update(data);
        self.received += data.len() as u64;
        if self.received.saturating_sub(self.last_report.0) >= PROGRESS_BYTES
            || self.last_report.1.elapsed() >= PROGRESS_INTERVAL
        {
            self.report();
        }
        Ok(())
    }

    /// How much to read at once from a source that lets us choose.
    fn read_size(&self) -> usize {
        self.throttle
            .as_deref()
            .map_or(READ_BUF, |t| t.chunk_hint().min(READ_BUF))
    }
}

enum Body {
    Http(reqwest::Response),
    File(tokio::fs::File),
}

async fn attempt_once(
    ctx: &Ctx<'_>,
    source: &DownloadSource,
    progress: &mut (dyn FnMut(FetchProgress) + Send),
    throttle: Option<&mut Throttle>,
) -> Result<(), AttemptError> {
    let size = ctx.artifact.size;
    let (file, hasher, offset) = open_partial(ctx.partial, size).await.map_err(local)?;
    let mut sink = Sink {
        file,
        hasher,
        received: offset,
        started_at: offset,
        size,
        source: ctx.source_name,
        progress,
        last_report: (offset, Instant::now()),
        throttle,
    };
    let result = transfer(ctx, source, &mut sink).await;
    // Whatever happened, what was written is flushed so that a resume starts after it.
    let synced = sink.file.sync_all().await;
    match result {
        Ok(()) => {}
        Err(AttemptError::Failed(e @ SourceError::Oversize { .. })) => {
            // Bytes from a source that sends too much are not trusted as a prefix either.
            remove_if_present(ctx.partial).await.map_err(local)?;
            return Err(AttemptError::Failed(e));
        }
        Err(AttemptError::Restart(reason)) => {
            remove_if_present(ctx.partial).await.map_err(local)?;
            return Err(AttemptError::Restart(reason));
        }
        Err(AttemptError::Interrupted { reason, .. }) => {
            return Err(AttemptError::Interrupted {
                reason,
                progressed: sink.received > sink.started_at,
            });
        }
        Err(e) => return Err(e),
    }
    synced.map_err(local)?;
    sink.report();
    if sink.received < size {
        return Err(SourceError::Truncated {
            received: sink.received,
            size,
        }
        .into());
    }
    let actual = hex::encode(sink.hasher.finalize());
    if actual != ctx.artifact.sha256 {
        remove_if_present(ctx.partial).await.map_err(local)?;
        return Err(AttemptError::Mismatch {
            actual,
            resumed: sink.started_at > 0,
        });
    }
    Ok(())
}

/// Open the source at the sink's offset and stream its body into the sink.
async fn transfer(
    ctx: &Ctx<'_>,
    source: &DownloadSource,
    sink: &mut Sink<'_, '_>,
) -> Result<(), AttemptError> {
    let offset = sink.received;
    if offset == sink.size {
        // A complete partial left by an earlier fetch that stopped before verifying it.
        return Ok(());
    }
    let body = match source {
        DownloadSource::Server => match ctx.server.blob(&ctx.artifact.sha256, offset).await {
            Ok(resp) => Body::Http(resp),
            Err(e) if e.status() == Some(416) => {
                return Err(AttemptError::Restart(format!(
                    "the server refused the range from byte {offset}"
                )));
            }
            Err(e) => return Err(SourceError::Unavailable(e.to_string()).into()),
        },
        DownloadSource::Http { base_url, .. } => {
            let url = format!("{}/{}", base_url.trim_end_matches('/'), ctx.artifact.sha256);
            // A mirror download may take long; stalls are caught by the idle timeout instead.
            let mut req = ctx.mirror_http.get(&url).timeout(BLOB_TIMEOUT);
            if offset > 0 {
                req = req.header(RANGE, format!("bytes={offset}-"));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| SourceError::Unavailable(format!("{url}: {e}")))?;
            let status = resp.status();
            if status == StatusCode::RANGE_NOT_SATISFIABLE {
                return Err(AttemptError::Restart(format!(
                    "{url} refused the range from byte {offset}"
                )));
            }
            if !status.is_success() {
                return Err(SourceError::Unavailable(format!("{url}: HTTP {status}")).into());
            }
            Body::Http(resp)
        }
        DownloadSource::Path { path, .. } => {
            let file_path = Path::new(path).join(&ctx.artifact.sha256);
            let mut file = tokio::fs::File::open(&file_path)
                .await
                .map_err(|e| SourceError::Unavailable(format!("{}: {e}", file_path.display())))?;
            if offset > 0 {
                file.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| {
                        SourceError::Unavailable(format!("{}: {e}", file_path.display()))
                    })?;
            }
            Body::File(file)
        }
    };
    sink.report();
    match body {
        Body::Http(mut resp) => {
            match resp.status() {
                StatusCode::PARTIAL_CONTENT if offset > 0 => {
                    let start = resp
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(content_range_start);
                    if start != Some(offset) {
                        return Err(AttemptError::Restart(format!(
                            "asked for byte {offset} on, got range {start:?}"
                        )));
                    }
                }
                // A 200 to a range request (or any other success) is the whole file.
                _ if offset > 0 => sink.restart().await.map_err(local)?,
                _ => {}
            }
            if let Some(len) = resp.content_length()
                && sink.received.saturating_add(len) > sink.size
            {
                return Err(SourceError::Oversize { size: sink.size }.into());
            }
            loop {
                let chunk = match tokio::time::timeout(IDLE_TIMEOUT, resp.chunk()).await {
                    Ok(Ok(Some(chunk))) => chunk,
                    Ok(Ok(None)) => return Ok(()),
                    Ok(Err(e)) => {
                        return Err(AttemptError::Interrupted {
                            reason: e.to_string(),
                            progressed: false,
                        });
                    }
                    Err(_) => {
                        return Err(AttemptError::Interrupted {
                            reason: format!("no data for {} s", IDLE_TIMEOUT.as_secs()),
                            progressed: false,
                        });
                    }
                };
                sink.write(&chunk).await?;
            }
        }
        Body::File(mut file) => {
            let mut buf = vec![0u8; sink.read_size()];
            loop {
                // One byte past the artifact's size is enough to know the file is too long.
                let room = sink.size - sink.received + 1;
                let want = usize::try_from(room).map_or(buf.len(), |r| r.min(buf.len()));
                let n =
                    file.read(&mut buf[..want])
                        .await
                        .map_err(|e| AttemptError::Interrupted {
                            reason: e.to_string(),
                            progressed: false,
                        })?;
                if n == 0 {
                    return Ok(());
                }
                sink.write(&buf[..n]).await?;
            }
        }
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

//! Tests of artifact download and caching against a real HTTP server on 127.0.0.1 (an axum
//! router serving both the agent blob route and a mirror, with its own Range handling so that
//! faults can be injected: wrong bytes, a connection dropped after N bytes, error statuses,
//! ignored ranges, oversize bodies) and real files in a temporary cache directory.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use capstan_client::agent::AgentClient;
use capstan_client::tls::{ClientOptions, build_http_client};
use capstan_proto::software::{Arch, Artifact, DownloadSource, OsFamily};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::*;

#[derive(Debug, Clone)]
enum Fault {
    Status(u16),
    /// Send this many body bytes, then break the connection.
    DropAfter(usize),
    /// Answer a range request with 200 and the whole file.
    IgnoreRange,
    /// Append bytes, announced in Content-Length.
    Extra(usize),
    /// Append bytes in a chunked body with no length announced.
    ExtraChunked(usize),
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    auth: Option<String>,
}

#[derive(Default)]
struct Served {
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    /// Faults for the next requests, one each.
    once: Mutex<VecDeque<Fault>>,
    /// A fault for every request once `once` is empty.
    always: Mutex<Option<Fault>>,
    seen: Mutex<Vec<Seen>>,
    bytes: AtomicU64,
}

struct TestServer {
    base: String,
    st: Arc<Served>,
}

fn sha_of(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic, non-repeating-looking content of `len` bytes.
fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn artifact(data: &[u8]) -> Artifact {
    Artifact {
        platform: OsFamily::Linux,
        arch: Arch::Any,
        sha256: sha_of(data),
        size: data.len() as u64,
        file_name: "tool.deb".to_string(),
    }
}

async fn serve(
    State(st): State<Arc<Served>>,
    UrlPath(sha): UrlPath<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let range = header_str(header::RANGE);
    st.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        range: range.clone(),
        auth: header_str(header::AUTHORIZATION),
    });
    let fault = {
        let next = st.once.lock().unwrap().pop_front();
        next.or_else(|| st.always.lock().unwrap().clone())
    };
    let status = |code: u16, body: &str| {
        Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    if let Some(Fault::Delay(d)) = fault {
        tokio::time::sleep(d).await;
    }
    if let Some(Fault::Status(code)) = fault {
        return status(
            code,
            r#"{"status":500,"code":"internal","message":"injected"}"#,
        );
    }
    let Some(data) = st.blobs.lock().unwrap().get(&sha).cloned() else {
        return status(
            404,
            r#"{"status":404,"code":"not_found","message":"no such blob"}"#,
        );
    };
    let total = data.len();
    let mut builder = Response::builder().header(header::ETAG, format!("\"{sha}\""));
    let mut body = data;
    let start = range
        .as_deref()
        .filter(|_| !matches!(fault, Some(Fault::IgnoreRange)))
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    if let Some(start) = start {
        if start >= total {
            return status(
                416,
                r#"{"status":416,"code":"bad_request","message":"range"}"#,
            );
        }
        body = body.split_off(start);
        builder = builder.status(206).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", total - 1),
        );
    } else {
        builder = builder.status(200);
    }
    match fault {
        Some(Fault::Extra(n)) => body.extend(std::iter::repeat_n(0x5a, n)),
        Some(Fault::ExtraChunked(n)) => {
            body.extend(std::iter::repeat_n(0x5a, n));
            st.bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
            return builder
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap();
        }
        Some(Fault::DropAfter(n)) if n < body.len() => {
            st.bytes.fetch_add(n as u64, Ordering::SeqCst);
            let len = body.len();
            body.truncate(n);
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                vec![Ok(body), Err(std::io::Error::other("injected drop"))];
            // The pause lets the head and the first bytes reach the client before the break.
            let stream = futures_util::stream::iter(chunks).then(|item| async move {
                if item.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                item
            });
            return builder
                .header(header::CONTENT_LENGTH, len)
                .body(Body::from_stream(stream))
                .unwrap();
        }
        _ => {}
    }
    st.bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
    builder
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

impl TestServer {
    async fn start() -> Self {
        let st = Arc::new(Served::default());
        let app = Router::new()
            .route("/agent/v1/depot/blobs/{sha}", get(serve))
            .route("/mirror/{sha}", get(serve))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestServer { base, st }
    }

    /// Serve `data` as the blob `sha` (which may be a lie, to serve wrong bytes).
    fn put_as(&self, sha: &str, data: &[u8]) {
        self.st
            .blobs
            .lock()
            .unwrap()
            .insert(sha.to_string(), data.to_vec());
    }

    fn put(&self, data: &[u8]) -> Artifact {
        self.put_as(&sha_of(data), data);
        artifact(data)
    }

    fn fault_once(&self, f: Fault) {
        self.st.once.lock().unwrap().push_back(f);
    }

    fn fault_always(&self, f: Option<Fault>) {
        *self.st.always.lock().unwrap() = f;
    }

    fn seen(&self) -> Vec<Seen> {
        self.st.seen.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        self.st.seen.lock().unwrap().len()
    }

    fn bytes(&self) -> u64 {
        self.st.bytes.load(Ordering::SeqCst)
    }

    fn mirror(&self, name: &str) -> DownloadSource {
        DownloadSource::Http {
            name: name.to_string(),
            base_url: format!("{}/mirror/", self.base),
        }
    }

    fn client(&self) -> AgentClient {
        AgentClient::new(&self.base, &ClientOptions::default())
            .unwrap()
            .with_device_token("capd_dev1_secret".to_string())
    }
}

fn fetcher(dir: &Path, max: u64, server: &TestServer) -> Fetcher {
    Fetcher::new(
        dir.to_path_buf(),
        max,
        server.client(),
        build_http_client(&ClientOptions::default()).unwrap(),
    )
}

async fn fetch(
    f: &Fetcher,
    a: &Artifact,
    sources: &[DownloadSource],
) -> Result<Fetched, FetchError> {
    f.fetch(a, sources, &mut |_| {}).await
}

fn cached(dir: &Path, a: &Artifact) -> bool {
    dir.join(&a.sha256).is_file()
}

#[tokio::test]
async fn a_hash_mismatch_moves_on_to_the_next_source_and_is_reported() {
    let mirror = TestServer::start().await;
    let server = TestServer::start().await;
    let data = content(1, 300_000);
    let a = server.put(&data);
    let mut wrong = data.clone();
    wrong[123_456] ^= 1;
    mirror.put_as(&a.sha256, &wrong);
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);

    let mut events = Vec::new();
    let got = f
        .fetch(
            &a,
            &[mirror.mirror("site-mirror"), DownloadSource::Server],
            &mut |p| events.push(p),
        )
        .await
        .unwrap();
    assert_eq!(got.source, "server");
    assert!(!got.from_cache);
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    assert_eq!(got.path, dir.path().join(&a.sha256));
    assert_eq!(got.failures.len(), 1);
    assert_eq!(got.failures[0].source, "site-mirror");
    assert_eq!(
        got.failures[0].error,
        SourceError::HashMismatch {
            expected: a.sha256.clone(),
            actual: sha_of(&wrong)
        }
    );
    // The server route got the device credential; the mirror did not.
    assert_eq!(
        server.seen()[0].auth.as_deref(),
        Some("Bearer capd_dev1_secret")
    );
    assert_eq!(
        server.seen()[0].path,
        format!("/agent/v1/depot/blobs/{}", a.sha256)
    );
    assert_eq!(mirror.seen()[0].auth, None);
    assert_eq!(mirror.seen()[0].path, format!("/mirror/{}", a.sha256));
    // Progress came from both sources, ending with the whole file from the server.
    assert!(events.iter().any(|p| p.source == "site-mirror"));
    let last = events.last().unwrap();
    assert_eq!(
        (last.source.as_str(), last.received, last.total),
        ("server", 300_000, 300_000)
    );
    assert!(!dir.path().join("partial").join(&a.sha256).exists());
}

#[tokio::test]
async fn sources_that_are_down_fall_back_in_order_and_every_failure_is_listed() {
    let server = TestServer::start().await;
    let broken = TestServer::start().await;
    broken.fault_always(Some(Fault::Status(503)));
    let empty = TestServer::start().await;
    let data = content(2, 10_000);
    let a = server.put(&data);
    broken.put(&data);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let share = tempfile::tempdir().unwrap();
    let sources = [
        DownloadSource::Http {
            name: "dead".into(),
            base_url: format!("http://{closed}"),
        },
        broken.mirror("overloaded"),
        empty.mirror("stale"),
        DownloadSource::Path {
            name: "share".into(),
            path: share.path().display().to_string(),
        },
        DownloadSource::Server,
    ];
    let dir = tempfile::tempdir().unwrap();
    let got = fetch(&fetcher(dir.path(), u64::MAX, &server), &a, &sources)
        .await
        .unwrap();
    assert_eq!(got.source, "server");
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    let names: Vec<_> = got.failures.iter().map(|f| f.source.as_str()).collect();
    assert_eq!(names, ["dead", "overloaded", "stale", "share"]);
    for f in &got.failures {
        assert!(matches!(f.error, SourceError::Unavailable(_)), "{f}");
    }
    assert!(
        got.failures[1].to_string().contains("503"),
        "{}",
        got.failures[1]
    );
    assert!(
        got.failures[2].to_string().contains("404"),
        "{}",
        got.failures[2]
    );

    // With the server gone too, the error names every source and why.
    let other = content(3, 100);
    let err = fetch(
        &fetcher(dir.path(), u64::MAX, &server),
        &artifact(&other),
        &sources,
    )
    .await
    .unwrap_err();
    let FetchError::AllSourcesFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failures.len(), 5);
    let text = err.to_string();
    for name in ["dead", "overloaded", "stale", "share", "server"] {
        assert!(text.contains(&format!("{name}: unavailable")), "{text}");
    }
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_and_only_the_rest_is_downloaded() {
    let server = TestServer::start().await;
    let data = content(4, 500_000);
    let a = server.put(&data);
    server.fault_once(Fault::DropAfter(120_000));
    let dir = tempfile::tempdir().unwrap();
    let got = fetch(
        &fetcher(dir.path(), u64::MAX, &server),
        &a,
        &[DownloadSource::Server],
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    assert!(got.failures.is_empty());
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].range, None);
    assert_eq!(seen[1].range.as_deref(), Some("bytes=120000-"));
    assert_eq!(server.bytes(), 500_000);
}

#[tokio::test]
async fn a_partial_download_survives_a_restart_and_is_resumed_from_where_it_stopped() {
    let server = TestServer::start().await;
    let data = content(5, 1_000_000);
    let a = server.put(&data);
    server.fault_always(Some(Fault::DropAfter(100_000)));
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(
        &fetcher(dir.path(), u64::MAX, &server),
        &a,
        &[DownloadSource::Server],
    )
    .await
    .unwrap_err();
    let FetchError::AllSourcesFailed { failures, .. } = err else {
        panic!("{err:?}")
    };
    // Every attempt made progress, so the source was retried up to the limit.
    assert!(
        matches!(
            failures[0].error,
            SourceError::Interrupted {
                received: 400_000,
                size: 1_000_000,
                ..
            }
        ),
        "{failures:?}"
    );
    let partial = dir.path().join("partial").join(&a.sha256);
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 400_000);

    // A new fetcher (the agent restarted) continues at byte 400 000.
    server.fault_always(None);
    let before = server.bytes();
    let mut last = None;
    let got = fetcher(dir.path(), u64::MAX, &server)
        .fetch(&a, &[DownloadSource::Server], &mut |p| last = Some(p))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    assert_eq!(
        server.seen().last().unwrap().range.as_deref(),
        Some("bytes=400000-")
    );
    assert_eq!(server.bytes() - before, 600_000);
    assert_eq!(last.unwrap().received, 1_000_000);
    assert!(!partial.exists());
}

#[tokio::test]
async fn a_mirror_that_ignores_ranges_or_refuses_them_restarts_from_zero() {
    let server = TestServer::start().await;
    let data = content(6, 50_000);
    let a = server.put(&data);
    let dir = tempfile::tempdir().unwrap();
    let partial_dir = dir.path().join("partial");
    std::fs::create_dir_all(&partial_dir).unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);

    // A stale partial of garbage; the mirror answers 200 with the whole file.
    std::fs::write(partial_dir.join(&a.sha256), vec![0xee; 20_000]).unwrap();
    server.fault_once(Fault::IgnoreRange);
    let got = fetch(&f, &a, &[server.mirror("m")]).await.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=20000-"));
    drop(got);

    // A 416 discards the partial and the next request asks for everything.
    let data2 = content(7, 50_000);
    let b = server.put(&data2);
    std::fs::write(partial_dir.join(&b.sha256), &data2[..10_000]).unwrap();
    server.fault_once(Fault::Status(416));
    let got = fetch(&f, &b, &[server.mirror("m")]).await.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), data2);
    let seen = server.seen();
    assert_eq!(seen[seen.len() - 2].range.as_deref(), Some("bytes=10000-"));
    assert_eq!(seen[seen.len() - 1].range, None);
}

#[tokio::test]
async fn a_resumed_prefix_that_was_wrong_gets_one_clean_retry() {
    let server = TestServer::start().await;
    let data = content(8, 40_000);
    let a = server.put(&data);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("partial")).unwrap();
    // A prefix of the right length but wrong bytes (left by a bad source).
    std::fs::write(
        dir.path().join("partial").join(&a.sha256),
        vec![1u8; 15_000],
    )
    .unwrap();
    let got = fetch(
        &fetcher(dir.path(), u64::MAX, &server),
        &a,
        &[DownloadSource::Server],
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    let ranges: Vec<_> = server.seen().into_iter().map(|s| s.range).collect();
    assert_eq!(ranges, [Some("bytes=15000-".to_string()), None]);
}

#[tokio::test]
async fn a_second_fetch_is_a_cache_hit_even_after_a_restart() {
    let server = TestServer::start().await;
    let data = content(9, 70_000);
    let a = server.put(&data);
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);
    let first = fetch(&f, &a, &[DownloadSource::Server]).await.unwrap();
    assert!(!first.from_cache);
    drop(first);
    let second = fetch(&f, &a, &[DownloadSource::Server]).await.unwrap();
    assert!(second.from_cache);
    assert_eq!(second.source, "cache");
    assert_eq!(std::fs::read(&second.path).unwrap(), data);
    drop(second);
    let third = fetch(&fetcher(dir.path(), u64::MAX, &server), &a, &[])
        .await
        .unwrap();
    assert!(third.from_cache);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_corrupted_cache_file_is_discarded_and_downloaded_again() {
    let server = TestServer::start().await;
    let data = content(10, 30_000);
    let a = server.put(&data);
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);
    drop(fetch(&f, &a, &[DownloadSource::Server]).await.unwrap());
    // Same size, different bytes: only a re-hash can tell.
    let mut bad = data.clone();
    bad[0] ^= 0xff;
    std::fs::write(dir.path().join(&a.sha256), &bad).unwrap();
    let got = fetch(&f, &a, &[DownloadSource::Server]).await.unwrap();
    assert!(!got.from_cache);
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    assert_eq!(server.requests(), 2);

    // A truncated file too, seen by a fresh fetcher.
    drop(got);
    std::fs::write(dir.path().join(&a.sha256), &data[..100]).unwrap();
    let got = fetch(
        &fetcher(dir.path(), u64::MAX, &server),
        &a,
        &[DownloadSource::Server],
    )
    .await
    .unwrap();
    assert!(!got.from_cache);
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
}

#[tokio::test]
async fn eviction_removes_the_least_recently_used_files_first() {
    let server = TestServer::start().await;
    let [a, b, c, d] = [11, 12, 13, 14].map(|seed| server.put(&content(seed, 1000)));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), 3000, &server);
    for x in [&a, &b, &c] {
        drop(fetch(&f, x, &[DownloadSource::Server]).await.unwrap());
    }
    // Using `a` again makes `b` the least recently used.
    assert!(fetch(&f, &a, &[]).await.unwrap().from_cache);
    drop(fetch(&f, &d, &[DownloadSource::Server]).await.unwrap());
    let present: Vec<_> = [&a, &b, &c, &d].map(|x| cached(dir.path(), x)).into();
    assert_eq!(present, [true, false, true, true]);

    // The order survives a restart (it is kept in the index file).
    let e = server.put(&content(15, 1000));
    drop(
        fetch(
            &fetcher(dir.path(), 3000, &server),
            &e,
            &[DownloadSource::Server],
        )
        .await
        .unwrap(),
    );
    let present: Vec<_> = [&a, &b, &c, &d, &e].map(|x| cached(dir.path(), x)).into();
    assert_eq!(present, [true, false, false, true, true]);
}

#[tokio::test]
async fn pinned_files_survive_eviction_and_an_oversize_artifact_still_fits() {
    let server = TestServer::start().await;
    let [a, b, c] = [21, 22, 23].map(|seed| server.put(&content(seed, 1000)));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), 2000, &server);
    let held = fetch(&f, &a, &[DownloadSource::Server]).await.unwrap();
    drop(fetch(&f, &b, &[DownloadSource::Server]).await.unwrap());
    drop(fetch(&f, &c, &[DownloadSource::Server]).await.unwrap());
    // `a` is the oldest but in use: `b` went instead.
    let present: Vec<_> = [&a, &b, &c].map(|x| cached(dir.path(), x)).into();
    assert_eq!(present, [true, false, true]);
    assert_eq!(std::fs::read(&held.path).unwrap(), content(21, 1000));

    // An artifact larger than the whole limit evicts everything unpinned and is kept.
    let big = server.put(&content(24, 5000));
    let got = fetch(&f, &big, &[DownloadSource::Server]).await.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), content(24, 5000));
    let present: Vec<_> = [&a, &c, &big].map(|x| cached(dir.path(), x)).into();
    assert_eq!(present, [true, false, true]);
    drop(held);
    drop(got);
    // Once released, the next fetch brings the cache back under the limit.
    drop(fetch(&f, &b, &[DownloadSource::Server]).await.unwrap());
    let present: Vec<_> = [&a, &b, &big].map(|x| cached(dir.path(), x)).into();
    assert_eq!(present, [false, true, false]);
}

#[tokio::test]
async fn a_path_source_is_copied_and_verified() {
    let server = TestServer::start().await;
    let share = tempfile::tempdir().unwrap();
    let data = content(30, 600_000);
    let a = artifact(&data);
    std::fs::write(share.path().join(&a.sha256), &data).unwrap();
    let bad = content(31, 1000);
    let b = artifact(&bad);
    std::fs::write(share.path().join(&b.sha256), content(32, 1000)).unwrap();
    let src = DownloadSource::Path {
        name: "nas".into(),
        path: share.path().display().to_string(),
    };
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);
    let mut events = Vec::new();
    let got = f
        .fetch(&a, std::slice::from_ref(&src), &mut |p| events.push(p))
        .await
        .unwrap();
    assert_eq!(got.source, "nas");
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    // Throttled: a handful of reports, increasing, ending at the full size.
    assert!(events.len() >= 3 && events.len() <= 8, "{events:?}");
    assert!(events.windows(2).all(|w| w[0].received <= w[1].received));
    assert_eq!(events.last().unwrap().received, 600_000);

    let err = fetch(&f, &b, &[src]).await.unwrap_err();
    let FetchError::AllSourcesFailed { failures, .. } = err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(failures[0].error, SourceError::HashMismatch { .. }),
        "{failures:?}"
    );
    assert!(!cached(dir.path(), &b));
    assert!(!dir.path().join("partial").join(&b.sha256).exists());
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn concurrent_fetches_of_one_artifact_share_one_download() {
    let server = TestServer::start().await;
    let data = content(40, 200_000);
    let a = server.put(&data);
    server.fault_once(Fault::Delay(Duration::from_millis(300)));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let f = f.clone();
            let a = a.clone();
            tokio::spawn(async move {
                f.fetch(&a, &[DownloadSource::Server], &mut |_| {})
                    .await
                    .map(|got| got.from_cache)
            })
        })
        .collect();
    let mut downloaded = 0;
    for t in tasks {
        if !t.await.unwrap().unwrap() {
            downloaded += 1;
        }
    }
    assert_eq!(downloaded, 1);
    assert_eq!(server.requests(), 1);
    assert_eq!(std::fs::read(dir.path().join(&a.sha256)).unwrap(), data);
}

#[tokio::test]
async fn a_body_larger_than_the_artifact_is_refused() {
    let server = TestServer::start().await;
    let good = TestServer::start().await;
    let data = content(50, 20_000);
    let a = server.put(&data);
    good.put(&data);
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);
    for fault in [Fault::Extra(1), Fault::ExtraChunked(5_000_000)] {
        server.fault_once(fault.clone());
        let before = server.bytes();
        let got = fetch(&f, &a, &[server.mirror("liar"), good.mirror("good")])
            .await
            .unwrap();
        assert_eq!(got.source, "good", "{fault:?}");
        assert_eq!(
            got.failures[0].error,
            SourceError::Oversize { size: 20_000 },
            "{fault:?}"
        );
        assert_eq!(std::fs::read(&got.path).unwrap(), data);
        assert!(server.bytes() > before);
        drop(got);
        std::fs::remove_file(dir.path().join(&a.sha256)).unwrap();
    }
}

#[tokio::test]
async fn names_that_are_not_hashes_and_planted_symlinks_are_refused() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);
    for sha in ["../../etc/passwd", "ABCDEF", &"A".repeat(64), ""] {
        let a = Artifact {
            sha256: sha.to_string(),
            ..artifact(b"x")
        };
        let err = fetch(&f, &a, &[DownloadSource::Server]).await.unwrap_err();
        assert!(matches!(err, FetchError::InvalidArtifact { .. }), "{err:?}");
    }
    assert_eq!(server.requests(), 0);

    #[cfg(unix)]
    {
        // Symlinks planted under the cache and partial names are replaced, never followed.
        let data = content(60, 5000);
        let a = server.put(&data);
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, &data).unwrap();
        std::fs::create_dir_all(dir.path().join("partial")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(&a.sha256)).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("partial").join(&a.sha256)).unwrap();
        let got = fetch(&f, &a, &[DownloadSource::Server]).await.unwrap();
        assert!(!got.from_cache);
        let meta = std::fs::symlink_metadata(&got.path).unwrap();
        assert!(meta.is_file());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&got.path).unwrap(), data);
        assert_eq!(std::fs::read(&target).unwrap(), data);
        assert_eq!(server.seen().last().unwrap().range, None);
    }
}

const LIMIT: u64 = 256 * 1024;

/// Fetches with a limit and returns how long it took.
async fn timed_fetch(
    f: &Fetcher,
    a: &Artifact,
    sources: &[DownloadSource],
    limit: Option<u64>,
) -> (Result<Fetched, FetchError>, Duration) {
    let started = std::time::Instant::now();
    let got = f.fetch_limited(a, sources, &mut |_| {}, limit).await;
    (got, started.elapsed())
}

#[tokio::test]
async fn a_bandwidth_limit_paces_the_server_mirrors_and_shares_alike() {
    let server = TestServer::start().await;
    let data = content(70, 512 * 1024);
    let a = server.put(&data);
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join(&a.sha256), &data).unwrap();
    let sources = [
        DownloadSource::Server,
        server.mirror("mirror"),
        DownloadSource::Path {
            name: "share".into(),
            path: share.path().display().to_string(),
        },
    ];
    // 512 KiB at 256 KiB/s, less the small burst: about 1.9 s; unlimited: well under 1 s.
    let cases = [
        (None, Duration::ZERO, Duration::from_secs(1)),
        (
            Some(LIMIT),
            Duration::from_millis(1800),
            Duration::from_secs(4),
        ),
    ];
    for source in &sources {
        for (limit, at_least, below) in cases {
            let dir = tempfile::tempdir().unwrap();
            let f = fetcher(dir.path(), u64::MAX, &server);
            let (got, took) = timed_fetch(&f, &a, std::slice::from_ref(source), limit).await;
            let got = got.unwrap();
            let what = format!("{} with limit {limit:?} took {took:?}", got.source);
            assert_eq!(got.source, source_name(source), "{what}");
            assert!(took >= at_least && took < below, "{what}");
            assert_eq!(std::fs::read(&got.path).unwrap(), data, "{what}");
        }
    }
}

#[tokio::test]
async fn a_limited_download_resumes_and_the_limit_spans_the_retries() {
    let server = TestServer::start().await;
    let data = content(71, 512 * 1024);
    let a = server.put(&data);
    server.fault_once(Fault::DropAfter(120_000));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);
    let (got, took) = timed_fetch(&f, &a, &[DownloadSource::Server], Some(LIMIT)).await;
    let got = got.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    assert!(got.failures.is_empty());
    let ranges: Vec<_> = server.seen().into_iter().map(|s| s.range).collect();
    assert_eq!(ranges, [None, Some("bytes=120000-".to_string())]);
    assert_eq!(server.bytes(), 512 * 1024);
    // Both attempts were paced: the whole artifact went at the limit, not just the rest.
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_zero_limit_is_refused_and_a_cache_hit_is_not_limited() {
    let server = TestServer::start().await;
    let data = content(72, 200_000);
    let a = server.put(&data);
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), u64::MAX, &server);

    let (got, _) = timed_fetch(&f, &a, &[DownloadSource::Server], Some(0)).await;
    let err = got.unwrap_err();
    assert!(matches!(err, FetchError::ZeroBandwidthLimit), "{err:?}");
    assert!(err.to_string().contains("limit of 0"), "{err}");
    assert_eq!(server.requests(), 0);

    drop(fetch(&f, &a, &[DownloadSource::Server]).await.unwrap());
    // One byte per second would take days if the cache hit were paced.
    let (got, took) = timed_fetch(&f, &a, &[DownloadSource::Server], Some(1)).await;
    let got = got.unwrap();
    assert!(got.from_cache);
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(server.requests(), 1);
}

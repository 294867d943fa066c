//! API tests of the depot's blob store against the real router, on SQLite or PostgreSQL
//! (`CAPSTAN_API_TEST_DB`), each run twice: with blobs as files in the data dir and with blobs
//! in a bucket of a real S3 server (`s3s-fs`, served in-process on loopback with signature
//! checking). Streamed uploads land content-addressed, de-duplicate, and leave nothing behind
//! when rejected; downloads return the same bytes and honour single ranges; permissions,
//! hostile digests and garbage collection behave as documented.

mod common;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use capstan_server::config::{Config, DepotBackend, S3Settings};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use common::{T, assert_error, setup_with};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use sha2::{Digest, Sha256};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).unwrap();
    v
}

/// How the upload body reaches the server.
#[derive(Clone, Copy)]
enum Transfer {
    /// One buffer with an honest `Content-Length`.
    Sized,
    /// Many small chunks and no `Content-Length` (as a chunked upload arrives).
    Chunked,
}

/// Where the depot under test keeps its blobs.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Fs,
    S3,
}

const BUCKET: &str = "capstan-depot";
const PREFIX: &str = "site-a/depot";
const ACCESS_KEY: &str = "capstan-test-key";
const SECRET_KEY: &str = "capstan-test-secret";

/// An S3 server (`s3s-fs`) on 127.0.0.1 storing its buckets as directories under `root`: an
/// object `k` of the depot's bucket is the file `root/<bucket>/k`, which lets the tests see
/// exactly what is stored and plant orphans. It runs on the test's runtime and stops with it.
struct S3Server {
    root: tempfile::TempDir,
    settings: S3Settings,
    /// While set, the server answers 500 to every upload of a multipart upload's second part.
    fail_second_part: Arc<AtomicBool>,
}

impl S3Server {
    async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings = S3Settings {
            bucket: BUCKET.into(),
            endpoint: Some(format!("http://{}", listener.local_addr().unwrap())),
            region: "us-east-1".into(),
            prefix: PREFIX.into(),
            allow_http: true,
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            session_token: None,
        };
        let mut builder =
            s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root.path()).unwrap());
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let fail_second_part = Arc::new(AtomicBool::new(false));
        let failing = fail_second_part.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (service, failing) = (service.clone(), failing.clone());
                let faulty = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let fail = failing.load(Ordering::SeqCst)
                        && req.method() == Method::PUT
                        && req
                            .uri()
                            .query()
                            .is_some_and(|q| q.split('&').any(|kv| kv == "partNumber=2"));
                    let service = service.clone();
                    async move {
                        if fail {
                            let mut resp = axum::http::Response::new(s3s::Body::empty());
                            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            return Ok(resp);
                        }
                        hyper::service::Service::call(&service, req).await
                    }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(socket);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, faulty)
                        .await;
                });
            }
        });
        S3Server {
            root,
            settings,
            fail_second_part,
        }
    }

    fn bucket_dir(&self) -> PathBuf {
        self.root.path().join(BUCKET)
    }
}

/// A server under test and, for the S3 backend, its S3 server.
struct D {
    t: T,
    s3: Option<S3Server>,
}

impl Deref for D {
    type Target = T;
    fn deref(&self) -> &T {
        &self.t
    }
}

async fn setup_on(backend: Backend) -> D {
    setup_on_with(backend, |_| {}).await
}

async fn setup_on_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> D {
    let s3 = match backend {
        Backend::Fs => None,
        Backend::S3 => Some(S3Server::start().await),
    };
    let t = setup_with(|c| {
        if let Some(s3) = &s3 {
            c.depot_backend = DepotBackend::S3(s3.settings.clone());
        }
        adjust(c);
    })
    .await;
    if s3.is_some() {
        capstan_server::depot::check_backend(&t.state.config)
            .await
            .expect("the S3 depot is reachable");
    }
    D { t, s3 }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

struct Download {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl D {
    fn depot_dir(&self) -> PathBuf {
        self.state.config.data_dir.join("depot")
    }

    /// Every file under `depot/<sub>` of the data dir (none when the directory does not
    /// exist). `tmp` is the staging area of both backends.
    fn files_in(&self, sub: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.depot_dir().join(sub), &mut out);
        out.sort();
        out
    }

    /// Where a blob is stored: a file of the depot, or the file of an object in the bucket.
    fn blob_path(&self, d: &str) -> PathBuf {
        let base = match &self.s3 {
            None => self.depot_dir().join("blobs"),
            Some(s3) => s3.bucket_dir().join(PREFIX),
        };
        base.join("sha256").join(&d[..2]).join(&d[2..4]).join(d)
    }

    /// Every stored blob (as files, see [`D::blob_path`]). For S3 this is the whole bucket,
    /// and parts of unfinished multipart uploads count too: a failed upload must leave none.
    fn stored_blobs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        match &self.s3 {
            None => walk(&self.depot_dir().join("blobs"), &mut out),
            Some(s3) => {
                walk(&s3.bucket_dir(), &mut out);
                for e in std::fs::read_dir(s3.root.path()).unwrap() {
                    let p = e.unwrap().path();
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    if name.starts_with(".upload_id-") {
                        out.push(p);
                    }
                }
            }
        }
        out.sort();
        out
    }

    async fn upload_with(
        &self,
        token: &str,
        query: &str,
        content_type: &str,
        data: &[u8],
        send: Transfer,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder()
            .method(POST)
            .uri(format!("/api/v1/depot/blobs{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type);
        let body = match send {
            Transfer::Sized => {
                b = b.header(header::CONTENT_LENGTH, data.len());
                Body::from(data.to_vec())
            }
            Transfer::Chunked => {
                let chunks: Vec<Result<Bytes, std::io::Error>> = data
                    .chunks(100)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect();
                Body::from_stream(futures_util::stream::iter(chunks))
            }
        };
        let resp = self.request(b.body(body).unwrap()).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn upload(&self, token: &str, data: &[u8]) -> (StatusCode, Value) {
        self.upload_with(token, "", "application/octet-stream", data, Transfer::Sized)
            .await
    }

    async fn download(&self, token: &str, sha256: &str, range: Option<&str>) -> Download {
        let mut b = Request::builder()
            .uri(format!("/api/v1/depot/blobs/{sha256}/content"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(r) = range {
            b = b.header(header::RANGE, r);
        }
        let resp = self.request(b.body(Body::empty()).unwrap()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Download {
            status,
            headers,
            body,
        }
    }

    async fn blob_list(&self, token: &str) -> Value {
        self.ok(StatusCode::OK, GET, "/api/v1/depot/blobs", token, None)
            .await
    }
}

fn header_str(d: &Download, name: header::HeaderName) -> Option<&str> {
    d.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn an_uploaded_file_downloads_byte_for_byte_and_is_listed(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let data = random_bytes(3 * 1024 * 1024 + 17);
    let digest = sha(&data);

    let (s, v) = t.upload(&admin, &data).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["sha256"], digest.as_str());
    assert_eq!(v["size"], data.len());
    assert_eq!(v["created"], true);

    let d = t.download(&admin, &digest, None).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(d.body == data, "downloaded bytes differ from the upload");
    let len = data.len().to_string();
    assert_eq!(header_str(&d, header::CONTENT_LENGTH), Some(len.as_str()));
    let etag = format!("\"{digest}\"");
    assert_eq!(header_str(&d, header::ETAG), Some(etag.as_str()));
    assert_eq!(header_str(&d, header::ACCEPT_RANGES), Some("bytes"));

    // Stored where the layout says, and nothing left in the staging area.
    assert_eq!(t.stored_blobs(), vec![t.blob_path(&digest)]);
    assert!(t.files_in("tmp").is_empty());

    let info = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/depot/blobs/{digest}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(info["size"], data.len());
    assert_eq!(info["created_by"], "user:admin");
    let list = t.blob_list(&admin).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["sha256"], digest.as_str());

    let audit = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/audit-log?action=depot_blob.upload",
            &admin,
            None,
        )
        .await;
    assert_eq!(audit["items"][0]["target"], digest.as_str());
}

async fn a_chunked_upload_without_length_is_stored_whole(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let data = random_bytes(250_001);
    let (s, v) = t
        .upload_with(
            &admin,
            "",
            "application/octet-stream",
            &data,
            Transfer::Chunked,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["sha256"], sha(&data).as_str());
    let d = t.download(&admin, &sha(&data), None).await;
    assert!(d.body == data);
}

async fn the_same_bytes_twice_are_stored_once(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let data = random_bytes(100_000);
    let first = t.upload(&admin, &data).await;
    assert_eq!(first.1["created"], true, "{}", first.1);
    let (s, v) = t.upload(&admin, &data).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["created"], false);
    assert_eq!(v["sha256"], first.1["sha256"]);
    assert_eq!(t.stored_blobs().len(), 1);
    assert!(t.files_in("tmp").is_empty());
    assert_eq!(t.blob_list(&admin).await["total"], 1);
}

async fn an_expected_digest_that_does_not_match_keeps_nothing(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let data = random_bytes(10_000);
    let wrong = sha(b"something else");
    for send in [Transfer::Sized, Transfer::Chunked] {
        let r = t
            .upload_with(
                &admin,
                &format!("?sha256={wrong}"),
                "application/octet-stream",
                &data,
                send,
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(r.1["message"].as_str().unwrap().contains(&sha(&data)));
    }
    assert!(t.stored_blobs().is_empty());
    assert!(t.files_in("tmp").is_empty());
    assert_eq!(t.blob_list(&admin).await["total"], 0);

    // A malformed expectation is refused before anything is read.
    let r = t
        .upload_with(
            &admin,
            "?sha256=ABC",
            "application/octet-stream",
            &data,
            Transfer::Sized,
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");

    // The right expectation is accepted.
    let (s, v) = t
        .upload_with(
            &admin,
            &format!("?sha256={}", sha(&data)),
            "application/octet-stream",
            &data,
            Transfer::Sized,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn uploads_above_the_limit_are_refused_without_a_trace(backend: Backend) {
    let t = setup_on_with(backend, |c| c.max_upload_bytes = 1000).await;
    let admin = t.admin().await;
    let too_big = random_bytes(1001);
    for send in [Transfer::Sized, Transfer::Chunked] {
        let r = t
            .upload_with(&admin, "", "application/octet-stream", &too_big, send)
            .await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        assert!(t.files_in("tmp").is_empty(), "staging area not cleaned");
        assert!(t.stored_blobs().is_empty());
    }
    assert_eq!(t.blob_list(&admin).await["total"], 0);
    // Exactly the limit is fine.
    let (s, v) = t.upload(&admin, &too_big[..1000]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn empty_and_mistyped_uploads_are_refused(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    for send in [Transfer::Sized, Transfer::Chunked] {
        let r = t
            .upload_with(&admin, "", "application/octet-stream", b"", send)
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    }
    let r = t
        .upload_with(&admin, "", "application/json", b"{}", Transfer::Sized)
        .await;
    assert_error(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    assert!(t.stored_blobs().is_empty());
    assert!(t.files_in("tmp").is_empty());
}

/// A `Range` header, the status, the bytes served (`first..=last`) and the `Content-Range`.
type RangeCase = (
    &'static str,
    StatusCode,
    Option<(usize, usize)>,
    Option<&'static str>,
);

async fn ranges_resume_downloads_as_documented(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let data = random_bytes(1000);
    let digest = sha(&data);
    assert_eq!(t.upload(&admin, &data).await.0, StatusCode::CREATED);

    let cases: &[RangeCase] = &[
        (
            "bytes=0-99",
            StatusCode::PARTIAL_CONTENT,
            Some((0, 99)),
            Some("bytes 0-99/1000"),
        ),
        (
            "bytes=500-",
            StatusCode::PARTIAL_CONTENT,
            Some((500, 999)),
            Some("bytes 500-999/1000"),
        ),
        (
            "bytes=-10",
            StatusCode::PARTIAL_CONTENT,
            Some((990, 999)),
            Some("bytes 990-999/1000"),
        ),
        (
            "bytes=990-5000",
            StatusCode::PARTIAL_CONTENT,
            Some((990, 999)),
            Some("bytes 990-999/1000"),
        ),
        (
            "bytes=1000-",
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
            Some("bytes */1000"),
        ),
        (
            "bytes=2000-3000",
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
            Some("bytes */1000"),
        ),
        (
            "bytes=-0",
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
            Some("bytes */1000"),
        ),
        // Malformed and multi-range headers are ignored: the whole blob, 200.
        ("bytes=abc", StatusCode::OK, Some((0, 999)), None),
        ("pages=1-2", StatusCode::OK, Some((0, 999)), None),
        ("bytes=0-1,5-9", StatusCode::OK, Some((0, 999)), None),
    ];
    for (range, status, served, content_range) in cases {
        let d = t.download(&admin, &digest, Some(range)).await;
        assert_eq!(d.status, *status, "{range}");
        assert_eq!(
            header_str(&d, header::CONTENT_RANGE),
            *content_range,
            "{range}"
        );
        match served {
            Some((a, b)) => {
                assert!(d.body == data[*a..=*b], "{range}: wrong bytes");
                let len = (b + 1 - a).to_string();
                assert_eq!(
                    header_str(&d, header::CONTENT_LENGTH),
                    Some(len.as_str()),
                    "{range}"
                );
            }
            None => {
                let v: Value = serde_json::from_slice(&d.body).unwrap();
                assert_eq!(v["status"], 416, "{range}: {v}");
            }
        }
    }
}

async fn a_viewer_downloads_but_does_not_change_the_depot(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let viewer = t.user(&admin, "vera", "viewer").await;
    let data = random_bytes(5000);
    let digest = sha(&data);
    assert_eq!(t.upload(&admin, &data).await.0, StatusCode::CREATED);

    let d = t.download(&viewer, &digest, None).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(d.body == data);
    assert_eq!(t.blob_list(&viewer).await["total"], 1);

    let r = t.upload(&viewer, b"viewer bytes").await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = t
        .call(
            DELETE,
            &format!("/api/v1/depot/blobs/{digest}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = t.call(POST, "/api/v1/depot/gc", Some(&viewer), None).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(t.stored_blobs().len(), 1);
    assert!(t.files_in("tmp").is_empty());

    // An operator manages the depot.
    let operator = t.user(&admin, "otto", "operator").await;
    assert_eq!(
        t.upload(&operator, b"operator bytes").await.0,
        StatusCode::CREATED
    );
    let r = t.call(GET, "/api/v1/depot/blobs", None, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

async fn hostile_digests_never_reach_the_file_system(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let good = sha(b"x");
    let bad = [
        "..".to_string(),
        "%2e%2e".to_string(),
        "..%2f..%2f..%2fetc%2fpasswd".to_string(),
        good.to_ascii_uppercase(),
        good[..63].to_string(),
        format!("{good}0"),
        "zz".repeat(32),
    ];
    for name in &bad {
        for (method, path) in [
            (GET, format!("/api/v1/depot/blobs/{name}")),
            (GET, format!("/api/v1/depot/blobs/{name}/content")),
            (DELETE, format!("/api/v1/depot/blobs/{name}")),
        ] {
            let r = t.call(method.clone(), &path, Some(&admin), None).await;
            // Refused by name, before the store or the file system is asked.
            assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
        }
    }
    // A well-formed digest the depot does not hold is simply not found.
    let r = t
        .call(
            GET,
            &format!("/api/v1/depot/blobs/{good}/content"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(
        !t.depot_dir().exists(),
        "reads and refused names must not create anything"
    );
    assert!(t.stored_blobs().is_empty());
}

async fn deleting_a_blob_removes_record_and_file(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let data = random_bytes(2048);
    let digest = sha(&data);
    assert_eq!(t.upload(&admin, &data).await.0, StatusCode::CREATED);
    let path = format!("/api/v1/depot/blobs/{digest}");
    t.ok(StatusCode::NO_CONTENT, DELETE, &path, &admin, None)
        .await;
    assert!(t.stored_blobs().is_empty());
    assert_error(
        &t.call(GET, &path, Some(&admin), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &t.call(DELETE, &path, Some(&admin), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(t.download(&admin, &digest, None).await.status, 404);
    // Uploading again brings it back as a new blob.
    let (_, v) = t.upload(&admin, &data).await;
    assert_eq!(v["created"], true, "{v}");
}

async fn gc_removes_orphans_and_stale_uploads_and_reports_missing_files(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let kept = random_bytes(3000);
    let lost = random_bytes(4000);
    assert_eq!(t.upload(&admin, &kept).await.0, StatusCode::CREATED);
    assert_eq!(t.upload(&admin, &lost).await.0, StatusCode::CREATED);
    let blob_path = |d: &str| t.blob_path(d);
    // A recorded blob whose file vanished.
    std::fs::remove_file(blob_path(&sha(&lost))).unwrap();
    // A stored file no record names.
    let orphan = b"orphaned bytes".to_vec();
    let orphan_path = blob_path(&sha(&orphan));
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, &orphan).unwrap();
    // A name the store never writes, next to the blobs: not ours to delete.
    let stranger = orphan_path.with_file_name("notes.txt");
    std::fs::write(&stranger, b"keep me").unwrap();
    // A stale and a fresh staging file.
    let tmp = t.depot_dir().join("tmp");
    let stale = tmp.join("upload-stale");
    let fresh = tmp.join("upload-fresh");
    std::fs::write(&stale, vec![1u8; 500]).unwrap();
    std::fs::write(&fresh, vec![2u8; 700]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600))
        .unwrap();

    let report = t
        .ok(StatusCode::OK, POST, "/api/v1/depot/gc", &admin, None)
        .await;
    assert_eq!(report["temp_files_removed"], 1, "{report}");
    assert_eq!(report["orphan_blobs_removed"], 1, "{report}");
    assert_eq!(report["bytes_freed"], 500 + orphan.len(), "{report}");
    assert_eq!(report["missing_blobs"], serde_json::json!([sha(&lost)]));
    assert!(!stale.exists() && fresh.exists());
    assert!(!orphan_path.exists());
    assert!(stranger.exists(), "an unexpected name was deleted");
    std::fs::remove_file(&stranger).unwrap();
    assert_eq!(t.stored_blobs(), vec![blob_path(&sha(&kept))]);
    let d = t.download(&admin, &sha(&kept), None).await;
    assert!(d.body == kept);

    // Uploading the lost bytes again restores the file under the existing record.
    let (s, v) = t.upload(&admin, &lost).await;
    assert_eq!(
        (s, v["created"].clone()),
        (StatusCode::CREATED, false.into())
    );
    let report = t
        .ok(StatusCode::OK, POST, "/api/v1/depot/gc", &admin, None)
        .await;
    assert_eq!(report["missing_blobs"], serde_json::json!([]));
    assert_eq!(report["orphan_blobs_removed"], 0);
}

/// Large enough to be uploaded to S3 in three parts (8 MiB each at most).
async fn a_large_upload_is_stored_whole_and_resumes_anywhere(backend: Backend) {
    let t = setup_on(backend).await;
    let admin = t.admin().await;
    let data = random_bytes(17 * 1024 * 1024 + 123);
    let digest = sha(&data);
    let (s, v) = t.upload(&admin, &data).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(t.stored_blobs(), vec![t.blob_path(&digest)]);
    assert!(std::fs::read(t.blob_path(&digest)).unwrap() == data);
    assert!(t.files_in("tmp").is_empty());

    // A download broken off somewhere in the second part resumes from there.
    let cut = 10 * 1024 * 1024 + 7;
    let d = t
        .download(&admin, &digest, Some(&format!("bytes={cut}-")))
        .await;
    assert_eq!(d.status, StatusCode::PARTIAL_CONTENT);
    let want = format!("bytes {cut}-{}/{}", data.len() - 1, data.len());
    assert_eq!(header_str(&d, header::CONTENT_RANGE), Some(want.as_str()));
    assert!(d.body == data[cut..], "resumed bytes differ");
    let d = t.download(&admin, &digest, None).await;
    assert!(d.body == data, "downloaded bytes differ");

    let (s, v) = t.upload(&admin, &data).await;
    assert_eq!(
        (s, v["created"].clone()),
        (StatusCode::CREATED, false.into())
    );
    assert_eq!(t.stored_blobs().len(), 1);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Fs).await
            })*
        }
        mod s3 {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::S3).await
            })*
        }
    };
}

on_both_backends!(
    an_uploaded_file_downloads_byte_for_byte_and_is_listed,
    a_chunked_upload_without_length_is_stored_whole,
    the_same_bytes_twice_are_stored_once,
    an_expected_digest_that_does_not_match_keeps_nothing,
    uploads_above_the_limit_are_refused_without_a_trace,
    empty_and_mistyped_uploads_are_refused,
    ranges_resume_downloads_as_documented,
    a_viewer_downloads_but_does_not_change_the_depot,
    hostile_digests_never_reach_the_file_system,
    deleting_a_blob_removes_record_and_file,
    gc_removes_orphans_and_stale_uploads_and_reports_missing_files,
    a_large_upload_is_stored_whole_and_resumes_anywhere,
);

#[tokio::test]
async fn an_unusable_s3_depot_fails_the_start_up_check() {
    let s3 = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = |change: &dyn Fn(&mut S3Settings)| {
        let mut settings = s3.settings.clone();
        change(&mut settings);
        let mut c = Config::for_tests(dir.path());
        c.depot_backend = DepotBackend::S3(settings);
        c
    };
    capstan_server::depot::check_backend(&config(&|_| {}))
        .await
        .expect("the right settings work");
    /// A change to working settings and a part of the expected error.
    type Case = (fn(&mut S3Settings), &'static str);
    let cases: [Case; 3] = [
        (
            |s| s.bucket = "no-such-bucket".into(),
            "s3://no-such-bucket/",
        ),
        (
            |s| s.secret_access_key = Some("not-the-secret".into()),
            "SignatureDoesNotMatch",
        ),
        (
            |s| s.endpoint = Some("http://127.0.0.1:1".into()),
            "at http://127.0.0.1:1",
        ),
    ];
    for (change, want) in cases {
        let err = capstan_server::depot::check_backend(&config(&change))
            .await
            .expect_err(want)
            .to_string();
        assert!(err.contains("is not usable"), "{err}");
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[tokio::test]
async fn an_s3_upload_failing_part_way_leaves_nothing_behind() {
    let t = setup_on(Backend::S3).await;
    let admin = t.admin().await;
    let data = random_bytes(17 * 1024 * 1024 + 5);
    let fail = t.s3.as_ref().unwrap().fail_second_part.clone();
    fail.store(true, Ordering::SeqCst);
    let r = t.upload(&admin, &data).await;
    assert_error(&r, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    // The multipart upload was aborted: no object, no stray parts, no staged file, no record.
    assert_eq!(t.stored_blobs(), Vec::<PathBuf>::new());
    assert!(t.files_in("tmp").is_empty());
    assert_eq!(t.blob_list(&admin).await["total"], 0);

    fail.store(false, Ordering::SeqCst);
    let (s, v) = t.upload(&admin, &data).await;
    assert_eq!(
        (s, v["created"].clone()),
        (StatusCode::CREATED, true.into())
    );
    assert!(std::fs::read(t.blob_path(&sha(&data))).unwrap() == data);
}

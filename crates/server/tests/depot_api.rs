//! API tests of the depot's blob store against the real router, on SQLite or PostgreSQL
//! (`CAPSTAN_API_TEST_DB`): streamed uploads land as content-addressed files, de-duplicate,
//! and leave nothing behind when rejected; downloads return the same bytes and honour single
//! ranges; permissions, hostile digests and garbage collection behave as documented.

mod common;

use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use common::{T, assert_error, setup, setup_with};
use http_body_util::BodyExt;
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

struct Download {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl T {
    fn depot_dir(&self) -> PathBuf {
        self.state.config.data_dir.join("depot")
    }

    /// Every file under `depot/<sub>` (none when the directory does not exist).
    fn files_in(&self, sub: &str) -> Vec<PathBuf> {
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
        let mut out = Vec::new();
        walk(&self.depot_dir().join(sub), &mut out);
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

#[tokio::test]
async fn an_uploaded_file_downloads_byte_for_byte_and_is_listed() {
    let t = setup().await;
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
    let path = t
        .depot_dir()
        .join("blobs/sha256")
        .join(&digest[..2])
        .join(&digest[2..4])
        .join(&digest);
    assert_eq!(t.files_in("blobs"), vec![path]);
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

#[tokio::test]
async fn a_chunked_upload_without_length_is_stored_whole() {
    let t = setup().await;
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

#[tokio::test]
async fn the_same_bytes_twice_are_stored_once() {
    let t = setup().await;
    let admin = t.admin().await;
    let data = random_bytes(100_000);
    let first = t.upload(&admin, &data).await;
    assert_eq!(first.1["created"], true, "{}", first.1);
    let (s, v) = t.upload(&admin, &data).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["created"], false);
    assert_eq!(v["sha256"], first.1["sha256"]);
    assert_eq!(t.files_in("blobs").len(), 1);
    assert!(t.files_in("tmp").is_empty());
    assert_eq!(t.blob_list(&admin).await["total"], 1);
}

#[tokio::test]
async fn an_expected_digest_that_does_not_match_keeps_nothing() {
    let t = setup().await;
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
    assert!(t.files_in("blobs").is_empty());
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

#[tokio::test]
async fn uploads_above_the_limit_are_refused_without_a_trace() {
    let t = setup_with(|c| c.max_upload_bytes = 1000).await;
    let admin = t.admin().await;
    let too_big = random_bytes(1001);
    for send in [Transfer::Sized, Transfer::Chunked] {
        let r = t
            .upload_with(&admin, "", "application/octet-stream", &too_big, send)
            .await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        assert!(t.files_in("tmp").is_empty(), "staging area not cleaned");
        assert!(t.files_in("blobs").is_empty());
    }
    assert_eq!(t.blob_list(&admin).await["total"], 0);
    // Exactly the limit is fine.
    let (s, v) = t.upload(&admin, &too_big[..1000]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn empty_and_mistyped_uploads_are_refused() {
    let t = setup().await;
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
    assert!(t.files_in("blobs").is_empty());
    assert!(t.files_in("tmp").is_empty());
}

/// A `Range` header, the status, the bytes served (`first..=last`) and the `Content-Range`.
type RangeCase = (
    &'static str,
    StatusCode,
    Option<(usize, usize)>,
    Option<&'static str>,
);

#[tokio::test]
async fn ranges_resume_downloads_as_documented() {
    let t = setup().await;
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

#[tokio::test]
async fn a_viewer_downloads_but_does_not_change_the_depot() {
    let t = setup().await;
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
    assert_eq!(t.files_in("blobs").len(), 1);
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

#[tokio::test]
async fn hostile_digests_never_reach_the_file_system() {
    let t = setup().await;
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
}

#[tokio::test]
async fn deleting_a_blob_removes_record_and_file() {
    let t = setup().await;
    let admin = t.admin().await;
    let data = random_bytes(2048);
    let digest = sha(&data);
    assert_eq!(t.upload(&admin, &data).await.0, StatusCode::CREATED);
    let path = format!("/api/v1/depot/blobs/{digest}");
    t.ok(StatusCode::NO_CONTENT, DELETE, &path, &admin, None)
        .await;
    assert!(t.files_in("blobs").is_empty());
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

#[tokio::test]
async fn gc_removes_orphans_and_stale_uploads_and_reports_missing_files() {
    let t = setup().await;
    let admin = t.admin().await;
    let kept = random_bytes(3000);
    let lost = random_bytes(4000);
    assert_eq!(t.upload(&admin, &kept).await.0, StatusCode::CREATED);
    assert_eq!(t.upload(&admin, &lost).await.0, StatusCode::CREATED);
    let blob_path = |d: &str| {
        t.depot_dir()
            .join("blobs/sha256")
            .join(&d[..2])
            .join(&d[2..4])
            .join(d)
    };
    // A recorded blob whose file vanished.
    std::fs::remove_file(blob_path(&sha(&lost))).unwrap();
    // A stored file no record names.
    let orphan = b"orphaned bytes".to_vec();
    let orphan_path = blob_path(&sha(&orphan));
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, &orphan).unwrap();
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
    assert_eq!(t.files_in("blobs"), vec![blob_path(&sha(&kept))]);
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

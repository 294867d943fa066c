//! The agent-protocol client (`/agent/v1`): enrollment, check-in, inventory upload and the
//! wake-up long-poll. Used by the agent daemon and by the load generator, which creates
//! thousands of these: a clone shares the connection pool and only copies two reference-counted
//! handles, and [`AgentClient::from_http_client`] lets many devices share one pool outright.

use std::sync::Arc;
use std::time::Duration;

use capstan_proto::agent::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, InventoryAccepted,
    InventoryUpload, WaitResponse,
};
use capstan_proto::jobs::{
    ClaimResponse, OutputReport, RunControl, RunFinished, RunRebooting, RunStarted,
};
use reqwest::header::{AUTHORIZATION, HeaderValue};

use crate::tls::{ClientOptions, build_http_client, normalize_base_url};
use crate::{Error, Result, json_or_error};

/// Extra time on top of the long-poll hold before the client gives up on a `wait`: the server
/// answers at `timeout_secs`, and the margin covers its scheduling and a slow network.
const WAIT_MARGIN: Duration = Duration::from_secs(15);

/// Upper bound of one blob download, body included: generous enough for gigabytes over a slow
/// link (the downloader resumes with a range request when it is hit).
pub const BLOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Client of the agent API for one server (and, after [`AgentClient::with_device_token`], one
/// device).
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base_url: Arc<str>,
    /// `Bearer capd_…`, marked sensitive so it never shows up in debug output of reqwest.
    auth: Option<HeaderValue>,
}

impl AgentClient {
    /// A client for the server at `base_url`, with its own connection pool.
    pub fn new(base_url: &str, opts: &ClientOptions) -> Result<Self> {
        let http = build_http_client(opts)?;
        Self::from_http_client(http, base_url)
    }

    /// A client reusing an existing reqwest client (and its connection pool and TLS pin).
    pub fn from_http_client(http: reqwest::Client, base_url: &str) -> Result<Self> {
        let base_url = normalize_base_url(base_url)?;
        Ok(Self {
            http,
            base_url: Arc::from(base_url),
            auth: None,
        })
    }

    /// The same client, authenticating as the device that owns `token` (`capd_<id>_<secret>`).
    /// A token that cannot be an HTTP header value is kept out of the request rather than sent
    /// mangled; the server then answers `unauthenticated`, which the caller reports.
    pub fn with_device_token(mut self, token: String) -> Self {
        self.auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        self
    }

    /// The normalised server base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(value) => req.header(AUTHORIZATION, value.clone()),
            None => req,
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
        req: reqwest::RequestBuilder,
    ) -> Result<T> {
        let resp = req
            .send()
            .await
            .map_err(|source| Error::Transport { url, source })?;
        json_or_error(resp).await
    }

    /// Trade an enrollment token for a device credential. Public: no device token needed.
    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse> {
        let url = self.url("/agent/v1/enroll");
        let builder = self.http.post(&url).json(req);
        self.send(url, builder).await
    }

    /// Report liveness and the current inventory digest; the answer says what to do next.
    pub async fn checkin(&self, req: &CheckinRequest) -> Result<CheckinResponse> {
        let url = self.url("/agent/v1/checkin");
        let builder = self.authorized(self.http.post(&url).json(req));
        self.send(url, builder).await
    }

    /// The device's signed manifest; `None` when the server has none for it (404).
    pub async fn manifest(&self) -> Result<Option<capstan_proto::deploy::SignedManifest>> {
        let url = self.url("/agent/v1/manifest");
        let builder = self.authorized(self.http.get(&url));
        match self.send(url, builder).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Report manifest items' status.
    pub async fn report_items(&self, report: &capstan_proto::deploy::ManifestReport) -> Result<()> {
        let url = self.url("/agent/v1/manifest/report");
        let builder = self.authorized(self.http.post(&url).json(report));
        let resp = builder
            .send()
            .await
            .map_err(|source| Error::Transport { url, source })?;
        crate::empty_or_error(resp).await
    }

    /// Ask for a package that is available to this device.
    pub async fn request_software(
        &self,
        req: &capstan_proto::deploy::SoftwareRequest,
    ) -> Result<()> {
        let url = self.url("/agent/v1/software/request");
        let builder = self.authorized(self.http.post(&url).json(req));
        let resp = builder
            .send()
            .await
            .map_err(|source| Error::Transport { url, source })?;
        crate::empty_or_error(resp).await
    }

    /// Upload the full inventory document with its digest.
    pub async fn upload_inventory(&self, upload: &InventoryUpload) -> Result<InventoryAccepted> {
        let url = self.url("/agent/v1/inventory");
        let builder = self.authorized(self.http.put(&url).json(upload));
        self.send(url, builder).await
    }

    /// Hold the wake-up long-poll for up to `timeout_secs`. Answers at once with `wake = true`
    /// when the server's wake generation differs from `generation`.
    pub async fn wait(&self, generation: u64, timeout_secs: u64) -> Result<WaitResponse> {
        let url = self.url("/agent/v1/wait");
        let builder = self.authorized(
            self.http
                .get(&url)
                .query(&[("generation", generation), ("timeout_secs", timeout_secs)])
                .timeout(Duration::from_secs(timeout_secs) + WAIT_MARGIN),
        );
        self.send(url, builder).await
    }

    /// Claim this device's runnable job runs (marks them delivered). Runs delivered before
    /// but never started are delivered again with the same idempotency key.
    pub async fn claim_runs(&self) -> Result<ClaimResponse> {
        let url = self.url("/agent/v1/runs/claim");
        let builder = self.authorized(self.http.post(&url).json(&serde_json::json!({})));
        self.send(url, builder).await
    }

    fn run_url(&self, run_id: &str, verb: &str) -> Result<String> {
        // Run ids come from signed payloads, but a path segment is still checked rather than
        // trusted: only id characters reach the URL.
        if run_id.is_empty()
            || run_id.len() > 64
            || !run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Config(format!("invalid run id {run_id:?}")));
        }
        Ok(self.url(&format!("/agent/v1/runs/{run_id}/{verb}")))
    }

    /// The attempt's process is about to start. Answers whether to cancel instead.
    pub async fn run_started(&self, run_id: &str, report: &RunStarted) -> Result<RunControl> {
        let url = self.run_url(run_id, "start")?;
        let builder = self.authorized(self.http.post(&url).json(report));
        self.send(url, builder).await
    }

    /// Output chunks of a running attempt (also serves as a heartbeat with no chunks).
    pub async fn run_output(&self, run_id: &str, report: &OutputReport) -> Result<RunControl> {
        let url = self.run_url(run_id, "output")?;
        let builder = self.authorized(self.http.post(&url).json(report));
        self.send(url, builder).await
    }

    /// The attempt asked for a reboot, which is about to happen.
    pub async fn run_rebooting(&self, run_id: &str, report: &RunRebooting) -> Result<RunControl> {
        let url = self.run_url(run_id, "rebooting")?;
        let builder = self.authorized(self.http.post(&url).json(report));
        self.send(url, builder).await
    }

    /// The attempt's final result. Idempotent: repeating it changes nothing.
    pub async fn run_finished(&self, run_id: &str, report: &RunFinished) -> Result<()> {
        let url = self.run_url(run_id, "finish")?;
        let builder = self.authorized(self.http.post(&url).json(report));
        let resp = builder
            .send()
            .await
            .map_err(|source| Error::Transport { url, source })?;
        crate::empty_or_error(resp).await
    }

    /// Start downloading the depot blob `sha256` at byte `offset` (a `Range: bytes=<offset>-`
    /// request when `offset > 0`). Returns the raw response of any 2xx answer — 206 continues
    /// at `offset`, 200 starts over from byte 0 — for the caller to stream and verify; other
    /// statuses become [`Error`] with the server's error code (416 when `offset` is past the
    /// end). The client's usual whole-request timeout would cut off a large download, so
    /// this request gets [`BLOB_TIMEOUT`] instead; the caller should bound idle time between
    /// chunks itself.
    pub async fn blob(&self, sha256: &str, offset: u64) -> Result<reqwest::Response> {
        // The hash becomes a path segment: only lowercase hex of the right length reaches it.
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::Config(format!("invalid blob sha256 {sha256:?}")));
        }
        let url = self.url(&format!("/agent/v1/depot/blobs/{sha256}"));
        let mut builder = self.authorized(self.http.get(&url).timeout(BLOB_TIMEOUT));
        if offset > 0 {
            builder = builder.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let resp = builder
            .send()
            .await
            .map_err(|source| Error::Transport { url, source })?;
        if !resp.status().is_success() {
            return Err(crate::error_from_response(resp).await);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_base_url_without_scheme() {
        let err = AgentClient::new("capstan.example:8443", &ClientOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
    }

    #[test]
    fn device_token_is_sent_as_a_sensitive_bearer_header() {
        let client = AgentClient::new("https://capstan.example:8443/", &ClientOptions::default())
            .unwrap()
            .with_device_token("capd_dev_secret".to_string());
        assert_eq!(client.base_url(), "https://capstan.example:8443");
        let req = client
            .authorized(client.http.get(client.url("/agent/v1/wait")))
            .build()
            .unwrap();
        let auth = req.headers().get(AUTHORIZATION).unwrap();
        assert_eq!(auth.to_str().unwrap(), "Bearer capd_dev_secret");
        assert!(auth.is_sensitive());
        assert!(!format!("{client:?}").contains("secret"));
    }

    #[test]
    fn a_token_that_is_not_a_header_value_is_not_sent() {
        let client = AgentClient::new("http://127.0.0.1:1", &ClientOptions::default())
            .unwrap()
            .with_device_token("bad\ntoken".to_string());
        let req = client
            .authorized(client.http.get(client.url("/x")))
            .build()
            .unwrap();
        assert!(req.headers().get(AUTHORIZATION).is_none());
    }

    /// Serve exactly one HTTP/1.1 request with a canned response; returns the request head.
    async fn one_shot_server(
        status_line: &'static str,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let resp = format!(
                "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf).into_owned()
        });
        (base, task)
    }

    #[tokio::test]
    async fn wait_sends_generation_timeout_and_token() {
        let (base, server) =
            one_shot_server("200 OK", r#"{"wake":true,"wake_generation":8}"#).await;
        let client = AgentClient::new(&base, &ClientOptions::default())
            .unwrap()
            .with_device_token("capd_d1_s".to_string());
        let resp = client.wait(7, 50).await.unwrap();
        assert_eq!(
            resp,
            WaitResponse {
                wake: true,
                wake_generation: 8
            }
        );
        let head = server.await.unwrap();
        assert!(
            head.starts_with("GET /agent/v1/wait?generation=7&timeout_secs=50 "),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer capd_d1_s"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn blob_asks_for_the_rest_with_a_range_and_returns_the_raw_body() {
        let sha = "ab".repeat(32);
        let (base, server) = one_shot_server("206 Partial Content", "tail").await;
        let client = AgentClient::new(&base, &ClientOptions::default())
            .unwrap()
            .with_device_token("capd_d1_s".to_string());
        let resp = client.blob(&sha, 1000).await.unwrap();
        assert_eq!(resp.status().as_u16(), 206);
        assert_eq!(resp.text().await.unwrap(), "tail");
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("get /agent/v1/depot/blobs/{sha} ")),
            "{head}"
        );
        assert!(head.contains("range: bytes=1000-"), "{head}");
        assert!(head.contains("authorization: bearer capd_d1_s"), "{head}");

        // From the start: no Range header.
        let (base, server) = one_shot_server("200 OK", "all").await;
        let client = AgentClient::new(&base, &ClientOptions::default()).unwrap();
        client.blob(&sha, 0).await.unwrap();
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(!head.contains("range:"), "{head}");
    }

    #[tokio::test]
    async fn blob_maps_errors_and_refuses_names_that_are_not_hashes() {
        let (base, server) = one_shot_server(
            "404 Not Found",
            r#"{"status":404,"code":"not_found","message":"no such blob"}"#,
        )
        .await;
        let client = AgentClient::new(&base, &ClientOptions::default()).unwrap();
        let err = client.blob(&"0".repeat(64), 0).await.unwrap_err();
        assert_eq!(err.code(), Some(capstan_proto::error::ErrorCode::NotFound));
        server.await.unwrap();
        for bad in ["../x", &"A".repeat(64), &"0".repeat(63)] {
            let err = client.blob(bad, 0).await.unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
        }
    }

    #[tokio::test]
    async fn revoked_device_surfaces_the_error_code() {
        let (base, server) = one_shot_server(
            "401 Unauthorized",
            r#"{"status":401,"code":"device_revoked","message":"device was revoked"}"#,
        )
        .await;
        let client = AgentClient::new(&base, &ClientOptions::default())
            .unwrap()
            .with_device_token("capd_d1_s".to_string());
        let err = client
            .checkin(&CheckinRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(capstan_proto::error::ErrorCode::DeviceRevoked)
        );
        assert_eq!(err.status(), Some(401));
        let head = server.await.unwrap();
        assert!(head.starts_with("POST /agent/v1/checkin "), "{head}");
    }
}

//! The harness the end-to-end suites share: a real server process with an admin session,
//! JSON requests to it, and enrolled agent processes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use capstan_client::tls::{ClientOptions, Fingerprint, build_http_client};
use capstan_proto::api::LoginRequest;
use capstan_testkit::{AgentProcess, ServerOptions, ServerProcess};
use serde_json::{Value, json};

/// A running server and an admin session on it.
pub struct Fx {
    pub server: ServerProcess,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn start(opts: ServerOptions) -> Fx {
    let server = ServerProcess::start(opts).await.expect("server starts");
    connect(server).await
}

/// Logs in as the admin of an already running server.
pub async fn connect(server: ServerProcess) -> Fx {
    let pin = server
        .fingerprint()
        .map(|f| Fingerprint::parse(&f).expect("fingerprint"));
    let opts = ClientOptions {
        pin,
        ..Default::default()
    };
    let api = capstan_client::api::ApiClient::new(server.url(), None, &opts).unwrap();
    let login = api
        .login(&LoginRequest {
            username: "admin".into(),
            password: server.admin_password().into(),
        })
        .await
        .expect("admin login");
    Fx {
        http: build_http_client(&opts).unwrap(),
        token: login.token,
        server,
    }
}

impl Fx {
    /// Uploads a file through `POST /api/v1/packages/upload`; returns status and body.
    pub async fn upload(&self, file: &Path, create: bool) -> (u16, Value) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let resp = self
            .http
            .post(format!(
                "{}/api/v1/packages/upload?file_name={name}&create={create}",
                self.server.url()
            ))
            .bearer_auth(&self.token)
            .header("content-type", "application/octet-stream")
            .body(std::fs::read(file).unwrap())
            .send()
            .await
            .expect("upload");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// [`Fx::upload`] that must be accepted (201); the body.
    pub async fn uploaded(&self, file: &Path, create: bool) -> Value {
        let (status, body) = self.upload(file, create).await;
        assert_eq!(status, 201, "upload of {}: {body}", file.display());
        body
    }

    /// A request with an optional JSON body: the status and the body as JSON (or as a JSON
    /// string when it is not JSON).
    pub async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.req(reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&s), "POST {path}: {s} {v}");
        v
    }

    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.req(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// An agent enrolled with a fresh token and started, with a 1 s kill grace for jobs and
    /// the extra environment `env`.
    pub async fn agent_with(&self, env: &[(&str, &str)]) -> AgentProcess {
        let v = self
            .post("/api/v1/enrollment-tokens", json!({"name": "e2e"}))
            .await;
        let token = v["token"].as_str().unwrap();
        let fp = self.server.fingerprint();
        let mut agent = AgentProcess::enroll(self.server.url(), fp.as_deref(), token, None)
            .await
            .expect("enroll");
        agent.env("CAPSTAN_AGENT_JOB_KILL_GRACE_SECS", "1");
        for (k, v) in env {
            agent.env(*k, *v);
        }
        agent.start().await.expect("agent starts");
        agent
    }

    pub async fn agent(&self) -> AgentProcess {
        self.agent_with(&[]).await
    }
}

/// A name no other test (or earlier run) uses: `capstan-e2e-<tag>-<pid>-<random>`.
pub fn unique(tag: &str) -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    format!(
        "capstan-e2e-{tag}-{}-{:08x}",
        std::process::id(),
        u32::from_le_bytes(b)
    )
}

pub fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

/// A `.deb` built with `dpkg-deb` that installs `/usr/share/<name>/version.txt` (plus whatever
/// the caller already put under `<dir>/<name>-<version>/`).
pub fn build_deb(dir: &Path, name: &str, version: &str) -> PathBuf {
    let root = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    let share = root.join("usr/share").join(name);
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("version.txt"), format!("{version}\n")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\n\
             Maintainer: Capstan tests <tests@capstan.invalid>\n\
             Description: Capstan e2e package\n"
        ),
    )
    .unwrap();
    let deb = dir.join(format!("{name}_{version}_all.deb"));
    let out = sh(&format!(
        "dpkg-deb --root-owner-group --build {} {}",
        root.display(),
        deb.display()
    ));
    assert!(out.status.success(), "dpkg-deb: {out:?}");
    deb
}

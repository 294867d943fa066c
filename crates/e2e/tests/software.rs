//! End-to-end tests of software packages: real `.deb` files built here with `dpkg-deb`, and a
//! script archive built with `tar`, uploaded to the real server, installed and removed by a real
//! agent process on this machine through `software_install` / `software_uninstall` jobs, and
//! checked with `dpkg -s` and the files the packages leave.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use capstan_client::tls::{ClientOptions, Fingerprint, build_http_client};
use capstan_proto::api::LoginRequest;
use capstan_testkit::{AgentProcess, ServerOptions, ServerProcess, wait_until};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(90);

struct Fx {
    server: ServerProcess,
    http: reqwest::Client,
    token: String,
}

async fn start() -> Fx {
    let server = ServerProcess::start(ServerOptions::default())
        .await
        .expect("server starts");
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
    async fn req(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
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

    async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.req(reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&s), "POST {path}: {s} {v}");
        v
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v) = self.req(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// Uploads a file through `POST /api/v1/packages/upload`; returns status and body.
    async fn upload(&self, file: &Path, create: bool) -> (u16, Value) {
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

    async fn agent(&self) -> AgentProcess {
        let v = self
            .post("/api/v1/enrollment-tokens", json!({"name": "e2e-software"}))
            .await;
        let token = v["token"].as_str().unwrap();
        let fp = self.server.fingerprint();
        let mut agent = AgentProcess::enroll(self.server.url(), fp.as_deref(), token, None)
            .await
            .expect("enroll");
        agent.env("CAPSTAN_AGENT_JOB_KILL_GRACE_SECS", "1");
        agent.start().await.expect("agent starts");
        agent
    }

    /// Runs a software job on one device and waits for its run to end; returns the run.
    async fn software(&self, op: &str, body: Value, device: &str) -> Value {
        let mut body = body;
        body["targets"] = json!({"devices": [device]});
        let job = self.post(&format!("/api/v1/software/{op}"), body).await;
        let job = job["id"].as_str().unwrap().to_string();
        let what = format!("software {op} job {job} to end");
        wait_until(&what, PATIENCE, || async {
            let r = self.get(&format!("/api/v1/jobs/{job}/runs/{device}")).await;
            let s = r["state"].as_str().unwrap_or("").to_string();
            anyhow::Ok(
                ["succeeded", "failed", "timed_out", "cancelled", "expired"]
                    .contains(&s.as_str())
                    .then_some(r),
            )
        })
        .await
        .unwrap()
    }
}

fn unique(tag: &str) -> String {
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

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

/// A `.deb` built with `dpkg-deb` that installs one file.
fn build_deb(dir: &Path, name: &str, version: &str) -> PathBuf {
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
             Description: Capstan software e2e package\n"
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

/// `dpkg -s` says the package is installed, at this version.
fn dpkg_version(name: &str) -> Option<String> {
    let out = sh(&format!(
        "dpkg-query -W -f='${{Status}}\\t${{Version}}' {name} 2>/dev/null"
    ));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, version) = text.split_once('\t')?;
    (status == "install ok installed").then(|| version.to_string())
}

/// Removes a package left behind by a failed test.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = sh(&format!("dpkg --purge {} >/dev/null 2>&1", self.0));
    }
}

fn attempt_text(run: &Value) -> String {
    let a = &run["attempts"][run["attempts"].as_array().map_or(0, |v| v.len().max(1) - 1)];
    format!(
        "{}\n--- stderr ---\n{}\n--- error: {}",
        a["stdout"].as_str().unwrap_or(""),
        a["stderr"].as_str().unwrap_or(""),
        a["error"]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deb_is_uploaded_installed_detected_cached_and_removed_by_a_real_agent() {
    let fx = start().await;
    let agent = fx.agent().await;
    let device = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deb");
    let _cleanup = Cleanup(name.clone());
    let deb = build_deb(dir.path(), &name, "1.0-1");

    // Upload: parsed, stored, version created with a dpkg detection rule.
    let (status, up) = fx.upload(&deb, true).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["metadata"]["format"], "deb");
    assert_eq!(up["created"]["version"], "1.0-1");
    assert_eq!(up["created"]["spec"]["detection"]["type"], "package");
    assert_eq!(up["created"]["spec"]["install_command"][0], "dpkg");
    let pkg = up["package"].as_str().unwrap().to_string();
    assert_eq!(pkg, name);

    // Install: downloaded from the server, installed, verified by detection.
    let run = fx
        .software("install", json!({"package": pkg}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("downloaded from server"), "{text}");
    assert!(text.contains("verified: installed"), "{text}");
    assert_eq!(dpkg_version(&name).as_deref(), Some("1.0-1"), "{text}");
    assert!(Path::new(&format!("/usr/share/{name}/version.txt")).exists());

    // Installing again changes nothing: detection finds it first.
    let run = fx
        .software("install", json!({"package": pkg}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("already installed; nothing to do"), "{text}");
    assert!(!text.contains("run: dpkg"), "{text}");

    // Uninstall: gone, and verified gone.
    let run = fx
        .software("uninstall", json!({"package": pkg}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("verified: removed"), "{text}");
    assert_eq!(dpkg_version(&name), None);

    // A second install of the same version comes from the agent's cache.
    let run = fx
        .software(
            "install",
            json!({"package": pkg, "version": "1.0-1"}),
            &device,
        )
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("from the cache"), "{text}");
    assert_eq!(dpkg_version(&name).as_deref(), Some("1.0-1"));

    // A newer version with uninstall-first supersedence: the old one goes, the new one comes.
    let deb2 = build_deb(dir.path(), &name, "2.0-1");
    let (status, up2) = fx.upload(&deb2, false).await;
    assert_eq!(status, 201, "{up2}");
    let mut req = up2["suggested"].clone();
    req["spec"]["supersedes"] =
        json!([{"package": pkg, "version": "1.0-1", "mode": "uninstall_first"}]);
    fx.post(&format!("/api/v1/packages/{pkg}/versions"), req)
        .await;
    let run = fx
        .software("install", json!({"package": pkg}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("step 1/2: remove superseded"), "{text}");
    assert!(text.contains("step 2/2: install"), "{text}");
    assert_eq!(dpkg_version(&name).as_deref(), Some("2.0-1"));

    // The blob of a version cannot be deleted while the version exists.
    let sha = up["sha256"].as_str().unwrap();
    let (status, body) = fx
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/depot/blobs/{sha}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("1.0-1"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_timeouts_and_failures_are_reported_as_such() {
    let fx = start().await;
    let agent = fx.agent().await;
    let device = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("codes");
    let _cleanup = Cleanup(name.clone());
    let deb = build_deb(dir.path(), &name, "1.0");
    let (status, up) = fx.upload(&deb, false).await;
    assert_eq!(status, 201, "{up}");
    fx.post("/api/v1/packages", json!({"name": name})).await;
    let marker = dir.path().join("marker");
    let marker = marker.display().to_string();

    // One version per behaviour, sharing the artifact; detection = the marker file.
    let version = |v: &str, install: Value, extra: Value| {
        let mut req = up["suggested"].clone();
        req["version"] = json!(v);
        req["spec"]["install_command"] = install;
        req["spec"]["detection"] = json!({"type": "file_exists", "path": marker});
        for (k, val) in extra.as_object().unwrap() {
            req["spec"][k] = val.clone();
        }
        req
    };
    let touch_and_exit = |code: i32| json!(["sh", "-c", format!("touch {marker}; exit {code}")]);
    for req in [
        version(
            "soft",
            touch_and_exit(100),
            json!({"soft_reboot_exit_codes": [100]}),
        ),
        version("fails", touch_and_exit(17), json!({})),
        version("slow", json!(["sleep", "30"]), json!({"timeout_secs": 1})),
    ] {
        fx.post(&format!("/api/v1/packages/{name}/versions"), req)
            .await;
    }

    // A soft-reboot code: succeeded, reboot required, no reboot. (MSI's 3010 cannot be an
    // exit status on Linux, which keeps 8 bits; the mapping is the same for any code.)
    let run = fx
        .software(
            "install",
            json!({"package": name, "version": "soft"}),
            &device,
        )
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert_eq!(run["attempts"][0]["exit_code"], 100, "{text}");
    assert!(
        run["attempts"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("reboot required"),
        "{text}"
    );
    std::fs::remove_file(&marker).unwrap();

    // Exit 17: failed with the code, even though the file appeared.
    let run = fx
        .software(
            "install",
            json!({"package": name, "version": "fails"}),
            &device,
        )
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "failed", "{text}");
    assert_eq!(run["attempts"][0]["exit_code"], 17, "{text}");
    std::fs::remove_file(&marker).unwrap();

    // Timeout: the installer is killed and the run says so.
    let run = fx
        .software(
            "install",
            json!({"package": name, "version": "slow"}),
            &device,
        )
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "timed_out", "{text}");
    assert!(!Path::new(&marker).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_leave_nothing() {
    let fx = start().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("bad");
    let deb = build_deb(dir.path(), &name, "1.0");
    let bytes = std::fs::read(&deb).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.deb",
            bytes[..bytes.len() / 2].to_vec(),
            "nothing was stored",
        ),
        (
            "garbage.deb",
            b"this is not a package at all".repeat(100),
            "nothing was stored",
        ),
        ("empty.deb", Vec::new(), "empty"),
    ];
    for (file, content, says) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, &content).unwrap();
        let (status, body) = fx.upload(&path, true).await;
        assert_eq!(status, 400, "{file}: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(says),
            "{file}: {body}"
        );
    }
    let blobs = fx.get("/api/v1/depot/blobs").await;
    assert_eq!(blobs["total"], 0, "no blob was kept: {blobs}");
    let pkgs = fx.get("/api/v1/packages").await;
    assert_eq!(pkgs["total"], 0, "{pkgs}");
    // Names with shell metacharacters are refused as package names.
    let (status, body) = fx
        .req(
            reqwest::Method::POST,
            "/api/v1/packages",
            Some(json!({"name": "x; rm -rf /"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = fx
        .req(
            reqwest::Method::POST,
            "/api/v1/software/install",
            Some(json!({"package": "$(reboot)", "targets": {"devices": ["x"]}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

//! Runs the real `capstan-agent` binary against a scripted fake server speaking the agent
//! protocol, to check what an administrator and the server see: what `enroll` stores, the
//! order of check-in / upload / wait, exit status 78 on a revoked credential or a copied state
//! directory, a clean exit on SIGTERM while a long-poll is held, and jobs end to end: a signed
//! run executed and reported, a running job reported `interrupted` when the agent is stopped,
//! and a simulated reboot (configured through the environment) completed after the restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_capstan-agent");
const TOKEN: &str = "capd_dev-1_s3cr3t";

#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

struct Reply {
    status: u16,
    body: String,
    hold: Duration,
}

fn ok(body: &str) -> Reply {
    Reply {
        status: 200,
        body: body.to_string(),
        hold: Duration::ZERO,
    }
}

fn error(status: u16, code: &str) -> Reply {
    Reply {
        status,
        body: format!(r#"{{"status":{status},"code":"{code}","message":"scripted {code}"}}"#),
        hold: Duration::ZERO,
    }
}

type Script = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// An HTTP/1.1 server answering each request from `script(request, n)`, where `n` counts
/// earlier requests to the same path; every request is recorded.
struct FakeServer {
    url: String,
    log: Arc<Mutex<Vec<Request>>>,
}

impl FakeServer {
    fn start(script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let log2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, script) = (log2.clone(), script.clone());
                std::thread::spawn(move || serve(stream, &log, &*script));
            }
        });
        FakeServer { url, log }
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    fn summary(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }

    /// The summary without job requests, which run beside the check-in loop in no fixed
    /// order.
    fn loop_summary(&self) -> Vec<String> {
        self.summary()
            .into_iter()
            .filter(|r| !r.contains("/agent/v1/runs/"))
            .collect()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Request>>, script: &Script) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let req = Request {
        method,
        target,
        headers,
        body,
    };
    let n = {
        let mut log = log.lock().unwrap();
        let n = log.iter().filter(|r| r.path() == req.path()).count();
        log.push(req.clone());
        n
    };
    let reply = script(&req, n);
    std::thread::sleep(reply.hold);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    );
}

/// The fake server's Ed25519 key; its public half is handed out at enrollment.
fn server_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

fn enrolled() -> String {
    format!(
        r#"{{"device_id":"dev-1","device_token":"capd_dev-1_s3cr3t","reenrolled":false,"checkin_interval_secs":60,"signing_public_key":"{}","protocol_version":1}}"#,
        hex::encode(server_key().verifying_key().as_bytes())
    )
}

const NO_RUNS: &str = r#"{"runs":[]}"#;

fn checkin(generation: u64, send: bool, recollect: bool) -> Reply {
    ok(&format!(
        r#"{{"server_time_ms":0,"checkin_interval_secs":60,"send_inventory":{send},"recollect_inventory":{recollect},"wake_generation":{generation},"protocol_version":1}}"#
    ))
}

fn wait_reply(wake: bool, generation: u64) -> Reply {
    ok(&format!(
        r#"{{"wake":{wake},"wake_generation":{generation}}}"#
    ))
}

/// A command isolated from the machine's own config and state.
fn agent(dir: &Path, args: &[&str]) -> Command {
    let config = dir.join("agent.toml");
    if !config.exists() {
        std::fs::write(&config, "collector_timeout_secs = 5\n").unwrap();
    }
    let mut cmd = Command::new(AGENT);
    cmd.args(args)
        .env("CAPSTAN_AGENT_CONFIG", &config)
        .env("CAPSTAN_AGENT_STATE_DIR", dir.join("state"))
        .env("CAPSTAN_AGENT_LOG", "info")
        .env_remove("CAPSTAN_AGENT_LOG_FORMAT")
        .env_remove("CAPSTAN_AGENT_ENROLL_TOKEN");
    cmd
}

fn enroll(dir: &Path, server: &FakeServer) -> Output {
    agent(
        dir,
        &[
            "enroll",
            "--server",
            &server.url,
            "--token",
            "cape_abc",
            "--fingerprint",
            "",
        ],
    )
    .args(["--identity", "instance"])
    .output()
    .unwrap()
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Output {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        panic!("agent did not exit within {limit:?}");
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status: child.wait().unwrap(),
        stdout,
        stderr,
    }
}

fn spawn_run(dir: &Path) -> Child {
    agent(dir, &["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn enroll_then_run_reports_inventory_follows_wakes_and_stops_when_revoked() {
    let server = FakeServer::start(|req, n| match (req.path(), n) {
        ("/agent/v1/enroll", _) => ok(&enrolled()),
        ("/agent/v1/checkin", 0) => checkin(1, true, false),
        // An operator pressed "refresh inventory now": woken, the agent re-collects and sends.
        ("/agent/v1/checkin", _) => checkin(2, true, true),
        ("/agent/v1/inventory", _) => ok(r#"{"changes":0,"first":true}"#),
        ("/agent/v1/wait", 0) => wait_reply(true, 2),
        ("/agent/v1/wait", _) => error(401, "device_revoked"),
        ("/agent/v1/runs/claim", _) => ok(NO_RUNS),
        _ => error(404, "route_not_found"),
    });
    let dir = tempfile::tempdir().unwrap();
    let out = enroll(dir.path(), &server);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("enrolled device dev-1"),
        "{}",
        text(&out.stdout)
    );

    let creds_path = dir.path().join("state/credentials.json");
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&creds_path).unwrap()).unwrap();
    assert_eq!(creds["device_id"], "dev-1");
    assert_eq!(creds["device_token"], TOKEN);
    assert_eq!(creds["server_url"], server.url.as_str());
    assert_eq!(creds["fingerprint"], serde_json::Value::Null);
    assert_eq!(creds["identity_source"], "instance");
    #[cfg(unix)]
    {
        assert_eq!(mode(&creds_path), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
    }
    let enroll_req = server.requests()[0].json();
    assert_eq!(enroll_req["token"], "cape_abc");
    assert_eq!(
        enroll_req["identity"]["identity_key"],
        creds["identity_key"]
    );
    assert_eq!(enroll_req["identity"]["source"], "instance");
    assert_eq!(
        enroll_req["capabilities"],
        serde_json::json!(["inventory.delta", "wake.longpoll", "jobs.v1"])
    );

    let mut child = spawn_run(dir.path());
    let out = wait_for_exit(&mut child, Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("revoked or deleted"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "token in the log: {stderr}");

    // The agent claims runs once at start, as the device.
    let claim = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/agent/v1/runs/claim")
        .expect("claimed runs at start");
    assert_eq!(
        claim.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let reqs: Vec<Request> = server
        .requests()
        .into_iter()
        .filter(|r| !r.path().starts_with("/agent/v1/runs/"))
        .collect();
    assert_eq!(
        server.loop_summary()[1..],
        [
            "POST /agent/v1/checkin",
            "PUT /agent/v1/inventory",
            "GET /agent/v1/wait?generation=1&timeout_secs=50",
            "POST /agent/v1/checkin",
            "PUT /agent/v1/inventory",
            "GET /agent/v1/wait?generation=2&timeout_secs=50",
        ]
    );
    for r in &reqs[1..] {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let first_checkin = reqs[1].json();
    let upload = reqs[2].json();
    let document: capstan_proto::inventory::InventoryDocument =
        serde_json::from_value(upload["document"].clone()).unwrap();
    let digest = capstan_core::inventory::digest(&document);
    assert_eq!(
        upload["digest"],
        digest.as_str(),
        "upload digest matches its document"
    );
    assert_eq!(first_checkin["inventory_digest"], digest.as_str());
    assert_eq!(first_checkin["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(first_checkin["performance"].is_object(), "{first_checkin}");
    let fresh = reqs[5].json();
    let fresh_doc: capstan_proto::inventory::InventoryDocument =
        serde_json::from_value(fresh["document"].clone()).unwrap();
    assert_eq!(
        fresh["digest"],
        capstan_core::inventory::digest(&fresh_doc).as_str()
    );
}

#[test]
fn a_server_error_is_retried_after_a_short_backoff() {
    let server = FakeServer::start(|req, n| match (req.path(), n) {
        ("/agent/v1/enroll", _) => ok(&enrolled()),
        ("/agent/v1/checkin", 0) => error(503, "unavailable"),
        ("/agent/v1/checkin", _) => checkin(4, false, false),
        ("/agent/v1/wait", _) => error(401, "unauthenticated"),
        ("/agent/v1/runs/claim", _) => ok(NO_RUNS),
        _ => error(404, "route_not_found"),
    });
    let dir = tempfile::tempdir().unwrap();
    assert!(enroll(dir.path(), &server).status.success());
    let mut child = spawn_run(dir.path());
    let out = wait_for_exit(&mut child, Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("request failed; retrying"), "{stderr}");
    assert!(stderr.contains("attempt=1"), "{stderr}");
    assert!(
        stderr.contains("unavailable"),
        "the server's error is logged: {stderr}"
    );
    assert_eq!(
        server.loop_summary()[1..],
        [
            "POST /agent/v1/checkin",
            "POST /agent/v1/checkin",
            "GET /agent/v1/wait?generation=4&timeout_secs=50",
        ]
    );
}

#[cfg(unix)]
#[test]
fn sigterm_during_a_held_wait_stops_cleanly() {
    let server = FakeServer::start(|req, _| match req.path() {
        "/agent/v1/enroll" => ok(&enrolled()),
        "/agent/v1/checkin" => checkin(1, false, false),
        "/agent/v1/wait" => Reply {
            hold: Duration::from_secs(30),
            ..wait_reply(false, 1)
        },
        _ => error(404, "route_not_found"),
    });
    let dir = tempfile::tempdir().unwrap();
    assert!(enroll(dir.path(), &server).status.success());
    let mut child = spawn_run(dir.path());
    let start = Instant::now();
    while !server
        .summary()
        .iter()
        .any(|r| r.starts_with("GET /agent/v1/wait"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no wait: {:?}",
            server.summary()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Far less than the 30 s the server holds the poll: the wait was abandoned, not finished.
    let out = wait_for_exit(&mut child, Duration::from_secs(10));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
}

#[test]
fn a_state_dir_from_another_machine_is_refused_before_contacting_the_server() {
    let server = FakeServer::start(|_, _| checkin(1, false, false));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Credentials as another machine would have written them: its hardware key, not ours.
    let creds = serde_json::json!({
        "server_url": server.url,
        "fingerprint": null,
        "device_id": "dev-orig",
        "device_token": "capd_dev-orig_x",
        "identity_key": "0".repeat(64),
        "identity_source": "hardware",
        "signing_public_key": "00",
        "enrolled_at_ms": 1,
    });
    std::fs::write(state.join("credentials.json"), creds.to_string()).unwrap();
    let out = agent(dir.path(), &["run"]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("identity mismatch"), "{stderr}");
    assert!(
        stderr.contains("dev-orig") && stderr.contains("enroll"),
        "{stderr}"
    );
    assert!(
        server.requests().is_empty(),
        "contacted the server: {:?}",
        server.summary()
    );
}

#[test]
fn a_refused_enrollment_stores_nothing_and_says_why() {
    let server = FakeServer::start(|_, _| error(401, "enrollment_token_expired"));
    let dir = tempfile::tempdir().unwrap();
    let out = enroll(dir.path(), &server);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("enrollment_token_expired"), "{stderr}");
    assert!(!dir.path().join("state/credentials.json").exists());
}

#[test]
fn status_shows_the_enrollment_without_the_token_and_run_needs_one() {
    let server = FakeServer::start(|_, _| ok(&enrolled()));
    let dir = tempfile::tempdir().unwrap();
    let out = agent(dir.path(), &["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78), "not enrolled yet");
    assert!(
        text(&out.stderr).contains("not enrolled"),
        "{}",
        text(&out.stderr)
    );
    let out = agent(dir.path(), &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78), "run without enrollment");

    assert!(enroll(dir.path(), &server).status.success());
    let out = agent(dir.path(), &["status"]).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("dev-1") && stdout.contains(&server.url),
        "{stdout}"
    );
    assert!(stdout.contains("instance"), "{stdout}");
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
}

#[test]
fn a_broken_config_file_exits_with_ex_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent.toml"), "inventory_interval = 5\n").unwrap();
    let out = agent(dir.path(), &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("inventory_interval"),
        "{}",
        text(&out.stderr)
    );
}

/// A claim answer with runs for dev-1, signed by the fake server's key.
fn claim_body(runs: &[(&str, serde_json::Value)]) -> String {
    use ed25519_dalek::Signer;
    let key = server_key();
    let delivered: Vec<serde_json::Value> = runs
        .iter()
        .map(|(run_id, spec)| {
            let payload = serde_json::json!({
                "run_id": run_id,
                "job_id": "job-1",
                "device_id": "dev-1",
                "attempt": 1,
                "idempotency_key": format!("{run_id}:1"),
                "spec": spec,
                "expires_at_ms": i64::MAX,
            })
            .to_string();
            let signature = hex::encode(key.sign(payload.as_bytes()).to_bytes());
            serde_json::json!({"payload": payload, "signature": signature})
        })
        .collect();
    serde_json::json!({ "runs": delivered }).to_string()
}

/// The fake server of the job tests: `claim` on the first claim, nothing afterwards; every
/// run report is accepted.
fn job_server(claim: String) -> FakeServer {
    FakeServer::start(move |req, n| match (req.path(), n) {
        ("/agent/v1/enroll", _) => ok(&enrolled()),
        ("/agent/v1/checkin", _) => checkin(1, false, false),
        ("/agent/v1/wait", _) => Reply {
            hold: Duration::from_secs(30),
            ..wait_reply(false, 1)
        },
        ("/agent/v1/runs/claim", 0) => ok(&claim),
        ("/agent/v1/runs/claim", _) => ok(NO_RUNS),
        (p, _) if p.starts_with("/agent/v1/runs/") && p.ends_with("/finish") => Reply {
            status: 204,
            body: String::new(),
            hold: Duration::ZERO,
        },
        (p, _) if p.starts_with("/agent/v1/runs/") => ok(r#"{"cancel":false}"#),
        _ => error(404, "route_not_found"),
    })
}

/// Bodies of the requests to `path`.
fn bodies(server: &FakeServer, path: &str) -> Vec<serde_json::Value> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path() == path)
        .map(|r| r.json())
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn a_signed_run_is_executed_and_a_stopped_agent_reports_the_running_one_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("job.pid");
    let server = job_server(claim_body(&[
        (
            "run-ok",
            serde_json::json!({"action": {"type": "command", "argv": ["sh", "-c", "echo hello"]}}),
        ),
        (
            "run-long",
            serde_json::json!({"action": {"type": "command", "argv": ["sh", "-c",
                format!("echo $$ > {}; exec sleep 300", pidfile.display())]}}),
        ),
    ]));
    assert!(enroll(dir.path(), &server).status.success());
    let mut child = agent(dir.path(), &["run"])
        .env("CAPSTAN_AGENT_JOB_KILL_GRACE_SECS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    wait_until("the first result", Duration::from_secs(30), || {
        !bodies(&server, "/agent/v1/runs/run-ok/finish").is_empty()
    });
    let result = &bodies(&server, "/agent/v1/runs/run-ok/finish")[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["stdout_bytes"], 6);
    let output: String = bodies(&server, "/agent/v1/runs/run-ok/output")
        .iter()
        .flat_map(|b| b["chunks"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["stream"] == "stdout")
        .map(|c| c["data"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(output, "hello\n");
    assert_eq!(bodies(&server, "/agent/v1/runs/run-ok/start").len(), 1);

    wait_until("the long job", Duration::from_secs(30), || {
        pidfile.exists() && !bodies(&server, "/agent/v1/runs/run-long/start").is_empty()
    });
    let job_pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    terminate(&child);
    let out = wait_for_exit(&mut child, Duration::from_secs(15));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let finished = bodies(&server, "/agent/v1/runs/run-long/finish");
    assert_eq!(finished.len(), 1, "{stderr}");
    assert_eq!(finished[0]["outcome"], "interrupted", "{}", finished[0]);
    assert!(
        !Path::new(&format!("/proc/{job_pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{job_pid}/cmdline"))
                .unwrap_or_default()
                .is_empty(),
        "the job outlived the agent"
    );
}

#[cfg(unix)]
#[test]
fn a_simulated_reboot_completes_after_the_restart_with_a_new_boot_id() {
    let dir = tempfile::tempdir().unwrap();
    let boot_id = dir.path().join("boot_id");
    std::fs::write(&boot_id, "boot-1\n").unwrap();
    let server = job_server(claim_body(&[(
        "run-reboot",
        serde_json::json!({"action": {"type": "reboot"}}),
    )]));
    assert!(enroll(dir.path(), &server).status.success());
    // The simulated reboot: a new boot id, then the agent dies the way a power cycle kills it.
    let reboot_command = serde_json::json!([
        "sh",
        "-c",
        "echo boot-2 > \"$CAPSTAN_BOOT_ID_PATH\"; kill -9 \"$CAPSTAN_AGENT_PID\""
    ])
    .to_string();
    let run = || {
        agent(dir.path(), &["run"])
            .env("CAPSTAN_AGENT_BOOT_ID_PATH", &boot_id)
            .env("CAPSTAN_AGENT_REBOOT_COMMAND", &reboot_command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let mut child = run();
    let out = wait_for_exit(&mut child, Duration::from_secs(30));
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(9), "{}", text(&out.stderr));
    }
    let rebooting = bodies(&server, "/agent/v1/runs/run-reboot/rebooting");
    assert_eq!(
        rebooting,
        [serde_json::json!({"attempt": 1, "boot_id": "boot-1"})]
    );
    assert!(bodies(&server, "/agent/v1/runs/run-reboot/finish").is_empty());
    assert_eq!(std::fs::read_to_string(&boot_id).unwrap().trim(), "boot-2");

    // The machine is back: the agent starts in the new boot and completes the run.
    let mut child = run();
    wait_until("the result after the boot", Duration::from_secs(30), || {
        !bodies(&server, "/agent/v1/runs/run-reboot/finish").is_empty()
    });
    let result = &bodies(&server, "/agent/v1/runs/run-reboot/finish")[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["error"], "rebooted; boot id changed");
    wait_until("a check-in", Duration::from_secs(30), || {
        bodies(&server, "/agent/v1/checkin")
            .iter()
            .any(|c| c["boot_id"] == "boot-2")
    });
    let boots: Vec<_> = bodies(&server, "/agent/v1/checkin")
        .iter()
        .map(|c| c["boot_id"].clone())
        .collect();
    assert!(
        boots.iter().all(|b| b == "boot-1" || b == "boot-2"),
        "{boots:?}"
    );
    terminate(&child);
    let out = wait_for_exit(&mut child, Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(bodies(&server, "/agent/v1/runs/run-reboot/finish").len(), 1);
}

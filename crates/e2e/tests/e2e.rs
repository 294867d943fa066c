//! End-to-end: the real server, real agent processes, the real CLI and install script, real
//! packages installed and removed with dpkg. Each test starts its own server with its own data
//! directory, so tests run in parallel.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use capstan_client::api::ApiClient;
use capstan_client::tls::{ClientOptions, Fingerprint};
use capstan_proto::api::{
    CreateCustomFieldRequest, CreateEnrollmentTokenRequest, CreateGroupRequest, DeviceDetail,
    DeviceListQuery, FieldType, LoginRequest, TagChange, TimelineQuery,
};
use capstan_testkit::{AgentProcess, ServerOptions, ServerProcess, bin_path, wait_until};

const PATIENCE: Duration = Duration::from_secs(60);

struct Fixture {
    server: ServerProcess,
    api: ApiClient,
}

async fn start(opts: ServerOptions) -> Fixture {
    let server = ServerProcess::start(opts).await.expect("server starts");
    let pin = server
        .fingerprint()
        .map(|f| Fingerprint::parse(&f).expect("server prints a valid fingerprint"));
    let anon = ApiClient::new(
        server.url(),
        None,
        &ClientOptions {
            pin,
            ..Default::default()
        },
    )
    .unwrap();
    let login = anon
        .login(&LoginRequest {
            username: "admin".into(),
            password: server.admin_password().into(),
        })
        .await
        .expect("admin login");
    let api = anon.with_token(Some(login.token));
    Fixture { server, api }
}

impl Fixture {
    async fn token(&self, max_uses: Option<u32>) -> String {
        self.api
            .create_enrollment_token(&CreateEnrollmentTokenRequest {
                name: "e2e".into(),
                expires_in_secs: None,
                max_uses,
                default_tags: vec!["e2e".into()],
            })
            .await
            .expect("create enrollment token")
            .token
    }

    async fn agent(&self) -> AgentProcess {
        let token = self.token(None).await;
        let fp = self.server.fingerprint();
        let mut agent = AgentProcess::enroll(self.server.url(), fp.as_deref(), &token, None)
            .await
            .expect("enroll");
        agent.start().await.expect("agent starts");
        agent
    }

    async fn device_with_inventory(&self, id: &str) -> DeviceDetail {
        wait_until("the first inventory to arrive", PATIENCE, || async {
            let d = self.api.get_device(id).await?;
            anyhow::Ok(d.inventory.is_some().then_some(d))
        })
        .await
        .unwrap()
    }
}

fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a dpkg command, waiting while another test holds dpkg's lock (tests run in parallel).
fn dpkg(cmd: &str) {
    let _db = capstan_e2e::package_db_lock();
    for _ in 0..120 {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .expect("sh runs");
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("lock"), "`{cmd}` failed: {err}");
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("`{cmd}`: dpkg stayed locked for a minute");
}

fn is_root() -> bool {
    sh("id -u") == "0"
}

/// A tiny .deb built on the spot, removed again when dropped.
struct ProbePackage {
    name: String,
    _dir: tempfile::TempDir,
    deb: std::path::PathBuf,
}

impl ProbePackage {
    fn build(name: &str, version: &str) -> ProbePackage {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pkg");
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/doc").join(name)).unwrap();
        std::fs::write(
            root.join("usr/share/doc").join(name).join("README"),
            "Capstan end-to-end probe\n",
        )
        .unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Capstan tests <tests@capstan.invalid>\n\
                 Description: Capstan end-to-end probe package\n"
            ),
        )
        .unwrap();
        let deb = dir.path().join(format!("{name}.deb"));
        sh(&format!(
            "dpkg-deb --root-owner-group --build {} {}",
            root.display(),
            deb.display()
        ));
        ProbePackage {
            name: name.into(),
            _dir: dir,
            deb,
        }
    }

    fn install(&self) {
        dpkg(&format!("dpkg -i {}", self.deb.display()));
    }

    fn remove(&self) {
        dpkg(&format!("dpkg -r {}", self.name));
    }
}

impl Drop for ProbePackage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("dpkg")
            .args(["--purge", &self.name])
            .output();
    }
}

/// Software fields carry the architecture when there is one (`software/dpkg/x:all`).
fn field_is(field: Option<&str>, want: &str) -> bool {
    field.is_some_and(|f| {
        f == want
            || f.strip_prefix(want)
                .is_some_and(|rest| rest.starts_with(':'))
    })
}

async fn wait_for_timeline(api: &ApiClient, id: &str, field: &str, change: &str) -> Duration {
    let start = Instant::now();
    wait_until(
        &format!("timeline entry {field} {change}"),
        PATIENCE,
        || async {
            let page = api
                .device_timeline(
                    id,
                    &TimelineQuery {
                        limit: Some(50),
                        ..Default::default()
                    },
                )
                .await?;
            anyhow::Ok(
                page.items
                    .iter()
                    .any(|e| {
                        field_is(e.field.as_deref(), field) && e.change.as_deref() == Some(change)
                    })
                    .then_some(()),
            )
        },
    )
    .await
    .unwrap();
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_matches_this_machine_and_tracks_a_real_package() {
    assert!(
        is_root(),
        "this test installs a .deb with dpkg and must run as root (the README test command does)"
    );
    let f = start(ServerOptions::default()).await;
    assert!(
        f.server.fingerprint().is_some(),
        "the default server serves TLS with a pinned self-signed certificate"
    );
    let agent = f.agent().await;
    let id = agent.device_id().unwrap();
    let device = f.device_with_inventory(&id).await;
    let inv = device.inventory.as_ref().unwrap();
    let os = inv.os.as_ref().expect("os section");
    assert_eq!(os.hostname, sh("hostname"));
    assert_eq!(os.kernel.as_deref(), Some(sh("uname -r").as_str()));
    let mem_kib: u64 = sh("awk '/^MemTotal:/ {print $2}' /proc/meminfo")
        .parse()
        .unwrap();
    assert_eq!(
        inv.hardware.as_ref().and_then(|h| h.memory_bytes),
        Some(mem_kib * 1024)
    );
    let installed: usize = sh("dpkg-query -W -f='${db:Status-Status}\\n' | grep -c '^installed$'")
        .parse()
        .unwrap();
    let dpkg = inv
        .software
        .as_ref()
        .unwrap()
        .iter()
        .filter(|s| s.source == "dpkg")
        .count();
    assert_eq!(dpkg, installed, "dpkg package count");
    assert!(device.summary.online);
    assert_eq!(device.summary.tags, vec!["e2e".to_string()]);
    assert!(
        device.performance.is_some(),
        "check-ins carry a performance snapshot"
    );

    let name = format!("capstan-e2e-probe-{}", std::process::id());
    let probe = ProbePackage::build(&name, "1.0-1");
    probe.install();
    let r = f.api.refresh_inventory(&id).await.unwrap();
    assert!(
        r.delivered_now,
        "the agent holds a wake-up connection, so the refresh is delivered at once"
    );
    let took = wait_for_timeline(&f.api, &id, &format!("software/dpkg/{name}"), "added").await;
    eprintln!("refresh → installed package visible in the timeline after {took:?}");
    probe.remove();
    f.api.refresh_inventory(&id).await.unwrap();
    wait_for_timeline(&f.api, &id, &format!("software/dpkg/{name}"), "removed").await;
    let entry = f
        .api
        .device_timeline(
            &id,
            &TimelineQuery {
                limit: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| {
            field_is(e.field.as_deref(), &format!("software/dpkg/{name}"))
                && e.change.as_deref() == Some("removed")
        })
        .unwrap();
    assert!(entry.summary.contains(&name), "{}", entry.summary);
    assert!(agent.log().contains("inventory"), "the agent logs its work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reenrollment_keeps_one_device_and_side_by_side_agents_are_distinct() {
    let f = start(ServerOptions {
        no_tls: true,
        ..Default::default()
    })
    .await;
    let token = f.token(Some(3)).await;
    let a = AgentProcess::enroll(f.server.url(), None, &token, None)
        .await
        .unwrap();
    let b = AgentProcess::enroll(f.server.url(), None, &token, None)
        .await
        .unwrap();
    assert_ne!(
        a.device_id().unwrap(),
        b.device_id().unwrap(),
        "two state dirs, two devices"
    );
    let first_id = a.device_id().unwrap();
    let again = AgentProcess::enroll(
        f.server.url(),
        None,
        &token,
        Some(a.state_dir().to_path_buf()),
    )
    .await
    .unwrap();
    assert_eq!(
        again.device_id().unwrap(),
        first_id,
        "same machine identity → same device"
    );
    let page = f
        .api
        .list_devices(&DeviceListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    // The token allowed three uses and all three are spent.
    let err = AgentProcess::enroll(f.server.url(), None, &token, None)
        .await
        .err()
        .expect("fourth use refused");
    assert!(
        format!("{err:#}").contains("enrollment_token_exhausted"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_certificate_fingerprint_is_refused() {
    let f = start(ServerOptions::default()).await;
    let token = f.token(None).await;
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let err = AgentProcess::enroll(f.server.url(), Some(&wrong), &token, None)
        .await
        .err()
        .expect("pin mismatch refused");
    assert!(
        format!("{err:#}").to_lowercase().contains("fingerprint"),
        "{err:#}"
    );
    assert_eq!(
        f.api
            .list_devices(&DeviceListQuery::default())
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        f.api.list_enrollment_tokens().await.unwrap()[0].uses,
        0,
        "the token never reached the impostor check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_stops_with_exit_status_78() {
    let f = start(ServerOptions {
        no_tls: true,
        ..Default::default()
    })
    .await;
    let mut agent = f.agent().await;
    let id = agent.device_id().unwrap();
    f.device_with_inventory(&id).await;
    f.api.revoke_device(&id).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = agent.exit_status().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked agent did not exit; log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(78), "agent log:\n{}", agent.log());
    assert!(
        agent.log().to_lowercase().contains("re-enroll"),
        "the agent says what to do:\n{}",
        agent.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_survives_a_server_restart() {
    let url = capstan_testkit::postgres()
        .unwrap()
        .create_database()
        .unwrap();
    let mut f = start(ServerOptions {
        database_url: Some(url),
        no_tls: true,
        ..Default::default()
    })
    .await;
    let agent = f.agent().await;
    let id = agent.device_id().unwrap();
    f.device_with_inventory(&id).await;
    let seen_before = f
        .api
        .get_device(&id)
        .await
        .unwrap()
        .summary
        .last_seen_at_ms
        .unwrap();
    f.server.restart().await.unwrap();
    // Sessions live in the database, so the login survives the restart.
    wait_until(
        "the agent to check in with the restarted server",
        PATIENCE,
        || async {
            let d = f.api.get_device(&id).await?;
            anyhow::Ok((d.summary.last_seen_at_ms.unwrap_or(0) > seen_before).then_some(()))
        },
    )
    .await
    .unwrap();
    let r = wait_until(
        "the agent to hold a wake-up connection again",
        PATIENCE,
        || async {
            let r = f.api.refresh_inventory(&id).await?;
            if !r.delivered_now {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok(r.delivered_now.then_some(r))
        },
    )
    .await
    .unwrap();
    assert!(r.delivered_now);
    let tl = f
        .api
        .device_timeline(&id, &TimelineQuery::default())
        .await
        .unwrap();
    assert!(tl.items.iter().any(|e| e.kind == "inventory_first"));
}

fn cli(
    server: &ServerProcess,
    config: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(bin_path("capstan"));
    cmd.args(args)
        .env("CAPSTAN_CONFIG", config)
        .env_remove("CAPSTAN_SERVER")
        .env_remove("CAPSTAN_TOKEN");
    if let Some(fp) = server.fingerprint() {
        cmd.env("CAPSTAN_FINGERPRINT", fp);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        // A command that refuses its arguments exits without reading its input.
        match child.stdin.as_mut().unwrap().write_all(input.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.unwrap(),
        }
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_real_server() {
    let f = start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cli.toml");
    let s = &f.server;
    let (code, _, err) = cli(
        s,
        &config,
        &["login", "--server", s.url(), "--username", "admin"],
        Some(&format!("{}\n", s.admin_password())),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(
        s,
        &config,
        &[
            "tokens",
            "create",
            "--name",
            "cli",
            "--max-uses",
            "1",
            "--output",
            "json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let mut agent = AgentProcess::enroll(s.url(), s.fingerprint().as_deref(), &token, None)
        .await
        .unwrap();
    agent.start().await.unwrap();
    let id = agent.device_id().unwrap();
    f.device_with_inventory(&id).await;

    let (code, out, err) = cli(s, &config, &["devices", "list", "--output", "json"], None);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["online"], true);
    assert!(list[0]["hostname"].is_string());
    let (code, out, _) = cli(
        s,
        &config,
        &["devices", "show", &id, "--output", "json"],
        None,
    );
    assert_eq!(code, 0);
    let show: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        show["inventory"]["software"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    let (code, out, _) = cli(s, &config, &["devices", "list"], None);
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("online"), "{out}");
    let (code, out, _) = cli(
        s,
        &config,
        &["devices", "timeline", &id, "--output", "json"],
        None,
    );
    assert_eq!(code, 0);
    assert!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "enrolled")
    );
    let (code, _, err) = cli(
        s,
        &config,
        &["devices", "show", "00000000-0000-0000-0000-000000000000"],
        None,
    );
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not_found"), "{err}");
    let (code, _, err) = cli(s, &config, &["devices", "delete", &id], None);
    assert_ne!(
        code, 0,
        "delete without --yes and without a terminal must refuse: {err}"
    );
    let (code, _, err) = cli(s, &config, &["devices", "delete", &id, "--yes"], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(s, &config, &["audit", "list", "--output", "json"], None);
    assert_eq!(code, 0, "{err}");
    let audit: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"enrollment_token.create") && actions.contains(&"device.delete"),
        "{actions:?}"
    );
    let new_password = "a-brand-new-password";
    let (code, _, err) = cli(
        s,
        &config,
        &["passwd"],
        Some(&format!("{}\n{new_password}\n", s.admin_password())),
    );
    assert_eq!(code, 0, "{err}");
    let fresh = tempfile::tempdir().unwrap();
    let other = fresh.path().join("cli.toml");
    let (code, _, _) = cli(
        s,
        &other,
        &["login", "--server", s.url(), "--username", "admin"],
        Some(&format!("{}\n", s.admin_password())),
    );
    assert_eq!(code, 3, "the old password no longer works");
    let (code, _, err) = cli(
        s,
        &other,
        &["login", "--server", s.url(), "--username", "admin"],
        Some(&format!("{new_password}\n")),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = cli(s, &config, &["logout"], None);
    assert_eq!(code, 0);
    let (code, _, err) = cli(s, &config, &["devices", "list"], None);
    assert_eq!(code, 3, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_script_installs_and_enrolls() {
    let f = start(ServerOptions::default()).await;
    let created = f
        .api
        .create_enrollment_token(&CreateEnrollmentTokenRequest {
            name: "install".into(),
            expires_in_secs: None,
            max_uses: Some(1),
            default_tags: vec![],
        })
        .await
        .unwrap();
    let token = created.token.clone();
    // The command the server hands out pins the server's public key for the script download.
    let base = created.install_command.replace("| sudo sh", "| sh");
    assert!(base.contains("--pinnedpubkey 'sha256//"), "{base}");
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&bin_dir).unwrap();
    // Run it as given (minus sudo: the tests run as root), into temporary directories.
    let extra = format!(
        " --bin-dir {} --state-dir {} --identity instance --no-service",
        bin_dir.display(),
        state_dir.display()
    );

    // A wrong pin (an impostor server) stops at the download of the script.
    let pin_at = base.find("sha256//").unwrap() + "sha256//".len();
    let wrong = format!(
        "{}{}={}",
        &base[..pin_at],
        "A".repeat(43),
        &base[pin_at + 44..]
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{wrong}{extra}"))
        .output()
        .unwrap();
    assert!(
        !bin_dir.join("capstan-agent").exists() && !state_dir.join("credentials.json").exists(),
        "nothing may be installed through a wrong pin: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{base}{extra}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "install failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let installed = bin_dir.join("capstan-agent");
    assert!(installed.exists());
    assert_eq!(
        sh(&format!(
            "sha256sum {} | cut -d' ' -f1",
            installed.display()
        )),
        sh(&format!(
            "sha256sum {} | cut -d' ' -f1",
            bin_path("capstan-agent").display()
        ))
    );
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_dir.join("credentials.json")).unwrap())
            .unwrap();
    let id = creds["device_id"].as_str().unwrap();
    assert_eq!(f.api.get_device(id).await.unwrap().summary.id, id);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&token) && !stderr.contains(&token),
        "the token is not echoed"
    );
}

/// Two server replicas on one PostgreSQL database: an operator's refresh sent to replica B
/// reaches the agent holding its long-poll on replica A within seconds, through LISTEN/NOTIFY.
/// The check-in interval is set to 300 s, so only the relay can explain a prompt arrival.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_crosses_replicas_through_postgres() {
    let url = capstan_testkit::postgres()
        .unwrap()
        .create_database()
        .unwrap();
    let opts = || ServerOptions {
        database_url: Some(url.clone()),
        no_tls: true,
        extra_args: vec!["--checkin-interval-secs".into(), "300".into()],
        ..Default::default()
    };
    let a = start(opts()).await;
    let b = start(opts()).await;
    let agent = a.agent().await;
    let id = agent.device_id().unwrap();
    let first = a
        .device_with_inventory(&id)
        .await
        .inventory_updated_at_ms
        .unwrap();
    // Let the agent settle into its long-poll on replica A.
    wait_until(
        "the agent to hold its long-poll on replica A",
        PATIENCE,
        || async {
            let r = a.api.get_device(&id).await?;
            anyhow::Ok(r.summary.online.then_some(()))
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let r = b.api.refresh_inventory(&id).await.unwrap();
    assert!(!r.delivered_now, "the agent is not connected to replica B");
    wait_until(
        "the relayed refresh to produce a new inventory",
        Duration::from_secs(30),
        || async {
            let d = b.api.get_device(&id).await?;
            anyhow::Ok((d.inventory_updated_at_ms.unwrap_or(0) > first).then_some(()))
        },
    )
    .await
    .unwrap();
    eprintln!(
        "refresh via replica B answered by the agent on replica A after {:?}",
        started.elapsed()
    );
}

fn member_of(d: &DeviceDetail, group_id: &str) -> bool {
    d.groups.iter().any(|g| g.id == group_id)
}

async fn wait_membership(f: &Fixture, device: &str, group_id: &str, want: bool, why: &str) {
    wait_until(why, PATIENCE, || async {
        let d = f.api.get_device(device).await?;
        anyhow::Ok((member_of(&d, group_id) == want).then_some(()))
    })
    .await
    .unwrap();
}

/// Dynamic groups with real agents: a new agent lands in its groups with no operator action, a
/// tag moves it, and a real package installed on the node moves it into a "has X ≥ 1.2" group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_agents_move_between_dynamic_groups() {
    assert!(
        is_root(),
        "this test installs .deb packages with dpkg and must run as root"
    );
    let f = start(ServerOptions {
        no_tls: true,
        ..Default::default()
    })
    .await;
    let pkg = format!("capstan-e2e-dyn-{}", std::process::id());
    let dynamic = |name: &str, rule: serde_json::Value| CreateGroupRequest {
        name: name.into(),
        description: String::new(),
        parent_id: None,
        kind: Some("dynamic".into()),
        rule: Some(rule),
    };
    let linux = f
        .api
        .create_group(&dynamic(
            "Linux (e2e)",
            serde_json::json!({"field": "os.family", "op": "eq", "value": "linux"}),
        ))
        .await
        .unwrap();
    let pilot = f
        .api
        .create_group(&dynamic("Pilot (e2e)", serde_json::json!({"tag": "pilot"})))
        .await
        .unwrap();
    let has_pkg = f
        .api
        .create_group(&dynamic(
            "Has probe ≥ 1.2 (e2e)",
            serde_json::json!({"software": {"name": pkg, "op": "version_gte", "value": "1.2"}}),
        ))
        .await
        .unwrap();

    let agent = f.agent().await;
    let id = agent.device_id().unwrap();
    wait_membership(
        &f,
        &id,
        &linux.id,
        true,
        "the new agent to join the Linux group by itself",
    )
    .await;
    let d = f.api.get_device(&id).await.unwrap();
    assert!(
        !member_of(&d, &pilot.id) && !member_of(&d, &has_pkg.id),
        "{:?}",
        d.groups
    );
    assert!(
        d.groups.iter().any(|g| g.name == "All devices"),
        "predefined groups exist on a fresh server: {:?}",
        d.groups
    );

    let tag = |add: bool| {
        let api = f.api.clone();
        let id = id.clone();
        async move {
            api.change_tags(
                &TagChange {
                    tags: vec!["pilot".into()],
                    device_ids: Some(vec![id]),
                    filter: None,
                },
                add,
            )
            .await
            .unwrap()
        }
    };
    tag(true).await;
    wait_membership(&f, &id, &pilot.id, true, "the tagged device to join Pilot").await;
    tag(false).await;
    wait_membership(
        &f,
        &id,
        &pilot.id,
        false,
        "the untagged device to leave Pilot",
    )
    .await;

    let old = ProbePackage::build(&pkg, "1.1-1");

    // A custom field value moves it too.
    f.api
        .create_custom_field(&CreateCustomFieldRequest {
            name: "owner".into(),
            field_type: FieldType::String,
            enum_values: vec![],
            default: None,
            required: false,
            description: String::new(),
        })
        .await
        .unwrap();
    let it_owned = f
        .api
        .create_group(&dynamic(
            "Owned by IT (e2e)",
            serde_json::json!({"field": "custom.owner", "op": "eq", "value": "it"}),
        ))
        .await
        .unwrap();
    f.api
        .set_custom_field(&id, "owner", serde_json::json!("it"))
        .await
        .unwrap();
    wait_membership(
        &f,
        &id,
        &it_owned.id,
        true,
        "owner=it to move the device in",
    )
    .await;
    f.api.unset_custom_field(&id, "owner").await.unwrap();
    wait_membership(
        &f,
        &id,
        &it_owned.id,
        false,
        "unsetting owner to move the device out",
    )
    .await;
    old.install();
    f.api.refresh_inventory(&id).await.unwrap();
    wait_for_timeline(&f.api, &id, &format!("software/dpkg/{pkg}"), "added").await;
    assert!(
        !member_of(&f.api.get_device(&id).await.unwrap(), &has_pkg.id),
        "1.1 is below 1.2"
    );
    let new = ProbePackage::build(&pkg, "1.3-1");
    new.install();
    f.api.refresh_inventory(&id).await.unwrap();
    wait_membership(
        &f,
        &id,
        &has_pkg.id,
        true,
        "the upgrade to 1.3 to move the device in",
    )
    .await;
    new.remove();
    f.api.refresh_inventory(&id).await.unwrap();
    wait_membership(
        &f,
        &id,
        &has_pkg.id,
        false,
        "the removal to move the device out",
    )
    .await;
    let tl = f
        .api
        .device_timeline(
            &id,
            &TimelineQuery {
                limit: Some(200),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        tl.items
            .iter()
            .any(|e| e.summary.contains("Has probe") && e.summary.contains("(dynamic)")),
        "membership changes are in the timeline"
    );
}

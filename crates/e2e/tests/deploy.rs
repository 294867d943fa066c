//! End-to-end tests of desired software state with real agent processes: a `.deb` built here
//! is assigned to a dynamic group and the agents install it, repair drift, upgrade to the
//! latest version, remove it from a node that leaves the group and everywhere when the
//! assignment goes; a deployment waits for a maintenance window on the server's test clock;
//! an offline agent converges when it comes back; a killed server loses nothing.
//!
//! Every agent is a node with its own dpkg database: the agent runs with `DPKG_ROOT` set to a
//! private root (the agent passes it to installers, and its detection probes inherit it), so
//! three agents on one machine install and remove independently — checked with `dpkg-query`
//! in each root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use capstan_testkit::{AgentProcess, ServerOptions, wait_until};
use common::{Fx, build_deb, connect, sh, unique};
use serde_json::json;

mod common;

const PATIENCE: Duration = Duration::from_secs(90);

/// A node: an agent whose dpkg works in a private root.
struct Node {
    agent: AgentProcess,
    root: PathBuf,
    id: String,
}

impl Node {
    /// The package's version in this node's dpkg database, if installed.
    fn installed(&self, name: &str) -> Option<String> {
        let out = sh(&format!(
            "DPKG_ROOT={} dpkg-query -W -f='${{db:Status-Abbrev}}\\t${{Version}}' {name} 2>/dev/null",
            self.root.display()
        ));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (status, version) = text.split_once('\t')?;
        (status.trim() == "ii").then(|| version.to_string())
    }

    /// Removes the package behind the agent's back (drift).
    fn remove_by_hand(&self, name: &str) {
        let out = sh(&format!("DPKG_ROOT={} dpkg -r {name}", self.root.display()));
        assert!(out.status.success(), "dpkg -r: {out:?}");
    }
}

/// An empty dpkg root.
fn dpkg_root(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(root.join(f), "").unwrap();
    }
    root
}

impl Fx {
    /// Enrolls an agent working in its own dpkg root; started unless `start` is false.
    async fn node(&self, dir: &Path, label: &str, start: bool) -> Node {
        let root = dpkg_root(dir, label);
        let v = self
            .post("/api/v1/enrollment-tokens", json!({"name": label}))
            .await;
        let fp = self.server.fingerprint();
        let mut agent = AgentProcess::enroll(
            self.server.url(),
            fp.as_deref(),
            v["token"].as_str().unwrap(),
            None,
        )
        .await
        .expect("enroll");
        agent.env("DPKG_ROOT", root.display().to_string());
        if start {
            agent.start().await.expect("agent starts");
        }
        let id = agent.device_id().unwrap();
        Node { agent, root, id }
    }

    /// The server's status of `package` on `device`.
    async fn item_status(&self, device: &str, package: &str) -> Option<String> {
        let sw = self
            .get(&format!("/api/v1/devices/{device}/software"))
            .await;
        sw["items"]
            .as_array()?
            .iter()
            .find(|i| i["package_name"] == package)
            .and_then(|i| i["status"].as_str().map(str::to_string))
    }
}

/// Waits until `check` holds, printing `what` on timeout.
async fn until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_until(what, PATIENCE, || async {
        anyhow::Ok(check().await.then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deb_assigned_to_a_dynamic_group_follows_membership_drift_and_the_latest_version() {
    desired_state_story(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_story_on_postgres() {
    let url = capstan_testkit::postgres()
        .expect("throwaway PostgreSQL")
        .create_database()
        .expect("database");
    desired_state_story(Some(url)).await;
}

async fn desired_state_story(database_url: Option<String>) {
    let fx = common::start(ServerOptions {
        database_url,
        extra_args: vec!["--reconcile-interval-secs".into(), "3".into()],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let n1 = fx.node(dir.path(), "n1", true).await;
    let n2 = fx.node(dir.path(), "n2", true).await;
    let n3 = fx.node(dir.path(), "n3", true).await;
    fx.post(
        "/api/v1/tags/add",
        json!({"tags": ["web"], "device_ids": [n1.id, n2.id]}),
    )
    .await;
    fx.post(
        "/api/v1/groups",
        json!({"name": "web", "kind": "dynamic", "rule": {"tag": "web"}}),
    )
    .await;
    let name = unique("dep");
    let up = fx
        .uploaded(&build_deb(dir.path(), &name, "1.0-1"), true)
        .await;
    assert_eq!(up["created"]["version"], "1.0-1");
    let a = fx
        .post(
            "/api/v1/assignments",
            json!({"package": name, "target": {"kind": "group", "id": "web"}, "intent": "required"}),
        )
        .await;
    let assignment = a["id"].as_str().unwrap().to_string();

    // Installed on the group's nodes only.
    until("n1 and n2 to install 1.0-1", || async {
        n1.installed(&name).as_deref() == Some("1.0-1")
            && n2.installed(&name).as_deref() == Some("1.0-1")
            && fx.item_status(&n1.id, &name).await.as_deref() == Some("installed")
            && fx.item_status(&n2.id, &name).await.as_deref() == Some("installed")
    })
    .await;
    assert_eq!(n3.installed(&name), None);
    assert_eq!(fx.item_status(&n3.id, &name).await, None);
    let history = fx
        .get(&format!(
            "/api/v1/devices/{}/software/{name}/history",
            n1.id
        ))
        .await;
    let log = history.to_string();
    assert!(log.contains("installing"), "{history}");

    // Drift: removed by hand, reinstalled within a reconcile interval, in the timeline.
    n1.remove_by_hand(&name);
    assert_eq!(n1.installed(&name), None);
    until("n1 to repair the drift", || async {
        n1.installed(&name).as_deref() == Some("1.0-1")
    })
    .await;
    until("the drift to be in n1's timeline", || async {
        let t = fx.get(&format!("/api/v1/devices/{}/timeline", n1.id)).await;
        t.to_string().contains("drift repaired")
    })
    .await;
    let sw = fx.get(&format!("/api/v1/devices/{}/software", n1.id)).await;
    assert_eq!(sw["items"][0]["drift_repairs"], 1, "{sw}");

    // A new version: "latest" upgrades every node of the group.
    let up2 = fx
        .uploaded(&build_deb(dir.path(), &name, "2.0-1"), false)
        .await;
    fx.post(
        &format!("/api/v1/packages/{name}/versions"),
        up2["suggested"].clone(),
    )
    .await;
    until("n1 and n2 to upgrade to 2.0-1", || async {
        n1.installed(&name).as_deref() == Some("2.0-1")
            && n2.installed(&name).as_deref() == Some("2.0-1")
            && fx.item_status(&n1.id, &name).await.as_deref() == Some("installed")
    })
    .await;
    let sw = fx.get(&format!("/api/v1/devices/{}/software", n1.id)).await;
    assert_eq!(
        sw["items"][0]["drift_repairs"], 1,
        "an upgrade is not drift: {sw}"
    );
    assert_eq!(sw["items"][0]["version"], "2.0-1");

    // n2 leaves the group (its tag goes): uninstalled there, n1 keeps it.
    fx.post(
        "/api/v1/tags/remove",
        json!({"tags": ["web"], "device_ids": [n2.id]}),
    )
    .await;
    until("n2 to remove it", || async {
        n2.installed(&name).is_none()
            && fx.item_status(&n2.id, &name).await.as_deref() == Some("removed")
    })
    .await;
    assert_eq!(n1.installed(&name).as_deref(), Some("2.0-1"));

    // The assignment goes: uninstalled everywhere.
    let (s, v) = fx
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/assignments/{assignment}"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    until("n1 to remove it", || async {
        n1.installed(&name).is_none()
    })
    .await;
    assert_eq!(n3.installed(&name), None, "n3 never had it");
    drop((n1.agent, n2.agent, n3.agent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_holds_the_install_offline_agents_converge_and_a_killed_server_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fx = common::start(ServerOptions {
        data_dir: Some(dir.path().join("data")),
        extra_args: vec![
            "--reconcile-interval-secs".into(),
            "3".into(),
            "--enable-test-clock".into(),
        ],
        ..Default::default()
    })
    .await;
    let n1 = fx.node(dir.path(), "n1", true).await;
    let n2 = fx.node(dir.path(), "n2", true).await;
    // n3 is enrolled but offline.
    let mut n3 = fx.node(dir.path(), "n3", false).await;
    fx.post("/api/v1/groups", json!({"name": "office"})).await;
    fx.post(
        "/api/v1/groups/office/members",
        json!({"device_ids": [n1.id, n2.id, n3.id]}),
    )
    .await;
    // 2030-01-07 (a Monday) 20:00 UTC; the window opens at 22:00 UTC daily.
    let monday_20h: i64 = 1_894_046_400_000;
    let clock = |ms: i64| {
        let fx = &fx;
        async move {
            let (s, v) = fx
                .req(
                    reqwest::Method::PUT,
                    "/api/v1/system/clock",
                    Some(json!({"now_ms": ms})),
                )
                .await;
            assert_eq!(s, 204, "{v}");
        }
    };
    clock(monday_20h).await;
    fx.post(
        "/api/v1/maintenance-windows",
        json!({"name": "nightly", "timezone": "UTC", "groups": ["office"],
               "schedule": {"kind": "cron", "expression": "0 22 * * *", "duration_minutes": 180}}),
    )
    .await;
    let name = unique("win");
    fx.uploaded(&build_deb(dir.path(), &name, "1.0"), true)
        .await;
    let dep = fx
        .post(
            "/api/v1/deployments",
            json!({"name": "nightly install", "package": name,
                   "target": {"kind": "group", "id": "office"}, "intent": "required"}),
        )
        .await;
    let dep = dep["id"].as_str().unwrap().to_string();

    // Closed window: the agents report waiting and install nothing.
    until("n1 and n2 to wait for the window", || async {
        fx.item_status(&n1.id, &name).await.as_deref() == Some("waiting")
            && fx.item_status(&n2.id, &name).await.as_deref() == Some("waiting")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(n1.installed(&name), None, "nothing before the window");
    let sw = fx.get(&format!("/api/v1/devices/{}/software", n1.id)).await;
    assert!(
        sw["items"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("maintenance window")),
        "{sw}"
    );

    // The window opens: the online nodes install.
    clock(monday_20h + 2 * 3_600_000 + 60_000).await;
    until("n1 and n2 to install in the window", || async {
        n1.installed(&name).is_some() && n2.installed(&name).is_some()
    })
    .await;

    // The server dies hard mid-deployment (n3 still pending) and comes back; the test clock
    // starts over at the wall clock, so the window is ignored from here on by moving the
    // deployment's window policy out of the question: delete the window.
    let Fx { mut server, .. } = fx;
    server.kill();
    server.restart().await.expect("server restarts");
    let fx = connect(server).await;
    let (s, v) = fx
        .req(
            reqwest::Method::DELETE,
            "/api/v1/maintenance-windows/nightly",
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");

    // The offline node comes back and converges.
    n3.agent.start().await.expect("n3 starts");
    until("n3 to install after reconnecting", || async {
        n3.installed(&name).is_some()
            && fx.item_status(&n3.id, &name).await.as_deref() == Some("installed")
    })
    .await;
    let status = fx.get(&format!("/api/v1/deployments/{dep}/status")).await;
    assert_eq!(status["deployment"]["counts"]["installed"], 3, "{status}");
    assert_eq!(status["success_rate"], 1.0);
    // Nothing was installed twice: one "installing" per node in its history.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for n in [&n1, &n2, &n3] {
        let h = fx
            .get(&format!("/api/v1/devices/{}/software/{name}/history", n.id))
            .await;
        let installs = h
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] == "installing")
            .count();
        assert_eq!(installs, 1, "{h}");
    }
    // On the node: the agent's own view.
    let out = Command::new(capstan_testkit::bin_path("capstan-agent"))
        .args(["software", "available", "--state-dir"])
        .arg(n3.agent.state_dir())
        .output()
        .expect("capstan-agent software available");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(&name) && text.contains("required") && text.contains("installed"),
        "{text}"
    );

    // Someone on the node installs an available package with the agent's own command.
    let extra = unique("avail");
    fx.uploaded(&build_deb(dir.path(), &extra, "0.5"), true)
        .await;
    fx.post(
        "/api/v1/assignments",
        json!({"package": extra, "target": {"kind": "device", "id": n3.id}, "intent": "available"}),
    )
    .await;
    until("n3 to offer it", || async {
        fx.item_status(&n3.id, &extra).await.as_deref() == Some("available")
    })
    .await;
    assert_eq!(
        n3.installed(&extra),
        None,
        "available is not installed by itself"
    );
    let out = Command::new(capstan_testkit::bin_path("capstan-agent"))
        .args(["software", "install", &extra, "--state-dir"])
        .arg(n3.agent.state_dir())
        .output()
        .expect("capstan-agent software install");
    assert!(out.status.success(), "{out:?}");
    until("n3 to install what was asked for", || async {
        n3.installed(&extra).as_deref() == Some("0.5")
    })
    .await;
    // Asking for something not offered is refused on the node.
    let out = Command::new(capstan_testkit::bin_path("capstan-agent"))
        .args(["software", "install", "no-such-package", "--state-dir"])
        .arg(n3.agent.state_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not offered"));
}

/// A `.deb` of about `kib` KiB of incompressible data.
fn big_deb(dir: &Path, name: &str, version: &str, kib: usize) -> PathBuf {
    let root = dir.join(format!("{name}-{version}"));
    let share = root.join("usr/share").join(name);
    std::fs::create_dir_all(&share).unwrap();
    let out = sh(&format!(
        "head -c {} /dev/urandom > {}/blob",
        kib * 1024,
        share.display()
    ));
    assert!(out.status.success());
    build_deb(dir, name, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policies_limit_the_rate_report_progress_and_wait_on_metered_links() {
    let fx = common::start(ServerOptions {
        extra_args: vec!["--reconcile-interval-secs".into(), "2".into()],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let slow = fx.node(dir.path(), "slow", true).await;
    // A node on a metered link (simulated through the agent's test override).
    let root = dpkg_root(dir.path(), "metered");
    let v = fx
        .post("/api/v1/enrollment-tokens", json!({"name": "metered"}))
        .await;
    let fp = fx.server.fingerprint();
    let mut agent = AgentProcess::enroll(
        fx.server.url(),
        fp.as_deref(),
        v["token"].as_str().unwrap(),
        None,
    )
    .await
    .expect("enroll");
    agent.env("DPKG_ROOT", root.display().to_string());
    agent.env("CAPSTAN_TEST_METERED", "yes");
    agent.start().await.expect("agent starts");
    let metered = Node {
        id: agent.device_id().unwrap(),
        agent,
        root,
    };

    let name = unique("net");
    // ~400 KiB at 96 KiB/s: about four seconds of downloading.
    fx.uploaded(&big_deb(dir.path(), &name, "1.0", 400), true)
        .await;
    for (node, label) in [(&slow, "slow"), (&metered, "metered")] {
        fx.post(
            "/api/v1/deployments",
            json!({"name": format!("{name}-{label}"), "package": name,
                   "target": {"kind": "device", "id": node.id}, "intent": "required",
                   "network": {"max_bytes_per_sec": 98_304, "skip_metered": true}}),
        )
        .await;
    }
    // The slow node is seen downloading with progress, then installs.
    let started = std::time::Instant::now();
    wait_until(
        "the slow node to report download progress",
        PATIENCE,
        || async {
            let sw = fx
                .get(&format!("/api/v1/devices/{}/software", slow.id))
                .await;
            let item = &sw["items"][0];
            anyhow::Ok(
                (item["status"] == "downloading" && item["progress"]["total"].as_u64() > Some(0))
                    .then_some(()),
            )
        },
    )
    .await
    .unwrap();
    until("the slow node to install", || async {
        slow.installed(&name).is_some()
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "400 KiB at 96 KiB/s took only {:?}",
        started.elapsed()
    );
    // The metered node waits and says why; nothing is downloaded or installed.
    until("the metered node to wait", || async {
        let sw = fx
            .get(&format!("/api/v1/devices/{}/software", metered.id))
            .await;
        sw["items"][0]["status"] == "waiting"
            && sw["items"][0]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("metered"))
    })
    .await;
    assert_eq!(metered.installed(&name), None);

    // Only from site sources, and no source serves the node: a clear failure, nothing done.
    let (s, v) = fx
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/deployments/{name}-metered"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    fx.post(
        "/api/v1/deployments",
        json!({"name": format!("{name}-site"), "package": name,
               "target": {"kind": "device", "id": metered.id}, "intent": "required",
               "network": {"site_sources_only": true}}),
    )
    .await;
    until(
        "the site-only deployment to fail with its reason",
        || async {
            let sw = fx
                .get(&format!("/api/v1/devices/{}/software", metered.id))
                .await;
            sw["items"][0]["status"] == "failed"
                && sw["items"][0]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("only from site sources"))
        },
    )
    .await;
    assert_eq!(metered.installed(&name), None);
    drop((slow.agent, metered.agent));
}

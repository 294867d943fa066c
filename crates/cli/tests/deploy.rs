//! `capstan assign`, `assignments`, `deployments`, `windows` and `devices software…` end to
//! end: the real `capstan` binary against the real server router and its deployment
//! controller, in-process on a loopback port over a fresh SQLite database. Devices are enrolled
//! through the agent API and report item statuses as an agent would (fetch the signed
//! manifest, report against its revision), so status, watch and history show real data.

use std::time::{Duration, Instant};

use capstan_client::agent::AgentClient;
use capstan_client::tls::ClientOptions;
use capstan_proto::agent::{DeviceIdentity, EnrollRequest};
use capstan_proto::api::{CreateEnrollmentTokenRequest, CreateGroupRequest, MembershipChange};
use capstan_proto::deploy::{
    AssignmentInfo, DeploymentInfo, DeploymentStatus, DeviceSoftwareState, ItemHistoryEntry,
    ItemReport, ItemStatus, ManifestPayload, ManifestReport, Progress, WindowInfo,
};
use capstan_proto::software::{CreatePackageRequest, CreateVersionRequest};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

mod common;
use common::{Server, has_line, stderr, stdout};

async fn start() -> Server {
    // The controller compiles manifests after every change, as in the real server.
    common::start_with(
        |_| {},
        |state| {
            tokio::spawn(capstan_server::deploy::run_controller(state));
        },
    )
    .await
}

/// An enrolled device and its agent's client.
struct Node {
    id: String,
    agent: AgentClient,
}

impl Node {
    /// The manifest the agent would fetch, once it names `package`.
    async fn manifest_with(&self, package: &str) -> ManifestPayload {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(signed) = self.agent.manifest().await.unwrap() {
                let m: ManifestPayload = serde_json::from_str(&signed.payload).unwrap();
                if m.items.iter().any(|i| i.package_name == package) {
                    return m;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no manifest naming {package} for {}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Report `package` in `status`, as the agent reconciling its manifest would.
    async fn report(
        &self,
        package: &str,
        status: ItemStatus,
        exit_code: Option<i32>,
        detail: &str,
    ) {
        let m = self.manifest_with(package).await;
        let Some(item) = m.items.iter().find(|i| i.package_name == package) else {
            unreachable!("manifest_with returns a manifest naming the package");
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        self.agent
            .report_items(&ManifestReport {
                revision: m.revision,
                items: vec![ItemReport {
                    package_id: item.package_id.clone(),
                    version: item.version.clone(),
                    status,
                    detail: (!detail.is_empty()).then(|| detail.to_string()),
                    exit_code,
                    log: (status == ItemStatus::Failed)
                        .then(|| format!("E: {package} could not be configured")),
                    progress: (status == ItemStatus::Downloading).then_some(Progress {
                        received: 1,
                        total: 4,
                    }),
                    drift: false,
                    at_ms: now,
                }],
                complete: status != ItemStatus::Downloading,
            })
            .await
            .unwrap();
    }
}

impl Server {
    async fn fails(&self, args: &[&str], exit: i32) -> String {
        let out = self.capstan(args).await;
        assert_eq!(
            out.status.code(),
            Some(exit),
            "capstan {args:?}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
        stderr(&out)
    }

    /// A package with apt versions (no artifacts: the package manager fetches them).
    async fn package(&self, name: &str, versions: &[&str]) {
        self.api
            .create_package(&CreatePackageRequest {
                name: name.into(),
                display_name: None,
                publisher: None,
                description: None,
            })
            .await
            .unwrap();
        for v in versions {
            let req: CreateVersionRequest = serde_json::from_value(json!({
                "version": v,
                "spec": {
                    "installer_type": "package_manager",
                    "manager_package": {"manager": "apt", "name": name},
                    "detection": {"type": "package", "manager": "dpkg", "name": name}
                }
            }))
            .unwrap();
            self.api.create_version(name, &req).await.unwrap();
        }
    }

    async fn node(&self, hostname: &str, key: u8) -> Node {
        let token = self
            .api
            .create_enrollment_token(&CreateEnrollmentTokenRequest {
                name: format!("cli deploy tests {hostname}"),
                expires_in_secs: None,
                max_uses: None,
                default_tags: vec![],
            })
            .await
            .unwrap()
            .token;
        let agent = AgentClient::new(&self.url, &ClientOptions::default()).unwrap();
        let enrolled = agent
            .enroll(&EnrollRequest {
                token,
                identity: DeviceIdentity {
                    identity_key: format!("{key:02x}").repeat(32),
                    source: "instance".into(),
                },
                hostname: hostname.into(),
                agent_version: "0.1.0".into(),
                os_family: "linux".into(),
                capabilities: vec![],
            })
            .await
            .unwrap();
        Node {
            id: enrolled.device_id,
            agent: agent.with_device_token(enrolled.device_token),
        }
    }

    async fn group(&self, name: &str, members: &[&Node]) {
        let req: CreateGroupRequest = serde_json::from_value(json!({"name": name})).unwrap();
        self.api.create_group(&req).await.unwrap();
        if !members.is_empty() {
            self.api
                .change_group_members(
                    name,
                    &MembershipChange {
                        device_ids: Some(members.iter().map(|n| n.id.clone()).collect()),
                        filter: None,
                    },
                    true,
                )
                .await
                .unwrap();
        }
    }

    /// The deployment's status once `done` holds (the controller and reports are
    /// asynchronous).
    async fn status_when(
        &self,
        deployment: &str,
        done: impl Fn(&DeploymentStatus) -> bool,
    ) -> DeploymentStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let st = self.api.deployment_status(deployment, None).await.unwrap();
            if done(&st) {
                return st;
            }
            assert!(Instant::now() < deadline, "status never got there: {st:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_list_show_and_remove() {
    let s = start().await;
    s.package("nginx-cli", &["1.0", "1.2"]).await;
    let web1 = s.node("web-01", 1).await;
    s.group("web", &[&web1]).await;
    s.group("db", &[]).await;

    // The user story: a table with what "latest" resolves to and whom it reaches.
    let text = s
        .ok(&[
            "assign",
            "nginx-cli",
            "--group",
            "web",
            "--intent",
            "required",
        ])
        .await;
    for want in [
        "Package: nginx-cli",
        "Version: latest (now 1.2)",
        "Reaches: 1 device(s) now (members of web and its descendant groups)",
        "Intent: required: installed and kept installed (drift is repaired)",
        "On removal: devices it reaches uninstall nginx-cli (what Capstan installed for it)",
    ] {
        let found = text.lines().any(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .starts_with(want)
        });
        assert!(found, "missing {want:?} in:\n{text}");
    }
    let by_group: Vec<AssignmentInfo> = s.json(&["assignments", "list", "--group", "web"]).await;
    assert_eq!(by_group.len(), 1);
    let group_assignment = by_group[0].id.clone();
    assert_eq!(by_group[0].intent.as_str(), "required");
    assert_eq!(by_group[0].version, None);

    // A pinned, available one straight to the device, leaving software installed.
    let direct: AssignmentInfo = s
        .json(&[
            "assign",
            "nginx-cli@1.0",
            "--device",
            &web1.id,
            "--intent",
            "available",
            "--leave-installed",
        ])
        .await;
    assert_eq!(direct.version.as_deref(), Some("1.0"));
    assert_eq!(direct.target_name, "web-01");
    assert!(direct.leave_installed);

    // The server's refusals, with its message and a non-zero exit.
    let err = s.fails(&["assign", "nginx-cli", "--group", "web"], 1).await;
    assert!(
        err.contains("already has assignment") && err.ends_with("(conflict)\n"),
        "{err}"
    );
    let err = s
        .fails(
            &[
                "assign",
                "nginx-cli",
                "--group",
                "db",
                "--intent",
                "uninstall",
                "--leave-installed",
            ],
            1,
        )
        .await;
    assert!(
        err.contains("an uninstall assignment installs nothing to leave behind")
            && err.ends_with("(validation_failed)\n"),
        "{err}"
    );
    let err = s
        .fails(&["assign", "no-such-pkg", "--group", "web"], 1)
        .await;
    assert!(err.contains("there is no package"), "{err}");
    // Refused by the grammar: both targets.
    let out = s
        .capstan(&[
            "assign",
            "nginx-cli",
            "--group",
            "web",
            "--device",
            &web1.id,
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));

    let reaching: Vec<AssignmentInfo> =
        s.json(&["assignments", "list", "--device", &web1.id]).await;
    assert_eq!(reaching.len(), 2, "through the group and directly");
    let table = s
        .ok(&["assignments", "list", "--package", "nginx-cli"])
        .await;
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains(&direct.id) && l.contains("leave installed")),
        "{table}"
    );
    let show = s.ok(&["assignments", "show", &direct.id]).await;
    assert!(has_line(&show, "Version: 1.0"), "{show}");
    assert!(
        has_line(
            &show,
            "On removal: nginx-cli stays installed where it is (leave installed)"
        ),
        "{show}"
    );

    // The device sees both, and the conflict between them with the rule that decided.
    let deadline = Instant::now() + Duration::from_secs(15);
    let state = loop {
        let st: DeviceSoftwareState = s.json(&["devices", "software", &web1.id]).await;
        if !st.items.is_empty() {
            break st;
        }
        assert!(Instant::now() < deadline, "never compiled: {st:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state.assignments.len(), 2);
    assert_eq!(state.conflicts.len(), 1, "{state:?}");
    assert_eq!(
        state.conflicts[0].winner, direct.id,
        "the device's own wins"
    );
    assert_eq!(state.conflicts[0].loser, group_assignment);
    let text = s.ok(&["devices", "software", &web1.id]).await;
    assert!(text.contains("\nConflicts:\n"), "{text}");
    assert!(
        text.contains("because an assignment to the device beats one through a group"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("nginx-cli") && l.contains(" 1.0 ") && l.contains("available")),
        "{text}"
    );

    // Offered to the device, so it can be installed on request; not to an unknown package.
    let out = s
        .capstan(&["devices", "software-install", &web1.id, "nginx-cli"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(&format!(
            "Install of nginx-cli requested on device {}",
            web1.id
        )),
        "{}",
        stderr(&out)
    );
    s.fails(&["devices", "software-install", &web1.id, "no-such-pkg"], 5)
        .await;

    // Removing wants confirmation without a terminal; --yes removes and says what follows.
    let err = s
        .fails(&["assignments", "remove", &group_assignment], 1)
        .await;
    assert!(err.contains("(confirmation_required)"), "{err}");
    let out = s
        .capstan(&["assignments", "remove", &group_assignment, "--yes"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "Assignment {group_assignment} removed: devices it reaches uninstall nginx-cli (what Capstan installed for it).\n"
        )
    );
    let left: Vec<AssignmentInfo> = s.json(&["assignments", "list"]).await;
    assert_eq!(
        left.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [direct.id.as_str()]
    );
    s.fails(&["assignments", "show", &group_assignment], 5)
        .await;
    s.fails(&["assignments", "remove", &group_assignment, "--yes"], 5)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_schedule_status_watch_pause_resume_delete() {
    let s = start().await;
    s.package("nginx-cli", &["1.0"]).await;
    s.package("hello-cli", &["2.0"]).await;
    let web1 = s.node("web-01", 1).await;
    let web2 = s.node("web-02", 2).await;
    s.group("web", &[&web1, &web2]).await;

    // Scheduled: nothing may happen before 2030, so both devices wait.
    let d: DeploymentInfo = s
        .json(&[
            "deployments",
            "create",
            "nginx-later",
            "nginx-cli@1.0",
            "--group",
            "web",
            "--available-from",
            "2030-01-01T01:00+01:00",
            "--max-rate",
            "10MiB/s",
            "--skip-metered",
            "--description",
            "next year",
        ])
        .await;
    assert_eq!(d.available_from_ms, Some(1_893_456_000_000));
    assert_eq!(d.network.max_bytes_per_sec, Some(10 << 20));
    assert!(d.network.skip_metered && !d.network.site_sources_only);
    assert_eq!(d.assignment.version.as_deref(), Some("1.0"));
    let show = s.ok(&["deployments", "show", "nginx-later"]).await;
    assert!(
        show.lines().any(|l| l
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .starts_with("State: scheduled: starts 2030-01-01T00:00:00Z")),
        "{show}"
    );
    assert!(
        has_line(&show, "Download limit: 10.0 MiB/s per device"),
        "{show}"
    );
    let st = s
        .status_when("nginx-later", |st| st.deployment.counts.total == 2)
        .await;
    assert_eq!(st.deployment.counts.waiting, 2, "{st:?}");
    let text = s.ok(&["deployments", "status", "nginx-later"]).await;
    assert!(has_line(&text, "Devices: 2: 2 waiting"), "{text}");
    assert!(
        has_line(&text, "Success rate: - (no device has finished yet)"),
        "{text}"
    );

    // At once: one device installs, the other fails with an exit code.
    s.ok(&[
        "deployments",
        "create",
        "hello-now",
        "hello-cli",
        "--group",
        "web",
        "--ignore-windows",
    ])
    .await;
    web1.report("hello-cli", ItemStatus::Installed, None, "")
        .await;
    web2.report(
        "hello-cli",
        ItemStatus::Failed,
        Some(100),
        "dpkg: error processing package hello-cli",
    )
    .await;
    s.status_when("hello-now", |st| st.deployment.counts.failed == 1)
        .await;
    let list = s.ok(&["deployments", "list"]).await;
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.iter().any(|r| r.first() == Some(&"nginx-later")
            && r.contains(&"starts")
            && r.ends_with(&["2", "0", "0"])),
        "{list}"
    );
    assert!(
        rows.iter().any(|r| r.first() == Some(&"hello-now")
            && r.contains(&"active")
            && r.ends_with(&["2", "2", "1"])),
        "{list}"
    );
    let st: DeploymentStatus = s.json(&["deployments", "status", "hello-now"]).await;
    assert_eq!(st.success_rate, Some(0.5));
    assert_eq!(st.failures_by_exit_code[0].exit_code, Some(100));
    assert_eq!(st.devices[0].hostname, "web-02", "failed first");
    let text = s.ok(&["deployments", "status", "hello-now"]).await;
    assert!(
        has_line(&text, "Success rate: 50.0% (1 of 2 finished device(s))"),
        "{text}"
    );
    assert!(
        has_line(&text, "100 1 dpkg: error processing package hello-cli"),
        "{text}"
    );
    let first_device = text
        .lines()
        .skip_while(|l| !l.starts_with("HOSTNAME"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        first_device.starts_with("web-02") && first_device.contains("[!!] failed"),
        "{text}"
    );
    let limited: DeploymentStatus = s
        .json(&["deployments", "status", "hello-now", "--limit", "1"])
        .await;
    assert_eq!(limited.devices.len(), 1);

    // Watching a finished deployment: a line per device, the summary, exit 6 for the failure.
    let out = s.capstan(&["deployments", "watch", "hello-now"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(6), "{text}\n{}", stderr(&out));
    assert_eq!(
        text,
        "web-02: failed 2.0 (exit 100): dpkg: error processing package hello-cli\n\
         web-01: installed 2.0\n\
         Done: 2 device(s): 1 installed, 1 failed (deployment hello-now, success 50.0%).\n"
    );
    assert!(
        stderr(&out).ends_with("(devices_failed)\n"),
        "{}",
        stderr(&out)
    );
    let out = s
        .capstan(&["deployments", "watch", "hello-now", "-o", "json"])
        .await;
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", stdout(&out));
    assert_eq!(lines[0]["type"], "device");
    assert_eq!(lines[0]["status"], "failed");
    assert_eq!(lines[0]["exit_code"], 100);
    assert_eq!(lines[2]["type"], "summary");
    assert_eq!(lines[2]["complete"], true);
    assert_eq!(lines[2]["counts"]["installed"], 1);

    // History of the failed device, with the installer log on request.
    let history: Vec<ItemHistoryEntry> = s
        .json(&["devices", "software-history", &web2.id, "hello-cli"])
        .await;
    assert_eq!(history[0].status, ItemStatus::Failed);
    let text = s
        .ok(&[
            "devices",
            "software-history",
            &web2.id,
            "hello-cli",
            "--logs",
        ])
        .await;
    assert!(text.contains("[!!] failed"), "{text}");
    assert!(
        text.contains("\n    E: hello-cli could not be configured\n"),
        "{text}"
    );

    // Pause and resume answer with the deployment; the note goes to standard error.
    let out = s
        .capstan(&["deployments", "pause", "hello-now", "-o", "json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let paused: DeploymentInfo = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(paused.paused);
    assert!(stderr(&out).contains("paused"), "{}", stderr(&out));
    let show = s.ok(&["deployments", "show", "hello-now"]).await;
    assert!(
        has_line(
            &show,
            "State: paused: devices keep what they have until it is resumed"
        ),
        "{show}"
    );
    let resumed: DeploymentInfo = s.json(&["deployments", "resume", "hello-now"]).await;
    assert!(!resumed.paused);

    // Bad input: the server's reasons, and the CLI's own before anything is sent.
    let err = s
        .fails(
            &[
                "deployments",
                "create",
                "bad",
                "nginx-cli",
                "--group",
                "web",
                "--deadline",
                "2030-01-01T00:00Z",
                "--max-rate",
                "512B/s",
            ],
            1,
        )
        .await;
    assert!(
        err.contains("a deadline turns an available deployment into a required one")
            && err.contains("at least 1024 bytes per second"),
        "{err}"
    );
    let out = s
        .capstan(&[
            "deployments",
            "create",
            "bad",
            "nginx-cli",
            "--group",
            "web",
            "--available-from",
            "2030-01-01T00:00",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no UTC offset"), "{}", stderr(&out));
    assert_eq!(
        s.api.list_deployments().await.unwrap().len(),
        2,
        "nothing was created"
    );

    // Deleting wants confirmation; by name, then it is gone.
    let err = s.fails(&["deployments", "delete", "nginx-later"], 1).await;
    assert!(err.contains("(confirmation_required)"), "{err}");
    let out = s
        .capstan(&["deployments", "delete", "nginx-later", "--yes"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("Deployment nginx-later deleted: devices it reaches uninstall"),
        "{}",
        stderr(&out)
    );
    s.fails(&["deployments", "show", "nginx-later"], 5).await;
    s.fails(&["deployments", "status", "nginx-later"], 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_each_change_until_every_device_is_done() {
    let s = start().await;
    s.package("live-cli", &["3.1"]).await;
    let web1 = s.node("web-01", 1).await;
    let web2 = s.node("web-02", 2).await;
    s.group("web", &[&web1, &web2]).await;
    s.ok(&[
        "deployments",
        "create",
        "live",
        "live-cli",
        "--group",
        "web",
    ])
    .await;
    s.status_when("live", |st| st.deployment.counts.planned == 2)
        .await;

    let child = s
        .command(&["deployments", "watch", "live"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    web1.report("live-cli", ItemStatus::Downloading, None, "")
        .await;
    web2.report("live-cli", ItemStatus::Installing, None, "")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    web1.report("live-cli", ItemStatus::Installed, None, "")
        .await;
    web2.report("live-cli", ItemStatus::Installed, None, "")
        .await;
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("watch ends once every device is done")
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let web1_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("web-01:")).collect();
    assert_eq!(
        web1_lines,
        [
            "web-01: planned 3.1",
            "web-01: downloading 3.1",
            "web-01: installed 3.1"
        ],
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "web-02: installing 3.1"),
        "{text}"
    );
    assert_eq!(
        text.lines().last(),
        Some("Done: 2 device(s): 2 installed (deployment live, success 100.0%)."),
        "{text}"
    );
    assert!(
        stderr(&out).starts_with("Watching deployment live;"),
        "{}",
        stderr(&out)
    );

    // Required, not offered: there is nothing to request.
    let err = s
        .fails(&["devices", "software-install", &web2.id, "live-cli"], 5)
        .await;
    assert!(err.contains("is not available to this device"), "{err}");

    // Devices that wait for a schedule never finish: Ctrl-C stops watching, not the
    // deployment, with the last counts and exit status 130.
    s.package("later-cli", &["1"]).await;
    s.ok(&[
        "deployments",
        "create",
        "later",
        "later-cli",
        "--group",
        "web",
        "--available-from",
        "2030-01-01T00:00Z",
    ])
    .await;
    s.status_when("later", |st| st.deployment.counts.waiting == 2)
        .await;
    let mut child = s
        .command(&["deployments", "watch", "later"])
        .spawn()
        .unwrap();
    // Interrupt only once it watches (its Ctrl-C handler is in place by then).
    let mut errors = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = errors.next_line().await.unwrap().unwrap_or_default();
    assert!(first.starts_with("Watching deployment later;"), "{first}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().expect("watch is running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("Ctrl-C ends the watch")
        .unwrap();
    let mut rest = String::new();
    while let Some(line) = errors.next_line().await.unwrap() {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert_eq!(out.status.code(), Some(130), "{rest}");
    assert_eq!(
        stdout(&out).lines().last(),
        Some("Stopped: 2 device(s): 2 waiting (deployment later)."),
        "{}",
        stdout(&out)
    );
    assert!(rest.ends_with("(interrupted)\n"), "{rest}");
    assert!(!s.api.get_deployment("later").await.unwrap().paused);

    // A deployment that reaches no device ends the watch after a few seconds.
    s.group("empty", &[]).await;
    s.ok(&[
        "deployments",
        "create",
        "none",
        "later-cli",
        "--group",
        "empty",
    ])
    .await;
    let started = Instant::now();
    let text = s.ok(&["deployments", "watch", "none"]).await;
    assert_eq!(text, "Done: 0 device(s): no devices (deployment none).\n");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_windows_create_list_and_delete() {
    let s = start().await;
    s.group("web", &[]).await;
    s.group("db", &[]).await;

    let w: WindowInfo = s
        .json(&[
            "windows",
            "create",
            "nightly",
            "--groups",
            "web,db",
            "--weekly",
            "mon-fri",
            "--start",
            "22:00",
            "--duration",
            "2h",
            "--timezone",
            "Europe/Berlin",
        ])
        .await;
    let Value::Object(schedule) = serde_json::to_value(&w.schedule).unwrap() else {
        panic!("schedule is an object");
    };
    assert_eq!(
        Value::Object(schedule),
        json!({"kind": "weekly", "days": ["mon", "tue", "wed", "thu", "fri"],
               "start": "22:00", "duration_minutes": 120})
    );
    assert!(w.next_open_ms.is_some());
    let mut groups: Vec<&str> = w.groups.iter().map(|g| g.name.as_str()).collect();
    groups.sort();
    assert_eq!(groups, ["db", "web"]);
    let text = s
        .ok(&[
            "maintenance-windows",
            "create",
            "sunday",
            "--groups",
            "web",
            "--cron",
            "0 3 * * sun",
            "--duration",
            "4h30m",
            "--timezone",
            "device",
        ])
        .await;
    assert!(
        has_line(&text, "Schedule: cron \"0 3 * * sun\" for 4h30m"),
        "{text}"
    );
    assert!(
        has_line(&text, "Next open: per device (each device's own zone)"),
        "{text}"
    );

    let list = s.ok(&["windows", "list"]).await;
    let names: Vec<&str> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(
        names.contains(&"nightly") && names.contains(&"sunday"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("nightly") && l.contains("mon-fri at 22:00 for 2h")),
        "{list}"
    );
    let json: Vec<WindowInfo> = s.json(&["windows", "list"]).await;
    assert_eq!(json.len(), 2);

    // Every problem the server finds, at once, and nothing saved.
    let err = s
        .fails(
            &[
                "windows",
                "create",
                "bad",
                "--groups",
                "nosuch",
                "--cron",
                "0 25 * * *",
                "--duration",
                "1h",
                "--timezone",
                "Mars/Olympus",
            ],
            1,
        )
        .await;
    assert!(
        err.contains("there is no group \"nosuch\"") && err.contains("(validation_failed)"),
        "{err}"
    );
    assert!(err.contains("/timezone"), "{err}");
    assert_eq!(s.api.list_windows().await.unwrap().len(), 2);
    // The CLI's own checks are usage errors.
    let out = s
        .capstan(&[
            "windows",
            "create",
            "bad",
            "--groups",
            "web",
            "--weekly",
            "funday",
            "--start",
            "22:00",
            "--duration",
            "1h",
            "--timezone",
            "UTC",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown day \"funday\""),
        "{}",
        stderr(&out)
    );

    let err = s.fails(&["windows", "delete", "nightly"], 1).await;
    assert!(err.contains("(confirmation_required)"), "{err}");
    let out = s.capstan(&["windows", "delete", "nightly", "--yes"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "Maintenance window nightly deleted.\n");
    s.fails(&["windows", "show", "nightly"], 5).await;
    let left: Vec<WindowInfo> = s.json(&["windows", "list"]).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, "sunday");
}

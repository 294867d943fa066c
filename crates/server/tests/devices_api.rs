//! The device list's OS and hardware-model filters, the fleet summary that feeds the dashboard
//! (its values must open exactly the devices it counted), live presence events
//! (`device.online` / `device.offline`) and the failed-jobs filter of the job list, through the
//! real router. Runs on SQLite and (with `CAPSTAN_API_TEST_DB=postgres`) on PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use capstan_proto::agent::InventoryUpload;
use capstan_proto::inventory::{
    Hardware, INVENTORY_SCHEMA_VERSION, InventoryDocument, OperatingSystem, SystemInfo,
};
use common::{T, assert_error, setup, setup_with};
use http_body_util::BodyExt;
use serde_json::{Value, json};

const GET: Method = Method::GET;
const POST: Method = Method::POST;

/// One device of the fixture fleet: identity, OS name and version, system manufacturer and
/// product as the agent reports them (untrimmed on purpose).
type Spec = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const FLEET: &[Spec] = &[
    (
        "deb12-a",
        Some("Debian GNU/Linux"),
        Some("12"),
        Some("LENOVO"),
        Some("20XW0055GE"),
    ),
    (
        "deb12-b",
        Some("Debian GNU/Linux"),
        Some("12"),
        Some("LENOVO "),
        Some(" 20XW0055GE"),
    ),
    (
        "deb11",
        Some("Debian GNU/Linux"),
        Some("11"),
        Some("Dell Inc."),
        Some("OptiPlex 7090"),
    ),
    (
        "ubuntu",
        Some("Ubuntu"),
        Some("24.04"),
        Some("Dell Inc."),
        Some("OptiPlex 7090"),
    ),
    ("noversion", Some("Arch Linux"), None, None, Some("Virtual")),
    ("blank-hw", Some("Ubuntu"), Some("24.04"), Some("  "), None),
    // Never sends an inventory: no OS name, no model.
    ("bare", None, None, None, None),
];

fn doc(hostname: &str, s: &Spec) -> InventoryDocument {
    InventoryDocument {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at_ms: 1,
        os: Some(OperatingSystem {
            family: "linux".into(),
            hostname: hostname.into(),
            name: s.1.map(Into::into),
            version_id: s.2.map(Into::into),
            ..Default::default()
        }),
        hardware: Some(Hardware {
            system: Some(SystemInfo {
                manufacturer: s.3.map(Into::into),
                product: s.4.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl T {
    async fn upload_inventory(&self, device_token: &str, d: InventoryDocument) {
        let digest = capstan_core::inventory::digest(&d);
        let body = serde_json::to_value(InventoryUpload {
            digest,
            document: d,
        })
        .unwrap();
        let (s, v) = self
            .call(
                Method::PUT,
                "/agent/v1/inventory",
                Some(device_token),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    async fn checkin(&self, device_token: &str) -> Value {
        let (s, v) = self
            .call(
                POST,
                "/agent/v1/checkin",
                Some(device_token),
                Some(json!({"agent_version": "0.1.0", "capabilities": ["jobs"]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Enroll the fixture fleet and send each inventory; (identity, device id, token) in order.
    async fn fleet(&self, admin: &str, specs: &[Spec]) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for s in specs {
            let (id, tok) = self.device(admin, s.0).await;
            if s.1.is_some() {
                self.upload_inventory(&tok, doc(&format!("host-{}", s.0), s))
                    .await;
            }
            out.push((s.0.to_string(), id, tok));
        }
        out
    }

    /// Sorted hostnames of the device list for `query` (already URL-encoded).
    async fn hostnames(&self, token: &str, query: &str) -> Vec<String> {
        let v = self
            .ok(
                StatusCode::OK,
                GET,
                &format!("/api/v1/devices?limit=1000&{query}"),
                token,
                None,
            )
            .await;
        let mut names: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["hostname"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        assert_eq!(v["total"], names.len(), "{v}");
        names
    }
}

/// Percent-encode a query value (everything but unreserved characters).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn hosts(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|i| format!("host-{i}")).collect();
    v.sort();
    v
}

#[tokio::test]
async fn os_and_model_filters_match_exactly_and_combine_with_the_others() {
    let t = setup().await;
    let admin = t.admin().await;
    t.fleet(&admin, FLEET).await;
    let cases: &[(&str, &[&str])] = &[
        // The OS name alone: every version.
        ("os=Debian%20GNU%2FLinux", &["deb12-a", "deb12-b", "deb11"]),
        // Name and version.
        ("os=Debian%20GNU%2FLinux%2012", &["deb12-a", "deb12-b"]),
        ("os=Debian%20GNU%2FLinux%2011", &["deb11"]),
        // Without a version the name is the whole label.
        ("os=Arch%20Linux", &["noversion"]),
        // Exact, not a substring or case-insensitive match.
        ("os=Debian", &[]),
        ("os=debian%20gnu%2Flinux", &[]),
        // Vendor and model, trimmed and joined by one space.
        ("model=LENOVO%2020XW0055GE", &["deb12-a", "deb12-b"]),
        ("model=Dell%20Inc.%20OptiPlex%207090", &["deb11", "ubuntu"]),
        ("model=Virtual", &["noversion"]),
        ("model=LENOVO", &[]),
        // Combined with each other and with the existing filters.
        ("os=Ubuntu&model=Dell%20Inc.%20OptiPlex%207090", &["ubuntu"]),
        ("os=Ubuntu%2024.04", &["ubuntu", "blank-hw"]),
        ("os=Ubuntu&search=blank", &["blank-hw"]),
        // Empty values filter nothing.
        (
            "os=&model=",
            &[
                "deb12-a",
                "deb12-b",
                "deb11",
                "ubuntu",
                "noversion",
                "blank-hw",
                "bare",
            ],
        ),
    ];
    for (query, want) in cases {
        assert_eq!(t.hostnames(&admin, query).await, hosts(want), "{query}");
    }

    // A tag narrows an OS filter (both apply).
    let ids: Vec<String> = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/devices?search=deb12-a",
            &admin,
            None,
        )
        .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    t.ok(
        StatusCode::OK,
        POST,
        "/api/v1/tags/add",
        &admin,
        Some(json!({"tags": ["pilot"], "device_ids": ids})),
    )
    .await;
    assert_eq!(
        t.hostnames(&admin, "os=Debian%20GNU%2FLinux&tag=pilot")
            .await,
        hosts(&["deb12-a"])
    );

    // The same filters apply to a group's member list.
    let g = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "all"})),
        )
        .await;
    let all: Vec<String> = t
        .ok(StatusCode::OK, GET, "/api/v1/devices", &admin, None)
        .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let gid = g["id"].as_str().unwrap();
    t.ok(
        StatusCode::OK,
        POST,
        &format!("/api/v1/groups/{gid}/members"),
        &admin,
        Some(json!({"device_ids": all})),
    )
    .await;
    let members = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/groups/{gid}/members?model=Virtual"),
            &admin,
            None,
        )
        .await;
    assert_eq!(members["total"], 1, "{members}");

    let long = "x".repeat(513);
    for q in [format!("os={long}"), format!("model={long}")] {
        let r = t
            .call(GET, &format!("/api/v1/devices?{q}"), Some(&admin), None)
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    }
}

#[tokio::test]
async fn the_summary_counts_in_sql_and_each_value_opens_its_devices() {
    let t = setup_with(|c| c.checkin_interval_secs = 60).await;
    let admin = t.admin().await;
    let viewer = t.user(&admin, "viewer", "viewer").await;
    let empty = t
        .ok(StatusCode::OK, GET, "/api/v1/devices/summary", &admin, None)
        .await;
    assert_eq!(
        empty,
        json!({"total": 0, "online": 0, "offline": 0,
               "os": {"top": [], "other": 0, "unknown": 0},
               "model": {"top": [], "other": 0, "unknown": 0}})
    );

    let devices = t.fleet(&admin, FLEET).await;
    // Two devices have not been seen for a day: offline.
    let day_ago = capstan_server::state::now_ms() - 86_400_000;
    for (identity, id, _) in &devices {
        if identity == "deb11" || identity == "bare" {
            set_last_seen(&t, id, day_ago).await;
        }
    }
    let s = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/devices/summary",
            &viewer,
            None,
        )
        .await;
    assert_eq!(
        (&s["total"], &s["online"], &s["offline"]),
        (&json!(7), &json!(5), &json!(2)),
        "{s}"
    );
    assert_eq!(
        s["os"],
        json!({"top": [
            {"value": "Debian GNU/Linux 12", "count": 2},
            {"value": "Ubuntu 24.04", "count": 2},
            {"value": "Arch Linux", "count": 1},
            {"value": "Debian GNU/Linux 11", "count": 1},
        ], "other": 0, "unknown": 1})
    );
    assert_eq!(
        s["model"],
        json!({"top": [
            {"value": "Dell Inc. OptiPlex 7090", "count": 2},
            {"value": "LENOVO 20XW0055GE", "count": 2},
            {"value": "Virtual", "count": 1},
        ], "other": 0, "unknown": 2})
    );
    // Every counted value opens exactly as many devices in the list, and the counters agree
    // with the status filter.
    for (param, dist) in [("os", &s["os"]), ("model", &s["model"])] {
        for v in dist["top"].as_array().unwrap() {
            let q = format!("{param}={}", enc(v["value"].as_str().unwrap()));
            assert_eq!(
                t.hostnames(&admin, &q).await.len() as u64,
                v["count"].as_u64().unwrap(),
                "{q}"
            );
        }
    }
    assert_eq!(t.hostnames(&admin, "status=online").await.len(), 5);
    assert_eq!(t.hostnames(&admin, "status=offline").await.len(), 2);

    // A new inventory moves the device between values (the model follows the document).
    let ubuntu = devices.iter().find(|d| d.0 == "ubuntu").unwrap();
    let spec: Spec = (
        "ubuntu",
        Some("Ubuntu"),
        Some("24.04"),
        Some("HP"),
        Some("EliteBook 840"),
    );
    t.upload_inventory(&ubuntu.2, doc("host-ubuntu", &spec))
        .await;
    assert_eq!(
        t.hostnames(&admin, "model=HP%20EliteBook%20840").await,
        hosts(&["ubuntu"])
    );
    assert_eq!(
        t.hostnames(&admin, "model=Dell%20Inc.%20OptiPlex%207090")
            .await,
        hosts(&["deb11"])
    );

    // Without read permission on devices (no token at all): refused.
    let r = t.call(GET, "/api/v1/devices/summary", None, None).await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_summary_keeps_twenty_values_and_counts_the_rest_as_other() {
    let t = setup().await;
    let admin = t.admin().await;
    // Model k is on k devices for k in 1..=3, then 21 more models on one device each: 27
    // devices, 24 models; the top 20 are the three multi-device models and 17 of the singles
    // (ties by value), the remaining 4 singles are "other".
    let mut specs: Vec<(String, String)> = Vec::new();
    for k in 1..=3 {
        for i in 0..k {
            specs.push((format!("multi{k}-{i}"), format!("Multi {k}")));
        }
    }
    for i in 0..21 {
        specs.push((format!("single{i:02}"), format!("Single {i:02}")));
    }
    for (identity, model) in &specs {
        let (_, tok) = t.device(&admin, identity).await;
        let d = InventoryDocument {
            schema_version: INVENTORY_SCHEMA_VERSION,
            collected_at_ms: 1,
            os: Some(OperatingSystem {
                family: "linux".into(),
                hostname: format!("host-{identity}"),
                name: Some("Debian GNU/Linux".into()),
                version_id: Some("12".into()),
                ..Default::default()
            }),
            hardware: Some(Hardware {
                system: Some(SystemInfo {
                    manufacturer: Some("Acme".into()),
                    product: Some(model.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        t.upload_inventory(&tok, d).await;
    }
    let s = t
        .ok(StatusCode::OK, GET, "/api/v1/devices/summary", &admin, None)
        .await;
    let top = s["model"]["top"].as_array().unwrap();
    assert_eq!(top.len(), 20, "{s}");
    let values: Vec<&str> = top.iter().map(|v| v["value"].as_str().unwrap()).collect();
    assert_eq!(
        &values[..5],
        [
            "Acme Multi 3",
            "Acme Multi 2",
            "Acme Multi 1",
            "Acme Single 00",
            "Acme Single 01"
        ]
    );
    assert_eq!(values[19], "Acme Single 16");
    assert_eq!(
        (&s["model"]["other"], &s["model"]["unknown"]),
        (&json!(4), &json!(0))
    );
    let shown: u64 = top.iter().map(|v| v["count"].as_u64().unwrap()).sum();
    assert_eq!(shown + 4, 27);
    assert_eq!(
        s["os"],
        json!({"top": [{"value": "Debian GNU/Linux 12", "count": 27}], "other": 0, "unknown": 0})
    );
}

/// Record a check-in of `device` at `at` (in the past: the device has been silent since).
async fn set_last_seen(t: &T, device: &str, at: i64) {
    t.state
        .store
        .record_checkin(device, at, "0.1.0", None, None)
        .await
        .unwrap();
}

/// The `device.*` events in the log after `after`: (kind, subject) in order.
async fn presence_events(t: &T, after: i64) -> Vec<(String, String)> {
    t.state
        .store
        .events_after(after, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("device."))
        .map(|e| (e.kind, e.subject))
        .collect()
}

fn ev(kind: &str, id: &str) -> (String, String) {
    (kind.to_string(), id.to_string())
}

#[tokio::test]
async fn presence_changes_are_announced_once_each_way() {
    let t = setup_with(|c| c.checkin_interval_secs = 60).await;
    let admin = t.admin().await;
    let interval_ms = 60_000;
    let (a, ta) = t.device(&admin, "a").await;
    let (b, tb) = t.device(&admin, "b").await;
    let start = t.state.store.last_event_id().await.unwrap();
    let now = capstan_server::state::now_ms();
    set_last_seen(&t, &a, now).await;
    set_last_seen(&t, &b, now).await;

    // Enrolment counts as being seen: both are announced online once, at the first pass.
    let first = capstan_server::presence::pass(&t.state, now).await.unwrap();
    let mut online = first.online.clone();
    online.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!((online, first.offline.len()), (both, 0));
    let again = capstan_server::presence::pass(&t.state, now).await.unwrap();
    assert_eq!(again, capstan_server::presence::Announced::default());

    // Just inside three intervals both are still online; just past it, b (silent) is offline
    // while a, which checked in meanwhile, is not.
    let later = now + 3 * interval_ms;
    let p = capstan_server::presence::pass(&t.state, later)
        .await
        .unwrap();
    assert_eq!(p, capstan_server::presence::Announced::default());
    set_last_seen(&t, &a, now + 2 * interval_ms).await;
    let past = now + 3 * interval_ms + 1;
    let p = capstan_server::presence::pass(&t.state, past)
        .await
        .unwrap();
    assert_eq!((p.online, p.offline), (vec![], vec![b.clone()]));

    // a goes silent too, but holds a wake-up connection: not announced offline while it waits.
    let generation = t.checkin(&ta).await["wake_generation"].as_u64().unwrap();
    set_last_seen(&t, &a, now - 10 * interval_ms).await;
    let router = t.router.clone();
    let wait = tokio::spawn({
        let ta = ta.clone();
        async move {
            let req = Request::builder()
                .uri(format!(
                    "/agent/v1/wait?generation={generation}&timeout_secs=30"
                ))
                .header(header::AUTHORIZATION, format!("Bearer {ta}"))
                .body(Body::empty())
                .unwrap();
            tower::ServiceExt::oneshot(router, req).await.unwrap()
        }
    });
    for _ in 0..200 {
        if t.state.wake.is_waiting(&a) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(t.state.wake.is_waiting(&a));
    let p = capstan_server::presence::pass(&t.state, past)
        .await
        .unwrap();
    assert_eq!(p, capstan_server::presence::Announced::default());
    // Waking it ends the wait; then it is announced offline.
    t.state.wake.wake(&a);
    let resp = wait.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let p = capstan_server::presence::pass(&t.state, past)
        .await
        .unwrap();
    assert_eq!((p.online, p.offline), (vec![], vec![a.clone()]));

    // b comes back: one check-in, announced online at the next pass.
    t.checkin(&tb).await;
    let back = capstan_server::state::now_ms();
    let p = capstan_server::presence::pass(&t.state, back)
        .await
        .unwrap();
    assert_eq!((p.online, p.offline), (vec![b.clone()], vec![]));

    // The event log holds exactly these announcements, in order.
    let mut log = presence_events(&t, start).await;
    let (first_two, rest) = log.split_at_mut(2);
    first_two.sort();
    let mut want_first = vec![ev("device.online", &a), ev("device.online", &b)];
    want_first.sort();
    assert_eq!(first_two.to_vec(), want_first);
    assert_eq!(
        rest.to_vec(),
        vec![
            ev("device.offline", &b),
            ev("device.offline", &a),
            ev("device.online", &b)
        ]
    );
    // The data names the device for readers of the stream.
    let last = t.state.store.events_after(start, 1000).await.unwrap();
    let last = last.last().unwrap();
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["hostname"], "host-b", "{data}");
    assert!(data["last_seen_at_ms"].as_i64().unwrap() >= back - 60_000);
}

/// Read SSE text from a response body until `until` appears after byte `from`; fails after
/// `secs`.
async fn read_until(body: &mut Body, text: &mut String, until: &str, from: usize, secs: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !text[from..].contains(until) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {until:?} within {secs} s; got:\n{text}"));
        match frame {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    text.push_str(&String::from_utf8_lossy(&d));
                }
            }
            other => panic!("stream ended ({other:?}) before {until:?}; got:\n{text}"),
        }
    }
}

/// The real background task with the shortest check-in interval (5 s, so offline after 15 s):
/// a device that enrolls is announced online on the event stream, goes silent and is
/// announced offline, checks in again and is announced online.
#[tokio::test]
async fn a_silent_device_goes_offline_and_comes_back_on_the_event_stream() {
    let t = setup_with(|c| c.checkin_interval_secs = 5).await;
    let admin = t.admin().await;
    let start = t.state.store.last_event_id().await.unwrap();
    tokio::spawn(capstan_server::presence::run(t.state.clone()));
    let (id, tok) = t.device(&admin, "silent").await;
    let resp = t
        .request(
            Request::builder()
                .uri(format!("/api/v1/events/stream?after={start}"))
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut text = String::new();
    read_until(&mut body, &mut text, "\"device.online\"", 0, 10).await;
    let silent_since = std::time::Instant::now();
    read_until(&mut body, &mut text, "\"device.offline\"", 0, 30).await;
    assert!(
        silent_since.elapsed() >= std::time::Duration::from_secs(10),
        "offline only after three intervals of silence"
    );
    t.checkin(&tok).await;
    let offline_at = text.len();
    read_until(&mut body, &mut text, "\"device.online\"", offline_at, 10).await;
    let kinds: Vec<String> = text
        .split("\n\n")
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|e| e["subject"] == id.as_str())
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(kinds, ["device.online", "device.offline", "device.online"]);
}

impl T {
    /// Claim the device's one queued run and finish it with `outcome`; the run id.
    async fn run_to(&self, device_token: &str, outcome: &str) {
        let (s, v) = self
            .call(
                POST,
                "/agent/v1/runs/claim",
                Some(device_token),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let payload: Value =
            serde_json::from_str(v["runs"][0]["payload"].as_str().unwrap()).unwrap();
        let run = payload["run_id"].as_str().unwrap();
        let now = capstan_server::state::now_ms();
        let (s, v) = self
            .call(
                POST,
                &format!("/agent/v1/runs/{run}/start"),
                Some(device_token),
                Some(json!({"attempt": 1, "started_at_ms": now})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let exit = if outcome == "succeeded" { 0 } else { 1 };
        let (s, v) = self
            .call(
                POST,
                &format!("/agent/v1/runs/{run}/finish"),
                Some(device_token),
                Some(json!({"attempt": 1, "outcome": outcome, "exit_code": exit,
                       "started_at_ms": now, "finished_at_ms": now + 1, "stdout_bytes": 0})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
}

#[tokio::test]
async fn the_job_list_keeps_only_jobs_with_failed_runs_when_asked() {
    let t = setup().await;
    let admin = t.admin().await;
    // (job name, outcome of its only run; None = never run)
    let plan: &[(&str, Option<&str>)] = &[
        ("ok", Some("succeeded")),
        ("broken", Some("failed")),
        ("waiting", None),
        ("slow", Some("timed_out")),
        ("lost", Some("interrupted")),
        ("cancelled", Some("cancelled")),
    ];
    for (i, (name, outcome)) in plan.iter().enumerate() {
        let (device, tok) = t.device(&admin, &format!("job{i}")).await;
        t.ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/jobs",
            &admin,
            Some(json!({"name": name,
                        "spec": {"action": {"type": "command", "argv": ["true"]}},
                        "targets": {"devices": [device]}})),
        )
        .await;
        if let Some(outcome) = outcome {
            t.run_to(&tok, outcome).await;
        }
        // Distinct creation times, so "newest first" is well defined.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_string())
            .collect()
    };
    let failed = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/jobs?failed=true",
            &admin,
            None,
        )
        .await;
    assert_eq!(names(&failed), ["lost", "slow", "broken"], "{failed}");
    assert_eq!(failed["total"], 3);
    let page = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/jobs?failed=true&limit=1&offset=1",
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (names(&page), &page["total"]),
        (vec!["slow".to_string()], &json!(3))
    );
    let all = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/jobs?failed=false",
            &admin,
            None,
        )
        .await;
    assert_eq!(all["total"], 6);
    let all = t
        .ok(StatusCode::OK, GET, "/api/v1/jobs", &admin, None)
        .await;
    assert_eq!(all["total"], 6);
    let r = t
        .call(GET, "/api/v1/jobs?failed=perhaps", Some(&admin), None)
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
}

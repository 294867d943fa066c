//! Desired software state through the API: assignments compile into signed per-device
//! manifests, agent reports become statuses with history, timeline and events, devices that
//! leave a group (or lose an assignment) get removals, conflicts follow the documented rule,
//! deployments follow schedules and maintenance windows on a test clock, and bad input is
//! refused with nothing saved. Runs on SQLite and (with `CAPSTAN_API_TEST_DB=postgres`)
//! PostgreSQL.

mod common;

use axum::http::{Method, StatusCode};
use capstan_proto::deploy::{ItemIntent, ManifestPayload, SignedManifest};
use common::{T, apt_version, assert_error, setup, setup_with};
use ed25519_dalek::Verifier;
use serde_json::{Value, json};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;

async fn compile(t: &T) {
    capstan_server::deploy::compile_now(&t.state, None)
        .await
        .expect("compile");
}

/// The device's manifest as its agent gets it, with the signature checked.
async fn manifest(t: &T, token: &str) -> Option<ManifestPayload> {
    let (s, v) = t.call(GET, "/agent/v1/manifest", Some(token), None).await;
    if s == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(s, StatusCode::OK, "{v}");
    let signed: SignedManifest = serde_json::from_value(v).unwrap();
    let sig =
        ed25519_dalek::Signature::from_slice(&hex::decode(&signed.signature).unwrap()).unwrap();
    t.state
        .signing_key
        .verifying_key()
        .verify(signed.payload.as_bytes(), &sig)
        .expect("signed by the server");
    Some(serde_json::from_str(&signed.payload).unwrap())
}

async fn report(
    t: &T,
    token: &str,
    revision: u64,
    items: Value,
    complete: bool,
) -> (StatusCode, Value) {
    t.call(
        POST,
        "/agent/v1/manifest/report",
        Some(token),
        Some(json!({"revision": revision, "items": items, "complete": complete})),
    )
    .await
}

fn item(package_id: &str, version: &str, status: &str) -> Value {
    json!({"package_id": package_id, "version": version, "status": status,
           "at_ms": capstan_server::state::now_ms()})
}

async fn software(t: &T, admin: &str, device: &str) -> Value {
    t.ok(
        StatusCode::OK,
        GET,
        &format!("/api/v1/devices/{device}/software"),
        admin,
        None,
    )
    .await
}

#[tokio::test]
async fn assignments_become_signed_manifests_and_leaving_the_group_removes_what_was_installed() {
    let t = setup().await;
    let admin = t.admin().await;
    let (d1, tok1) = t.device(&admin, "n1").await;
    let (d2, tok2) = t.device(&admin, "n2").await;
    let (_d3, tok3) = t.device(&admin, "n3").await;
    t.apt_package(&admin, "lib", &["1"], json!([])).await;
    // Uploaded 1.10 before 1.9: "latest" is the highest, not the newest upload.
    t.apt_package(&admin, "app", &["1.10", "1.9"], json!([{"package": "lib"}]))
        .await;
    t.group_with(&admin, json!({"name": "web"}), &[&d1, &d2])
        .await;
    let a = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/assignments",
            &admin,
            Some(
                json!({"package": "app", "target": {"kind": "group", "id": "web"},
                        "intent": "required"}),
            ),
        )
        .await;
    assert_eq!(a["resolved_version"], "1.10");
    assert!(a.get("version").is_none(), "latest: {a}");
    assert_eq!(a["target_name"], "web");
    compile(&t).await;

    let m1 = manifest(&t, &tok1).await.expect("n1 has a manifest");
    assert_eq!(m1.revision, 1);
    assert_eq!(m1.device_id, d1);
    assert_eq!(m1.items.len(), 1);
    let it = &m1.items[0];
    assert_eq!(
        (it.package_name.as_str(), it.version.as_str(), it.intent),
        ("app", "1.10", ItemIntent::Present)
    );
    let steps: Vec<(&str, &str)> = it
        .plan
        .steps
        .iter()
        .map(|s| (s.package.as_str(), s.version.as_str()))
        .collect();
    assert_eq!(steps, [("lib", "1"), ("app", "1.10")], "dependencies first");
    assert!(
        manifest(&t, &tok3).await.is_none(),
        "n3 is not in the group"
    );
    // Compiling again changes nothing.
    compile(&t).await;
    assert_eq!(manifest(&t, &tok1).await.unwrap().revision, 1);
    let (s, v) = t
        .call(
            POST,
            "/agent/v1/checkin",
            Some(&tok1),
            Some(json!({"agent_version": "0.1.0"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["manifest_revision"], 1);

    // The agent reports; status, history and timeline follow.
    let sw = software(&t, &admin, &d1).await;
    assert_eq!(sw["items"][0]["status"], "planned");
    let app_id = it.package_id.clone();
    for status in ["installing", "installed"] {
        let (s, v) = report(
            &t,
            &tok1,
            1,
            json!([item(&app_id, "1.10", status)]),
            status == "installed",
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    let sw = software(&t, &admin, &d1).await;
    assert_eq!(sw["items"][0]["status"], "installed");
    assert_eq!(sw["acknowledged_revision"], 1);
    let history = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/devices/{d1}/software/app/history"),
            &admin,
            None,
        )
        .await;
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["installed", "installing"]);
    let timeline = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/devices/{d1}/timeline"),
            &admin,
            None,
        )
        .await;
    assert!(
        timeline
            .to_string()
            .contains("software installed: app 1.10"),
        "{timeline}"
    );
    // Each change is a domain event for live views and alerts.
    let events = t.state.store.events_after(0, 1000).await.unwrap();
    let changes: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.kind == "software.status" && e.subject == d1)
        .map(|e| (e.object.as_deref().unwrap_or(""), e.data.as_str()))
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes.iter().all(|(pkg, _)| *pkg == app_id));
    let last: Value = serde_json::from_str(changes[1].1).unwrap();
    assert_eq!(
        (&last["status"], &last["previous"], &last["package"]),
        (&json!("installed"), &json!("installing"), &json!("app"))
    );

    // Another package for n1 changes its manifest; app's reported status stands.
    t.apt_package(&admin, "other", &["1"], json!([])).await;
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/assignments",
        &admin,
        Some(json!({"package": "other", "target": {"kind": "device", "id": d1}, "intent": "available"})),
    )
    .await;
    compile(&t).await;
    let sw = software(&t, &admin, &d1).await;
    let app_row = sw["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["package_name"] == "app")
        .unwrap()
        .clone();
    assert_eq!(app_row["status"], "installed", "{sw}");
    let other = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/assignments?device={d1}&package=other"),
            &admin,
            None,
        )
        .await;
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        &format!("/api/v1/assignments/{}", other[0]["id"].as_str().unwrap()),
        &admin,
        None,
    )
    .await;
    compile(&t).await;
    assert_eq!(manifest(&t, &tok1).await.unwrap().revision, 3);

    // n1 leaves the group: what Capstan installed there is removed (any version).
    t.ok(
        StatusCode::OK,
        POST,
        "/api/v1/groups/web/members/remove",
        &admin,
        Some(json!({"device_ids": [d1]})),
    )
    .await;
    compile(&t).await;
    let m1 = manifest(&t, &tok1).await.unwrap();
    assert_eq!(m1.revision, 4);
    assert_eq!(m1.items.len(), 1);
    assert_eq!(m1.items[0].intent, ItemIntent::Absent);
    assert_eq!(m1.items[0].assignment_id, None);
    let versions: Vec<&str> = m1.items[0]
        .plan
        .steps
        .iter()
        .map(|s| s.version.as_str())
        .collect();
    assert_eq!(versions, ["1.10", "1.9"], "every version, highest first");
    let (s, _) = report(
        &t,
        &tok1,
        2,
        json!([item(&app_id, "1.10", "removed")]),
        true,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    compile(&t).await;
    let m1 = manifest(&t, &tok1).await.unwrap();
    assert_eq!(
        (m1.revision, m1.items.len()),
        (5, 0),
        "removed: nothing left to do"
    );

    // n2 never installed it: removing the assignment leaves it nothing to remove.
    let id = a["id"].as_str().unwrap();
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        &format!("/api/v1/assignments/{id}"),
        &admin,
        None,
    )
    .await;
    compile(&t).await;
    let m2 = manifest(&t, &tok2).await.unwrap();
    assert!(m2.items.is_empty(), "{:?}", m2.items);
}

#[tokio::test]
async fn leave_installed_latest_upgrades_and_available_packages_on_request() {
    let t = setup().await;
    let admin = t.admin().await;
    let (d1, tok1) = t.device(&admin, "n1").await;
    t.apt_package(&admin, "tool", &["1.0"], json!([])).await;
    t.apt_package(&admin, "extra", &["2.0"], json!([])).await;
    let a = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/assignments",
            &admin,
            Some(
                json!({"package": "tool", "target": {"kind": "device", "id": d1},
                        "intent": "required", "leave_installed": true}),
            ),
        )
        .await;
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/assignments",
        &admin,
        Some(
            json!({"package": "extra", "target": {"kind": "device", "id": d1},
                    "intent": "available"}),
        ),
    )
    .await;
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    let tool = m.items.iter().find(|i| i.package_name == "tool").unwrap();
    let extra = m.items.iter().find(|i| i.package_name == "extra").unwrap();
    assert_eq!(extra.intent, ItemIntent::Available);
    let (tool_id, extra_id) = (tool.package_id.clone(), extra.package_id.clone());
    report(
        &t,
        &tok1,
        m.revision,
        json!([
            item(&tool_id, "1.0", "installed"),
            item(&extra_id, "2.0", "available")
        ]),
        true,
    )
    .await;

    // A new version: "latest" upgrades.
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/packages/tool/versions",
        &admin,
        Some(apt_version("1.1", "tool", json!([]), json!([]))),
    )
    .await;
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    let tool = m.items.iter().find(|i| i.package_name == "tool").unwrap();
    assert_eq!(tool.version, "1.1");
    assert_eq!(
        software(&t, &admin, &d1).await["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["package_name"] == "tool")
            .unwrap()["status"],
        "planned",
        "a new version starts over"
    );

    // Someone on the node asks for the available package: it becomes present.
    let (s, v) = t
        .call(
            POST,
            "/agent/v1/software/request",
            Some(&tok1),
            Some(json!({"package": "extra"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, v) = t
        .call(
            POST,
            "/agent/v1/software/request",
            Some(&tok1),
            Some(json!({"package": "tool"})),
        )
        .await;
    assert_error(&(s, v), StatusCode::NOT_FOUND, "not_found");
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    let extra = m.items.iter().find(|i| i.package_name == "extra").unwrap();
    assert_eq!(extra.intent, ItemIntent::Present);

    // leave_installed: removing the assignment removes nothing.
    report(
        &t,
        &tok1,
        m.revision,
        json!([item(&tool_id, "1.1", "installed")]),
        true,
    )
    .await;
    let id = a["id"].as_str().unwrap();
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        &format!("/api/v1/assignments/{id}"),
        &admin,
        None,
    )
    .await;
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    assert!(
        m.items.iter().all(|i| i.package_name != "tool"),
        "left installed: {:?}",
        m.items
    );
}

#[tokio::test]
async fn conflicts_are_decided_by_the_rule_and_shown() {
    let t = setup().await;
    let admin = t.admin().await;
    let (d1, tok1) = t.device(&admin, "n1").await;
    t.apt_package(&admin, "app", &["1", "2"], json!([])).await;
    t.group_with(&admin, json!({"name": "all"}), &[&d1]).await;
    t.group_with(&admin, json!({"name": "lab"}), &[&d1]).await;
    let mut ids = Vec::new();
    for body in [
        json!({"package": "app", "target": {"kind": "group", "id": "all"}, "intent": "required", "version": "1"}),
        json!({"package": "app", "target": {"kind": "group", "id": "lab"}, "intent": "uninstall"}),
        json!({"package": "app", "target": {"kind": "device", "id": d1}, "intent": "available"}),
    ] {
        let a = t
            .ok(
                StatusCode::CREATED,
                POST,
                "/api/v1/assignments",
                &admin,
                Some(body),
            )
            .await;
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    assert_eq!(m.items.len(), 1);
    assert_eq!(
        m.items[0].intent,
        ItemIntent::Available,
        "the device's own assignment wins"
    );
    let sw = software(&t, &admin, &d1).await;
    let conflicts = sw["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 2, "{sw}");
    assert!(conflicts.iter().all(|c| c["winner"] == ids[2].as_str()));
    assert!(conflicts[0]["reason"].as_str().unwrap().contains("device"));
    assert_eq!(sw["assignments"].as_array().unwrap().len(), 3);
    // Without the device's own: required beats uninstall.
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        &format!("/api/v1/assignments/{}", ids[2]),
        &admin,
        None,
    )
    .await;
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    assert_eq!(
        (m.items[0].intent, m.items[0].version.as_str()),
        (ItemIntent::Present, "1")
    );
    let sw = software(&t, &admin, &d1).await;
    assert!(
        sw["conflicts"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("stronger intent")
    );
    // ?device= lists what reaches the device.
    let list = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/assignments?device={d1}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn deployments_follow_windows_schedules_and_pausing_on_the_test_clock() {
    let t = setup_with(|c| c.test_clock = true).await;
    let admin = t.admin().await;
    let (d1, tok1) = t.device(&admin, "n1").await;
    let (d2, tok2) = t.device(&admin, "n2").await;
    t.apt_package(&admin, "app", &["1"], json!([])).await;
    t.apt_package(&admin, "viewer", &["3"], json!([])).await;
    t.group_with(&admin, json!({"name": "office"}), &[&d1, &d2])
        .await;
    // Monday 2030-01-07 20:00 UTC; the window opens daily at 22:00 UTC for two hours.
    let monday_20h: i64 = 1_894_046_400_000;
    t.ok(
        StatusCode::NO_CONTENT,
        Method::PUT,
        "/api/v1/system/clock",
        &admin,
        Some(json!({"now_ms": monday_20h})),
    )
    .await;
    let w = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/maintenance-windows",
            &admin,
            Some(json!({"name": "nightly", "timezone": "UTC", "groups": ["office"],
                        "schedule": {"kind": "weekly", "days": ["mon","tue","wed","thu","fri","sat","sun"],
                                     "start": "22:00", "duration_minutes": 120}})),
        )
        .await;
    assert_eq!(w["next_open_ms"], monday_20h + 2 * 3_600_000);
    let dep = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/deployments",
            &admin,
            Some(json!({"name": "App rollout", "package": "app",
                        "target": {"kind": "group", "id": "office"}, "intent": "required"})),
        )
        .await;
    let dep_id = dep["id"].as_str().unwrap().to_string();
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/deployments",
        &admin,
        Some(json!({"name": "Viewer", "package": "viewer",
                    "target": {"kind": "group", "id": "office"}, "intent": "available",
                    "deadline_ms": monday_20h + 30 * 60_000, "window_policy": "ignore"})),
    )
    .await;
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    let app = m.items.iter().find(|i| i.package_name == "app").unwrap();
    assert!(
        app.hold
            .as_deref()
            .is_some_and(|h| h.contains("maintenance window") && h.contains("2030-01-07 22:00")),
        "{:?}",
        app.hold
    );
    let viewer = m.items.iter().find(|i| i.package_name == "viewer").unwrap();
    assert_eq!(viewer.intent, ItemIntent::Available);
    let status = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/deployments/{dep_id}/status"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status["deployment"]["counts"]["waiting"], 2, "{status}");

    // Past the viewer's deadline: required (it ignores windows); the app still waits.
    t.ok(
        StatusCode::NO_CONTENT,
        Method::PUT,
        "/api/v1/system/clock",
        &admin,
        Some(json!({"now_ms": monday_20h + 31 * 60_000})),
    )
    .await;
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    let viewer = m.items.iter().find(|i| i.package_name == "viewer").unwrap();
    assert_eq!(
        (viewer.intent, viewer.hold.as_deref()),
        (ItemIntent::Present, None)
    );
    assert!(
        m.items
            .iter()
            .find(|i| i.package_name == "app")
            .unwrap()
            .hold
            .is_some()
    );

    // The window opens: the app may be installed.
    t.ok(
        StatusCode::NO_CONTENT,
        Method::PUT,
        "/api/v1/system/clock",
        &admin,
        Some(json!({"now_ms": monday_20h + 2 * 3_600_000 + 60_000})),
    )
    .await;
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    let app = m.items.iter().find(|i| i.package_name == "app").unwrap();
    assert_eq!(app.hold, None);
    let app_id = app.package_id.clone();

    // Status: one installed, one failed with exit code 17.
    report(
        &t,
        &tok1,
        m.revision,
        json!([item(&app_id, "1", "installed")]),
        true,
    )
    .await;
    let rev2 = manifest(&t, &tok2).await.unwrap().revision;
    let mut failed = item(&app_id, "1", "failed");
    failed["exit_code"] = json!(17);
    failed["detail"] = json!("exit code 17");
    failed["log"] = json!("E: broken");
    report(&t, &tok2, rev2, json!([failed]), true).await;
    let status = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/deployments/{dep_id}/status"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status["success_rate"], 0.5, "{status}");
    assert_eq!(status["failures_by_exit_code"][0]["exit_code"], 17);
    assert_eq!(status["failures_by_exit_code"][0]["devices"], 1);
    assert_eq!(status["devices"][0]["status"], "failed", "failed first");
    assert_eq!(status["devices"][0]["hostname"], "host-n2");

    // Paused: held, and the API says so.
    let p = t
        .ok(
            StatusCode::OK,
            POST,
            &format!("/api/v1/deployments/{dep_id}/pause"),
            &admin,
            None,
        )
        .await;
    assert_eq!(p["paused"], true);
    compile(&t).await;
    let m = manifest(&t, &tok2).await.unwrap();
    let app = m.items.iter().find(|i| i.package_name == "app").unwrap();
    assert_eq!(app.hold.as_deref(), Some("the deployment is paused"));
    t.ok(
        StatusCode::OK,
        POST,
        &format!("/api/v1/deployments/{dep_id}/resume"),
        &admin,
        None,
    )
    .await;
    let list = t
        .ok(StatusCode::OK, GET, "/api/v1/deployments", &admin, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    // By name, then deleted.
    t.ok(
        StatusCode::OK,
        GET,
        "/api/v1/deployments/app%20rollout",
        &admin,
        None,
    )
    .await;
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        &format!("/api/v1/deployments/{dep_id}"),
        &admin,
        None,
    )
    .await;
    assert_error(
        &t.call(
            GET,
            &format!("/api/v1/deployments/{dep_id}"),
            Some(&admin),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn the_clock_cannot_be_moved_without_the_test_flag() {
    let t = setup().await;
    let admin = t.admin().await;
    assert_error(
        &t.call(
            Method::PUT,
            "/api/v1/system/clock",
            Some(&admin),
            Some(json!({"now_ms": 1_900_000_000_000i64})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_saved() {
    let t = setup().await;
    let admin = t.admin().await;
    let viewer = t.user(&admin, "val", "viewer").await;
    let (d1, tok1) = t.device(&admin, "n1").await;
    let (_d2, tok2) = t.device(&admin, "n2").await;
    t.apt_package(&admin, "app", &["1"], json!([])).await;
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/packages",
        &admin,
        Some(json!({"name": "empty"})),
    )
    .await;
    t.group_with(&admin, json!({"name": "web"}), &[&d1]).await;
    let ok =
        json!({"package": "app", "target": {"kind": "group", "id": "web"}, "intent": "required"});
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/assignments",
        &admin,
        Some(ok.clone()),
    )
    .await;
    let bad: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"package": "nope", "target": {"kind": "group", "id": "web"}, "intent": "required"}),
            StatusCode::BAD_REQUEST,
            "/package",
        ),
        (
            json!({"package": "app", "version": "9", "target": {"kind": "group", "id": "web"}, "intent": "required"}),
            StatusCode::BAD_REQUEST,
            "/version",
        ),
        (
            json!({"package": "empty", "target": {"kind": "group", "id": "web"}, "intent": "required"}),
            StatusCode::BAD_REQUEST,
            "no versions",
        ),
        (
            json!({"package": "app", "target": {"kind": "group", "id": "nope"}, "intent": "required"}),
            StatusCode::BAD_REQUEST,
            "/target/id",
        ),
        (
            json!({"package": "app", "target": {"kind": "device", "id": "nope"}, "intent": "required"}),
            StatusCode::BAD_REQUEST,
            "/target/id",
        ),
        (
            json!({"package": "app", "target": {"kind": "device", "id": d1}, "intent": "uninstall", "leave_installed": true}),
            StatusCode::BAD_REQUEST,
            "/leave_installed",
        ),
        (
            json!({"package": "app", "target": {"kind": "group", "id": "web"}, "intent": "available"}),
            StatusCode::CONFLICT,
            "already has assignment",
        ),
        (
            json!({"package": "app", "target": {"kind": "planet", "id": "web"}, "intent": "required"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            json!({"package": "app", "target": {"kind": "group", "id": "web"}, "intent": "maybe"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            json!({"package": "app", "target": {"kind": "group", "id": "web"}, "intent": "required", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
    ];
    for (body, status, needle) in bad {
        let (s, v) = t
            .call(
                POST,
                "/api/v1/assignments",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let deployments: Vec<(Value, &str)> = vec![
        (
            json!({"name": "", "package": "app", "target": {"kind": "device", "id": d1}, "intent": "required"}),
            "/name",
        ),
        (
            json!({"name": "x", "package": "app", "target": {"kind": "device", "id": d1}, "intent": "available",
                "available_from_ms": 1_900_000_000_000i64, "deadline_ms": 1_800_000_000_000i64}),
            "before available-from",
        ),
        (
            json!({"name": "x", "package": "app", "target": {"kind": "device", "id": d1}, "intent": "required",
                "deadline_ms": 1_900_000_000_000i64}),
            "use intent available",
        ),
        (
            json!({"name": "x", "package": "app", "target": {"kind": "device", "id": d1}, "intent": "required",
                "available_from_ms": 5}),
            "/available_from_ms",
        ),
        (
            json!({"name": "x", "package": "app", "target": {"kind": "device", "id": d1}, "intent": "required",
                "network": {"max_bytes_per_sec": 10}}),
            "/network/max_bytes_per_sec",
        ),
    ];
    for (body, needle) in deployments {
        let (s, v) = t
            .call(
                POST,
                "/api/v1/deployments",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let windows: Vec<(Value, &str)> = vec![
        (
            json!({"kind": "weekly", "days": ["mon"], "start": "25:00", "duration_minutes": 60}),
            "/schedule/start",
        ),
        (
            json!({"kind": "weekly", "days": [], "start": "22:00", "duration_minutes": 60}),
            "/schedule/days",
        ),
        (
            json!({"kind": "weekly", "days": ["mon"], "start": "22:00", "duration_minutes": 0}),
            "/schedule/duration_minutes",
        ),
        (
            json!({"kind": "cron", "expression": "0 0 22 * * *", "duration_minutes": 60}),
            "/schedule/expression",
        ),
        (
            json!({"kind": "cron", "expression": "0 22 30 2 *", "duration_minutes": 60}),
            "/schedule/expression",
        ),
    ];
    for (schedule, needle) in windows {
        let body = json!({"name": "w", "timezone": "UTC", "groups": ["web"], "schedule": schedule});
        let (s, v) = t
            .call(
                POST,
                "/api/v1/maintenance-windows",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let daily =
        json!({"kind": "weekly", "days": ["mon"], "start": "22:00", "duration_minutes": 60});
    for (tz, groups, needle) in [
        ("Mars/Olympus", json!(["web"]), "/timezone"),
        ("UTC", json!([]), "/groups"),
        ("UTC", json!(["nope"]), "/groups/0"),
    ] {
        let body = json!({"name": "w", "timezone": tz, "groups": groups, "schedule": daily});
        let (s, v) = t
            .call(
                POST,
                "/api/v1/maintenance-windows",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    // Nothing was saved.
    assert_eq!(
        t.ok(StatusCode::OK, GET, "/api/v1/assignments", &admin, None)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        t.ok(StatusCode::OK, GET, "/api/v1/deployments", &admin, None)
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        t.ok(
            StatusCode::OK,
            GET,
            "/api/v1/maintenance-windows",
            &admin,
            None
        )
        .await
        .as_array()
        .unwrap()
        .len(),
        0
    );
    // Viewers read, never write.
    t.ok(StatusCode::OK, GET, "/api/v1/assignments", &viewer, None)
        .await;
    assert_error(
        &t.call(POST, "/api/v1/assignments", Some(&viewer), Some(ok))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // What refers to a group, package or version keeps it.
    assert_error(
        &t.call(DELETE, "/api/v1/groups/web", Some(&admin), None)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &t.call(DELETE, "/api/v1/packages/app", Some(&admin), None)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/assignments",
        &admin,
        Some(json!({"package": "app", "version": "1", "target": {"kind": "device", "id": d1}, "intent": "required"})),
    )
    .await;
    assert_error(
        &t.call(
            DELETE,
            "/api/v1/packages/app/versions/1",
            Some(&admin),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );

    // Hostile agent reports: refused whole, nothing recorded.
    compile(&t).await;
    let m = manifest(&t, &tok1).await.unwrap();
    let app_id = m.items[0].package_id.clone();
    let huge_log = "x".repeat(17 * 1024);
    let mut with_log = item(&app_id, "1", "failed");
    with_log["log"] = json!(huge_log);
    let mut with_nul = item(&app_id, "1", "failed");
    with_nul["detail"] = json!("bad\u{0}detail");
    let mut bad_progress = item(&app_id, "1", "downloading");
    bad_progress["progress"] = json!({"received": 10, "total": 5});
    let many: Vec<Value> = (0..513).map(|_| item(&app_id, "1", "installed")).collect();
    for (revision, items) in [
        (m.revision, json!([with_log])),
        (m.revision, json!([with_nul])),
        (m.revision, json!([bad_progress])),
        (m.revision + 5, json!([item(&app_id, "1", "installed")])),
        (m.revision, json!(many)),
        (
            m.revision,
            json!([{"package_id": app_id, "version": "1", "status": "exploded", "at_ms": 1}]),
        ),
    ] {
        let (s, v) = report(&t, &tok1, revision, items, false).await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
            "{s}: {v}"
        );
    }
    assert_eq!(
        software(&t, &admin, &d1).await["items"][0]["status"],
        "planned"
    );
    // A device without that package in its manifest cannot report on it.
    let (s, _) = report(
        &t,
        &tok2,
        0,
        json!([item(&app_id, "1", "installed")]),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "n2 has no manifest");
    assert_error(
        &t.call(GET, "/agent/v1/manifest", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

/// Uploads an inventory whose OS reports `timezone`.
async fn with_timezone(t: &T, token: &str, hostname: &str, timezone: &str) {
    use capstan_proto::agent::InventoryUpload;
    use capstan_proto::inventory::{INVENTORY_SCHEMA_VERSION, InventoryDocument, OperatingSystem};
    let document = InventoryDocument {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at_ms: 1,
        os: Some(OperatingSystem {
            family: "linux".into(),
            hostname: hostname.into(),
            timezone: Some(timezone.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let body = InventoryUpload {
        digest: capstan_core::inventory::digest(&document),
        document,
    };
    let (s, v) = t
        .call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(token),
            Some(serde_json::to_value(body).unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_window_in_the_device_zone_opens_at_each_devices_local_time() {
    let t = setup_with(|c| c.test_clock = true).await;
    let admin = t.admin().await;
    let (tokyo, tok_tokyo) = t.device(&admin, "tokyo").await;
    let (berlin, tok_berlin) = t.device(&admin, "berlin").await;
    let (unknown, tok_unknown) = t.device(&admin, "unknown").await;
    with_timezone(&t, &tok_tokyo, "host-tokyo", "Asia/Tokyo").await;
    with_timezone(&t, &tok_berlin, "host-berlin", "Europe/Berlin").await;
    t.apt_package(&admin, "app", &["1"], json!([])).await;
    t.group_with(
        &admin,
        json!({"name": "fleet"}),
        &[&tokyo, &berlin, &unknown],
    )
    .await;
    // 02:00–04:00 local time. 2030-01-07 17:30 UTC is 02:30 in Tokyo (UTC+9), 18:30 in Berlin
    // (UTC+1) and 17:30 for the device without a zone (UTC).
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/maintenance-windows",
        &admin,
        Some(json!({"name": "local night", "timezone": "device", "groups": ["fleet"],
                    "schedule": {"kind": "weekly", "days": ["mon","tue","wed","thu","fri","sat","sun"],
                                 "start": "02:00", "duration_minutes": 120}})),
    )
    .await;
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/assignments",
        &admin,
        Some(json!({"package": "app", "target": {"kind": "group", "id": "fleet"}, "intent": "required"})),
    )
    .await;
    let at = |ms: i64| {
        let t = &t;
        let admin = &admin;
        async move {
            t.ok(
                StatusCode::NO_CONTENT,
                Method::PUT,
                "/api/v1/system/clock",
                admin,
                Some(json!({"now_ms": ms})),
            )
            .await;
            compile(t).await;
        }
    };
    let held = |m: ManifestPayload| m.items[0].hold.is_some();
    let jan7_1730_utc: i64 = 1_894_037_400_000;
    at(jan7_1730_utc).await;
    assert!(
        !held(manifest(&t, &tok_tokyo).await.unwrap()),
        "02:30 in Tokyo"
    );
    assert!(
        held(manifest(&t, &tok_berlin).await.unwrap()),
        "18:30 in Berlin"
    );
    assert!(held(manifest(&t, &tok_unknown).await.unwrap()), "17:30 UTC");
    // 01:30 UTC on the 8th: 02:30 in Berlin, 10:30 in Tokyo, 01:30 UTC.
    at(jan7_1730_utc + 8 * 3_600_000).await;
    assert!(held(manifest(&t, &tok_tokyo).await.unwrap()));
    assert!(!held(manifest(&t, &tok_berlin).await.unwrap()));
    assert!(held(manifest(&t, &tok_unknown).await.unwrap()));
    // 02:30 UTC: the device without a zone opens; Berlin is still open (03:30).
    at(jan7_1730_utc + 9 * 3_600_000).await;
    assert!(!held(manifest(&t, &tok_unknown).await.unwrap()));
    assert!(!held(manifest(&t, &tok_berlin).await.unwrap()));
}

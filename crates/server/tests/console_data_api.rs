//! API the console's group and device pages read: the rule-field catalogue (every field it
//! offers is accepted by the server with every operator it lists, and custom fields join it),
//! assignments with their per-status device counts filtered by group, and a device's runs
//! across jobs. Runs on SQLite and (with `CAPSTAN_API_TEST_DB=postgres`) PostgreSQL.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{assert_error, setup};
use serde_json::{Value, json};

const GET: Method = Method::GET;
const POST: Method = Method::POST;

fn now() -> i64 {
    capstan_server::state::now_ms()
}

/// A value of the right shape for `op` on a field of type `ty` (the preview validates it).
fn sample(ty: &str, op: &str, values: &[Value]) -> Option<Value> {
    let first = values.first().cloned();
    Some(match (op, ty) {
        ("exists" | "not_exists", _) => return None,
        ("older_than" | "newer_than", _) => json!("7d"),
        ("cidr", _) => json!("10.0.0.0/8"),
        ("regex", _) => json!("^a"),
        (op, _) if op.starts_with("version_") => json!("1.2"),
        ("in", "number") => json!([1, 2]),
        ("in", _) => json!([first.unwrap_or(json!("a"))]),
        (_, "number") => json!(3),
        (_, "boolean") => json!(true),
        (_, "timestamp") => json!("2026-01-31"),
        _ => first.unwrap_or(json!("a")),
    })
}

#[tokio::test]
async fn every_rule_field_and_operator_offered_is_accepted_and_custom_fields_join() {
    let t = setup().await;
    let admin = t.admin().await;
    let viewer = t.user(&admin, "v", "viewer").await;
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/custom-fields",
        &admin,
        Some(json!({"name": "tier", "type": "enum", "enum_values": ["gold", "silver"]})),
    )
    .await;
    let fields = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/groups/rule-fields",
            &viewer,
            None,
        )
        .await;
    let fields = fields.as_array().expect("a list");
    let by_name = |n: &str| {
        fields
            .iter()
            .find(|f| f["name"] == n)
            .unwrap_or_else(|| panic!("{n} is not offered"))
    };
    assert_eq!(by_name("os.id")["type"], "string");
    assert_eq!(
        by_name("status.online")["operators"],
        json!(["eq", "ne", "exists", "not_exists"])
    );
    assert_eq!(by_name("network.interfaces[].ipv4")["multi"], true);
    assert_eq!(by_name("tags")["whole_list"], true);
    assert_eq!(
        by_name("virtualization.kind")["values"],
        json!(["physical", "virtual_machine", "container"])
    );
    let tier = by_name("custom.tier");
    assert_eq!(
        (tier["custom"].as_bool(), tier["values"].clone()),
        (Some(true), json!(["gold", "silver"]))
    );

    let mut checked = 0;
    for f in fields {
        let name = f["name"].as_str().unwrap();
        let ty = f["type"].as_str().unwrap();
        let values = f["values"].as_array().cloned().unwrap_or_default();
        for op in f["operators"].as_array().unwrap() {
            let op = op.as_str().unwrap();
            let mut cond = json!({"field": name, "op": op});
            if let Some(v) = sample(ty, op, &values) {
                cond["value"] = v;
            }
            let (s, v) = t
                .call(
                    POST,
                    "/api/v1/groups/preview",
                    Some(&viewer),
                    Some(json!({"rule": cond})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{cond} is offered but refused: {v}");
            checked += 1;
        }
    }
    assert!(checked > 400, "only {checked} field/operator pairs");

    // An operator not offered for a field is refused, naming the offered ones.
    let (s, v) = t
        .call(
            POST,
            "/api/v1/groups/preview",
            Some(&viewer),
            Some(json!({"rule": {"field": "status.online", "op": "gt", "value": 1}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn assignments_of_a_group_carry_device_counts_per_status() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, _) = t.device(&admin, "a").await;
    let (b, _) = t.device(&admin, "b").await;
    let (c, _) = t.device(&admin, "c").await;
    t.apt_package(&admin, "nginx", &["1.0"], json!([])).await;
    t.apt_package(&admin, "curl", &["2.0"], json!([])).await;
    let parent = t.group_with(&admin, json!({"name": "web"}), &[&a]).await;
    let child = t
        .group_with(
            &admin,
            json!({"name": "web-eu", "parent_id": parent}),
            &[&b],
        )
        .await;
    for (pkg, target) in [
        ("nginx", json!({"kind": "group", "id": parent})),
        ("curl", json!({"kind": "group", "id": child})),
        ("curl", json!({"kind": "device", "id": c})),
    ] {
        t.ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/assignments",
            &admin,
            Some(json!({"package": pkg, "target": target, "intent": "required"})),
        )
        .await;
    }
    // The same package on the same device again is refused; the console shows the reason.
    let again = t
        .call(
            POST,
            "/api/v1/assignments",
            Some(&admin),
            Some(json!({"package": "curl", "target": {"kind": "device", "id": c}, "intent": "required"})),
        )
        .await;
    assert_eq!(again.0, StatusCode::CONFLICT, "{}", again.1);
    capstan_server::deploy::compile_now(&t.state, None)
        .await
        .expect("compile");

    // The parent group targets a and, through its child group, b.
    let list = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/assignments?group=web",
            &admin,
            None,
        )
        .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "only the group's own assignment: {list:?}");
    assert_eq!(list[0]["package_name"], "nginx");
    assert_eq!(list[0]["counts"]["total"], 2, "{}", list[0]);
    let child_list = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/assignments?group={child}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(child_list[0]["package_name"], "curl");
    assert_eq!(child_list[0]["counts"]["total"], 1, "{child_list}");
    // Reaching b: both group assignments, counted once each.
    let reach = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/assignments?device={b}"),
            &admin,
            None,
        )
        .await;
    let mut names: Vec<&str> = reach
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["package_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["curl", "nginx"]);
    // A deployment keeps its counts at the top, not twice.
    let deployment = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/deployments",
            &admin,
            Some(
                json!({"name": "d", "package": "nginx", "intent": "required",
                        "target": {"kind": "device", "id": c}}),
            ),
        )
        .await;
    assert!(deployment["counts"].is_object(), "{deployment}");
    assert!(
        deployment["assignment"].get("counts").is_none(),
        "{deployment}"
    );
}

#[tokio::test]
async fn a_device_lists_its_runs_across_jobs_newest_first() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let (b, _) = t.device(&admin, "b").await;
    let mut jobs = Vec::new();
    for (argv, devices) in [
        (json!(["echo", "one"]), json!([a, b])),
        (json!(["false"]), json!([a])),
        (json!(["echo", "three"]), json!([b])),
    ] {
        let job = t
            .ok(
                StatusCode::CREATED,
                POST,
                "/api/v1/jobs",
                &admin,
                Some(
                    json!({"spec": {"action": {"type": "command", "argv": argv}},
                            "targets": {"devices": devices}}),
                ),
            )
            .await;
        jobs.push(job["id"].as_str().unwrap().to_string());
        // Jobs are ordered by creation time; keep them apart.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Device a runs the second job and it fails with exit code 1.
    let (s, claimed) = t
        .call(POST, "/agent/v1/runs/claim", Some(&ta), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::OK, "{claimed}");
    let payloads: Vec<Value> = claimed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r["payload"].as_str().unwrap()).unwrap())
        .collect();
    let second = payloads
        .iter()
        .find(|p| p["job_id"] == jobs[1].as_str())
        .expect("the second job's run is delivered");
    let run = second["run_id"].as_str().unwrap();
    let started = now() - 50;
    let (s, v) = t
        .call(
            POST,
            &format!("/agent/v1/runs/{run}/start"),
            Some(&ta),
            Some(json!({"attempt": 1, "started_at_ms": started})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let finished = now();
    let (s, v) = t
        .call(
            POST,
            &format!("/agent/v1/runs/{run}/finish"),
            Some(&ta),
            Some(json!({"attempt": 1, "outcome": "failed", "exit_code": 1,
                        "started_at_ms": started, "finished_at_ms": finished})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    let page = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/devices/{a}/runs"),
            &admin,
            None,
        )
        .await;
    assert_eq!(page["total"], 2, "{page}");
    let items = page["items"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["run"]["job_id"].as_str().unwrap(),
                i["job_name"].as_str().unwrap(),
                i["run"]["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (jobs[1].as_str(), "false", "failed"),
            (jobs[0].as_str(), "echo one", "delivered")
        ]
    );
    let failed = &items[0];
    assert_eq!(failed["run"]["exit_code"], 1);
    assert_eq!(failed["run"]["device_id"], a.as_str());
    assert_eq!(failed["job_kind"], "command");
    assert_eq!(failed["job_created_by"], "user:admin");
    assert_eq!(failed["started_at_ms"], started);
    assert_eq!(failed["finished_at_ms"], finished);
    assert!(items[1]["finished_at_ms"].is_null(), "{}", items[1]);

    // Paging, and b sees only its own runs.
    let second_page = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/devices/{a}/runs?limit=1&offset=1"),
            &admin,
            None,
        )
        .await;
    assert_eq!(second_page["total"], 2);
    assert_eq!(second_page["items"].as_array().unwrap().len(), 1);
    assert_eq!(second_page["items"][0]["run"]["job_id"], jobs[0].as_str());
    let of_b = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/devices/{b}/runs"),
            &admin,
            None,
        )
        .await;
    let b_jobs: Vec<&str> = of_b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["run"]["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(b_jobs, [jobs[2].as_str(), jobs[0].as_str()]);

    // A viewer may read jobs; unknown devices and bad pages are refused.
    let viewer = t.user(&admin, "v", "viewer").await;
    t.ok(
        StatusCode::OK,
        GET,
        &format!("/api/v1/devices/{a}/runs"),
        &viewer,
        None,
    )
    .await;
    assert_error(
        &t.call(GET, "/api/v1/devices/nope/runs", Some(&admin), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (s, _) = t
        .call(
            GET,
            &format!("/api/v1/devices/{a}/runs?limit=0"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

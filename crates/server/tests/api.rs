//! API tests against the real router (no socket): authentication and permissions on every
//! console route, the error shape for hostile and malformed input, enrollment limits, device
//! credential scoping, and the inventory → timeline flow. Each test gets its own SQLite
//! database; the same flows run against real processes in the end-to-end suite.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use capstan_proto::agent::{CheckinRequest, DeviceIdentity, EnrollRequest, InventoryUpload};
use capstan_proto::inventory::{
    INVENTORY_SCHEMA_VERSION, InventoryDocument, OperatingSystem, SoftwarePackage,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::{T, assert_error, setup, setup_with};

fn doc(hostname: &str, packages: &[(&str, &str)]) -> InventoryDocument {
    InventoryDocument {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at_ms: 1,
        os: Some(OperatingSystem {
            family: "linux".into(),
            hostname: hostname.into(),
            name: Some("Debian GNU/Linux".into()),
            version_id: Some("12".into()),
            ..Default::default()
        }),
        software: Some(
            packages
                .iter()
                .map(|(n, v)| SoftwarePackage {
                    name: (*n).into(),
                    version: (*v).into(),
                    source: "dpkg".into(),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }
}

fn upload(d: InventoryDocument) -> Value {
    let digest = capstan_core::inventory::digest(&d);
    serde_json::to_value(InventoryUpload {
        digest,
        document: d,
    })
    .unwrap()
}

#[tokio::test]
async fn every_console_route_requires_authentication() {
    let t = setup().await;
    let spec = capstan_server::app::openapi();
    let public = [
        "/api/v1/auth/login",
        "/healthz",
        "/readyz",
        "/agent/v1/enroll",
    ];
    let mut checked = 0;
    for (path, item) in spec.paths.paths.iter() {
        if public.contains(&path.as_str()) {
            continue;
        }
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        for (method, op) in [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ] {
            if op.is_none() {
                continue;
            }
            let resp = t
                .call(method.clone(), &concrete, None, Some(json!({})))
                .await;
            assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthenticated");
            // A device credential is not an operator credential and vice versa.
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "only {checked} routes checked: is the spec complete?"
    );
}

#[tokio::test]
async fn login_sessions_cookies_and_logout() {
    let t = setup().await;
    let bad = t
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "nope"})),
        )
        .await;
    assert_error(&bad, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let unknown = t
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ghost", "password": "nope"})),
        )
        .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_credentials");

    let token = t.admin().await;
    let (s, me) = t
        .call(Method::GET, "/api/v1/auth/me", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");

    // The console's cookie works the same way.
    let req = Request::builder()
        .uri("/api/v1/auth/me")
        .header(header::COOKIE, format!("other=1; capstan_session={token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        t.router.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );

    let (s, _) = t
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_error(
        &t.call(Method::GET, "/api/v1/auth/me", Some(&token), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // A tampered token is rejected.
    let token = t.admin().await;
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('0') { '1' } else { '0' });
    assert_error(
        &t.call(Method::GET, "/api/v1/auth/me", Some(&tampered), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn roles_limit_what_operators_may_do() {
    let t = setup().await;
    let admin = t.admin().await;
    for (name, role) in [("vera", "viewer"), ("otto", "operator")] {
        let (s, v) = t
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&admin),
                Some(json!({"username": name, "password": "long-enough-password", "role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let dup = t
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "vera", "password": "long-enough-password", "role": "viewer"})),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    let weak = t
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "w", "password": "short", "role": "viewer"})),
        )
        .await;
    assert_error(&weak, StatusCode::BAD_REQUEST, "validation_failed");

    let viewer = t.login("vera", "long-enough-password").await;
    let operator = t.login("otto", "long-enough-password").await;
    let (device, _) = t.device(&admin, "r1").await;

    // Viewer: reads, nothing else.
    assert_eq!(
        t.call(Method::GET, "/api/v1/devices", Some(&viewer), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        t.call(
            Method::GET,
            "/api/v1/enrollment-tokens",
            Some(&viewer),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    for (m, p, b) in [
        (
            Method::POST,
            "/api/v1/users".to_string(),
            Some(json!({"username": "x", "password": "long-enough-password", "role": "admin"})),
        ),
        (Method::GET, "/api/v1/users".to_string(), None),
        (Method::DELETE, format!("/api/v1/devices/{device}"), None),
        (
            Method::POST,
            format!("/api/v1/devices/{device}/refresh-inventory"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/enrollment-tokens".to_string(),
            Some(json!({"name": "x"})),
        ),
    ] {
        assert_error(
            &t.call(m, &p, Some(&viewer), b).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    // Operator: acts on devices and enrollment, but cannot delete devices or manage users.
    assert_eq!(
        t.call(
            Method::POST,
            &format!("/api/v1/devices/{device}/refresh-inventory"),
            Some(&operator),
            None
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    assert_error(
        &t.call(
            Method::DELETE,
            &format!("/api/v1/devices/{device}"),
            Some(&operator),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &t.call(Method::GET, "/api/v1/users", Some(&operator), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // The forbidden attempts changed nothing.
    assert_eq!(
        t.call(
            Method::GET,
            &format!("/api/v1/devices/{device}"),
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, users) = t
        .call(Method::GET, "/api/v1/users", Some(&admin), None)
        .await;
    assert_eq!(users.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn api_tokens_act_for_their_user_until_revoked() {
    let t = setup().await;
    let admin = t.admin().await;
    let (s, created) = t
        .call(
            Method::POST,
            "/api/v1/api-tokens",
            Some(&admin),
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let api = created["token"].as_str().unwrap();
    assert!(api.starts_with("capt_"));
    assert_eq!(
        t.call(Method::GET, "/api/v1/devices", Some(api), None)
            .await
            .0,
        StatusCode::OK
    );
    let (_, list) = t
        .call(Method::GET, "/api/v1/api-tokens", Some(&admin), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("token").is_none(), "secrets are never listed");
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/api/v1/api-tokens/{id}"),
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &t.call(Method::GET, "/api/v1/devices", Some(api), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn malformed_bodies_get_the_standard_error_shape_and_store_nothing() {
    let t = setup().await;
    let admin = t.admin().await;
    let path = "/api/v1/enrollment-tokens";
    let syntax = t
        .raw(
            Method::POST,
            path,
            Some(&admin),
            Some("application/json"),
            b"{\"name\": ".to_vec(),
        )
        .await;
    assert_error(&syntax, StatusCode::BAD_REQUEST, "malformed_json");
    let types = t
        .call(Method::POST, path, Some(&admin), Some(json!({"name": 5})))
        .await;
    assert_error(&types, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let unknown_field = t
        .call(
            Method::POST,
            path,
            Some(&admin),
            Some(json!({"name": "x", "max_usez": 3})),
        )
        .await;
    assert_error(
        &unknown_field,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let no_ct = t
        .raw(
            Method::POST,
            path,
            Some(&admin),
            None,
            b"{\"name\":\"x\"}".to_vec(),
        )
        .await;
    assert_error(
        &no_ct,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let bad_tag = t
        .call(
            Method::POST,
            path,
            Some(&admin),
            Some(json!({"name": "x", "default_tags": ["<script>"]})),
        )
        .await;
    assert_error(&bad_tag, StatusCode::BAD_REQUEST, "validation_failed");
    let zero = t
        .call(
            Method::POST,
            path,
            Some(&admin),
            Some(json!({"name": "x", "max_uses": 0})),
        )
        .await;
    assert_error(&zero, StatusCode::BAD_REQUEST, "validation_failed");
    let (_, list) = t.call(Method::GET, path, Some(&admin), None).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "no rejected request stored anything"
    );

    assert_error(
        &t.call(Method::GET, "/api/v1/nope", Some(&admin), None)
            .await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    );
    assert_error(
        &t.call(Method::PATCH, "/api/v1/devices", Some(&admin), None)
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &t.call(Method::GET, "/api/v1/devices?limit=0", Some(&admin), None)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &t.call(Method::GET, "/api/v1/devices?limit=abc", Some(&admin), None)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &t.call(
            Method::GET,
            "/api/v1/devices?sort=secret",
            Some(&admin),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &t.call(
            Method::GET,
            "/api/v1/devices/does-not-exist",
            Some(&admin),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn nul_characters_are_refused_everywhere() {
    let t = setup().await;
    let admin = t.admin().await;
    for path in [
        "/api/v1/devices?search=a%00b",
        "/api/v1/devices/%00",
        "/api/v1/devices/x%00/timeline",
    ] {
        let r = t.call(Method::GET, path, Some(&admin), None).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");
    }
    let r = t
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ad\u{0}min", "password": "x"})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    let r = t
        .call(
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(&admin),
            Some(json!({"name": "a\u{0}"})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
}

#[tokio::test]
async fn enrollment_tokens_expire_run_out_and_revoke() {
    let t = setup().await;
    let admin = t.admin().await;
    let (s, created) = t
        .call(
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(&admin),
            Some(json!({"name": "two", "max_uses": 2, "default_tags": ["lab"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        created["install_command"]
            .as_str()
            .unwrap()
            .contains("install.sh")
    );
    let two = created["token"].as_str().unwrap();
    assert_eq!(t.enroll(two, "a").await.0, StatusCode::OK);
    assert_eq!(t.enroll(two, "b").await.0, StatusCode::OK);
    assert_error(
        &t.enroll(two, "c").await,
        StatusCode::UNAUTHORIZED,
        "enrollment_token_exhausted",
    );
    // Re-enrolling a known machine still needs a usable token.
    assert_error(
        &t.enroll(two, "a").await,
        StatusCode::UNAUTHORIZED,
        "enrollment_token_exhausted",
    );

    let short = t
        .enrollment_token(&admin, json!({"name": "short", "expires_in_secs": 1}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_error(
        &t.enroll(&short, "d").await,
        StatusCode::UNAUTHORIZED,
        "enrollment_token_expired",
    );

    let (_, list) = t
        .call(Method::GET, "/api/v1/enrollment-tokens", Some(&admin), None)
        .await;
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["expired", "exhausted"]);

    let third = t.enrollment_token(&admin, json!({"name": "third"})).await;
    let id = third.split('_').nth(1).unwrap();
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/api/v1/enrollment-tokens/{id}"),
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &t.enroll(&third, "e").await,
        StatusCode::UNAUTHORIZED,
        "enrollment_token_invalid",
    );
    // A forged secret for a real token id is rejected the same way.
    let forged = format!("cape_{id}_{}", "ab".repeat(32));
    assert_error(
        &t.enroll(&forged, "f").await,
        StatusCode::UNAUTHORIZED,
        "enrollment_token_invalid",
    );
    assert_error(
        &t.enroll("garbage", "g").await,
        StatusCode::UNAUTHORIZED,
        "enrollment_token_invalid",
    );

    let (_, page) = t
        .call(Method::GET, "/api/v1/devices", Some(&admin), None)
        .await;
    assert_eq!(
        page["total"], 2,
        "only the two successful enrollments created devices"
    );
    assert_eq!(page["items"][0]["tags"], json!(["lab"]));
}

#[tokio::test]
async fn device_credentials_are_scoped_and_revocable() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, a_tok) = t.device(&admin, "aa").await;
    let (b, b_tok) = t.device(&admin, "bb").await;
    // A device credential opens no console route, not even for its own device.
    assert_error(
        &t.call(
            Method::GET,
            &format!("/api/v1/devices/{b}"),
            Some(&a_tok),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &t.call(
            Method::GET,
            &format!("/api/v1/devices/{a}/timeline"),
            Some(&a_tok),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // Agent routes act only on the credential's own device: A's upload lands on A, never B.
    let (s, v) = t
        .call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&a_tok),
            Some(upload(doc("host-a", &[("bash", "5.2")]))),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, da) = t
        .call(
            Method::GET,
            &format!("/api/v1/devices/{a}"),
            Some(&admin),
            None,
        )
        .await;
    let (_, db) = t
        .call(
            Method::GET,
            &format!("/api/v1/devices/{b}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(da["hostname"], "host-a");
    assert!(db["inventory"].is_null());
    // An operator token is not a device credential.
    assert_error(
        &t.call(
            Method::POST,
            "/agent/v1/checkin",
            Some(&admin),
            Some(json!({"agent_version": "1"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // Revoked: 401 device_revoked on every agent route.
    assert_eq!(
        t.call(
            Method::POST,
            &format!("/api/v1/devices/{b}/revoke"),
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &t.call(
            Method::POST,
            "/agent/v1/checkin",
            Some(&b_tok),
            Some(json!({"agent_version": "1"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "device_revoked",
    );
    assert_error(
        &t.call(
            Method::GET,
            "/agent/v1/wait?generation=0",
            Some(&b_tok),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "device_revoked",
    );
    // Deleted: the same.
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/api/v1/devices/{a}"),
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &t.call(
            Method::POST,
            "/agent/v1/checkin",
            Some(&a_tok),
            Some(json!({"agent_version": "1"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "device_revoked",
    );
    assert_error(
        &t.call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&a_tok),
            Some(upload(doc("host-a", &[]))),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "device_revoked",
    );
}

#[tokio::test]
async fn hostile_inventories_are_refused_and_store_nothing() {
    let t = setup().await;
    let admin = t.admin().await;
    let (id, tok) = t.device(&admin, "inv").await;

    // 50 MB body: refused by the size limit before parsing.
    let mut big = br#"{"digest":"x","document":{"schema_version":1,"collected_at_ms":0,"collectors":[],"bogus":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 50 << 20));
    big.extend(b"\"}}");
    let resp = t
        .raw(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&tok),
            Some("application/json"),
            big,
        )
        .await;
    assert_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // 100,000 software entries: under the byte limit, refused by the entry limit.
    let many: Vec<(String, String)> = (0..100_000)
        .map(|i| (format!("p{i}"), "1".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let resp = t
        .call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&tok),
            Some(upload(doc("h", &refs))),
        )
        .await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        resp.1["message"].as_str().unwrap().contains("software"),
        "{}",
        resp.1
    );

    // Wrong digest, wrong types, missing os section, NUL in a name.
    let mut wrong = upload(doc("h", &[("a", "1")]));
    wrong["digest"] = json!("0".repeat(64));
    assert_error(
        &t.call(Method::PUT, "/agent/v1/inventory", Some(&tok), Some(wrong))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );
    let mut types = upload(doc("h", &[]));
    types["document"]["software"] = json!("lots");
    assert_error(
        &t.call(Method::PUT, "/agent/v1/inventory", Some(&tok), Some(types))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let mut no_os = doc("h", &[]);
    no_os.os = None;
    assert_error(
        &t.call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&tok),
            Some(upload(no_os)),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );
    assert_error(
        &t.call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&tok),
            Some(upload(doc("h", &[("a\u{0}b", "1")]))),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );
    let nan_perf = t
        .raw(
            Method::POST,
            "/agent/v1/checkin",
            Some(&tok),
            Some("application/json"),
            br#"{"agent_version":"1","performance":{"load_1":-4}}"#.to_vec(),
        )
        .await;
    assert_error(&nan_perf, StatusCode::BAD_REQUEST, "validation_failed");

    let (_, d) = t
        .call(
            Method::GET,
            &format!("/api/v1/devices/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(
        d["inventory"].is_null(),
        "no rejected upload was stored: {}",
        d["inventory"]
    );
    let (_, tl) = t
        .call(
            Method::GET,
            &format!("/api/v1/devices/{id}/timeline"),
            Some(&admin),
            None,
        )
        .await;
    let kinds: Vec<&str> = tl["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["enrolled"]);
}

#[tokio::test]
async fn checkin_inventory_and_timeline_flow() {
    let t = setup().await;
    let admin = t.admin().await;
    let (id, tok) = t.device(&admin, "flow").await;
    let checkin = |digest: Option<String>| {
        serde_json::to_value(CheckinRequest {
            agent_version: "0.1.0".into(),
            inventory_digest: digest,
            ..Default::default()
        })
        .unwrap()
    };

    let (s, v) = t
        .call(
            Method::POST,
            "/agent/v1/checkin",
            Some(&tok),
            Some(checkin(None)),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["send_inventory"], true, "nothing stored yet");
    let first = doc("flow-host", &[("bash", "5.2"), ("curl", "7.88")]);
    let (s, v) = t
        .call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&tok),
            Some(upload(first.clone())),
        )
        .await;
    assert_eq!((s, v["first"].clone()), (StatusCode::OK, json!(true)));
    let digest = capstan_core::inventory::digest(&first);
    let (_, v) = t
        .call(
            Method::POST,
            "/agent/v1/checkin",
            Some(&tok),
            Some(checkin(Some(digest.clone()))),
        )
        .await;
    assert_eq!(
        v["send_inventory"], false,
        "delta mode: same digest, nothing to send"
    );

    // An operator asks for a refresh: the next check-in says re-collect and send.
    let gen_before = v["wake_generation"].as_u64().unwrap();
    let (s, _) = t
        .call(
            Method::POST,
            &format!("/api/v1/devices/{id}/refresh-inventory"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (_, w) = t
        .call(
            Method::GET,
            &format!("/agent/v1/wait?generation={gen_before}&timeout_secs=5"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(w["wake"], true, "the refresh woke the device");
    let (_, v) = t
        .call(
            Method::POST,
            "/agent/v1/checkin",
            Some(&tok),
            Some(checkin(Some(digest))),
        )
        .await;
    assert_eq!(
        (
            v["send_inventory"].clone(),
            v["recollect_inventory"].clone()
        ),
        (json!(true), json!(true))
    );

    let second = doc("flow-host", &[("bash", "5.2.15"), ("nginx", "1.22")]);
    let (_, v) = t
        .call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&tok),
            Some(upload(second)),
        )
        .await;
    assert_eq!(v["changes"], 3, "{v}");
    let (_, v) = t
        .call(
            Method::POST,
            "/agent/v1/checkin",
            Some(&tok),
            Some(checkin(None)),
        )
        .await;
    assert_eq!(v["recollect_inventory"], false, "the refresh was satisfied");

    let (_, tl) = t
        .call(
            Method::GET,
            &format!("/api/v1/devices/{id}/timeline?limit=3"),
            Some(&admin),
            None,
        )
        .await;
    let fields: Vec<(&str, &str)> = tl["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or(""),
                e["change"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            ("software/dpkg/nginx", "added"),
            ("software/dpkg/curl", "removed"),
            ("software/dpkg/bash", "changed")
        ]
    );
    let before = tl["next_before"].as_i64().expect("older entries exist");
    let (_, older) = t
        .call(
            Method::GET,
            &format!("/api/v1/devices/{id}/timeline?before={before}"),
            Some(&admin),
            None,
        )
        .await;
    let kinds: Vec<&str> = older["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["refresh_requested", "inventory_first", "enrolled"]
    );
    assert!(older["next_before"].is_null());

    let (_, page) = t
        .call(
            Method::GET,
            "/api/v1/devices?status=online",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["hostname"], "flow-host");
    assert_eq!(page["items"][0]["os_name"], "Debian GNU/Linux");
    let (_, page) = t
        .call(
            Method::GET,
            "/api/v1/devices?status=offline",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(page["total"], 0);
    let audit = t.state.store.audit_log(100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "device.refresh_inventory" && a.actor == "user:admin")
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_spec_are_public() {
    let t = setup().await;
    assert_eq!(
        t.call(Method::GET, "/healthz", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        t.call(Method::GET, "/readyz", None, None).await.1["status"],
        "ready"
    );
    let (s, spec) = t.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(spec["paths"]["/api/v1/devices/{id}/timeline"]["get"].is_object());
    // Exercise one counted route, then read it back from /metrics.
    t.call(Method::GET, "/healthz", None, None).await;
    let (s, text) = t.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        text.as_str()
            .unwrap()
            .contains("capstan_http_requests_total"),
        "{text}"
    );
    let (s, script) = t.call(Method::GET, "/install.sh", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(script.as_str().unwrap().contains("http://capstan.test"));
}

#[test]
fn committed_openapi_spec_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../api/openapi.json");
    let current = capstan_server::app::openapi_json();
    if std::env::var_os("CAPSTAN_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "api/openapi.json is stale: run `CAPSTAN_UPDATE_OPENAPI=1 cargo test -p capstan-server --test api committed_openapi_spec_is_current`"
    );
}

#[tokio::test]
async fn repeated_login_failures_are_rate_limited() {
    let t = setup().await;
    for _ in 0..10 {
        let r = t
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "admin", "password": "guess"})),
            )
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // The account is now locked for the window, even for the right password.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": "admin", "password": "test-admin-password"}).to_string(),
        ))
        .unwrap();
    let resp = t.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Other accounts are unaffected.
    let other = t
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "bob", "password": "x"})),
        )
        .await;
    assert_error(&other, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn refused_enrollments_are_rate_limited_per_address() {
    let t = setup().await;
    let admin = t.admin().await;
    let good = t.enrollment_token(&admin, json!({"name": "ok"})).await;
    let enroll_from = |ip: &str, token: &str, identity: &str| {
        let req = EnrollRequest {
            token: token.into(),
            identity: DeviceIdentity {
                identity_key: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    identity.as_bytes(),
                )),
                source: "instance".into(),
            },
            hostname: "h".into(),
            agent_version: "0.1.0".into(),
            os_family: "linux".into(),
            capabilities: vec![],
        };
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/agent/v1/enroll")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&req).unwrap()))
            .unwrap();
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
        r.extensions_mut().insert(axum::extract::ConnectInfo(addr));
        t.router.clone().oneshot(r)
    };
    for i in 0..30 {
        let resp = enroll_from("192.0.2.7", "cape_garbage", &format!("x{i}"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = enroll_from("192.0.2.7", &good, "real").await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a guessing address is blocked"
    );
    let resp = enroll_from("192.0.2.8", &good, "real").await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "other addresses enroll normally"
    );
    // Successful enrollments never count: many machines behind one NAT keep enrolling.
    for i in 0..40 {
        let resp = enroll_from("192.0.2.8", &good, &format!("nat{i}"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

/// Mutations of valid bodies: every answer is either a success or a 4xx in the standard error
/// shape — never a 5xx, a panic or a non-JSON error.
#[tokio::test]
async fn mutated_bodies_never_cause_server_errors() {
    let t = setup().await;
    let admin = t.admin().await;
    let (_, device_token) = t.device(&admin, "fuzz").await;
    let enroll_token = t.enrollment_token(&admin, json!({"name": "fuzz"})).await;
    let target = t.create_user(&admin, "fz-target", "viewer").await;
    let target_path = format!("/api/v1/users/{target}");
    let endpoints: Vec<(Method, &str, Option<String>, Value)> = vec![
        (
            Method::PATCH,
            &target_path,
            Some(admin.clone()),
            json!({"role": "operator", "disabled": false, "password": "long-enough-password"}),
        ),
        (
            Method::POST,
            "/api/v1/auth/password",
            Some(admin.clone()),
            json!({"current_password": "test-admin-password", "new_password": "another-long-password"}),
        ),
        (
            Method::POST,
            "/api/v1/auth/login",
            None,
            json!({"username": "admin", "password": "wrong-password"}),
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(admin.clone()),
            json!({"username": "fz", "password": "long-enough-password", "role": "viewer"}),
        ),
        (
            Method::POST,
            "/api/v1/api-tokens",
            Some(admin.clone()),
            json!({"name": "fz", "expires_in_secs": 60}),
        ),
        (
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(admin.clone()),
            json!({"name": "fz", "expires_in_secs": 60, "max_uses": 2, "default_tags": ["a"]}),
        ),
        (
            Method::POST,
            "/agent/v1/enroll",
            None,
            json!({"token": enroll_token, "identity": {"identity_key": "ab".repeat(32), "source": "instance"},
                   "hostname": "h", "agent_version": "1", "os_family": "linux", "capabilities": []}),
        ),
        (
            Method::POST,
            "/agent/v1/checkin",
            Some(device_token.clone()),
            json!({"agent_version": "1", "boot_id": "b", "inventory_digest": "d",
                   "performance": {"load_1": 0.5, "mounts": [{"mount_point": "/", "total_bytes": 10, "used_bytes": 5}]},
                   "capabilities": ["x"]}),
        ),
        (
            Method::PUT,
            "/agent/v1/inventory",
            Some(device_token.clone()),
            upload(doc("fz", &[("a", "1")])),
        ),
    ];
    let nasty: Vec<Value> = vec![
        Value::Null,
        json!(0),
        json!(-1),
        json!(1e308),
        json!(u64::MAX),
        json!(true),
        json!(""),
        json!("x".repeat(100_000)),
        json!("\u{0}\u{202e}<script>"),
        json!([]),
        json!({}),
        json!([[[[[]]]]]),
    ];
    let mut cases = 0;
    for (method, path, token, valid) in &endpoints {
        let text = valid.to_string();
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for cut in (0..text.len()).step_by((text.len() / 25).max(1)) {
            bodies.push(text.as_bytes()[..cut].to_vec());
        }
        bodies.push(b"\xff\xfe{".to_vec());
        bodies.push(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes());
        if let Value::Object(map) = valid {
            for key in map.keys() {
                for v in &nasty {
                    let mut m = map.clone();
                    m.insert(key.clone(), v.clone());
                    bodies.push(Value::Object(m).to_string().into_bytes());
                }
                let mut m = map.clone();
                m.remove(key);
                bodies.push(Value::Object(m).to_string().into_bytes());
            }
        }
        for body in bodies {
            let (status, v) = t
                .raw(
                    method.clone(),
                    path,
                    token.as_deref(),
                    Some("application/json"),
                    body.clone(),
                )
                .await;
            cases += 1;
            assert!(
                !status.is_server_error(),
                "{method} {path} answered {status} to {:?}: {v}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
            if !status.is_success() {
                assert_eq!(v["status"], status.as_u16(), "{method} {path}: {v}");
                assert!(v["code"].is_string(), "{method} {path}: {v}");
            }
        }
    }
    assert!(cases > 300, "{cases}");
}

impl T {
    async fn create_user(&self, admin: &str, name: &str, role: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/v1/users",
                Some(admin),
                Some(json!({"username": name, "password": "long-enough-password", "role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    async fn my_id(&self, token: &str) -> String {
        let (s, v) = self
            .call(Method::GET, "/api/v1/auth/me", Some(token), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    async fn api_token(&self, session: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/v1/api-tokens",
                Some(session),
                Some(json!({"name": "script"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    async fn status(&self, method: Method, path: &str, token: &str) -> StatusCode {
        self.call(method, path, Some(token), None).await.0
    }

    async fn patch_user(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(token),
            Some(body),
        )
        .await
    }

    async fn audit(&self, admin: &str, query: &str) -> Value {
        let (s, v) = self
            .call(
                Method::GET,
                &format!("/api/v1/audit-log{query}"),
                Some(admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

fn change_password(current: &str, new: &str) -> Option<Value> {
    Some(json!({"current_password": current, "new_password": new}))
}

#[tokio::test]
async fn password_change_keeps_this_session_and_ends_the_others() {
    let t = setup().await;
    let this = t.admin().await;
    let other = t.admin().await;
    let api = t.api_token(&this).await;
    let path = "/api/v1/auth/password";

    let wrong = t
        .call(
            Method::POST,
            path,
            Some(&this),
            change_password("not-the-password", "a-brand-new-password"),
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let short = t
        .call(
            Method::POST,
            path,
            Some(&this),
            change_password("test-admin-password", "short"),
        )
        .await;
    assert_error(&short, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(
        t.status(Method::GET, "/api/v1/auth/me", &other).await,
        StatusCode::OK,
        "refused changes end nothing"
    );

    let (s, v) = t
        .call(
            Method::POST,
            path,
            Some(&this),
            change_password("test-admin-password", "a-brand-new-password"),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        t.status(Method::GET, "/api/v1/auth/me", &this).await,
        StatusCode::OK,
        "the session that changed the password stays"
    );
    assert_error(
        &t.call(Method::GET, "/api/v1/auth/me", Some(&other), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(
        t.status(Method::GET, "/api/v1/devices", &api).await,
        StatusCode::OK,
        "API tokens are not sessions and keep working"
    );
    let old = t
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "test-admin-password"})),
        )
        .await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let fresh = t.login("admin", "a-brand-new-password").await;

    // Changed through an API token, every session ends.
    let (s, _) = t
        .call(
            Method::POST,
            path,
            Some(&api),
            change_password("a-brand-new-password", "a-third-password!"),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for session in [&this, &fresh] {
        assert_eq!(
            t.status(Method::GET, "/api/v1/auth/me", session).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let admin = t.login("admin", "a-third-password!").await;
    let log = t.audit(&admin, "?action=user.password_change").await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    assert_eq!(items[0]["actor"], "user:admin");
    assert_eq!(items[1]["details"]["sessions_ended"], 1);
    let text = log.to_string();
    assert!(
        !text.contains("password!") && !text.contains("brand-new"),
        "no password in the audit log: {text}"
    );

    // Guessing the current password with a stolen session is throttled.
    for _ in 0..10 {
        let r = t
            .call(
                Method::POST,
                path,
                Some(&admin),
                change_password("guess-guess-guess", "whatever-whatever"),
            )
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let blocked = t
        .call(
            Method::POST,
            path,
            Some(&admin),
            change_password("a-third-password!", "a-fourth-password"),
        )
        .await;
    assert_error(&blocked, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(
        t.status(Method::GET, "/api/v1/auth/me", &admin).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admins_manage_users_within_guard_rails() {
    let t = setup().await;
    let admin = t.admin().await;
    let me = t.my_id(&admin).await;

    // Guard rails on oneself.
    for body in [
        json!({"role": "operator"}),
        json!({"disabled": true}),
        json!({"password": "a-new-password-for-me"}),
    ] {
        let r = t.patch_user(&admin, &me, body.clone()).await;
        assert_error(&r, StatusCode::CONFLICT, "conflict");
    }
    assert_error(
        &t.call(
            Method::DELETE,
            &format!("/api/v1/users/{me}"),
            Some(&admin),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(
        t.call(Method::GET, "/api/v1/auth/me", Some(&admin), None)
            .await
            .1["role"],
        "admin",
        "the refused changes changed nothing"
    );
    assert_error(
        &t.patch_user(&admin, &me, json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );
    assert_error(
        &t.patch_user(&admin, &me, json!({"role": "admin", "name": "x"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_error(
        &t.patch_user(&admin, "no-such-user", json!({"disabled": true}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Demoting another admin ends its sessions; its API token acts with the new role.
    let ada = t.create_user(&admin, "ada", "admin").await;
    let ada_session = t.login("ada", "long-enough-password").await;
    let ada_api = t.api_token(&ada_session).await;
    assert_eq!(
        t.status(Method::GET, "/api/v1/users", &ada_api).await,
        StatusCode::OK
    );
    let (s, v) = t
        .patch_user(&admin, &ada, json!({"role": "operator"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "operator");
    assert_eq!(
        t.status(Method::GET, "/api/v1/auth/me", &ada_session).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.status(Method::GET, "/api/v1/users", &ada_api).await,
        StatusCode::FORBIDDEN
    );

    // Disabling locks the user out everywhere; enabling restores its API tokens.
    let (s, v) = t.patch_user(&admin, &ada, json!({"disabled": true})).await;
    assert_eq!((s, v["disabled"].clone()), (StatusCode::OK, json!(true)));
    assert_eq!(
        t.status(Method::GET, "/api/v1/devices", &ada_api).await,
        StatusCode::UNAUTHORIZED
    );
    let login = t
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ada", "password": "long-enough-password"})),
        )
        .await;
    assert_error(&login, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (_, users) = t
        .call(Method::GET, "/api/v1/users", Some(&admin), None)
        .await;
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "ada" && u["disabled"] == true),
        "{users}"
    );
    let (s, _) = t
        .patch_user(
            &admin,
            &ada,
            json!({"disabled": false, "password": "ada-has-a-new-password"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        t.status(Method::GET, "/api/v1/devices", &ada_api).await,
        StatusCode::OK
    );
    let old = t
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ada", "password": "long-enough-password"})),
        )
        .await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials");
    t.login("ada", "ada-has-a-new-password").await;

    // Deleting removes the user with its sessions and tokens.
    let path = format!("/api/v1/users/{ada}");
    assert_eq!(
        t.status(Method::DELETE, &path, &admin).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.status(Method::GET, "/api/v1/devices", &ada_api).await,
        StatusCode::UNAUTHORIZED
    );
    assert_error(
        &t.call(Method::DELETE, &path, Some(&admin), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, users) = t
        .call(Method::GET, "/api/v1/users", Some(&admin), None)
        .await;
    assert_eq!(users.as_array().unwrap().len(), 1);

    // The audit log has each change with its before and after.
    let log = t.audit(&admin, "?actor=user:admin").await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.delete",
            "user.update",
            "user.update",
            "user.update",
            "user.create"
        ]
    );
    let demotion = &log["items"][3];
    assert_eq!(demotion["target"], ada.as_str());
    assert_eq!(
        demotion["details"]["before"],
        json!({"role": "admin", "disabled": false})
    );
    assert_eq!(
        demotion["details"]["after"],
        json!({"role": "operator", "disabled": false})
    );
    assert_eq!(log["items"][1]["details"]["password_reset"], true);
    assert!(!log.to_string().contains("ada-has-a-new-password"));
}

#[tokio::test]
async fn two_admins_disabling_each_other_leave_one_admin() {
    let t = setup().await;
    let root = t.admin().await;
    let root_id = t.my_id(&root).await;
    let ada_id = t.create_user(&root, "ada", "admin").await;
    let ada = t.login("ada", "long-enough-password").await;
    let (a, b) = tokio::join!(
        t.patch_user(&root, &ada_id, json!({"disabled": true})),
        t.patch_user(&ada, &root_id, json!({"disabled": true})),
    );
    let outcomes = [a.0, b.0];
    assert_eq!(
        outcomes.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "exactly one change wins: {a:?} {b:?}"
    );
    // The loser is refused as the last admin, or — when the winner disabled it first — it is
    // no longer authenticated at all.
    for (status, body) in [&a, &b] {
        if *status == StatusCode::CONFLICT {
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("last enabled admin"),
                "{body}"
            );
        } else {
            assert!(
                [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(status),
                "{status} {body}"
            );
        }
    }
    let admins = t
        .state
        .store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.role == "admin" && !u.disabled)
        .count();
    assert_eq!(admins, 1);
}

#[tokio::test]
async fn only_admins_manage_users_and_read_the_audit_log() {
    let t = setup().await;
    let admin = t.admin().await;
    let admin_id = t.my_id(&admin).await;
    t.create_user(&admin, "vera", "viewer").await;
    t.create_user(&admin, "otto", "operator").await;
    for name in ["vera", "otto"] {
        let session = t.login(name, "long-enough-password").await;
        for (m, p, b) in [
            (Method::GET, "/api/v1/audit-log".to_string(), None),
            (
                Method::PATCH,
                format!("/api/v1/users/{admin_id}"),
                Some(json!({"disabled": true})),
            ),
            (Method::DELETE, format!("/api/v1/users/{admin_id}"), None),
        ] {
            assert_error(
                &t.call(m, &p, Some(&session), b).await,
                StatusCode::FORBIDDEN,
                "forbidden",
            );
        }
        // Everyone may change their own password.
        let (s, v) = t
            .call(
                Method::POST,
                "/api/v1/auth/password",
                Some(&session),
                change_password("long-enough-password", "my-own-new-password"),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{name}: {v}");
    }
    assert!(
        !t.state
            .store
            .user(&admin_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
}

#[tokio::test]
async fn audit_log_names_the_actor_and_pages_newest_first() {
    let t = setup().await;
    let admin = t.admin().await;
    t.create_user(&admin, "otto", "operator").await;
    let otto = t.login("otto", "long-enough-password").await;
    let (s, created) = t
        .call(
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(&otto),
            Some(json!({"name": "lab"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let token_id = created["id"].as_str().unwrap();
    let secret = created["token"].as_str().unwrap();
    let (device, _) = t.device(&admin, "audited").await;
    assert_eq!(
        t.status(Method::DELETE, &format!("/api/v1/devices/{device}"), &admin)
            .await,
        StatusCode::NO_CONTENT
    );

    let all = t.audit(&admin, "").await;
    assert!(all["next_before"].is_null());
    let items = all["items"].as_array().unwrap();
    let ids: Vec<i64> = items.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(items[0]["action"], "device.delete");
    assert_eq!(items[0]["actor"], "user:admin");
    assert_eq!(items[0]["target"], device.as_str());
    assert_eq!(items[0]["details"]["hostname"], "host-audited");
    let otto_create = items
        .iter()
        .find(|e| e["target"] == token_id)
        .expect("otto's token is audited");
    assert_eq!(otto_create["action"], "enrollment_token.create");
    assert_eq!(otto_create["actor"], "user:otto");
    assert_eq!(otto_create["details"]["name"], "lab");
    assert!(otto_create["at_ms"].as_i64().unwrap() > 0);
    assert!(!all.to_string().contains(secret), "no secrets in the log");

    let by_otto = t.audit(&admin, "?actor=user:otto").await;
    assert_eq!(by_otto["items"].as_array().unwrap().len(), 1);
    let deletes = t.audit(&admin, "?action=device.delete").await;
    assert_eq!(deletes["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.audit(&admin, "?action=device.delete&actor=user:otto")
            .await["items"],
        json!([])
    );

    // Pages of two, following next_before, give the same entries in the same order.
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let page = t.audit(&admin, &query).await;
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= 2);
        paged.extend(got.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_before"].as_i64() {
            Some(before) => query = format!("?limit=2&before={before}"),
            None => break,
        }
    }
    assert_eq!(paged, ids);
    assert!(ids.len() >= 4, "{ids:?}");

    for bad in ["?limit=0", "?limit=501", "?before=x"] {
        assert_error(
            &t.call(
                Method::GET,
                &format!("/api/v1/audit-log{bad}"),
                Some(&admin),
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );
    }
}

impl T {
    async fn hostnames(&self, token: &str, query: &str) -> Vec<String> {
        let v = self
            .ok(
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/devices?{query}"),
                token,
                None,
            )
            .await;
        let names: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["hostname"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(v["total"], names.len(), "{v}");
        names
    }

    async fn timeline_kinds(&self, token: &str, device: &str, kind: &str) -> Vec<Value> {
        let v = self
            .ok(
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/devices/{device}/timeline?kind={kind}"),
                token,
                None,
            )
            .await;
        v["items"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn groups_form_a_tree_and_target_descendant_members() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, _) = t.device(&admin, "ga").await;
    let (b, _) = t.device(&admin, "gb").await;
    let (_c, _) = t.device(&admin, "gc").await;
    let post = |body: Value| {
        t.ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(body),
        )
    };
    let europe = post(json!({"name": "Europe", "description": "all of it"})).await;
    let europe_id = europe["id"].as_str().unwrap().to_string();
    let de = post(json!({"name": "Germany", "parent_id": "europe"})).await;
    let de_id = de["id"].as_str().unwrap().to_string();
    assert_eq!(de["parent_id"], europe_id.as_str(), "parents may be named");
    assert_eq!(de["kind"], "static");

    assert_error(
        &t.call(
            Method::POST,
            "/api/v1/groups",
            Some(&admin),
            Some(json!({"name": "EUROPE"})),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &t.call(
            Method::POST,
            "/api/v1/groups",
            Some(&admin),
            Some(json!({"name": "x", "parent_id": "nowhere"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );
    for name in ["", " padded", &"n".repeat(201)] {
        assert_error(
            &t.call(
                Method::POST,
                "/api/v1/groups",
                Some(&admin),
                Some(json!({"name": name})),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        );
    }
    // Cycles: itself, or a descendant, as parent.
    for parent in [&europe_id, &de_id] {
        assert_error(
            &t.call(
                Method::PATCH,
                &format!("/api/v1/groups/{europe_id}"),
                Some(&admin),
                Some(json!({"parent_id": parent})),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        );
    }
    let still = t
        .ok(
            StatusCode::OK,
            Method::GET,
            "/api/v1/groups/Europe",
            &admin,
            None,
        )
        .await;
    assert_eq!(
        still["parent_id"],
        Value::Null,
        "a refused re-parent changes nothing"
    );

    let added = t
        .ok(
            StatusCode::OK,
            Method::POST,
            &format!("/api/v1/groups/{de_id}/members"),
            &admin,
            Some(json!({"device_ids": [a, b]})),
        )
        .await;
    assert_eq!(added, json!({"matched": 2, "changed": 2}));
    let again = t
        .ok(
            StatusCode::OK,
            Method::POST,
            "/api/v1/groups/Germany/members",
            &admin,
            Some(json!({"device_ids": [a]})),
        )
        .await;
    assert_eq!(
        again,
        json!({"matched": 1, "changed": 0}),
        "adding twice is a no-op"
    );

    // Targeting Europe reaches Germany's members.
    assert_eq!(
        t.hostnames(&admin, "group=Europe").await,
        vec!["host-ga", "host-gb"]
    );
    assert_eq!(
        t.hostnames(&admin, &format!("group={europe_id}&search=gb"))
            .await,
        vec!["host-gb"]
    );
    let members = t
        .ok(
            StatusCode::OK,
            Method::GET,
            "/api/v1/groups/Europe/members",
            &admin,
            None,
        )
        .await;
    assert_eq!(members["total"], 2);
    let listed = t
        .ok(StatusCode::OK, Method::GET, "/api/v1/groups", &admin, None)
        .await;
    let counts: Vec<(String, u64, u64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["direct_members"].as_u64().unwrap(),
                g["members"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![("Europe".to_string(), 0, 2), ("Germany".to_string(), 2, 2)]
    );
    assert_error(
        &t.call(
            Method::GET,
            "/api/v1/devices?group=Atlantis",
            Some(&admin),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );

    let detail = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/devices/{a}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        detail["groups"],
        json!([{"id": de_id, "name": "Germany", "source": "static"}])
    );
    let joined = t.timeline_kinds(&admin, &a, "group_joined").await;
    assert_eq!(joined.len(), 1);
    assert!(
        joined[0]["summary"].as_str().unwrap().contains("Germany"),
        "{}",
        joined[0]
    );

    // Remove by filter.
    let removed = t
        .ok(
            StatusCode::OK,
            Method::POST,
            "/api/v1/groups/Germany/members/remove",
            &admin,
            Some(json!({"filter": {"search": "host-ga"}})),
        )
        .await;
    assert_eq!(removed, json!({"matched": 1, "changed": 1}));
    assert_eq!(t.hostnames(&admin, "group=Europe").await, vec!["host-gb"]);
    assert_eq!(t.timeline_kinds(&admin, &a, "group_left").await.len(), 1);

    // Rename and move to the top; then Europe can go.
    assert_error(
        &t.call(Method::DELETE, "/api/v1/groups/Europe", Some(&admin), None)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let moved = t
        .ok(
            StatusCode::OK,
            Method::PATCH,
            "/api/v1/groups/Germany",
            &admin,
            Some(json!({"name": "Deutschland", "parent_id": null})),
        )
        .await;
    assert_eq!(
        (moved["name"].as_str(), &moved["parent_id"]),
        (Some("Deutschland"), &Value::Null)
    );
    assert!(t.hostnames(&admin, "group=Europe").await.is_empty());
    t.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/api/v1/groups/Europe",
        &admin,
        None,
    )
    .await;
    t.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/api/v1/groups/Deutschland",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        t.timeline_kinds(&admin, &b, "group_left").await.len(),
        1,
        "deletion is a leave"
    );

    let audit = t.audit(&admin, "?limit=50").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "group.create",
        "group.update",
        "group.members_add",
        "group.members_remove",
        "group.delete",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
}

#[tokio::test]
async fn bulk_changes_refuse_bad_input_and_change_nothing() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, _) = t.device(&admin, "ba").await;
    t.ok(
        StatusCode::CREATED,
        Method::POST,
        "/api/v1/groups",
        &admin,
        Some(json!({"name": "Pilot"})),
    )
    .await;
    let audit_before = t.audit(&admin, "?limit=500").await["items"]
        .as_array()
        .unwrap()
        .len();

    let unknown = t
        .call(
            Method::POST,
            "/api/v1/groups/Pilot/members",
            Some(&admin),
            Some(json!({"device_ids": [a, "no-such-device"]})),
        )
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        unknown.1["message"]
            .as_str()
            .unwrap()
            .contains("no-such-device"),
        "{}",
        unknown.1
    );
    let too_many: Vec<String> = (0..10_001).map(|i| format!("d{i}")).collect();
    let bad_bodies = [
        (
            "/api/v1/groups/Pilot/members",
            json!({"device_ids": too_many}),
        ),
        ("/api/v1/groups/Pilot/members", json!({})),
        (
            "/api/v1/groups/Pilot/members",
            json!({"filter": {"status": "sleepy"}}),
        ),
        (
            "/api/v1/groups/Pilot/members",
            json!({"filter": {"field": "nofield=1"}}),
        ),
        (
            "/api/v1/tags/add",
            json!({"tags": ["ok", "not ok"], "device_ids": [a]}),
        ),
        ("/api/v1/tags/add", json!({"tags": [], "device_ids": [a]})),
        (
            "/api/v1/tags/add",
            json!({"tags": ["x"], "device_ids": ["ghost"]}),
        ),
        (
            "/api/v1/tags/remove",
            json!({"tags": ["x"], "device_ids": too_many}),
        ),
    ];
    for (path, body) in bad_bodies {
        let r = t
            .call(Method::POST, path, Some(&admin), Some(body.clone()))
            .await;
        assert!(
            r.0 == StatusCode::BAD_REQUEST,
            "{path} {}: {}",
            &body.to_string()[..80.min(body.to_string().len())],
            r.1
        );
    }
    assert_error(
        &t.call(
            Method::POST,
            "/api/v1/groups/Pilot/members",
            Some(&admin),
            Some(json!({"device_ids": [a], "extra": 1})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_error(
        &t.call(
            Method::POST,
            "/api/v1/groups/Nope/members",
            Some(&admin),
            Some(json!({"device_ids": [a]})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Nothing happened: no membership, tags as enrolled, no timeline rows, no audit rows.
    assert!(t.hostnames(&admin, "group=Pilot").await.is_empty());
    let d = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/devices/{a}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(d["tags"], json!([]));
    assert!(
        t.timeline_kinds(&admin, &a, "group_joined")
            .await
            .is_empty()
    );
    assert!(t.timeline_kinds(&admin, &a, "tag_added").await.is_empty());
    let audit_after = t.audit(&admin, "?limit=500").await["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        audit_before, audit_after,
        "refused requests are not audited as changes"
    );

    // Permissions: viewers read, operators manage.
    t.create_user(&admin, "gview", "viewer").await;
    t.create_user(&admin, "gop", "operator").await;
    let viewer = t.login("gview", "long-enough-password").await;
    let operator = t.login("gop", "long-enough-password").await;
    t.ok(StatusCode::OK, Method::GET, "/api/v1/groups", &viewer, None)
        .await;
    t.ok(
        StatusCode::OK,
        Method::GET,
        "/api/v1/custom-fields",
        &viewer,
        None,
    )
    .await;
    let writes: Vec<(Method, String, Value)> = vec![
        (Method::POST, "/api/v1/groups".into(), json!({"name": "V"})),
        (
            Method::PATCH,
            "/api/v1/groups/Pilot".into(),
            json!({"description": "v"}),
        ),
        (Method::DELETE, "/api/v1/groups/Pilot".into(), json!({})),
        (
            Method::POST,
            "/api/v1/groups/Pilot/members".into(),
            json!({"device_ids": [a]}),
        ),
        (
            Method::POST,
            "/api/v1/groups/Pilot/members/remove".into(),
            json!({"device_ids": [a]}),
        ),
        (
            Method::POST,
            "/api/v1/tags/add".into(),
            json!({"tags": ["v"], "device_ids": [a]}),
        ),
        (
            Method::POST,
            "/api/v1/tags/remove".into(),
            json!({"tags": ["v"], "device_ids": [a]}),
        ),
        (
            Method::POST,
            "/api/v1/custom-fields".into(),
            json!({"name": "v", "type": "string"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/devices/{a}/custom-fields/v"),
            json!({"value": "x"}),
        ),
    ];
    for (m, path, body) in &writes {
        assert_error(
            &t.call(m.clone(), path, Some(&viewer), Some(body.clone()))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    let r = t
        .ok(
            StatusCode::OK,
            Method::POST,
            "/api/v1/groups/Pilot/members",
            &operator,
            Some(json!({"device_ids": [a]})),
        )
        .await;
    assert_eq!(r["changed"], 1, "operators hold groups.manage");
}

#[tokio::test]
async fn tags_change_in_bulk_and_filter_the_device_list() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, _) = t.device(&admin, "web-1").await;
    let (b, _) = t.device(&admin, "web-2").await;
    let (c, _) = t.device(&admin, "db-1").await;
    let r = t
        .ok(
            StatusCode::OK,
            Method::POST,
            "/api/v1/tags/add",
            &admin,
            Some(json!({"tags": ["web", "prod"], "filter": {"search": "web"}})),
        )
        .await;
    assert_eq!(r, json!({"matched": 2, "changed": 2}));
    t.ok(
        StatusCode::OK,
        Method::POST,
        "/api/v1/tags/add",
        &admin,
        Some(json!({"tags": ["prod"], "device_ids": [c]})),
    )
    .await;
    assert_eq!(
        t.hostnames(&admin, "tag=web").await,
        vec!["host-web-1", "host-web-2"]
    );
    assert_eq!(t.hostnames(&admin, "tag=prod").await.len(), 3);
    assert!(
        t.hostnames(&admin, "tag=we").await.is_empty(),
        "tags match exactly"
    );
    let d = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/devices/{a}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(d["tags"], json!(["prod", "web"]));
    assert_eq!(
        t.timeline_kinds(&admin, &a, "tag_added").await.len(),
        2,
        "one entry per tag"
    );

    let r = t
        .ok(
            StatusCode::OK,
            Method::POST,
            "/api/v1/tags/remove",
            &admin,
            Some(json!({"tags": ["prod"], "device_ids": [a], "filter": {"tag": "web"}})),
        )
        .await;
    assert_eq!(r, json!({"matched": 2, "changed": 2}));
    assert_eq!(t.hostnames(&admin, "tag=prod").await, vec!["host-db-1"]);
    assert_eq!(t.timeline_kinds(&admin, &b, "tag_removed").await.len(), 1);
    let removed = t.timeline_kinds(&admin, &b, "tag_removed").await;
    assert_eq!(removed[0]["field"], "prod");
}

#[tokio::test]
async fn custom_fields_are_typed_defaulted_and_filterable() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, _) = t.device(&admin, "cf-a").await;
    let (b, _) = t.device(&admin, "cf-b").await;
    let define = |body: Value| {
        t.call(
            Method::POST,
            "/api/v1/custom-fields",
            Some(&admin),
            Some(body),
        )
    };
    for body in [
        json!({"name": "owner", "type": "string", "description": "who to call"}),
        json!({"name": "rack_u", "type": "number"}),
        json!({"name": "critical", "type": "boolean", "default": false, "required": true}),
        json!({"name": "warranty_end", "type": "date"}),
        json!({"name": "tier", "type": "enum", "enum_values": ["gold", "silver"], "default": "silver"}),
    ] {
        let r = define(body.clone()).await;
        assert_eq!(r.0, StatusCode::CREATED, "{body}: {}", r.1);
    }
    let bad_definitions = [
        json!({"name": "Bad-Name", "type": "string"}),
        json!({"name": "x", "type": "enum"}),
        json!({"name": "x", "type": "string", "enum_values": ["a"]}),
        json!({"name": "x", "type": "number", "default": "7"}),
        json!({"name": "x", "type": "date", "default": "next tuesday"}),
        json!({"name": "x", "type": "string", "required": true}),
        json!({"name": "x", "type": "enum", "enum_values": ["a", "a"]}),
    ];
    for body in bad_definitions {
        assert_error(
            &define(body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        );
    }
    assert_error(
        &define(json!({"name": "x", "type": "color"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_error(
        &define(json!({"name": "owner", "type": "string"})).await,
        StatusCode::CONFLICT,
        "conflict",
    );

    let set = |device: &str, name: &str, value: Value| {
        let path = format!("/api/v1/devices/{device}/custom-fields/{name}");
        let admin = admin.clone();
        let t = &t;
        async move {
            t.call(
                Method::PUT,
                &path,
                Some(&admin),
                Some(json!({"value": value})),
            )
            .await
        }
    };
    for (name, value) in [
        ("owner", json!("ops")),
        ("rack_u", json!(12)),
        ("critical", json!(true)),
        ("warranty_end", json!("2026-01-31")),
        ("tier", json!("gold")),
    ] {
        let r = set(&a, name, value).await;
        assert_eq!(r.0, StatusCode::NO_CONTENT, "{name}: {}", r.1);
    }
    // Wrong types: a clear 400 naming the field and type; nothing stored.
    for (name, value, ty) in [
        ("owner", json!(5), "string"),
        ("rack_u", json!("12"), "number"),
        ("critical", json!("yes"), "boolean"),
        ("warranty_end", json!("31/01/2026"), "date"),
        ("tier", json!("bronze"), "enum"),
    ] {
        let r = set(&b, name, value).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
        let msg = r.1["message"].as_str().unwrap();
        assert!(msg.contains(name) && msg.contains(ty), "{msg}");
    }
    assert_error(
        &set(&b, "nofield", json!(1)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &set("ghost", "owner", json!("x")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let detail_a = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/devices/{a}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        detail_a["custom_fields"],
        json!({"owner": "ops", "rack_u": 12.0, "critical": true,
               "warranty_end": 1_769_817_600_000i64, "tier": "gold"})
    );
    let detail_b = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/devices/{b}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        detail_b["custom_fields"],
        json!({"critical": false, "tier": "silver"}),
        "only defaults, nothing of the refused writes"
    );
    assert_eq!(
        t.timeline_kinds(&admin, &a, "custom_field_set").await.len(),
        5
    );

    assert_eq!(
        t.hostnames(&admin, "field=tier=gold").await,
        vec!["host-cf-a"]
    );
    assert_eq!(
        t.hostnames(&admin, "field=tier=silver").await,
        vec!["host-cf-b"],
        "default matches"
    );
    assert_eq!(
        t.hostnames(&admin, "field=rack_u=12").await,
        vec!["host-cf-a"]
    );
    assert_eq!(
        t.hostnames(&admin, "field=critical=false").await,
        vec!["host-cf-b"]
    );
    assert_eq!(
        t.hostnames(&admin, "field=warranty_end=2026-01-31").await,
        vec!["host-cf-a"]
    );
    for q in [
        "field=tier",
        "field=nofield=1",
        "field=rack_u=twelve",
        "field=tier=bronze",
    ] {
        assert_error(
            &t.call(
                Method::GET,
                &format!("/api/v1/devices?{q}"),
                Some(&admin),
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        );
    }

    // Type changes are refused while values exist; other changes validate the default.
    assert_error(
        &t.call(
            Method::PATCH,
            "/api/v1/custom-fields/rack_u",
            Some(&admin),
            Some(json!({"type": "string"})),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &t.call(
            Method::PATCH,
            "/api/v1/custom-fields/tier",
            Some(&admin),
            Some(json!({"enum_values": ["silver"]})),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &t.call(
            Method::PATCH,
            "/api/v1/custom-fields/critical",
            Some(&admin),
            Some(json!({"default": null})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );
    let owner = t
        .ok(
            StatusCode::OK,
            Method::PATCH,
            "/api/v1/custom-fields/owner",
            &admin,
            Some(json!({"default": "nobody"})),
        )
        .await;
    assert_eq!(
        (owner["default"].as_str(), owner["description"].as_str()),
        (Some("nobody"), Some("who to call"))
    );

    t.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("/api/v1/devices/{a}/custom-fields/tier"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        t.hostnames(&admin, "field=tier=silver").await.len(),
        2,
        "unset: default applies"
    );
    assert_eq!(
        t.timeline_kinds(&admin, &a, "custom_field_unset")
            .await
            .len(),
        1
    );
    t.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/api/v1/custom-fields/rack_u",
        &admin,
        None,
    )
    .await;
    let detail_a = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/devices/{a}"),
            &admin,
            None,
        )
        .await;
    assert!(
        detail_a["custom_fields"].get("rack_u").is_none(),
        "{detail_a}"
    );
    let fields = t
        .ok(
            StatusCode::OK,
            Method::GET,
            "/api/v1/custom-fields",
            &admin,
            None,
        )
        .await;
    let names: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["critical", "owner", "tier", "warranty_end"]);
}

#[tokio::test]
async fn mutated_group_tag_and_field_bodies_never_cause_server_errors() {
    let t = setup().await;
    let admin = t.admin().await;
    let (device, _) = t.device(&admin, "gfuzz").await;
    t.ok(
        StatusCode::CREATED,
        Method::POST,
        "/api/v1/groups",
        &admin,
        Some(json!({"name": "Fz"})),
    )
    .await;
    t.ok(
        StatusCode::CREATED,
        Method::POST,
        "/api/v1/custom-fields",
        &admin,
        Some(json!({"name": "fz", "type": "enum", "enum_values": ["a", "b"]})),
    )
    .await;
    let value_path = format!("/api/v1/devices/{device}/custom-fields/fz");
    let filter =
        json!({"search": "g", "status": "online", "tag": "t", "group": "Fz", "field": "fz=a"});
    let endpoints: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/v1/groups".into(),
            json!({"name": "Fz2", "description": "d", "parent_id": "Fz"}),
        ),
        (
            Method::PATCH,
            "/api/v1/groups/Fz".into(),
            json!({"name": "Fz", "description": "d", "parent_id": null}),
        ),
        (
            Method::POST,
            "/api/v1/groups/Fz/members".into(),
            json!({"device_ids": [device], "filter": filter}),
        ),
        (
            Method::POST,
            "/api/v1/groups/Fz/members/remove".into(),
            json!({"device_ids": [device], "filter": filter}),
        ),
        (
            Method::POST,
            "/api/v1/tags/add".into(),
            json!({"tags": ["x"], "device_ids": [device], "filter": filter}),
        ),
        (
            Method::POST,
            "/api/v1/tags/remove".into(),
            json!({"tags": ["x"], "device_ids": [device], "filter": filter}),
        ),
        (
            Method::POST,
            "/api/v1/custom-fields".into(),
            json!({"name": "fy", "type": "date", "enum_values": [], "default": "2026-01-01", "required": true, "description": "d"}),
        ),
        (
            Method::PATCH,
            "/api/v1/custom-fields/fz".into(),
            json!({"type": "enum", "enum_values": ["a"], "default": "a", "required": false, "description": "d"}),
        ),
        (Method::PUT, value_path.clone(), json!({"value": "a"})),
    ];
    let nasty: Vec<Value> = vec![
        Value::Null,
        json!(-1),
        json!(1e308),
        json!(u64::MAX),
        json!(true),
        json!(""),
        json!("x".repeat(100_000)),
        json!("\u{0}\u{202e}<script>"),
        json!(["\u{0}"]),
        json!([]),
        json!({}),
        json!({"search": "\u{0}", "group": "\u{0}", "field": "\u{0}=\u{0}"}),
    ];
    let mut cases = 0;
    for (method, path, valid) in &endpoints {
        let Value::Object(map) = valid else { continue };
        let mut bodies = vec![valid.to_string()];
        for key in map.keys() {
            for v in &nasty {
                let mut m = map.clone();
                m.insert(key.clone(), v.clone());
                bodies.push(Value::Object(m).to_string());
            }
        }
        for body in bodies {
            let (status, v) = t
                .raw(
                    method.clone(),
                    path,
                    Some(&admin),
                    Some("application/json"),
                    body.clone().into_bytes(),
                )
                .await;
            cases += 1;
            assert!(
                !status.is_server_error(),
                "{method} {path} answered {status} to {}: {v}",
                &body[..body.len().min(200)]
            );
        }
    }
    for path in [
        "/api/v1/groups/%00",
        "/api/v1/custom-fields/%00",
        "/api/v1/devices?group=%00&field=%00",
    ] {
        let (status, v) = t.call(Method::GET, path, Some(&admin), None).await;
        assert!(!status.is_server_error(), "{path}: {v}");
    }
    assert!(cases > 200, "{cases}");
}

fn os_doc(hostname: &str, os_id: &str) -> InventoryDocument {
    let mut d = doc(hostname, &[("bash", "5.2")]);
    if let Some(os) = d.os.as_mut() {
        os.id = Some(os_id.into());
    }
    d
}

impl T {
    /// The group's direct member count once it equals `want` (rule changes re-evaluate in the
    /// background), failing after five seconds.
    async fn wait_direct_members(&self, token: &str, group: &str, want: u64) {
        self.settle().await;
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self
                .ok(
                    StatusCode::OK,
                    Method::GET,
                    &format!("/api/v1/groups/{group}"),
                    token,
                    None,
                )
                .await;
            if last["direct_members"] == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("group {group} never reached {want} members: {last}");
    }

    /// Wait until no background re-evaluation (started by a rule change) is running.
    async fn settle(&self) {
        for _ in 0..200 {
            if self.state.membership.reevaluations_running() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("background re-evaluation did not finish");
    }

    async fn timeline_summaries(&self, token: &str, device: &str, kind: &str) -> Vec<String> {
        let v = self
            .ok(
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/devices/{device}/timeline?kind={kind}"),
                token,
                None,
            )
            .await;
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["summary"].as_str().unwrap().to_string())
            .collect()
    }
}

#[tokio::test]
async fn dynamic_group_rules_are_validated_with_exact_paths_and_cycles_are_refused() {
    let t = setup().await;
    let admin = t.admin().await;
    let bad = t
        .call(
            Method::POST,
            "/api/v1/groups",
            Some(&admin),
            Some(json!({"name": "Bad", "kind": "dynamic", "rule": {"all": [
                {"field": "os.nope", "op": "eq", "value": "x"},
                {"field": "os.id", "op": "bogus", "value": "x"},
                {"tag": "ok"},
                {"group": "no-such-group"}
            ]}})),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    let paths: Vec<&str> = bad.1["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/all/0/field", "/all/1/op", "/all/3/group"],
        "{}",
        bad.1
    );
    let ops = &bad.1["details"][1]["valid"];
    assert!(ops.as_array().unwrap().contains(&json!("in")), "{ops}");
    assert!(bad.1["message"].as_str().unwrap().contains("/all/1/op"));
    // Nothing was saved; kind and rule must agree.
    let groups = t
        .ok(StatusCode::OK, Method::GET, "/api/v1/groups", &admin, None)
        .await;
    assert_eq!(groups.as_array().unwrap().len(), 0, "{groups}");
    for body in [
        json!({"name": "x", "kind": "dynamic"}),
        json!({"name": "x", "kind": "static", "rule": {"all": []}}),
        json!({"name": "x", "kind": "smart", "rule": {"all": []}}),
    ] {
        assert_error(
            &t.call(Method::POST, "/api/v1/groups", Some(&admin), Some(body))
                .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        );
    }

    // A → B is fine; B → A closes a cycle.
    let b = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "B", "rule": {"tag": "b"}})),
        )
        .await;
    assert_eq!(b["kind"], "dynamic");
    assert_eq!(b["rule"], json!({"tag": "b"}));
    let b_id = b["id"].as_str().unwrap().to_string();
    let a = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "A", "kind": "dynamic", "rule": {"group": b_id}})),
        )
        .await;
    let a_id = a["id"].as_str().unwrap().to_string();
    let cycle = t
        .call(
            Method::PATCH,
            &format!("/api/v1/groups/{b_id}"),
            Some(&admin),
            Some(json!({"rule": {"not": {"group": a_id}}})),
        )
        .await;
    assert_error(&cycle, StatusCode::CONFLICT, "conflict");
    let msg = cycle.1["message"].as_str().unwrap();
    assert!(
        msg.contains("B → A → B") || msg.contains("A → B → A"),
        "{msg}"
    );
    // A rule may not name its own group.
    let own = t
        .call(
            Method::PATCH,
            &format!("/api/v1/groups/{b_id}"),
            Some(&admin),
            Some(json!({"rule": {"group": b_id}})),
        )
        .await;
    assert_error(&own, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(own.1["details"][0]["path"], "/group", "{}", own.1);
    let unchanged = t
        .ok(
            StatusCode::OK,
            Method::GET,
            "/api/v1/groups/B",
            &admin,
            None,
        )
        .await;
    assert_eq!(unchanged["rule"], json!({"tag": "b"}));

    // B is referenced by A: not deletable until A's rule changes.
    let del = t
        .call(Method::DELETE, "/api/v1/groups/B", Some(&admin), None)
        .await;
    assert_error(&del, StatusCode::CONFLICT, "conflict");
    assert!(
        del.1["message"].as_str().unwrap().contains("A"),
        "{}",
        del.1
    );
    // A static group has no rule; a dynamic one takes no manual members.
    t.ok(
        StatusCode::CREATED,
        Method::POST,
        "/api/v1/groups",
        &admin,
        Some(json!({"name": "Manual"})),
    )
    .await;
    assert_error(
        &t.call(
            Method::PATCH,
            "/api/v1/groups/Manual",
            Some(&admin),
            Some(json!({"rule": {"all": []}})),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let (dev, _) = t.device(&admin, "dyn-manual").await;
    assert_error(
        &t.call(
            Method::POST,
            "/api/v1/groups/B/members",
            Some(&admin),
            Some(json!({"device_ids": [dev]})),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    t.ok(
        StatusCode::OK,
        Method::PATCH,
        "/api/v1/groups/A",
        &admin,
        Some(json!({"rule": {"tag": "a"}})),
    )
    .await;
    t.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/api/v1/groups/B",
        &admin,
        None,
    )
    .await;

    // A custom field used by a rule cannot be deleted.
    t.ok(
        StatusCode::CREATED,
        Method::POST,
        "/api/v1/custom-fields",
        &admin,
        Some(json!({"name": "owner", "type": "string"})),
    )
    .await;
    t.ok(
        StatusCode::OK,
        Method::PATCH,
        "/api/v1/groups/A",
        &admin,
        Some(json!({"rule": {"field": "custom.owner", "op": "eq", "value": "it"}})),
    )
    .await;
    let del = t
        .call(
            Method::DELETE,
            "/api/v1/custom-fields/owner",
            Some(&admin),
            None,
        )
        .await;
    assert_error(&del, StatusCode::CONFLICT, "conflict");
    assert!(
        del.1["message"].as_str().unwrap().contains("A"),
        "{}",
        del.1
    );
}

#[tokio::test]
async fn devices_move_between_dynamic_groups_as_they_change() {
    let t = setup().await;
    let admin = t.admin().await;
    let (dev, tok) = t.device(&admin, "mover").await;
    let (other, _) = t.device(&admin, "stayer").await;
    let debian = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "Debian hosts", "kind": "dynamic",
                        "rule": {"field": "os.id", "op": "eq", "value": "debian"}})),
        )
        .await;
    let debian_id = debian["id"].as_str().unwrap().to_string();
    t.wait_direct_members(&admin, &debian_id, 0).await;

    // An inventory upload moves the device in, within the request.
    let put = |d: InventoryDocument| {
        t.call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&tok),
            Some(upload(d)),
        )
    };
    assert_eq!(put(os_doc("mover", "debian")).await.0, StatusCode::OK);
    let members = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/groups/{debian_id}/members"),
            &admin,
            None,
        )
        .await;
    assert_eq!(members["total"], 1, "{members}");
    assert_eq!(members["items"][0]["id"], dev.as_str());
    let detail = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/devices/{dev}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        detail["groups"],
        json!([{"id": debian_id, "name": "Debian hosts", "source": "dynamic"}])
    );
    assert_eq!(
        t.timeline_summaries(&admin, &dev, "group_joined").await,
        ["joined group Debian hosts (dynamic)"]
    );

    // The same document again changes nothing; another OS moves it out.
    assert_eq!(put(os_doc("mover", "debian")).await.0, StatusCode::OK);
    assert_eq!(put(os_doc("mover", "ubuntu")).await.0, StatusCode::OK);
    t.wait_direct_members(&admin, &debian_id, 0).await;
    assert_eq!(
        t.timeline_summaries(&admin, &dev, "group_left").await,
        ["left group Debian hosts (dynamic)"]
    );
    let events = t.state.store.events_after(0, 100).await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.subject.as_str(), e.object.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("group.member_added", dev.as_str(), Some(debian_id.as_str())),
            (
                "group.member_removed",
                dev.as_str(),
                Some(debian_id.as_str())
            ),
        ]
    );
    assert!(events[0].id < events[1].id);

    // Concurrent evaluations of one device record a change once.
    assert_eq!(put(os_doc("mover", "debian")).await.0, StatusCode::OK);
    t.state
        .store
        .apply_dynamic_membership(&dev, &[], &[(debian_id.clone(), "Debian hosts".into())], 1)
        .await
        .unwrap();
    let before = t.state.store.events_after(0, 100).await.unwrap().len();
    let now = capstan_server::state::now_ms();
    let runs = (0..8).map(|_| capstan_server::membership::evaluate_device(&t.state, &dev, now));
    let joined: usize = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .map(|r| r.unwrap().joined.len())
        .sum();
    assert_eq!(joined, 1);
    assert_eq!(
        t.state.store.events_after(0, 100).await.unwrap().len(),
        before + 1
    );
    assert_eq!(put(os_doc("mover", "ubuntu")).await.0, StatusCode::OK);

    // A tag rule: created after the devices exist, it is evaluated for all of them; tag
    // changes then move devices within the request.
    t.ok(
        StatusCode::OK,
        Method::POST,
        "/api/v1/tags/add",
        &admin,
        Some(json!({"tags": ["web"], "device_ids": [other]})),
    )
    .await;
    let web = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "Web", "rule": {"tag": "web"}})),
        )
        .await;
    let web_id = web["id"].as_str().unwrap().to_string();
    t.wait_direct_members(&admin, &web_id, 1).await;
    t.ok(
        StatusCode::OK,
        Method::POST,
        "/api/v1/tags/add",
        &admin,
        Some(json!({"tags": ["web"], "device_ids": [dev]})),
    )
    .await;
    let g = t
        .ok(
            StatusCode::OK,
            Method::GET,
            "/api/v1/groups/Web",
            &admin,
            None,
        )
        .await;
    assert_eq!(
        g["direct_members"], 2,
        "tagging moves the device at once: {g}"
    );
    t.ok(
        StatusCode::OK,
        Method::POST,
        "/api/v1/tags/remove",
        &admin,
        Some(json!({"tags": ["web"], "device_ids": [dev]})),
    )
    .await;
    let g = t
        .ok(
            StatusCode::OK,
            Method::GET,
            "/api/v1/groups/Web",
            &admin,
            None,
        )
        .await;
    assert_eq!(g["direct_members"], 1, "{g}");

    // Group references: "in Web and not in Debian hosts", evaluated in dependency order.
    let combo = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "Web not Debian", "rule": {"all": [
                {"group": web_id}, {"not": {"group": debian_id}}]}})),
        )
        .await;
    t.wait_direct_members(&admin, combo["id"].as_str().unwrap(), 1)
        .await;

    // Editing a rule re-evaluates every device.
    t.ok(
        StatusCode::OK,
        Method::PATCH,
        &format!("/api/v1/groups/{debian_id}"),
        &admin,
        Some(json!({"rule": {"field": "os.id", "op": "in", "value": ["debian", "ubuntu"]}})),
    )
    .await;
    t.wait_direct_members(&admin, &debian_id, 1).await;
}

#[tokio::test]
async fn preview_and_explain_answer_which_and_why() {
    let t = setup().await;
    let admin = t.admin().await;
    let (deb, deb_tok) = t.device(&admin, "pv-deb").await;
    let (_rh, rh_tok) = t.device(&admin, "pv-rh").await;
    for (tok, os) in [(&deb_tok, "debian"), (&rh_tok, "rhel")] {
        let (s, v) = t
            .call(
                Method::PUT,
                "/agent/v1/inventory",
                Some(tok),
                Some(upload(os_doc("h", os))),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let rule = json!({"field": "os.id", "op": "in", "value": ["debian", "ubuntu"]});
    let p = t
        .ok(
            StatusCode::OK,
            Method::POST,
            "/api/v1/groups/preview",
            &admin,
            Some(json!({"rule": rule})),
        )
        .await;
    assert_eq!(p["total"], 1, "{p}");
    assert_eq!(p["devices"][0]["id"], deb.as_str());
    let all = t
        .ok(
            StatusCode::OK,
            Method::POST,
            "/api/v1/groups/preview",
            &admin,
            Some(json!({"rule": {"all": []}, "limit": 1})),
        )
        .await;
    assert_eq!(
        (
            all["total"].clone(),
            all["devices"].as_array().unwrap().len()
        ),
        (json!(2), 1)
    );
    let bad = t
        .call(
            Method::POST,
            "/api/v1/groups/preview",
            Some(&admin),
            Some(json!({"rule": {"any": [{"field": "os.id", "op": "gt", "value": 3}]}})),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(bad.1["details"][0]["path"], "/any/0/op", "{}", bad.1);
    // Previewing saves nothing.
    let groups = t
        .ok(StatusCode::OK, Method::GET, "/api/v1/groups", &admin, None)
        .await;
    assert_eq!(groups.as_array().unwrap().len(), 0);

    // A read-only operator may preview and explain.
    t.ok(
        StatusCode::CREATED,
        Method::POST,
        "/api/v1/users",
        &admin,
        Some(json!({"username": "viewer", "password": "viewer-password-1", "role": "viewer"})),
    )
    .await;
    let viewer = t.login("viewer", "viewer-password-1").await;
    t.ok(
        StatusCode::OK,
        Method::POST,
        "/api/v1/groups/preview",
        &viewer,
        Some(json!({"rule": rule})),
    )
    .await;
    assert_error(
        &t.call(
            Method::POST,
            "/api/v1/groups",
            Some(&viewer),
            Some(json!({"name": "nope", "rule": rule})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    t.ok(
        StatusCode::CREATED,
        Method::POST,
        "/api/v1/groups",
        &admin,
        Some(json!({"name": "Debian-like", "rule": {"all": [rule, {"not": {"tag": "excluded"}}]}})),
    )
    .await;
    // Creating the group starts its first pass in the background; the stored membership
    // follows within moments (the explanation itself is evaluated live).
    let mut e = Value::Null;
    for _ in 0..100 {
        e = t
            .ok(
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/groups/Debian-like/explain/{deb}"),
                &viewer,
                None,
            )
            .await;
        if e["member"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(e["member"], true, "{e}");
    assert_eq!(e["kind"], "dynamic");
    assert_eq!(e["explanation"]["children"].as_array().unwrap().len(), 2);
    assert_eq!(
        e["explanation"]["children"][0]["text"],
        "os.id is \"debian\", which is in [debian, ubuntu]: true",
        "{e}"
    );
    assert_eq!(e["explanation"]["children"][1]["path"], "/all/1");

    // Static groups: direct, through a descendant, or not at all.
    for body in [
        json!({"name": "Europe"}),
        json!({"name": "Berlin", "parent_id": "Europe"}),
    ] {
        t.ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(body),
        )
        .await;
    }
    t.ok(
        StatusCode::OK,
        Method::POST,
        "/api/v1/groups/Berlin/members",
        &admin,
        Some(json!({"device_ids": [deb]})),
    )
    .await;
    let why = |g: &'static str, d: String| {
        let t = &t;
        let admin = admin.clone();
        async move {
            t.ok(
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/groups/{g}/explain/{d}"),
                &admin,
                None,
            )
            .await
        }
    };
    let direct = why("Berlin", deb.clone()).await;
    assert_eq!(direct["member"], true);
    assert!(
        direct["explanation"]["text"]
            .as_str()
            .unwrap()
            .contains("direct member")
    );
    let via = why("Europe", deb.clone()).await;
    assert_eq!(via["member"], true);
    assert!(
        via["explanation"]["text"]
            .as_str()
            .unwrap()
            .contains("Berlin"),
        "{via}"
    );
    let none = why("Europe", _rh.clone()).await;
    assert_eq!(none["member"], false);
    assert_error(
        &t.call(
            Method::GET,
            "/api/v1/groups/Europe/explain/no-such-device",
            Some(&admin),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Static membership counts for rules, including the ancestors of the groups.
    let europe = t
        .ok(
            StatusCode::OK,
            Method::GET,
            "/api/v1/groups/Europe",
            &admin,
            None,
        )
        .await;
    let in_europe = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "In Europe", "rule": {"group": europe["id"]}})),
        )
        .await;
    t.wait_direct_members(&admin, in_europe["id"].as_str().unwrap(), 1)
        .await;
}

#[tokio::test]
async fn the_periodic_pass_applies_time_based_rules() {
    let t = setup().await;
    let admin = t.admin().await;
    let (dev, tok) = t.device(&admin, "clock").await;
    let (s, _) = t
        .call(
            Method::POST,
            "/agent/v1/checkin",
            Some(&tok),
            Some(json!({"agent_version": "0.1.0"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let stale = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "Stale", "rule":
                {"field": "status.last_seen", "op": "older_than", "value": "7d"}})),
        )
        .await;
    let stale_id = stale["id"].as_str().unwrap().to_string();
    t.wait_direct_members(&admin, &stale_id, 0).await;
    let now = capstan_server::state::now_ms();
    let day = 86_400_000;
    let changes = capstan_server::membership::periodic_pass(&t.state, now + 8 * day)
        .await
        .unwrap();
    assert_eq!(changes, 1);
    t.wait_direct_members(&admin, &stale_id, 1).await;
    assert_eq!(
        t.timeline_summaries(&admin, &dev, "group_joined").await,
        ["joined group Stale (dynamic)"]
    );
    // At a time when its last check-in is recent, the pass moves it out again.
    let changes = capstan_server::membership::periodic_pass(&t.state, now + day)
        .await
        .unwrap();
    assert_eq!(changes, 1);
    t.wait_direct_members(&admin, &stale_id, 0).await;
}

#[tokio::test]
async fn predefined_groups_are_created_once_and_stay_deleted() {
    let t = setup_with(|c| c.predefined_groups = true).await;
    let admin = t.admin().await;
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    let groups = t
        .ok(StatusCode::OK, Method::GET, "/api/v1/groups", &admin, None)
        .await;
    assert_eq!(
        names(&groups),
        [
            "All devices",
            "Debian/Ubuntu",
            "Low disk",
            "Offline > 7 days",
            "Pending reboot",
            "RHEL family",
            "Virtual machines",
            "Windows 11"
        ]
    );
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["kind"] == "dynamic")
    );

    // A new device lands in the matching ones without any operator action.
    let (dev, tok) = t.device(&admin, "predef").await;
    let mut d = os_doc("predef", "ubuntu");
    if let Some(os) = d.os.as_mut() {
        os.id_like = vec!["debian".into()];
    }
    let (s, v) = t
        .call(
            Method::PUT,
            "/agent/v1/inventory",
            Some(&tok),
            Some(upload(d)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let detail = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/devices/{dev}"),
            &admin,
            None,
        )
        .await;
    let mut joined: Vec<&str> = detail["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    joined.sort();
    assert_eq!(joined, ["All devices", "Debian/Ubuntu"], "{detail}");

    // Editable and deletable; a restart recreates neither the deleted nor the renamed one.
    t.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/api/v1/groups/Pending%20reboot",
        &admin,
        None,
    )
    .await;
    t.ok(
        StatusCode::OK,
        Method::PATCH,
        "/api/v1/groups/Low%20disk",
        &admin,
        Some(json!({"name": "Low disk space",
                    "rule": {"field": "performance.mounts[].free_percent", "op": "lt", "value": 5}})),
    )
    .await;
    t.settle().await;
    let created = capstan_server::predefined::ensure(&t.state.store)
        .await
        .unwrap();
    assert!(created.is_empty(), "{created:?}");
    let groups = t
        .ok(StatusCode::OK, Method::GET, "/api/v1/groups", &admin, None)
        .await;
    let now = names(&groups);
    assert!(!now.contains(&"Pending reboot".to_string()), "{now:?}");
    assert!(!now.contains(&"Low disk".to_string()), "{now:?}");
    assert_eq!(now.len(), 7);
}

#[tokio::test]
async fn the_periodic_pass_moves_devices_by_performance() {
    let t = setup().await;
    let admin = t.admin().await;
    let (_dev, tok) = t.device(&admin, "disk").await;
    let low = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "Low disk", "rule":
                {"field": "performance.mounts[].free_percent", "op": "lt", "value": 10}})),
        )
        .await;
    let low_id = low["id"].as_str().unwrap().to_string();
    t.wait_direct_members(&admin, &low_id, 0).await;
    let checkin = |used: u64| {
        json!({"agent_version": "0.1.0", "performance": {"mounts": [
            {"mount_point": "/", "total_bytes": 100, "used_bytes": used}]}})
    };
    for (used, members) in [(95, 1), (95, 1), (50, 0), (91, 1)] {
        let (s, v) = t
            .call(
                Method::POST,
                "/agent/v1/checkin",
                Some(&tok),
                Some(checkin(used)),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // Check-ins do not evaluate (they are the hottest request); the periodic pass applies
        // performance rules.
        capstan_server::membership::periodic_pass(&t.state, capstan_server::state::now_ms())
            .await
            .unwrap();
        let g = t
            .ok(
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/groups/{low_id}"),
                &admin,
                None,
            )
            .await;
        assert_eq!(g["direct_members"], members, "{used}% used: {g}");
    }
}

impl T {
    /// Create a group from `body`, returning its id.
    async fn group_id(&self, token: &str, body: Value) -> String {
        let g = self
            .ok(
                StatusCode::CREATED,
                Method::POST,
                "/api/v1/groups",
                token,
                Some(body),
            )
            .await;
        g["id"].as_str().unwrap().to_string()
    }

    /// Ids of the groups a device is a direct member of, sorted.
    async fn device_group_ids(&self, token: &str, device: &str) -> Vec<String> {
        let d = self
            .ok(
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/devices/{device}"),
                token,
                None,
            )
            .await;
        let mut ids: Vec<String> = d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    async fn tag(&self, token: &str, add: bool, tag: &str, device: &str) {
        let path = if add {
            "/api/v1/tags/add"
        } else {
            "/api/v1/tags/remove"
        };
        self.ok(
            StatusCode::OK,
            Method::POST,
            path,
            token,
            Some(json!({"tags": [tag], "device_ids": [device]})),
        )
        .await;
    }
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn rules_on_a_group_see_members_of_its_dynamic_descendants() {
    let t = setup().await;
    let admin = t.admin().await;
    let (dev, _) = t.device(&admin, "tree-dev").await;
    let (other, _) = t.device(&admin, "tree-other").await;
    // Fleet (static) ⊃ Tagged x (dynamic); Pilot (dynamic: tag p) ⊃ Tagged y (dynamic).
    let fleet = t.group_id(&admin, json!({"name": "Fleet"})).await;
    let tagged_x = t
        .group_id(
            &admin,
            json!({"name": "Tagged x", "parent_id": "Fleet", "rule": {"tag": "x"}}),
        )
        .await;
    let pilot = t
        .group_id(&admin, json!({"name": "Pilot", "rule": {"tag": "p"}}))
        .await;
    let tagged_y = t
        .group_id(
            &admin,
            json!({"name": "Tagged y", "parent_id": pilot, "rule": {"tag": "y"}}),
        )
        .await;
    let in_fleet = t
        .group_id(
            &admin,
            json!({"name": "In fleet", "rule": {"group": fleet}}),
        )
        .await;
    let in_pilot = t
        .group_id(
            &admin,
            json!({"name": "In pilot", "rule": {"all": [{"group": pilot}, {"not": {"tag": "skip"}}]}}),
        )
        .await;
    t.settle().await;
    assert!(t.device_group_ids(&admin, &dev).await.is_empty());

    // Tagging moves the device into the child and, in the same request, into the rule that
    // reads the child's (static) parent.
    t.tag(&admin, true, "x", &dev).await;
    assert_eq!(
        t.device_group_ids(&admin, &dev).await,
        sorted(&[&tagged_x, &in_fleet])
    );
    let why = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/groups/{in_fleet}/explain/{dev}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(why["member"], true, "{why}");
    assert_eq!(
        why["explanation"]["text"],
        format!("member of group {fleet:?} through its descendant group {tagged_x:?}: true")
    );
    let preview = t
        .ok(
            StatusCode::OK,
            Method::POST,
            "/api/v1/groups/preview",
            &admin,
            Some(json!({"rule": {"not": {"group": fleet}}})),
        )
        .await;
    assert_eq!(preview["total"], 1, "{preview}");
    assert_eq!(preview["devices"][0]["id"], other.as_str(), "{preview}");
    // A rule created now gets its members from the full pass, which sees the child too.
    let also = t
        .group_id(
            &admin,
            json!({"name": "Also in fleet", "rule": {"any": [{"group": fleet}, {"tag": "never"}]}}),
        )
        .await;
    t.wait_direct_members(&admin, &also, 1).await;

    // Untagging takes it out of both at once.
    t.tag(&admin, false, "x", &dev).await;
    t.settle().await;
    assert!(t.device_group_ids(&admin, &dev).await.is_empty());
    let left = t.timeline_summaries(&admin, &dev, "group_left").await;
    for name in ["Tagged x", "In fleet", "Also in fleet"] {
        assert!(
            left.contains(&format!("left group {name} (dynamic)")),
            "{name}: {left:?}"
        );
    }

    // Under a dynamic parent: the child's members count, and so does the parent's own rule.
    t.tag(&admin, true, "y", &dev).await;
    assert_eq!(
        t.device_group_ids(&admin, &dev).await,
        sorted(&[&tagged_y, &in_pilot])
    );
    let g = t
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/groups/{pilot}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (g["direct_members"].clone(), g["members"].clone()),
        (json!(0), json!(1))
    );
    t.tag(&admin, true, "p", &other).await;
    assert_eq!(
        t.device_group_ids(&admin, &other).await,
        sorted(&[&pilot, &in_pilot])
    );
    t.tag(&admin, false, "y", &dev).await;
    assert!(t.device_group_ids(&admin, &dev).await.is_empty());

    // Cycles through the tree are refused: a rule may not read a group above its own, and a
    // group may not move under a group its rule reads.
    let cycle = t
        .call(
            Method::PATCH,
            &format!("/api/v1/groups/{tagged_x}"),
            Some(&admin),
            Some(json!({"rule": {"all": [{"tag": "x"}, {"group": fleet}]}})),
        )
        .await;
    assert_error(&cycle, StatusCode::CONFLICT, "conflict");
    assert!(
        cycle.1["message"]
            .as_str()
            .unwrap()
            .contains("Tagged x → Fleet → Tagged x"),
        "{}",
        cycle.1
    );
    assert_error(
        &t.call(
            Method::POST,
            "/api/v1/groups",
            Some(&admin),
            Some(json!({"name": "Loop", "parent_id": "Fleet", "rule": {"not": {"group": fleet}}})),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &t.call(
            Method::PATCH,
            &format!("/api/v1/groups/{in_fleet}"),
            Some(&admin),
            Some(json!({"parent_id": "Fleet"})),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // Moving a group and dropping the reference that would close the cycle, in one request.
    t.ok(
        StatusCode::OK,
        Method::PATCH,
        &format!("/api/v1/groups/{also}"),
        &admin,
        Some(json!({"parent_id": "Fleet", "rule": {"tag": "also"}})),
    )
    .await;
    let names: Vec<String> = t
        .ok(StatusCode::OK, Method::GET, "/api/v1/groups", &admin, None)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.contains(&"Loop".to_string()), "{names:?}");

    // Deleting a child takes its members out of the rules that read its ancestors.
    t.tag(&admin, true, "x", &dev).await;
    t.wait_direct_members(&admin, &in_fleet, 1).await;
    t.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("/api/v1/groups/{tagged_x}"),
        &admin,
        None,
    )
    .await;
    t.wait_direct_members(&admin, &in_fleet, 0).await;
}

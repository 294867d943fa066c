//! The console's live event stream (`GET /api/v1/events/stream`) through the real router:
//! membership changes arrive while the stream is open, a reconnect with `Last-Event-ID` or
//! `?after=` resumes after what was seen (and only that), a fresh stream starts at the newest
//! event, and nobody without credentials gets a stream.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{T, assert_error, setup};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// Read SSE text from a response body until `until` appears; fails after 10 s.
async fn read_until(body: &mut Body, text: &mut String, until: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains(until) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {until:?} within 10 s; got:\n{text}"));
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

/// The domain events in SSE text (plain messages; `ready` is left out).
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|m| !m.lines().any(|l| l.starts_with("event:")))
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn open(token: &str, query: &str, last_event_id: Option<i64>) -> Request<Body> {
    let mut b = Request::builder()
        .uri(format!("/api/v1/events/stream{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(id) = last_event_id {
        b = b.header("last-event-id", id.to_string());
    }
    b.body(Body::empty()).unwrap()
}

impl T {
    async fn join(&self, admin: &str, group: &str, device: &str) {
        let v = self
            .ok(
                StatusCode::OK,
                Method::POST,
                &format!("/api/v1/groups/{group}/members"),
                admin,
                Some(json!({"device_ids": [device]})),
            )
            .await;
        assert_eq!(v["changed"], 1, "{v}");
    }
}

#[tokio::test]
async fn membership_events_stream_live_and_resume_after_the_last_seen_id() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, _) = t.device(&admin, "a").await;
    let (b, _) = t.device(&admin, "b").await;
    let (c, _) = t.device(&admin, "c").await;
    let g = t
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "Pilot"})),
        )
        .await;
    let g = g["id"].as_str().unwrap().to_string();
    t.join(&admin, &g, &a).await;

    // From the beginning: a's join is there, and b's arrives while the stream is open.
    let resp = t.request(open(&admin, "?after=0", None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    let mut text = String::new();
    read_until(&mut body, &mut text, &a).await;
    assert!(text.starts_with("event: ready\n"), "{text}");
    t.join(&admin, &g, &b).await;
    read_until(&mut body, &mut text, &b).await;
    let seen = events(&text);
    let joins: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
                e["object"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        joins,
        [
            ("group.member_added", a.as_str(), g.as_str()),
            ("group.member_added", b.as_str(), g.as_str())
        ]
    );
    assert_eq!(seen[0]["data"]["group_name"], "Pilot", "{text}");
    let a_id = seen[0]["id"].as_i64().unwrap();
    let b_id = seen[1]["id"].as_i64().unwrap();
    assert!(b_id > a_id);
    assert!(
        text.contains(&format!("id: {b_id}\n")),
        "SSE ids are event ids: {text}"
    );
    drop(body);

    // A reconnecting browser sends the last id it saw: only newer events come.
    t.join(&admin, &g, &c).await;
    for req in [
        open(&admin, "", Some(a_id)),
        open(&admin, &format!("?after={a_id}"), None),
        // The header wins over the query (the page's URL still has its first `after`).
        open(&admin, "?after=0", Some(a_id)),
    ] {
        let mut body = t.request(req).await.into_body();
        let mut text = String::new();
        read_until(&mut body, &mut text, &c).await;
        let subjects: Vec<Value> = events(&text).iter().map(|e| e["subject"].clone()).collect();
        assert_eq!(subjects, [json!(b), json!(c)], "{text}");
    }

    // A fresh stream starts at the newest event: old joins are not replayed, new ones come,
    // and its `ready` id is where a reconnect would resume.
    let mut body = t.request(open(&admin, "", None)).await.into_body();
    let mut text = String::new();
    read_until(&mut body, &mut text, "event: ready").await;
    let removed = t
        .ok(
            StatusCode::OK,
            Method::POST,
            &format!("/api/v1/groups/{g}/members/remove"),
            &admin,
            Some(json!({"device_ids": [a]})),
        )
        .await;
    assert_eq!(removed["changed"], 1);
    read_until(&mut body, &mut text, "group.member_removed").await;
    let fresh = events(&text);
    assert_eq!(fresh.len(), 1, "{text}");
    assert_eq!(fresh[0]["subject"], a.as_str());
    let ready_id: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(ready_id >= b_id && ready_id < fresh[0]["id"].as_i64().unwrap());
}

#[tokio::test]
async fn the_stream_needs_credentials() {
    let t = setup().await;
    let resp = t
        .call(Method::GET, "/api/v1/events/stream", None, None)
        .await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthenticated");
    let resp = t
        .call(
            Method::GET,
            "/api/v1/events/stream?after=0",
            Some("caps_not-a-session"),
            None,
        )
        .await;
    assert_eq!(resp.0, StatusCode::UNAUTHORIZED, "{}", resp.1);
}

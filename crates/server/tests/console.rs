//! The server side of the web console: CSRF protection of cookie sessions (state-changing
//! requests made with the session cookie need `X-Capstan-CSRF: 1`; bearer tokens do not), and
//! how the embedded single-page app is served next to the API (client routes get `index.html`,
//! API paths keep their JSON 404s, caching and content types).

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{assert_error, setup};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
enum Auth<'a> {
    Bearer,
    Cookie,
    /// Cookie plus `X-Capstan-CSRF` with this value.
    CookieWithCsrf(&'a str),
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(
    t: &common::T,
    method: Method,
    path: &str,
    token: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    b = match auth {
        Auth::Bearer => b.header(header::AUTHORIZATION, format!("Bearer {token}")),
        Auth::Cookie => b.header(header::COOKIE, format!("capstan_session={token}")),
        Auth::CookieWithCsrf(v) => b
            .header(header::COOKIE, format!("capstan_session={token}"))
            .header("x-capstan-csrf", v),
    };
    let req = match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .unwrap();
    let resp = t.request(req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn token_names(t: &common::T, token: &str) -> Vec<String> {
    let r = send(
        t,
        Method::GET,
        "/api/v1/enrollment-tokens",
        token,
        Auth::Bearer,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_header_to_change_state() {
    let t = setup().await;
    let token = t.admin().await;

    // (auth, expected status) for creating a token named after the case.
    let cases: &[(&str, Auth, StatusCode)] = &[
        ("cookie-no-header", Auth::Cookie, StatusCode::FORBIDDEN),
        (
            "cookie-wrong-value",
            Auth::CookieWithCsrf("yes"),
            StatusCode::FORBIDDEN,
        ),
        (
            "cookie-empty",
            Auth::CookieWithCsrf(""),
            StatusCode::FORBIDDEN,
        ),
        (
            "cookie-with-header",
            Auth::CookieWithCsrf("1"),
            StatusCode::CREATED,
        ),
        ("bearer-no-header", Auth::Bearer, StatusCode::CREATED),
    ];
    for (name, auth, expected) in cases {
        let r = send(
            &t,
            Method::POST,
            "/api/v1/enrollment-tokens",
            &token,
            *auth,
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(r.status, *expected, "{name}: {}", r.json());
        if *expected == StatusCode::FORBIDDEN {
            assert_error(&(r.status, r.json()), StatusCode::FORBIDDEN, "forbidden");
            let msg = r.json()["message"].as_str().unwrap_or("").to_string();
            assert!(msg.contains("X-Capstan-CSRF: 1"), "{name}: {msg}");
        }
    }
    let mut names = token_names(&t, &token).await;
    names.sort();
    assert_eq!(
        names,
        vec!["bearer-no-header", "cookie-with-header"],
        "refused requests must not have created anything"
    );

    // Reading needs no header, with either credential.
    for auth in [Auth::Cookie, Auth::Bearer] {
        let r = send(&t, Method::GET, "/api/v1/auth/me", &token, auth, None).await;
        assert_eq!(r.status, StatusCode::OK, "{auth:?}");
    }

    // DELETE is guarded like POST.
    let id = send(
        &t,
        Method::GET,
        "/api/v1/enrollment-tokens",
        &token,
        Auth::Bearer,
        None,
    )
    .await
    .json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/enrollment-tokens/{id}");
    let r = send(&t, Method::DELETE, &path, &token, Auth::Cookie, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &t,
        Method::DELETE,
        &path,
        &token,
        Auth::CookieWithCsrf("1"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // A forged logout leaves the session alone; the console's logout ends it.
    let r = send(
        &t,
        Method::POST,
        "/api/v1/auth/logout",
        &token,
        Auth::Cookie,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let me = send(
        &t,
        Method::GET,
        "/api/v1/auth/me",
        &token,
        Auth::Cookie,
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    let r = send(
        &t,
        Method::POST,
        "/api/v1/auth/logout",
        &token,
        Auth::CookieWithCsrf("1"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let me = send(
        &t,
        Method::GET,
        "/api/v1/auth/me",
        &token,
        Auth::Cookie,
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

async fn get(t: &common::T, method: Method, path: &str) -> Reply {
    send(t, method, path, "", Auth::Bearer, None).await
}

#[tokio::test]
async fn server_paths_keep_their_json_404s() {
    let t = setup().await;
    for (method, path) in [
        (Method::GET, "/api/v1/no-such-route"),
        (Method::GET, "/api"),
        (Method::GET, "/agent/v1/no-such-route"),
        (Method::GET, "/healthz/extra"),
        (Method::GET, "/download/other-binary"),
        (Method::POST, "/devices"),
        (Method::DELETE, "/"),
    ] {
        let r = get(&t, method.clone(), path).await;
        assert_error(
            &(r.status, r.json()),
            StatusCode::NOT_FOUND,
            "route_not_found",
        );
        assert!(
            r.header(header::CONTENT_TYPE)
                .starts_with("application/json"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn the_console_is_served_for_client_routes() {
    let t = setup().await;
    let root = get(&t, Method::GET, "/").await;
    assert_eq!(root.status, StatusCode::OK);
    assert!(
        root.header(header::CONTENT_TYPE).starts_with("text/html"),
        "{:?}",
        root.headers
    );
    assert!(
        root.header(header::CONTENT_SECURITY_POLICY)
            .starts_with("default-src 'self'"),
        "the console page carries the strict CSP"
    );
    let text = String::from_utf8_lossy(&root.body).to_string();

    if !capstan_server::console::is_built() {
        // `cargo build` without `npm run build`: the landing page says what is missing, and
        // client routes do not pretend to exist.
        assert!(text.contains("web console was not built"), "{text}");
        let r = get(&t, Method::GET, "/devices").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        eprintln!("web/dist is not built: only the fallback landing page was checked");
        return;
    }

    assert!(text.contains(r#"<div id="root">"#), "{text}");
    assert!(
        !text.contains("<script>"),
        "no inline script, or the CSP would block it"
    );
    assert_eq!(root.header(header::CACHE_CONTROL), "no-store");

    // Deep links of the single-page app get the same page.
    for path in [
        "/devices",
        "/devices/0192-some-id?tab=software",
        "/enrollment",
        "/login",
    ] {
        let r = get(&t, Method::GET, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body, root.body, "{path}");
        assert_eq!(r.header(header::CACHE_CONTROL), "no-store", "{path}");
    }

    // Every asset index.html names is served with its type and cached for good (the names
    // carry a content hash).
    let assets: Vec<&str> = text
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(
        assets.iter().any(|a| a.ends_with(".js")),
        "index.html names a script: {text}"
    );
    for asset in assets {
        let r = get(&t, Method::GET, asset).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        let expected = if asset.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if asset.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            r.header(header::CONTENT_TYPE)
        };
        assert_eq!(r.header(header::CONTENT_TYPE), expected, "{asset}");
        assert_eq!(
            r.header(header::CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{asset}"
        );
        assert!(!r.body.is_empty(), "{asset}");
    }

    // A stale page asking for an old build's file gets a 404, not HTML posing as a script.
    let r = get(&t, Method::GET, "/assets/index-0ld.js").await;
    assert_error(
        &(r.status, r.json()),
        StatusCode::NOT_FOUND,
        "route_not_found",
    );
    // Traversal cannot reach files outside the build.
    let r = get(&t, Method::GET, "/assets/../../Cargo.toml").await;
    assert_ne!(r.status, StatusCode::OK, "assets/../../Cargo.toml");
    let r = get(&t, Method::GET, "/%2e%2e/%2e%2e/Cargo.toml").await;
    assert!(
        !String::from_utf8_lossy(&r.body).contains("[workspace]"),
        "percent-encoded traversal"
    );

    let head = get(&t, Method::HEAD, "/devices").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert!(head.header(header::CONTENT_TYPE).starts_with("text/html"));
}

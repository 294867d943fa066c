//! The in-process test harness shared by the API test suites: a bootstrapped server over a
//! fresh database (SQLite, or PostgreSQL with `CAPSTAN_API_TEST_DB=postgres`), requests through
//! the real router, and the few flows every suite needs (log in, enroll a device).

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use capstan_proto::agent::{DeviceIdentity, EnrollRequest};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct T {
    pub router: axum::Router,
    pub state: capstan_server::state::AppState,
    _dir: tempfile::TempDir,
}

pub async fn setup() -> T {
    setup_with(|_| {}).await
}

pub async fn setup_with(adjust: impl FnOnce(&mut capstan_server::config::Config)) -> T {
    let dir = tempfile::tempdir().unwrap();
    let mut config = capstan_server::config::Config::for_tests(dir.path());
    adjust(&mut config);
    if std::env::var("CAPSTAN_API_TEST_DB").as_deref() == Ok("postgres") {
        config.database_url = capstan_testkit::postgres()
            .expect("throwaway PostgreSQL")
            .create_database()
            .expect("database");
    }
    let (router, state) = capstan_server::testing::app_with_config(config)
        .await
        .unwrap();
    T {
        router,
        state,
        _dir: dir,
    }
}

impl T {
    pub async fn request(&self, req: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(req).await.unwrap()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let resp = self.request(b.body(body).unwrap()).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    /// `call` that must answer `want`; the body.
    pub async fn ok(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let (s, v) = self.call(method.clone(), path, Some(token), body).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        v
    }

    pub async fn login(&self, user: &str, password: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    pub async fn admin(&self) -> String {
        self.login("admin", "test-admin-password").await
    }

    /// A user with `role`, logged in.
    pub async fn user(&self, admin: &str, name: &str, role: &str) -> String {
        self.ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/users",
            admin,
            Some(json!({"username": name, "password": "long-enough-password", "role": role})),
        )
        .await;
        self.login(name, "long-enough-password").await
    }

    /// Enroll a device named `host-<identity>`: (device id, device token).
    pub async fn device(&self, admin: &str, identity: &str) -> (String, String) {
        let v = self
            .ok(
                StatusCode::CREATED,
                Method::POST,
                "/api/v1/enrollment-tokens",
                admin,
                Some(json!({"name": "t"})),
            )
            .await;
        let req = EnrollRequest {
            token: v["token"].as_str().unwrap().into(),
            identity: DeviceIdentity {
                identity_key: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    identity.as_bytes(),
                )),
                source: "instance".into(),
            },
            hostname: format!("host-{identity}"),
            agent_version: "0.1.0".into(),
            os_family: "linux".into(),
            capabilities: vec![],
        };
        let (s, v) = self
            .call(
                Method::POST,
                "/agent/v1/enroll",
                None,
                Some(serde_json::to_value(req).unwrap()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        (
            v["device_id"].as_str().unwrap().into(),
            v["device_token"].as_str().unwrap().into(),
        )
    }
}

/// Assert an error response's status and stable code.
pub fn assert_error(resp: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["code"], code, "{}", resp.1);
    assert_eq!(resp.1["status"], status.as_u16(), "{}", resp.1);
    assert!(resp.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}

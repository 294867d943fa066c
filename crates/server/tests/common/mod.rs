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

    /// A request with a raw body and content type; the status and the body as JSON (or as a
    /// JSON string when it is not JSON).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let resp = self.request(b.body(Body::from(body)).unwrap()).await;
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

    /// A request with an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        match body {
            Some(b) => {
                self.raw(
                    method,
                    path,
                    token,
                    Some("application/json"),
                    b.to_string().into_bytes(),
                )
                .await
            }
            None => self.raw(method, path, token, None, Vec::new()).await,
        }
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

    /// Create an enrollment token (`body` as the API takes it); its secret.
    pub async fn enrollment_token(&self, admin: &str, body: Value) -> String {
        let v = self
            .ok(
                StatusCode::CREATED,
                Method::POST,
                "/api/v1/enrollment-tokens",
                admin,
                Some(body),
            )
            .await;
        v["token"].as_str().unwrap().to_string()
    }

    /// Enroll as `host-<identity>` with an instance identity derived from `identity`.
    pub async fn enroll(&self, token: &str, identity: &str) -> (StatusCode, Value) {
        let req = EnrollRequest {
            token: token.into(),
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
        self.call(
            Method::POST,
            "/agent/v1/enroll",
            None,
            Some(serde_json::to_value(req).unwrap()),
        )
        .await
    }

    /// Enroll a device named `host-<identity>`: (device id, device token).
    /// A package with apt versions (`apt_version`, no supersedence) of the given dependencies.
    pub async fn apt_package(&self, admin: &str, name: &str, versions: &[&str], deps: Value) {
        self.ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/packages",
            admin,
            Some(json!({"name": name})),
        )
        .await;
        for v in versions {
            self.ok(
                StatusCode::CREATED,
                Method::POST,
                &format!("/api/v1/packages/{name}/versions"),
                admin,
                Some(apt_version(v, name, deps.clone(), json!([]))),
            )
            .await;
        }
    }

    /// Create a group from `body` and add `members` (device ids) to it; returns its id.
    pub async fn group_with(&self, admin: &str, body: Value, members: &[&str]) -> String {
        let g = self
            .ok(
                StatusCode::CREATED,
                Method::POST,
                "/api/v1/groups",
                admin,
                Some(body),
            )
            .await;
        let id = g["id"].as_str().expect("a group id").to_string();
        if !members.is_empty() {
            self.ok(
                StatusCode::OK,
                Method::POST,
                &format!("/api/v1/groups/{id}/members"),
                admin,
                Some(json!({"device_ids": members})),
            )
            .await;
        }
        id
    }

    pub async fn device(&self, admin: &str, identity: &str) -> (String, String) {
        let tok = self.enrollment_token(admin, json!({"name": "t"})).await;
        let (s, v) = self.enroll(&tok, identity).await;
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
    assert!(
        resp.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        resp.1
    );
}

/// A package-manager version (apt, no artifact) with the given dependencies and supersedence.
pub fn apt_version(version: &str, pkg: &str, deps: Value, supersedes: Value) -> Value {
    json!({"version": version, "spec": {
        "installer_type": "package_manager",
        "manager_package": {"manager": "apt", "name": pkg},
        "dependencies": deps,
        "supersedes": supersedes,
        "detection": {"type": "package", "manager": "dpkg", "name": pkg}
    }})
}

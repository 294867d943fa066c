//! Operator authentication and authorisation. A request is authenticated by a session token
//! (cookie or bearer) or an API token; handlers declare the permission they need *in their
//! signature* with [`Authz<P>`], so a console route cannot exist without a permission check and
//! the check cannot be forgotten inside the handler.

pub mod routes;
pub mod secrets;

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use capstan_proto::api::Role;
use capstan_proto::{API_TOKEN_PREFIX, SESSION_COOKIE, SESSION_TOKEN_PREFIX};

use crate::error::ApiError;
use crate::state::{AppState, now_ms};

/// A named permission. Roles map to permissions in [`role_allows`].
pub trait Permission: Send + Sync + 'static {
    const NAME: &'static str;
}

macro_rules! permissions {
    ($($ty:ident => $name:literal),* $(,)?) => {
        $(
            #[derive(Debug)]
            pub struct $ty;
            impl Permission for $ty { const NAME: &'static str = $name; }
        )*
        /// Every permission name, for documentation and tests.
        pub const ALL_PERMISSIONS: &[&str] = &[$($name),*];
    };
}

permissions! {
    Authenticated => "session",
    DevicesRead => "devices.read",
    DevicesAction => "devices.action",
    DevicesDelete => "devices.delete",
    GroupsManage => "groups.manage",
    EnrollmentRead => "enrollment.read",
    EnrollmentManage => "enrollment.manage",
    UsersManage => "users.manage",
    AuditRead => "audit.read",
    JobsRead => "jobs.read",
    JobsRun => "jobs.run",
    ScriptsManage => "scripts.manage",
    DepotRead => "depot.read",
    DepotManage => "depot.manage",
    DeploymentsRead => "deployments.read",
    DeploymentsManage => "deployments.manage",
}

/// The built-in roles' permissions: viewer reads, operator also acts, admin may do everything
/// (including `users.manage` and `audit.read`, which no other role has).
pub fn role_allows(role: Role, permission: &str) -> bool {
    match role {
        Role::Admin => true,
        Role::Operator => matches!(
            permission,
            "session"
                | "devices.read"
                | "devices.action"
                | "groups.manage"
                | "enrollment.read"
                | "enrollment.manage"
                | "jobs.read"
                | "jobs.run"
                | "scripts.manage"
                | "depot.read"
                | "depot.manage"
                | "deployments.read"
                | "deployments.manage"
        ),
        Role::Viewer => matches!(
            permission,
            "session"
                | "devices.read"
                | "enrollment.read"
                | "jobs.read"
                | "depot.read"
                | "deployments.read"
        ),
    }
}

/// How the operator authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session(String),
    ApiToken(String),
}

/// An authenticated operator.
#[derive(Debug, Clone)]
pub struct Operator {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub credential: Credential,
}

impl Operator {
    /// The actor string recorded in the audit log and device timelines.
    pub fn actor(&self) -> String {
        format!("user:{}", self.username)
    }

    pub fn audit(
        &self,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> capstan_store::AuditEntry {
        capstan_store::AuditEntry {
            at: now_ms(),
            actor: self.actor(),
            action: action.to_string(),
            target: target.map(str::to_string),
            details,
        }
    }
}

/// Proof that the request's operator holds permission `P`.
#[derive(Debug)]
pub struct Authz<P: Permission> {
    pub operator: Operator,
    _p: PhantomData<P>,
}

impl<P: Permission> FromRequestParts<AppState> for Authz<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let operator = authenticate(parts, state).await?;
        if !role_allows(operator.role, P::NAME) {
            return Err(ApiError::forbidden(format!(
                "role {} lacks the permission {}",
                operator.role.as_str(),
                P::NAME
            )));
        }
        Ok(Authz {
            operator,
            _p: PhantomData,
        })
    }
}

/// The header the console sends with every state-changing request made with the session
/// cookie. Browsers only send a custom header cross-origin after a CORS preflight, which this
/// server never grants, so its presence proves the request came from a page of this origin.
pub const CSRF_HEADER: &str = "x-capstan-csrf";

/// Where a credential came from: cookies are sent by the browser on its own (hence CSRF
/// checks), bearer tokens only by code that holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    Cookie,
}

/// The presented credential: `Authorization: Bearer …` first, then the session cookie.
pub fn presented_token(parts: &Parts) -> Option<String> {
    presented_credential(parts).map(|(token, _)| token)
}

/// [`presented_token`] with where it was found.
pub fn presented_credential(parts: &Parts) -> Option<(String, TokenSource)> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim().to_string(), TokenSource::Bearer));
    }
    for header in parts.headers.get_all(axum::http::header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == SESSION_COOKIE
            {
                return Some((v.to_string(), TokenSource::Cookie));
            }
        }
    }
    None
}

/// Refuses a cookie-authenticated request that changes state unless it carries
/// `X-Capstan-CSRF: 1`: a cross-site form or `fetch` would carry the cookie (where SameSite
/// does not stop it, e.g. from a sibling subdomain) but cannot add the header.
fn check_csrf(parts: &Parts, source: TokenSource) -> Result<(), ApiError> {
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if source == TokenSource::Bearer || safe {
        return Ok(());
    }
    match parts.headers.get(CSRF_HEADER) {
        Some(v) if v.as_bytes() == b"1" => Ok(()),
        _ => Err(ApiError::forbidden(
            "cross-site request refused: requests authenticated by the session cookie that change \
             state must send the header `X-Capstan-CSRF: 1` (API clients: use `Authorization: Bearer`)",
        )),
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Operator, ApiError> {
    let (token, source) = presented_credential(parts).ok_or_else(|| {
        ApiError::unauthenticated(
            "authentication required: log in or send `Authorization: Bearer <token>`",
        )
    })?;
    check_csrf(parts, source)?;
    let now = now_ms();
    let invalid = || ApiError::unauthenticated("the credential is invalid, expired or revoked");
    let (user_id, credential) =
        if let Some((id, secret)) = secrets::parse(SESSION_TOKEN_PREFIX, &token) {
            let session = state.store.session(id).await?.ok_or_else(invalid)?;
            if !secrets::verify_secret(secret, &session.secret_hash) || session.expires_at <= now {
                return Err(invalid());
            }
            // Sliding expiry, written at most once a minute per session.
            if now - session.last_used_at > 60_000 {
                let ttl = state.config.session_ttl_secs as i64 * 1000;
                state.store.touch_session(id, now, now + ttl).await?;
            }
            (session.user_id, Credential::Session(id.to_string()))
        } else if let Some((id, secret)) = secrets::parse(API_TOKEN_PREFIX, &token) {
            let t = state.store.api_token(id).await?.ok_or_else(invalid)?;
            if !secrets::verify_secret(secret, &t.secret_hash)
                || t.revoked_at.is_some()
                || t.expires_at.is_some_and(|e| e <= now)
            {
                return Err(invalid());
            }
            state.store.touch_api_token(id, now).await?;
            (t.user_id, Credential::ApiToken(id.to_string()))
        } else {
            return Err(invalid());
        };
    let user = state.store.user(&user_id).await?.ok_or_else(invalid)?;
    if user.disabled {
        return Err(invalid());
    }
    let role = Role::parse(&user.role).ok_or_else(|| {
        ApiError::internal(format!(
            "user {} has unknown role {:?}",
            user.username, user.role
        ))
    })?;
    Ok(Operator {
        user_id: user.id,
        username: user.username,
        role,
        credential,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        for p in ALL_PERMISSIONS {
            assert!(role_allows(Role::Admin, p));
            if role_allows(Role::Viewer, p) {
                assert!(
                    role_allows(Role::Operator, p),
                    "operator must have viewer's {p}"
                );
            }
        }
        assert!(!role_allows(Role::Viewer, DevicesDelete::NAME));
        assert!(!role_allows(Role::Operator, UsersManage::NAME));
        assert!(!role_allows(Role::Operator, AuditRead::NAME));
        assert!(!role_allows(Role::Viewer, AuditRead::NAME));
        assert!(role_allows(Role::Admin, AuditRead::NAME));
        assert!(!role_allows(Role::Operator, DevicesDelete::NAME));
        assert!(role_allows(Role::Operator, DevicesAction::NAME));
        assert!(role_allows(Role::Operator, GroupsManage::NAME));
        assert!(!role_allows(Role::Viewer, GroupsManage::NAME));
    }
}

//! Console routes for logging in and out, changing one's password, operators (created,
//! changed and deleted by admins, with guard rails that keep an enabled admin) and their API
//! tokens.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use capstan_proto::api::{
    ApiTokenInfo, ChangePasswordRequest, CreateApiTokenRequest, CreateUserRequest, CreatedApiToken,
    LoginRequest, LoginResponse, Role, UpdateUserRequest, UserInfo,
};
use capstan_proto::error::{ErrorBody, ErrorCode};
use capstan_proto::{API_TOKEN_PREFIX, SESSION_COOKIE, SESSION_TOKEN_PREFIX};
use capstan_store::{ApiTokenRow, NewUser, SessionRow, StoreError, UserRow, UserUpdate};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Authenticated, Authz, Credential, UsersManage, secrets};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::ratelimit::ClientIp;
use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user, delete_user))
        .routes(routes!(list_api_tokens, create_api_token))
        .routes(routes!(revoke_api_token))
}

pub(crate) fn user_info(u: &UserRow) -> ApiResult<UserInfo> {
    let role = Role::parse(&u.role)
        .ok_or_else(|| ApiError::internal(format!("unknown role {:?}", u.role)))?;
    Ok(UserInfo {
        id: u.id.clone(),
        username: u.username.clone(),
        role,
        created_at_ms: u.created_at,
        disabled: u.disabled,
    })
}

/// Passwords are 12 to 1024 characters (the upper bound keeps Argon2 input bounded).
fn validate_password(what: &str, password: &str) -> ApiResult<()> {
    if password.chars().count() < 12 || password.len() > 1024 {
        return Err(ApiError::validation(format!(
            "{what} must be 12 to 1024 characters long"
        )));
    }
    Ok(())
}

/// Argon2id is slow on purpose; keep it off the async workers.
async fn hash_password(password: &str) -> ApiResult<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

fn user_not_found(id: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(format!("user {id}")),
        other => other.into(),
    }
}

fn token_info(t: &ApiTokenRow) -> ApiTokenInfo {
    ApiTokenInfo {
        id: t.id.clone(),
        name: t.name.clone(),
        user_id: t.user_id.clone(),
        created_at_ms: t.created_at,
        expires_at_ms: t.expires_at,
        last_used_at_ms: t.last_used_at,
        revoked: t.revoked_at.is_some(),
    }
}

fn validate_name(what: &str, name: &str, max: usize) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::validation(format!("{what} must not be empty")));
    }
    if name.len() > max {
        return Err(ApiError::validation(format!(
            "{what} is longer than {max} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Log in with username and password.
///
/// Returns a session token for the CLI and sets the same token as an HttpOnly cookie for the
/// console. Sessions expire after the configured idle time (12 h by default).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody, description = "invalid_credentials"),
              (status = 429, body = ErrorBody, description = "rate_limited: too many failures for this address or username")))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let ip_key = ip.key("login");
    let user_key = format!("login-user:{}", req.username);
    for key in ip_key.iter().chain(std::iter::once(&user_key)) {
        let limiter = if key.starts_with("login-user:") {
            &state.limits.login_user
        } else {
            &state.limits.login_ip
        };
        limiter.check(key).map_err(ApiError::rate_limited)?;
    }
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "wrong username or password",
        )
    };
    if req.username.len() > 256 || req.password.len() > 1024 {
        return Err(bad());
    }
    let user = state.store.user_by_username(&req.username).await?;
    // Verify against a dummy hash when the user does not exist, so response time does not
    // reveal which usernames exist.
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_password_hash.clone());
    let password = req.password.clone();
    let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &stored))
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            tracing::warn!(username = %req.username.escape_debug(), client = ?ip.0, "failed login");
            if let Some(k) = &ip_key {
                state.limits.login_ip.record_failure(k);
            }
            state.limits.login_user.record_failure(&user_key);
            return Err(bad());
        }
    };
    state.limits.login_user.reset(&user_key);
    let now = now_ms();
    let id = secrets::new_id();
    let minted = secrets::mint(SESSION_TOKEN_PREFIX, &id);
    let expires_at = now + state.config.session_ttl_secs as i64 * 1000;
    state
        .store
        .create_session(&SessionRow {
            id,
            user_id: user.id.clone(),
            secret_hash: minted.hash,
            created_at: now,
            expires_at,
            last_used_at: now,
        })
        .await?;
    let body = LoginResponse {
        token: minted.token.clone(),
        expires_at_ms: expires_at,
        user: user_info(&user)?,
    };
    let secure = if state.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        minted.token
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok((headers, Json(body)).into_response())
}

/// Log out: ends the session used for this request and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn logout(State(state): State<AppState>, auth: Authz<Authenticated>) -> ApiResult<Response> {
    if let Credential::Session(id) = &auth.operator.credential {
        state.store.delete_session(id).await?;
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("capstan_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// The operator making the request.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn me(
    State(state): State<AppState>,
    auth: Authz<Authenticated>,
) -> ApiResult<Json<UserInfo>> {
    let user = state
        .store
        .user(&auth.operator.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user_info(&user)?))
}

/// Change your own password.
///
/// Needs the current password. Every other session of yours ends; the session making this
/// request (if it is one) stays valid, and your API tokens keep working.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400, body = ErrorBody, description = "validation_failed: the new password is too short or too long"),
              (status = 401, body = ErrorBody, description = "invalid_credentials: the current password is wrong"),
              (status = 429, body = ErrorBody, description = "rate_limited: too many wrong current passwords")),
    security(("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    auth: Authz<Authenticated>,
    Json(req): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let op = &auth.operator;
    // A stolen session must not become an oracle for the password, which unlocks more.
    let key = format!("password-user:{}", op.user_id);
    state
        .limits
        .login_user
        .check(&key)
        .map_err(ApiError::rate_limited)?;
    let wrong = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "the current password is wrong",
        )
    };
    validate_password("new_password", &req.new_password)?;
    let user = state
        .store
        .user(&op.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let ok = req.current_password.len() <= 1024 && {
        let (password, stored) = (req.current_password.clone(), user.password_hash.clone());
        tokio::task::spawn_blocking(move || secrets::verify_password(&password, &stored))
            .await
            .map_err(ApiError::internal)?
    };
    if !ok {
        tracing::warn!(username = %op.username.escape_debug(), "wrong current password on password change");
        state.limits.login_user.record_failure(&key);
        return Err(wrong());
    }
    state.limits.login_user.reset(&key);
    let hash = hash_password(&req.new_password).await?;
    let keep = match &op.credential {
        Credential::Session(id) => Some(id.as_str()),
        Credential::ApiToken(_) => None,
    };
    let audit = op.audit("user.password_change", Some(&op.user_id), json!({}));
    state
        .store
        .set_password(&op.user_id, &hash, keep, &audit)
        .await
        .map_err(user_not_found(&op.user_id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// List operators. Requires `users.manage` (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserInfo>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    _auth: Authz<UsersManage>,
) -> ApiResult<Json<Vec<UserInfo>>> {
    let users = state.store.list_users().await?;
    Ok(Json(users.iter().map(user_info).collect::<ApiResult<_>>()?))
}

/// Create an operator with a built-in role. Requires `users.manage` (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = UserInfo), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_user(
    State(state): State<AppState>,
    auth: Authz<UsersManage>,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserInfo>)> {
    validate_name("username", &req.username, 128)?;
    if req.username.contains(char::is_whitespace) {
        return Err(ApiError::validation("username must not contain whitespace"));
    }
    validate_password("password", &req.password)?;
    let hash = hash_password(&req.password).await?;
    let user = NewUser {
        id: secrets::new_id(),
        username: req.username.clone(),
        password_hash: hash,
        role: req.role.as_str().to_string(),
        created_at: now_ms(),
    };
    let audit = auth.operator.audit(
        "user.create",
        Some(&user.id),
        json!({"username": user.username, "role": user.role}),
    );
    state.store.create_user(&user, Some(&audit)).await?;
    let row = state
        .store
        .user(&user.id)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished after insert"))?;
    Ok((StatusCode::CREATED, Json(user_info(&row)?)))
}

/// The caller's API tokens (admins see everyone's).
#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "auth",
    responses((status = 200, body = Vec<ApiTokenInfo>)), security(("bearer" = [])))]
async fn list_api_tokens(
    State(state): State<AppState>,
    auth: Authz<Authenticated>,
) -> ApiResult<Json<Vec<ApiTokenInfo>>> {
    let scope = (auth.operator.role != Role::Admin).then_some(auth.operator.user_id.as_str());
    let tokens = state.store.list_api_tokens(scope).await?;
    Ok(Json(tokens.iter().map(token_info).collect()))
}

/// Create a long-lived API token for automation; the secret is in this response only.
/// The token acts with the caller's role.
#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "auth", request_body = CreateApiTokenRequest,
    responses((status = 201, body = CreatedApiToken), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
async fn create_api_token(
    State(state): State<AppState>,
    auth: Authz<Authenticated>,
    Json(req): Json<CreateApiTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiToken>)> {
    validate_name("name", &req.name, 200)?;
    let now = now_ms();
    let expires_at = match req.expires_in_secs {
        Some(0) => return Err(ApiError::validation("expires_in_secs must be positive")),
        Some(s) if s > 10 * 365 * 86_400 => {
            return Err(ApiError::validation("expires_in_secs is at most ten years"));
        }
        Some(s) => Some(now + s as i64 * 1000),
        None => None,
    };
    let id = secrets::new_id();
    let minted = secrets::mint(API_TOKEN_PREFIX, &id);
    let row = ApiTokenRow {
        id: id.clone(),
        user_id: auth.operator.user_id.clone(),
        name: req.name.clone(),
        secret_hash: minted.hash,
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let audit = auth.operator.audit(
        "api_token.create",
        Some(&id),
        json!({"name": req.name, "expires_at": expires_at}),
    );
    state.store.create_api_token(&row, &audit).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            info: token_info(&row),
            token: minted.token,
        }),
    ))
}

/// Revoke an API token (your own; admins may revoke any).
#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "auth", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn revoke_api_token(
    State(state): State<AppState>,
    auth: Authz<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let token = state
        .store
        .api_token(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API token {id}")))?;
    if token.user_id != auth.operator.user_id && auth.operator.role != Role::Admin {
        // Not revealing other users' token ids: same answer as a missing token.
        return Err(ApiError::not_found(format!("API token {id}")));
    }
    let audit = auth
        .operator
        .audit("api_token.revoke", Some(&id), json!({"name": token.name}));
    state.store.revoke_api_token(&id, now_ms(), &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change an operator's role, disable or enable it, or reset its password. Requires
/// `users.manage` (admin).
///
/// A role change, disabling or a password reset ends the user's sessions; a disabled user's
/// API tokens stop working until it is enabled again. Refused with 409 `conflict`: changing
/// your own role, disabling yourself, resetting your own password here (use
/// `POST /api/v1/auth/password`), and any change that would leave no enabled admin.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "conflict: a guard rail refused the change")),
    security(("bearer" = [])))]
async fn update_user(
    State(state): State<AppState>,
    auth: Authz<UsersManage>,
    Path(id): Path<String>,
    Json(req): Json<UpdateUserRequest>,
) -> ApiResult<Json<UserInfo>> {
    if req.role.is_none() && req.disabled.is_none() && req.password.is_none() {
        return Err(ApiError::validation(
            "nothing to change: give role, disabled or password",
        ));
    }
    if let Some(p) = &req.password {
        validate_password("password", p)?;
    }
    let op = &auth.operator;
    if id == op.user_id {
        if req.role.is_some_and(|r| r != op.role) {
            return Err(ApiError::conflict(
                "you cannot change your own role; another admin must do it",
            ));
        }
        if req.disabled == Some(true) {
            return Err(ApiError::conflict("you cannot disable yourself"));
        }
        if req.password.is_some() {
            return Err(ApiError::conflict(
                "change your own password with POST /api/v1/auth/password (`capstan passwd`), which asks for the current one",
            ));
        }
    }
    let password_hash = match &req.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let change = UserUpdate {
        role: req.role.map(|r| r.as_str().to_string()),
        disabled: req.disabled,
        password_hash,
    };
    let audit = op.audit("user.update", Some(&id), json!({}));
    let row = state
        .store
        .update_user(&id, &change, &audit)
        .await
        .map_err(user_not_found(&id))?;
    Ok(Json(user_info(&row)?))
}

/// Delete an operator with its sessions and API tokens. Requires `users.manage` (admin).
///
/// Refused with 409 `conflict` for yourself and for the last enabled admin. The audit log keeps
/// the user's past actions (they name the username, not the id).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "conflict: yourself or the last enabled admin")),
    security(("bearer" = [])))]
async fn delete_user(
    State(state): State<AppState>,
    auth: Authz<UsersManage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if id == auth.operator.user_id {
        return Err(ApiError::conflict(
            "you cannot delete yourself; another admin must do it",
        ));
    }
    let audit = auth.operator.audit("user.delete", Some(&id), json!({}));
    state
        .store
        .delete_user(&id, &audit)
        .await
        .map_err(user_not_found(&id))?;
    Ok(StatusCode::NO_CONTENT)
}

//! The console REST API client: one typed async method per route under `/api/v1` (plus
//! `/healthz` and raw JSON access), authenticating with a bearer token (a `caps_` session or a
//! `capt_` API token). Error responses become [`Error::Api`] with the server's stable
//! [`capstan_proto::error::ErrorCode`], so callers branch on codes, never on messages.

use capstan_proto::api::{
    ApiTokenInfo, AuditPage, AuditQuery, BulkResult, ChangePasswordRequest, CreateApiTokenRequest,
    CreateCustomFieldRequest, CreateEnrollmentTokenRequest, CreateGroupRequest, CreateUserRequest,
    CreatedApiToken, CreatedEnrollmentToken, CustomFieldInfo, DeviceDetail, DeviceListQuery,
    DevicePage, EnrollmentTokenInfo, GroupExplanation, GroupInfo, GroupPreview,
    GroupPreviewRequest, Health, LoginRequest, LoginResponse, MembershipChange, RefreshResponse,
    SetCustomFieldValue, TagChange, TimelinePage, TimelineQuery, UpdateCustomFieldRequest,
    UpdateGroupRequest, UpdateUserRequest, UserInfo,
};
use capstan_proto::deploy::{
    AssignmentInfo, AssignmentQuery, CreateAssignmentRequest, CreateDeploymentRequest,
    CreateWindowRequest, DeploymentInfo, DeploymentStatus, DeviceSoftwareState, ItemHistoryEntry,
    WindowInfo,
};
use capstan_proto::jobs::{
    BreakerInfo, CreateJobRequest, CreateScriptRequest, JobInfo, JobPage, RunDetail, RunPage,
    RunScriptRequest, RunState, RunsChanged, ScriptInfo, ScriptVersionInfo, UpdateScriptRequest,
};
use capstan_proto::software::{
    CreatePackageRequest, CreateSourceRequest, CreateVersionRequest, DepotSourceInfo, DriftReport,
    PackageInfo, PackageListQuery, PackagePage, PackageUploadQuery, SoftwareJobRequest,
    SourceStatus, SourceStatusQuery, SyncRequest, SyncStarted, UpdatePackageRequest,
    UpdateSourceRequest, UploadAnalysis, VersionInfo, VersionSpec,
};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Method, RequestBuilder, Response, Url};
use serde::Serialize;

use crate::tls::{ClientOptions, build_http_client, normalize_base_url};
use crate::{Error, Result, empty_or_error, json_or_error};

/// Client of the console API of one server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// Query of `GET /api/v1/jobs`; unset fields are not sent (server defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobListQuery {
    /// Page size, 1..=500 (server default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// Query of `GET /api/v1/jobs/{id}/runs`; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunListQuery {
    /// Only runs in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<RunState>,
    /// Page size, 1..=500 (server default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl ApiClient {
    /// A client for the server at `base_url` (`https://host:port`, optionally with a path
    /// prefix). `token` is sent as `Authorization: Bearer` on every request when set.
    pub fn new(base_url: &str, token: Option<String>, opts: &ClientOptions) -> Result<ApiClient> {
        let normalized = normalize_base_url(base_url)?;
        let base = Url::parse(&normalized)
            .map_err(|e| Error::Config(format!("server URL {base_url:?} is not valid: {e}")))?;
        if base.cannot_be_a_base() || base.query().is_some() || base.fragment().is_some() {
            return Err(Error::Config(format!(
                "server URL {base_url:?} must not carry a query or fragment"
            )));
        }
        Ok(ApiClient {
            http: build_http_client(opts)?,
            base,
            token,
        })
    }

    /// The server base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The bearer token in use, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The same client (sharing its connection pool) with another token.
    pub fn with_token(&self, token: Option<String>) -> ApiClient {
        ApiClient {
            http: self.http.clone(),
            base: self.base.clone(),
            token,
        }
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health> {
        json_or_error(self.send(Method::GET, &["healthz"], |r| r).await?).await
    }

    /// `GET` any path below the base URL (e.g. `/api/v1/devices?limit=5`) and return the JSON
    /// body as it is, for tools and tests that need fields the typed methods do not expose.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let rel = path.trim_start_matches('/');
        // Joining onto "base/" keeps a path prefix of the base URL; a path that escapes it
        // (absolute URL, `//host`) is refused rather than sending the token elsewhere.
        let mut dir = self.base.clone();
        if !dir.path().ends_with('/') {
            let p = format!("{}/", dir.path());
            dir.set_path(&p);
        }
        let url = dir
            .join(rel)
            .map_err(|e| Error::Config(format!("invalid API path {path:?}: {e}")))?;
        if url.origin() != self.base.origin() || !url.path().starts_with(dir.path()) {
            return Err(Error::Config(format!(
                "API path {path:?} leaves the server base URL"
            )));
        }
        json_or_error(
            self.execute(self.http.request(Method::GET, url.clone()), url)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/auth/login`. The returned token is not stored in this client: use
    /// [`ApiClient::with_token`].
    pub async fn login(&self, req: &LoginRequest) -> Result<LoginResponse> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "auth", "login"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `POST /api/v1/auth/logout`: invalidates the session this client uses.
    pub async fn logout(&self) -> Result<()> {
        empty_or_error(
            self.send(Method::POST, &["api", "v1", "auth", "logout"], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/auth/me`.
    pub async fn me(&self) -> Result<UserInfo> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "auth", "me"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/auth/password`: change the caller's own password. The caller's other
    /// sessions end; this client's session (if it uses one) stays valid.
    pub async fn change_password(&self, req: &ChangePasswordRequest) -> Result<()> {
        empty_or_error(
            self.send(Method::POST, &["api", "v1", "auth", "password"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `GET /api/v1/users`.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "users"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/users`.
    pub async fn create_user(&self, req: &CreateUserRequest) -> Result<UserInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "users"], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `PATCH /api/v1/users/{id}`: change role, enabled state or password (admin).
    pub async fn update_user(&self, id: &str, req: &UpdateUserRequest) -> Result<UserInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::PATCH, &["api", "v1", "users", id], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `DELETE /api/v1/users/{id}`: the user, its sessions and API tokens are removed (admin).
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "users", id], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/audit-log` (one page, newest first; admin).
    pub async fn audit_log(&self, query: &AuditQuery) -> Result<AuditPage> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "audit-log"], |r| r.query(query))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/api-tokens` (the caller's own tokens).
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiTokenInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "api-tokens"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/api-tokens`. The secret is only in this response.
    pub async fn create_api_token(&self, req: &CreateApiTokenRequest) -> Result<CreatedApiToken> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "api-tokens"], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `DELETE /api/v1/api-tokens/{id}`.
    pub async fn revoke_api_token(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "api-tokens", id], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/enrollment-tokens`.
    pub async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "enrollment-tokens"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/enrollment-tokens`. The secret is only in this response.
    pub async fn create_enrollment_token(
        &self,
        req: &CreateEnrollmentTokenRequest,
    ) -> Result<CreatedEnrollmentToken> {
        let resp = self
            .send(Method::POST, &["api", "v1", "enrollment-tokens"], |r| {
                r.json(req)
            })
            .await?;
        json_or_error(resp).await
    }

    /// `DELETE /api/v1/enrollment-tokens/{id}`.
    pub async fn revoke_enrollment_token(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        let resp = self
            .send(
                Method::DELETE,
                &["api", "v1", "enrollment-tokens", id],
                |r| r,
            )
            .await?;
        empty_or_error(resp).await
    }

    /// `GET /api/v1/devices` (one page).
    pub async fn list_devices(&self, query: &DeviceListQuery) -> Result<DevicePage> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "devices"], |r| r.query(query))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/devices/{id}`.
    pub async fn get_device(&self, id: &str) -> Result<DeviceDetail> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "devices", id], |r| r)
                .await?,
        )
        .await
    }

    /// `DELETE /api/v1/devices/{id}`: the device and its data are removed.
    pub async fn delete_device(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "devices", id], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/devices/{id}/revoke`: the credential dies, the record is kept.
    pub async fn revoke_device(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        let resp = self
            .send(Method::POST, &["api", "v1", "devices", id, "revoke"], |r| r)
            .await?;
        empty_or_error(resp).await
    }

    /// `POST /api/v1/devices/{id}/refresh-inventory`.
    pub async fn refresh_inventory(&self, id: &str) -> Result<RefreshResponse> {
        let id = checked_id(id)?;
        let resp = self
            .send(
                Method::POST,
                &["api", "v1", "devices", id, "refresh-inventory"],
                |r| r,
            )
            .await?;
        json_or_error(resp).await
    }

    /// `GET /api/v1/devices/{id}/timeline` (one page, newest first).
    pub async fn device_timeline(&self, id: &str, query: &TimelineQuery) -> Result<TimelinePage> {
        let id = checked_id(id)?;
        let resp = self
            .send(
                Method::GET,
                &["api", "v1", "devices", id, "timeline"],
                |r| r.query(query),
            )
            .await?;
        json_or_error(resp).await
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Config(format!("server URL {} cannot carry a path", self.base)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `GET /api/v1/groups`: every group with its member counts.
    pub async fn list_groups(&self) -> Result<Vec<GroupInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "groups"], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/groups/{id}` (id or name).
    pub async fn get_group(&self, id: &str) -> Result<GroupInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "groups", id], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/groups`.
    pub async fn create_group(&self, req: &CreateGroupRequest) -> Result<GroupInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "groups"], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `PATCH /api/v1/groups/{id}`: rename, describe, re-parent, replace a dynamic rule.
    pub async fn update_group(&self, id: &str, req: &UpdateGroupRequest) -> Result<GroupInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::PATCH, &["api", "v1", "groups", id], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `DELETE /api/v1/groups/{id}` (refused while it has child groups).
    pub async fn delete_group(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "groups", id], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/groups/{id}/members`: devices of the group and its descendants, one page.
    pub async fn group_members(&self, id: &str, query: &DeviceListQuery) -> Result<DevicePage> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "groups", id, "members"], |r| {
                r.query(query)
            })
            .await?,
        )
        .await
    }

    /// `POST /api/v1/groups/preview`: which devices a rule matches, without saving it.
    pub async fn preview_group(&self, req: &GroupPreviewRequest) -> Result<GroupPreview> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "groups", "preview"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `GET /api/v1/groups/{id}/explain/{device}`: why a device is a member or not.
    pub async fn explain_group(&self, group: &str, device: &str) -> Result<GroupExplanation> {
        let group = checked_id(group)?;
        let device = checked_id(device)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "groups", group, "explain", device],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/groups/{id}/members` (`add`) or `…/members/remove`.
    pub async fn change_group_members(
        &self,
        id: &str,
        req: &MembershipChange,
        add: bool,
    ) -> Result<BulkResult> {
        let id = checked_id(id)?;
        let path: &[&str] = if add {
            &["api", "v1", "groups", id, "members"]
        } else {
            &["api", "v1", "groups", id, "members", "remove"]
        };
        json_or_error(self.send(Method::POST, path, |r| r.json(req)).await?).await
    }

    /// `POST /api/v1/tags/add` (`add`) or `/api/v1/tags/remove`.
    pub async fn change_tags(&self, req: &TagChange, add: bool) -> Result<BulkResult> {
        let verb = if add { "add" } else { "remove" };
        json_or_error(
            self.send(Method::POST, &["api", "v1", "tags", verb], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/custom-fields`.
    pub async fn list_custom_fields(&self) -> Result<Vec<CustomFieldInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "custom-fields"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/custom-fields`.
    pub async fn create_custom_field(
        &self,
        req: &CreateCustomFieldRequest,
    ) -> Result<CustomFieldInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "custom-fields"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `PATCH /api/v1/custom-fields/{name}`.
    pub async fn update_custom_field(
        &self,
        name: &str,
        req: &UpdateCustomFieldRequest,
    ) -> Result<CustomFieldInfo> {
        let name = checked_id(name)?;
        json_or_error(
            self.send(Method::PATCH, &["api", "v1", "custom-fields", name], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `DELETE /api/v1/custom-fields/{name}`: the definition and every device's value.
    pub async fn delete_custom_field(&self, name: &str) -> Result<()> {
        let name = checked_id(name)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "custom-fields", name], |r| r)
                .await?,
        )
        .await
    }

    /// `PUT /api/v1/devices/{id}/custom-fields/{name}`.
    pub async fn set_custom_field(
        &self,
        device: &str,
        name: &str,
        value: serde_json::Value,
    ) -> Result<()> {
        let (device, name) = (checked_id(device)?, checked_id(name)?);
        let body = SetCustomFieldValue { value };
        empty_or_error(
            self.send(
                Method::PUT,
                &["api", "v1", "devices", device, "custom-fields", name],
                |r| r.json(&body),
            )
            .await?,
        )
        .await
    }

    /// `DELETE /api/v1/devices/{id}/custom-fields/{name}`: the default applies again.
    pub async fn unset_custom_field(&self, device: &str, name: &str) -> Result<()> {
        let (device, name) = (checked_id(device)?, checked_id(name)?);
        empty_or_error(
            self.send(
                Method::DELETE,
                &["api", "v1", "devices", device, "custom-fields", name],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/jobs`: create a job; the server resolves the targets and creates one run
    /// per device.
    pub async fn create_job(&self, req: &CreateJobRequest) -> Result<JobInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "jobs"], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/jobs`: one page of jobs, newest first, with their run counts.
    pub async fn list_jobs(&self, query: &JobListQuery) -> Result<JobPage> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "jobs"], |r| r.query(query))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/jobs/{id}`: the job with its run counts.
    pub async fn get_job(&self, id: &str) -> Result<JobInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "jobs", id], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/jobs/{id}/runs`: one page of the job's runs, by hostname.
    pub async fn list_runs(&self, job: &str, query: &RunListQuery) -> Result<RunPage> {
        let job = checked_id(job)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "jobs", job, "runs"], |r| {
                r.query(query)
            })
            .await?,
        )
        .await
    }

    /// `GET /api/v1/jobs/{id}/runs/{run}` (`run` is a run id or a device id): the run with
    /// every attempt, its output and its state history.
    pub async fn get_run(&self, job: &str, run: &str) -> Result<RunDetail> {
        let (job, run) = (checked_id(job)?, checked_id(run)?);
        json_or_error(
            self.send(Method::GET, &["api", "v1", "jobs", job, "runs", run], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/jobs/{id}/cancel`: every unfinished run of the job is cancelled.
    pub async fn cancel_job(&self, id: &str) -> Result<RunsChanged> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::POST, &["api", "v1", "jobs", id, "cancel"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/jobs/{id}/runs/{run}/cancel` (`run` is a run id or a device id).
    pub async fn cancel_run(&self, job: &str, run: &str) -> Result<RunsChanged> {
        let (job, run) = (checked_id(job)?, checked_id(run)?);
        json_or_error(
            self.send(
                Method::POST,
                &["api", "v1", "jobs", job, "runs", run, "cancel"],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/jobs/{id}/retry`: failed and timed-out runs get a new attempt.
    pub async fn retry_job(&self, id: &str) -> Result<RunsChanged> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::POST, &["api", "v1", "jobs", id, "retry"], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/breakers`: devices' circuit breakers; `open: Some(false)` lists every
    /// device with a failure count, not only open breakers (the server default).
    pub async fn list_breakers(&self, open: Option<bool>) -> Result<Vec<BreakerInfo>> {
        #[derive(Serialize)]
        struct Q {
            #[serde(skip_serializing_if = "Option::is_none")]
            open: Option<bool>,
        }
        json_or_error(
            self.send(Method::GET, &["api", "v1", "breakers"], |r| {
                r.query(&Q { open })
            })
            .await?,
        )
        .await
    }

    /// `GET /api/v1/devices/{id}/breaker`.
    pub async fn get_breaker(&self, device: &str) -> Result<BreakerInfo> {
        let device = checked_id(device)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "devices", device, "breaker"],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/devices/{id}/breaker/reset`: the retries the breaker held are queued again.
    pub async fn reset_breaker(&self, device: &str) -> Result<RunsChanged> {
        let device = checked_id(device)?;
        json_or_error(
            self.send(
                Method::POST,
                &["api", "v1", "devices", device, "breaker", "reset"],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/scripts`: every library script at its latest version.
    pub async fn list_scripts(&self) -> Result<Vec<ScriptInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "scripts"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/scripts`: save a new script (version 1).
    pub async fn create_script(&self, req: &CreateScriptRequest) -> Result<ScriptInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "scripts"], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/scripts/{id}` (id or name): the latest version.
    pub async fn get_script(&self, id: &str) -> Result<ScriptInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "scripts", id], |r| r)
                .await?,
        )
        .await
    }

    /// `PATCH /api/v1/scripts/{id}`: a new version with the given fields changed.
    pub async fn update_script(&self, id: &str, req: &UpdateScriptRequest) -> Result<ScriptInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::PATCH, &["api", "v1", "scripts", id], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `DELETE /api/v1/scripts/{id}`: the script and all its versions.
    pub async fn delete_script(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "scripts", id], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/scripts/{id}/versions`: every version, newest first.
    pub async fn script_versions(&self, id: &str) -> Result<Vec<ScriptVersionInfo>> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "scripts", id, "versions"],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/scripts/{id}/versions/{version}`.
    pub async fn script_version(&self, id: &str, version: u32) -> Result<ScriptVersionInfo> {
        let id = checked_id(id)?;
        let version = version.to_string();
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "scripts", id, "versions", &version],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/scripts/{id}/run`: run a library script as a job, arguments bound to its
    /// parameters by type.
    pub async fn run_script(&self, id: &str, req: &RunScriptRequest) -> Result<JobInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::POST, &["api", "v1", "scripts", id, "run"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `GET /api/v1/packages` (one page), ordered by display name.
    pub async fn list_packages(&self, query: &PackageListQuery) -> Result<PackagePage> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "packages"], |r| r.query(query))
                .await?,
        )
        .await
    }

    /// `POST /api/v1/packages`: a package without versions.
    pub async fn create_package(&self, req: &CreatePackageRequest) -> Result<PackageInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "packages"], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/packages/{package}` (id or name).
    pub async fn get_package(&self, package: &str) -> Result<PackageInfo> {
        let package = checked_id(package)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "packages", package], |r| r)
                .await?,
        )
        .await
    }

    /// `PATCH /api/v1/packages/{package}`: change the fields that are set (`Some(None)` clears
    /// an optional text).
    pub async fn update_package(
        &self,
        package: &str,
        req: &UpdatePackageRequest,
    ) -> Result<PackageInfo> {
        let package = checked_id(package)?;
        json_or_error(
            self.send(Method::PATCH, &["api", "v1", "packages", package], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `DELETE /api/v1/packages/{package}`: the package and all its versions.
    pub async fn delete_package(&self, package: &str) -> Result<()> {
        let package = checked_id(package)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "packages", package], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/packages/{package}/versions`: every version, newest first.
    pub async fn package_versions(&self, package: &str) -> Result<Vec<VersionInfo>> {
        let package = checked_id(package)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "packages", package, "versions"],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/packages/{package}/versions`: a version whose artifacts are already in the
    /// depot.
    pub async fn create_version(
        &self,
        package: &str,
        req: &CreateVersionRequest,
    ) -> Result<VersionInfo> {
        let package = checked_id(package)?;
        json_or_error(
            self.send(
                Method::POST,
                &["api", "v1", "packages", package, "versions"],
                |r| r.json(req),
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/packages/{package}/versions/{version}`. The version is one path segment:
    /// `1:2.10-3` and `1.0+dfsg` are sent as they are, `/` and `?` escaped.
    pub async fn get_version(&self, package: &str, version: &str) -> Result<VersionInfo> {
        let package = checked_id(package)?;
        let version = checked_id(version)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "packages", package, "versions", version],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `PUT /api/v1/packages/{package}/versions/{version}`: replace the version's spec (its
    /// artifacts stay).
    pub async fn update_version(
        &self,
        package: &str,
        version: &str,
        spec: &VersionSpec,
    ) -> Result<VersionInfo> {
        let package = checked_id(package)?;
        let version = checked_id(version)?;
        json_or_error(
            self.send(
                Method::PUT,
                &["api", "v1", "packages", package, "versions", version],
                |r| r.json(spec),
            )
            .await?,
        )
        .await
    }

    /// `DELETE /api/v1/packages/{package}/versions/{version}`.
    pub async fn delete_version(&self, package: &str, version: &str) -> Result<()> {
        let package = checked_id(package)?;
        let version = checked_id(version)?;
        empty_or_error(
            self.send(
                Method::DELETE,
                &["api", "v1", "packages", package, "versions", version],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/packages/upload`: the package file as the raw body, parsed by the server
    /// into an [`UploadAnalysis`]. `body` may be a stream (`Body::wrap_stream`), so a large
    /// file never has to be in memory; `length`, when known, is announced as `Content-Length`
    /// so the server refuses a file above its limit before anything is sent.
    pub async fn upload_package(
        &self,
        query: &PackageUploadQuery,
        body: Body,
        length: Option<u64>,
    ) -> Result<UploadAnalysis> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "packages", "upload"], |r| {
                let r = r
                    .query(query)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body);
                match length {
                    Some(n) => r.header(CONTENT_LENGTH, n),
                    None => r,
                }
            })
            .await?,
        )
        .await
    }

    /// `POST /api/v1/software/install`: a job installing the package version (the newest when
    /// none is named) on the targets.
    pub async fn software_install(&self, req: &SoftwareJobRequest) -> Result<JobInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "software", "install"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `POST /api/v1/software/uninstall`: a job removing the package version (the newest when
    /// none is named) from the targets.
    pub async fn software_uninstall(&self, req: &SoftwareJobRequest) -> Result<JobInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "software", "uninstall"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `GET /api/v1/depot/limits`: the largest upload the depot accepts.
    pub async fn depot_limits(&self) -> Result<capstan_proto::depot::DepotLimits> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "depot", "limits"], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/depot/sources`: every depot source, by priority.
    pub async fn list_sources(&self) -> Result<Vec<DepotSourceInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "depot", "sources"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/depot/sources`.
    pub async fn create_source(&self, req: &CreateSourceRequest) -> Result<DepotSourceInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "depot", "sources"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `GET /api/v1/depot/sources/{source}` (id or name).
    pub async fn get_source(&self, source: &str) -> Result<DepotSourceInfo> {
        let source = checked_id(source)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "depot", "sources", source],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `PATCH /api/v1/depot/sources/{source}`: change the fields that are set.
    pub async fn update_source(
        &self,
        source: &str,
        req: &UpdateSourceRequest,
    ) -> Result<DepotSourceInfo> {
        let source = checked_id(source)?;
        json_or_error(
            self.send(
                Method::PATCH,
                &["api", "v1", "depot", "sources", source],
                |r| r.json(req),
            )
            .await?,
        )
        .await
    }

    /// `DELETE /api/v1/depot/sources/{source}` (the files on the source stay).
    pub async fn delete_source(&self, source: &str) -> Result<()> {
        let source = checked_id(source)?;
        empty_or_error(
            self.send(
                Method::DELETE,
                &["api", "v1", "depot", "sources", source],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/depot/sources/{source}/sync`: queue copies of a package's artifacts (one
    /// version, or all); they run in the background, see [`ApiClient::source_status`].
    pub async fn sync_source(&self, source: &str, req: &SyncRequest) -> Result<SyncStarted> {
        let source = checked_id(source)?;
        json_or_error(
            self.send(
                Method::POST,
                &["api", "v1", "depot", "sources", source, "sync"],
                |r| r.json(req),
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/depot/sources/{source}/status`: every artifact's state on the source;
    /// `verify` makes the server look at the source now.
    pub async fn source_status(
        &self,
        source: &str,
        query: &SourceStatusQuery,
    ) -> Result<SourceStatus> {
        let source = checked_id(source)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "depot", "sources", source, "status"],
                |r| r.query(query),
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/depot/drift`: which source lacks which version.
    pub async fn depot_drift(&self) -> Result<DriftReport> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "depot", "drift"], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/assignments`: every assignment, or only those of a package, of a group, or
    /// reaching a device (directly or through its groups); unset filters are not sent.
    pub async fn list_assignments(&self, query: &AssignmentQuery) -> Result<Vec<AssignmentInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "assignments"], |r| {
                r.query(query)
            })
            .await?,
        )
        .await
    }

    /// `POST /api/v1/assignments`: assign a package (a version, or "latest") to a device or a
    /// group; a second assignment of the package to the same target is refused (409).
    pub async fn create_assignment(&self, req: &CreateAssignmentRequest) -> Result<AssignmentInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "assignments"], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/assignments/{id}`.
    pub async fn get_assignment(&self, id: &str) -> Result<AssignmentInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "assignments", id], |r| r)
                .await?,
        )
        .await
    }

    /// `DELETE /api/v1/assignments/{id}` (with its deployment, if it has one): devices it no
    /// longer reaches uninstall what it installed unless it leaves software installed.
    pub async fn delete_assignment(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "assignments", id], |r| r)
                .await?,
        )
        .await
    }

    /// `GET /api/v1/deployments`: every deployment with its devices per status.
    pub async fn list_deployments(&self) -> Result<Vec<DeploymentInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "deployments"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/deployments`.
    pub async fn create_deployment(&self, req: &CreateDeploymentRequest) -> Result<DeploymentInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "deployments"], |r| r.json(req))
                .await?,
        )
        .await
    }

    /// `GET /api/v1/deployments/{id}` (id or name).
    pub async fn get_deployment(&self, id: &str) -> Result<DeploymentInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(Method::GET, &["api", "v1", "deployments", id], |r| r)
                .await?,
        )
        .await
    }

    /// `DELETE /api/v1/deployments/{id}` (id or name), with its assignment: devices uninstall
    /// what it installed unless it leaves software installed.
    pub async fn delete_deployment(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        empty_or_error(
            self.send(Method::DELETE, &["api", "v1", "deployments", id], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/deployments/{id}/pause`: its devices keep what they have until resumed.
    pub async fn pause_deployment(&self, id: &str) -> Result<DeploymentInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(
                Method::POST,
                &["api", "v1", "deployments", id, "pause"],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/deployments/{id}/resume`.
    pub async fn resume_deployment(&self, id: &str) -> Result<DeploymentInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(
                Method::POST,
                &["api", "v1", "deployments", id, "resume"],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/deployments/{id}/status`: devices per status, the success rate, failures by
    /// exit code and up to `limit` devices, failed first (1..=1000; server default 100).
    pub async fn deployment_status(
        &self,
        id: &str,
        limit: Option<u64>,
    ) -> Result<DeploymentStatus> {
        #[derive(Serialize)]
        struct Q {
            #[serde(skip_serializing_if = "Option::is_none")]
            limit: Option<u64>,
        }
        let id = checked_id(id)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "deployments", id, "status"],
                |r| r.query(&Q { limit }),
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/maintenance-windows`: every window with its groups and next opening.
    pub async fn list_windows(&self) -> Result<Vec<WindowInfo>> {
        json_or_error(
            self.send(Method::GET, &["api", "v1", "maintenance-windows"], |r| r)
                .await?,
        )
        .await
    }

    /// `POST /api/v1/maintenance-windows`.
    pub async fn create_window(&self, req: &CreateWindowRequest) -> Result<WindowInfo> {
        json_or_error(
            self.send(Method::POST, &["api", "v1", "maintenance-windows"], |r| {
                r.json(req)
            })
            .await?,
        )
        .await
    }

    /// `GET /api/v1/maintenance-windows/{id}` (id or name).
    pub async fn get_window(&self, id: &str) -> Result<WindowInfo> {
        let id = checked_id(id)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "maintenance-windows", id],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `DELETE /api/v1/maintenance-windows/{id}` (id or name).
    pub async fn delete_window(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        empty_or_error(
            self.send(
                Method::DELETE,
                &["api", "v1", "maintenance-windows", id],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/devices/{id}/software`: each package's status on the device, the
    /// assignments that reach it and the conflicts between them.
    pub async fn device_software(&self, device: &str) -> Result<DeviceSoftwareState> {
        let device = checked_id(device)?;
        json_or_error(
            self.send(
                Method::GET,
                &["api", "v1", "devices", device, "software"],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `GET /api/v1/devices/{id}/software/{package}/history`: one package's status changes on
    /// the device with exit codes and logs, newest first.
    pub async fn software_history(
        &self,
        device: &str,
        package: &str,
    ) -> Result<Vec<ItemHistoryEntry>> {
        let device = checked_id(device)?;
        let package = checked_id(package)?;
        json_or_error(
            self.send(
                Method::GET,
                &[
                    "api", "v1", "devices", device, "software", package, "history",
                ],
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// `POST /api/v1/devices/{id}/software/{package}/install`: install a package that is
    /// available to the device now (accepted: the agent installs it on its next pass).
    pub async fn request_software_install(&self, device: &str, package: &str) -> Result<()> {
        let device = checked_id(device)?;
        let package = checked_id(package)?;
        empty_or_error(
            self.send(
                Method::POST,
                &[
                    "api", "v1", "devices", device, "software", package, "install",
                ],
                |r| r,
            )
            .await?,
        )
        .await
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let url = self.endpoint(segments)?;
        let req = build(self.http.request(method, url.clone()));
        self.execute(req, url).await
    }

    async fn execute(&self, req: RequestBuilder, url: Url) -> Result<Response> {
        let req = match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        req.send().await.map_err(|source| Error::Transport {
            url: url.to_string(),
            source,
        })
    }
}

/// Refuse ids that the URL layer would silently drop or that cannot name anything, so a typo
/// like `devices delete ..` can never address the collection instead of one item.
fn checked_id(id: &str) -> Result<&str> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(Error::Config(format!("invalid id {id:?}")));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    //! The client against a scripted HTTP/1.1 server on a loopback port: each test states the
    //! response and checks the request the client really sent.

    use super::*;
    use capstan_proto::api::Role;
    use capstan_proto::error::ErrorCode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    #[derive(Debug)]
    struct Seen {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Serve `responses` in order, one per connection, reporting each request seen.
    async fn server(
        responses: Vec<(u16, &'static str)>,
    ) -> (String, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for (status, body) in responses {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let head_end = loop {
                    let mut chunk = [0u8; 4096];
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let mut request_line = lines.next().unwrap().split(' ');
                let method = request_line.next().unwrap().to_string();
                let target = request_line.next().unwrap().to_string();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let mut chunk = [0u8; 4096];
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body_in = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
                tx.send(Seen {
                    method,
                    target,
                    headers,
                    body: body_in,
                })
                .unwrap();
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(resp.as_bytes()).await.unwrap();
                sock.shutdown().await.ok();
            }
        });
        (format!("http://{addr}"), rx)
    }

    fn client(base: &str, token: Option<&str>) -> ApiClient {
        ApiClient::new(base, token.map(str::to_string), &ClientOptions::default()).unwrap()
    }

    const USER: &str =
        r#"{"id":"u1","username":"alice","role":"admin","created_at_ms":1700000000000}"#;

    #[tokio::test]
    async fn sends_bearer_token_and_decodes_the_body() {
        let (base, mut rx) = server(vec![(200, USER)]).await;
        let me = client(&base, Some("caps_secret")).me().await.unwrap();
        assert_eq!(me.username, "alice");
        assert_eq!(me.role, Role::Admin);
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("GET", "/api/v1/auth/me")
        );
        assert_eq!(seen.header("authorization"), Some("Bearer caps_secret"));
    }

    #[tokio::test]
    async fn without_token_no_authorization_header_is_sent() {
        let body = r#"{"token":"caps_x","expires_at_ms":5,"user":{"id":"u1","username":"alice","role":"viewer","created_at_ms":1}}"#;
        let (base, mut rx) = server(vec![(200, body)]).await;
        let resp = client(&base, None)
            .login(&LoginRequest {
                username: "alice".into(),
                password: "pw".into(),
            })
            .await
            .unwrap();
        assert_eq!(resp.token, "caps_x");
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/auth/login")
        );
        assert_eq!(seen.header("authorization"), None);
        let sent: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"username": "alice", "password": "pw"})
        );
    }

    #[tokio::test]
    async fn error_bodies_keep_their_stable_code() {
        let (base, _rx) = server(vec![
            (
                404,
                r#"{"status":404,"code":"not_found","message":"device d1 not found"}"#,
            ),
            (502, "<html>bad gateway</html>"),
        ])
        .await;
        let c = client(&base, Some("t"));
        let err = c.get_device("d1").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotFound));
        assert_eq!(err.status(), Some(404));
        let err = c.delete_device("d1").await.unwrap_err();
        assert_eq!(err.code(), None);
        assert_eq!(err.status(), Some(502));
    }

    #[tokio::test]
    async fn list_queries_send_only_the_given_parameters() {
        let page = r#"{"items":[],"total":0,"offset":0,"limit":100}"#;
        let timeline = r#"{"items":[],"next_before":null}"#;
        let (base, mut rx) = server(vec![(200, page), (200, page), (200, timeline)]).await;
        let c = client(&base, Some("t"));
        c.list_devices(&DeviceListQuery::default()).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().target, "/api/v1/devices");
        c.list_devices(&DeviceListQuery {
            search: Some("web 1&x".into()),
            status: Some("online".into()),
            tag: Some("role=web".into()),
            group: None,
            field: Some("tier=gold".into()),
            os: Some("Debian GNU/Linux 12".into()),
            model: None,
            sort: Some("-last_seen".into()),
            offset: Some(10),
            limit: Some(5),
        })
        .await
        .unwrap();
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/devices?search=web+1%26x&status=online&tag=role%3Dweb&field=tier%3Dgold&os=Debian+GNU%2FLinux+12&sort=-last_seen&offset=10&limit=5"
        );
        c.device_timeline(
            "d1",
            &TimelineQuery {
                before: Some(42),
                limit: None,
                kind: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/devices/d1/timeline?before=42"
        );
    }

    #[tokio::test]
    async fn operator_management_requests() {
        let user =
            r#"{"id":"u 2","username":"bob","role":"viewer","created_at_ms":1,"disabled":true}"#;
        let page = r#"{"items":[{"id":7,"at_ms":5,"actor":"user:root","action":"user.delete","target":"u3","details":{"username":"x"}}],"next_before":7}"#;
        let (base, mut rx) = server(vec![(204, ""), (200, user), (204, ""), (200, page)]).await;
        let c = client(&base, Some("t"));
        c.change_password(&ChangePasswordRequest {
            current_password: "old".into(),
            new_password: "new".into(),
        })
        .await
        .unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/auth/password")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&seen.body).unwrap(),
            serde_json::json!({"current_password": "old", "new_password": "new"})
        );

        let updated = c
            .update_user(
                "u 2",
                &UpdateUserRequest {
                    disabled: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(updated.disabled);
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("PATCH", "/api/v1/users/u%202")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&seen.body).unwrap(),
            serde_json::json!({"disabled": true}),
            "fields left alone are not sent"
        );

        c.delete_user("u3").await.unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("DELETE", "/api/v1/users/u3")
        );

        let got = c
            .audit_log(&AuditQuery {
                before: Some(9),
                limit: Some(1),
                actor: Some("user:root".into()),
                action: None,
            })
            .await
            .unwrap();
        assert_eq!(got.next_before, Some(7));
        assert_eq!(got.items[0].details["username"], "x");
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/audit-log?before=9&limit=1&actor=user%3Aroot"
        );
        assert!(matches!(c.delete_user("..").await, Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn ids_are_one_path_segment() {
        let (base, mut rx) = server(vec![(204, "")]).await;
        client(&base, Some("t"))
            .revoke_device("a/b?c")
            .await
            .unwrap();
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/devices/a%2Fb%3Fc/revoke"
        );
        let c = client(&base, Some("t"));
        assert!(matches!(c.delete_device("..").await, Err(Error::Config(_))));
        assert!(matches!(c.get_device("").await, Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn base_path_prefix_is_kept() {
        let (base, mut rx) = server(vec![
            (200, r#"{"delivered_now":true}"#),
            (200, r#"{"a":1}"#),
        ])
        .await;
        let c = client(&format!("{base}/capstan/"), Some("t"));
        assert!(c.refresh_inventory("d1").await.unwrap().delivered_now);
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/capstan/api/v1/devices/d1/refresh-inventory")
        );
        assert_eq!(
            c.get_json("/api/v1/x?y=1").await.unwrap(),
            serde_json::json!({"a": 1})
        );
        assert_eq!(rx.recv().await.unwrap().target, "/capstan/api/v1/x?y=1");
    }

    #[tokio::test]
    async fn get_json_refuses_paths_that_leave_the_server() {
        let c = client("http://127.0.0.1:9/base", Some("t"));
        for path in ["http://evil.example/x", "https:evil.example", "../other"] {
            assert!(
                matches!(c.get_json(path).await, Err(Error::Config(_))),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn job_routes_send_their_paths_queries_and_bodies() {
        use capstan_proto::jobs::{JobAction, JobSpec, JobTargets, RetryPolicy};
        let job = r#"{"id":"j1","name":"echo hi","kind":"command",
            "spec":{"action":{"type":"command","argv":["echo","hi"]}},
            "targets":{"devices":["d1"]},"retry":{},"script_id":null,"script_version":null,
            "created_by":"user:alice","created_at_ms":1,"expires_at_ms":2,"cancelled_at_ms":null,
            "counts":{"total":1,"queued":1,"delivered":0,"running":0,"rebooting":0,"succeeded":0,
            "failed":0,"timed_out":0,"cancelled":0,"expired":0}}"#;
        let runs = r#"{"items":[],"total":0}"#;
        let changed = r#"{"changed":2}"#;
        let (base, mut rx) = server(vec![
            (201, job),
            (200, runs),
            (200, changed),
            (200, changed),
            (200, "[]"),
            (200, changed),
        ])
        .await;
        let c = client(&base, Some("t"));
        let req = CreateJobRequest {
            name: None,
            spec: serde_json::from_value::<JobSpec>(serde_json::json!({
                "action": JobAction::Command { argv: vec!["echo".into(), "a b".into()] }
            }))
            .unwrap(),
            targets: JobTargets {
                devices: vec!["d1".into()],
                ..Default::default()
            },
            expires_in_secs: Some(60),
            retry: RetryPolicy::default(),
        };
        let created = c.create_job(&req).await.unwrap();
        assert_eq!((created.id.as_str(), created.counts.queued), ("j1", 1));
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/jobs")
        );
        let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(
            body["spec"]["action"]["argv"],
            serde_json::json!(["echo", "a b"])
        );
        assert_eq!(body["expires_in_secs"], 60);

        c.list_runs(
            "j1",
            &RunListQuery {
                state: Some(RunState::TimedOut),
                limit: Some(500),
                offset: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/jobs/j1/runs?state=timed_out&limit=500"
        );
        assert_eq!(c.cancel_run("j1", "d 1").await.unwrap().changed, 2);
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/jobs/j1/runs/d%201/cancel")
        );
        c.retry_job("j1").await.unwrap();
        assert_eq!(rx.recv().await.unwrap().target, "/api/v1/jobs/j1/retry");
        c.list_breakers(Some(false)).await.unwrap();
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/breakers?open=false"
        );
        c.reset_breaker("d1").await.unwrap();
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/devices/d1/breaker/reset"
        );
        assert!(matches!(c.get_run("j1", "..").await, Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn script_routes_send_their_paths_and_bodies() {
        let version = r#"{"script_id":"s1","version":2,"name":"restart","description":"",
            "interpreter":"bash","body":"echo","parameters":[],"created_at_ms":1,"created_by":"u"}"#;
        let (base, mut rx) = server(vec![(200, version), (204, ""), (200, "{}")]).await;
        let c = client(&base, Some("t"));
        let v = c.script_version("restart nginx", 2).await.unwrap();
        assert_eq!(v.version, 2);
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/scripts/restart%20nginx/versions/2"
        );
        c.delete_script("s1").await.unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("DELETE", "/api/v1/scripts/s1")
        );
        let req = RunScriptRequest {
            version: None,
            arguments: [("count".to_string(), serde_json::json!(3))].into(),
            targets: capstan_proto::jobs::JobTargets {
                groups: vec!["web".into()],
                ..Default::default()
            },
            timeout_secs: None,
            env: Default::default(),
            working_dir: None,
            run_as: None,
            expires_in_secs: None,
            retry: Default::default(),
        };
        // The fake answers `{}`, which is no JobInfo: a decoding failure, not a panic.
        assert!(matches!(
            c.run_script("s1", &req).await,
            Err(Error::Transport { .. })
        ));
        let seen = rx.recv().await.unwrap();
        assert_eq!(seen.target, "/api/v1/scripts/s1/run");
        let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(body["arguments"], serde_json::json!({"count": 3}));
        assert_eq!(body["targets"]["groups"], serde_json::json!(["web"]));
    }

    #[tokio::test]
    async fn package_routes_send_their_paths_queries_and_bodies() {
        let page = r#"{"items":[],"total":0,"offset":0,"limit":100}"#;
        let version = r#"{"id":"v1","package_id":"p1","package":"hello","version":"1:2.10-3",
            "artifacts":[],"spec":{"installer_type":"deb","timeout_secs":3600,"requirements":{},
            "detection":{"type":"package","manager":"dpkg","name":"hello"}},
            "created_at_ms":1,"created_by":"user:admin"}"#;
        let analysis = r#"{"sha256":"ab","size":5,"file_name":"a b.deb"}"#;
        let (base, mut rx) = server(vec![
            (200, page),
            (200, version),
            (200, version),
            (204, ""),
            (201, analysis),
        ])
        .await;
        let c = client(&base, Some("t"));
        c.list_packages(&PackageListQuery {
            search: Some("hello world".into()),
            offset: None,
            limit: Some(5),
        })
        .await
        .unwrap();
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/packages?search=hello+world&limit=5"
        );

        let v = c.get_version("hello", "1:2.10-3").await.unwrap();
        assert_eq!(v.version, "1:2.10-3");
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/packages/hello/versions/1:2.10-3"
        );

        c.update_version("hello", "1.0/x?y", &v.spec).await.unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("PUT", "/api/v1/packages/hello/versions/1.0%2Fx%3Fy")
        );
        let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(body["installer_type"], "deb", "the body is the spec itself");

        c.delete_version("hello", "2.0").await.unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("DELETE", "/api/v1/packages/hello/versions/2.0")
        );

        let got = c
            .upload_package(
                &PackageUploadQuery {
                    file_name: Some("a b.deb".into()),
                    create: Some(true),
                },
                Body::from(b"12345".to_vec()),
                Some(5),
            )
            .await
            .unwrap();
        assert_eq!(got.file_name, "a b.deb");
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            (
                "POST",
                "/api/v1/packages/upload?file_name=a+b.deb&create=true"
            )
        );
        assert_eq!(
            seen.header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(seen.header("content-length"), Some("5"));
        assert_eq!(seen.body, "12345");

        assert!(matches!(
            c.get_version("hello", "..").await,
            Err(Error::Config(_))
        ));
        assert!(matches!(c.delete_package("").await, Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn depot_source_routes_send_their_paths_and_bodies() {
        let started = r#"{"source":"berlin","queued":["ab"],"already_synced":[]}"#;
        let status = r#"{"source":{"id":"s1","name":"berlin","kind":"path","location":"/mnt/d",
            "priority":10,"exclusive":false,"groups":[],"created_at_ms":1,"updated_at_ms":1},
            "synced":0,"pending":1,"failed":0,"lacking":0,"artifacts":[]}"#;
        let (base, mut rx) = server(vec![(202, started), (200, status), (204, "")]).await;
        let c = client(&base, Some("t"));
        let s = c
            .sync_source(
                "berlin share",
                &SyncRequest {
                    package: "hello".into(),
                    version: Some("1:2.10-3".into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(s.queued, ["ab"]);
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/depot/sources/berlin%20share/sync")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&seen.body).unwrap(),
            serde_json::json!({"package": "hello", "version": "1:2.10-3"})
        );
        let st = c
            .source_status("berlin", &SourceStatusQuery { verify: Some(true) })
            .await
            .unwrap();
        assert_eq!(st.pending, 1);
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/depot/sources/berlin/status?verify=true"
        );
        c.delete_source("berlin").await.unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("DELETE", "/api/v1/depot/sources/berlin")
        );
    }

    #[tokio::test]
    async fn software_jobs_post_the_request() {
        let (base, mut rx) = server(vec![(400, r#"{"status":400,"code":"validation_failed","message":"/force: only installs can be forced"}"#)]).await;
        let c = client(&base, Some("t"));
        let req = SoftwareJobRequest {
            package: "hello".into(),
            version: Some("1:2.10-3".into()),
            targets: capstan_proto::jobs::JobTargets {
                groups: vec!["web".into()],
                ..Default::default()
            },
            expires_in_secs: None,
            retry: Default::default(),
            force: true,
        };
        let err = c.software_uninstall(&req).await.unwrap_err();
        assert_eq!(err.status(), Some(400));
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/software/uninstall")
        );
        let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(body["version"], "1:2.10-3");
        assert_eq!(body["force"], true);
    }

    const ASSIGNMENT: &str = r#"{"id":"a1","package_id":"p1","package_name":"nginx",
        "resolved_version":"1.26","target_kind":"group","target_id":"g1","target_name":"web",
        "intent":"required","leave_installed":false,"created_at_ms":1,"created_by":"user:admin"}"#;

    #[tokio::test]
    async fn assignment_routes_send_their_paths_queries_and_bodies() {
        let list = format!("[{ASSIGNMENT}]");
        let list: &'static str = Box::leak(list.into_boxed_str());
        let (base, mut rx) =
            server(vec![(200, "[]"), (200, list), (201, ASSIGNMENT), (204, "")]).await;
        let c = client(&base, Some("t"));
        assert!(
            c.list_assignments(&AssignmentQuery::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/assignments",
            "unset filters are not sent"
        );
        let got = c
            .list_assignments(&AssignmentQuery {
                package: Some("nginx full".into()),
                group: Some("web&db".into()),
                device: None,
            })
            .await
            .unwrap();
        assert_eq!(got[0].resolved_version.as_deref(), Some("1.26"));
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/assignments?package=nginx+full&group=web%26db"
        );

        use capstan_proto::deploy::{Intent, TargetKind, TargetRef};
        let a = c
            .create_assignment(&CreateAssignmentRequest {
                package: "nginx".into(),
                version: None,
                target: TargetRef {
                    kind: TargetKind::Group,
                    id: "web".into(),
                },
                intent: Intent::Available,
                leave_installed: true,
            })
            .await
            .unwrap();
        assert_eq!(a.target_name, "web");
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/assignments")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&seen.body).unwrap(),
            serde_json::json!({"package": "nginx", "target": {"kind": "group", "id": "web"},
                               "intent": "available", "leave_installed": true}),
            "no version means latest"
        );
        c.delete_assignment("a 1").await.unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("DELETE", "/api/v1/assignments/a%201")
        );
        assert!(matches!(
            c.get_assignment("..").await,
            Err(Error::Config(_))
        ));
    }

    #[tokio::test]
    async fn deployment_and_window_routes_send_their_paths_and_bodies() {
        let deployment = format!(
            r#"{{"id":"a1","name":"nginx rollout","assignment":{ASSIGNMENT},
            "window_policy":"ignore","network":{{"max_bytes_per_sec":10485760,
            "site_sources_only":true,"skip_metered":false}},"rollout":"all_at_once","paused":true,
            "counts":{{"total":0,"planned":0,"waiting":0,"downloading":0,"installing":0,
            "installed":0,"failed":0,"not_applicable":0,"uninstalling":0,"removed":0,
            "reboot_pending":0,"available":0}}}}"#
        );
        let deployment: &'static str = Box::leak(deployment.into_boxed_str());
        let status =
            format!(r#"{{"deployment":{deployment},"failures_by_exit_code":[],"devices":[]}}"#);
        let status: &'static str = Box::leak(status.into_boxed_str());
        let window = r#"{"id":"w1","name":"nightly","schedule":{"kind":"cron",
            "expression":"0 22 * * *","duration_minutes":120},"timezone":"device","groups":[],
            "created_at_ms":1}"#;
        let (base, mut rx) = server(vec![
            (200, deployment),
            (200, status),
            (200, status),
            (201, window),
            (204, ""),
        ])
        .await;
        let c = client(&base, Some("t"));
        let d = c.pause_deployment("nginx rollout").await.unwrap();
        assert!(d.paused);
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/deployments/nginx%20rollout/pause")
        );
        let st = c.deployment_status("a1", None).await.unwrap();
        assert_eq!(st.success_rate, None);
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/deployments/a1/status"
        );
        c.deployment_status("a1", Some(1000)).await.unwrap();
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/deployments/a1/status?limit=1000"
        );

        use capstan_proto::deploy::{Weekday, WindowSchedule};
        let w = c
            .create_window(&CreateWindowRequest {
                name: "nightly".into(),
                description: None,
                schedule: WindowSchedule::Weekly {
                    days: vec![Weekday::Mon, Weekday::Tue],
                    start: "22:00".into(),
                    duration_minutes: 120,
                },
                timezone: "Europe/Berlin".into(),
                groups: vec!["web".into()],
            })
            .await
            .unwrap();
        assert_eq!(w.next_open_ms, None);
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/maintenance-windows")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&seen.body).unwrap(),
            serde_json::json!({"name": "nightly", "schedule": {"kind": "weekly",
                "days": ["mon", "tue"], "start": "22:00", "duration_minutes": 120},
                "timezone": "Europe/Berlin", "groups": ["web"]})
        );
        c.delete_window("night/ly").await.unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("DELETE", "/api/v1/maintenance-windows/night%2Fly")
        );
        assert!(matches!(
            c.delete_deployment("").await,
            Err(Error::Config(_))
        ));
    }

    #[tokio::test]
    async fn device_software_routes_send_their_paths() {
        let state = r#"{"device_id":"d1","revision":3,"items":[],"assignments":[],
            "conflicts":[]}"#;
        let (base, mut rx) = server(vec![
            (200, state),
            (200, "[]"),
            (202, ""),
            (
                404,
                r#"{"status":404,"code":"not_found","message":"package nginx is not available to device d1"}"#,
            ),
        ])
        .await;
        let c = client(&base, Some("t"));
        assert_eq!(c.device_software("d1").await.unwrap().revision, 3);
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/devices/d1/software"
        );
        assert!(
            c.software_history("d1", "1:nginx@x")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            rx.recv().await.unwrap().target,
            "/api/v1/devices/d1/software/1:nginx@x/history"
        );
        c.request_software_install("d1", "nginx").await.unwrap();
        let seen = rx.recv().await.unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("POST", "/api/v1/devices/d1/software/nginx/install")
        );
        let err = c.request_software_install("d1", "nginx").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotFound));
        assert!(matches!(
            c.software_history("d1", "..").await,
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(ApiClient::new("ftp://x", None, &ClientOptions::default()).is_err());
        assert!(ApiClient::new("https://x/?q=1", None, &ClientOptions::default()).is_err());
        let c = ApiClient::new("https://x:8443/", None, &ClientOptions::default()).unwrap();
        assert_eq!(c.base_url(), "https://x:8443");
    }
}

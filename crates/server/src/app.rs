//! The HTTP application: assembles the console API, the agent API and the public routes into
//! one router, generates the OpenAPI document from the handlers' annotations, and adds the
//! cross-cutting layers (metrics, request tracing, uniform errors, security headers).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use capstan_proto::api::Health;
use capstan_proto::error::ErrorCode;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, normalize_method_not_allowed};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Capstan API", description = "Console REST API (`/api/v1`) and agent protocol (`/agent/v1`) of Capstan. \
Errors always have the shape `ErrorBody {status, code, message}`; `code` is stable."),
    modifiers(&SecurityAddon),
    components(schemas(capstan_proto::error::ErrorBody, capstan_proto::error::ErrorCode)),
    tags((name = "auth"), (name = "users"), (name = "enrollment"), (name = "devices"), (name = "groups"), (name = "tags"), (name = "custom-fields"), (name = "audit"), (name = "jobs"), (name = "scripts"), (name = "depot"), (name = "packages"), (name = "agent"), (name = "system"))
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Session token (caps_…) from /api/v1/auth/login, an API token (capt_…), or the capstan_session cookie"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Device credential (capd_…) from enrollment"))
                    .build(),
            ),
        );
    }
}

fn api_router(max_inventory_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::auth::routes::router())
        .merge(crate::enrollment::router())
        .merge(crate::devices::router())
        .merge(crate::groups::router())
        .merge(crate::tags::router())
        .merge(crate::fields::router())
        .merge(crate::audit::router())
        .merge(crate::jobs::router())
        .merge(crate::scripts::router())
        .merge(crate::depot::router())
        .merge(crate::packages::router())
        .merge(crate::sources::router())
        .merge(crate::deploy::router())
        .merge(crate::events::router())
        .merge(crate::deploy::agent_router())
        .merge(crate::packages::agent_router())
        .merge(crate::agent_api::router(max_inventory_bytes))
        .merge(crate::jobs::agent_router())
        .merge(system_router())
}

/// The OpenAPI document of every API route, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router(16 << 20).split_for_parts().1
}

/// [`openapi`] as pretty JSON with a trailing newline (the committed `api/openapi.json`).
pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// Build the router and the OpenAPI document.
pub fn build(state: AppState) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (router, api) = api_router(state.config.max_inventory_bytes).split_for_parts();
    let spec = api.clone();
    let spec_json = api.to_pretty_json().unwrap_or_else(|_| "{}".into());
    let router = router
        .route(
            "/api/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], spec_json) }),
        )
        .route("/metrics", get(metrics))
        .route("/install.sh", get(crate::install::install_script))
        .route("/download/capstan-agent", get(crate::install::agent_binary))
        .fallback(crate::console::serve)
        .layer(axum::middleware::from_fn(normalize_method_not_allowed))
        .layer(axum::middleware::from_fn(crate::telemetry::track_requests))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state);
    (router, spec)
}

fn system_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(utoipa_axum::routes!(healthz))
        .routes(utoipa_axum::routes!(readyz))
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
async fn healthz() -> crate::error::Json<Health> {
    crate::error::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = capstan_proto::error::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<crate::error::Json<Health>, ApiError> {
    match tokio::time::timeout(std::time::Duration::from_secs(5), state.store.ping()).await {
        Ok(Ok(())) => Ok(crate::error::Json(Health {
            status: "ready".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!("database unavailable: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "database did not answer within 5 s",
        )),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The landing page `/` shows when this server was built without the web console.
pub(crate) fn landing_page(state: &AppState) -> Html<String> {
    let fp = state
        .fingerprint
        .clone()
        .unwrap_or_else(|| "(plain HTTP)".into());
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Capstan</title>\
         <style>body{{font:16px system-ui;margin:3em;max-width:46em}}code{{background:#eee;padding:2px 4px}}</style>\
         <h1>Capstan server {}</h1>\
         <p>The server is running. The web console was not built (run <code>npm ci &amp;&amp; npm run build</code> in \
         <code>web/</code>, or <code>./scripts/run.sh</code>); use the <code>capstan</code> CLI \
         (<code>capstan login --server {} --username admin</code>) or the REST API.</p>\
         <ul><li><a href=/api/openapi.json>OpenAPI specification</a></li><li><a href=/healthz>/healthz</a> · \
         <a href=/readyz>/readyz</a> · <a href=/metrics>/metrics</a></li></ul>\
         <p>Certificate fingerprint: <code>{}</code></p>",
        env!("CARGO_PKG_VERSION"),
        html_escape(&state.public_url),
        html_escape(&fp)
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

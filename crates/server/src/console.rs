//! Serves the web console (the single-page app built from `web/` into `web/dist`) from the same
//! origin as the API. Release builds embed the files; debug builds read them from disk, so a
//! `npm run build` shows up without recompiling the server. Every GET that no other route
//! answers gets a file or, for client-side routes, `index.html`; the API prefixes keep their JSON
//! 404s so a mistyped API call never receives HTML. Without a built console, `/` shows the
//! plain landing page and says so.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::route_not_found;
use crate::state::AppState;

/// The built console. `allow_missing` keeps `cargo build` working before `npm run build`.
#[derive(rust_embed::RustEmbed)]
#[folder = "../../web/dist/"]
#[allow_missing = true]
struct Assets;

/// Top-level path segments that belong to the server, not to the console: unknown paths under
/// them are JSON 404s like any other unknown API route.
const SERVER_PREFIXES: &[&str] = &[
    "api",
    "agent",
    "download",
    "install.sh",
    "healthz",
    "readyz",
    "metrics",
];

/// Vite writes content-hashed file names under this directory, so they never change.
const HASHED_DIR: &str = "assets/";

/// The router's fallback: console files, the SPA's `index.html`, or the JSON 404.
pub async fn serve(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if (method != Method::GET && method != Method::HEAD) || is_server_path(path) {
        return route_not_found(uri).await.into_response();
    }
    let resp = match lookup(path) {
        Lookup::File(name) => match Assets::get(&name) {
            Some(file) => file_response(&name, file.data.into_owned()),
            None => route_not_found(uri).await.into_response(),
        },
        Lookup::Index => match Assets::get("index.html") {
            Some(file) => file_response("index.html", file.data.into_owned()),
            None if path == "/" => crate::app::landing_page(&state).into_response(),
            None => route_not_found(uri).await.into_response(),
        },
        Lookup::Missing => route_not_found(uri).await.into_response(),
    };
    if method == Method::HEAD {
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    resp
}

/// Whether the console is part of this build (debug builds: whether `web/dist` exists now).
pub fn is_built() -> bool {
    Assets::get("index.html").is_some()
}

fn is_server_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    SERVER_PREFIXES.contains(&first)
}

#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// A file of the build, by its name relative to `web/dist`.
    File(String),
    /// A client-side route: answered with `index.html`.
    Index,
    /// A path that can only mean a file, and that file does not exist.
    Missing,
}

/// What a request path asks for. Paths with `..`, backslashes or NUL never name a file (debug
/// builds read from disk, so this is what keeps requests inside `web/dist`).
fn lookup(path: &str) -> Lookup {
    let name = path.trim_start_matches('/');
    if name.is_empty() || name == "index.html" {
        return Lookup::Index;
    }
    let unsafe_name = name
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        || name.contains(['\\', '\0']);
    if !unsafe_name && Assets::get(name).is_some() {
        return Lookup::File(name.to_string());
    }
    // A missing hashed asset is a stale page asking for an old build: answering with HTML
    // would surface as a confusing script error instead of a 404.
    if name.starts_with(HASHED_DIR) {
        return Lookup::Missing;
    }
    Lookup::Index
}

fn file_response(name: &str, body: Vec<u8>) -> Response {
    let cache = if name == "index.html" {
        // index.html names the current hashed assets: always fetch it anew.
        "no-store"
    } else if name.starts_with(HASHED_DIR) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

/// The content type of a console file, by extension (the build emits only a few kinds).
fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_are_never_console_routes() {
        for p in [
            "/api",
            "/api/",
            "/api/v1/nope",
            "/agent/v1/x",
            "/download/other",
            "/healthz/x",
            "/install.sh",
        ] {
            assert!(is_server_path(p), "{p}");
        }
        for p in [
            "/",
            "/devices",
            "/devices/abc",
            "/apis",
            "/agents",
            "/login",
        ] {
            assert!(!is_server_path(p), "{p}");
        }
    }

    #[test]
    fn client_routes_get_the_index_and_missing_hashed_assets_do_not() {
        assert_eq!(lookup("/"), Lookup::Index);
        assert_eq!(lookup("/devices/0192-abc"), Lookup::Index);
        assert_eq!(lookup("/enrollment"), Lookup::Index);
        assert_eq!(lookup("/assets/index-deadbeef.js"), Lookup::Missing);
        // Traversal attempts never name a file; outside assets/ they are client routes.
        assert_eq!(lookup("/../Cargo.toml"), Lookup::Index);
        assert_eq!(lookup("/assets/../../Cargo.toml"), Lookup::Missing);
        assert_eq!(lookup("/assets//x.js"), Lookup::Missing);
    }

    #[test]
    fn content_types_cover_what_vite_emits() {
        assert_eq!(
            content_type("assets/index-1a2b.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type("assets/index-1a2b.CSS"),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}

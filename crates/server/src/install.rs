//! The one-line install (`curl … /install.sh | sh -s -- --token T`): the script, rendered with
//! this server's URL, certificate fingerprint and the systemd unit, and the agent binary it
//! downloads. Both are public, like enrollment itself; neither contains a secret.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use capstan_proto::error::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

const INSTALL_TEMPLATE: &str = include_str!("../../../packaging/install.sh");
const UNIT_FILE: &str = include_str!("../../../packaging/capstan-agent.service");

/// Render the install script for this server. `agent_sha256` lets the script verify the
/// downloaded binary even without openssl.
pub fn render_install_script(
    public_url: &str,
    fingerprint: Option<&str>,
    agent_sha256: Option<&str>,
) -> String {
    INSTALL_TEMPLATE
        .replace("@@SERVER_URL@@", public_url)
        .replace("@@FINGERPRINT@@", fingerprint.unwrap_or(""))
        .replace("@@AGENT_SHA256@@", agent_sha256.unwrap_or(""))
        .replace("@@UNIT_FILE@@", UNIT_FILE.trim_end())
}

fn agent_path(state: &AppState) -> Result<PathBuf, ApiError> {
    match &state.config.agent_binary {
        Some(p) => Ok(p.clone()),
        None => Ok(std::env::current_exe()
            .map_err(ApiError::internal)?
            .with_file_name("capstan-agent")),
    }
}

/// SHA-256 of the agent binary, cached by path, size and modification time so the public
/// install route does not hash megabytes per request.
async fn agent_sha256(path: &Path) -> Option<String> {
    type Key = (PathBuf, u64, std::time::SystemTime);
    static CACHE: Mutex<Option<(Key, String)>> = Mutex::new(None);
    let meta = tokio::fs::metadata(path).await.ok()?;
    let key: Key = (path.to_path_buf(), meta.len(), meta.modified().ok()?);
    if let Some((k, v)) = CACHE.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        && *k == key
    {
        return Some(v.clone());
    }
    let owned = path.to_path_buf();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use sha2::Digest;
        let mut f = std::fs::File::open(owned)?;
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut f, &mut h)?;
        Ok(hex::encode(h.finalize()))
    })
    .await
    .ok()?
    .ok()?;
    *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, digest.clone()));
    Some(digest)
}

pub async fn install_script(State(state): State<AppState>) -> Response {
    let sha = match agent_path(&state) {
        Ok(p) => agent_sha256(&p).await,
        Err(_) => None,
    };
    let body = render_install_script(
        &state.public_url,
        state.fingerprint.as_deref(),
        sha.as_deref(),
    );
    (
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Serve the agent binary: `--agent-binary`, else `capstan-agent` beside this executable.
pub async fn agent_binary(State(state): State<AppState>) -> Result<Response, ApiError> {
    let path = agent_path(&state)?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("this server has no agent binary to serve ({}: {e}); start it with --agent-binary PATH", path.display()),
        )
    })?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let stream = tokio_util_stream(file);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"capstan-agent\"".to_string(),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Stream a file in 64 KiB chunks without holding it in memory.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_is_rendered_with_url_fingerprint_and_unit() {
        let s = render_install_script("https://srv:8443", Some("sha256:abcd"), Some("feed"));
        for placeholder in ["SERVER_URL", "FINGERPRINT", "AGENT_SHA256", "UNIT_FILE"] {
            assert!(
                !s.contains(&format!("@@{placeholder}@@")),
                "{placeholder} left in the script"
            );
        }
        assert!(s.contains("AGENT_SHA256='feed'"));
        assert!(s.contains("https://srv:8443"));
        assert!(s.contains("sha256:abcd"));
        assert!(s.contains("[Service]"), "the unit file must be embedded");
        assert!(s.starts_with("#!/bin/sh"));
    }
}

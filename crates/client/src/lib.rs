//! Typed HTTP clients of Capstan: [`api::ApiClient`] for the console REST API (used by the CLI,
//! tests and tools) and [`agent::AgentClient`] for the agent protocol (used by the agent and the
//! load generator). Both share [`tls`], which pins the server certificate by its SHA-256
//! fingerprint when one is given, and [`Error`], which carries the server's stable error code.

pub mod agent;
pub mod api;
pub mod tls;

use capstan_proto::error::{ErrorBody, ErrorCode};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error body in the standard shape.
    #[error("server error {}: {} ({})", .0.status, .0.message, .0.code)]
    Api(ErrorBody),
    /// The server answered with a status but no parseable error body.
    #[error("unexpected HTTP status {status}: {body}")]
    Status { status: u16, body: String },
    /// Network, TLS or decoding failure.
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The client was configured wrongly (bad URL, bad fingerprint).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The stable server error code, when the server sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api(body) => Some(body.code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(body) => Some(body.status),
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Turn a non-success response into [`Error`], keeping the server's error code.
pub(crate) async fn error_from_response(resp: reqwest::Response) -> Error {
    let status = resp.status().as_u16();
    let url = resp.url().to_string();
    match resp.bytes().await {
        Ok(bytes) => match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Error::Api(body),
            Err(_) => Error::Status {
                status,
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            },
        },
        Err(source) => Error::Transport { url, source },
    }
}

/// Decode a JSON response, or turn an error response into [`Error`].
pub(crate) async fn json_or_error<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T> {
    if !resp.status().is_success() {
        return Err(error_from_response(resp).await);
    }
    let url = resp.url().to_string();
    resp.json::<T>()
        .await
        .map_err(|source| Error::Transport { url, source })
}

/// Accept an empty success response, or turn an error response into [`Error`].
pub(crate) async fn empty_or_error(resp: reqwest::Response) -> Result<()> {
    if !resp.status().is_success() {
        return Err(error_from_response(resp).await);
    }
    Ok(())
}

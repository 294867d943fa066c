//! The server's one error type. Every failure — a handler's, an extractor's rejection, an
//! unknown route — becomes `ApiError` and is rendered as [`ErrorBody`] with a stable code, so
//! clients never see axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use capstan_proto::error::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (seconds) with 429 responses.
    pub retry_after_secs: Option<u64>,
    /// Every problem of a multi-part rejection, sent as `details[]` (see
    /// [`capstan_proto::error::DetailedErrorBody`]); empty for ordinary errors.
    pub details: Vec<capstan_proto::error::ErrorDetail>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
            details: Vec::new(),
        }
    }

    pub fn rate_limited(retry_after: std::time::Duration) -> ApiError {
        let secs = retry_after.as_secs().max(1);
        ApiError {
            retry_after_secs: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!("too many failed attempts; retry in {secs} s"),
            )
        }
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ValidationFailed,
            message,
        )
    }

    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            message,
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        // The details go to the log, not to the client.
        tracing::error!(error = %err, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal server error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: self.status.as_u16(),
            code: self.code,
            message: self.message,
        };
        let mut resp = if self.details.is_empty() {
            (self.status, axum::Json(body)).into_response()
        } else {
            let body = capstan_proto::error::DetailedErrorBody {
                error: body,
                details: self.details,
            };
            (self.status, axum::Json(body)).into_response()
        };
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        resp
    }
}

impl ApiError {
    /// A store error about `what`: `NotFound` names it; everything else as `From` maps it.
    pub fn from_store(e: capstan_store::StoreError, what: impl std::fmt::Display) -> ApiError {
        match e {
            capstan_store::StoreError::NotFound => ApiError::not_found(what),
            other => other.into(),
        }
    }

    /// A stored value that no longer decodes (a bug or a damaged database).
    pub fn corrupt(what: &str, e: impl std::fmt::Display) -> ApiError {
        ApiError::internal(format!("stored {what} is unreadable: {e}"))
    }
}

impl From<capstan_store::StoreError> for ApiError {
    fn from(e: capstan_store::StoreError) -> Self {
        match e {
            capstan_store::StoreError::NotFound => ApiError::not_found("resource"),
            capstan_store::StoreError::Conflict(m) => ApiError::conflict(m),
            capstan_store::StoreError::Invalid(m) => ApiError::validation(m),
            other => ApiError::internal(other),
        }
    }
}

/// `axum::Json` with rejections rendered in the standard error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "expected `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(JsonRejection::BytesRejection(e)))?;
        // NUL cannot be stored in PostgreSQL text and has no business in any field we accept;
        // refusing it here covers every JSON endpoint at once.
        if contains_escaped_nul(&bytes) {
            return Err(ApiError::validation(
                "request body contains a NUL character (\\u0000), which no field accepts",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Whether a JSON text contains the escape `\u0000` (JSON cannot carry a raw NUL byte, so this is
/// the only way one arrives). Escaped backslashes are skipped, so `"\\u0000"` — a literal
/// backslash followed by `u0000` — is not mistaken for one.
pub fn contains_escaped_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000".as_slice())
            {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether a URI carries a percent-encoded NUL (`%00`) in its path or query.
fn uri_has_nul(uri: &axum::http::Uri) -> bool {
    let bytes = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("")
        .as_bytes();
    bytes
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

fn nul_in_uri() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidQuery,
        "the URL contains a NUL character (%00)",
    )
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedJson,
            format!("request body is not valid JSON: {}", inner_message(&e)),
        ),
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
            format!(
                "request body does not match the expected shape: {}",
                inner_message(&e)
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "expected `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(e) => {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    "request body exceeds the size limit of this endpoint",
                )
            } else {
                ApiError::new(
                    e.status(),
                    ErrorCode::InvalidBody,
                    format!("could not read request body: {e}"),
                )
            }
        }
        other => ApiError::new(other.status(), ErrorCode::InvalidBody, other.body_text()),
    }
}

/// The innermost error text (serde's message with line/column), without axum's prefix.
fn inner_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `axum::extract::Query` with rejections in the standard error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        if uri_has_nul(&parts.uri) {
            return Err(nul_in_uri());
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                format!("invalid query string: {}", inner_message(&e)),
            )),
            Err(other) => Err(ApiError::new(
                other.status(),
                ErrorCode::InvalidQuery,
                other.body_text(),
            )),
        }
    }
}

/// `axum::extract::Path` with rejections in the standard error shape.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        if uri_has_nul(&parts.uri) {
            return Err(nul_in_uri());
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                e.body_text(),
            )),
        }
    }
}

/// Fallback for unknown routes.
pub async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::RouteNotFound,
        format!("no route for {}", uri.path()),
    )
}

/// Turns axum's plain 405 into the standard shape (applied as a middleware).
pub async fn normalize_method_not_allowed(req: Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route",
        )
        .into_response();
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::contains_escaped_nul;

    #[test]
    fn escaped_nul_is_found_but_an_escaped_backslash_is_not_one() {
        assert!(contains_escaped_nul(br#"{"a":"x\u0000y"}"#));
        assert!(contains_escaped_nul(br#"["\u0000"]"#));
        assert!(
            !contains_escaped_nul(br#"{"a":"x\\u0000y"}"#),
            "literal backslash + u0000"
        );
        assert!(
            contains_escaped_nul(br#"{"a":"\\\u0000"}"#),
            "backslash, then a real NUL"
        );
        assert!(!contains_escaped_nul(br#"{"a":"\u0001"}"#));
        assert!(!contains_escaped_nul(b"{}"));
    }
}

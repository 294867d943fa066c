//! The one error shape of every Capstan API (console and agent): an HTTP status, a stable
//! machine-readable code and a human message. Clients match on `code`, never on `message`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable machine-readable error codes. The string form (snake_case) is part of the API
/// contract: never rename a variant, only add new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body is not syntactically valid JSON.
    MalformedJson,
    /// The JSON is well-formed but does not match the expected shape or types.
    InvalidBody,
    /// The request was understood but a value is not acceptable (see message).
    ValidationFailed,
    /// The `Content-Type` is not `application/json` where JSON is expected.
    UnsupportedMediaType,
    /// The request body exceeds the size limit of this endpoint.
    PayloadTooLarge,
    /// A query string parameter is missing or invalid.
    InvalidQuery,
    /// No credentials, or credentials that are unknown, expired or revoked.
    Unauthenticated,
    /// Username or password is wrong.
    InvalidCredentials,
    /// Authenticated, but the role lacks the permission this route requires.
    Forbidden,
    /// The resource does not exist (or is not visible to the caller).
    NotFound,
    /// The request conflicts with the current state (e.g. a duplicate name).
    Conflict,
    /// The enrollment token is unknown, revoked or malformed.
    EnrollmentTokenInvalid,
    /// The enrollment token is past its expiry time.
    EnrollmentTokenExpired,
    /// The enrollment token has been used as often as it allows.
    EnrollmentTokenExhausted,
    /// The device credential is unknown, or the device was revoked or deleted.
    DeviceRevoked,
    /// The route does not exist.
    RouteNotFound,
    /// The HTTP method is not allowed on this route.
    MethodNotAllowed,
    /// Too many failed attempts from this address or for this account; retry after the
    /// number of seconds in the `Retry-After` header.
    RateLimited,
    /// The server is not ready (e.g. the database is unreachable).
    Unavailable,
    /// An unexpected server-side failure; details are in the server log.
    Internal,
}

impl ErrorCode {
    /// The snake_case wire form of this code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::EnrollmentTokenInvalid => "enrollment_token_invalid",
            ErrorCode::EnrollmentTokenExpired => "enrollment_token_expired",
            ErrorCode::EnrollmentTokenExhausted => "enrollment_token_exhausted",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP status code, repeated for clients that only see the body.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation, with the offending field where there is one.
    pub message: String,
}

/// One problem of a rejected value, sent as `details[]` next to the [`ErrorBody`] fields when
/// an error has several parts (e.g. every problem of a group rule). Clients that do not know
/// `details` still get all of them in `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// JSON pointer to the offending part, e.g. `/all/2/op` (empty for the root).
    pub path: String,
    pub message: String,
    /// The valid choices, when the problem is a wrong choice.
    #[serde(default)]
    pub valid: Vec<String>,
}

/// [`ErrorBody`] with `details`, the form of errors that list several problems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DetailedErrorBody {
    #[serde(flatten)]
    pub error: ErrorBody,
    pub details: Vec<ErrorDetail>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_as_str() {
        for code in [
            ErrorCode::MalformedJson,
            ErrorCode::PayloadTooLarge,
            ErrorCode::EnrollmentTokenExhausted,
            ErrorCode::DeviceRevoked,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}

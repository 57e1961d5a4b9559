//! The one rendering of failures as `application/problem+json` (RFC 9457).
//!
//! Module errors ([`WardError`]), actix's own extractor errors, unknown routes and wrong methods
//! all end up in [`ApiError`], whose [`ResponseError`] impl is the only place that writes a
//! problem document. actix gives `error_response` no request, so the request id and path come
//! from the request scope the middleware sets up ([`crate::request_id::current_scope`]).

use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use ward_core::{ErrorCode, FieldError, WardError};

use crate::request_id::{RequestScope, current_scope};

/// The media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Problem `type` URIs are this base followed by a slug; each slug has a docs page.
const PROBLEM_TYPE_BASE: &str = "https://ward.dev/problems/";

/// Sent with every 401 (RFC 9110 §15.5.2 requires a challenge; RFC 6750 names the scheme).
const BEARER_CHALLENGE: &str = "Bearer realm=\"ward\"";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "https://ward.dev/problems/invalid-argument",
    "title": "Invalid request",
    "status": 400,
    "detail": "Name is required; Email should be valid",
    "instance": "/api/patients",
    "requestId": "0190c5b2-7d4e-7cc1-9a51-3f0a8c2d9e11",
    "errors": [
        {"field": "name", "message": "Name is required"},
        {"field": "email", "message": "Email should be valid"}
    ]
}))]
pub struct Problem {
    /// A URI naming the kind of problem; stable, and documented at that address.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request. Internal errors are masked.
    pub detail: String,
    /// The request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id, also in the `x-request-id` header; quote it when reporting a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Every failing input field, for validation problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemFieldError>,
}

/// One failing input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemFieldError {
    /// The field's JSON name, e.g. `dateOfBirth`, or a path/query parameter name.
    pub field: String,
    pub message: String,
}

/// Every failure a route can return.
#[derive(Debug)]
pub enum ApiError {
    /// A module's error, or a parse failure in the gateway.
    Ward(WardError),
    /// The body exceeds the limit (413). HTTP-only: no module can produce it.
    PayloadTooLarge { limit_bytes: usize },
    /// The path exists but not with this method (405). HTTP-only.
    MethodNotAllowed { allow: &'static str },
    /// The body is not declared as the JSON this route reads (415): `expected` names the media
    /// type to send, `found_opt` the declared one, if any. HTTP-only.
    UnsupportedMediaType {
        expected: &'static str,
        found_opt: Option<String>,
    },
}

impl From<WardError> for ApiError {
    fn from(error: WardError) -> Self {
        Self::Ward(error)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ward(error) => write!(f, "{error}"),
            Self::PayloadTooLarge { limit_bytes } => {
                write!(
                    f,
                    "the request body exceeds the limit of {limit_bytes} bytes"
                )
            }
            Self::MethodNotAllowed { allow } => write!(f, "this path accepts only {allow}"),
            Self::UnsupportedMediaType {
                expected,
                found_opt,
            } => {
                write!(
                    f,
                    "the request body must be JSON, sent with Content-Type: {expected}"
                )?;
                match found_opt {
                    Some(found) => write!(f, " (got {found})"),
                    None => f.write_str(" (no Content-Type was sent)"),
                }
            }
        }
    }
}

impl ApiError {
    fn slug(&self) -> &'static str {
        match self {
            Self::Ward(error) => error.error_code().slug(),
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::MethodNotAllowed { .. } => "method-not-allowed",
            Self::UnsupportedMediaType { .. } => "unsupported-media-type",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Ward(error) => error.error_code().title(),
            Self::PayloadTooLarge { .. } => "Payload too large",
            Self::MethodNotAllowed { .. } => "Method not allowed",
            Self::UnsupportedMediaType { .. } => "Unsupported media type",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Ward(error) => error.public_detail(),
            Self::PayloadTooLarge { .. }
            | Self::MethodNotAllowed { .. }
            | Self::UnsupportedMediaType { .. } => self.to_string(),
        }
    }

    fn field_errors(&self) -> Vec<ProblemFieldError> {
        let field_errors: &[FieldError] = match self {
            Self::Ward(error) => error.field_errors(),
            Self::PayloadTooLarge { .. }
            | Self::MethodNotAllowed { .. }
            | Self::UnsupportedMediaType { .. } => &[],
        };
        field_errors
            .iter()
            .map(|error| ProblemFieldError {
                field: error.field.clone(),
                message: error.message.clone(),
            })
            .collect()
    }

    /// Returns the problem document for this error within `scope` (the current request, if any).
    pub(crate) fn to_problem(&self, scope_opt: Option<&RequestScope>) -> Problem {
        Problem {
            problem_type: format!("{PROBLEM_TYPE_BASE}{}", self.slug()),
            title: self.title().to_string(),
            status: self.status_code().as_u16(),
            detail: self.detail(),
            instance: scope_opt.map(|scope| scope.path.clone()),
            request_id: scope_opt.map(|scope| scope.request_id.clone()),
            errors: self.field_errors(),
        }
    }

    /// Logs the error once, as it is rendered: internal errors at error level with their
    /// unmasked detail, dependency failures at warn, the client's own mistakes at debug.
    fn log(&self, request_id: &str) {
        let Self::Ward(error) = self else {
            tracing::debug!(request_id, error = %self, "request rejected");
            return;
        };
        match error.error_code() {
            ErrorCode::Internal => {
                tracing::error!(request_id, error = %error, "internal error");
            }
            ErrorCode::Unavailable | ErrorCode::Timeout => {
                tracing::warn!(request_id, error = %error, "dependency failed");
            }
            ErrorCode::InvalidArgument
            | ErrorCode::Unauthenticated
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::Gone
            | ErrorCode::AlreadyExists
            | ErrorCode::PreconditionFailed
            | ErrorCode::PreconditionRequired
            | ErrorCode::Unprocessable
            | ErrorCode::TooManyRequests => {
                tracing::debug!(request_id, error = %error, "request rejected");
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let status = match self {
            Self::Ward(error) => error.error_code().http_status(),
            Self::PayloadTooLarge { .. } => 413,
            Self::MethodNotAllowed { .. } => 405,
            Self::UnsupportedMediaType { .. } => 415,
        };
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let scope_opt = current_scope();
        let request_id = scope_opt
            .as_ref()
            .map(|scope| scope.request_id.as_str())
            .unwrap_or("none");
        self.log(request_id);
        let problem = self.to_problem(scope_opt.as_ref());
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE));
        match self {
            Self::Ward(WardError::Unauthenticated(_)) => {
                response.insert_header((header::WWW_AUTHENTICATE, BEARER_CHALLENGE));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            Self::Ward(_) | Self::PayloadTooLarge { .. } | Self::UnsupportedMediaType { .. } => {}
        }
        // RFC 9110 §10.2.3: a 429 says how many seconds to wait.
        if let Self::Ward(error) = self
            && let Some(retry_after_secs) = error.retry_after_secs()
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        match serde_json::to_vec(&problem) {
            Ok(body) => response.body(body),
            // A Problem is plain strings and numbers; this branch is for completeness only.
            Err(error) => {
                tracing::error!(request_id, %error, "problem document not serializable");
                HttpResponse::InternalServerError().finish()
            }
        }
    }
}

/// Returns the JSON extractor's configuration: the body limit, and problem+json for every
/// failure (malformed JSON is a 400, a wrong content type a 415, an oversized body a 413).
pub(crate) fn json_config(limit_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit_bytes)
        .error_handler(|error, _request: &HttpRequest| json_error(error).into())
}

/// Returns the path extractor's configuration. Routes take path segments as strings and parse
/// them to name the parameter, so this only guards future typed paths.
pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, _request: &HttpRequest| {
        let PathError::Deserialize(cause) = error else {
            return ApiError::from(WardError::invalid("invalid path", Vec::new())).into();
        };
        ApiError::from(WardError::invalid(
            format!("invalid path: {cause}"),
            Vec::new(),
        ))
        .into()
    })
}

/// Returns the query-string extractor's configuration.
pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _request: &HttpRequest| {
        let QueryPayloadError::Deserialize(cause) = error else {
            return ApiError::from(WardError::invalid("invalid query string", Vec::new())).into();
        };
        let detail = format!("invalid query string: {cause}");
        ApiError::from(WardError::invalid(detail, Vec::new())).into()
    })
}

fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit_bytes: limit },
        // `ApiJson` checks the media type first and more strictly; kept for any plain `web::Json`.
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType {
            expected: crate::json::JSON_MEDIA_TYPE,
            found_opt: None,
        },
        JsonPayloadError::Deserialize(cause) if cause.is_data() => WardError::invalid(
            format!("the request body does not have the expected shape: {cause}"),
            Vec::new(),
        )
        .into(),
        JsonPayloadError::Deserialize(cause) => WardError::invalid(
            format!("the request body is not valid JSON: {cause}"),
            Vec::new(),
        )
        .into(),
        JsonPayloadError::Payload(cause) => WardError::invalid(
            format!("the request body could not be read: {cause}"),
            Vec::new(),
        )
        .into(),
        JsonPayloadError::Serialize(cause) => {
            WardError::internal("serializing a JSON payload", cause).into()
        }
        // JsonPayloadError is non_exhaustive: whatever actix adds later is still the client's body.
        other => WardError::invalid(
            format!("the request body was rejected: {other}"),
            Vec::new(),
        )
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> RequestScope {
        RequestScope {
            request_id: "req-1".into(),
            path: "/api/patients".into(),
        }
    }

    #[test]
    fn validation_errors_list_every_field() {
        let error = ApiError::from(WardError::invalid(
            "Name is required; Email is required",
            vec![
                FieldError {
                    field: "name".into(),
                    message: "Name is required".into(),
                },
                FieldError {
                    field: "email".into(),
                    message: "Email is required".into(),
                },
            ],
        ));
        let problem = error.to_problem(Some(&scope()));
        assert_eq!(
            problem.problem_type,
            "https://ward.dev/problems/invalid-argument"
        );
        assert_eq!(problem.status, 400);
        assert_eq!(problem.instance.as_deref(), Some("/api/patients"));
        assert_eq!(problem.request_id.as_deref(), Some("req-1"));
        assert_eq!(problem.errors.len(), 2);
        assert_eq!(problem.errors[1].field, "email");
    }

    #[test]
    fn internal_detail_never_reaches_the_client() {
        let error = ApiError::from(WardError::internal("database", "/var/lib/secret.db locked"));
        let problem = error.to_problem(None);
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("secret"));
        let json = serde_json::to_value(&problem).unwrap();
        assert!(json.get("errors").is_none());
        assert!(json.get("instance").is_none());
    }

    #[test]
    fn http_only_failures_have_their_own_status() {
        let too_large = ApiError::PayloadTooLarge { limit_bytes: 10 };
        assert_eq!(too_large.status_code(), StatusCode::PAYLOAD_TOO_LARGE);
        let wrong_type = ApiError::UnsupportedMediaType {
            expected: "application/json",
            found_opt: Some("text/plain".into()),
        };
        assert_eq!(wrong_type.status_code(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            wrong_type
                .to_problem(None)
                .detail
                .ends_with("(got text/plain)")
        );
        let wrong_method = ApiError::MethodNotAllowed { allow: "GET" };
        assert_eq!(wrong_method.status_code(), StatusCode::METHOD_NOT_ALLOWED);
        let response = wrong_method.error_response();
        assert_eq!(response.headers().get(header::ALLOW).unwrap(), "GET");
    }

    #[test]
    fn unauthenticated_carries_a_bearer_challenge() {
        let response =
            ApiError::from(WardError::Unauthenticated("no token".into())).error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers().get(header::WWW_AUTHENTICATE).unwrap();
        assert!(challenge.to_str().unwrap().starts_with("Bearer"));
        let content_type = response.headers().get(header::CONTENT_TYPE).unwrap();
        assert_eq!(content_type, PROBLEM_CONTENT_TYPE);
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let error = WardError::too_many_requests("too many failed logins; try again later", 42);
        let response = ApiError::from(error).error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "42");

        let without_wait = ApiError::from(WardError::TooManyRequests("slow down".into()));
        let response = without_wait.error_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}

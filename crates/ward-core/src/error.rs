//! The one error type every module returns, and the one table that maps it to HTTP and gRPC.
//!
//! DESIGN.md asks for one error enum across the bus; STYLE.md asks for a closed `ErrorCode` mapped in
//! one place. Ward keeps a single `WardError` (it crosses gRPC intact in the `ward-error-bin`
//! metadata, see `ward_bus::grpc`) and derives everything else from [`ErrorCode`].

use serde::{Deserialize, Serialize};

pub type WardResult<T> = Result<T, WardError>;

/// How a `TooManyRequests` message states its wait: `... (retry after 42 s)`.
const RETRY_AFTER_PREFIX: &str = " (retry after ";
const RETRY_AFTER_SUFFIX: &str = " s)";

/// One failing input field, reported with all the others at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Not serde: its wire form over gRPC is written out explicitly in `ward_bus::grpc` (the
/// `ward-error-bin` entry), so a renamed variant cannot silently change the wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WardError {
    /// The request is malformed; `errors` lists every failing field.
    #[error("{detail}")]
    InvalidArgument {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The record existed and was (soft) deleted; it may come back (HTTP 410).
    #[error("{0}")]
    Gone(String),
    /// A uniqueness rule would break (HTTP 409).
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    PreconditionFailed(String),
    /// The write must be conditional and was not: it needs `If-Match` (HTTP 428, RFC 6585).
    #[error("{0}")]
    PreconditionRequired(String),
    /// The request is well formed but cannot be processed as sent, e.g. an `Idempotency-Key`
    /// reused with a different request (HTTP 422).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Timeout(String),
    /// A dependency (database, peer, broker) cannot be reached now; retrying may work.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; its detail is logged, never shown to clients.
    #[error("{0}")]
    Internal(String),
}

impl WardError {
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self::InvalidArgument {
            detail: detail.into(),
            errors,
        }
    }

    /// A 400 about one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::InvalidArgument {
            detail: message.clone(),
            errors: vec![FieldError {
                field: field.to_string(),
                message,
            }],
        }
    }

    /// Wraps an unexpected failure; use for database and I/O errors that are not the caller's fault.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {error}"))
    }

    /// A 429 telling the client when to try again. The wait travels inside the message, as the
    /// suffix ` (retry after N s)`, so the enum and its gRPC wire form stay unchanged; see
    /// [`WardError::retry_after_secs`].
    pub fn too_many_requests(detail: &str, retry_after_secs: u64) -> Self {
        Self::TooManyRequests(format!(
            "{detail}{RETRY_AFTER_PREFIX}{retry_after_secs}{RETRY_AFTER_SUFFIX}"
        ))
    }

    /// The seconds a `TooManyRequests` asks the client to wait (its message ends with
    /// ` (retry after N s)`), for the HTTP `Retry-After` header. `None` for any other error.
    pub fn retry_after_secs(&self) -> Option<u64> {
        let Self::TooManyRequests(message) = self else {
            return None;
        };
        let (_, digits) = message
            .strip_suffix(RETRY_AFTER_SUFFIX)?
            .rsplit_once(RETRY_AFTER_PREFIX)?;
        // Digits only: `u64::from_str` would also take a leading `+`.
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Gone(_) => ErrorCode::Gone,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::PreconditionFailed(_) => ErrorCode::PreconditionFailed,
            Self::PreconditionRequired(_) => ErrorCode::PreconditionRequired,
            Self::Unprocessable(_) => ErrorCode::Unprocessable,
            Self::TooManyRequests(_) => ErrorCode::TooManyRequests,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The text a client may see: the message, except for internal errors.
    pub fn public_detail(&self) -> String {
        match self {
            Self::Internal(_) => "internal error; the request id identifies it in the logs".into(),
            other => other.to_string(),
        }
    }

    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::InvalidArgument { errors, .. } => errors,
            _ => &[],
        }
    }
}

/// A closed set of error kinds; the only place that knows HTTP statuses and gRPC codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    Forbidden,
    NotFound,
    Gone,
    AlreadyExists,
    PreconditionFailed,
    PreconditionRequired,
    Unprocessable,
    TooManyRequests,
    Timeout,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Gone => 410,
            Self::AlreadyExists => 409,
            Self::PreconditionFailed => 412,
            Self::PreconditionRequired => 428,
            Self::Unprocessable => 422,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::Timeout => 504,
        }
    }

    /// A stable slug; the problem `type` URI ends with it.
    pub fn slug(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid-argument",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::Gone => "gone",
            Self::AlreadyExists => "already-exists",
            Self::PreconditionFailed => "precondition-failed",
            Self::PreconditionRequired => "precondition-required",
            Self::Unprocessable => "unprocessable",
            Self::TooManyRequests => "too-many-requests",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidArgument => "Invalid request",
            Self::Unauthenticated => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::Gone => "Gone",
            Self::AlreadyExists => "Conflict",
            Self::PreconditionFailed => "Precondition failed",
            Self::PreconditionRequired => "Precondition required",
            Self::Unprocessable => "Unprocessable request",
            Self::TooManyRequests => "Too many requests",
            Self::Timeout => "Timeout",
            Self::Unavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }

    /// Whether the same call may succeed if retried later.
    pub fn is_retryable(self) -> bool {
        match self {
            Self::TooManyRequests | Self::Timeout | Self::Unavailable => true,
            Self::InvalidArgument
            | Self::Unauthenticated
            | Self::Forbidden
            | Self::NotFound
            | Self::Gone
            | Self::AlreadyExists
            | Self::PreconditionFailed
            | Self::PreconditionRequired
            | Self::Unprocessable
            | Self::Internal => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_status() {
        let error = WardError::invalid_field("email", "Email should be valid");
        assert_eq!(error.error_code().http_status(), 400);
        assert_eq!(error.field_errors()[0].field, "email");
        assert_eq!(
            WardError::NotFound("x".into()).error_code().http_status(),
            404
        );
        assert_eq!(
            WardError::AlreadyExists("x".into())
                .error_code()
                .http_status(),
            409
        );
        assert_eq!(WardError::Gone("x".into()).error_code().http_status(), 410);
        assert!(!ErrorCode::Gone.is_retryable());
        let unprocessable = WardError::Unprocessable("x".into()).error_code();
        assert_eq!(unprocessable.http_status(), 422);
        assert_eq!(unprocessable.slug(), "unprocessable");
        assert!(!unprocessable.is_retryable());
        let required = WardError::PreconditionRequired("x".into()).error_code();
        assert_eq!(required.http_status(), 428);
        assert_eq!(required.slug(), "precondition-required");
        assert!(!required.is_retryable());
        assert!(
            WardError::Unavailable("x".into())
                .error_code()
                .is_retryable()
        );
    }

    #[test]
    fn internal_detail_is_masked() {
        let error = WardError::internal("database", "disk I/O error at /secret/path");
        assert!(!error.public_detail().contains("secret"));
        assert_eq!(error.error_code().http_status(), 500);
    }

    #[test]
    fn retry_after_is_read_from_the_message_suffix() {
        let error = WardError::too_many_requests("too many failed logins; try again later", 42);
        assert_eq!(
            error.to_string(),
            "too many failed logins; try again later (retry after 42 s)"
        );
        assert_eq!(error.retry_after_secs(), Some(42));
        assert_eq!(error.error_code().http_status(), 429);
        assert_eq!(
            WardError::TooManyRequests("slow down (retry after 7 s)".into()).retry_after_secs(),
            Some(7)
        );
    }

    #[test]
    fn retry_after_is_absent_without_a_well_formed_suffix() {
        for message in [
            "slow down",
            "slow down (retry after s)",
            "slow down (retry after +5 s)",
            "slow down (retry after -5 s)",
            "slow down (retry after 5s)",
            "slow down (retry after 99999999999999999999999 s)",
        ] {
            let error = WardError::TooManyRequests(message.into());
            assert_eq!(error.retry_after_secs(), None, "{message}");
        }
        // Only a 429 carries a wait, whatever another error's message says.
        let other = WardError::Unavailable("down (retry after 5 s)".into());
        assert_eq!(other.retry_after_secs(), None);
    }
}

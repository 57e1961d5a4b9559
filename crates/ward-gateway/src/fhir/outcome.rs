//! Failures as FHIR `OperationOutcome` documents.
//!
//! A [`FhirError`] wraps the gateway's [`ApiError`], so the status, the masking of internal
//! detail, the logging and the `WWW-Authenticate`, `Allow` and `Retry-After` headers are exactly
//! those of the REST API; only the body differs.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};
use ward_core::{ErrorCode, WardError};

use super::FHIR_CONTENT_TYPE;
use crate::problem::ApiError;

/// Every failure a FHIR route can return.
#[derive(Debug)]
pub(crate) enum FhirError {
    /// What the REST API would answer with a problem document.
    Api(ApiError),
    /// The version asked for records a delete (410, FHIR's answer for a deleted resource).
    Deleted(String),
    /// A conditional create's criteria match several resources (412, issue code
    /// `multiple-matches`).
    MultipleMatches(String),
}

impl From<ApiError> for FhirError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<WardError> for FhirError {
    fn from(error: WardError) -> Self {
        Self::Api(ApiError::Ward(error))
    }
}

impl From<actix_web::Error> for FhirError {
    /// The gateway's extractors fail with an [`ApiError`] inside an actix error; anything else
    /// read from the request is the client's input.
    fn from(error: actix_web::Error) -> Self {
        match error.as_error::<ApiError>() {
            Some(api_error) => Self::Api(copy_api_error(api_error)),
            None => {
                WardError::invalid(format!("the request was rejected: {error}"), Vec::new()).into()
            }
        }
    }
}

impl fmt::Display for FhirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api(error) => write!(f, "{error}"),
            Self::Deleted(detail) | Self::MultipleMatches(detail) => f.write_str(detail),
        }
    }
}

impl ResponseError for FhirError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(error) => error.status_code(),
            Self::Deleted(_) => StatusCode::GONE,
            Self::MultipleMatches(_) => StatusCode::PRECONDITION_FAILED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (problem_response, outcome) = match self {
            Self::Api(error) => (error.error_response(), outcome_of(error)),
            Self::Deleted(detail) => (
                HttpResponse::build(StatusCode::GONE).finish(),
                operation_outcome(vec![issue("deleted", detail, None)]),
            ),
            Self::MultipleMatches(detail) => (
                HttpResponse::build(StatusCode::PRECONDITION_FAILED).finish(),
                operation_outcome(vec![issue("multiple-matches", detail, None)]),
            ),
        };
        let mut response = HttpResponse::build(problem_response.status());
        // Keeps the challenge, Allow and Retry-After headers the problem rendering chose.
        for (name, value) in problem_response.headers() {
            if name != header::CONTENT_TYPE {
                response.append_header((name.clone(), value.clone()));
            }
        }
        response.insert_header((header::CONTENT_TYPE, FHIR_CONTENT_TYPE));
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        response.body(outcome.to_string())
    }
}

/// Returns an `OperationOutcome` with `issues`.
pub(crate) fn operation_outcome(issues: Vec<Value>) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

fn issue(code: &str, diagnostics: &str, expression_opt: Option<&str>) -> Value {
    let mut issue = json!({"severity": "error", "code": code, "diagnostics": diagnostics});
    if let Some(expression) = expression_opt {
        issue["expression"] = json!([expression]);
    }
    issue
}

/// One issue per failing field (with its FHIRPath when known), else one with the detail.
fn outcome_of(error: &ApiError) -> Value {
    let code = issue_code(error);
    let problem = error.to_problem(None);
    let mut issues = Vec::new();
    for field_error in &problem.errors {
        let expression_opt = fhir_path_of(&field_error.field);
        issues.push(issue(code, &field_error.message, expression_opt.as_deref()));
    }
    if issues.is_empty() {
        issues.push(issue(code, &problem.detail, None));
    }
    operation_outcome(issues)
}

/// The FHIRPath of a Ward field name; FHIR parsing already names fields by their path.
fn fhir_path_of(field: &str) -> Option<String> {
    if field.starts_with("Patient.") {
        return Some(field.to_string());
    }
    let path = match field {
        // The whole resource: what Ward keeps of it is too large.
        "Patient" => "Patient",
        "name" => "Patient.name",
        "email" => "Patient.telecom",
        "address" => "Patient.address",
        "dateOfBirth" => "Patient.birthDate",
        "id" => "Patient.id",
        _ if field.starts_with("identifiers") => "Patient.identifier",
        // Headers, query and path parameters have no place in the resource.
        _ => return None,
    };
    Some(path.to_string())
}

/// The `IssueType` code (http://hl7.org/fhir/R4/valueset-issue-type.html) of a failure.
fn issue_code(error: &ApiError) -> &'static str {
    match error {
        ApiError::Ward(ward_error) => match ward_error.error_code() {
            ErrorCode::InvalidArgument => "invalid",
            ErrorCode::Unauthenticated => "login",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not-found",
            // FHIR's code for a resource that existed and was deleted.
            ErrorCode::Gone => "deleted",
            ErrorCode::AlreadyExists => "duplicate",
            ErrorCode::PreconditionFailed => "conflict",
            // The request lacks a part (the `If-Match` header) the server requires.
            ErrorCode::PreconditionRequired => "required",
            // FHIR's code for content that is well formed but breaks a business rule.
            ErrorCode::Unprocessable => "business-rule",
            ErrorCode::TooManyRequests => "throttled",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "transient",
            ErrorCode::Internal => "exception",
        },
        ApiError::PayloadTooLarge { .. } => "too-long",
        ApiError::MethodNotAllowed { .. } | ApiError::UnsupportedMediaType { .. } => {
            "not-supported"
        }
    }
}

fn copy_api_error(error: &ApiError) -> ApiError {
    match error {
        ApiError::Ward(ward_error) => ApiError::Ward(ward_error.clone()),
        ApiError::PayloadTooLarge { limit_bytes } => ApiError::PayloadTooLarge {
            limit_bytes: *limit_bytes,
        },
        ApiError::MethodNotAllowed { allow } => ApiError::MethodNotAllowed { allow },
        ApiError::UnsupportedMediaType {
            expected,
            found_opt,
        } => ApiError::UnsupportedMediaType {
            expected,
            found_opt: found_opt.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use ward_core::FieldError;

    use super::*;

    #[test]
    fn field_errors_become_issues_with_their_fhir_path() {
        let error = ApiError::Ward(WardError::invalid(
            "two bad fields",
            vec![
                FieldError {
                    field: "dateOfBirth".into(),
                    message: "Date of birth is required".into(),
                },
                FieldError {
                    field: "Patient.name.given".into(),
                    message: "Patient.name.given must be a list of strings".into(),
                },
                FieldError {
                    field: "Patient".into(),
                    message: "the elements Ward keeps verbatim may take at most 65536 bytes".into(),
                },
            ],
        ));
        let outcome = outcome_of(&error);
        assert_eq!(outcome["issue"][0]["expression"][0], "Patient.birthDate");
        assert_eq!(outcome["issue"][1]["expression"][0], "Patient.name.given");
        assert_eq!(outcome["issue"][1]["code"], "invalid");
        assert_eq!(outcome["issue"][2]["expression"][0], "Patient");
    }

    #[test]
    fn internal_detail_stays_masked() {
        let error = ApiError::Ward(WardError::internal("db", "/secret/path locked"));
        let outcome = outcome_of(&error);
        assert_eq!(outcome["issue"][0]["code"], "exception");
        assert!(!outcome.to_string().contains("secret"));
    }
}

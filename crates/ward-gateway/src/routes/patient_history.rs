//! `/api/patients/{id}/history` and `/api/patients/{id}/history/{version}`: a patient's past
//! versions, with who changed what and when.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use ward_core::id::parse_id;
use ward_core::{WardError, WardResult};

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{PatientHistoryResponse, PatientVersionResponse};
use crate::etag::etag;
use crate::openapi::{BadRequest, Forbidden, NotFound, ServiceUnavailable, Unauthorized};
use crate::problem::ApiError;

/// Reads a version from the path: digits only, from 1.
fn parse_version(raw: &str) -> WardResult<u32> {
    let is_digits = !raw.is_empty() && raw.bytes().all(|byte| byte.is_ascii_digit());
    match raw.parse::<u32>() {
        Ok(version) if is_digits && version > 0 => Ok(version),
        _ => Err(WardError::invalid_field(
            "version",
            "version must be a positive integer",
        )),
    }
}

/// Returns a patient's history, newest first: one entry per create, update, delete and
/// restore, each with the record as it stood after it. Still readable after the patient is
/// deleted; gone with it after a purge.
#[utoipa::path(
    get,
    path = "/api/patients/{id}/history",
    tag = "patients",
    params(("id" = uuid::Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The history, newest first", body = PatientHistoryResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.patient_history", skip_all)]
pub(crate) async fn patient_history(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
) -> Result<web::Json<PatientHistoryResponse>, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let history = backends
        .patients
        .patient_history(caller.context(), id)
        .await?;
    Ok(web::Json(PatientHistoryResponse::try_from(history)?))
}

/// Returns one entry of a patient's history: the record as it stood at that version.
#[utoipa::path(
    get,
    path = "/api/patients/{id}/history/{version}",
    tag = "patients",
    params(
        ("id" = uuid::Uuid, Path, description = "The patient's id"),
        ("version" = u32, Path, minimum = 1, description = "The version, from 1"),
    ),
    responses(
        (status = 200, description = "That version", body = PatientVersionResponse,
            headers(("ETag" = String, description = "That version, `W/\"<version>\"`"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.patient_version", skip_all)]
pub(crate) async fn patient_version(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, raw_version) = raw_path.into_inner();
    let id_result = parse_id(&raw_id, "id");
    let version_result = parse_version(&raw_version);
    let (id, version) = match (id_result, version_result) {
        (Ok(id), Ok(version)) => (id, version),
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => return Err(error.into()),
        (Err(id_error), Err(version_error)) => {
            let mut errors = id_error.field_errors().to_vec();
            errors.extend_from_slice(version_error.field_errors());
            let detail = format!("{id_error}; {version_error}");
            return Err(WardError::invalid(detail, errors).into());
        }
    };
    let entry = backends
        .patients
        .patient_version(caller.context(), id, version)
        .await?;
    let response = PatientVersionResponse::try_from(entry)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(version)))
        .json(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_the_path_are_positive_decimal_numbers() {
        assert_eq!(parse_version("1"), Ok(1));
        assert_eq!(parse_version("4294967295"), Ok(u32::MAX));
        for raw in ["0", "", "-1", "+1", "one", "1.0", "4294967296", " 1"] {
            assert!(parse_version(raw).is_err(), "{raw}");
        }
    }
}

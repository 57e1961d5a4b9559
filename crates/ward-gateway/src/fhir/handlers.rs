//! The FHIR route handlers of single resources: authenticate, parse, call [`PatientsApi`],
//! render. Search lives in `search.rs`, history in `history.rs`.
//!
//! Extractors that can fail are taken as `Result`s, so that their failures are rendered as
//! `OperationOutcome`s too; the caller is checked first, so a request without a token is a 401
//! whatever else is wrong with it.
//!
//! [`PatientsApi`]: ward_bus::patients::PatientsApi

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use chrono::Utc;
use serde_json::Value;
use ward_bus::patients::Patient;
use ward_core::id::parse_id;
use ward_core::{WardError, WardResult};

use super::capability::capability_statement;
use super::media::FhirJson;
use super::patient::{names_mrn, new_patient, patient_changes, patient_resource};
use super::{FHIR_CONTENT_TYPE, FhirError};
use crate::ApiBackends;
use crate::caller::Caller;
use crate::conditional_create::{CreateOutcome, create_patient_unless_exists};
use crate::dto::if_none_exist;
use crate::etag::{IfMatch, etag};
use crate::problem::ApiError;

/// A FHIR answer: the resource as `application/fhir+json`, never cached (patient data).
pub(super) fn fhir_reply(mut response: HttpResponseBuilder, resource: &Value) -> HttpResponse {
    response
        .insert_header((header::CONTENT_TYPE, FHIR_CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(resource.to_string())
}

/// A Patient answer, with its version as the `ETag`.
fn patient_reply(mut response: HttpResponseBuilder, patient: &Patient) -> HttpResponse {
    response.insert_header((header::ETAG, etag(patient.version)));
    fhir_reply(response, &patient_resource(patient, None))
}

/// `GET /fhir/metadata`: the CapabilityStatement; needs no token.
pub(crate) async fn metadata() -> HttpResponse {
    fhir_reply(HttpResponse::Ok(), &capability_statement())
}

/// The 404 for a path under `/fhir` that no route matches.
pub(crate) async fn not_found(request: HttpRequest) -> Result<HttpResponse, FhirError> {
    let detail = format!("no route matches {} {}", request.method(), request.path());
    Err(WardError::NotFound(detail).into())
}

/// `GET /fhir/Patient/{id}`.
#[tracing::instrument(name = "gateway.fhir.read_patient", skip_all)]
pub(crate) async fn read_patient(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let id = parse_id(path_segment(&request, "id"), "id")?;
    let patient = backends.patients.get_patient(caller.context(), id).await?;
    Ok(patient_reply(HttpResponse::Ok(), &patient))
}

/// `GET /fhir/Patient/{id}/_history/{vid}`: the record as it stood at that version; a version
/// that records the delete is a 410.
#[tracing::instrument(name = "gateway.fhir.vread_patient", skip_all)]
pub(crate) async fn vread_patient(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let id_result = parse_id(path_segment(&request, "id"), "id");
    let version_result = parse_version(path_segment(&request, "vid"));
    let (id, version) = match (id_result, version_result) {
        (Ok(id), Ok(version)) => (id, version),
        (Err(error), _) | (_, Err(error)) => return Err(error.into()),
    };
    let entry = backends
        .patients
        .patient_version(caller.context(), id, version)
        .await?;
    if entry.action == "delete" {
        return Err(FhirError::Deleted(format!(
            "version {version} of the patient records its deletion"
        )));
    }
    let mut response = HttpResponse::Ok();
    response.insert_header((header::ETAG, etag(entry.version)));
    let resource = patient_resource(&entry.patient, Some(entry.at));
    Ok(fhir_reply(response, &resource))
}

/// `POST /fhir/Patient`: registers a patient as of today; any `id` in the body is ignored, as
/// FHIR's create requires.
///
/// With `If-None-Exist: identifier=urn:ward:mrn|<mrn>` (or a bare MRN) or `email=<address>`,
/// a conditional create (http.html#ccreate): one live match is answered with 200 and nothing
/// is created, several are a 412 (`multiple-matches`), none creates.
#[tracing::instrument(name = "gateway.fhir.create_patient", skip_all)]
pub(crate) async fn create_patient(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
    body_result: Result<FhirJson, FhirError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let condition_opt = if_none_exist(&request)?;
    let body = body_result?;
    let new_patient = new_patient(&body.0, Utc::now().date_naive())?;
    let outcome_result = create_patient_unless_exists(
        &backends.patients,
        caller.context(),
        new_patient,
        None,
        condition_opt,
    )
    .await;
    let (mut response, patient) = match outcome_result {
        Ok(CreateOutcome::Created(patient)) => (HttpResponse::Created(), patient),
        Ok(CreateOutcome::Existing(patient)) => (HttpResponse::Ok(), patient),
        // The only precondition of a create is the condition being selective enough.
        Err(WardError::PreconditionFailed(detail)) => {
            return Err(FhirError::MultipleMatches(detail));
        }
        Err(error) => return Err(error.into()),
    };
    let location = format!("/fhir/Patient/{}/_history/{}", patient.id, patient.version);
    response.insert_header((header::LOCATION, location));
    Ok(patient_reply(response, &patient))
}

/// `PUT /fhir/Patient/{id}`: replaces the record; honours `If-Match` as the REST API does.
#[tracing::instrument(name = "gateway.fhir.update_patient", skip_all)]
pub(crate) async fn update_patient(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
    if_match_result: Result<IfMatch, ApiError>,
    body_result: Result<FhirJson, FhirError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let id = parse_id(path_segment(&request, "id"), "id")?;
    let if_match = if_match_result?;
    let body = body_result?;
    // The stored number is needed only to check one the body sends back; it never changes, so
    // reading it first cannot race the write.
    let current_mrn_opt = if names_mrn(&body.0) {
        let current = backends.patients.get_patient(caller.context(), id).await?;
        Some(current.mrn)
    } else {
        None
    };
    let changes = patient_changes(&body.0, id, current_mrn_opt.as_deref())?;
    let patient = backends
        .patients
        .update_patient(
            caller.context(),
            id,
            changes,
            if_match.expected_version_opt(),
        )
        .await?;
    Ok(patient_reply(HttpResponse::Ok(), &patient))
}

/// `DELETE /fhir/Patient/{id}`: a soft delete, as `DELETE /api/patients/{id}`; honours
/// `If-Match`. Answers 204 with no body (http.html#delete allows 200 with an outcome or 204; the
/// outcome would only say "deleted"). Deleting a deleted patient changes nothing and is a 204
/// too, as FHIR's delete is idempotent; an id that never existed stays a 404, so a typo does
/// not look like success.
#[tracing::instrument(name = "gateway.fhir.delete_patient", skip_all)]
pub(crate) async fn delete_patient(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
    if_match_result: Result<IfMatch, ApiError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let id = parse_id(path_segment(&request, "id"), "id")?;
    let if_match = if_match_result?;
    let delete_result = backends
        .patients
        .delete_patient(caller.context(), id, if_match.expected_version_opt())
        .await;
    match delete_result {
        Ok(()) | Err(WardError::Gone(_)) => Ok(HttpResponse::NoContent()
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .finish()),
        Err(error) => Err(error.into()),
    }
}

/// Reads a version from the path: digits only, from 1.
pub(super) fn parse_version(raw: &str) -> WardResult<u32> {
    let is_digits = !raw.is_empty() && raw.bytes().all(|byte| byte.is_ascii_digit());
    match raw.parse::<u32>() {
        Ok(version) if is_digits && version > 0 => Ok(version),
        _ => Err(WardError::invalid_field(
            "vid",
            "the version id must be a positive integer",
        )),
    }
}

/// A path parameter the route pattern guarantees; empty if the pattern ever loses it.
pub(super) fn path_segment<'a>(request: &'a HttpRequest, name: &str) -> &'a str {
    request.match_info().get(name).unwrap_or_default()
}

/// The absolute base of the FHIR endpoints as the client addressed them (bundle `fullUrl`s
/// and links must be absolute).
pub(super) fn base_url(request: &HttpRequest) -> String {
    let connection = request.connection_info();
    format!("{}://{}/fhir", connection.scheme(), connection.host())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_positive_decimal_numbers() {
        assert_eq!(parse_version("3"), Ok(3));
        for raw in ["0", "", "+1", "x"] {
            assert!(parse_version(raw).is_err(), "{raw}");
        }
    }
}

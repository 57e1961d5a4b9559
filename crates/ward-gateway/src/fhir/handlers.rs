//! The FHIR route handlers: authenticate, parse, call [`PatientsApi`], render.
//!
//! Extractors that can fail are taken as `Result`s, so that their failures are rendered as
//! `OperationOutcome`s too; the caller is checked first, so a request without a token is a 401
//! whatever else is wrong with it.
//!
//! [`PatientsApi`]: ward_bus::patients::PatientsApi

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use chrono::Utc;
use serde_json::{Value, json};
use ward_bus::patients::{PageRequest, Patient};
use ward_core::id::parse_id;
use ward_core::{FieldError, WardError, WardResult};

use super::capability::{SEARCH_PARAMETERS, capability_statement};
use super::media::FhirJson;
use super::patient::{new_patient, patient_changes, patient_resource};
use super::{FHIR_CONTENT_TYPE, FhirError};
use crate::ApiBackends;
use crate::caller::Caller;
use crate::etag::{IfMatch, etag};
use crate::problem::ApiError;

/// A FHIR answer: the resource as `application/fhir+json`, never cached (patient data).
fn fhir_reply(mut response: HttpResponseBuilder, resource: &Value) -> HttpResponse {
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
#[tracing::instrument(name = "gateway.fhir.create_patient", skip_all)]
pub(crate) async fn create_patient(
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
    body_result: Result<FhirJson, FhirError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let body = body_result?;
    let new_patient = new_patient(&body.0, Utc::now().date_naive())?;
    let patient = backends
        .patients
        .create_patient(caller.context(), new_patient)
        .await?;
    let location = format!("/fhir/Patient/{}/_history/{}", patient.id, patient.version);
    let mut response = HttpResponse::Created();
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
    let changes = patient_changes(&body.0, id)?;
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

/// `GET /fhir/Patient?_count=&_cursor=`: a `searchset` Bundle of one page, ordered by id, whose
/// `next` link carries the cursor of the following page.
#[tracing::instrument(name = "gateway.fhir.search_patients", skip_all)]
pub(crate) async fn search_patients(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let page_request = parse_search(request.query_string())?;
    let limit = page_request.limit;
    let page = backends
        .patients
        .list_patients(caller.context(), page_request)
        .await?;
    let base = base_url(&request);
    let mut entries = Vec::new();
    for patient in &page.items {
        entries.push(json!({
            "fullUrl": format!("{base}/Patient/{}", patient.id),
            "resource": patient_resource(patient, None),
            "search": {"mode": "match"},
        }));
    }
    let mut self_url = format!("{base}/Patient");
    if !request.query_string().is_empty() {
        self_url = format!("{self_url}?{}", request.query_string());
    }
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(cursor) = &page.next_cursor_opt {
        let next_url = format!(
            "{base}/Patient?_count={limit}&_cursor={}",
            percent_encode(cursor)
        );
        links.push(json!({"relation": "next", "url": next_url}));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    Ok(fhir_reply(HttpResponse::Ok(), &bundle))
}

/// Reads the search parameters: `_count` (1..=500) and `_cursor`, each at most once; any other
/// parameter is refused, since silently ignoring a filter would answer too many patients.
fn parse_search(query: &str) -> WardResult<PageRequest> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|error| WardError::invalid(format!("invalid query string: {error}"), Vec::new()))?
        .into_inner();
    let mut errors = Vec::new();
    let mut count_opt = None;
    let mut cursor_opt = None;
    for (name, value) in &pairs {
        let slot = match name.as_str() {
            "_count" => &mut count_opt,
            "_cursor" => &mut cursor_opt,
            _ => {
                errors.push(field_error(
                    name,
                    format!(
                        "unknown search parameter {name}; this server supports {}",
                        SEARCH_PARAMETERS.join(", ")
                    ),
                ));
                continue;
            }
        };
        if slot.replace(value.as_str()).is_some() {
            errors.push(field_error(name, format!("{name} may be given only once")));
        }
    }
    let mut limit_opt = None;
    if let Some(raw) = count_opt {
        match raw.parse::<i64>() {
            Ok(count) => limit_opt = Some(count),
            Err(_) => errors.push(field_error("_count", "_count must be a number")),
        }
    }
    if !errors.is_empty() {
        let detail = errors
            .iter()
            .map(|error| error.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(WardError::invalid(detail, errors));
    }
    PageRequest::parse(limit_opt, cursor_opt).map_err(rename_page_errors)
}

/// `PageRequest` names its parameters `limit` and `cursor`; FHIR callers sent `_count` and
/// `_cursor`.
fn rename_page_errors(error: WardError) -> WardError {
    let mut errors = Vec::new();
    for field_error in error.field_errors() {
        let (field, message) = match field_error.field.as_str() {
            "limit" => ("_count", field_error.message.replacen("limit", "_count", 1)),
            "cursor" => (
                "_cursor",
                field_error.message.replacen("cursor", "_cursor", 1),
            ),
            other => (other, field_error.message.clone()),
        };
        errors.push(FieldError {
            field: field.to_string(),
            message,
        });
    }
    if errors.is_empty() {
        return error;
    }
    let detail = errors
        .iter()
        .map(|error| error.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    WardError::invalid(detail, errors)
}

/// Reads a version from the path: digits only, from 1.
fn parse_version(raw: &str) -> WardResult<u32> {
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
fn path_segment<'a>(request: &'a HttpRequest, name: &str) -> &'a str {
    request.match_info().get(name).unwrap_or_default()
}

/// The absolute base of the FHIR endpoints as the client addressed them (bundle `fullUrl`s
/// and links must be absolute).
fn base_url(request: &HttpRequest) -> String {
    let connection = request.connection_info();
    format!("{}://{}/fhir", connection.scheme(), connection.host())
}

/// Percent-encodes everything but unreserved characters, so any cursor fits in a query.
fn percent_encode(raw: &str) -> String {
    let mut encoded = String::new();
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_takes_count_and_cursor_only() {
        let page = parse_search("_count=2").unwrap();
        assert_eq!(page.limit, 2);
        assert_eq!(parse_search("").unwrap().limit, 50);
        for query in [
            "name=Ada",
            "_count=0",
            "_count=501",
            "_count=two",
            "_count=1&_count=2",
            "_cursor=garbage",
            "birthdate=2000-01-01",
        ] {
            assert!(parse_search(query).is_err(), "{query}");
        }
        let error = parse_search("_count=0").unwrap_err();
        assert_eq!(error.field_errors()[0].field, "_count");
        assert!(error.field_errors()[0].message.starts_with("_count"));
    }

    #[test]
    fn cursors_are_encoded_for_a_query() {
        assert_eq!(percent_encode("ab-1_~."), "ab-1_~.");
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn versions_are_positive_decimal_numbers() {
        assert_eq!(parse_version("3"), Ok(3));
        for raw in ["0", "", "+1", "x"] {
            assert!(parse_version(raw).is_err(), "{raw}");
        }
    }
}

//! `/api/patients`: register, list, read, update and remove patient records.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use ward_core::id::parse_id;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{
    ListPatientsQuery, PatientBody, PatientPageResponse, PatientResponse, PatientUpdateSchema,
};
use crate::json::ApiJson;
use crate::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable, Unauthorized,
    UnsupportedMediaType,
};
use crate::problem::ApiError;

/// Registers a patient, opens its billing account and records the event, all or nothing.
#[utoipa::path(
    post,
    path = "/api/patients",
    tag = "patients",
    request_body = PatientBody,
    responses(
        (status = 201, description = "Registered", body = PatientResponse,
            headers(("Location" = String, description = "The new patient's URL"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.create_patient", skip_all)]
pub(crate) async fn create_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    body: ApiJson<PatientBody>,
) -> Result<HttpResponse, ApiError> {
    let new_patient = body.into_inner().into_new_patient()?;
    let patient = backends
        .patients
        .create_patient(caller.context(), new_patient)
        .await?;
    let location = format!("/api/patients/{}", patient.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(PatientResponse::from(patient)))
}

/// Lists patients a page at a time, ordered by id (so by registration time).
#[utoipa::path(
    get,
    path = "/api/patients",
    tag = "patients",
    params(ListPatientsQuery),
    responses(
        (status = 200, description = "One page of patients", body = PatientPageResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.list_patients", skip_all)]
pub(crate) async fn list_patients(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    query: web::Query<ListPatientsQuery>,
) -> Result<web::Json<PatientPageResponse>, ApiError> {
    let page_request = query.into_inner().into_page_request()?;
    let page = backends
        .patients
        .list_patients(caller.context(), page_request)
        .await?;
    Ok(web::Json(PatientPageResponse::from(page)))
}

/// Returns one patient.
#[utoipa::path(
    get,
    path = "/api/patients/{id}",
    tag = "patients",
    params(("id" = uuid::Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The patient", body = PatientResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.get_patient", skip_all)]
pub(crate) async fn get_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
) -> Result<web::Json<PatientResponse>, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let patient = backends.patients.get_patient(caller.context(), id).await?;
    Ok(web::Json(PatientResponse::from(patient)))
}

/// Replaces a patient's fields; `registeredDate` is ignored.
#[utoipa::path(
    put,
    path = "/api/patients/{id}",
    tag = "patients",
    params(("id" = uuid::Uuid, Path, description = "The patient's id")),
    request_body = PatientUpdateSchema,
    responses(
        (status = 200, description = "The updated patient", body = PatientResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.update_patient", skip_all)]
pub(crate) async fn update_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    body: ApiJson<PatientBody>,
) -> Result<web::Json<PatientResponse>, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let changes = body.into_inner().into_changes(id)?;
    let patient = backends
        .patients
        .update_patient(caller.context(), id, changes)
        .await?;
    Ok(web::Json(PatientResponse::from(patient)))
}

/// Removes a patient.
#[utoipa::path(
    delete,
    path = "/api/patients/{id}",
    tag = "patients",
    params(("id" = uuid::Uuid, Path, description = "The patient's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.delete_patient", skip_all)]
pub(crate) async fn delete_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    backends
        .patients
        .delete_patient(caller.context(), id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

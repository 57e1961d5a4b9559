//! `/api/patients`: register, list, read, update, patch, (soft) delete, restore and purge
//! patient records (their history is in `patient_history.rs`).
//!
//! Responses with one record carry its version as `ETag: W/"<version>"`; `PUT`, `PATCH`,
//! `DELETE` and the restore honour `If-Match`, checked by the module atomically with the write.
//! A deleted patient answers 410 until restored; a purge (admins) erases it for good.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use ward_bus::patients::{Patient, PatientChanges};
use ward_core::id::parse_id;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::conditional_create::{CreateOutcome, create_patient_unless_exists};
use crate::dto::{
    PatientBody, PatientMergePatch, PatientMergePatchSchema, PatientPageResponse, PatientResponse,
    PatientSearchParams, PatientUpdateSchema, idempotency_key, if_none_exist, parse_patient_search,
};
use crate::etag::{IfMatch, etag};
use crate::json::{ApiJson, MergePatchJson};
use crate::openapi::{
    BadRequest, Conflict, Forbidden, Gone, NotFound, PayloadTooLarge, PreconditionFailed,
    PreconditionRequired, ServiceUnavailable, Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::problem::ApiError;

/// Describes the `If-Match` request header in the operations that honour it.
const IF_MATCH_DESCRIPTION: &str = "Apply the change only to this version of the record, as \
    its `ETag` gave it (`W/\"3\"`; `\"3\"` and `*` are accepted too). Another version is a 412 \
    and nothing is written. Without it, the last write wins, unless the server requires it \
    (`patients.require_if_match`): then its absence is a 428.";

/// A patient answer: the record, with its version as the `ETag`.
fn patient_reply(mut response: actix_web::HttpResponseBuilder, patient: Patient) -> HttpResponse {
    response
        .insert_header((header::ETAG, etag(patient.version)))
        .json(PatientResponse::from(patient))
}

/// Registers a patient, opens its billing account and records the event, all or nothing.
///
/// With `Idempotency-Key`, a retry (same user, same key, same patient, within 24 h) answers
/// the first create's patient, as it is now, and creates nothing; the same key with another
/// patient is a 422. Concurrent calls with one key create one patient and all get it. With
/// `If-None-Exist`, a live patient matching the condition is answered with 200 instead.
#[utoipa::path(
    post,
    path = "/api/patients",
    tag = "patients",
    request_body = PatientBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII \
            characters naming this create. A retry with the same key and the same patient \
            (ignoring JSON whitespace and key order) answers the first 201 (same id, `Location`, \
            current `ETag`) and creates nothing; the same key with another patient is a 422. \
            Keys are per user and remembered for 24 hours."),
        ("If-None-Exist" = Option<String>, Header, description = "A conditional create, as \
            in FHIR: `identifier=<mrn>` (or `urn:ward:mrn|<mrn>`) or `email=<address>` \
            (ignoring case); `%XX` escapes are decoded. When one live patient matches, it is \
            answered with 200 and nothing is created; when several do, 412. A create that \
            loses a race with a concurrent one for the same email answers the winner with 200."),
    ),
    responses(
        (status = 200, description = "`If-None-Exist` matched: the existing patient, nothing \
            created", body = PatientResponse,
            headers(
                ("Location" = String, description = "The patient's URL"),
                ("ETag" = String, description = "The record's version, `W/\"<version>\"`")
            )),
        (status = 201, description = "Registered (or an `Idempotency-Key` retry)",
            body = PatientResponse,
            headers(
                ("Location" = String, description = "The new patient's URL"),
                ("ETag" = String, description = "The record's version, `W/\"1\"`")
            )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.create_patient", skip_all)]
pub(crate) async fn create_patient(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller: Caller,
    body: ApiJson<PatientBody>,
) -> Result<HttpResponse, ApiError> {
    let idempotency_key_opt = idempotency_key(&request)?;
    let condition_opt = if_none_exist(&request)?;
    let new_patient = body.into_inner().into_new_patient()?;
    let outcome = create_patient_unless_exists(
        &backends.patients,
        caller.context(),
        new_patient,
        idempotency_key_opt,
        condition_opt,
    )
    .await?;
    let (mut response, patient) = match outcome {
        CreateOutcome::Created(patient) => (HttpResponse::Created(), patient),
        CreateOutcome::Existing(patient) => (HttpResponse::Ok(), patient),
    };
    response.insert_header((header::LOCATION, patient_location(&patient)));
    Ok(patient_reply(response, patient))
}

fn patient_location(patient: &Patient) -> String {
    format!("/api/patients/{}", patient.id)
}

/// Searches patients a page at a time: by name words (prefixes, ignoring case and accents),
/// email, and birth date bounds, all combined with AND; ordered by `sort`, else by id (so by
/// registration time). Unknown parameters are a 400 naming them.
#[utoipa::path(
    get,
    path = "/api/patients",
    tag = "patients",
    params(PatientSearchParams),
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
    query: web::Query<Vec<(String, String)>>,
) -> Result<web::Json<PatientPageResponse>, ApiError> {
    let search = parse_patient_search(query.into_inner())?;
    let page = backends
        .patients
        .search_patients(caller.context(), search)
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
        (status = 200, description = "The patient", body = PatientResponse,
            headers(("ETag" = String, description = "The record's version, `W/\"<version>\"`"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.get_patient", skip_all)]
pub(crate) async fn get_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let patient = backends.patients.get_patient(caller.context(), id).await?;
    Ok(patient_reply(HttpResponse::Ok(), patient))
}

/// Replaces a patient's fields; `registeredDate` is ignored.
#[utoipa::path(
    put,
    path = "/api/patients/{id}",
    tag = "patients",
    params(
        ("id" = uuid::Uuid, Path, description = "The patient's id"),
        ("If-Match" = Option<String>, Header, description = IF_MATCH_DESCRIPTION,
            pattern = r#"^(\*|(W/)?"[0-9]{1,10}")$"#),
    ),
    request_body = PatientUpdateSchema,
    responses(
        (status = 200, description = "The updated patient", body = PatientResponse,
            headers(("ETag" = String, description = "The record's new version"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 428, response = PreconditionRequired),
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
    if_match: IfMatch,
    body: ApiJson<PatientBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let body = body.into_inner();
    // The stored number is needed only to check one the body sends back; it never changes, so
    // reading it first cannot race the write.
    let current_mrn_opt = if body.names_mrn() {
        let current = backends.patients.get_patient(caller.context(), id).await?;
        Some(current.mrn)
    } else {
        None
    };
    let changes = body.into_changes(id, current_mrn_opt.as_deref())?;
    let patient = backends
        .patients
        .update_patient(
            caller.context(),
            id,
            changes,
            if_match.expected_version_opt(),
        )
        .await?;
    Ok(patient_reply(HttpResponse::Ok(), patient))
}

/// Changes some of a patient's fields with an RFC 7396 merge patch: the members sent replace
/// the stored ones, `null` removes one (a 400, as every editable field is required).
#[utoipa::path(
    patch,
    path = "/api/patients/{id}",
    tag = "patients",
    params(
        ("id" = uuid::Uuid, Path, description = "The patient's id"),
        ("If-Match" = Option<String>, Header, description = IF_MATCH_DESCRIPTION,
            pattern = r#"^(\*|(W/)?"[0-9]{1,10}")$"#),
    ),
    request_body(content = PatientMergePatchSchema, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "The patched patient", body = PatientResponse,
            headers(("ETag" = String, description = "The record's version"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 428, response = PreconditionRequired),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.patch_patient", skip_all)]
pub(crate) async fn patch_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    if_match: IfMatch,
    body: MergePatchJson<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let patch = PatientMergePatch::parse(body.into_inner())?;
    let current = backends.patients.get_patient(caller.context(), id).await?;
    if let Some(expected) = if_match.expected_version_opt()
        && expected != current.version
    {
        return Err(ward_bus::patients::patient_changed(current.version).into());
    }
    let changes = patch.apply(&current)?;
    if is_unchanged(&current, &changes) {
        // Nothing to write: no new version for a patch that changes nothing.
        return Ok(patient_reply(HttpResponse::Ok(), current));
    }
    // Conditional on the version read, so a change made since is a 412, never overwritten.
    let patient = backends
        .patients
        .update_patient(caller.context(), id, changes, Some(current.version))
        .await?;
    Ok(patient_reply(HttpResponse::Ok(), patient))
}

fn is_unchanged(current: &Patient, changes: &PatientChanges) -> bool {
    current.name == changes.name
        && current.email.as_deref() == changes.email.as_deref().map(str::trim)
        && current.address == changes.address
        && current.date_of_birth == changes.date_of_birth
        && changes
            .identifiers_opt
            .as_ref()
            .is_none_or(|identifiers| *identifiers == current.identifiers)
}

/// Deletes a patient softly: the record is kept but reads and changes of it answer 410 and
/// searches skip it; its email stays taken, so a restore cannot clash. Its history stays
/// readable.
#[utoipa::path(
    delete,
    path = "/api/patients/{id}",
    tag = "patients",
    params(
        ("id" = uuid::Uuid, Path, description = "The patient's id"),
        ("If-Match" = Option<String>, Header, description = IF_MATCH_DESCRIPTION,
            pattern = r#"^(\*|(W/)?"[0-9]{1,10}")$"#),
    ),
    responses(
        (status = 204, description = "Deleted; restorable, and its history stays readable"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 412, response = PreconditionFailed),
        (status = 428, response = PreconditionRequired),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.delete_patient", skip_all)]
pub(crate) async fn delete_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    if_match: IfMatch,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    backends
        .patients
        .delete_patient(caller.context(), id, if_match.expected_version_opt())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Brings a deleted patient back, one version on.
#[utoipa::path(
    post,
    path = "/api/patients/{id}/restore",
    tag = "patients",
    params(
        ("id" = uuid::Uuid, Path, description = "The patient's id"),
        ("If-Match" = Option<String>, Header, description = IF_MATCH_DESCRIPTION,
            pattern = r#"^(\*|(W/)?"[0-9]{1,10}")$"#),
    ),
    responses(
        (status = 200, description = "The restored patient", body = PatientResponse,
            headers(("ETag" = String, description = "The record's new version"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 428, response = PreconditionRequired),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.restore_patient", skip_all)]
pub(crate) async fn restore_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    if_match: IfMatch,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let patient = backends
        .patients
        .restore_patient(caller.context(), id, if_match.expected_version_opt())
        .await?;
    Ok(patient_reply(HttpResponse::Ok(), patient))
}

/// Erases a patient for good, deleted or not: the record and its history (they hold personal
/// data). The audit trail keeps the patient's id. Needs `users:admin`. A `POST`, not a
/// `DELETE`, so proxies and clients never mistake it for the everyday (restorable) delete.
#[utoipa::path(
    post,
    path = "/api/patients/{id}/purge",
    tag = "patients",
    params(("id" = uuid::Uuid, Path, description = "The patient's id")),
    responses(
        (status = 204, description = "Erased; its history is gone too"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.purge_patient", skip_all)]
pub(crate) async fn purge_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    backends
        .patients
        .purge_patient(caller.context(), id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

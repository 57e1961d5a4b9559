//! `POST /api/patients/{id}/merge` and `/unmerge`: fold a duplicate into the record that
//! stays, and undo it within the configured window. The module does the work in one
//! transaction; these handlers only read the request and render the answer.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use ward_core::id::parse_id;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{MergeBody, PatientResponse, UnmergeResponse};
use crate::etag::{IfMatch, etag};
use crate::json::ApiJson;
use crate::openapi::{
    BadRequest, Conflict, Forbidden, Gone, NotFound, PayloadTooLarge, PreconditionFailed,
    ServiceUnavailable, Unauthorized, UnsupportedMediaType,
};
use crate::problem::ApiError;

/// Folds the duplicate `source` into this patient: the source's identifiers (and its MRN, under
/// `urn:ward:merged-mrn`) move here; the source keeps answering reads with `mergedInto`
/// pointing here, refuses changes (409) and leaves searches; both get a history entry;
/// `PatientMerged` tells billing and analytics. `If-Match` applies to this (target) patient.
#[utoipa::path(
    post,
    path = "/api/patients/{id}/merge",
    tag = "patients",
    params(
        ("id" = uuid::Uuid, Path, description = "The patient that stays (target)"),
        ("If-Match" = Option<String>, Header,
            description = "Merge only into this version of the target, as its `ETag` gave it",
            pattern = r#"^(\*|(W/)?"[0-9]{1,10}")$"#),
    ),
    request_body = MergeBody,
    responses(
        (status = 200, description = "The target after the merge", body = PatientResponse,
            headers(("ETag" = String, description = "The target's new version"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 410, response = Gone),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.merge_patients", skip_all)]
pub(crate) async fn merge_patients(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<MergeBody>,
) -> Result<HttpResponse, ApiError> {
    let target = parse_id(&raw_id, "id")?;
    let source = body.into_inner().source_id()?;
    let patient = backends
        .patients
        .merge_patients(
            caller.context(),
            target,
            source,
            if_match.expected_version_opt(),
        )
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(patient.version)))
        .json(PatientResponse::from(patient)))
}

/// Undoes the merge of `source` into this patient, if it is younger than
/// `patients.unmerge_window_secs` (30 days by default): the source is a patient of its own
/// again with the identifiers it brought; `PatientUnmerged` is sent.
#[utoipa::path(
    post,
    path = "/api/patients/{id}/unmerge",
    tag = "patients",
    params(("id" = uuid::Uuid, Path, description = "The patient the source was merged into")),
    request_body = MergeBody,
    responses(
        (status = 200, description = "Both records after the unmerge", body = UnmergeResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 410, response = Gone),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.unmerge_patients", skip_all)]
pub(crate) async fn unmerge_patients(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    body: ApiJson<MergeBody>,
) -> Result<HttpResponse, ApiError> {
    let target = parse_id(&raw_id, "id")?;
    let source = body.into_inner().source_id()?;
    let both = backends
        .patients
        .unmerge_patients(caller.context(), target, source)
        .await?;
    Ok(HttpResponse::Ok().json(UnmergeResponse::from(both)))
}

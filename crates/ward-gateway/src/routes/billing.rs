//! `/api/billing`: patients' billing accounts.

use actix_web::web;
use ward_core::id::parse_id;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::BillingAccountResponse;
use crate::openapi::{BadRequest, Forbidden, NotFound, ServiceUnavailable, Unauthorized};
use crate::problem::ApiError;

/// Returns the billing account opened for a patient.
#[utoipa::path(
    get,
    path = "/api/billing/accounts/{patientId}",
    tag = "billing",
    params(("patientId" = uuid::Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The patient's account", body = BillingAccountResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.get_account_by_patient", skip_all)]
pub(crate) async fn get_account_by_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_patient_id: web::Path<String>,
) -> Result<web::Json<BillingAccountResponse>, ApiError> {
    let patient_id = parse_id(&raw_patient_id, "patientId")?;
    let account = backends
        .billing
        .get_account_by_patient(caller.context(), patient_id)
        .await?;
    Ok(web::Json(BillingAccountResponse::from(account)))
}

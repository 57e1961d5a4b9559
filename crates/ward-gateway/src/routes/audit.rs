//! `/api/audit`: the audit trail of patient data access, for admins.

use actix_web::web;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{AuditPageResponse, AuditQueryParams};
use crate::openapi::{BadRequest, Forbidden, ServiceUnavailable, Unauthorized};
use crate::problem::ApiError;

/// Lists recorded accesses to patient data (reads, searches, changes, refusals), a page at a
/// time, ordered by event id. Admins only.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "audit",
    params(AuditQueryParams),
    responses(
        (status = 200, description = "One page of audit events", body = AuditPageResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.list_audit_events", skip_all)]
pub(crate) async fn list_audit_events(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    query: web::Query<AuditQueryParams>,
) -> Result<web::Json<AuditPageResponse>, ApiError> {
    let audit_query = query.into_inner().into_audit_query()?;
    let page = backends
        .patients
        .audit_events(caller.context(), audit_query)
        .await?;
    Ok(web::Json(AuditPageResponse::from(page)))
}

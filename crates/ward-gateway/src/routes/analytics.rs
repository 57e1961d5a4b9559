//! `/api/analytics`: figures built from events.

use actix_web::web;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::SummaryResponse;
use crate::openapi::{Forbidden, ServiceUnavailable, Unauthorized};
use crate::problem::ApiError;

/// Returns the durable figures built from patient and billing events.
#[utoipa::path(
    get,
    path = "/api/analytics/summary",
    tag = "analytics",
    responses(
        (status = 200, description = "The figures", body = SummaryResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.analytics_summary", skip_all)]
pub(crate) async fn summary(
    backends: web::Data<ApiBackends>,
    caller: Caller,
) -> Result<web::Json<SummaryResponse>, ApiError> {
    let summary = backends.analytics.summary(caller.context()).await?;
    Ok(web::Json(SummaryResponse::from(summary)))
}

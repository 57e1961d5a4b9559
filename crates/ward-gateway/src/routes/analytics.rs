//! `/api/analytics`: figures built from events.

use actix_web::web;
use chrono::Utc;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{
    ReceivablesParams, ReceivablesResponse, SummaryResponse, TimeseriesParams, TimeseriesResponse,
};
use crate::openapi::{BadRequest, Forbidden, ServiceUnavailable, Unauthorized};
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

/// Returns one figure per day, ISO week or month over `from..to`, every bucket present (zeros
/// included). Money metrics are in minor units of one currency. Needs `analytics:read`
/// (admin, analyst).
#[utoipa::path(
    get,
    path = "/api/analytics/timeseries",
    tag = "analytics",
    params(TimeseriesParams),
    responses(
        (status = 200, description = "The time series", body = TimeseriesResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.analytics_timeseries", skip_all)]
pub(crate) async fn timeseries(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    params: web::Query<TimeseriesParams>,
) -> Result<web::Json<TimeseriesResponse>, ApiError> {
    let query = params.into_inner().into_query(Utc::now().date_naive())?;
    let timeseries = backends
        .analytics
        .timeseries(caller.context(), query)
        .await?;
    Ok(web::Json(TimeseriesResponse::from(timeseries)))
}

/// Returns what patients owe on open invoices in one currency, aged today (UTC) by days since
/// each invoice was issued: 0-30, 31-60, 61-90 and over 90. Needs `analytics:read`.
#[utoipa::path(
    get,
    path = "/api/analytics/receivables",
    tag = "analytics",
    params(ReceivablesParams),
    responses(
        (status = 200, description = "The receivables", body = ReceivablesResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.analytics_receivables", skip_all)]
pub(crate) async fn receivables(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    params: web::Query<ReceivablesParams>,
) -> Result<web::Json<ReceivablesResponse>, ApiError> {
    let query = params.into_inner().into_query(Utc::now().date_naive())?;
    let receivables = backends
        .analytics
        .receivables(caller.context(), query)
        .await?;
    Ok(web::Json(ReceivablesResponse::from(receivables)))
}

//! `/livez`, `/readyz` and `/metrics`, for ECS, the load balancer and Prometheus.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use ward_bus::health::Health;
use ward_bus::metrics;

use crate::dto::{LivenessResponse, ReadinessResponse};

/// Always 200 while the process runs.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "ops",
    responses((status = 200, description = "The process runs", body = LivenessResponse))
)]
pub(crate) async fn livez() -> web::Json<LivenessResponse> {
    web::Json(LivenessResponse::live())
}

/// 200 when every component this process depends on is ready, else 503 with what each waits for.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = ReadinessResponse),
        (status = 503, description = "Not ready yet", body = ReadinessResponse),
    )
)]
pub(crate) async fn readyz(health: web::Data<Health>) -> HttpResponse {
    let report = health.report();
    let mut response = if report.ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ReadinessResponse::from(report))
}

/// Prometheus text format (0.0.4): this process's metrics (`ward_*`: HTTP, gRPC, database,
/// outbox, consumers, tokens, build info) and its readiness.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain"))
)]
pub(crate) async fn metrics(health: web::Data<Health>) -> HttpResponse {
    metrics::set_ready(health.report().ready);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, metrics::CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(metrics::render())
}

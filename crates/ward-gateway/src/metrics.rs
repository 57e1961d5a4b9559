//! The public API's request metrics, recorded into the process-wide registry of
//! [`ward_bus::metrics`], which the ops listener's `/metrics` renders.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use ward_bus::metrics::{UNMATCHED_ROUTE, observe_http_request};

/// Middleware for the public listener: counts and times every response by route pattern, method
/// and status (`ward_http_requests_total`, `ward_http_request_duration_seconds`).
///
/// The label is the matched pattern (`/api/patients/{id}`), never the path: paths carry patient
/// ids, and a scanner's random paths would make series without bound. Probes on the ops listener
/// are not counted, so they do not drown the API's figures.
pub(crate) async fn record_api_request<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    let started = Instant::now();
    let method = request.method().clone();
    let outcome = next.call(request).await;
    let elapsed = started.elapsed();
    match &outcome {
        Ok(response) => {
            let route_opt = response.request().match_pattern();
            let route = route_opt.as_deref().unwrap_or(UNMATCHED_ROUTE);
            observe_http_request(route, method.as_str(), response.status().as_u16(), elapsed);
        }
        // Only a middleware below could fail (handlers render their errors); actix renders it.
        Err(error) => {
            let status = error.as_response_error().status_code();
            observe_http_request(UNMATCHED_ROUTE, method.as_str(), status.as_u16(), elapsed);
        }
    }
    outcome
}

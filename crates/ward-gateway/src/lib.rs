//! Ward's public REST gateway: actix-web routes over the module traits, problem+json errors and
//! the OpenAPI description.
//!
//! The gateway knows modules only through [`ward_bus::Services`]; whether a module runs in this
//! process or behind gRPC is decided by the wiring. Handlers stay thin: parse the request into
//! domain types (`dto.rs`), call the trait, map the result. Modules authorize every call
//! themselves (`CallerContext::require`); the gateway only establishes who the caller is (the
//! `Caller` extractor).
//!
//! Mount [`api_config`] on the public listener and [`ops_config`] on the ops listener.

mod caller;
mod client_addr;
mod conditional_create;
mod dto;
mod etag;
mod fhir;
mod identifier;
mod json;
mod metrics;
mod openapi;
mod problem;
mod request_id;
mod routes;
mod security;

use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceRequest;
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{self, ServiceConfig};
use chrono::{DateTime, Utc};
use ward_bus::auth::AccessToken;
use ward_bus::health::Health;
use ward_bus::token::Narrowing;
use ward_bus::{AnalyticsClient, AuthClient, BillingClient, PatientsClient, Services};
use ward_core::{Principal, WardResult};

pub use crate::fhir::bulk::{REGISTERED_DATE_EXTENSION, bulk_patient_resource, parse_bulk_patient};
pub use crate::openapi::openapi;
pub use crate::problem::{ApiError, PROBLEM_CONTENT_TYPE, Problem, ProblemFieldError};
pub use crate::request_id::{REQUEST_ID_HEADER, RequestId};
pub use crate::security::GatewayOptions;

/// The largest JSON body the API reads; patient records are far smaller.
pub const JSON_BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Checks a bearer token offline at the given instant and returns who holds it; any failure is
/// `Unauthenticated`.
pub type TokenCheck = Arc<dyn Fn(&str, DateTime<Utc>) -> WardResult<Principal> + Send + Sync>;

/// Appends a [`Narrowing`] to a valid bearer token at the given instant, offline, and returns
/// the narrowed token; an invalid token is `Unauthenticated`, a narrowing that takes nothing away
/// `InvalidArgument`.
pub type TokenNarrow =
    Arc<dyn Fn(&str, &Narrowing, DateTime<Utc>) -> WardResult<AccessToken> + Send + Sync>;

/// What the API routes call: the four module clients and the token check and narrowing.
///
/// Built from [`Services`] in production. It exists apart from `Services` so that tests can swap
/// the token functions for fakes without key files.
#[derive(Clone)]
pub struct ApiBackends {
    pub auth: AuthClient,
    pub patients: PatientsClient,
    pub billing: BillingClient,
    pub analytics: AnalyticsClient,
    pub token_check: TokenCheck,
    pub token_narrow: TokenNarrow,
}

impl From<Services> for ApiBackends {
    fn from(services: Services) -> Self {
        let verifier = services.tokens;
        let narrowing_verifier = verifier.clone();
        Self {
            auth: services.auth,
            patients: services.patients,
            billing: services.billing,
            analytics: services.analytics,
            token_check: Arc::new(move |token, now| verifier.verify(token, now)),
            token_narrow: Arc::new(move |token, narrowing, now| {
                narrowing_verifier.narrow(token, narrowing, now)
            }),
        }
    }
}

/// Returns the configuration of the public listener: every `/auth/**` and `/api/**` route,
/// `/livez`, `/readyz`, `/metrics`, `/openapi.json`, `/docs` and `/dashboard`.
///
/// Everything is mounted in one catch-all scope so that the request-id and security-header
/// middleware and the problem+json 404 cover unknown paths too. Mount it last (or alone) in its
/// `App`: services registered after it are never reached. `options` carries the CORS allow-list.
pub fn api_config(
    services: Services,
    health: Health,
    options: GatewayOptions,
) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    api_config_with_backends(ApiBackends::from(services), health, options)
}

/// Same as [`api_config`], over explicit [`ApiBackends`].
pub fn api_config_with_backends(
    backends: ApiBackends,
    health: Health,
    options: GatewayOptions,
) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    let backends = web::Data::new(backends);
    let health = web::Data::new(health);
    let cors_policy = security::CorsPolicy::new(&options);
    let trusted_proxies =
        web::Data::new(client_addr::TrustedProxies::new(&options.trusted_proxies));
    let if_match_policy = web::Data::new(etag::IfMatchPolicy {
        is_required: options.require_if_match,
    });
    move |cfg: &mut ServiceConfig| {
        let cors_policy = cors_policy.clone();
        // The security middleware is inner so that its preflight answers still get a request id
        // and are counted; it gets the policy by closure because scope data is not yet attached
        // to the request when a scope's middleware runs.
        let secure = from_fn(move |request: ServiceRequest, next: Next<BoxBody>| {
            security::secure_response(cors_policy.clone(), request, next)
        });
        let scope = web::scope("")
            .app_data(backends.clone())
            .app_data(health.clone())
            .app_data(trusted_proxies.clone())
            .app_data(if_match_policy.clone())
            .app_data(problem::json_config(JSON_BODY_LIMIT_BYTES))
            .app_data(problem::path_config())
            .app_data(problem::query_config())
            .wrap(secure)
            .wrap(from_fn(request_id::track_api_request))
            .wrap(from_fn(metrics::record_api_request))
            .configure(routes::api_routes)
            .configure(routes::health_routes)
            .default_service(web::to(routes::not_found));
        cfg.service(scope);
    }
}

/// Returns the configuration of the ops listener every process runs: `/livez`, `/readyz`,
/// `/metrics`. Like [`api_config`], mount it last in its `App`.
pub fn ops_config(health: Health) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    let health = web::Data::new(health);
    move |cfg: &mut ServiceConfig| {
        let scope = web::scope("")
            .app_data(health.clone())
            .wrap(from_fn(request_id::track_ops_request))
            .configure(routes::health_routes)
            .default_service(web::to(routes::not_found));
        cfg.service(scope);
    }
}

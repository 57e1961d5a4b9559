//! The route table, and one file of thin handlers per module: parse, call the trait, map.

pub(crate) mod analytics;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod billing;
pub(crate) mod dashboard;
pub(crate) mod docs;
pub(crate) mod health;
pub(crate) mod merge;
pub(crate) mod patient_history;
pub(crate) mod patients;
pub(crate) mod users;

use std::future::{Ready, ready};

use actix_web::{HttpRequest, HttpResponse, Resource, Route, web};
use ward_core::WardError;

use crate::problem::ApiError;

/// Registers the public API's routes (everything but the health routes).
pub(crate) fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/login", "POST").route(web::post().to(auth::login)))
        .service(resource("/auth/refresh", "POST").route(web::post().to(auth::refresh)))
        .service(resource("/auth/logout", "POST").route(web::post().to(auth::logout)))
        .service(resource("/auth/password", "POST").route(web::post().to(auth::change_password)))
        .service(resource("/auth/narrow", "POST").route(web::post().to(auth::narrow)))
        .service(resource("/auth/validate", "GET").route(web::get().to(auth::validate)))
        .service(resource("/auth/me", "GET").route(web::get().to(auth::me)))
        .service(
            resource("/api/users", "GET, POST")
                .route(web::get().to(users::list_users))
                .route(web::post().to(users::create_user)),
        )
        .service(resource("/api/users/{id}", "PATCH").route(web::patch().to(users::update_user)))
        .service(
            resource("/api/patients", "GET, POST")
                .route(web::get().to(patients::list_patients))
                .route(web::post().to(patients::create_patient)),
        )
        .service(
            resource("/api/patients/{id}", "GET, PUT, PATCH, DELETE")
                .route(web::get().to(patients::get_patient))
                .route(web::put().to(patients::update_patient))
                .route(web::patch().to(patients::patch_patient))
                .route(web::delete().to(patients::delete_patient)),
        )
        .service(
            resource("/api/patients/{id}/restore", "POST")
                .route(web::post().to(patients::restore_patient)),
        )
        .service(
            resource("/api/patients/{id}/merge", "POST")
                .route(web::post().to(merge::merge_patients)),
        )
        .service(
            resource("/api/patients/{id}/unmerge", "POST")
                .route(web::post().to(merge::unmerge_patients)),
        )
        .service(
            resource("/api/patients/{id}/purge", "POST")
                .route(web::post().to(patients::purge_patient)),
        )
        .service(
            resource("/api/patients/{id}/history", "GET")
                .route(web::get().to(patient_history::patient_history)),
        )
        .service(
            resource("/api/patients/{id}/history/{version}", "GET")
                .route(web::get().to(patient_history::patient_version)),
        )
        .service(
            resource("/api/billing/accounts/{patientId}", "GET")
                .route(web::get().to(billing::get_account_by_patient)),
        )
        .service(
            resource("/api/billing/accounts/{patientId}/adjustments", "POST")
                .route(web::post().to(billing::post_adjustment)),
        )
        .service(
            resource("/api/billing/accounts/{patientId}/statement", "GET")
                .route(web::get().to(billing::get_statement)),
        )
        .service(
            resource("/api/billing/invoices", "GET, POST")
                .route(web::get().to(billing::list_invoices))
                .route(web::post().to(billing::create_invoice)),
        )
        .service(
            resource("/api/billing/invoices/{id}", "GET")
                .route(web::get().to(billing::get_invoice)),
        )
        .service(
            resource("/api/billing/invoices/{id}/issue", "POST")
                .route(web::post().to(billing::issue_invoice)),
        )
        .service(
            resource("/api/billing/invoices/{id}/void", "POST")
                .route(web::post().to(billing::void_invoice)),
        )
        .service(
            resource("/api/billing/payments", "POST")
                .route(web::post().to(billing::record_payment)),
        )
        .service(
            resource("/api/billing/payments/{id}", "GET")
                .route(web::get().to(billing::get_payment)),
        )
        .service(
            resource("/api/billing/payments/{id}/refund", "POST")
                .route(web::post().to(billing::refund_payment)),
        )
        .service(resource("/api/audit", "GET").route(web::get().to(audit::list_audit_events)))
        .service(resource("/api/analytics/summary", "GET").route(web::get().to(analytics::summary)))
        .service(
            resource("/api/analytics/timeseries", "GET")
                .route(web::get().to(analytics::timeseries)),
        )
        .service(
            resource("/api/analytics/receivables", "GET")
                .route(web::get().to(analytics::receivables)),
        )
        .service(resource("/openapi.json", "GET").route(web::get().to(docs::openapi_json)))
        .service(resource("/docs", "GET").route(web::get().to(docs::docs_page)))
        .service(resource("/dashboard", "GET").route(web::get().to(dashboard::page)))
        .service(resource("/dashboard/dashboard.js", "GET").route(web::get().to(dashboard::script)))
        .service(
            resource("/dashboard/dashboard.css", "GET").route(web::get().to(dashboard::styles)),
        )
        .configure(crate::fhir::fhir_routes);
}

/// Registers `/livez`, `/readyz` and `/metrics`, served on both listeners.
pub(crate) fn health_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/livez", "GET").route(web::get().to(health::livez)))
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(health::metrics)));
}

/// The 404 problem for a path no route matches.
pub(crate) async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let detail = format!("no route matches {} {}", request.method(), request.path());
    Err(WardError::NotFound(detail).into())
}

/// A resource whose unmatched methods get a 405 problem listing `allow`.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(method_not_allowed(allow))
}

fn method_not_allowed(allow: &'static str) -> Route {
    web::to(move || -> Ready<Result<HttpResponse, ApiError>> {
        ready(Err(ApiError::MethodNotAllowed { allow }))
    })
}

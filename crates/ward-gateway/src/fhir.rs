//! FHIR R4 endpoints for Patient under `/fhir`: read, vread, create (also conditional), update,
//! delete, history, a filtered and paged search, and the CapabilityStatement at
//! `/fhir/metadata`.
//!
//! They are a second rendering of the same module calls as `/api/patients`: every route but
//! `metadata` authenticates with the [`Caller`](crate::caller::Caller) extractor and calls
//! [`PatientsApi`](ward_bus::patients::PatientsApi), so rights and the audit trail apply
//! unchanged. Every failure, the extractors' included, is an `OperationOutcome` with the status
//! the REST API would answer. FHIR describes itself through `metadata`, so these routes stay out
//! of the OpenAPI document.

pub(crate) mod bulk;
mod capability;
mod export;
mod handlers;
mod history;
mod media;
mod outcome;
mod patient;
mod search;

use std::future::{Ready, ready};

use actix_web::{HttpResponse, Resource, Route, web};

use crate::problem::ApiError;

pub(crate) use self::outcome::FhirError;

/// The media type of every FHIR response.
pub(crate) const FHIR_CONTENT_TYPE: &str = "application/fhir+json";

/// Registers the `/fhir` scope; unknown paths inside it are a 404 `OperationOutcome`.
pub(crate) fn fhir_routes(cfg: &mut web::ServiceConfig) {
    let scope = web::scope("/fhir")
        .service(fhir_resource("/metadata", "GET").route(web::get().to(handlers::metadata)))
        .service(
            fhir_resource("/Patient", "GET, POST")
                .route(web::get().to(search::search_patients))
                .route(web::post().to(handlers::create_patient)),
        )
        // Before `{id}`, which would take `$export` for an id.
        .service(
            fhir_resource("/Patient/$export", "GET").route(web::get().to(export::export_patients)),
        )
        .service(
            fhir_resource("/Patient/{id}", "GET, PUT, DELETE")
                .route(web::get().to(handlers::read_patient))
                .route(web::put().to(handlers::update_patient))
                .route(web::delete().to(handlers::delete_patient)),
        )
        .service(
            fhir_resource("/Patient/{id}/_history", "GET")
                .route(web::get().to(history::patient_history)),
        )
        .service(
            fhir_resource("/Patient/{id}/_history/{vid}", "GET")
                .route(web::get().to(handlers::vread_patient)),
        )
        .default_service(web::to(handlers::not_found));
    cfg.service(scope);
}

/// Like `routes::resource`, but the 405 is an `OperationOutcome`.
fn fhir_resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(method_not_allowed(allow))
}

fn method_not_allowed(allow: &'static str) -> Route {
    web::to(move || -> Ready<Result<HttpResponse, FhirError>> {
        ready(Err(ApiError::MethodNotAllowed { allow }.into()))
    })
}

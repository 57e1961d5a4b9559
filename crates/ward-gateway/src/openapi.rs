//! The OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]` and the DTOs'
//! `ToSchema`, plus the reusable problem+json responses and the bearer security scheme.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse};

use crate::dto;
use crate::problem::{Problem, ProblemFieldError};
use crate::routes::{analytics, audit, auth, billing, health, patients};

/// The request is malformed; `errors` lists every failing field.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct BadRequest(#[allow(dead_code)] Problem);

/// The bearer token is missing or invalid (`WWW-Authenticate: Bearer`), or the credentials do
/// not match.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Unauthorized(#[allow(dead_code)] Problem);

/// The caller's role lacks the right this operation needs.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Forbidden(#[allow(dead_code)] Problem);

/// No such record.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct NotFound(#[allow(dead_code)] Problem);

/// A uniqueness rule would break (e.g. "Email address already exists").
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Conflict(#[allow(dead_code)] Problem);

/// The body exceeds 64 KiB.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct PayloadTooLarge(#[allow(dead_code)] Problem);

/// The body is not declared as JSON: send `Content-Type: application/json`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct UnsupportedMediaType(#[allow(dead_code)] Problem);

/// A module this operation needs cannot be reached now; retrying later may work.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct ServiceUnavailable(#[allow(dead_code)] Problem);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ward API",
        description = "Patient records, billing and analytics for clinics. Every `/api/**` \
            operation needs `Authorization: Bearer <token>` from `POST /auth/login`; each \
            operation checks the caller's role. Errors are RFC 9457 `application/problem+json` \
            documents carrying the request id, also echoed in `x-request-id`."
    ),
    paths(
        auth::login,
        auth::validate,
        auth::me,
        patients::create_patient,
        patients::list_patients,
        patients::get_patient,
        patients::update_patient,
        patients::delete_patient,
        billing::get_account_by_patient,
        analytics::summary,
        audit::list_audit_events,
        health::livez,
        health::readyz,
        health::metrics,
    ),
    components(
        schemas(Problem, ProblemFieldError, dto::UserRoleDto, dto::AccountStatusDto),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            ServiceUnavailable
        )
    ),
    modifiers(&BearerSecurity),
    tags(
        (name = "auth", description = "Sessions and tokens"),
        (name = "patients", description = "Patient records"),
        (name = "billing", description = "Billing accounts"),
        (name = "analytics", description = "Figures built from events"),
        (name = "audit", description = "Who accessed which patient data (admins only)"),
        (name = "ops", description = "Liveness, readiness and metrics"),
    )
)]
struct ApiDoc;

/// Adds the `bearer` scheme the operations' `security` refers to.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("biscuit")
            .description(Some("An access token from `POST /auth/login`."))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Returns the OpenAPI 3.1 description of the public API (also served at `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

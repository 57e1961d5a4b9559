//! The OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]` and the DTOs'
//! `ToSchema`, plus the reusable problem+json responses and the bearer security scheme.

use std::collections::BTreeSet;

use serde_json::json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, KnownFormat, ObjectBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{PathItem, RefOr};
use utoipa::{Modify, OpenApi, ToResponse};

use crate::dto;
use crate::problem::{Problem, ProblemFieldError};
use crate::routes::{
    analytics, audit, auth, billing, health, merge, patient_history, patients, users,
};

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

/// The patient was deleted (a soft delete); an admin can restore it with
/// `POST /api/patients/{id}/restore`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Gone(#[allow(dead_code)] Problem);

/// A uniqueness rule would break (e.g. "Email address already exists").
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Conflict(#[allow(dead_code)] Problem);

/// The record has changed since the version named in `If-Match`; nothing was written. Read it
/// again (its `ETag` is the current version) and retry.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct PreconditionFailed(#[allow(dead_code)] Problem);

/// This server requires `If-Match` on changes of a patient (`patients.require_if_match`) and
/// the request had none; nothing was written. Read the record and send its `ETag` (or `*`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct PreconditionRequired(#[allow(dead_code)] Problem);

/// The request is well formed but cannot be processed: an `Idempotency-Key` already used with
/// a different request.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct Unprocessable(#[allow(dead_code)] Problem);

/// The body exceeds 64 KiB.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(crate) struct PayloadTooLarge(#[allow(dead_code)] Problem);

/// The body is not declared as the JSON this operation reads: send `Content-Type:
/// application/json` (`application/merge-patch+json` for a patient `PATCH`).
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
        auth::refresh,
        auth::logout,
        auth::change_password,
        auth::narrow,
        auth::validate,
        auth::me,
        users::list_users,
        users::create_user,
        users::update_user,
        patients::create_patient,
        patients::list_patients,
        patients::get_patient,
        patients::update_patient,
        patients::patch_patient,
        patients::delete_patient,
        patients::restore_patient,
        patients::purge_patient,
        merge::merge_patients,
        merge::unmerge_patients,
        patient_history::patient_history,
        patient_history::patient_version,
        billing::get_account_by_patient,
        billing::get_statement,
        billing::post_adjustment,
        billing::create_invoice,
        billing::list_invoices,
        billing::get_invoice,
        billing::issue_invoice,
        billing::void_invoice,
        billing::record_payment,
        billing::get_payment,
        billing::refund_payment,
        analytics::summary,
        analytics::timeseries,
        analytics::receivables,
        audit::list_audit_events,
        health::livez,
        health::readyz,
        health::metrics,
    ),
    components(
        schemas(
            Problem,
            ProblemFieldError,
            dto::UserRoleDto,
            dto::AccountStatusDto,
            dto::InvoiceStatusDto,
            dto::PaymentMethodDto,
            dto::LedgerKindDto,
            dto::LedgerKindInput,
            dto::InvoiceLineBody,
            dto::BirthDateBoundParam,
            dto::MetricParam,
            dto::IntervalParam
        ),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Gone,
            Conflict,
            PreconditionFailed,
            PreconditionRequired,
            Unprocessable,
            PayloadTooLarge,
            UnsupportedMediaType,
            ServiceUnavailable
        )
    ),
    modifiers(&BearerSecurity, &ClosedRequestBodies, &AtLeastOneMember),
    tags(
        (name = "auth", description = "Sessions and tokens"),
        (name = "patients", description = "Patient records"),
        (name = "billing", description = "Billing accounts, invoices, payments, refunds, \
            adjustments and statements; money is integer minor units (cents)"),
        (name = "analytics", description = "Figures built from events"),
        (name = "audit", description = "Who accessed which patient data (admins only)"),
        (name = "users", description = "Staff accounts (admins only)"),
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

/// Closes the schema of every request body to members it does not define. Each body DTO
/// collects unknown members into a flattened map and answers them with a 400 naming them
/// (`dto/fields.rs`), which the derive cannot see; saying so lets schema-driven clients and
/// fuzzers know an extra member is invalid.
struct ClosedRequestBodies;

impl Modify for ClosedRequestBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut body_schema_names = BTreeSet::new();
        for path_item in openapi.paths.paths.values() {
            for operation in operations(path_item) {
                let Some(request_body) = &operation.request_body else {
                    continue;
                };
                for content in request_body.content.values() {
                    if let Some(RefOr::Ref(reference)) = &content.schema
                        && let Some(name) =
                            reference.ref_location.strip_prefix("#/components/schemas/")
                    {
                        body_schema_names.insert(name.to_string());
                    }
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in body_schema_names {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

fn operations(path_item: &PathItem) -> impl Iterator<Item = &Operation> {
    [
        &path_item.get,
        &path_item.put,
        &path_item.post,
        &path_item.delete,
        &path_item.patch,
    ]
    .into_iter()
    .flatten()
}

/// Bodies whose members are all optional but that must change something, with each member and
/// the values of it that count (`readOnly: false` narrows nothing, `null` is absent). The
/// parsers refuse the rest (`dto/session.rs`, `dto/users.rs`).
const AT_LEAST_ONE_MEMBER: [(&str, &[(&str, Alternative)]); 2] = [
    (
        "NarrowRequest",
        &[
            ("readOnly", Alternative::True),
            ("patientId", Alternative::Uuid),
            ("expiresInSeconds", Alternative::Integer),
        ],
    ),
    (
        "UserPatchRequest",
        &[
            ("role", Alternative::UserRole),
            ("disabled", Alternative::Boolean),
        ],
    ),
];

/// The non-null values of a member that make it count.
#[derive(Clone, Copy)]
enum Alternative {
    True,
    Boolean,
    Integer,
    Uuid,
    UserRole,
}

impl Alternative {
    fn schema(self) -> RefOr<Schema> {
        let object = match self {
            Self::True => ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([json!(true)])),
            Self::Boolean => ObjectBuilder::new().schema_type(Type::Boolean),
            Self::Integer => ObjectBuilder::new().schema_type(Type::Integer),
            Self::Uuid => ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            Self::UserRole => {
                return RefOr::Ref(utoipa::openapi::Ref::from_schema_name("UserRole"));
            }
        };
        RefOr::T(Schema::Object(object.build()))
    }
}

/// Turns each schema of [`AT_LEAST_ONE_MEMBER`] into `allOf: [<the object>, anyOf: [<one object
/// per member, requiring it>]]`, so an empty body is invalid by the schema too. Runs after
/// [`ClosedRequestBodies`], which closes the object itself.
struct AtLeastOneMember;

impl Modify for AtLeastOneMember {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, members) in AT_LEAST_ONE_MEMBER {
            let Some(object) = components.schemas.remove(name) else {
                continue;
            };
            let mut any_of = AnyOfBuilder::new();
            for (member, alternative) in members {
                let requiring_member = ObjectBuilder::new()
                    .property(*member, alternative.schema())
                    .required(*member);
                any_of = any_of.item(requiring_member);
            }
            let all_of = AllOfBuilder::new().item(object).item(any_of);
            components
                .schemas
                .insert(name.to_string(), RefOr::T(Schema::AllOf(all_of.build())));
        }
    }
}

/// Returns the OpenAPI 3.1 description of the public API (also served at `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

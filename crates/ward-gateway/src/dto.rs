//! JSON bodies and query strings, and their conversions to and from the bus's domain types.
//!
//! Field names match the reference platform (camelCase). Incoming fields are read as raw JSON
//! values and checked one by one, so a wrongly typed field (`"name": 5`) is a 400 naming that
//! field, reported with every other failing field, rather than an opaque deserialization error.

mod analytics;
mod billing;
mod create_headers;
mod fields;
mod identifiers;
mod merge;
mod search;
mod session;
mod users;
mod versions;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use ward_bus::auth::{Session, UserInfo};
use ward_bus::health::{ComponentState, HealthReport};
use ward_bus::patients::{
    AuditEvent, AuditPage, AuditQuery, NewPatient, Patient, PatientChanges, PatientInput,
    PatientPage,
};
use ward_core::{FieldError, Principal, UserRole, WardResult};

pub(crate) use self::analytics::{
    IntervalParam, MetricParam, ReceivablesParams, ReceivablesResponse, SummaryResponse,
    TimeseriesParams, TimeseriesResponse,
};
pub(crate) use self::billing::{
    AccountStatusDto, AdjustmentBody, BillingAccountResponse, InvoiceBody, InvoiceLineBody,
    InvoiceListParams, InvoicePageResponse, InvoiceResponse, InvoiceStatusDto, LedgerEntryResponse,
    LedgerKindDto, LedgerKindInput, PaymentBody, PaymentMethodDto, PaymentResponse, RefundBody,
    RefundResponse, StatementParams, StatementResponse, VoidBody, parse_invoice_query,
    parse_statement_period, void_reason,
};
pub(crate) use self::create_headers::{IDEMPOTENCY_KEY_HEADER, idempotency_key, if_none_exist};
use self::fields::{field_error, invalid, required, text_field, unknown_fields, with_type_errors};
pub(crate) use self::identifiers::IdentifierDto;
use self::identifiers::identifiers_field;
pub(crate) use self::merge::{MergeBody, UnmergeResponse};
pub(crate) use self::search::{BirthDateBoundParam, PatientSearchParams, parse_patient_search};
pub(crate) use self::session::{AccessTokenResponse, NarrowBody, PasswordBody, RefreshBody};
pub(crate) use self::users::{NewUserBody, UserListResponse, UserPatchBody, UserResponse};
pub(crate) use self::versions::{
    PatientHistoryResponse, PatientMergePatch, PatientMergePatchSchema, PatientVersionResponse,
};

// No `Debug`: it holds a password.
/// An account's credentials.
#[derive(Deserialize, ToSchema)]
#[schema(as = LoginRequest)]
pub(crate) struct LoginBody {
    #[schema(value_type = String, pattern = r"\S", example = "testuser@test.com")]
    email: Option<Value>,
    #[schema(
        value_type = String,
        format = Password,
        pattern = r"\S",
        example = "password123"
    )]
    password: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

/// Credentials read from a [`LoginBody`].
pub(crate) struct Credentials {
    pub email: String,
    pub password: String,
}

// Hand-written so that a password never reaches a log line.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl LoginBody {
    pub(crate) fn into_credentials(self) -> WardResult<Credentials> {
        let mut errors = Vec::new();
        let email_text_opt = text_field(self.email, "email", &mut errors);
        let password_text_opt = text_field(self.password, "password", &mut errors);
        let email_opt = required(email_text_opt, "email", &mut errors);
        let password_opt = required(password_text_opt, "password", &mut errors);
        unknown_fields(&self.unknown, &mut errors);
        match (email_opt, password_opt) {
            (Some(email), Some(password)) if errors.is_empty() => {
                Ok(Credentials { email, password })
            }
            _ => Err(invalid(errors)),
        }
    }
}

/// A session's access token and the refresh token that renews it (login and refresh).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    /// When the token stops being accepted (RFC 3339).
    expires_at: DateTime<Utc>,
    /// Send to `POST /auth/refresh` for a new access token; single use (each refresh answers a
    /// new one), and using a spent one ends the session.
    refresh_token: String,
}

// Hand-written so that neither token reaches a log line.
impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl From<Session> for LoginResponse {
    fn from(session: Session) -> Self {
        Self {
            token: session.token,
            expires_at: session.expires_at,
            refresh_token: session.refresh_token,
        }
    }
}

/// A staff member's role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = UserRole)]
pub(crate) enum UserRoleDto {
    Admin,
    Clinician,
    Billing,
    Analyst,
}

impl From<UserRole> for UserRoleDto {
    fn from(role: UserRole) -> Self {
        match role {
            UserRole::Admin => Self::Admin,
            UserRole::Clinician => Self::Clinician,
            UserRole::Billing => Self::Billing,
            UserRole::Analyst => Self::Analyst,
        }
    }
}

/// The holder of a token that verified.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValidateResponse {
    /// Always `true`: an invalid token is a 401 problem.
    valid: bool,
    user_id: Uuid,
    email: String,
    role: UserRoleDto,
}

impl From<&Principal> for ValidateResponse {
    fn from(principal: &Principal) -> Self {
        Self {
            valid: true,
            user_id: principal.user_id,
            email: principal.email.clone(),
            role: principal.role.into(),
        }
    }
}

/// The account behind the caller's token.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CurrentUser)]
pub(crate) struct MeResponse {
    id: Uuid,
    email: String,
    role: UserRoleDto,
    /// Whether the account is disabled (its tokens then stop working within seconds).
    disabled: bool,
}

impl From<UserInfo> for MeResponse {
    fn from(user: UserInfo) -> Self {
        Self {
            id: user.id,
            email: user.email,
            role: user.role.into(),
            disabled: user.disabled,
        }
    }
}

// The body of `POST` and of `PUT` (which ignores `registeredDate`); its schema is the `POST`
// one, [`PatientUpdateSchema`] describes the `PUT` one. Lengths are `ward_bus::patients`'s
// (`NAME_MAX_CHARS` ...), which a docs test checks against the schema.
/// A patient to register. Dates are `yyyy-MM-dd`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PatientInput)]
pub(crate) struct PatientBody {
    #[schema(value_type = String, max_length = 100, pattern = r"\S", example = "John Doe")]
    name: Option<Value>,
    #[schema(
        value_type = String,
        format = Email,
        max_length = 254,
        example = "john.doe@example.com"
    )]
    email: Option<Value>,
    /// May span lines.
    #[schema(
        value_type = String,
        max_length = 500,
        pattern = r"\S",
        example = "123 Main St, Springfield"
    )]
    address: Option<Value>,
    #[schema(value_type = String, format = Date, example = "1985-06-15")]
    date_of_birth: Option<Value>,
    #[schema(value_type = String, format = Date, example = "2024-01-10")]
    registered_date: Option<Value>,
    /// Further identifiers (not the MRN, which Ward assigns); none when absent.
    #[schema(value_type = Option<Vec<IdentifierDto>>, max_items = 20)]
    identifiers: Option<Value>,
    /// Any other member: a 400 naming it (`id` is allowed on `PUT` when it matches the path).
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl PatientBody {
    pub(crate) fn into_new_patient(self) -> WardResult<NewPatient> {
        let (input, type_errors) = self.into_input();
        with_type_errors(NewPatient::parse(input), type_errors)
    }

    /// Whether the body names `mrn`, which must then be checked against the stored one.
    pub(crate) fn names_mrn(&self) -> bool {
        self.unknown.contains_key("mrn")
    }

    /// A `PUT` body may carry the record's own `id` (a client that GETs, edits and PUTs the
    /// document back); it must then name the patient in the path. Its `mrn` likewise must be
    /// the stored one (`current_mrn_opt`; a body without `mrn` needs none). Its `version` is
    /// tolerated for the same reason and ignored: `If-Match` is what makes a write conditional.
    pub(crate) fn into_changes(
        self,
        path_id: uuid::Uuid,
        current_mrn_opt: Option<&str>,
    ) -> WardResult<PatientChanges> {
        self.into_changes_with(path_id, current_mrn_opt, false)
    }

    /// [`Self::into_changes`], with `contact_optional` letting the email and address be absent
    /// (a merge patch of a FHIR-registered patient who never had them).
    pub(crate) fn into_changes_with(
        mut self,
        path_id: uuid::Uuid,
        current_mrn_opt: Option<&str>,
        contact_optional: bool,
    ) -> WardResult<PatientChanges> {
        let id_opt = self.unknown.remove("id");
        let version_opt = self.unknown.remove("version");
        let mrn_opt = self.unknown.remove("mrn");
        let (mut input, mut type_errors) = self.into_input();
        input.contact_optional = contact_optional;
        if let Some(version) = version_opt {
            let is_version = match version.as_u64() {
                Some(number) => (1..=u64::from(u32::MAX)).contains(&number),
                None => version.is_null(),
            };
            if !is_version {
                type_errors.push(field_error("version", "version must be a positive integer"));
            }
        }
        if let Some(id) = id_opt {
            let matches_path = id
                .as_str()
                .and_then(|raw| uuid::Uuid::parse_str(raw).ok())
                .is_some_and(|body_id| body_id == path_id);
            if !matches_path {
                type_errors.push(field_error("id", "id must match the patient in the path"));
            }
        }
        if let Some(mrn) = mrn_opt {
            let is_current = match (mrn.as_str(), current_mrn_opt) {
                (Some(sent), Some(current)) => sent == current,
                _ => false,
            };
            if !is_current {
                type_errors.push(field_error("mrn", "mrn cannot be changed"));
            }
        }
        with_type_errors(PatientChanges::parse(input), type_errors)
    }

    fn into_input(self) -> (PatientInput, Vec<FieldError>) {
        let mut type_errors = Vec::new();
        let input = PatientInput {
            name: text_field(self.name, "name", &mut type_errors),
            email: text_field(self.email, "email", &mut type_errors),
            address: text_field(self.address, "address", &mut type_errors),
            date_of_birth: text_field(self.date_of_birth, "dateOfBirth", &mut type_errors),
            registered_date: text_field(self.registered_date, "registeredDate", &mut type_errors),
            identifiers: identifiers_field(self.identifiers, &mut type_errors),
            // The reference's rules: both required. The FHIR extras are not REST's to change.
            contact_optional: false,
            fhir_extras: None,
        };
        unknown_fields(&self.unknown, &mut type_errors);
        (input, type_errors)
    }
}

// Describes the `PUT /api/patients/{id}` body that [`PatientBody::into_changes`] reads; never
// built (the `#[allow]`). Kept beside `PatientBody` so the two change together.
/// The full new state of a patient. Dates are `yyyy-MM-dd`.
#[derive(ToSchema)]
#[schema(as = PatientUpdate, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct PatientUpdateSchema {
    /// The record's own id, as a `GET` answers it: a client may send the document back with it,
    /// and it must then be the id in the path.
    #[schema(read_only, required = false)]
    id: Uuid,
    /// The version a `GET` answered, tolerated so the document can be sent back; ignored (send
    /// `If-Match` to make the write conditional on it).
    #[schema(read_only, required = false, minimum = 1)]
    version: u32,
    /// The medical record number a `GET` answered, tolerated so the document can be sent
    /// back; it never changes, so another value is a 400.
    #[schema(read_only, required = false, example = "MRN-00000042")]
    mrn: String,
    #[schema(max_length = 100, pattern = r"\S", example = "John Doe")]
    name: String,
    #[schema(format = Email, max_length = 254, example = "john.doe@example.com")]
    email: String,
    /// May span lines.
    #[schema(
        max_length = 500,
        pattern = r"\S",
        example = "123 Main St, Springfield"
    )]
    address: String,
    #[schema(example = "1985-06-15")]
    date_of_birth: NaiveDate,
    /// Ignored: the registration date never changes. A value sent must still be a date.
    #[schema(example = "2024-01-10")]
    registered_date: Option<NaiveDate>,
    /// The full new list of further identifiers; absent keeps the stored ones.
    #[schema(required = false, max_items = 20)]
    identifiers: Vec<IdentifierDto>,
}

/// A stored patient.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Patient)]
pub(crate) struct PatientResponse {
    id: Uuid,
    #[schema(example = "John Doe")]
    name: String,
    /// `null` only for a patient registered or replaced through FHIR without one (FHIR does
    /// not require it; this API does).
    #[schema(required = true, example = "john.doe@example.com")]
    email: Option<String>,
    /// `null` as for `email`.
    #[schema(required = true, example = "123 Main St, Springfield")]
    address: Option<String>,
    date_of_birth: NaiveDate,
    registered_date: NaiveDate,
    /// 1 when registered, plus one per change; the `ETag` header carries it as `W/"<version>"`.
    #[schema(minimum = 1, example = 1)]
    version: u32,
    /// The medical record number, assigned at registration; it never changes. Search for it
    /// with `GET /api/patients?identifier=`.
    #[schema(example = "MRN-00000042")]
    mrn: String,
    /// Further identifiers, sorted by system then value; search with
    /// `GET /api/patients?identifier=system|value`.
    identifiers: Vec<IdentifierDto>,
    /// Present once this record was merged into another (a duplicate): that record's id.
    /// A merged record can be read but not changed, and searches skip it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    merged_into: Option<Uuid>,
}

impl From<Patient> for PatientResponse {
    fn from(patient: Patient) -> Self {
        Self {
            id: patient.id,
            name: patient.name,
            email: patient.email,
            address: patient.address,
            date_of_birth: patient.date_of_birth,
            registered_date: patient.registered_date,
            version: patient.version,
            mrn: patient.mrn,
            identifiers: patient
                .identifiers
                .into_iter()
                .map(IdentifierDto::from)
                .collect(),
            merged_into: patient.merged_into_opt,
        }
    }
}

/// One page of patients, in the search's order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PatientPage)]
pub(crate) struct PatientPageResponse {
    items: Vec<PatientResponse>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
    /// The number of all matches; present only with `total=accurate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, minimum = 0)]
    total: Option<u64>,
}

impl From<PatientPage> for PatientPageResponse {
    fn from(page: PatientPage) -> Self {
        let mut items = Vec::with_capacity(page.items.len());
        for patient in page.items {
            items.push(PatientResponse::from(patient));
        }
        Self {
            items,
            next_cursor: page.next_cursor_opt,
            total: page.total_opt,
        }
    }
}

/// `GET /api/audit` query. Kept as text so a bad value is a 400 naming the parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditQueryParams {
    /// Only events that touched this patient.
    #[param(value_type = Option<uuid::Uuid>)]
    patient_id: Option<String>,
    /// Only events by this actor: a user id, `system:<purpose>` or `anonymous`.
    actor: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<String>,
    /// Only events at or before this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The `nextCursor` of the previous page; absent for the first page.
    cursor: Option<String>,
}

impl AuditQueryParams {
    pub(crate) fn into_audit_query(self) -> WardResult<AuditQuery> {
        let mut type_errors = Vec::new();
        let limit_text_opt = self.limit.filter(|limit| !limit.trim().is_empty());
        let mut limit_opt = None;
        if let Some(limit_text) = limit_text_opt {
            match limit_text.trim().parse::<i64>() {
                Ok(limit) => limit_opt = Some(limit),
                Err(_) => type_errors.push(field_error("limit", "limit must be an integer")),
            }
        }
        let query = AuditQuery::parse(
            self.patient_id.as_deref(),
            self.actor.as_deref(),
            self.from.as_deref(),
            self.to.as_deref(),
            limit_opt,
            self.cursor.as_deref(),
        );
        with_type_errors(query, type_errors)
    }
}

/// One recorded access to patient data.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEvent)]
pub(crate) struct AuditEventResponse {
    /// When it happened (RFC 3339).
    at: DateTime<Utc>,
    /// A user id, `system:<purpose>` or `anonymous`.
    actor: String,
    /// One of read, search, create, update, delete, export.
    #[schema(example = "read")]
    action: String,
    /// The patients touched (for a search, those returned).
    patient_ids: Vec<Uuid>,
    /// `allowed` or `denied`.
    #[schema(example = "allowed")]
    outcome: String,
    request_id: String,
    /// The client's IP address, when known.
    client_addr: Option<String>,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(event: AuditEvent) -> Self {
        Self {
            at: event.at,
            actor: event.actor,
            action: event.action,
            patient_ids: event.patient_ids,
            outcome: event.outcome,
            request_id: event.request_id,
            client_addr: event.client_addr_opt,
        }
    }
}

/// One page of the audit trail, ordered by event id (so by time recorded).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditPage)]
pub(crate) struct AuditPageResponse {
    items: Vec<AuditEventResponse>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

impl From<AuditPage> for AuditPageResponse {
    fn from(page: AuditPage) -> Self {
        let mut items = Vec::with_capacity(page.items.len());
        for event in page.items {
            items.push(AuditEventResponse::from(event));
        }
        Self {
            items,
            next_cursor: page.next_cursor_opt,
        }
    }
}

/// `/livez`: the process runs.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Liveness)]
pub(crate) struct LivenessResponse {
    #[schema(example = "live")]
    status: &'static str,
}

impl LivenessResponse {
    pub(crate) fn live() -> Self {
        Self { status: "live" }
    }
}

/// `/readyz`: whether every component this process depends on is ready.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Readiness)]
pub(crate) struct ReadinessResponse {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    status: &'static str,
    components: Vec<ComponentReadiness>,
}

/// One component's readiness.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ComponentReadiness {
    #[schema(example = "peer:billing")]
    name: String,
    ready: bool,
    /// What a component that is not ready waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_for: Option<String>,
}

impl From<HealthReport> for ReadinessResponse {
    fn from(report: HealthReport) -> Self {
        let mut components = Vec::with_capacity(report.components.len());
        for (name, state) in report.components {
            let waiting_for = match state {
                ComponentState::Ready => None,
                ComponentState::NotReady(reason) => Some(reason),
            };
            components.push(ComponentReadiness {
                name,
                ready: waiting_for.is_none(),
                waiting_for,
            });
        }
        Self {
            status: if report.ready { "ready" } else { "not_ready" },
            components,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use ward_core::WardError;

    use super::*;

    fn fields(error: &WardError) -> Vec<(&str, &str)> {
        error
            .field_errors()
            .iter()
            .map(|error| (error.field.as_str(), error.message.as_str()))
            .collect()
    }

    fn patient_body(value: Value) -> PatientBody {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_complete_body_becomes_a_new_patient() {
        let body = patient_body(json!({
            "name": "John Doe",
            "email": "john.doe@example.com",
            "address": "123 Main St, Springfield",
            "dateOfBirth": "1985-06-15",
            "registeredDate": "2024-01-10"
        }));
        let patient = body.into_new_patient().unwrap();
        assert_eq!(patient.name, "John Doe");
    }

    #[test]
    fn unknown_fields_are_named_after_the_other_failures() {
        let body = patient_body(json!({
            "name": "John Doe",
            "email": "nope",
            "address": "123 Main St",
            "dateOfBirth": "1985-06-15",
            "registeredDate": "2024-01-10",
            "id": "0190c5b2-7d4e-7cc1-9a51-3f0a8c2d9e11",
            "isAdmin": true
        }));
        let error = body.into_new_patient().unwrap_err();
        assert_eq!(
            fields(&error),
            vec![
                ("email", "Email should be valid"),
                ("id", "unknown field"),
                ("isAdmin", "unknown field"),
            ]
        );
        let login: LoginBody =
            serde_json::from_value(json!({"email": "a@b.c", "password": "x", "role": "admin"}))
                .unwrap();
        let error = login.into_credentials().unwrap_err();
        assert_eq!(fields(&error), vec![("role", "unknown field")]);
    }

    #[test]
    fn wrong_types_are_named_in_field_order_with_the_other_failures() {
        let body = patient_body(json!({
            "name": 5,
            "email": "not-an-email",
            "address": ["x"],
            "dateOfBirth": "1985-06-15"
        }));
        let error = body.into_new_patient().unwrap_err();
        assert_eq!(
            fields(&error),
            vec![
                ("name", "name must be a string"),
                ("email", "Email should be valid"),
                ("address", "address must be a string"),
                ("registeredDate", "Registered date is required"),
            ]
        );
        assert!(error.to_string().starts_with("name must be a string; "));
    }

    #[test]
    fn a_wrongly_typed_registered_date_fails_an_update_too() {
        let body = patient_body(json!({
            "name": "John Doe",
            "email": "john.doe@example.com",
            "address": "123 Main St",
            "dateOfBirth": "1985-06-15",
            "registeredDate": 20240110
        }));
        let error = body.into_changes(uuid::Uuid::nil(), None).unwrap_err();
        assert_eq!(
            fields(&error),
            vec![("registeredDate", "registeredDate must be a string")]
        );
    }

    #[test]
    fn a_put_body_may_carry_a_version_which_must_be_one() {
        let mut body = json!({
            "name": "John Doe",
            "email": "john.doe@example.com",
            "address": "123 Main St",
            "dateOfBirth": "1985-06-15",
            "version": 3
        });
        assert!(
            patient_body(body.clone())
                .into_changes(Uuid::nil(), None)
                .is_ok()
        );
        body["version"] = json!("3");
        let error = patient_body(body)
            .into_changes(Uuid::nil(), None)
            .unwrap_err();
        assert_eq!(
            fields(&error),
            vec![("version", "version must be a positive integer")]
        );
    }

    #[test]
    fn a_put_body_may_carry_the_stored_mrn_but_no_other() {
        let mut body = json!({
            "name": "John Doe",
            "email": "john.doe@example.com",
            "address": "123 Main St",
            "dateOfBirth": "1985-06-15",
            "mrn": "MRN-00000042"
        });
        let current = Some("MRN-00000042");
        assert!(
            patient_body(body.clone())
                .into_changes(Uuid::nil(), current)
                .is_ok()
        );
        body["mrn"] = json!("MRN-00000043");
        let error = patient_body(body.clone())
            .into_changes(Uuid::nil(), current)
            .unwrap_err();
        assert_eq!(fields(&error), vec![("mrn", "mrn cannot be changed")]);
        body["mrn"] = json!(42);
        assert!(
            patient_body(body)
                .into_changes(Uuid::nil(), current)
                .is_err()
        );
    }

    #[test]
    fn null_is_absent() {
        let error = patient_body(json!({"name": null}))
            .into_new_patient()
            .unwrap_err();
        assert_eq!(fields(&error)[0], ("name", "Name is required"));
    }

    #[test]
    fn login_needs_both_fields_as_strings() {
        let body: LoginBody = serde_json::from_value(json!({"email": 1})).unwrap();
        let error = body.into_credentials().unwrap_err();
        assert_eq!(
            fields(&error),
            vec![
                ("email", "email must be a string"),
                ("password", "password is required")
            ]
        );
    }

    #[test]
    fn responses_use_the_reference_field_names() {
        let patient = Patient {
            id: Uuid::nil(),
            name: "John Doe".into(),
            email: Some("john.doe@example.com".into()),
            address: Some("123 Main St".into()),
            date_of_birth: NaiveDate::from_ymd_opt(1985, 6, 15).unwrap(),
            registered_date: NaiveDate::from_ymd_opt(2024, 1, 10).unwrap(),
            version: 2,
            mrn: "MRN-00000002".into(),
            identifiers: Vec::new(),
            merged_into_opt: None,
            fhir_extras: ward_bus::patients::FhirExtras::default(),
        };
        let page = PatientPage {
            items: vec![patient],
            next_cursor_opt: None,
            total_opt: None,
        };
        let json = serde_json::to_value(PatientPageResponse::from(page)).unwrap();
        assert_eq!(json["nextCursor"], Value::Null);
        assert_eq!(json["items"][0]["dateOfBirth"], "1985-06-15");
        assert_eq!(json["items"][0]["registeredDate"], "2024-01-10");
        assert_eq!(json["items"][0]["version"], 2);
        assert_eq!(json["items"][0]["mrn"], "MRN-00000002");
    }
}

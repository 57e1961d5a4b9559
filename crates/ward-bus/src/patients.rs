//! The patients module's contract and its parsed value types.
//!
//! Parse, don't validate: the gateway (JSON) and the gRPC server (protobuf) turn raw input into
//! [`NewPatient`] or [`PatientChanges`]; the trait takes only those, so a module never sees an
//! unchecked field. Every failing field is reported at once, with the reference platform's messages.

mod bulk;
mod fhir_extras;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use ward_core::{CallerContext, FieldError, WardError, WardResult};

mod identifier;

pub use self::bulk::{
    DUPLICATE_EMAIL_IN_BATCH_MESSAGE, DUPLICATE_ID_IN_BATCH_MESSAGE, IMPORT_BATCH_MAX,
    ImportOutcome, num_created,
};
pub use self::fhir_extras::{FHIR_EXTRAS_MAX_BYTES, FhirExtras};
pub use self::identifier::{
    IDENTIFIER_SYSTEM_MAX_CHARS, IDENTIFIER_VALUE_MAX_CHARS, IDENTIFIERS_MAX, IdentifierFilter,
    IdentifierInput, MRN_SYSTEM, PatientIdentifier,
};

pub type PatientsClient = Arc<dyn PatientsApi>;

pub const NAME_MAX_CHARS: usize = 100;
pub const EMAIL_MAX_CHARS: usize = 254;
pub const ADDRESS_MAX_CHARS: usize = 500;
pub const PAGE_DEFAULT: u32 = 50;
pub const PAGE_MAX: u32 = 500;
/// The longest `identifier` a search accepts: `system|value`.
pub const IDENTIFIER_MAX_CHARS: usize =
    IDENTIFIER_SYSTEM_MAX_CHARS + 1 + IDENTIFIER_VALUE_MAX_CHARS;
pub const DATE_FORMAT: &str = "%Y-%m-%d";

/// A stored patient record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    pub id: Uuid,
    pub name: String,
    /// `None` only for a patient registered or replaced through FHIR without one; the REST API
    /// requires it.
    pub email: Option<String>,
    /// `None` as for `email`.
    pub address: Option<String>,
    pub date_of_birth: NaiveDate,
    pub registered_date: NaiveDate,
    /// 1 when registered, plus one per change; the HTTP `ETag` and `If-Match` carry it.
    pub version: u32,
    /// The medical record number, assigned at registration (`MRN-00000042`); never changes.
    pub mrn: String,
    /// Further identifiers, sorted by system then value; each belongs to this patient only.
    pub identifiers: Vec<PatientIdentifier>,
    /// Set once this record was merged into another (a duplicate folded into the record
    /// that stays): the target's id. A merged record can be read but not changed, and searches
    /// skip it.
    pub merged_into_opt: Option<Uuid>,
    /// The FHIR elements Ward does not model, kept verbatim (empty for a REST-only patient).
    pub fhir_extras: FhirExtras,
}

/// One entry of a patient's history: the record as it stood after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientVersion {
    /// Counted from 1 per patient; a delete records one more.
    pub version: u32,
    pub at: DateTime<Utc>,
    /// A user id, `system:<purpose>` or `anonymous`.
    pub actor: String,
    /// One of [`HISTORY_ACTIONS`].
    pub action: String,
    /// The record after the change (for a delete, as it was when deleted); its `version` is
    /// this entry's.
    pub patient: Patient,
}

/// The history actions, as stored and answered. A merge records `merge` on the target and
/// `merged` on the source; an unmerge `unmerge` and `unmerged`.
pub const HISTORY_ACTIONS: [&str; 8] = [
    "create", "update", "delete", "restore", "merge", "merged", "unmerge", "unmerged",
];

/// The system under which a merged source's medical record number lives on among the target's
/// identifiers, so a search for the old number finds the record that stayed.
pub const MERGED_MRN_SYSTEM: &str = "urn:ward:merged-mrn";

/// The refusal of a change to a merged record (HTTP 409).
pub fn patient_merged(target: Uuid) -> WardError {
    WardError::AlreadyExists(format!(
        "Patient was merged into {target}; change that record instead"
    ))
}

/// The answer for any read or change of a soft-deleted patient (HTTP 410).
pub const PATIENT_GONE_MESSAGE: &str = "Patient was deleted; an admin can restore it";

/// The refusal of a write whose expected version is not the current one.
pub fn patient_changed(current_version: u32) -> WardError {
    WardError::PreconditionFailed(format!(
        "the patient has changed (version {current_version} is current)"
    ))
}

/// Patient fields as they arrive, before any check. `None` means absent.
#[derive(Debug, Clone, Default)]
pub struct PatientInput {
    pub name: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub date_of_birth: Option<String>,
    pub registered_date: Option<String>,
    /// Absent: none on a create, unchanged on an update.
    pub identifiers: Option<Vec<IdentifierInput>>,
    /// Whether `email` and `address` may be absent: FHIR's `Patient` need not carry either,
    /// while the REST API keeps the reference's rule that both are required.
    pub contact_optional: bool,
    /// The FHIR elements Ward does not model, as a JSON object ([`FhirExtras::parse`]).
    /// Absent: none on a create, unchanged on an update (a REST client does not know them and
    /// must not erase them).
    pub fhir_extras: Option<String>,
}

/// A valid new patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatient {
    pub name: String,
    pub email: Option<String>,
    pub address: Option<String>,
    pub date_of_birth: NaiveDate,
    pub registered_date: NaiveDate,
    /// Further identifiers, sorted; none may belong to another patient.
    pub identifiers: Vec<PatientIdentifier>,
    pub fhir_extras: FhirExtras,
}

/// The longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 255;
/// How long a create remembers its `Idempotency-Key`; an older key is free again.
pub const IDEMPOTENCY_KEY_TTL_SECS: i64 = 24 * 60 * 60;
/// The 422 detail when a key comes back with another request.
pub const IDEMPOTENCY_KEY_REUSED_MESSAGE: &str =
    "this Idempotency-Key was used with a different request";

/// A client's `Idempotency-Key`: 1 to 255 printable ASCII characters. A create retried with
/// the same key (by the same user, within a day) answers the first create's patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key; anything else is an `InvalidArgument` naming `Idempotency-Key`.
    pub fn parse(raw: &str) -> WardResult<Self> {
        let is_printable = raw
            .bytes()
            .all(|byte| byte == b' ' || byte.is_ascii_graphic());
        if raw.is_empty() || raw.len() > IDEMPOTENCY_KEY_MAX_CHARS || !is_printable {
            return Err(WardError::invalid_field(
                "Idempotency-Key",
                format!(
                    "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} printable ASCII characters"
                ),
            ));
        }
        Ok(Self(raw.to_string()))
    }
}

impl AsRef<str> for IdempotencyKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A valid full update; `registeredDate` is not changeable (as in the reference) and is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientChanges {
    pub name: String,
    pub email: Option<String>,
    pub address: Option<String>,
    pub date_of_birth: NaiveDate,
    /// The full new list of further identifiers; `None` keeps the current ones (clients that
    /// predate identifiers send none, and must not erase them).
    pub identifiers_opt: Option<Vec<PatientIdentifier>>,
    /// The new FHIR extras (empty: none); `None` keeps the current ones (a REST update).
    pub fhir_extras_opt: Option<FhirExtras>,
}

/// One page of a keyset-paginated list, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    /// Return patients whose id sorts after this one.
    pub after_opt: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientPage {
    pub items: Vec<Patient>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub next_cursor_opt: Option<String>,
    /// The number of all matches, when the search asked for it.
    pub total_opt: Option<u64>,
}

/// Filters for the audit trail query; every filter is optional and they combine with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events that touched this patient.
    pub patient_id_opt: Option<Uuid>,
    /// Only events by this actor (a user id, `system:<purpose>` or `anonymous`), matched exactly.
    pub actor_opt: Option<String>,
    /// Only events at or after this instant.
    pub from_opt: Option<DateTime<Utc>>,
    /// Only events at or before this instant.
    pub to_opt: Option<DateTime<Utc>>,
    /// Page size, 1..=500.
    pub limit: u32,
    /// Return events whose id sorts after this one (the previous page's cursor).
    pub after_opt: Option<Uuid>,
}

/// One recorded access to patient data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    /// A user id, `system:<purpose>` or `anonymous`.
    pub actor: String,
    /// One of `read`, `search`, `create`, `update`, `delete`, `export`.
    pub action: String,
    pub patient_ids: Vec<Uuid>,
    /// `allowed` or `denied`.
    pub outcome: String,
    pub request_id: String,
    pub client_addr_opt: Option<String>,
}

/// One page of the audit trail, ordered by event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub next_cursor_opt: Option<String>,
}

/// The audit actions, as stored and answered.
pub const AUDIT_ACTIONS: [&str; 6] = ["read", "search", "create", "update", "delete", "export"];

/// The fields create and update share, parsed together so every failure is collected.
struct RecordFields {
    name: Option<String>,
    /// `Some(None)`: absent and allowed to be (see [`PatientInput::contact_optional`]).
    email: Option<Option<String>>,
    address: Option<Option<String>>,
    date_of_birth: Option<NaiveDate>,
    identifiers_opt: Option<Vec<PatientIdentifier>>,
    fhir_extras_opt: Option<FhirExtras>,
}

impl RecordFields {
    fn parse(input: &mut PatientInput, errors: &mut Vec<FieldError>) -> Self {
        // In the reference's order, so every failure is reported in the order it lists them.
        let identifiers_opt = input
            .identifiers
            .take()
            .map(|inputs| identifier::parse_identifiers(inputs, errors));
        let name = parse_name(input.name.take(), errors);
        let email = parse_contact(input.email.take(), input.contact_optional, |raw_opt| {
            parse_email(raw_opt, errors)
        });
        let address = parse_contact(input.address.take(), input.contact_optional, |raw_opt| {
            parse_address(raw_opt, errors)
        });
        let date_of_birth = parse_date(
            input.date_of_birth.take(),
            "dateOfBirth",
            "Date of birth is required",
            errors,
        );
        let mut fhir_extras_opt = None;
        if let Some(raw) = input.fhir_extras.take() {
            match FhirExtras::parse(&raw) {
                Ok(extras) => fhir_extras_opt = Some(extras),
                Err(error) => errors.extend_from_slice(error.field_errors()),
            }
        }
        Self {
            name,
            email,
            address,
            date_of_birth,
            identifiers_opt,
            fhir_extras_opt,
        }
    }
}

/// Parses an email or address with `parse`; when `optional`, a blank or absent one is
/// `Some(None)` rather than a failure.
fn parse_contact(
    raw_opt: Option<String>,
    optional: bool,
    parse: impl FnOnce(Option<String>) -> Option<String>,
) -> Option<Option<String>> {
    if optional && required_text(raw_opt.clone()).is_none() {
        return Some(None);
    }
    parse(raw_opt).map(Some)
}

impl NewPatient {
    pub fn parse(mut input: PatientInput) -> WardResult<Self> {
        let mut errors = Vec::new();
        let fields = RecordFields::parse(&mut input, &mut errors);
        let registered_date = parse_date(
            input.registered_date,
            "registeredDate",
            "Registered date is required",
            &mut errors,
        );
        match (fields, registered_date) {
            (
                RecordFields {
                    name: Some(name),
                    email: Some(email),
                    address: Some(address),
                    date_of_birth: Some(date_of_birth),
                    identifiers_opt,
                    fhir_extras_opt,
                },
                Some(registered_date),
            ) if errors.is_empty() => Ok(NewPatient {
                name,
                email,
                address,
                date_of_birth,
                registered_date,
                identifiers: identifiers_opt.unwrap_or_default(),
                fhir_extras: fhir_extras_opt.unwrap_or_default(),
            }),
            _ => Err(validation_failed(errors)),
        }
    }
}

impl PatientChanges {
    pub fn parse(mut input: PatientInput) -> WardResult<Self> {
        let mut errors = Vec::new();
        let fields = RecordFields::parse(&mut input, &mut errors);
        // registeredDate is ignored on update, but a present, malformed one is still a client bug.
        if let Some(raw) = input.registered_date.filter(|raw| !raw.trim().is_empty()) {
            parse_date(Some(raw), "registeredDate", "", &mut errors);
        }
        match fields {
            RecordFields {
                name: Some(name),
                email: Some(email),
                address: Some(address),
                date_of_birth: Some(date_of_birth),
                identifiers_opt,
                fhir_extras_opt,
            } if errors.is_empty() => Ok(PatientChanges {
                name,
                email,
                address,
                date_of_birth,
                identifiers_opt,
                fhir_extras_opt,
            }),
            _ => Err(validation_failed(errors)),
        }
    }
}

impl PageRequest {
    /// `limit` defaults to 50 and must be 1..=500; `cursor` is an opaque value from a previous page.
    pub fn parse(limit_opt: Option<i64>, cursor_opt: Option<&str>) -> WardResult<Self> {
        let mut errors = Vec::new();
        let limit = match limit_opt {
            None => PAGE_DEFAULT,
            Some(limit) if (1..=i64::from(PAGE_MAX)).contains(&limit) => limit as u32,
            Some(_) => {
                errors.push(field_error(
                    "limit",
                    format!("limit must be between 1 and {PAGE_MAX}"),
                ));
                PAGE_DEFAULT
            }
        };
        let mut after_opt = None;
        if let Some(cursor) = cursor_opt.filter(|cursor| !cursor.is_empty()) {
            match Uuid::parse_str(cursor) {
                Ok(id) => after_opt = Some(id),
                Err(_) => errors.push(field_error(
                    "cursor",
                    "cursor is not one this server issued",
                )),
            }
        }
        if errors.is_empty() {
            Ok(PageRequest { limit, after_opt })
        } else {
            Err(validation_failed(errors))
        }
    }
}

impl AuditQuery {
    /// Parses raw query parameters: `patientId` and `cursor` are UUIDs, `from` and `to` RFC 3339
    /// instants, `limit` 1..=500 (default 50); a blank value counts as absent. Every bad field is
    /// reported at once, by name.
    pub fn parse(
        patient_id_opt: Option<&str>,
        actor_opt: Option<&str>,
        from_opt: Option<&str>,
        to_opt: Option<&str>,
        limit_opt: Option<i64>,
        cursor_opt: Option<&str>,
    ) -> WardResult<Self> {
        let mut errors = Vec::new();
        let page_result = PageRequest::parse(limit_opt, cursor_opt);
        let page_opt = match page_result {
            Ok(page) => Some(page),
            Err(error) => {
                errors.extend_from_slice(error.field_errors());
                None
            }
        };
        let present = |raw_opt: Option<&str>| {
            raw_opt
                .map(str::trim)
                .filter(|raw| !raw.is_empty())
                .map(str::to_string)
        };
        let mut patient_id_parsed = None;
        if let Some(raw) = present(patient_id_opt) {
            match Uuid::parse_str(&raw) {
                Ok(id) => patient_id_parsed = Some(id),
                Err(_) => errors.push(field_error("patientId", "patientId must be a UUID")),
            }
        }
        let mut parse_instant = |raw_opt: Option<&str>, field: &str| {
            let raw = present(raw_opt)?;
            match DateTime::parse_from_rfc3339(&raw) {
                Ok(instant) => Some(instant.with_timezone(&Utc)),
                Err(_) => {
                    errors.push(field_error(
                        field,
                        format!("{field} must be an RFC 3339 date-time, e.g. 2024-06-01T00:00:00Z"),
                    ));
                    None
                }
            }
        };
        let from_parsed = parse_instant(from_opt, "from");
        let to_parsed = parse_instant(to_opt, "to");
        match page_opt {
            Some(page) if errors.is_empty() => Ok(AuditQuery {
                patient_id_opt: patient_id_parsed,
                actor_opt: present(actor_opt),
                from_opt: from_parsed,
                to_opt: to_parsed,
                limit: page.limit,
                after_opt: page.after_opt,
            }),
            _ => Err(validation_failed(errors)),
        }
    }
}

/// The orders a search can be sorted in. Every order breaks ties by id, so pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientSortField {
    /// By id, i.e. by registration time: the order of an unsorted list.
    Id,
    /// By the name, compared folded (lowercase, without accents).
    Name,
    BirthDate,
    RegisteredDate,
}

/// A sort order: a field, ascending unless `descending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatientSort {
    pub field: PatientSortField,
    pub descending: bool,
}

/// The `sort` values a search accepts (each also with a leading `-` for descending).
pub const SORT_FIELDS: [&str; 3] = ["name", "birthDate", "registeredDate"];

impl PatientSort {
    /// By id, ascending: the default.
    pub const BY_ID: PatientSort = PatientSort {
        field: PatientSortField::Id,
        descending: false,
    };

    /// Reads `name`, `birthDate` or `registeredDate`, optionally prefixed with `-`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (descending, name) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let field = match name {
            "name" => PatientSortField::Name,
            "birthDate" => PatientSortField::BirthDate,
            "registeredDate" => PatientSortField::RegisteredDate,
            _ => return None,
        };
        Some(Self { field, descending })
    }

    /// The `sort` parameter value; empty for the default order.
    pub fn as_param(&self) -> String {
        let name = match self.field {
            PatientSortField::Id => return String::new(),
            PatientSortField::Name => "name",
            PatientSortField::BirthDate => "birthDate",
            PatientSortField::RegisteredDate => "registeredDate",
        };
        if self.descending {
            format!("-{name}")
        } else {
            name.to_string()
        }
    }
}

/// How a `birthDate` bound compares (FHIR's prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateComparator {
    Eq,
    Ge,
    Le,
}

/// One `birthDate` condition, e.g. `ge1980-01-01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthDateBound {
    pub comparator: DateComparator,
    pub date: NaiveDate,
}

impl BirthDateBound {
    /// The parameter value, with its prefix (`eq` spelled out).
    pub fn as_param(&self) -> String {
        let prefix = match self.comparator {
            DateComparator::Eq => "eq",
            DateComparator::Ge => "ge",
            DateComparator::Le => "le",
        };
        format!("{prefix}{}", format_date(self.date))
    }
}

/// The sort key of the last patient on a page, where the next page starts after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// Sorted by id: the id alone is the key.
    None,
    /// The folded name (`name` sort).
    Text(String),
    /// A date (`birthDate` and `registeredDate` sorts).
    Date(NaiveDate),
}

/// Where the next page of a search starts: after (key, id) in the search's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchAfter {
    pub key: SortKey,
    pub id: Uuid,
}

/// Search parameters as they arrive (HTTP query or protobuf), before any check. Blank values
/// count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientSearchInput {
    pub name_opt: Option<String>,
    pub email_opt: Option<String>,
    /// Each `birthDate` value, in order.
    pub birth_dates: Vec<String>,
    /// FHIR's token: `value` (the medical record number or any identifier's value),
    /// `urn:ward:mrn|value` or `system|value`; see [`IdentifierFilter`].
    pub identifier_opt: Option<String>,
    pub sort_opt: Option<String>,
    pub limit_opt: Option<i64>,
    pub cursor_opt: Option<String>,
    /// `accurate` asks for the count of all matches; `none` (or absent) does not.
    pub total_opt: Option<String>,
}

/// A valid patient search: filters (combined with AND), an order and a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSearch {
    /// The words of `name`, each a prefix of some word of a matching name (compared folded:
    /// lowercase, without accents). Empty: no name filter.
    pub name_words: Vec<String>,
    /// Matches the email exactly, ignoring case ([`normalized_email`]).
    pub email_opt: Option<String>,
    pub birth_dates: Vec<BirthDateBound>,
    /// Matches an identifier exactly; read it with [`IdentifierFilter::of`].
    pub identifier_opt: Option<String>,
    pub sort: PatientSort,
    /// Page size, 1..=500.
    pub limit: u32,
    /// Set from a cursor: the page starts after this key.
    pub after_opt: Option<SearchAfter>,
    /// Count every match into [`PatientPage::total_opt`].
    pub with_total: bool,
}

const CURSOR_NOT_ISSUED: &str = "cursor is not one this server issued";
const CURSOR_SEPARATOR: char = '~';

impl PatientSearch {
    /// Every patient, by id, a default page: what an unfiltered list answers.
    pub fn everyone(limit: u32) -> Self {
        Self {
            name_words: Vec::new(),
            email_opt: None,
            birth_dates: Vec::new(),
            identifier_opt: None,
            sort: PatientSort::BY_ID,
            limit,
            after_opt: None,
            with_total: false,
        }
    }

    /// Parses raw search parameters, reporting every bad one by name. A cursor must come from
    /// a search with the same filters and sort.
    pub fn parse(input: PatientSearchInput) -> WardResult<Self> {
        let mut errors = Vec::new();
        let limit = match input.limit_opt {
            None => PAGE_DEFAULT,
            Some(limit) if (1..=i64::from(PAGE_MAX)).contains(&limit) => limit as u32,
            Some(_) => {
                errors.push(field_error(
                    "limit",
                    format!("limit must be between 1 and {PAGE_MAX}"),
                ));
                PAGE_DEFAULT
            }
        };
        let name_words = parse_name_words(input.name_opt, &mut errors);
        let email_opt = parse_email_filter(input.email_opt, &mut errors);
        let mut birth_dates = Vec::new();
        for raw in input.birth_dates {
            if let Some(bound) = parse_birth_date_bound(&raw, &mut errors) {
                birth_dates.push(bound);
            }
        }
        let identifier_opt = parse_identifier(input.identifier_opt, &mut errors);
        let sort = match required_text(input.sort_opt) {
            None => PatientSort::BY_ID,
            Some(raw) => match PatientSort::parse(&raw) {
                Some(sort) => sort,
                None => {
                    errors.push(field_error(
                        "sort",
                        "sort must be one of name, birthDate, registeredDate, each optionally \
                         prefixed with - for descending",
                    ));
                    PatientSort::BY_ID
                }
            },
        };
        let with_total = match required_text(input.total_opt).as_deref() {
            None | Some("none") => false,
            Some("accurate") => true,
            Some(_) => {
                errors.push(field_error("total", "total must be accurate or none"));
                false
            }
        };
        let mut search = PatientSearch {
            name_words,
            email_opt,
            birth_dates,
            identifier_opt,
            sort,
            limit,
            after_opt: None,
            with_total,
        };
        if let Some(cursor) = required_text(input.cursor_opt) {
            // A cursor is checked against the rest only once the rest is known to be valid.
            if errors.is_empty() {
                match search.decode_cursor(&cursor) {
                    Ok(after) => search.after_opt = Some(after),
                    Err(message) => errors.push(field_error("cursor", message)),
                }
            }
        }
        if errors.is_empty() {
            Ok(search)
        } else {
            Err(validation_failed(errors))
        }
    }

    /// Returns the raw parameters this search was parsed from (in canonical form), so it can
    /// cross the wire and be parsed again on the other side.
    pub fn to_input(&self) -> PatientSearchInput {
        let sort = self.sort.as_param();
        PatientSearchInput {
            name_opt: (!self.name_words.is_empty()).then(|| self.name_words.join(" ")),
            email_opt: self.email_opt.clone(),
            birth_dates: self
                .birth_dates
                .iter()
                .map(BirthDateBound::as_param)
                .collect(),
            identifier_opt: self.identifier_opt.clone(),
            sort_opt: (!sort.is_empty()).then_some(sort),
            limit_opt: Some(i64::from(self.limit)),
            cursor_opt: self
                .after_opt
                .as_ref()
                .map(|after| self.cursor_after(&after.key, after.id)),
            total_opt: self.with_total.then(|| "accurate".to_string()),
        }
    }

    /// Encodes where the page after a patient with this sort key and id starts. The cursor
    /// carries the sort and a fingerprint of the filters, so it is refused by another search.
    pub fn cursor_after(&self, key: &SortKey, id: Uuid) -> String {
        let key_text = match key {
            SortKey::None => String::new(),
            SortKey::Text(text) => hex_encode(text.as_bytes()),
            SortKey::Date(date) => format_date(*date),
        };
        let sort = match self.sort.as_param() {
            sort if sort.is_empty() => "id".to_string(),
            sort => sort,
        };
        format!(
            "{sort}{CURSOR_SEPARATOR}{:016x}{CURSOR_SEPARATOR}{key_text}{CURSOR_SEPARATOR}{}",
            self.filter_fingerprint(),
            id.simple()
        )
    }

    /// A stable hash (FNV-1a) of the filters: a cursor must come from the same filters.
    fn filter_fingerprint(&self) -> u64 {
        let mut canonical = String::new();
        canonical.push_str(&self.name_words.join(" ").to_lowercase());
        canonical.push('\u{1f}');
        canonical.push_str(self.email_opt.as_deref().unwrap_or(""));
        for bound in &self.birth_dates {
            canonical.push('\u{1f}');
            canonical.push_str(&bound.as_param());
        }
        canonical.push('\u{1e}');
        canonical.push_str(self.identifier_opt.as_deref().unwrap_or(""));
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in canonical.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    fn decode_cursor(&self, cursor: &str) -> Result<SearchAfter, &'static str> {
        let is_unfiltered = self.name_words.is_empty()
            && self.email_opt.is_none()
            && self.birth_dates.is_empty()
            && self.identifier_opt.is_none();
        // A bare id: the cursor of an unfiltered list before search existed.
        if let Ok(id) = Uuid::parse_str(cursor) {
            if is_unfiltered && self.sort == PatientSort::BY_ID {
                return Ok(SearchAfter {
                    key: SortKey::None,
                    id,
                });
            }
            return Err(CURSOR_OTHER_SEARCH);
        }
        let parts: Vec<&str> = cursor.split(CURSOR_SEPARATOR).collect();
        let [sort, fingerprint, key_text, id_text] = parts.as_slice() else {
            return Err(CURSOR_NOT_ISSUED);
        };
        let id = Uuid::parse_str(id_text).map_err(|_| CURSOR_NOT_ISSUED)?;
        let cursor_sort = match *sort {
            "id" => PatientSort::BY_ID,
            other => PatientSort::parse(other).ok_or(CURSOR_NOT_ISSUED)?,
        };
        let fingerprint = u64::from_str_radix(fingerprint, 16).map_err(|_| CURSOR_NOT_ISSUED)?;
        if cursor_sort != self.sort || fingerprint != self.filter_fingerprint() {
            return Err(CURSOR_OTHER_SEARCH);
        }
        let key = match self.sort.field {
            PatientSortField::Id if key_text.is_empty() => SortKey::None,
            PatientSortField::Id => return Err(CURSOR_NOT_ISSUED),
            PatientSortField::Name => {
                let bytes = hex_decode(key_text).ok_or(CURSOR_NOT_ISSUED)?;
                SortKey::Text(String::from_utf8(bytes).map_err(|_| CURSOR_NOT_ISSUED)?)
            }
            PatientSortField::BirthDate | PatientSortField::RegisteredDate => SortKey::Date(
                NaiveDate::parse_from_str(key_text, DATE_FORMAT).map_err(|_| CURSOR_NOT_ISSUED)?,
            ),
        };
        Ok(SearchAfter { key, id })
    }
}

const CURSOR_OTHER_SEARCH: &str =
    "cursor belongs to a search with other filters or another sort; start again without it";

fn hex_encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    let mut bytes = Vec::with_capacity(text.len() / 2);
    for index in (0..text.len()).step_by(2) {
        bytes.push(u8::from_str_radix(&text[index..index + 2], 16).ok()?);
    }
    Some(bytes)
}

/// Splits `name` into its words; a name filter needs a letter or digit to match anything.
fn parse_name_words(raw_opt: Option<String>, errors: &mut Vec<FieldError>) -> Vec<String> {
    let Some(name) = required_text(raw_opt) else {
        return Vec::new();
    };
    if !has_no_control_chars(&name, "name", errors) {
        return Vec::new();
    }
    if name.chars().count() > NAME_MAX_CHARS {
        errors.push(field_error(
            "name",
            format!("name must be at most {NAME_MAX_CHARS} characters"),
        ));
        return Vec::new();
    }
    if !name.chars().any(char::is_alphanumeric) {
        errors.push(field_error("name", "name must contain a letter or a digit"));
        return Vec::new();
    }
    name.split_whitespace().map(str::to_string).collect()
}

fn parse_email_filter(raw_opt: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let email = required_text(raw_opt)?;
    if !has_no_control_chars(&email, "email", errors) {
        return None;
    }
    if email.chars().count() > EMAIL_MAX_CHARS {
        errors.push(field_error(
            "email",
            format!("email must be at most {EMAIL_MAX_CHARS} characters"),
        ));
        return None;
    }
    Some(normalized_email(&email))
}

fn parse_identifier(raw_opt: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let identifier = required_text(raw_opt)?;
    if !has_no_control_chars(&identifier, "identifier", errors) {
        return None;
    }
    if identifier.chars().count() > IDENTIFIER_MAX_CHARS {
        errors.push(field_error(
            "identifier",
            format!("identifier must be at most {IDENTIFIER_MAX_CHARS} characters"),
        ));
        return None;
    }
    Some(identifier)
}

/// Reads `[eq|ge|le]yyyy-MM-dd`; no prefix means `eq`.
fn parse_birth_date_bound(raw: &str, errors: &mut Vec<FieldError>) -> Option<BirthDateBound> {
    let trimmed = raw.trim();
    let (comparator, date_text) = if let Some(rest) = trimmed.strip_prefix("eq") {
        (DateComparator::Eq, rest)
    } else if let Some(rest) = trimmed.strip_prefix("ge") {
        (DateComparator::Ge, rest)
    } else if let Some(rest) = trimmed.strip_prefix("le") {
        (DateComparator::Le, rest)
    } else {
        (DateComparator::Eq, trimmed)
    };
    let mut date_errors = Vec::new();
    let date_opt = parse_date(
        Some(date_text.to_string()),
        "birthDate",
        "",
        &mut date_errors,
    );
    match date_opt {
        Some(date) => Some(BirthDateBound { comparator, date }),
        None => {
            errors.push(field_error(
                "birthDate",
                "birthDate must be a date in yyyy-MM-dd format, optionally prefixed with eq, ge \
                 or le",
            ));
            None
        }
    }
}

/// Encodes the id a next page starts after.
pub fn cursor_after(id: Uuid) -> String {
    id.simple().to_string()
}

/// The key that makes emails unique ignoring case.
pub fn normalized_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub fn format_date(date: NaiveDate) -> String {
    date.format(DATE_FORMAT).to_string()
}

fn validation_failed(errors: Vec<FieldError>) -> WardError {
    let detail = errors
        .iter()
        .map(|error| error.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    WardError::invalid(detail, errors)
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn required_text(raw_opt: Option<String>) -> Option<String> {
    raw_opt
        .map(|raw| raw.trim().to_string())
        .filter(|text| !text.is_empty())
}

/// Rejects NUL and other control characters (Unicode `Cc`) inside a trimmed text: they corrupt
/// logs, CSV exports and C-string consumers, and no name or email needs one. Format characters
/// such as right-to-left marks or zero-width joiners are `Cf`, so names that need them pass.
fn has_no_control_chars(text: &str, field: &str, errors: &mut Vec<FieldError>) -> bool {
    has_only_allowed_chars(text, field, &[], errors)
}

/// Like [`has_no_control_chars`], but lets the characters in `allowed` through (line breaks in a
/// postal address).
fn has_only_allowed_chars(
    text: &str,
    field: &str,
    allowed: &[char],
    errors: &mut Vec<FieldError>,
) -> bool {
    if text
        .chars()
        .any(|c| c.is_control() && !allowed.contains(&c))
    {
        errors.push(field_error(
            field,
            format!("{field} must not contain control characters"),
        ));
        return false;
    }
    true
}

fn parse_name(raw_opt: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let Some(name) = required_text(raw_opt) else {
        errors.push(field_error("name", "Name is required"));
        return None;
    };
    if !has_no_control_chars(&name, "name", errors) {
        return None;
    }
    if name.chars().count() > NAME_MAX_CHARS {
        errors.push(field_error("name", "Name cannot exceed 100 characters"));
        return None;
    }
    Some(name)
}

fn parse_email(raw_opt: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let Some(email) = required_text(raw_opt) else {
        errors.push(field_error("email", "Email is required"));
        return None;
    };
    if !has_no_control_chars(&email, "email", errors) {
        return None;
    }
    let is_too_long = email.chars().count() > EMAIL_MAX_CHARS;
    // Plain addresses only: no display names ("Jo <jo@x>"), as a clinic's mail merge expects.
    let is_plain_address = !email.contains(['<', '>', ' ']);
    if is_too_long || !is_plain_address || !email_address::EmailAddress::is_valid(&email) {
        errors.push(field_error("email", "Email should be valid"));
        return None;
    }
    Some(email)
}

fn parse_address(raw_opt: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let Some(address) = required_text(raw_opt) else {
        errors.push(field_error("address", "Address is required"));
        return None;
    };
    // A postal address may span lines; stored with `\n` line ends.
    let address = address.replace("\r\n", "\n");
    if !has_only_allowed_chars(&address, "address", &['\n'], errors) {
        return None;
    }
    if address.chars().count() > ADDRESS_MAX_CHARS {
        errors.push(field_error(
            "address",
            "Address cannot exceed 500 characters",
        ));
        return None;
    }
    Some(address)
}

fn parse_date(
    raw_opt: Option<String>,
    field: &str,
    required_message: &str,
    errors: &mut Vec<FieldError>,
) -> Option<NaiveDate> {
    let Some(raw) = required_text(raw_opt) else {
        errors.push(field_error(field, required_message));
        return None;
    };
    // Exactly yyyy-MM-dd: chrono alone would also accept "2024-1-5".
    let is_iso_shape = raw.len() == 10 && raw.as_bytes()[4] == b'-' && raw.as_bytes()[7] == b'-';
    match NaiveDate::parse_from_str(&raw, DATE_FORMAT) {
        Ok(date) if is_iso_shape => Some(date),
        _ => {
            errors.push(field_error(
                field,
                format!("{field} must be a valid date in yyyy-MM-dd format"),
            ));
            None
        }
    }
}

#[async_trait]
pub trait PatientsApi: Send + Sync + 'static {
    /// Registers a patient and its `PatientRegistered` event in one transaction. Needs
    /// `patients:write`; an email taken ignoring case is `AlreadyExists`
    /// ("Email address already exists").
    ///
    /// With an [`IdempotencyKey`], the key is recorded with the create; a later call by the
    /// same caller with the same key and the same `patient` (within
    /// [`IDEMPOTENCY_KEY_TTL_SECS`]) creates nothing and returns that patient as it is now, and
    /// one with a different `patient` is `Unprocessable` ([`IDEMPOTENCY_KEY_REUSED_MESSAGE`]).
    async fn create_patient(
        &self,
        ctx: &CallerContext,
        patient: NewPatient,
        idempotency_key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Patient>;

    /// Needs `patients:read`; `NotFound` ("Patient not found"), `Gone`
    /// ([`PATIENT_GONE_MESSAGE`]) once soft deleted.
    async fn get_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<Patient>;

    /// Needs `patients:read`; soft-deleted patients are left out.
    async fn list_patients(
        &self,
        ctx: &CallerContext,
        page: PageRequest,
    ) -> WardResult<PatientPage>;

    /// The patients matching every filter of `search`, one page in its order; soft-deleted
    /// patients are left out. Needs `patients:read` and is audited as a `search` with the ids
    /// of the page.
    async fn search_patients(
        &self,
        ctx: &CallerContext,
        search: PatientSearch,
    ) -> WardResult<PatientPage>;

    /// Replaces the patient's fields, adds one to its version and writes `PatientUpdated` and a
    /// history entry. Needs `patients:write`. With `expected_version_opt`, the write happens only
    /// if that is still the current version, checked atomically with the write; otherwise it is
    /// `PreconditionFailed` ([`patient_changed`]) and nothing is written. Without it, the last
    /// write wins. `Gone` for a soft-deleted patient.
    async fn update_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        changes: PatientChanges,
        expected_version_opt: Option<u32>,
    ) -> WardResult<Patient>;

    /// Soft deletes the patient: the record stays, marked deleted (later reads and changes
    /// are `Gone`, searches skip it, its email stays taken), and `PatientDeleted` and a history
    /// entry (`delete`, one version more) are written. Needs `patients:write`.
    /// `expected_version_opt` as for [`PatientsApi::update_patient`]; `Gone` if already deleted.
    async fn delete_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        expected_version_opt: Option<u32>,
    ) -> WardResult<()>;

    /// Brings a soft-deleted patient back: one version more, a `restore` history entry and
    /// `PatientRestored`; audited as an `update`. Needs `patients:write`.
    /// `expected_version_opt` as for [`PatientsApi::update_patient`]; `AlreadyExists` (409) for
    /// a patient that is not deleted, `NotFound` for an unknown one.
    async fn restore_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        expected_version_opt: Option<u32>,
    ) -> WardResult<Patient>;

    /// Erases the patient for good, deleted or not: its record, name index and history (they
    /// hold personal data). The audit trail stays (ids only). Writes `PatientPurged` and an
    /// audit `delete`. Needs `users:admin`; `NotFound` for an unknown patient.
    async fn purge_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<()>;

    /// The patient's history, newest first; still readable after a (soft) delete. Needs
    /// `patients:read` and is audited as a `read`; `NotFound` when the patient never existed
    /// or was purged.
    async fn patient_history(
        &self,
        ctx: &CallerContext,
        id: Uuid,
    ) -> WardResult<Vec<PatientVersion>>;

    /// One entry of the patient's history. Needs `patients:read` and is audited as a `read`;
    /// `NotFound` for an unknown patient or version, `InvalidArgument` for version 0.
    async fn patient_version(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        version: u32,
    ) -> WardResult<PatientVersion>;

    /// Folds the duplicate `source` into `target`, in one transaction: `source`'s further
    /// identifiers (and its MRN, under [`MERGED_MRN_SYSTEM`]) move to `target`; `source` is
    /// marked merged into `target` (readable, never changed again, left out of searches);
    /// both get a history entry (`merge`, `merged`) and one more version; `PatientMerged` is
    /// written. Needs `patients:write` on both. `expected_target_version_opt` as for
    /// [`PatientsApi::update_patient`]. `InvalidArgument` when both are the same patient;
    /// `AlreadyExists` (409) when either is merged already; `Gone` / `NotFound` as usual.
    /// Returns the target as it is now.
    async fn merge_patients(
        &self,
        ctx: &CallerContext,
        target: Uuid,
        source: Uuid,
        expected_target_version_opt: Option<u32>,
    ) -> WardResult<Patient>;

    /// Undoes the last merge of `source` into `target`, if no older than the configured
    /// window: `source` is live again with the identifiers it brought, which `target` loses
    /// (those it still holds); history entries `unmerge` and `unmerged`; `PatientUnmerged`.
    /// Needs `patients:write` on both. `AlreadyExists` (409) when `source` is not merged into
    /// `target`; `PreconditionFailed` (412) once the window has passed. Returns
    /// `(target, source)`.
    async fn unmerge_patients(
        &self,
        ctx: &CallerContext,
        target: Uuid,
        source: Uuid,
    ) -> WardResult<(Patient, Patient)>;

    /// Loads records with known ids in one transaction: each new one is registered exactly as
    /// `create_patient` would (number, name index, history, event), and the batch is audited as
    /// one `create` naming them. Returns one outcome per record, in order: an id already present
    /// (live or soft deleted) is `AlreadyPresent`; an email taken (ignoring case) or used by an
    /// earlier record of the batch, or an id repeated in the batch, is `Failed` with the reason;
    /// neither stops the others. Needs `patients:write`; more than [`IMPORT_BATCH_MAX`] records
    /// is `InvalidArgument`. Used by `ward import patients` and for `--demo` data.
    async fn import_patients(
        &self,
        ctx: &CallerContext,
        patients: Vec<(Uuid, NewPatient)>,
    ) -> WardResult<Vec<ImportOutcome>>;

    /// One page of live patients (neither deleted nor merged away) in id order, for a bulk
    /// export; with `since_opt`, only those changed (`updated_at`) at or after it. Needs
    /// `patients:read` and is audited as one `export` naming the page's patients.
    async fn export_patients(
        &self,
        ctx: &CallerContext,
        since_opt: Option<DateTime<Utc>>,
        page: PageRequest,
    ) -> WardResult<PatientPage>;

    /// The audit trail of patient data access, filtered by `query`, ordered by event id. Needs
    /// `users:admin`; a refused query is not itself recorded (it reveals no patient data).
    async fn audit_events(&self, ctx: &CallerContext, query: AuditQuery) -> WardResult<AuditPage>;

    async fn check_ready(&self) -> WardResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_input() -> PatientInput {
        PatientInput {
            name: Some("John Doe".into()),
            email: Some("john.doe@example.com".into()),
            address: Some("123 Main St, Springfield".into()),
            date_of_birth: Some("1985-06-15".into()),
            registered_date: Some("2024-01-10".into()),
            identifiers: None,
            contact_optional: false,
            fhir_extras: None,
        }
    }

    fn messages(error: WardError) -> Vec<(String, String)> {
        error
            .field_errors()
            .iter()
            .map(|e| (e.field.clone(), e.message.clone()))
            .collect()
    }

    #[test]
    fn a_valid_patient_parses() {
        let patient = NewPatient::parse(valid_input()).unwrap();
        assert_eq!(patient.name, "John Doe");
        assert_eq!(format_date(patient.date_of_birth), "1985-06-15");
    }

    #[test]
    fn every_missing_field_is_reported_at_once_with_reference_messages() {
        let error = NewPatient::parse(PatientInput::default()).unwrap_err();
        assert_eq!(
            messages(error),
            vec![
                ("name".into(), "Name is required".into()),
                ("email".into(), "Email is required".into()),
                ("address".into(), "Address is required".into()),
                ("dateOfBirth".into(), "Date of birth is required".into()),
                (
                    "registeredDate".into(),
                    "Registered date is required".into()
                ),
            ]
        );
    }

    #[test]
    fn long_names_bad_emails_and_bad_dates_fail() {
        let mut input = valid_input();
        input.name = Some("x".repeat(101));
        input.email = Some("not-an-email".into());
        input.date_of_birth = Some("15/06/1985".into());
        input.registered_date = Some("2024-02-30".into());
        let fields: Vec<String> = messages(NewPatient::parse(input).unwrap_err())
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(
            fields,
            vec!["name", "email", "dateOfBirth", "registeredDate"]
        );
    }

    #[test]
    fn exactly_one_hundred_characters_is_fine() {
        let mut input = valid_input();
        input.name = Some("é".repeat(100));
        assert!(NewPatient::parse(input).is_ok());
    }

    #[test]
    fn blank_is_missing_and_short_dates_are_rejected() {
        let mut input = valid_input();
        input.name = Some("   ".into());
        input.date_of_birth = Some("1985-6-15".into());
        let found = messages(NewPatient::parse(input).unwrap_err());
        assert_eq!(found[0], ("name".into(), "Name is required".into()));
        assert_eq!(found[1].0, "dateOfBirth");
    }

    #[test]
    fn an_address_may_span_lines_but_a_name_may_not() {
        let mut input = valid_input();
        input.address = Some("12 Main St\r\nSpringfield".into());
        let patient = NewPatient::parse(input).unwrap();
        assert_eq!(patient.address.as_deref(), Some("12 Main St\nSpringfield"));
        let mut input = valid_input();
        input.name = Some("John\nDoe".into());
        assert_eq!(messages(NewPatient::parse(input).unwrap_err())[0].0, "name");
    }

    #[test]
    fn control_characters_are_rejected_naming_each_field() {
        let mut input = valid_input();
        input.name = Some("John\0Doe".into());
        input.email = Some("john\u{7}@example.com".into());
        input.address = Some("123 Main St\u{1b}[2J".into());
        let found = messages(NewPatient::parse(input).unwrap_err());
        assert_eq!(
            found,
            vec![
                (
                    "name".into(),
                    "name must not contain control characters".into()
                ),
                (
                    "email".into(),
                    "email must not contain control characters".into()
                ),
                (
                    "address".into(),
                    "address must not contain control characters".into()
                ),
            ]
        );
        let mut changes = valid_input();
        changes.name = Some("Jo\u{85}hn".into());
        assert!(PatientChanges::parse(changes).is_err());
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_before_the_control_character_check() {
        let mut input = valid_input();
        input.name = Some("\tJohn Doe\n".into());
        assert_eq!(NewPatient::parse(input).unwrap().name, "John Doe");
    }

    #[test]
    fn bidi_and_zero_width_characters_are_data() {
        let mut input = valid_input();
        let name = "\u{202e}eoD nhoJ\u{200b}\u{200d}\u{feff}";
        input.name = Some(name.into());
        assert_eq!(NewPatient::parse(input).unwrap().name, name);
    }

    #[test]
    fn fhir_input_may_lack_email_and_address_but_rest_input_may_not() {
        let mut input = valid_input();
        input.email = None;
        input.address = Some("  ".into());
        input.contact_optional = true;
        input.fhir_extras = Some(r#"{"gender": "other"}"#.into());
        let patient = NewPatient::parse(input.clone()).unwrap();
        assert_eq!((patient.email, patient.address), (None, None));
        assert_eq!(patient.fhir_extras.as_ref(), r#"{"gender":"other"}"#);
        let changes = PatientChanges::parse(input.clone()).unwrap();
        assert!(changes.fhir_extras_opt.is_some());

        input.email = Some("not-an-email".into());
        let found = messages(NewPatient::parse(input.clone()).unwrap_err());
        assert_eq!(
            found,
            vec![("email".into(), "Email should be valid".into())]
        );

        input.email = None;
        input.contact_optional = false;
        let found = messages(NewPatient::parse(input).unwrap_err());
        assert_eq!(
            found,
            vec![
                ("email".into(), "Email is required".into()),
                ("address".into(), "Address is required".into()),
            ]
        );
    }

    #[test]
    fn a_rest_update_keeps_the_fhir_extras() {
        let changes = PatientChanges::parse(valid_input()).unwrap();
        assert_eq!(changes.fhir_extras_opt, None);
        let mut input = valid_input();
        input.fhir_extras = Some("[1]".into());
        let found = messages(PatientChanges::parse(input).unwrap_err());
        assert_eq!(found[0].0, "fhirExtras");
    }

    #[test]
    fn update_ignores_a_missing_registered_date() {
        let mut input = valid_input();
        input.registered_date = None;
        assert!(PatientChanges::parse(input).is_ok());
    }

    #[test]
    fn page_requests_are_bounded() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 50);
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(501), None).is_err());
        assert!(PageRequest::parse(Some(10), Some("garbage")).is_err());
        let id = Uuid::now_v7();
        let page = PageRequest::parse(Some(10), Some(&cursor_after(id))).unwrap();
        assert_eq!(page.after_opt, Some(id));
    }

    #[test]
    fn audit_queries_name_each_bad_field() {
        let query = AuditQuery::parse(
            None,
            Some(" u1 "),
            Some("2024-06-01T00:00:00Z"),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(query.actor_opt.as_deref(), Some("u1"));
        assert_eq!(query.limit, PAGE_DEFAULT);
        assert!(query.from_opt.is_some());
        let error = AuditQuery::parse(
            Some("nope"),
            None,
            Some("yesterday"),
            Some("2024-13-01"),
            Some(0),
            Some("x"),
        )
        .unwrap_err();
        let fields: Vec<String> = messages(error)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(fields, vec!["limit", "cursor", "patientId", "from", "to"]);
    }

    #[test]
    fn a_search_cursor_round_trips_and_stays_with_its_search() {
        let input = PatientSearchInput {
            name_opt: Some(" Jo  Álv ".into()),
            birth_dates: vec!["ge1980-01-01".into(), "1985-06-15".into()],
            sort_opt: Some("-name".into()),
            limit_opt: Some(3),
            ..PatientSearchInput::default()
        };
        let search = PatientSearch::parse(input.clone()).unwrap();
        assert_eq!(search.name_words, vec!["Jo", "Álv"]);
        assert_eq!(search.birth_dates[1].comparator, DateComparator::Eq);
        let id = Uuid::now_v7();
        let key = SortKey::Text("jose alvarez".into());
        let cursor = search.cursor_after(&key, id);
        let next = PatientSearch::parse(PatientSearchInput {
            cursor_opt: Some(cursor.clone()),
            ..input.clone()
        })
        .unwrap();
        assert_eq!(next.after_opt, Some(SearchAfter { key, id }));
        assert_eq!(PatientSearch::parse(next.to_input()).unwrap(), next);

        let other_filter = PatientSearch::parse(PatientSearchInput {
            name_opt: Some("jo".into()),
            cursor_opt: Some(cursor),
            ..input
        })
        .unwrap_err();
        assert_eq!(messages(other_filter)[0].0, "cursor");
    }

    #[test]
    fn a_list_cursor_still_pages_an_unfiltered_search() {
        let id = Uuid::now_v7();
        let search = PatientSearch::parse(PatientSearchInput {
            cursor_opt: Some(cursor_after(id)),
            ..PatientSearchInput::default()
        })
        .unwrap();
        assert_eq!(search.after_opt.map(|after| after.id), Some(id));
        for cursor in ["garbage", "name~0~zz~x", "id~0~~"] {
            let error = PatientSearch::parse(PatientSearchInput {
                cursor_opt: Some(cursor.into()),
                ..PatientSearchInput::default()
            })
            .unwrap_err();
            assert_eq!(messages(error)[0].0, "cursor", "{cursor}");
        }
    }

    #[test]
    fn search_parameters_name_each_failure() {
        let error = PatientSearch::parse(PatientSearchInput {
            name_opt: Some("--".into()),
            email_opt: Some("a\u{0}b".into()),
            birth_dates: vec!["lt1980-01-01".into()],
            identifier_opt: Some("x".repeat(IDENTIFIER_MAX_CHARS + 1)),
            sort_opt: Some("age".into()),
            limit_opt: Some(0),
            cursor_opt: None,
            total_opt: Some("estimate".into()),
        })
        .unwrap_err();
        let fields: Vec<String> = messages(error)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "limit",
                "name",
                "email",
                "birthDate",
                "identifier",
                "sort",
                "total"
            ]
        );
    }

    #[test]
    fn emails_compare_ignoring_case() {
        assert_eq!(
            normalized_email(" John.Doe@Example.COM "),
            "john.doe@example.com"
        );
    }

    #[test]
    fn idempotency_keys_are_1_to_255_printable_ascii_characters() {
        assert_eq!(
            IdempotencyKey::parse("order 42/retry-1").unwrap().as_ref(),
            "order 42/retry-1"
        );
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in [
            String::new(),
            "k".repeat(256),
            "tab\there".into(),
            "caf\u{e9}".into(),
        ] {
            let error = IdempotencyKey::parse(&bad).unwrap_err();
            assert_eq!(error.field_errors()[0].field, "Idempotency-Key", "{bad:?}");
        }
    }
}

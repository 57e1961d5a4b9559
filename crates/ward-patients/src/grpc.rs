//! The patients module over gRPC: [`PatientsGrpcClient`] implements [`ward_bus::PatientsApi`]
//! for a patients role in another process, [`PatientsGrpcServer`] serves any implementation.
//!
//! Domain ↔ proto conversions live here, once, for both sides. Incoming input is never trusted:
//! the server runs it through the same parsers the gateway uses ([`NewPatient::parse`],
//! [`PatientChanges::parse`], [`PageRequest::parse`]).

mod bulk;
mod client;
mod server;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;
use ward_bus::grpc::{parse_date, parse_uuid};
use ward_bus::patients::{
    AuditEvent, AuditPage, AuditQuery, FhirExtras, IdentifierInput, NewPatient, PageRequest,
    Patient, PatientChanges, PatientIdentifier, PatientInput, PatientPage, PatientSearch,
    PatientSearchInput, PatientVersion, cursor_after, format_date,
};
use ward_core::{WardError, WardResult};
use ward_proto::v1 as proto;

pub use self::client::PatientsGrpcClient;
pub use self::server::PatientsGrpcServer;

/// The full gRPC name of the service, as the health service reports it.
pub const PATIENTS_SERVICE_NAME: &str = proto::patient_service_server::SERVICE_NAME;

fn patient_to_proto(patient: Patient) -> proto::Patient {
    proto::Patient {
        id: patient.id.to_string(),
        name: patient.name,
        email: patient.email.unwrap_or_default(),
        address: patient.address.unwrap_or_default(),
        date_of_birth: format_date(patient.date_of_birth),
        registered_date: format_date(patient.registered_date),
        version: patient.version,
        mrn: patient.mrn,
        identifiers: identifiers_to_proto(patient.identifiers),
        merged_into: patient.merged_into_opt.map(|id| id.to_string()),
        fhir_extras: patient.fhir_extras.as_ref().to_string(),
    }
}

fn identifiers_to_proto(identifiers: Vec<PatientIdentifier>) -> Vec<proto::Identifier> {
    identifiers
        .into_iter()
        .map(|identifier| proto::Identifier {
            system: identifier.system,
            value: identifier.value,
        })
        .collect()
}

fn identifier_list(identifiers: Vec<PatientIdentifier>) -> proto::IdentifierList {
    proto::IdentifierList {
        items: identifiers_to_proto(identifiers),
    }
}

/// Reads a patient from a reply; a bad field is `InvalidArgument` naming it.
fn patient_from_proto(patient: proto::Patient) -> WardResult<Patient> {
    Ok(Patient {
        id: parse_uuid(&patient.id, "id")?,
        date_of_birth: parse_date(&patient.date_of_birth, "dateOfBirth")?,
        registered_date: parse_date(&patient.registered_date, "registeredDate")?,
        fhir_extras: FhirExtras::parse(&patient.fhir_extras)?,
        name: patient.name,
        email: non_empty(patient.email),
        address: non_empty(patient.address),
        version: patient.version,
        mrn: patient.mrn,
        identifiers: patient
            .identifiers
            .into_iter()
            .map(|identifier| PatientIdentifier {
                system: identifier.system,
                value: identifier.value,
            })
            .collect(),
        merged_into_opt: match patient.merged_into {
            Some(raw) => Some(parse_uuid(&raw, "mergedInto")?),
            None => None,
        },
    })
}

/// The proto's "" for none as `None`: a stored email or address is never empty.
fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

fn patient_version_to_proto(entry: PatientVersion) -> proto::PatientVersion {
    proto::PatientVersion {
        version: entry.version,
        at: format_instant(entry.at),
        actor: entry.actor,
        action: entry.action,
        patient: Some(patient_to_proto(entry.patient)),
    }
}

/// Reads a history entry from a reply; a bad or missing field is `InvalidArgument` naming it.
fn patient_version_from_proto(entry: proto::PatientVersion) -> WardResult<PatientVersion> {
    let at = DateTime::parse_from_rfc3339(&entry.at)
        .map_err(|_| WardError::invalid_field("at", "at must be an RFC 3339 date-time"))?
        .with_timezone(&Utc);
    let Some(patient) = entry.patient else {
        return Err(WardError::invalid_field("patient", "patient is required"));
    };
    Ok(PatientVersion {
        version: entry.version,
        at,
        actor: entry.actor,
        action: entry.action,
        patient: patient_from_proto(patient)?,
    })
}

fn patient_versions_to_proto(entries: Vec<PatientVersion>) -> proto::PatientVersionList {
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        items.push(patient_version_to_proto(entry));
    }
    proto::PatientVersionList { items }
}

fn patient_versions_from_proto(list: proto::PatientVersionList) -> WardResult<Vec<PatientVersion>> {
    let mut entries = Vec::with_capacity(list.items.len());
    for entry in list.items {
        entries.push(patient_version_from_proto(entry)?);
    }
    Ok(entries)
}

fn new_patient_to_proto(patient: NewPatient, id_opt: Option<Uuid>) -> proto::PatientInput {
    proto::PatientInput {
        id: id_opt.map(|id| id.to_string()),
        name: Some(patient.name),
        email: patient.email,
        address: patient.address,
        date_of_birth: Some(format_date(patient.date_of_birth)),
        registered_date: Some(format_date(patient.registered_date)),
        idempotency_key: None,
        identifiers: Some(identifier_list(patient.identifiers)),
        // Already parsed: whatever it lacks, the domain allowed it to lack.
        contact_optional: true,
        fhir_extras: Some(patient.fhir_extras.as_ref().to_string()),
    }
}

fn changes_to_proto(changes: PatientChanges) -> proto::PatientInput {
    proto::PatientInput {
        id: None,
        name: Some(changes.name),
        email: changes.email,
        address: changes.address,
        date_of_birth: Some(format_date(changes.date_of_birth)),
        registered_date: None,
        idempotency_key: None,
        identifiers: changes.identifiers_opt.map(identifier_list),
        contact_optional: true,
        fhir_extras: changes
            .fhir_extras_opt
            .map(|extras| extras.as_ref().to_string()),
    }
}

/// The raw fields, for the domain parsers; `id` is not one of them.
fn input_from_proto(input: proto::PatientInput) -> PatientInput {
    PatientInput {
        name: input.name,
        email: input.email,
        address: input.address,
        date_of_birth: input.date_of_birth,
        registered_date: input.registered_date,
        contact_optional: input.contact_optional,
        fhir_extras: input.fhir_extras,
        // Checked again by the domain parsers, like every other field.
        identifiers: input.identifiers.map(|list| {
            list.items
                .into_iter()
                .map(|identifier| IdentifierInput {
                    system: Some(identifier.system),
                    value: Some(identifier.value),
                })
                .collect()
        }),
    }
}

fn page_request_to_proto(page: PageRequest) -> proto::ListPatientsRequest {
    proto::ListPatientsRequest {
        limit: Some(page.limit),
        cursor: page.after_opt.map(cursor_after),
    }
}

fn page_request_from_proto(request: proto::ListPatientsRequest) -> WardResult<PageRequest> {
    PageRequest::parse(request.limit.map(i64::from), request.cursor.as_deref())
}

fn page_to_proto(page: PatientPage) -> proto::PatientPage {
    let mut items = Vec::with_capacity(page.items.len());
    for patient in page.items {
        items.push(patient_to_proto(patient));
    }
    proto::PatientPage {
        items,
        next_cursor: page.next_cursor_opt,
        total: page.total_opt,
    }
}

fn search_to_proto(search: &PatientSearch) -> proto::SearchPatientsRequest {
    let input = search.to_input();
    proto::SearchPatientsRequest {
        name: input.name_opt,
        email: input.email_opt,
        birth_date: input.birth_dates,
        identifier: input.identifier_opt,
        sort: input.sort_opt,
        // `to_input` always sets the limit, and a parsed one is 1..=500.
        limit: input.limit_opt.and_then(|limit| u32::try_from(limit).ok()),
        cursor: input.cursor_opt,
        total: input.total_opt,
    }
}

fn search_from_proto(request: proto::SearchPatientsRequest) -> WardResult<PatientSearch> {
    PatientSearch::parse(PatientSearchInput {
        name_opt: request.name,
        email_opt: request.email,
        birth_dates: request.birth_date,
        identifier_opt: request.identifier,
        sort_opt: request.sort,
        limit_opt: request.limit.map(i64::from),
        cursor_opt: request.cursor,
        total_opt: request.total,
    })
}

fn page_from_proto(page: proto::PatientPage) -> WardResult<PatientPage> {
    let mut items = Vec::with_capacity(page.items.len());
    for patient in page.items {
        items.push(patient_from_proto(patient)?);
    }
    Ok(PatientPage {
        items,
        next_cursor_opt: page.next_cursor,
        total_opt: page.total,
    })
}

fn audit_query_to_proto(query: AuditQuery) -> proto::AuditQueryRequest {
    proto::AuditQueryRequest {
        patient_id: query.patient_id_opt.map(|id| id.to_string()),
        actor: query.actor_opt,
        from: query.from_opt.map(format_instant),
        to: query.to_opt.map(format_instant),
        limit: Some(query.limit),
        cursor: query.after_opt.map(cursor_after),
    }
}

/// Parses a query with the same parser the gateway uses; bad fields are `InvalidArgument`.
fn audit_query_from_proto(request: proto::AuditQueryRequest) -> WardResult<AuditQuery> {
    AuditQuery::parse(
        request.patient_id.as_deref(),
        request.actor.as_deref(),
        request.from.as_deref(),
        request.to.as_deref(),
        request.limit.map(i64::from),
        request.cursor.as_deref(),
    )
}

fn audit_page_to_proto(page: AuditPage) -> proto::AuditPageResponse {
    let mut items = Vec::with_capacity(page.items.len());
    for event in page.items {
        items.push(proto::AuditEvent {
            at: format_instant(event.at),
            actor: event.actor,
            action: event.action,
            patient_ids: event.patient_ids.iter().map(Uuid::to_string).collect(),
            outcome: event.outcome,
            request_id: event.request_id,
            client_addr: event.client_addr_opt,
        });
    }
    proto::AuditPageResponse {
        items,
        next_cursor: page.next_cursor_opt,
    }
}

/// Reads an audit page from a reply; a bad field is `InvalidArgument` naming it.
fn audit_page_from_proto(page: proto::AuditPageResponse) -> WardResult<AuditPage> {
    let mut items = Vec::with_capacity(page.items.len());
    for event in page.items {
        let at = DateTime::parse_from_rfc3339(&event.at)
            .map_err(|_| WardError::invalid_field("at", "at must be an RFC 3339 date-time"))?
            .with_timezone(&Utc);
        let mut patient_ids = Vec::with_capacity(event.patient_ids.len());
        for raw in &event.patient_ids {
            patient_ids.push(parse_uuid(raw, "patientIds")?);
        }
        items.push(AuditEvent {
            at,
            actor: event.actor,
            action: event.action,
            patient_ids,
            outcome: event.outcome,
            request_id: event.request_id,
            client_addr_opt: event.client_addr,
        });
    }
    Ok(AuditPage {
        items,
        next_cursor_opt: page.next_cursor,
    })
}

/// An instant as RFC 3339 with microseconds, in UTC.
fn format_instant(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn date(raw: &str) -> NaiveDate {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_patient_round_trips() {
        let patient = Patient {
            id: Uuid::now_v7(),
            name: "John Doe".into(),
            email: Some("john.doe@example.com".into()),
            address: Some("123 Main St".into()),
            date_of_birth: date("1985-06-15"),
            registered_date: date("2024-01-10"),
            version: 3,
            mrn: "MRN-00000003".into(),
            identifiers: vec![PatientIdentifier {
                system: "urn:oid:2.16.840.1.113883.2.4.6.3".into(),
                value: "738472983".into(),
            }],
            merged_into_opt: Some(Uuid::now_v7()),
            fhir_extras: FhirExtras::parse(r#"{"gender":"female"}"#).unwrap(),
        };
        assert_eq!(
            patient_from_proto(patient_to_proto(patient.clone())).unwrap(),
            patient
        );
        let without_contact = Patient {
            email: None,
            address: None,
            fhir_extras: FhirExtras::default(),
            ..patient.clone()
        };
        assert_eq!(
            patient_from_proto(patient_to_proto(without_contact.clone())).unwrap(),
            without_contact
        );
        let entry = PatientVersion {
            version: 3,
            at: DateTime::parse_from_rfc3339("2024-06-01T10:00:00.5Z")
                .unwrap()
                .with_timezone(&Utc),
            actor: "system:demo".into(),
            action: "update".into(),
            patient,
        };
        let list = patient_versions_to_proto(vec![entry.clone()]);
        assert_eq!(patient_versions_from_proto(list).unwrap(), vec![entry]);
        let without_patient = proto::PatientVersion {
            version: 1,
            at: "2024-06-01T10:00:00Z".into(),
            actor: "a".into(),
            action: "create".into(),
            patient: None,
        };
        assert!(patient_version_from_proto(without_patient).is_err());
    }

    #[test]
    fn a_new_patient_and_a_page_request_survive_the_parsers() {
        let new_patient = NewPatient {
            name: "John Doe".into(),
            email: Some("john.doe@example.com".into()),
            address: Some("123 Main St".into()),
            date_of_birth: date("1985-06-15"),
            registered_date: date("2024-01-10"),
            identifiers: Vec::new(),
            fhir_extras: FhirExtras::default(),
        };
        let input = input_from_proto(new_patient_to_proto(new_patient.clone(), None));
        assert_eq!(NewPatient::parse(input).unwrap(), new_patient);
        let from_fhir = NewPatient {
            email: None,
            address: None,
            fhir_extras: FhirExtras::parse(r#"{"active":true}"#).unwrap(),
            ..new_patient
        };
        let input = input_from_proto(new_patient_to_proto(from_fhir.clone(), None));
        assert_eq!(NewPatient::parse(input).unwrap(), from_fhir);

        let page = PageRequest {
            limit: 7,
            after_opt: Some(Uuid::now_v7()),
        };
        assert_eq!(
            page_request_from_proto(page_request_to_proto(page.clone())).unwrap(),
            page
        );
        let default_page = proto::ListPatientsRequest {
            limit: None,
            cursor: None,
        };
        assert_eq!(page_request_from_proto(default_page).unwrap().limit, 50);
        let zero = proto::ListPatientsRequest {
            limit: Some(0),
            cursor: None,
        };
        assert!(page_request_from_proto(zero).is_err());
    }

    #[test]
    fn an_audit_query_and_page_round_trip() {
        let query = AuditQuery::parse(
            Some(&Uuid::now_v7().to_string()),
            Some("system:demo"),
            Some("2024-06-01T00:00:00Z"),
            Some("2024-06-02T00:00:00.123456Z"),
            Some(20),
            Some(&cursor_after(Uuid::now_v7())),
        )
        .unwrap();
        assert_eq!(
            audit_query_from_proto(audit_query_to_proto(query.clone())).unwrap(),
            query
        );
        let page = AuditPage {
            items: vec![AuditEvent {
                at: DateTime::parse_from_rfc3339("2024-06-01T10:00:00.5Z")
                    .unwrap()
                    .with_timezone(&Utc),
                actor: "anonymous".into(),
                action: "read".into(),
                patient_ids: vec![Uuid::now_v7()],
                outcome: "denied".into(),
                request_id: "r1".into(),
                client_addr_opt: Some("192.0.2.7".into()),
            }],
            next_cursor_opt: None,
        };
        assert_eq!(
            audit_page_from_proto(audit_page_to_proto(page.clone())).unwrap(),
            page
        );
    }
}

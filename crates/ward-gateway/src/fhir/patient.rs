//! The mapping between Ward's patient record and the FHIR R4 `Patient` resource.
//!
//! Out: `id`, `meta.versionId`, `identifier[0]` (the medical record number, system
//! [`MRN_SYSTEM`]), `name[0]` (`text`, `family` = last word, `given` = the others), `telecom[0]`
//! (the email), `address[0].text`, `birthDate`; for a merged duplicate `active: false` and a
//! `link` of type `replaced-by` to the record that stayed. The registration date has no standard element
//! and is not sent.
//!
//! In: the name from `name[0].text`, else `given` and `family` joined; the email from the first
//! `telecom` with `system` `email`; the address from `address[0].text`, else its `line`s, `city`
//! and `postalCode` joined; `birthDate`. Ward keeps nothing else, so any other top-level element
//! is refused rather than silently dropped, except those a client commonly sends and loses
//! nothing by (`text`, `active`, `gender`, `meta`), which are ignored. Ward allocates the
//! medical record number: an identifier with its system may only carry the stored value (an
//! update sending the document back). Every other identifier is a further identifier
//! (`system` and `value` kept; a create registers them, an update replaces them all, as FHIR's
//! update replaces the resource).

mod elements;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;
use ward_bus::patients::{
    IdentifierInput, NewPatient, Patient, PatientChanges, PatientInput, format_date,
};
use ward_core::{FieldError, WardError, WardResult};

use self::elements::{field_error, list, read_address, read_email, read_name, read_string};
use crate::identifier::MRN_SYSTEM;

/// The v2 identifier type code system, whose `MR` is "medical record number".
const IDENTIFIER_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

/// The top-level elements Ward reads or harmlessly ignores; anything else is a 400.
const ACCEPTED_ELEMENTS: [&str; 11] = [
    "resourceType",
    "id",
    "meta",
    "text",
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "address",
];

/// Returns the FHIR `Patient` for a Ward record; `last_updated_opt` fills `meta.lastUpdated`
/// when the caller knows it (a history entry does, a plain read does not).
pub(crate) fn patient_resource(
    patient: &Patient,
    last_updated_opt: Option<DateTime<Utc>>,
) -> Value {
    // Field by field, so a field added to `Patient` does not change the resource unseen.
    let mut words: Vec<&str> = patient.name.split_whitespace().collect();
    let family_opt = words.pop();
    let mut name = json!({"text": patient.name});
    if let Some(family) = family_opt {
        name["family"] = json!(family);
    }
    if !words.is_empty() {
        name["given"] = json!(words);
    }
    let mut meta = json!({"versionId": patient.version.to_string()});
    if let Some(last_updated) = last_updated_opt {
        meta["lastUpdated"] =
            json!(last_updated.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    let mrn = json!({
        "use": "usual",
        "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "MR"}]},
        "system": MRN_SYSTEM,
        "value": patient.mrn,
    });
    let mut identifiers = vec![mrn];
    identifiers.extend(
        patient
            .identifiers
            .iter()
            .map(|identifier| json!({"system": identifier.system, "value": identifier.value})),
    );
    let mut resource = json!({
        "resourceType": "Patient",
        "id": patient.id.to_string(),
        "meta": meta,
        "identifier": identifiers,
        "name": [name],
        "telecom": [{"system": "email", "value": patient.email}],
        "address": [{"text": patient.address}],
        "birthDate": format_date(patient.date_of_birth),
    });
    // A merged duplicate points at the record that replaced it, as FHIR's own merge does.
    if let Some(target) = patient.merged_into_opt {
        resource["active"] = json!(false);
        resource["link"] = json!([{
            "other": {"reference": format!("Patient/{target}")},
            "type": "replaced-by",
        }]);
    }
    resource
}

/// Reads a FHIR `Patient` to register, as of `registered_date` (FHIR has no element for it).
/// Every problem is reported at once: structural ones and the record's own. An MRN identifier
/// is ignored: Ward allocates the medical record number.
pub(crate) fn new_patient(body: &Value, registered_date: NaiveDate) -> WardResult<NewPatient> {
    let (mut input, errors) = patient_input(body, None)?;
    input.registered_date = Some(format_date(registered_date));
    finish(NewPatient::parse(input), errors)
}

/// Reads a FHIR `Patient` that replaces the record `path_id`; the body's `id`, if any, must
/// equal it. An identifier with system [`MRN_SYSTEM`] must carry `current_mrn_opt`, the stored
/// number (needed only when [`names_mrn`] says the body has one): the number never changes.
pub(crate) fn patient_changes(
    body: &Value,
    path_id: Uuid,
    current_mrn_opt: Option<&str>,
) -> WardResult<PatientChanges> {
    let (input, mut errors) = patient_input(body, Some(path_id))?;
    if let Some(resource) = body.as_object() {
        check_mrn(resource, current_mrn_opt, &mut errors);
    }
    finish(PatientChanges::parse(input), errors)
}

/// Whether the body carries an identifier with system [`MRN_SYSTEM`], which an update must then
/// check against the stored number.
pub(crate) fn names_mrn(body: &Value) -> bool {
    let Some(identifiers) = body.get("identifier").and_then(Value::as_array) else {
        return false;
    };
    identifiers
        .iter()
        .any(|identifier| identifier.get("system").and_then(Value::as_str) == Some(MRN_SYSTEM))
}

/// Adds the record's own failures (named by Ward field, mapped to FHIRPath when rendered) to
/// the structural ones.
fn finish<T>(parsed: WardResult<T>, mut errors: Vec<FieldError>) -> WardResult<T> {
    match parsed {
        Ok(value) if errors.is_empty() => Ok(value),
        Ok(_) => Err(WardError::invalid(messages(&errors), errors)),
        Err(error) => {
            errors.extend_from_slice(error.field_errors());
            Err(WardError::invalid(messages(&errors), errors))
        }
    }
}

/// Reads the fields Ward keeps, and lists every structural problem found on the way.
fn patient_input(
    body: &Value,
    path_id_opt: Option<Uuid>,
) -> WardResult<(PatientInput, Vec<FieldError>)> {
    let mut errors = Vec::new();
    let Some(resource) = body.as_object() else {
        return Err(WardError::invalid(
            "the body must be a FHIR Patient resource (a JSON object)",
            Vec::new(),
        ));
    };
    if resource.get("resourceType").and_then(Value::as_str) != Some("Patient") {
        errors.push(field_error(
            "Patient.resourceType",
            "resourceType must be \"Patient\"",
        ));
    }
    for element in resource.keys() {
        if !ACCEPTED_ELEMENTS.contains(&element.as_str()) {
            errors.push(field_error(
                &format!("Patient.{element}"),
                &format!("Ward cannot store Patient.{element}; remove it"),
            ));
        }
    }
    check_id(resource, path_id_opt, &mut errors);
    let identifiers = read_identifiers(resource, &mut errors);
    let input = PatientInput {
        // Always a list: FHIR's update replaces the resource, so no identifier means none.
        identifiers: Some(identifiers),
        name: read_name(resource, &mut errors),
        email: read_email(resource, &mut errors),
        address: read_address(resource, &mut errors),
        date_of_birth: read_string(resource.get("birthDate"), "Patient.birthDate", &mut errors),
        // The registration date is the caller's to set; newer fields keep their defaults.
        ..PatientInput::default()
    };
    Ok((input, errors))
}

fn messages(errors: &[FieldError]) -> String {
    let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
    messages.join("; ")
}

fn check_id(
    resource: &Map<String, Value>,
    path_id_opt: Option<Uuid>,
    errors: &mut Vec<FieldError>,
) {
    // FHIR create ignores a client's id; only an update's must match the addressed one.
    let (Some(path_id), Some(body_id)) = (path_id_opt, resource.get("id")) else {
        return;
    };
    let matches = body_id
        .as_str()
        .and_then(|raw| Uuid::parse_str(raw.trim()).ok())
        == Some(path_id);
    if !matches {
        errors.push(field_error(
            "Patient.id",
            "the resource id must equal the id in the URL",
        ));
    }
}

/// The further identifiers: every identifier but the MRN (see [`check_mrn`]), by `system` and
/// `value` (the domain parser checks those; Ward needs a system to keep one unique).
fn read_identifiers(
    resource: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Vec<IdentifierInput> {
    let Some(identifiers) = list(resource, "identifier", errors) else {
        return Vec::new();
    };
    let mut inputs = Vec::new();
    for identifier in identifiers {
        let Some(object) = identifier.as_object() else {
            errors.push(field_error(
                "Patient.identifier",
                "Patient.identifier must be a list of Identifier objects",
            ));
            return Vec::new();
        };
        let system = read_string(object.get("system"), "Patient.identifier.system", errors);
        let value = read_string(object.get("value"), "Patient.identifier.value", errors);
        // FHIR allows an identifier without a value (the spec's own f001 has one); it
        // identifies nothing, so like `text` it is accepted and not kept.
        let has_value = value
            .as_deref()
            .is_some_and(|value| !value.trim().is_empty());
        if system.as_deref() != Some(MRN_SYSTEM) && has_value {
            inputs.push(IdentifierInput { system, value });
        }
    }
    inputs
}

/// Every identifier with system [`MRN_SYSTEM`] must carry the stored number.
fn check_mrn(
    resource: &Map<String, Value>,
    current_mrn_opt: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    let Some(identifiers) = resource.get("identifier").and_then(Value::as_array) else {
        return;
    };
    for identifier in identifiers {
        if identifier.get("system").and_then(Value::as_str) != Some(MRN_SYSTEM) {
            continue;
        }
        let sent_opt = identifier.get("value").and_then(Value::as_str);
        let is_current = match (sent_opt, current_mrn_opt) {
            (Some(sent), Some(current)) => sent == current,
            _ => false,
        };
        if !is_current {
            errors.push(field_error(
                "Patient.identifier",
                "the medical record number (identifier system urn:ward:mrn) cannot be changed",
            ));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()
    }

    #[test]
    fn names_and_addresses_are_assembled_from_their_parts() {
        let body = json!({
            "resourceType": "Patient",
            "name": [{"given": ["Peter", "James"], "family": "Chalmers"}],
            "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "p@x.org"}],
            "address": [{"line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}],
            "birthDate": "1974-12-25",
        });
        let patient = new_patient(&body, registered()).unwrap();
        assert_eq!(patient.name, "Peter James Chalmers");
        assert_eq!(patient.email, "p@x.org");
        assert_eq!(patient.address, "534 Erewhon St, PleasantVille, 3999");
        assert_eq!(patient.registered_date, registered());
    }

    #[test]
    fn text_wins_over_parts() {
        let body = json!({
            "resourceType": "Patient",
            "name": [{"text": "Jim Chalmers", "given": ["Peter"], "family": "Chalmers"}],
            "telecom": [{"system": "email", "value": "p@x.org"}],
            "address": [{"text": "534 Erewhon St", "city": "PleasantVille"}],
            "birthDate": "1974-12-25",
        });
        let changes = patient_changes(&body, Uuid::from_u128(7), None).unwrap();
        assert_eq!(changes.name, "Jim Chalmers");
        assert_eq!(changes.address, "534 Erewhon St");
    }

    #[test]
    fn unknown_elements_wrong_types_missing_fields_and_other_ids_are_all_reported() {
        let body = json!({
            "resourceType": "Observation",
            "id": "other",
            "photo": [],
            "_birthDate": {},
            "name": {"text": "x"},
            "birthDate": 1990,
        });
        let error = patient_changes(&body, Uuid::from_u128(7), None).unwrap_err();
        let fields: Vec<&str> = error
            .field_errors()
            .iter()
            .map(|error| error.field.as_str())
            .collect();
        for field in [
            "Patient.resourceType",
            "Patient.photo",
            "Patient._birthDate",
            "Patient.id",
            "Patient.name",
            "Patient.birthDate",
            "email",
            "address",
        ] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
    }

    #[test]
    fn a_create_may_carry_any_id() {
        let body = json!({
            "resourceType": "Patient",
            "id": "example",
            "name": [{"text": "A B"}],
            "telecom": [{"system": "email", "value": "a@b.org"}],
            "address": [{"text": "1 Road"}],
            "birthDate": "2000-01-01",
        });
        assert!(new_patient(&body, registered()).is_ok());
    }

    fn stored() -> Patient {
        Patient {
            id: Uuid::from_u128(7),
            name: "Ada King Lovelace".into(),
            email: "ada@example.org".into(),
            address: "12 St James Sq".into(),
            date_of_birth: NaiveDate::from_ymd_opt(1815, 12, 10).unwrap(),
            registered_date: registered(),
            version: 3,
            mrn: "MRN-00000042".into(),
            identifiers: Vec::new(),
            merged_into_opt: None,
        }
    }

    #[test]
    fn the_mrn_is_the_identifier_and_may_be_sent_back_unchanged_only() {
        let mut resource = patient_resource(&stored(), None);
        assert_eq!(
            resource["identifier"],
            json!([{
                "use": "usual",
                "type": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "MR"
                }]},
                "system": "urn:ward:mrn",
                "value": "MRN-00000042"
            }])
        );
        assert!(names_mrn(&resource));
        let id = Uuid::from_u128(7);
        assert!(patient_changes(&resource, id, Some("MRN-00000042")).is_ok());

        resource["identifier"][0]["value"] = json!("MRN-00000043");
        let error = patient_changes(&resource, id, Some("MRN-00000042")).unwrap_err();
        assert_eq!(error.field_errors().len(), 1);
        assert_eq!(error.field_errors()[0].field, "Patient.identifier");

        resource["identifier"] = json!([{"system": "urn:oid:1.2.3", "value": "x"}]);
        assert!(!names_mrn(&resource));
        assert!(patient_changes(&resource, id, None).is_ok());
    }

    #[test]
    fn a_create_ignores_identifiers_but_not_malformed_ones() {
        let mut body = patient_resource(&stored(), None);
        body["identifier"][0]["value"] = json!("MRN-99999999");
        assert!(new_patient(&body, registered()).is_ok());
        body["identifier"] = json!(["MRN-1"]);
        let error = new_patient(&body, registered()).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "Patient.identifier");
    }
}

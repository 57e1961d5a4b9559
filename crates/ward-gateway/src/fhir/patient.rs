//! The mapping between Ward's patient record and the FHIR R4 `Patient` resource.
//!
//! Ward models a name, an email, an address, a birth date and identifiers; every other element
//! is kept verbatim beside the record ([`FhirExtras`]), so a client reads back what it wrote,
//! as HAPI and Medplum answer.
//!
//! In: the name from `name[0].text`, else its `given` and `family` joined; the email from the
//! first `telecom` with `system` `email`; the address from `address[0].text`, else its `line`s,
//! `city` and `postalCode` joined; `birthDate`. A name and a birth date are required (search,
//! sort, record numbers and practice policy need them); an email and an address are not. Ward
//! allocates the medical record number: an identifier with its system may only carry the stored
//! value (an update sending the document back). Every other identifier with a `system` and a
//! `value` is a further identifier, unique to the patient (a create registers them, an update
//! replaces them all, as FHIR's update replaces the resource). Kept verbatim: every other
//! top-level element (`gender`, `text`, `contact`, `extension`, `_birthDate`...), the whole
//! `name`, `telecom` and `address` lists and the identifiers but the MRN; `meta` and `id` are
//! Ward's and not kept. A FHIR update replaces what is kept; a REST update leaves it.
//!
//! Out: `id`, `meta.versionId`, the MRN as the first identifier (system [`MRN_SYSTEM`]), then
//! the kept elements merged with the record (see `render.rs`: Ward's values win for what it
//! models); for a merged duplicate `active: false` and a `link` of type `replaced-by` to the
//! record that stayed. The registration date has no standard element and is not sent.
//!
//! [`FhirExtras`]: ward_bus::patients::FhirExtras

mod elements;
mod render;

use chrono::NaiveDate;
use serde_json::{Map, Value};
use uuid::Uuid;
use ward_bus::patients::{
    FhirExtras, IdentifierInput, NewPatient, PatientChanges, PatientInput, format_date,
};
use ward_core::{FieldError, WardError, WardResult};

use self::elements::{field_error, list, read_address, read_email, read_name, read_string};
pub(crate) use self::render::patient_resource;
use crate::identifier::MRN_SYSTEM;

/// The v2 identifier type code system, whose `MR` is "medical record number".
const IDENTIFIER_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

/// The top-level elements that are Ward's own (never kept): the type, the id and `meta`.
const WARD_ELEMENTS: [&str; 3] = ["resourceType", "id", "meta"];

/// The kept lists whose entries Ward merges with the record when rendering; the `birthDate` is
/// the record's alone (a partial date cannot be stored, so it always says the same).
const MODELLED_ELEMENTS: [&str; 5] = ["identifier", "name", "telecom", "address", "birthDate"];

const NAME_REQUIRED_MESSAGE: &str = "Ward requires Patient.name (a name[0] with text, given or \
     family): patients are searched, sorted and told apart by name";
const BIRTH_DATE_REQUIRED_MESSAGE: &str = "Ward requires Patient.birthDate (yyyy-MM-dd): \
     patients are told apart and their records numbered by it";

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
/// the structural ones, except a "required" the mapping already reported in FHIR's words.
fn finish<T>(parsed: WardResult<T>, mut errors: Vec<FieldError>) -> WardResult<T> {
    match parsed {
        Ok(value) if errors.is_empty() => Ok(value),
        Ok(_) => Err(WardError::invalid(messages(&errors), errors)),
        Err(error) => {
            for field_error in error.field_errors() {
                let fhir_path_opt = match field_error.field.as_str() {
                    "name" => Some("Patient.name"),
                    "dateOfBirth" => Some("Patient.birthDate"),
                    _ => None,
                };
                let is_reported = match fhir_path_opt {
                    Some(path) => errors.iter().any(|reported| reported.field == path),
                    None => false,
                };
                if !is_reported {
                    errors.push(field_error.clone());
                }
            }
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
    check_id(resource, path_id_opt, &mut errors);
    let identifiers = read_identifiers(resource, &mut errors);
    let num_errors_before_name = errors.len();
    let name_opt = read_name(resource, &mut errors);
    // A name of the wrong shape was reported as such; only an absent or blank one is missing.
    if errors.len() == num_errors_before_name && is_blank(name_opt.as_deref()) {
        errors.push(field_error("Patient.name", NAME_REQUIRED_MESSAGE));
    }
    let num_errors_before_birth_date = errors.len();
    let date_of_birth_opt =
        read_string(resource.get("birthDate"), "Patient.birthDate", &mut errors);
    if errors.len() == num_errors_before_birth_date && is_blank(date_of_birth_opt.as_deref()) {
        errors.push(field_error(
            "Patient.birthDate",
            BIRTH_DATE_REQUIRED_MESSAGE,
        ));
    }
    let fhir_extras = match FhirExtras::from_object(extras_of(resource)) {
        Ok(extras) => extras,
        Err(error) => {
            errors.extend_from_slice(error.field_errors());
            FhirExtras::default()
        }
    };
    let input = PatientInput {
        // Always a list: FHIR's update replaces the resource, so no identifier means none.
        identifiers: Some(identifiers),
        name: name_opt,
        email: read_email(resource, &mut errors),
        address: read_address(resource, &mut errors),
        date_of_birth: date_of_birth_opt,
        contact_optional: true,
        // Always set, for the same reason: what a FHIR update does not send, it removes.
        fhir_extras: Some(fhir_extras.as_ref().to_string()),
        // The registration date is the caller's to set.
        registered_date: None,
    };
    Ok((input, errors))
}

fn is_blank(text_opt: Option<&str>) -> bool {
    match text_opt {
        Some(text) => text.trim().is_empty(),
        None => true,
    }
}

/// The elements kept verbatim: every top-level element but Ward's own and the `birthDate`,
/// and of the identifiers every one but the medical record number (which Ward renders).
fn extras_of(resource: &Map<String, Value>) -> Map<String, Value> {
    let mut extras = Map::new();
    for (element, value) in resource {
        if WARD_ELEMENTS.contains(&element.as_str()) || element == "birthDate" || value.is_null() {
            continue;
        }
        if element == "identifier"
            && let Value::Array(identifiers) = value
        {
            let mut kept = Vec::new();
            for identifier in identifiers {
                if identifier.get("system").and_then(Value::as_str) != Some(MRN_SYSTEM) {
                    kept.push(identifier.clone());
                }
            }
            if !kept.is_empty() {
                extras.insert(element.clone(), Value::Array(kept));
            }
            continue;
        }
        extras.insert(element.clone(), value.clone());
    }
    extras
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
        // FHIR allows an identifier without a value (the spec's f001 has one) or without a
        // system (ihe-pcd); Ward cannot keep either unique, so it keeps them verbatim only.
        let (Some(system_text), Some(value_text)) = (system.as_deref(), value.as_deref()) else {
            continue;
        };
        if system_text.trim().is_empty() || value_text.trim().is_empty() {
            continue;
        }
        let input = IdentifierInput { system, value };
        // The same pair twice (f201 lists one with two uses) is one identifier to Ward.
        if input.system.as_deref() != Some(MRN_SYSTEM) && !inputs.contains(&input) {
            inputs.push(input);
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
    use serde_json::json;
    use ward_bus::patients::Patient;

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
        assert_eq!(patient.email.as_deref(), Some("p@x.org"));
        assert_eq!(
            patient.address.as_deref(),
            Some("534 Erewhon St, PleasantVille, 3999")
        );
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
        assert_eq!(changes.address.as_deref(), Some("534 Erewhon St"));
    }

    #[test]
    fn everything_but_the_modelled_values_is_kept_and_email_and_address_are_optional() {
        let body = json!({
            "resourceType": "Patient",
            "id": "example",
            "meta": {"versionId": "9"},
            "gender": "female",
            "_birthDate": {"extension": [{"url": "http://example.org/time", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
            "identifier": [
                {"system": "urn:ward:mrn", "value": "MRN-1"},
                {"use": "usual", "system": "urn:oid:1.2", "value": "7"},
                {"use": "official", "system": "urn:oid:1.2", "value": "7"},
                {"value": "no-system"},
            ],
            "name": [{"family": "Solo"}],
            "birthDate": "2017-05-15",
        });
        let patient = new_patient(&body, registered()).unwrap();
        assert_eq!(patient.name, "Solo");
        assert_eq!((patient.email, patient.address), (None, None));
        assert_eq!(patient.identifiers.len(), 1);
        let extras = Value::Object(patient.fhir_extras.to_object());
        assert_eq!(
            extras,
            json!({
                "gender": "female",
                "_birthDate": body["_birthDate"],
                "identifier": &body["identifier"].as_array().unwrap()[1..],
                "name": body["name"],
            })
        );
    }

    #[test]
    fn a_missing_name_or_birth_date_is_named_once_saying_ward_requires_it() {
        let body = json!({"resourceType": "Patient", "gender": "male", "name": [{"use": "old"}]});
        let error = new_patient(&body, registered()).unwrap_err();
        let fields: Vec<(&str, &str)> = error
            .field_errors()
            .iter()
            .map(|error| (error.field.as_str(), error.message.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("Patient.name", NAME_REQUIRED_MESSAGE),
                ("Patient.birthDate", BIRTH_DATE_REQUIRED_MESSAGE),
            ]
        );
    }

    #[test]
    fn wrong_types_bad_contacts_and_other_ids_are_all_reported() {
        let body = json!({
            "resourceType": "Observation",
            "id": "other",
            "name": {"text": "x"},
            "telecom": [{"system": "email", "value": "not-an-email"}],
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
            "Patient.id",
            "Patient.name",
            "Patient.birthDate",
            "email",
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
            "birthDate": "2000-01-01",
        });
        assert!(new_patient(&body, registered()).is_ok());
    }

    fn stored() -> Patient {
        Patient {
            id: Uuid::from_u128(7),
            name: "Ada King Lovelace".into(),
            email: Some("ada@example.org".into()),
            address: Some("12 St James Sq".into()),
            date_of_birth: NaiveDate::from_ymd_opt(1815, 12, 10).unwrap(),
            registered_date: registered(),
            version: 3,
            mrn: "MRN-00000042".into(),
            identifiers: Vec::new(),
            merged_into_opt: None,
            fhir_extras: FhirExtras::default(),
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
        let sent_back = patient_changes(&resource, id, Some("MRN-00000042")).unwrap();
        // The MRN is Ward's: it is not kept among the extras.
        let kept = sent_back.fhir_extras_opt.unwrap().to_object();
        assert!(!kept.contains_key("identifier"), "{kept:?}");

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

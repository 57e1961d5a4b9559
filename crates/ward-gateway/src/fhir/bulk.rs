//! The lines of a bulk export or import (NDJSON): one FHIR `Patient` per line, mapped as the
//! single-resource routes map it, plus the registration date (which FHIR has no element for) in
//! an extension, so that an export imported elsewhere keeps it.

use chrono::NaiveDate;
use serde_json::{Value, json};
use uuid::Uuid;
use ward_bus::patients::{DATE_FORMAT, NewPatient, Patient, format_date};
use ward_core::{WardError, WardResult};

use super::patient::{new_patient, patient_resource};
use crate::JSON_BODY_LIMIT_BYTES;

/// The extension carrying the registration date (`valueDate`).
pub const REGISTERED_DATE_EXTENSION: &str = "urn:ward:registered-date";

/// Returns the FHIR `Patient` of a bulk export: the single-resource form plus the registration
/// date extension.
pub fn bulk_patient_resource(patient: &Patient) -> Value {
    let mut resource = patient_resource(patient, None);
    let registered_date = json!({
        "url": REGISTERED_DATE_EXTENSION,
        "valueDate": format_date(patient.registered_date),
    });
    // After the patient's own extensions, which the import keeps as they are.
    match resource.get_mut("extension").and_then(Value::as_array_mut) {
        Some(extensions) => extensions.push(registered_date),
        None => resource["extension"] = json!([registered_date]),
    }
    resource
}

/// Reads one line of a bulk import: a FHIR `Patient`, validated exactly as
/// `POST /fhir/Patient` validates its body, except that an `id` that is a UUID is returned to
/// be kept (so an export imported again finds its records) and the registration date comes
/// from its extension when present, else is `today`.
pub fn parse_bulk_patient(line: &str, today: NaiveDate) -> WardResult<(Option<Uuid>, NewPatient)> {
    if line.len() > JSON_BODY_LIMIT_BYTES {
        return Err(WardError::invalid(
            format!("a resource may take at most {JSON_BODY_LIMIT_BYTES} bytes"),
            Vec::new(),
        ));
    }
    let mut body: Value = serde_json::from_str(line).map_err(|error| {
        // The input is one line, so serde's "at line 1 column N" says only the column.
        let reason = error
            .to_string()
            .replace(" at line 1 column ", " at column ");
        WardError::invalid(format!("not a JSON resource ({reason})"), Vec::new())
    })?;
    let registered_date_opt = take_registered_date(&mut body)?;
    let id_opt = body
        .get("id")
        .and_then(Value::as_str)
        .and_then(|raw| Uuid::parse_str(raw.trim()).ok());
    let patient = new_patient(&body, registered_date_opt.unwrap_or(today))?;
    Ok((id_opt, patient))
}

/// Removes Ward's registration date extension from `body` and returns its date. Other
/// extensions stay, kept verbatim like any element Ward does not model.
fn take_registered_date(body: &mut Value) -> WardResult<Option<NaiveDate>> {
    let Some(extensions) = body.get_mut("extension").and_then(Value::as_array_mut) else {
        return Ok(None);
    };
    let position_opt = extensions.iter().position(|extension| {
        extension.get("url").and_then(Value::as_str) == Some(REGISTERED_DATE_EXTENSION)
    });
    let Some(position) = position_opt else {
        return Ok(None);
    };
    let extension = extensions.remove(position);
    if extensions.is_empty()
        && let Some(resource) = body.as_object_mut()
    {
        resource.remove("extension");
    }
    let raw = extension
        .get("valueDate")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match NaiveDate::parse_from_str(raw, DATE_FORMAT) {
        Ok(date) => Ok(Some(date)),
        Err(_) => Err(WardError::invalid_field(
            "Patient.extension",
            format!(
                "the {REGISTERED_DATE_EXTENSION} extension needs a valueDate in yyyy-MM-dd format"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()
    }

    fn stored() -> Patient {
        Patient {
            id: Uuid::now_v7(),
            name: "Ada King Lovelace".into(),
            email: Some("ada@example.org".into()),
            address: Some("12 St James Sq".into()),
            date_of_birth: NaiveDate::from_ymd_opt(1815, 12, 10).unwrap(),
            registered_date: NaiveDate::from_ymd_opt(2020, 5, 6).unwrap(),
            version: 3,
            mrn: "MRN-00000042".into(),
            identifiers: Vec::new(),
            merged_into_opt: None,
            fhir_extras: ward_bus::patients::FhirExtras::default(),
        }
    }

    #[test]
    fn an_exported_line_reads_back_as_the_same_record() {
        let patient = stored();
        let line = bulk_patient_resource(&patient).to_string();
        let (id_opt, new) = parse_bulk_patient(&line, today()).unwrap();
        assert_eq!(id_opt, Some(patient.id));
        assert_eq!(new.name, patient.name);
        assert_eq!(new.email, patient.email);
        assert_eq!(new.address, patient.address);
        assert_eq!(new.date_of_birth, patient.date_of_birth);
        assert_eq!(new.registered_date, patient.registered_date);
    }

    #[test]
    fn the_patients_own_extensions_travel_beside_the_registration_date() {
        let mut patient = stored();
        let own = json!({"url": "http://example.org/pet", "valueString": "cat"});
        let extras = json!({"extension": [own], "gender": "female"});
        patient.fhir_extras = ward_bus::patients::FhirExtras::parse(&extras.to_string()).unwrap();
        let resource = bulk_patient_resource(&patient);
        assert_eq!(resource["extension"][0], own);
        assert_eq!(resource["extension"][1]["url"], REGISTERED_DATE_EXTENSION);
        let (_, new) = parse_bulk_patient(&resource.to_string(), today()).unwrap();
        assert_eq!(new.registered_date, patient.registered_date);
        let kept = new.fhir_extras.to_object();
        assert_eq!(kept["extension"], json!([own]));
        assert_eq!(kept["gender"], "female");
    }

    #[test]
    fn a_line_without_a_uuid_or_the_extension_gets_a_new_id_and_today() {
        let mut resource = bulk_patient_resource(&stored());
        resource["id"] = json!("example");
        resource.as_object_mut().unwrap().remove("extension");
        let (id_opt, new) = parse_bulk_patient(&resource.to_string(), today()).unwrap();
        assert_eq!(id_opt, None);
        assert_eq!(new.registered_date, today());
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        let error = parse_bulk_patient("{not json", today()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "not a JSON resource (key must be a string at column 2)"
        );
        assert!(parse_bulk_patient("[]", today()).is_err());
        let mut resource = bulk_patient_resource(&stored());
        resource["extension"][0]["valueDate"] = json!("May 6");
        let error = parse_bulk_patient(&resource.to_string(), today()).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "Patient.extension");
        let huge = format!("{{\"x\": \"{}\"}}", "a".repeat(JSON_BODY_LIMIT_BYTES));
        assert!(parse_bulk_patient(&huge, today()).is_err());
    }
}

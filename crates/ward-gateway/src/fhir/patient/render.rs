//! Rendering a Ward record as a FHIR `Patient`: the elements Ward models, merged with the
//! elements it keeps verbatim ([`FhirExtras`]).
//!
//! Ward's record wins for what it models. A stored `name[0]`, email `telecom` or `address[0]`
//! is sent verbatim while it still says what the record says (so a client reads back what it
//! wrote); once the record says otherwise (a REST rename, say), that element is rendered from
//! the record, keeping only its properties that do not carry the value (`use`, `period`...).
//! Stored identifiers are sent while the patient still holds them (or when they identify
//! nothing Ward indexes: no value or no system); identifiers the record holds and the extras do
//! not mention are added.
//!
//! [`FhirExtras`]: ward_bus::patients::FhirExtras

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use ward_bus::patients::{Patient, PatientIdentifier, format_date};

use super::elements::{address_of_entry, name_of_entry};
use super::{IDENTIFIER_TYPE_SYSTEM, MODELLED_ELEMENTS};
use crate::identifier::MRN_SYSTEM;

/// The properties of a `HumanName` that do not spell the name, kept when it is re-rendered.
const NAME_CONTEXT: [&str; 4] = ["id", "extension", "use", "period"];
/// The properties of an `Address` that do not spell the address, kept when it is re-rendered.
const ADDRESS_CONTEXT: [&str; 5] = ["id", "extension", "use", "type", "period"];

/// Returns the FHIR `Patient` for a Ward record; `last_updated_opt` fills `meta.lastUpdated`
/// when the caller knows it (a history entry does, a plain read does not).
pub(crate) fn patient_resource(
    patient: &Patient,
    last_updated_opt: Option<DateTime<Utc>>,
) -> Value {
    let extras = patient.fhir_extras.to_object();
    let mut resource = Map::new();
    for (element, value) in &extras {
        if !MODELLED_ELEMENTS.contains(&element.as_str()) {
            resource.insert(element.clone(), value.clone());
        }
    }
    let mut meta = json!({"versionId": patient.version.to_string()});
    if let Some(last_updated) = last_updated_opt {
        meta["lastUpdated"] =
            json!(last_updated.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    resource.insert("resourceType".into(), json!("Patient"));
    resource.insert("id".into(), json!(patient.id.to_string()));
    resource.insert("meta".into(), meta);
    let stored = |element: &str| -> Vec<Value> {
        match extras.get(element) {
            Some(Value::Array(entries)) => entries.clone(),
            _ => Vec::new(),
        }
    };
    resource.insert(
        "identifier".into(),
        Value::Array(identifiers(patient, stored("identifier"))),
    );
    resource.insert(
        "name".into(),
        Value::Array(names(&patient.name, stored("name"))),
    );
    let telecom = telecoms(patient.email.as_deref(), stored("telecom"));
    if !telecom.is_empty() {
        resource.insert("telecom".into(), Value::Array(telecom));
    }
    let address = addresses(patient.address.as_deref(), stored("address"));
    if !address.is_empty() {
        resource.insert("address".into(), Value::Array(address));
    }
    resource.insert(
        "birthDate".into(),
        json!(format_date(patient.date_of_birth)),
    );
    // A merged duplicate points at the record that replaced it, as FHIR's own merge does.
    if let Some(target) = patient.merged_into_opt {
        resource.insert("active".into(), json!(false));
        let mut links = match resource.remove("link") {
            Some(Value::Array(links)) => links,
            _ => Vec::new(),
        };
        links.push(json!({
            "other": {"reference": format!("Patient/{target}")},
            "type": "replaced-by",
        }));
        resource.insert("link".into(), Value::Array(links));
    }
    Value::Object(resource)
}

/// The MRN, then the stored identifiers the patient still holds (or that Ward does not index),
/// in their order, then those the record holds and the extras do not mention.
fn identifiers(patient: &Patient, stored: Vec<Value>) -> Vec<Value> {
    let mrn = json!({
        "use": "usual",
        "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "MR"}]},
        "system": MRN_SYSTEM,
        "value": patient.mrn,
    });
    let mut rendered = vec![mrn];
    let mut mentioned = HashSet::new();
    for entry in stored {
        match indexed_pair(&entry) {
            Some(pair) if patient.identifiers.contains(&pair) => {
                mentioned.insert(pair);
                rendered.push(entry);
            }
            // Taken away since (a REST update, a merge moving it): the record wins.
            Some(_) => {}
            None => rendered.push(entry),
        }
    }
    for identifier in &patient.identifiers {
        if !mentioned.contains(identifier) {
            rendered.push(json!({"system": identifier.system, "value": identifier.value}));
        }
    }
    rendered
}

/// The `(system, value)` Ward indexes an identifier under; `None` when it lacks either.
pub(super) fn indexed_pair(entry: &Value) -> Option<PatientIdentifier> {
    let text = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    Some(PatientIdentifier {
        system: text("system")?,
        value: text("value")?,
    })
}

fn names(name: &str, mut stored: Vec<Value>) -> Vec<Value> {
    let first_opt = stored.first().and_then(Value::as_object);
    let says_name = match first_opt {
        Some(first) => trimmed(name_of_entry(first, &mut Vec::new())).as_deref() == Some(name),
        None => false,
    };
    if says_name {
        return stored;
    }
    let mut words: Vec<&str> = name.split_whitespace().collect();
    let family_opt = words.pop();
    let mut rendered = json!({"text": name});
    if let Some(family) = family_opt {
        rendered["family"] = json!(family);
    }
    if !words.is_empty() {
        rendered["given"] = json!(words);
    }
    replace_first(&mut stored, rendered, &NAME_CONTEXT);
    stored
}

fn telecoms(email_opt: Option<&str>, mut stored: Vec<Value>) -> Vec<Value> {
    let position_opt = stored
        .iter()
        .position(|point| point.get("system").and_then(Value::as_str) == Some("email"));
    let stored_email_opt = position_opt.and_then(|position| {
        let value_opt = stored[position].get("value").and_then(Value::as_str);
        trimmed(value_opt.map(str::to_string))
    });
    if stored_email_opt.as_deref() == email_opt {
        return stored;
    }
    match (position_opt, email_opt) {
        (Some(position), Some(email)) => stored[position]["value"] = json!(email),
        (Some(position), None) => {
            stored.remove(position);
        }
        (None, Some(email)) => stored.push(json!({"system": "email", "value": email})),
        (None, None) => {}
    }
    stored
}

fn addresses(address_opt: Option<&str>, mut stored: Vec<Value>) -> Vec<Value> {
    let first_opt = stored.first().and_then(Value::as_object);
    let stored_address_opt = match first_opt {
        Some(first) => {
            trimmed(address_of_entry(first, &mut Vec::new())).map(|text| text.replace("\r\n", "\n"))
        }
        None => None,
    };
    if stored_address_opt.as_deref() == address_opt {
        return stored;
    }
    match address_opt {
        Some(address) => replace_first(&mut stored, json!({"text": address}), &ADDRESS_CONTEXT),
        None => {
            stored.remove(0);
        }
    }
    stored
}

/// Puts `rendered` first in `entries`, in place of the stored first entry, whose `context`
/// properties it takes over.
fn replace_first(entries: &mut Vec<Value>, mut rendered: Value, context: &[&str]) {
    let Some(first) = entries.first() else {
        entries.push(rendered);
        return;
    };
    for key in context {
        if let Some(value) = first.get(*key) {
            rendered[*key] = value.clone();
        }
    }
    entries[0] = rendered;
}

/// `text` trimmed, `None` when blank: how the domain reads a name, email or address.
fn trimmed(text_opt: Option<String>) -> Option<String> {
    text_opt
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use uuid::Uuid;
    use ward_bus::patients::FhirExtras;

    use super::*;

    fn patient(extras: Value) -> Patient {
        Patient {
            id: Uuid::from_u128(7),
            name: "Peter James Chalmers".into(),
            email: Some("peter@example.org".into()),
            address: Some("534 Erewhon St".into()),
            date_of_birth: NaiveDate::from_ymd_opt(1974, 12, 25).unwrap(),
            registered_date: NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
            version: 2,
            mrn: "MRN-00000042".into(),
            identifiers: vec![PatientIdentifier {
                system: "urn:oid:1.2.36".into(),
                value: "12345".into(),
            }],
            merged_into_opt: None,
            fhir_extras: FhirExtras::parse(&extras.to_string()).unwrap(),
        }
    }

    fn extras() -> Value {
        json!({
            "gender": "male",
            "identifier": [
                {"use": "usual", "system": "urn:oid:1.2.36", "value": "12345"},
                {"system": "urn:oid:1.2.36"},
            ],
            "name": [
                {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
                {"use": "nickname", "given": ["Jim"]},
            ],
            "telecom": [
                {"system": "phone", "value": "(03) 5555 6473"},
                {"system": "email", "value": "peter@example.org", "use": "home"},
            ],
            "address": [
                {"use": "home", "line": ["534 Erewhon St"]},
                {"use": "old", "text": "1 Old Rd"},
            ],
        })
    }

    #[test]
    fn stored_elements_that_still_say_what_the_record_says_are_sent_verbatim() {
        let stored = extras();
        let resource = patient_resource(&patient(stored.clone()), None);
        assert_eq!(resource["gender"], "male");
        assert_eq!(resource["name"], stored["name"]);
        assert_eq!(resource["telecom"], stored["telecom"]);
        assert_eq!(resource["address"], stored["address"]);
        let identifiers = resource["identifier"].as_array().unwrap();
        assert_eq!(identifiers[0]["system"], MRN_SYSTEM);
        assert_eq!(
            identifiers[1..],
            stored["identifier"].as_array().unwrap()[..]
        );
    }

    #[test]
    fn elements_the_record_no_longer_says_are_rendered_from_it() {
        let mut renamed = patient(extras());
        renamed.name = "Jim Chalmers".into();
        renamed.email = Some("jim@example.org".into());
        renamed.address = Some("9 Oak Ave".into());
        renamed.identifiers = vec![PatientIdentifier {
            system: "urn:oid:9".into(),
            value: "1".into(),
        }];
        let resource = patient_resource(&renamed, None);
        assert_eq!(
            resource["name"],
            json!([
                {"use": "official", "text": "Jim Chalmers", "family": "Chalmers", "given": ["Jim"]},
                {"use": "nickname", "given": ["Jim"]},
            ])
        );
        assert_eq!(
            resource["telecom"][1],
            json!({"system": "email", "value": "jim@example.org", "use": "home"})
        );
        assert_eq!(
            resource["address"],
            json!([{"use": "home", "text": "9 Oak Ave"}, {"use": "old", "text": "1 Old Rd"}])
        );
        // The identifier taken away is gone, the one without a value stays, the new one is added.
        assert_eq!(
            resource["identifier"].as_array().unwrap()[1..],
            [
                json!({"system": "urn:oid:1.2.36"}),
                json!({"system": "urn:oid:9", "value": "1"}),
            ]
        );
    }

    #[test]
    fn a_record_without_extras_renders_as_before_and_a_merged_one_adds_its_link() {
        let mut plain = patient(json!({}));
        plain.email = None;
        plain.address = None;
        let resource = patient_resource(&plain, None);
        assert_eq!(
            resource["name"],
            json!([{"text": "Peter James Chalmers", "family": "Chalmers", "given": ["Peter", "James"]}])
        );
        assert!(resource.get("telecom").is_none());
        assert!(resource.get("address").is_none());
        plain.name = "Cher".into();
        let one_word = patient_resource(&plain, None);
        assert_eq!(
            one_word["name"],
            json!([{"text": "Cher", "family": "Cher"}])
        );

        let mut merged = patient(json!({
            "active": true,
            "link": [{"other": {"reference": "Patient/x"}, "type": "seealso"}],
        }));
        merged.merged_into_opt = Some(Uuid::from_u128(8));
        let resource = patient_resource(&merged, None);
        assert_eq!(resource["active"], false);
        assert_eq!(resource["link"].as_array().unwrap().len(), 2);
        assert_eq!(resource["link"][1]["type"], "replaced-by");
    }
}

//! Reading the elements Ward keeps out of a FHIR `Patient`: the name, the email, the address
//! and single strings, each failure collected as a [`FieldError`] named by its FHIRPath.

use serde_json::{Map, Value};
use ward_core::FieldError;

pub(super) fn read_name(
    resource: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let first = first_entry(resource, "name", errors)?;
    name_of_entry(first, errors)
}

/// The name a `HumanName` says: its `text`, else its `given` names and `family` joined.
pub(super) fn name_of_entry(
    first: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    if let Some(text) = read_string(first.get("text"), "Patient.name.text", errors)
        && !text.trim().is_empty()
    {
        return Some(text);
    }
    let mut words = Vec::new();
    match first.get("given") {
        None | Some(Value::Null) => {}
        Some(Value::Array(given)) => {
            for part in given {
                match part.as_str() {
                    Some(text) => words.push(text.to_string()),
                    None => {
                        errors.push(field_error(
                            "Patient.name.given",
                            "Patient.name.given must be a list of strings",
                        ));
                        return None;
                    }
                }
            }
        }
        Some(_) => {
            errors.push(field_error(
                "Patient.name.given",
                "Patient.name.given must be a list of strings",
            ));
            return None;
        }
    }
    if let Some(family) = read_string(first.get("family"), "Patient.name.family", errors) {
        words.push(family);
    }
    let joined = words.join(" ");
    Some(joined)
}

/// The value of the first `telecom` with `system` `email`: the one email Ward keeps.
pub(super) fn read_email(
    resource: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let telecoms = list(resource, "telecom", errors)?;
    for telecom in telecoms {
        let Some(point) = telecom.as_object() else {
            errors.push(field_error(
                "Patient.telecom",
                "Patient.telecom must be a list of ContactPoint objects",
            ));
            return None;
        };
        if point.get("system").and_then(Value::as_str) == Some("email") {
            return read_string(point.get("value"), "Patient.telecom.value", errors);
        }
    }
    None
}

pub(super) fn read_address(
    resource: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let first = first_entry(resource, "address", errors)?;
    address_of_entry(first, errors)
}

/// The address an `Address` says: its `text`, else its `line`s, `city` and `postalCode`
/// joined.
pub(super) fn address_of_entry(
    first: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    if let Some(text) = read_string(first.get("text"), "Patient.address.text", errors)
        && !text.trim().is_empty()
    {
        return Some(text);
    }
    let mut parts = Vec::new();
    match first.get("line") {
        None | Some(Value::Null) => {}
        Some(Value::Array(lines)) => {
            for line in lines {
                match line.as_str() {
                    Some(text) => parts.push(text.to_string()),
                    None => {
                        errors.push(field_error(
                            "Patient.address.line",
                            "Patient.address.line must be a list of strings",
                        ));
                        return None;
                    }
                }
            }
        }
        Some(_) => {
            errors.push(field_error(
                "Patient.address.line",
                "Patient.address.line must be a list of strings",
            ));
            return None;
        }
    }
    for (key, path) in [
        ("city", "Patient.address.city"),
        ("postalCode", "Patient.address.postalCode"),
    ] {
        if let Some(part) = read_string(first.get(key), path, errors) {
            parts.push(part);
        }
    }
    let joined = parts.join(", ");
    Some(joined)
}

/// The elements of a top-level list; `None` when absent or not a list (the latter reported).
pub(super) fn list<'a>(
    resource: &'a Map<String, Value>,
    element: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a Vec<Value>> {
    match resource.get(element) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items),
        Some(_) => {
            errors.push(field_error(
                &format!("Patient.{element}"),
                &format!("Patient.{element} must be a list"),
            ));
            None
        }
    }
}

/// The first object of a top-level list.
fn first_entry<'a>(
    resource: &'a Map<String, Value>,
    element: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    let first = list(resource, element, errors)?.first()?;
    match first.as_object() {
        Some(object) => Some(object),
        None => {
            errors.push(field_error(
                &format!("Patient.{element}"),
                &format!("Patient.{element} must be a list of objects"),
            ));
            None
        }
    }
}

/// A string value; absent and `null` are `None`, another type is reported.
pub(super) fn read_string(
    value_opt: Option<&Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value_opt {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            errors.push(field_error(path, &format!("{path} must be a string")));
            None
        }
    }
}

pub(super) fn field_error(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.to_string(),
    }
}

//! A patient's further identifiers in JSON: `"identifiers": [{"system", "value"}]`.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use ward_bus::patients::{IdentifierInput, PatientIdentifier};
use ward_core::FieldError;

use super::fields::{UNKNOWN_FIELD_ECHO_MAX_CHARS, field_error, text_field};

/// A further identifier (insurance number, national id, another system's record number); each
/// `(system, value)` belongs to one patient. The medical record number is `mrn`, not one of
/// these.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Identifier)]
pub(crate) struct IdentifierDto {
    /// An absolute URI naming the issuer; `urn:ward:mrn` is reserved.
    #[schema(max_length = 255, example = "urn:oid:2.16.840.1.113883.2.4.6.3")]
    system: String,
    /// Without `|` or control characters.
    #[schema(max_length = 64, example = "738472983")]
    value: String,
}

impl From<PatientIdentifier> for IdentifierDto {
    fn from(identifier: PatientIdentifier) -> Self {
        Self {
            system: identifier.system,
            value: identifier.value,
        }
    }
}

/// Reads the raw `identifiers` member: absent or `null` is `None`; otherwise it must be an array
/// of objects with exactly `system` and `value`. Shape errors are reported by path
/// (`identifiers[1].value`); the values themselves are checked by the domain parser.
pub(super) fn identifiers_field(
    value_opt: Option<Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<IdentifierInput>> {
    let items = match value_opt {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(field_error(
                "identifiers",
                "identifiers must be an array of {system, value} objects",
            ));
            return None;
        }
    };
    let mut inputs = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(mut members) = item else {
            errors.push(field_error(
                &format!("identifiers[{index}]"),
                format!("identifiers[{index}] must be an object with system and value"),
            ));
            continue;
        };
        let system = text_field(
            members.remove("system"),
            &format!("identifiers[{index}].system"),
            errors,
        );
        let value = text_field(
            members.remove("value"),
            &format!("identifiers[{index}].value"),
            errors,
        );
        for name in members.keys() {
            let shown: String = name.chars().take(UNKNOWN_FIELD_ECHO_MAX_CHARS).collect();
            errors.push(field_error(
                &format!("identifiers[{index}].{shown}"),
                "unknown field",
            ));
        }
        inputs.push(IdentifierInput { system, value });
    }
    Some(inputs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shapes_are_checked_by_path() {
        let mut errors = Vec::new();
        let inputs = identifiers_field(
            Some(json!([
                {"system": "urn:x", "value": "1"},
                5,
                {"system": 7, "value": "2", "use": "official"}
            ])),
            &mut errors,
        )
        .unwrap();
        let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "identifiers[1]",
                "identifiers[2].system",
                "identifiers[2].use"
            ]
        );
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[0].value.as_deref(), Some("1"));
    }

    #[test]
    fn absent_or_null_means_unchanged_and_other_types_are_refused() {
        let mut errors = Vec::new();
        assert!(identifiers_field(None, &mut errors).is_none());
        assert!(identifiers_field(Some(Value::Null), &mut errors).is_none());
        assert!(identifiers_field(Some(json!({})), &mut errors).is_none());
        assert_eq!(errors[0].field, "identifiers");
    }
}

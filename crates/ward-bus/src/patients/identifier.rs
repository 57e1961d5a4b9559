//! A patient's further identifiers (insurance number, national id, another system's record
//! number): `{system, value}` pairs, each pair belonging to at most one patient.
//!
//! The medical record number is not one of them: Ward assigns it (see [`MRN_SYSTEM`]).

use serde::{Deserialize, Serialize};
use ward_core::FieldError;

/// The `system` of the medical record number, as FHIR clients see it; reserved.
pub const MRN_SYSTEM: &str = "urn:ward:mrn";
/// The longest identifier `system` accepted (a URI).
pub const IDENTIFIER_SYSTEM_MAX_CHARS: usize = 255;
/// The longest identifier `value` accepted.
pub const IDENTIFIER_VALUE_MAX_CHARS: usize = 64;
/// How many further identifiers one patient may carry.
pub const IDENTIFIERS_MAX: usize = 20;

/// One further identifier. Serialized as `{"system", "value"}`, in the API, in events and in
/// the database's copy on the patient row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PatientIdentifier {
    /// An absolute URI naming the issuer, e.g. `urn:oid:2.16.840.1.113883.2.4.6.3` or
    /// `https://clinic.example/insurance`.
    pub system: String,
    pub value: String,
}

impl std::fmt::Display for PatientIdentifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}|{}", self.system, self.value)
    }
}

/// An identifier as it arrives; `None` means absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentifierInput {
    pub system: Option<String>,
    pub value: Option<String>,
}

/// Parses a list of identifiers, reporting each failure under `identifiers[i].system` or
/// `identifiers[i].value`. The result is sorted by system then value (one canonical order, so
/// two lists with the same pairs are equal) and has no duplicates.
pub(crate) fn parse_identifiers(
    inputs: Vec<IdentifierInput>,
    errors: &mut Vec<FieldError>,
) -> Vec<PatientIdentifier> {
    if inputs.len() > IDENTIFIERS_MAX {
        errors.push(field_error(
            "identifiers",
            format!("a patient carries at most {IDENTIFIERS_MAX} identifiers"),
        ));
        return Vec::new();
    }
    let mut identifiers = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        let system_opt = parse_system(input.system, index, errors);
        let value_opt = parse_value(input.value, index, errors);
        if let (Some(system), Some(value)) = (system_opt, value_opt) {
            let identifier = PatientIdentifier { system, value };
            if identifiers.contains(&identifier) {
                errors.push(field_error(
                    &format!("identifiers[{index}]"),
                    format!("identifier {identifier} is listed twice"),
                ));
            } else {
                identifiers.push(identifier);
            }
        }
    }
    identifiers.sort();
    identifiers
}

fn parse_system(
    raw_opt: Option<String>,
    index: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let field = format!("identifiers[{index}].system");
    let Some(system) = raw_opt
        .map(|raw| raw.trim().to_string())
        .filter(|raw| !raw.is_empty())
    else {
        errors.push(field_error(&field, format!("{field} is required")));
        return None;
    };
    if system == MRN_SYSTEM {
        errors.push(field_error(
            &field,
            format!("{MRN_SYSTEM} is the medical record number, which Ward assigns"),
        ));
        return None;
    }
    if system.chars().count() > IDENTIFIER_SYSTEM_MAX_CHARS || !is_absolute_uri(&system) {
        errors.push(field_error(
            &field,
            format!(
                "{field} must be an absolute URI (e.g. urn:oid:1.2.3 or https://issuer.example/ids) \
                 of at most {IDENTIFIER_SYSTEM_MAX_CHARS} characters"
            ),
        ));
        return None;
    }
    Some(system)
}

fn parse_value(
    raw_opt: Option<String>,
    index: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let field = format!("identifiers[{index}].value");
    let Some(value) = raw_opt
        .map(|raw| raw.trim().to_string())
        .filter(|raw| !raw.is_empty())
    else {
        errors.push(field_error(&field, format!("{field} is required")));
        return None;
    };
    // `|` separates system and value in a search (`identifier=system|value`).
    if value.chars().any(|c| c.is_control() || c == '|')
        || value.chars().count() > IDENTIFIER_VALUE_MAX_CHARS
    {
        errors.push(field_error(
            &field,
            format!(
                "{field} must be at most {IDENTIFIER_VALUE_MAX_CHARS} characters, without control \
                 characters or |"
            ),
        ));
        return None;
    }
    Some(value)
}

/// RFC 3986's `scheme ":" rest`, with no whitespace or control characters anywhere.
fn is_absolute_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok
        && !rest.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '|')
}

/// What an `identifier` search parameter asks for: FHIR's token syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierFilter<'a> {
    /// `value`: the medical record number or any further identifier with this value.
    AnySystem(&'a str),
    /// `urn:ward:mrn|value`: the medical record number only.
    Mrn(&'a str),
    /// `system|value`: that further identifier.
    System { system: &'a str, value: &'a str },
}

impl<'a> IdentifierFilter<'a> {
    /// Reads a (validated) `identifier` parameter.
    pub fn of(raw: &'a str) -> Self {
        match raw.split_once('|') {
            None => Self::AnySystem(raw),
            Some((MRN_SYSTEM, value)) => Self::Mrn(value),
            // `|value` is FHIR for "no system": Ward's identifiers always have one.
            Some(("", value)) => Self::AnySystem(value),
            Some((system, value)) => Self::System { system, value },
        }
    }
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(system: &str, value: &str) -> IdentifierInput {
        IdentifierInput {
            system: Some(system.into()),
            value: Some(value.into()),
        }
    }

    #[test]
    fn identifiers_are_trimmed_sorted_and_checked() {
        let mut errors = Vec::new();
        let parsed = parse_identifiers(
            vec![
                input(" urn:oid:2.16.840.1.113883.2.4.6.3 ", " 738472983 "),
                input("https://insurer.example/members", "A-1"),
            ],
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(parsed[0].system, "https://insurer.example/members");
        assert_eq!(parsed[1].value, "738472983");
    }

    #[test]
    fn every_bad_identifier_is_named() {
        let mut errors = Vec::new();
        parse_identifiers(
            vec![
                input("not a uri", "1"),
                input(MRN_SYSTEM, "MRN-1"),
                IdentifierInput::default(),
                input("urn:x", "a|b"),
                input("urn:x", "same"),
                input("urn:x", "same"),
                input("1urn:x", "1"),
                input("urn:", "1"),
            ],
            &mut errors,
        );
        let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "identifiers[0].system",
                "identifiers[1].system",
                "identifiers[2].system",
                "identifiers[2].value",
                "identifiers[3].value",
                "identifiers[5]",
                "identifiers[6].system",
                "identifiers[7].system",
            ]
        );
    }

    #[test]
    fn too_many_identifiers_are_refused() {
        let mut errors = Vec::new();
        let many = (0..=IDENTIFIERS_MAX)
            .map(|index| input("urn:x", &index.to_string()))
            .collect();
        assert!(parse_identifiers(many, &mut errors).is_empty());
        assert_eq!(errors[0].field, "identifiers");
    }

    #[test]
    fn search_tokens_read_as_fhir_does() {
        assert_eq!(
            IdentifierFilter::of("MRN-1"),
            IdentifierFilter::AnySystem("MRN-1")
        );
        assert_eq!(
            IdentifierFilter::of("urn:ward:mrn|MRN-1"),
            IdentifierFilter::Mrn("MRN-1")
        );
        assert_eq!(IdentifierFilter::of("|7"), IdentifierFilter::AnySystem("7"));
        assert_eq!(
            IdentifierFilter::of("urn:x|7"),
            IdentifierFilter::System {
                system: "urn:x",
                value: "7"
            }
        );
    }
}

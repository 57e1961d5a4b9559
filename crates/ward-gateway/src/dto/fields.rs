//! Reading request fields leniently: every field arrives as raw JSON and is checked here, so a
//! wrong type becomes a field error reported together with the domain parser's own.

use serde_json::Value;
use ward_core::{FieldError, WardError, WardResult};

/// Reads a text field: absent or `null` is `None`, any non-string is a field error, and so is a
/// string with NUL or another control character inside its trimmed text (`Cc`; format characters
/// such as bidi marks and zero-width joiners are data). Line breaks pass here: a postal address
/// may span lines, and the bus's parsers, which check patient fields again for gRPC callers too,
/// decide per field.
fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\r'
}

pub(super) fn text_field(
    value_opt: Option<Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value_opt {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().chars().any(is_forbidden_control) => {
            errors.push(field_error(
                field,
                format!("{field} must not contain control characters"),
            ));
            None
        }
        Some(Value::String(text)) => Some(text),
        Some(_) => {
            errors.push(field_error(field, format!("{field} must be a string")));
            None
        }
    }
}

/// Reads a boolean field: absent or `null` is `None`, any other non-boolean is a field error.
pub(super) fn bool_field(
    value_opt: Option<Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<bool> {
    match value_opt {
        None | Some(Value::Null) => None,
        Some(Value::Bool(flag)) => Some(flag),
        Some(_) => {
            errors.push(field_error(field, format!("{field} must be a boolean")));
            None
        }
    }
}

/// Reads an integer field within `range`: absent or `null` is `None`. A number with a zero
/// fraction (`60.0`) counts as an integer, as JSON Schema's `integer` type has it.
pub(super) fn integer_field(
    value_opt: Option<Value>,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    let number = match value_opt {
        None | Some(Value::Null) => return None,
        Some(Value::Number(number)) => number,
        Some(_) => {
            errors.push(field_error(field, format!("{field} must be an integer")));
            return None;
        }
    };
    let integer_opt = match number.as_i64() {
        Some(integer) => Some(integer),
        // `60.0`, or a whole number beyond i64; `as` saturates, which keeps the latter out of
        // any range.
        None => number
            .as_f64()
            .filter(|float| float.fract() == 0.0)
            .map(|float| float as i64),
    };
    let Some(integer) = integer_opt else {
        errors.push(field_error(field, format!("{field} must be an integer")));
        return None;
    };
    if !range.contains(&integer) {
        let (min, max) = (range.start(), range.end());
        errors.push(field_error(
            field,
            format!("{field} must be between {min} and {max}"),
        ));
        return None;
    }
    Some(integer)
}

/// Fails a text field longer than `max_chars` characters.
pub(super) fn at_most_chars(
    text_opt: Option<String>,
    field: &str,
    max_chars: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let text = text_opt?;
    if text.chars().count() > max_chars {
        errors.push(field_error(
            field,
            format!("{field} must be at most {max_chars} characters"),
        ));
        return None;
    }
    Some(text)
}

/// Fails a text field longer than `max_bytes` bytes of UTF-8 (secrets that get hashed, where
/// the cost follows the bytes).
pub(super) fn at_most_bytes(
    text_opt: Option<String>,
    field: &str,
    max_bytes: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let text = text_opt?;
    if text.len() > max_bytes {
        errors.push(field_error(
            field,
            format!("{field} must be at most {max_bytes} bytes"),
        ));
        return None;
    }
    Some(text)
}

/// The longest unknown member name quoted back in a problem; the name is the caller's text.
pub(super) const UNKNOWN_FIELD_ECHO_MAX_CHARS: usize = 100;

/// Reports every member a body does not define, so a misspelt field (`dateofbirth`) or a field
/// the client hopes the server will trust (`id`, `role`) is a 400 instead of silently dropped.
pub(super) fn unknown_fields(
    unknown: &std::collections::BTreeMap<String, Value>,
    errors: &mut Vec<FieldError>,
) {
    for name in unknown.keys() {
        let shown: String = name.chars().take(UNKNOWN_FIELD_ECHO_MAX_CHARS).collect();
        errors.push(field_error(&shown, "unknown field"));
    }
}

/// Checks that a field that is not a domain value (login's) is present and not blank.
pub(super) fn required(
    text_opt: Option<String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let is_reported = errors.iter().any(|error| error.field == field);
    match text_opt {
        Some(text) if !text.trim().is_empty() => Some(text),
        _ if is_reported => None,
        _ => {
            errors.push(field_error(field, format!("{field} is required")));
            None
        }
    }
}

/// Merges wrong-type errors into a parse result, keeping the parser's field order. A wrongly typed
/// field was passed to the parser as absent, so its "is required" is replaced by the type error.
pub(super) fn with_type_errors<T>(
    parsed: WardResult<T>,
    type_errors: Vec<FieldError>,
) -> WardResult<T> {
    if type_errors.is_empty() {
        return parsed;
    }
    let parse_errors = match &parsed {
        Ok(_) => Vec::new(),
        Err(error) => error.field_errors().to_vec(),
    };
    let mut errors: Vec<FieldError> = Vec::new();
    for parse_error in parse_errors {
        let type_error_opt = type_errors
            .iter()
            .find(|type_error| type_error.field == parse_error.field);
        match type_error_opt {
            Some(type_error) if errors.contains(type_error) => {}
            Some(type_error) => errors.push(type_error.clone()),
            None => errors.push(parse_error),
        }
    }
    for type_error in type_errors {
        if !errors.contains(&type_error) {
            errors.push(type_error);
        }
    }
    Err(invalid(errors))
}

pub(super) fn invalid(errors: Vec<FieldError>) -> WardError {
    let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
    WardError::invalid(messages.join("; "), errors)
}

pub(super) fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_error_replaces_the_required_error_in_place() {
        let parsed: WardResult<()> = Err(invalid(vec![
            field_error("name", "Name is required"),
            field_error("email", "Email is required"),
        ]));
        let merged = with_type_errors(parsed, vec![field_error("email", "email must be a string")]);
        let error = merged.unwrap_err();
        let messages: Vec<&str> = error
            .field_errors()
            .iter()
            .map(|error| error.message.as_str())
            .collect();
        assert_eq!(messages, vec!["Name is required", "email must be a string"]);
        assert_eq!(
            error.to_string(),
            "Name is required; email must be a string"
        );
    }

    #[test]
    fn a_type_error_alone_fails_an_otherwise_valid_parse() {
        let merged = with_type_errors(
            Ok(()),
            vec![field_error("limit", "limit must be an integer")],
        );
        assert_eq!(merged.unwrap_err().field_errors().len(), 1);
    }

    #[test]
    fn strings_pass_null_is_absent_and_other_types_are_named() {
        let mut errors = Vec::new();
        assert_eq!(
            text_field(Some(Value::from("x")), "name", &mut errors).as_deref(),
            Some("x")
        );
        assert_eq!(text_field(Some(Value::Null), "name", &mut errors), None);
        assert_eq!(text_field(Some(Value::from(5)), "name", &mut errors), None);
        assert_eq!(errors, vec![field_error("name", "name must be a string")]);
    }

    #[test]
    fn control_characters_are_named_but_bidi_and_zero_width_marks_are_data() {
        let mut errors = Vec::new();
        assert_eq!(
            text_field(Some(Value::from("Jo\u{0}hn")), "name", &mut errors),
            None
        );
        assert_eq!(
            text_field(Some(Value::from("a\u{9f}")), "password", &mut errors),
            None
        );
        let marked = "\u{202e}eoD\u{200b}";
        assert_eq!(
            text_field(Some(Value::from(marked)), "name", &mut errors).as_deref(),
            Some(marked)
        );
        assert_eq!(
            text_field(Some(Value::from(" John\n")), "name", &mut errors).as_deref(),
            Some(" John\n")
        );
        assert_eq!(
            errors,
            vec![
                field_error("name", "name must not contain control characters"),
                field_error("password", "password must not contain control characters"),
            ]
        );
    }
}

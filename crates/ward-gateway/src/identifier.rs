//! An identifier as a FHIR token, wherever a request names a patient by one: the FHIR search's
//! `identifier` and the `If-None-Exist` condition of both create routes. Ward's search reads
//! the token itself ([`ward_bus::patients::IdentifierFilter`]): `value` (the MRN or any
//! identifier's value), `urn:ward:mrn|value` (the MRN) or `system|value`.

/// The `Identifier.system` of the medical record number.
pub(crate) use ward_bus::patients::MRN_SYSTEM;

/// The longest system quoted back in a refusal; it is the caller's text.
const ECHO_MAX_CHARS: usize = 100;

/// Reads an `identifier` token for Ward's search. A blank token is absent; `system|` without a
/// value is refused.
pub(crate) fn identifier_token(raw: &str) -> Result<Option<String>, String> {
    let trimmed = raw.trim();
    if let Some((system, value)) = trimmed.split_once('|')
        && value.trim().is_empty()
    {
        let shown: String = system.chars().take(ECHO_MAX_CHARS).collect();
        return Err(format!("identifier needs a value after {shown}|"));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_value_or_a_system_and_a_value() {
        assert_eq!(identifier_token(" MRN-7 "), Ok(Some("MRN-7".to_string())));
        assert_eq!(
            identifier_token("urn:ward:mrn|MRN-7"),
            Ok(Some("urn:ward:mrn|MRN-7".to_string()))
        );
        assert_eq!(
            identifier_token("http://other|1"),
            Ok(Some("http://other|1".to_string()))
        );
        assert_eq!(identifier_token("  "), Ok(None));
        for bad in ["urn:ward:mrn|", "urn:ward:mrn| ", "http://other|"] {
            assert!(identifier_token(bad).is_err(), "{bad}");
        }
    }
}

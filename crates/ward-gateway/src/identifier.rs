//! The medical record number as a FHIR token, `value` or `system|value`, wherever a request
//! names a patient by it: the FHIR search's `identifier` and the `If-None-Exist` condition of
//! both create routes.

/// The `Identifier.system` of the medical record number.
pub(crate) const MRN_SYSTEM: &str = "urn:ward:mrn";

/// The longest system quoted back in a refusal; it is the caller's text.
const ECHO_MAX_CHARS: usize = 100;

/// Reads an `identifier` token, `value` or `system|value`, into a medical record number; the
/// only system is [`MRN_SYSTEM`]. A blank value is absent.
pub(crate) fn mrn_of_identifier(raw: &str) -> Result<Option<String>, String> {
    let trimmed = raw.trim();
    let Some((system, value)) = trimmed.split_once('|') else {
        return Ok((!trimmed.is_empty()).then(|| trimmed.to_string()));
    };
    if system != MRN_SYSTEM {
        let shown: String = system.chars().take(ECHO_MAX_CHARS).collect();
        return Err(format!(
            "unsupported identifier system \"{shown}\"; this server searches only {MRN_SYSTEM}"
        ));
    }
    if value.trim().is_empty() {
        return Err(format!("identifier needs a value after {MRN_SYSTEM}|"));
    }
    Ok(Some(value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_bare_value_or_the_mrn_system_and_a_value() {
        assert_eq!(mrn_of_identifier(" MRN-7 "), Ok(Some("MRN-7".to_string())));
        assert_eq!(
            mrn_of_identifier("urn:ward:mrn|MRN-7"),
            Ok(Some("MRN-7".to_string()))
        );
        assert_eq!(mrn_of_identifier("  "), Ok(None));
        for bad in ["http://other|1", "|1", "urn:ward:mrn|", "urn:ward:mrn| "] {
            assert!(mrn_of_identifier(bad).is_err(), "{bad}");
        }
    }
}

//! The parts of a FHIR `Patient` that Ward does not model, kept verbatim so that a FHIR client
//! reads back what it wrote (as HAPI and Medplum do): `gender`, `contact`, names after the
//! first, the properties of kept entries Ward has no column for, and so on. Which elements go
//! here, and how they are merged back, is the gateway's FHIR mapping; the patients module only
//! stores the object beside the record and in each history entry.

use serde_json::{Map, Value};
use ward_core::{WardError, WardResult};

/// The largest stored extras object, as JSON text. The gateway's 64 KiB body limit already
/// bounds a whole resource; this bound holds for every other way in (gRPC, bulk import).
pub const FHIR_EXTRAS_MAX_BYTES: usize = 64 * 1024;

/// A JSON object of FHIR `Patient` elements, as compact JSON text; empty when there are none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FhirExtras(String);

impl FhirExtras {
    /// Reads stored or transported text: empty (or `{}`) is none, anything else must be a JSON
    /// object of at most [`FHIR_EXTRAS_MAX_BYTES`]; else `InvalidArgument` naming `fhirExtras`.
    pub fn parse(raw: &str) -> WardResult<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(object)) => Self::from_object(object),
            _ => Err(WardError::invalid_field(
                "fhirExtras",
                "fhirExtras must be a JSON object",
            )),
        }
    }

    /// Keeps `object`; `InvalidArgument` naming `Patient` when its JSON exceeds
    /// [`FHIR_EXTRAS_MAX_BYTES`].
    pub fn from_object(object: Map<String, Value>) -> WardResult<Self> {
        if object.is_empty() {
            return Ok(Self::default());
        }
        let text = Value::Object(object).to_string();
        if text.len() > FHIR_EXTRAS_MAX_BYTES {
            return Err(WardError::invalid_field(
                "Patient",
                format!(
                    "the elements Ward keeps verbatim may take at most {FHIR_EXTRAS_MAX_BYTES} bytes"
                ),
            ));
        }
        Ok(Self(text))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements, as an object (empty when there are none).
    pub fn to_object(&self) -> Map<String, Value> {
        // Only `parse` and `from_object` build a non-empty value, from an object.
        match serde_json::from_str::<Value>(&self.0) {
            Ok(Value::Object(object)) => object,
            _ => Map::new(),
        }
    }
}

impl AsRef<str> for FhirExtras {
    /// The JSON text; empty when there are none.
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_round_trip_and_empty_means_none() {
        let extras = FhirExtras::parse(r#"{"gender": "female", "active": true}"#).unwrap();
        assert_eq!(
            Value::Object(extras.to_object()),
            json!({"gender": "female", "active": true})
        );
        assert_eq!(FhirExtras::parse(extras.as_ref()).unwrap(), extras);
        assert!(FhirExtras::parse("").unwrap().is_empty());
        assert!(FhirExtras::parse(" {} ").unwrap().is_empty());
        assert_eq!(FhirExtras::default().as_ref(), "");
    }

    #[test]
    fn other_json_and_oversized_objects_are_refused() {
        for raw in ["[]", "\"x\"", "{", "null"] {
            assert!(FhirExtras::parse(raw).is_err(), "{raw}");
        }
        let mut object = Map::new();
        object.insert("text".into(), json!("a".repeat(FHIR_EXTRAS_MAX_BYTES)));
        let error = FhirExtras::from_object(object).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "Patient");
    }
}

//! The body of a merge or unmerge: `{"source": "<patient id>"}`, and the unmerge's answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;
use ward_bus::patients::Patient;
use ward_core::WardResult;

use super::PatientResponse;
use super::fields::{field_error, invalid, text_field, unknown_fields};

/// The duplicate to fold into (or take back out of) the patient in the path.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = PatientMerge)]
pub(crate) struct MergeBody {
    /// The duplicate patient's id.
    #[schema(value_type = Uuid)]
    source: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl MergeBody {
    /// The source id; a missing, mistyped or malformed one, or any other member, is a 400
    /// naming it.
    pub(crate) fn source_id(self) -> WardResult<Uuid> {
        let mut errors = Vec::new();
        let raw_opt = text_field(self.source, "source", &mut errors);
        unknown_fields(&self.unknown, &mut errors);
        let id_opt = match raw_opt {
            None if errors.is_empty() => {
                errors.push(field_error("source", "source is required"));
                None
            }
            None => None,
            Some(raw) => match Uuid::parse_str(raw.trim()) {
                Ok(id) => Some(id),
                Err(_) => {
                    errors.push(field_error(
                        "source",
                        "source must be a patient id (a UUID)",
                    ));
                    None
                }
            },
        };
        match id_opt {
            Some(id) if errors.is_empty() => Ok(id),
            _ => Err(invalid(errors)),
        }
    }
}

/// Both records after an unmerge.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PatientUnmerge)]
pub(crate) struct UnmergeResponse {
    /// The record that stayed, without what the source had brought.
    target: PatientResponse,
    /// The duplicate, a patient of its own again.
    source: PatientResponse,
}

impl From<(Patient, Patient)> for UnmergeResponse {
    fn from((target, source): (Patient, Patient)) -> Self {
        Self {
            target: target.into(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(body: Value) -> Vec<String> {
        let body: MergeBody = serde_json::from_value(body).unwrap();
        body.source_id()
            .unwrap_err()
            .field_errors()
            .iter()
            .map(|error| error.field.clone())
            .collect()
    }

    #[test]
    fn the_source_must_be_one_patient_id_and_nothing_else() {
        assert_eq!(fields(json!({})), ["source"]);
        assert_eq!(fields(json!({"source": 5})), ["source"]);
        assert_eq!(fields(json!({"source": "nope"})), ["source"]);
        assert_eq!(
            fields(json!({"source": Uuid::nil().to_string(), "target": "x"})),
            ["target"]
        );
        let body: MergeBody =
            serde_json::from_value(json!({"source": Uuid::nil().to_string()})).unwrap();
        assert_eq!(body.source_id().unwrap(), Uuid::nil());
    }
}

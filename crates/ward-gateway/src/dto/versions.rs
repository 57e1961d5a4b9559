//! Patient versions over HTTP: the history responses and the JSON merge patch (RFC 7396) body.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use ward_bus::patients::{Patient, PatientChanges, PatientVersion, format_date};
use ward_core::{WardError, WardResult};

use super::PatientResponse;
use super::fields::{field_error, invalid, with_type_errors};

/// The members a merge patch may name: the record's editable fields, all required.
const EDITABLE_FIELDS: [&str; 5] = ["name", "email", "address", "dateOfBirth", "identifiers"];
/// A member a patch may carry only with the stored value (a document sent back), which changes
/// nothing.
const MRN_FIELD: &str = "mrn";
/// Members of a patient document that exist but no patch may change.
const FIXED_FIELDS: [&str; 3] = ["id", "registeredDate", "version"];

/// What a change did to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PatientHistoryAction)]
pub(crate) enum HistoryActionDto {
    Create,
    Update,
    Delete,
    Restore,
    /// A duplicate was merged into this record.
    Merge,
    /// This record was merged into another (see `mergedInto`).
    Merged,
    /// A merge into this record was undone.
    Unmerge,
    /// The merge of this record into another was undone.
    Unmerged,
}

impl HistoryActionDto {
    fn parse(raw: &str) -> WardResult<Self> {
        match raw {
            "create" => Ok(Self::Create),
            "update" => Ok(Self::Update),
            "delete" => Ok(Self::Delete),
            "restore" => Ok(Self::Restore),
            "merge" => Ok(Self::Merge),
            "merged" => Ok(Self::Merged),
            "unmerge" => Ok(Self::Unmerge),
            "unmerged" => Ok(Self::Unmerged),
            // Only a hand-edited database or a newer peer can store another action.
            other => Err(WardError::Internal(format!(
                "a patient version has an unknown action: {other}"
            ))),
        }
    }
}

/// The record as it stood after one change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PatientVersion)]
pub(crate) struct PatientVersionResponse {
    /// Counted from 1; a delete records one more than the last update.
    #[schema(minimum = 1, example = 2)]
    version: u32,
    /// When the change was made (RFC 3339).
    at: DateTime<Utc>,
    /// Who made it: a user id, `system:<purpose>` or `anonymous`.
    actor: String,
    action: HistoryActionDto,
    /// The record after the change (for a delete, as it was when deleted).
    patient: PatientResponse,
}

impl TryFrom<PatientVersion> for PatientVersionResponse {
    type Error = WardError;

    fn try_from(entry: PatientVersion) -> WardResult<Self> {
        Ok(Self {
            version: entry.version,
            at: entry.at,
            actor: entry.actor,
            action: HistoryActionDto::parse(&entry.action)?,
            patient: PatientResponse::from(entry.patient),
        })
    }
}

/// A patient's history, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PatientHistory)]
pub(crate) struct PatientHistoryResponse {
    items: Vec<PatientVersionResponse>,
}

impl TryFrom<Vec<PatientVersion>> for PatientHistoryResponse {
    type Error = WardError;

    fn try_from(entries: Vec<PatientVersion>) -> WardResult<Self> {
        let mut items = Vec::with_capacity(entries.len());
        for entry in entries {
            items.push(PatientVersionResponse::try_from(entry)?);
        }
        Ok(Self { items })
    }
}

// Describes the `PATCH /api/patients/{id}` body that [`PatientMergePatch`] reads; never built
// (the `#[allow]`). Members are not nullable here: `null` removes a member, and every editable
// member is required, so a `null` is always a 400.
/// An RFC 7396 merge patch of a patient: the members sent replace the stored ones, the others
/// stay. Dates are `yyyy-MM-dd`.
#[derive(ToSchema)]
#[schema(as = PatientPatch, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct PatientMergePatchSchema {
    /// The medical record number, tolerated so a document can be sent back; it never changes,
    /// so another value is a 400.
    #[schema(read_only, required = false, example = "MRN-00000042")]
    mrn: String,
    #[schema(
        required = false,
        max_length = 100,
        pattern = r"\S",
        example = "John Doe"
    )]
    name: String,
    #[schema(
        required = false,
        format = Email,
        max_length = 254,
        example = "john.doe@example.com"
    )]
    email: String,
    /// May span lines.
    #[schema(
        required = false,
        max_length = 500,
        pattern = r"\S",
        example = "123 Main St, Springfield"
    )]
    address: String,
    #[schema(required = false, example = "1985-06-15")]
    date_of_birth: NaiveDate,
    /// Replaces the whole list (RFC 7396 replaces arrays); `null` removes every identifier.
    #[schema(required = false, max_items = 20)]
    identifiers: Vec<super::IdentifierDto>,
}

/// A merge patch whose members were checked to be editable fields.
#[derive(Debug)]
pub(crate) struct PatientMergePatch(Map<String, Value>);

impl PatientMergePatch {
    /// Accepts a JSON object naming only editable fields; every other member is a field error,
    /// all reported at once. Nothing is read before this passes.
    pub(crate) fn parse(body: Value) -> WardResult<Self> {
        let Value::Object(members) = body else {
            return Err(WardError::invalid(
                "a merge patch of a patient must be a JSON object",
                Vec::new(),
            ));
        };
        let mut errors = Vec::new();
        for name in members.keys() {
            if EDITABLE_FIELDS.contains(&name.as_str()) || name == MRN_FIELD {
                continue;
            }
            let message = if FIXED_FIELDS.contains(&name.as_str()) {
                format!("{name} cannot be changed")
            } else {
                "unknown field".to_string()
            };
            errors.push(field_error(name, message));
        }
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        Ok(Self(members))
    }

    /// Applies the patch to `current`'s editable fields and parses the result exactly as a `PUT`
    /// body: a removed (`null`) field is missing, and every failing field is reported.
    pub(crate) fn apply(mut self, current: &Patient) -> WardResult<PatientChanges> {
        let mut mrn_errors = Vec::new();
        if let Some(mrn) = self.0.remove(MRN_FIELD)
            && mrn.as_str() != Some(current.mrn.as_str())
        {
            mrn_errors.push(field_error(MRN_FIELD, "mrn cannot be changed"));
        }
        let mut document = json!({
            "name": current.name,
            "email": current.email,
            "address": current.address,
            "dateOfBirth": format_date(current.date_of_birth),
            "identifiers": current.identifiers,
        });
        merge_patch(&mut document, Value::Object(self.0));
        // `null` removed the member; for the list that means "none", not "keep".
        if let Value::Object(members) = &mut document {
            members.entry("identifiers").or_insert_with(|| json!([]));
        }
        // A patch may not take away an email or address the record has, but a patient registered
        // through FHIR without them can still be patched without adding them.
        let is_blank = |member: &str| {
            document
                .get(member)
                .and_then(Value::as_str)
                .is_none_or(|text| text.trim().is_empty())
        };
        let removes_email = is_blank("email") && current.email.is_some();
        let removes_address = is_blank("address") && current.address.is_some();
        let contact_optional = !removes_email && !removes_address;
        let body: super::PatientBody = serde_json::from_value(document)
            .map_err(|error| WardError::internal("reading a merged patient", error))?;
        with_type_errors(
            body.into_changes_with(current.id, None, contact_optional),
            mrn_errors,
        )
    }
}

/// RFC 7396 §2, MergePatch(Target, Patch): objects merge member by member, `null` removes a
/// member, anything else replaces the target.
fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch_members) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_members) = target else {
        return;
    };
    for (name, value) in patch_members {
        if value.is_null() {
            target_members.remove(&name);
            continue;
        }
        let member = target_members.entry(name).or_insert(Value::Null);
        merge_patch(member, value);
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn john_doe() -> Patient {
        Patient {
            id: Uuid::nil(),
            name: "John Doe".into(),
            email: Some("john.doe@example.com".into()),
            address: Some("123 Main St".into()),
            date_of_birth: NaiveDate::from_ymd_opt(1985, 6, 15).unwrap(),
            registered_date: NaiveDate::from_ymd_opt(2024, 1, 10).unwrap(),
            version: 4,
            mrn: "MRN-00000004".into(),
            identifiers: Vec::new(),
            merged_into_opt: None,
            fhir_extras: ward_bus::patients::FhirExtras::default(),
        }
    }

    fn fields(error: &WardError) -> Vec<(&str, &str)> {
        error
            .field_errors()
            .iter()
            .map(|error| (error.field.as_str(), error.message.as_str()))
            .collect()
    }

    #[test]
    fn the_rfc_7396_examples_merge() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
        let mut scalar = json!({"a": "foo"});
        merge_patch(&mut scalar, json!(["bar"]));
        assert_eq!(scalar, json!(["bar"]));
        let mut nested = json!({});
        merge_patch(&mut nested, json!({"a": {"bb": {"ccc": null}}}));
        assert_eq!(nested, json!({"a": {"bb": {}}}));
    }

    #[test]
    fn a_patch_changes_only_the_named_fields() {
        let patch = PatientMergePatch::parse(json!({"address": "9 Oak Ave"})).unwrap();
        let changes = patch.apply(&john_doe()).unwrap();
        assert_eq!(changes.address.as_deref(), Some("9 Oak Ave"));
        assert_eq!(changes.name, "John Doe");
        assert_eq!(changes.email.as_deref(), Some("john.doe@example.com"));
        assert_eq!(changes.date_of_birth, john_doe().date_of_birth);
    }

    #[test]
    fn a_patient_without_contacts_can_be_patched_but_a_patch_cannot_remove_them() {
        let mut from_fhir = john_doe();
        from_fhir.email = None;
        let patch = PatientMergePatch::parse(json!({"address": "9 Oak Ave"})).unwrap();
        let changes = patch.apply(&from_fhir).unwrap();
        assert_eq!(changes.email, None);
        assert_eq!(changes.address.as_deref(), Some("9 Oak Ave"));

        let patch = PatientMergePatch::parse(json!({"email": "new@example.com"})).unwrap();
        let changes = patch.apply(&from_fhir).unwrap();
        assert_eq!(changes.email.as_deref(), Some("new@example.com"));

        let patch = PatientMergePatch::parse(json!({"address": null})).unwrap();
        let error = patch.apply(&from_fhir).unwrap_err();
        assert!(fields(&error).contains(&("address", "Address is required")));
        let patch = PatientMergePatch::parse(json!({"email": null})).unwrap();
        let error = patch.apply(&john_doe()).unwrap_err();
        assert_eq!(fields(&error), vec![("email", "Email is required")]);
    }

    #[test]
    fn null_for_a_required_field_and_bad_values_are_all_reported() {
        let patch = PatientMergePatch::parse(json!({
            "name": null,
            "email": "nope",
            "dateOfBirth": 19850615
        }))
        .unwrap();
        let error = patch.apply(&john_doe()).unwrap_err();
        assert_eq!(
            fields(&error),
            vec![
                ("name", "Name is required"),
                ("email", "Email should be valid"),
                ("dateOfBirth", "dateOfBirth must be a string"),
            ]
        );
    }

    #[test]
    fn unknown_and_fixed_members_and_non_objects_are_refused_before_any_read() {
        let error = PatientMergePatch::parse(json!({
            "registeredDate": "2024-01-01",
            "isAdmin": true,
            "name": "Jo"
        }))
        .unwrap_err();
        let mut found = fields(&error);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("isAdmin", "unknown field"),
                ("registeredDate", "registeredDate cannot be changed"),
            ]
        );
        assert!(PatientMergePatch::parse(json!(["name"])).is_err());
        assert!(PatientMergePatch::parse(Value::Null).is_err());
    }
}

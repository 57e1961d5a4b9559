//! Creates with an `Idempotency-Key`: the key is recorded in the create's transaction, so a
//! retry (same caller, same key, same patient, within a day) answers the patient the first call
//! made and writes nothing but a `read` audit row; the same key with another patient is
//! `Unprocessable`.
//!
//! Concurrent first calls with one key: the key row is inserted before the patient, so on
//! PostgreSQL the second waits on the first's uncommitted key, gets a unique violation and
//! replays once the first has committed; on SQLite the write transactions are IMMEDIATE, so the
//! second only starts after the first has committed and finds the key. Either way exactly one
//! patient is created and both callers get it.

use chrono::{Duration, Utc};
use sea_orm::{ActiveValue, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};
use ward_bus::db::{db_error, is_unique_violation};
use ward_bus::patients::{
    IDEMPOTENCY_KEY_REUSED_MESSAGE, IDEMPOTENCY_KEY_TTL_SECS, IdempotencyKey, NewPatient, Patient,
    format_date,
};
use ward_core::{CallerContext, WardError, WardResult};

use super::{ALLOWED, PatientsService, find_patient, live, record, store, to_patient};
use crate::entity::idempotency_keys;

const CONTEXT: &str = "registering a patient";

/// See [`ward_bus::PatientsApi::create_patient`]; the caller has been authorized.
pub(super) async fn create_patient_once(
    service: &PatientsService,
    ctx: &CallerContext,
    patient: &NewPatient,
    key: &IdempotencyKey,
) -> WardResult<Patient> {
    let request_hash = request_hash(patient)?;
    match try_create(service, ctx, patient, key, &request_hash).await? {
        Attempt::Done(patient) => Ok(patient),
        // A concurrent call with this key committed first: this one is now its retry.
        Attempt::KeyTaken => match try_create(service, ctx, patient, key, &request_hash).await? {
            Attempt::Done(patient) => Ok(patient),
            Attempt::KeyTaken => Err(WardError::internal(
                CONTEXT,
                "an idempotency key was taken but cannot be read",
            )),
        },
    }
}

enum Attempt {
    Done(Patient),
    /// Inserting the key hit a concurrent call's row; nothing was written.
    KeyTaken,
}

async fn try_create(
    service: &PatientsService,
    ctx: &CallerContext,
    patient: &NewPatient,
    key: &IdempotencyKey,
    request_hash: &str,
) -> WardResult<Attempt> {
    let user_id = ctx.actor();
    let txn = service.begin_write(CONTEXT).await?;
    // Expired keys are free again; clearing them here keeps the table to a day of keys.
    let cutoff = Utc::now() - Duration::seconds(IDEMPOTENCY_KEY_TTL_SECS);
    idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::CreatedAt.lt(cutoff))
        .exec(&txn)
        .await
        .map_err(|error| db_error("clearing expired idempotency keys", error))?;
    let remembered_opt = idempotency_keys::Entity::find_by_id((user_id.clone(), key.to_string()))
        .one(&txn)
        .await
        .map_err(|error| db_error("reading an idempotency key", error))?;
    if let Some(remembered) = remembered_opt {
        if remembered.request_hash != request_hash {
            return Err(WardError::Unprocessable(
                IDEMPOTENCY_KEY_REUSED_MESSAGE.into(),
            ));
        }
        let replayed = replay(&txn, ctx, &remembered).await?;
        txn.commit()
            .await
            .map_err(|error| db_error(CONTEXT, error))?;
        return Ok(Attempt::Done(replayed));
    }
    let id = ward_core::id::new_id();
    tracing::Span::current().record("patient_id", tracing::field::display(id));
    // Before the patient: a concurrent call with the same key blocks here (PostgreSQL).
    let row = idempotency_keys::ActiveModel {
        user_id: ActiveValue::Set(user_id),
        key: ActiveValue::Set(key.to_string()),
        request_hash: ActiveValue::Set(request_hash.to_string()),
        patient_id: ActiveValue::Set(id),
        created_at: ActiveValue::Set(Utc::now()),
    };
    if let Err(error) = idempotency_keys::Entity::insert(row)
        .exec_without_returning(&txn)
        .await
    {
        if is_unique_violation(&error) {
            return Ok(Attempt::KeyTaken);
        }
        return Err(db_error("recording an idempotency key", error));
    }
    let model = service.register_in(&txn, ctx, id, patient).await?;
    service.commit_and_wake(txn, CONTEXT).await?;
    Ok(Attempt::Done(to_patient(model)?))
}

/// The patient a remembered key created, as it is now, audited as a read.
async fn replay(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    remembered: &idempotency_keys::Model,
) -> WardResult<Patient> {
    let model = live(find_patient(txn, remembered.patient_id).await?)?;
    let patient = to_patient(model)?;
    record(txn, ctx, "read", &[remembered.patient_id], ALLOWED).await?;
    Ok(patient)
}

/// Hex SHA-256 of the parsed patient, so whitespace and key order in the JSON do not matter.
fn request_hash(patient: &NewPatient) -> WardResult<String> {
    let mut fields = vec![
        patient.name.clone(),
        store::stored_email(patient.email.as_deref()),
        patient.address.clone().unwrap_or_default(),
        format_date(patient.date_of_birth),
        format_date(patient.registered_date),
    ];
    // Sorted by the parser, so their order in the request does not matter either. Without
    // any, the hash is what it was before identifiers existed (keys stay valid across upgrade).
    fields.extend(patient.identifiers.iter().map(ToString::to_string));
    // Likewise for the FHIR extras, which only FHIR creates carry.
    if !patient.fhir_extras.is_empty() {
        fields.push(patient.fhir_extras.as_ref().to_string());
    }
    let canonical = serde_json::to_string(&fields)
        .map_err(|error| WardError::internal("encoding a request for its hash", error))?;
    Ok(format!("{:x}", Sha256::digest(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn patient(name: &str) -> NewPatient {
        let date = NaiveDate::from_ymd_opt(2024, 1, 10).unwrap();
        NewPatient {
            name: name.into(),
            email: Some("ann@example.com".into()),
            address: Some("1 Main St".into()),
            date_of_birth: date,
            registered_date: date,
            identifiers: Vec::new(),
            fhir_extras: ward_bus::patients::FhirExtras::default(),
        }
    }

    #[test]
    fn the_hash_tells_patients_apart_and_ignores_email_padding() {
        let ann = request_hash(&patient("Ann")).unwrap();
        assert_eq!(ann.len(), 64);
        assert_ne!(ann, request_hash(&patient("Bob")).unwrap());
        let padded = NewPatient {
            email: Some(" ann@example.com ".into()),
            ..patient("Ann")
        };
        assert_eq!(ann, request_hash(&padded).unwrap());
    }
}

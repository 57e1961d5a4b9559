//! Storage of further identifiers: the `patient_identifiers` rows (who holds what) and the JSON
//! copy on the patient and history rows (what a read returns). Both are written in the
//! changing transaction, so they never disagree.

use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter,
};
use uuid::Uuid;
use ward_bus::db::{db_error, is_unique_violation};
use ward_bus::patients::PatientIdentifier;
use ward_core::{WardError, WardResult};

use crate::entity::patient_identifiers;

/// The 409 when a concurrent write took an identifier between the check and the insert.
const TAKEN_CONCURRENTLY: &str = "an identifier was taken by another patient at the same time";

/// The JSON stored on `patients.identifiers` and `patient_versions.identifiers`.
pub(crate) fn encode(identifiers: &[PatientIdentifier]) -> WardResult<String> {
    serde_json::to_string(identifiers)
        .map_err(|error| WardError::internal("encoding a patient's identifiers", error))
}

/// Reads the stored JSON; anything malformed was written by hand and is an internal error.
pub(crate) fn decode(raw: &str) -> WardResult<Vec<PatientIdentifier>> {
    serde_json::from_str(raw).map_err(|error| {
        WardError::Internal(format!("a stored identifier list is malformed: {error}"))
    })
}

/// `AlreadyExists` naming the first of `identifiers` that a patient other than `patient_id`
/// holds (a soft-deleted one included: its restore must not clash).
pub(crate) async fn check_free<C: ConnectionTrait>(
    conn: &C,
    patient_id: Uuid,
    identifiers: &[PatientIdentifier],
) -> WardResult<()> {
    if identifiers.is_empty() {
        return Ok(());
    }
    let mut any_of = Condition::any();
    for identifier in identifiers {
        any_of = any_of.add(
            Condition::all()
                .add(patient_identifiers::Column::System.eq(identifier.system.as_str()))
                .add(patient_identifiers::Column::Value.eq(identifier.value.as_str())),
        );
    }
    let holder_opt = patient_identifiers::Entity::find()
        .filter(any_of)
        .filter(patient_identifiers::Column::PatientId.ne(patient_id))
        .one(conn)
        .await
        .map_err(|error| db_error("checking identifiers", error))?;
    match holder_opt {
        Some(holder) => Err(WardError::AlreadyExists(format!(
            "identifier {}|{} already belongs to another patient",
            holder.system, holder.value
        ))),
        None => Ok(()),
    }
}

/// Makes `identifiers` the patient's rows: removes the others, inserts the new ones.
pub(crate) async fn replace_rows(
    txn: &DatabaseTransaction,
    patient_id: Uuid,
    identifiers: &[PatientIdentifier],
) -> WardResult<()> {
    delete_rows(txn, patient_id).await?;
    insert_rows(txn, patient_id, identifiers).await
}

/// Adds `identifiers` as the patient's rows (a new patient has none yet); no statement when
/// there are none, so a registration without identifiers costs nothing more.
pub(crate) async fn insert_rows(
    txn: &DatabaseTransaction,
    patient_id: Uuid,
    identifiers: &[PatientIdentifier],
) -> WardResult<()> {
    if identifiers.is_empty() {
        return Ok(());
    }
    let rows = identifiers
        .iter()
        .map(|identifier| patient_identifiers::ActiveModel {
            system: ActiveValue::Set(identifier.system.clone()),
            value: ActiveValue::Set(identifier.value.clone()),
            patient_id: ActiveValue::Set(patient_id),
        });
    patient_identifiers::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                WardError::AlreadyExists(TAKEN_CONCURRENTLY.into())
            } else {
                db_error("recording identifiers", error)
            }
        })?;
    Ok(())
}

/// Removes every identifier row of the patient (a replace, or a purge).
pub(crate) async fn delete_rows<C: ConnectionTrait>(conn: &C, patient_id: Uuid) -> WardResult<()> {
    patient_identifiers::Entity::delete_many()
        .filter(patient_identifiers::Column::PatientId.eq(patient_id))
        .exec(conn)
        .await
        .map_err(|error| db_error("removing identifiers", error))?;
    Ok(())
}

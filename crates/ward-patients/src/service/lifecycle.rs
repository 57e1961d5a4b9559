//! Restoring a soft-deleted patient, and purging one for good.
//!
//! A purge is the erasure a soft delete is not: the record, its name index and its history
//! (which hold personal data) go, in one transaction with the `PatientPurged` event and the
//! audit record. The audit trail itself stays: it is append-only and holds only ids.

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;
use ward_bus::db::db_error;
use ward_bus::events::{PatientPurged, PatientRestored};
use ward_bus::patients::Patient;
use ward_core::{CallerContext, Right, WardError, WardResult};

use super::{
    ALLOWED, PatientsService, check_expected_version, enqueue_event, find_patient_for_write,
    not_found, record, record_version, set_deleted_at, stored_version, to_patient,
};
use crate::entity::{patient_versions, patients};
use crate::search::delete_name_tokens;

/// The 409 for restoring a patient that was never deleted (or was already restored).
const NOT_DELETED_MESSAGE: &str = "Patient is not deleted";

/// See [`ward_bus::PatientsApi::restore_patient`].
pub(super) async fn restore_patient(
    service: &PatientsService,
    ctx: &CallerContext,
    id: Uuid,
    expected_version_opt: Option<u32>,
) -> WardResult<Patient> {
    // A restore changes the record, so it is audited as an update.
    service
        .authorize(ctx, Right::PatientsWrite, "update", &[id])
        .await?;
    let txn = service.begin_write("restoring a patient").await?;
    let existing = find_patient_for_write(&txn, id)
        .await?
        .ok_or_else(not_found)?;
    if existing.deleted_at.is_none() {
        return Err(WardError::AlreadyExists(NOT_DELETED_MESSAGE.into()));
    }
    check_expected_version(&existing, expected_version_opt)?;
    let restored = patients::Model {
        version: existing.version + 1,
        updated_at: Utc::now(),
        deleted_at: None,
        ..existing
    };
    set_deleted_at(&txn, &restored, existing.version, "restoring a patient").await?;
    record_version(&txn, ctx, &restored, "restore").await?;
    let payload = PatientRestored {
        patient_id: id.to_string(),
        version: stored_version(restored.version)?,
    };
    enqueue_event(&txn, ctx, id, &payload).await?;
    record(&txn, ctx, "update", &[id], ALLOWED).await?;
    service.commit_and_wake(txn, "restoring a patient").await?;
    to_patient(restored)
}

/// See [`ward_bus::PatientsApi::purge_patient`].
pub(super) async fn purge_patient(
    service: &PatientsService,
    ctx: &CallerContext,
    id: Uuid,
) -> WardResult<()> {
    service
        .authorize(ctx, Right::UsersAdmin, "delete", &[id])
        .await?;
    let txn = service.begin_write("purging a patient").await?;
    let row_opt = find_patient_for_write(&txn, id).await?;
    // A patient removed before deletes were soft left only its history; that is erased too.
    if row_opt.is_none() && num_history_entries(&txn, id).await? == 0 {
        return Err(not_found());
    }
    patients::Entity::delete_many()
        .filter(patients::Column::Id.eq(id))
        .exec(&txn)
        .await
        .map_err(|error| db_error("purging a patient", error))?;
    delete_name_tokens(&txn, id).await?;
    crate::identifiers::delete_rows(&txn, id).await?;
    patient_versions::Entity::delete_many()
        .filter(patient_versions::Column::PatientId.eq(id))
        .exec(&txn)
        .await
        .map_err(|error| db_error("purging a patient's history", error))?;
    let payload = PatientPurged {
        patient_id: id.to_string(),
    };
    enqueue_event(&txn, ctx, id, &payload).await?;
    record(&txn, ctx, "delete", &[id], ALLOWED).await?;
    service.commit_and_wake(txn, "purging a patient").await?;
    tracing::info!(patient_id = %id, "purged a patient");
    Ok(())
}

async fn num_history_entries(txn: &DatabaseTransaction, id: Uuid) -> WardResult<u64> {
    patient_versions::Entity::find()
        .filter(patient_versions::Column::PatientId.eq(id))
        .count(txn)
        .await
        .map_err(|error| db_error("reading a patient's history", error))
}

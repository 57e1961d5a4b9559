//! Merging a duplicate patient (source) into the record that stays (target), and undoing it.
//!
//! Everything happens in one transaction: both rows are locked (in id order, so two merges of
//! one pair cannot deadlock), the source's identifiers move to the target (its MRN too, under
//! [`MERGED_MRN_SYSTEM`], so the old number still finds the record that stayed), the source is
//! marked merged, both get a history entry and one more version, and `PatientMerged` goes to
//! the outbox. A `patient_merges` row remembers what moved, so an unmerge within the configured
//! window gives it back.

use std::collections::BTreeSet;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;
use ward_bus::db::db_error;
use ward_bus::events::{PatientMerged, PatientUnmerged};
use ward_bus::patients::{MERGED_MRN_SYSTEM, Patient, PatientIdentifier, patient_merged};
use ward_core::{CallerContext, Right, WardError, WardResult};

use super::{
    ALLOWED, PatientsService, check_expected_version, enqueue_event, find_patient_for_write, live,
    lost_race, not_found, record, record_version, to_patient,
};
use crate::entity::{patient_merges, patients};
use crate::identifiers;

/// See [`ward_bus::PatientsApi::merge_patients`].
pub(super) async fn merge_patients(
    service: &PatientsService,
    ctx: &CallerContext,
    target_id: Uuid,
    source_id: Uuid,
    expected_target_version_opt: Option<u32>,
) -> WardResult<Patient> {
    if target_id == source_id {
        return Err(WardError::invalid_field(
            "source",
            "a patient cannot be merged into itself",
        ));
    }
    service
        .authorize(ctx, Right::PatientsWrite, "update", &[target_id, source_id])
        .await?;
    let txn = service.begin_write("merging patients").await?;
    let (target, source) = lock_pair(&txn, target_id, source_id).await?;
    let target = unmerged(live(target)?)?;
    let source = unmerged(live(source)?)?;
    check_expected_version(&target, expected_target_version_opt)?;

    let mut moved = identifiers::decode(&source.identifiers)?;
    if !source.mrn.is_empty() {
        moved.push(PatientIdentifier {
            system: MERGED_MRN_SYSTEM.into(),
            value: source.mrn.clone(),
        });
    }
    let mut target_identifiers: BTreeSet<PatientIdentifier> =
        identifiers::decode(&target.identifiers)?
            .into_iter()
            .collect();
    target_identifiers.extend(moved.iter().cloned());
    let target_identifiers: Vec<PatientIdentifier> = target_identifiers.into_iter().collect();
    // The source's rows go first: the target's new rows reuse their keys. Each pair has one
    // holder, so none of `moved` is the target's already.
    identifiers::delete_rows(&txn, source_id).await?;
    identifiers::insert_rows(&txn, target_id, &moved).await?;

    let now = Utc::now();
    let new_target = patients::Model {
        identifiers: identifiers::encode(&target_identifiers)?,
        version: target.version + 1,
        updated_at: now,
        ..target.clone()
    };
    let new_source = patients::Model {
        identifiers: identifiers::encode(&[])?,
        merged_into: Some(target_id),
        version: source.version + 1,
        updated_at: now,
        ..source.clone()
    };
    write_merge_state(&txn, &new_target, target.version).await?;
    write_merge_state(&txn, &new_source, source.version).await?;
    record_version(&txn, ctx, &new_target, "merge").await?;
    record_version(&txn, ctx, &new_source, "merged").await?;
    let merge_row = patient_merges::ActiveModel {
        id: ActiveValue::Set(ward_core::id::new_id()),
        source_id: ActiveValue::Set(source_id),
        target_id: ActiveValue::Set(target_id),
        merged_at: ActiveValue::Set(now),
        moved_identifiers: ActiveValue::Set(identifiers::encode(&moved)?),
        unmerged_at: ActiveValue::Set(None),
    };
    patient_merges::Entity::insert(merge_row)
        .exec_without_returning(&txn)
        .await
        .map_err(|error| db_error("recording a merge", error))?;
    let payload = PatientMerged {
        source_patient_id: source_id.to_string(),
        target_patient_id: target_id.to_string(),
    };
    enqueue_event(&txn, ctx, source_id, &payload).await?;
    record(&txn, ctx, "update", &[target_id, source_id], ALLOWED).await?;
    service.commit_and_wake(txn, "merging patients").await?;
    tracing::info!(%source_id, %target_id, "merged patients");
    to_patient(new_target)
}

/// See [`ward_bus::PatientsApi::unmerge_patients`].
pub(super) async fn unmerge_patients(
    service: &PatientsService,
    ctx: &CallerContext,
    target_id: Uuid,
    source_id: Uuid,
) -> WardResult<(Patient, Patient)> {
    service
        .authorize(ctx, Right::PatientsWrite, "update", &[target_id, source_id])
        .await?;
    let txn = service.begin_write("unmerging patients").await?;
    let (target, source) = lock_pair(&txn, target_id, source_id).await?;
    let source = source.ok_or_else(not_found)?;
    if source.merged_into != Some(target_id) {
        return Err(WardError::AlreadyExists(format!(
            "Patient {source_id} is not merged into {target_id}"
        )));
    }
    let target = unmerged(live(target)?)?;
    let merge = patient_merges::Entity::find()
        .filter(patient_merges::Column::SourceId.eq(source_id))
        .filter(patient_merges::Column::TargetId.eq(target_id))
        .filter(patient_merges::Column::UnmergedAt.is_null())
        .order_by_desc(patient_merges::Column::MergedAt)
        .one(&txn)
        .await
        .map_err(|error| db_error("reading a merge", error))?
        .ok_or_else(|| {
            WardError::Internal(format!("no merge record of {source_id} into {target_id}"))
        })?;
    let now = Utc::now();
    let window =
        chrono::Duration::from_std(service.unmerge_window).unwrap_or(chrono::Duration::MAX);
    if now.signed_duration_since(merge.merged_at) > window {
        return Err(WardError::PreconditionFailed(format!(
            "the merge of {} is older than the unmerge window ({} days)",
            merge.merged_at.format("%Y-%m-%d %H:%M UTC"),
            service.unmerge_window.as_secs() / 86_400
        )));
    }

    // What moved goes back, as far as the target still holds it (an edit since may have
    // dropped one); the source's old MRN entry just leaves the target.
    let moved: BTreeSet<PatientIdentifier> = identifiers::decode(&merge.moved_identifiers)?
        .into_iter()
        .collect();
    let (returned, kept): (Vec<PatientIdentifier>, Vec<PatientIdentifier>) =
        identifiers::decode(&target.identifiers)?
            .into_iter()
            .partition(|identifier| moved.contains(identifier));
    let source_identifiers: Vec<PatientIdentifier> = returned
        .into_iter()
        .filter(|identifier| identifier.system != MERGED_MRN_SYSTEM)
        .collect();
    identifiers::replace_rows(&txn, target_id, &kept).await?;
    identifiers::replace_rows(&txn, source_id, &source_identifiers).await?;

    let new_target = patients::Model {
        identifiers: identifiers::encode(&kept)?,
        version: target.version + 1,
        updated_at: now,
        ..target.clone()
    };
    let new_source = patients::Model {
        identifiers: identifiers::encode(&source_identifiers)?,
        merged_into: None,
        version: source.version + 1,
        updated_at: now,
        ..source.clone()
    };
    write_merge_state(&txn, &new_target, target.version).await?;
    write_merge_state(&txn, &new_source, source.version).await?;
    record_version(&txn, ctx, &new_target, "unmerge").await?;
    record_version(&txn, ctx, &new_source, "unmerged").await?;
    patient_merges::Entity::update_many()
        .col_expr(patient_merges::Column::UnmergedAt, Expr::value(Some(now)))
        .filter(patient_merges::Column::Id.eq(merge.id))
        .exec(&txn)
        .await
        .map_err(|error| db_error("recording an unmerge", error))?;
    let payload = PatientUnmerged {
        source_patient_id: source_id.to_string(),
        target_patient_id: target_id.to_string(),
    };
    enqueue_event(&txn, ctx, source_id, &payload).await?;
    record(&txn, ctx, "update", &[target_id, source_id], ALLOWED).await?;
    service.commit_and_wake(txn, "unmerging patients").await?;
    tracing::info!(%source_id, %target_id, "unmerged patients");
    Ok((to_patient(new_target)?, to_patient(new_source)?))
}

/// Refuses a record that was merged into another: it can be read, never changed.
pub(super) fn unmerged(model: patients::Model) -> WardResult<patients::Model> {
    match model.merged_into {
        Some(target) => Err(patient_merged(target)),
        None => Ok(model),
    }
}

/// Locks both rows for the transaction, lower id first; returns them as (target, source).
async fn lock_pair(
    txn: &DatabaseTransaction,
    target_id: Uuid,
    source_id: Uuid,
) -> WardResult<(Option<patients::Model>, Option<patients::Model>)> {
    if target_id < source_id {
        let target = find_patient_for_write(txn, target_id).await?;
        let source = find_patient_for_write(txn, source_id).await?;
        Ok((target, source))
    } else {
        let source = find_patient_for_write(txn, source_id).await?;
        let target = find_patient_for_write(txn, target_id).await?;
        Ok((target, source))
    }
}

/// Writes what a merge or unmerge changes on one row, if its version is still `read_version`.
async fn write_merge_state(
    txn: &DatabaseTransaction,
    model: &patients::Model,
    read_version: i64,
) -> WardResult<()> {
    let updated = patients::Entity::update_many()
        .col_expr(
            patients::Column::Identifiers,
            Expr::value(model.identifiers.clone()),
        )
        .col_expr(patients::Column::MergedInto, Expr::value(model.merged_into))
        .col_expr(patients::Column::Version, Expr::value(model.version))
        .col_expr(patients::Column::UpdatedAt, Expr::value(model.updated_at))
        .filter(patients::Column::Id.eq(model.id))
        .filter(patients::Column::Version.eq(read_version))
        .exec(txn)
        .await
        .map_err(|error| db_error("writing a merge", error))?;
    if updated.rows_affected == 0 {
        return Err(lost_race(txn, model.id).await);
    }
    Ok(())
}

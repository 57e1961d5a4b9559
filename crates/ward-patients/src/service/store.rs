//! Row-level work shared by the service's operations: inserting a registration with its
//! number, history entry and event; conditional writes and what a lost race means; reading
//! rows and mapping them to the domain's types.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QuerySelect,
};
use uuid::Uuid;
use ward_bus::db::{db_error, is_unique_violation};
use ward_bus::events::{DomainEvent, PATIENTS_TOPIC, PatientRegistered, envelope};
use ward_bus::outbox::enqueue;
use ward_bus::patients::{
    FhirExtras, NewPatient, PATIENT_GONE_MESSAGE, Patient, PatientVersion, format_date,
    normalized_email, patient_changed,
};
use ward_core::{CallerContext, WardError, WardResult};

use super::{EMAIL_TAKEN_MESSAGE, NOT_FOUND_MESSAGE, PRODUCER};
use crate::entity::{patient_versions, patients};
use crate::identifiers;
use crate::mrn::{MrnFormat, allocate_mrn};
use crate::search::{distinct_name_tokens, insert_name_tokens, name_sort_key};

/// Maps a failed write: a uniqueness rule broken by a concurrent request is `AlreadyExists`
/// (`conflict_message`), anything else goes through [`db_error`].
pub(super) fn write_error(error: DbErr, context: &str, conflict_message: &str) -> WardError {
    if is_unique_violation(&error) {
        WardError::AlreadyExists(conflict_message.to_string())
    } else {
        db_error(context, error)
    }
}

/// Inserts a patient row with `id` and enqueues its `PatientRegistered` event in `txn`. A unique
/// violation (a race the caller's checks could not see) becomes `AlreadyExists(conflict_message)`.
pub(super) async fn insert_registered(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    id: Uuid,
    patient: &NewPatient,
    mrn_format: &MrnFormat,
    conflict_message: &str,
) -> WardResult<patients::Model> {
    let now = Utc::now();
    let mrn = allocate_mrn(txn, mrn_format).await?;
    let email = stored_email(patient.email.as_deref());
    let model = patients::Model {
        id,
        name: patient.name.clone(),
        name_sort: name_sort_key(&patient.name),
        mrn,
        email_normalized: email_key(&email, id),
        email,
        address: patient.address.clone().unwrap_or_default(),
        date_of_birth: patient.date_of_birth,
        registered_date: patient.registered_date,
        created_at: now,
        updated_at: now,
        // `id` is new (callers make it with `new_id`), so it has no history and no name tokens:
        // a collision would break the history's and the tokens' primary keys, not pass silently.
        version: 1,
        deleted_at: None,
        identifiers: identifiers::encode(&patient.identifiers)?,
        merged_into: None,
        fhir_extras: stored_extras(&patient.fhir_extras),
    };
    let row: patients::ActiveModel = model.clone().into();
    patients::Entity::insert(row)
        .exec_without_returning(txn)
        .await
        .map_err(|error| write_error(error, "inserting a patient", conflict_message))?;
    identifiers::insert_rows(txn, id, &patient.identifiers).await?;
    insert_name_tokens(txn, id, distinct_name_tokens(&model.name)).await?;
    let payload = PatientRegistered {
        patient_id: id.to_string(),
        name: model.name.clone(),
        email: model.email.clone(),
        registered_date: format_date(model.registered_date),
        version: stored_version(model.version)?,
    };
    enqueue_event(txn, ctx, id, &payload).await?;
    record_version(txn, ctx, &model, "create").await?;
    Ok(model)
}

/// Appends the history entry for `model` (the record after the change) inside `txn`. Its key
/// is (patient, version), so a version can never be recorded twice.
pub(super) async fn record_version(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    model: &patients::Model,
    action: &'static str,
) -> WardResult<()> {
    let row = patient_versions::ActiveModel {
        patient_id: ActiveValue::Set(model.id),
        version: ActiveValue::Set(model.version),
        recorded_at: ActiveValue::Set(Utc::now()),
        actor: ActiveValue::Set(ctx.actor()),
        request_id: ActiveValue::Set(ctx.request_id().to_string()),
        action: ActiveValue::Set(action.to_string()),
        name: ActiveValue::Set(model.name.clone()),
        email: ActiveValue::Set(model.email.clone()),
        address: ActiveValue::Set(model.address.clone()),
        date_of_birth: ActiveValue::Set(model.date_of_birth),
        registered_date: ActiveValue::Set(model.registered_date),
        mrn: ActiveValue::Set(model.mrn.clone()),
        identifiers: ActiveValue::Set(model.identifiers.clone()),
        merged_into: ActiveValue::Set(model.merged_into),
        fhir_extras: ActiveValue::Set(model.fhir_extras.clone()),
    };
    patient_versions::Entity::insert(row)
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("recording a patient version", error))?;
    Ok(())
}

/// Refuses a write whose expected version is not the stored one.
pub(super) fn check_expected_version(
    existing: &patients::Model,
    expected_version_opt: Option<u32>,
) -> WardResult<()> {
    let Some(expected) = expected_version_opt else {
        return Ok(());
    };
    if i64::from(expected) != existing.version {
        return Err(patient_changed(stored_version(existing.version)?));
    }
    Ok(())
}

/// Explains a conditional write that matched no row: the patient was purged, deleted or
/// changed by a concurrent request after it was read.
pub(super) async fn lost_race(txn: &DatabaseTransaction, id: Uuid) -> WardError {
    match find_patient(txn, id).await {
        Ok(None) => not_found(),
        Ok(Some(current)) if current.deleted_at.is_some() => gone(),
        Ok(Some(current)) => match stored_version(current.version) {
            Ok(version) => patient_changed(version),
            Err(error) => error,
        },
        Err(error) => error,
    }
}

/// A stored version as the API's `u32`; anything else was written by hand.
pub(super) fn stored_version(raw: i64) -> WardResult<u32> {
    u32::try_from(raw).map_err(|_| {
        WardError::Internal(format!("a stored patient version is out of range: {raw}"))
    })
}

/// Adds `payload`, keyed by the patient, to the outbox inside `txn`.
pub(super) async fn enqueue_event<E: DomainEvent>(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    patient_id: Uuid,
    payload: &E,
) -> WardResult<()> {
    let event = envelope(PRODUCER, patient_id, ctx.request_id(), Utc::now(), payload);
    enqueue(txn, PATIENTS_TOPIC, &event).await
}

/// Reads a patient about to be changed. On PostgreSQL the row is locked (`FOR UPDATE`), so a
/// concurrent writer waits and then reads the version this write leaves; SQLite ignores the
/// clause, and its IMMEDIATE write transactions already run one at a time.
pub(super) async fn find_patient_for_write(
    txn: &DatabaseTransaction,
    id: Uuid,
) -> WardResult<Option<patients::Model>> {
    patients::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(|error| db_error("reading a patient", error))
}

pub(super) async fn find_patient<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> WardResult<Option<patients::Model>> {
    patients::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(|error| db_error("reading a patient", error))
}

/// The `email` column's value: the address trimmed, empty for none.
pub(super) fn stored_email(email_opt: Option<&str>) -> String {
    email_opt.map(str::trim).unwrap_or_default().to_string()
}

/// The `email_normalized` key of patient `id` with stored `email`: the normalized address, or
/// for none `none:<id>`, unique to the patient and never an address (no `@`), so patients
/// without an email do not collide on the one-patient-per-address rule.
pub(super) fn email_key(email: &str, id: Uuid) -> String {
    if email.is_empty() {
        format!("none:{}", id.simple())
    } else {
        normalized_email(email)
    }
}

/// The `fhir_extras` column's value: `NULL` for none.
pub(super) fn stored_extras(extras: &FhirExtras) -> Option<String> {
    if extras.is_empty() {
        None
    } else {
        Some(extras.as_ref().to_string())
    }
}

/// Reads a stored `fhir_extras`; only Ward writes it, so anything unreadable is `Internal`.
fn stored_fhir_extras(raw_opt: Option<&str>) -> WardResult<FhirExtras> {
    FhirExtras::parse(raw_opt.unwrap_or_default()).map_err(|_| {
        WardError::Internal("a stored patient's FHIR extras are not a JSON object".into())
    })
}

/// The stored email or address as the domain's: empty is none.
fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

/// Returns the id of the patient holding `email_normalized`, if any.
pub(super) async fn email_owner<C: ConnectionTrait>(
    conn: &C,
    email_normalized: &str,
) -> WardResult<Option<Uuid>> {
    patients::Entity::find()
        .select_only()
        .column(patients::Column::Id)
        .filter(patients::Column::EmailNormalized.eq(email_normalized))
        .into_tuple::<Uuid>()
        .one(conn)
        .await
        .map_err(|error| db_error("checking an email address", error))
}

pub(super) fn to_patient(model: patients::Model) -> WardResult<Patient> {
    Ok(Patient {
        version: stored_version(model.version)?,
        id: model.id,
        name: model.name,
        email: non_empty(model.email),
        address: non_empty(model.address),
        date_of_birth: model.date_of_birth,
        registered_date: model.registered_date,
        identifiers: identifiers::decode(&model.identifiers)?,
        merged_into_opt: model.merged_into,
        mrn: model.mrn,
        fhir_extras: stored_fhir_extras(model.fhir_extras.as_deref())?,
    })
}

pub(super) fn to_patient_version(row: patient_versions::Model) -> WardResult<PatientVersion> {
    let version = stored_version(row.version)?;
    Ok(PatientVersion {
        version,
        at: row.recorded_at,
        actor: row.actor,
        action: row.action,
        patient: Patient {
            id: row.patient_id,
            name: row.name,
            email: non_empty(row.email),
            address: non_empty(row.address),
            date_of_birth: row.date_of_birth,
            registered_date: row.registered_date,
            version,
            identifiers: identifiers::decode(&row.identifiers)?,
            merged_into_opt: row.merged_into,
            mrn: row.mrn,
            fhir_extras: stored_fhir_extras(row.fhir_extras.as_deref())?,
        },
    })
}

/// Sets `deleted_at`, `version` and `updated_at` to `model`'s, if the stored version is still
/// `read_version`; a concurrent change makes it [`lost_race`]'s error.
pub(super) async fn set_deleted_at(
    txn: &DatabaseTransaction,
    model: &patients::Model,
    read_version: i64,
    context: &str,
) -> WardResult<()> {
    let updated = patients::Entity::update_many()
        .col_expr(patients::Column::DeletedAt, Expr::value(model.deleted_at))
        .col_expr(patients::Column::UpdatedAt, Expr::value(model.updated_at))
        .col_expr(patients::Column::Version, Expr::value(model.version))
        .filter(patients::Column::Id.eq(model.id))
        .filter(patients::Column::Version.eq(read_version))
        .exec(txn)
        .await
        .map_err(|error| db_error(context, error))?;
    if updated.rows_affected == 0 {
        return Err(lost_race(txn, model.id).await);
    }
    Ok(())
}

/// The record of a live patient: `NotFound` when there is none, `Gone` when soft deleted.
pub(super) fn live(model_opt: Option<patients::Model>) -> WardResult<patients::Model> {
    let model = model_opt.ok_or_else(not_found)?;
    if model.deleted_at.is_some() {
        return Err(gone());
    }
    Ok(model)
}

pub(super) fn gone() -> WardError {
    WardError::Gone(PATIENT_GONE_MESSAGE.into())
}

pub(super) fn email_taken() -> WardError {
    WardError::AlreadyExists(EMAIL_TAKEN_MESSAGE.into())
}

pub(super) fn not_found() -> WardError {
    WardError::NotFound(NOT_FOUND_MESSAGE.into())
}

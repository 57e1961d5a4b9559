//! [`PatientsService`]: the in-process implementation of [`PatientsApi`] over the `patients` table.
//!
//! Every write commits the row change and its event in one transaction (the outbox), then wakes
//! the relay, so a patient never exists without its `PatientRegistered` event, nor the reverse.

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::db::{db_error, is_unique_violation, ping};
use ward_bus::events::{
    DomainEvent, PATIENTS_TOPIC, PatientDeleted, PatientRegistered, PatientUpdated, envelope,
};
use ward_bus::outbox::{OutboxWaker, enqueue};
use ward_bus::patients::{
    NewPatient, PAGE_MAX, PageRequest, Patient, PatientChanges, PatientPage, cursor_after,
    format_date, normalized_email,
};
use ward_core::{CallerContext, Right, WardError, WardResult};

use crate::entity::patients;
use crate::migration::Migrator;

/// The producer name in event envelopes.
const PRODUCER: &str = "patients";
/// The reference platform's messages, kept so its clients feel at home.
const EMAIL_TAKEN_MESSAGE: &str = "Email address already exists";
const NOT_FOUND_MESSAGE: &str = "Patient not found";
const IMPORT_RACE_MESSAGE: &str =
    "a patient in the batch was registered concurrently; retry the import";

/// Patient records and their events, stored in the patients database.
#[derive(Clone)]
pub struct PatientsService {
    db: DatabaseConnection,
    outbox: OutboxWaker,
}

impl PatientsService {
    /// Builds the service over an open, migrated database; `outbox` wakes the relay that moves
    /// this database's outbox rows to the event log (see [`ward_bus::outbox::OutboxRelay::waker`]).
    pub fn new(db: DatabaseConnection, outbox: OutboxWaker) -> Self {
        Self { db, outbox }
    }

    /// Applies pending migrations of the patients database (the outbox and `patients`).
    pub async fn migrate(db: &DatabaseConnection) -> WardResult<()> {
        Migrator::up(db, None)
            .await
            .map_err(|error| db_error("migrating the patients database", error))
    }

    /// Starts a write transaction. On SQLite it is IMMEDIATE: the write lock is taken at BEGIN,
    /// so the duplicate-email check and the insert see the same state and concurrent writers
    /// wait (busy timeout) instead of failing on a lock upgrade. PostgreSQL ignores the mode;
    /// there the unique constraint settles races.
    async fn begin_write(&self, context: &str) -> WardResult<DatabaseTransaction> {
        self.db
            .begin_with_options(ward_bus::db::write_transaction())
            .await
            .map_err(|error| db_error(context, error))
    }

    /// Commits, then wakes the relay so the new events leave without waiting for a poll.
    async fn commit_and_wake(&self, txn: DatabaseTransaction, context: &str) -> WardResult<()> {
        txn.commit()
            .await
            .map_err(|error| db_error(context, error))?;
        self.outbox.wake();
        Ok(())
    }
}

#[async_trait]
impl PatientsApi for PatientsService {
    #[tracing::instrument(name = "patients.create_patient", skip_all, fields(patient_id))]
    async fn create_patient(
        &self,
        ctx: &CallerContext,
        patient: NewPatient,
    ) -> WardResult<Patient> {
        ctx.require(Right::PatientsWrite)?;
        let id = ward_core::id::new_id();
        tracing::Span::current().record("patient_id", tracing::field::display(id));
        let txn = self.begin_write("registering a patient").await?;
        if email_owner(&txn, &normalized_email(&patient.email))
            .await?
            .is_some()
        {
            return Err(email_taken());
        }
        // The check above cannot see a concurrent create's uncommitted row (PostgreSQL); the
        // unique constraint can, and `insert_registered` maps it to the same 409.
        let model = insert_registered(&txn, ctx, id, &patient, EMAIL_TAKEN_MESSAGE).await?;
        self.commit_and_wake(txn, "registering a patient").await?;
        audit(ctx, "create", id);
        Ok(to_patient(model))
    }

    #[tracing::instrument(name = "patients.get_patient", skip_all, fields(patient_id = %id))]
    async fn get_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<Patient> {
        ctx.require(Right::PatientsRead)?;
        let model = find_patient(&self.db, id).await?.ok_or_else(not_found)?;
        audit(ctx, "read", id);
        Ok(to_patient(model))
    }

    #[tracing::instrument(name = "patients.list_patients", skip_all)]
    async fn list_patients(
        &self,
        ctx: &CallerContext,
        page: PageRequest,
    ) -> WardResult<PatientPage> {
        ctx.require(Right::PatientsRead)?;
        // `PageRequest` has public fields, so a hand-built one may skip `PageRequest::parse`.
        if page.limit == 0 || page.limit > PAGE_MAX {
            return Err(WardError::invalid_field(
                "limit",
                format!("limit must be between 1 and {PAGE_MAX}"),
            ));
        }
        let mut query = patients::Entity::find().order_by_asc(patients::Column::Id);
        if let Some(after) = page.after_opt {
            query = query.filter(patients::Column::Id.gt(after));
        }
        // One row more than asked tells whether a next page exists without a COUNT.
        let mut rows = query
            .limit(u64::from(page.limit) + 1)
            .all(&self.db)
            .await
            .map_err(|error| db_error("listing patients", error))?;
        let has_more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        let next_cursor_opt = match rows.last() {
            Some(last) if has_more => Some(cursor_after(last.id)),
            _ => None,
        };
        let mut items = Vec::with_capacity(rows.len());
        for model in rows {
            items.push(to_patient(model));
        }
        tracing::info!(
            target: "ward::audit",
            actor = %ctx.actor(),
            action = "list",
            num_patients = items.len(),
            request_id = ctx.request_id(),
            "patient records accessed"
        );
        Ok(PatientPage {
            items,
            next_cursor_opt,
        })
    }

    #[tracing::instrument(name = "patients.update_patient", skip_all, fields(patient_id = %id))]
    async fn update_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        changes: PatientChanges,
    ) -> WardResult<Patient> {
        ctx.require(Right::PatientsWrite)?;
        let txn = self.begin_write("updating a patient").await?;
        let existing = find_patient(&txn, id).await?.ok_or_else(not_found)?;
        let email = changes.email.trim().to_string();
        let email_normalized = normalized_email(&email);
        // Keeping one's own address (in any case) is not a conflict.
        if let Some(owner) = email_owner(&txn, &email_normalized).await?
            && owner != id
        {
            return Err(email_taken());
        }
        let mut row: patients::ActiveModel = existing.into();
        row.name = ActiveValue::Set(changes.name.clone());
        row.email = ActiveValue::Set(email.clone());
        row.email_normalized = ActiveValue::Set(email_normalized);
        row.address = ActiveValue::Set(changes.address);
        row.date_of_birth = ActiveValue::Set(changes.date_of_birth);
        row.updated_at = ActiveValue::Set(Utc::now());
        let model = match row.update(&txn).await {
            Ok(model) => model,
            // Deleted by a concurrent request between the read and the write (PostgreSQL).
            Err(DbErr::RecordNotUpdated) => return Err(not_found()),
            Err(error) => {
                return Err(write_error(
                    error,
                    "updating a patient",
                    EMAIL_TAKEN_MESSAGE,
                ));
            }
        };
        let payload = PatientUpdated {
            patient_id: id.to_string(),
            name: changes.name,
            email,
        };
        enqueue_event(&txn, ctx, id, &payload).await?;
        self.commit_and_wake(txn, "updating a patient").await?;
        audit(ctx, "update", id);
        Ok(to_patient(model))
    }

    #[tracing::instrument(name = "patients.delete_patient", skip_all, fields(patient_id = %id))]
    async fn delete_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<()> {
        ctx.require(Right::PatientsWrite)?;
        let txn = self.begin_write("deleting a patient").await?;
        // The affected-row count is the existence check: no separate read can race the delete.
        let deleted = patients::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(|error| db_error("deleting a patient", error))?;
        if deleted.rows_affected == 0 {
            return Err(not_found());
        }
        let payload = PatientDeleted {
            patient_id: id.to_string(),
        };
        enqueue_event(&txn, ctx, id, &payload).await?;
        self.commit_and_wake(txn, "deleting a patient").await?;
        audit(ctx, "delete", id);
        Ok(())
    }

    #[tracing::instrument(name = "patients.import_patients", skip_all, fields(num_records = records.len()))]
    async fn import_patients(
        &self,
        ctx: &CallerContext,
        records: Vec<(Uuid, NewPatient)>,
    ) -> WardResult<u64> {
        ctx.require(Right::PatientsWrite)?;
        if records.is_empty() {
            return Ok(0);
        }
        // One transaction for the batch: a failure leaves no half-loaded demo data behind.
        let txn = self.begin_write("importing patients").await?;
        let mut num_inserted: u64 = 0;
        for (id, patient) in &records {
            if find_patient(&txn, *id).await?.is_some() {
                continue;
            }
            if email_owner(&txn, &normalized_email(&patient.email))
                .await?
                .is_some()
            {
                tracing::warn!(patient_id = %id, "skipping an imported patient whose email is taken");
                continue;
            }
            // Only a concurrent import of the same records can break a uniqueness rule here.
            insert_registered(&txn, ctx, *id, patient, IMPORT_RACE_MESSAGE).await?;
            num_inserted += 1;
        }
        if num_inserted == 0 {
            // Nothing written: dropping the transaction rolls it back, and there is nothing to wake.
            return Ok(0);
        }
        self.commit_and_wake(txn, "importing patients").await?;
        tracing::info!(num_inserted, "imported patients");
        Ok(num_inserted)
    }

    #[tracing::instrument(name = "patients.check_ready", skip_all)]
    async fn check_ready(&self) -> WardResult<()> {
        ping(&self.db, "patients").await
    }
}

/// Maps a failed write: a uniqueness rule broken by a concurrent request is `AlreadyExists`
/// (`conflict_message`), anything else goes through [`db_error`].
fn write_error(error: DbErr, context: &str, conflict_message: &str) -> WardError {
    if is_unique_violation(&error) {
        WardError::AlreadyExists(conflict_message.to_string())
    } else {
        db_error(context, error)
    }
}

/// Inserts a patient row with `id` and enqueues its `PatientRegistered` event in `txn`. A unique
/// violation (a race the caller's checks could not see) becomes `AlreadyExists(conflict_message)`.
async fn insert_registered(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    id: Uuid,
    patient: &NewPatient,
    conflict_message: &str,
) -> WardResult<patients::Model> {
    let now = Utc::now();
    let email = patient.email.trim().to_string();
    let model = patients::Model {
        id,
        name: patient.name.clone(),
        email_normalized: normalized_email(&email),
        email,
        address: patient.address.clone(),
        date_of_birth: patient.date_of_birth,
        registered_date: patient.registered_date,
        created_at: now,
        updated_at: now,
    };
    let row: patients::ActiveModel = model.clone().into();
    patients::Entity::insert(row)
        .exec_without_returning(txn)
        .await
        .map_err(|error| write_error(error, "inserting a patient", conflict_message))?;
    let payload = PatientRegistered {
        patient_id: id.to_string(),
        name: model.name.clone(),
        email: model.email.clone(),
        registered_date: format_date(model.registered_date),
    };
    enqueue_event(txn, ctx, id, &payload).await?;
    Ok(model)
}

/// Adds `payload`, keyed by the patient, to the outbox inside `txn`.
async fn enqueue_event<E: DomainEvent>(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    patient_id: Uuid,
    payload: &E,
) -> WardResult<()> {
    let event = envelope(PRODUCER, patient_id, ctx.request_id(), Utc::now(), payload);
    enqueue(txn, PATIENTS_TOPIC, &event).await
}

async fn find_patient<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> WardResult<Option<patients::Model>> {
    patients::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(|error| db_error("reading a patient", error))
}

/// Returns the id of the patient holding `email_normalized`, if any.
async fn email_owner<C: ConnectionTrait>(
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

fn to_patient(model: patients::Model) -> Patient {
    Patient {
        id: model.id,
        name: model.name,
        email: model.email,
        address: model.address,
        date_of_birth: model.date_of_birth,
        registered_date: model.registered_date,
    }
}

fn email_taken() -> WardError {
    WardError::AlreadyExists(EMAIL_TAKEN_MESSAGE.into())
}

fn not_found() -> WardError {
    WardError::NotFound(NOT_FOUND_MESSAGE.into())
}

/// Records who touched which patient record (DESIGN.md, Security); ids only, never PHI.
fn audit(ctx: &CallerContext, action: &'static str, patient_id: Uuid) {
    tracing::info!(
        target: "ward::audit",
        actor = %ctx.actor(),
        action,
        patient_id = %patient_id,
        request_id = ctx.request_id(),
        "patient record accessed"
    );
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use ward_core::config::SecretUrl;

    use super::*;

    fn new_patient(email: &str) -> NewPatient {
        NewPatient {
            name: "Jane Roe".into(),
            email: email.into(),
            address: "1 Elm St".into(),
            date_of_birth: NaiveDate::from_ymd_opt(1990, 1, 2).unwrap(),
            registered_date: NaiveDate::from_ymd_opt(2024, 3, 4).unwrap(),
        }
    }

    // The race between two creates, replayed without the in-transaction check: the database's
    // unique constraint must still turn the second insert into the reference's 409.
    #[tokio::test]
    async fn a_unique_violation_on_insert_becomes_already_exists() {
        let dir = std::env::temp_dir().join(format!("ward-patients-unit-{}", Uuid::now_v7()));
        let url = SecretUrl::new(format!("sqlite://{}?mode=rwc", dir.join("p.db").display()));
        let db = ward_bus::db::connect(&url, "patients").await.unwrap();
        PatientsService::migrate(&db).await.unwrap();
        let ctx = CallerContext::system("test");

        let txn = db.begin().await.unwrap();
        insert_registered(&txn, &ctx, Uuid::now_v7(), &new_patient("a@x.org"), "taken")
            .await
            .unwrap();
        let error = insert_registered(
            &txn,
            &ctx,
            Uuid::now_v7(),
            &new_patient(" A@X.org"),
            "taken",
        )
        .await
        .unwrap_err();

        assert_eq!(error, WardError::AlreadyExists("taken".into()));
        drop(txn);
        let _ = std::fs::remove_dir_all(dir);
    }
}

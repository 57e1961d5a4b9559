//! [`PatientsService`]: the in-process implementation of [`PatientsApi`] over the `patients` table.
//!
//! Every write commits the row change and its event in one transaction (the outbox), then wakes
//! the relay, so a patient never exists without its `PatientRegistered` event, nor the reverse.
//!
//! Every patient carries a version (1 when registered, plus one per change). Each create,
//! update and delete also appends the record's new state to `patient_versions`, in the same
//! transaction; writes that name an expected version are conditional on it
//! (`UPDATE ... WHERE version = ?`), so of two writers that read the same version one gets
//! `PreconditionFailed`.
//!
//! Every call also leaves a row in `audit_events` (who, what, which patients, outcome): writes in
//! the same transaction as the change, reads right after the read, refusals before the error
//! goes back.
//!
//! A delete is soft (`deleted_at` set, the row kept): reads and changes of a deleted patient are
//! `Gone`, searches skip it, and its email stays taken so a restore cannot clash. Restores and
//! purges live in [`lifecycle`].

mod audit;
mod bulk;
mod idempotency;
mod lifecycle;
mod merge;
mod store;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::db::{db_error, ping};
use ward_bus::events::{PatientDeleted, PatientUpdated};
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{
    AuditPage, AuditQuery, IdempotencyKey, ImportOutcome, NewPatient, PAGE_MAX, PageRequest,
    Patient, PatientChanges, PatientPage, PatientSearch, PatientVersion, cursor_after,
    normalized_email,
};
use ward_core::{CallerContext, Right, WardError, WardResult};

use self::audit::record;
use self::store::{
    check_expected_version, email_key, email_owner, email_taken, enqueue_event, find_patient,
    find_patient_for_write, insert_registered, live, lost_race, not_found, record_version,
    set_deleted_at, stored_email, stored_extras, stored_version, to_patient, to_patient_version,
    write_error,
};
use crate::entity::{patient_versions, patients};
use crate::identifiers;
use crate::migration::Migrator;
use crate::mrn::{MIGRATION_MRN_FORMAT, MrnFormat};
use crate::search::{find_page, name_sort_key, replace_name_tokens};

/// The producer name in event envelopes.
const PRODUCER: &str = "patients";
/// The reference platform's messages, kept so its clients feel at home.
const EMAIL_TAKEN_MESSAGE: &str = "Email address already exists";
const NOT_FOUND_MESSAGE: &str = "Patient not found";
const VERSION_NOT_FOUND_MESSAGE: &str = "Patient version not found";
/// Audit outcomes.
const ALLOWED: &str = "allowed";
const DENIED: &str = "denied";
const IMPORT_RACE_MESSAGE: &str =
    "a patient in the batch was registered concurrently; retry the import";

/// Patient records and their events, stored in the patients database.
#[derive(Clone)]
pub struct PatientsService {
    db: DatabaseConnection,
    outbox: OutboxWaker,
    mrn_format: MrnFormat,
    /// How long after a merge an unmerge is still allowed.
    unmerge_window: std::time::Duration,
}

impl PatientsService {
    /// Builds the service over an open, migrated database; `outbox` wakes the relay that moves
    /// this database's outbox rows to the event log (see [`ward_bus::outbox::OutboxRelay::waker`]).
    /// New patients get medical record numbers in the default format (`MRN-00000042`) unless
    /// [`PatientsService::with_mrn_format`] says otherwise.
    pub fn new(db: DatabaseConnection, outbox: OutboxWaker) -> Self {
        Self {
            db,
            outbox,
            mrn_format: MrnFormat::default(),
            unmerge_window: std::time::Duration::from_secs(
                ward_core::config::PatientsOptions::default().unmerge_window_secs,
            ),
        }
    }

    /// Allows an unmerge for `window` after its merge.
    pub fn with_unmerge_window(self, unmerge_window: std::time::Duration) -> Self {
        Self {
            unmerge_window,
            ..self
        }
    }

    /// Writes the medical record numbers of patients registered from now on in `format`.
    pub fn with_mrn_format(self, mrn_format: MrnFormat) -> Self {
        Self { mrn_format, ..self }
    }

    /// Applies pending migrations of the patients database (the outbox and `patients`);
    /// existing patients are numbered in the default format.
    pub async fn migrate(db: &DatabaseConnection) -> WardResult<()> {
        Self::migrate_with(db, &MrnFormat::default()).await
    }

    /// Applies pending migrations; existing patients that the migration numbers get numbers in
    /// `mrn_format` (the configured one).
    pub async fn migrate_with(db: &DatabaseConnection, mrn_format: &MrnFormat) -> WardResult<()> {
        MIGRATION_MRN_FORMAT
            .scope(mrn_format.clone(), Migrator::up(db, None))
            .await
            .map_err(|error| db_error("migrating the patients database", error))
    }

    /// Refreshes the database's planner statistics (`ANALYZE`). Worth it after a large bulk
    /// import: until the statistics know the new rows, the planner may pick slow plans for
    /// searches (PostgreSQL's autovacuum would get there too, later).
    pub async fn analyze(&self) -> WardResult<()> {
        self.db
            .execute_unprepared("ANALYZE")
            .await
            .map(|_| ())
            .map_err(|error| db_error("refreshing planner statistics", error))
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

    /// Registers `patient` as `id` inside `txn`: the row, its number, name tokens, history,
    /// event and audit row. The caller commits.
    async fn register_in(
        &self,
        txn: &DatabaseTransaction,
        ctx: &CallerContext,
        id: Uuid,
        patient: &NewPatient,
    ) -> WardResult<patients::Model> {
        if let Some(email) = &patient.email
            && email_owner(txn, &normalized_email(email)).await?.is_some()
        {
            return Err(email_taken());
        }
        identifiers::check_free(txn, id, &patient.identifiers).await?;
        // The check above cannot see a concurrent create's uncommitted row (PostgreSQL); the
        // unique constraint can, and `insert_registered` maps it to the same 409.
        let model =
            insert_registered(txn, ctx, id, patient, &self.mrn_format, EMAIL_TAKEN_MESSAGE).await?;
        // Same transaction: no patient without its audit row.
        record(txn, ctx, "create", &[id], ALLOWED).await?;
        Ok(model)
    }

    /// One page of live patients (not deleted, not merged away) in id order, changed at or
    /// after `since_opt` when given: what a list (`search`) and an export (`export`) answer.
    /// Needs `patients:read`; audited as `action` with the page's ids.
    async fn live_page(
        &self,
        ctx: &CallerContext,
        page: PageRequest,
        since_opt: Option<chrono::DateTime<Utc>>,
        action: &'static str,
    ) -> WardResult<PatientPage> {
        self.authorize(ctx, Right::PatientsRead, action, &[])
            .await?;
        // `PageRequest` has public fields, so a hand-built one may skip `PageRequest::parse`.
        if page.limit == 0 || page.limit > PAGE_MAX {
            return Err(WardError::invalid_field(
                "limit",
                format!("limit must be between 1 and {PAGE_MAX}"),
            ));
        }
        // Soft-deleted and merged-away patients are kept but never listed or exported.
        let mut query = patients::Entity::find()
            .filter(patients::Column::DeletedAt.is_null())
            .filter(patients::Column::MergedInto.is_null())
            .order_by_asc(patients::Column::Id);
        if let Some(since) = since_opt {
            query = query.filter(patients::Column::UpdatedAt.gte(since));
        }
        if let Some(after) = page.after_opt {
            query = query.filter(patients::Column::Id.gt(after));
        }
        // One row more than asked tells whether a next page exists without a COUNT.
        let mut rows = query
            .limit(u64::from(page.limit) + 1)
            .all(&self.db)
            .await
            .map_err(|error| db_error("reading a page of patients", error))?;
        let has_more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        let next_cursor_opt = match rows.last() {
            Some(last) if has_more => Some(cursor_after(last.id)),
            _ => None,
        };
        let mut ids = Vec::with_capacity(rows.len());
        let mut items = Vec::with_capacity(rows.len());
        for model in rows {
            ids.push(model.id);
            items.push(to_patient(model)?);
        }
        // A failed audit write fails the page: no unaudited access to patient data.
        record(&self.db, ctx, action, &ids, ALLOWED).await?;
        Ok(PatientPage {
            items,
            next_cursor_opt,
            total_opt: None,
        })
    }

    /// Checks `right` on `patient_ids` (the token's policy decides); when the caller lacks it (or has no identity), records a `denied` event
    /// for `action` on `patient_ids` before returning the error. Should that record fail, the
    /// refusal still stands and the failure is logged: no data was touched.
    async fn authorize(
        &self,
        ctx: &CallerContext,
        right: Right,
        action: &'static str,
        patient_ids: &[Uuid],
    ) -> WardResult<()> {
        let Err(refusal) = ctx.require_for(right, patient_ids) else {
            return Ok(());
        };
        if let Err(error) = record(&self.db, ctx, action, patient_ids, DENIED).await {
            tracing::error!(%error, action, "could not record a denied access in the audit trail");
        }
        Err(refusal)
    }
}

#[async_trait]
impl PatientsApi for PatientsService {
    #[tracing::instrument(name = "patients.create_patient", skip_all, fields(patient_id))]
    async fn create_patient(
        &self,
        ctx: &CallerContext,
        patient: NewPatient,
        idempotency_key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Patient> {
        self.authorize(ctx, Right::PatientsWrite, "create", &[])
            .await?;
        if let Some(key) = idempotency_key_opt {
            return idempotency::create_patient_once(self, ctx, &patient, &key).await;
        }
        let id = ward_core::id::new_id();
        tracing::Span::current().record("patient_id", tracing::field::display(id));
        let txn = self.begin_write("registering a patient").await?;
        let model = self.register_in(&txn, ctx, id, &patient).await?;
        self.commit_and_wake(txn, "registering a patient").await?;
        to_patient(model)
    }

    #[tracing::instrument(name = "patients.get_patient", skip_all, fields(patient_id = %id))]
    async fn get_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<Patient> {
        self.authorize(ctx, Right::PatientsRead, "read", &[id])
            .await?;
        let model = live(find_patient(&self.db, id).await?)?;
        // A failed audit write fails the read: no unaudited access to patient data.
        let patient = to_patient(model)?;
        record(&self.db, ctx, "read", &[id], ALLOWED).await?;
        Ok(patient)
    }

    #[tracing::instrument(name = "patients.list_patients", skip_all)]
    async fn list_patients(
        &self,
        ctx: &CallerContext,
        page: PageRequest,
    ) -> WardResult<PatientPage> {
        self.live_page(ctx, page, None, "search").await
    }

    #[tracing::instrument(name = "patients.search_patients", skip_all)]
    async fn search_patients(
        &self,
        ctx: &CallerContext,
        search: PatientSearch,
    ) -> WardResult<PatientPage> {
        self.authorize(ctx, Right::PatientsRead, "search", &[])
            .await?;
        // `PatientSearch` has public fields, so a hand-built one may skip `PatientSearch::parse`.
        if search.limit == 0 || search.limit > PAGE_MAX {
            return Err(WardError::invalid_field(
                "limit",
                format!("limit must be between 1 and {PAGE_MAX}"),
            ));
        }
        let page = find_page(&self.db, &search).await?;
        let mut ids = Vec::with_capacity(page.rows.len());
        let mut items = Vec::with_capacity(page.rows.len());
        for model in page.rows {
            ids.push(model.id);
            items.push(to_patient(model)?);
        }
        // A failed audit write fails the search: no unaudited access to patient data.
        record(&self.db, ctx, "search", &ids, ALLOWED).await?;
        Ok(PatientPage {
            items,
            next_cursor_opt: page.next_cursor_opt,
            total_opt: page.total_opt,
        })
    }

    #[tracing::instrument(name = "patients.update_patient", skip_all, fields(patient_id = %id))]
    async fn update_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        changes: PatientChanges,
        expected_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        self.authorize(ctx, Right::PatientsWrite, "update", &[id])
            .await?;
        let txn = self.begin_write("updating a patient").await?;
        let existing = merge::unmerged(live(find_patient_for_write(&txn, id).await?)?)?;
        check_expected_version(&existing, expected_version_opt)?;
        let email = stored_email(changes.email.as_deref());
        let email_normalized = email_key(&email, id);
        // Keeping one's own address (in any case) is not a conflict.
        if let Some(owner) = email_owner(&txn, &email_normalized).await?
            && owner != id
        {
            return Err(email_taken());
        }
        // A REST update leaves the FHIR extras as they are; a FHIR update replaces them.
        let fhir_extras = match &changes.fhir_extras_opt {
            Some(extras) => stored_extras(extras),
            None => existing.fhir_extras.clone(),
        };
        let identifiers_json = match &changes.identifiers_opt {
            Some(new_identifiers) => {
                identifiers::check_free(&txn, id, new_identifiers).await?;
                identifiers::encode(new_identifiers)?
            }
            None => existing.identifiers.clone(),
        };
        let model = patients::Model {
            identifiers: identifiers_json,
            name_sort: name_sort_key(&changes.name),
            name: changes.name,
            email,
            email_normalized,
            address: changes.address.unwrap_or_default(),
            date_of_birth: changes.date_of_birth,
            fhir_extras,
            updated_at: Utc::now(),
            version: existing.version + 1,
            ..existing
        };
        // Conditional on the version read: the check above and this write cannot be split by
        // another writer, and an affected-row count of 0 means one got in between.
        let updated = patients::Entity::update_many()
            .col_expr(patients::Column::Name, Expr::value(model.name.clone()))
            .col_expr(
                patients::Column::NameSort,
                Expr::value(model.name_sort.clone()),
            )
            .col_expr(patients::Column::Email, Expr::value(model.email.clone()))
            .col_expr(
                patients::Column::EmailNormalized,
                Expr::value(model.email_normalized.clone()),
            )
            .col_expr(
                patients::Column::Address,
                Expr::value(model.address.clone()),
            )
            .col_expr(
                patients::Column::DateOfBirth,
                Expr::value(model.date_of_birth),
            )
            .col_expr(patients::Column::UpdatedAt, Expr::value(model.updated_at))
            .col_expr(patients::Column::Version, Expr::value(model.version))
            .col_expr(
                patients::Column::Identifiers,
                Expr::value(model.identifiers.clone()),
            )
            .col_expr(
                patients::Column::FhirExtras,
                Expr::value(model.fhir_extras.clone()),
            )
            .filter(patients::Column::Id.eq(id))
            .filter(patients::Column::Version.eq(existing.version))
            .exec(&txn)
            .await
            .map_err(|error| write_error(error, "updating a patient", EMAIL_TAKEN_MESSAGE))?;
        if updated.rows_affected == 0 {
            return Err(lost_race(&txn, id).await);
        }
        if let Some(new_identifiers) = &changes.identifiers_opt {
            identifiers::replace_rows(&txn, id, new_identifiers).await?;
        }
        replace_name_tokens(&txn, id, &model.name).await?;
        let payload = PatientUpdated {
            patient_id: id.to_string(),
            name: model.name.clone(),
            email: model.email.clone(),
            version: stored_version(model.version)?,
        };
        enqueue_event(&txn, ctx, id, &payload).await?;
        record_version(&txn, ctx, &model, "update").await?;
        record(&txn, ctx, "update", &[id], ALLOWED).await?;
        self.commit_and_wake(txn, "updating a patient").await?;
        to_patient(model)
    }

    #[tracing::instrument(name = "patients.delete_patient", skip_all, fields(patient_id = %id))]
    async fn delete_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        expected_version_opt: Option<u32>,
    ) -> WardResult<()> {
        self.authorize(ctx, Right::PatientsWrite, "delete", &[id])
            .await?;
        let txn = self.begin_write("deleting a patient").await?;
        let existing = merge::unmerged(live(find_patient_for_write(&txn, id).await?)?)?;
        check_expected_version(&existing, expected_version_opt)?;
        // The delete is a history version too: the record as it was, one version on.
        let now = Utc::now();
        let last = patients::Model {
            version: existing.version + 1,
            updated_at: now,
            deleted_at: Some(now),
            ..existing
        };
        // The row stays (a restore brings it back); conditional on the version read, as in
        // `update_patient`. Name tokens stay too: searches filter deleted rows out.
        set_deleted_at(&txn, &last, existing.version, "deleting a patient").await?;
        record_version(&txn, ctx, &last, "delete").await?;
        let payload = PatientDeleted {
            patient_id: id.to_string(),
            version: stored_version(last.version)?,
        };
        enqueue_event(&txn, ctx, id, &payload).await?;
        record(&txn, ctx, "delete", &[id], ALLOWED).await?;
        self.commit_and_wake(txn, "deleting a patient").await?;
        Ok(())
    }

    #[tracing::instrument(name = "patients.restore_patient", skip_all, fields(patient_id = %id))]
    async fn restore_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        expected_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        lifecycle::restore_patient(self, ctx, id, expected_version_opt).await
    }

    #[tracing::instrument(name = "patients.merge_patients", skip_all, fields(%target, %source))]
    async fn merge_patients(
        &self,
        ctx: &CallerContext,
        target: Uuid,
        source: Uuid,
        expected_target_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        merge::merge_patients(self, ctx, target, source, expected_target_version_opt).await
    }

    #[tracing::instrument(name = "patients.unmerge_patients", skip_all, fields(%target, %source))]
    async fn unmerge_patients(
        &self,
        ctx: &CallerContext,
        target: Uuid,
        source: Uuid,
    ) -> WardResult<(Patient, Patient)> {
        merge::unmerge_patients(self, ctx, target, source).await
    }

    #[tracing::instrument(name = "patients.purge_patient", skip_all, fields(patient_id = %id))]
    async fn purge_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<()> {
        lifecycle::purge_patient(self, ctx, id).await
    }

    #[tracing::instrument(name = "patients.patient_history", skip_all, fields(patient_id = %id))]
    async fn patient_history(
        &self,
        ctx: &CallerContext,
        id: Uuid,
    ) -> WardResult<Vec<PatientVersion>> {
        self.authorize(ctx, Right::PatientsRead, "read", &[id])
            .await?;
        let rows = patient_versions::Entity::find()
            .filter(patient_versions::Column::PatientId.eq(id))
            .order_by_desc(patient_versions::Column::Version)
            .all(&self.db)
            .await
            .map_err(|error| db_error("reading a patient's history", error))?;
        if rows.is_empty() {
            return Err(not_found());
        }
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            items.push(to_patient_version(row)?);
        }
        // A failed audit write fails the read: no unaudited access to patient data.
        record(&self.db, ctx, "read", &[id], ALLOWED).await?;
        Ok(items)
    }

    #[tracing::instrument(name = "patients.patient_version", skip_all, fields(patient_id = %id, version))]
    async fn patient_version(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        version: u32,
    ) -> WardResult<PatientVersion> {
        if version == 0 {
            return Err(WardError::invalid_field(
                "version",
                "version must be a positive integer",
            ));
        }
        self.authorize(ctx, Right::PatientsRead, "read", &[id])
            .await?;
        let row = patient_versions::Entity::find_by_id((id, i64::from(version)))
            .one(&self.db)
            .await
            .map_err(|error| db_error("reading a patient version", error))?
            .ok_or_else(|| WardError::NotFound(VERSION_NOT_FOUND_MESSAGE.into()))?;
        let entry = to_patient_version(row)?;
        record(&self.db, ctx, "read", &[id], ALLOWED).await?;
        Ok(entry)
    }

    #[tracing::instrument(name = "patients.import_patients", skip_all, fields(num_records = records.len()))]
    async fn import_patients(
        &self,
        ctx: &CallerContext,
        records: Vec<(Uuid, NewPatient)>,
    ) -> WardResult<Vec<ImportOutcome>> {
        bulk::import_patients(self, ctx, records).await
    }

    #[tracing::instrument(name = "patients.export_patients", skip_all)]
    async fn export_patients(
        &self,
        ctx: &CallerContext,
        since_opt: Option<DateTime<Utc>>,
        page: PageRequest,
    ) -> WardResult<PatientPage> {
        bulk::export_patients(self, ctx, since_opt, page).await
    }

    #[tracing::instrument(name = "patients.audit_events", skip_all)]
    async fn audit_events(&self, ctx: &CallerContext, query: AuditQuery) -> WardResult<AuditPage> {
        audit::audit_events(&self.db, ctx, query).await
    }

    #[tracing::instrument(name = "patients.check_ready", skip_all)]
    async fn check_ready(&self) -> WardResult<()> {
        ping(&self.db, "patients").await
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use ward_core::config::SecretUrl;

    use super::*;

    fn new_patient(email: &str) -> NewPatient {
        NewPatient {
            name: "Jane Roe".into(),
            email: Some(email.into()),
            address: Some("1 Elm St".into()),
            date_of_birth: NaiveDate::from_ymd_opt(1990, 1, 2).unwrap(),
            registered_date: NaiveDate::from_ymd_opt(2024, 3, 4).unwrap(),
            identifiers: Vec::new(),
            fhir_extras: ward_bus::patients::FhirExtras::default(),
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
        let format = MrnFormat::default();
        insert_registered(
            &txn,
            &ctx,
            Uuid::now_v7(),
            &new_patient("a@x.org"),
            &format,
            "taken",
        )
        .await
        .unwrap();
        let error = insert_registered(
            &txn,
            &ctx,
            Uuid::now_v7(),
            &new_patient(" A@X.org"),
            &format,
            "taken",
        )
        .await
        .unwrap_err();

        assert_eq!(error, WardError::AlreadyExists("taken".into()));
        drop(txn);
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! Bulk import and export.
//!
//! An import registers a whole batch in one transaction with a handful of statements, not a
//! few per record: one lookup each for the ids, emails and identifiers already stored,
//! multi-row inserts of the name tokens, identifiers and `PatientRegistered` events, one counter update for the medical record
//! numbers, multi-row inserts of the records and their history entries, and one audit row. That is what makes a
//! million patients load in minutes; each record still ends exactly as a create leaves it.
//!
//! An export reads live patients page by page in id order (a keyset, like `list_patients`), each
//! page audited as one `export`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;
use ward_bus::db::db_error;
use ward_bus::events::{PATIENTS_TOPIC, PatientRegistered, envelope};
use ward_bus::outbox::enqueue_many;
use ward_bus::patients::{
    DUPLICATE_EMAIL_IN_BATCH_MESSAGE, DUPLICATE_ID_IN_BATCH_MESSAGE, IMPORT_BATCH_MAX,
    ImportOutcome, NewPatient, PageRequest, PatientIdentifier, PatientPage, format_date,
    num_created,
};
use ward_core::{CallerContext, Right, WardError, WardResult};

use super::store::{email_key, stored_email, stored_extras};
use super::{
    ALLOWED, EMAIL_TAKEN_MESSAGE, IMPORT_RACE_MESSAGE, PRODUCER, PatientsService, record,
    stored_version, write_error,
};
use crate::entity::{patient_identifiers, patient_name_tokens, patient_versions, patients};
use crate::identifiers;
use crate::mrn::allocate_mrns;
use crate::search::{fold_words, name_sort_key};

/// How often a batch is tried when a concurrent write takes one of its ids or emails between
/// the checks and the inserts (PostgreSQL only: SQLite runs write transactions one at a time).
/// The next try sees that write and reports the record instead.
const IMPORT_ATTEMPTS: usize = 3;

/// Rows per multi-row insert: at most 14 bound values each (a patient row), so a statement
/// stays far below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const INSERT_CHUNK_ROWS: usize = 1_000;
/// Name tokens carry two values each.
const TOKEN_CHUNK_ROWS: usize = 5_000;

/// See [`ward_bus::PatientsApi::import_patients`].
pub(super) async fn import_patients(
    service: &PatientsService,
    ctx: &CallerContext,
    records: Vec<(Uuid, NewPatient)>,
) -> WardResult<Vec<ImportOutcome>> {
    service
        .authorize(ctx, Right::PatientsWrite, "create", &[])
        .await?;
    if records.len() > IMPORT_BATCH_MAX {
        return Err(WardError::invalid_field(
            "patients",
            format!("an import takes at most {IMPORT_BATCH_MAX} records per call"),
        ));
    }
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempt = 1;
    loop {
        match import_once(service, ctx, &records).await {
            Err(WardError::AlreadyExists(message)) if message == IMPORT_RACE_MESSAGE => {
                if attempt == IMPORT_ATTEMPTS {
                    return Err(WardError::AlreadyExists(message));
                }
                attempt += 1;
                tracing::info!(
                    attempt,
                    "a concurrent write raced an import batch; retrying"
                );
            }
            result => return result,
        }
    }
}

/// One try at the batch: checks, then inserts, in one transaction.
async fn import_once(
    service: &PatientsService,
    ctx: &CallerContext,
    records: &[(Uuid, NewPatient)],
) -> WardResult<Vec<ImportOutcome>> {
    let txn = service.begin_write("importing patients").await?;
    let outcomes = check_batch(&txn, records).await?;
    let mut accepted = Vec::new();
    for (record, outcome) in records.iter().zip(&outcomes) {
        if outcome.is_created() {
            accepted.push(record);
        }
    }
    if accepted.is_empty() {
        // Nothing written: dropping the transaction rolls it back, and there is nothing to wake.
        return Ok(outcomes);
    }
    let mut models = unnumbered_models(&txn, &accepted).await?;
    insert_tokens_and_events(&txn, ctx, &models).await?;
    // Numbers last: the counter row stays locked until the commit, so the statements before
    // it run while another batch holds it.
    let mrns = allocate_mrns(&txn, &service.mrn_format, models.len()).await?;
    for (model, mrn) in models.iter_mut().zip(mrns) {
        model.mrn = mrn;
    }
    insert_rows_and_history(&txn, ctx, &models).await?;
    let created_ids: Vec<Uuid> = models.iter().map(|model| model.id).collect();
    // Same transaction: no patient without its audit row.
    record(&txn, ctx, "create", &created_ids, ALLOWED).await?;
    service.commit_and_wake(txn, "importing patients").await?;
    tracing::info!(
        num_created = num_created(&outcomes),
        num_records = records.len(),
        "imported patients"
    );
    Ok(outcomes)
}

/// Decides each record's fate before anything is written: an id already stored is
/// `AlreadyPresent`; an id or email repeated in the batch, or an email already taken, is
/// `Failed`; the rest will be `Created`.
async fn check_batch(
    txn: &DatabaseTransaction,
    records: &[(Uuid, NewPatient)],
) -> WardResult<Vec<ImportOutcome>> {
    let ids: Vec<Uuid> = records.iter().map(|(id, _)| *id).collect();
    let present: HashSet<Uuid> = patients::Entity::find()
        .select_only()
        .column(patients::Column::Id)
        .filter(patients::Column::Id.is_in(ids))
        .into_tuple::<Uuid>()
        .all(txn)
        .await
        .map_err(|error| db_error("looking up imported ids", error))?
        .into_iter()
        .collect();
    let emails: Vec<String> = records
        .iter()
        .map(|(id, patient)| email_key(&stored_email(patient.email.as_deref()), *id))
        .collect();
    let taken: HashSet<String> = patients::Entity::find()
        .select_only()
        .column(patients::Column::EmailNormalized)
        .filter(patients::Column::EmailNormalized.is_in(emails.clone()))
        .into_tuple::<String>()
        .all(txn)
        .await
        .map_err(|error| db_error("looking up imported emails", error))?
        .into_iter()
        .collect();
    let held = held_identifiers(txn, records).await?;
    let mut seen_ids = HashSet::new();
    let mut seen_emails = HashSet::new();
    let mut seen_identifiers = HashSet::new();
    let mut outcomes = Vec::with_capacity(records.len());
    for ((id, patient), email) in records.iter().zip(emails) {
        let taken_identifier_opt = patient
            .identifiers
            .iter()
            .find(|identifier| held.contains(*identifier));
        let repeated_identifier_opt = patient
            .identifiers
            .iter()
            .find(|identifier| seen_identifiers.contains(*identifier));
        let outcome = if present.contains(id) {
            ImportOutcome::AlreadyPresent
        } else if !seen_ids.insert(*id) {
            ImportOutcome::Failed(DUPLICATE_ID_IN_BATCH_MESSAGE.into())
        } else if taken.contains(&email) {
            ImportOutcome::Failed(EMAIL_TAKEN_MESSAGE.into())
        } else if !seen_emails.insert(email) {
            ImportOutcome::Failed(DUPLICATE_EMAIL_IN_BATCH_MESSAGE.into())
        } else if let Some(identifier) = taken_identifier_opt {
            ImportOutcome::Failed(format!(
                "identifier {identifier} already belongs to another patient"
            ))
        } else if let Some(identifier) = repeated_identifier_opt {
            ImportOutcome::Failed(format!(
                "identifier {identifier} appears earlier in the batch"
            ))
        } else {
            seen_identifiers.extend(patient.identifiers.iter().cloned());
            ImportOutcome::Created
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The identifiers of the batch that some patient already holds: looked up by value (indexed),
/// then matched by system here.
async fn held_identifiers(
    txn: &DatabaseTransaction,
    records: &[(Uuid, NewPatient)],
) -> WardResult<HashSet<PatientIdentifier>> {
    let wanted: HashSet<&PatientIdentifier> = records
        .iter()
        .flat_map(|(_, patient)| &patient.identifiers)
        .collect();
    let values: Vec<String> = wanted
        .iter()
        .map(|identifier| identifier.value.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut held = HashSet::new();
    for chunk in values.chunks(INSERT_CHUNK_ROWS) {
        let rows: Vec<(String, String)> = patient_identifiers::Entity::find()
            .select_only()
            .column(patient_identifiers::Column::System)
            .column(patient_identifiers::Column::Value)
            .filter(patient_identifiers::Column::Value.is_in(chunk.to_vec()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(|error| db_error("looking up imported identifiers", error))?;
        for (system, value) in rows {
            let identifier = PatientIdentifier { system, value };
            if wanted.contains(&identifier) {
                held.insert(identifier);
            }
        }
    }
    Ok(held)
}

/// The rows the accepted records become, without their numbers yet. A record whose id has
/// history but no row (deleted before deletes were soft) continues its history, as a create
/// does.
async fn unnumbered_models(
    txn: &DatabaseTransaction,
    accepted: &[&(Uuid, NewPatient)],
) -> WardResult<Vec<patients::Model>> {
    let ids: Vec<Uuid> = accepted.iter().map(|(id, _)| *id).collect();
    let last_versions: HashMap<Uuid, Option<i64>> = patient_versions::Entity::find()
        .select_only()
        .column(patient_versions::Column::PatientId)
        .column_as(patient_versions::Column::Version.max(), "last_version")
        .filter(patient_versions::Column::PatientId.is_in(ids))
        .group_by(patient_versions::Column::PatientId)
        .into_tuple::<(Uuid, Option<i64>)>()
        .all(txn)
        .await
        .map_err(|error| db_error("reading imported patients' history", error))?
        .into_iter()
        .collect();
    let now = Utc::now();
    let mut models = Vec::with_capacity(accepted.len());
    for (id, patient) in accepted {
        let email = stored_email(patient.email.as_deref());
        let identifiers_json = identifiers::encode(&patient.identifiers)?;
        let last_version = last_versions.get(id).copied().flatten().unwrap_or(0);
        models.push(patients::Model {
            id: *id,
            name: patient.name.clone(),
            name_sort: name_sort_key(&patient.name),
            mrn: String::new(),
            email_normalized: email_key(&email, *id),
            email,
            address: patient.address.clone().unwrap_or_default(),
            date_of_birth: patient.date_of_birth,
            registered_date: patient.registered_date,
            created_at: now,
            updated_at: now,
            version: last_version + 1,
            deleted_at: None,
            identifiers: identifiers_json,
            merged_into: None,
            fhir_extras: stored_extras(&patient.fhir_extras),
        });
    }
    Ok(models)
}

/// Writes the name tokens and `PatientRegistered` events of `models`, which need no number. A
/// unique violation means a concurrent import of the same id got in first: the caller tries the
/// batch again.
async fn insert_tokens_and_events(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    models: &[patients::Model],
) -> WardResult<()> {
    let mut tokens = Vec::new();
    for model in models {
        let mut words = fold_words(&model.name);
        words.sort();
        words.dedup();
        for word in words {
            tokens.push(patient_name_tokens::Model {
                token: word,
                patient_id: model.id,
            });
        }
    }
    for chunk in tokens.chunks(TOKEN_CHUNK_ROWS) {
        let rows = chunk
            .iter()
            .map(|token| patient_name_tokens::ActiveModel::from(token.clone()));
        patient_name_tokens::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
            .map_err(|error| write_error(error, "indexing imported names", IMPORT_RACE_MESSAGE))?;
    }
    let occurred_at = Utc::now();
    let mut events = Vec::with_capacity(models.len());
    for model in models {
        let payload = PatientRegistered {
            patient_id: model.id.to_string(),
            name: model.name.clone(),
            email: model.email.clone(),
            registered_date: format_date(model.registered_date),
            version: stored_version(model.version)?,
        };
        events.push(envelope(
            PRODUCER,
            model.id,
            ctx.request_id(),
            occurred_at,
            &payload,
        ));
    }
    enqueue_many(txn, PATIENTS_TOPIC, &events).await
}

/// Writes the numbered rows of `models` and their history entries. A unique violation here
/// means a concurrent write took an id or email after the checks: the caller tries the batch
/// again.
async fn insert_rows_and_history(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    models: &[patients::Model],
) -> WardResult<()> {
    for chunk in models.chunks(INSERT_CHUNK_ROWS) {
        let rows = chunk
            .iter()
            .map(|model| patients::ActiveModel::from(model.clone()));
        patients::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
            .map_err(|error| write_error(error, "inserting patients", IMPORT_RACE_MESSAGE))?;
    }
    let mut identifier_rows = Vec::new();
    for model in models {
        for identifier in identifiers::decode(&model.identifiers)? {
            identifier_rows.push(patient_identifiers::ActiveModel::from(
                patient_identifiers::Model {
                    system: identifier.system,
                    value: identifier.value,
                    patient_id: model.id,
                },
            ));
        }
    }
    for chunk in identifier_rows.chunks(INSERT_CHUNK_ROWS) {
        patient_identifiers::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await
            .map_err(|error| write_error(error, "recording identifiers", IMPORT_RACE_MESSAGE))?;
    }
    let recorded_at = Utc::now();
    for chunk in models.chunks(INSERT_CHUNK_ROWS) {
        let rows = chunk.iter().map(|model| {
            patient_versions::ActiveModel::from(patient_versions::Model {
                patient_id: model.id,
                version: model.version,
                recorded_at,
                actor: ctx.actor(),
                request_id: ctx.request_id().to_string(),
                action: "create".to_string(),
                name: model.name.clone(),
                email: model.email.clone(),
                address: model.address.clone(),
                date_of_birth: model.date_of_birth,
                registered_date: model.registered_date,
                mrn: model.mrn.clone(),
                identifiers: model.identifiers.clone(),
                merged_into: None,
                fhir_extras: model.fhir_extras.clone(),
            })
        });
        patient_versions::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
            .map_err(|error| write_error(error, "recording versions", IMPORT_RACE_MESSAGE))?;
    }
    Ok(())
}

/// See [`ward_bus::PatientsApi::export_patients`]: the live pages a list answers, changed
/// since `since_opt`, each audited as an `export`. Merged-away duplicates are left out like
/// deleted patients: the record that stayed carries their identifiers.
pub(super) async fn export_patients(
    service: &PatientsService,
    ctx: &CallerContext,
    since_opt: Option<DateTime<Utc>>,
    page: PageRequest,
) -> WardResult<PatientPage> {
    service.live_page(ctx, page, since_opt, "export").await
}

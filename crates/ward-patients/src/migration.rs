//! The patients database schema: the outbox (shared shape, from `ward-bus`), `patients`,
//! `audit_events` and `patient_versions`.

mod scale;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Schema};
use sea_orm_migration::prelude::*;
use ward_bus::outbox::OutboxMigration;

use self::scale::TuneNameTokensForScale;
use crate::entity::{
    audit_events, idempotency_keys, patient_counters, patient_name_tokens, patient_versions,
    patients,
};
use crate::mrn::{MIGRATION_MRN_FORMAT, MRN_COUNTER, MrnFormat, set_next_mrn_value};
use crate::search::{fold_words, insert_name_tokens, name_sort_key};

mod fhir_extras;
mod identifiers;
mod mrn_sequence;

/// Applies the patients module's migrations, recorded in its own `patients_migrations` table so
/// several modules may share one database (one PostgreSQL database, several schemas' worth of
/// tables) without tripping over each other's history.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(OutboxMigration),
            Box::new(CreatePatients),
            Box::new(CreateAuditEvents),
            Box::new(AuditEventsAppendOnly),
            Box::new(AddPatientVersions),
            Box::new(AddPatientSearch),
            Box::new(AddMedicalRecordNumbers),
            Box::new(AddSoftDelete),
            Box::new(AddIdempotencyKeys),
            Box::new(identifiers::AddPatientIdentifiers),
            Box::new(TuneNameTokensForScale),
            Box::new(fhir_extras::AddFhirExtras),
            Box::new(mrn_sequence::MrnSequence),
        ]
    }

    fn migration_table_name() -> DynIden {
        "patients_migrations".into_iden()
    }
}

/// Creates `idempotency_keys`, the keys of retried creates (see the entity).
struct AddIdempotencyKeys;

impl MigrationName for AddIdempotencyKeys {
    fn name(&self) -> &str {
        "m20261205_000108_add_idempotency_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddIdempotencyKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        let create_table = schema
            .create_table_from_entity(idempotency_keys::Entity)
            .if_not_exists()
            .to_owned();
        manager.create_table(create_table).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(idempotency_keys::Entity).to_owned())
            .await
    }
}

/// Creates `patients`. The entity's `unique` attribute puts a UNIQUE constraint on
/// `email_normalized` in the CREATE TABLE itself, on SQLite and PostgreSQL alike.
struct CreatePatients;

impl MigrationName for CreatePatients {
    fn name(&self) -> &str {
        "m20261125_000101_create_patients"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePatients {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        let create_patients = schema
            .create_table_from_entity(patients::Entity)
            .if_not_exists()
            .to_owned();
        manager.create_table(create_patients).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(patients::Entity).to_owned())
            .await
    }
}

/// Creates `audit_events` and its index on `at` (the time-range filter of the audit query).
struct CreateAuditEvents;

impl MigrationName for CreateAuditEvents {
    fn name(&self) -> &str {
        "m20261125_000102_create_audit_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAuditEvents {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        let create_table = schema
            .create_table_from_entity(audit_events::Entity)
            .if_not_exists()
            .to_owned();
        manager.create_table(create_table).await?;
        let create_index = Index::create()
            .name("idx_audit_events_at")
            .table(audit_events::Entity)
            .col(audit_events::Column::At)
            .if_not_exists()
            .to_owned();
        manager.create_index(create_index).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(audit_events::Entity).to_owned())
            .await
    }
}

/// Makes `audit_events` append-only in the database itself: an UPDATE or DELETE fails, whoever
/// issues it (a bug, a hand-typed statement, a compromised module), so the trail can only grow.
/// Dropping the triggers takes DDL rights, which the application role need not have.
struct AuditEventsAppendOnly;

impl MigrationName for AuditEventsAppendOnly {
    fn name(&self) -> &str {
        "m20261125_000103_audit_events_append_only"
    }
}

const APPEND_ONLY_MESSAGE: &str = "audit_events is append-only";

#[async_trait::async_trait]
impl MigrationTrait for AuditEventsAppendOnly {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE OR REPLACE FUNCTION ward_audit_events_append_only() RETURNS trigger \
                     LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
                ))
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON \
                     audit_events FOR EACH ROW EXECUTE FUNCTION ward_audit_events_append_only()",
                )
                .await?;
                // TRUNCATE skips row triggers; it gets its own statement-level one.
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events \
                     FOR EACH STATEMENT EXECUTE FUNCTION ward_audit_events_append_only()",
                )
                .await?;
            }
            _ => {
                for operation in ["UPDATE", "DELETE"] {
                    let name = operation.to_lowercase();
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER IF NOT EXISTS audit_events_no_{name} BEFORE {operation} \
                         ON audit_events BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events; \
                     DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events; \
                     DROP FUNCTION IF EXISTS ward_audit_events_append_only()",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "DROP TRIGGER IF EXISTS audit_events_no_update; \
                     DROP TRIGGER IF EXISTS audit_events_no_delete",
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Adds `patients.version` (existing rows get 1) and creates `patient_versions`, seeded with
/// each existing patient's current state as its version 1: what came before is unknown, so the
/// entry is an `update` unless the record never changed, and its actor says where it came from.
struct AddPatientVersions;

impl MigrationName for AddPatientVersions {
    fn name(&self) -> &str {
        "m20261201_000104_add_patient_versions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddPatientVersions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A database created after the entity gained `version` already has the column.
        if !manager.has_column("patients", "version").await? {
            let add_version = Table::alter()
                .table(patients::Entity)
                .add_column(
                    ColumnDef::new(patients::Column::Version)
                        .big_integer()
                        .not_null()
                        .default(1),
                )
                .to_owned();
            manager.alter_table(add_version).await?;
        }
        let schema = Schema::new(manager.get_database_backend());
        let create_table = schema
            .create_table_from_entity(patient_versions::Entity)
            .if_not_exists()
            .to_owned();
        manager.create_table(create_table).await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO patient_versions (patient_id, version, recorded_at, actor, \
                 request_id, action, name, email, address, date_of_birth, registered_date) \
                 SELECT id, version, updated_at, 'system:migration', 'migration', \
                 CASE WHEN updated_at = created_at THEN 'create' ELSE 'update' END, \
                 name, email, address, date_of_birth, registered_date FROM patients",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(patient_versions::Entity).to_owned())
            .await?;
        let drop_version = Table::alter()
            .table(patients::Entity)
            .drop_column(patients::Column::Version)
            .to_owned();
        manager.alter_table(drop_version).await
    }
}

/// Adds what search needs: `patients.name_sort` and `patient_name_tokens` (both backfilled from
/// the existing names), and an index per sort, each ending in `id` as the keyset does. On
/// PostgreSQL the folded text compares bytewise (`COLLATE "C"`), as on SQLite, so the prefix
/// range `token >= 'jo' AND token < 'jp'` holds whatever the database's locale.
struct AddPatientSearch;

impl MigrationName for AddPatientSearch {
    fn name(&self) -> &str {
        "m20261202_000105_add_patient_search"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddPatientSearch {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A database created after the entity gained `name_sort` already has the column.
        if !manager.has_column("patients", "name_sort").await? {
            let add_name_sort = Table::alter()
                .table(patients::Entity)
                .add_column(
                    ColumnDef::new(patients::Column::NameSort)
                        .string()
                        .not_null()
                        .default(""),
                )
                .to_owned();
            manager.alter_table(add_name_sort).await?;
        }
        let schema = Schema::new(manager.get_database_backend());
        let create_tokens = schema
            .create_table_from_entity(patient_name_tokens::Entity)
            .if_not_exists()
            .to_owned();
        manager.create_table(create_tokens).await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE patient_name_tokens ALTER COLUMN token TYPE TEXT COLLATE \"C\"; \
                     ALTER TABLE patients ALTER COLUMN name_sort TYPE TEXT COLLATE \"C\"",
                )
                .await?;
        }
        let indexes = [
            (
                "idx_patient_name_tokens_patient",
                patient_name_tokens::Entity.into_iden(),
                vec![patient_name_tokens::Column::PatientId.into_iden()],
            ),
            (
                "idx_patients_name_sort",
                patients::Entity.into_iden(),
                vec![
                    patients::Column::NameSort.into_iden(),
                    patients::Column::Id.into_iden(),
                ],
            ),
            (
                "idx_patients_date_of_birth",
                patients::Entity.into_iden(),
                vec![
                    patients::Column::DateOfBirth.into_iden(),
                    patients::Column::Id.into_iden(),
                ],
            ),
            (
                "idx_patients_registered_date",
                patients::Entity.into_iden(),
                vec![
                    patients::Column::RegisteredDate.into_iden(),
                    patients::Column::Id.into_iden(),
                ],
            ),
        ];
        for (name, table, columns) in indexes {
            let mut create_index = Index::create();
            create_index.name(name).table(table).if_not_exists();
            for column in columns {
                create_index.col(column);
            }
            manager.create_index(create_index.to_owned()).await?;
        }
        backfill_search_columns(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "idx_patients_name_sort",
            "idx_patients_date_of_birth",
            "idx_patients_registered_date",
        ] {
            let drop_index = Index::drop()
                .name(name)
                .table(patients::Entity)
                .if_exists()
                .to_owned();
            manager.drop_index(drop_index).await?;
        }
        manager
            .drop_table(Table::drop().table(patient_name_tokens::Entity).to_owned())
            .await?;
        let drop_name_sort = Table::alter()
            .table(patients::Entity)
            .drop_column(patients::Column::NameSort)
            .to_owned();
        manager.alter_table(drop_name_sort).await
    }
}

/// Folds every existing name into `name_sort` and its tokens. Folding is Rust code (Unicode
/// decomposition), so this reads the names and writes back row by row.
async fn backfill_search_columns(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let names: Vec<(uuid::Uuid, String)> = patients::Entity::find()
        .select_only()
        .column(patients::Column::Id)
        .column(patients::Column::Name)
        .into_tuple()
        .all(db)
        .await?;
    for (id, name) in names {
        patients::Entity::update_many()
            .col_expr(
                patients::Column::NameSort,
                Expr::value(name_sort_key(&name)),
            )
            .filter(patients::Column::Id.eq(id))
            .exec(db)
            .await?;
        let mut tokens = fold_words(&name);
        tokens.sort();
        tokens.dedup();
        insert_name_tokens(db, id, tokens)
            .await
            .map_err(|error| DbErr::Custom(error.to_string()))?;
    }
    Ok(())
}

/// Adds medical record numbers: `patients.mrn` and `patient_versions.mrn`, the
/// `patient_counters` table with its `mrn` row, a number for every existing patient in id
/// (registration) order, in the configured format ([`MIGRATION_MRN_FORMAT`]), then the unique
/// index. History entries take their patient's number; those of patients deleted earlier keep
/// an empty one.
struct AddMedicalRecordNumbers;

impl MigrationName for AddMedicalRecordNumbers {
    fn name(&self) -> &str {
        "m20261203_000106_add_medical_record_numbers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddMedicalRecordNumbers {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["patients", "patient_versions"] {
            // A database created after the entities gained `mrn` already has the column.
            if !manager.has_column(table, "mrn").await? {
                let add_mrn = Table::alter()
                    .table(Alias::new(table))
                    .add_column(
                        ColumnDef::new(Alias::new("mrn"))
                            .string()
                            .not_null()
                            .default(""),
                    )
                    .to_owned();
                manager.alter_table(add_mrn).await?;
            }
        }
        let schema = Schema::new(manager.get_database_backend());
        let create_counters = schema
            .create_table_from_entity(patient_counters::Entity)
            .if_not_exists()
            .to_owned();
        manager.create_table(create_counters).await?;
        let db = manager.get_connection();
        let existing = patient_counters::Entity::find_by_id(MRN_COUNTER.to_string())
            .one(db)
            .await?;
        if existing.is_none() {
            let counter = patient_counters::ActiveModel {
                name: sea_orm::ActiveValue::Set(MRN_COUNTER.to_string()),
                next_value: sea_orm::ActiveValue::Set(1),
            };
            patient_counters::Entity::insert(counter)
                .exec_without_returning(db)
                .await?;
        }
        let format = MIGRATION_MRN_FORMAT
            .try_with(MrnFormat::clone)
            .unwrap_or_default();
        let ids: Vec<uuid::Uuid> = patients::Entity::find()
            .select_only()
            .column(patients::Column::Id)
            .filter(patients::Column::Mrn.eq(""))
            .order_by_asc(patients::Column::Id)
            .into_tuple()
            .all(db)
            .await?;
        let num_existing = <i64 as TryFrom<usize>>::try_from(ids.len())
            .map_err(|_| DbErr::Custom("too many patients to number".into()))?;
        for (index, id) in (1_i64..).zip(ids) {
            let mrn = format.format(index);
            patients::Entity::update_many()
                .col_expr(patients::Column::Mrn, Expr::value(mrn.clone()))
                .filter(patients::Column::Id.eq(id))
                .exec(db)
                .await?;
            patient_versions::Entity::update_many()
                .col_expr(patient_versions::Column::Mrn, Expr::value(mrn))
                .filter(patient_versions::Column::PatientId.eq(id))
                .exec(db)
                .await?;
        }
        if num_existing > 0 {
            set_next_mrn_value(db, num_existing + 1)
                .await
                .map_err(|error| DbErr::Custom(error.to_string()))?;
        }
        let create_index = Index::create()
            .name("idx_patients_mrn")
            .table(patients::Entity)
            .col(patients::Column::Mrn)
            .unique()
            .if_not_exists()
            .to_owned();
        manager.create_index(create_index).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop_index = Index::drop()
            .name("idx_patients_mrn")
            .table(patients::Entity)
            .if_exists()
            .to_owned();
        manager.drop_index(drop_index).await?;
        manager
            .drop_table(Table::drop().table(patient_counters::Entity).to_owned())
            .await?;
        for table in ["patients", "patient_versions"] {
            let drop_mrn = Table::alter()
                .table(Alias::new(table))
                .drop_column(Alias::new("mrn"))
                .to_owned();
            manager.alter_table(drop_mrn).await?;
        }
        Ok(())
    }
}

/// Adds `patients.deleted_at` (nullable: existing rows stay live). No index: deleted rows are
/// few, so the search and sort indexes keep serving every query and `deleted_at IS NULL` is a
/// cheap residual filter on the rows they return.
struct AddSoftDelete;

impl MigrationName for AddSoftDelete {
    fn name(&self) -> &str {
        "m20261204_000107_add_soft_delete"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddSoftDelete {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A database created after the entity gained `deleted_at` already has the column.
        if manager.has_column("patients", "deleted_at").await? {
            return Ok(());
        }
        let add_deleted_at = Table::alter()
            .table(patients::Entity)
            .add_column(
                ColumnDef::new(patients::Column::DeletedAt)
                    .timestamp_with_time_zone()
                    .null(),
            )
            .to_owned();
        manager.alter_table(add_deleted_at).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop_deleted_at = Table::alter()
            .table(patients::Entity)
            .drop_column(patients::Column::DeletedAt)
            .to_owned();
        manager.alter_table(drop_deleted_at).await
    }
}

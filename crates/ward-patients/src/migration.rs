//! The patients database schema: the outbox (shared shape, from `ward-bus`), `patients`,
//! `audit_events` and `patient_versions`.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;
use ward_bus::outbox::OutboxMigration;

use crate::entity::{audit_events, patient_versions, patients};

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
        ]
    }

    fn migration_table_name() -> DynIden {
        "patients_migrations".into_iden()
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

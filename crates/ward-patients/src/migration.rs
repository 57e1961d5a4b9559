//! The patients database schema: the outbox (shared shape, from `ward-bus`), `patients` and
//! `audit_events`.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;
use ward_bus::outbox::OutboxMigration;

use crate::entity::{audit_events, patients};

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

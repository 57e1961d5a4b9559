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

//! The billing database schema: the outbox, the consumer's bookkeeping and `billing_accounts`.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;
use ward_bus::consumer::ConsumerMigration;
use ward_bus::outbox::OutboxMigration;

use crate::entity::billing_accounts;

/// Applies the billing module's migrations, recorded in its own `billing_migrations` table so
/// several modules may share one database without tripping over each other's history.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(OutboxMigration),
            Box::new(ConsumerMigration),
            Box::new(CreateBillingAccounts),
        ]
    }

    fn migration_table_name() -> DynIden {
        "billing_migrations".into_iden()
    }
}

/// Creates `billing_accounts`; the unique `patient_id` enforces one account per patient.
struct CreateBillingAccounts;

impl MigrationName for CreateBillingAccounts {
    fn name(&self) -> &str {
        "m20261125_000101_billing_accounts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateBillingAccounts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Built from the entity, so the column types follow the backend (SQLite or PostgreSQL).
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(billing_accounts::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(billing_accounts::Entity).to_owned())
            .await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::DbBackend;

    use super::*;

    #[test]
    fn postgres_schema_keeps_one_account_per_patient() {
        let schema = Schema::new(DbBackend::Postgres);
        let create = schema
            .create_table_from_entity(billing_accounts::Entity)
            .if_not_exists()
            .to_owned();
        let sql = DbBackend::Postgres.build(&create).to_string();
        assert!(
            sql.contains(r#""patient_id" uuid NOT NULL UNIQUE"#),
            "{sql}"
        );
    }
}

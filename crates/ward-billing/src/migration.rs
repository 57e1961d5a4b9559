//! The billing database schema: the outbox, the consumer's bookkeeping, `billing_accounts`, and
//! the ledger with the invoices, payments, allocations and refunds it is posted from.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;
use ward_bus::consumer::ConsumerMigration;
use ward_bus::outbox::OutboxMigration;

use crate::entity::{
    billing_accounts, idempotency_keys, invoices, ledger_entries, payment_allocations, payments,
    refunds,
};

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
            Box::new(CreateLedger),
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

/// Adds the account's `currency` and creates the ledger and the tables it is posted from,
/// with the indexes the service reads by.
struct CreateLedger;

impl MigrationName for CreateLedger {
    fn name(&self) -> &str {
        "m20261207_000102_billing_ledger"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLedger {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("billing_accounts", "currency").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(billing_accounts::Entity)
                        .add_column(
                            ColumnDef::new(billing_accounts::Column::Currency)
                                .string()
                                .null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(ledger_entries::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(invoices::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(payments::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(payment_allocations::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(refunds::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(idempotency_keys::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Balances and statements sum a patient's entries, by time.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ledger_entries_patient_at")
                    .table(ledger_entries::Entity)
                    .col(ledger_entries::Column::PatientId)
                    .col(ledger_entries::Column::At)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("invoices_patient_status")
                    .table(invoices::Entity)
                    .col(invoices::Column::PatientId)
                    .col(invoices::Column::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("payments_patient")
                    .table(payments::Entity)
                    .col(payments::Column::PatientId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("payment_allocations_invoice")
                    .table(payment_allocations::Entity)
                    .col(payment_allocations::Column::InvoiceId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("refunds_payment")
                    .table(refunds::Entity)
                    .col(refunds::Column::PaymentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "billing_idempotency_keys",
            "refunds",
            "payment_allocations",
            "payments",
            "invoices",
            "ledger_entries",
        ] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(billing_accounts::Entity)
                    .drop_column(billing_accounts::Column::Currency)
                    .to_owned(),
            )
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

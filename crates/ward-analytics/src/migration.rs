//! The analytics database schema: the consumer's bookkeeping, the counters, the patient states
//! and the money figures.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;
use ward_bus::consumer::ConsumerMigration;

use crate::entity::{
    daily_amounts, daily_registrations, event_counts, method_amounts, patient_states, receivables,
};

/// Applies the analytics module's migrations, recorded in its own `analytics_migrations` table so
/// several modules may share one database without tripping over each other's history.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(ConsumerMigration),
            Box::new(CreateFigures),
            Box::new(CreateStatesAndMoney),
        ]
    }

    fn migration_table_name() -> DynIden {
        "analytics_migrations".into_iden()
    }
}

/// Creates `event_counts` and `daily_registrations`.
struct CreateFigures;

impl MigrationName for CreateFigures {
    fn name(&self) -> &str {
        "m20261125_000201_analytics_figures"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateFigures {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Built from the entities, so the column types follow the backend (SQLite or PostgreSQL).
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(event_counts::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(daily_registrations::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(daily_registrations::Entity).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(event_counts::Entity).to_owned())
            .await
    }
}

/// Creates `patient_states`, `daily_amounts`, `method_amounts` and `receivables`, with the
/// indexes their queries use.
struct CreateStatesAndMoney;

impl MigrationName for CreateStatesAndMoney {
    fn name(&self) -> &str {
        "m20261207_000202_analytics_states_and_money"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateStatesAndMoney {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        let mut tables = vec![
            schema.create_table_from_entity(patient_states::Entity),
            schema.create_table_from_entity(daily_amounts::Entity),
            schema.create_table_from_entity(method_amounts::Entity),
            schema.create_table_from_entity(receivables::Entity),
        ];
        for table in &mut tables {
            manager
                .create_table(table.if_not_exists().to_owned())
                .await?;
        }
        let mut indexes = schema.create_index_from_entity(patient_states::Entity);
        indexes.extend(schema.create_index_from_entity(receivables::Entity));
        for index in &mut indexes {
            manager
                .create_index(index.if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(receivables::Entity).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(method_amounts::Entity).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(daily_amounts::Entity).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(patient_states::Entity).to_owned())
            .await
    }
}

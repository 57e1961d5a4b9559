//! The analytics database schema: the consumer's bookkeeping and the counters.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;
use ward_bus::consumer::ConsumerMigration;

use crate::entity::{daily_registrations, event_counts};

/// Applies the analytics module's migrations, recorded in its own `analytics_migrations` table so
/// several modules may share one database without tripping over each other's history.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(ConsumerMigration), Box::new(CreateFigures)]
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

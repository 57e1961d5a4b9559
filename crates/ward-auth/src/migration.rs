//! The auth database schema, built with sea-query so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{pk_uuid, text, text_uniq, timestamp_with_time_zone};

/// Applies the auth module's migrations, recorded in its own `auth_migrations` table so several
/// modules may share one database without tripping over each other's history.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateUsers)]
    }

    fn migration_table_name() -> DynIden {
        "auth_migrations".into_iden()
    }
}

/// Creates `users`; the unique `email_normalized` column enforces one account per address.
struct CreateUsers;

impl MigrationName for CreateUsers {
    fn name(&self) -> &str {
        "m20250601_000001_create_users"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateUsers {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let create_users = Table::create()
            .table(Users::Table)
            .if_not_exists()
            .col(pk_uuid(Users::Id))
            .col(text(Users::Email))
            .col(text_uniq(Users::EmailNormalized))
            .col(text(Users::PasswordHash))
            .col(text(Users::Role))
            .col(timestamp_with_time_zone(Users::CreatedAt))
            .to_owned();
        manager.create_table(create_users).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    EmailNormalized,
    PasswordHash,
    Role,
    CreatedAt,
}

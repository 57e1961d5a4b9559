//! The auth database schema, built with sea-query so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, pk_uuid, text, text_uniq, timestamp_with_time_zone, timestamp_with_time_zone_null,
    uuid,
};
use ward_bus::outbox::OutboxMigration;

/// Applies the auth module's migrations, recorded in its own `auth_migrations` table so several
/// modules may share one database without tripping over each other's history.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        // Appended only: databases that ran the first ones pick up the rest in order.
        vec![
            Box::new(CreateUsers),
            Box::new(OutboxMigration),
            Box::new(AddUsersDisabled),
            Box::new(CreateRefreshTokens),
            Box::new(CreateLoginAttempts),
        ]
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

/// Adds `users.disabled`; existing accounts stay enabled.
struct AddUsersDisabled;

impl MigrationName for AddUsersDisabled {
    fn name(&self) -> &str {
        "m20261201_000002_users_disabled"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddUsersDisabled {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let add_disabled = Table::alter()
            .table(Users::Table)
            .add_column(boolean(Users::Disabled).default(false))
            .to_owned();
        manager.alter_table(add_disabled).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop_disabled = Table::alter()
            .table(Users::Table)
            .drop_column(Users::Disabled)
            .to_owned();
        manager.alter_table(drop_disabled).await
    }
}

/// Creates `refresh_tokens`, indexed by session (logout, replay) and by user (password change,
/// disabling).
struct CreateRefreshTokens;

impl MigrationName for CreateRefreshTokens {
    fn name(&self) -> &str {
        "m20261201_000003_refresh_tokens"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRefreshTokens {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let create_refresh_tokens = Table::create()
            .table(RefreshTokens::Table)
            .if_not_exists()
            .col(pk_uuid(RefreshTokens::Id))
            .col(uuid(RefreshTokens::SessionId))
            .col(uuid(RefreshTokens::UserId))
            .col(text_uniq(RefreshTokens::TokenHash))
            .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
            .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
            .col(timestamp_with_time_zone_null(RefreshTokens::SpentAt))
            .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
            .to_owned();
        manager.create_table(create_refresh_tokens).await?;
        let indexes = [
            ("idx_refresh_tokens_session_id", RefreshTokens::SessionId),
            ("idx_refresh_tokens_user_id", RefreshTokens::UserId),
        ];
        for (name, column) in indexes {
            let create_index = Index::create()
                .name(name)
                .table(RefreshTokens::Table)
                .col(column)
                .if_not_exists()
                .to_owned();
            manager.create_index(create_index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await
    }
}

/// Creates `login_attempts`, the throttle's counts, indexed as each check reads them: one key's
/// rows by time.
struct CreateLoginAttempts;

impl MigrationName for CreateLoginAttempts {
    fn name(&self) -> &str {
        "m20261201_000004_login_attempts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLoginAttempts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let create_login_attempts = Table::create()
            .table(LoginAttempts::Table)
            .if_not_exists()
            .col(pk_uuid(LoginAttempts::Id))
            .col(uuid(LoginAttempts::AttemptId))
            .col(text(LoginAttempts::ThrottleKey))
            .col(timestamp_with_time_zone(LoginAttempts::AttemptedAt))
            .to_owned();
        manager.create_table(create_login_attempts).await?;
        let create_index = Index::create()
            .name("idx_login_attempts_key_attempted_at")
            .table(LoginAttempts::Table)
            .col(LoginAttempts::ThrottleKey)
            .col(LoginAttempts::AttemptedAt)
            .if_not_exists()
            .to_owned();
        manager.create_index(create_index).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginAttempts::Table).to_owned())
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
    Disabled,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    SessionId,
    UserId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    SpentAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum LoginAttempts {
    Table,
    Id,
    AttemptId,
    ThrottleKey,
    AttemptedAt,
}

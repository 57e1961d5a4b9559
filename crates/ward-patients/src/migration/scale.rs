//! The schema changes the 1,000,000-patient benchmark called for (BENCHMARKS.md).

use sea_orm_migration::prelude::*;

use crate::entity::patient_name_tokens;

/// Makes a name-prefix search fast at a million patients (see BENCHMARKS.md). The index on
/// `patient_name_tokens (patient_id)` becomes `(patient_id, token)`, so that walking patients in
/// id order (the default sort) checks each one's tokens with an index-only probe. On PostgreSQL
/// the planner also keeps exact frequencies for up to 1,000 tokens (statistics target), so it
/// knows a common prefix (`smi`) from a rare one and picks that walk only for the former.
pub(super) struct TuneNameTokensForScale;

impl MigrationName for TuneNameTokensForScale {
    fn name(&self) -> &str {
        "m20261206_000110_tune_name_tokens_for_scale"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for TuneNameTokensForScale {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let create_index = Index::create()
            .name("idx_patient_name_tokens_patient_token")
            .table(patient_name_tokens::Entity)
            .col(patient_name_tokens::Column::PatientId)
            .col(patient_name_tokens::Column::Token)
            .if_not_exists()
            .to_owned();
        manager.create_index(create_index).await?;
        let drop_index = Index::drop()
            .name("idx_patient_name_tokens_patient")
            .table(patient_name_tokens::Entity)
            .if_exists()
            .to_owned();
        manager.drop_index(drop_index).await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE patient_name_tokens ALTER COLUMN token SET STATISTICS 1000",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let create_index = Index::create()
            .name("idx_patient_name_tokens_patient")
            .table(patient_name_tokens::Entity)
            .col(patient_name_tokens::Column::PatientId)
            .if_not_exists()
            .to_owned();
        manager.create_index(create_index).await?;
        let drop_index = Index::drop()
            .name("idx_patient_name_tokens_patient_token")
            .table(patient_name_tokens::Entity)
            .if_exists()
            .to_owned();
        manager.drop_index(drop_index).await
    }
}

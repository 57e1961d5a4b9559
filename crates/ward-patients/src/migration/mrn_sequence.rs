//! Medical record numbers from a sequence on PostgreSQL (BENCHMARKS.md, issue 8).

use sea_orm_migration::prelude::*;

use crate::mrn::{MRN_COUNTER, MRN_SEQUENCE};

/// On PostgreSQL, numbers come from the sequence `patient_mrn_seq` from now on, continuing where
/// the `mrn` counter row stopped. The row was locked from a registration's first statement to
/// its commit, so every registration queued behind the one before, fsync included; `nextval`
/// holds no lock. SQLite keeps the row: its write transactions run one at a time anyway.
pub(super) struct MrnSequence;

impl MigrationName for MrnSequence {
    fn name(&self) -> &str {
        "m20261208_000112_mrn_sequence"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for MrnSequence {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!(
                "CREATE SEQUENCE IF NOT EXISTS {MRN_SEQUENCE} AS bigint MINVALUE 1"
            ))
            .await?;
        // `false`: the counter holds the next number to give, not the last one given.
        connection
            .execute_unprepared(&format!(
                "SELECT setval('{MRN_SEQUENCE}', GREATEST(1, COALESCE((SELECT next_value FROM \
                 patient_counters WHERE name = '{MRN_COUNTER}'), 1)), false)"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let connection = manager.get_connection();
        // Hands the position back to the counter row, so no number is given twice.
        connection
            .execute_unprepared(&format!(
                "UPDATE patient_counters SET next_value = (SELECT CASE WHEN is_called THEN \
                 last_value + 1 ELSE last_value END FROM {MRN_SEQUENCE}) WHERE name = '{MRN_COUNTER}'"
            ))
            .await?;
        connection
            .execute_unprepared(&format!("DROP SEQUENCE IF EXISTS {MRN_SEQUENCE}"))
            .await?;
        Ok(())
    }
}

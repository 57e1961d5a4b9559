//! FHIR fidelity: `fhir_extras` on `patients` and `patient_versions` (nullable JSON text,
//! existing rows `NULL`), and an index on `patients.updated_at`, which an export's `_since`
//! filters on.

use sea_orm_migration::prelude::*;

use crate::entity::patients;

pub(super) struct AddFhirExtras;

impl MigrationName for AddFhirExtras {
    fn name(&self) -> &str {
        "m20261207_000111_add_fhir_extras"
    }
}

const INDEX_BY_UPDATED_AT: &str = "idx_patients_updated_at";

#[async_trait::async_trait]
impl MigrationTrait for AddFhirExtras {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["patients", "patient_versions"] {
            // A database created after the entities gained the column already has it.
            if manager.has_column(table, "fhir_extras").await? {
                continue;
            }
            // Nullable with no default: an ADD COLUMN both SQLite and PostgreSQL do in place.
            let add_column = Table::alter()
                .table(Alias::new(table))
                .add_column(ColumnDef::new(Alias::new("fhir_extras")).text().null())
                .to_owned();
            manager.alter_table(add_column).await?;
        }
        let by_updated_at = Index::create()
            .name(INDEX_BY_UPDATED_AT)
            .table(patients::Entity)
            .col(patients::Column::UpdatedAt)
            .if_not_exists()
            .to_owned();
        manager.create_index(by_updated_at).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop_index = Index::drop()
            .name(INDEX_BY_UPDATED_AT)
            .table(patients::Entity)
            .to_owned();
        manager.drop_index(drop_index).await?;
        for table in ["patients", "patient_versions"] {
            let drop_column = Table::alter()
                .table(Alias::new(table))
                .drop_column(Alias::new("fhir_extras"))
                .to_owned();
            manager.alter_table(drop_column).await?;
        }
        Ok(())
    }
}

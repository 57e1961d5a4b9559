//! Further identifiers and merges: `patients.identifiers` and `patient_versions.identifiers`
//! (JSON copies, existing rows `[]`), the `patient_identifiers` table with its indexes,
//! `merged_into` on both tables (existing rows `NULL`) and the `patient_merges` table.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use crate::entity::{patient_identifiers, patient_merges};

pub(super) struct AddPatientIdentifiers;

impl MigrationName for AddPatientIdentifiers {
    fn name(&self) -> &str {
        "m20261206_000109_add_patient_identifiers"
    }
}

const INDEX_BY_PATIENT: &str = "idx_patient_identifiers_patient_id";
const INDEX_BY_VALUE: &str = "idx_patient_identifiers_value";

#[async_trait::async_trait]
impl MigrationTrait for AddPatientIdentifiers {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A database created after the entities gained the column already has it.
        for table in ["patients", "patient_versions"] {
            if manager.has_column(table, "identifiers").await? {
                continue;
            }
            let add_column = Table::alter()
                .table(Alias::new(table))
                .add_column(
                    ColumnDef::new(Alias::new("identifiers"))
                        .text()
                        .not_null()
                        .default("[]"),
                )
                .to_owned();
            manager.alter_table(add_column).await?;
        }
        for table in ["patients", "patient_versions"] {
            if manager.has_column(table, "merged_into").await? {
                continue;
            }
            let add_column = Table::alter()
                .table(Alias::new(table))
                .add_column(ColumnDef::new(Alias::new("merged_into")).uuid().null())
                .to_owned();
            manager.alter_table(add_column).await?;
        }
        let schema = Schema::new(manager.get_database_backend());
        for mut create_table in [
            schema.create_table_from_entity(patient_identifiers::Entity),
            schema.create_table_from_entity(patient_merges::Entity),
        ] {
            manager
                .create_table(create_table.if_not_exists().to_owned())
                .await?;
        }
        // `#[sea_orm(indexed)]` is not part of the CREATE TABLE; the merge lookup needs it.
        let merges_by_source = Index::create()
            .name("idx_patient_merges_source_id")
            .table(patient_merges::Entity)
            .col(patient_merges::Column::SourceId)
            .if_not_exists()
            .to_owned();
        manager.create_index(merges_by_source).await?;
        for (name, column) in [
            (INDEX_BY_PATIENT, patient_identifiers::Column::PatientId),
            (INDEX_BY_VALUE, patient_identifiers::Column::Value),
        ] {
            let create_index = Index::create()
                .name(name)
                .table(patient_identifiers::Entity)
                .col(column)
                .if_not_exists()
                .to_owned();
            manager.create_index(create_index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(patient_merges::Entity).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(patient_identifiers::Entity).to_owned())
            .await?;
        for table in ["patients", "patient_versions"] {
            for column in ["identifiers", "merged_into"] {
                let drop_column = Table::alter()
                    .table(Alias::new(table))
                    .drop_column(Alias::new(column))
                    .to_owned();
                manager.alter_table(drop_column).await?;
            }
        }
        Ok(())
    }
}

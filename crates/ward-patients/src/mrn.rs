//! Medical record numbers: a configured prefix and a zero-padded number, each given once.
//!
//! On PostgreSQL the numbers come from the sequence `patient_mrn_seq`, which holds no lock, so
//! concurrent registrations commit side by side; a registration that rolls back leaves its
//! number unused (a gap), as hospital record numbers commonly have. On SQLite they come from the
//! `mrn` row of `patient_counters`, inside the registering transaction (write transactions run
//! one at a time there anyway), so a rolled-back registration gives its number back.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, Statement,
};
use ward_bus::db::db_error;
use ward_core::config::PatientsOptions;
use ward_core::{WardError, WardResult};

use crate::entity::patient_counters;

/// The name of the counter row medical record numbers come from on SQLite.
pub(crate) const MRN_COUNTER: &str = "mrn";

/// The sequence medical record numbers come from on PostgreSQL.
pub(crate) const MRN_SEQUENCE: &str = "patient_mrn_seq";

tokio::task_local! {
    /// The format the migration backfills existing patients with: migrations take no
    /// arguments, so [`crate::PatientsService::migrate_with`] scopes it around the run.
    pub(crate) static MIGRATION_MRN_FORMAT: MrnFormat;
}

/// How medical record numbers are written: `prefix` then the number, zero-padded to `digits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrnFormat {
    prefix: String,
    digits: usize,
}

impl MrnFormat {
    /// The format `patients.mrn_prefix` and `patients.mrn_digits` describe (checked when the
    /// configuration loads).
    pub fn from_options(options: &PatientsOptions) -> Self {
        Self {
            prefix: options.mrn_prefix.clone(),
            digits: usize::from(options.mrn_digits),
        }
    }

    /// Writes number `value`, e.g. `MRN-00000042`; a number wider than `digits` keeps all its
    /// digits, so it stays unique.
    pub fn format(&self, value: i64) -> String {
        format!("{}{value:0width$}", self.prefix, width = self.digits)
    }
}

impl Default for MrnFormat {
    fn default() -> Self {
        Self::from_options(&PatientsOptions::default())
    }
}

/// Takes the next number for a registration in `txn` (see the module's comment).
pub(crate) async fn allocate_mrn(
    txn: &DatabaseTransaction,
    format: &MrnFormat,
) -> WardResult<String> {
    let mut numbers = allocate_mrns(txn, format, 1).await?;
    numbers
        .pop()
        .ok_or_else(|| WardError::Internal("allocating one medical record number gave none".into()))
}

/// Takes the next `count` numbers in one statement on PostgreSQL, with one read and one write
/// of the counter on SQLite (a bulk import numbers its whole batch at once).
pub(crate) async fn allocate_mrns(
    txn: &DatabaseTransaction,
    format: &MrnFormat,
    count: usize,
) -> WardResult<Vec<String>> {
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        let values = next_sequence_values(txn, count).await?;
        return Ok(values
            .into_iter()
            .map(|value| format.format(value))
            .collect());
    }
    // SQLite: the lock is the write transaction's (BEGIN IMMEDIATE).
    let counter = patient_counters::Entity::find_by_id(MRN_COUNTER.to_string())
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(|error| db_error("reading the medical record number counter", error))?
        .ok_or_else(|| {
            WardError::Internal(
                "the medical record number counter is missing; run the patients migrations".into(),
            )
        })?;
    let first = counter.next_value;
    let num_taken = i64::try_from(count).map_err(|_| {
        WardError::Internal(format!("cannot allocate {count} medical record numbers"))
    })?;
    set_next_mrn_value(txn, first + num_taken).await?;
    let mut numbers = Vec::with_capacity(count);
    for value in first..first + num_taken {
        numbers.push(format.format(value));
    }
    Ok(numbers)
}

/// `count` values of the PostgreSQL sequence, in increasing order.
async fn next_sequence_values(txn: &DatabaseTransaction, count: usize) -> WardResult<Vec<i64>> {
    let num_wanted = i64::try_from(count).map_err(|_| {
        WardError::Internal(format!("cannot allocate {count} medical record numbers"))
    })?;
    let statement = Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        format!("SELECT nextval('{MRN_SEQUENCE}') AS value FROM generate_series(1, $1)"),
        [num_wanted.into()],
    );
    let rows = txn
        .query_all_raw(statement)
        .await
        .map_err(|error| db_error("taking medical record numbers", error))?;
    let mut values = Vec::with_capacity(rows.len());
    for row in rows {
        let value: i64 = row
            .try_get("", "value")
            .map_err(|error| db_error("reading a medical record number", error))?;
        values.push(value);
    }
    if values.len() != count {
        return Err(WardError::Internal(format!(
            "asked for {count} medical record numbers, got {}",
            values.len()
        )));
    }
    values.sort_unstable();
    Ok(values)
}

/// Moves the counter to `next_value`.
pub(crate) async fn set_next_mrn_value<C: ConnectionTrait>(
    conn: &C,
    next_value: i64,
) -> WardResult<()> {
    patient_counters::Entity::update_many()
        .col_expr(patient_counters::Column::NextValue, Expr::value(next_value))
        .filter(patient_counters::Column::Name.eq(MRN_COUNTER))
        .exec(conn)
        .await
        .map_err(|error| db_error("moving the medical record number counter", error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_zero_padded_after_the_prefix() {
        let format = MrnFormat::default();
        assert_eq!(format.format(42), "MRN-00000042");
        let short = MrnFormat::from_options(&PatientsOptions {
            mrn_prefix: "P".into(),
            mrn_digits: 2,
            ..PatientsOptions::default()
        });
        assert_eq!(short.format(7), "P07");
        assert_eq!(short.format(123), "P123");
    }
}

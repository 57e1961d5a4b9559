//! Medical record numbers: a configured prefix and a zero-padded number from the `mrn` row of
//! `patient_counters`, allocated inside the registering transaction so a number is used once,
//! and only by a registration that commits.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
};
use ward_bus::db::db_error;
use ward_core::config::PatientsOptions;
use ward_core::{WardError, WardResult};

use crate::entity::patient_counters;

/// The name of the counter row medical record numbers come from.
pub(crate) const MRN_COUNTER: &str = "mrn";

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

/// Takes the next number inside `txn`. The counter row is locked first (`FOR UPDATE` on
/// PostgreSQL; SQLite's write transactions already run one at a time), so two registrations
/// never read the same value, and a rolled-back one gives its number back.
pub(crate) async fn allocate_mrn(
    txn: &DatabaseTransaction,
    format: &MrnFormat,
) -> WardResult<String> {
    let mut numbers = allocate_mrns(txn, format, 1).await?;
    numbers
        .pop()
        .ok_or_else(|| WardError::Internal("allocating one medical record number gave none".into()))
}

/// Takes the next `count` numbers inside `txn` with one read and one write of the counter (a
/// bulk import numbers its whole batch at once), under the same lock as [`allocate_mrn`].
pub(crate) async fn allocate_mrns(
    txn: &DatabaseTransaction,
    format: &MrnFormat,
    count: usize,
) -> WardResult<Vec<String>> {
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

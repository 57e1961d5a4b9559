//! Bulk import: what becomes of each imported record.

/// The most records one import call takes; a larger file is sent in several calls. The batch is
/// one transaction, so this also bounds how long it holds the write lock.
pub const IMPORT_BATCH_MAX: usize = 5_000;

/// The message for a record whose email another record of the same batch already uses.
pub const DUPLICATE_EMAIL_IN_BATCH_MESSAGE: &str = "Email address appears earlier in the batch";
/// The message for a record whose id another record of the same batch already uses.
pub const DUPLICATE_ID_IN_BATCH_MESSAGE: &str = "id appears earlier in the batch";

/// What became of one imported record, in the order the records were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Registered now, exactly as a create would (number, history, event, audit).
    Created,
    /// A patient with this id exists (live or soft deleted); nothing was written for it.
    AlreadyPresent,
    /// Refused, for the reason given (an email or identifier already taken, or used earlier in
    /// the batch).
    Failed(String),
}

impl ImportOutcome {
    /// Whether the record was registered by this import.
    pub fn is_created(&self) -> bool {
        matches!(self, ImportOutcome::Created)
    }
}

/// Counts the records an import registered.
pub fn num_created(outcomes: &[ImportOutcome]) -> u64 {
    let mut num_created = 0;
    for outcome in outcomes {
        if outcome.is_created() {
            num_created += 1;
        }
    }
    num_created
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_created_records_count() {
        let outcomes = [
            ImportOutcome::Created,
            ImportOutcome::AlreadyPresent,
            ImportOutcome::Failed("x".into()),
            ImportOutcome::Created,
        ];
        assert_eq!(num_created(&outcomes), 2);
        assert_eq!(num_created(&[]), 0);
    }
}

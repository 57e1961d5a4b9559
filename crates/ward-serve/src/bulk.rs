//! `ward import patients` and `ward export patients`: FHIR Patient NDJSON in and out of the
//! patients database, opened from the configuration as `ward user create` opens the auth one.
//!
//! Lines go through the same FHIR mapping as `POST /fhir/Patient` and the same module calls as
//! the API (a batched import, a paged export), so validation, numbering, history, events and
//! the audit trail are the API's. The events wait in the database's outbox until a process
//! running the patients role relays them, as any event does.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{ImportOutcome, NewPatient, PAGE_MAX, PageRequest};
use ward_core::config::Config;
use ward_core::{CallerContext, Role, WardResult};
use ward_patients::{MrnFormat, PatientsService};

use crate::modules::open_database;

/// One line of an import file: its number (from 1) and its text.
#[derive(Debug, Clone)]
pub struct NumberedLine {
    pub number: u64,
    pub text: String,
}

/// One page of an export: the NDJSON text (one resource per line, each ending in `\n`), how
/// many patients it holds, and where the next page starts (`None` on the last).
#[derive(Debug, Clone)]
pub struct ExportChunk {
    pub ndjson: String,
    pub num_patients: usize,
    pub next_cursor_opt: Option<String>,
}

/// The patients module opened from the configuration, for bulk commands.
pub struct PatientsBulk {
    service: PatientsService,
}

impl PatientsBulk {
    /// Opens the patients database named by the configuration, migrating it first if needed.
    pub async fn open(config: &Config) -> WardResult<Self> {
        let db = open_database(config, Role::Patients, true).await?;
        let mrn_format = MrnFormat::from_options(&config.patients);
        // No relay here: the outbox is shared with the serving process, whose relay sends the
        // events (it polls, so they leave within its poll interval).
        let service = PatientsService::new(db, OutboxWaker::default()).with_mrn_format(mrn_format);
        Ok(Self { service })
    }

    /// Imports `lines` as one batch and returns each line's outcome, in order: lines that are
    /// not a valid FHIR Patient fail with the mapping's message and are not sent. A line's
    /// UUID `id` is kept; other lines get a new id. Records are registered as of `today`
    /// unless they carry the registration date extension.
    pub async fn import_lines(
        &self,
        lines: &[NumberedLine],
        today: NaiveDate,
    ) -> WardResult<Vec<ImportOutcome>> {
        let mut outcomes = Vec::with_capacity(lines.len());
        let mut batch: Vec<(Uuid, NewPatient)> = Vec::new();
        // Where each sent record's outcome goes.
        let mut batch_positions = Vec::new();
        for line in lines {
            match ward_gateway::parse_bulk_patient(&line.text, today) {
                Ok((id_opt, patient)) => {
                    batch_positions.push(outcomes.len());
                    batch.push((id_opt.unwrap_or_else(ward_core::id::new_id), patient));
                    // Replaced by the module's outcome below.
                    outcomes.push(ImportOutcome::AlreadyPresent);
                }
                Err(error) => outcomes.push(ImportOutcome::Failed(error.to_string())),
            }
        }
        if batch.is_empty() {
            return Ok(outcomes);
        }
        let ctx = CallerContext::system("import");
        let batch_outcomes = self.service.import_patients(&ctx, batch).await?;
        for (position, outcome) in batch_positions.into_iter().zip(batch_outcomes) {
            outcomes[position] = outcome;
        }
        Ok(outcomes)
    }

    /// Refreshes the patients database's planner statistics, so that searches over what a
    /// large import added get good plans at once.
    pub async fn refresh_statistics(&self) -> WardResult<()> {
        self.service.analyze().await
    }

    /// Reads the export page after `cursor_opt` (the first without one): live patients in id
    /// order, changed at or after `since_opt` when given, as FHIR Patient NDJSON.
    pub async fn export_page(
        &self,
        since_opt: Option<DateTime<Utc>>,
        cursor_opt: Option<&str>,
    ) -> WardResult<ExportChunk> {
        let page = PageRequest::parse(Some(i64::from(PAGE_MAX)), cursor_opt)?;
        let ctx = CallerContext::system("export");
        let result = self.service.export_patients(&ctx, since_opt, page).await?;
        let mut ndjson = String::new();
        for patient in &result.items {
            ndjson.push_str(&ward_gateway::bulk_patient_resource(patient).to_string());
            ndjson.push('\n');
        }
        Ok(ExportChunk {
            ndjson,
            num_patients: result.items.len(),
            next_cursor_opt: result.next_cursor_opt,
        })
    }
}

//! Opening billing accounts from patient events, and marking them merged or active again as
//! patients are merged and unmerged.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use ward_bus::billing::{AccountStatus, OpenAccountRequest};
use ward_bus::consumer::{Consumer, EventHandler};
use ward_bus::events::{
    DomainEvent, EventLogHandle, PATIENTS_TOPIC, PatientMerged, PatientRegistered, PatientUnmerged,
    decode_payload,
};
use ward_bus::outbox::OutboxWaker;
use ward_core::WardResult;
use ward_proto::v1::EventEnvelope;

use crate::service::{open_account_in, set_account_status};

/// The consumer name under which billing records its offsets and processed events.
const CONSUMER_NAME: &str = "billing";

/// Opens a billing account for each `PatientRegistered` event, marks the account of a merged
/// duplicate `MERGED` (`PatientMerged`) and active again on `PatientUnmerged`; ignores other
/// patient events.
///
/// Exactly one account per patient holds three times over: the consumer skips an event id it
/// already processed, [`open_account_in`] returns the existing account, and `patient_id` is unique.
pub struct PatientEventsHandler {
    outbox: OutboxWaker,
}

impl PatientEventsHandler {
    /// Returns a handler that wakes `outbox` when it enqueued a `BillingAccountOpened` event.
    pub fn new(outbox: OutboxWaker) -> Self {
        Self { outbox }
    }
}

#[async_trait]
impl EventHandler for PatientEventsHandler {
    #[tracing::instrument(name = "billing.handle_patient_event", skip_all, fields(event_type = %envelope.event_type))]
    async fn handle(&self, txn: &DatabaseTransaction, envelope: &EventEnvelope) -> WardResult<()> {
        if envelope.event_type == PatientMerged::EVENT_TYPE {
            let merged = decode_payload::<PatientMerged>(envelope)?;
            let source = ward_core::id::parse_id(&merged.source_patient_id, "source_patient_id")?;
            return set_account_status(txn, source, AccountStatus::Merged).await;
        }
        if envelope.event_type == PatientUnmerged::EVENT_TYPE {
            let unmerged = decode_payload::<PatientUnmerged>(envelope)?;
            let source = ward_core::id::parse_id(&unmerged.source_patient_id, "source_patient_id")?;
            return set_account_status(txn, source, AccountStatus::Active).await;
        }
        if envelope.event_type != PatientRegistered::EVENT_TYPE {
            return Ok(());
        }
        // Both failures are `InvalidArgument`: the consumer logs and skips the unusable event.
        let registered = decode_payload::<PatientRegistered>(envelope)?;
        let patient_id = ward_core::id::parse_id(&registered.patient_id, "patient_id")?;
        let request = OpenAccountRequest {
            patient_id,
            name: registered.name,
            email: registered.email,
        };
        // Carry the registering request's id on to the event this one causes.
        let request_id = match envelope.trace_context.get("x-request-id") {
            Some(request_id) => request_id.as_str(),
            None => "",
        };
        let (_account, newly_opened) = open_account_in(txn, &request, request_id).await?;
        if newly_opened {
            // The consumer commits after this returns, so the relay may wake before the row is
            // visible. That is harmless: it finds nothing, and its next poll sends the event.
            self.outbox.wake();
        }
        Ok(())
    }
}

/// Returns the consumer that feeds patient events to a [`PatientEventsHandler`].
pub fn patient_events_consumer(
    db: DatabaseConnection,
    log: EventLogHandle,
    outbox: OutboxWaker,
) -> Consumer {
    let handler = PatientEventsHandler::new(outbox);
    Consumer::new(CONSUMER_NAME, db, log, &[PATIENTS_TOPIC], Arc::new(handler))
}

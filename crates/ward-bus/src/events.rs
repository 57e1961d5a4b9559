//! Domain events: the envelope, topics, and the [`EventLog`] every backend implements.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use prost::Message;
use uuid::Uuid;
use ward_core::{WardError, WardResult};
use ward_proto::v1::EventEnvelope;

pub use ward_proto::v1::{
    BillingAccountOpened, InvoiceBalance, InvoiceIssued, InvoiceVoided, LedgerAdjusted,
    PatientDeleted, PatientMerged, PatientPurged, PatientRegistered, PatientRestored,
    PatientUnmerged, PatientUpdated, PaymentRecorded, PaymentRefunded, SessionRevoked,
    UserTokensRevoked,
};

/// Topics are per producing module.
pub const AUTH_TOPIC: &str = "ward.auth.v1";
pub const PATIENTS_TOPIC: &str = "ward.patients.v1";
pub const BILLING_TOPIC: &str = "ward.billing.v1";
pub const ALL_TOPICS: [&str; 3] = [AUTH_TOPIC, PATIENTS_TOPIC, BILLING_TOPIC];

pub type EventLogHandle = Arc<dyn EventLog>;

/// A record on its way into the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    pub topic: String,
    /// The subject (patient) id: one patient's events stay in order on one partition.
    pub key: String,
    /// An encoded [`EventEnvelope`].
    pub value: Vec<u8>,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: Vec<u8>,
}

/// A durable, ordered, partitioned log: the local embedded one or Kafka.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Creates the topics if they do not exist.
    async fn ensure_topics(&self, topics: &[&str]) -> WardResult<()>;

    /// Appends records durably; on `Ok` they will be delivered. Order is kept per key.
    async fn append(&self, records: Vec<OutgoingRecord>) -> WardResult<()>;

    /// The partitions of `topic`.
    async fn partitions(&self, topic: &str) -> WardResult<Vec<i32>>;

    /// Up to `max_records` records of one partition, from `from_offset` on.
    async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        max_records: usize,
    ) -> WardResult<Vec<LogRecord>>;

    /// The offset the next record appended to one partition will get (Kafka's high watermark);
    /// a consumer whose next offset is lower has records to read.
    async fn end_offset(&self, topic: &str, partition: i32) -> WardResult<i64>;

    /// Returns when something may have been appended, or after `timeout`, whichever is first.
    async fn wait_for_append(&self, timeout: Duration);

    /// Ok when the log can take and serve records.
    async fn check_ready(&self) -> WardResult<()>;

    /// A short name for logs and readiness ("local", "kafka").
    fn backend_name(&self) -> &'static str;
}

/// A payload message with its type name.
pub trait DomainEvent: Message + Default {
    const EVENT_TYPE: &'static str;
}

impl DomainEvent for PatientRegistered {
    const EVENT_TYPE: &'static str = "PatientRegistered";
}
impl DomainEvent for PatientUpdated {
    const EVENT_TYPE: &'static str = "PatientUpdated";
}
impl DomainEvent for PatientDeleted {
    const EVENT_TYPE: &'static str = "PatientDeleted";
}
impl DomainEvent for PatientRestored {
    const EVENT_TYPE: &'static str = "PatientRestored";
}
impl DomainEvent for PatientMerged {
    const EVENT_TYPE: &'static str = "PatientMerged";
}
impl DomainEvent for PatientUnmerged {
    const EVENT_TYPE: &'static str = "PatientUnmerged";
}
impl DomainEvent for PatientPurged {
    const EVENT_TYPE: &'static str = "PatientPurged";
}
impl DomainEvent for BillingAccountOpened {
    const EVENT_TYPE: &'static str = "BillingAccountOpened";
}
impl DomainEvent for InvoiceIssued {
    const EVENT_TYPE: &'static str = "InvoiceIssued";
}
impl DomainEvent for InvoiceVoided {
    const EVENT_TYPE: &'static str = "InvoiceVoided";
}
impl DomainEvent for PaymentRecorded {
    const EVENT_TYPE: &'static str = "PaymentRecorded";
}
impl DomainEvent for PaymentRefunded {
    const EVENT_TYPE: &'static str = "PaymentRefunded";
}
impl DomainEvent for LedgerAdjusted {
    const EVENT_TYPE: &'static str = "LedgerAdjusted";
}
impl DomainEvent for SessionRevoked {
    const EVENT_TYPE: &'static str = "SessionRevoked";
}
impl DomainEvent for UserTokensRevoked {
    const EVENT_TYPE: &'static str = "UserTokensRevoked";
}

/// Wraps `payload` in a new envelope about `subject_id`.
pub fn envelope<E: DomainEvent>(
    producer: &str,
    subject_id: Uuid,
    request_id: &str,
    occurred_at: DateTime<Utc>,
    payload: &E,
) -> EventEnvelope {
    let mut trace_context = HashMap::new();
    if !request_id.is_empty() {
        trace_context.insert("x-request-id".to_string(), request_id.to_string());
    }
    // The request's trace goes with the event, through the outbox and the log, to its consumers.
    crate::trace_context::inject_current(&mut trace_context);
    EventEnvelope {
        event_id: ward_core::id::new_id().to_string(),
        event_type: E::EVENT_TYPE.to_string(),
        occurred_at: occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        subject_id: subject_id.to_string(),
        producer: producer.to_string(),
        trace_context,
        payload: payload.encode_to_vec(),
    }
}

pub fn encode_envelope(envelope: &EventEnvelope) -> Vec<u8> {
    envelope.encode_to_vec()
}

pub fn decode_envelope(bytes: &[u8]) -> WardResult<EventEnvelope> {
    EventEnvelope::decode(bytes).map_err(|error| {
        WardError::invalid_field("event", format!("undecodable envelope: {error}"))
    })
}

/// Decodes the envelope's payload as `E`, checking the type name first.
pub fn decode_payload<E: DomainEvent>(envelope: &EventEnvelope) -> WardResult<E> {
    if envelope.event_type != E::EVENT_TYPE {
        return Err(WardError::invalid_field(
            "event_type",
            format!("expected {}, got {}", E::EVENT_TYPE, envelope.event_type),
        ));
    }
    E::decode(envelope.payload.as_slice()).map_err(|error| {
        WardError::invalid_field("payload", format!("undecodable {}: {error}", E::EVENT_TYPE))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_through_bytes() {
        let subject = Uuid::now_v7();
        let payload = PatientDeleted {
            patient_id: subject.to_string(),
            version: 2,
        };
        let sent = envelope("patients", subject, "req-1", Utc::now(), &payload);
        let received = decode_envelope(&encode_envelope(&sent)).unwrap();
        assert_eq!(received, sent);
        assert_eq!(
            decode_payload::<PatientDeleted>(&received).unwrap(),
            payload
        );
        assert!(decode_payload::<PatientRegistered>(&received).is_err());
    }
}

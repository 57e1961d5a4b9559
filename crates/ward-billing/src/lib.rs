//! The billing module: one persisted account per patient, opened on request or when a patient is
//! registered, and announced on the billing topic through the transactional outbox.
//!
//! [`BillingService`] implements [`ward_bus::BillingApi`] over its own database;
//! [`patient_events_consumer`] opens accounts from `PatientRegistered` events.

mod consumer;
mod entity;
pub mod migration;
mod service;

pub use consumer::{PatientEventsHandler, patient_events_consumer};
pub use migration::Migrator;
pub use service::BillingService;

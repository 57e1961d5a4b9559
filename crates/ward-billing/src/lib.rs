//! The billing module: one persisted account per patient, opened on request or when a patient is
//! registered, and announced on the billing topic through the transactional outbox.
//!
//! [`BillingService`] implements [`ward_bus::BillingApi`] over its own database;
//! [`patient_events_consumer`] opens accounts from `PatientRegistered` events.
//! Over the network, [`BillingGrpcServer`] serves any implementation and [`BillingGrpcClient`]
//! calls one in another process.

mod consumer;
mod entity;
pub mod grpc;
pub mod migration;
mod service;

pub use consumer::{PatientEventsHandler, patient_events_consumer};
pub use grpc::{BillingGrpcClient, BillingGrpcServer};
pub use migration::Migrator;
pub use service::BillingService;

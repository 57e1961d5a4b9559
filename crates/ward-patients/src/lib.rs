//! The patients module: patient records and their `PatientRegistered` / `PatientUpdated` /
//! `PatientDeleted` / `PatientRestored` / `PatientPurged` events. Deletes are soft (restorable);
//! a purge erases a patient for good.
//!
//! [`PatientsService`] implements [`ward_bus::PatientsApi`] over its own database; each write
//! commits the record and its event together through the transactional outbox
//! ([`ward_bus::outbox`]), and an [`ward_bus::outbox::OutboxRelay`] moves the events to the log.
//! Over the network, [`PatientsGrpcServer`] serves any implementation and [`PatientsGrpcClient`]
//! calls one in another process.

mod entity;
pub mod grpc;
mod identifiers;
pub mod migration;
mod mrn;
mod search;
mod service;

pub use grpc::{PatientsGrpcClient, PatientsGrpcServer};
pub use migration::Migrator;
pub use mrn::MrnFormat;
pub use service::PatientsService;

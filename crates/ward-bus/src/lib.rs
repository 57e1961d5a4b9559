//! The bus: one trait per module over plain domain types, the event log, the outbox and consumers.
//!
//! The gateway and the wiring know modules only through these traits. A module's service implements
//! its trait in-process; a gRPC client implements the same trait for a module in another process.

pub mod analytics;
pub mod auth;
pub mod billing;
pub mod consumer;
pub mod db;
pub mod events;
pub mod grpc;
pub mod health;
pub mod local_log;
pub mod metrics;
pub mod outbox;
pub mod patients;
pub mod revocation;
pub mod services;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod token;
pub mod trace_context;

pub use analytics::{AnalyticsApi, AnalyticsClient};
pub use auth::{AuthApi, AuthClient};
pub use billing::{BillingApi, BillingClient};
pub use patients::{PatientsApi, PatientsClient};
pub use services::Services;

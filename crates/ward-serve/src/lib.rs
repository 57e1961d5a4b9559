//! Wiring: which roles run here, the module clients they need (local or remote), the listeners,
//! the background workers, readiness, and an orderly stop. The only crate that names the modules.

mod analytics;
mod bulk;
mod check;
mod demo;
mod grpc_metrics;
mod grpc_server;
mod keys;
mod listeners;
mod modules;
mod peers;
mod shutdown;
mod users;

pub use analytics::rebuild_analytics;
pub use bulk::{ExportChunk, NumberedLine, PatientsBulk};
pub use check::{CheckError, check_serve};
pub use grpc_server::{LocalGrpcServices, serve_grpc};
pub use keys::generate_keys;
pub use listeners::serve;
pub use modules::migrate;
pub use users::create_user;
pub use ward_analytics::RebuildReport;
pub use ward_bus::patients::ImportOutcome;

/// What `ward serve` was asked for beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Load the reference platform's demo user and 15 demo patients (idempotent).
    pub demo: bool,
}

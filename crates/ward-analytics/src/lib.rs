//! The analytics module: durable figures built from patient and billing events.
//!
//! [`events_consumer`] feeds both topics to a [`FiguresHandler`], which keeps the figures in the
//! analytics database in the same transaction that records each event as processed;
//! [`AnalyticsService`] implements [`ward_bus::AnalyticsApi`] by reading them, and [`rebuild`]
//! recomputes them from the start of the log. Over the network, [`AnalyticsGrpcServer`] serves
//! any implementation and [`AnalyticsGrpcClient`] calls one in another process.

mod consumer;
mod entity;
mod figures;
pub mod grpc;
pub mod migration;
mod rebuild;
mod service;

pub use consumer::{FiguresHandler, events_consumer};
pub use grpc::{AnalyticsGrpcClient, AnalyticsGrpcServer};
pub use migration::Migrator;
pub use rebuild::{RebuildReport, rebuild};
pub use service::AnalyticsService;

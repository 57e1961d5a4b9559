//! The auth module: staff accounts, argon2id password checks and access-token issuing.
//!
//! [`AuthService`] implements [`ward_bus::AuthApi`] over its own database. Other processes never
//! call it to check a token: they verify tokens offline with [`ward_bus::token::TokenVerifier`].
//! Over the network, [`AuthGrpcServer`] serves any implementation and [`AuthGrpcClient`] calls
//! one in another process.

mod entity;
pub mod grpc;
pub mod migration;
mod service;
mod throttle;

pub use grpc::{AuthGrpcClient, AuthGrpcServer};
pub use migration::Migrator;
pub use service::AuthService;

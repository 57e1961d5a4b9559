//! The auth module: staff accounts, argon2id password checks, login sessions with rotating
//! refresh tokens, and access-token issuing.
//!
//! [`AuthService`] implements [`ward_bus::AuthApi`] over its own database. Other processes never
//! call it to check a token: they verify tokens offline with [`ward_bus::token::TokenVerifier`],
//! and learn revocations (logout, password change, role change, disabling) from the
//! `ward.auth.v1` events it writes through its outbox. Over the network, [`AuthGrpcServer`]
//! serves any implementation and [`AuthGrpcClient`] calls one in another process.

mod entity;
pub mod grpc;
pub mod migration;
mod password;
pub use password::check_staff_password;
mod refresh_token;
mod revocation;
mod service;
mod settings;
mod throttle;

pub use grpc::{AuthGrpcClient, AuthGrpcServer};
pub use migration::Migrator;
pub use service::AuthService;
pub use settings::AuthSettings;

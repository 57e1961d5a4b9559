//! The auth module: staff accounts, argon2id password checks and access-token issuing.
//!
//! [`AuthService`] implements [`ward_bus::AuthApi`] over its own database. Other processes never
//! call it to check a token: they verify tokens offline with [`ward_bus::token::TokenVerifier`].

mod entity;
pub mod migration;
mod service;

pub use migration::Migrator;
pub use service::AuthService;

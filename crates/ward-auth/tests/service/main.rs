//! `AuthService` against a real SQLite file in a fresh temporary folder.

mod accounts;
mod helpers;
mod login;
mod sessions;
mod throttle;

//! End-to-end tests through the real `ward` binary over HTTP (STYLE.md §7: one test binary).

mod audit;
mod bulk;
mod cli;
mod cluster;
mod crash;
mod events;
mod faults;
mod fhir;
mod helpers;
mod idempotency;
mod keys;
mod matrix;
mod reference;
mod roles;
mod search;
mod secrets;
mod security;
mod sessions;
mod soft_delete;
mod versions;

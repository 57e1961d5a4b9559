//! End-to-end tests through the real `ward` binary over HTTP (STYLE.md §7: one test binary).

mod analytics;
mod audit;
mod bulk;
mod cli;
mod cluster;
mod crash;
mod events;
mod faults;
mod fhir;
mod fhir_writes;
mod helpers;
mod idempotency;
mod identifiers;
mod keys;
mod matrix;
mod merge;
mod preconditions;
mod reference;
mod roles;
mod search;
mod secrets;
mod security;
mod sessions;
mod soft_delete;
mod versions;

//! HTTP-layer tests of the gateway over in-memory fakes of the module traits.
//!
//! The end-to-end suite runs the real modules through the binary; these check routing, status
//! codes, bodies, problem documents, request ids, health and OpenAPI.

mod analytics;
mod auth;
mod billing_analytics;
mod bulk;
mod conditional;
mod docs;
mod errors;
mod fakes;
mod fhir;
mod helpers;
mod hostile;
mod narrow;
mod ops;
mod patients;
mod preconditions;
mod security;
mod users;
mod versions;

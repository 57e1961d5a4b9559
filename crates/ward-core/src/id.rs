//! Identifiers. Ward ids are UUID v7: time-ordered, so keyset pagination by id follows creation order.

use uuid::Uuid;

/// Returns a new time-ordered (v7) id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses an id from a path or field, naming `what` in the error.
pub fn parse_id(raw: &str, what: &str) -> crate::WardResult<Uuid> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| crate::WardError::invalid_field(what, format!("{what} must be a UUID")))
}

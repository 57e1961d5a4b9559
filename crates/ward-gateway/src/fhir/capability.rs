//! The CapabilityStatement served at `/fhir/metadata`: what this server does, and nothing more.

use serde_json::{Value, json};

/// When the statement last changed (a required element); bump it with the statement.
const STATEMENT_DATE: &str = "2026-11-25";

/// The search parameters `GET /fhir/Patient` understands; any other is a 400.
pub(crate) const SEARCH_PARAMETERS: [&str; 2] = ["_count", "_cursor"];

/// Returns the server's CapabilityStatement.
pub(crate) fn capability_statement() -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": "Ward",
        "kind": "instance",
        "software": {"name": "Ward", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Ward patient records as FHIR R4 Patient resources"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "description": "Every interaction but metadata needs `Authorization: Bearer \
                    <token>` (a token from `POST /auth/login`); rights are those of the REST API."
            },
            "resource": [{
                "type": "Patient",
                "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
                "interaction": [
                    {"code": "read"},
                    {"code": "vread"},
                    {"code": "update"},
                    {"code": "create"},
                    {"code": "search-type"}
                ],
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": false,
                "conditionalCreate": false,
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
                "searchParam": [
                    {
                        "name": "_count",
                        "type": "number",
                        "documentation": "Page size, 1 to 500 (default 50)"
                    },
                    {
                        "name": "_cursor",
                        "type": "string",
                        "documentation": "Opaque; follow the Bundle's next link"
                    }
                ]
            }]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_lists_the_search_parameters_served() {
        let statement = capability_statement();
        let params = &statement["rest"][0]["resource"][0]["searchParam"];
        for (index, name) in SEARCH_PARAMETERS.iter().enumerate() {
            assert_eq!(params[index]["name"], *name);
        }
    }
}

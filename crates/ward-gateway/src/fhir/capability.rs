//! The CapabilityStatement served at `/fhir/metadata`: what this server does, and nothing more.

use serde_json::{Value, json};

/// When the statement last changed (a required element); bump it with the statement.
const STATEMENT_DATE: &str = "2026-12-07";

/// The search parameters `GET /fhir/Patient` understands, in the statement's order; any other
/// is a 400.
pub(crate) const SEARCH_PARAMETERS: [&str; 8] = [
    "name",
    "birthdate",
    "identifier",
    "email",
    "_sort",
    "_count",
    "_total",
    "_cursor",
];

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
                "documentation": "Every element is kept: a read answers what was written, apart \
                    from id, meta and the medical record number Ward adds (identifier system \
                    urn:ward:mrn). name and birthDate (yyyy-MM-dd) are required; name[0], the \
                    first email telecom, address[0], birthDate and the identifiers with a system \
                    and a value are searchable and also editable through the REST API, which \
                    leaves the rest as it is. An update replaces the whole resource.",
                "interaction": [
                    {"code": "read"},
                    {"code": "vread"},
                    {"code": "update"},
                    {"code": "delete", "documentation": "Soft: the record can be restored \
                        through the REST API; later reads are 410. Honours If-Match"},
                    {"code": "history-instance", "documentation": "Newest first; _count keeps \
                        the newest n versions"},
                    {"code": "create", "documentation": "Conditional with If-None-Exist: \
                        identifier=[urn:ward:mrn|]<mrn> or email=<address>"},
                    {"code": "search-type"}
                ],
                "operation": [{
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                    "documentation": "GET /fhir/Patient/$export streams every live patient as \
                        application/fhir+ndjson (no kick-off or polling); _since keeps those \
                        changed at or after an instant. Admins only"
                }],
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": false,
                "conditionalCreate": true,
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
                "searchParam": [
                    {
                        "name": "name",
                        "definition": "http://hl7.org/fhir/SearchParameter/Patient-name",
                        "type": "string",
                        "documentation": "Words that must each start a word of the name, ignoring \
                            case and accents (jo alv finds José Álvarez); no modifiers"
                    },
                    {
                        "name": "birthdate",
                        "definition": "http://hl7.org/fhir/SearchParameter/individual-birthdate",
                        "type": "date",
                        "documentation": "yyyy-MM-dd with the prefix eq (default), ge, le, gt or \
                            lt; repeat for a range (at most 4 times)"
                    },
                    {
                        "name": "identifier",
                        "definition": "http://hl7.org/fhir/SearchParameter/Patient-identifier",
                        "type": "token",
                        "documentation": "urn:ward:mrn|value: the medical record number; \
                            system|value: a further identifier; value alone: the MRN or any \
                            identifier with that value"
                    },
                    {
                        "name": "email",
                        "definition": "http://hl7.org/fhir/SearchParameter/individual-email",
                        "type": "token",
                        "documentation": "The email address, exactly but ignoring case"
                    },
                    {
                        "name": "_sort",
                        "type": "string",
                        "documentation": "One of name, birthdate, -name, -birthdate; by id \
                            (registration order) when absent"
                    },
                    {
                        "name": "_count",
                        "type": "number",
                        "documentation": "Page size, 1 to 500 (default 50)"
                    },
                    {
                        "name": "_total",
                        "type": "token",
                        "documentation": "accurate (or estimate, answered accurately) adds \
                            Bundle.total; none (default) does not"
                    },
                    {
                        "name": "_cursor",
                        "type": "string",
                        "documentation": "Opaque; follow the Bundle's next link, which repeats \
                            every other parameter"
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
            assert!(params[index]["type"].is_string(), "{name}");
        }
        assert_eq!(
            params.as_array().map(Vec::len),
            Some(SEARCH_PARAMETERS.len())
        );
    }

    #[test]
    fn the_statement_lists_the_interactions_served() {
        let statement = capability_statement();
        let resource = &statement["rest"][0]["resource"][0];
        let codes: Vec<&str> = resource["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|interaction| interaction["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            [
                "read",
                "vread",
                "update",
                "delete",
                "history-instance",
                "create",
                "search-type"
            ]
        );
        assert_eq!(resource["conditionalCreate"], true);
        assert_eq!(resource["operation"][0]["name"], "export");
    }
}

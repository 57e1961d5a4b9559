//! `patients.require_if_match`: with it, every change of a patient without `If-Match` is a 428
//! (problem+json on `/api`, OperationOutcome on `/fhir`) and nothing is written; without it, the
//! last write wins.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use ward_gateway::GatewayOptions;

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, FakePatients, fakes_with_store};
use crate::helpers::{ready_health, send};

fn requiring_if_match() -> GatewayOptions {
    GatewayOptions {
        require_if_match: true,
        ..GatewayOptions::default()
    }
}

fn john() -> Value {
    json!({
        "name": "John Doe",
        "email": "john.doe@example.com",
        "address": "123 Main St, Springfield",
        "dateOfBirth": "1985-06-15",
        "registeredDate": "2024-01-10"
    })
}

fn fhir_john(id: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "id": id,
        "name": [{"text": "John Q. Doe"}],
        "telecom": [{"system": "email", "value": "john.doe@example.com"}],
        "address": [{"text": "123 Main St, Springfield"}],
        "birthDate": "1985-06-15"
    })
}

fn as_admin(method: Method, uri: &str) -> TestRequest {
    TestRequest::default()
        .method(method)
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
}

/// Every change route of a patient, as requests without `If-Match`.
fn unconditional_changes(id: &str) -> Vec<(&'static str, TestRequest)> {
    let rest = format!("/api/patients/{id}");
    let fhir = format!("/fhir/Patient/{id}");
    vec![
        ("REST PUT", as_admin(Method::PUT, &rest).set_json(john())),
        (
            "REST PATCH",
            as_admin(Method::PATCH, &rest)
                .insert_header(("content-type", "application/merge-patch+json"))
                .set_payload(r#"{"name":"John Q. Doe"}"#),
        ),
        ("REST DELETE", as_admin(Method::DELETE, &rest)),
        (
            "REST restore",
            as_admin(Method::POST, &format!("{rest}/restore")),
        ),
        (
            "FHIR PUT",
            as_admin(Method::PUT, &fhir)
                .insert_header(("content-type", "application/fhir+json"))
                .set_payload(fhir_john(id).to_string()),
        ),
        ("FHIR DELETE", as_admin(Method::DELETE, &fhir)),
    ]
}

#[actix_web::test]
async fn when_required_a_change_without_if_match_is_a_428_and_writes_nothing() {
    // Arrange
    let store = Arc::new(FakePatients::default());
    let app = api_app!(
        fakes_with_store(false, store.clone()),
        ready_health(),
        requiring_if_match()
    );
    let created = send(
        &app,
        as_admin(Method::POST, "/api/patients")
            .set_json(john())
            .to_request(),
    )
    .await;
    assert_eq!(created.status, 201, "a create needs no If-Match");
    let id = created.json()["id"].as_str().unwrap().to_string();

    for (name, request) in unconditional_changes(&id) {
        // Act
        let reply = send(&app, request.to_request()).await;

        // Assert
        assert_eq!(reply.status, 428, "{name}");
        if name.starts_with("FHIR") {
            assert_eq!(
                reply.header("content-type"),
                Some("application/fhir+json"),
                "{name}"
            );
            let outcome = reply.json();
            assert_eq!(outcome["resourceType"], "OperationOutcome", "{name}");
            assert_eq!(outcome["issue"][0]["code"], "required", "{name}");
        } else {
            let problem = reply.problem(428);
            assert!(
                problem["type"]
                    .as_str()
                    .unwrap()
                    .ends_with("precondition-required"),
                "{name}"
            );
            assert!(
                problem["detail"].as_str().unwrap().contains("If-Match"),
                "{name}"
            );
        }
    }
    // No change reached the module.
    assert!(store.expected_versions().is_empty());

    // A tag, or `*`, passes.
    let with_tag = as_admin(Method::PUT, &format!("/api/patients/{id}"))
        .insert_header(("if-match", r#"W/"1""#))
        .set_json(john());
    assert_eq!(send(&app, with_tag.to_request()).await.status, 200);
    let with_star =
        as_admin(Method::DELETE, &format!("/fhir/Patient/{id}")).insert_header(("if-match", "*"));
    assert_eq!(send(&app, with_star.to_request()).await.status, 204);
    assert_eq!(store.expected_versions(), [Some(1), None]);
}

#[actix_web::test]
async fn by_default_a_change_without_if_match_is_applied() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let created = send(
        &app,
        as_admin(Method::POST, "/api/patients")
            .set_json(john())
            .to_request(),
    )
    .await;
    let id = created.json()["id"].as_str().unwrap().to_string();

    let mut statuses = Vec::new();
    for (name, request) in unconditional_changes(&id) {
        statuses.push((name, send(&app, request.to_request()).await.status.as_u16()));
    }

    assert_eq!(
        statuses,
        [
            ("REST PUT", 200),
            ("REST PATCH", 200),
            ("REST DELETE", 204),
            ("REST restore", 200),
            ("FHIR PUT", 200),
            ("FHIR DELETE", 204),
        ]
    );
}

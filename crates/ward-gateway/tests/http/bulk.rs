//! `GET /fhir/Patient/$export` over the fakes: NDJSON for admins, OperationOutcomes otherwise.

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, ANALYST_TOKEN};
use crate::helpers::{Reply, send};

fn bearer(request: TestRequest, token: &str) -> TestRequest {
    request.insert_header(("authorization", format!("Bearer {token}")))
}

fn patient(email: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{"text": "Ada Lovelace"}],
        "telecom": [{"system": "email", "value": email}],
        "address": [{"text": "12 St James Sq"}],
        "birthDate": "1815-12-10"
    })
}

fn assert_outcome(reply: &Reply, status: u16) {
    assert_eq!(reply.status.as_u16(), status);
    assert_eq!(reply.json()["resourceType"], "OperationOutcome");
}

#[actix_web::test]
async fn admins_get_every_patient_as_ndjson_and_others_an_outcome() {
    // Arrange
    let app = api_app!();
    for index in 0..3 {
        let request = bearer(TestRequest::post().uri("/fhir/Patient"), ADMIN_TOKEN)
            .insert_header(("content-type", "application/fhir+json"))
            .set_payload(patient(&format!("p{index}@example.org")).to_string());
        assert_eq!(send(&app, request.to_request()).await.status, 201);
    }

    // Act
    let export = send(
        &app,
        bearer(TestRequest::get().uri("/fhir/Patient/$export"), ADMIN_TOKEN).to_request(),
    )
    .await;
    let encoded = send(
        &app,
        bearer(
            TestRequest::get().uri("/fhir/Patient/%24export"),
            ADMIN_TOKEN,
        )
        .to_request(),
    )
    .await;
    let by_analyst = send(
        &app,
        bearer(
            TestRequest::get().uri("/fhir/Patient/$export"),
            ANALYST_TOKEN,
        )
        .to_request(),
    )
    .await;
    let unknown_parameter = send(
        &app,
        bearer(
            TestRequest::get().uri("/fhir/Patient/$export?_type=Patient"),
            ADMIN_TOKEN,
        )
        .to_request(),
    )
    .await;
    let posted = send(
        &app,
        bearer(
            TestRequest::post().uri("/fhir/Patient/$export"),
            ADMIN_TOKEN,
        )
        .to_request(),
    )
    .await;

    // Assert
    assert_eq!(export.status, 200);
    assert_eq!(
        export.header("content-type"),
        Some("application/fhir+ndjson")
    );
    assert_eq!(export.header("cache-control"), Some("no-store"));
    let text = String::from_utf8(export.body.to_vec()).unwrap();
    let resources: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(resources.len(), 3);
    assert_eq!(resources[0]["resourceType"], "Patient");
    assert_eq!(
        resources[0]["extension"][0]["url"],
        ward_gateway::REGISTERED_DATE_EXTENSION
    );
    assert_eq!(encoded.body, export.body);
    assert_outcome(&by_analyst, 403);
    assert_outcome(&unknown_parameter, 400);
    assert_outcome(&posted, 405);
}

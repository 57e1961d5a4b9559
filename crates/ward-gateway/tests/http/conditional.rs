//! Conditional create (`If-None-Exist`) on `POST /api/patients` and `POST /fhir/Patient`: the
//! one flow both share, including several matches and a lost race. The fake's search ignores
//! its filters, so "matches" here means "the store holds".

use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, FakePatients, fakes_with_store};
use crate::helpers::{Reply, ready_health, send};

fn patient(name: &str, email: &str) -> Value {
    json!({
        "name": name,
        "email": email,
        "address": "123 Main St, Springfield",
        "dateOfBirth": "1985-06-15",
        "registeredDate": "2024-01-10"
    })
}

fn fhir_patient(email: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{"family": "Doe", "given": ["John"]}],
        "telecom": [{"system": "email", "value": email}],
        "address": [{"text": "123 Main St, Springfield"}],
        "birthDate": "1985-06-15"
    })
}

fn rest_create(body: &Value, condition_opt: Option<&str>) -> TestRequest {
    let mut request = TestRequest::post()
        .uri("/api/patients")
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .set_json(body);
    if let Some(condition) = condition_opt {
        request = request.insert_header(("If-None-Exist", condition));
    }
    request
}

fn fhir_create(body: &Value, condition: &str) -> TestRequest {
    TestRequest::post()
        .uri("/fhir/Patient")
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .insert_header(("content-type", "application/fhir+json"))
        .insert_header(("If-None-Exist", condition))
        .set_payload(body.to_string())
}

fn outcome_code(reply: &Reply) -> String {
    assert_eq!(reply.header("content-type"), Some("application/fhir+json"));
    reply.json()["issue"][0]["code"]
        .as_str()
        .unwrap()
        .to_string()
}

#[actix_web::test]
async fn a_condition_matching_several_patients_is_a_412_and_creates_nothing() {
    // Arrange: two patients
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    for (name, email) in [
        ("Ann One", "ann1@example.com"),
        ("Ann Two", "ann2@example.com"),
    ] {
        let created = send(&app, rest_create(&patient(name, email), None).to_request()).await;
        assert_eq!(created.status, 201);
    }

    // Act
    let rest = rest_create(
        &patient("Ann Three", "ann3@example.com"),
        Some("email=ann3@example.com"),
    );
    let rest_reply = send(&app, rest.to_request()).await;
    let fhir = fhir_create(
        &fhir_patient("ann3@example.com"),
        "identifier=urn:ward:mrn|MRN-00000001",
    );
    let fhir_reply = send(&app, fhir.to_request()).await;

    // Assert
    let problem = rest_reply.problem(412);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("matches several patients")
    );
    assert_eq!(fhir_reply.status, 412);
    assert_eq!(outcome_code(&fhir_reply), "multiple-matches");
    assert_eq!(
        store.searches().pop().unwrap().identifier_opt.as_deref(),
        Some("urn:ward:mrn|MRN-00000001")
    );
    assert_eq!(store.count(), 2);
}

#[actix_web::test]
async fn a_create_that_loses_the_race_for_its_email_answers_the_winner() {
    // Arrange: the winner is stored, but the loser's first search ran before it was
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let body = patient("John Doe", "john.doe@example.com");
    let winner = send(&app, rest_create(&body, None).to_request()).await;
    let winner_id = winner.json()["id"].clone();

    // Act: REST, then FHIR, each missing the winner on its first search
    store.miss_next_searches(1);
    let condition = Some("email=john.doe@example.com");
    let rest_reply = send(&app, rest_create(&body, condition).to_request()).await;
    store.miss_next_searches(1);
    let fhir = fhir_create(
        &fhir_patient("john.doe@example.com"),
        "email=JOHN.DOE@example.com",
    );
    let fhir_reply = send(&app, fhir.to_request()).await;

    // Assert
    assert_eq!(rest_reply.status, 200);
    assert_eq!(rest_reply.json()["id"], winner_id);
    assert_eq!(fhir_reply.status, 200);
    assert_eq!(fhir_reply.json()["id"], winner_id);
    assert_eq!(store.count(), 1);
    // Search, create (409), search again: twice.
    assert_eq!(store.searches().len(), 4);
}

#[actix_web::test]
async fn a_duplicate_the_condition_does_not_find_stays_a_409() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let body = patient("John Doe", "john.doe@example.com");
    send(&app, rest_create(&body, None).to_request()).await;

    store.miss_next_searches(2);
    let reply = send(
        &app,
        rest_create(&body, Some("identifier=MRN-12345678")).to_request(),
    )
    .await;

    reply.problem(409);
    assert_eq!(store.count(), 1);
}

#[actix_web::test]
async fn a_fhir_conditional_create_answers_the_match_or_creates() {
    // Arrange
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let condition = "email=john.doe%40example.com";

    // Act: nothing matches, then the patient just created does
    let created = send(
        &app,
        fhir_create(&fhir_patient("john.doe@example.com"), condition).to_request(),
    )
    .await;
    let matched = send(
        &app,
        fhir_create(&fhir_patient("john.doe@example.com"), condition).to_request(),
    )
    .await;
    let bad = send(
        &app,
        fhir_create(&fhir_patient("x@example.com"), "identifier=urn:oid:1|").to_request(),
    )
    .await;

    // Assert
    assert_eq!(created.status, 201);
    assert_eq!(matched.status, 200);
    assert_eq!(matched.json()["id"], created.json()["id"]);
    assert_eq!(matched.header("location"), created.header("location"));
    assert_eq!(matched.json()["resourceType"], "Patient");
    assert_eq!(
        store.searches().pop().unwrap().email_opt.as_deref(),
        Some("john.doe@example.com")
    );
    assert_eq!(bad.status, 400);
    assert_eq!(outcome_code(&bad), "invalid");
    assert_eq!(store.count(), 1);
}

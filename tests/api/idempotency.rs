//! Idempotent and conditional creates through the real binary: a retried `POST /api/patients`
//! with the same `Idempotency-Key` answers the first patient and creates nothing, another body
//! with that key is a 422, and `If-None-Exist` answers an existing patient with 200.

use reqwest::Response;
use serde_json::Value;

use crate::helpers::{TestApp, Workdir, patient_body};

/// Posts `body` as raw JSON text with the extra `headers`.
async fn post_with(app: &TestApp, token: &str, body: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = app
        .client
        .post(app.url("/api/patients"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn num_patients_with_email(app: &TestApp, token: &str, email: &str) -> u64 {
    let path = format!("/api/patients?email={email}&total=accurate");
    let page: Value = app.get(token, &path).await.json().await.unwrap();
    page["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_retry_answers_the_first_patient_and_another_body_is_a_422() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let key = [("Idempotency-Key", "registration-ada-1")];
    let body = patient_body("Ada Lovelace", "ada@example.com").to_string();
    let first = post_with(&app, &token, &body, &key).await;
    assert_eq!(first.status(), 201);
    let first_location = first.headers()["location"].clone();
    let first_patient: Value = first.json().await.unwrap();

    // Act: the same patient, re-serialized with other whitespace
    let pretty =
        serde_json::to_string_pretty(&patient_body("Ada Lovelace", "ada@example.com")).unwrap();
    let retried = post_with(&app, &token, &pretty, &key).await;

    // Assert
    assert_eq!(retried.status(), 201);
    assert_eq!(retried.headers()["location"], first_location);
    let retried_patient: Value = retried.json().await.unwrap();
    assert_eq!(retried_patient["id"], first_patient["id"]);
    assert_eq!(
        num_patients_with_email(&app, &token, "ada@example.com").await,
        1
    );

    // Act + Assert: the key with another patient
    let other = patient_body("Bob Byron", "bob@example.com").to_string();
    let reused = post_with(&app, &token, &other, &key).await;
    assert_eq!(reused.status(), 422);
    let problem: Value = reused.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "this Idempotency-Key was used with a different request"
    );
    assert_eq!(
        num_patients_with_email(&app, &token, "bob@example.com").await,
        0
    );
}

#[tokio::test]
async fn if_none_exist_answers_the_existing_patient_by_email_or_mrn() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let body = patient_body("Ada Lovelace", "ada@example.com").to_string();
    let created = post_with(&app, &token, &body, &[]).await;
    assert_eq!(created.status(), 201);
    let patient: Value = created.json().await.unwrap();
    let by_mrn = format!("identifier={}", patient["mrn"].as_str().unwrap());

    // Act
    let by_email_reply = post_with(
        &app,
        &token,
        &body,
        &[("If-None-Exist", "email=ADA@example.com")],
    )
    .await;
    let by_mrn_reply = post_with(&app, &token, &body, &[("If-None-Exist", &by_mrn)]).await;

    // Assert
    for reply in [by_email_reply, by_mrn_reply] {
        assert_eq!(reply.status(), 200);
        let existing: Value = reply.json().await.unwrap();
        assert_eq!(existing["id"], patient["id"]);
    }
    assert_eq!(
        num_patients_with_email(&app, &token, "ada@example.com").await,
        1
    );
}

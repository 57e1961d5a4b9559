//! FHIR delete, history and conditional create through the real binary, and conditional
//! creates racing for one email (REST and FHIR share the flow). Every FHIR document received
//! is kept for the independent validator, as in `fhir.rs`.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::fhir::{FHIR_JSON, ada, fhir_document, keep_for_validation, send_fhir};
use crate::helpers::{TestApp, Workdir, patient_body};

async fn send_with_headers(
    app: &TestApp,
    method: Method,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_opt: Option<&Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body_opt {
        request = request
            .header("content-type", FHIR_JSON)
            .body(body.to_string());
    }
    request.send().await.unwrap()
}

/// The `request.method` of every entry of a history Bundle, in order.
fn methods(bundle: &Value) -> Vec<String> {
    let mut methods = Vec::new();
    for entry in bundle["entry"].as_array().unwrap() {
        methods.push(entry["request"]["method"].as_str().unwrap().to_string());
    }
    methods
}

#[tokio::test]
async fn a_fhir_delete_is_soft_honours_if_match_and_shows_in_the_history() {
    // Arrange: Ada, created and updated once (version 2)
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let created = fhir_document(
        send_fhir(&app, Method::POST, &token, "/fhir/Patient", &ada()).await,
        201,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/fhir/Patient/{id}");
    let mut edited = created.clone();
    edited["birthDate"] = json!("1815-12-11");
    fhir_document(
        send_fhir(&app, Method::PUT, &token, &path, &edited).await,
        200,
    )
    .await;

    // Act + Assert: a stale tag deletes nothing
    let stale = send_with_headers(
        &app,
        Method::DELETE,
        &token,
        &path,
        &[("if-match", r#"W/"1""#)],
        None,
    )
    .await;
    let refused = fhir_document(stale, 412).await;
    keep_for_validation("outcome-412-delete", &refused);
    assert_eq!(refused["issue"][0]["code"], "conflict");
    fhir_document(app.get(&token, &path).await, 200).await;

    // The current tag deletes; reads are then 410
    let deleted = send_with_headers(
        &app,
        Method::DELETE,
        &token,
        &path,
        &[("if-match", r#"W/"2""#)],
        None,
    )
    .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(deleted.text().await.unwrap(), "");
    let gone = fhir_document(app.get(&token, &path).await, 410).await;
    keep_for_validation("outcome-410-after-delete", &gone);
    assert_eq!(gone["issue"][0]["code"], "deleted");

    // Deleting again changes nothing and succeeds (no If-Match needed by default)
    let again = send_with_headers(&app, Method::DELETE, &token, &path, &[], None).await;
    assert_eq!(again.status(), 204);
    let search = app
        .get(&token, "/fhir/Patient?email=ada.fhir@example.com")
        .await;
    let after_delete = fhir_document(search, 200).await;
    assert_eq!(after_delete["entry"], json!([]));

    // Restored through the REST API: version 4
    let restored = app
        .client
        .post(app.url(&format!("/api/patients/{id}/restore")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), 200);

    // The history, newest first
    let history_path = format!("{path}/_history");
    let history = fhir_document(app.get(&token, &history_path).await, 200).await;
    keep_for_validation("bundle-history", &history);
    assert_eq!(history["type"], "history");
    assert_eq!(history["total"], 4);
    assert_eq!(methods(&history), ["PUT", "DELETE", "PUT", "POST"]);
    let entries = history["entry"].as_array().unwrap();
    let etags: Vec<&str> = entries
        .iter()
        .map(|entry| entry["response"]["etag"].as_str().unwrap())
        .collect();
    assert_eq!(etags, [r#"W/"4""#, r#"W/"3""#, r#"W/"2""#, r#"W/"1""#]);
    assert!(entries[1].get("resource").is_none(), "a delete has none");
    assert_eq!(entries[1]["request"]["url"], format!("Patient/{id}"));
    assert_eq!(entries[3]["request"]["url"], "Patient");
    assert_eq!(entries[3]["response"]["status"], "201 Created");
    assert_eq!(entries[2]["resource"]["birthDate"], "1815-12-11");
    assert_eq!(entries[3]["resource"]["birthDate"], "1815-12-10");
    for entry in entries {
        let full_url = entry["fullUrl"].as_str().unwrap();
        assert!(
            full_url.ends_with(&format!("/fhir/Patient/{id}")),
            "{full_url}"
        );
        assert!(entry["response"]["lastModified"].is_string());
    }

    // `_count` keeps the newest; any other parameter is refused by name
    let newest = fhir_document(
        app.get(&token, &format!("{history_path}?_count=2")).await,
        200,
    )
    .await;
    keep_for_validation("bundle-history-count", &newest);
    assert_eq!(methods(&newest), ["PUT", "DELETE"]);
    let unknown = app
        .get(&token, &format!("{history_path}?_since=2024"))
        .await;
    let unknown_outcome = fhir_document(unknown, 400).await;
    keep_for_validation("outcome-400-history", &unknown_outcome);
    let diagnostics = unknown_outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("_since"), "{diagnostics}");
    let nobody = "/fhir/Patient/0190c5b2-7d4e-7cc1-9a51-3f0a8c2d9e11/_history";
    fhir_document(app.get(&token, nobody).await, 404).await;
}

#[tokio::test]
async fn a_fhir_conditional_create_answers_the_existing_patient_or_creates() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let created = fhir_document(
        send_fhir(&app, Method::POST, &token, "/fhir/Patient", &ada()).await,
        201,
    )
    .await;
    let mrn = created["identifier"][0]["value"].as_str().unwrap();
    let by_mrn = format!("identifier=urn:ward:mrn|{mrn}");
    let by_encoded_mrn = format!("identifier=urn%3Award%3Amrn%7C{mrn}");

    // Act
    let mut replies = Vec::new();
    for condition in [
        by_mrn.as_str(),
        by_encoded_mrn.as_str(),
        "email=ADA.FHIR@example.com",
    ] {
        let reply = send_with_headers(
            &app,
            Method::POST,
            &token,
            "/fhir/Patient",
            &[("if-none-exist", condition)],
            Some(&ada()),
        )
        .await;
        replies.push(reply);
    }
    let mut newcomer = ada();
    newcomer["telecom"] = json!([{"system": "email", "value": "newcomer@example.com"}]);
    let no_match = send_with_headers(
        &app,
        Method::POST,
        &token,
        "/fhir/Patient",
        &[("if-none-exist", "email=newcomer@example.com")],
        Some(&newcomer),
    )
    .await;
    let no_value = send_with_headers(
        &app,
        Method::POST,
        &token,
        "/fhir/Patient",
        &[("if-none-exist", "identifier=urn:oid:1.2.3|")],
        Some(&newcomer),
    )
    .await;

    // Assert
    for (index, reply) in replies.into_iter().enumerate() {
        let location = reply.headers()["location"].to_str().unwrap().to_string();
        let existing = fhir_document(reply, 200).await;
        keep_for_validation(&format!("patient-conditional-match-{index}"), &existing);
        assert_eq!(existing["id"], created["id"]);
        assert_eq!(
            location,
            format!(
                "/fhir/Patient/{}/_history/1",
                created["id"].as_str().unwrap()
            )
        );
    }
    let newcomer_created = fhir_document(no_match, 201).await;
    keep_for_validation("patient-conditional-created", &newcomer_created);
    assert_ne!(newcomer_created["id"], created["id"]);
    let refused = fhir_document(no_value, 400).await;
    keep_for_validation("outcome-400-if-none-exist", &refused);
    let diagnostics = refused["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("needs a value"), "{diagnostics}");
    let search = app
        .get(&token, "/fhir/Patient?name=lovelace&_total=accurate")
        .await;
    assert_eq!(fhir_document(search, 200).await["total"], 2);
}

#[tokio::test]
async fn conditional_creates_racing_for_one_email_all_get_the_one_patient() {
    // Arrange: eight clients, half REST and half FHIR, register the same person at once
    const NUM_CLIENTS: usize = 8;
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let email = "racer@example.com";
    let condition = format!("email={email}");
    let mut fhir_body = ada();
    fhir_body["telecom"] = json!([{"system": "email", "value": email}]);
    let rest_body = patient_body("Rita Racer", email).to_string();

    // Act
    let mut requests = Vec::new();
    for index in 0..NUM_CLIENTS {
        let mut request = app
            .client
            .post(app.url(if index % 2 == 0 {
                "/api/patients"
            } else {
                "/fhir/Patient"
            }))
            .bearer_auth(&token)
            .header("if-none-exist", &condition);
        request = if index % 2 == 0 {
            request
                .header("content-type", "application/json")
                .body(rest_body.clone())
        } else {
            request
                .header("content-type", FHIR_JSON)
                .body(fhir_body.to_string())
        };
        requests.push(tokio::spawn(request.send()));
    }
    let mut replies = Vec::new();
    for request in requests {
        replies.push(request.await.unwrap());
    }

    // Assert: one create, and every client got that patient
    let mut num_created = 0;
    let mut ids = Vec::new();
    for reply in replies {
        let reply = reply.unwrap();
        let status = reply.status().as_u16();
        let body: Value = reply.json().await.unwrap();
        assert!(status == 200 || status == 201, "{status}: {body}");
        if status == 201 {
            num_created += 1;
        }
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(num_created, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

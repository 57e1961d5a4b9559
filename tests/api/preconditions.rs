//! `patients.require_if_match` through the real binary: set from the environment, every change
//! of a patient without `If-Match` is a 428 and writes nothing; off (the default), it is
//! applied.

use reqwest::{Method, Response};
use serde_json::Value;

use crate::fhir::{FHIR_JSON, ada, fhir_document, keep_for_validation, send_fhir};
use crate::helpers::{TestApp, Workdir, patient_body};

async fn change(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    if_match_opt: Option<&str>,
    body_opt: Option<(&str, String)>,
) -> Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(if_match) = if_match_opt {
        request = request.header("if-match", if_match);
    }
    if let Some((content_type, body)) = body_opt {
        request = request.header("content-type", content_type).body(body);
    }
    request.send().await.unwrap()
}

async fn version_of(app: &TestApp, token: &str, id: &str) -> u64 {
    let patient: Value = app
        .get(token, &format!("/api/patients/{id}"))
        .await
        .json()
        .await
        .unwrap();
    patient["version"].as_u64().unwrap()
}

#[tokio::test]
async fn when_required_changes_without_if_match_are_428_and_write_nothing() {
    // Arrange
    let dir = Workdir::new();
    let env = [(
        "WARD_PATIENTS__REQUIRE_IF_MATCH".to_string(),
        "true".to_string(),
    )];
    let app = TestApp::spawn_with_env(&dir.path, &["--demo"], &env).await;
    let token = app.demo_token().await;
    let rest_created = app
        .post(
            &token,
            "/api/patients",
            &patient_body("Ann Cond", "ann.cond@example.com"),
        )
        .await;
    assert_eq!(rest_created.status(), 201, "creates need no If-Match");
    let rest_id = rest_created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fhir_created = fhir_document(
        send_fhir(&app, Method::POST, &token, "/fhir/Patient", &ada()).await,
        201,
    )
    .await;
    let fhir_id = fhir_created["id"].as_str().unwrap().to_string();
    let rest_path = format!("/api/patients/{rest_id}");
    let fhir_path = format!("/fhir/Patient/{fhir_id}");
    let rest_body = patient_body("Ann Changed", "ann.cond@example.com").to_string();

    // Act + Assert: REST
    let put = change(
        &app,
        &token,
        Method::PUT,
        &rest_path,
        None,
        Some(("application/json", rest_body.clone())),
    )
    .await;
    assert_eq!(put.status(), 428);
    assert_eq!(
        put.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: Value = put.json().await.unwrap();
    assert_eq!(problem["title"], "Precondition required");
    let patch = change(
        &app,
        &token,
        Method::PATCH,
        &rest_path,
        None,
        Some((
            "application/merge-patch+json",
            r#"{"name":"Ann Patched"}"#.to_string(),
        )),
    )
    .await;
    assert_eq!(patch.status(), 428);
    let delete = change(&app, &token, Method::DELETE, &rest_path, None, None).await;
    assert_eq!(delete.status(), 428);
    assert_eq!(version_of(&app, &token, &rest_id).await, 1);

    // FHIR
    let mut edited = fhir_created.clone();
    edited["birthDate"] = serde_json::json!("1815-12-11");
    let fhir_put = change(
        &app,
        &token,
        Method::PUT,
        &fhir_path,
        None,
        Some((FHIR_JSON, edited.to_string())),
    )
    .await;
    let put_outcome = fhir_document(fhir_put, 428).await;
    keep_for_validation("outcome-428-put", &put_outcome);
    assert_eq!(put_outcome["issue"][0]["code"], "required");
    let fhir_delete = change(&app, &token, Method::DELETE, &fhir_path, None, None).await;
    let delete_outcome = fhir_document(fhir_delete, 428).await;
    keep_for_validation("outcome-428-delete", &delete_outcome);
    assert_eq!(version_of(&app, &token, &fhir_id).await, 1);

    // With the tag, the same changes go through; a restore needs it too
    let tagged_delete = change(
        &app,
        &token,
        Method::DELETE,
        &rest_path,
        Some(r#"W/"1""#),
        None,
    )
    .await;
    assert_eq!(tagged_delete.status(), 204);
    let restore_path = format!("{rest_path}/restore");
    let untagged_restore = change(&app, &token, Method::POST, &restore_path, None, None).await;
    assert_eq!(untagged_restore.status(), 428);
    let tagged_restore = change(
        &app,
        &token,
        Method::POST,
        &restore_path,
        Some(r#"W/"2""#),
        None,
    )
    .await;
    assert_eq!(tagged_restore.status(), 200);
    let tagged_fhir_put = change(
        &app,
        &token,
        Method::PUT,
        &fhir_path,
        Some(r#"W/"1""#),
        Some((FHIR_JSON, edited.to_string())),
    )
    .await;
    fhir_document(tagged_fhir_put, 200).await;
}

#[tokio::test]
async fn by_default_changes_without_if_match_are_applied() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let created = fhir_document(
        send_fhir(&app, Method::POST, &token, "/fhir/Patient", &ada()).await,
        201,
    )
    .await;
    let path = format!("/fhir/Patient/{}", created["id"].as_str().unwrap());

    let put = send_fhir(&app, Method::PUT, &token, &path, &created).await;
    let delete = change(&app, &token, Method::DELETE, &path, None, None).await;

    assert_eq!(put.status(), 200);
    assert_eq!(delete.status(), 204);
}

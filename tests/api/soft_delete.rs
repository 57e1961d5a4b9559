//! Soft delete, restore and purge through the real binary: a deleted patient answers 410 (also
//! over FHIR) until restored; a purge erases it and its history but not its audit trail.

use std::time::Duration;

use reqwest::Response;
use serde_json::Value;

use crate::helpers::{TestApp, Workdir, patient_body};

const EVENT_WAIT: Duration = Duration::from_secs(20);

async fn assert_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert_eq!(content_type, "application/problem+json");
    response.json().await.unwrap()
}

async fn post_empty(app: &TestApp, token: &str, path: &str) -> Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn delete_restore_and_purge_a_patient() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let created = app
        .post(
            &token,
            "/api/patients",
            &patient_body("Ada Lovelace", "ada@example.com"),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/patients/{id}");

    // Act + Assert: a delete makes the record 410, over REST and FHIR, and hides it.
    assert_eq!(app.delete(&token, &path).await.status(), 204);
    let problem = assert_problem(app.get(&token, &path).await, 410).await;
    assert_eq!(
        problem["detail"],
        "Patient was deleted; an admin can restore it"
    );
    assert_problem(app.delete(&token, &path).await, 410).await;
    let fhir = app.get(&token, &format!("/fhir/Patient/{id}")).await;
    assert_eq!(fhir.status(), 410);
    let outcome: Value = fhir.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "deleted");
    let found: Value = app
        .get(&token, "/api/patients?name=lovelace")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 0, "{found}");
    let history: Value = app
        .get(&token, &format!("{path}/history"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["items"][0]["action"], "delete");

    // A restore brings it back, one version on; restoring a live patient is a 409.
    let restored = post_empty(&app, &token, &format!("{path}/restore")).await;
    assert_eq!(restored.status(), 200);
    assert_eq!(restored.headers()["etag"], r#"W/"3""#);
    let read = app.get(&token, &path).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap()["name"], "Ada Lovelace");
    assert_problem(
        post_empty(&app, &token, &format!("{path}/restore")).await,
        409,
    )
    .await;

    // A purge erases the record and its history.
    let purged = post_empty(&app, &token, &format!("{path}/purge")).await;
    assert_eq!(purged.status(), 204);
    assert_problem(app.get(&token, &path).await, 404).await;
    assert_problem(app.get(&token, &format!("{path}/history")).await, 404).await;
    assert_problem(
        post_empty(&app, &token, &format!("{path}/purge")).await,
        404,
    )
    .await;

    // The audit trail still names the patient, for the admin.
    let trail: Value = app
        .get(&token, &format!("/api/audit?patientId={id}&limit=500"))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"create"), "{trail}");
    assert_eq!(actions.last(), Some(&"delete"), "{trail}");
    assert!(actions.contains(&"update"), "{trail}");

    // Analytics takes the new events in its stride: each is counted by type.
    app.eventually(
        EVENT_WAIT,
        "the restore and purge to be counted",
        || async {
            let summary: Value = app
                .get(&token, "/api/analytics/summary")
                .await
                .json()
                .await
                .ok()?;
            let counts = &summary["eventsByType"];
            (counts["PatientRestored"] == 1 && counts["PatientPurged"] == 1).then_some(())
        },
    )
    .await;
}

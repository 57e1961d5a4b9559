//! The reference platform's own integration tests, with Ward's statuses, plus its defects fixed.

use serde_json::{Value, json};

use crate::both_deployments;
use crate::helpers::{DEMO_EMAIL, DEMO_PASSWORD, JOHN_DOE_ID, TestApp, Workdir, patient_body};

both_deployments!(
    login_validate_and_me,
    patients_need_a_valid_token,
    the_demo_list_and_a_full_crud_cycle,
    duplicate_emails_conflict_ignoring_case,
    every_failing_field_is_reported_at_once,
    pages_walk_every_patient_once,
);

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

fn field_messages(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn login_validate_and_me(app: &TestApp) {
    // Arrange

    // Act + Assert: the demo user logs in and gets a token with its expiry.
    let response = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert!(token.len() > 20);
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    assert!(expires_at > chrono::Utc::now());

    // Wrong password and unknown user: 401, the same answer.
    let wrong = problem(app.login(DEMO_EMAIL, "password124").await, 401).await;
    let unknown = problem(app.login("nobody@test.com", DEMO_PASSWORD).await, 401).await;
    assert_eq!(wrong["detail"], unknown["detail"]);

    // validate: 200 with the token, 401 with garbage or with no header (the reference gave 400).
    let ok = app
        .client
        .get(app.url("/auth/validate"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let garbage = app
        .client
        .get(app.url("/auth/validate"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    problem(garbage, 401).await;
    let missing = app
        .client
        .get(app.url("/auth/validate"))
        .send()
        .await
        .unwrap();
    problem(missing, 401).await;

    let me: Value = app.get(token, "/auth/me").await.json().await.unwrap();
    assert_eq!(me["email"], DEMO_EMAIL);
    assert_eq!(me["role"], "admin");
}

async fn patients_need_a_valid_token(app: &TestApp) {
    let no_token = app
        .client
        .get(app.url("/api/patients"))
        .send()
        .await
        .unwrap();
    let body = problem(no_token, 401).await;
    assert_eq!(body["status"], 401);
    let garbage = app.get("not-a-token", "/api/patients").await;
    problem(garbage, 401).await;

    // Request ids are echoed, or generated.
    let response = app
        .client
        .get(app.url("/api/patients"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let response = app
        .client
        .get(app.url("/api/patients"))
        .send()
        .await
        .unwrap();
    assert!(!response.headers()["x-request-id"].is_empty());
}

async fn the_demo_list_and_a_full_crud_cycle(app: &TestApp) {
    let token = app.demo_token().await;

    // The list holds the 15 demo patients, John Doe first.
    let response = app.get(&token, "/api/patients").await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 15);
    assert!(page["nextCursor"].is_null());
    let john = items
        .iter()
        .find(|p| p["id"] == JOHN_DOE_ID)
        .expect("John Doe is listed");
    assert_eq!(john["name"], "John Doe");
    assert_eq!(john["email"], "john.doe@example.com");
    assert_eq!(john["address"], "123 Main St, Springfield");
    assert_eq!(john["dateOfBirth"], "1985-06-15");
    assert_eq!(john["registeredDate"], "2024-01-10");

    // Create: 201 + Location.
    let response = app
        .post(
            &token,
            "/api/patients",
            &patient_body("Ada Lovelace", "ada@example.com"),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/patients/{id}"));
    assert_eq!(created["registeredDate"], "2024-03-01");

    // Read.
    let fetched: Value = app.get(&token, &location).await.json().await.unwrap();
    assert_eq!(fetched, created);

    // Update: registeredDate is ignored.
    let mut changes = patient_body("Ada King", "ada.king@example.com");
    changes["registeredDate"] = json!("1999-12-31");
    let response = app.put(&token, &location, &changes).await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["name"], "Ada King");
    assert_eq!(updated["email"], "ada.king@example.com");
    assert_eq!(updated["registeredDate"], "2024-03-01");

    // A GET-edit-PUT round trip carries the record's own id: fine; another patient's id is not.
    let mut round_trip = updated.clone();
    round_trip["address"] = json!("2 New Road, Springfield");
    let response = app.put(&token, &location, &round_trip).await;
    assert_eq!(response.status(), 200);
    round_trip["id"] = json!(JOHN_DOE_ID);
    let body = problem(app.put(&token, &location, &round_trip).await, 400).await;
    assert_eq!(field_messages(&body)[0].0, "id");

    // Delete: 204, then 410 everywhere (a soft delete, restorable); an unknown id stays a 404
    // (the reference answered 204 for unknown ids).
    assert_eq!(app.delete(&token, &location).await.status(), 204);
    let gone = problem(app.get(&token, &location).await, 410).await;
    assert_eq!(
        gone["detail"],
        "Patient was deleted; an admin can restore it"
    );
    problem(app.delete(&token, &location).await, 410).await;
    problem(app.put(&token, &location, &changes).await, 410).await;
    let unknown = "/api/patients/0190c0de-0000-7000-8000-000000000000";
    let missing = problem(app.delete(&token, unknown).await, 404).await;
    assert_eq!(missing["detail"], "Patient not found");
}

async fn duplicate_emails_conflict_ignoring_case(app: &TestApp) {
    let token = app.demo_token().await;

    let duplicate = app
        .post(
            &token,
            "/api/patients",
            &patient_body("John Again", "JOHN.DOE@example.com"),
        )
        .await;
    let body = problem(duplicate, 409).await;
    assert_eq!(body["detail"], "Email address already exists");

    // Updating someone to another patient's email is a conflict too.
    let response = app
        .post(
            &token,
            "/api/patients",
            &patient_body("Grace Hopper", "grace@example.com"),
        )
        .await;
    let grace: Value = response.json().await.unwrap();
    let path = format!("/api/patients/{}", grace["id"].as_str().unwrap());
    let body = problem(
        app.put(
            &token,
            &path,
            &patient_body("Grace Hopper", "jane.smith@example.com"),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["detail"], "Email address already exists");
    // Keeping one's own email is fine.
    assert_eq!(
        app.put(
            &token,
            &path,
            &patient_body("Grace B. Hopper", "GRACE@example.com")
        )
        .await
        .status(),
        200
    );

    // Nothing half-written: still 15 demo patients + Grace.
    let page: Value = app.get(&token, "/api/patients").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 16);
}

async fn every_failing_field_is_reported_at_once(app: &TestApp) {
    let token = app.demo_token().await;

    let body = problem(app.post(&token, "/api/patients", &json!({})).await, 400).await;
    assert_eq!(
        field_messages(&body),
        vec![
            ("name".into(), "Name is required".into()),
            ("email".into(), "Email is required".into()),
            ("address".into(), "Address is required".into()),
            ("dateOfBirth".into(), "Date of birth is required".into()),
            (
                "registeredDate".into(),
                "Registered date is required".into()
            ),
        ]
    );

    let mut bad = patient_body(&"x".repeat(101), "not-an-email");
    bad["dateOfBirth"] = json!("15/06/1985");
    let body = problem(app.post(&token, "/api/patients", &bad).await, 400).await;
    let messages = field_messages(&body);
    assert!(messages.contains(&("name".into(), "Name cannot exceed 100 characters".into())));
    assert!(messages.contains(&("email".into(), "Email should be valid".into())));
    assert!(
        messages.iter().any(|(field, _)| field == "dateOfBirth"),
        "a malformed date is a 400 naming the field"
    );

    // Missing registeredDate on create only.
    let mut no_registered = patient_body("Alan Turing", "alan@example.com");
    no_registered
        .as_object_mut()
        .unwrap()
        .remove("registeredDate");
    let body = problem(app.post(&token, "/api/patients", &no_registered).await, 400).await;
    assert_eq!(
        field_messages(&body),
        vec![(
            "registeredDate".into(),
            "Registered date is required".into()
        )]
    );

    // Hostile input: never a 500.
    problem(app.get(&token, "/api/patients/not-a-uuid").await, 400).await;
    let wrong_types = app
        .post(&token, "/api/patients", &json!({"name": 5, "email": ["x"]}))
        .await;
    problem(wrong_types, 400).await;
    let not_json = app
        .client
        .post(app.url("/api/patients"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(not_json, 400).await;
    problem(app.get(&token, "/api/patients?limit=0").await, 400).await;
    problem(app.get(&token, "/api/patients?limit=abc").await, 400).await;
    problem(app.get(&token, "/api/patients?cursor=zzz").await, 400).await;
}

async fn pages_walk_every_patient_once(app: &TestApp) {
    let token = app.demo_token().await;

    let mut seen = Vec::new();
    let mut cursor_opt: Option<String> = None;
    loop {
        let path = match &cursor_opt {
            Some(cursor) => format!("/api/patients?limit=4&cursor={cursor}"),
            None => "/api/patients?limit=4".to_string(),
        };
        let page: Value = app.get(&token, &path).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => cursor_opt = Some(cursor.to_string()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 15);
    assert_eq!(unique.len(), 15);
}

#[tokio::test]
async fn openapi_and_docs_are_served() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &[]).await;
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["paths"]["/api/patients"].is_object());
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("openapi.json"));
    let live = app.client.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
}

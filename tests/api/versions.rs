//! Patient versions through the real binary: `ETag`, `If-Match` (also under concurrency), JSON
//! merge patches and the history routes.

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, Workdir, patient_body};

const MERGE_PATCH: &str = "application/merge-patch+json";

fn etag(response: &Response) -> Option<String> {
    response
        .headers()
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

async fn put_if_match(
    app: &TestApp,
    token: &str,
    path: &str,
    if_match: &str,
    body: &Value,
) -> Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .header("if-match", if_match)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn assert_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert_eq!(content_type, "application/problem+json");
    response.json().await.unwrap()
}

/// Registers a patient and returns its path, checking the first version's tag.
async fn create(app: &TestApp, token: &str, name: &str, email: &str) -> String {
    let created = app
        .post(token, "/api/patients", &patient_body(name, email))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(etag(&created).as_deref(), Some(r#"W/"1""#));
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["version"], 1);
    format!("/api/patients/{}", body["id"].as_str().unwrap())
}

#[tokio::test]
async fn a_record_changes_version_by_version_and_its_history_tells_the_story() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let me: Value = app.get(&token, "/auth/me").await.json().await.unwrap();
    let path = create(&app, &token, "Ada Lovelace", "ada@example.com").await;

    // Act + Assert: a PUT with the current tag wins and moves the tag on.
    let mut renamed = patient_body("Ada King", "ada@example.com");
    let put = put_if_match(&app, &token, &path, r#"W/"1""#, &renamed).await;
    assert_eq!(put.status(), 200);
    assert_eq!(etag(&put).as_deref(), Some(r#"W/"2""#));

    // The same tag again is stale: 412, and the record keeps the first PUT.
    renamed["name"] = json!("Lost Update");
    let stale = put_if_match(&app, &token, &path, r#"W/"1""#, &renamed).await;
    let problem = assert_problem(stale, 412).await;
    assert_eq!(
        problem["detail"],
        "the patient has changed (version 2 is current)"
    );
    let read = app.get(&token, &path).await;
    assert_eq!(etag(&read).as_deref(), Some(r#"W/"2""#));
    let current: Value = read.json().await.unwrap();
    assert_eq!(current["name"], "Ada King");

    // A merge patch changes only the member it names.
    let patched = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&token)
        .header("content-type", MERGE_PATCH)
        .header("if-match", r#""2""#)
        .body(json!({"address": "12 St James Sq, London"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert_eq!(etag(&patched).as_deref(), Some(r#"W/"3""#));
    let patched_body: Value = patched.json().await.unwrap();
    let mut expected = current.clone();
    expected["address"] = json!("12 St James Sq, London");
    expected["version"] = json!(3);
    assert_eq!(patched_body, expected);

    // Plain JSON is not a merge patch; a null required field is a 400.
    let plain = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&token)
        .json(&json!({"name": "X"}))
        .send()
        .await
        .unwrap();
    assert_problem(plain, 415).await;
    let null_name = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&token)
        .header("content-type", MERGE_PATCH)
        .body(r#"{"name": null}"#)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(null_name, 400).await;
    assert_eq!(problem["errors"][0]["field"], "name");

    // DELETE: a stale tag is refused, the current one removes the record.
    let stale_delete = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&token)
        .header("if-match", r#"W/"2""#)
        .send()
        .await
        .unwrap();
    assert_problem(stale_delete, 412).await;
    let delete = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&token)
        .header("if-match", r#"W/"3""#)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    // A soft delete: the record answers 410 until an admin restores it.
    assert_eq!(app.get(&token, &path).await.status(), 410);

    // The history outlives the record: every change, newest first, with its actor.
    let history = app.get(&token, &format!("{path}/history")).await;
    assert_eq!(history.status(), 200);
    let history: Value = history.json().await.unwrap();
    let items = history["items"].as_array().unwrap();
    let summary: Vec<(u64, &str)> = items
        .iter()
        .map(|item| {
            (
                item["version"].as_u64().unwrap(),
                item["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(4, "delete"), (3, "update"), (2, "update"), (1, "create")]
    );
    for item in items {
        assert_eq!(item["actor"], me["id"]);
        assert!(item["at"].is_string());
    }
    assert_eq!(items[3]["patient"]["name"], "Ada Lovelace");
    assert_eq!(items[0]["patient"]["address"], "12 St James Sq, London");

    let second = app.get(&token, &format!("{path}/history/2")).await;
    assert_eq!(second.status(), 200);
    assert_eq!(etag(&second).as_deref(), Some(r#"W/"2""#));
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["patient"]["name"], "Ada King");
    assert_eq!(second["patient"]["address"], "1 Test Road, Springfield");
    assert_problem(app.get(&token, &format!("{path}/history/5")).await, 404).await;
    assert_problem(app.get(&token, &format!("{path}/history/0")).await, 400).await;
    assert_problem(app.get(&token, &format!("{path}/history/x")).await, 400).await;
}

#[tokio::test]
async fn two_concurrent_puts_with_the_same_if_match_have_exactly_one_winner() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let path = create(&app, &token, "Grace Hopper", "grace@example.com").await;
    let first_body = patient_body("Grace Brewster Hopper", "grace@example.com");
    let second_body = patient_body("Rear Admiral Hopper", "grace@example.com");

    // Act
    let (first, second) = tokio::join!(
        put_if_match(&app, &token, &path, r#"W/"1""#, &first_body),
        put_if_match(&app, &token, &path, r#"W/"1""#, &second_body),
    );

    // Assert
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 412], "exactly one PUT wins");
    let (winner, winner_body, loser) = if first.status() == 200 {
        (first, &first_body, second)
    } else {
        (second, &second_body, first)
    };
    assert_eq!(etag(&winner).as_deref(), Some(r#"W/"2""#));
    assert_problem(loser, 412).await;
    let stored: Value = app.get(&token, &path).await.json().await.unwrap();
    assert_eq!(stored["name"], winner_body["name"]);
    assert_eq!(stored["version"], 2);
    let history: Value = app
        .get(&token, &format!("{path}/history"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 2);
    assert_eq!(history["items"][0]["patient"]["name"], winner_body["name"]);
}

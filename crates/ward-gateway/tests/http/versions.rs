//! Record versions over HTTP: `ETag`, `If-Match`, merge patches and the history routes.

use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, ANALYST_TOKEN, FakePatients, admin_id, fakes_with_store};
use crate::helpers::{Reply, ready_health, send};

const MERGE_PATCH: &str = "application/merge-patch+json";

fn john_doe() -> Value {
    json!({
        "name": "John Doe",
        "email": "john.doe@example.com",
        "address": "123 Main St, Springfield",
        "dateOfBirth": "1985-06-15",
        "registeredDate": "2024-01-10"
    })
}

fn as_admin(request: TestRequest) -> TestRequest {
    request.insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
}

fn merge_patch(uri: &str, body: &Value) -> TestRequest {
    as_admin(TestRequest::patch().uri(uri))
        .insert_header(("content-type", MERGE_PATCH))
        .set_payload(body.to_string())
}

/// Registers John Doe and returns his URL.
macro_rules! create_john {
    ($app:expr) => {{
        let created = send(
            &$app,
            as_admin(TestRequest::post().uri("/api/patients"))
                .set_json(john_doe())
                .to_request(),
        )
        .await;
        assert_eq!(created.status, 201);
        assert_eq!(created.header("etag"), Some(r#"W/"1""#));
        created.header("location").unwrap().to_string()
    }};
}

fn field_names(reply: &Reply) -> Vec<String> {
    reply
        .field_errors()
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

#[actix_web::test]
async fn every_single_record_answer_carries_its_version_as_the_etag() {
    // Arrange
    let app = api_app!();
    let location = create_john!(app);

    // Act
    let read = send(
        &app,
        as_admin(TestRequest::get().uri(&location)).to_request(),
    )
    .await;
    let put = send(
        &app,
        as_admin(TestRequest::put().uri(&location))
            .insert_header(("if-match", r#"W/"1""#))
            .set_json(john_doe())
            .to_request(),
    )
    .await;
    let patched = send(
        &app,
        merge_patch(&location, &json!({"name": "Jane Doe"})).to_request(),
    )
    .await;

    // Assert
    assert_eq!(read.header("etag"), Some(r#"W/"1""#));
    assert_eq!(read.json()["version"], 1);
    assert_eq!(put.status, 200);
    assert_eq!(put.header("etag"), Some(r#"W/"2""#));
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.header("etag"), Some(r#"W/"3""#));
    assert_eq!(patched.json()["name"], "Jane Doe");
    assert_eq!(patched.json()["email"], "john.doe@example.com");
    assert_eq!(patched.json()["version"], 3);
}

#[actix_web::test]
async fn if_match_accepts_weak_strong_and_wildcard_tags_and_refuses_garbage() {
    // Arrange
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let location = create_john!(app);
    let put = |if_match: &str| {
        as_admin(TestRequest::put().uri(&location))
            .insert_header(("if-match", if_match.to_string()))
            .set_json(john_doe())
            .to_request()
    };

    // Act
    let weak = send(&app, put(r#"W/"1""#)).await;
    let strong = send(&app, put(r#""2""#)).await;
    let any = send(&app, put("*")).await;
    let mut garbage = Vec::new();
    for raw in ["3", r#""three""#, r#""1", "2""#, r#"W/"-1""#] {
        garbage.push(send(&app, put(raw)).await);
    }
    let stale = send(&app, put(r#"W/"1""#)).await;

    // Assert
    assert_eq!(
        [weak.status, strong.status, any.status].map(|status| status.as_u16()),
        [200, 200, 200]
    );
    assert_eq!(any.header("etag"), Some(r#"W/"4""#));
    for reply in &garbage {
        assert_eq!(field_names(reply), ["If-Match"]);
    }
    let problem = stale.problem(412);
    assert_eq!(
        problem["detail"],
        "the patient has changed (version 4 is current)"
    );
    assert_eq!(
        problem["type"],
        "https://ward.dev/problems/precondition-failed"
    );
    // Garbage never reached the module; `*` asks for no particular version.
    assert_eq!(store.expected_versions(), [Some(1), Some(2), None, Some(1)]);
}

#[actix_web::test]
async fn delete_honours_if_match() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let location = create_john!(app);
    let delete = |if_match: &str| {
        as_admin(TestRequest::delete().uri(&location))
            .insert_header(("if-match", if_match.to_string()))
            .to_request()
    };

    let stale = send(&app, delete(r#"W/"7""#)).await;
    let garbage = send(&app, delete("yesterday")).await;
    let current = send(&app, delete(r#"W/"1""#)).await;

    stale.problem(412);
    assert_eq!(field_names(&garbage), ["If-Match"]);
    assert_eq!(current.status, 204);
    assert_eq!(store.count(), 0);
}

#[actix_web::test]
async fn a_patch_must_be_a_merge_patch_of_editable_fields() {
    // Arrange
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let location = create_john!(app);

    // Act
    let plain_json = send(
        &app,
        as_admin(TestRequest::patch().uri(&location))
            .set_json(json!({"name": "Jane"}))
            .to_request(),
    )
    .await;
    let text = send(
        &app,
        as_admin(TestRequest::patch().uri(&location))
            .insert_header(("content-type", "text/plain"))
            .set_payload("name=Jane")
            .to_request(),
    )
    .await;
    let null_name = send(
        &app,
        merge_patch(&location, &json!({"name": null, "email": "nope"})).to_request(),
    )
    .await;
    let unknown = send(
        &app,
        merge_patch(&location, &json!({"isAdmin": true})).to_request(),
    )
    .await;
    let not_object = send(&app, merge_patch(&location, &json!(["name"])).to_request()).await;
    let stale = send(
        &app,
        merge_patch(&location, &json!({"name": "Jane"}))
            .insert_header(("if-match", r#""2""#))
            .to_request(),
    )
    .await;
    let unchanged = send(&app, merge_patch(&location, &json!({})).to_request()).await;

    // Assert
    let problem = plain_json.problem(415);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("application/merge-patch+json")
    );
    text.problem(415);
    assert_eq!(
        null_name.field_errors(),
        [
            ("name".to_string(), "Name is required".to_string()),
            ("email".to_string(), "Email should be valid".to_string()),
        ]
    );
    assert_eq!(field_names(&unknown), ["isAdmin"]);
    not_object.problem(400);
    stale.problem(412);
    assert_eq!(unchanged.status, 200);
    assert_eq!(unchanged.header("etag"), Some(r#"W/"1""#));
    // Nothing above wrote: no update reached the module.
    assert!(store.expected_versions().is_empty());
}

#[actix_web::test]
async fn history_routes_list_versions_and_check_their_parameters() {
    // Arrange
    let app = api_app!();
    let location = create_john!(app);
    send(
        &app,
        merge_patch(&location, &json!({"address": "9 Oak Ave"})).to_request(),
    )
    .await;
    send(
        &app,
        as_admin(TestRequest::delete().uri(&location)).to_request(),
    )
    .await;
    let get = |uri: String| as_admin(TestRequest::get().uri(&uri)).to_request();

    // Act
    let history = send(&app, get(format!("{location}/history"))).await;
    let second = send(&app, get(format!("{location}/history/2"))).await;
    let zero = send(&app, get(format!("{location}/history/0"))).await;
    let word = send(&app, get(format!("{location}/history/two"))).await;
    let both_bad = send(&app, get("/api/patients/nope/history/x".to_string())).await;
    let unknown_version = send(&app, get(format!("{location}/history/9"))).await;
    let unknown_patient = send(
        &app,
        get(format!("/api/patients/{}/history", Uuid::now_v7())),
    )
    .await;
    let analyst = send(
        &app,
        TestRequest::get()
            .uri(&format!("{location}/history"))
            .insert_header(("authorization", format!("Bearer {ANALYST_TOKEN}")))
            .to_request(),
    )
    .await;

    // Assert
    assert_eq!(history.status, 200);
    let items = history.json()["items"].as_array().unwrap().clone();
    let summary: Vec<(u64, &str)> = items
        .iter()
        .map(|item| {
            (
                item["version"].as_u64().unwrap(),
                item["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(3, "delete"), (2, "update"), (1, "create")]);
    assert_eq!(items[0]["actor"], admin_id().to_string());
    assert_eq!(items[2]["patient"]["address"], "123 Main St, Springfield");
    assert_eq!(second.status, 200);
    assert_eq!(second.header("etag"), Some(r#"W/"2""#));
    assert_eq!(second.json()["patient"]["address"], "9 Oak Ave");
    assert_eq!(second.json()["patient"]["version"], 2);
    assert_eq!(field_names(&zero), ["version"]);
    assert_eq!(field_names(&word), ["version"]);
    assert_eq!(field_names(&both_bad), ["id", "version"]);
    unknown_version.problem(404);
    unknown_patient.problem(404);
    analyst.problem(403);
}

#[actix_web::test]
async fn the_description_documents_versions() {
    let app = api_app!();

    let spec = send(&app, TestRequest::get().uri("/openapi.json").to_request())
        .await
        .json();

    let item = &spec["paths"]["/api/patients/{id}"];
    for method in ["put", "patch", "delete"] {
        assert!(
            item[method]["responses"]["412"].is_object(),
            "{method} documents 412"
        );
        let params = item[method]["parameters"].as_array().unwrap();
        assert!(
            params
                .iter()
                .any(|param| param["name"] == "If-Match" && param["in"] == "header"),
            "{method} documents If-Match"
        );
    }
    assert!(item["get"]["responses"]["200"]["headers"]["ETag"].is_object());
    let patch_content = &item["patch"]["requestBody"]["content"];
    assert_eq!(
        patch_content[MERGE_PATCH]["schema"]["$ref"],
        "#/components/schemas/PatientPatch"
    );
    assert!(patch_content["application/json"].is_null());
    assert!(item["patch"]["responses"]["415"].is_object());
    let patch_schema = &spec["components"]["schemas"]["PatientPatch"];
    assert_eq!(patch_schema["additionalProperties"], false);
    assert!(patch_schema.get("required").is_none());
    let history = &spec["paths"]["/api/patients/{id}/history"]["get"];
    assert!(history["responses"]["200"].is_object());
    let version = &spec["paths"]["/api/patients/{id}/history/{version}"]["get"];
    assert!(version["responses"]["404"].is_object());
    assert_eq!(
        spec["components"]["schemas"]["PatientHistoryAction"]["enum"],
        json!(ward_bus::patients::HISTORY_ACTIONS)
    );
}

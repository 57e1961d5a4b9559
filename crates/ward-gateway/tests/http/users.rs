//! `/api/users`: the gateway reads the bodies; the (fake) auth module authorizes and decides.

use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api_app;
use crate::fakes::{
    ADMIN_EMAIL, ADMIN_TOKEN, ANALYST_EMAIL, ANALYST_TOKEN, FakeAuth, NarrowLog, admin_id,
    analyst_id, fakes_with_auth,
};
use crate::helpers::{ready_health, send};

fn with_token(request: TestRequest, token: &str) -> TestRequest {
    request.insert_header(("authorization", format!("Bearer {token}")))
}

fn as_admin(request: TestRequest) -> TestRequest {
    with_token(request, ADMIN_TOKEN)
}

fn field_error(field: &str, message: &str) -> (String, String) {
    (field.to_string(), message.to_string())
}

fn new_clinician() -> Value {
    json!({
        "email": "clinician@example.com",
        "password": "a long enough passphrase",
        "role": "clinician"
    })
}

#[actix_web::test]
async fn list_users_answers_every_account_ordered_by_email() {
    let app = api_app!();
    let request = as_admin(TestRequest::get().uri("/api/users")).to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"items": [
            {"id": analyst_id().to_string(), "email": ANALYST_EMAIL, "role": "analyst",
                "disabled": false},
            {"id": admin_id().to_string(), "email": ADMIN_EMAIL, "role": "admin",
                "disabled": false},
        ]})
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[actix_web::test]
async fn an_analyst_gets_the_modules_403_on_every_user_route() {
    let app = api_app!();
    let requests = [
        TestRequest::get().uri("/api/users"),
        TestRequest::post()
            .uri("/api/users")
            .set_json(new_clinician()),
        TestRequest::patch()
            .uri(&format!("/api/users/{}", analyst_id()))
            .set_json(json!({"disabled": true})),
    ];
    for request in requests {
        let reply = send(&app, with_token(request, ANALYST_TOKEN).to_request()).await;

        let problem = reply.problem(403);
        assert_eq!(problem["type"], "https://ward.dev/problems/forbidden");
    }
}

#[actix_web::test]
async fn user_routes_need_a_token() {
    let app = api_app!();

    let reply = send(&app, TestRequest::get().uri("/api/users").to_request()).await;

    reply.problem(401);
}

#[actix_web::test]
async fn create_user_answers_201_with_its_location_and_the_account() {
    // Arrange
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let request = as_admin(TestRequest::post().uri("/api/users"))
        .set_json(new_clinician())
        .to_request();

    // Act
    let reply = send(&app, request).await;

    // Assert
    assert_eq!(reply.status, 201);
    let user = reply.json();
    let id: Uuid = user["id"].as_str().unwrap().parse().unwrap();
    let location = format!("/api/users/{id}");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(
        user,
        json!({
            "id": id.to_string(),
            "email": "clinician@example.com",
            "role": "clinician",
            "disabled": false
        })
    );
    assert!(user.get("password").is_none());
    assert_eq!(
        auth.password_of(id).as_deref(),
        Some("a long enough passphrase")
    );
}

#[actix_web::test]
async fn a_taken_email_is_the_modules_409() {
    let app = api_app!();
    let mut body = new_clinician();
    body["email"] = json!(ADMIN_EMAIL.to_uppercase());
    let request = as_admin(TestRequest::post().uri("/api/users"))
        .set_json(body)
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(409);
    assert_eq!(problem["detail"], "a user with this email already exists");
}

#[actix_web::test]
async fn a_new_user_body_names_every_failing_field_and_lists_the_roles() {
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let body = json!({"email": "", "password": 12, "role": "superuser", "disabled": false});
    let request = as_admin(TestRequest::post().uri("/api/users"))
        .set_json(body)
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(
        reply.field_errors(),
        vec![
            field_error("email", "email is required"),
            field_error("password", "password must be a string"),
            field_error(
                "role",
                "role must be one of admin, clinician, billing, analyst"
            ),
            field_error("disabled", "unknown field"),
        ]
    );
    let list = send(
        &app,
        as_admin(TestRequest::get().uri("/api/users")).to_request(),
    )
    .await;
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn a_password_the_policy_refuses_is_the_modules_400() {
    let app = api_app!();
    let mut body = new_clinician();
    body["password"] = json!("short");
    let request = as_admin(TestRequest::post().uri("/api/users"))
        .set_json(body)
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(
        reply.field_errors(),
        vec![field_error(
            "password",
            "Password must be at least 12 characters"
        )]
    );
}

fn patch_request(id: impl std::fmt::Display, body: Value) -> TestRequest {
    as_admin(TestRequest::patch().uri(&format!("/api/users/{id}"))).set_json(body)
}

#[actix_web::test]
async fn patch_changes_the_role_and_the_disabled_flag() {
    // Arrange
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let body = json!({"role": "billing", "disabled": true});

    // Act
    let reply = send(&app, patch_request(analyst_id(), body).to_request()).await;

    // Assert
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "id": analyst_id().to_string(),
            "email": ANALYST_EMAIL,
            "role": "billing",
            "disabled": true
        })
    );
    let stored = auth.user(analyst_id()).unwrap();
    assert!(stored.disabled);
}

#[actix_web::test]
async fn patch_changes_one_member_and_leaves_a_null_one_alone() {
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let body = json!({"role": null, "disabled": true});

    let reply = send(&app, patch_request(analyst_id(), body).to_request()).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["role"], "analyst");
    assert_eq!(reply.json()["disabled"], true);
}

#[actix_web::test]
async fn patch_accepts_a_merge_patch_document() {
    let app = api_app!();
    let request = as_admin(TestRequest::patch().uri(&format!("/api/users/{}", analyst_id())))
        .insert_header(("content-type", "application/merge-patch+json"))
        .set_payload(json!({"role": "clinician"}).to_string())
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["role"], "clinician");
}

#[actix_web::test]
async fn an_empty_patch_is_a_400_and_changes_nothing() {
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let nothing = field_error("change", "name at least one of role or disabled");
    for body in [json!({}), json!({"role": null, "disabled": null})] {
        let reply = send(&app, patch_request(analyst_id(), body.clone()).to_request()).await;

        assert_eq!(reply.field_errors(), vec![nothing.clone()], "{body}");
    }
    let bad_members = json!({"role": "root", "disabled": "yes", "email": "x@y.z"});
    let reply = send(&app, patch_request(analyst_id(), bad_members).to_request()).await;
    assert_eq!(
        reply.field_errors(),
        vec![
            field_error(
                "role",
                "role must be one of admin, clinician, billing, analyst"
            ),
            field_error("disabled", "disabled must be a boolean"),
            field_error("email", "unknown field"),
        ]
    );
    let stored = auth.user(analyst_id()).unwrap();
    assert!(!stored.disabled);
}

#[actix_web::test]
async fn patch_of_an_unknown_or_malformed_id_is_404_or_400() {
    let app = api_app!();
    let body = json!({"disabled": true});

    let unknown = send(
        &app,
        patch_request(Uuid::now_v7(), body.clone()).to_request(),
    )
    .await;
    let malformed = send(&app, patch_request("not-an-id", body).to_request()).await;

    let problem = unknown.problem(404);
    assert_eq!(problem["detail"], "User not found");
    assert_eq!(
        malformed.field_errors(),
        vec![field_error("id", "id must be a UUID")]
    );
}

#[actix_web::test]
async fn a_patch_that_would_leave_no_admin_is_the_modules_409() {
    let app = api_app!();

    let reply = send(
        &app,
        patch_request(admin_id(), json!({"role": "analyst"})).to_request(),
    )
    .await;

    reply.problem(409);
}

#[actix_web::test]
async fn the_user_routes_answer_other_methods_with_405_and_allow() {
    let app = api_app!();
    let cases = [
        (TestRequest::delete().uri("/api/users"), "GET, POST"),
        (TestRequest::put().uri("/api/users"), "GET, POST"),
        (
            TestRequest::get().uri(&format!("/api/users/{}", admin_id())),
            "PATCH",
        ),
        (
            TestRequest::put().uri(&format!("/api/users/{}", admin_id())),
            "PATCH",
        ),
    ];
    for (request, allow) in cases {
        let reply = send(&app, as_admin(request).to_request()).await;

        reply.problem(405);
        assert_eq!(reply.header("allow"), Some(allow));
    }
}

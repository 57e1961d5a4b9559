use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::api_app;
use crate::fakes::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN, FakeAuth, NarrowLog, admin_id, fakes_with_auth,
};
use crate::helpers::{ready_health, send};

fn as_admin(request: TestRequest) -> TestRequest {
    request.insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
}

fn field_error(field: &str, message: &str) -> (String, String) {
    (field.to_string(), message.to_string())
}

#[actix_web::test]
async fn login_returns_the_token_and_its_expiry() {
    // Arrange
    let app = api_app!();
    let request = TestRequest::post()
        .uri("/auth/login")
        .set_json(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .to_request();

    // Act
    let reply = send(&app, request).await;

    // Assert
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "token": ADMIN_TOKEN,
            "expiresAt": "2030-01-01T10:00:00Z",
            "refreshToken": "refresh-1"
        })
    );
    assert!(reply.header("x-request-id").is_some());
}

#[actix_web::test]
async fn a_wrong_password_is_a_401_problem_with_a_challenge() {
    let app = api_app!();
    let request = TestRequest::post()
        .uri("/auth/login")
        .set_json(json!({"email": ADMIN_EMAIL, "password": "wrong"}))
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(401);
    assert_eq!(problem["type"], "https://ward.dev/problems/unauthenticated");
    assert_eq!(problem["instance"], "/auth/login");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
}

#[actix_web::test]
async fn malformed_json_is_a_400_problem() {
    let app = api_app!();
    let request = TestRequest::post()
        .uri("/auth/login")
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"email\": ")
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
}

#[actix_web::test]
async fn a_body_of_the_wrong_shape_is_400_and_of_the_wrong_content_type_415() {
    let app = api_app!();
    let array_body = TestRequest::post()
        .uri("/auth/login")
        .set_json(json!(["x"]))
        .to_request();
    send(&app, array_body).await.problem(400);

    let form_body = TestRequest::post()
        .uri("/auth/login")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload("email=a&password=b")
        .to_request();
    send(&app, form_body).await.problem(415);
}

#[actix_web::test]
async fn missing_credentials_are_named() {
    let app = api_app!();
    let request = TestRequest::post()
        .uri("/auth/login")
        .set_json(json!({"email": ADMIN_EMAIL}))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(
        reply.field_errors(),
        vec![("password".to_string(), "password is required".to_string())]
    );
}

#[actix_web::test]
async fn a_body_over_64_kib_is_a_413_problem() {
    let app = api_app!();
    let padding = "x".repeat(70 * 1024);
    let request = TestRequest::post()
        .uri("/auth/login")
        .set_json(json!({"email": ADMIN_EMAIL, "password": padding}))
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(413);
    assert_eq!(
        problem["type"],
        "https://ward.dev/problems/payload-too-large"
    );
}

#[actix_web::test]
async fn validate_without_a_header_is_401_not_400() {
    let app = api_app!();
    let request = TestRequest::get().uri("/auth/validate").to_request();

    let reply = send(&app, request).await;

    reply.problem(401);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
}

#[actix_web::test]
async fn validate_with_a_garbage_token_is_401() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/auth/validate")
        .insert_header(("authorization", "Bearer garbage"))
        .to_request();

    send(&app, request).await.problem(401);
}

#[actix_web::test]
async fn validate_tells_who_holds_a_valid_token() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/auth/validate")
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "valid": true,
            "userId": admin_id().to_string(),
            "email": ADMIN_EMAIL,
            "role": "admin"
        })
    );
}

#[actix_web::test]
async fn me_returns_the_callers_account() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/auth/me")
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "id": admin_id().to_string(),
            "email": ADMIN_EMAIL,
            "role": "admin",
            "disabled": false
        })
    );
}

#[actix_web::test]
async fn me_needs_a_token() {
    let app = api_app!();
    let request = TestRequest::get().uri("/auth/me").to_request();

    send(&app, request).await.problem(401);
}

fn login_request() -> TestRequest {
    TestRequest::post()
        .uri("/auth/login")
        .set_json(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
}

fn refresh_request(body: Value) -> TestRequest {
    TestRequest::post().uri("/auth/refresh").set_json(body)
}

#[actix_web::test]
async fn refresh_spends_the_refresh_token_for_new_tokens() {
    // Arrange
    let app = api_app!();
    let login = send(&app, login_request().to_request()).await.json();
    let refresh_token = login["refreshToken"].as_str().unwrap().to_string();

    // Act
    let reply = send(
        &app,
        refresh_request(json!({"refreshToken": refresh_token})).to_request(),
    )
    .await;

    // Assert
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "token": ADMIN_TOKEN,
            "expiresAt": "2030-01-01T10:00:00Z",
            "refreshToken": "refresh-2"
        })
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    // Single use: the spent token is refused, with the module's 401 passed through.
    let replay = send(
        &app,
        refresh_request(json!({"refreshToken": refresh_token})).to_request(),
    )
    .await;
    let problem = replay.problem(401);
    assert_eq!(problem["detail"], "invalid or expired refresh token");
    assert!(replay.header("www-authenticate").is_some());
}

#[actix_web::test]
async fn refresh_needs_no_bearer_token_and_refuses_an_unknown_refresh_token() {
    let app = api_app!();

    let reply = send(
        &app,
        refresh_request(json!({"refreshToken": "nope"})).to_request(),
    )
    .await;

    let problem = reply.problem(401);
    assert_eq!(problem["instance"], "/auth/refresh");
}

#[actix_web::test]
async fn a_refresh_body_without_a_usable_token_is_a_400_naming_it() {
    let app = api_app!();
    let long_token = "r".repeat(513);
    let cases = [
        (
            json!({}),
            field_error("refreshToken", "refreshToken is required"),
        ),
        (
            json!({"refreshToken": ""}),
            field_error("refreshToken", "refreshToken is required"),
        ),
        (
            json!({"refreshToken": 7}),
            field_error("refreshToken", "refreshToken must be a string"),
        ),
        (
            json!({"refreshToken": long_token}),
            field_error(
                "refreshToken",
                "refreshToken must be at most 512 characters",
            ),
        ),
    ];
    for (body, expected) in cases {
        let reply = send(&app, refresh_request(body.clone()).to_request()).await;

        assert_eq!(reply.field_errors(), vec![expected], "{body}");
    }
    let login = send(&app, login_request().to_request()).await.json();
    let with_extra = json!({"refreshToken": login["refreshToken"], "token": ADMIN_TOKEN});
    let reply = send(&app, refresh_request(with_extra).to_request()).await;
    assert_eq!(
        reply.field_errors(),
        vec![field_error("token", "unknown field")]
    );
}

#[actix_web::test]
async fn logout_ends_the_callers_session_with_an_empty_204() {
    // Arrange
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let request = as_admin(TestRequest::post().uri("/auth/logout")).to_request();

    // Act
    let reply = send(&app, request).await;

    // Assert
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    assert_eq!(auth.ended_sessions().len(), 1);
}

#[actix_web::test]
async fn logout_without_a_token_is_401_and_ends_nothing() {
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );

    let reply = send(&app, TestRequest::post().uri("/auth/logout").to_request()).await;

    reply.problem(401);
    assert!(auth.ended_sessions().is_empty());
}

fn password_request(body: Value) -> TestRequest {
    as_admin(TestRequest::post().uri("/auth/password")).set_json(body)
}

#[actix_web::test]
async fn a_password_change_is_a_204_and_reaches_the_account() {
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let body = json!({
        "currentPassword": ADMIN_PASSWORD,
        "newPassword": "a much longer passphrase"
    });

    let reply = send(&app, password_request(body).to_request()).await;

    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    assert_eq!(
        auth.password_of(admin_id()).as_deref(),
        Some("a much longer passphrase")
    );
}

#[actix_web::test]
async fn a_wrong_current_password_is_the_modules_401() {
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let body = json!({"currentPassword": "not it", "newPassword": "a much longer passphrase"});

    let reply = send(&app, password_request(body).to_request()).await;

    let problem = reply.problem(401);
    assert_eq!(problem["detail"], "the current password does not match");
    assert_eq!(
        auth.password_of(admin_id()).as_deref(),
        Some(ADMIN_PASSWORD)
    );
}

#[actix_web::test]
async fn a_new_password_the_policy_refuses_is_the_modules_400() {
    let app = api_app!();
    let body = json!({"currentPassword": ADMIN_PASSWORD, "newPassword": "short"});

    let reply = send(&app, password_request(body).to_request()).await;

    assert_eq!(
        reply.field_errors(),
        vec![field_error(
            "newPassword",
            "Password must be at least 12 characters"
        )]
    );
}

#[actix_web::test]
async fn a_password_body_is_checked_before_the_module_sees_it() {
    let auth = Arc::new(FakeAuth::default());
    let app = api_app!(
        fakes_with_auth(auth.clone(), NarrowLog::default()),
        ready_health()
    );
    let huge = "p".repeat(1025);
    let body = json!({"currentPassword": huge, "newPassword": null, "confirm": "x"});

    let reply = send(&app, password_request(body).to_request()).await;

    assert_eq!(
        reply.field_errors(),
        vec![
            field_error(
                "currentPassword",
                "currentPassword must be at most 1024 bytes"
            ),
            field_error("newPassword", "newPassword is required"),
            field_error("confirm", "unknown field"),
        ]
    );
    assert_eq!(
        auth.password_of(admin_id()).as_deref(),
        Some(ADMIN_PASSWORD)
    );
    let without_token = TestRequest::post()
        .uri("/auth/password")
        .set_json(json!({"currentPassword": ADMIN_PASSWORD, "newPassword": "x".repeat(12)}))
        .to_request();
    send(&app, without_token).await.problem(401);
}

#[actix_web::test]
async fn the_session_routes_answer_other_methods_with_405_and_allow() {
    let app = api_app!();
    for path in [
        "/auth/refresh",
        "/auth/logout",
        "/auth/password",
        "/auth/narrow",
    ] {
        let request = as_admin(TestRequest::get().uri(path)).to_request();

        let reply = send(&app, request).await;

        reply.problem(405);
        assert_eq!(reply.header("allow"), Some("POST"), "{path}");
    }
}

use actix_web::test::TestRequest;
use serde_json::json;

use crate::api_app;
use crate::fakes::{ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN, admin_id};
use crate::helpers::send;

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
        json!({"token": ADMIN_TOKEN, "expiresAt": "2030-01-01T10:00:00Z"})
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
        json!({"id": admin_id().to_string(), "email": ADMIN_EMAIL, "role": "admin"})
    );
}

#[actix_web::test]
async fn me_needs_a_token() {
    let app = api_app!();
    let request = TestRequest::get().uri("/auth/me").to_request();

    send(&app, request).await.problem(401);
}

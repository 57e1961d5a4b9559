//! `POST /auth/narrow`: the body is read here, the narrowing itself is the verifier's (faked).

use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, ANALYST_TOKEN, FakeAuth, NarrowLog, fakes_with_auth};
use crate::helpers::{ready_health, send};

fn field_error(field: &str, message: &str) -> (String, String) {
    (field.to_string(), message.to_string())
}

fn narrow_request(token: &str, body: Value) -> TestRequest {
    TestRequest::post()
        .uri("/auth/narrow")
        .insert_header(("authorization", format!("Bearer {token}")))
        .set_json(body)
}

#[actix_web::test]
async fn narrow_passes_the_narrowing_and_the_callers_token_through() {
    // Arrange
    let narrow_log = NarrowLog::default();
    let app = api_app!(
        fakes_with_auth(Arc::new(FakeAuth::default()), narrow_log.clone()),
        ready_health()
    );
    let patient_id = uuid::Uuid::from_u128(42);
    let body = json!({
        "readOnly": true,
        "patientId": patient_id.to_string(),
        "expiresInSeconds": 600
    });

    // Act
    let reply = send(&app, narrow_request(ANALYST_TOKEN, body).to_request()).await;

    // Assert
    assert_eq!(reply.status, 200);
    let calls = narrow_log.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.token, ANALYST_TOKEN);
    assert!(call.narrowing.read_only);
    assert_eq!(call.narrowing.patient_id_opt, Some(patient_id));
    let expires_at = call.narrowing.expires_at_opt.expect("an expiry");
    assert_eq!(expires_at, call.now + chrono::Duration::seconds(600));
    let answer = reply.json();
    assert_eq!(answer["token"], format!("{ANALYST_TOKEN}.narrowed"));
    let answered_expiry: chrono::DateTime<chrono::Utc> =
        answer["expiresAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(answered_expiry, expires_at);
    assert!(answer.get("refreshToken").is_none());
}

#[actix_web::test]
async fn narrow_with_one_member_leaves_the_others_unset() {
    let narrow_log = NarrowLog::default();
    let app = api_app!(
        fakes_with_auth(Arc::new(FakeAuth::default()), narrow_log.clone()),
        ready_health()
    );

    let reply = send(
        &app,
        narrow_request(ADMIN_TOKEN, json!({"readOnly": true})).to_request(),
    )
    .await;

    assert_eq!(reply.status, 200);
    let narrowing = &narrow_log.calls()[0].narrowing;
    assert!(narrowing.read_only);
    assert_eq!(narrowing.patient_id_opt, None);
    assert_eq!(narrowing.expires_at_opt, None);
}

#[actix_web::test]
async fn narrow_refuses_bad_or_empty_narrowings_before_narrowing() {
    let narrow_log = NarrowLog::default();
    let app = api_app!(
        fakes_with_auth(Arc::new(FakeAuth::default()), narrow_log.clone()),
        ready_health()
    );
    let nothing = field_error(
        "narrowing",
        "name at least one of readOnly, patientId or expiresInSeconds",
    );
    let out_of_range = field_error(
        "expiresInSeconds",
        "expiresInSeconds must be between 1 and 86400",
    );
    let cases = [
        (json!({}), nothing.clone()),
        (json!({"readOnly": false}), nothing.clone()),
        (json!({"patientId": null}), nothing),
        (
            json!({"patientId": "not-a-uuid"}),
            field_error("patientId", "patientId must be a UUID"),
        ),
        (json!({"expiresInSeconds": 0}), out_of_range.clone()),
        (json!({"expiresInSeconds": 86401}), out_of_range),
        (
            json!({"expiresInSeconds": 1.5}),
            field_error("expiresInSeconds", "expiresInSeconds must be an integer"),
        ),
        (
            json!({"readOnly": "true"}),
            field_error("readOnly", "readOnly must be a boolean"),
        ),
        (
            json!({"readOnly": true, "rights": []}),
            field_error("rights", "unknown field"),
        ),
    ];
    for (body, expected) in cases {
        let reply = send(&app, narrow_request(ADMIN_TOKEN, body.clone()).to_request()).await;

        assert_eq!(reply.field_errors(), vec![expected], "{body}");
    }
    assert!(narrow_log.calls().is_empty());
}

#[actix_web::test]
async fn narrow_accepts_the_bounds_of_expires_in_seconds() {
    let narrow_log = NarrowLog::default();
    let app = api_app!(
        fakes_with_auth(Arc::new(FakeAuth::default()), narrow_log.clone()),
        ready_health()
    );
    for seconds in [1, 86400] {
        let body = json!({"expiresInSeconds": seconds});

        let reply = send(&app, narrow_request(ADMIN_TOKEN, body).to_request()).await;

        assert_eq!(reply.status, 200, "{seconds}");
    }
    assert_eq!(narrow_log.calls().len(), 2);
}

#[actix_web::test]
async fn narrow_needs_a_valid_bearer_token() {
    let narrow_log = NarrowLog::default();
    let app = api_app!(
        fakes_with_auth(Arc::new(FakeAuth::default()), narrow_log.clone()),
        ready_health()
    );
    let without_token = TestRequest::post()
        .uri("/auth/narrow")
        .set_json(json!({"readOnly": true}))
        .to_request();

    send(&app, without_token).await.problem(401);
    let reply = send(
        &app,
        narrow_request("forged", json!({"readOnly": true})).to_request(),
    )
    .await;
    reply.problem(401);
    assert!(narrow_log.calls().is_empty());
}

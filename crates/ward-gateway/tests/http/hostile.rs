//! Hostile or broken input: every case is a precise 4xx problem and nothing is written.

use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::api_app;
use crate::fakes::{ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN, FakePatients, fakes_with_store};
use crate::helpers::{ready_health, send};

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

#[actix_web::test]
async fn a_body_not_declared_as_json_is_a_415_problem_on_every_body_route() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let body = john_doe().to_string();
    let id = uuid::Uuid::now_v7();
    let content_types = [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("text/json"),
        None,
    ];
    for content_type_opt in content_types {
        let requests = [
            TestRequest::post().uri("/auth/login"),
            TestRequest::post().uri("/auth/refresh"),
            as_admin(TestRequest::post().uri("/auth/password")),
            as_admin(TestRequest::post().uri("/auth/narrow")),
            as_admin(TestRequest::post().uri("/api/patients")),
            as_admin(TestRequest::put().uri(&format!("/api/patients/{id}"))),
            as_admin(TestRequest::post().uri("/api/users")),
            as_admin(TestRequest::patch().uri(&format!("/api/users/{id}"))),
        ];
        for request in requests {
            let mut request = request.set_payload(body.clone());
            if let Some(content_type) = content_type_opt {
                request = request.insert_header(("content-type", content_type));
            }

            let reply = send(&app, request.to_request()).await;

            let problem = reply.problem(415);
            assert_eq!(
                problem["type"],
                "https://ward.dev/problems/unsupported-media-type"
            );
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains("application/json"), "{detail}");
            match content_type_opt {
                Some(content_type) => assert!(detail.contains(content_type), "{detail}"),
                None => assert!(detail.contains("no Content-Type"), "{detail}"),
            }
        }
    }
    assert_eq!(store.count(), 0);
}

#[actix_web::test]
async fn json_suffixed_media_types_and_charsets_are_accepted() {
    let app = api_app!();
    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let login = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
        let request = TestRequest::post()
            .uri("/auth/login")
            .insert_header(("content-type", content_type))
            .set_payload(login.to_string())
            .to_request();

        let reply = send(&app, request).await;

        assert_eq!(reply.status, 200, "{content_type}");
    }
}

#[actix_web::test]
async fn unknown_fields_are_named_with_the_other_failures_and_nothing_is_written() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let mut body = john_doe();
    body["email"] = json!("not-an-email");
    body["id"] = json!("0190c5b2-7d4e-7cc1-9a51-3f0a8c2d9e11");
    body["dateofbirth"] = json!("1985-06-15");
    let request = as_admin(TestRequest::post().uri("/api/patients"))
        .set_json(&body)
        .to_request();

    let reply = send(&app, request).await;

    let errors = reply.field_errors();
    let expected: Vec<(String, String)> = [
        ("email", "Email should be valid"),
        ("dateofbirth", "unknown field"),
        ("id", "unknown field"),
    ]
    .into_iter()
    .map(|(field, message)| (field.to_string(), message.to_string()))
    .collect();
    assert_eq!(errors, expected);
    assert_eq!(store.count(), 0);

    // An otherwise valid body with one unknown field is refused too, on update as on create.
    let mut valid_but_extra = john_doe();
    valid_but_extra["isAdmin"] = json!(true);
    for request in [
        TestRequest::post().uri("/api/patients"),
        TestRequest::put().uri(&format!("/api/patients/{}", uuid::Uuid::now_v7())),
    ] {
        let reply = send(
            &app,
            as_admin(request).set_json(&valid_but_extra).to_request(),
        )
        .await;
        assert_eq!(
            reply.field_errors(),
            vec![("isAdmin".to_string(), "unknown field".to_string())]
        );
    }
    assert_eq!(store.count(), 0);
}

#[actix_web::test]
async fn an_unknown_login_field_is_a_400_naming_it() {
    let app = api_app!();
    let body = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "role": "admin"});
    let request = TestRequest::post()
        .uri("/auth/login")
        .set_json(body)
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(
        reply.field_errors(),
        vec![("role".to_string(), "unknown field".to_string())]
    );
}

#[actix_web::test]
async fn a_one_megabyte_body_is_a_413_problem() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let mut body = john_doe();
    body["address"] = json!("x".repeat(1024 * 1024));
    let request = as_admin(TestRequest::post().uri("/api/patients"))
        .set_json(body)
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(413);
    assert_eq!(
        problem["type"],
        "https://ward.dev/problems/payload-too-large"
    );
    assert_eq!(store.count(), 0);
}

#[actix_web::test]
async fn a_ten_thousand_character_name_is_a_400_with_the_reference_message() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let mut body = john_doe();
    body["name"] = json!("n".repeat(10_000));
    let request = as_admin(TestRequest::post().uri("/api/patients"))
        .set_json(body)
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(
        reply.field_errors(),
        vec![(
            "name".to_string(),
            "Name cannot exceed 100 characters".to_string()
        )]
    );
    assert_eq!(store.count(), 0);
}

#[actix_web::test]
async fn control_characters_in_any_text_field_are_a_400_naming_it() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let cases = [
        ("name", "John\u{0}Doe"),
        ("email", "john\u{7}@example.com"),
        ("address", "123 Main St\u{1b}[2J"),
        ("dateOfBirth", "1985-06-15\u{0}"),
    ];
    for (field, value) in cases {
        let mut body = john_doe();
        body[field] = json!(value);
        let request = as_admin(TestRequest::post().uri("/api/patients"))
            .set_json(body)
            .to_request();

        let reply = send(&app, request).await;

        assert_eq!(
            reply.field_errors(),
            vec![(
                field.to_string(),
                format!("{field} must not contain control characters")
            )]
        );
    }
    let login = json!({"email": ADMIN_EMAIL, "password": "password123\u{0}"});
    let reply = send(
        &app,
        TestRequest::post()
            .uri("/auth/login")
            .set_json(login)
            .to_request(),
    )
    .await;
    assert_eq!(reply.field_errors()[0].0, "password");
    assert_eq!(store.count(), 0);
}

#[actix_web::test]
async fn bidi_overrides_and_zero_width_characters_are_stored_as_data() {
    let app = api_app!();
    let name = "\u{202e}eoD nhoJ\u{200b}Zoë\u{200d}";
    let mut body = john_doe();
    body["name"] = json!(name);
    let request = as_admin(TestRequest::post().uri("/api/patients"))
        .set_json(body)
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["name"], name);
}

#[actix_web::test]
async fn an_injection_looking_name_round_trips_verbatim() {
    let app = api_app!();
    let name = "Robert'); DROP TABLE patients;--";
    let mut body = john_doe();
    body["name"] = json!(name);
    body["address"] = json!("1' OR '1'='1");
    let created = send(
        &app,
        as_admin(TestRequest::post().uri("/api/patients"))
            .set_json(body)
            .to_request(),
    )
    .await;
    assert_eq!(created.status, 201);
    let location = created.header("location").unwrap().to_string();

    let read = send(
        &app,
        as_admin(TestRequest::get().uri(&location)).to_request(),
    )
    .await;

    assert_eq!(read.status, 200);
    assert_eq!(read.json()["name"], name);
    assert_eq!(read.json()["address"], "1' OR '1'='1");
}

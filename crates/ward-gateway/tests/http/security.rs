//! Security headers and the CORS allow-list of the public listener.

use actix_web::test::TestRequest;
use serde_json::json;
use ward_gateway::GatewayOptions;

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, fakes};
use crate::helpers::{Reply, ready_health, send};

const CLINIC_ORIGIN: &str = "https://clinic.example";

fn with_clinic_origin() -> GatewayOptions {
    GatewayOptions {
        trusted_proxies: Vec::new(),
        cors_allowed_origins: vec![CLINIC_ORIGIN.to_string()],
        require_if_match: false,
    }
}

fn assert_common_security_headers(reply: &Reply, uri: &str) {
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{uri}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{uri}");
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{uri}"
    );
}

#[actix_web::test]
async fn every_response_carries_the_security_headers() {
    let app = api_app!();
    // A success, a 401, a 404 and a 405 under /api and /auth: all private, all JSON.
    let private_requests = [
        TestRequest::get()
            .uri("/api/patients")
            .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}"))),
        TestRequest::get().uri("/api/patients"),
        TestRequest::get().uri("/api/nothing-here"),
        TestRequest::get().uri("/auth/login"),
    ];
    for request in private_requests {
        let request = request.to_request();
        let uri = request.uri().to_string();

        let reply = send(&app, request).await;

        assert_common_security_headers(&reply, &uri);
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{uri}");
        assert_eq!(
            reply.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'"),
            "{uri}"
        );
    }
}

#[actix_web::test]
async fn public_pages_get_the_common_headers_and_docs_keeps_its_own_policy() {
    let app = api_app!();

    let not_found = send(&app, TestRequest::get().uri("/nowhere").to_request()).await;
    let openapi = send(&app, TestRequest::get().uri("/openapi.json").to_request()).await;
    let docs = send(&app, TestRequest::get().uri("/docs").to_request()).await;

    for (reply, uri) in [
        (&not_found, "/nowhere"),
        (&openapi, "/openapi.json"),
        (&docs, "/docs"),
    ] {
        assert_common_security_headers(reply, uri);
    }
    not_found.problem(404);
    assert_eq!(
        not_found.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    let docs_policy = docs.header("content-security-policy").unwrap();
    assert!(
        docs_policy.contains("script-src 'unsafe-inline'"),
        "{docs_policy}"
    );
    assert_eq!(docs.headers.get_all("content-security-policy").count(), 1);
}

#[actix_web::test]
async fn a_listed_origin_is_echoed_with_vary_and_exposed_headers() {
    let app = api_app!(fakes(false), ready_health(), with_clinic_origin());
    let request = TestRequest::post()
        .uri("/api/patients")
        .insert_header(("origin", CLINIC_ORIGIN))
        .set_json(json!({}))
        .to_request();

    let reply = send(&app, request).await;

    // A 401 problem: browsers must be able to read errors too.
    reply.problem(401);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(CLINIC_ORIGIN)
    );
    assert_eq!(reply.header("vary"), Some("Origin"));
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("x-request-id, location, etag")
    );
    assert!(reply.header("access-control-allow-credentials").is_none());
}

#[actix_web::test]
async fn an_unlisted_origin_gets_no_allow_origin() {
    let app = api_app!(fakes(false), ready_health(), with_clinic_origin());
    let request = TestRequest::get()
        .uri("/api/patients")
        .insert_header(("origin", "https://clinic.example.evil"))
        .to_request();

    let reply = send(&app, request).await;

    assert!(reply.header("access-control-allow-origin").is_none());
    assert!(reply.header("access-control-expose-headers").is_none());
    assert_eq!(reply.header("vary"), Some("Origin"));
}

#[actix_web::test]
async fn without_configured_origins_no_cors_header_is_sent() {
    let app = api_app!();
    let simple = TestRequest::get()
        .uri("/api/patients")
        .insert_header(("origin", CLINIC_ORIGIN))
        .to_request();
    let preflight = TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/api/patients")
        .insert_header(("origin", CLINIC_ORIGIN))
        .insert_header(("access-control-request-method", "POST"))
        .to_request();

    for reply in [send(&app, simple).await, send(&app, preflight).await] {
        let cors_headers: Vec<&str> = reply
            .headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| name.starts_with("access-control-") || *name == "vary")
            .collect();
        assert!(cors_headers.is_empty(), "{cors_headers:?}");
    }
}

#[actix_web::test]
async fn a_preflight_from_a_listed_origin_is_answered_204() {
    let app = api_app!(fakes(false), ready_health(), with_clinic_origin());
    let request = TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/api/patients")
        .insert_header(("origin", CLINIC_ORIGIN))
        .insert_header(("access-control-request-method", "POST"))
        .insert_header((
            "access-control-request-headers",
            "authorization, content-type",
        ))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(CLINIC_ORIGIN)
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET, POST, PUT, PATCH, DELETE")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("authorization, content-type, x-request-id, if-match, if-none-exist, idempotency-key")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert_eq!(reply.header("vary"), Some("Origin"));
    assert!(reply.header("x-request-id").is_some());
    assert_common_security_headers(&reply, "/api/patients");
}

#[actix_web::test]
async fn a_preflight_from_an_unlisted_origin_gets_no_allow_headers() {
    let app = api_app!(fakes(false), ready_health(), with_clinic_origin());
    let request = TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/api/patients")
        .insert_header(("origin", "https://attacker.example"))
        .insert_header(("access-control-request-method", "DELETE"))
        .to_request();

    let reply = send(&app, request).await;

    reply.problem(405);
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert!(reply.header(name).is_none(), "{name}");
    }
}

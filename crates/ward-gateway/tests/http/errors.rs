use actix_web::test::TestRequest;
use uuid::Uuid;

use crate::api_app;
use crate::fakes::ADMIN_TOKEN;
use crate::helpers::send;

#[actix_web::test]
async fn an_unknown_route_is_a_404_problem_with_a_request_id() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/patients")
        .insert_header(("x-request-id", "probe-1"))
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(404);
    assert_eq!(problem["type"], "https://ward.dev/problems/not-found");
    assert_eq!(problem["instance"], "/patients");
    assert_eq!(problem["requestId"], "probe-1");
}

#[actix_web::test]
async fn the_root_path_is_a_404_problem_too() {
    let app = api_app!();

    let reply = send(&app, TestRequest::get().uri("/").to_request()).await;

    reply.problem(404);
}

#[actix_web::test]
async fn a_wrong_method_is_a_405_problem_listing_the_allowed_ones() {
    let app = api_app!();
    let request = TestRequest::post()
        .uri(&format!("/api/patients/{}", Uuid::now_v7()))
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(405);
    assert_eq!(
        problem["type"],
        "https://ward.dev/problems/method-not-allowed"
    );
    assert_eq!(reply.header("allow"), Some("GET, PUT, PATCH, DELETE"));
}

#[actix_web::test]
async fn get_on_login_is_405() {
    let app = api_app!();

    let reply = send(&app, TestRequest::get().uri("/auth/login").to_request()).await;

    reply.problem(405);
    assert_eq!(reply.header("allow"), Some("POST"));
}

#[actix_web::test]
async fn restore_and_purge_take_only_post() {
    let app = api_app!();
    let id = Uuid::now_v7();
    for action in ["restore", "purge"] {
        let request = TestRequest::delete()
            .uri(&format!("/api/patients/{id}/{action}"))
            .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
            .to_request();

        let reply = send(&app, request).await;

        reply.problem(405);
        assert_eq!(reply.header("allow"), Some("POST"), "{action}");
    }
}

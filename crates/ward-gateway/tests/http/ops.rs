use actix_web::test::{self, TestRequest};
use serde_json::json;
use ward_bus::health::{ComponentState, Health};

use crate::api_app;
use crate::fakes::fakes;
use crate::helpers::send;

#[actix_web::test]
async fn livez_is_200_even_when_not_ready() {
    let health = Health::default();
    let app = api_app!(fakes(false), health);

    let reply = send(&app, TestRequest::get().uri("/livez").to_request()).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"status": "live"}));
}

#[actix_web::test]
async fn readyz_turns_from_503_to_200_as_components_get_ready() {
    // Arrange: one component still waits.
    let health = Health::default();
    health.register("patients");
    health.set(
        "peer:billing",
        ComponentState::NotReady("no peers.billing".into()),
    );
    let app = test::init_service(
        actix_web::App::new().configure(ward_gateway::ops_config(health.clone())),
    )
    .await;

    // Act + Assert: not ready, saying what each waits for.
    let waiting = send(&app, TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(waiting.status, 503);
    assert_eq!(
        waiting.json(),
        json!({
            "status": "not_ready",
            "components": [
                {"name": "patients", "ready": false, "waitingFor": "starting"},
                {"name": "peer:billing", "ready": false, "waitingFor": "no peers.billing"}
            ]
        })
    );

    health.set("patients", ComponentState::Ready);
    health.set("peer:billing", ComponentState::Ready);
    let ready = send(&app, TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
}

#[actix_web::test]
async fn metrics_count_api_responses_by_route_and_report_readiness() {
    let health = Health::default();
    let api = api_app!(fakes(false), health.clone());
    let ops = test::init_service(
        actix_web::App::new().configure(ward_gateway::ops_config(health.clone())),
    )
    .await;
    send(&api, TestRequest::get().uri("/nowhere").to_request()).await;
    send(&api, TestRequest::get().uri("/livez").to_request()).await;
    // The ops listener's own probes are not API traffic.
    send(&ops, TestRequest::get().uri("/readyz").to_request()).await;

    let reply = send(&ops, TestRequest::get().uri("/metrics").to_request()).await;

    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let count_of = |series: &str| -> u64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let unmatched = r#"ward_http_requests_total{route="unmatched",method="GET",status="404"} "#;
    let livez = r#"ward_http_requests_total{route="/livez",method="GET",status="200"} "#;
    assert!(count_of(unmatched) >= 1);
    assert!(count_of(livez) >= 1);
    assert!(!text.contains("route=\"/readyz\""));
    assert!(!text.contains("/nowhere"));
    assert!(text.contains("\nward_ready 0\n"));
}

#[actix_web::test]
async fn the_ops_listener_has_problem_404s_and_request_ids() {
    let ops = test::init_service(
        actix_web::App::new().configure(ward_gateway::ops_config(Health::default())),
    )
    .await;

    let reply = send(&ops, TestRequest::get().uri("/api/patients").to_request()).await;

    reply.problem(404);
}

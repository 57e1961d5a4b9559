//! `/api/analytics/timeseries` and `/receivables`: parameters, shapes and rights over the fakes.

use actix_web::test::TestRequest;
use serde_json::json;

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, ANALYST_TOKEN};
use crate::helpers::send;

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

#[actix_web::test]
async fn a_timeseries_names_its_metric_interval_and_currency() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/api/analytics/timeseries?metric=collected&from=2024-01-30&to=2024-03-01&interval=month&currency=eur")
        .insert_header(bearer(ANALYST_TOKEN))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "metric": "collected",
            "interval": "month",
            "currency": "EUR",
            "points": [
                {"start": "2024-01-01", "value": 1},
                {"start": "2024-02-01", "value": 1},
                {"start": "2024-03-01", "value": 1}
            ]
        })
    );
}

#[actix_web::test]
async fn receivables_have_four_buckets_and_a_total() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/api/analytics/receivables?currency=USD")
        .insert_header(bearer(ADMIN_TOKEN))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["currency"], "USD");
    assert_eq!(
        body["buckets"],
        json!({"0-30": 100, "31-60": 0, "61-90": 0, "90+": 5})
    );
    assert_eq!(body["total"], 105);
    assert_eq!(
        body["asOf"],
        chrono::Utc::now()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string()
    );
}

#[actix_web::test]
async fn bad_and_unknown_parameters_are_named() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/api/analytics/timeseries?metric=invoiced&interval=hour&currency=12&page=2")
        .insert_header(bearer(ADMIN_TOKEN))
        .to_request();

    let reply = send(&app, request).await;

    reply.problem(400);
    let fields: Vec<String> = reply
        .field_errors()
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(fields, ["page", "interval", "currency"]);
}

use actix_web::test::TestRequest;
use serde_json::json;
use uuid::Uuid;

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, ANALYST_TOKEN, billed_patient_id, fakes};
use crate::helpers::{ready_health, send};

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

#[actix_web::test]
async fn a_patients_billing_account_is_returned() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri(&format!("/api/billing/accounts/{}", billed_patient_id()))
        .insert_header(bearer(ADMIN_TOKEN))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "id": Uuid::from_u128(7).to_string(),
            "patientId": billed_patient_id().to_string(),
            "status": "ACTIVE",
            "openedAt": "2024-01-10T09:30:00Z",
            "currency": null,
            "balance": 0
        })
    );
}

#[actix_web::test]
async fn billing_answers_404_and_400_naming_patient_id() {
    let app = api_app!();
    let unknown = TestRequest::get()
        .uri(&format!("/api/billing/accounts/{}", Uuid::now_v7()))
        .insert_header(bearer(ADMIN_TOKEN))
        .to_request();
    let malformed = TestRequest::get()
        .uri("/api/billing/accounts/12345")
        .insert_header(bearer(ADMIN_TOKEN))
        .to_request();

    let unknown_reply = send(&app, unknown).await;
    let malformed_reply = send(&app, malformed).await;

    assert_eq!(
        unknown_reply.problem(404)["detail"],
        "Billing account not found"
    );
    assert_eq!(malformed_reply.field_errors()[0].0, "patientId");
}

#[actix_web::test]
async fn the_analytics_summary_has_the_expected_shape() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/api/analytics/summary")
        .insert_header(bearer(ANALYST_TOKEN))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({
            "patientsRegistered": 15,
            "patientsDeleted": 1,
            "patientsMerged": 0,
            "billingAccountsOpened": 15,
            "activePatients": 14,
            "eventsByType": {"PatientRegistered": 15},
            "registrationsByDay": [{"date": "2024-01-10", "count": 3}],
            "paymentsByMethod": {"EUR": {"card": 2500}}
        })
    );
}

#[actix_web::test]
async fn an_internal_error_is_a_masked_500() {
    let app = api_app!(fakes(true), ready_health());
    let request = TestRequest::get()
        .uri("/api/analytics/summary")
        .insert_header(bearer(ADMIN_TOKEN))
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(500);
    assert_eq!(problem["type"], "https://ward.dev/problems/internal");
    assert!(!problem["detail"].as_str().unwrap().contains("secret"));
    assert!(!String::from_utf8_lossy(&reply.body).contains("locked"));
}

//! The event path: a registered patient gets exactly one billing account, and analytics counts it.

use std::time::Duration;

use serde_json::Value;

use crate::both_deployments;
use crate::helpers::{JOHN_DOE_ID, TestApp, Workdir, patient_body};

both_deployments!(a_new_patient_gets_an_account_and_is_counted);

const EVENT_WAIT: Duration = Duration::from_secs(20);

async fn a_new_patient_gets_an_account_and_is_counted(app: &TestApp) {
    // Arrange
    let token = app.demo_token().await;

    // Act
    let created: Value = app
        .post(
            &token,
            "/api/patients",
            &patient_body("Event Path", "event.path@example.com"),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();

    // Assert: the billing account appears, ACTIVE, for this patient.
    let account: Value = app
        .eventually(EVENT_WAIT, "the billing account", || async {
            let response = app
                .get(&token, &format!("/api/billing/accounts/{id}"))
                .await;
            if response.status() == 200 {
                response.json().await.ok()
            } else {
                None
            }
        })
        .await;
    assert_eq!(account["patientId"], id.as_str());
    assert_eq!(account["status"], "ACTIVE");
    assert!(account["id"].as_str().unwrap() != id);

    // The demo patients have accounts too.
    let john = app
        .get(&token, &format!("/api/billing/accounts/{JOHN_DOE_ID}"))
        .await;
    assert_eq!(john.status(), 200);

    // The summary counts 16 registrations and 16 accounts, each once.
    let summary: Value = app
        .eventually(EVENT_WAIT, "the summary to count 16", || async {
            let summary: Value = app
                .get(&token, "/api/analytics/summary")
                .await
                .json()
                .await
                .ok()?;
            let done =
                summary["patientsRegistered"] == 16 && summary["billingAccountsOpened"] == 16;
            done.then_some(summary)
        })
        .await;
    assert_eq!(summary["eventsByType"]["PatientRegistered"], 16);
    assert_eq!(summary["patientsDeleted"], 0);
    let by_day = summary["registrationsByDay"].as_array().unwrap();
    let total: u64 = by_day.iter().map(|d| d["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 16);
    assert!(by_day.iter().any(|d| d["date"] == "2024-03-01"));

    // A deletion is counted; the account of an unknown patient is 404.
    assert_eq!(
        app.delete(&token, &format!("/api/patients/{id}"))
            .await
            .status(),
        204
    );
    app.eventually(EVENT_WAIT, "the deletion to be counted", || async {
        let summary: Value = app
            .get(&token, "/api/analytics/summary")
            .await
            .json()
            .await
            .ok()?;
        (summary["patientsDeleted"] == 1).then_some(())
    })
    .await;
    let unknown = app
        .get(
            &token,
            "/api/billing/accounts/0190c0de-0000-7000-8000-000000000000",
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn restarting_with_demo_loads_nothing_twice() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    app.eventually(EVENT_WAIT, "15 accounts", || async {
        let summary: Value = app
            .get(&token, "/api/analytics/summary")
            .await
            .json()
            .await
            .ok()?;
        (summary["billingAccountsOpened"] == 15).then_some(())
    })
    .await;
    assert!(app.stop().success(), "a SIGTERM stop exits 0");

    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let page: Value = app.get(&token, "/api/patients").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 15);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let summary: Value = app
        .get(&token, "/api/analytics/summary")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["patientsRegistered"], 15);
    assert_eq!(summary["billingAccountsOpened"], 15);
}

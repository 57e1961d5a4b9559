//! Crash safety: kill -9 right after a batch of 201s; after a restart nothing acknowledged is
//! lost, each patient has exactly one account, and each is counted once.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, Workdir, patient_body};

const NUM_PATIENTS: usize = 40;

#[tokio::test]
async fn acknowledged_patients_survive_kill_9() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;

    // Act: a concurrent burst of creates, then SIGKILL the moment the last 201 arrives.
    let mut requests = Vec::new();
    for index in 0..NUM_PATIENTS {
        let client = app.client.clone();
        let url = app.url("/api/patients");
        let token = token.clone();
        requests.push(tokio::spawn(async move {
            let body = patient_body(
                &format!("Crash {index}"),
                &format!("crash{index}@example.com"),
            );
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let created: Value = response.json().await.unwrap();
            created["id"].as_str().unwrap().to_string()
        }));
    }
    let mut acknowledged = Vec::new();
    for request in requests {
        acknowledged.push(request.await.unwrap());
    }
    app.kill_hard();

    // Assert: after a restart, every acknowledged patient is there...
    let app = TestApp::spawn(&dir.path, &[]).await;
    let token = app.demo_token().await;
    for id in &acknowledged {
        let response = app.get(&token, &format!("/api/patients/{id}")).await;
        assert_eq!(
            response.status(),
            200,
            "patient {id} was acknowledged and lost"
        );
    }
    // ...each with exactly one billing account...
    for id in &acknowledged {
        app.eventually(Duration::from_secs(30), "a billing account", || async {
            let response = app
                .get(&token, &format!("/api/billing/accounts/{id}"))
                .await;
            (response.status() == 200).then_some(())
        })
        .await;
    }
    // ...and the summary counts each once, now and after the consumers have settled.
    let expected = (15 + NUM_PATIENTS) as u64;
    app.eventually(Duration::from_secs(30), "the summary to settle", || async {
        let summary: Value = app
            .get(&token, "/api/analytics/summary")
            .await
            .json()
            .await
            .ok()?;
        (summary["patientsRegistered"] == expected && summary["billingAccountsOpened"] == expected)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let summary: Value = app
        .get(&token, "/api/analytics/summary")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["patientsRegistered"], expected);
    assert_eq!(summary["billingAccountsOpened"], expected);
    assert_eq!(summary["eventsByType"]["BillingAccountOpened"], expected);
}

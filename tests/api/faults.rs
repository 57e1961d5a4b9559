//! Faults in the split deployment: the broker down, a module down, a process killed. The
//! assertions are counts: nothing acknowledged is lost and nothing is counted twice.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::helpers::{TestApp, patient_body};

const SETTLE: Duration = Duration::from_secs(60);
const NUM_DEMO: u64 = 15;

async fn create_patients(app: &TestApp, token: &str, tag: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for index in 0..count {
        let body = patient_body(
            &format!("{tag} {index}"),
            &format!("{tag}{index}@example.com"),
        );
        let response = app.post(token, "/api/patients", &body).await;
        assert_eq!(response.status(), 201, "create {tag} {index}");
        let created: Value = response.json().await.unwrap();
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Every patient id the API lists, page by page.
async fn all_patient_ids(app: &TestApp, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor_opt: Option<String> = None;
    loop {
        let path = match &cursor_opt {
            Some(cursor) => format!("/api/patients?limit=500&cursor={cursor}"),
            None => "/api/patients?limit=500".to_string(),
        };
        let response = app.get(token, &path).await;
        let status = response.status();
        let page: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => cursor_opt = Some(cursor.to_string()),
            None => return ids,
        }
    }
}

/// Waits until the summary counts `expected` registrations and accounts, then checks it stays so.
async fn assert_counted_once(app: &TestApp, token: &str, expected: u64) {
    app.eventually(
        SETTLE,
        &format!("the summary to count {expected}"),
        || async {
            let summary: Value = app
                .get(token, "/api/analytics/summary")
                .await
                .json()
                .await
                .ok()?;
            let registered = summary["patientsRegistered"].as_u64()?;
            let opened = summary["billingAccountsOpened"].as_u64()?;
            assert!(
                registered <= expected && opened <= expected,
                "counted twice: {summary}"
            );
            (registered == expected && opened == expected).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary: Value = app
        .get(token, "/api/analytics/summary")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["patientsRegistered"], expected, "{summary}");
    assert_eq!(summary["billingAccountsOpened"], expected, "{summary}");
    assert_eq!(
        summary["eventsByType"]["PatientRegistered"], expected,
        "{summary}"
    );
}

async fn assert_one_account_each(app: &TestApp, token: &str, ids: &[String]) {
    for id in ids {
        let account: Value = app
            .eventually(SETTLE, "a billing account", || async {
                let response = app.get(token, &format!("/api/billing/accounts/{id}")).await;
                if response.status() == 200 {
                    response.json().await.ok()
                } else {
                    None
                }
            })
            .await;
        assert_eq!(account["patientId"], id.as_str());
    }
}

#[tokio::test]
async fn a_broker_outage_delays_events_and_loses_none() {
    // Arrange
    let mut cluster = Cluster::start().await;
    let token = cluster.gateway().demo_token().await;
    let before = create_patients(cluster.gateway(), &token, "before", 5).await;

    // Act: the broker goes away while patients are registered; every create still answers 201.
    cluster.broker.stop();
    let during = create_patients(cluster.gateway(), &token, "during", 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.broker.restart();

    // Assert: every event arrives, each counted exactly once.
    let app = cluster.gateway();
    assert_counted_once(app, &token, NUM_DEMO + 15).await;
    assert_one_account_each(app, &token, &[before, during].concat()).await;
}

#[tokio::test]
async fn a_billing_outage_never_blocks_registration() {
    // Arrange
    let mut cluster = Cluster::start().await;
    let token = cluster.gateway().demo_token().await;

    // Act: billing is down while patients are registered.
    cluster.stop_node("billing");
    let ids = create_patients(cluster.gateway(), &token, "nobilling", 8).await;
    let unavailable = cluster
        .gateway()
        .get(&token, &format!("/api/billing/accounts/{}", ids[0]))
        .await;
    assert_eq!(
        unavailable.status(),
        503,
        "billing's absence is a clear 503"
    );
    cluster.start_node("billing").await;

    // Assert: each new patient gets exactly one account once billing is back.
    let app = cluster.gateway();
    assert_one_account_each(app, &token, &ids).await;
    assert_counted_once(app, &token, NUM_DEMO + 8).await;
}

#[tokio::test]
async fn killing_a_patients_process_loses_no_acknowledged_patient() {
    // Arrange
    let mut cluster = Cluster::start().await;
    let token = cluster.gateway().demo_token().await;

    // Act: a burst of creates; the first patients process is killed with SIGKILL in the middle.
    let mut requests = Vec::new();
    for index in 0..40 {
        let client = cluster.gateway().client.clone();
        let url = cluster.gateway().url("/api/patients");
        let token = token.clone();
        requests.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(25 * index)).await;
            let body = patient_body(
                &format!("Burst {index}"),
                &format!("burst{index}@example.com"),
            );
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .ok()?;
            if response.status() != 201 {
                return None;
            }
            let created: Value = response.json().await.ok()?;
            Some(created["id"].as_str()?.to_string())
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.kill_node("patients");
    let mut acknowledged = Vec::new();
    for request in requests {
        if let Some(id) = request.await.unwrap() {
            acknowledged.push(id);
        }
    }
    assert!(!acknowledged.is_empty(), "some creates were acknowledged");
    cluster.start_node("patients").await;

    // Assert: every acknowledged patient exists; every stored patient has one account and is
    // counted once (a create cut off after its commit may exist without an acknowledgement).
    let app = cluster.gateway();
    let stored = all_patient_ids(app, &token).await;
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged patient {id} was lost");
    }
    assert_one_account_each(app, &token, &acknowledged).await;
    assert_counted_once(app, &token, stored.len() as u64).await;
}

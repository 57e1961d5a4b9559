//! Merging a duplicate patient through the real binary, all-in-one and split (gRPC to the
//! patients role, Kafka to billing): the duplicate answers with a pointer to the record that
//! stayed, its identifiers move, billing marks its account merged; an unmerge undoes it all.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_deployments;
use crate::fhir::{fhir_document, keep_for_validation};
use crate::helpers::{TestApp, json_of, patient_body};

both_deployments!(a_duplicate_is_merged_and_unmerged);

const EVENT_WAIT: Duration = Duration::from_secs(20);
const INSURER: &str = "https://insurer.example/members";

async fn register(app: &TestApp, token: &str, name: &str, email: &str, value: &str) -> Value {
    let mut body = patient_body(name, email);
    body["identifiers"] = json!([{"system": INSURER, "value": value}]);
    json_of(app.post(token, "/api/patients", &body).await, 201).await
}

async fn account_status(app: &TestApp, token: &str, id: &str, expected: &str) {
    let path = format!("/api/billing/accounts/{id}");
    app.eventually(EVENT_WAIT, &format!("account {expected}"), || async {
        let response = app.get(token, &path).await;
        if response.status() != 200 {
            return None;
        }
        let account: Value = response.json().await.ok()?;
        (account["status"] == expected).then_some(())
    })
    .await;
}

async fn post_json(
    app: &TestApp,
    token: &str,
    path: &str,
    body: Value,
    if_match: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("if-match", if_match)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn a_duplicate_is_merged_and_unmerged(app: &TestApp) {
    // Arrange: the record that stays and a duplicate, each with its billing account.
    let token = app.demo_token().await;
    let target = register(
        app,
        &token,
        "Katherine Johnson",
        "kj.merge@example.com",
        "K-1",
    )
    .await;
    let source = register(
        app,
        &token,
        "Katharine Johnson",
        "kj2.merge@example.com",
        "K-2",
    )
    .await;
    let target_id = target["id"].as_str().unwrap();
    let source_id = source["id"].as_str().unwrap();
    account_status(app, &token, source_id, "ACTIVE").await;

    // Act: merge, conditional on the target's version.
    let merge_path = format!("/api/patients/{target_id}/merge");
    let stale = post_json(
        app,
        &token,
        &merge_path,
        json!({"source": source_id}),
        "W/\"7\"",
    )
    .await;
    let merged = post_json(
        app,
        &token,
        &merge_path,
        json!({"source": source_id}),
        "W/\"1\"",
    )
    .await;

    // Assert: a stale version is a 412 and changes nothing; the merge answers the target.
    assert_eq!(stale.status(), 412);
    assert_eq!(merged.headers()["etag"], "W/\"2\"");
    let merged = json_of(merged, 200).await;
    let values: Vec<&str> = merged["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|identifier| identifier["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["K-1", "K-2", source["mrn"].as_str().unwrap()]);

    // The duplicate points at the target (REST and FHIR), refuses changes, leaves searches.
    let duplicate = json_of(
        app.get(&token, &format!("/api/patients/{source_id}")).await,
        200,
    )
    .await;
    assert_eq!(duplicate["mergedInto"], target_id);
    let fhir = app
        .client
        .get(app.url(&format!("/fhir/Patient/{source_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let fhir = fhir_document(fhir, 200).await;
    keep_for_validation("patient-merged-duplicate", &fhir);
    assert_eq!(fhir["active"], false);
    assert_eq!(fhir["link"][0]["type"], "replaced-by");
    assert_eq!(
        fhir["link"][0]["other"]["reference"],
        format!("Patient/{target_id}")
    );
    let change = app
        .put(
            &token,
            &format!("/api/patients/{source_id}"),
            &patient_body("Katharine J.", "kj2.merge@example.com"),
        )
        .await;
    let conflict = json_of(change, 409).await;
    assert!(
        conflict["detail"].as_str().unwrap().contains(target_id),
        "{conflict}"
    );
    let search = json_of(app.get(&token, "/api/patients?name=Kath").await, 200).await;
    let found: Vec<&str> = search["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|patient| patient["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, [target_id]);
    // The old record number leads to the record that stayed.
    let by_old_mrn = json_of(
        app.get(
            &token,
            &format!(
                "/api/patients?identifier={}",
                source["mrn"].as_str().unwrap()
            ),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(by_old_mrn["items"][0]["id"], target_id);
    // Billing heard of it.
    account_status(app, &token, source_id, "MERGED").await;

    // Analytics counts the merge.
    app.eventually(EVENT_WAIT, "the merge counted", || async {
        let summary: Value = app
            .get(&token, "/api/analytics/summary")
            .await
            .json()
            .await
            .ok()?;
        (summary["patientsMerged"] == 1).then_some(())
    })
    .await;

    // Malformed merges are 400s naming the field; merging into itself too.
    let missing = app.post(&token, &merge_path, &json!({})).await;
    assert_eq!(json_of(missing, 400).await["errors"][0]["field"], "source");
    let itself = app
        .post(&token, &merge_path, &json!({"source": target_id}))
        .await;
    assert_eq!(json_of(itself, 400).await["errors"][0]["field"], "source");

    // Unmerge: both records are patients of their own again; billing reopens the account.
    let unmerge_path = format!("/api/patients/{target_id}/unmerge");
    let both = json_of(
        app.post(&token, &unmerge_path, &json!({"source": source_id}))
            .await,
        200,
    )
    .await;
    assert_eq!(
        both["target"]["identifiers"],
        json!([{"system": INSURER, "value": "K-1"}])
    );
    assert_eq!(
        both["source"]["identifiers"],
        json!([{"system": INSURER, "value": "K-2"}])
    );
    assert!(both["source"].get("mergedInto").is_none(), "{both}");
    account_status(app, &token, source_id, "ACTIVE").await;
    app.eventually(EVENT_WAIT, "the unmerge counted", || async {
        let summary: Value = app
            .get(&token, "/api/analytics/summary")
            .await
            .json()
            .await
            .ok()?;
        (summary["patientsMerged"] == 0).then_some(())
    })
    .await;
    let again = app
        .post(&token, &unmerge_path, &json!({"source": source_id}))
        .await;
    assert_eq!(again.status(), 409);
    let history = json_of(
        app.get(&token, &format!("/api/patients/{source_id}/history"))
            .await,
        200,
    )
    .await;
    let actions: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["unmerged", "merged", "create"]);
    let fhir_history = app
        .client
        .get(app.url(&format!("/fhir/Patient/{source_id}/_history")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let fhir_history = fhir_document(fhir_history, 200).await;
    keep_for_validation("bundle-history-merged", &fhir_history);
    assert_eq!(fhir_history["total"], 3);
}

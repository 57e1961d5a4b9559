//! Further identifiers through the real binary: REST create, read, search, update and merge
//! patch; a 409 for an identifier another patient holds; a 400 naming each malformed one; and
//! the same identifiers as FHIR `Patient.identifier`, searchable with FHIR's token syntax.

use serde_json::{Value, json};

use crate::fhir::{fhir_document, keep_for_validation, send_fhir};
use crate::helpers::{TestApp, Workdir, json_of, patient_body};

const INSURER: &str = "https://insurer.example/members";
const NATIONAL: &str = "urn:oid:2.16.840.1.113883.2.4.6.3";

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|patient| patient["id"].as_str().unwrap().to_string())
        .collect()
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn identifiers_are_kept_unique_searchable_and_replaceable_over_rest() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let mut body = patient_body("Ada Lovelace", "ada.ids@example.com");
    body["identifiers"] = json!([
        {"system": NATIONAL, "value": " 738472983 "},
        {"system": INSURER, "value": "A-1"}
    ]);

    // Act: create, then a second patient claiming one of the identifiers.
    let ada = json_of(app.post(&token, "/api/patients", &body).await, 201).await;
    let mut bob_body = patient_body("Bob Claimant", "bob.ids@example.com");
    bob_body["identifiers"] = json!([{"system": NATIONAL, "value": "738472983"}]);
    let conflict = app.post(&token, "/api/patients", &bob_body).await;

    // Assert: trimmed and sorted; the claim is a 409 problem naming the identifier.
    assert_eq!(
        ada["identifiers"],
        json!([
            {"system": INSURER, "value": "A-1"},
            {"system": NATIONAL, "value": "738472983"}
        ])
    );
    assert_eq!(conflict.status(), 409);
    let problem: Value = conflict.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("738472983"),
        "{problem}"
    );

    let id = ada["id"].as_str().unwrap();
    let by_pair = app
        .get(
            &token,
            &format!("/api/patients?identifier={NATIONAL}%7C738472983"),
        )
        .await;
    assert_eq!(ids(&json_of(by_pair, 200).await), [id]);
    let by_value = app.get(&token, "/api/patients?identifier=A-1").await;
    assert_eq!(ids(&json_of(by_value, 200).await), [id]);
    let by_mrn = app
        .get(
            &token,
            &format!(
                "/api/patients?identifier=urn:ward:mrn%7C{}",
                ada["mrn"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(ids(&json_of(by_mrn, 200).await), [id]);

    // A PUT without `identifiers` keeps them (reference clients do not know the field)...
    let path = format!("/api/patients/{id}");
    let kept = json_of(
        app.put(
            &token,
            &path,
            &patient_body("Ada King", "ada.ids@example.com"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(kept["identifiers"], ada["identifiers"]);
    // ...a merge patch replaces the list, and `null` removes them all.
    let patch = |patch: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&token)
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string())
            .send()
    };
    let replaced = json_of(
        patch(json!({"identifiers": [{"system": INSURER, "value": "A-2"}]}))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        replaced["identifiers"],
        json!([{"system": INSURER, "value": "A-2"}])
    );
    let cleared = json_of(patch(json!({"identifiers": null})).await.unwrap(), 200).await;
    assert_eq!(cleared["identifiers"], json!([]));
    // Freed: Bob may now take the national number.
    let bob = app.post(&token, "/api/patients", &bob_body).await;
    assert_eq!(bob.status(), 201);
}

#[tokio::test]
async fn malformed_identifiers_are_each_named() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let mut body = patient_body("Ada Lovelace", "ada.bad@example.com");
    body["identifiers"] = json!([
        {"system": "not a uri", "value": "1"},
        {"system": "urn:ward:mrn", "value": "MRN-1"},
        {"system": INSURER},
        {"system": INSURER, "value": "X", "use": "official"},
        7
    ]);

    let response = app.post(&token, "/api/patients", &body).await;

    let problem = json_of(response, 400).await;
    let mut named = fields(&problem);
    named.sort();
    assert_eq!(
        named,
        [
            "identifiers[0].system",
            "identifiers[1].system",
            "identifiers[2].value",
            "identifiers[3].use",
            "identifiers[4]",
        ],
        "{problem}"
    );
    let mut not_a_list = patient_body("Ada", "ada.bad2@example.com");
    not_a_list["identifiers"] = json!("A-1");
    let not_a_list = app.post(&token, "/api/patients", &not_a_list).await;
    assert_eq!(fields(&json_of(not_a_list, 400).await), ["identifiers"]);
}

#[tokio::test]
async fn a_fhir_client_sees_and_finds_further_identifiers() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let resource = json!({
        "resourceType": "Patient",
        "identifier": [
            {"use": "official", "system": NATIONAL, "value": "123456789"}
        ],
        "name": [{"given": ["Grace"], "family": "Hopper"}],
        "telecom": [{"system": "email", "value": "grace.ids@example.com"}],
        "address": [{"text": "1 Navy Way"}],
        "birthDate": "1906-12-09"
    });

    let created = fhir_document(
        send_fhir(
            &app,
            reqwest::Method::POST,
            &token,
            "/fhir/Patient",
            &resource,
        )
        .await,
        201,
    )
    .await;
    keep_for_validation("patient-created-with-identifier", &created);

    let identifiers = created["identifier"].as_array().unwrap();
    assert_eq!(identifiers[0]["system"], "urn:ward:mrn");
    // Kept as sent, `use` included.
    assert_eq!(identifiers[1], resource["identifier"][0]);
    let id = created["id"].as_str().unwrap();
    let search = app
        .client
        .get(app.url(&format!("/fhir/Patient?identifier={NATIONAL}%7C123456789")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let bundle = fhir_document(search, 200).await;
    keep_for_validation("bundle-by-identifier", &bundle);
    assert_eq!(bundle["entry"][0]["resource"]["id"], id);
    // The REST view shows the same identifier.
    let rest = json_of(app.get(&token, &format!("/api/patients/{id}")).await, 200).await;
    assert_eq!(
        rest["identifiers"],
        json!([{"system": NATIONAL, "value": "123456789"}])
    );

    // A FHIR update replaces the resource: without the identifier, it is gone.
    let mut replacement = created.clone();
    replacement["identifier"] = json!([identifiers[0]]);
    let updated = fhir_document(
        send_fhir(
            &app,
            reqwest::Method::PUT,
            &token,
            &format!("/fhir/Patient/{id}"),
            &replacement,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["identifier"].as_array().unwrap().len(), 1);
}

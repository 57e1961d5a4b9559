//! The FHIR R4 Patient endpoints through the real binary.
//!
//! When `WARD_FHIR_OUT` names a folder, every FHIR document received is written there, so that
//! CI can check them with an independent validator (`tests/fhir/validate.py`).

use std::path::PathBuf;

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, Workdir};

pub(crate) const FHIR_JSON: &str = "application/fhir+json";

/// Writes `document` to `$WARD_FHIR_OUT/<name>.json` when the variable is set.
pub(crate) fn keep_for_validation(name: &str, document: &Value) {
    let Some(raw_folder) = std::env::var_os("WARD_FHIR_OUT") else {
        return;
    };
    let folder = PathBuf::from(raw_folder);
    std::fs::create_dir_all(&folder).unwrap();
    let text = serde_json::to_string_pretty(document).unwrap();
    std::fs::write(folder.join(format!("{name}.json")), text).unwrap();
}

/// Reads a FHIR answer with `status`, checking its media type.
pub(crate) async fn fhir_document(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(actual, status, "{body}");
    assert_eq!(content_type, FHIR_JSON);
    body
}

pub(crate) async fn send_fhir(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: &Value,
) -> Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json; fhirVersion=4.0")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

pub(crate) fn expressions(outcome: &Value) -> Vec<String> {
    let mut expressions = Vec::new();
    for issue in outcome["issue"].as_array().unwrap() {
        if let Some(expression) = issue["expression"][0].as_str() {
            expressions.push(expression.to_string());
        }
    }
    expressions
}

pub(crate) fn ada() -> Value {
    json!({
        "resourceType": "Patient",
        "active": true,
        "gender": "female",
        "name": [{"use": "official", "family": "Lovelace", "given": ["Ada"]}],
        "telecom": [{"system": "email", "value": "ada.fhir@example.com"}],
        "address": [{"line": ["12 St James Sq"], "city": "London", "postalCode": "SW1Y 4JH"}],
        "birthDate": "1815-12-10"
    })
}

#[tokio::test]
async fn metadata_is_served_without_a_token() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;

    let response = app
        .client
        .get(app.url("/fhir/metadata"))
        .send()
        .await
        .unwrap();

    let statement = fhir_document(response, 200).await;
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");
    keep_for_validation("capability-statement", &statement);
}

#[tokio::test]
async fn a_fhir_client_creates_reads_updates_and_pages_patients() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;

    // Act: create
    let response = send_fhir(&app, reqwest::Method::POST, &token, "/fhir/Patient", &ada()).await;
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created = fhir_document(response, 201).await;
    keep_for_validation("patient-created", &created);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/fhir/Patient/{id}/_history/1"));
    // Kept as written: Ward's name for her is the same.
    assert_eq!(created["name"], ada()["name"]);

    // Act: read, through FHIR and the REST API
    let read = fhir_document(app.get(&token, &format!("/fhir/Patient/{id}")).await, 200).await;
    keep_for_validation("patient-read", &read);
    assert_eq!(read, created);
    let rest: Value = app
        .get(&token, &format!("/api/patients/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["address"], "12 St James Sq, London, SW1Y 4JH");

    // Act: update with If-Match, then again with the stale tag
    let mut edited = read.clone();
    edited["name"] = json!([{"text": "Augusta Ada King"}]);
    let path = format!("/fhir/Patient/{id}");
    let update = |if_match: &'static str| {
        let request = app
            .client
            .put(app.url(&path))
            .bearer_auth(&token)
            .header("content-type", FHIR_JSON)
            .header("if-match", if_match)
            .body(edited.to_string());
        async move { request.send().await.unwrap() }
    };
    let updated_response = update(r#"W/"1""#).await;
    assert_eq!(updated_response.headers()["etag"], r#"W/"2""#);
    let updated = fhir_document(updated_response, 200).await;
    keep_for_validation("patient-updated", &updated);
    assert_eq!(updated["name"], json!([{"text": "Augusta Ada King"}]));
    let stale = fhir_document(update(r#"W/"1""#).await, 412).await;
    keep_for_validation("outcome-412", &stale);
    assert_eq!(stale["issue"][0]["code"], "conflict");

    // Act: the first version is still readable
    let first = fhir_document(app.get(&token, &format!("{path}/_history/1")).await, 200).await;
    keep_for_validation("patient-version-1", &first);
    assert_eq!(first["name"], ada()["name"]);

    // Act: page through every patient
    let mut next_opt = Some("/fhir/Patient?_count=7".to_string());
    let mut ids = Vec::new();
    let mut num_pages = 0;
    while let Some(next) = next_opt {
        let bundle = fhir_document(app.get(&token, &next).await, 200).await;
        num_pages += 1;
        keep_for_validation(&format!("bundle-page-{num_pages}"), &bundle);
        assert_eq!(bundle["type"], "searchset");
        for entry in bundle["entry"].as_array().unwrap() {
            assert_eq!(entry["search"]["mode"], "match");
            ids.push(entry["resource"]["id"].as_str().unwrap().to_string());
        }
        next_opt = None;
        for link in bundle["link"].as_array().unwrap() {
            if link["relation"] == "next" {
                let url = link["url"].as_str().unwrap();
                next_opt = Some(url[url.find("/fhir/").unwrap()..].to_string());
            }
        }
    }

    // Assert: the 15 demo patients and Ada, each once, over three pages
    assert_eq!(ids.len(), 16);
    assert_eq!(num_pages, 3);
    assert!(ids.contains(&id));
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[tokio::test]
async fn failures_are_operation_outcomes() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;

    let no_token = app
        .client
        .get(app.url("/fhir/Patient"))
        .send()
        .await
        .unwrap();
    let unauthenticated = fhir_document(no_token, 401).await;
    keep_for_validation("outcome-401", &unauthenticated);
    assert_eq!(unauthenticated["issue"][0]["code"], "login");

    let missing = "/fhir/Patient/0190c5b2-7d4e-7cc1-9a51-3f0a8c2d9e11";
    let not_found = fhir_document(app.get(&token, missing).await, 404).await;
    keep_for_validation("outcome-404", &not_found);
    assert_eq!(not_found["issue"][0]["code"], "not-found");

    let unknown_parameter = app.get(&token, "/fhir/Patient?gender=female").await;
    let bad_search = fhir_document(unknown_parameter, 400).await;
    keep_for_validation("outcome-400-search", &bad_search);
    let diagnostics = bad_search["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("gender"), "{diagnostics}");

    // Ward keeps what it does not model verbatim, so the size of what it keeps is bounded.
    let mut oversized = ada();
    let narrative = format!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>",
        "a".repeat(70 * 1024)
    );
    oversized["text"] = json!({"status": "generated", "div": narrative});
    let oversized_response = send_fhir(
        &app,
        reqwest::Method::POST,
        &token,
        "/fhir/Patient",
        &oversized,
    );
    let too_large = fhir_document(oversized_response.await, 413).await;
    keep_for_validation("outcome-413", &too_large);
    assert_eq!(too_large["issue"][0]["code"], "too-long");
}

/// The names in a search Bundle, in order.
fn bundle_names(bundle: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for entry in bundle["entry"].as_array().unwrap() {
        names.push(
            entry["resource"]["name"][0]["text"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    names
}

/// The path of the Bundle's `next` link, if any.
fn next_path(bundle: &Value) -> Option<String> {
    for link in bundle["link"].as_array().unwrap() {
        if link["relation"] == "next" {
            let url = link["url"].as_str().unwrap();
            return Some(url[url.find("/fhir/").unwrap()..].to_string());
        }
    }
    None
}

/// Runs a search expecting 200, keeping the Bundle for validation under `name`.
async fn search(app: &TestApp, token: &str, query: &str, name: &str) -> Value {
    let response = app.get(token, &format!("/fhir/Patient?{query}")).await;
    let bundle = fhir_document(response, 200).await;
    keep_for_validation(name, &bundle);
    assert_eq!(bundle["type"], "searchset");
    bundle
}

#[tokio::test]
async fn a_fhir_search_filters_by_name_birthdate_and_identifier_and_pages_with_its_filters() {
    // Arrange: two patients with a rare name, born before any demo patient
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let mut mrns = Vec::new();
    for (name, email, birth) in [
        (
            "Zéphyrine Quillfeather",
            "zq.fhir@example.com",
            "1961-02-03",
        ),
        ("Anselm Quillby", "aq.fhir@example.com", "1962-04-05"),
    ] {
        let mut body = ada();
        body["name"] = json!([{"text": name}]);
        body["telecom"] = json!([{"system": "email", "value": email}]);
        body["birthDate"] = json!(birth);
        let response = send_fhir(&app, reqwest::Method::POST, &token, "/fhir/Patient", &body);
        let created = fhir_document(response.await, 201).await;
        assert_eq!(created["identifier"][0]["system"], "urn:ward:mrn");
        mrns.push(
            created["identifier"][0]["value"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    // Act + Assert: word prefixes, any case, any accent
    let quill = search(&app, &token, "name=QUILL", "bundle-search-name").await;
    assert_eq!(
        bundle_names(&quill),
        ["Zéphyrine Quillfeather", "Anselm Quillby"]
    );
    let both_words = search(&app, &token, "name=zeph%20quill", "bundle-search-words").await;
    assert_eq!(bundle_names(&both_words), ["Zéphyrine Quillfeather"]);

    // A birth date range among the demo patients; gt and lt exclude the days named
    let range = search(
        &app,
        &token,
        "birthdate=gt1990-09-23&birthdate=le1992-04-18&_sort=birthdate",
        "bundle-search-birthdate",
    )
    .await;
    assert_eq!(bundle_names(&range), ["Sophia Clark", "Sarah Taylor"]);

    // The MRN, with and without its system
    let by_system = search(
        &app,
        &token,
        &format!("identifier=urn:ward:mrn%7C{}", mrns[1]),
        "bundle-search-identifier",
    )
    .await;
    assert_eq!(bundle_names(&by_system), ["Anselm Quillby"]);
    assert_eq!(
        by_system["entry"][0]["resource"]["identifier"][0]["value"],
        mrns[1].as_str()
    );
    let bare = search(
        &app,
        &token,
        &format!("identifier={}", mrns[0]),
        "bundle-search-mrn",
    )
    .await;
    assert_eq!(bundle_names(&bare), ["Zéphyrine Quillfeather"]);
    // Another system is a further identifier that nobody holds here: an empty page.
    let other_system = app
        .get(&token, "/fhir/Patient?identifier=urn:oid:1.2.3%7C42")
        .await;
    let empty = fhir_document(other_system, 200).await;
    keep_for_validation("bundle-search-other-system", &empty);
    assert!(bundle_names(&empty).is_empty());

    // Paging the 1980s by birth date, two at a time, with the total on every page
    let mut next_opt = Some(
        "/fhir/Patient?birthdate=ge1980-01-01&birthdate=le1989-12-31&_sort=birthdate&_count=2\
         &_total=accurate"
            .to_string(),
    );
    let mut names = Vec::new();
    let mut num_pages = 0;
    while let Some(next) = next_opt {
        let bundle = fhir_document(app.get(&token, &next).await, 200).await;
        num_pages += 1;
        keep_for_validation(&format!("bundle-search-page-{num_pages}"), &bundle);
        assert_eq!(bundle["total"], 7, "page {num_pages}");
        names.extend(bundle_names(&bundle));
        next_opt = next_path(&bundle);
        if let Some(path) = &next_opt {
            for parameter in [
                "birthdate=ge1980-01-01",
                "birthdate=le1989-12-31",
                "_sort=birthdate",
            ] {
                assert!(path.contains(parameter), "{parameter} in {path}");
            }
        }
    }
    assert_eq!(num_pages, 4);
    assert_eq!(
        names,
        [
            "Emma Moore",
            "Bob Brown",
            "Ethan Martinez",
            "John Doe",
            "Isabella Walker",
            "Michael Green",
            "Laura White",
        ]
    );
}

#[tokio::test]
async fn an_update_may_send_the_mrn_back_but_not_change_it() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let response = send_fhir(&app, reqwest::Method::POST, &token, "/fhir/Patient", &ada()).await;
    let created = fhir_document(response, 201).await;
    let path = format!("/fhir/Patient/{}", created["id"].as_str().unwrap());

    let mut edited = created.clone();
    edited["birthDate"] = json!("1815-12-11");
    let unchanged = send_fhir(&app, reqwest::Method::PUT, &token, &path, &edited);
    let updated = fhir_document(unchanged.await, 200).await;
    edited["identifier"][0]["value"] = json!("MRN-99999999");
    let changed = send_fhir(&app, reqwest::Method::PUT, &token, &path, &edited);
    let refused = fhir_document(changed.await, 400).await;

    keep_for_validation("patient-updated-with-mrn", &updated);
    keep_for_validation("outcome-400-mrn", &refused);
    assert_eq!(updated["identifier"], created["identifier"]);
    assert_eq!(updated["birthDate"], "1815-12-11");
    assert_eq!(expressions(&refused), ["Patient.identifier"]);
}

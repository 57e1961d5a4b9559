//! The 22 official FHIR R4 example patients (package hl7.fhir.r4.examples 4.0.1, CC0, in
//! `tests/fhir/examples`) through the real binary: Ward keeps every element it does not model,
//! so a client reads back what it wrote (issue 5), and refuses only what lacks a name or a
//! birth date, which it requires.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::fhir::{expressions, fhir_document, keep_for_validation, send_fhir};
use crate::helpers::{TestApp, Workdir, json_of};

/// The examples with a name and a birth date: each loads.
const LOADABLE: [&str; 15] = [
    "animal",
    "ch-example",
    "example",
    "f001",
    "f201",
    "genetics-example1",
    "glossy",
    "infant-mom",
    "infant-twin-1",
    "infant-twin-2",
    "mom",
    "pat3",
    "pat4",
    "xcda",
    "xds",
];

/// `mom` is the same person as `genetics-example1` (same US SSN), which Ward keeps unique to
/// one patient; it is loaded into a server of its own.
const SAME_PERSON_AS_ANOTHER: &str = "mom";

pub(crate) fn official_example(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fhir/examples")
        .join(format!("Patient-{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `resource` without what Ward sets itself: `id`, `meta` and the MRN identifier.
pub(crate) fn as_published(resource: &Value) -> Value {
    let mut published = resource.clone();
    let object = published.as_object_mut().unwrap();
    object.remove("id");
    object.remove("meta");
    if let Some(Value::Array(identifiers)) = object.get_mut("identifier") {
        identifiers.retain(|identifier| identifier["system"] != "urn:ward:mrn");
        if identifiers.is_empty() {
            object.remove("identifier");
        }
    }
    published
}

/// Percent-encodes a query parameter value (every byte but unreserved ASCII).
fn query_value(raw: &str) -> String {
    let mut encoded = String::new();
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The ids of a search Bundle's entries.
fn bundle_ids(bundle: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    for entry in bundle["entry"].as_array().into_iter().flatten() {
        ids.push(entry["resource"]["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Creates the example `name`, reads it back, and finds it by name and by each identifier
/// Ward indexes; returns its id.
async fn load_and_find(app: &TestApp, token: &str, name: &str) -> String {
    let published = official_example(name);
    let response = send_fhir(
        app,
        reqwest::Method::POST,
        token,
        "/fhir/Patient",
        &published,
    );
    let created = fhir_document(response.await, 201).await;
    keep_for_validation(&format!("example-created-{name}"), &created);
    let id = created["id"].as_str().unwrap().to_string();
    let read = fhir_document(app.get(token, &format!("/fhir/Patient/{id}")).await, 200).await;
    keep_for_validation(&format!("example-read-{name}"), &read);
    assert_eq!(read, created, "{name}");
    assert_eq!(as_published(&read), as_published(&published), "{name}");

    let rest = json_of(app.get(token, &format!("/api/patients/{id}")).await, 200).await;
    let by_name = format!(
        "/fhir/Patient?name={}",
        query_value(rest["name"].as_str().unwrap())
    );
    let found = fhir_document(app.get(token, &by_name).await, 200).await;
    keep_for_validation(&format!("example-search-name-{name}"), &found);
    assert!(bundle_ids(&found).contains(&id), "{name} by name: {found}");
    for identifier in published["identifier"].as_array().into_iter().flatten() {
        let (Some(system), Some(value)) =
            (identifier["system"].as_str(), identifier["value"].as_str())
        else {
            continue;
        };
        let token_param = query_value(&format!("{system}|{value}"));
        let by_identifier = format!("/fhir/Patient?identifier={token_param}");
        let found = fhir_document(app.get(token, &by_identifier).await, 200).await;
        assert_eq!(
            bundle_ids(&found),
            std::slice::from_ref(&id),
            "{name} by {system}|{value}"
        );
    }
    id
}

#[tokio::test]
async fn every_official_example_with_a_name_and_a_birth_date_loads_and_reads_back_as_published() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let other_dir = Workdir::new();
    let other_app = TestApp::spawn(&other_dir.path, &["--demo"]).await;
    let other_token = other_app.demo_token().await;

    // Act and assert, example by example
    for name in LOADABLE {
        if name == SAME_PERSON_AS_ANOTHER {
            load_and_find(&other_app, &other_token, name).await;
        } else {
            load_and_find(&app, &token, name).await;
        }
    }

    // Assert: the REST API shows a patient without an email or an address as null
    let infant_search = app.get(&token, "/fhir/Patient?name=Jaina").await;
    let found = fhir_document(infant_search, 200).await;
    let id = &bundle_ids(&found)[0];
    let rest = json_of(app.get(&token, &format!("/api/patients/{id}")).await, 200).await;
    assert_eq!(rest["email"], Value::Null);
    assert_eq!(rest["address"], Value::Null);
    assert_eq!(rest["name"], "Jaina Solo");
}

#[tokio::test]
async fn official_examples_without_a_name_or_a_birth_date_are_refused_naming_it() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let cases = [
        ("dicom", vec!["Patient.birthDate"]),
        ("ihe-pcd", vec!["Patient.birthDate"]),
        ("infant-fetal", vec!["Patient.name", "Patient.birthDate"]),
        ("newborn", vec!["Patient.name"]),
        ("pat1", vec!["Patient.birthDate"]),
        ("pat2", vec!["Patient.birthDate"]),
        ("proband", vec!["Patient.name"]),
    ];
    for (name, missing) in cases {
        let example = official_example(name);
        let response = send_fhir(
            &app,
            reqwest::Method::POST,
            &token,
            "/fhir/Patient",
            &example,
        );
        let refusal = fhir_document(response.await, 400).await;
        keep_for_validation(&format!("outcome-400-example-{name}"), &refusal);
        assert_eq!(expressions(&refusal), missing, "{name}");
        for issue in refusal["issue"].as_array().unwrap() {
            let diagnostics = issue["diagnostics"].as_str().unwrap();
            assert!(
                diagnostics.starts_with("Ward requires"),
                "{name}: {diagnostics}"
            );
        }
    }
    let search = fhir_document(app.get(&token, "/fhir/Patient?name=Duck").await, 200).await;
    assert!(
        bundle_ids(&search).is_empty(),
        "nothing half-written: {search}"
    );
}

#[tokio::test]
async fn rest_updates_keep_the_extras_fhir_updates_replace_them_and_old_versions_keep_theirs() {
    // Arrange: Peter Chalmers as published
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let published = official_example("example");
    let response = send_fhir(
        &app,
        reqwest::Method::POST,
        &token,
        "/fhir/Patient",
        &published,
    );
    let created = fhir_document(response.await, 201).await;
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/fhir/Patient/{id}");

    // Act: a REST client renames him and gives him an email, knowing nothing of the rest
    let rest_update = json!({
        "name": "Jim Chalmers",
        "email": "jim@example.org",
        "address": "534 Erewhon St PeasantVille, Rainbow, Vic  3999",
        "dateOfBirth": "1974-12-25",
    });
    json_of(
        app.put(&token, &format!("/api/patients/{id}"), &rest_update)
            .await,
        200,
    )
    .await;
    let after_rest = fhir_document(app.get(&token, &path).await, 200).await;
    keep_for_validation("example-after-rest-update", &after_rest);

    // Assert: what REST does not know is kept; what it changed is rendered from the record
    for element in [
        "text",
        "gender",
        "contact",
        "managingOrganization",
        "_birthDate",
        "active",
    ] {
        assert_eq!(after_rest[element], published[element], "{element}");
    }
    assert_eq!(after_rest["address"], published["address"]);
    assert_eq!(
        after_rest["name"][0],
        json!({"use": "official", "text": "Jim Chalmers", "family": "Chalmers", "given": ["Jim"]})
    );
    assert_eq!(
        after_rest["name"].as_array().unwrap()[1..],
        published["name"].as_array().unwrap()[1..]
    );
    let telecoms = after_rest["telecom"].as_array().unwrap();
    assert_eq!(
        telecoms[..telecoms.len() - 1],
        published["telecom"].as_array().unwrap()[..]
    );
    assert_eq!(
        telecoms.last().unwrap(),
        &json!({"system": "email", "value": "jim@example.org"})
    );

    // Act: a FHIR client replaces the resource with a bare one
    let bare = json!({
        "resourceType": "Patient",
        "id": id,
        "name": [{"family": "Chalmers", "given": ["Peter"]}],
        "birthDate": "1974-12-25",
    });
    let replaced = send_fhir(&app, reqwest::Method::PUT, &token, &path, &bare);
    let replaced = fhir_document(replaced.await, 200).await;
    keep_for_validation("example-after-fhir-update", &replaced);

    // Assert: FHIR's update replaced everything, the email and address included
    let mut expected = bare.clone();
    expected.as_object_mut().unwrap().remove("id");
    assert_eq!(as_published(&replaced), expected);
    let rest = json_of(app.get(&token, &format!("/api/patients/{id}")).await, 200).await;
    assert_eq!(
        (&rest["email"], &rest["address"]),
        (&Value::Null, &Value::Null)
    );

    // Assert: each old version still shows what it had
    let first = fhir_document(app.get(&token, &format!("{path}/_history/1")).await, 200).await;
    keep_for_validation("example-vread-1", &first);
    assert_eq!(as_published(&first), as_published(&published));
    let second = fhir_document(app.get(&token, &format!("{path}/_history/2")).await, 200).await;
    assert_eq!(as_published(&second), as_published(&after_rest));
}

#[tokio::test]
async fn a_rest_patch_of_an_example_without_an_email_needs_none_but_cannot_remove_the_address() {
    // Arrange: Peter Chalmers as published: an address, no email
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let published = official_example("example");
    let response = send_fhir(
        &app,
        reqwest::Method::POST,
        &token,
        "/fhir/Patient",
        &published,
    );
    let created = fhir_document(response.await, 201).await;
    let path = format!("/api/patients/{}", created["id"].as_str().unwrap());

    // Act and assert: a new address is fine without adding an email
    let moved = json_of(
        merge_patch(&app, &token, &path, json!({"address": "9 Oak Ave"})).await,
        200,
    )
    .await;
    assert_eq!(moved["address"], "9 Oak Ave");
    assert_eq!(moved["email"], Value::Null);
    // Taking the address away is not: REST keeps the reference's rule for what a record has
    let refused = json_of(
        merge_patch(&app, &token, &path, json!({"address": null})).await,
        400,
    )
    .await;
    assert!(
        refused.to_string().contains("Address is required"),
        "{refused}"
    );
}

async fn merge_patch(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .patch(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

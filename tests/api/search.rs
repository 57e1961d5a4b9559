//! Patient search through the real binary: name prefixes ignoring case and accents, birth date
//! ranges, sorting with paging, totals and the 400 for an unknown parameter.

use serde_json::{Value, json};

use crate::helpers::{TestApp, Workdir, patient_body};

async fn register(app: &TestApp, token: &str, name: &str, email: &str, birth: &str) {
    let mut body = patient_body(name, email);
    body["dateOfBirth"] = json!(birth);
    let created = app.post(token, "/api/patients", &body).await;
    assert_eq!(created.status(), 201, "{name}");
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|patient| patient["name"].as_str().unwrap().to_string())
        .collect()
}

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get(token, &format!("/api/patients?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn patients_are_found_by_name_prefix_birth_date_and_sorted_with_a_total() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    register(
        &app,
        &token,
        "Zébulon Quartermain",
        "zq@example.com",
        "1982-03-04",
    )
    .await;
    register(
        &app,
        &token,
        "Ann Quarrington",
        "aq@example.com",
        "1979-12-31",
    )
    .await;
    register(
        &app,
        &token,
        "Björn Quasimodo",
        "bq@example.com",
        "1990-07-01",
    )
    .await;

    // Act + Assert: word prefixes, any case, any accent.
    let zeb = page(&app, &token, "name=ZEB").await;
    assert_eq!(names(&zeb), vec!["Zébulon Quartermain"]);
    let both_words = page(&app, &token, "name=qua%20bjo").await;
    assert_eq!(names(&both_words), vec!["Björn Quasimodo"]);

    // A birth date range, sorted by name descending, with the count of all matches.
    let range = page(
        &app,
        &token,
        "name=qua&birthDate=ge1980-01-01&birthDate=le1999-12-31&sort=-name&total=accurate",
    )
    .await;
    assert_eq!(
        names(&range),
        vec!["Zébulon Quartermain", "Björn Quasimodo"]
    );
    assert_eq!(range["total"], 2);

    // Paging by birth date, one at a time, keeps the order and its sort.
    let first = page(&app, &token, "name=qua&sort=birthDate&limit=1").await;
    assert!(first.get("total").is_none());
    assert_eq!(names(&first), vec!["Ann Quarrington"]);
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = page(
        &app,
        &token,
        &format!("name=qua&sort=birthDate&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(names(&second), vec!["Zébulon Quartermain"]);
    let other_sort = app
        .get(
            &token,
            &format!("/api/patients?name=qua&sort=name&limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(other_sort.status(), 400);
}

#[tokio::test]
async fn an_unknown_or_malformed_search_parameter_is_a_400_naming_it() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;

    let response = app
        .get(
            &token,
            "/api/patients?nmae=jo&birthDate=gt1980-01-01&sort=age",
        )
        .await;

    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["birthDate", "sort", "nmae"]);
}

#[tokio::test]
async fn every_patient_has_a_medical_record_number_that_finds_it_and_cannot_change() {
    // Arrange: the demo's patients were imported, so they are numbered too.
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let demo = page(&app, &token, "limit=500").await;
    let demo_numbers: Vec<&str> = demo["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|patient| patient["mrn"].as_str().unwrap())
        .collect();
    assert!(demo_numbers.iter().all(|mrn| mrn.starts_with("MRN-")));
    let created = app
        .post(
            &token,
            "/api/patients",
            &patient_body("Ada Lovelace", "ada@example.com"),
        )
        .await;
    assert_eq!(created.status(), 201);
    let ada: Value = created.json().await.unwrap();
    let mrn = ada["mrn"].as_str().unwrap();

    // Act
    let found = page(&app, &token, &format!("identifier={mrn}")).await;
    let mut changed = ada.clone();
    changed["mrn"] = json!("MRN-99999999");
    let path = format!("/api/patients/{}", ada["id"].as_str().unwrap());
    let refused = app.put(&token, &path, &changed).await;
    let kept = app.put(&token, &path, &ada).await;

    // Assert
    assert_eq!(mrn, format!("MRN-{:08}", demo_numbers.len() + 1));
    assert!(!demo_numbers.contains(&mrn));
    assert_eq!(names(&found), vec!["Ada Lovelace"]);
    assert_eq!(refused.status(), 400);
    assert_eq!(kept.status(), 200);
}

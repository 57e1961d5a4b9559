//! Bulk import and export through the real binary: `ward import patients`, `ward export
//! patients` and `GET /fhir/Patient/$export`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::both_deployments;
use crate::fhir::{fhir_document, keep_for_validation, send_fhir};
use crate::fhir_examples::{as_published, official_example};
use crate::helpers::{JOHN_DOE_ID, TestApp, Workdir, patient_body, ward_command};

both_deployments!(fhir_export_reaches_the_patients_module_wherever_it_runs);

const PASSWORD: &str = "correct horse battery";
const EVENT_WAIT: Duration = Duration::from_secs(20);
const FHIR_NDJSON: &str = "application/fhir+ndjson";

/// Runs `ward` with `args` in `dir`, feeding `stdin`.
fn run_ward(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = ward_command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Creates a user with `role` through the CLI.
fn create_user(dir: &Path, email: &str, role: &str) {
    let args = [
        "user",
        "create",
        "--email",
        email,
        "--role",
        role,
        "--password-stdin",
    ];
    let output = run_ward(dir, &args, &format!("{PASSWORD}\n"));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

async fn log_in(app: &TestApp, email: &str) -> String {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), 200, "login of {email}");
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

fn fhir_patient(id_opt: Option<&str>, name: &str, email: &str) -> Value {
    let mut patient = json!({
        "resourceType": "Patient",
        "name": [{"text": name}],
        "telecom": [{"system": "email", "value": email}],
        "address": [{"text": "1 Bulk Road"}],
        "birthDate": "1970-05-06",
    });
    if let Some(id) = id_opt {
        patient["id"] = json!(id);
    }
    patient
}

fn write_file(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The records of `GET /api/patients/{id}` without what an import allocates anew.
async fn record(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.get(token, &format!("/api/patients/{id}")).await;
    assert_eq!(response.status(), 200, "patient {id}");
    let mut body: Value = response.json().await.unwrap();
    let fields = body.as_object_mut().unwrap();
    fields.remove("mrn");
    fields.remove("version");
    body
}

#[tokio::test]
async fn an_import_reports_each_bad_line_goes_on_and_fails_at_the_end() {
    // Arrange: a running instance (its relay will send the imported patients' events).
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let kept_id = "0190a1b2-0000-7000-8000-000000000001";
    let mut missing_birth_date = fhir_patient(None, "No Birthday", "nobday@import.example");
    missing_birth_date
        .as_object_mut()
        .unwrap()
        .remove("birthDate");
    let mut missing_name = fhir_patient(None, "No Name", "noname@import.example");
    missing_name.as_object_mut().unwrap().remove("name");
    let lines = vec![
        fhir_patient(Some(kept_id), "Imported One", "one@import.example").to_string(),
        "{this is not json".to_string(),
        fhir_patient(Some("not-a-uuid"), "Imported Two", "two@import.example").to_string(),
        missing_birth_date.to_string(),
        fhir_patient(None, "Demo Clash", "JOHN.DOE@example.com").to_string(),
        fhir_patient(None, "Twin Of One", "one@import.example").to_string(),
        String::new(),
        missing_name.to_string(),
    ];
    let file = write_file(&dir.path, "patients.ndjson", &lines);
    let file_arg = file.to_str().unwrap();

    // Act
    let first = run_ward(&dir.path, &["import", "patients", file_arg], "");
    let again = run_ward(&dir.path, &["import", "patients", file_arg], "");

    // Assert: the summary, each failing line by number, and a failing exit code.
    let (stdout, stderr) = (text(&first.stdout), text(&first.stderr));
    assert_eq!(first.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("read 7, created 2, already present 0, failed 5"),
        "{stdout}"
    );
    for expected in [
        "line 2: not a JSON resource",
        "line 4: Ward requires Patient.birthDate",
        "line 5: Email address already exists",
        "line 6: Email address appears earlier in the batch",
        "line 8: Ward requires Patient.name",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    assert!(
        !stderr.contains("line 1:") && !stderr.contains("line 3:"),
        "{stderr}"
    );
    // The kept id is already present; the line without a UUID is a new record whose email
    // is now taken.
    let again_stdout = text(&again.stdout);
    assert!(
        again_stdout.contains("read 7, created 0, already present 1, failed 6"),
        "{again_stdout}"
    );
    let imported = app.get(&token, &format!("/api/patients/{kept_id}")).await;
    assert_eq!(imported.status(), 200);
    let imported: Value = imported.json().await.unwrap();
    assert_eq!(imported["name"], "Imported One");
    assert_eq!(imported["mrn"], "MRN-00000016");
    // The event went out like an API create's: billing opened the account.
    app.eventually(EVENT_WAIT, "the imported patient's account", || async {
        let response = app
            .get(&token, &format!("/api/billing/accounts/{kept_id}"))
            .await;
        (response.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_export_imported_into_a_fresh_instance_round_trips_and_since_filters() {
    // Arrange: the demo patients plus one, then a change after `since`.
    let source_dir = Workdir::new();
    let source = TestApp::spawn(&source_dir.path, &["--demo"]).await;
    let token = source.demo_token().await;
    let created: Value = source
        .post(
            &token,
            "/api/patients",
            &patient_body("Zoë Ångström", "zoe@export.example"),
        )
        .await
        .json()
        .await
        .unwrap();
    let created_id = created["id"].as_str().unwrap().to_string();
    // An official example: no email, no address, and elements Ward keeps verbatim.
    let twin_published = official_example("infant-twin-1");
    let twin = send_fhir(
        &source,
        reqwest::Method::POST,
        &token,
        "/fhir/Patient",
        &twin_published,
    );
    let twin = fhir_document(twin.await, 201).await;
    let twin_id = twin["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = chrono::Utc::now().to_rfc3339();
    let mut changed = patient_body("John Changed", "john.doe@example.com");
    changed["registeredDate"] = json!("2024-01-10");
    let response = source
        .put(&token, &format!("/api/patients/{JOHN_DOE_ID}"), &changed)
        .await;
    assert_eq!(response.status(), 200);
    let export_path = source_dir.path.join("export.ndjson");

    // Act
    let export = run_ward(
        &source_dir.path,
        &[
            "export",
            "patients",
            "--output",
            export_path.to_str().unwrap(),
        ],
        "",
    );
    let since_export = run_ward(
        &source_dir.path,
        &["export", "patients", "--since", &since],
        "",
    );
    let target_dir = Workdir::new();
    create_user(&target_dir.path, "admin@target.example", "admin");
    let import = run_ward(&target_dir.path, &["import", "patients", "-"], &{
        std::fs::read_to_string(&export_path).unwrap()
    });
    let target = TestApp::spawn(&target_dir.path, &[]).await;
    let target_token = log_in(&target, "admin@target.example").await;

    // Assert
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert!(text(&export.stderr).contains("exported 17 patients"));
    assert!(!source_dir.path.join("export.ndjson.partial").exists());
    let exported: Vec<Value> = std::fs::read_to_string(&export_path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(exported.len(), 17);
    assert!(
        exported
            .iter()
            .all(|resource| resource["resourceType"] == "Patient")
    );
    let since_lines: Vec<Value> = text(&since_export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(since_lines.len(), 1, "{}", text(&since_export.stderr));
    assert_eq!(since_lines[0]["id"], JOHN_DOE_ID);
    assert_eq!(since_lines[0]["name"][0]["text"], "John Changed");
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert!(
        text(&import.stdout).contains("read 17, created 17, already present 0, failed 0"),
        "{}",
        text(&import.stdout)
    );
    for id in [created_id.as_str(), JOHN_DOE_ID, twin_id.as_str()] {
        assert_eq!(
            record(&target, &target_token, id).await,
            record(&source, &token, id).await
        );
    }
    let twin_path = format!("/fhir/Patient/{twin_id}");
    let imported_twin = fhir_document(target.get(&target_token, &twin_path).await, 200).await;
    keep_for_validation("example-imported-infant-twin-1", &imported_twin);
    assert_eq!(
        as_published(&imported_twin),
        as_published(&official_example("infant-twin-1"))
    );
}

#[tokio::test]
async fn fhir_export_streams_every_page_to_admins_only() {
    // Arrange: more patients than one export page, loaded from standard input.
    let dir = Workdir::new();
    create_user(&dir.path, "clinician@bulk.example", "clinician");
    let lines: Vec<String> = (0..1_200)
        .map(|index| {
            let email = format!("bulk{index}@fhir.example");
            fhir_patient(None, &format!("Bulk Patient{index}"), &email).to_string()
        })
        .collect();
    let import = run_ward(&dir.path, &["import", "patients", "-"], &lines.join("\n"));
    assert!(import.status.success(), "{}", text(&import.stderr));
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let admin = app.demo_token().await;
    let clinician = log_in(&app, "clinician@bulk.example").await;

    // Act
    let response = app.get(&admin, "/fhir/Patient/$export").await;
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let status = response.status();
    let body = response.text().await.unwrap();
    let encoded = app
        .get(
            &admin,
            "/fhir/Patient/%24export?_since=2999-01-01T00:00:00Z",
        )
        .await;
    let by_clinician = app.get(&clinician, "/fhir/Patient/$export").await;
    let bad_since = app
        .get(&admin, "/fhir/Patient/$export?_since=yesterday")
        .await;
    let anonymous = app
        .client
        .get(app.url("/fhir/Patient/$export"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(status, 200);
    assert_eq!(content_type, FHIR_NDJSON);
    let resources: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(resources.len(), 1_215);
    let mut ids: Vec<&str> = resources
        .iter()
        .map(|resource| resource["id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1_215, "pages neither overlap nor repeat");
    assert_eq!(encoded.status(), 200);
    assert_eq!(encoded.text().await.unwrap(), "");
    for (refused, expected) in [(by_clinician, 403), (bad_since, 400), (anonymous, 401)] {
        assert_eq!(refused.status(), expected);
        let outcome: Value = refused.json().await.unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    if let Some(folder) = std::env::var_os("WARD_FHIR_OUT") {
        // Checked by the independent validator with the other FHIR documents.
        let folder = PathBuf::from(folder);
        std::fs::create_dir_all(&folder).unwrap();
        let text = serde_json::to_string_pretty(&resources[0]).unwrap();
        std::fs::write(folder.join("bulk-export-patient.json"), text).unwrap();
    }
}

/// In the split deployment the gateway reads the pages over gRPC (`ExportPatients`).
async fn fhir_export_reaches_the_patients_module_wherever_it_runs(app: &TestApp) {
    // Arrange
    let token = app.demo_token().await;

    // Act
    let response = app.get(&token, "/fhir/Patient/$export").await;

    // Assert
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let ids: Vec<String> = body
        .lines()
        .map(|line| {
            let resource: Value = serde_json::from_str(line).unwrap();
            resource["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 15);
    assert!(ids.iter().any(|id| id == JOHN_DOE_ID));
}

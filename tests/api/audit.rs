//! The audit trail through the real binary: a clinician's read and an analyst's refused read of a
//! patient show up in the admin's `GET /api/audit`, which non-admins cannot call.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::helpers::{JOHN_DOE_ID, TestApp, Workdir, ward_command};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// Creates a user with `role` through the CLI, before the app runs in `dir`.
pub(crate) fn create_user(dir: &Path, email: &str, role: &str) {
    let mut child = ward_command(
        dir,
        &[
            "user",
            "create",
            "--email",
            email,
            "--role",
            role,
            "--password-stdin",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Logs `email` in and returns (token, user id).
async fn log_in(app: &TestApp, email: &str) -> (String, String) {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), 200, "login of {email}");
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let me: Value = app.get(&token, "/auth/me").await.json().await.unwrap();
    let id = me["id"].as_str().unwrap().to_string();
    (token, id)
}

/// The events of `GET /api/audit?patientId=<patient_id>` as the admin sees them.
async fn audit_of(app: &TestApp, admin_token: &str, patient_id: &str) -> Vec<Value> {
    let response = app
        .get(
            admin_token,
            &format!("/api/audit?patientId={patient_id}&limit=500"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("nextCursor").is_some(), "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_clinicians_read_and_an_analysts_refused_read_are_audited_for_admins() {
    // Arrange
    let dir = Workdir::new();
    let migrate = ward_command(&dir.path, &["migrate"]).output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    create_user(&dir.path, "clinician@clinic.example", "clinician");
    create_user(&dir.path, "analyst@clinic.example", "analyst");
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let admin = app.demo_token().await;
    let (clinician, clinician_id) = log_in(&app, "clinician@clinic.example").await;
    let (analyst, analyst_id) = log_in(&app, "analyst@clinic.example").await;
    let patient_path = format!("/api/patients/{JOHN_DOE_ID}");

    // Act
    let read = app.get(&clinician, &patient_path).await;
    let refused = app.get(&analyst, &patient_path).await;
    let audit_by_clinician = app.get(&clinician, "/api/audit").await;
    let audit_by_analyst = app.get(&analyst, "/api/audit").await;

    // Assert
    assert_eq!(read.status(), 200);
    assert_eq!(refused.status(), 403);
    assert_eq!(audit_by_clinician.status(), 403);
    assert_eq!(audit_by_analyst.status(), 403);
    let events = audit_of(&app, &admin, JOHN_DOE_ID).await;
    let is = |event: &Value, actor: &str, outcome: &str| {
        event["actor"] == actor
            && event["action"] == "read"
            && event["outcome"] == outcome
            && event["patientIds"][0] == JOHN_DOE_ID
    };
    let allowed = events
        .iter()
        .find(|event| is(event, &clinician_id, "allowed"))
        .unwrap_or_else(|| panic!("no allowed read by the clinician in {events:?}"));
    assert!(
        allowed["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(allowed["clientAddr"], "127.0.0.1");
    assert!(allowed["at"].as_str().is_some());
    assert!(
        events.iter().any(|event| is(event, &analyst_id, "denied")),
        "no denied read by the analyst in {events:?}"
    );
    let by_analyst = app
        .get(&admin, &format!("/api/audit?actor={analyst_id}"))
        .await;
    let body: Value = by_analyst.json().await.unwrap();
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");

    let bad = app
        .get(&admin, "/api/audit?patientId=nope&from=yesterday")
        .await;
    assert_eq!(bad.status(), 400);
}

//! Secrets and tokens never reach the logs, and patient data never does either.

use serde_json::Value;

use crate::helpers::{DEMO_PASSWORD, TestApp, Workdir, patient_body};

#[tokio::test]
async fn logs_hold_no_password_token_or_patient_data() {
    // Arrange: a database URL with a password, debug logging for Ward's own crates.
    let dir = Workdir::new();
    let env = vec![
        (
            "WARD_LOG__FILTER".to_string(),
            "debug,sqlx=warn,rskafka=warn,h2=info,hyper=info,tower=info".to_string(),
        ),
        ("RUST_LOG".to_string(), String::new()),
    ];
    let app = TestApp::spawn_with_env(&dir.path, &["--demo"], &env).await;

    // Act: log in, fail a login, register, read, update and fail a create.
    let session: Value = app
        .login("testuser@test.com", DEMO_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let first_refresh_token = session["refreshToken"].as_str().unwrap().to_string();
    let refreshed: Value = app
        .client
        .post(app.url("/auth/refresh"))
        .json(&serde_json::json!({"refreshToken": first_refresh_token}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = refreshed["token"].as_str().unwrap().to_string();
    let refresh_token = refreshed["refreshToken"].as_str().unwrap().to_string();
    let narrowed: Value = app
        .post(
            &token,
            "/auth/narrow",
            &serde_json::json!({"readOnly": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let narrowed_token = narrowed["token"].as_str().unwrap().to_string();
    app.get(&narrowed_token, "/api/patients").await;
    let new_user = serde_json::json!({
        "email": "quiet@ward.test",
        "password": "an unlogged passphrase",
        "role": "clinician",
    });
    app.post(&token, "/api/users", &new_user).await;
    let _ = app.login("quiet@ward.test", "an unlogged passphrase").await;
    let _ = app.login("testuser@test.com", "not-the-password-9").await;
    let created: Value = app
        .post(
            &token,
            "/api/patients",
            &patient_body("Zelda Secretname", "zelda.secret@example.com"),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/patients/{}", created["id"].as_str().unwrap());
    app.get(&token, &path).await;
    app.put(
        &token,
        &path,
        &patient_body("Zelda Othername", "zelda.other@example.com"),
    )
    .await;
    app.post(
        &token,
        "/api/patients",
        &patient_body("Zelda Dup", "ZELDA.other@example.com"),
    )
    .await;
    let config = crate::helpers::ward_command(&dir.path, &["config"])
        .env(
            "WARD_DATABASE__PATIENTS",
            "postgres://ward:hunter2-secret@db:5432/p",
        )
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&config.stdout).to_string();

    // Assert
    let logs = app.logs();
    assert!(
        logs.contains("patients.create_patient"),
        "debug logs were captured"
    );
    for secret in [
        DEMO_PASSWORD,
        "not-the-password-9",
        "an unlogged passphrase",
        token.as_str(),
        first_refresh_token.as_str(),
        refresh_token.as_str(),
        narrowed_token.as_str(),
        "Zelda",
        "zelda.secret@example.com",
        "zelda.other",
    ] {
        assert!(!logs.contains(secret), "the logs contain {secret:?}");
    }
    assert!(
        !printed.contains("hunter2-secret"),
        "ward config printed a password"
    );
}

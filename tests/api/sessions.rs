//! Session lifecycle through the real binary: refresh rotation, replay detection, logout and
//! account changes, with revocations reaching every process that verifies tokens.

use std::time::Duration;

use serde_json::{Value, json};
use ward_bus::PatientsApi;
use ward_core::{CallerContext, WardError};

use crate::both_deployments;
use crate::cluster::Cluster;
use crate::helpers::{JOHN_DOE_ID, TestApp};

both_deployments!(revoked_sessions_stop_working_everywhere);

const PASSWORD: &str = "a long and uncommon passphrase";

/// Revocations travel through the event log; the split processes poll it every 250 ms.
const REVOCATION_WAIT: Duration = Duration::from_secs(10);

struct Session {
    token: String,
    refresh_token: String,
}

async fn session_from(response: reqwest::Response) -> Session {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    Session {
        token: body["token"].as_str().unwrap().to_string(),
        refresh_token: body["refreshToken"].as_str().unwrap().to_string(),
    }
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/refresh"))
        .json(&json!({"refreshToken": refresh_token}))
        .send()
        .await
        .unwrap()
}

async fn logout(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Waits until `token` gets 401 on a patients read.
async fn until_rejected(app: &TestApp, token: &str, what: &str) {
    app.eventually(REVOCATION_WAIT, what, || async {
        let status = app.get(token, "/api/patients").await.status();
        (status == 401).then_some(())
    })
    .await;
}

async fn create_clinician(app: &TestApp, admin_token: &str, email: &str) -> String {
    let body = json!({"email": email, "password": PASSWORD, "role": "clinician"});
    let response = app.post(admin_token, "/api/users", &body).await;
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.unwrap();
    user["id"].as_str().unwrap().to_string()
}

async fn revoked_sessions_stop_working_everywhere(app: &TestApp) {
    let admin_token = app.demo_token().await;
    let email = "sessions@ward.test";
    let user_id = create_clinician(app, &admin_token, email).await;

    // Refresh rotates: the new pair works, the spent refresh token is refused...
    let first = session_from(app.login(email, PASSWORD).await).await;
    let second = session_from(refresh(app, &first.refresh_token).await).await;
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(app.get(&second.token, "/api/patients").await.status(), 200);
    assert_eq!(refresh(app, &first.refresh_token).await.status(), 401);
    // ...and its replay revoked the whole session: both access tokens and the newest refresh.
    until_rejected(app, &second.token, "the replayed session to be revoked").await;
    until_rejected(app, &first.token, "the first token to be revoked").await;
    assert_eq!(refresh(app, &second.refresh_token).await.status(), 401);

    // Logout ends this session only.
    let kept = session_from(app.login(email, PASSWORD).await).await;
    let ended = session_from(app.login(email, PASSWORD).await).await;
    assert_eq!(logout(app, &ended.token).await.status(), 204);
    until_rejected(app, &ended.token, "the logged-out token to be revoked").await;
    assert_eq!(refresh(app, &ended.refresh_token).await.status(), 401);
    assert_eq!(app.get(&kept.token, "/api/patients").await.status(), 200);

    // A role change revokes the old tokens; a refresh carries the new role.
    let patch = format!("/api/users/{user_id}");
    let to_analyst = app
        .client
        .patch(app.url(&patch))
        .bearer_auth(&admin_token)
        .json(&json!({"role": "analyst"}))
        .send()
        .await
        .unwrap();
    assert_eq!(to_analyst.status(), 200);
    until_rejected(app, &kept.token, "the old-role token to be revoked").await;
    let as_analyst = session_from(refresh(app, &kept.refresh_token).await).await;
    assert_eq!(
        app.get(&as_analyst.token, "/api/patients").await.status(),
        403
    );
    let summary = app.get(&as_analyst.token, "/api/analytics/summary").await;
    assert_eq!(summary.status(), 200);

    // Disabling ends everything: tokens, refresh, login (answered like a wrong password).
    let disable = app
        .client
        .patch(app.url(&patch))
        .bearer_auth(&admin_token)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(disable.status(), 200);
    app.eventually(
        REVOCATION_WAIT,
        "the disabled user's token to fail",
        || async {
            let status = app
                .get(&as_analyst.token, "/api/analytics/summary")
                .await
                .status();
            (status == 401).then_some(())
        },
    )
    .await;
    assert_eq!(refresh(app, &as_analyst.refresh_token).await.status(), 401);
    let login = app.login(email, PASSWORD).await;
    assert_eq!(login.status(), 401);
    let wrong_password = app.login("nobody@ward.test", PASSWORD).await;
    let (login_body, wrong_body): (Value, Value) = (
        login.json().await.unwrap(),
        wrong_password.json().await.unwrap(),
    );
    assert_eq!(login_body["detail"], wrong_body["detail"]);

    // The admin's own session was never touched.
    assert_eq!(app.get(&admin_token, "/api/patients").await.status(), 200);
}

/// Split only: the patients process, reached over gRPC without the gateway, refuses a token
/// revoked at the auth process, so the revocation reached it through the log.
#[tokio::test]
async fn a_module_process_learns_revocations_from_the_log() {
    let cluster = Cluster::start().await;
    let app = cluster.gateway();
    let session = session_from(
        app.login(crate::helpers::DEMO_EMAIL, crate::helpers::DEMO_PASSWORD)
            .await,
    )
    .await;
    let patients_addr = cluster.node("patients").grpc_addr_opt.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{patients_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let patients = ward_patients::PatientsGrpcClient::new(channel);
    let verifier = ward_bus::token::TokenVerifier::from_file(
        &cluster.dir.path.join("data/keys/auth-public.key"),
    )
    .unwrap();
    let principal = verifier.verify(&session.token, chrono::Utc::now()).unwrap();
    let ctx = CallerContext::authenticated(principal, session.token.as_str(), "req-direct");
    let id = JOHN_DOE_ID.parse().unwrap();
    assert!(patients.get_patient(&ctx, id).await.is_ok());

    assert_eq!(logout(app, &session.token).await.status(), 204);

    let started = std::time::Instant::now();
    loop {
        match patients.get_patient(&ctx, id).await {
            Err(WardError::Unauthenticated(_)) => break,
            other => {
                assert!(
                    started.elapsed() < REVOCATION_WAIT,
                    "the patients process still accepts a revoked token: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

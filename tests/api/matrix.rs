//! Every route × every role, and every kind of bad token, through HTTP against the real binary.
//!
//! The expectations are written out here, from the issue's table, rather than read from
//! `UserRole::rights`: a wrong table in the code must fail this test.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use ward_bus::auth::UserInfo;
use ward_bus::token::{TokenIssuer, generate_key_files};
use ward_core::UserRole;

use crate::helpers::{JOHN_DOE_ID, TestApp, Workdir, patient_body};

const PASSWORD: &str = "a long and uncommon passphrase";

/// Who may call a route.
#[derive(Clone, Copy, Debug)]
enum Allowed {
    /// Any valid token.
    Everyone,
    Roles(&'static [&'static str]),
}

struct Route {
    method: Method,
    /// `{patient}` is replaced by a patient made for the call, `{user}` by a user id.
    path: &'static str,
    body_opt: Option<Value>,
    allowed: Allowed,
}

fn routes() -> Vec<Route> {
    const READ_PATIENTS: &[&str] = &["admin", "clinician", "billing"];
    const WRITE_PATIENTS: &[&str] = &["admin", "clinician"];
    const ADMIN: &[&str] = &["admin"];
    let route = |method: Method, path, body_opt, allowed| Route {
        method,
        path,
        body_opt,
        allowed,
    };
    vec![
        route(Method::GET, "/auth/me", None, Allowed::Everyone),
        route(Method::GET, "/auth/validate", None, Allowed::Everyone),
        route(
            Method::POST,
            "/auth/narrow",
            Some(json!({"readOnly": true})),
            Allowed::Everyone,
        ),
        route(
            Method::GET,
            "/api/patients",
            None,
            Allowed::Roles(READ_PATIENTS),
        ),
        route(
            Method::POST,
            "/api/patients",
            Some(patient_body("Matrix Person", "matrix@example.com")),
            Allowed::Roles(WRITE_PATIENTS),
        ),
        route(
            Method::GET,
            "/api/patients/{patient}",
            None,
            Allowed::Roles(READ_PATIENTS),
        ),
        route(
            Method::PUT,
            "/api/patients/{patient}",
            Some(patient_body("Matrix Changed", "changed@example.com")),
            Allowed::Roles(WRITE_PATIENTS),
        ),
        route(
            Method::DELETE,
            "/api/patients/{patient}",
            None,
            Allowed::Roles(WRITE_PATIENTS),
        ),
        route(
            Method::GET,
            "/api/billing/accounts/{patient}",
            None,
            Allowed::Roles(&["admin", "clinician", "billing"]),
        ),
        route(
            Method::GET,
            "/api/analytics/summary",
            None,
            Allowed::Roles(&["admin", "analyst"]),
        ),
        route(Method::GET, "/api/audit", None, Allowed::Roles(ADMIN)),
        route(Method::GET, "/api/users", None, Allowed::Roles(ADMIN)),
        route(
            Method::POST,
            "/api/users",
            Some(json!({"email": "new-{n}@ward.test", "password": PASSWORD, "role": "analyst"})),
            Allowed::Roles(ADMIN),
        ),
        route(
            Method::PATCH,
            "/api/users/{user}",
            Some(json!({"role": "clinician"})),
            Allowed::Roles(ADMIN),
        ),
    ]
}

struct Matrix {
    app: TestApp,
    dir: Workdir,
    admin_token: String,
    counter: std::sync::atomic::AtomicU32,
}

impl Matrix {
    async fn start() -> Self {
        let dir = Workdir::new();
        let app = TestApp::spawn(&dir.path, &["--demo"]).await;
        let admin_token = app.demo_token().await;
        Self {
            app,
            dir,
            admin_token,
            counter: Default::default(),
        }
    }

    fn next(&self) -> u32 {
        self.counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Creates a user with `role` through the admin API and returns (token, refresh token).
    async fn sign_up(&self, role: &str) -> (String, String) {
        let email = format!("{role}-{}@ward.test", self.next());
        let body = json!({"email": email, "password": PASSWORD, "role": role});
        let created = self.app.post(&self.admin_token, "/api/users", &body).await;
        assert_eq!(created.status(), 201, "create {role}");
        let response = self.app.login(&email, PASSWORD).await;
        assert_eq!(response.status(), 200, "login {role}");
        let session: Value = response.json().await.unwrap();
        (
            session["token"].as_str().unwrap().to_string(),
            session["refreshToken"].as_str().unwrap().to_string(),
        )
    }

    /// A fresh patient, made by the admin, so destructive calls never share one.
    async fn new_patient(&self) -> String {
        let n = self.next();
        let body = patient_body("Matrix Patient", &format!("matrix-{n}@example.com"));
        let response = self
            .app
            .post(&self.admin_token, "/api/patients", &body)
            .await;
        assert_eq!(response.status(), 201);
        let patient: Value = response.json().await.unwrap();
        patient["id"].as_str().unwrap().to_string()
    }

    async fn new_user_id(&self) -> String {
        let email = format!("target-{}@ward.test", self.next());
        let body = json!({"email": email, "password": PASSWORD, "role": "billing"});
        let response = self.app.post(&self.admin_token, "/api/users", &body).await;
        assert_eq!(response.status(), 201);
        let user: Value = response.json().await.unwrap();
        user["id"].as_str().unwrap().to_string()
    }

    /// Calls `route` with `token`; placeholders get fresh resources (or `patient_opt`).
    async fn call(
        &self,
        route: &Route,
        token: &str,
        patient_opt: Option<&str>,
    ) -> reqwest::Response {
        let mut path = route.path.to_string();
        if path.contains("{patient}") {
            let patient = match patient_opt {
                Some(patient) => patient.to_string(),
                None => self.new_patient().await,
            };
            path = path.replace("{patient}", &patient);
        }
        if path.contains("{user}") {
            path = path.replace("{user}", &self.new_user_id().await);
        }
        let mut request = self
            .app
            .client
            .request(route.method.clone(), self.app.url(&path))
            .bearer_auth(token);
        if let Some(body) = &route.body_opt {
            let text = body.to_string().replace("{n}", &self.next().to_string());
            let unique_email = format!("matrix-{}@example.com", self.next());
            let text = text.replace("matrix@example.com", &unique_email);
            let text = text.replace("changed@example.com", &unique_email);
            request = request
                .header("content-type", "application/json")
                .body(text);
        }
        request.send().await.unwrap()
    }
}

async fn assert_problem(response: reqwest::Response, status: u16, what: &str) {
    assert_eq!(response.status(), status, "{what}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(content_type, "application/problem+json", "{what}");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status, "{what}");
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_table_says() {
    let matrix = Matrix::start().await;
    let mut tokens = vec![("admin", matrix.admin_token.clone())];
    for role in ["clinician", "billing", "analyst"] {
        tokens.push((role, matrix.sign_up(role).await.0));
    }
    // The billing account of a demo patient comes from an event; wait for it once.
    matrix
        .app
        .eventually(
            Duration::from_secs(20),
            "John Doe's billing account",
            || async {
                let path = format!("/api/billing/accounts/{JOHN_DOE_ID}");
                let response = matrix.app.get(&matrix.admin_token, &path).await;
                (response.status() == 200).then_some(())
            },
        )
        .await;

    for route in routes() {
        for (role, token) in &tokens {
            let allowed = match route.allowed {
                Allowed::Everyone => true,
                Allowed::Roles(roles) => roles.contains(role),
            };
            let what = format!("{} {} as {role}", route.method, route.path);
            let patient_opt = route
                .path
                .starts_with("/api/billing")
                .then_some(JOHN_DOE_ID);
            let response = matrix.call(&route, token, patient_opt).await;
            if allowed {
                let status = response.status().as_u16();
                assert!(
                    (200..300).contains(&status),
                    "{what}: {status} {}",
                    response.text().await.unwrap_or_default()
                );
            } else {
                assert_problem(response, 403, &what).await;
            }
        }
    }
}

#[tokio::test]
async fn bad_tokens_get_401_on_every_route() {
    let matrix = Matrix::start().await;
    let (token, _) = matrix.sign_up("clinician").await;
    let now = Utc::now();
    let user = UserInfo {
        id: Uuid::now_v7(),
        email: "forger@ward.test".into(),
        role: UserRole::Admin,
        disabled: false,
    };

    // Expired: signed with the real key, an hour ago, for a minute.
    let keys = matrix.dir.path.join("data/keys");
    let real_issuer = TokenIssuer::from_file(&keys.join("auth-private.key")).unwrap();
    let an_hour_ago = now - chrono::TimeDelta::hours(1);
    let expired = real_issuer
        .issue(&user, Uuid::now_v7(), 60, an_hour_ago)
        .unwrap()
        .token;
    // Foreign: a valid-looking admin token from a key the app does not trust.
    let foreign_dir = matrix.dir.path.join("foreign");
    generate_key_files(&foreign_dir.join("k.key"), &foreign_dir.join("k.pub")).unwrap();
    let foreign_issuer = TokenIssuer::from_file(&foreign_dir.join("k.key")).unwrap();
    let foreign = foreign_issuer
        .issue(&user, Uuid::now_v7(), 600, now)
        .unwrap()
        .token;
    // Tampered: one character changed in the middle of a valid token.
    let mut tampered_bytes = token.clone().into_bytes();
    let middle = tampered_bytes.len() / 2;
    tampered_bytes[middle] = if tampered_bytes[middle] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered = String::from_utf8(tampered_bytes).unwrap();
    // Revoked: logged out.
    let (revoked, _) = matrix.sign_up("clinician").await;
    let logout = matrix
        .app
        .client
        .post(matrix.app.url("/auth/logout"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);

    let bad_tokens = [
        ("expired", expired),
        ("foreign", foreign),
        ("tampered", tampered),
        ("revoked", revoked),
        ("garbage", "not-a-token".to_string()),
    ];
    for route in routes() {
        for (kind, bad_token) in &bad_tokens {
            let what = format!("{} {} with a {kind} token", route.method, route.path);
            let response = matrix.call(&route, bad_token, Some(JOHN_DOE_ID)).await;
            assert_problem(response, 401, &what).await;
        }
        let what = format!("{} {} without a token", route.method, route.path);
        let mut request = matrix
            .app
            .client
            .request(route.method.clone(), matrix.app.url(route.path));
        if route.body_opt.is_some() {
            request = request
                .header("content-type", "application/json")
                .body("{}");
        }
        assert_problem(request.send().await.unwrap(), 401, &what).await;
    }
    // The clinician's own token still works: nothing above touched it.
    assert_eq!(matrix.app.get(&token, "/api/patients").await.status(), 200);
}

#[tokio::test]
async fn narrowed_tokens_do_less_than_their_parent() {
    let matrix = Matrix::start().await;
    let (token, _) = matrix.sign_up("clinician").await;
    let patient = matrix.new_patient().await;
    let other_patient = matrix.new_patient().await;
    let narrow = |body: Value| {
        let matrix = &matrix;
        let token = token.clone();
        async move {
            let response = matrix.app.post(&token, "/auth/narrow", &body).await;
            assert_eq!(response.status(), 200, "narrow {body}");
            let narrowed: Value = response.json().await.unwrap();
            narrowed["token"].as_str().unwrap().to_string()
        }
    };
    let read_only = narrow(json!({"readOnly": true})).await;
    let one_patient = narrow(json!({"patientId": patient, "readOnly": true})).await;
    let short_lived = narrow(json!({"expiresInSeconds": 3})).await;

    // Read-only: reads pass, writes are 403.
    assert_eq!(
        matrix.app.get(&read_only, "/api/patients").await.status(),
        200
    );
    let path = format!("/api/patients/{patient}");
    assert_eq!(matrix.app.get(&read_only, &path).await.status(), 200);
    let change = patient_body("Read Only", "read-only@example.com");
    assert_problem(matrix.app.put(&read_only, &path, &change).await, 403, "put").await;
    assert_problem(matrix.app.delete(&read_only, &path).await, 403, "delete").await;

    // One patient: that patient only, no lists, no other patient.
    assert_eq!(matrix.app.get(&one_patient, &path).await.status(), 200);
    let other_path = format!("/api/patients/{other_patient}");
    assert_problem(
        matrix.app.get(&one_patient, &other_path).await,
        403,
        "other",
    )
    .await;
    assert_problem(
        matrix.app.get(&one_patient, "/api/patients").await,
        403,
        "list",
    )
    .await;
    let billing = format!("/api/billing/accounts/{other_patient}");
    assert_problem(matrix.app.get(&one_patient, &billing).await, 403, "billing").await;

    // A narrowed token cannot end the parent's session, nor narrow its way back up.
    let logout = matrix
        .app
        .client
        .post(matrix.app.url("/auth/logout"))
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_problem(logout, 403, "logout with a narrowed token").await;
    let widened = matrix
        .app
        .post(
            &read_only,
            "/auth/narrow",
            &json!({"expiresInSeconds": 600}),
        )
        .await;
    assert_eq!(widened.status(), 200);
    let widened: Value = widened.json().await.unwrap();
    let widened = widened["token"].as_str().unwrap();
    assert_problem(
        matrix.app.delete(widened, &path).await,
        403,
        "still read-only",
    )
    .await;

    // Shorter expiry: works now, 401 once it has passed.
    assert_eq!(
        matrix.app.get(&short_lived, "/api/patients").await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_problem(
        matrix.app.get(&short_lived, "/api/patients").await,
        401,
        "expired",
    )
    .await;

    // The parent is untouched by all of this.
    assert_eq!(matrix.app.delete(&token, &path).await.status(), 204);
}

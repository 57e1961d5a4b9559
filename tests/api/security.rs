//! Login abuse: failed logins are throttled per account and per client address (issue 4, item 5).

use serde_json::Value;

use crate::helpers::{DEMO_EMAIL, DEMO_PASSWORD, TestApp, Workdir};

async fn problem(response: reqwest::Response, status: u16) -> (Option<String>, Value) {
    assert_eq!(response.status(), status);
    let headers = response.headers().clone();
    let content_type = headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let retry_after_opt = headers
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_string());
    (retry_after_opt, response.json().await.unwrap())
}

#[tokio::test]
async fn five_failed_logins_throttle_the_account_with_retry_after() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    for attempt in 0..5 {
        let response = app
            .login(DEMO_EMAIL, &format!("wrong-password-{attempt}"))
            .await;
        let (retry_after_opt, _) = problem(response, 401).await;
        assert_eq!(retry_after_opt, None, "attempt {attempt}");
    }

    // Act
    let throttled = app.login(DEMO_EMAIL, "wrong-password-6").await;
    let right_password = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;

    // Assert: 429 with a wait, and even the right password is refused within the window.
    for response in [throttled, right_password] {
        let (retry_after_opt, body) = problem(response, 429).await;
        let retry_after: u64 = retry_after_opt
            .expect("a Retry-After header")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        assert_eq!(body["status"], 429);
        assert_eq!(body["type"], "https://ward.dev/problems/too-many-requests");
    }
    // An unknown email from the same address is throttled too (the address key), with the same
    // answer: nothing tells whether an account exists.
    let (_, unknown) = problem(app.login("nobody@test.com", DEMO_PASSWORD).await, 429).await;
    assert!(
        unknown["detail"]
            .as_str()
            .unwrap()
            .starts_with("too many failed logins; try again later")
    );
    // The published description lists the 429.
    let openapi: Value = reqwest::get(app.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login_responses = &openapi["paths"]["/auth/login"]["post"]["responses"];
    assert!(login_responses.get("429").is_some(), "{login_responses}");
}

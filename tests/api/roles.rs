//! One role per process: honest about what it needs, never crashing for a missing peer.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, Workdir, ward_command};

#[tokio::test]
async fn patients_alone_waits_for_the_public_key_then_runs() {
    // Arrange + Act: a fresh folder, no keys, only the patients role.
    let dir = Workdir::new();
    let app = TestApp::spawn_without_readiness(&dir.path, &["--roles", "patients"]).await;
    assert!(
        app.http_addr_opt.is_none(),
        "no gateway, no public listener"
    );

    // Assert: live, not ready, and it says which file it waits for.
    let readyz = |app: &TestApp| {
        let url = format!("http://{}/readyz", app.ops_addr);
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let live = app
        .client
        .get(format!("http://{}/livez", app.ops_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let response = readyz(&app).await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(text.contains("auth.public_key_file"), "{text}");

    // Once the key exists, it becomes ready on its own, with its database and the event log.
    let keys = ward_command(&dir.path, &["keys", "generate"])
        .output()
        .unwrap();
    assert!(keys.status.success());
    app.wait_ready().await;
    let body: Value = readyz(&app).await.json().await.unwrap();
    let text = body.to_string();
    assert!(
        text.contains("patients") && text.contains("event-log"),
        "{text}"
    );
    assert!(
        app.logs().contains("\"roles\":\"patients\""),
        "{}",
        app.logs()
    );
}

#[tokio::test]
async fn a_gateway_without_peers_stays_live_not_ready_and_says_why() {
    // Arrange: keys come from a first all-in-one start, as an operator would copy them.
    let dir = Workdir::new();
    TestApp::spawn(&dir.path, &[]).await.stop();

    // Act
    let app = TestApp::spawn_without_readiness(&dir.path, &["--roles", "gateway"]).await;

    // Assert: live, not ready, and /readyz names each missing peer.
    let live = app
        .client
        .get(format!("http://{}/livez", app.ops_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let text = app
        .eventually(
            Duration::from_secs(10),
            "the peers to be probed",
            || async {
                let url = format!("http://{}/readyz", app.ops_addr);
                let ready = app.client.get(url).send().await.ok()?;
                assert_eq!(ready.status(), 503);
                let text = ready.text().await.ok()?;
                let names_every_peer = ["auth", "patients", "billing", "analytics"]
                    .iter()
                    .all(|peer| text.contains(&format!("peers.{peer}")));
                names_every_peer.then_some(text)
            },
        )
        .await;
    for peer in ["auth", "patients", "billing", "analytics"] {
        assert!(text.contains(&format!("peers.{peer}")), "{text}");
    }
    // A call that needs a peer is a 503 problem, not a crash.
    let login = app.login("a@b.com", "whatever1").await;
    assert_eq!(login.status(), 503);
    assert!(app.logs().contains("needs a peer"));
}

#[test]
fn an_unknown_role_is_refused_with_the_valid_names() {
    let dir = Workdir::new();
    let output = ward_command(&dir.path, &["serve", "--roles", "gateway,pharmacy"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pharmacy"), "{stderr}");
    assert!(
        stderr.contains("auth, patients, billing, analytics, gateway"),
        "{stderr}"
    );
}

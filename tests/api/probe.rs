//! `ward probe`, the container health check of the ECS task definitions, against a real process.

use crate::helpers::{TestApp, Workdir, ward_command};

fn probe(dir: &Workdir, url: &str) -> std::process::Output {
    ward_command(&dir.path, &["probe", url])
        // A broken configuration must not make a live process look dead.
        .env("WARD_EVENTS__BACKEND", "carrier-pigeon")
        .output()
        .unwrap()
}

#[tokio::test]
async fn probe_passes_on_livez_and_readyz_and_fails_on_a_404_or_a_closed_port() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &[]).await;
    for path in ["/livez", "/readyz"] {
        let output = probe(&dir, &format!("http://{}{path}", app.ops_addr));
        assert!(
            output.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let not_found = probe(&dir, &format!("http://{}/nowhere", app.ops_addr));
    assert_eq!(not_found.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_found.stderr).contains("404"));

    let ops_addr = app.ops_addr;
    drop(app);
    let closed = probe(&dir, &format!("http://{ops_addr}/livez"));
    assert_eq!(closed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&closed.stderr).contains("cannot connect"));
}

//! `/metrics` on the ops listener of real `ward` processes (issue 7, item 5): requests move the
//! route-labelled counters and histograms, the database, outbox, consumer and token series are
//! there, and the text parses strictly as Prometheus text. The split test checks a module
//! process's gRPC series by method and its consumers' lag per Kafka partition.

mod text;

use std::time::Duration;

use self::text::{Scrape, parse_prometheus_text};
use crate::audit::{PASSWORD, create_user};
use crate::cluster::Cluster;
use crate::helpers::{JOHN_DOE_ID, TestApp, Workdir, ward_command};

const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

async fn scrape(app: &TestApp) -> Scrape {
    let response = app
        .client
        .get(format!("http://{}/metrics", app.ops_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(!text.contains(JOHN_DOE_ID), "no patient id in the metrics");
    parse_prometheus_text(&text)
}

const PATIENT_ROUTE: &str = "/api/patients/{id}";

#[tokio::test]
async fn requests_move_the_route_counters_and_every_series_is_known() {
    // Arrange: an analyst (no patients:read) and the demo admin.
    let dir = Workdir::new();
    let migrate = ward_command(&dir.path, &["migrate"]).output().unwrap();
    assert!(migrate.status.success());
    create_user(&dir.path, "analyst@test.com", "analyst");
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let admin = app.demo_token().await;
    let analyst_login = app.login("analyst@test.com", PASSWORD).await;
    let analyst: serde_json::Value = analyst_login.json().await.unwrap();
    let analyst = analyst["token"].as_str().unwrap().to_string();
    let before = scrape(&app).await;
    let count_of = |scrape: &Scrape, status: &str| {
        let labels = [
            ("route", PATIENT_ROUTE),
            ("method", "GET"),
            ("status", status),
        ];
        scrape
            .value("ward_http_requests_total", &labels)
            .unwrap_or(0.0)
    };

    // Act: a 200, a 404, a 401 without a token, a 401 with a forged one, a 403, an unknown path.
    let patient_path = format!("/api/patients/{JOHN_DOE_ID}");
    let unknown_path = format!("/api/patients/{}", uuid::Uuid::now_v7());
    assert_eq!(app.get(&admin, &patient_path).await.status(), 200);
    assert_eq!(app.get(&admin, &unknown_path).await.status(), 404);
    let anonymous = app.client.get(app.url(&patient_path)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.get("forged-token", &patient_path).await.status(), 401);
    assert_eq!(app.get(&analyst, &patient_path).await.status(), 403);
    assert_eq!(app.get(&admin, "/no/such/route").await.status(), 404);
    let after = scrape(&app).await;

    // Assert: each answer counted once under the route pattern, never the path.
    for (status, num_new) in [("200", 1.0), ("404", 1.0), ("401", 2.0), ("403", 1.0)] {
        let moved = count_of(&after, status) - count_of(&before, status);
        assert_eq!(moved, num_new, "status {status}");
    }
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert!(after.value("ward_http_requests_total", &unmatched).unwrap() >= 1.0);
    let route = [("route", PATIENT_ROUTE), ("method", "GET")];
    let latency_count = after
        .value("ward_http_request_duration_seconds_count", &route)
        .unwrap();
    let latency_before = before
        .value("ward_http_request_duration_seconds_count", &route)
        .unwrap_or(0.0);
    assert_eq!(latency_count - latency_before, 5.0);
    let inf_bucket = [("route", PATIENT_ROUTE), ("method", "GET"), ("le", "+Inf")];
    assert_eq!(
        after.value("ward_http_request_duration_seconds_bucket", &inf_bucket),
        Some(latency_count)
    );
    // Tokens: the forged one is invalid, the analyst's valid but refused a right.
    let invalid = [("outcome", "invalid")];
    let num_invalid = after
        .value("ward_token_verifications_total", &invalid)
        .unwrap();
    assert!(
        num_invalid
            - before
                .value("ward_token_verifications_total", &invalid)
                .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        after
            .value("ward_token_verifications_total", &[("outcome", "ok")])
            .unwrap()
            >= 3.0
    );
    let denied = [("right", "patients:read")];
    assert!(after.value("ward_authz_denials_total", &denied).unwrap() >= 1.0);
    // Database pools and query latency per module (SQLite pools of 8).
    for module in ["auth", "patients", "billing", "analytics"] {
        let labels = [("module", module)];
        assert_eq!(
            after.value("ward_db_pool_max_connections", &labels),
            Some(8.0),
            "{module}"
        );
        assert!(after.has(
            "ward_db_pool_connections",
            &[("module", module), ("state", "idle")]
        ));
        assert!(after.has(
            "ward_db_pool_connections",
            &[("module", module), ("state", "in_use")]
        ));
        assert!(
            after
                .value("ward_db_query_duration_seconds_count", &labels)
                .unwrap()
                > 0.0
        );
    }
    // Build info and readiness.
    let build = after
        .samples
        .iter()
        .find(|sample| sample.name == "ward_build_info")
        .expect("ward_build_info");
    assert_eq!(build.value, 1.0);
    assert_eq!(
        build.labels["roles"],
        "auth,patients,billing,analytics,gateway"
    );
    assert_eq!(build.labels["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(after.value("ward_ready", &[]), Some(1.0));

    // The demo's patient flows through the outbox to the consumers.
    let settled = app
        .eventually(SETTLE_TIMEOUT, "outbox and consumer series", || async {
            let scrape = scrape(&app).await;
            let relayed = scrape.value(
                "ward_outbox_relayed_events_total",
                &[("module", "patients")],
            );
            let consumer = [
                ("consumer", "billing"),
                ("topic", "ward.patients.v1"),
                ("partition", "0"),
            ];
            let applied = [
                ("consumer", "billing"),
                ("topic", "ward.patients.v1"),
                ("outcome", "applied"),
            ];
            let is_settled = relayed.unwrap_or(0.0) >= 1.0
                && scrape
                    .value("ward_consumer_events_total", &applied)
                    .unwrap_or(0.0)
                    >= 1.0
                && scrape.value("ward_consumer_lag_events", &consumer) == Some(0.0)
                && scrape.has("ward_consumer_event_age_seconds", &consumer)
                && scrape.has("ward_outbox_pending_events", &[("module", "patients")])
                && scrape.has(
                    "ward_outbox_oldest_event_age_seconds",
                    &[("module", "patients")],
                );
            is_settled.then_some(scrape)
        })
        .await;
    let age = [
        ("consumer", "billing"),
        ("topic", "ward.patients.v1"),
        ("partition", "0"),
    ];
    let age_secs = settled
        .value("ward_consumer_event_age_seconds", &age)
        .unwrap();
    assert!(
        (0.0..SETTLE_TIMEOUT.as_secs_f64() + 60.0).contains(&age_secs),
        "{age_secs}"
    );

    // Every series is one of the names the alert rules and the dashboard are checked against
    // (ward-bus's `alert_rules_and_dashboard_use_only_metrics_ward_exports`).
    let known = ward_bus::metrics::sample_names();
    for name in settled.exported_names() {
        let is_histogram_family = known.contains(&format!("{name}_bucket"));
        assert!(known.contains(&name) || is_histogram_family, "{name}");
    }
}

#[tokio::test]
async fn module_processes_export_grpc_calls_by_method_and_lag_per_partition() {
    // Arrange: one process per role on PostgreSQL and a Kafka broker (4 partitions a topic).
    let cluster = Cluster::start().await;
    let gateway = cluster.gateway();
    let admin = gateway.demo_token().await;
    let patients_before = scrape(cluster.node("patients")).await;
    let patients_2_before = scrape(cluster.node("patients-2")).await;

    // Act: the gateway asks the patients role over gRPC for one found and one unknown patient.
    // Two patients processes share the calls: the figures are summed over both.
    let patient_path = format!("/api/patients/{JOHN_DOE_ID}");
    let unknown_path = format!("/api/patients/{}", uuid::Uuid::now_v7());
    for _ in 0..2 {
        assert_eq!(gateway.get(&admin, &patient_path).await.status(), 200);
        assert_eq!(gateway.get(&admin, &unknown_path).await.status(), 404);
    }

    // Assert: the calls are counted by method and code where they were served.
    let grpc_count = |scrape: &Scrape, code: &str| {
        let labels = [
            ("service", "ward.v1.PatientService"),
            ("method", "GetPatient"),
            ("code", code),
        ];
        scrape
            .value("ward_grpc_server_requests_total", &labels)
            .unwrap_or(0.0)
    };
    let patients = scrape(cluster.node("patients")).await;
    let patients_2 = scrape(cluster.node("patients-2")).await;
    for code in ["OK", "NotFound"] {
        let num_served = grpc_count(&patients, code) + grpc_count(&patients_2, code)
            - grpc_count(&patients_before, code)
            - grpc_count(&patients_2_before, code);
        assert_eq!(num_served, 2.0, "{code}");
    }
    let method = [
        ("service", "ward.v1.PatientService"),
        ("method", "GetPatient"),
    ];
    let num_timed = patients
        .value("ward_grpc_server_request_duration_seconds_count", &method)
        .unwrap_or(0.0)
        + patients_2
            .value("ward_grpc_server_request_duration_seconds_count", &method)
            .unwrap_or(0.0);
    assert!(num_timed >= 4.0, "{num_timed}");
    // The modules verified the caller's token themselves (whichever instance served), and each
    // reports its own roles and pool.
    let verified = [("outcome", "ok")];
    let num_verified = patients
        .value("ward_token_verifications_total", &verified)
        .unwrap_or(0.0)
        + patients_2
            .value("ward_token_verifications_total", &verified)
            .unwrap_or(0.0);
    assert!(num_verified >= 4.0, "{num_verified}");
    let build = patients
        .samples
        .iter()
        .find(|s| s.name == "ward_build_info")
        .unwrap();
    assert_eq!(build.labels["roles"], "patients");
    assert_eq!(
        patients.value("ward_db_pool_max_connections", &[("module", "patients")]),
        Some(16.0)
    );
    let gateway_scrape = scrape(gateway).await;
    assert!(
        !gateway_scrape
            .samples
            .iter()
            .any(|s| s.name.starts_with("ward_grpc_server_"))
    );

    // Consumers report lag per partition they own: billing owns all four of the patients topic,
    // analytics instance 0 of 2 owns partitions 0 and 2 only. All of them catch up.
    let lag_of = |scrape: &Scrape, consumer: &str, partition: &str| {
        let labels = [
            ("consumer", consumer),
            ("topic", "ward.patients.v1"),
            ("partition", partition),
        ];
        scrape.value("ward_consumer_lag_events", &labels)
    };
    let (billing, analytics) = gateway
        .eventually(
            SETTLE_TIMEOUT,
            "consumer lag of 0 on every owned partition",
            || async {
                let billing = scrape(cluster.node("billing")).await;
                let analytics = scrape(cluster.node("analytics")).await;
                let billing_caught_up = ["0", "1", "2", "3"]
                    .iter()
                    .all(|partition| lag_of(&billing, "billing", partition) == Some(0.0));
                let analytics_caught_up = ["0", "2"]
                    .iter()
                    .all(|partition| lag_of(&analytics, "analytics", partition) == Some(0.0));
                (billing_caught_up && analytics_caught_up).then_some((billing, analytics))
            },
        )
        .await;
    assert_eq!(lag_of(&analytics, "analytics", "1"), None);
    assert_eq!(lag_of(&analytics, "analytics", "3"), None);
    let applied = [
        ("consumer", "billing"),
        ("topic", "ward.patients.v1"),
        ("outcome", "applied"),
    ];
    assert!(
        billing
            .value("ward_consumer_events_total", &applied)
            .unwrap()
            >= 1.0
    );
    // The two patients processes share one outbox: either may have relayed the demo's events.
    let module = [("module", "patients")];
    let num_relayed = patients
        .value("ward_outbox_relayed_events_total", &module)
        .unwrap_or(0.0)
        + patients_2
            .value("ward_outbox_relayed_events_total", &module)
            .unwrap_or(0.0);
    assert!(num_relayed >= 1.0, "{num_relayed}");
}

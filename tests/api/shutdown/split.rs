//! SIGTERM to a patients process of a split deployment under load: the gateway's requests keep
//! succeeding through the drain, the process exits 0 with its outbox relayed to the broker, and
//! nothing it acknowledged is lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sea_orm::Database;
use serde_json::Value;

use super::{
    DRAIN_SECS, GRACE_SECS, IN_TRANSIT, LOAD_BEFORE_SIGNAL, LoadControl, LoadRecord,
    assert_each_phase_logged_once, assert_every_acknowledged_patient_exists, count, kafka_env,
    run_load, watch_readyz,
};
use crate::cluster::{Broker, Databases};
use crate::helpers::{TestApp, Workdir, ward_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_a_patients_process_under_load_relays_its_events_to_the_broker() {
    // Arrange: patients alone in one process; the gateway, auth, billing and analytics in
    // another that reaches it over gRPC; PostgreSQL and a broker.
    let dir = Workdir::new();
    let databases = Databases::create().await;
    let broker = Broker::start(&dir.path);
    let env = kafka_env(&broker, &databases);
    let keys = ward_command(&dir.path, &["keys", "generate"])
        .output()
        .unwrap();
    assert!(keys.status.success());
    let patients_args = ["--roles", "patients", "--demo"];
    let mut patients = TestApp::spawn_with_env(&dir.path, &patients_args, &env).await;
    let grpc_addr = patients.grpc_addr_opt.unwrap();
    let mut gateway_env = env.clone();
    gateway_env.push(("WARD_PEERS__PATIENTS".into(), format!("http://{grpc_addr}")));
    let rest_args = ["--roles", "gateway,auth,billing,analytics", "--demo"];
    let gateway = TestApp::spawn_with_env(&dir.path, &rest_args, &gateway_env).await;
    let token = gateway.demo_token().await;
    let control = Arc::new(LoadControl::default());
    let clients = run_load(&gateway, &token, &control);
    tokio::time::sleep(LOAD_BEFORE_SIGNAL).await;

    // Act: SIGTERM the patients process mid-load; the clients go on through the gateway.
    let signalled_at = Instant::now();
    control.signalled_at.get_or_init(|| signalled_at);
    patients.send_signal("TERM");
    let readyz = tokio::spawn(watch_readyz(
        patients.client.clone(),
        format!("http://{}/readyz", patients.ops_addr),
        signalled_at + Duration::from_secs(GRACE_SECS + 5),
    ));
    let exit_opt = patients
        .wait_for_exit(Duration::from_secs(GRACE_SECS + 5))
        .await;
    let elapsed = signalled_at.elapsed();
    control.stop.store(true, Ordering::SeqCst);
    let record = LoadRecord::gather(clients).await;
    let readyz_seen = readyz.await.unwrap();
    eprintln!(
        "patients stopped in {elapsed:?}: {} patients acknowledged, {} requests answered after \
         SIGTERM, failures {:?}, /readyz {readyz_seen:?}",
        record.acknowledged_ids.len(),
        record.num_acknowledged_after_signal,
        record.failures
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = patients.logs();

    // Assert: a clean exit within the grace period, not ready (saying why) before it.
    let Some(exit) = exit_opt else {
        panic!("patients still runs {elapsed:?} after SIGTERM\n{logs}");
    };
    assert!(exit.success(), "exit {exit:?}\n{logs}");
    assert!(elapsed < Duration::from_secs(GRACE_SECS), "{elapsed:?}");
    assert!(readyz_seen.num_not_ready > 0 && readyz_seen.said_shutting_down);
    assert_eq!(readyz_seen.num_ready_after_not_ready, 0);
    assert_each_phase_logged_once(&logs);
    // Every request sent before the drain ended was answered; later ones may find patients gone
    // (no second instance here): the gateway says 503, or 504 for a call the closing connection
    // refused (GOAWAY), never a broken response.
    assert!(record.num_acknowledged_after_signal > 0);
    let gateway_logs = gateway.logs();
    for (sent_after_signal_opt, failure) in &record.failures {
        let sent_after_signal = sent_after_signal_opt.unwrap_or_default();
        assert!(
            sent_after_signal + IN_TRANSIT >= Duration::from_secs(DRAIN_SECS),
            "failed during the drain: {failure}"
        );
        // A call broken by the closing connection is a 503 too (ward-bus maps transport-made
        // statuses to Unavailable), never a 500.
        let is_unavailable = failure.starts_with("status 503") || failure.starts_with("status 504");
        assert!(is_unavailable, "{failure}\n{gateway_logs}");
    }
    // Nothing is left in its outbox: every committed event went to the broker.
    let patients_db = Database::connect(databases.url("patients")).await.unwrap();
    assert_eq!(count(&patients_db, "SELECT COUNT(*) FROM outbox").await, 0);
    let num_stored = count(&patients_db, "SELECT COUNT(*) FROM patients").await;
    assert!(num_stored as usize >= 15 + record.acknowledged_ids.len());

    // After a restart on the same address, every acknowledged patient is there, and analytics,
    // which only the broker feeds, counts one registration per stored patient.
    let mut restart_env = env.clone();
    restart_env.push(("WARD_SERVER__GRPC_ADDR".into(), grpc_addr.to_string()));
    let _patients =
        TestApp::spawn_with_env(&dir.path, &["--roles", "patients"], &restart_env).await;
    gateway.wait_ready().await;
    assert_every_acknowledged_patient_exists(&gateway, &record.acknowledged_ids).await;
    gateway
        .eventually(
            Duration::from_secs(60),
            "analytics to count every registration",
            || async {
                let summary: Value = gateway
                    .get(&token, "/api/analytics/summary")
                    .await
                    .json()
                    .await
                    .ok()?;
                (summary["patientsRegistered"] == num_stored).then_some(())
            },
        )
        .await;
}

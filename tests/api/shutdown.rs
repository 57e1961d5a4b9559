//! Graceful shutdown (issue 7): SIGTERM under load loses no acknowledged request. The process
//! says 503 on `/readyz` while it still serves, finishes what it started, relays every committed
//! event, and exits 0 within `server.shutdown_grace_secs`; a second signal exits at once.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::Value;
use ward_bus::events::{PATIENTS_TOPIC, decode_envelope};

use crate::cluster::{Broker, Databases};
use crate::helpers::{TestApp, Workdir, patient_body};

mod split;

const NUM_CLIENTS: usize = 8;
const DRAIN_SECS: u64 = 2;
const GRACE_SECS: u64 = 15;
/// A request sent this long before the drain's end may still reach the process after its
/// listener closed (the accept queue, the gateway's hop, two busy cores).
const IN_TRANSIT: Duration = Duration::from_millis(500);
/// How long the load runs before the signal.
const LOAD_BEFORE_SIGNAL: Duration = Duration::from_millis(1_500);
/// How a failure without any response begins.
const NO_RESPONSE: &str = "no response";
const MODULES: [&str; 4] = ["auth", "patients", "billing", "analytics"];

fn stop_env() -> Vec<(String, String)> {
    vec![
        ("WARD_SERVER__DRAIN_SECS".into(), DRAIN_SECS.to_string()),
        (
            "WARD_SERVER__SHUTDOWN_GRACE_SECS".into(),
            GRACE_SECS.to_string(),
        ),
    ]
}

/// [`stop_env`], on the broker and one PostgreSQL database per module.
fn kafka_env(broker: &Broker, databases: &Databases) -> Vec<(String, String)> {
    let mut env = stop_env();
    env.push(("WARD_EVENTS__BACKEND".into(), "kafka".into()));
    env.push(("WARD_EVENTS__BROKERS".into(), broker.address()));
    env.push(("WARD_EVENTS__PARTITIONS".into(), "4".into()));
    for module in MODULES {
        env.push((
            format!("WARD_DATABASE__{}", module.to_uppercase()),
            databases.url(module),
        ));
    }
    env
}

/// What became of one request.
enum Outcome {
    /// A 2xx with its whole body; for a create, the new patient's id.
    Acknowledged { created_id_opt: Option<String> },
    /// No TCP connection: the listener is closed. Fine after the stop.
    Refused,
    /// Never acceptable: any other status (a 5xx), a connection dropped before the response, or
    /// a response that broke off.
    Failed(String),
}

/// Shared by the test and its clients.
#[derive(Default)]
struct LoadControl {
    signalled_at: OnceLock<Instant>,
    /// Ends the clients that are not refused (the gateway outlives a stopped module).
    stop: AtomicBool,
}

/// What the clients saw, all together.
#[derive(Default)]
struct LoadRecord {
    acknowledged_ids: Vec<String>,
    num_acknowledged_after_signal: usize,
    num_refused: usize,
    /// Each failure, with when its request was sent, counted from the signal.
    failures: Vec<(Option<Duration>, String)>,
}

impl LoadRecord {
    async fn gather(clients: Vec<tokio::task::JoinHandle<LoadRecord>>) -> LoadRecord {
        let mut all = LoadRecord::default();
        for client in clients {
            let record = client.await.unwrap();
            all.acknowledged_ids.extend(record.acknowledged_ids);
            all.num_acknowledged_after_signal += record.num_acknowledged_after_signal;
            all.num_refused += record.num_refused;
            all.failures.extend(record.failures);
        }
        let unique_ids: BTreeSet<&String> = all.acknowledged_ids.iter().collect();
        assert_eq!(unique_ids.len(), all.acknowledged_ids.len());
        all
    }
}

/// Clients that create patients (and read some back) in a loop until the listener refuses them
/// or the test stops them.
fn run_load(
    app: &TestApp,
    token: &str,
    control: &Arc<LoadControl>,
) -> Vec<tokio::task::JoinHandle<LoadRecord>> {
    let mut clients = Vec::new();
    for client_index in 0..NUM_CLIENTS {
        let client = app.client.clone();
        let base = app.url("");
        let token = token.to_string();
        let control = control.clone();
        clients.push(tokio::spawn(async move {
            let mut record = LoadRecord::default();
            let mut last_id_opt: Option<String> = None;
            for request_index in 0.. {
                let is_read = request_index % 4 == 3 && last_id_opt.is_some();
                let request = if is_read {
                    let id = last_id_opt.clone().unwrap_or_default();
                    client.get(format!("{base}/api/patients/{id}"))
                } else {
                    let body = patient_body(
                        &format!("Stop Load {client_index} {request_index}"),
                        &format!("stop{client_index}x{request_index}@example.com"),
                    );
                    client.post(format!("{base}/api/patients")).json(&body)
                };
                let sent_after_signal_opt = control
                    .signalled_at
                    .get()
                    .map(|signalled_at| signalled_at.elapsed());
                match send(request.bearer_auth(&token), !is_read).await {
                    Outcome::Acknowledged { created_id_opt } => {
                        if sent_after_signal_opt.is_some() {
                            record.num_acknowledged_after_signal += 1;
                        }
                        if let Some(id) = created_id_opt {
                            last_id_opt = Some(id.clone());
                            record.acknowledged_ids.push(id);
                        }
                    }
                    Outcome::Refused => {
                        record.num_refused += 1;
                        break;
                    }
                    Outcome::Failed(failure) => {
                        record.failures.push((sent_after_signal_opt, failure));
                    }
                }
                if control.stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            record
        }));
    }
    clients
}

async fn send(request: reqwest::RequestBuilder, is_create: bool) -> Outcome {
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if error.is_connect() => return Outcome::Refused,
        Err(error) => return Outcome::Failed(format!("{NO_RESPONSE}: {error:?}")),
    };
    let status = response.status().as_u16();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return Outcome::Failed(format!("{status} broke off: {error:?}")),
    };
    if !(200..300).contains(&status) {
        return Outcome::Failed(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let id_opt = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body["id"].as_str().map(str::to_string));
    if is_create {
        assert!(id_opt.is_some(), "a create answered {status} without an id");
    }
    Outcome::Acknowledged {
        created_id_opt: id_opt.filter(|_| is_create),
    }
}

/// What `/readyz` said on one listener while the process stopped.
#[derive(Default, Debug)]
struct ReadyzSeen {
    num_not_ready: usize,
    said_shutting_down: bool,
    /// Ready answers after the first 503: readiness must not come back.
    num_ready_after_not_ready: usize,
    was_refused: bool,
}

async fn watch_readyz(client: reqwest::Client, url: String, until: Instant) -> ReadyzSeen {
    let mut seen = ReadyzSeen::default();
    while Instant::now() < until {
        match client.get(&url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                if status == 503 {
                    seen.num_not_ready += 1;
                    seen.said_shutting_down |= text.contains("shutting down");
                } else if seen.num_not_ready > 0 {
                    seen.num_ready_after_not_ready += 1;
                }
            }
            Err(error) if error.is_connect() => {
                seen.was_refused = true;
                break;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// Runs the load, sends SIGTERM mid-way, checks what every stop must show, and returns the ids
/// of the patients whose creation was acknowledged.
async fn sigterm_under_load(app: &mut TestApp) -> Vec<String> {
    let token = app.demo_token().await;
    let control = Arc::new(LoadControl::default());
    let clients = run_load(app, &token, &control);
    tokio::time::sleep(LOAD_BEFORE_SIGNAL).await;

    // Act: SIGTERM mid-load; watch /readyz on both listeners while the process stops.
    let signalled_at = Instant::now();
    control.signalled_at.get_or_init(|| signalled_at);
    app.send_signal("TERM");
    let watch_until = signalled_at + Duration::from_secs(GRACE_SECS + 5);
    let http_watch = tokio::spawn(watch_readyz(
        app.client.clone(),
        app.url("/readyz"),
        watch_until,
    ));
    let ops_watch = tokio::spawn(watch_readyz(
        app.client.clone(),
        format!("http://{}/readyz", app.ops_addr),
        watch_until,
    ));
    let exit_opt = app.wait_for_exit(Duration::from_secs(GRACE_SECS + 5)).await;
    let elapsed = signalled_at.elapsed();
    let Some(exit) = exit_opt else {
        panic!("ward still runs {elapsed:?} after SIGTERM\n{}", app.logs());
    };
    let http_readyz = http_watch.await.unwrap();
    let ops_readyz = ops_watch.await.unwrap();

    let LoadRecord {
        acknowledged_ids,
        num_acknowledged_after_signal,
        num_refused,
        failures,
    } = LoadRecord::gather(clients).await;
    eprintln!(
        "stopped in {elapsed:?}: {} patients acknowledged, {num_acknowledged_after_signal} \
         requests answered after SIGTERM, {num_refused} refused, http /readyz {http_readyz:?}, \
         ops /readyz {ops_readyz:?}",
        acknowledged_ids.len()
    );
    // Give the log reader a moment to take the last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = app.logs();

    // Assert: a clean exit within the grace period, after the drain window.
    assert!(exit.success(), "exit {exit:?}\n{logs}");
    assert!(
        elapsed < Duration::from_secs(GRACE_SECS),
        "stopped in {elapsed:?}"
    );
    assert!(elapsed >= Duration::from_secs(DRAIN_SECS), "{elapsed:?}");
    // No 5xx and nothing cut off mid-response, ever; nothing unanswered during the drain. A
    // request that reaches the listener as it closes may find its new connection dropped before
    // it was read (the accept queue): unanswered, not acknowledged, counted like refusals.
    let mut num_dropped_at_close = 0;
    for (sent_after_signal_opt, failure) in &failures {
        let sent_after_signal = sent_after_signal_opt.unwrap_or_default();
        let is_after_drain = sent_after_signal + IN_TRANSIT >= Duration::from_secs(DRAIN_SECS);
        if is_after_drain && failure.starts_with(NO_RESPONSE) {
            num_dropped_at_close += 1;
            continue;
        }
        panic!("sent {sent_after_signal:?} after SIGTERM: {failure}\n{logs}");
    }
    eprintln!("{num_dropped_at_close} requests dropped unanswered as the listener closed");
    assert_eq!(num_refused, NUM_CLIENTS, "each client ends refused");
    assert!(
        num_acknowledged_after_signal > 0,
        "requests are still served during the drain"
    );
    // Readiness went 503 ("shutting down") while both listeners still answered, never back.
    for (listener, seen) in [("http", &http_readyz), ("ops", &ops_readyz)] {
        assert!(seen.num_not_ready > 0, "{listener}: {seen:?}");
        assert!(seen.said_shutting_down, "{listener}: {seen:?}");
        assert_eq!(seen.num_ready_after_not_ready, 0, "{listener}: {seen:?}");
    }
    assert!(http_readyz.was_refused, "the public listener closed");
    assert_each_phase_logged_once(&logs);
    assert!(!acknowledged_ids.is_empty());
    acknowledged_ids
}

/// Each phase is logged once, in order, and the stop completed.
fn assert_each_phase_logged_once(logs: &str) {
    let mut last_position = 0;
    for phase in [
        "Draining",
        "FinishingRequests",
        "FinishingBatches",
        "FlushingOutbox",
    ] {
        let needle = format!("\"phase\":\"{phase}\"");
        assert_eq!(logs.matches(&needle).count(), 1, "{phase}\n{logs}");
        let position = logs.find(&needle).unwrap();
        assert!(position > last_position, "{phase} out of order");
        last_position = position;
    }
    assert!(logs.contains("shutdown complete"), "{logs}");
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn sqlite(dir: &Path, file: &str) -> DatabaseConnection {
    let path = dir.join("data").join(file);
    Database::connect(format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap()
}

/// After a restart on the same data, every acknowledged patient is there.
async fn assert_every_acknowledged_patient_exists(app: &TestApp, ids: &[String]) {
    let token = app.demo_token().await;
    for id in ids {
        let response = app.get(&token, &format!("/api/patients/{id}")).await;
        assert_eq!(
            response.status(),
            200,
            "patient {id} was acknowledged and lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_patient_and_relays_every_event() {
    // Arrange: all five roles in one process, on SQLite and the local event log.
    let dir = Workdir::new();
    let mut app = TestApp::spawn_with_env(&dir.path, &["--demo"], &stop_env()).await;

    // Act + the checks every stop must pass.
    let acknowledged_ids = sigterm_under_load(&mut app).await;
    drop(app);

    // Assert: no module left anything in its outbox...
    for module in ["auth", "patients", "billing"] {
        let db = sqlite(&dir.path, &format!("{module}.db")).await;
        let num_left = count(&db, "SELECT COUNT(*) FROM outbox").await;
        assert_eq!(num_left, 0, "{module} left events in its outbox");
    }
    // ...and the log holds exactly one PatientRegistered for each acknowledged patient.
    let events = sqlite(&dir.path, "events.db").await;
    let rows = events
        .query_all_raw(Statement::from_string(
            events.get_database_backend(),
            format!("SELECT record_key, value FROM event_log WHERE topic = '{PATIENTS_TOPIC}'"),
        ))
        .await
        .unwrap();
    let mut registered = Vec::new();
    for row in rows {
        let value: Vec<u8> = row.try_get_by_index(1).unwrap();
        let envelope = decode_envelope(&value).unwrap();
        if envelope.event_type == "PatientRegistered" {
            registered.push(envelope.subject_id);
        }
    }
    let registered_set: BTreeSet<&String> = registered.iter().collect();
    assert_eq!(
        registered_set.len(),
        registered.len(),
        "one event per patient"
    );
    for id in &acknowledged_ids {
        assert!(registered_set.contains(id), "no PatientRegistered for {id}");
    }

    // After a restart on the same folder, every acknowledged patient is there.
    let app = TestApp::spawn(&dir.path, &[]).await;
    assert_every_acknowledged_patient_exists(&app, &acknowledged_ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_on_kafka_and_postgresql_relays_everything_to_the_broker() {
    // Arrange: one process with the patients role (and the rest), on PostgreSQL and a broker,
    // so no other process could relay what it leaves in its outbox.
    let dir = Workdir::new();
    let databases = Databases::create().await;
    let broker = Broker::start(&dir.path);
    let env = kafka_env(&broker, &databases);
    let mut app = TestApp::spawn_with_env(&dir.path, &["--demo"], &env).await;

    // Act
    let acknowledged_ids = sigterm_under_load(&mut app).await;
    drop(app);

    // Assert: the outboxes are empty, so every committed event reached the broker.
    let patients_db = Database::connect(databases.url("patients")).await.unwrap();
    for module in ["auth", "patients", "billing"] {
        let db = Database::connect(databases.url(module)).await.unwrap();
        let num_left = count(&db, "SELECT COUNT(*) FROM outbox").await;
        assert_eq!(num_left, 0, "{module} left events in its outbox");
    }
    let num_stored = count(&patients_db, "SELECT COUNT(*) FROM patients").await;
    assert!(num_stored as usize >= 15 + acknowledged_ids.len());

    // After a restart, every acknowledged patient is there, and analytics, reading the broker
    // alone (the outboxes were empty), counts one registration for each stored patient.
    let app = TestApp::spawn_with_env(&dir.path, &[], &env).await;
    assert_every_acknowledged_patient_exists(&app, &acknowledged_ids).await;
    let token = app.demo_token().await;
    app.eventually(
        Duration::from_secs(60),
        "analytics to count every registration",
        || async {
            let summary: Value = app
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

#[tokio::test]
async fn a_second_signal_during_the_drain_exits_at_once() {
    // Arrange: a long drain, so the stop is still in its first phase.
    let dir = Workdir::new();
    let env = vec![
        ("WARD_SERVER__DRAIN_SECS".to_string(), "20".to_string()),
        (
            "WARD_SERVER__SHUTDOWN_GRACE_SECS".to_string(),
            "30".to_string(),
        ),
    ];
    let mut app = TestApp::spawn_with_env(&dir.path, &["--demo"], &env).await;
    let token = app.demo_token().await;
    let before = app.get(&token, "/api/patients").await;
    assert_eq!(
        before.headers().get("connection"),
        None,
        "keep-alive by default"
    );

    // Act: SIGTERM, then wait until the process says it is not ready.
    app.send_signal("TERM");
    let readyz = format!("http://{}/readyz", app.ops_addr);
    app.eventually(Duration::from_secs(10), "/readyz to say 503", || async {
        let response = app.client.get(&readyz).send().await.ok()?;
        (response.status() == 503).then_some(())
    })
    .await;

    // Assert: while draining, the API still answers, and asks the client to reconnect.
    let page = app.get(&token, "/api/patients").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["connection"], "close");

    // Act: a second signal.
    let second_at = Instant::now();
    app.send_signal("INT");
    let exit = app.wait_for_exit(Duration::from_secs(5)).await;

    // Assert: it exits at once, with a code that says the stop was cut short.
    let Some(exit) = exit else {
        panic!("a second signal did not end ward\n{}", app.logs());
    };
    assert!(second_at.elapsed() < Duration::from_secs(3));
    assert_eq!(exit.code(), Some(1), "{}", app.logs());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.logs().contains("second signal"), "{}", app.logs());
}

//! The event metrics over a real local log and SQLite databases: the outbox backlog and what the
//! relay moved, the log's end offset, and a consumer's lag, event age and outcomes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::DatabaseTransaction;
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use uuid::Uuid;
use ward_bus::consumer::{Consumer, ConsumerMigration, EventHandler};
use ward_bus::events::{EventLog, PATIENTS_TOPIC, PatientDeleted, envelope};
use ward_bus::local_log::LocalEventLog;
use ward_bus::metrics;
use ward_bus::outbox::{OutboxMigration, OutboxRelay, backlog, enqueue};
use ward_core::config::SecretUrl;
use ward_core::{WardError, WardResult};
use ward_proto::v1::EventEnvelope;

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(OutboxMigration), Box::new(ConsumerMigration)]
    }
}

struct AcceptAll;

#[async_trait]
impl EventHandler for AcceptAll {
    async fn handle(
        &self,
        _txn: &DatabaseTransaction,
        _envelope: &EventEnvelope,
    ) -> WardResult<()> {
        Ok(())
    }
}

/// Fails every event as a database outage would: the consumer retries and reads nothing after it.
struct AlwaysUnavailable;

#[async_trait]
impl EventHandler for AlwaysUnavailable {
    async fn handle(
        &self,
        _txn: &DatabaseTransaction,
        _envelope: &EventEnvelope,
    ) -> WardResult<()> {
        Err(WardError::Unavailable("the test says no".into()))
    }
}

fn sqlite_url(folder: &std::path::Path, name: &str) -> SecretUrl {
    SecretUrl::new(format!(
        "sqlite://{}?mode=rwc",
        folder.join(format!("{name}.db")).display()
    ))
}

/// The value of the sample line that starts with `series` (name and labels).
fn value_of(text: &str, series: &str) -> Option<f64> {
    for line in text.lines() {
        if let Some(value) = line
            .strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
        {
            return value.parse().ok();
        }
    }
    None
}

#[tokio::test]
async fn outbox_backlog_relay_and_consumer_lag_are_measured() {
    // Arrange: three events an hour old in an outbox, a local log, and a consumer database.
    let folder = std::env::temp_dir().join(format!("ward-metrics-{}", Uuid::now_v7()));
    let db = ward_bus::db::connect(&sqlite_url(&folder, "producer"), "metrics producer")
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    let consumer_db = ward_bus::db::connect(&sqlite_url(&folder, "consumer"), "metrics consumer")
        .await
        .unwrap();
    Migrator::up(&consumer_db, None).await.unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        LocalEventLog::open(&sqlite_url(&folder, "events"))
            .await
            .unwrap(),
    );
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    for _ in 0..3 {
        let subject = Uuid::now_v7();
        let payload = PatientDeleted {
            patient_id: subject.to_string(),
            version: 2,
        };
        let event = envelope("patients", subject, "test", an_hour_ago, &payload);
        enqueue(&db, PATIENTS_TOPIC, &event).await.unwrap();
    }
    assert_eq!(log.end_offset(PATIENTS_TOPIC, 0).await.unwrap(), 0);

    // Act + Assert: the backlog counts the three, the relay moves them and the log's end follows.
    let (num_pending, oldest_age) = backlog(&db).await.unwrap();
    assert_eq!(num_pending, 3);
    assert!(oldest_age < Duration::from_secs(60), "{oldest_age:?}");
    let relay = OutboxRelay::new("metrics-relay", db.clone(), log.clone());
    assert_eq!(relay.relay_once().await.unwrap(), 3);
    assert_eq!(backlog(&db).await.unwrap(), (0, Duration::ZERO));
    assert_eq!(log.end_offset(PATIENTS_TOPIC, 0).await.unwrap(), 3);
    assert_eq!(log.end_offset("ward.nothing.v1", 0).await.unwrap(), 0);

    let consumer = Consumer::new(
        "metrics-consumer",
        consumer_db.clone(),
        log.clone(),
        &[PATIENTS_TOPIC],
        Arc::new(AcceptAll),
    );
    assert_eq!(consumer.consume_once().await.unwrap(), 3);
    let stuck = Consumer::new(
        "metrics-stuck",
        consumer_db.clone(),
        log.clone(),
        &[PATIENTS_TOPIC],
        Arc::new(AlwaysUnavailable),
    );
    assert!(stuck.consume_once().await.is_err());

    let text = metrics::render();
    let relayed = r#"ward_outbox_relayed_events_total{module="metrics-relay"}"#;
    assert_eq!(value_of(&text, relayed), Some(3.0));
    let partition = r#"consumer="metrics-consumer",topic="ward.patients.v1",partition="0""#;
    let lag = format!("ward_consumer_lag_events{{{partition}}}");
    assert_eq!(value_of(&text, &lag), Some(0.0), "{text}");
    // The events occurred an hour before they were read.
    let age = format!("ward_consumer_event_age_seconds{{{partition}}}");
    let age_secs = value_of(&text, &age).unwrap();
    assert!((3600.0..3700.0).contains(&age_secs), "{age_secs}");
    let applied = r#"ward_consumer_events_total{consumer="metrics-consumer",topic="ward.patients.v1",outcome="applied"}"#;
    assert_eq!(value_of(&text, applied), Some(3.0));
    // The stuck consumer has all three still to read, and says why.
    let stuck_lag = r#"ward_consumer_lag_events{consumer="metrics-stuck",topic="ward.patients.v1",partition="0"}"#;
    assert_eq!(value_of(&text, stuck_lag), Some(3.0));
    let failed = r#"ward_consumer_events_total{consumer="metrics-stuck",topic="ward.patients.v1",outcome="failed"}"#;
    assert_eq!(value_of(&text, failed), Some(1.0));
    let pool = r#"ward_db_pool_max_connections{module="metrics_consumer"}"#;
    assert_eq!(value_of(&text, pool), Some(8.0));

    db.close().await.unwrap();
    let _ = std::fs::remove_dir_all(folder);
}

//! Two relays sharing one PostgreSQL outbox (two instances of a module) send every event exactly
//! once and in order. Needs PostgreSQL (WARD_TEST_POSTGRES_URL, default the local server).

use std::sync::Arc;

use chrono::Utc;
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use uuid::Uuid;
use ward_bus::events::{EventLog, PATIENTS_TOPIC, PatientDeleted, decode_envelope, envelope};
use ward_bus::local_log::LocalEventLog;
use ward_bus::outbox::{OutboxMigration, OutboxRelay, enqueue, pending};
use ward_bus::testsuite::TestPostgres;
use ward_core::config::SecretUrl;

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(OutboxMigration)]
    }
}

const NUM_EVENTS: usize = 300;

#[tokio::test]
async fn two_relays_send_each_event_once_in_order() {
    // Arrange: a fresh PostgreSQL database with 300 events in its outbox.
    let postgres = TestPostgres::create("outbox", "outbox").await;
    let db = postgres.db().clone();
    Migrator::up(&db, None).await.unwrap();
    let mut sent_ids = Vec::new();
    for _ in 0..NUM_EVENTS {
        let subject = Uuid::now_v7();
        let payload = PatientDeleted {
            patient_id: subject.to_string(),
            version: 2,
        };
        let event = envelope("patients", subject, "test", Utc::now(), &payload);
        sent_ids.push(event.event_id.clone());
        enqueue(&db, PATIENTS_TOPIC, &event).await.unwrap();
    }
    let folder = std::env::temp_dir().join(format!("ward-outbox-{}", Uuid::now_v7()));
    let log_url = SecretUrl::new(format!(
        "sqlite://{}?mode=rwc",
        folder.join("events.db").display()
    ));
    let log: Arc<dyn EventLog> = Arc::new(LocalEventLog::open(&log_url).await.unwrap());

    // Act: two relays drain the outbox concurrently.
    let drain = |relay: OutboxRelay| async move { while relay.relay_once().await.unwrap() > 0 {} };
    let first = OutboxRelay::new("patients", db.clone(), log.clone());
    let second = OutboxRelay::new("patients", db.clone(), log.clone());
    tokio::join!(drain(first), drain(second));

    // Assert: the outbox is empty and the log holds each event once, in enqueue order.
    assert_eq!(pending(&db).await.unwrap(), 0);
    let records = log
        .fetch(PATIENTS_TOPIC, 0, 0, NUM_EVENTS * 2)
        .await
        .unwrap();
    let received: Vec<String> = records
        .iter()
        .map(|record| decode_envelope(&record.value).unwrap().event_id)
        .collect();
    assert_eq!(received, sent_ids);

    postgres.drop_database().await;
    let _ = std::fs::remove_dir_all(folder);
}

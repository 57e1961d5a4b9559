//! What the relay and consumer loops do when told to stop (issue 7, graceful shutdown): a relay
//! flushes its whole outbox, several batches of it, before it returns; a consumer finishes the
//! batch it is in and records it, and takes no further one. SQLite files in a temporary folder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::{DatabaseConnection, DatabaseTransaction, EntityTrait};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use ward_bus::consumer::{Consumer, ConsumerMigration, EventHandler, offsets};
use ward_bus::events::{EventLog, OutgoingRecord, PATIENTS_TOPIC, PatientDeleted, encode_envelope};
use ward_bus::local_log::LocalEventLog;
use ward_bus::outbox::{OutboxMigration, OutboxRelay, enqueue, pending};
use ward_core::WardResult;
use ward_core::config::SecretUrl;
use ward_proto::v1::EventEnvelope;

/// More than one relay batch (256) and more than one consumer batch (256).
const NUM_EVENTS: usize = 600;
const POLL_INTERVAL: Duration = Duration::from_millis(50);

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(OutboxMigration), Box::new(ConsumerMigration)]
    }
}

struct Folder(std::path::PathBuf);

impl Folder {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("ward-stopping-{}", Uuid::now_v7())))
    }

    fn sqlite(&self, name: &str) -> SecretUrl {
        SecretUrl::new(format!("sqlite://{}?mode=rwc", self.0.join(name).display()))
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn module_database(folder: &Folder) -> DatabaseConnection {
    let db = ward_bus::db::connect(&folder.sqlite("module.db"), "module")
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

fn deleted_event() -> EventEnvelope {
    let subject = Uuid::now_v7();
    let payload = PatientDeleted {
        patient_id: subject.to_string(),
        version: 2,
    };
    ward_bus::events::envelope("patients", subject, "test", Utc::now(), &payload)
}

#[tokio::test]
async fn a_stopped_relay_flushes_its_whole_outbox_before_it_returns() {
    // Arrange: 600 committed events and a relay told to stop before it ever ran.
    let folder = Folder::new();
    let db = module_database(&folder).await;
    for _ in 0..NUM_EVENTS {
        enqueue(&db, PATIENTS_TOPIC, &deleted_event())
            .await
            .unwrap();
    }
    let log: Arc<dyn EventLog> = Arc::new(
        LocalEventLog::open(&folder.sqlite("events.db"))
            .await
            .unwrap(),
    );
    let relay = OutboxRelay::new("patients", db.clone(), log.clone());
    let cancel = CancellationToken::new();
    cancel.cancel();

    // Act
    relay.run(cancel, POLL_INTERVAL).await;

    // Assert: nothing is left behind, and the log holds every event once.
    assert_eq!(pending(&db).await.unwrap(), 0);
    let records = log
        .fetch(PATIENTS_TOPIC, 0, 0, NUM_EVENTS * 2)
        .await
        .unwrap();
    assert_eq!(records.len(), NUM_EVENTS);
}

/// Counts the events it applies.
struct Counting(Arc<AtomicUsize>);

#[async_trait]
impl EventHandler for Counting {
    async fn handle(
        &self,
        _txn: &DatabaseTransaction,
        _envelope: &EventEnvelope,
    ) -> WardResult<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_stopped_consumer_finishes_its_batch_and_takes_no_other() {
    // Arrange: 600 events on the log and a consumer told to stop before it ever ran.
    let folder = Folder::new();
    let db = module_database(&folder).await;
    let log: Arc<dyn EventLog> = Arc::new(
        LocalEventLog::open(&folder.sqlite("events.db"))
            .await
            .unwrap(),
    );
    let mut records = Vec::new();
    for _ in 0..NUM_EVENTS {
        let event = deleted_event();
        records.push(OutgoingRecord {
            topic: PATIENTS_TOPIC.to_string(),
            key: event.subject_id.clone(),
            value: encode_envelope(&event),
        });
    }
    log.append(records).await.unwrap();
    let num_applied = Arc::new(AtomicUsize::new(0));
    let consumer = Consumer::new(
        "stopping-test",
        db.clone(),
        log.clone(),
        &[PATIENTS_TOPIC],
        Arc::new(Counting(num_applied.clone())),
    );
    let cancel = CancellationToken::new();
    cancel.cancel();

    // Act
    tokio::time::timeout(Duration::from_secs(30), consumer.run(cancel, POLL_INTERVAL))
        .await
        .expect("a stopped consumer returns");

    // Assert: one whole batch was applied and its offset saved with it; the rest waits.
    let applied = num_applied.load(Ordering::SeqCst);
    assert_eq!(applied, 256, "one full batch");
    let saved = offsets::Entity::find().all(&db).await.unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].next_offset, applied as i64);
}

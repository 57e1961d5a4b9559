//! Consumers that scale on ECS: every task of an autoscaled service runs instance 0 of 1, so two
//! consumers on one PostgreSQL database read the same partitions. Each batch claims its partition
//! (an advisory lock), so each record is read once, each event applied once, and neither errors.
//! Needs PostgreSQL (WARD_TEST_POSTGRES_URL, default the local server).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use uuid::Uuid;
use ward_bus::consumer::{Consumer, ConsumerMigration, EventHandler};
use ward_bus::events::{
    EventLogHandle, OutgoingRecord, PATIENTS_TOPIC, PatientDeleted, encode_envelope, envelope,
};
use ward_bus::local_log::LocalEventLog;
use ward_bus::testsuite::TestPostgres;
use ward_core::config::SecretUrl;
use ward_core::{WardError, WardResult};
use ward_proto::v1::EventEnvelope;

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(ConsumerMigration)]
    }
}

/// More than two batches (a batch is 256 records), so the instances take turns.
const NUM_EVENTS: usize = 700;

/// Writes one `effects` row per call: a second application of an event would show as a second
/// row. Slow enough per event that the two instances' batches overlap in time.
struct RecordingHandler {
    instance: i64,
    num_handled: Arc<AtomicUsize>,
}

#[async_trait]
impl EventHandler for RecordingHandler {
    async fn handle(&self, txn: &DatabaseTransaction, envelope: &EventEnvelope) -> WardResult<()> {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO effects (event_id, instance) VALUES ($1, $2)",
            [envelope.event_id.clone().into(), self.instance.into()],
        ))
        .await
        .map_err(|error| WardError::internal("recording an effect", error))?;
        tokio::time::sleep(Duration::from_micros(200)).await;
        self.num_handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A fresh database with the consumer's tables and an `effects` table for handlers to write,
/// and an empty local event log in a folder of its own (removed by the test).
async fn fixture(name: &str) -> (TestPostgres, DatabaseConnection, EventLogHandle, PathBuf) {
    let postgres = TestPostgres::create(name, "consumer").await;
    let db = postgres.db().clone();
    Migrator::up(&db, None).await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE effects (event_id TEXT NOT NULL, instance BIGINT NOT NULL)",
    )
    .await
    .unwrap();
    let folder = std::env::temp_dir().join(format!("ward-consumer-{}", Uuid::now_v7()));
    let log_url = SecretUrl::new(format!(
        "sqlite://{}?mode=rwc",
        folder.join("events.db").display()
    ));
    let log: EventLogHandle = Arc::new(LocalEventLog::open(&log_url).await.unwrap());
    (postgres, db, log, folder)
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_unnumbered_instances_read_each_record_once_and_apply_each_event_once() {
    // Arrange: a fresh PostgreSQL database, a log of 700 events, two consumers on two pools,
    // both instance 0 of 1 (the default, as every autoscaled task runs).
    let (postgres, first_db, log, folder) = fixture("consumer").await;
    let second_db = postgres.connect_again().await;
    let mut records = Vec::new();
    for _ in 0..NUM_EVENTS {
        let subject = Uuid::now_v7();
        let payload = PatientDeleted {
            patient_id: subject.to_string(),
            version: 2,
        };
        let event = envelope("patients", subject, "test", Utc::now(), &payload);
        records.push(OutgoingRecord {
            topic: PATIENTS_TOPIC.to_string(),
            key: subject.to_string(),
            value: encode_envelope(&event),
        });
    }
    log.append(records).await.unwrap();
    let counters = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let consumers = [first_db.clone(), second_db.clone()]
        .into_iter()
        .enumerate()
        .map(|(instance, db)| {
            let handler = Arc::new(RecordingHandler {
                instance: instance as i64,
                num_handled: Arc::clone(&counters[instance]),
            });
            Consumer::new("scaled", db, log.clone(), &[PATIENTS_TOPIC], handler)
        })
        .collect::<Vec<_>>();

    // Act: both consume side by side, round after round, until neither finds anything.
    let mut num_read = [0usize; 2];
    let mut num_rounds = 0;
    loop {
        num_rounds += 1;
        assert!(
            num_rounds < 100,
            "the consumers never caught up: {num_read:?}"
        );
        let (first, second) =
            tokio::join!(consumers[0].consume_once(), consumers[1].consume_once());
        let (first, second) = (first.unwrap(), second.unwrap());
        num_read[0] += first;
        num_read[1] += second;
        if first + second == 0 {
            break;
        }
    }

    // Assert: every record read once (no instance fetched what the other applied), every event
    // applied once, and the offset at the end of the log.
    assert_eq!(num_read[0] + num_read[1], NUM_EVENTS, "{num_read:?}");
    let handled: Vec<usize> = counters
        .iter()
        .map(|counter| counter.load(Ordering::SeqCst))
        .collect();
    assert_eq!(handled.iter().sum::<usize>(), NUM_EVENTS, "{handled:?}");
    assert_eq!(
        scalar(&first_db, "SELECT COUNT(*) AS n FROM effects").await,
        NUM_EVENTS as i64
    );
    assert_eq!(
        scalar(
            &first_db,
            "SELECT COUNT(DISTINCT event_id) AS n FROM effects"
        )
        .await,
        NUM_EVENTS as i64
    );
    assert_eq!(
        scalar(
            &first_db,
            "SELECT next_offset AS n FROM consumer_offsets WHERE consumer = 'scaled'"
        )
        .await,
        NUM_EVENTS as i64
    );

    second_db.close().await.unwrap();
    postgres.drop_database().await;
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_skips_a_partition_another_has_claimed() {
    // Arrange: one event in the log; a transaction holding the partition's claim, as a batch in
    // progress on another task would.
    let (postgres, db, log, folder) = fixture("consumer").await;
    let subject = Uuid::now_v7();
    let event = envelope(
        "patients",
        subject,
        "test",
        Utc::now(),
        &PatientDeleted {
            patient_id: subject.to_string(),
            version: 2,
        },
    );
    log.append(vec![OutgoingRecord {
        topic: PATIENTS_TOPIC.to_string(),
        key: subject.to_string(),
        value: encode_envelope(&event),
    }])
    .await
    .unwrap();
    let num_handled = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(RecordingHandler {
        instance: 0,
        num_handled: Arc::clone(&num_handled),
    });
    let consumer = Consumer::new(
        "scaled",
        db.clone(),
        log.clone(),
        &[PATIENTS_TOPIC],
        handler,
    );
    let holder_db = postgres.connect_again().await;
    let holder = holder_db.begin().await.unwrap();
    holder
        .execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock(hashtextextended('ward.consumer/scaled/{PATIENTS_TOPIC}/0', 0))"
        ))
        .await
        .unwrap();

    // Act + Assert: while the claim is held the consumer reads nothing and does not fail; once it
    // is released the event is applied.
    assert_eq!(consumer.consume_once().await.unwrap(), 0);
    assert_eq!(num_handled.load(Ordering::SeqCst), 0);
    holder.commit().await.unwrap();
    assert_eq!(consumer.consume_once().await.unwrap(), 1);
    assert_eq!(num_handled.load(Ordering::SeqCst), 1);

    holder_db.close().await.unwrap();
    postgres.drop_database().await;
    let _ = std::fs::remove_dir_all(&folder);
}

/// Writes an effect, then fails for the events it was told to: `unusable` always (as a handler
/// that finds an event it cannot use), `fail_once` on the first try only (as a broken database
/// connection would).
struct FailingHandler {
    unusable: String,
    fail_once: std::sync::Mutex<Option<String>>,
}

#[async_trait]
impl EventHandler for FailingHandler {
    async fn handle(&self, txn: &DatabaseTransaction, envelope: &EventEnvelope) -> WardResult<()> {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO effects (event_id, instance) VALUES ($1, 0)",
            [envelope.event_id.clone().into()],
        ))
        .await
        .map_err(|error| WardError::internal("recording an effect", error))?;
        if envelope.event_id == self.unusable {
            return Err(WardError::invalid_field("payload", "not usable"));
        }
        let mut fail_once = self.fail_once.lock().unwrap();
        if fail_once.as_deref() == Some(envelope.event_id.as_str()) {
            *fail_once = None;
            return Err(WardError::Unavailable("the database went away".into()));
        }
        Ok(())
    }
}

// A batch first runs without a savepoint per record; a failing record rolls it back and the
// batch runs again with savepoints. Neither an unusable event's writes nor a failed attempt's
// may survive, and every other event is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_records_roll_back_alone_and_the_rest_apply_once() {
    // Arrange: ten events; the fourth is unusable, the seventh fails once.
    let (postgres, db, log, folder) = fixture("consumer_failures").await;
    let mut event_ids = Vec::new();
    let mut records = Vec::new();
    for _ in 0..10 {
        let subject = Uuid::now_v7();
        let payload = PatientDeleted {
            patient_id: subject.to_string(),
            version: 2,
        };
        let event = envelope("patients", subject, "test", Utc::now(), &payload);
        event_ids.push(event.event_id.clone());
        records.push(OutgoingRecord {
            topic: PATIENTS_TOPIC.to_string(),
            key: subject.to_string(),
            value: encode_envelope(&event),
        });
    }
    log.append(records).await.unwrap();
    let handler = Arc::new(FailingHandler {
        unusable: event_ids[3].clone(),
        fail_once: std::sync::Mutex::new(Some(event_ids[6].clone())),
    });
    let consumer = Consumer::new(
        "failing",
        db.clone(),
        log.clone(),
        &[PATIENTS_TOPIC],
        handler,
    );

    // Act: the first round stops at the failing event (after the six before it), the second
    // applies the rest.
    let first = consumer.consume_once().await;
    let offset_after_first = scalar(
        &db,
        "SELECT next_offset AS n FROM consumer_offsets WHERE consumer = 'failing'",
    )
    .await;
    let second = consumer.consume_once().await;

    // Assert
    assert!(first.is_err(), "{first:?}");
    assert_eq!(offset_after_first, 6);
    assert_eq!(second.unwrap(), 4);
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) AS n FROM effects").await,
        9,
        "each event but the unusable one, once"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(DISTINCT event_id) AS n FROM effects").await,
        9
    );
    let unusable_effects = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM effects WHERE event_id = $1",
            [event_ids[3].clone().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unusable_effects.try_get::<i64>("", "n").unwrap(), 0);
    assert_eq!(
        scalar(
            &db,
            "SELECT next_offset AS n FROM consumer_offsets WHERE consumer = 'failing'"
        )
        .await,
        10
    );
    postgres.drop_database().await;
    let _ = std::fs::remove_dir_all(&folder);
}

//! The Kafka event log against a real broker: tansu on SQLite, started and stopped by
//! `deploy/local/broker.sh` in a fresh folder per test. tansu must be installed
//! (`deploy/local/broker.sh install`); without it these tests fail, they never skip.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use uuid::Uuid;
use ward_bus::consumer::{Consumer, ConsumerMigration, EventHandler};
use ward_bus::events::{
    EventLog, EventLogHandle, LogRecord, OutgoingRecord, PatientRegistered, encode_envelope,
    envelope,
};
use ward_core::config::SecretUrl;
use ward_core::{WardError, WardResult};
use ward_kafka::{KafkaEventLog, partition_for_key};
use ward_proto::v1::EventEnvelope;

/// How long a call may take to report a stopped broker.
const UNAVAILABLE_WITHIN: Duration = Duration::from_secs(6);

/// A tansu broker in its own folder and port, stopped (and the folder removed) on drop.
struct Broker {
    dir: PathBuf,
    port: u16,
}

impl Broker {
    /// A folder and a free port, no broker yet.
    fn reserve() -> Self {
        require_tansu();
        let dir = std::env::temp_dir().join(format!("ward-kafka-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // Probing a port and releasing it is racy (STYLE.md asks for a pre-bound listener), but
        // tansu cannot take a bound socket, only an address to bind itself.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        Self { dir, port }
    }

    fn start_new() -> Self {
        let broker = Self::reserve();
        broker.start();
        broker
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (or restarts) tansu on this folder and port; returns when the port accepts.
    fn start(&self) {
        self.script("start");
    }

    fn stop(&self) {
        self.script("stop");
    }

    fn script(&self, action: &str) {
        let output = Command::new("bash")
            .arg(script_path())
            .arg(action)
            .arg(&self.dir)
            .env("WARD_BROKER_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "broker.sh {action} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script_path())
            .arg("stop")
            .arg(&self.dir)
            .env("WARD_BROKER_PORT", self.port.to_string())
            .output();
        if std::env::var_os("WARD_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/broker.sh")
}

/// Fails the test, loudly, when tansu is missing.
fn require_tansu() {
    let on_path = match Command::new("bash")
        .args(["-c", "command -v tansu"])
        .output()
    {
        Ok(output) => output.status.success(),
        Err(_) => false,
    };
    let cargo_home_opt = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let in_cargo_bin = match cargo_home_opt {
        Some(cargo_home) => cargo_home.join("bin/tansu").is_file(),
        None => false,
    };
    assert!(
        on_path || in_cargo_bin,
        "tansu (a Kafka-protocol broker) is not installed, and the ward-kafka tests need a real \
         broker: run `deploy/local/broker.sh install` (cargo install --locked tansu --features \
         libsql, about 10-15 minutes)"
    );
}

fn record(topic: &str, key: &str, value: Vec<u8>) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_string(),
        key: key.to_string(),
        value,
    }
}

/// Every record of every partition of `topic`, per partition.
async fn read_all(log: &dyn EventLog, topic: &str) -> BTreeMap<i32, Vec<LogRecord>> {
    let mut all = BTreeMap::new();
    for partition in log.partitions(topic).await.unwrap() {
        all.insert(
            partition,
            log.fetch(topic, partition, 0, 10_000).await.unwrap(),
        );
    }
    all
}

async fn wait_until_ready(log: &dyn EventLog) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match log.check_ready().await {
            Ok(()) => return,
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "the log did not recover: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    outcome: Result<WardResult<T>, tokio::time::error::Elapsed>,
) {
    match outcome {
        Ok(Err(WardError::Unavailable(message))) => {
            assert!(message.contains("kafka brokers"), "{what}: {message}")
        }
        other => {
            panic!("{what}: expected Unavailable within {UNAVAILABLE_WITHIN:?}, got {other:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_keeps_order_per_key_survives_a_restart_and_reconnects() {
    // Arrange
    let broker = Broker::start_new();
    let log = KafkaEventLog::connect(&[broker.address()], 4, 1)
        .await
        .unwrap();
    let topic = "ward.test.v1";
    log.ensure_topics(&[topic]).await.unwrap();
    // Creating an existing topic is a success.
    log.ensure_topics(&[topic]).await.unwrap();
    assert_eq!(log.partitions(topic).await.unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(log.backend_name(), "kafka");
    log.check_ready().await.unwrap();
    let keys: Vec<String> = (0..10).map(|_| Uuid::now_v7().to_string()).collect();

    // Act: 50 records over 10 keys, in five appends of ten.
    for round in 0..5 {
        let batch = keys
            .iter()
            .map(|key| record(topic, key, format!("{key}/{round}").into_bytes()))
            .collect();
        log.append(batch).await.unwrap();
    }

    // Assert: each key on one partition (Kafka's default), in order, nothing lost or doubled.
    let before_restart = read_all(&log, topic).await;
    let mut rounds_per_key: HashMap<String, Vec<u32>> = HashMap::new();
    for (partition, records) in &before_restart {
        let offsets: Vec<i64> = records.iter().map(|record| record.offset).collect();
        assert!(
            offsets.windows(2).all(|pair| pair[0] < pair[1]),
            "{offsets:?}"
        );
        for record in records {
            assert_eq!(record.topic, topic);
            assert_eq!(record.partition, *partition);
            assert_eq!(*partition, partition_for_key(record.key.as_bytes(), 4));
            let text = String::from_utf8(record.value.clone()).unwrap();
            let (key, round) = text.split_once('/').unwrap();
            assert_eq!(key, record.key);
            rounds_per_key
                .entry(record.key.clone())
                .or_default()
                .push(round.parse().unwrap());
        }
    }
    assert_eq!(rounds_per_key.len(), 10);
    for key in &keys {
        assert_eq!(rounds_per_key[key], vec![0, 1, 2, 3, 4], "key {key}");
    }

    // A fetch from a middle offset returns the tail; max_records bounds it; the end is empty.
    let (busiest, records) = before_restart
        .iter()
        .max_by_key(|(_, records)| records.len())
        .unwrap();
    let middle = records.len() / 2;
    let tail = log
        .fetch(topic, *busiest, records[middle].offset, 10_000)
        .await
        .unwrap();
    assert_eq!(tail, records[middle..].to_vec());
    let two = log
        .fetch(topic, *busiest, records[middle].offset, 2)
        .await
        .unwrap();
    assert_eq!(two, records[middle..middle + 2].to_vec());
    let end = records.last().unwrap().offset + 1;
    assert!(
        log.fetch(topic, *busiest, end, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Act: the broker goes away.
    broker.stop();

    // Assert: calls report Unavailable promptly instead of hanging.
    let ready = tokio::time::timeout(UNAVAILABLE_WITHIN, log.check_ready()).await;
    assert_unavailable("check_ready", ready);
    let late = vec![record(topic, &keys[0], b"late".to_vec())];
    let appended = tokio::time::timeout(UNAVAILABLE_WITHIN, log.append(late)).await;
    assert_unavailable("append", appended);
    let fetched = tokio::time::timeout(UNAVAILABLE_WITHIN, log.fetch(topic, 0, 0, 10)).await;
    assert_unavailable("fetch", fetched);

    // Act: it comes back on the same folder.
    broker.start();
    wait_until_ready(&log).await;

    // Assert: the records survived, and the same instance appends again.
    assert_eq!(read_all(&log, topic).await, before_restart);
    let again = keys
        .iter()
        .map(|key| record(topic, key, format!("{key}/5").into_bytes()))
        .collect();
    log.append(again).await.unwrap();
    let after = read_all(&log, topic).await;
    for (partition, records) in &after {
        let old = &before_restart[partition];
        assert_eq!(&records[..old.len()], &old[..]);
        for record in &records[old.len()..] {
            assert!(record.value.ends_with(b"/5"));
        }
    }
    let num_records: usize = after.values().map(Vec::len).sum();
    assert_eq!(num_records, 60);

    // Act: a restart while the log is idle, then an append straight away (a relay's next batch).
    broker.stop();
    broker.start();
    let after_idle_restart = keys
        .iter()
        .map(|key| record(topic, key, format!("{key}/6").into_bytes()))
        .collect();
    let appended = tokio::time::timeout(UNAVAILABLE_WITHIN, log.append(after_idle_restart)).await;

    // Assert: the broken connection is replaced within the call.
    appended
        .expect("append hung after a restart")
        .expect("append failed right after a restart");
    let num_records: usize = read_all(&log, topic).await.values().map(Vec::len).sum();
    assert_eq!(num_records, 70);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_broker_is_unavailable_and_a_lazy_log_recovers_when_it_starts() {
    // Arrange: nothing listens on the port yet.
    let broker = Broker::reserve();
    let brokers = vec![broker.address()];

    // Act + Assert: connecting fails with the brokers named, promptly.
    let connected =
        tokio::time::timeout(UNAVAILABLE_WITHIN, KafkaEventLog::connect(&brokers, 2, 1)).await;
    match connected {
        Ok(Err(WardError::Unavailable(message))) => assert!(
            message.contains(&format!("kafka brokers {} unreachable", broker.address())),
            "{message}"
        ),
        Ok(Err(other)) => panic!("expected Unavailable, got {other:?}"),
        Ok(Ok(_)) => panic!("connected to a broker that is not running"),
        Err(_) => panic!("connect hung for {UNAVAILABLE_WITHIN:?}"),
    }
    let log = KafkaEventLog::connect_lazy(&brokers, 2, 1);
    let ready = tokio::time::timeout(UNAVAILABLE_WITHIN, log.check_ready()).await;
    assert_unavailable("check_ready", ready);

    // Act: the broker starts.
    broker.start();
    wait_until_ready(&log).await;

    // Assert: a topic named for the first time is created with the configured partitions.
    let topic = "ward.lazy.v1";
    let key = Uuid::now_v7().to_string();
    log.append(vec![record(topic, &key, b"first".to_vec())])
        .await
        .unwrap();
    assert_eq!(log.partitions(topic).await.unwrap(), vec![0, 1]);
    let partition = partition_for_key(key.as_bytes(), 2);
    let records = log.fetch(topic, partition, 0, 10).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value, b"first");
    // The end offset (high watermark) is what consumer lag is measured against.
    assert_eq!(log.end_offset(topic, partition).await.unwrap(), 1);
    assert_eq!(log.end_offset(topic, 1 - partition).await.unwrap(), 0);
}

/// Records each event it handles in `handled`, whose primary key refuses a second time.
struct CountingHandler {
    instance: i64,
    num_handled: Arc<AtomicUsize>,
}

#[async_trait]
impl EventHandler for CountingHandler {
    async fn handle(&self, txn: &DatabaseTransaction, envelope: &EventEnvelope) -> WardResult<()> {
        let statement = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO handled (event_id, instance) VALUES (?, ?)",
            [envelope.event_id.clone().into(), self.instance.into()],
        );
        txn.execute_raw(statement)
            .await
            .map_err(|error| WardError::internal("counting an event", error))?;
        self.num_handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Migrator;

#[async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(ConsumerMigration)]
    }
}

async fn num_handled_rows(db: &DatabaseConnection) -> i64 {
    let statement = Statement::from_string(
        DbBackend::Sqlite,
        "SELECT COUNT(DISTINCT event_id) AS num FROM handled",
    );
    let row = db.query_one_raw(statement).await.unwrap().unwrap();
    row.try_get("", "num").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumer_instances_share_the_partitions_and_apply_each_event_once() {
    // Arrange: a broker, a topic of 4 partitions, one consumer database, two instances.
    let broker = Broker::start_new();
    let log: EventLogHandle = Arc::new(
        KafkaEventLog::connect(&[broker.address()], 4, 1)
            .await
            .unwrap(),
    );
    let topic = "ward.consumed.v1";
    log.ensure_topics(&[topic]).await.unwrap();
    let url = SecretUrl::new(format!(
        "sqlite://{}?mode=rwc",
        broker.dir.join("consumer.db").display()
    ));
    let db = ward_bus::db::connect(&url, "consumer test").await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE handled (event_id TEXT PRIMARY KEY, instance INTEGER NOT NULL)",
    )
    .await
    .unwrap();
    let counters = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let consumers: Vec<Consumer> = (0..2u32)
        .map(|instance| {
            let handler = Arc::new(CountingHandler {
                instance: i64::from(instance),
                num_handled: Arc::clone(&counters[instance as usize]),
            });
            Consumer::new("counting", db.clone(), log.clone(), &[topic], handler)
                .with_share(instance, 2)
        })
        .collect();
    let mut sent = Vec::new();
    for index in 0..40 {
        let patient_id = Uuid::now_v7();
        let payload = PatientRegistered {
            patient_id: patient_id.to_string(),
            name: format!("Patient {index}"),
            email: format!("patient{index}@example.com"),
            registered_date: "2024-06-01".into(),
            version: 1,
        };
        let event = envelope("patients", patient_id, "req-kafka", Utc::now(), &payload);
        sent.push(record(
            topic,
            &patient_id.to_string(),
            encode_envelope(&event),
        ));
    }
    log.append(sent.clone()).await.unwrap();

    // Act: both instances consume side by side until neither finds anything.
    let num_read = consume_until_idle(&consumers).await;
    // A redelivery (a relay retry after a lost acknowledgement) of ten events.
    log.append(sent[..10].to_vec()).await.unwrap();
    let num_reread = consume_until_idle(&consumers).await;

    // Assert
    assert_eq!(num_read, 40);
    assert_eq!(num_reread, 10);
    assert_eq!(num_handled_rows(&db).await, 40);
    let handled: Vec<usize> = counters
        .iter()
        .map(|counter| counter.load(Ordering::SeqCst))
        .collect();
    assert_eq!(handled.iter().sum::<usize>(), 40, "{handled:?}");
    assert!(handled.iter().all(|num| *num > 0), "{handled:?}");
}

async fn consume_until_idle(consumers: &[Consumer]) -> usize {
    let mut num_read = 0;
    for _ in 0..50 {
        let (first, second) =
            tokio::join!(consumers[0].consume_once(), consumers[1].consume_once());
        let num_this_round = first.unwrap() + second.unwrap();
        if num_this_round == 0 {
            return num_read;
        }
        num_read += num_this_round;
    }
    panic!("the consumers never caught up ({num_read} records read)");
}

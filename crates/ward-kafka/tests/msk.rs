//! The Amazon MSK shape against a real broker: SASL/SCRAM (tansu with `--authentication`, users
//! created with `tansu user create`, SCRAM-SHA-512 as on MSK and SCRAM-SHA-256), and consuming
//! tasks that scale without numbers (every one instance 0 of 1, sharing a PostgreSQL database).
//! tansu accepts but does not serve TLS (0.6 builds the acceptor and never uses it), so TLS is
//! only shown to be switched on here: a TLS client cannot talk to a plaintext broker. tansu and
//! PostgreSQL (WARD_TEST_POSTGRES_URL, default the local server) must be there; without them
//! these tests fail, they never skip.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use uuid::Uuid;
use ward_bus::consumer::{Consumer, ConsumerMigration, EventHandler};
use ward_bus::events::{
    EventLog, EventLogHandle, OutgoingRecord, PatientDeleted, encode_envelope, envelope,
};
use ward_bus::testsuite::TestPostgres;
use ward_core::config::SaslMechanism;
use ward_core::{WardError, WardResult};
use ward_kafka::{KafkaEventLog, KafkaSecurity};
use ward_proto::v1::EventEnvelope;

const USER_512: &str = "ward-512";
const USER_256: &str = "ward-256";
/// Looks like a number, has a space and SCRAM's reserved characters (`=` and `,`).
const PASSWORD: &str = "0012345 a=b,c";
const START_WITHIN: Duration = Duration::from_secs(30);
/// How long a refused login may take to come back as an error.
const REFUSED_WITHIN: Duration = Duration::from_secs(10);

/// A tansu broker in its own folder, killed (by its own handle) and removed on drop.
struct ScramBroker {
    dir: PathBuf,
    port: u16,
    child_opt: Option<Child>,
}

impl ScramBroker {
    /// Starts tansu without authentication, creates the users, and restarts it requiring them.
    fn start_with_users() -> Self {
        let dir = std::env::temp_dir().join(format!("ward-kafka-sasl-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // tansu binds the address itself, so the port is probed and released (racy, as in
        // tests/kafka.rs).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut broker = Self {
            dir,
            port,
            child_opt: None,
        };
        broker.start(false);
        broker.create_user(USER_512, "scram512");
        broker.create_user(USER_256, "scram256");
        broker.stop();
        broker.start(true);
        broker
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn start(&mut self, authentication: bool) {
        let url = format!("tcp://{}", self.address());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .unwrap();
        let mut command = Command::new(tansu());
        command
            .current_dir(&self.dir)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if authentication {
            command.arg("--authentication");
        }
        self.child_opt = Some(command.spawn().unwrap());
        let deadline = Instant::now() + START_WITHIN;
        while TcpStream::connect(self.address()).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen within {START_WITHIN:?}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child_opt.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + START_WITHIN;
        while TcpStream::connect(self.address()).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn create_user(&self, name: &str, mechanism: &str) {
        let output = Command::new(tansu())
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://{}", self.address()))
            .args(["--mechanism", mechanism, name, PASSWORD])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tansu user create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for ScramBroker {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("WARD_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The tansu executable; fails the test, loudly, when there is none.
fn tansu() -> PathBuf {
    if let Ok(output) = Command::new("bash")
        .args(["-c", "command -v tansu"])
        .output()
        && output.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_default();
    let in_cargo_bin = cargo_home.join("bin/tansu");
    assert!(
        in_cargo_bin.is_file(),
        "tansu (a Kafka-protocol broker) is not installed, and the ward-kafka tests need a real \
         broker: run `deploy/local/broker.sh install`"
    );
    in_cargo_bin
}

fn log_for(broker: &ScramBroker, security: KafkaSecurity) -> KafkaEventLog {
    KafkaEventLog::connect_lazy(&[broker.address()], 2, 1).with_security(security)
}

async fn assert_refused(what: &str, log: KafkaEventLog) {
    let outcome = tokio::time::timeout(REFUSED_WITHIN, log.connected()).await;
    match outcome {
        Ok(Err(WardError::Unavailable(message))) => {
            assert!(message.contains("kafka brokers"), "{what}: {message}");
            assert!(!message.contains(PASSWORD), "{what}: {message}");
        }
        Ok(Err(other)) => panic!("{what}: expected Unavailable, got {other:?}"),
        Ok(Ok(_)) => panic!("{what}: the broker let the client in"),
        Err(_) => panic!("{what}: no answer within {REFUSED_WITHIN:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_users_produce_and_fetch_and_strangers_are_refused() {
    // Arrange: a broker that requires SCRAM, with one user per mechanism.
    let broker = ScramBroker::start_with_users();
    let scram_512 =
        KafkaSecurity::default().with_scram(SaslMechanism::ScramSha512, USER_512, PASSWORD);
    let scram_256 =
        KafkaSecurity::default().with_scram(SaslMechanism::ScramSha256, USER_256, PASSWORD);
    let topic = "ward.sasl.v1";

    // Act: the SHA-512 user creates a topic and writes; the SHA-256 user reads.
    let writer = log_for(&broker, scram_512).connected().await.unwrap();
    writer.ensure_topics(&[topic]).await.unwrap();
    let key = Uuid::now_v7().to_string();
    writer
        .append(vec![OutgoingRecord {
            topic: topic.to_string(),
            key: key.clone(),
            value: b"envelope bytes".to_vec(),
        }])
        .await
        .unwrap();
    let reader = log_for(&broker, scram_256).connected().await.unwrap();
    let mut fetched = Vec::new();
    for partition in reader.partitions(topic).await.unwrap() {
        fetched.extend(reader.fetch(topic, partition, 0, 10).await.unwrap());
    }

    // Assert
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert_eq!(fetched[0].key, key);
    assert_eq!(fetched[0].value, b"envelope bytes");
    assert!(writer.check_ready().await.is_ok());

    assert_refused("no SASL", log_for(&broker, KafkaSecurity::default())).await;
    let wrong_password =
        KafkaSecurity::default().with_scram(SaslMechanism::ScramSha512, USER_512, "0012346 a=b,c");
    assert_refused("a wrong password", log_for(&broker, wrong_password)).await;
    let wrong_mechanism =
        KafkaSecurity::default().with_scram(SaslMechanism::ScramSha256, USER_512, PASSWORD);
    assert_refused(
        "a user of the other mechanism",
        log_for(&broker, wrong_mechanism),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_does_not_fall_back_to_plaintext() {
    // tansu serves plaintext only: a client configured for TLS must fail, not talk in clear.
    let broker = ScramBroker::start_with_users();
    let tls = KafkaSecurity::default().with_tls(true).with_scram(
        SaslMechanism::ScramSha512,
        USER_512,
        PASSWORD,
    );

    assert_refused("TLS to a plaintext broker", log_for(&broker, tls)).await;
}

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(ConsumerMigration)]
    }
}

/// One `effects` row per application: an event applied twice shows as two rows.
struct RecordingHandler;

#[async_trait]
impl EventHandler for RecordingHandler {
    async fn handle(&self, txn: &DatabaseTransaction, envelope: &EventEnvelope) -> WardResult<()> {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO effects (event_id) VALUES ($1)",
            [envelope.event_id.clone().into()],
        ))
        .await
        .map_err(|error| WardError::internal("recording an effect", error))?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnumbered_consumer_tasks_share_the_partitions_over_scram() {
    // Arrange: 4 partitions on a SCRAM broker; one PostgreSQL database; two consumers on two
    // pools, both instance 0 of 1, as two autoscaled ECS tasks run.
    let broker = ScramBroker::start_with_users();
    let security =
        KafkaSecurity::default().with_scram(SaslMechanism::ScramSha512, USER_512, PASSWORD);
    let log: EventLogHandle = Arc::new(
        KafkaEventLog::connect_lazy(&[broker.address()], 4, 1)
            .with_security(security)
            .connected()
            .await
            .unwrap(),
    );
    let topic = "ward.scaled.v1";
    log.ensure_topics(&[topic]).await.unwrap();
    let postgres = TestPostgres::create("kafka_scaled", "consumer").await;
    let first_db = postgres.db().clone();
    let second_db = postgres.connect_again().await;
    Migrator::up(&first_db, None).await.unwrap();
    first_db
        .execute_unprepared("CREATE TABLE effects (event_id TEXT NOT NULL)")
        .await
        .unwrap();
    let mut records = Vec::new();
    for _ in 0..80 {
        let subject = Uuid::now_v7();
        let payload = PatientDeleted {
            patient_id: subject.to_string(),
            version: 2,
        };
        let event = envelope("patients", subject, "test", Utc::now(), &payload);
        records.push(OutgoingRecord {
            topic: topic.to_string(),
            key: subject.to_string(),
            value: encode_envelope(&event),
        });
    }
    log.append(records).await.unwrap();
    let consumers = [
        Consumer::new(
            "scaled",
            first_db.clone(),
            log.clone(),
            &[topic],
            Arc::new(RecordingHandler),
        ),
        Consumer::new(
            "scaled",
            second_db.clone(),
            log.clone(),
            &[topic],
            Arc::new(RecordingHandler),
        ),
    ];

    // Act: both consume side by side until neither finds anything.
    let mut num_read = 0;
    for round in 0.. {
        assert!(
            round < 100,
            "the consumers never caught up ({num_read} read)"
        );
        let (first, second) =
            tokio::join!(consumers[0].consume_once(), consumers[1].consume_once());
        let num_this_round = first.unwrap() + second.unwrap();
        if num_this_round == 0 {
            break;
        }
        num_read += num_this_round;
    }

    // Assert: every record read once, every event applied once, every partition's offset at its
    // end.
    assert_eq!(num_read, 80);
    let row = first_db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COUNT(*) AS applied, COUNT(DISTINCT event_id) AS distinct_events FROM effects",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "applied").unwrap(), 80);
    assert_eq!(row.try_get::<i64>("", "distinct_events").unwrap(), 80);
    let row = first_db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT SUM(next_offset)::BIGINT AS reached, COUNT(*) AS num_partitions \
             FROM consumer_offsets WHERE consumer = 'scaled'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "reached").unwrap(), 80);
    assert_eq!(row.try_get::<i64>("", "num_partitions").unwrap(), 4);

    second_db.close().await.unwrap();
    postgres.drop_database().await;
}

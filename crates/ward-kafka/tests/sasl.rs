//! SASL/SCRAM against a real broker: tansu with `--authentication`, users created with
//! `tansu user create` (SCRAM-SHA-512 as on Amazon MSK, and SCRAM-SHA-256). tansu accepts but does
//! not serve TLS (0.6 builds the acceptor and never uses it), so TLS is only shown to be switched
//! on here: a TLS client cannot talk to a plaintext broker. tansu must be installed
//! (`deploy/local/broker.sh install`); without it these tests fail, they never skip.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;
use ward_bus::events::{EventLog, OutgoingRecord};
use ward_core::WardError;
use ward_core::config::SaslMechanism;
use ward_kafka::{KafkaEventLog, KafkaSecurity};

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

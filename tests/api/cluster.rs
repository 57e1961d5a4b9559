//! A split deployment on loopback: PostgreSQL databases per module, a Kafka-protocol broker
//! (tansu) of its own, and one `ward` process per role, wired by `peers.*`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};

use crate::helpers::{TestApp, Workdir, ward_command};

const MODULES: [&str; 4] = ["auth", "patients", "billing", "analytics"];

/// Where the tests find PostgreSQL; CI starts it (see .ci/run).
fn postgres_base_url() -> String {
    std::env::var("WARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// One database per module, created fresh for a test and dropped after it.
pub struct Databases {
    prefix: String,
}

impl Databases {
    pub async fn create() -> Databases {
        let prefix = format!("ward_t{}", uuid::Uuid::now_v7().simple());
        let admin_url = format!("{}/postgres", postgres_base_url());
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|error| {
            panic!("PostgreSQL is required for the split suite ({admin_url}): {error}; start it or set WARD_TEST_POSTGRES_URL")
        });
        for module in MODULES {
            admin
                .execute_unprepared(&format!("CREATE DATABASE {prefix}_{module}"))
                .await
                .unwrap();
        }
        Databases { prefix }
    }

    pub fn url(&self, module: &str) -> String {
        format!("{}/{}_{module}", postgres_base_url(), self.prefix)
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        // Drop is synchronous; a small runtime on its own thread does the async cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(admin) =
                    Database::connect(format!("{}/postgres", postgres_base_url())).await
                else {
                    return;
                };
                for module in MODULES {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS {prefix}_{module} WITH (FORCE)"
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A tansu broker with its log in its own folder, so a restart keeps the log.
pub struct Broker {
    dir: PathBuf,
    pub port: u16,
    child_opt: Option<Child>,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        let dir = dir.join("broker");
        std::fs::create_dir_all(&dir).unwrap();
        // tansu cannot take a pre-bound socket, so pick a free port and release it just before;
        // the window is tiny and only this test uses the port.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut broker = Broker {
            dir,
            port,
            child_opt: None,
        };
        broker.restart();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker (again) on the same port and storage.
    pub fn restart(&mut self) {
        assert!(self.child_opt.is_none(), "the broker is already running");
        let tansu = which_tansu();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .unwrap();
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        self.child_opt = Some(child);
        let addr: SocketAddr = self.address().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {addr}: see {}",
                self.dir.join("broker.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child_opt.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn which_tansu() -> PathBuf {
    let candidates = [
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/tansu")),
        Some(PathBuf::from("/usr/local/bin/tansu")),
    ];
    for candidate in candidates.into_iter().flatten() {
        if candidate.is_file() {
            return candidate;
        }
    }
    if let Ok(output) = Command::new("sh").args(["-c", "command -v tansu"]).output() {
        let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    panic!(
        "tansu (a Kafka-protocol broker) is required for the split suite: run `deploy/local/broker.sh install`"
    );
}

/// One role process of the cluster: its name, its roles and extra settings.
struct NodeSpec {
    roles: &'static str,
    env: Vec<(String, String)>,
    demo: bool,
}

/// Five roles in five processes, plus a second patients and a second analytics instance.
// Fields drop in order: processes first, then the broker, the databases, the folder.
pub struct Cluster {
    nodes: BTreeMap<&'static str, TestApp>,
    pub broker: Broker,
    databases: Databases,
    pub dir: Workdir,
    specs: BTreeMap<&'static str, NodeSpec>,
    grpc_addrs: BTreeMap<&'static str, SocketAddr>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = Workdir::new();
        let databases = Databases::create().await;
        let broker = Broker::start(&dir.path);
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            broker,
            databases,
            dir,
            specs: BTreeMap::new(),
            grpc_addrs: BTreeMap::new(),
        };
        let migrate = ward_command(&cluster.dir.path, &["migrate"])
            .envs(cluster.common_env())
            .output()
            .unwrap();
        assert!(
            migrate.status.success(),
            "ward migrate: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        let keys = ward_command(&cluster.dir.path, &["keys", "generate"])
            .output()
            .unwrap();
        assert!(keys.status.success());

        let instance = |i: u32| {
            vec![
                ("WARD_EVENTS__CONSUMER_INSTANCE".to_string(), i.to_string()),
                (
                    "WARD_EVENTS__CONSUMER_INSTANCES".to_string(),
                    "2".to_string(),
                ),
            ]
        };
        cluster.specs.insert(
            "auth",
            NodeSpec {
                roles: "auth",
                env: vec![],
                demo: true,
            },
        );
        cluster.specs.insert(
            "patients",
            NodeSpec {
                roles: "patients",
                env: vec![],
                demo: true,
            },
        );
        cluster.specs.insert(
            "patients-2",
            NodeSpec {
                roles: "patients",
                env: vec![],
                demo: false,
            },
        );
        cluster.specs.insert(
            "billing",
            NodeSpec {
                roles: "billing",
                env: vec![],
                demo: false,
            },
        );
        cluster.specs.insert(
            "analytics",
            NodeSpec {
                roles: "analytics",
                env: instance(0),
                demo: false,
            },
        );
        cluster.specs.insert(
            "analytics-2",
            NodeSpec {
                roles: "analytics",
                env: instance(1),
                demo: false,
            },
        );
        for name in [
            "auth",
            "patients",
            "patients-2",
            "billing",
            "analytics",
            "analytics-2",
        ] {
            cluster.start_node(name).await;
        }
        cluster.specs.insert(
            "gateway",
            NodeSpec {
                roles: "gateway",
                env: vec![],
                demo: false,
            },
        );
        cluster.start_node("gateway").await;
        cluster
    }

    fn common_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("WARD_EVENTS__BACKEND".to_string(), "kafka".to_string()),
            ("WARD_EVENTS__BROKERS".to_string(), self.broker.address()),
            ("WARD_EVENTS__PARTITIONS".to_string(), "4".to_string()),
        ];
        for module in MODULES {
            env.push((
                format!("WARD_DATABASE__{}", module.to_uppercase()),
                self.databases.url(module),
            ));
        }
        env
    }

    fn peers_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for module in MODULES {
            let addrs: Vec<String> = self
                .grpc_addrs
                .iter()
                .filter(|(name, _)| name.split('-').next() == Some(module))
                .map(|(_, addr)| format!("http://{addr}"))
                .collect();
            if !addrs.is_empty() {
                env.push((
                    format!("WARD_PEERS__{}", module.to_uppercase()),
                    addrs.join(","),
                ));
            }
        }
        env
    }

    /// Starts (or restarts) one node, on the gRPC address it had before if it ran already.
    pub async fn start_node(&mut self, name: &'static str) {
        let spec = &self.specs[name];
        let mut env = self.common_env();
        env.extend(spec.env.iter().cloned());
        if spec.roles == "gateway" {
            env.extend(self.peers_env());
        }
        if let Some(addr) = self.grpc_addrs.get(name) {
            env.push(("WARD_SERVER__GRPC_ADDR".to_string(), addr.to_string()));
        }
        let mut args = vec!["--roles", spec.roles];
        if spec.demo {
            args.push("--demo");
        }
        let app = TestApp::spawn_with_env(&self.dir.path, &args, &env).await;
        if let Some(addr) = app.grpc_addr_opt {
            self.grpc_addrs.insert(name, addr);
        }
        self.nodes.insert(name, app);
    }

    pub fn gateway(&self) -> &TestApp {
        &self.nodes["gateway"]
    }

    /// One running node by name ("auth", "patients", "patients-2", ...).
    pub fn node(&self, name: &str) -> &TestApp {
        &self.nodes[name]
    }

    /// SIGTERM one node and wait for it to exit.
    pub fn stop_node(&mut self, name: &str) {
        if let Some(app) = self.nodes.remove(name) {
            assert!(app.stop().success(), "{name} stopped cleanly");
        }
    }

    /// SIGKILL one node.
    pub fn kill_node(&mut self, name: &str) {
        if let Some(app) = self.nodes.remove(name) {
            app.kill_hard();
        }
    }
}

/// Where a scenario runs: all five roles in one process, or the split cluster.
pub enum Deployment {
    AllInOne { app: TestApp, _dir: Workdir },
    Split(Box<Cluster>),
}

impl Deployment {
    pub async fn all_in_one() -> Deployment {
        let dir = Workdir::new();
        let app = TestApp::spawn(&dir.path, &["--demo"]).await;
        Deployment::AllInOne { app, _dir: dir }
    }

    pub async fn split() -> Deployment {
        Deployment::Split(Box::new(Cluster::start().await))
    }

    /// The public API, whichever way it is deployed.
    pub fn gateway(&self) -> &TestApp {
        match self {
            Deployment::AllInOne { app, .. } => app,
            Deployment::Split(cluster) => cluster.gateway(),
        }
    }
}

/// Writes each scenario once and runs it both ways (all-in-one and split), as one test each.
#[macro_export]
macro_rules! both_deployments {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test]
                async fn all_in_one() {
                    let deployment = $crate::cluster::Deployment::all_in_one().await;
                    super::$scenario(deployment.gateway()).await;
                }

                #[tokio::test]
                async fn split() {
                    let deployment = $crate::cluster::Deployment::split().await;
                    super::$scenario(deployment.gateway()).await;
                }
            }
        )*
    };
}

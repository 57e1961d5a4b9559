//! Starting a Ward of our own (all-in-one on SQLite or PostgreSQL, or split into one process
//! per role with a broker), as the API tests do, and reading its memory.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::postgres::Databases;

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The split deployment's processes, started in this order; the gateway comes last, once it
/// knows the others' gRPC addresses.
const SPLIT_ROLES: [&str; 4] = ["auth", "patients", "billing", "analytics"];

/// Where Ward runs; `--start` takes every layout but `External`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// All five roles in one process on embedded SQLite (`ward serve --demo`).
    Sqlite,
    /// All five roles in one process, each module on its own PostgreSQL database, the event
    /// log on a fifth.
    Postgres,
    /// One process per role, one PostgreSQL database per module, a tansu broker.
    Split,
    /// A gateway this run did not start (`--url`).
    #[value(skip)]
    External,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Sqlite => "sqlite",
            Layout::Postgres => "postgres",
            Layout::Split => "split",
            Layout::External => "url",
        }
    }
}

/// One `ward` process and what it reported listening on.
struct Node {
    role: &'static str,
    child: Child,
    pid: u32,
    ops_opt: Option<SocketAddr>,
    http_opt: Option<SocketAddr>,
    grpc_opt: Option<SocketAddr>,
}

/// The Ward this run started: its processes, broker, databases and folder, all removed on
/// [`Server::stop`].
pub struct Server {
    pub layout: Layout,
    nodes: Vec<Node>,
    broker_opt: Option<Child>,
    pub databases_opt: Option<Databases>,
    dir: PathBuf,
    /// From spawning the first process to every `/readyz` answering 200.
    pub start_to_ready: Duration,
}

/// The `ward` binary of the target dir cargo uses, debug profile.
pub fn default_ward_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    Path::new(&target).join("debug").join("ward")
}

impl Server {
    pub async fn start(
        layout: Layout,
        ward_bin: &Path,
        pg_url: &str,
        client: &reqwest::Client,
    ) -> anyhow::Result<Server> {
        if layout == Layout::External {
            bail!("a gateway given by URL is not started");
        }
        let ward_bin = std::fs::canonicalize(ward_bin)
            .with_context(|| format!("no ward binary at {}", ward_bin.display()))?;
        let dir = std::env::temp_dir().join(format!("ward-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Server {
            layout,
            nodes: Vec::new(),
            broker_opt: None,
            databases_opt: None,
            dir,
            start_to_ready: Duration::ZERO,
        };
        match server.start_nodes(&ward_bin, pg_url, client).await {
            Ok(()) => Ok(server),
            Err(error) => {
                server.stop().await;
                Err(error)
            }
        }
    }

    async fn start_nodes(
        &mut self,
        ward_bin: &Path,
        pg_url: &str,
        client: &reqwest::Client,
    ) -> anyhow::Result<()> {
        let mut env: Vec<(String, String)> = Vec::new();
        if self.layout != Layout::Sqlite {
            let databases = Databases::create(pg_url).await?;
            for module in SPLIT_ROLES {
                env.push((
                    format!("WARD_DATABASE__{}", module.to_uppercase()),
                    databases.url(module),
                ));
            }
            env.push(("WARD_EVENTS__LOCAL_URL".into(), databases.url("events")));
            self.databases_opt = Some(databases);
        }
        // Database creation and the broker's start are set-up, not Ward's start.
        if self.layout != Layout::Split {
            let started = Instant::now();
            let node = spawn_node(ward_bin, &self.dir, "all", &["--demo"], &env).await;
            self.nodes.push(node?);
            wait_ready(client, &self.nodes).await?;
            self.start_to_ready = started.elapsed();
            return Ok(());
        }
        let broker_addr = self.start_broker().await?;
        env.push(("WARD_EVENTS__BACKEND".into(), "kafka".into()));
        env.push(("WARD_EVENTS__BROKERS".into(), broker_addr));
        run_to_end(ward_bin, &self.dir, &["migrate"], &env).await?;
        run_to_end(ward_bin, &self.dir, &["keys", "generate"], &env).await?;
        let started = Instant::now();
        for role in SPLIT_ROLES {
            // The demo user lives in auth; the demo patients in patients.
            let demo = matches!(role, "auth" | "patients");
            let args: Vec<&str> = ["--roles", role]
                .into_iter()
                .chain(demo.then_some("--demo"))
                .collect();
            let node = spawn_node(ward_bin, &self.dir, role, &args, &env).await;
            self.nodes.push(node?);
        }
        let mut gateway_env = env.clone();
        for node in &self.nodes {
            let grpc = node
                .grpc_opt
                .with_context(|| format!("the {} process reported no gRPC listener", node.role))?;
            gateway_env.push((
                format!("WARD_PEERS__{}", node.role.to_uppercase()),
                format!("http://{grpc}"),
            ));
        }
        let gateway = spawn_node(
            ward_bin,
            &self.dir,
            "gateway",
            &["--roles", "gateway"],
            &gateway_env,
        )
        .await;
        self.nodes.push(gateway?);
        wait_ready(client, &self.nodes).await?;
        self.start_to_ready = started.elapsed();
        Ok(())
    }

    /// Starts tansu on a free port with its log in our folder; returns its address.
    async fn start_broker(&mut self) -> anyhow::Result<String> {
        let tansu = which_tansu()?;
        let broker_dir = self.dir.join("broker");
        std::fs::create_dir_all(&broker_dir)?;
        // tansu cannot take a bound socket, so pick a free port and release it just before.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(broker_dir.join("broker.log"))?;
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
            ])
            .args([&url, "--storage-engine", "sqlite://tansu.db"])
            .current_dir(&broker_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting tansu")?;
        self.broker_opt = Some(child);
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "tansu did not listen on {addr}: see {}",
                    broker_dir.join("broker.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(addr)
    }

    pub fn base_url(&self) -> String {
        let http = self.nodes.iter().find_map(|node| node.http_opt);
        format!(
            "http://{}",
            http.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
        )
    }

    /// Resident memory of every process of this Ward, in MB, summed.
    pub fn rss_mb(&self) -> Option<f64> {
        total_rss_mb(&self.rss_by_role())
    }

    /// Each process's role and resident memory in MB.
    pub fn rss_by_role(&self) -> Vec<(&'static str, Option<f64>)> {
        self.nodes
            .iter()
            .map(|node| (node.role, rss_mb(node.pid)))
            .collect()
    }

    /// Kills Ward's processes and the broker; the databases stay until [`Server::stop`].
    pub async fn stop_processes(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill().await;
        }
        if let Some(broker) = self.broker_opt.as_mut() {
            let _ = broker.kill().await;
        }
    }

    pub async fn stop(&mut self) {
        self.stop_processes().await;
        if let Some(databases) = self.databases_opt.take() {
            databases.drop_all().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `ward ARGS` to its end (migrate, keys); its stderr is the error when it fails.
async fn run_to_end(
    ward_bin: &Path,
    dir: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> anyhow::Result<()> {
    let output = base_command(ward_bin, dir, env)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running ward {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "ward {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn base_command(ward_bin: &Path, dir: &Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(ward_bin);
    command.current_dir(dir).env_remove("RUST_LOG");
    // Settings of the caller's shell must not change what is measured.
    for (key, _) in std::env::vars() {
        if key.starts_with("WARD_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Starts `ward serve ARGS` with ephemeral ports and JSON logs; returns once it reported its
/// listeners (readiness is awaited by [`wait_ready`]).
async fn spawn_node(
    ward_bin: &Path,
    dir: &Path,
    role: &'static str,
    args: &[&str],
    env: &[(String, String)],
) -> anyhow::Result<Node> {
    let mut command = base_command(ward_bin, dir, env);
    command
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("WARD_SERVER__HTTP_ADDR", "127.0.0.1:0")
        .env("WARD_SERVER__OPS_ADDR", "127.0.0.1:0")
        .env("WARD_SERVER__GRPC_ADDR", "127.0.0.1:0")
        .env("WARD_LOG__FORMAT", "json");
    let mut child = command.spawn().context("starting ward")?;
    let pid = child.id().context("ward exited at once")?;
    let stderr = child.stderr.take().context("ward's stderr")?;
    let (addr_tx, mut addr_rx) = mpsc::unbounded_channel::<(String, SocketAddr)>();
    // Keeps draining the log for the whole run, so the server never blocks on a full pipe.
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["message"] == "listening"
                && let Some(addr) = event["addr"].as_str().and_then(|a| a.parse().ok())
            {
                let listener = event["listener"].as_str().unwrap_or_default().to_string();
                let _ = addr_tx.send((listener, addr));
            } else if line.contains("\"ERROR\"") {
                eprintln!("ward ({role}): {line}");
            }
        }
    });
    let mut node = Node {
        role,
        child,
        pid,
        ops_opt: None,
        http_opt: None,
        grpc_opt: None,
    };
    // Every process has an ops listener, the gateway an http one, module roles a gRPC one.
    let (wants_http, wants_grpc) = match role {
        "all" | "gateway" => (true, false),
        _ => (false, true),
    };
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while node.ops_opt.is_none()
        || (wants_http && node.http_opt.is_none())
        || (wants_grpc && node.grpc_opt.is_none())
    {
        match tokio::time::timeout_at(deadline, addr_rx.recv()).await {
            Ok(Some((listener, addr))) => match listener.as_str() {
                "http" => node.http_opt = Some(addr),
                "grpc" => node.grpc_opt = Some(addr),
                "ops" => node.ops_opt = Some(addr),
                _ => {}
            },
            Ok(None) | Err(_) => {
                let _ = node.child.kill().await;
                bail!("ward ({role}) did not report its listeners (see its log above)");
            }
        }
    }
    Ok(node)
}

/// Waits until every node's `/readyz` answers 200.
async fn wait_ready(client: &reqwest::Client, nodes: &[Node]) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    for node in nodes {
        let ready_url = match node.ops_opt {
            Some(ops) => format!("http://{ops}/readyz"),
            None => bail!("no ops address for ward ({})", node.role),
        };
        loop {
            if let Ok(response) = client.get(&ready_url).send().await
                && response.status() == 200
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("ward ({}) never became ready", node.role);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// tansu from PATH or cargo's bin folder (`deploy/local/broker.sh install` puts it there).
fn which_tansu() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("tansu"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    candidates
        .into_iter()
        .find(|candidate| candidate.is_file())
        .context("tansu (a Kafka-protocol broker) is needed for --start split: run `deploy/local/broker.sh install`")
}

/// The sum of per-process figures; none when any process could not be read.
pub fn total_rss_mb(by_role: &[(&'static str, Option<f64>)]) -> Option<f64> {
    let mut total = 0.0;
    for (_, mb_opt) in by_role {
        total += (*mb_opt)?;
    }
    Some((total * 10.0_f64).round() / 10.0)
}

/// Resident memory of a process in MB, from `/proc/<pid>/status` (`VmRSS`, in kB).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

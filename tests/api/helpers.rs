//! Starts the real `ward` binary on loopback port 0 in a fresh folder and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const DEMO_EMAIL: &str = "testuser@test.com";
pub const DEMO_PASSWORD: &str = "password123";
pub const JOHN_DOE_ID: &str = "123e4567-e89b-12d3-a456-426614174000";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A folder that outlives restarts of the process inside it.
pub struct Workdir {
    pub path: PathBuf,
}

impl Workdir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("ward-e2e-{}", uuid_like()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::env::var_os("WARD_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// A running `ward serve`.
pub struct TestApp {
    child: Child,
    pub http_addr_opt: Option<SocketAddr>,
    pub grpc_addr_opt: Option<SocketAddr>,
    pub ops_addr: SocketAddr,
    pub client: reqwest::Client,
    logs: Arc<Mutex<Vec<String>>>,
}

pub fn ward_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ward"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("WARD_SERVER__HTTP_ADDR", "127.0.0.1:0")
        .env("WARD_SERVER__OPS_ADDR", "127.0.0.1:0")
        .env("WARD_SERVER__GRPC_ADDR", "127.0.0.1:0")
        .env("WARD_LOG__FORMAT", "json")
        .env("WARD_LOG__FILTER", "info,sqlx=warn,rskafka=warn")
        .env("WARD_EVENTS__POLL_INTERVAL_MILLIS", "100");
    for (key, _) in std::env::vars() {
        let is_inherited_ward_setting = key.starts_with("WARD_")
            && !matches!(
                key.as_str(),
                "WARD_SERVER__HTTP_ADDR"
                    | "WARD_SERVER__OPS_ADDR"
                    | "WARD_SERVER__GRPC_ADDR"
                    | "WARD_LOG__FORMAT"
                    | "WARD_LOG__FILTER"
                    | "WARD_EVENTS__POLL_INTERVAL_MILLIS"
                    | "WARD_KEEP_TEST_DIRS"
            );
        if is_inherited_ward_setting {
            command.env_remove(key);
        }
    }
    command
}

impl TestApp {
    /// Starts `ward serve` with `args` in `dir` and waits until it is ready.
    pub async fn spawn(dir: &Path, args: &[&str]) -> TestApp {
        Self::spawn_with_env(dir, args, &[]).await
    }

    /// Like [`TestApp::spawn`], with extra environment (`WARD_*` settings).
    pub async fn spawn_with_env(dir: &Path, args: &[&str], env: &[(String, String)]) -> TestApp {
        let app = Self::start(dir, args, env).await;
        app.wait_ready().await;
        app
    }

    /// Starts `ward serve` with `args` in `dir` and waits for its listeners only.
    pub async fn spawn_without_readiness(dir: &Path, args: &[&str]) -> TestApp {
        Self::start(dir, args, &[]).await
    }

    /// Starts `ward serve` and waits for its listeners (and its gRPC listener when it runs a module).
    pub async fn start(dir: &Path, args: &[&str], env: &[(String, String)]) -> TestApp {
        let mut full_args = vec!["serve"];
        full_args.extend_from_slice(args);
        let expects_http = !args.iter().any(|arg| arg.starts_with("--roles"))
            || args.iter().any(|arg| arg.contains("gateway"));
        let roles_arg_opt = args
            .iter()
            .position(|arg| *arg == "--roles")
            .and_then(|i| args.get(i + 1));
        let expects_grpc = match roles_arg_opt {
            Some(roles) => roles.split(',').any(|role| role != "gateway"),
            None => true,
        };
        let mut command = ward_command(dir, &full_args);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the ward binary starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel::<(String, SocketAddr)>();
        let thread_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("{line}");
                }
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "listening"
                    && let Some(addr) = event["addr"].as_str().and_then(|a| a.parse().ok())
                {
                    let listener = event["listener"].as_str().unwrap_or_default().to_string();
                    let _ = addr_tx.send((listener, addr));
                }
                thread_logs.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut http_addr_opt = None;
        let mut ops_addr_opt = None;
        let mut grpc_addr_opt = None;
        while ops_addr_opt.is_none()
            || (expects_http && http_addr_opt.is_none())
            || (expects_grpc && grpc_addr_opt.is_none())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match addr_rx.recv_timeout(left) {
                Ok((listener, addr)) if listener == "http" => http_addr_opt = Some(addr),
                Ok((listener, addr)) if listener == "ops" => ops_addr_opt = Some(addr),
                Ok((listener, addr)) if listener == "grpc" => grpc_addr_opt = Some(addr),
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "ward did not start listening:\n{}",
                        logs.lock().unwrap().join("\n")
                    );
                }
            }
        }
        TestApp {
            child,
            http_addr_opt,
            grpc_addr_opt,
            ops_addr: ops_addr_opt.unwrap(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            logs,
        }
    }

    /// Waits until `/readyz` on the ops listener says ready.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let url = format!("http://{}/readyz", self.ops_addr);
            if let Ok(response) = self.client.get(&url).send().await
                && response.status() == 200
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("ward never became ready:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.http_addr_opt.expect("the gateway runs here")
        )
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Logs in as the demo admin and returns the token.
    pub async fn demo_token(&self) -> String {
        let response = self.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        assert_eq!(response.status(), 200, "demo login");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Polls `check` until it returns `Some`, or fails after `timeout` with the logs.
    pub async fn eventually<T, F, Fut>(&self, timeout: Duration, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap()
    }

    /// Sends `signal` (`TERM`, `INT`) and returns at once.
    pub fn send_signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits up to `timeout` for the process to exit; `None` if it still runs.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn patient_body(name: &str, email: &str) -> Value {
    json!({
        "name": name,
        "email": email,
        "address": "1 Test Road, Springfield",
        "dateOfBirth": "1990-01-01",
        "registeredDate": "2024-03-01"
    })
}

/// The JSON body of a response that must have `status` (the body is shown when it has not).
pub async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(actual, status, "{body}");
    body
}

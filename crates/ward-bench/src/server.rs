//! Starting a `ward serve --demo` of our own, as the API tests do, and reading its memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A Ward process this run started; killed and its directory removed on [`Server::stop`].
pub struct Server {
    child: Child,
    dir: PathBuf,
    pub pid: u32,
    pub http_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    /// From spawning the process to `/readyz` answering 200.
    pub start_to_ready: Duration,
}

/// The `ward` binary of the target dir cargo uses, debug profile.
pub fn default_ward_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    Path::new(&target).join("debug").join("ward")
}

impl Server {
    /// Runs `ward serve --demo` (all-in-one, SQLite) in a fresh temporary directory.
    pub async fn start_sqlite(ward_bin: &Path, client: &reqwest::Client) -> anyhow::Result<Server> {
        let ward_bin = std::fs::canonicalize(ward_bin)
            .with_context(|| format!("no ward binary at {}", ward_bin.display()))?;
        let dir = std::env::temp_dir().join(format!("ward-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut command = Command::new(&ward_bin);
        command
            .args(["serve", "--demo"])
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Settings of the caller's shell must not change what is measured.
        for (key, _) in std::env::vars() {
            if key.starts_with("WARD_") {
                command.env_remove(key);
            }
        }
        command
            .env("WARD_SERVER__HTTP_ADDR", "127.0.0.1:0")
            .env("WARD_SERVER__OPS_ADDR", "127.0.0.1:0")
            .env("WARD_SERVER__GRPC_ADDR", "127.0.0.1:0")
            .env("WARD_LOG__FORMAT", "json");
        let started = Instant::now();
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
                    eprintln!("ward: {line}");
                }
            }
        });
        let mut server = Server {
            child,
            dir,
            pid,
            http_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            ops_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            start_to_ready: Duration::ZERO,
        };
        let (mut http_opt, mut ops_opt) = (None, None);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while http_opt.is_none() || ops_opt.is_none() {
            match tokio::time::timeout_at(deadline, addr_rx.recv()).await {
                Ok(Some((listener, addr))) if listener == "http" => http_opt = Some(addr),
                Ok(Some((listener, addr))) if listener == "ops" => ops_opt = Some(addr),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    server.stop().await;
                    bail!("ward did not report its listeners (see its log above)");
                }
            }
        }
        server.http_addr = http_opt.unwrap_or(server.http_addr);
        server.ops_addr = ops_opt.unwrap_or(server.ops_addr);
        let ready_url = format!("http://{}/readyz", server.ops_addr);
        loop {
            if let Ok(response) = client.get(&ready_url).send().await
                && response.status() == 200
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                server.stop().await;
                bail!("ward never became ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.start_to_ready = started.elapsed();
        Ok(server)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Resident memory of a process in MB, from `/proc/<pid>/status` (`VmRSS`, in kB).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

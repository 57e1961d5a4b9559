//! PostgreSQL for the benchmark: a fresh database per module, made and dropped with `psql`,
//! and the PostgreSQL client programs (`psql`, `pgbench`) found on PATH or in Debian's folder.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tokio::process::Command;

/// Databases named `<prefix>_<module>` on one server, dropped by [`Databases::drop_all`].
pub struct Databases {
    base_url: String,
    prefix: String,
    created: Vec<String>,
}

/// The modules' databases plus the local event log's.
const DATABASES: [&str; 5] = ["auth", "patients", "billing", "analytics", "events"];

impl Databases {
    /// `base_url` is the server without a database: `postgres://postgres@127.0.0.1:5432`.
    pub async fn create(base_url: &str) -> anyhow::Result<Databases> {
        let mut databases = Databases {
            base_url: base_url.trim_end_matches('/').to_string(),
            prefix: format!(
                "ward_bench_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            created: Vec::new(),
        };
        for name in DATABASES {
            let database = format!("{}_{name}", databases.prefix);
            let made = databases
                .admin_sql(&format!("CREATE DATABASE {database}"))
                .await;
            if let Err(error) = made {
                databases.drop_all().await;
                return Err(error.context(format!(
                    "PostgreSQL at {base_url} is needed for --start postgres and split (set --pg-url)"
                )));
            }
            databases.created.push(database);
        }
        Ok(databases)
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/{}_{name}", self.base_url, self.prefix)
    }

    /// Runs `sql` in the server's `postgres` database.
    async fn admin_sql(&self, sql: &str) -> anyhow::Result<()> {
        psql(&format!("{}/postgres", self.base_url), sql)
            .await
            .map(|_| ())
    }

    pub async fn drop_all(mut self) {
        for database in std::mem::take(&mut self.created) {
            let sql = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
            if let Err(error) = self.admin_sql(&sql).await {
                eprintln!("ward-bench: could not drop {database}: {error:#}");
            }
        }
    }
}

/// Runs `sql` with `psql` against `url`; returns what it printed (unaligned, tuples only).
pub async fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let output = Command::new(client_program("psql")?)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .await
        .context("running psql")?;
    if !output.status.success() {
        bail!(
            "psql: {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A PostgreSQL client program from PATH, else from the newest `/usr/lib/postgresql/*/bin`
/// (Debian keeps `pgbench` there, off PATH).
pub fn client_program(name: &str) -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    // Numeric order, so 15 comes after 9.
    debian.sort_by_key(|path| {
        path.iter()
            .rev()
            .nth(2)
            .and_then(|version| version.to_str()?.parse::<u32>().ok())
    });
    on_path
        .into_iter()
        .chain(debian.into_iter().rev())
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{name} (PostgreSQL's client programs) is not installed"))
}

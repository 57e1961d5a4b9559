//! The baseline: PostgreSQL alone running the statements Ward issues for each operation,
//! driven by pgbench with as many clients as Ward had workers, on the database Ward just used
//! (its schema, indexes, triggers and rows), with the same durability settings.
//!
//! The scripts in `pgbench/` are the statements read off PostgreSQL's statement log while Ward
//! served one create, read, update and delete (BENCHMARKS.md says how). pgbench runs them as
//! prepared statements, as Ward's driver does. Values Ward computes in the process (ids, the
//! patient's JSON) are computed by the statements from pgbench variables instead.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::postgres::{client_program, psql};

const SETUP_SQL: &str = include_str!("../pgbench/setup.sql");
const CREATE_SQL: &str = include_str!("../pgbench/create.sql");
const READ_SQL: &str = include_str!("../pgbench/read.sql");
const UPDATE_SQL: &str = include_str!("../pgbench/update.sql");
const DELETE_SQL: &str = include_str!("../pgbench/delete.sql");

/// Rows the read script picks from at random (made by `setup.sql`).
const READ_ROWS: u32 = 500;

/// The pgbench script of one mix: one pgbench transaction is one iteration of Ward's mix.
pub fn script(mix: &str) -> anyhow::Result<String> {
    let id_for_crud = "\\set r random(1, 1000000000000)\n";
    Ok(match mix {
        "create" => format!("{id_for_crud}{CREATE_SQL}"),
        "read" => format!("\\set n random(1, {READ_ROWS})\n{READ_SQL}"),
        "crud" => format!(
            "{id_for_crud}{CREATE_SQL}{}{UPDATE_SQL}{DELETE_SQL}",
            READ_SQL.replace(
                "md5('bench-read-' || :n)::uuid",
                "md5('bench-' || :client_id || '-' || :r)::uuid"
            )
        ),
        other => bail!("no baseline script for the {other} mix"),
    })
}

/// Runs `mix`'s script with `clients` clients for `secs` seconds on `url`; returns
/// transactions per second.
pub async fn pgbench(url: &str, mix: &str, clients: usize, secs: u64) -> anyhow::Result<f64> {
    if mix == "read" {
        psql(
            url,
            &SETUP_SQL.replace(":read_rows", &READ_ROWS.to_string()),
        )
        .await?;
    }
    let script_path =
        std::env::temp_dir().join(format!("ward-bench-{mix}-{}.sql", uuid::Uuid::new_v4()));
    std::fs::write(&script_path, script(mix)?)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(clients);
    let output = tokio::time::timeout(
        Duration::from_secs(secs + 60),
        Command::new(client_program("pgbench")?)
            .args(["-n", "-M", "prepared"])
            .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
            .args(["-T", &secs.to_string(), "-f"])
            .arg(&script_path)
            .arg(url)
            .output(),
    )
    .await
    .context("pgbench did not finish")?
    .context("running pgbench")?;
    let _ = std::fs::remove_file(&script_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench ({mix}) failed: {}{}",
            String::from_utf8_lossy(&output.stderr).trim_end(),
            stdout
        );
    }
    parse_tps(&stdout).with_context(|| format!("no tps in pgbench's output: {stdout}"))
}

/// Reads `tps = 1234.5 (without initial connection time)` (PostgreSQL 14 and later).
fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tps_is_read_from_pgbench_output() {
        let output = "number of failed transactions: 0 (0.000%)\n\
                      latency average = 2.229 ms\n\
                      initial connection time = 12.085 ms\n\
                      tps = 7178.153046 (without initial connection time)\n";
        assert_eq!(parse_tps(output), Some(7178.153046));
        assert_eq!(parse_tps("nothing here"), None);
    }

    #[test]
    fn the_crud_script_reads_the_patient_it_created() {
        let crud = script("crud").unwrap();
        assert!(!crud.contains("bench-read-"), "{crud}");
        assert!(crud.contains("md5('bench-' || :client_id || '-' || :r)::uuid"));
        assert!(
            script("read")
                .unwrap()
                .contains("md5('bench-read-' || :n)::uuid")
        );
        assert!(script("search").is_err());
    }
}

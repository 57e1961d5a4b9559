//! `ward-bench`: drives a Ward gateway with concurrent workers and reports rates and latencies
//! (issue 8, first slice: all-in-one on SQLite or any running gateway by URL).

mod load;
mod server;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, ValueEnum};
use serde_json::json;

use load::{Mix, Target};
use server::Server;
use stats::Summary;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StartMode {
    /// `ward serve --demo`, all-in-one on SQLite, in a temporary directory.
    Sqlite,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MixArg {
    Create,
    Read,
    Crud,
    Search,
    All,
}

#[derive(Debug, Parser)]
#[command(about = "Load Ward's patient API and report requests/s and latency per operation")]
struct Args {
    /// Start a Ward of our own in this mode.
    #[arg(long, conflicts_with = "url", required_unless_present = "url")]
    start: Option<StartMode>,
    /// Base URL of a running gateway (its demo user must exist).
    #[arg(long)]
    url: Option<String>,
    /// The `ward` binary for `--start` (default: `$CARGO_TARGET_DIR/debug/ward` or `target/debug/ward`).
    #[arg(long)]
    ward_bin: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "all")]
    mix: MixArg,
    /// Concurrent workers, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Seconds each mix runs.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Patients created before the read mix, which reads them at random.
    #[arg(long, default_value_t = 500)]
    seed_patients: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match bench(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, not anyhow's backtrace: the cause is in the message.
            eprintln!("ward-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> anyhow::Result<()> {
    if args.workers == 0 || args.secs == 0 {
        bail!("--workers and --secs must be at least 1");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.workers * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut server_opt = match args.start {
        Some(StartMode::Sqlite) => {
            let ward_bin = args
                .ward_bin
                .clone()
                .unwrap_or_else(server::default_ward_bin);
            Some(Server::start_sqlite(&ward_bin, &client).await?)
        }
        None => None,
    };
    let outcome = run(&args, client, server_opt.as_ref()).await;
    if let Some(server) = server_opt.as_mut() {
        server.stop().await;
    }
    outcome
}

async fn run(
    args: &Args,
    client: reqwest::Client,
    server_opt: Option<&Server>,
) -> anyhow::Result<()> {
    let base_url = match (server_opt, &args.url) {
        (Some(server), _) => server.base_url(),
        (None, Some(url)) => url.trim_end_matches('/').to_string(),
        (None, None) => bail!("give --start or --url"),
    };
    let rss_idle_mb_opt = server_opt.and_then(|s| server::rss_mb(s.pid));
    let token = load::login(&client, &base_url).await?;
    let run_tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let target = Arc::new(Target {
        client,
        base_url,
        token,
        run_tag,
    });
    let mixes: Vec<Mix> = match args.mix {
        MixArg::Create => vec![Mix::Create],
        MixArg::Read => vec![Mix::Read],
        MixArg::Crud => vec![Mix::Crud],
        MixArg::Search => vec![Mix::Search],
        MixArg::All => Mix::ALL.to_vec(),
    };
    // Reads and searches need patients; a fresh demo has only 15.
    let read_ids = if mixes.iter().any(|m| matches!(m, Mix::Read | Mix::Search)) {
        load::warm_up(target.clone(), args.seed_patients).await?
    } else {
        Vec::new()
    };
    let read_ids = Arc::new(read_ids);
    let duration = Duration::from_secs(args.secs);
    let mut summaries: Vec<Summary> = Vec::new();
    for mix in mixes {
        eprintln!(
            "ward-bench: {} for {}s with {} workers",
            mix.name(),
            args.secs,
            args.workers
        );
        let (records, elapsed) = load::run_mix(
            target.clone(),
            mix,
            args.workers,
            duration,
            read_ids.clone(),
        )
        .await?;
        for (op, record) in records {
            summaries.push(stats::summarize(mix.name(), op, record, elapsed));
        }
    }
    let rss_end_mb_opt = server_opt.and_then(|s| server::rss_mb(s.pid));

    println!("{}", stats::table(&summaries));
    if let Some(server) = server_opt {
        println!(
            "server: start to ready {} ms; RSS idle {} MB, at the end {} MB",
            server.start_to_ready.as_millis(),
            rss_idle_mb_opt.map_or("?".into(), |mb| mb.to_string()),
            rss_end_mb_opt.map_or("?".into(), |mb| mb.to_string()),
        );
    }
    let line = json!({
        "target": if server_opt.is_some() { "sqlite" } else { "url" },
        "workers": args.workers,
        "secs": args.secs,
        "seed_patients": read_ids.len(),
        "start_to_ready_ms": server_opt.map(|s| s.start_to_ready.as_millis() as u64),
        "rss_idle_mb": rss_idle_mb_opt,
        "rss_end_mb": rss_end_mb_opt,
        "ops": summaries.iter().map(Summary::to_json).collect::<Vec<_>>(),
    });
    println!("{line}");
    let num_errors: u64 = summaries.iter().map(|s| s.num_errors).sum();
    if num_errors > 0 {
        bail!("{num_errors} requests failed (see the first errors above)");
    }
    Ok(())
}

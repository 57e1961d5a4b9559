//! `ward-bench`: drives a Ward gateway with concurrent workers and reports rates and latencies
//! per operation, PostgreSQL's own rate for the same SQL (pgbench), and issue 8's budget.

mod baseline;
mod budget;
mod lag;
mod load;
mod postgres;
mod report;
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
use report::{LagSummary, LayoutReport};
use server::{Layout, Server};
use stats::Summary;

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
    /// Start a Ward of our own in each of these layouts, one after the other (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "url",
        required_unless_present = "url"
    )]
    start: Vec<Layout>,
    /// Base URL of a running gateway (its demo user must exist).
    #[arg(long)]
    url: Option<String>,
    /// The `ward` binary for `--start` (default: `$CARGO_TARGET_DIR/debug/ward` or `target/debug/ward`).
    #[arg(long)]
    ward_bin: Option<PathBuf>,
    /// PostgreSQL server for `--start postgres|split` and the baseline (no database name).
    #[arg(
        long,
        env = "WARD_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pg_url: String,
    /// The mixes to run, in this order (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    mix: Vec<MixArg>,
    /// Concurrent workers, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Seconds each mix runs.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Patients created before the read and search mixes, which read them at random.
    #[arg(long, default_value_t = 500)]
    seed_patients: u64,
    /// After the PostgreSQL layout's mixes, run pgbench with the SQL of each mix on its database
    /// (same clients, same time) and print Ward's rate as a ratio of pgbench's.
    #[arg(long)]
    baseline: bool,
    /// Run the create and read mixes again, paced at half the rate each just reached, for
    /// their latency below saturation.
    #[arg(long)]
    half_peak: bool,
    /// Fail when a ratio falls under half of its value recorded in this JSON file.
    #[arg(long)]
    guard: Option<PathBuf>,
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
    if args.baseline && !args.start.contains(&Layout::Postgres) {
        bail!("--baseline measures PostgreSQL: add postgres to --start");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.workers * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut reports = Vec::new();
    let mut num_errors = 0;
    if let Some(url) = &args.url {
        let base_url = url.trim_end_matches('/').to_string();
        let report = run_layout(&args, &client, base_url, None).await?;
        num_errors += print_report(&report);
        reports.push(report);
    }
    for mode in &args.start {
        let ward_bin = args
            .ward_bin
            .clone()
            .unwrap_or_else(server::default_ward_bin);
        let mut server = Server::start(*mode, &ward_bin, &args.pg_url, &client).await?;
        let mut outcome = run_layout(&args, &client, server.base_url(), Some(&server)).await;
        // pgbench runs on Ward's databases with Ward stopped: its relay would otherwise publish
        // the baseline's outbox rows.
        server.stop_processes().await;
        if let Ok(report) = &mut outcome
            && args.baseline
            && let Some(databases) = &server.databases_opt
            && report.layout == Layout::Postgres
        {
            let baselines = run_baselines(&args, report, &databases.url("patients")).await;
            match baselines {
                Ok(baselines) => report.baselines = baselines,
                Err(error) => outcome = Err(error),
            }
        }
        server.stop().await;
        let report = outcome?;
        num_errors += print_report(&report);
        reports.push(report);
    }
    let checks = budget::checks(&reports);
    let ratios = budget::ratios(&reports);
    println!("{}", budget::table(&checks));
    let line = json!({
        "workers": args.workers,
        "secs": args.secs,
        "seed_patients": args.seed_patients,
        "layouts": reports.iter().map(LayoutReport::to_json).collect::<Vec<_>>(),
        "ratios": ratios,
        "budget": checks.iter().map(budget::Check::to_json).collect::<Vec<_>>(),
    });
    println!("{line}");
    if num_errors > 0 {
        bail!("{num_errors} requests failed (see the first errors above)");
    }
    if let Some(guard_path) = &args.guard {
        let failures = budget::guard_failures(guard_path, &ratios)?;
        if !failures.is_empty() {
            bail!(
                "performance regression against {}: {}",
                guard_path.display(),
                failures.join("; ")
            );
        }
        eprintln!("ward-bench: every ratio of {} holds", guard_path.display());
    }
    Ok(())
}

fn print_report(report: &LayoutReport) -> u64 {
    println!("{}", report.text());
    report.summaries.iter().map(|s| s.num_errors).sum()
}

async fn run_layout(
    args: &Args,
    client: &reqwest::Client,
    base_url: String,
    server_opt: Option<&Server>,
) -> anyhow::Result<LayoutReport> {
    let layout = server_opt.map_or(Layout::External, |s| s.layout);
    let rss_idle_mb_opt = server_opt.and_then(Server::rss_mb);
    let token = load::login(client, &base_url).await?;
    let run_tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let target = Arc::new(Target {
        client: client.clone(),
        base_url,
        token,
        run_tag,
        passes: Default::default(),
    });
    let mut mixes: Vec<Mix> = Vec::new();
    for arg in &args.mix {
        let chosen = match arg {
            MixArg::Create => vec![Mix::Create],
            MixArg::Read => vec![Mix::Read],
            MixArg::Crud => vec![Mix::Crud],
            MixArg::Search => vec![Mix::Search],
            MixArg::All => Mix::ALL.to_vec(),
        };
        for mix in chosen {
            if !mixes.contains(&mix) {
                mixes.push(mix);
            }
        }
    }
    // Reads and searches need patients; a fresh demo has only 15.
    let read_ids = if mixes.iter().any(|m| matches!(m, Mix::Read | Mix::Search)) {
        load::warm_up(target.clone(), args.seed_patients).await?
    } else {
        Vec::new()
    };
    let read_ids = Arc::new(read_ids);
    let mut summaries: Vec<Summary> = Vec::new();
    let mut lags = Vec::new();
    for mix in mixes {
        eprintln!(
            "ward-bench: {} {} for {}s with {} workers",
            layout.name(),
            mix.name(),
            args.secs,
            args.workers
        );
        let pass = run_pass(&target, mix, args, &read_ids, None).await?;
        let pass_summaries = pass.summaries(mix.name());
        let peak_opt = pass_summaries.first().map(|s| s.per_sec);
        summaries.extend(pass_summaries);
        lags.extend(pass.lag_opt.map(|lag| (mix.name().to_string(), lag)));
        if args.half_peak
            && matches!(mix, Mix::Create | Mix::Read)
            && let Some(peak) = peak_opt
        {
            let half = peak / 2.0;
            let name = format!("{}@half", mix.name());
            eprintln!("ward-bench: {} {name} at {half:.1}/s", layout.name());
            let pass = run_pass(&target, mix, args, &read_ids, Some(half)).await?;
            summaries.extend(pass.summaries(&name));
            lags.extend(pass.lag_opt.map(|lag| (name, lag)));
        }
    }
    // Read once: the total at the end is the sum of these.
    let rss_by_role = server_opt.map(Server::rss_by_role).unwrap_or_default();
    Ok(LayoutReport {
        layout,
        start_to_ready_ms_opt: server_opt.map(|s| s.start_to_ready.as_millis() as u64),
        rss_idle_mb_opt,
        rss_end_mb_opt: server_opt.and_then(|_| server::total_rss_mb(&rss_by_role)),
        rss_by_role,
        summaries,
        lags,
        baselines: Vec::new(),
    })
}

/// One pass over a mix: what each operation did, and for creates how old each registration
/// was when analytics counted it.
struct PassOutcome {
    records: load::MixRecords,
    elapsed: Duration,
    lag_opt: Option<LagSummary>,
}

impl PassOutcome {
    fn summaries(&self, name: &str) -> Vec<Summary> {
        self.records
            .iter()
            .map(|(op, record)| stats::summarize(name, op, record.clone(), self.elapsed))
            .collect()
    }
}

async fn run_pass(
    target: &Arc<Target>,
    mix: Mix,
    args: &Args,
    read_ids: &Arc<Vec<String>>,
    pace_opt: Option<f64>,
) -> anyhow::Result<PassOutcome> {
    let sampler_opt = if mix == Mix::Create {
        let base = lag::settled_count(target).await?;
        Some((base, lag::Sampler::start(target.clone())))
    } else {
        None
    };
    let (records, elapsed) = load::run_mix(
        target.clone(),
        mix,
        args.workers,
        Duration::from_secs(args.secs),
        read_ids.clone(),
        pace_opt,
    )
    .await?;
    let mut lag_opt = None;
    if let Some((base, sampler)) = sampler_opt {
        let answered_at = records
            .get("create")
            .map(|r| r.answered_at.clone())
            .unwrap_or_default();
        let samples = sampler.finish(base + answered_at.len() as u64).await?;
        let (ages, num_unseen) = lag::ages(&answered_at, &samples, base);
        lag_opt = Some(LagSummary::from_ages(ages, num_unseen));
    }
    Ok(PassOutcome {
        records,
        elapsed,
        lag_opt,
    })
}

/// pgbench with the SQL of each mix Ward ran (create, read, crud), on Ward's patients database.
async fn run_baselines(
    args: &Args,
    report: &LayoutReport,
    patients_url: &str,
) -> anyhow::Result<Vec<report::BaselineResult>> {
    let mut baselines = Vec::new();
    for (mix, op) in [("create", "create"), ("read", "read"), ("crud", "create")] {
        // Iterations per second: every op of a crud iteration runs once.
        let Some(ward_rate) = report.rate(mix, op) else {
            continue;
        };
        eprintln!(
            "ward-bench: pgbench {mix} for {}s with {} clients",
            args.secs, args.workers
        );
        let tps = baseline::pgbench(patients_url, mix, args.workers, args.secs).await?;
        baselines.push(report::BaselineResult {
            mix: mix.to_string(),
            tps,
            ward_rate,
            ratio_opt: (tps > 0.0).then(|| budget::round3(ward_rate / tps)),
        });
    }
    Ok(baselines)
}

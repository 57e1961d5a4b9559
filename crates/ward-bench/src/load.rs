//! The request mixes: N workers, each looping over its mix until the time is up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};

use crate::stats::OpRecord;

/// Names carry these words, so a three-letter prefix of one finds about a tenth of the patients.
const SURNAMES: [&str; 10] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Noether",
    "Curie",
    "Franklin",
    "Meitner",
    "Ramanujan",
    "Hypatia",
    "Babbage",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    Create,
    Read,
    Crud,
    Search,
}

impl Mix {
    pub const ALL: [Mix; 4] = [Mix::Create, Mix::Read, Mix::Crud, Mix::Search];

    pub fn name(self) -> &'static str {
        match self {
            Mix::Create => "create",
            Mix::Read => "read",
            Mix::Crud => "crud",
            Mix::Search => "search",
        }
    }
}

/// What every worker shares: the client, the token and the ids made in the warm-up.
pub struct Target {
    pub client: Client,
    pub base_url: String,
    pub token: String,
    /// Makes emails unique across runs against the same long-running gateway.
    pub run_tag: String,
    /// Numbers each pass over a mix, so a second pass (e.g. at half the rate) makes new emails.
    pub passes: AtomicU64,
}

/// The operations of one mix, by name, after `secs` of `num_workers` looping.
pub type MixRecords = BTreeMap<&'static str, OpRecord>;

pub async fn login(client: &Client, base_url: &str) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base_url}/auth/login"))
        .json(&json!({"email": "testuser@test.com", "password": "password123"}))
        .send()
        .await
        .context("login")?;
    let status = response.status();
    let body: Value = response.json().await.context("login answer")?;
    match body["token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_string()),
        _ => bail!("login failed: {status} {body}"),
    }
}

fn patient_body(target: &Target, kind: &str, worker: usize, n: u64) -> Value {
    let surname = SURNAMES[(n as usize + worker) % SURNAMES.len()];
    json!({
        "name": format!("Bench{worker}x{n} {surname}"),
        "email": format!("bench-{}-{kind}-{worker}-{n}@example.com", target.run_tag),
        "address": format!("{n} Bench Street, Testville"),
        "dateOfBirth": "1980-01-15",
        "registeredDate": "2024-06-01",
    })
}

/// One request, timed; `Ok` carries the body of a 2xx answer, `Err` a description of the failure.
async fn send(
    target: &Target,
    method: Method,
    path: &str,
    body_opt: Option<(&'static str, Value)>,
) -> (Duration, Result<Value, String>) {
    let mut request = target
        .client
        .request(method, format!("{}{path}", target.base_url))
        .bearer_auth(&target.token);
    if let Some((content_type, body)) = body_opt {
        request = request
            .header("content-type", content_type)
            .body(body.to_string());
    }
    let started = Instant::now();
    let outcome = match request.send().await {
        Ok(response) => read_answer(response).await,
        Err(error) => Err(format!("transport: {error}")),
    };
    (started.elapsed(), outcome)
}

async fn read_answer(response: Response) -> Result<Value, String> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{status}: {e}"))?;
    if !status.is_success() {
        let shown: String = text.chars().take(300).collect();
        return Err(format!("{status}: {shown}"));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Records the outcome under `op`; the body of a success is handed back.
fn note(
    records: &mut MixRecords,
    op: &'static str,
    (latency, outcome): (Duration, Result<Value, String>),
) -> Option<Value> {
    let record = records.entry(op).or_default();
    match outcome {
        Ok(body) => {
            record.record_ok(latency);
            Some(body)
        }
        Err(error) => {
            record.record_error(error);
            None
        }
    }
}

/// `kind` keeps emails apart between mixes: a deleted patient's email stays taken.
async fn create(
    target: &Target,
    kind: &str,
    records: &mut MixRecords,
    worker: usize,
    n: u64,
) -> Option<String> {
    let body = patient_body(target, kind, worker, n);
    let answer = send(
        target,
        Method::POST,
        "/api/patients",
        Some(("application/json", body)),
    )
    .await;
    let created = note(records, "create", answer)?;
    created["id"].as_str().map(str::to_string)
}

/// Creates `num_patients` patients with a few workers, for the read mix; returns their ids.
pub async fn warm_up(target: Arc<Target>, num_patients: u64) -> anyhow::Result<Vec<String>> {
    let num_workers = 8u64;
    let mut tasks = Vec::new();
    for worker in 0..num_workers {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut records = MixRecords::new();
            let mut ids = Vec::new();
            for n in (worker..num_patients).step_by(num_workers as usize) {
                ids.extend(create(&target, "warm", &mut records, worker as usize, n).await);
            }
            (ids, records)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let (worker_ids, records) = task.await?;
        ids.extend(worker_ids);
        if let Some(error) = records
            .get("create")
            .and_then(|r| r.first_error_opt.clone())
        {
            bail!("warm-up create failed: {error}");
        }
    }
    Ok(ids)
}

/// A small xorshift: the order of reads and searches only needs to differ between workers.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Which iteration of which worker in which pass: what makes a created patient's email unique.
#[derive(Clone, Copy)]
struct Pass<'a> {
    kind: &'a str,
    worker: usize,
    n: u64,
}

async fn one_iteration(
    target: &Target,
    mix: Mix,
    records: &mut MixRecords,
    pass: Pass<'_>,
    seed: &mut u64,
    read_ids: &[String],
) {
    let Pass { kind, worker, n } = pass;
    match mix {
        Mix::Create => {
            create(target, kind, records, worker, n).await;
        }
        Mix::Read if read_ids.is_empty() => {}
        Mix::Read => {
            let id = &read_ids[next_random(seed) as usize % read_ids.len()];
            let answer = send(target, Method::GET, &format!("/api/patients/{id}"), None).await;
            note(records, "read", answer);
        }
        Mix::Search => {
            let surname = SURNAMES[next_random(seed) as usize % SURNAMES.len()];
            let path = format!("/api/patients?name={}", &surname[..3]);
            note(
                records,
                "search",
                send(target, Method::GET, &path, None).await,
            );
        }
        Mix::Crud => {
            let Some(id) = create(target, kind, records, worker, n).await else {
                return;
            };
            let path = format!("/api/patients/{id}");
            note(
                records,
                "read",
                send(target, Method::GET, &path, None).await,
            );
            let change = json!({"address": format!("{n} Other Road, Testville")});
            let patch = Some(("application/merge-patch+json", change));
            note(
                records,
                "update",
                send(target, Method::PATCH, &path, patch).await,
            );
            note(
                records,
                "delete",
                send(target, Method::DELETE, &path, None).await,
            );
        }
    }
}

/// Runs `mix` with `num_workers` workers for `duration`; returns their records and the time
/// taken. With `pace_opt` (iterations per second over all workers) each worker starts its
/// iterations on a fixed schedule instead of back to back; one that falls behind starts the
/// next at once, never in a burst.
pub async fn run_mix(
    target: Arc<Target>,
    mix: Mix,
    num_workers: usize,
    duration: Duration,
    read_ids: Arc<Vec<String>>,
    pace_opt: Option<f64>,
) -> anyhow::Result<(MixRecords, Duration)> {
    let started = Instant::now();
    let deadline = started + duration;
    // A deleted patient's email stays taken, so every pass needs emails of its own.
    let kind: Arc<str> = format!(
        "{}{}",
        mix.name(),
        target.passes.fetch_add(1, Ordering::Relaxed)
    )
    .into();
    // Each worker's period; workers are offset evenly within it.
    let period_opt = pace_opt
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(num_workers as f64 / rate));
    let mut tasks = Vec::new();
    for worker in 0..num_workers {
        let target = target.clone();
        let read_ids = read_ids.clone();
        let kind = kind.clone();
        tasks.push(tokio::spawn(async move {
            let mut records = MixRecords::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1);
            let mut n = 0u64;
            let mut next_start = started
                + period_opt.map_or(Duration::ZERO, |period| {
                    period.mul_f64(worker as f64 / num_workers as f64)
                });
            while next_start < deadline {
                if period_opt.is_some() {
                    tokio::time::sleep_until(next_start.into()).await;
                }
                let pass = Pass {
                    kind: &kind,
                    worker,
                    n,
                };
                one_iteration(&target, mix, &mut records, pass, &mut seed, &read_ids).await;
                n += 1;
                next_start = match period_opt {
                    Some(period) => (next_start + period).max(Instant::now()),
                    None => Instant::now(),
                };
            }
            records
        }));
    }
    let mut merged = MixRecords::new();
    for task in tasks {
        for (op, record) in task.await? {
            merged.entry(op).or_default().merge(record);
        }
    }
    Ok((merged, started.elapsed()))
}

//! Ward at scale (issue 5, item 9): loads N synthetic patients through the batched import into a
//! fresh database, then measures p50/p99 of name-prefix search, birth-date range search, MRN
//! lookup and read by id through the service (each call audited, as in production).
//!
//! ```text
//! cargo bench -p ward-patients --bench scale -- --db postgres --patients 1000000
//! cargo bench -p ward-patients --bench scale -- --db sqlite --patients 1000000
//! ```
//!
//! Options: `--db postgres|sqlite` (default postgres; `WARD_TEST_POSTGRES_URL` names the
//! server), `--patients N` (default 1,000,000), `--queries N` per kind (default 2,000),
//! `--batch N` records per import call (default 1,000), `--in-flight N` batches in progress at
//! once (default 2), `--keep` to leave the database behind.
//! Prints a table, then one JSON line.

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use futures::{StreamExt, stream};
use sea_orm::DatabaseConnection;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{NewPatient, PatientSearch, PatientSearchInput, num_created};
use ward_bus::testsuite::{TestPostgres, sqlite_in};
use ward_core::CallerContext;
use ward_patients::{MrnFormat, PatientsService};

const FIRST_NAMES: [&str; 40] = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "José",
    "Zoë",
    "Ahmed",
    "Fatima",
    "Wei",
    "Mei",
    "Olga",
    "Ivan",
    "Aiko",
    "Kenji",
    "Amara",
    "Kwame",
    "Ingrid",
    "Lars",
    "Priya",
    "Arjun",
    "Lucía",
    "Mateo",
    "Chloé",
    "Noah",
];
const LAST_NAMES: [&str; 40] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Núñez",
    "Müller",
    "Østergaard",
    "Nakamura",
    "Okafor",
];
const STREETS: [&str; 8] = [
    "Elm", "Oak", "Main", "Maple", "Cedar", "Pine", "Lake", "Hill",
];

struct Options {
    db: String,
    num_patients: usize,
    num_queries: usize,
    batch: usize,
    in_flight: usize,
    keep: bool,
}

fn parse_options() -> Options {
    let mut options = Options {
        db: "postgres".into(),
        num_patients: 1_000_000,
        num_queries: 2_000,
        batch: 1_000,
        in_flight: 2,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => options.db = value(),
            "--patients" => options.num_patients = value().parse().expect("--patients N"),
            "--queries" => options.num_queries = value().parse().expect("--queries N"),
            "--batch" => options.batch = value().parse().expect("--batch N"),
            "--in-flight" => options.in_flight = value().parse().expect("--in-flight N"),
            "--keep" => options.keep = true,
            // `cargo bench` passes `--bench`; filters make no sense for one benchmark.
            _ => {}
        }
    }
    assert!(
        options.db == "postgres" || options.db == "sqlite",
        "--db must be postgres or sqlite"
    );
    assert!(options.batch > 0 && options.num_patients > 0 && options.in_flight > 0);
    options
}

/// SplitMix64: a deterministic, dependency-free generator; the data need not be random, only
/// varied and the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn date_between(&mut self, first: NaiveDate, num_days: usize) -> NaiveDate {
        first
            .checked_add_days(Days::new(self.below(num_days) as u64))
            .expect("a date in range")
    }
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid date")
}

/// Patient `index`: a first name, a middle initial and a surname from the lists, so a name
/// prefix matches thousands (as common names do); unique emails.
fn synthetic_patient(rng: &mut Rng, index: usize) -> NewPatient {
    let initial = char::from(b'A' + rng.below(26) as u8);
    NewPatient {
        name: format!(
            "{} {initial}. {}",
            rng.pick(&FIRST_NAMES),
            rng.pick(&LAST_NAMES)
        ),
        email: Some(format!("patient{index}@bench.example")),
        address: Some(format!(
            "{} {} St, Springfield",
            rng.below(9_999) + 1,
            rng.pick(&STREETS)
        )),
        date_of_birth: rng.date_between(date(1930, 1, 1), 90 * 365),
        registered_date: rng.date_between(date(2000, 1, 1), 24 * 365),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    }
}

struct Latencies {
    kind: &'static str,
    samples: Vec<Duration>,
}

impl Latencies {
    fn percentile_millis(&self, percent: usize) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let index = (sorted.len() * percent / 100).min(sorted.len() - 1);
        sorted[index].as_secs_f64() * 1_000.0
    }
}

/// Loads the patients in batches, keeping `options.in_flight` batches in progress at once, as a
/// bulk loader would: one batch's statements run while another holds the number counter.
async fn load(
    service: &PatientsService,
    ctx: &CallerContext,
    options: &Options,
) -> (Vec<Uuid>, Duration) {
    let mut rng = Rng(42);
    let mut ids = Vec::with_capacity(options.num_patients);
    let num_batches = options.num_patients.div_ceil(options.batch);
    let started = Instant::now();
    // Batches are generated as they are needed, so a million records are never all in memory.
    let mut results = stream::iter(0..num_batches)
        .map(|batch_index| {
            let first = batch_index * options.batch;
            let size = options.batch.min(options.num_patients - first);
            let mut batch = Vec::with_capacity(size);
            for index in first..first + size {
                let id = ward_core::id::new_id();
                ids.push(id);
                batch.push((id, synthetic_patient(&mut rng, index)));
            }
            async move {
                let outcomes = service
                    .import_patients(ctx, batch)
                    .await
                    .expect("the import failed");
                assert_eq!(num_created(&outcomes), size as u64, "every record is new");
                size as u64
            }
        })
        .buffered(options.in_flight);
    let mut num_loaded = 0;
    while let Some(size) = results.next().await {
        num_loaded += size;
        if num_loaded % 100_000 < size {
            let rate = num_loaded as f64 / started.elapsed().as_secs_f64();
            eprintln!("loaded {num_loaded} patients ({rate:.0}/s)");
        }
    }
    drop(results);
    (ids, started.elapsed())
}

async fn measure(
    service: &PatientsService,
    ctx: &CallerContext,
    ids: &[Uuid],
    num_queries: usize,
) -> Vec<Latencies> {
    let mut rng = Rng(7);
    let mrn_format = MrnFormat::default();
    let kinds = [
        "name prefix",
        "birth-date range",
        "MRN lookup",
        "read by id",
    ];
    let mut results = Vec::new();
    for kind in kinds {
        let mut samples = Vec::with_capacity(num_queries);
        for _ in 0..num_queries {
            let started = Instant::now();
            match kind {
                "name prefix" => {
                    let names = if rng.below(2) == 0 {
                        &FIRST_NAMES
                    } else {
                        &LAST_NAMES
                    };
                    let prefix: String = rng.pick(names).chars().take(3).collect();
                    let search = PatientSearch::parse(PatientSearchInput {
                        name_opt: Some(prefix),
                        ..PatientSearchInput::default()
                    })
                    .expect("a valid search");
                    let page = service.search_patients(ctx, search).await.expect("search");
                    assert!(!page.items.is_empty());
                }
                "birth-date range" => {
                    let first = rng.date_between(date(1930, 1, 1), 90 * 365);
                    let last = first.checked_add_days(Days::new(30)).expect("a date");
                    let search = PatientSearch::parse(PatientSearchInput {
                        birth_dates: vec![
                            format!("ge{}", first.format("%Y-%m-%d")),
                            format!("le{}", last.format("%Y-%m-%d")),
                        ],
                        ..PatientSearchInput::default()
                    })
                    .expect("a valid search");
                    service.search_patients(ctx, search).await.expect("search");
                }
                "MRN lookup" => {
                    let number = rng.below(ids.len()) as i64 + 1;
                    let search = PatientSearch::parse(PatientSearchInput {
                        identifier_opt: Some(mrn_format.format(number)),
                        ..PatientSearchInput::default()
                    })
                    .expect("a valid search");
                    let page = service.search_patients(ctx, search).await.expect("search");
                    assert_eq!(page.items.len(), 1);
                }
                _ => {
                    let id = ids[rng.below(ids.len())];
                    service.get_patient(ctx, id).await.expect("read");
                }
            }
            samples.push(started.elapsed());
        }
        results.push(Latencies { kind, samples });
    }
    results
}

async fn run(options: &Options, db: DatabaseConnection) {
    PatientsService::migrate(&db).await.expect("migrations");
    let service = PatientsService::new(db, OutboxWaker::default());
    let ctx = CallerContext::system("bench");
    let (ids, import_time) = load(&service, &ctx, options).await;
    // What `ward import patients` does after a large import; not counted in the import time.
    let analyze_started = Instant::now();
    service.analyze().await.expect("analyze");
    let analyze_secs = analyze_started.elapsed().as_secs_f64();
    eprintln!("analyzed in {analyze_secs:.1} s");
    let import_secs = import_time.as_secs_f64();
    let rate = options.num_patients as f64 / import_secs;
    let results = measure(&service, &ctx, &ids, options.num_queries).await;

    println!();
    println!(
        "{} patients on {}: imported in {import_secs:.1} s ({rate:.0} patients/s)",
        options.num_patients, options.db
    );
    println!(
        "{:<18} {:>10} {:>10} {:>8}",
        "query", "p50 ms", "p99 ms", "n"
    );
    let mut json_queries = serde_json::Map::new();
    for latencies in &results {
        let (p50, p99) = (
            latencies.percentile_millis(50),
            latencies.percentile_millis(99),
        );
        println!(
            "{:<18} {p50:>10.2} {p99:>10.2} {:>8}",
            latencies.kind,
            latencies.samples.len()
        );
        json_queries.insert(
            latencies.kind.to_string(),
            serde_json::json!({"p50_ms": round(p50), "p99_ms": round(p99)}),
        );
    }
    let summary = serde_json::json!({
        "db": options.db,
        "patients": options.num_patients,
        "batch": options.batch,
        "in_flight": options.in_flight,
        "queries_per_kind": options.num_queries,
        "import_secs": round(import_secs),
        "import_per_sec": rate.round(),
        "analyze_secs": round(analyze_secs),
        "latency": json_queries,
    });
    println!("{summary}");
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn main() {
    let options = parse_options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        if options.db == "postgres" {
            let postgres = TestPostgres::create("bench", "patients").await;
            run(&options, postgres.db().clone()).await;
            if !options.keep {
                postgres.drop_database().await;
            }
        } else {
            let folder = std::env::temp_dir().join(format!("ward-bench-{}", Uuid::now_v7()));
            std::fs::create_dir_all(&folder).expect("a temporary folder");
            let db = sqlite_in(&folder, "patients").await;
            run(&options, db).await;
            if options.keep {
                eprintln!("kept {}", folder.display());
            } else {
                let _ = std::fs::remove_dir_all(&folder);
            }
        }
    });
}

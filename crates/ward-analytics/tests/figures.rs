//! The figures from a full sequence of patient and billing events, on SQLite and on PostgreSQL:
//! each figure, redelivery, aging, bucketing, and a rebuild that reproduces them exactly.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use uuid::Uuid;
use ward_analytics::{AnalyticsService, events_consumer, rebuild};
use ward_bus::AnalyticsApi;
use ward_bus::analytics::{
    AgingBuckets, CurrencyCode, ReceivablesQuery, Summary, TimeseriesInput, TimeseriesQuery,
};
use ward_bus::events::{
    BILLING_TOPIC, DomainEvent, EventLogHandle, InvoiceBalance, InvoiceIssued, InvoiceVoided,
    LedgerAdjusted, OutgoingRecord, PATIENTS_TOPIC, PatientDeleted, PatientMerged, PatientPurged,
    PatientRegistered, PatientRestored, PatientUnmerged, PaymentRecorded, PaymentRefunded,
    encode_envelope, envelope,
};
use ward_bus::local_log::LocalEventLog;
use ward_bus::testsuite::{TestPostgres, sqlite_in, sqlite_url};
use ward_core::{CallerContext, ErrorCode, Principal, UserRole};
use ward_proto::v1::EventEnvelope;

fn caller() -> CallerContext {
    let principal = Principal::with_role(Uuid::now_v7(), "analyst@example.com", UserRole::Analyst);
    CallerContext::authenticated(principal, "token", "req-test")
}

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

fn instant(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw).unwrap().to_utc()
}

fn currency(raw: &str) -> CurrencyCode {
    CurrencyCode::parse(raw, "currency").unwrap()
}

/// Builds the envelopes of one scenario, each stamped with its own time.
struct Events {
    envelopes: Vec<(String, Uuid, EventEnvelope)>,
}

impl Events {
    fn add<E: DomainEvent>(&mut self, topic: &str, subject: Uuid, at: &str, payload: E) {
        let sent = envelope("test", subject, "", instant(at), &payload);
        self.envelopes.push((topic.to_string(), subject, sent));
    }

    fn records(&self) -> Vec<OutgoingRecord> {
        let mut records = Vec::new();
        for (topic, subject, sent) in &self.envelopes {
            records.push(OutgoingRecord {
                topic: topic.clone(),
                key: subject.to_string(),
                value: encode_envelope(sent),
            });
        }
        records
    }
}

fn registered(id: Uuid, on: &str) -> PatientRegistered {
    PatientRegistered {
        patient_id: id.to_string(),
        name: "n".into(),
        email: "e@example.com".into(),
        registered_date: on.into(),
        version: 1,
    }
}

fn balance(invoice_id: &str, outstanding: i64, issued_on: &str) -> InvoiceBalance {
    InvoiceBalance {
        invoice_id: invoice_id.into(),
        outstanding,
        issued_on: issued_on.into(),
        due_date: "2099-01-01".into(),
    }
}

fn issued(
    patient: Uuid,
    invoice_id: &str,
    code: &str,
    total: i64,
    at: &str,
    on: &str,
) -> InvoiceIssued {
    InvoiceIssued {
        invoice_id: invoice_id.into(),
        patient_id: patient.to_string(),
        currency: code.into(),
        total,
        issued_at: at.into(),
        balance: Some(balance(invoice_id, total, on)),
    }
}

fn payment(
    patient: Uuid,
    amount: i64,
    method: &str,
    at: &str,
    invoices: Vec<InvoiceBalance>,
) -> PaymentRecorded {
    PaymentRecorded {
        payment_id: Uuid::now_v7().to_string(),
        patient_id: patient.to_string(),
        currency: "EUR".into(),
        amount,
        method: method.into(),
        reference: "ref".into(),
        recorded_at: at.into(),
        invoices,
    }
}

/// Patients: A, C and E end active (C unmerged, E restored); B deleted then purged (one
/// subtraction); D merged away. Money: EUR for A (two invoices, one voided third, two
/// payments, a refund, a write-off) and USD for E (one old invoice). Plus one unusable event.
fn scenario() -> Events {
    let mut events = Events {
        envelopes: Vec::new(),
    };
    let (a, b, c, d, e) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    for (id, on) in [
        (a, "2024-01-10"),
        (b, "2024-01-10"),
        (c, "2024-01-15"),
        (d, "2024-02-01"),
        (e, "2024-02-01"),
    ] {
        events.add(
            PATIENTS_TOPIC,
            id,
            &format!("{on}T09:00:00Z"),
            registered(id, on),
        );
    }
    events.add(
        PATIENTS_TOPIC,
        b,
        "2024-02-02T09:00:00Z",
        PatientDeleted {
            patient_id: b.to_string(),
            version: 2,
        },
    );
    events.add(
        PATIENTS_TOPIC,
        b,
        "2024-02-03T09:00:00Z",
        PatientPurged {
            patient_id: b.to_string(),
        },
    );
    let merge = |source: Uuid| PatientMerged {
        source_patient_id: source.to_string(),
        target_patient_id: a.to_string(),
    };
    events.add(PATIENTS_TOPIC, c, "2024-02-04T09:00:00Z", merge(c));
    events.add(PATIENTS_TOPIC, d, "2024-02-04T09:00:00Z", merge(d));
    events.add(
        PATIENTS_TOPIC,
        c,
        "2024-02-05T09:00:00Z",
        PatientUnmerged {
            source_patient_id: c.to_string(),
            target_patient_id: a.to_string(),
        },
    );
    events.add(
        PATIENTS_TOPIC,
        e,
        "2024-02-06T09:00:00Z",
        PatientDeleted {
            patient_id: e.to_string(),
            version: 2,
        },
    );
    events.add(
        PATIENTS_TOPIC,
        e,
        "2024-02-07T09:00:00Z",
        PatientRestored {
            patient_id: e.to_string(),
            version: 3,
        },
    );

    events.add(
        BILLING_TOPIC,
        a,
        "2024-01-05T10:00:00Z",
        issued(
            a,
            "inv-1",
            "EUR",
            10_000,
            "2024-01-05T10:00:00Z",
            "2024-01-05",
        ),
    );
    events.add(
        BILLING_TOPIC,
        a,
        "2024-01-20T10:00:00Z",
        payment(
            a,
            4_000,
            "card",
            "2024-01-20T10:00:00Z",
            vec![balance("inv-1", 6_000, "2024-01-05")],
        ),
    );
    events.add(
        BILLING_TOPIC,
        a,
        "2024-02-10T10:00:00Z",
        issued(a, "inv-3", "EUR", 800, "2024-02-10T10:00:00Z", "2024-02-10"),
    );
    events.add(
        BILLING_TOPIC,
        a,
        "2024-02-12T10:00:00Z",
        InvoiceVoided {
            invoice_id: "inv-3".into(),
            patient_id: a.to_string(),
            currency: "EUR".into(),
            total: 800,
            voided_at: "2024-02-12T10:00:00Z".into(),
            reason: "duplicate".into(),
        },
    );
    // 23:30 at UTC-2 is the next UTC day.
    events.add(
        BILLING_TOPIC,
        a,
        "2024-03-02T01:30:00Z",
        issued(
            a,
            "inv-2",
            "eur",
            5_000,
            "2024-03-01T23:30:00-02:00",
            "2024-03-02",
        ),
    );
    events.add(
        BILLING_TOPIC,
        a,
        "2024-03-02T12:00:00Z",
        payment(
            a,
            2_000,
            "cash",
            "2024-03-02T12:00:00Z",
            vec![balance("inv-2", 3_000, "2024-03-02")],
        ),
    );
    events.add(
        BILLING_TOPIC,
        a,
        "2024-03-03T12:00:00Z",
        LedgerAdjusted {
            entry_id: Uuid::now_v7().to_string(),
            patient_id: a.to_string(),
            currency: "EUR".into(),
            amount: -500,
            kind: "write_off".into(),
            reason: "goodwill".into(),
            posted_at: "2024-03-03T12:00:00Z".into(),
            invoices: vec![balance("inv-2", 2_500, "2024-03-02")],
        },
    );
    events.add(
        BILLING_TOPIC,
        a,
        "2024-03-05T12:00:00Z",
        PaymentRefunded {
            refund_id: Uuid::now_v7().to_string(),
            payment_id: Uuid::now_v7().to_string(),
            patient_id: a.to_string(),
            currency: "EUR".into(),
            amount: 1_000,
            method: "card".into(),
            refunded_at: "2024-03-05T12:00:00Z".into(),
            invoices: vec![balance("inv-1", 7_000, "2024-01-05")],
        },
    );
    events.add(
        BILLING_TOPIC,
        e,
        "2023-10-01T08:00:00Z",
        issued(e, "inv-4", "USD", 300, "2023-10-01T08:00:00Z", "2023-10-01"),
    );
    // Unusable (not a currency): skipped whole, nothing of it counted.
    let mut bad = payment(
        a,
        999,
        "card",
        "2024-03-02T12:00:00Z",
        vec![balance("inv-1", 0, "2024-01-05")],
    );
    bad.currency = "EURO".into();
    events.add(BILLING_TOPIC, a, "2024-03-02T12:00:00Z", bad);
    events
}

fn timeseries_query(
    metric: &str,
    from: &str,
    to: &str,
    interval: &str,
    currency_opt: Option<&str>,
) -> TimeseriesQuery {
    let input = TimeseriesInput {
        metric_opt: Some(metric),
        from_opt: Some(from),
        to_opt: Some(to),
        interval_opt: Some(interval),
        currency_opt,
    };
    TimeseriesQuery::parse(input, date("2024-12-31")).unwrap()
}

async fn values(service: &AnalyticsService, query: TimeseriesQuery) -> Vec<(NaiveDate, i64)> {
    let timeseries = service.timeseries(&caller(), query).await.unwrap();
    timeseries
        .points
        .iter()
        .map(|point| (point.start, point.value))
        .collect()
}

async fn aging(service: &AnalyticsService, code: &str, as_of: &str) -> AgingBuckets {
    let query = ReceivablesQuery {
        currency_opt: Some(currency(code)),
        as_of: date(as_of),
    };
    service.receivables(&caller(), query).await.unwrap().buckets
}

/// Every figure as the queries answer it, plus every figures table row by row.
#[derive(Debug, PartialEq)]
struct Snapshot {
    summary: Summary,
    series: Vec<Vec<(NaiveDate, i64)>>,
    aging: Vec<AgingBuckets>,
    tables: Vec<Vec<String>>,
}

async fn snapshot(db: &DatabaseConnection, service: &AnalyticsService) -> Snapshot {
    let summary = service.summary(&caller()).await.unwrap();
    let mut series = Vec::new();
    for (metric, code_opt) in [
        ("registrations", None),
        ("invoiced", Some("EUR")),
        ("collected", Some("EUR")),
        ("invoiced", Some("USD")),
    ] {
        for interval in ["day", "week", "month"] {
            let query = timeseries_query(metric, "2023-09-01", "2024-04-30", interval, code_opt);
            series.push(values(service, query).await);
        }
    }
    let mut buckets = Vec::new();
    for (code, as_of) in [
        ("EUR", "2024-03-10"),
        ("EUR", "2024-04-10"),
        ("USD", "2024-03-10"),
    ] {
        buckets.push(aging(service, code, as_of).await);
    }
    let mut tables = Vec::new();
    for sql in [
        "SELECT event_type || ':' || CAST(count AS TEXT) FROM event_counts ORDER BY 1",
        "SELECT CAST(date AS TEXT) || ':' || CAST(count AS TEXT) FROM daily_registrations ORDER BY 1",
        "SELECT patient_id || ':' || state FROM patient_states ORDER BY 1",
        "SELECT metric || ':' || CAST(day AS TEXT) || ':' || currency || ':' || CAST(amount AS TEXT) FROM daily_amounts ORDER BY 1",
        "SELECT currency || ':' || method || ':' || CAST(amount AS TEXT) FROM method_amounts ORDER BY 1",
        "SELECT invoice_id || ':' || patient_id || ':' || currency || ':' || CAST(issued_on AS TEXT) || ':' || CAST(outstanding AS TEXT) FROM receivables ORDER BY 1",
    ] {
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap();
        let mut lines = Vec::new();
        for row in rows {
            lines.push(row.try_get_by_index::<String>(0).unwrap());
        }
        tables.push(lines);
    }
    Snapshot {
        summary,
        series,
        aging: buckets,
        tables,
    }
}

/// Runs the whole scenario against a migrated analytics database.
async fn check_figures(db: DatabaseConnection, log: EventLogHandle) {
    // Arrange: the scenario, then every event delivered a second time (a relay retry).
    let events = scenario();
    let mut records = events.records();
    records.extend(events.records());
    let num_records = records.len() as u64;
    log.append(records).await.unwrap();
    let service = AnalyticsService::new(db.clone());

    // Act
    let consumer = events_consumer(db.clone(), log.clone());
    while consumer.consume_once().await.unwrap() > 0 {}

    // Assert: patients.
    let summary = service.summary(&caller()).await.unwrap();
    assert_eq!(summary.patients_registered, 5);
    assert_eq!(summary.active_patients, 3, "{summary:?}");
    assert_eq!(summary.patients_merged, 1);
    assert_eq!(summary.events_by_type["PaymentRecorded"], 2);
    let eur_methods: Vec<(&str, i64)> = summary.payments_by_method["EUR"]
        .iter()
        .map(|(m, a)| (m.as_str(), *a))
        .collect();
    assert_eq!(eur_methods, [("card", 3_000), ("cash", 2_000)]);
    assert!(!summary.payments_by_method.contains_key("USD"));

    // Invoiced and collected per day, from each event's own UTC day.
    let invoiced = values(
        &service,
        timeseries_query("invoiced", "2024-01-01", "2024-03-31", "day", Some("EUR")),
    )
    .await;
    assert_eq!(invoiced.len(), 91);
    let nonzero: Vec<(NaiveDate, i64)> = invoiced.into_iter().filter(|(_, v)| *v != 0).collect();
    assert_eq!(
        nonzero,
        [
            (date("2024-01-05"), 10_000),
            (date("2024-02-10"), 800),
            (date("2024-02-12"), -800),
            (date("2024-03-02"), 5_000)
        ]
    );
    let collected = values(
        &service,
        timeseries_query(
            "collected",
            "2024-01-01",
            "2024-03-31",
            "month",
            Some("EUR"),
        ),
    )
    .await;
    assert_eq!(
        collected,
        [
            (date("2024-01-01"), 4_000),
            (date("2024-02-01"), 0),
            (date("2024-03-01"), 1_000)
        ]
    );
    // Weeks start on Monday (2024-01-01 was one); bounds clip the days counted.
    let weekly = values(
        &service,
        timeseries_query("invoiced", "2024-01-06", "2024-01-21", "week", Some("EUR")),
    )
    .await;
    assert_eq!(
        weekly,
        [
            (date("2024-01-01"), 0),
            (date("2024-01-08"), 0),
            (date("2024-01-15"), 0)
        ]
    );
    let weekly = values(
        &service,
        timeseries_query("invoiced", "2024-01-05", "2024-01-21", "week", Some("EUR")),
    )
    .await;
    assert_eq!(weekly[0], (date("2024-01-01"), 10_000));
    let registrations = values(
        &service,
        timeseries_query("registrations", "2024-01-01", "2024-02-29", "month", None),
    )
    .await;
    assert_eq!(
        registrations,
        [(date("2024-01-01"), 3), (date("2024-02-01"), 2)]
    );

    // Two currencies seen: money queries must name one.
    let unnamed = timeseries_query("collected", "2024-01-01", "2024-01-31", "day", None);
    let error = service.timeseries(&caller(), unnamed).await.unwrap_err();
    assert_eq!(error.error_code(), ErrorCode::InvalidArgument);
    assert_eq!(error.field_errors()[0].field, "currency");
    let unnamed = ReceivablesQuery {
        currency_opt: None,
        as_of: date("2024-03-10"),
    };
    let error = service.receivables(&caller(), unnamed).await.unwrap_err();
    assert_eq!(error.field_errors()[0].field, "currency");

    // Receivables aged at fixed days: inv-1 owes 7000 from 01-05, inv-2 2500 from 03-02.
    assert_eq!(
        aging(&service, "EUR", "2024-03-10").await,
        AgingBuckets {
            days_0_30: 2_500,
            days_31_60: 0,
            days_61_90: 7_000,
            over_90: 0
        }
    );
    assert_eq!(
        aging(&service, "EUR", "2024-04-10").await,
        AgingBuckets {
            days_0_30: 0,
            days_31_60: 2_500,
            days_61_90: 0,
            over_90: 7_000
        }
    );
    assert_eq!(
        aging(&service, "EUR", "2024-01-05").await.total(),
        7_000 + 2_500
    );
    assert_eq!(
        aging(&service, "USD", "2024-03-10").await,
        AgingBuckets {
            days_0_30: 0,
            days_31_60: 0,
            days_61_90: 0,
            over_90: 300
        }
    );
    assert_eq!(
        aging(&service, "GBP", "2024-03-10").await,
        AgingBuckets::default()
    );

    // Rebuild: tamper with the figures first, so only a real recomputation restores them.
    let before = snapshot(&db, &service).await;
    db.execute_unprepared("UPDATE receivables SET outstanding = 1; DELETE FROM patient_states; UPDATE event_counts SET count = 99").await.unwrap();
    assert_ne!(snapshot(&db, &service).await, before);
    let report = rebuild(&db, log.clone()).await.unwrap();
    assert_eq!(report.num_events_replayed, num_records);
    assert_eq!(snapshot(&db, &service).await, before);
    // ... and the consumer, restarted after it, has nothing left to do.
    assert_eq!(
        events_consumer(db.clone(), log)
            .consume_once()
            .await
            .unwrap(),
        0
    );
}

struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn local_log(folder: &Folder) -> EventLogHandle {
    Arc::new(
        LocalEventLog::open(&sqlite_url(&folder.0, "events"))
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn figures_on_sqlite() {
    let folder =
        Folder(std::env::temp_dir().join(format!("ward-analytics-figures-{}", Uuid::new_v4())));
    let db = sqlite_in(&folder.0, "analytics").await;
    AnalyticsService::migrate(&db).await.unwrap();
    check_figures(db, local_log(&folder).await).await;
}

#[tokio::test]
async fn figures_on_postgres() {
    let folder =
        Folder(std::env::temp_dir().join(format!("ward-analytics-figures-{}", Uuid::new_v4())));
    std::fs::create_dir_all(&folder.0).unwrap();
    let postgres = TestPostgres::create("analytics_figures", "analytics").await;
    AnalyticsService::migrate(postgres.db()).await.unwrap();
    check_figures(postgres.db().clone(), local_log(&folder).await).await;
    postgres.drop_database().await;
}

#[tokio::test]
async fn a_rebuild_leaves_other_consumers_rows_alone() {
    let folder =
        Folder(std::env::temp_dir().join(format!("ward-analytics-figures-{}", Uuid::new_v4())));
    let db = sqlite_in(&folder.0, "analytics").await;
    AnalyticsService::migrate(&db).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO processed_events (consumer, event_id, event_type, processed_at) \
         VALUES ('billing', 'e-1', 'PatientRegistered', '2024-01-01T00:00:00Z'); \
         INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, updated_at) \
         VALUES ('billing', 'ward.patients.v1', 0, 7, '2024-01-01T00:00:00Z')",
    )
    .await
    .unwrap();
    let report = rebuild(&db, local_log(&folder).await).await.unwrap();
    assert_eq!(report.num_events_replayed, 0);
    assert!(
        ward_bus::consumer::was_processed(&db, "billing", "e-1")
            .await
            .unwrap()
    );
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT next_offset FROM consumer_offsets WHERE consumer = 'billing'",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

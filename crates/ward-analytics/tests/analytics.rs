//! Analytics against real SQLite files (module database and local event log) in a fresh folder.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;
use ward_analytics::{AnalyticsService, events_consumer};
use ward_bus::AnalyticsApi;
use ward_bus::analytics::{DailyCount, Summary};
use ward_bus::events::{
    BILLING_TOPIC, BillingAccountOpened, EventLogHandle, OutgoingRecord, PATIENTS_TOPIC,
    PatientDeleted, PatientRegistered, encode_envelope, envelope,
};
use ward_bus::local_log::LocalEventLog;
use ward_bus::testsuite::{sqlite_in, sqlite_url};
use ward_core::{CallerContext, Principal, UserRole, WardError};

struct TestAnalytics {
    db: DatabaseConnection,
    log: EventLogHandle,
    service: AnalyticsService,
    folder: PathBuf,
}

impl Drop for TestAnalytics {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// A migrated analytics database, a local event log and the service.
async fn spawn_analytics() -> TestAnalytics {
    let folder = std::env::temp_dir().join(format!("ward-analytics-test-{}", Uuid::new_v4()));
    let db = sqlite_in(&folder, "analytics").await;
    AnalyticsService::migrate(&db).await.unwrap();
    // Migrating twice is a no-op.
    AnalyticsService::migrate(&db).await.unwrap();
    let log: EventLogHandle = Arc::new(
        LocalEventLog::open(&sqlite_url(&folder, "events"))
            .await
            .unwrap(),
    );
    let service = AnalyticsService::new(db.clone());
    TestAnalytics {
        db,
        log,
        service,
        folder,
    }
}

fn caller(role: UserRole) -> CallerContext {
    let principal = Principal::with_role(Uuid::now_v7(), format!("{role}@example.com"), role);
    CallerContext::authenticated(principal, "token", "req-test")
}

fn record(topic: &str, key: Uuid, value: Vec<u8>) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_string(),
        key: key.to_string(),
        value,
    }
}

fn registration(patient_id: Uuid, registered_date: &str) -> Vec<u8> {
    let payload = PatientRegistered {
        patient_id: patient_id.to_string(),
        name: "John Doe".into(),
        email: "john.doe@example.com".into(),
        registered_date: registered_date.into(),
        version: 1,
    };
    encode_envelope(&envelope("patients", patient_id, "", Utc::now(), &payload))
}

fn deletion(patient_id: Uuid) -> Vec<u8> {
    let payload = PatientDeleted {
        patient_id: patient_id.to_string(),
        version: 2,
    };
    encode_envelope(&envelope("patients", patient_id, "", Utc::now(), &payload))
}

fn account_opened(patient_id: Uuid) -> Vec<u8> {
    let payload = BillingAccountOpened {
        account_id: Uuid::now_v7().to_string(),
        patient_id: patient_id.to_string(),
        opened_at: Utc::now().to_rfc3339(),
    };
    encode_envelope(&envelope("billing", patient_id, "", Utc::now(), &payload))
}

fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

async fn summary(app: &TestAnalytics) -> Summary {
    app.service
        .summary(&caller(UserRole::Analyst))
        .await
        .unwrap()
}

#[tokio::test]
async fn figures_count_each_event_once_and_survive_a_restart() {
    // Arrange: three registrations (two on one day, out of date order), one deletion, two
    // accounts opened, and one registration delivered twice.
    let app = spawn_analytics().await;
    let (alice, bob, carol) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let carol_registered = registration(carol, "2024-01-10");
    app.log
        .append(vec![
            record(PATIENTS_TOPIC, alice, registration(alice, "2024-02-01")),
            record(PATIENTS_TOPIC, bob, registration(bob, "2024-01-10")),
            record(PATIENTS_TOPIC, carol, carol_registered.clone()),
            record(PATIENTS_TOPIC, bob, deletion(bob)),
            record(BILLING_TOPIC, alice, account_opened(alice)),
            record(BILLING_TOPIC, carol, account_opened(carol)),
            record(PATIENTS_TOPIC, carol, carol_registered),
        ])
        .await
        .unwrap();
    let consumer = events_consumer(app.db.clone(), app.log.clone());

    // Act
    assert_eq!(consumer.consume_once().await.unwrap(), 7);
    assert_eq!(consumer.consume_once().await.unwrap(), 0);

    // Assert
    let figures = summary(&app).await;
    assert_eq!(figures.patients_registered, 3);
    assert_eq!(figures.patients_deleted, 1);
    assert_eq!(figures.billing_accounts_opened, 2);
    let events_by_type: Vec<(&str, u64)> = figures
        .events_by_type
        .iter()
        .map(|(event_type, count)| (event_type.as_str(), *count))
        .collect();
    assert_eq!(
        events_by_type,
        vec![
            ("BillingAccountOpened", 2),
            ("PatientDeleted", 1),
            ("PatientRegistered", 3),
        ]
    );
    assert_eq!(
        figures.registrations_by_day,
        vec![
            DailyCount {
                date: day(2024, 1, 10),
                count: 2,
            },
            DailyCount {
                date: day(2024, 2, 1),
                count: 1,
            },
        ]
    );

    // A new consumer on the same database (a restart) resumes from the stored offsets.
    drop(consumer);
    let restarted = events_consumer(app.db.clone(), app.log.clone());
    assert_eq!(restarted.consume_once().await.unwrap(), 0);
    assert_eq!(summary(&app).await, figures);

    // ... and still counts what arrives afterwards.
    let dave = Uuid::now_v7();
    app.log
        .append(vec![record(
            PATIENTS_TOPIC,
            dave,
            registration(dave, "2024-02-01"),
        )])
        .await
        .unwrap();
    assert_eq!(restarted.consume_once().await.unwrap(), 1);
    let after = summary(&app).await;
    assert_eq!(after.patients_registered, 4);
    assert_eq!(after.registrations_by_day[1].count, 2);
}

#[tokio::test]
async fn unreadable_registered_date_counts_on_the_event_day() {
    let app = spawn_analytics().await;
    let patient_id = Uuid::now_v7();
    let payload = PatientRegistered {
        patient_id: patient_id.to_string(),
        registered_date: "10/01/2024".into(),
        ..PatientRegistered::default()
    };
    let occurred_at = Utc.with_ymd_and_hms(2024, 3, 5, 12, 0, 0).unwrap();
    let sent = envelope("patients", patient_id, "", occurred_at, &payload);
    app.log
        .append(vec![record(
            PATIENTS_TOPIC,
            patient_id,
            encode_envelope(&sent),
        )])
        .await
        .unwrap();
    let consumer = events_consumer(app.db.clone(), app.log.clone());

    assert_eq!(consumer.consume_once().await.unwrap(), 1);

    let figures = summary(&app).await;
    assert_eq!(
        figures.registrations_by_day,
        vec![DailyCount {
            date: day(2024, 3, 5),
            count: 1,
        }]
    );
}

#[tokio::test]
async fn unusable_events_are_skipped_and_unknown_types_counted() {
    let app = spawn_analytics().await;
    let patient_id = Uuid::now_v7();
    let mut garbage = envelope(
        "patients",
        patient_id,
        "",
        Utc::now(),
        &PatientDeleted::default(),
    );
    garbage.payload = vec![0xff, 0xff, 0xff];
    let mut future_event = envelope(
        "billing",
        patient_id,
        "",
        Utc::now(),
        &PatientDeleted::default(),
    );
    future_event.event_type = "ClaimSubmitted".into();
    app.log
        .append(vec![
            record(PATIENTS_TOPIC, patient_id, encode_envelope(&garbage)),
            record(PATIENTS_TOPIC, patient_id, b"not an envelope".to_vec()),
            record(BILLING_TOPIC, patient_id, encode_envelope(&future_event)),
            record(
                PATIENTS_TOPIC,
                patient_id,
                registration(patient_id, "2024-01-10"),
            ),
        ])
        .await
        .unwrap();
    let consumer = events_consumer(app.db.clone(), app.log.clone());

    assert_eq!(consumer.consume_once().await.unwrap(), 4);
    assert_eq!(consumer.consume_once().await.unwrap(), 0);

    let figures = summary(&app).await;
    assert_eq!(figures.patients_registered, 1);
    assert_eq!(figures.patients_deleted, 0);
    assert_eq!(figures.events_by_type.get("ClaimSubmitted"), Some(&1));
    assert_eq!(figures.events_by_type.len(), 2);
}

#[tokio::test]
async fn summary_needs_the_analytics_right() {
    let app = spawn_analytics().await;
    let error = app
        .service
        .summary(&caller(UserRole::Clinician))
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Forbidden(_)), "{error:?}");
    let error = app
        .service
        .summary(&CallerContext::anonymous("req-anon"))
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
    // Empty figures before any event.
    assert_eq!(summary(&app).await, Summary::default());
    app.service.check_ready().await.unwrap();
}

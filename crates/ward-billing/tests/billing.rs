//! Billing against real SQLite files (module database and local event log) in a fresh folder.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, Statement};
use uuid::Uuid;
use ward_billing::{BillingService, patient_events_consumer};
use ward_bus::BillingApi;
use ward_bus::billing::{AccountStatus, OpenAccountRequest};
use ward_bus::consumer::{Consumer, offsets, was_processed};
use ward_bus::events::{
    BILLING_TOPIC, BillingAccountOpened, EventLogHandle, OutgoingRecord, PATIENTS_TOPIC,
    PatientDeleted, PatientRegistered, decode_envelope, decode_payload, encode_envelope, envelope,
};
use ward_bus::local_log::LocalEventLog;
use ward_bus::outbox::{OutboxRelay, pending};
use ward_bus::testsuite::{sqlite_in, sqlite_url};
use ward_core::{CallerContext, Principal, UserRole, WardError};
use ward_proto::v1::EventEnvelope;

struct TestBilling {
    db: DatabaseConnection,
    log: EventLogHandle,
    service: BillingService,
    relay: OutboxRelay,
    consumer: Consumer,
    folder: PathBuf,
}

impl Drop for TestBilling {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// A migrated billing database, a local event log, the service, its relay and its consumer.
async fn spawn_billing() -> TestBilling {
    let folder = std::env::temp_dir().join(format!("ward-billing-test-{}", Uuid::new_v4()));
    let db = sqlite_in(&folder, "billing").await;
    BillingService::migrate(&db).await.unwrap();
    // Migrating twice is a no-op.
    BillingService::migrate(&db).await.unwrap();
    let log: EventLogHandle = Arc::new(
        LocalEventLog::open(&sqlite_url(&folder, "events"))
            .await
            .unwrap(),
    );
    let relay = OutboxRelay::new("billing", db.clone(), log.clone());
    let service = BillingService::new(db.clone(), relay.waker());
    let consumer = patient_events_consumer(db.clone(), log.clone(), relay.waker());
    TestBilling {
        db,
        log,
        service,
        relay,
        consumer,
        folder,
    }
}

fn caller(role: UserRole) -> CallerContext {
    let principal = Principal::with_role(Uuid::now_v7(), format!("{role}@example.com"), role);
    CallerContext::authenticated(principal, "token", "req-test")
}

fn registered(patient_id: Uuid) -> EventEnvelope {
    let payload = PatientRegistered {
        patient_id: patient_id.to_string(),
        name: "John Doe".into(),
        email: "john.doe@example.com".into(),
        registered_date: "2024-01-10".into(),
        version: 1,
    };
    envelope("patients", patient_id, "req-register", Utc::now(), &payload)
}

async fn append(log: &EventLogHandle, key: Uuid, value: Vec<u8>) {
    let record = OutgoingRecord {
        topic: PATIENTS_TOPIC.to_string(),
        key: key.to_string(),
        value,
    };
    log.append(vec![record]).await.unwrap();
}

async fn num_accounts(db: &DatabaseConnection) -> u64 {
    let statement = Statement::from_string(
        db.get_database_backend(),
        "SELECT COUNT(*) AS num FROM billing_accounts",
    );
    let row = db.query_one_raw(statement).await.unwrap().unwrap();
    let num: i64 = row.try_get("", "num").unwrap();
    num as u64
}

async fn patients_offset(db: &DatabaseConnection) -> i64 {
    let row = offsets::Entity::find_by_id(("billing".to_string(), PATIENTS_TOPIC.to_string(), 0))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    row.next_offset
}

#[tokio::test]
async fn patient_registered_opens_exactly_one_account_despite_redeliveries() {
    // Arrange
    let app = spawn_billing().await;
    let patient_id = Uuid::now_v7();
    let first = registered(patient_id);
    let first_bytes = encode_envelope(&first);
    append(&app.log, patient_id, first_bytes.clone()).await;

    // Act: the event, then the same bytes again and a second registration with a new event id.
    assert_eq!(app.consumer.consume_once().await.unwrap(), 1);
    let account = app
        .service
        .get_account_by_patient(&caller(UserRole::Billing), patient_id)
        .await
        .unwrap();
    append(&app.log, patient_id, first_bytes).await;
    let second = registered(patient_id);
    append(&app.log, patient_id, encode_envelope(&second)).await;
    assert_eq!(app.consumer.consume_once().await.unwrap(), 2);
    assert_eq!(app.consumer.consume_once().await.unwrap(), 0);

    // Assert
    assert_eq!(num_accounts(&app.db).await, 1);
    assert_eq!(account.patient_id, patient_id);
    assert_eq!(account.status, AccountStatus::Active);
    let again = app
        .service
        .get_account_by_patient(&caller(UserRole::Clinician), patient_id)
        .await
        .unwrap();
    assert_eq!(again, account);
    assert!(
        was_processed(&app.db, "billing", &first.event_id)
            .await
            .unwrap()
    );
    assert!(
        was_processed(&app.db, "billing", &second.event_id)
            .await
            .unwrap()
    );
    assert_eq!(patients_offset(&app.db).await, 3);

    // BillingAccountOpened was enqueued once, and the relay moves it to the billing topic.
    assert_eq!(pending(&app.db).await.unwrap(), 1);
    assert_eq!(app.relay.relay_once().await.unwrap(), 1);
    assert_eq!(pending(&app.db).await.unwrap(), 0);
    let records = app.log.fetch(BILLING_TOPIC, 0, 0, 100).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key, patient_id.to_string());
    let opened_envelope = decode_envelope(&records[0].value).unwrap();
    assert_eq!(opened_envelope.producer, "billing");
    assert_eq!(opened_envelope.subject_id, patient_id.to_string());
    assert_eq!(
        opened_envelope
            .trace_context
            .get("x-request-id")
            .map(String::as_str),
        Some("req-register")
    );
    let opened: BillingAccountOpened = decode_payload(&opened_envelope).unwrap();
    assert_eq!(opened.account_id, account.id.to_string());
    assert_eq!(opened.patient_id, patient_id.to_string());
    let opened_at = chrono::DateTime::parse_from_rfc3339(&opened.opened_at).unwrap();
    assert_eq!(opened_at.with_timezone(&Utc), account.opened_at);
}

#[tokio::test]
async fn create_billing_account_is_idempotent_per_patient() {
    // Arrange
    let app = spawn_billing().await;
    let ctx = caller(UserRole::Billing);
    let request = OpenAccountRequest {
        patient_id: Uuid::now_v7(),
        name: "Jane Smith".into(),
        email: "jane.smith@example.com".into(),
    };

    // Act
    let first = app
        .service
        .create_billing_account(&ctx, request.clone())
        .await
        .unwrap();
    let second = app
        .service
        .create_billing_account(&ctx, request.clone())
        .await
        .unwrap();

    // Assert
    assert_eq!(first, second);
    assert_eq!(first.status, AccountStatus::Active);
    assert_eq!(num_accounts(&app.db).await, 1);
    assert_eq!(pending(&app.db).await.unwrap(), 1);
    let read = app
        .service
        .get_account_by_patient(&ctx, request.patient_id)
        .await
        .unwrap();
    assert_eq!(read, first);

    // A PatientRegistered for a patient with an account opens nothing new.
    append(
        &app.log,
        request.patient_id,
        encode_envelope(&registered(request.patient_id)),
    )
    .await;
    assert_eq!(app.consumer.consume_once().await.unwrap(), 1);
    assert_eq!(num_accounts(&app.db).await, 1);
    assert_eq!(pending(&app.db).await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_creates_for_one_patient_open_one_account() {
    let app = Arc::new(spawn_billing().await);
    let request = OpenAccountRequest {
        patient_id: Uuid::now_v7(),
        name: "Race".into(),
        email: "race@example.com".into(),
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            app.service
                .create_billing_account(&CallerContext::system("test"), request)
                .await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(num_accounts(&app.db).await, 1);
    assert_eq!(pending(&app.db).await.unwrap(), 1);
}

#[tokio::test]
async fn unknown_patient_has_no_account() {
    let app = spawn_billing().await;
    let error = app
        .service
        .get_account_by_patient(&caller(UserRole::Billing), Uuid::now_v7())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        WardError::NotFound("Billing account not found".into())
    );
}

#[tokio::test]
async fn rights_are_enforced() {
    let app = spawn_billing().await;
    let request = OpenAccountRequest {
        patient_id: Uuid::now_v7(),
        name: "Jane".into(),
        email: "jane@example.com".into(),
    };
    let analyst = caller(UserRole::Analyst);
    let anonymous = CallerContext::anonymous("req-anon");

    let error = app
        .service
        .create_billing_account(&analyst, request.clone())
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Forbidden(_)), "{error:?}");
    let error = app
        .service
        .create_billing_account(&anonymous, request.clone())
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
    // A clinician may read accounts but not open them.
    let error = app
        .service
        .create_billing_account(&caller(UserRole::Clinician), request.clone())
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Forbidden(_)), "{error:?}");
    let error = app
        .service
        .get_account_by_patient(&analyst, request.patient_id)
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Forbidden(_)), "{error:?}");
    let error = app
        .service
        .get_account_by_patient(&anonymous, request.patient_id)
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
    assert_eq!(num_accounts(&app.db).await, 0);
    assert_eq!(pending(&app.db).await.unwrap(), 0);
}

#[tokio::test]
async fn unusable_records_are_skipped_and_the_consumer_moves_on() {
    // Arrange: a garbage payload, bytes that are no envelope, a patient id that is no UUID,
    // an event billing ignores, then a good registration.
    let app = spawn_billing().await;
    let patient_id = Uuid::now_v7();
    let mut garbage_payload = registered(patient_id);
    garbage_payload.payload = vec![0xff, 0xff, 0xff, 0x01, 0x02];
    append(&app.log, patient_id, encode_envelope(&garbage_payload)).await;
    append(&app.log, patient_id, b"not an envelope".to_vec()).await;
    let bad_id = PatientRegistered {
        patient_id: "not-a-uuid".into(),
        ..PatientRegistered::default()
    };
    let bad_id_envelope = envelope("patients", patient_id, "", Utc::now(), &bad_id);
    append(&app.log, patient_id, encode_envelope(&bad_id_envelope)).await;
    let deleted = PatientDeleted {
        patient_id: patient_id.to_string(),
        version: 2,
    };
    let deleted_envelope = envelope("patients", patient_id, "", Utc::now(), &deleted);
    append(&app.log, patient_id, encode_envelope(&deleted_envelope)).await;
    let good = registered(patient_id);
    append(&app.log, patient_id, encode_envelope(&good)).await;

    // Act
    assert_eq!(app.consumer.consume_once().await.unwrap(), 5);

    // Assert
    assert_eq!(patients_offset(&app.db).await, 5);
    assert_eq!(num_accounts(&app.db).await, 1);
    assert_eq!(pending(&app.db).await.unwrap(), 1);
    assert!(
        was_processed(&app.db, "billing", &good.event_id)
            .await
            .unwrap()
    );
    // A skipped event is not recorded as applied.
    assert!(
        !was_processed(&app.db, "billing", &garbage_payload.event_id)
            .await
            .unwrap()
    );
    assert!(
        was_processed(&app.db, "billing", &deleted_envelope.event_id)
            .await
            .unwrap()
    );
    let count = ward_bus::outbox::entity::Entity::find()
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn check_ready_answers() {
    let app = spawn_billing().await;
    app.service.check_ready().await.unwrap();
}

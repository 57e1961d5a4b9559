//! Creates with an `Idempotency-Key` against a real SQLite file: retries, reuse with another
//! patient, per-user keys, expiry and concurrent first calls.

mod common;

use chrono::NaiveDate;
use sea_orm::ConnectionTrait;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::outbox::{self};
use ward_bus::patients::{IdempotencyKey, NewPatient, PageRequest};
use ward_core::{CallerContext, ErrorCode, Principal, UserRole};

use common::TestDb;

impl TestDb {
    async fn num_patients(&self) -> usize {
        let page = PageRequest {
            limit: 500,
            after_opt: None,
        };
        let system = CallerContext::system("test");
        let listed = self.service.list_patients(&system, page).await.unwrap();
        listed.items.len()
    }
}

fn new_patient(name: &str, email: &str) -> NewPatient {
    let date = NaiveDate::from_ymd_opt(1985, 6, 15).unwrap();
    NewPatient {
        name: name.into(),
        email: Some(email.into()),
        address: Some("123 Main St, Springfield".into()),
        date_of_birth: date,
        registered_date: date,
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    }
}

fn clinician() -> CallerContext {
    let principal = Principal::with_role(Uuid::now_v7(), "c@ward.test", UserRole::Clinician);
    CallerContext::authenticated(principal, "token", "req")
}

fn key(raw: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::parse(raw).unwrap())
}

#[tokio::test]
async fn a_retry_returns_the_first_patient_and_writes_nothing() {
    // Arrange
    let test = TestDb::new("idempotency").await;
    let caller = clinician();
    let first = test
        .service
        .create_patient(&caller, new_patient("Ann", "ann@example.com"), key("k-1"))
        .await
        .unwrap();
    let num_events = outbox::pending(&test.db).await.unwrap();

    // Act
    let retried = test
        .service
        .create_patient(&caller, new_patient("Ann", "ann@example.com"), key("k-1"))
        .await
        .unwrap();

    // Assert
    assert_eq!(retried, first);
    assert_eq!(outbox::pending(&test.db).await.unwrap(), num_events);
    assert_eq!(test.num_patients().await, 1);
    let history = test
        .service
        .patient_history(&caller, first.id)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_patient_is_unprocessable() {
    let test = TestDb::new("idempotency").await;
    let caller = clinician();
    test.service
        .create_patient(&caller, new_patient("Ann", "ann@example.com"), key("k-1"))
        .await
        .unwrap();

    let error = test
        .service
        .create_patient(&caller, new_patient("Bob", "bob@example.com"), key("k-1"))
        .await
        .unwrap_err();

    assert_eq!(error.error_code(), ErrorCode::Unprocessable);
    assert_eq!(test.num_patients().await, 1);
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let test = TestDb::new("idempotency").await;
    test.service
        .create_patient(
            &clinician(),
            new_patient("Ann", "ann@example.com"),
            key("k"),
        )
        .await
        .unwrap();

    // Another user's "k" is a new key: Bob is created.
    let bob = test
        .service
        .create_patient(
            &clinician(),
            new_patient("Bob", "bob@example.com"),
            key("k"),
        )
        .await
        .unwrap();

    assert_eq!(bob.name, "Bob");
    assert_eq!(test.num_patients().await, 2);
}

#[tokio::test]
async fn an_expired_key_creates_anew() {
    let test = TestDb::new("idempotency").await;
    let caller = clinician();
    test.service
        .create_patient(&caller, new_patient("Ann", "ann@example.com"), key("k"))
        .await
        .unwrap();
    // Two days ago: past the 24 h a key is remembered.
    let aged = chrono::Utc::now() - chrono::Duration::hours(48);
    test.db
        .execute_unprepared(&format!(
            "UPDATE idempotency_keys SET created_at = '{}'",
            aged.format("%Y-%m-%d %H:%M:%S%.f%:z")
        ))
        .await
        .unwrap();

    let bob = test
        .service
        .create_patient(&caller, new_patient("Bob", "bob@example.com"), key("k"))
        .await
        .unwrap();

    assert_eq!(bob.name, "Bob");
    assert_eq!(test.num_patients().await, 2);
}

#[tokio::test]
async fn concurrent_first_calls_with_one_key_create_one_patient() {
    let test = TestDb::new("idempotency").await;
    let caller = clinician();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let service = test.service.clone();
        let caller = caller.clone();
        tasks.push(tokio::spawn(async move {
            service
                .create_patient(&caller, new_patient("Ann", "ann@example.com"), key("k"))
                .await
        }));
    }

    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().id);
    }

    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(test.num_patients().await, 1);
}

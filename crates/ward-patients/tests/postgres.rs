//! The patients schema on PostgreSQL: the audit trail is append-only in the database itself.
//! Needs PostgreSQL (WARD_TEST_POSTGRES_URL, default the local server).

use sea_orm::ConnectionTrait;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{NewPatient, PageRequest, PatientChanges};
use ward_bus::testsuite::{TestKeys, TestPostgres};
use ward_core::{ErrorCode, UserRole};
use ward_patients::PatientsService;

#[tokio::test]
async fn the_audit_trail_cannot_be_edited_deleted_or_truncated() {
    let postgres = TestPostgres::create("patients", "patients").await;
    let db = postgres.db();
    PatientsService::migrate(db).await.unwrap();
    PatientsService::migrate(db).await.unwrap();
    let service = PatientsService::new(db.clone(), OutboxWaker::default());
    let keys = TestKeys::generate("patients-pg");
    let page = PageRequest {
        limit: 10,
        after_opt: None,
    };
    service
        .list_patients(&keys.caller(UserRole::Clinician), page)
        .await
        .unwrap();

    for statement in [
        "UPDATE audit_events SET outcome = 'denied'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let error = db.execute_unprepared(statement).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    let count = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM audit_events",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(count, 1);
    postgres.drop_database().await;
}

// PostgreSQL does not serialize writers as SQLite does: the row lock and the conditional UPDATE
// must keep two writers with the same expected version from both winning.
#[tokio::test]
async fn concurrent_updates_with_the_same_expected_version_have_one_winner_on_postgres() {
    // Arrange
    let postgres = TestPostgres::create("patients_versions", "patients").await;
    let db = postgres.db();
    PatientsService::migrate(db).await.unwrap();
    let service = PatientsService::new(db.clone(), OutboxWaker::default());
    let keys = TestKeys::generate("patients-pg-versions");
    let clinician = keys.caller(UserRole::Clinician);
    let date = |raw: &str| chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap();
    let created = service
        .create_patient(
            &clinician,
            NewPatient {
                name: "Ada Lovelace".into(),
                email: "ada@example.com".into(),
                address: "1 Elm St".into(),
                date_of_birth: date("1815-12-10"),
                registered_date: date("2024-01-10"),
            },
        )
        .await
        .unwrap();

    // Act
    let mut tasks = Vec::new();
    for index in 0..8 {
        let service = service.clone();
        let clinician = clinician.clone();
        let changes = PatientChanges {
            name: format!("Writer {index}"),
            email: "ada@example.com".into(),
            address: "1 Elm St".into(),
            date_of_birth: date("1815-12-10"),
        };
        tasks.push(tokio::spawn(async move {
            service
                .update_patient(&clinician, created.id, changes, Some(1))
                .await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(patient) => winners.push(patient),
            Err(error) => assert_eq!(error.error_code(), ErrorCode::PreconditionFailed),
        }
    }

    // Assert
    assert_eq!(winners.len(), 1);
    let current = service.get_patient(&clinician, created.id).await.unwrap();
    assert_eq!(current, winners[0]);
    let history = service
        .patient_history(&clinician, created.id)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    postgres.drop_database().await;
}

//! Patient versions against a real SQLite file: counting, conditional writes, history.

mod common;

use chrono::NaiveDate;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::outbox::{self};
use ward_bus::patients::{AuditQuery, ImportOutcome, NewPatient, PatientChanges};
use ward_core::{CallerContext, Principal, UserRole, WardError};

use common::TestDb;

impl TestDb {
    async fn num_pending(&self) -> u64 {
        outbox::pending(&self.db).await.unwrap()
    }

    async fn num_versions(&self, id: Uuid) -> usize {
        self.service
            .patient_history(&system(), id)
            .await
            .map(|history| history.len())
            .unwrap_or(0)
    }
}

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

fn new_patient(email: &str) -> NewPatient {
    NewPatient {
        name: "John Doe".into(),
        email: Some(email.into()),
        address: Some("123 Main St, Springfield".into()),
        date_of_birth: date("1985-06-15"),
        registered_date: date("2024-01-10"),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    }
}

fn changes(name: &str, email: &str) -> PatientChanges {
    PatientChanges {
        name: name.into(),
        email: Some(email.into()),
        address: Some("9 Oak Ave".into()),
        date_of_birth: date("1986-07-16"),
        identifiers_opt: None,
        fhir_extras_opt: None,
    }
}

fn caller(role: UserRole) -> CallerContext {
    let principal = Principal::with_role(Uuid::now_v7(), format!("{role}@ward.test"), role);
    CallerContext::authenticated(principal, "token", "req")
}

fn system() -> CallerContext {
    CallerContext::system("test")
}

fn changed(current_version: u32) -> WardError {
    WardError::PreconditionFailed(format!(
        "the patient has changed (version {current_version} is current)"
    ))
}

#[tokio::test]
async fn versions_start_at_one_and_every_update_adds_one() {
    // Arrange
    let test = TestDb::new("versions").await;
    let clinician = caller(UserRole::Clinician);

    // Act
    let created = test
        .service
        .create_patient(&clinician, new_patient("a@example.com"), None)
        .await
        .unwrap();
    let blind = test
        .service
        .update_patient(&clinician, created.id, changes("B", "a@example.com"), None)
        .await
        .unwrap();
    let checked = test
        .service
        .update_patient(
            &clinician,
            created.id,
            changes("C", "a@example.com"),
            Some(2),
        )
        .await
        .unwrap();
    let fetched = test
        .service
        .get_patient(&clinician, created.id)
        .await
        .unwrap();

    // Assert
    assert_eq!(created.version, 1);
    assert_eq!(blind.version, 2);
    assert_eq!(checked.version, 3);
    assert_eq!(fetched, checked);
}

#[tokio::test]
async fn a_stale_expected_version_is_refused_and_writes_nothing() {
    // Arrange
    let test = TestDb::new("versions").await;
    let created = test
        .service
        .create_patient(&system(), new_patient("a@example.com"), None)
        .await
        .unwrap();
    test.service
        .update_patient(&system(), created.id, changes("B", "a@example.com"), None)
        .await
        .unwrap();
    let num_pending_before = test.num_pending().await;
    let num_versions_before = test.num_versions(created.id).await;

    // Act
    let stale_update = test
        .service
        .update_patient(
            &system(),
            created.id,
            changes("Lost", "a@example.com"),
            Some(1),
        )
        .await;
    let stale_delete = test
        .service
        .delete_patient(&system(), created.id, Some(1))
        .await;

    // Assert
    assert_eq!(stale_update, Err(changed(2)));
    assert_eq!(stale_delete, Err(changed(2)));
    assert_eq!(test.num_pending().await, num_pending_before);
    assert_eq!(test.num_versions(created.id).await, num_versions_before);
    let current = test
        .service
        .get_patient(&system(), created.id)
        .await
        .unwrap();
    assert_eq!((current.name.as_str(), current.version), ("B", 2));
    test.service
        .delete_patient(&system(), created.id, Some(2))
        .await
        .unwrap();
    let deleted = test.service.get_patient(&system(), created.id).await;
    assert!(matches!(deleted, Err(WardError::Gone(_))));
}

#[tokio::test]
async fn concurrent_updates_with_the_same_expected_version_have_one_winner() {
    // Arrange
    let test = TestDb::new("versions").await;
    let created = test
        .service
        .create_patient(&system(), new_patient("a@example.com"), None)
        .await
        .unwrap();
    let num_writers = 8;

    // Act
    let mut tasks = Vec::new();
    for index in 0..num_writers {
        let service = test.service.clone();
        let name = format!("Writer {index}");
        tasks.push(tokio::spawn(async move {
            let result = service
                .update_patient(
                    &system(),
                    created.id,
                    changes(&name, "a@example.com"),
                    Some(1),
                )
                .await;
            (name, result)
        }));
    }
    let mut winners = Vec::new();
    let mut num_refused = 0;
    for task in tasks {
        let (name, result) = task.await.unwrap();
        match result {
            Ok(patient) => winners.push((name, patient)),
            Err(error) => {
                assert_eq!(error, changed(2));
                num_refused += 1;
            }
        }
    }

    // Assert
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert_eq!(num_refused, num_writers - 1);
    let (winner_name, winner) = &winners[0];
    let current = test
        .service
        .get_patient(&system(), created.id)
        .await
        .unwrap();
    assert_eq!(&current, winner);
    assert_eq!(&current.name, winner_name);
    assert_eq!(test.num_versions(created.id).await, 2);
}

#[tokio::test]
async fn history_lists_every_change_newest_first_and_outlives_the_delete() {
    // Arrange
    let test = TestDb::new("versions").await;
    let clinician = caller(UserRole::Clinician);
    let admin = caller(UserRole::Admin);
    let created = test
        .service
        .create_patient(&clinician, new_patient("a@example.com"), None)
        .await
        .unwrap();
    test.service
        .update_patient(
            &admin,
            created.id,
            changes("Jane Doe", "a@example.com"),
            Some(1),
        )
        .await
        .unwrap();
    test.service
        .delete_patient(&clinician, created.id, None)
        .await
        .unwrap();

    // Act
    let history = test
        .service
        .patient_history(&clinician, created.id)
        .await
        .unwrap();
    let second = test
        .service
        .patient_version(&clinician, created.id, 2)
        .await
        .unwrap();
    let unknown = test
        .service
        .patient_version(&clinician, created.id, 4)
        .await;
    let zero = test
        .service
        .patient_version(&clinician, created.id, 0)
        .await;
    let never_existed = test
        .service
        .patient_history(&clinician, Uuid::now_v7())
        .await;
    let analyst = test
        .service
        .patient_history(&caller(UserRole::Analyst), created.id)
        .await;

    // Assert
    let summary: Vec<(u32, &str, &str)> = history
        .iter()
        .map(|entry| (entry.version, entry.action.as_str(), entry.actor.as_str()))
        .collect();
    let clinician_id = clinician.actor();
    let admin_id = admin.actor();
    assert_eq!(
        summary,
        vec![
            (3, "delete", clinician_id.as_str()),
            (2, "update", admin_id.as_str()),
            (1, "create", clinician_id.as_str()),
        ]
    );
    assert_eq!(history[0].patient.name, "Jane Doe");
    assert_eq!(history[2].patient.name, "John Doe");
    assert_eq!(history[2].patient.version, 1);
    assert_eq!(second, history[1]);
    assert_eq!(second.patient.date_of_birth, date("1986-07-16"));
    assert!(matches!(unknown, Err(WardError::NotFound(_))));
    assert!(matches!(zero, Err(WardError::InvalidArgument { .. })));
    assert!(matches!(never_existed, Err(WardError::NotFound(_))));
    assert!(matches!(analyst, Err(WardError::Forbidden(_))));
    let query = AuditQuery::parse(
        Some(&created.id.to_string()),
        Some(&clinician_id),
        None,
        None,
        Some(500),
        None,
    )
    .unwrap();
    let audit = test.service.audit_events(&admin, query).await.unwrap();
    let actions: Vec<&str> = audit
        .items
        .iter()
        .map(|event| event.action.as_str())
        .collect();
    assert_eq!(actions, ["create", "delete", "read", "read"]);
}

#[tokio::test]
async fn a_reimport_skips_a_deleted_patient_and_restarts_after_a_purge() {
    // Arrange
    let test = TestDb::new("versions").await;
    let id = Uuid::now_v7();
    let batch = vec![(id, new_patient("demo@example.com"))];
    test.service
        .import_patients(&system(), batch.clone())
        .await
        .unwrap();
    let imported = test.service.get_patient(&system(), id).await.unwrap();
    test.service
        .delete_patient(&system(), id, Some(1))
        .await
        .unwrap();

    // Act: a soft-deleted record is still there, so the import leaves it deleted.
    let reimported_while_deleted = test
        .service
        .import_patients(&system(), batch.clone())
        .await
        .unwrap();
    test.service
        .purge_patient(&caller(UserRole::Admin), id)
        .await
        .unwrap();
    let reimported_after_purge = test
        .service
        .import_patients(&system(), batch)
        .await
        .unwrap();

    // Assert
    assert_eq!(imported.version, 1);
    assert_eq!(reimported_while_deleted, [ImportOutcome::AlreadyPresent]);
    assert_eq!(reimported_after_purge, [ImportOutcome::Created]);
    let history = test.service.patient_history(&system(), id).await.unwrap();
    let summary: Vec<(u32, &str)> = history
        .iter()
        .map(|entry| (entry.version, entry.action.as_str()))
        .collect();
    // The purge erased the old history, so the new record starts over.
    assert_eq!(summary, vec![(1, "create")]);
}

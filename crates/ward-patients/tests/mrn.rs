//! Medical record numbers against a real SQLite file: assigned on registration and import, in
//! order, once each (also under concurrent creates), found by `identifier`, kept by updates
//! and history, in the configured format.

mod common;

use std::collections::HashSet;

use chrono::NaiveDate;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{NewPatient, PatientChanges, PatientSearch, PatientSearchInput};
use ward_core::CallerContext;
use ward_core::config::PatientsOptions;
use ward_patients::{MrnFormat, PatientsService};

use common::TestDb;

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

fn system() -> CallerContext {
    CallerContext::system("test")
}

fn new_patient(name: &str, email: &str) -> NewPatient {
    NewPatient {
        name: name.into(),
        email: Some(email.into()),
        address: Some("1 Elm St".into()),
        date_of_birth: date("1985-06-15"),
        registered_date: date("2024-01-10"),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    }
}

fn by_identifier(identifier: &str) -> PatientSearch {
    PatientSearch::parse(PatientSearchInput {
        identifier_opt: Some(identifier.into()),
        ..PatientSearchInput::default()
    })
    .unwrap()
}

#[tokio::test]
async fn registrations_get_sequential_numbers_that_a_failed_one_does_not_use() {
    // Arrange
    let test = TestDb::new("patients-mrn").await;

    // Act
    let first = test
        .service
        .create_patient(&system(), new_patient("Ada", "ada@example.com"), None)
        .await
        .unwrap();
    let refused = test
        .service
        .create_patient(&system(), new_patient("Ada Again", "ADA@example.com"), None)
        .await;
    let second = test
        .service
        .create_patient(&system(), new_patient("Bob", "bob@example.com"), None)
        .await
        .unwrap();
    let imported_id = Uuid::now_v7();
    test.service
        .import_patients(
            &system(),
            vec![(imported_id, new_patient("Cy", "cy@example.com"))],
        )
        .await
        .unwrap();
    let imported = test
        .service
        .get_patient(&system(), imported_id)
        .await
        .unwrap();

    // Assert
    assert!(refused.is_err());
    assert_eq!(first.mrn, "MRN-00000001");
    assert_eq!(second.mrn, "MRN-00000002");
    assert_eq!(imported.mrn, "MRN-00000003");
}

#[tokio::test]
async fn concurrent_creates_get_distinct_numbers() {
    // Arrange
    let test = TestDb::new("patients-mrn").await;
    let mut tasks = Vec::new();

    // Act
    for index in 0..12 {
        let service = test.service.clone();
        tasks.push(tokio::spawn(async move {
            service
                .create_patient(
                    &system(),
                    new_patient("Racer", &format!("racer{index}@example.com")),
                    None,
                )
                .await
                .unwrap()
        }));
    }
    let mut numbers = HashSet::new();
    for task in tasks {
        numbers.insert(task.await.unwrap().mrn);
    }

    // Assert
    let expected: HashSet<String> = (1..=12).map(|n| format!("MRN-{n:08}")).collect();
    assert_eq!(numbers, expected);
}

#[tokio::test]
async fn a_number_finds_its_patient_and_survives_updates_and_history() {
    // Arrange
    let test = TestDb::new("patients-mrn").await;
    let ada = test
        .service
        .create_patient(&system(), new_patient("Ada", "ada@example.com"), None)
        .await
        .unwrap();
    test.service
        .create_patient(&system(), new_patient("Bob", "bob@example.com"), None)
        .await
        .unwrap();
    let changes = PatientChanges {
        name: "Ada King".into(),
        email: Some("ada@example.com".into()),
        address: Some("2 Elm St".into()),
        date_of_birth: date("1985-06-15"),
        identifiers_opt: None,
        fhir_extras_opt: None,
    };

    // Act
    let updated = test
        .service
        .update_patient(&system(), ada.id, changes, None)
        .await
        .unwrap();
    let found = test
        .service
        .search_patients(&system(), by_identifier(&ada.mrn))
        .await
        .unwrap();
    let none = test
        .service
        .search_patients(&system(), by_identifier("MRN-00000009"))
        .await
        .unwrap();
    let history = test
        .service
        .patient_history(&system(), ada.id)
        .await
        .unwrap();

    // Assert
    assert_eq!(updated.mrn, ada.mrn);
    assert_eq!(found.items, vec![updated]);
    assert!(none.items.is_empty());
    assert!(history.iter().all(|entry| entry.patient.mrn == ada.mrn));
}

#[tokio::test]
async fn the_configured_format_is_used() {
    let test = TestDb::new("patients-mrn").await;
    let format = MrnFormat::from_options(&PatientsOptions {
        mrn_prefix: "W/".into(),
        mrn_digits: 3,
        ..PatientsOptions::default()
    });
    let service =
        PatientsService::new(test.db.clone(), OutboxWaker::default()).with_mrn_format(format);

    let patient = service
        .create_patient(&system(), new_patient("Ada", "ada@example.com"), None)
        .await
        .unwrap();

    assert_eq!(patient.mrn, "W/001");
}

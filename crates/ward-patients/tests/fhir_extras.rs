//! Patients registered through FHIR: no email or address needed, and the FHIR elements Ward
//! does not model kept beside the record and in its history, on SQLite and PostgreSQL.

mod common;

use chrono::NaiveDate;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{
    FhirExtras, ImportOutcome, NewPatient, PatientChanges, PatientSearch, PatientSearchInput,
};
use ward_bus::testsuite::TestPostgres;
use ward_core::{CallerContext, WardError};
use ward_patients::PatientsService;

use common::TestDb;

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

fn extras(raw: &str) -> FhirExtras {
    FhirExtras::parse(raw).unwrap()
}

/// A patient as FHIR may send it: no email, no address.
fn without_contact(name: &str, extras_json: &str) -> NewPatient {
    NewPatient {
        name: name.into(),
        email: None,
        address: None,
        date_of_birth: date("2017-05-15"),
        registered_date: date("2024-01-10"),
        identifiers: Vec::new(),
        fhir_extras: extras(extras_json),
    }
}

fn system() -> CallerContext {
    CallerContext::system("test")
}

fn email_search(email: &str) -> PatientSearch {
    PatientSearch::parse(PatientSearchInput {
        email_opt: Some(email.into()),
        ..PatientSearchInput::default()
    })
    .unwrap()
}

/// The scenario, against any backend.
async fn patients_without_email_keep_their_extras(service: &PatientsService) {
    // Arrange, act: two patients without an email, then one that takes an address
    let jaina = service
        .create_patient(
            &system(),
            without_contact("Jaina Solo", r#"{"gender":"female"}"#),
            None,
        )
        .await
        .unwrap();
    let jacen = service
        .create_patient(
            &system(),
            without_contact("Jacen Solo", r#"{"gender":"male"}"#),
            None,
        )
        .await
        .unwrap();
    let imported = service
        .import_patients(
            &system(),
            vec![(uuid::Uuid::now_v7(), without_contact("Ben Solo", "{}"))],
        )
        .await
        .unwrap();

    // Assert: no collision on the one-patient-per-email rule, and extras read back
    assert_eq!(imported, vec![ImportOutcome::Created]);
    assert_eq!((jaina.email.clone(), jaina.address.clone()), (None, None));
    let read = service.get_patient(&system(), jacen.id).await.unwrap();
    assert_eq!(read.fhir_extras, extras(r#"{"gender":"male"}"#));
    assert_eq!(read.email, None);
    // A patient without an email never matches an email search, not even its own key.
    let key = format!("none:{}", jaina.id.simple());
    let page = service
        .search_patients(&system(), email_search(&key))
        .await
        .unwrap();
    assert!(page.items.is_empty());

    // Act: a REST-style update (extras not given) gives an email, then a FHIR-style one
    // (extras given, none) takes it away again
    let rest_update = PatientChanges {
        name: "Jaina Solo Fel".into(),
        email: Some("jaina@example.org".into()),
        address: Some("1 Coruscant Way".into()),
        date_of_birth: jaina.date_of_birth,
        identifiers_opt: None,
        fhir_extras_opt: None,
    };
    let after_rest = service
        .update_patient(&system(), jaina.id, rest_update, None)
        .await
        .unwrap();
    let taken = PatientChanges {
        email: Some("JAINA@example.org".into()),
        ..without_contact_changes()
    };
    let clash = service
        .update_patient(&system(), jacen.id, taken, None)
        .await
        .unwrap_err();
    let after_fhir = service
        .update_patient(&system(), jaina.id, without_contact_changes(), None)
        .await
        .unwrap();

    // Assert
    assert_eq!(after_rest.fhir_extras, jaina.fhir_extras);
    assert_eq!(after_rest.email.as_deref(), Some("jaina@example.org"));
    assert_eq!(
        clash,
        WardError::AlreadyExists("Email address already exists".into())
    );
    assert!(after_fhir.fhir_extras.is_empty());
    assert_eq!((after_fhir.email, after_fhir.address), (None, None));
    let found = service
        .search_patients(&system(), email_search("jaina@example.org"))
        .await
        .unwrap();
    assert!(found.items.is_empty(), "the address was given up");
    let first = service
        .patient_version(&system(), jaina.id, 1)
        .await
        .unwrap();
    assert_eq!(first.patient.fhir_extras, extras(r#"{"gender":"female"}"#));
    let second = service
        .patient_version(&system(), jaina.id, 2)
        .await
        .unwrap();
    assert_eq!(second.patient.email.as_deref(), Some("jaina@example.org"));
    assert_eq!(second.patient.fhir_extras, extras(r#"{"gender":"female"}"#));
}

/// A FHIR update replacing everything with a bare resource: no email, no address, no extras.
fn without_contact_changes() -> PatientChanges {
    PatientChanges {
        name: "Jaina Solo".into(),
        email: None,
        address: None,
        date_of_birth: date("2017-05-15"),
        identifiers_opt: Some(Vec::new()),
        fhir_extras_opt: Some(FhirExtras::default()),
    }
}

#[tokio::test]
async fn patients_without_email_keep_their_extras_on_sqlite() {
    let test = TestDb::new("fhir-extras").await;
    patients_without_email_keep_their_extras(&test.service).await;
}

#[tokio::test]
async fn patients_without_email_keep_their_extras_on_postgres() {
    let postgres = TestPostgres::create("patients", "patients").await;
    let db = postgres.db();
    PatientsService::migrate(db).await.unwrap();
    let service = PatientsService::new(db.clone(), OutboxWaker::default());
    patients_without_email_keep_their_extras(&service).await;
    postgres.drop_database().await;
}

//! Bulk import and export on SQLite and PostgreSQL: per-record outcomes, everything a create
//! writes (number, history, name index, event, audit), and the paged, audited export.
//! The PostgreSQL cases need the local server (WARD_TEST_POSTGRES_URL).

mod common;

use chrono::{NaiveDate, Utc};
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::events::decode_envelope;
use ward_bus::outbox::{self, OutboxWaker};
use ward_bus::patients::{
    AuditQuery, DUPLICATE_EMAIL_IN_BATCH_MESSAGE, DUPLICATE_ID_IN_BATCH_MESSAGE, IMPORT_BATCH_MAX,
    ImportOutcome, NewPatient, PageRequest, PatientChanges, PatientSearch, PatientSearchInput,
    num_created,
};
use ward_bus::testsuite::TestPostgres;
use ward_core::{CallerContext, Principal, UserRole, WardError};
use ward_patients::PatientsService;

use common::TestDb;

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

fn new_patient(name: &str, email: &str) -> NewPatient {
    NewPatient {
        name: name.into(),
        email: Some(email.into()),
        address: Some("1 Elm St".into()),
        date_of_birth: date("1980-02-03"),
        registered_date: date("2023-04-05"),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    }
}

fn caller(role: UserRole) -> CallerContext {
    let principal = Principal::with_role(Uuid::now_v7(), format!("{role}@ward.test"), role);
    CallerContext::authenticated(principal, "token", "req-bulk")
}

fn page(limit: u32, after_opt: Option<Uuid>) -> PageRequest {
    PageRequest { limit, after_opt }
}

/// The event types and record keys in the outbox, oldest first.
async fn outbox_events(db: &DatabaseConnection) -> Vec<(String, String)> {
    let rows = outbox::entity::Entity::find()
        .order_by_asc(outbox::entity::Column::Seq)
        .all(db)
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| {
            let envelope = decode_envelope(&row.payload).unwrap();
            (envelope.event_type, row.record_key)
        })
        .collect()
}

async fn a_batch_reports_each_record_and_registers_the_rest_like_a_create(
    service: &PatientsService,
    db: &DatabaseConnection,
) {
    // Arrange: one patient created the usual way, one imported earlier.
    let admin = caller(UserRole::Admin);
    let existing = service
        .create_patient(&admin, new_patient("Old Timer", "taken@example.com"), None)
        .await
        .unwrap();
    let imported_id = Uuid::now_v7();
    service
        .import_patients(
            &admin,
            vec![(imported_id, new_patient("Early Bird", "early@example.com"))],
        )
        .await
        .unwrap();
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let batch = vec![
        (ada, new_patient("Ada Lovelace", "ada@example.com")),
        (imported_id, new_patient("Early Bird", "early@example.com")),
        (Uuid::now_v7(), new_patient("Taken", " TAKEN@example.com")),
        (Uuid::now_v7(), new_patient("Ada Again", "ADA@example.com")),
        (ada, new_patient("Ada Twin", "twin@example.com")),
        (bob, new_patient("José Núñez", "bob@example.com")),
    ];

    // Act
    let outcomes = service.import_patients(&admin, batch).await.unwrap();

    // Assert
    assert_eq!(
        outcomes,
        [
            ImportOutcome::Created,
            ImportOutcome::AlreadyPresent,
            ImportOutcome::Failed("Email address already exists".into()),
            ImportOutcome::Failed(DUPLICATE_EMAIL_IN_BATCH_MESSAGE.into()),
            ImportOutcome::Failed(DUPLICATE_ID_IN_BATCH_MESSAGE.into()),
            ImportOutcome::Created,
        ]
    );
    let ada_record = service.get_patient(&admin, ada).await.unwrap();
    let bob_record = service.get_patient(&admin, bob).await.unwrap();
    assert_eq!(existing.mrn, "MRN-00000001");
    assert_eq!(ada_record.mrn, "MRN-00000003");
    assert_eq!(bob_record.mrn, "MRN-00000004");
    assert_eq!((ada_record.version, bob_record.version), (1, 1));
    let history = service.patient_history(&admin, bob).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].action, "create");
    assert_eq!(history[0].patient, bob_record);
    // The name index is written: an accent-folded prefix finds the imported patient.
    let search = PatientSearch::parse(PatientSearchInput {
        name_opt: Some("nun".into()),
        ..PatientSearchInput::default()
    })
    .unwrap();
    let found = service.search_patients(&admin, search).await.unwrap();
    assert_eq!(found.items, vec![bob_record]);
    let registered: Vec<(String, String)> = outbox_events(db).await;
    let expected: Vec<(String, String)> = [existing.id, imported_id, ada, bob]
        .iter()
        .map(|id| ("PatientRegistered".to_string(), id.to_string()))
        .collect();
    assert_eq!(registered, expected);
    let trail = service
        .audit_events(
            &admin,
            AuditQuery::parse(None, None, None, None, Some(500), None).unwrap(),
        )
        .await
        .unwrap();
    let batch_audit = trail
        .items
        .iter()
        .find(|event| event.action == "create" && event.patient_ids == vec![ada, bob]);
    assert!(batch_audit.is_some(), "{:?}", trail.items);
}

async fn a_large_batch_is_written_in_chunks(service: &PatientsService, db: &DatabaseConnection) {
    // Arrange: more records than one multi-row insert carries.
    let batch: Vec<(Uuid, NewPatient)> = (0..2_500)
        .map(|index| {
            let patient = new_patient(
                &format!("Patient Number{index}"),
                &format!("p{index}@x.org"),
            );
            (Uuid::now_v7(), patient)
        })
        .collect();
    let last_id = batch[2_499].0;

    // Act
    let outcomes = service
        .import_patients(&CallerContext::system("test"), batch)
        .await
        .unwrap();

    // Assert
    assert_eq!(num_created(&outcomes), 2_500);
    let last = service
        .get_patient(&CallerContext::system("test"), last_id)
        .await
        .unwrap();
    assert_eq!(last.mrn, "MRN-00002500");
    assert_eq!(outbox_events(db).await.len(), 2_500);
}

#[tokio::test]
async fn a_batch_reports_each_record_on_sqlite() {
    let test = TestDb::new("bulk").await;
    a_batch_reports_each_record_and_registers_the_rest_like_a_create(&test.service, &test.db).await;
}

#[tokio::test]
async fn a_batch_reports_each_record_on_postgres() {
    let postgres = TestPostgres::create("bulk", "patients").await;
    PatientsService::migrate(postgres.db()).await.unwrap();
    let service = PatientsService::new(postgres.db().clone(), OutboxWaker::default());
    a_batch_reports_each_record_and_registers_the_rest_like_a_create(&service, postgres.db()).await;
    postgres.drop_database().await;
}

#[tokio::test]
async fn a_large_batch_is_written_in_chunks_on_sqlite() {
    let test = TestDb::new("bulk").await;
    a_large_batch_is_written_in_chunks(&test.service, &test.db).await;
}

#[tokio::test]
async fn a_large_batch_is_written_in_chunks_on_postgres() {
    let postgres = TestPostgres::create("bulk", "patients").await;
    PatientsService::migrate(postgres.db()).await.unwrap();
    let service = PatientsService::new(postgres.db().clone(), OutboxWaker::default());
    a_large_batch_is_written_in_chunks(&service, postgres.db()).await;
    postgres.drop_database().await;
}

#[tokio::test]
async fn an_oversized_or_unauthorized_import_writes_nothing() {
    // Arrange
    let test = TestDb::new("bulk").await;
    let too_many: Vec<(Uuid, NewPatient)> = (0..=IMPORT_BATCH_MAX)
        .map(|index| {
            (
                Uuid::now_v7(),
                new_patient("A B", &format!("{index}@x.org")),
            )
        })
        .collect();
    let one = vec![(Uuid::now_v7(), new_patient("A B", "a@x.org"))];

    // Act
    let oversized = test
        .service
        .import_patients(&CallerContext::system("test"), too_many)
        .await;
    let as_analyst = test
        .service
        .import_patients(&caller(UserRole::Analyst), one)
        .await;

    // Assert
    assert!(
        matches!(oversized, Err(WardError::InvalidArgument { .. })),
        "{oversized:?}"
    );
    assert!(
        matches!(as_analyst, Err(WardError::Forbidden(_))),
        "{as_analyst:?}"
    );
    assert!(outbox_events(&test.db).await.is_empty());
}

#[tokio::test]
async fn an_export_pages_live_patients_by_id_and_filters_by_change_time() {
    // Arrange: three patients, one deleted, one changed after `since`.
    let test = TestDb::new("bulk").await;
    let clinician = caller(UserRole::Clinician);
    let mut ids = Vec::new();
    for name in ["Ann One", "Ben Two", "Cy Three"] {
        let email = format!("{}@example.com", name.replace(' ', "."));
        let patient = test
            .service
            .create_patient(&clinician, new_patient(name, &email), None)
            .await
            .unwrap();
        ids.push(patient.id);
    }
    test.service
        .delete_patient(&clinician, ids[1], None)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = Utc::now();
    let changes = PatientChanges {
        name: "Cy Changed".into(),
        email: Some("cy@example.com".into()),
        address: Some("2 Oak St".into()),
        date_of_birth: date("1990-01-01"),
        identifiers_opt: None,
        fhir_extras_opt: None,
    };
    test.service
        .update_patient(&clinician, ids[2], changes, None)
        .await
        .unwrap();

    // Act
    let first = test
        .service
        .export_patients(&clinician, None, page(1, None))
        .await
        .unwrap();
    let cursor = PageRequest::parse(Some(1), first.next_cursor_opt.as_deref()).unwrap();
    let second = test
        .service
        .export_patients(&clinician, None, cursor)
        .await
        .unwrap();
    let changed = test
        .service
        .export_patients(&clinician, Some(since), page(500, None))
        .await
        .unwrap();
    let as_analyst = test
        .service
        .export_patients(&caller(UserRole::Analyst), None, page(10, None))
        .await;

    // Assert
    let first_ids: Vec<Uuid> = first.items.iter().map(|patient| patient.id).collect();
    let second_ids: Vec<Uuid> = second.items.iter().map(|patient| patient.id).collect();
    assert_eq!(first_ids, [ids[0]]);
    assert_eq!(second_ids, [ids[2]]);
    assert_eq!(second.next_cursor_opt, None);
    assert_eq!(changed.items.len(), 1);
    assert_eq!(changed.items[0].name, "Cy Changed");
    assert!(matches!(as_analyst, Err(WardError::Forbidden(_))));
    let admin = caller(UserRole::Admin);
    let trail = test
        .service
        .audit_events(
            &admin,
            AuditQuery::parse(None, None, None, None, Some(500), None).unwrap(),
        )
        .await
        .unwrap();
    let exports: Vec<(&str, &[Uuid])> = trail
        .items
        .iter()
        .filter(|event| event.action == "export")
        .map(|event| (event.outcome.as_str(), event.patient_ids.as_slice()))
        .collect();
    assert_eq!(
        exports,
        [
            ("allowed", &[ids[0]][..]),
            ("allowed", &[ids[2]][..]),
            ("allowed", &[ids[2]][..]),
            ("denied", &[][..]),
        ]
    );
}

// PostgreSQL lets two batches check the same ids before either commits; the loser's insert then
// breaks a unique rule, and its retry must report the records instead of failing the batch.
#[tokio::test]
async fn concurrent_imports_of_one_batch_create_each_record_once_on_postgres() {
    // Arrange
    let postgres = TestPostgres::create("bulk", "patients").await;
    PatientsService::migrate(postgres.db()).await.unwrap();
    let service = PatientsService::new(postgres.db().clone(), OutboxWaker::default());
    let system = CallerContext::system("test");
    let batch: Vec<(Uuid, NewPatient)> = (0..200)
        .map(|index| {
            let patient = new_patient(
                &format!("Racing Patient{index}"),
                &format!("r{index}@x.org"),
            );
            (Uuid::now_v7(), patient)
        })
        .collect();

    // Act
    let (first, second) = tokio::join!(
        service.import_patients(&system, batch.clone()),
        service.import_patients(&system, batch.clone()),
    );

    // Assert
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(num_created(&first) + num_created(&second), 200);
    for (one, other) in first.iter().zip(&second) {
        let settled = matches!(
            (one, other),
            (ImportOutcome::Created, ImportOutcome::AlreadyPresent)
                | (ImportOutcome::AlreadyPresent, ImportOutcome::Created)
        );
        assert!(settled, "{one:?} and {other:?}");
    }
    assert_eq!(outbox_events(postgres.db()).await.len(), 200);
    postgres.drop_database().await;
}

//! The patients schema on PostgreSQL: the audit trail is append-only in the database itself.
//! Needs PostgreSQL (WARD_TEST_POSTGRES_URL, default the local server).

use sea_orm::ConnectionTrait;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{
    IdempotencyKey, NewPatient, PageRequest, PatientChanges, PatientSearch, PatientSearchInput,
};
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
                email: Some("ada@example.com".into()),
                address: Some("1 Elm St".into()),
                date_of_birth: date("1815-12-10"),
                registered_date: date("2024-01-10"),
                identifiers: Vec::new(),
                fhir_extras: ward_bus::patients::FhirExtras::default(),
            },
            None,
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
            email: Some("ada@example.com".into()),
            address: Some("1 Elm St".into()),
            date_of_birth: date("1815-12-10"),
            identifiers_opt: None,
            fhir_extras_opt: None,
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

// The prefix range and the sort compare bytewise on PostgreSQL too (`COLLATE "C"`), whatever
// the database's locale; paging by name must cover every match once.
#[tokio::test]
async fn name_prefix_search_sorts_and_pages_on_postgres() {
    // Arrange
    let postgres = TestPostgres::create("patients_search", "patients").await;
    let db = postgres.db();
    PatientsService::migrate(db).await.unwrap();
    let service = PatientsService::new(db.clone(), OutboxWaker::default());
    let keys = TestKeys::generate("patients-pg-search");
    let clinician = keys.caller(UserRole::Clinician);
    let date = |raw: &str| chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap();
    let names = [
        "José Álvarez",
        "Ann Johnson",
        "Zoë Jørgensen",
        "Mary-Jo Smith",
        "Bob Builder",
    ];
    for (index, name) in names.iter().enumerate() {
        let patient = NewPatient {
            name: name.to_string(),
            email: Some(format!("p{index}@example.com")),
            address: Some("1 Elm St".into()),
            date_of_birth: date(&format!("198{index}-01-01")),
            registered_date: date("2024-01-10"),
            identifiers: Vec::new(),
            fhir_extras: ward_bus::patients::FhirExtras::default(),
        };
        service
            .create_patient(&clinician, patient, None)
            .await
            .unwrap();
    }
    let search = |cursor_opt: Option<String>| {
        PatientSearch::parse(PatientSearchInput {
            name_opt: Some("jo".into()),
            birth_dates: vec!["ge1980-01-01".into()],
            sort_opt: Some("name".into()),
            limit_opt: Some(2),
            cursor_opt,
            total_opt: Some("accurate".into()),
            ..PatientSearchInput::default()
        })
        .unwrap()
    };

    // Act
    let mut seen = Vec::new();
    let mut cursor_opt = None;
    loop {
        let page = service
            .search_patients(&clinician, search(cursor_opt))
            .await
            .unwrap();
        assert_eq!(page.total_opt, Some(3));
        seen.extend(page.items.into_iter().map(|patient| patient.name));
        cursor_opt = page.next_cursor_opt;
        if cursor_opt.is_none() {
            break;
        }
    }
    let accented = service
        .search_patients(
            &clinician,
            PatientSearch::parse(PatientSearchInput {
                name_opt: Some("JØR".into()),
                ..PatientSearchInput::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(
        seen,
        // "ø" is a letter of its own, not an accented "o" (NFKD keeps it): "jo" does not
        // find "Jørgensen", "jør" does.
        vec!["Ann Johnson", "José Álvarez", "Mary-Jo Smith"]
    );
    assert_eq!(accented.items.len(), 1);
    postgres.drop_database().await;
}

// PostgreSQL runs writers in parallel: the sequence must still hand each registration its own
// number, and a number must find its patient.
#[tokio::test]
async fn concurrent_creates_get_distinct_medical_record_numbers_on_postgres() {
    // Arrange
    let postgres = TestPostgres::create("patients_mrn", "patients").await;
    let db = postgres.db();
    PatientsService::migrate(db).await.unwrap();
    let service = PatientsService::new(db.clone(), OutboxWaker::default());
    let keys = TestKeys::generate("patients-pg-mrn");
    let clinician = keys.caller(UserRole::Clinician);
    let date = |raw: &str| chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap();

    // Act
    let mut tasks = Vec::new();
    for index in 0..10 {
        let service = service.clone();
        let clinician = clinician.clone();
        let patient = NewPatient {
            name: format!("Racer {index}"),
            email: Some(format!("racer{index}@example.com")),
            address: Some("1 Elm St".into()),
            date_of_birth: date("1990-01-01"),
            registered_date: date("2024-01-10"),
            identifiers: Vec::new(),
            fhir_extras: ward_bus::patients::FhirExtras::default(),
        };
        tasks.push(tokio::spawn(async move {
            service.create_patient(&clinician, patient, None).await
        }));
    }
    let mut numbers = std::collections::HashSet::new();
    for task in tasks {
        numbers.insert(task.await.unwrap().unwrap().mrn);
    }
    let found = service
        .search_patients(
            &clinician,
            PatientSearch::parse(PatientSearchInput {
                identifier_opt: Some("MRN-00000007".into()),
                ..PatientSearchInput::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();

    // Assert
    let expected: std::collections::HashSet<String> =
        (1..=10).map(|n| format!("MRN-{n:08}")).collect();
    assert_eq!(numbers, expected);
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].mrn, "MRN-00000007");
    postgres.drop_database().await;
}

// A database numbered by the counter row before the sequence existed continues where the row
// stopped; migrating down hands the position back to the row, so no number is given twice.
#[tokio::test]
async fn the_mrn_sequence_continues_from_the_counter_row_and_hands_back_on_down() {
    use sea_orm_migration::MigratorTrait;
    use ward_patients::migration::Migrator;

    // Arrange: every migration before the sequence, and a counter that has given 41 numbers.
    let postgres = TestPostgres::create("patients_mrn_seq", "patients").await;
    let db = postgres.db();
    let num_before_sequence = Migrator::migrations().len() as u32 - 1;
    Migrator::up(db, Some(num_before_sequence)).await.unwrap();
    db.execute_unprepared("UPDATE patient_counters SET next_value = 42 WHERE name = 'mrn'")
        .await
        .unwrap();
    let service = PatientsService::new(db.clone(), OutboxWaker::default());
    let keys = TestKeys::generate("patients-pg-mrn-seq");
    let clinician = keys.caller(UserRole::Clinician);
    let patient = |n: u32| NewPatient {
        name: format!("Counted {n}"),
        email: Some(format!("counted{n}@example.com")),
        address: None,
        date_of_birth: chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(),
        registered_date: chrono::NaiveDate::from_ymd_opt(2024, 1, 10).unwrap(),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    };

    // Act
    Migrator::up(db, None).await.unwrap();
    let first = service.create_patient(&clinician, patient(1), None).await;
    let second = service.create_patient(&clinician, patient(2), None).await;
    // What a rolled-back deploy's code (numbering from the row) would continue from.
    Migrator::down(db, Some(1)).await.unwrap();

    // Assert
    assert_eq!(first.unwrap().mrn, "MRN-00000042");
    assert_eq!(second.unwrap().mrn, "MRN-00000043");
    let counter = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT next_value FROM patient_counters WHERE name = 'mrn'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counter.try_get::<i64>("", "next_value").unwrap(), 44);
    let sequences = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT count(*) AS n FROM pg_class WHERE relname = 'patient_mrn_seq'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sequences.try_get::<i64>("", "n").unwrap(), 0);
    postgres.drop_database().await;
}

// PostgreSQL runs writers in parallel: concurrent first calls with one `Idempotency-Key` must
// still create one patient, and every caller must get it (the key row is inserted first, so
// the others wait on it and replay).
#[tokio::test]
async fn concurrent_creates_with_one_idempotency_key_create_one_patient_on_postgres() {
    // Arrange
    let postgres = TestPostgres::create("patients_idempotency", "patients").await;
    let db = postgres.db();
    PatientsService::migrate(db).await.unwrap();
    let service = PatientsService::new(db.clone(), OutboxWaker::default());
    let keys = TestKeys::generate("patients-pg-idempotency");
    let clinician = keys.caller(UserRole::Clinician);
    let date = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();

    // Act
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let service = service.clone();
        let clinician = clinician.clone();
        let patient = NewPatient {
            name: "Racer".into(),
            email: Some("racer@example.com".into()),
            address: Some("1 Elm St".into()),
            date_of_birth: date,
            registered_date: date,
            identifiers: Vec::new(),
            fhir_extras: ward_bus::patients::FhirExtras::default(),
        };
        let key = IdempotencyKey::parse("race-1").unwrap();
        tasks.push(tokio::spawn(async move {
            service.create_patient(&clinician, patient, Some(key)).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap().id);
    }

    // Assert
    assert_eq!(ids.len(), 1);
    let page = PageRequest {
        limit: 10,
        after_opt: None,
    };
    let listed = service.list_patients(&clinician, page).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    postgres.drop_database().await;
}

//! `PatientsService::search_patients` against a real SQLite file: name prefixes ignoring case
//! and accents, birth date bounds, email, sorts, stable keyset paging, totals and the name index
//! kept in step with writes.

mod common;

use std::collections::HashSet;

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{
    AuditQuery, NewPatient, Patient, PatientChanges, PatientSearch, PatientSearchInput,
};
use ward_core::config::SecretUrl;
use ward_core::{CallerContext, ErrorCode, WardResult};
use ward_patients::PatientsService;

use common::TestDb;

impl TestDb {
    async fn add(&self, name: &str, date_of_birth: &str, registered_date: &str) -> Patient {
        let email = format!("{}@example.com", Uuid::now_v7().simple());
        let patient = NewPatient {
            name: name.into(),
            email: Some(email),
            address: Some("1 Elm St".into()),
            date_of_birth: date(date_of_birth),
            registered_date: date(registered_date),
            identifiers: Vec::new(),
            fhir_extras: ward_bus::patients::FhirExtras::default(),
        };
        self.service
            .create_patient(&system(), patient, None)
            .await
            .unwrap()
    }

    async fn search(
        &self,
        input: PatientSearchInput,
    ) -> WardResult<ward_bus::patients::PatientPage> {
        let search = PatientSearch::parse(input)?;
        self.service.search_patients(&system(), search).await
    }

    /// The names a search answers on its first page (of up to 500).
    async fn names(&self, input: PatientSearchInput) -> Vec<String> {
        let input = PatientSearchInput {
            limit_opt: Some(500),
            ..input
        };
        let page = self.search(input).await.unwrap();
        page.items.into_iter().map(|patient| patient.name).collect()
    }
}

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

fn system() -> CallerContext {
    CallerContext::system("test")
}

fn by_name(name: &str) -> PatientSearchInput {
    PatientSearchInput {
        name_opt: Some(name.into()),
        ..PatientSearchInput::default()
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

async fn sample() -> TestDb {
    let test = TestDb::new("patients-search").await;
    test.add("José Álvarez", "1982-03-04", "2024-01-05").await;
    test.add("Ann Johnson", "1979-12-31", "2024-02-01").await;
    test.add("Björn Ek", "1990-07-01", "2023-11-20").await;
    test.add("Mary-Jo Smith", "1980-01-01", "2024-03-15").await;
    test
}

#[tokio::test]
async fn a_name_word_matches_by_prefix_ignoring_case_and_accents() {
    // Arrange
    let test = sample().await;

    // Act + Assert
    assert_eq!(
        sorted(test.names(by_name("jo")).await),
        vec!["Ann Johnson", "José Álvarez", "Mary-Jo Smith"]
    );
    assert_eq!(test.names(by_name("alv")).await, vec!["José Álvarez"]);
    assert_eq!(test.names(by_name("ÁLVAREZ")).await, vec!["José Álvarez"]);
    assert_eq!(test.names(by_name("bjorn")).await, vec!["Björn Ek"]);
    assert!(test.names(by_name("varez")).await.is_empty());
}

#[tokio::test]
async fn several_name_words_must_all_match() {
    let test = sample().await;

    assert_eq!(test.names(by_name("jo al")).await, vec!["José Álvarez"]);
    assert_eq!(
        test.names(by_name("smi  mary")).await,
        vec!["Mary-Jo Smith"]
    );
    assert!(test.names(by_name("jo ek")).await.is_empty());
}

#[tokio::test]
async fn birth_dates_filter_by_eq_ge_le_and_ranges() {
    let test = sample().await;
    let birth = |bounds: &[&str]| PatientSearchInput {
        birth_dates: bounds.iter().map(|bound| bound.to_string()).collect(),
        ..PatientSearchInput::default()
    };

    assert_eq!(test.names(birth(&["1990-07-01"])).await, vec!["Björn Ek"]);
    assert_eq!(
        test.names(birth(&["eq1982-03-04"])).await,
        vec!["José Álvarez"]
    );
    assert_eq!(
        sorted(test.names(birth(&["ge1982-01-01"])).await),
        vec!["Björn Ek", "José Álvarez"]
    );
    assert_eq!(
        test.names(birth(&["le1979-12-31"])).await,
        vec!["Ann Johnson"]
    );
    assert_eq!(
        sorted(test.names(birth(&["ge1980-01-01", "le1989-12-31"])).await),
        vec!["José Álvarez", "Mary-Jo Smith"]
    );
}

#[tokio::test]
async fn email_matches_exactly_ignoring_case() {
    let test = TestDb::new("patients-search").await;
    let patient = NewPatient {
        name: "Ada Lovelace".into(),
        email: Some("Ada@Example.com".into()),
        address: Some("12 St James Sq".into()),
        date_of_birth: date("1815-12-10"),
        registered_date: date("2024-06-01"),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    };
    test.service
        .create_patient(&system(), patient, None)
        .await
        .unwrap();
    let email = |raw: &str| PatientSearchInput {
        email_opt: Some(raw.into()),
        ..PatientSearchInput::default()
    };

    assert_eq!(
        test.names(email("ada@EXAMPLE.com")).await,
        vec!["Ada Lovelace"]
    );
    assert!(test.names(email("ada@example")).await.is_empty());
}

#[tokio::test]
async fn each_sort_orders_ascending_and_descending() {
    let test = sample().await;
    let sort = |raw: &str| PatientSearchInput {
        sort_opt: Some(raw.into()),
        ..PatientSearchInput::default()
    };
    let by_name_asc = vec!["Ann Johnson", "Björn Ek", "José Álvarez", "Mary-Jo Smith"];
    let by_birth_asc = vec!["Ann Johnson", "Mary-Jo Smith", "José Álvarez", "Björn Ek"];
    let by_registration_asc = vec!["Björn Ek", "José Álvarez", "Ann Johnson", "Mary-Jo Smith"];

    for (field, ascending) in [
        ("name", by_name_asc),
        ("birthDate", by_birth_asc),
        ("registeredDate", by_registration_asc),
    ] {
        assert_eq!(test.names(sort(field)).await, ascending, "{field}");
        let mut descending = ascending.clone();
        descending.reverse();
        assert_eq!(
            test.names(sort(&format!("-{field}"))).await,
            descending,
            "-{field}"
        );
    }
    // By default: registration order (by id).
    assert_eq!(
        test.names(PatientSearchInput::default()).await,
        vec!["José Álvarez", "Ann Johnson", "Björn Ek", "Mary-Jo Smith"]
    );
}

/// Pages through `input` three at a time, adding a matching patient between pages; every
/// patient that matched at the start must be seen exactly once.
async fn page_through_while_inserting(test: &TestDb, input: PatientSearchInput) {
    let mut seen = Vec::new();
    let mut cursor_opt: Option<String> = None;
    let mut num_pages = 0;
    loop {
        let page = test
            .search(PatientSearchInput {
                limit_opt: Some(3),
                cursor_opt: cursor_opt.clone(),
                ..input.clone()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|patient| patient.id));
        num_pages += 1;
        test.add(
            &format!("Jo Newcomer {num_pages}"),
            "1985-05-05",
            "2024-05-05",
        )
        .await;
        match page.next_cursor_opt {
            Some(cursor) => cursor_opt = Some(cursor),
            None => break,
        }
        assert!(num_pages < 50, "paging does not end");
    }
    let unique: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a patient was answered twice");
    let now = test
        .search(PatientSearchInput {
            limit_opt: Some(500),
            ..input.clone()
        })
        .await
        .unwrap();
    for patient in now
        .items
        .iter()
        .filter(|patient| !patient.name.contains("Newcomer"))
    {
        assert!(unique.contains(&patient.id), "{} was skipped", patient.name);
    }
}

#[tokio::test]
async fn paging_covers_every_match_once_while_patients_are_added() {
    // Arrange
    let test = TestDb::new("patients-search").await;
    for index in 0..10 {
        let birth = format!("19{:02}-01-0{}", 70 + index, 1 + index % 3);
        test.add(&format!("Jo Patient{index}"), &birth, "2024-01-01")
            .await;
    }

    // Act + Assert
    for sort in [
        None,
        Some("name"),
        Some("-name"),
        Some("birthDate"),
        Some("-registeredDate"),
    ] {
        let input = PatientSearchInput {
            name_opt: Some("jo".into()),
            sort_opt: sort.map(str::to_string),
            ..PatientSearchInput::default()
        };
        page_through_while_inserting(&test, input).await;
    }
}

#[tokio::test]
async fn a_cursor_from_another_sort_or_filter_is_refused() {
    let test = sample().await;
    let first = test
        .search(PatientSearchInput {
            sort_opt: Some("name".into()),
            limit_opt: Some(1),
            ..PatientSearchInput::default()
        })
        .await
        .unwrap();
    let cursor = first.next_cursor_opt.unwrap();

    for input in [
        PatientSearchInput {
            sort_opt: Some("-name".into()),
            ..PatientSearchInput::default()
        },
        PatientSearchInput {
            sort_opt: Some("name".into()),
            name_opt: Some("jo".into()),
            ..PatientSearchInput::default()
        },
    ] {
        let error = PatientSearch::parse(PatientSearchInput {
            cursor_opt: Some(cursor.clone()),
            ..input
        })
        .unwrap_err();
        assert_eq!(error.error_code(), ErrorCode::InvalidArgument);
        assert_eq!(error.field_errors()[0].field, "cursor");
    }
}

#[tokio::test]
async fn the_total_is_counted_only_when_asked() {
    let test = sample().await;

    let without = test
        .search(PatientSearchInput {
            limit_opt: Some(1),
            ..by_name("jo")
        })
        .await
        .unwrap();
    let with = test
        .search(PatientSearchInput {
            limit_opt: Some(1),
            total_opt: Some("accurate".into()),
            ..by_name("jo")
        })
        .await
        .unwrap();

    assert_eq!(without.total_opt, None);
    assert_eq!(with.total_opt, Some(3));
    assert_eq!(with.items.len(), 1);
}

#[tokio::test]
async fn the_name_index_follows_updates_and_deletes() {
    let test = TestDb::new("patients-search").await;
    let patient = test.add("José Álvarez", "1982-03-04", "2024-01-05").await;
    let changes = PatientChanges {
        name: "Joseph Brown".into(),
        email: Some("joseph@example.com".into()),
        address: Some("1 Elm St".into()),
        date_of_birth: date("1982-03-04"),
        identifiers_opt: None,
        fhir_extras_opt: None,
    };

    test.service
        .update_patient(&system(), patient.id, changes, None)
        .await
        .unwrap();
    assert!(test.names(by_name("alv")).await.is_empty());
    assert_eq!(test.names(by_name("bro")).await, vec!["Joseph Brown"]);

    test.service
        .delete_patient(&system(), patient.id, None)
        .await
        .unwrap();
    assert!(test.names(by_name("jo")).await.is_empty());
}

#[tokio::test]
async fn a_search_is_audited_with_the_ids_of_its_page() {
    let test = sample().await;
    let page = test.search(by_name("alv")).await.unwrap();

    let query = AuditQuery::parse(None, None, None, None, Some(500), None).unwrap();
    let trail = test.service.audit_events(&admin(), query).await.unwrap();

    let last = trail.items.last().unwrap();
    assert_eq!(last.action, "search");
    assert_eq!(last.patient_ids, vec![page.items[0].id]);
}

fn admin() -> CallerContext {
    let principal = ward_core::Principal::with_role(
        Uuid::now_v7(),
        "admin@ward.test",
        ward_core::UserRole::Admin,
    );
    CallerContext::authenticated(principal, "token", "req")
}

#[tokio::test]
async fn the_migration_indexes_and_numbers_the_patients_already_stored() {
    // Arrange: a database as it stood before search, holding one patient.
    let dir = std::env::temp_dir().join(format!("ward-patients-backfill-{}", Uuid::now_v7()));
    let url = SecretUrl::new(format!("sqlite://{}?mode=rwc", dir.join("p.db").display()));
    let db = ward_bus::db::connect(&url, "patients").await.unwrap();
    ward_patients::Migrator::up(&db, Some(5)).await.unwrap();
    let older_id = Uuid::now_v7();
    let id = Uuid::now_v7();
    let now = chrono::Utc::now();
    // Inserted newest first: numbering must follow ids, not insertion.
    for (patient_id, name, email) in [
        (id, "Ångström Öberg", "a@example.com"),
        (older_id, "Bea Older", "b@example.com"),
    ] {
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO patients (id, name, email, email_normalized, address, date_of_birth, \
             registered_date, created_at, updated_at, version, name_sort) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, '')",
            [
                patient_id.into(),
                name.into(),
                email.into(),
                email.into(),
                "1 Elm St".into(),
                date("1980-01-01").into(),
                date("2024-01-01").into(),
                now.into(),
                now.into(),
            ],
        ))
        .await
        .unwrap();
    }

    // Act
    let format = ward_patients::MrnFormat::from_options(&ward_core::config::PatientsOptions {
        mrn_prefix: "OLD-".into(),
        mrn_digits: 4,
        ..ward_core::config::PatientsOptions::default()
    });
    PatientsService::migrate_with(&db, &format).await.unwrap();

    // Assert
    let service = PatientsService::new(db, OutboxWaker::default());
    let search = PatientSearch::parse(PatientSearchInput {
        name_opt: Some("obe ang".into()),
        sort_opt: Some("name".into()),
        ..PatientSearchInput::default()
    })
    .unwrap();
    let page = service.search_patients(&system(), search).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, id);
    assert_eq!(page.items[0].mrn, "OLD-0002");
    let older = service.get_patient(&system(), older_id).await.unwrap();
    assert_eq!(older.mrn, "OLD-0001");
    let newcomer = service
        .create_patient(
            &system(),
            NewPatient {
                name: "New Comer".into(),
                email: Some("new@example.com".into()),
                address: Some("1 Elm St".into()),
                date_of_birth: date("1990-01-01"),
                registered_date: date("2024-06-01"),
                identifiers: Vec::new(),
                fhir_extras: ward_bus::patients::FhirExtras::default(),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(newcomer.mrn, "MRN-00000003");
    let _ = std::fs::remove_dir_all(dir);
}

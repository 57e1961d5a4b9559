//! Merging duplicates against real databases: what moves, what the duplicate answers, what is
//! refused, the unmerge and its window, and two opposite merges racing on PostgreSQL.

mod common;

use std::time::Duration;

use chrono::NaiveDate;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::outbox::{self, OutboxWaker};
use ward_bus::patients::{
    MERGED_MRN_SYSTEM, NewPatient, Patient, PatientChanges, PatientIdentifier, PatientSearch,
    PatientSearchInput,
};
use ward_bus::testsuite::TestPostgres;
use ward_core::{CallerContext, ErrorCode};
use ward_patients::PatientsService;

use common::TestDb;

const INSURER: &str = "https://insurer.example/members";

fn system() -> CallerContext {
    CallerContext::system("test")
}

fn insured(value: &str) -> PatientIdentifier {
    PatientIdentifier {
        system: INSURER.into(),
        value: value.into(),
    }
}

fn new_patient(name: &str, email: &str, identifiers: Vec<PatientIdentifier>) -> NewPatient {
    NewPatient {
        name: name.into(),
        email: Some(email.into()),
        address: Some("1 Elm St".into()),
        date_of_birth: NaiveDate::from_ymd_opt(1960, 5, 4).unwrap(),
        registered_date: NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        identifiers,
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    }
}

async fn register(service: &PatientsService, name: &str, email: &str, value: &str) -> Patient {
    service
        .create_patient(
            &system(),
            new_patient(name, email, vec![insured(value)]),
            None,
        )
        .await
        .unwrap()
}

async fn found(service: &PatientsService, input: PatientSearchInput) -> Vec<Uuid> {
    let search = PatientSearch::parse(input).unwrap();
    let page = service.search_patients(&system(), search).await.unwrap();
    page.items.iter().map(|patient| patient.id).collect()
}

fn by_identifier(token: &str) -> PatientSearchInput {
    PatientSearchInput {
        identifier_opt: Some(token.into()),
        ..PatientSearchInput::default()
    }
}

fn by_name(name: &str) -> PatientSearchInput {
    PatientSearchInput {
        name_opt: Some(name.into()),
        ..PatientSearchInput::default()
    }
}

async fn merge_story(service: &PatientsService, db: &sea_orm::DatabaseConnection) {
    // Arrange: the record that stays and a duplicate registered later.
    let target = register(service, "Margaret Hamilton", "mh@example.com", "T-1").await;
    let source = register(service, "Margaret H. Hamilton", "mhh@example.com", "S-1").await;
    let events_before = outbox::pending(db).await.unwrap();

    // Act
    let merged = service
        .merge_patients(&system(), target.id, source.id, Some(target.version))
        .await
        .unwrap();

    // Assert: the target holds both sets and the duplicate's old number, one version on.
    assert_eq!(merged.version, target.version + 1);
    assert_eq!(
        merged.identifiers,
        [
            insured("S-1"),
            insured("T-1"),
            PatientIdentifier {
                system: MERGED_MRN_SYSTEM.into(),
                value: source.mrn.clone(),
            },
        ]
    );
    // The duplicate points at the target, keeps nothing, and is found no more but by its
    // old number, which now leads to the target.
    let duplicate = service.get_patient(&system(), source.id).await.unwrap();
    assert_eq!(duplicate.merged_into_opt, Some(target.id));
    assert!(duplicate.identifiers.is_empty());
    assert_eq!(found(service, by_name("Margaret")).await, [target.id]);
    assert_eq!(
        found(service, by_identifier(&source.mrn)).await,
        [target.id]
    );
    assert_eq!(
        found(service, by_identifier(&format!("{INSURER}|S-1"))).await,
        [target.id]
    );
    assert_eq!(outbox::pending(db).await.unwrap(), events_before + 1);
    let history = service.patient_history(&system(), source.id).await.unwrap();
    assert_eq!(history[0].action, "merged");
    let history = service.patient_history(&system(), target.id).await.unwrap();
    assert_eq!(history[0].action, "merge");

    // Refused: changing or deleting the duplicate, merging it again, merging into itself, a
    // stale target version.
    let change = PatientChanges {
        name: "X".into(),
        email: Some("mhh@example.com".into()),
        address: Some("2 Elm St".into()),
        date_of_birth: duplicate.date_of_birth,
        identifiers_opt: None,
        fhir_extras_opt: None,
    };
    let refused = service
        .update_patient(&system(), source.id, change, None)
        .await
        .unwrap_err();
    assert_eq!(refused.error_code(), ErrorCode::AlreadyExists);
    assert!(
        refused.to_string().contains(&target.id.to_string()),
        "{refused}"
    );
    let refused = service
        .delete_patient(&system(), source.id, None)
        .await
        .unwrap_err();
    assert_eq!(refused.error_code(), ErrorCode::AlreadyExists);
    let again = service
        .merge_patients(&system(), target.id, source.id, None)
        .await
        .unwrap_err();
    assert_eq!(again.error_code(), ErrorCode::AlreadyExists);
    let itself = service
        .merge_patients(&system(), target.id, target.id, None)
        .await
        .unwrap_err();
    assert_eq!(itself.error_code(), ErrorCode::InvalidArgument);
    let other = register(service, "Other Person", "op@example.com", "O-1").await;
    let stale = service
        .merge_patients(&system(), target.id, other.id, Some(target.version))
        .await
        .unwrap_err();
    assert_eq!(stale.error_code(), ErrorCode::PreconditionFailed);

    // Unmerge: both are patients of their own again, with what each had.
    let events_before = outbox::pending(db).await.unwrap();
    let (target_now, source_now) = service
        .unmerge_patients(&system(), target.id, source.id)
        .await
        .unwrap();
    assert_eq!(target_now.identifiers, [insured("T-1")]);
    assert_eq!(source_now.identifiers, [insured("S-1")]);
    assert_eq!(source_now.merged_into_opt, None);
    assert_eq!(
        found(service, by_name("Margaret")).await,
        [target.id, source.id]
    );
    assert_eq!(
        found(service, by_identifier(&source.mrn)).await,
        [source.id]
    );
    assert_eq!(outbox::pending(db).await.unwrap(), events_before + 1);
    let twice = service
        .unmerge_patients(&system(), target.id, source.id)
        .await
        .unwrap_err();
    assert_eq!(twice.error_code(), ErrorCode::AlreadyExists);
}

#[tokio::test]
async fn a_duplicate_is_merged_and_unmerged_on_sqlite() {
    let test = TestDb::new("patients-merge").await;
    merge_story(&test.service, &test.db).await;
}

#[tokio::test]
async fn a_duplicate_is_merged_and_unmerged_on_postgres() {
    let postgres = TestPostgres::create("patients_merge", "patients").await;
    PatientsService::migrate(postgres.db()).await.unwrap();
    let service = PatientsService::new(postgres.db().clone(), OutboxWaker::default());
    merge_story(&service, postgres.db()).await;
    postgres.drop_database().await;
}

#[tokio::test]
async fn an_unmerge_after_the_window_is_refused() {
    let test = TestDb::new("patients-merge-window").await;
    let service = test.service.clone().with_unmerge_window(Duration::ZERO);
    let target = register(&service, "Ada One", "a1@example.com", "A-1").await;
    let source = register(&service, "Ada Two", "a2@example.com", "A-2").await;
    service
        .merge_patients(&system(), target.id, source.id, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let late = service
        .unmerge_patients(&system(), target.id, source.id)
        .await
        .unwrap_err();

    assert_eq!(late.error_code(), ErrorCode::PreconditionFailed);
    let still = service.get_patient(&system(), source.id).await.unwrap();
    assert_eq!(still.merged_into_opt, Some(target.id));
}

// A into B and B into A at once: rows are locked in id order, so there is no deadlock, and the
// second merge finds its target already merged.
#[tokio::test]
async fn opposite_merges_racing_have_one_winner_on_postgres() {
    let postgres = TestPostgres::create("patients_merge_race", "patients").await;
    PatientsService::migrate(postgres.db()).await.unwrap();
    let service = PatientsService::new(postgres.db().clone(), OutboxWaker::default());
    for round in 0..5 {
        let first = register(
            &service,
            "Race One",
            &format!("r1-{round}@example.com"),
            &format!("R1-{round}"),
        )
        .await;
        let second = register(
            &service,
            "Race Two",
            &format!("r2-{round}@example.com"),
            &format!("R2-{round}"),
        )
        .await;
        let ctx = system();
        let (one, two) = tokio::join!(
            service.merge_patients(&ctx, first.id, second.id, None),
            service.merge_patients(&ctx, second.id, first.id, None),
        );
        let winners = usize::from(one.is_ok()) + usize::from(two.is_ok());
        assert_eq!(winners, 1, "round {round}: {one:?} {two:?}");
        for loser in [one, two].into_iter().filter_map(Result::err) {
            assert_eq!(loser.error_code(), ErrorCode::AlreadyExists, "{loser}");
        }
    }
    postgres.drop_database().await;
}

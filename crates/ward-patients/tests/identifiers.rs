//! Further identifiers against real databases (SQLite and PostgreSQL): kept with the record and
//! its history, unique per system across patients (soft-deleted ones included), found by
//! `identifier` in FHIR's token forms, replaced or kept by updates, freed by a purge.

mod common;

use chrono::NaiveDate;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{
    ImportOutcome, NewPatient, Patient, PatientChanges, PatientIdentifier, PatientSearch,
    PatientSearchInput,
};
use ward_bus::testsuite::TestPostgres;
use ward_core::{CallerContext, ErrorCode, WardError};
use ward_patients::PatientsService;

use common::TestDb;

const INSURER: &str = "https://insurer.example/members";
const NATIONAL: &str = "urn:oid:2.16.840.1.113883.2.4.6.3";

fn system() -> CallerContext {
    CallerContext::system("test")
}

fn identifier(system: &str, value: &str) -> PatientIdentifier {
    PatientIdentifier {
        system: system.into(),
        value: value.into(),
    }
}

fn new_patient(email: &str, identifiers: Vec<PatientIdentifier>) -> NewPatient {
    NewPatient {
        name: "Ada Lovelace".into(),
        email: Some(email.into()),
        address: Some("12 St James Sq".into()),
        date_of_birth: NaiveDate::from_ymd_opt(1815, 12, 10).unwrap(),
        registered_date: NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        identifiers,
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    }
}

fn changes_of(
    patient: &Patient,
    identifiers_opt: Option<Vec<PatientIdentifier>>,
) -> PatientChanges {
    PatientChanges {
        name: patient.name.clone(),
        email: patient.email.clone(),
        address: Some("13 St James Sq".into()),
        date_of_birth: patient.date_of_birth,
        identifiers_opt,
        fhir_extras_opt: None,
    }
}

async fn found_ids(service: &PatientsService, token: &str) -> Vec<Uuid> {
    let search = PatientSearch::parse(PatientSearchInput {
        identifier_opt: Some(token.into()),
        ..PatientSearchInput::default()
    })
    .unwrap();
    let page = service.search_patients(&system(), search).await.unwrap();
    page.items.iter().map(|patient| patient.id).collect()
}

fn assert_taken(error: WardError, taken: &str) {
    assert_eq!(error.error_code(), ErrorCode::AlreadyExists, "{error}");
    assert!(error.to_string().contains(taken), "{error}");
}

/// The whole story, on whichever database `service` stands on.
async fn identifiers_behave(service: &PatientsService) {
    // Registered with two identifiers, given back sorted.
    let ada = service
        .create_patient(
            &system(),
            new_patient(
                "ada@example.com",
                vec![
                    identifier(INSURER, "A-1"),
                    identifier(NATIONAL, "738472983"),
                ],
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        ada.identifiers,
        [
            identifier(INSURER, "A-1"),
            identifier(NATIONAL, "738472983")
        ]
    );
    assert_eq!(service.get_patient(&system(), ada.id).await.unwrap(), ada);

    // Another patient cannot take one of them, in any system-value pair already held; the same
    // value in another system is a different identifier.
    let refused = service
        .create_patient(
            &system(),
            new_patient("bob@example.com", vec![identifier(NATIONAL, "738472983")]),
            None,
        )
        .await
        .unwrap_err();
    assert_taken(refused, "738472983");
    let bob = service
        .create_patient(
            &system(),
            new_patient(
                "bob@example.com",
                vec![identifier("urn:other", "738472983")],
            ),
            None,
        )
        .await
        .unwrap();

    // Found by `system|value`, by value alone (any system) and by the MRN in FHIR form.
    assert_eq!(
        found_ids(service, &format!("{NATIONAL}|738472983")).await,
        [ada.id]
    );
    assert_eq!(found_ids(service, "738472983").await, [ada.id, bob.id]);
    assert_eq!(
        found_ids(service, &format!("urn:ward:mrn|{}", ada.mrn)).await,
        [ada.id]
    );
    assert_eq!(found_ids(service, &ada.mrn).await, [ada.id]);
    assert!(
        found_ids(service, &format!("{INSURER}|738472983"))
            .await
            .is_empty()
    );

    // An update without a list keeps them; with one, replaces them and frees the old ones.
    let kept = service
        .update_patient(&system(), ada.id, changes_of(&ada, None), None)
        .await
        .unwrap();
    assert_eq!(kept.identifiers, ada.identifiers);
    let bob_taking_ada_insurer = service
        .update_patient(
            &system(),
            bob.id,
            changes_of(&bob, Some(vec![identifier(INSURER, "A-1")])),
            None,
        )
        .await
        .unwrap_err();
    assert_taken(bob_taking_ada_insurer, "A-1");
    let replaced = service
        .update_patient(
            &system(),
            ada.id,
            changes_of(&kept, Some(vec![identifier(INSURER, "A-2")])),
            None,
        )
        .await
        .unwrap();
    assert_eq!(replaced.identifiers, [identifier(INSURER, "A-2")]);
    assert!(found_ids(service, "738472983").await == [bob.id]);
    let bob_now = service
        .update_patient(
            &system(),
            bob.id,
            changes_of(&bob, Some(vec![identifier(NATIONAL, "738472983")])),
            None,
        )
        .await
        .unwrap();
    assert_eq!(bob_now.identifiers, [identifier(NATIONAL, "738472983")]);

    // History keeps each version's list.
    let history = service.patient_history(&system(), ada.id).await.unwrap();
    let lists: Vec<usize> = history
        .iter()
        .map(|entry| entry.patient.identifiers.len())
        .collect();
    assert_eq!(lists, [1, 2, 2]);

    // A soft-deleted patient keeps its identifiers reserved (a restore must not clash); a
    // purge frees them.
    service
        .delete_patient(&system(), ada.id, None)
        .await
        .unwrap();
    let while_deleted = service
        .create_patient(
            &system(),
            new_patient("carol@example.com", vec![identifier(INSURER, "A-2")]),
            None,
        )
        .await
        .unwrap_err();
    assert_taken(while_deleted, "A-2");
    service.purge_patient(&system(), ada.id).await.unwrap();
    let carol = service
        .create_patient(
            &system(),
            new_patient("carol@example.com", vec![identifier(INSURER, "A-2")]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        found_ids(service, &format!("{INSURER}|A-2")).await,
        [carol.id]
    );
}

#[tokio::test]
async fn identifiers_are_unique_searchable_and_versioned_on_sqlite() {
    let test = TestDb::new("patients-identifiers").await;
    identifiers_behave(&test.service).await;
}

#[tokio::test]
async fn identifiers_are_unique_searchable_and_versioned_on_postgres() {
    let postgres = TestPostgres::create("patients_identifiers", "patients").await;
    PatientsService::migrate(postgres.db()).await.unwrap();
    let service = PatientsService::new(postgres.db().clone(), OutboxWaker::default());
    identifiers_behave(&service).await;
    postgres.drop_database().await;
}

// Two creates racing for one identifier on PostgreSQL, where the check before the insert
// cannot see the other's uncommitted row: the table's key lets exactly one win.
#[tokio::test]
async fn racing_creates_for_one_identifier_have_one_winner_on_postgres() {
    let postgres = TestPostgres::create("patients_identifier_race", "patients").await;
    PatientsService::migrate(postgres.db()).await.unwrap();
    let service = PatientsService::new(postgres.db().clone(), OutboxWaker::default());
    let mut attempts = tokio::task::JoinSet::new();
    for index in 0..8 {
        let service = service.clone();
        attempts.spawn(async move {
            service
                .create_patient(
                    &system(),
                    new_patient(
                        &format!("racer{index}@example.com"),
                        vec![identifier(INSURER, "RACE-1")],
                    ),
                    None,
                )
                .await
        });
    }
    let outcomes = attempts.join_all().await;
    let winners = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    for outcome in outcomes.into_iter().filter_map(Result::err) {
        assert_eq!(outcome.error_code(), ErrorCode::AlreadyExists, "{outcome}");
    }
    postgres.drop_database().await;
}

/// A batched import keeps identifiers unique too: one already held and one repeated within
/// the batch fail alone; the others are registered with their identifiers, findable at once.
async fn imports_check_identifiers(service: &PatientsService) {
    let holder = service
        .create_patient(
            &system(),
            new_patient("holder@example.com", vec![identifier(INSURER, "I-1")]),
            None,
        )
        .await
        .unwrap();
    let batch = vec![
        (
            Uuid::now_v7(),
            new_patient("i1@example.com", vec![identifier(INSURER, "I-1")]),
        ),
        (
            Uuid::now_v7(),
            new_patient("i2@example.com", vec![identifier(INSURER, "I-2")]),
        ),
        (
            Uuid::now_v7(),
            new_patient("i3@example.com", vec![identifier(INSURER, "I-2")]),
        ),
        (
            Uuid::now_v7(),
            new_patient("i4@example.com", vec![identifier(NATIONAL, "I-2")]),
        ),
    ];
    let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();

    let outcomes = service.import_patients(&system(), batch).await.unwrap();

    assert!(
        matches!(&outcomes[0], ImportOutcome::Failed(reason) if reason.contains("I-1")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], ImportOutcome::Created);
    assert!(
        matches!(&outcomes[2], ImportOutcome::Failed(reason) if reason.contains("earlier in the batch")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[3], ImportOutcome::Created);
    assert_eq!(
        found_ids(service, &format!("{INSURER}|I-1")).await,
        [holder.id]
    );
    assert_eq!(
        found_ids(service, &format!("{INSURER}|I-2")).await,
        [ids[1]]
    );
    let imported = service.get_patient(&system(), ids[3]).await.unwrap();
    assert_eq!(imported.identifiers, [identifier(NATIONAL, "I-2")]);
}

#[tokio::test]
async fn imports_keep_identifiers_unique_on_sqlite() {
    let test = TestDb::new("patients-identifiers-import").await;
    imports_check_identifiers(&test.service).await;
}

#[tokio::test]
async fn imports_keep_identifiers_unique_on_postgres() {
    let postgres = TestPostgres::create("patients_identifiers_import", "patients").await;
    PatientsService::migrate(postgres.db()).await.unwrap();
    let service = PatientsService::new(postgres.db().clone(), OutboxWaker::default());
    imports_check_identifiers(&service).await;
    postgres.drop_database().await;
}

//! Soft delete, restore and purge against a real SQLite file.

mod common;

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, Statement};
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::events::{PatientPurged, PatientRestored, decode_envelope, decode_payload};
use ward_bus::outbox::{self};
use ward_bus::patients::{
    AuditQuery, NewPatient, PATIENT_GONE_MESSAGE, PageRequest, PatientChanges, PatientSearch,
    PatientSearchInput,
};
use ward_core::{CallerContext, ErrorCode, Principal, UserRole, WardError};

use common::TestDb;

impl TestDb {
    /// Rows of `table` about patient `id` (`id_column` names it).
    async fn num_rows(&self, table: &str, id_column: &str, id: Uuid) -> i64 {
        let backend = self.db.get_database_backend();
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {id_column} = ?");
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }

    /// The outbox's event types, oldest first.
    async fn event_types(&self) -> Vec<(String, Vec<u8>)> {
        let rows = outbox::entity::Entity::find()
            .order_by_asc(outbox::entity::Column::Seq)
            .all(&self.db)
            .await
            .unwrap();
        rows.into_iter()
            .map(|row| {
                let envelope = decode_envelope(&row.payload).unwrap();
                (envelope.event_type, row.payload)
            })
            .collect()
    }
}

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

fn new_patient(name: &str, email: &str) -> NewPatient {
    NewPatient {
        name: name.into(),
        email: Some(email.into()),
        address: Some("1 Elm St".into()),
        date_of_birth: date("1990-01-02"),
        registered_date: date("2024-03-04"),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    }
}

fn changes(name: &str, email: &str) -> PatientChanges {
    PatientChanges {
        name: name.into(),
        email: Some(email.into()),
        address: Some("9 Oak Ave".into()),
        date_of_birth: date("1990-01-02"),
        identifiers_opt: None,
        fhir_extras_opt: None,
    }
}

fn caller(role: UserRole) -> CallerContext {
    let principal = Principal::with_role(Uuid::now_v7(), format!("{role}@ward.test"), role);
    CallerContext::authenticated(principal, "token", "req")
}

fn gone() -> WardError {
    WardError::Gone(PATIENT_GONE_MESSAGE.into())
}

fn search_by_name(name: &str) -> PatientSearch {
    PatientSearch::parse(PatientSearchInput {
        name_opt: Some(name.into()),
        ..PatientSearchInput::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_deleted_patient_stays_stored_but_answers_gone_and_is_never_found() {
    // Arrange
    let test = TestDb::new("soft-delete").await;
    let clinician = caller(UserRole::Clinician);
    let ada = test
        .service
        .create_patient(
            &clinician,
            new_patient("Ada Lovelace", "ada@example.com"),
            None,
        )
        .await
        .unwrap();
    let bob = test
        .service
        .create_patient(
            &clinician,
            new_patient("Bob Lovelace", "bob@example.com"),
            None,
        )
        .await
        .unwrap();

    // Act
    test.service
        .delete_patient(&clinician, ada.id, Some(1))
        .await
        .unwrap();

    // Assert: the row and its name tokens are kept.
    assert_eq!(test.num_rows("patients", "id", ada.id).await, 1);
    assert_eq!(
        test.num_rows("patient_name_tokens", "patient_id", ada.id)
            .await,
        2
    );
    let got = test.service.get_patient(&clinician, ada.id).await;
    assert_eq!(got.unwrap_err(), gone());
    let updated = test
        .service
        .update_patient(&clinician, ada.id, changes("Ada", "ada@example.com"), None)
        .await;
    assert_eq!(updated.unwrap_err(), gone());
    let deleted_again = test.service.delete_patient(&clinician, ada.id, None).await;
    assert_eq!(deleted_again.unwrap_err(), gone());
    let found = test
        .service
        .search_patients(&clinician, search_by_name("lovelace"))
        .await
        .unwrap();
    let found_ids: Vec<Uuid> = found.items.iter().map(|patient| patient.id).collect();
    assert_eq!(found_ids, [bob.id]);
    let listed = test
        .service
        .list_patients(
            &clinician,
            PageRequest {
                limit: 10,
                after_opt: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, bob.id);
    // The email stays reserved, so a restore can never clash.
    let clash = test
        .service
        .create_patient(
            &clinician,
            new_patient("Other Ada", "ADA@example.com"),
            None,
        )
        .await;
    assert_eq!(clash.unwrap_err().error_code(), ErrorCode::AlreadyExists);
    let history = test
        .service
        .patient_history(&clinician, ada.id)
        .await
        .unwrap();
    assert_eq!(history[0].action, "delete");
    assert_eq!(history[0].version, 2);
}

#[tokio::test]
async fn a_restore_brings_the_patient_back_one_version_on_with_its_event() {
    // Arrange
    let test = TestDb::new("soft-delete").await;
    let clinician = caller(UserRole::Clinician);
    let ada = test
        .service
        .create_patient(
            &clinician,
            new_patient("Ada Lovelace", "ada@example.com"),
            None,
        )
        .await
        .unwrap();
    test.service
        .delete_patient(&clinician, ada.id, None)
        .await
        .unwrap();

    // Act
    let stale = test
        .service
        .restore_patient(&clinician, ada.id, Some(1))
        .await;
    let restored = test
        .service
        .restore_patient(&clinician, ada.id, Some(2))
        .await
        .unwrap();
    let again = test.service.restore_patient(&clinician, ada.id, None).await;
    let unknown = test
        .service
        .restore_patient(&clinician, Uuid::now_v7(), None)
        .await;
    let analyst = test
        .service
        .restore_patient(&caller(UserRole::Analyst), ada.id, None)
        .await;

    // Assert
    assert_eq!(
        stale.unwrap_err().error_code(),
        ErrorCode::PreconditionFailed
    );
    assert_eq!(restored.version, 3);
    assert_eq!(restored.name, "Ada Lovelace");
    assert_eq!(
        test.service.get_patient(&clinician, ada.id).await.unwrap(),
        restored
    );
    assert_eq!(
        again,
        Err(WardError::AlreadyExists("Patient is not deleted".into()))
    );
    assert_eq!(again.unwrap_err().error_code().http_status(), 409);
    assert_eq!(unknown.unwrap_err().error_code(), ErrorCode::NotFound);
    assert_eq!(analyst.unwrap_err().error_code(), ErrorCode::Forbidden);
    let found = test
        .service
        .search_patients(&clinician, search_by_name("ada"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    let history = test
        .service
        .patient_history(&clinician, ada.id)
        .await
        .unwrap();
    let actions: Vec<&str> = history.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["restore", "delete", "create"]);
    let events = test.event_types().await;
    let types: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        types,
        ["PatientRegistered", "PatientDeleted", "PatientRestored"]
    );
    let envelope = decode_envelope(&events[2].1).unwrap();
    let payload: PatientRestored = decode_payload(&envelope).unwrap();
    assert_eq!(payload.patient_id, ada.id.to_string());
}

#[tokio::test]
async fn a_purge_erases_record_tokens_and_history_but_keeps_the_audit_trail() {
    // Arrange
    let test = TestDb::new("soft-delete").await;
    let admin = caller(UserRole::Admin);
    let clinician = caller(UserRole::Clinician);
    let ada = test
        .service
        .create_patient(
            &clinician,
            new_patient("Ada Lovelace", "ada@example.com"),
            None,
        )
        .await
        .unwrap();
    let bob = test
        .service
        .create_patient(
            &clinician,
            new_patient("Bob Byron", "bob@example.com"),
            None,
        )
        .await
        .unwrap();
    test.service
        .delete_patient(&clinician, bob.id, None)
        .await
        .unwrap();

    // Act
    let refused = test.service.purge_patient(&clinician, ada.id).await;
    test.service.purge_patient(&admin, ada.id).await.unwrap();
    test.service.purge_patient(&admin, bob.id).await.unwrap();
    let twice = test.service.purge_patient(&admin, ada.id).await;
    let unknown = test.service.purge_patient(&admin, Uuid::now_v7()).await;

    // Assert
    assert_eq!(refused.unwrap_err().error_code(), ErrorCode::Forbidden);
    assert_eq!(twice.unwrap_err().error_code(), ErrorCode::NotFound);
    assert_eq!(unknown.unwrap_err().error_code(), ErrorCode::NotFound);
    for id in [ada.id, bob.id] {
        assert_eq!(test.num_rows("patients", "id", id).await, 0);
        assert_eq!(
            test.num_rows("patient_name_tokens", "patient_id", id).await,
            0
        );
        assert_eq!(test.num_rows("patient_versions", "patient_id", id).await, 0);
        let got = test.service.get_patient(&admin, id).await;
        assert_eq!(got.unwrap_err().error_code(), ErrorCode::NotFound);
        let history = test.service.patient_history(&admin, id).await;
        assert_eq!(history.unwrap_err().error_code(), ErrorCode::NotFound);
    }
    // The email is free again once the record is erased.
    test.service
        .create_patient(&clinician, new_patient("Ada King", "ada@example.com"), None)
        .await
        .unwrap();
    let ada_id = ada.id.to_string();
    let query = AuditQuery::parse(Some(&ada_id), None, None, None, Some(500), None).unwrap();
    let trail = test.service.audit_events(&admin, query).await.unwrap();
    let summary: Vec<(&str, &str)> = trail
        .items
        .iter()
        .map(|event| (event.action.as_str(), event.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("create", "allowed"),
            ("delete", "denied"),
            ("delete", "allowed")
        ]
    );
    let events = test.event_types().await;
    let purged: Vec<&(String, Vec<u8>)> = events
        .iter()
        .filter(|(kind, _)| kind == "PatientPurged")
        .collect();
    assert_eq!(purged.len(), 2);
    let envelope = decode_envelope(&purged[0].1).unwrap();
    let payload: PatientPurged = decode_payload(&envelope).unwrap();
    assert_eq!(payload.patient_id, ada.id.to_string());
}

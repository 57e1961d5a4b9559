//! Every patient event carries the record's version after the change, read back from the
//! outbox, so consumers can order changes and skip stale ones.

mod common;

use chrono::NaiveDate;
use sea_orm::{EntityTrait, QueryOrder};
use ward_bus::PatientsApi;
use ward_bus::events::{
    PatientDeleted, PatientRegistered, PatientRestored, PatientUpdated, decode_envelope,
    decode_payload,
};
use ward_bus::outbox;
use ward_bus::patients::{NewPatient, PatientChanges};
use ward_core::CallerContext;
use ward_proto::v1::EventEnvelope;

use common::TestDb;

impl TestDb {
    /// The outbox's envelopes, oldest first.
    async fn envelopes(&self) -> Vec<EventEnvelope> {
        let rows = outbox::entity::Entity::find()
            .order_by_asc(outbox::entity::Column::Seq)
            .all(&self.db)
            .await
            .unwrap();
        rows.iter()
            .map(|row| decode_envelope(&row.payload).unwrap())
            .collect()
    }
}

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

#[tokio::test]
async fn each_event_carries_the_version_after_its_change() {
    // Arrange
    let test = TestDb::new("patients-event-versions").await;
    let ctx = CallerContext::system("test");
    let new_patient = NewPatient {
        name: "Grace Hopper".into(),
        email: Some("grace@example.com".into()),
        address: Some("1 Navy Yard".into()),
        date_of_birth: date("1906-12-09"),
        registered_date: date("2024-01-10"),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
    };
    let changes = PatientChanges {
        name: "Grace B. Hopper".into(),
        email: Some("grace@example.com".into()),
        address: Some("1 Navy Yard".into()),
        date_of_birth: date("1906-12-09"),
        identifiers_opt: None,
        fhir_extras_opt: None,
    };

    // Act: create (1), update twice (2, 3), delete (4), restore (5)
    let created = test
        .service
        .create_patient(&ctx, new_patient, None)
        .await
        .unwrap();
    let id = created.id;
    test.service
        .update_patient(&ctx, id, changes.clone(), Some(1))
        .await
        .unwrap();
    let updated = test
        .service
        .update_patient(&ctx, id, changes, None)
        .await
        .unwrap();
    test.service.delete_patient(&ctx, id, None).await.unwrap();
    let restored = test.service.restore_patient(&ctx, id, None).await.unwrap();

    // Assert
    assert_eq!(
        (created.version, updated.version, restored.version),
        (1, 3, 5)
    );
    let envelopes = test.envelopes().await;
    let types: Vec<&str> = envelopes
        .iter()
        .map(|envelope| envelope.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "PatientRegistered",
            "PatientUpdated",
            "PatientUpdated",
            "PatientDeleted",
            "PatientRestored"
        ]
    );
    let registered: PatientRegistered = decode_payload(&envelopes[0]).unwrap();
    let first_update: PatientUpdated = decode_payload(&envelopes[1]).unwrap();
    let second_update: PatientUpdated = decode_payload(&envelopes[2]).unwrap();
    let deleted: PatientDeleted = decode_payload(&envelopes[3]).unwrap();
    let restored_event: PatientRestored = decode_payload(&envelopes[4]).unwrap();
    assert_eq!(
        [
            registered.version,
            first_update.version,
            second_update.version,
            deleted.version,
            restored_event.version,
        ],
        [1, 2, 3, 4, 5]
    );
    // The history numbers the same changes the same way.
    let history = test.service.patient_history(&ctx, id).await.unwrap();
    let history_versions: Vec<u32> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(history_versions, [5, 4, 3, 2, 1]);
}

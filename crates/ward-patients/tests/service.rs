//! `PatientsService` against a real SQLite file: records, outbox rows, authorization, relay.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::NaiveDate;
use sea_orm::{EntityTrait, QueryOrder};
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::events::{
    EventLog, PATIENTS_TOPIC, PatientDeleted, PatientRegistered, PatientUpdated, decode_envelope,
    decode_payload,
};
use ward_bus::local_log::LocalEventLog;
use ward_bus::outbox::{self, OutboxRelay};
use ward_bus::patients::{
    AuditEvent, AuditQuery, DUPLICATE_EMAIL_IN_BATCH_MESSAGE, ImportOutcome, NewPatient,
    PageRequest, PatientChanges,
};
use ward_core::config::SecretUrl;
use ward_core::{CallerContext, Principal, UserRole, WardError};
use ward_patients::PatientsService;

use common::TestDb;

impl TestDb {
    async fn num_pending(&self) -> u64 {
        outbox::pending(&self.db).await.unwrap()
    }

    /// The outbox as (event type, record key, envelope), oldest first.
    async fn outbox_events(&self) -> Vec<(String, String, ward_proto::v1::EventEnvelope)> {
        let rows = outbox::entity::Entity::find()
            .order_by_asc(outbox::entity::Column::Seq)
            .all(&self.db)
            .await
            .unwrap();
        rows.into_iter()
            .map(|row| {
                assert_eq!(row.topic, PATIENTS_TOPIC);
                let envelope = decode_envelope(&row.payload).unwrap();
                (envelope.event_type.clone(), row.record_key, envelope)
            })
            .collect()
    }
}

fn sqlite_url(dir: &std::path::Path, file: &str) -> SecretUrl {
    SecretUrl::new(format!("sqlite://{}?mode=rwc", dir.join(file).display()))
}

fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

fn new_patient(name: &str, email: &str) -> NewPatient {
    NewPatient {
        name: name.into(),
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

fn page(limit: u32, after_opt: Option<Uuid>) -> PageRequest {
    PageRequest { limit, after_opt }
}

#[tokio::test]
async fn create_get_update_delete_write_their_events_in_order() {
    // Arrange
    let test = TestDb::new("patients").await;
    let clinician = caller(UserRole::Clinician);

    // Act
    let created = test
        .service
        .create_patient(
            &clinician,
            new_patient("John Doe", " John.Doe@Example.com "),
            None,
        )
        .await
        .unwrap();
    let fetched = test
        .service
        .get_patient(&clinician, created.id)
        .await
        .unwrap();
    assert_eq!(test.num_pending().await, 1);
    let updated = test
        .service
        .update_patient(
            &clinician,
            created.id,
            changes("John Q. Doe", "jq@example.com"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(test.num_pending().await, 2);
    test.service
        .delete_patient(&clinician, created.id, None)
        .await
        .unwrap();

    // Assert
    assert_eq!(created.email.as_deref(), Some("John.Doe@Example.com"));
    assert_eq!(created.id.get_version_num(), 7);
    assert_eq!(fetched, created);
    assert_eq!(updated.name, "John Q. Doe");
    assert_eq!(updated.email.as_deref(), Some("jq@example.com"));
    assert_eq!(updated.date_of_birth, date("1986-07-16"));
    assert_eq!(updated.registered_date, date("2024-01-10"));
    let after_delete = test.service.get_patient(&clinician, created.id).await;
    // A soft delete: the record is kept, and answers 410 until restored.
    assert_eq!(
        after_delete,
        Err(WardError::Gone(
            "Patient was deleted; an admin can restore it".into()
        ))
    );

    let events = test.outbox_events().await;
    let types: Vec<&str> = events.iter().map(|(kind, _, _)| kind.as_str()).collect();
    assert_eq!(
        types,
        ["PatientRegistered", "PatientUpdated", "PatientDeleted"]
    );
    let patient_id = created.id.to_string();
    for (_, key, envelope) in &events {
        assert_eq!(key, &patient_id);
        assert_eq!(envelope.subject_id, patient_id);
        assert_eq!(envelope.producer, "patients");
        assert_eq!(
            envelope
                .trace_context
                .get("x-request-id")
                .map(String::as_str),
            Some("req")
        );
    }
    let registered: PatientRegistered = decode_payload(&events[0].2).unwrap();
    assert_eq!(registered.patient_id, patient_id);
    assert_eq!(registered.name, "John Doe");
    assert_eq!(registered.email, "John.Doe@Example.com");
    assert_eq!(registered.registered_date, "2024-01-10");
    let changed: PatientUpdated = decode_payload(&events[1].2).unwrap();
    assert_eq!(
        (changed.name.as_str(), changed.email.as_str()),
        ("John Q. Doe", "jq@example.com")
    );
    let deleted: PatientDeleted = decode_payload(&events[2].2).unwrap();
    assert_eq!(deleted.patient_id, patient_id);
}

#[tokio::test]
async fn a_duplicate_email_differing_in_case_writes_nothing() {
    // Arrange
    let test = TestDb::new("patients").await;
    test.service
        .create_patient(&system(), new_patient("Ann", "ann@example.com"), None)
        .await
        .unwrap();

    // Act
    let result = test
        .service
        .create_patient(&system(), new_patient("Other Ann", "ANN@Example.COM"), None)
        .await;

    // Assert
    assert_eq!(
        result,
        Err(WardError::AlreadyExists(
            "Email address already exists".into()
        ))
    );
    assert_eq!(test.num_pending().await, 1);
    let listed = test
        .service
        .list_patients(&system(), page(50, None))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].name, "Ann");
}

#[tokio::test]
async fn concurrent_creates_with_one_email_register_exactly_one() {
    // Arrange
    let test = TestDb::new("patients").await;
    let mut tasks = Vec::new();

    // Act
    for index in 0..8 {
        let service = test.service.clone();
        tasks.push(tokio::spawn(async move {
            let email = if index % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            service
                .create_patient(&system(), new_patient("Racer", email), None)
                .await
        }));
    }
    let mut num_created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => num_created += 1,
            Err(error) => assert_eq!(
                error,
                WardError::AlreadyExists("Email address already exists".into())
            ),
        }
    }

    // Assert
    assert_eq!(num_created, 1);
    assert_eq!(test.num_pending().await, 1);
}

#[tokio::test]
async fn updating_to_another_patients_email_conflicts_but_keeping_ones_own_does_not() {
    // Arrange
    let test = TestDb::new("patients").await;
    let first = test
        .service
        .create_patient(&system(), new_patient("First", "first@example.com"), None)
        .await
        .unwrap();
    let second = test
        .service
        .create_patient(&system(), new_patient("Second", "second@example.com"), None)
        .await
        .unwrap();

    // Act
    let stolen = test
        .service
        .update_patient(
            &system(),
            second.id,
            changes("Second", "FIRST@example.com"),
            None,
        )
        .await;
    let recased = test
        .service
        .update_patient(
            &system(),
            second.id,
            changes("Second", "Second@Example.com"),
            None,
        )
        .await;

    // Assert
    assert_eq!(
        stolen,
        Err(WardError::AlreadyExists(
            "Email address already exists".into()
        ))
    );
    assert_eq!(
        recased.unwrap().email.as_deref(),
        Some("Second@Example.com")
    );
    let unchanged = test.service.get_patient(&system(), first.id).await.unwrap();
    assert_eq!(unchanged.email.as_deref(), Some("first@example.com"));
    // Two registrations and the one successful update.
    assert_eq!(test.num_pending().await, 3);
}

#[tokio::test]
async fn unknown_ids_are_not_found_everywhere() {
    // Arrange
    let test = TestDb::new("patients").await;
    let unknown = Uuid::now_v7();
    let not_found = WardError::NotFound("Patient not found".into());

    // Act
    let got = test.service.get_patient(&system(), unknown).await;
    let updated = test
        .service
        .update_patient(
            &system(),
            unknown,
            changes("Nobody", "nobody@example.com"),
            None,
        )
        .await;
    let deleted = test.service.delete_patient(&system(), unknown, None).await;

    // Assert
    assert_eq!(got.unwrap_err(), not_found);
    assert_eq!(updated.unwrap_err(), not_found);
    assert_eq!(deleted.unwrap_err(), not_found);
    assert_eq!(test.num_pending().await, 0);
}

#[tokio::test]
async fn pages_of_three_over_seven_patients_cover_all_once() {
    // Arrange
    let test = TestDb::new("patients").await;
    let mut created = Vec::new();
    for index in 0..7 {
        let patient = new_patient(
            &format!("Patient {index}"),
            &format!("p{index}@example.com"),
        );
        created.push(
            test.service
                .create_patient(&system(), patient, None)
                .await
                .unwrap()
                .id,
        );
    }

    // Act
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    let mut after_opt = None;
    loop {
        let listed = test
            .service
            .list_patients(&system(), page(3, after_opt))
            .await
            .unwrap();
        sizes.push(listed.items.len());
        seen.extend(listed.items.iter().map(|patient| patient.id));
        let Some(cursor) = listed.next_cursor_opt else {
            break;
        };
        let parsed = PageRequest::parse(Some(3), Some(&cursor)).unwrap();
        after_opt = parsed.after_opt;
    }

    // Assert
    assert_eq!(sizes, [3, 3, 1]);
    let unique: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages follow id order");
    created.sort();
    assert_eq!(seen, created);
}

#[tokio::test]
async fn an_exact_last_page_has_no_cursor_and_bad_limits_are_refused() {
    // Arrange
    let test = TestDb::new("patients").await;
    for index in 0..3 {
        let patient = new_patient("Patient", &format!("q{index}@example.com"));
        test.service
            .create_patient(&system(), patient, None)
            .await
            .unwrap();
    }

    // Act
    let full = test
        .service
        .list_patients(&system(), page(3, None))
        .await
        .unwrap();
    let zero = test.service.list_patients(&system(), page(0, None)).await;

    // Assert
    assert_eq!(full.items.len(), 3);
    assert_eq!(full.next_cursor_opt, None);
    assert!(matches!(zero, Err(WardError::InvalidArgument { .. })));
}

#[tokio::test]
async fn rights_are_enforced_before_any_work() {
    // Arrange
    let test = TestDb::new("patients").await;
    let analyst = caller(UserRole::Analyst);
    let billing = caller(UserRole::Billing);
    let anonymous = CallerContext::anonymous("req-anon");
    let existing = test
        .service
        .create_patient(&system(), new_patient("Kept", "kept@example.com"), None)
        .await
        .unwrap();

    // Act and assert
    let analyst_create = test
        .service
        .create_patient(&analyst, new_patient("X", "x@example.com"), None)
        .await;
    assert!(matches!(analyst_create, Err(WardError::Forbidden(_))));
    let analyst_get = test.service.get_patient(&analyst, existing.id).await;
    assert!(matches!(analyst_get, Err(WardError::Forbidden(_))));
    let analyst_list = test.service.list_patients(&analyst, page(10, None)).await;
    assert!(matches!(analyst_list, Err(WardError::Forbidden(_))));
    // Billing staff may read records but not change them.
    assert!(
        test.service
            .get_patient(&billing, existing.id)
            .await
            .is_ok()
    );
    let billing_delete = test
        .service
        .delete_patient(&billing, existing.id, None)
        .await;
    assert!(matches!(billing_delete, Err(WardError::Forbidden(_))));
    let anonymous_get = test.service.get_patient(&anonymous, existing.id).await;
    assert!(matches!(anonymous_get, Err(WardError::Unauthenticated(_))));
    let anonymous_import = test
        .service
        .import_patients(
            &anonymous,
            vec![(Uuid::now_v7(), new_patient("Y", "y@example.com"))],
        )
        .await;
    assert!(matches!(
        anonymous_import,
        Err(WardError::Unauthenticated(_))
    ));
    assert_eq!(test.num_pending().await, 1);
}

#[tokio::test]
async fn importing_twice_inserts_once() {
    // Arrange
    let test = TestDb::new("patients").await;
    let demo_id = Uuid::parse_str("123e4567-e89b-12d3-a456-426614174000").unwrap();
    let batch = vec![
        (demo_id, new_patient("John Doe", "john.doe@example.com")),
        (
            Uuid::now_v7(),
            new_patient("Jane Smith", "jane.smith@example.com"),
        ),
        // Same email as the first, new id: refused on its own, the others go on.
        (
            Uuid::now_v7(),
            new_patient("John Again", "JOHN.DOE@example.com"),
        ),
    ];

    // Act
    let first = test
        .service
        .import_patients(&system(), batch.clone())
        .await
        .unwrap();
    let second = test
        .service
        .import_patients(&system(), batch)
        .await
        .unwrap();

    // Assert
    assert_eq!(
        first,
        [
            ImportOutcome::Created,
            ImportOutcome::Created,
            ImportOutcome::Failed(DUPLICATE_EMAIL_IN_BATCH_MESSAGE.into()),
        ]
    );
    assert_eq!(
        second,
        [
            ImportOutcome::AlreadyPresent,
            ImportOutcome::AlreadyPresent,
            ImportOutcome::Failed("Email address already exists".into()),
        ]
    );
    let john = test.service.get_patient(&system(), demo_id).await.unwrap();
    assert_eq!(john.registered_date, date("2024-01-10"));
    let events = test.outbox_events().await;
    let types: Vec<&str> = events.iter().map(|(kind, _, _)| kind.as_str()).collect();
    assert_eq!(types, ["PatientRegistered", "PatientRegistered"]);
    assert_eq!(events[0].1, demo_id.to_string());
}

#[tokio::test]
async fn the_relay_moves_outbox_rows_to_the_log() {
    // Arrange
    let test = TestDb::new("patients").await;
    let log = Arc::new(
        LocalEventLog::open(&sqlite_url(&test.dir, "events.db"))
            .await
            .unwrap(),
    );
    let relay = OutboxRelay::new("patients", test.db.clone(), log.clone());
    let service = PatientsService::new(test.db.clone(), relay.waker());
    let first = service
        .create_patient(&system(), new_patient("One", "one@example.com"), None)
        .await
        .unwrap();
    let second = service
        .create_patient(&system(), new_patient("Two", "two@example.com"), None)
        .await
        .unwrap();
    service
        .delete_patient(&system(), first.id, None)
        .await
        .unwrap();

    // Act
    let num_moved = relay.relay_once().await.unwrap();

    // Assert
    assert_eq!(num_moved, 3);
    assert_eq!(test.num_pending().await, 0);
    assert_eq!(relay.relay_once().await.unwrap(), 0);
    let records = log.fetch(PATIENTS_TOPIC, 0, 0, 100).await.unwrap();
    let keys: Vec<String> = records.iter().map(|record| record.key.clone()).collect();
    assert_eq!(
        keys,
        [
            first.id.to_string(),
            second.id.to_string(),
            first.id.to_string()
        ]
    );
    let last = decode_envelope(&records[2].value).unwrap();
    assert_eq!(last.event_type, "PatientDeleted");
    assert!(service.check_ready().await.is_ok());
}

/// Every audit event, oldest first, read through the admin query.
async fn audit_trail(test: &TestDb) -> Vec<AuditEvent> {
    let query = AuditQuery::parse(None, None, None, None, Some(500), None).unwrap();
    test.service
        .audit_events(&caller(UserRole::Admin), query)
        .await
        .unwrap()
        .items
}

/// (action, outcome, patient ids) of each event, for compact assertions.
fn summary(events: &[AuditEvent]) -> Vec<(String, String, Vec<Uuid>)> {
    events
        .iter()
        .map(|event| {
            (
                event.action.clone(),
                event.outcome.clone(),
                event.patient_ids.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn create_get_list_and_a_denied_read_are_audited() {
    // Arrange
    let test = TestDb::new("patients").await;
    let clinician = caller(UserRole::Clinician).with_client_addr("192.0.2.7");
    let analyst = caller(UserRole::Analyst);

    // Act
    let created = test
        .service
        .create_patient(&clinician, new_patient("Ann", "ann@example.com"), None)
        .await
        .unwrap();
    test.service
        .get_patient(&clinician, created.id)
        .await
        .unwrap();
    test.service
        .list_patients(&clinician, page(50, None))
        .await
        .unwrap();
    let denied = test.service.get_patient(&analyst, created.id).await;
    let anonymous = test
        .service
        .list_patients(&CallerContext::anonymous("r-anon"), page(50, None))
        .await;

    // Assert
    assert!(matches!(denied, Err(WardError::Forbidden(_))));
    assert!(matches!(anonymous, Err(WardError::Unauthenticated(_))));
    let events = audit_trail(&test).await;
    let id = created.id;
    let allowed = || "allowed".to_string();
    assert_eq!(
        summary(&events),
        vec![
            ("create".into(), allowed(), vec![id]),
            ("read".into(), allowed(), vec![id]),
            ("search".into(), allowed(), vec![id]),
            ("read".into(), "denied".into(), vec![id]),
            ("search".into(), "denied".into(), vec![]),
        ]
    );
    let clinician_id = clinician.actor();
    assert_eq!(events[1].actor, clinician_id);
    assert_eq!(events[1].request_id, "req");
    assert_eq!(events[1].client_addr_opt.as_deref(), Some("192.0.2.7"));
    assert_eq!(events[3].actor, analyst.actor());
    assert_eq!(events[3].client_addr_opt, None);
    assert_eq!(events[4].actor, "anonymous");

    let by_actor = AuditQuery::parse(None, Some(&clinician_id), None, None, None, None).unwrap();
    let page = test
        .service
        .audit_events(&caller(UserRole::Admin), by_actor)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    let other_patient = Uuid::now_v7().to_string();
    let by_patient = AuditQuery::parse(Some(&other_patient), None, None, None, None, None).unwrap();
    let page = test
        .service
        .audit_events(&caller(UserRole::Admin), by_patient)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let future =
        AuditQuery::parse(None, None, Some("2999-01-01T00:00:00Z"), None, None, None).unwrap();
    let page = test
        .service
        .audit_events(&caller(UserRole::Admin), future)
        .await
        .unwrap();
    assert!(page.items.is_empty());
}

#[tokio::test]
async fn a_failed_create_writes_no_allowed_create_row() {
    // Arrange
    let test = TestDb::new("patients").await;
    test.service
        .create_patient(&system(), new_patient("Ann", "ann@example.com"), None)
        .await
        .unwrap();

    // Act
    let result = test
        .service
        .create_patient(
            &caller(UserRole::Clinician),
            new_patient("Other Ann", "ANN@example.com"),
            None,
        )
        .await;

    // Assert
    assert!(matches!(result, Err(WardError::AlreadyExists(_))));
    let events = audit_trail(&test).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "system:test");
    assert_eq!(events[0].action, "create");
}

#[tokio::test]
async fn the_audit_trail_is_for_admins_and_pages_by_cursor() {
    // Arrange
    let test = TestDb::new("patients").await;
    let created = test
        .service
        .create_patient(&system(), new_patient("Ann", "ann@example.com"), None)
        .await
        .unwrap();
    for _ in 0..4 {
        test.service
            .get_patient(&system(), created.id)
            .await
            .unwrap();
    }

    // Act
    let refused = test
        .service
        .audit_events(
            &caller(UserRole::Clinician),
            AuditQuery::parse(None, None, None, None, None, None).unwrap(),
        )
        .await;
    let admin = caller(UserRole::Admin);
    let first = test
        .service
        .audit_events(
            &admin,
            AuditQuery::parse(None, None, None, None, Some(3), None).unwrap(),
        )
        .await
        .unwrap();
    let cursor = first.next_cursor_opt.clone().unwrap();
    let second = test
        .service
        .audit_events(
            &admin,
            AuditQuery::parse(None, None, None, None, Some(3), Some(&cursor)).unwrap(),
        )
        .await
        .unwrap();

    // Assert
    assert!(matches!(refused, Err(WardError::Forbidden(_))));
    assert_eq!(first.items.len(), 3);
    assert_eq!(second.items.len(), 2);
    assert_eq!(second.next_cursor_opt, None);
    // The refused audit query is not itself audited.
    assert_eq!(audit_trail(&test).await.len(), 5);
}

#[tokio::test]
async fn the_audit_trail_is_append_only_in_the_database() {
    use sea_orm::ConnectionTrait;
    let test = TestDb::new("patients").await;
    test.service
        .list_patients(&caller(UserRole::Clinician), page(10, None))
        .await
        .unwrap();
    for statement in [
        "UPDATE audit_events SET outcome = 'denied'",
        "DELETE FROM audit_events",
    ] {
        let error = test.db.execute_unprepared(statement).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    assert_eq!(audit_trail(&test).await.len(), 1);
}

//! The patients module through the network: the real service on a real SQLite file, behind
//! `PatientsGrpcServer` on a loopback port, called through `PatientsGrpcClient`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::grpc::connect_peer;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{
    ImportOutcome, NewPatient, PageRequest, PatientChanges, PatientSearch, PatientSearchInput,
    PatientSort,
};
use ward_bus::testsuite::{TestKeys, serve_on_loopback, sqlite_in};
use ward_core::{CallerContext, ErrorCode, Role, UserRole, WardError};
use ward_patients::grpc::PATIENTS_SERVICE_NAME;
use ward_patients::{PatientsGrpcClient, PatientsGrpcServer, PatientsService};

/// A patients service served over gRPC from its own temporary folder, removed when dropped.
struct TestPeer {
    keys: TestKeys,
    address: String,
    client: PatientsGrpcClient,
    server_task: JoinHandle<()>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.server_task.abort();
    }
}

impl TestPeer {
    async fn start() -> Self {
        let keys = TestKeys::generate("patients-grpc");
        let db = sqlite_in(keys.folder(), "patients").await;
        PatientsService::migrate(&db).await.unwrap();
        let service: Arc<dyn PatientsApi> =
            Arc::new(PatientsService::new(db, OutboxWaker::default()));
        let grpc_service = PatientsGrpcServer::new(service, keys.verifier().clone()).into_service();
        let (address, server_task) =
            serve_on_loopback(Routes::new(grpc_service), &[PATIENTS_SERVICE_NAME]).await;

        let addresses = vec![address.clone()];
        let channel = connect_peer(Role::Patients, &addresses).await.unwrap();
        let client = PatientsGrpcClient::new(channel).with_addresses(&addresses);
        Self {
            keys,
            address,
            client,
            server_task,
        }
    }
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

#[tokio::test]
async fn create_get_list_update_delete_through_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let clinician = peer.keys.caller(UserRole::Clinician);
    peer.client.check_ready().await.unwrap();

    // Act: create two, read one, page through both, update, delete.
    let ada = peer
        .client
        .create_patient(
            &clinician,
            new_patient("Ada Lovelace", "ada@example.com"),
            None,
        )
        .await
        .unwrap();
    let bob = peer
        .client
        .create_patient(
            &clinician,
            new_patient("Bob Builder", "bob@example.com"),
            None,
        )
        .await
        .unwrap();
    let fetched = peer.client.get_patient(&clinician, ada.id).await.unwrap();
    let first_page = peer
        .client
        .list_patients(&clinician, PageRequest::parse(Some(1), None).unwrap())
        .await
        .unwrap();
    let cursor = first_page.next_cursor_opt.clone().unwrap();
    let second_page = peer
        .client
        .list_patients(
            &clinician,
            PageRequest::parse(Some(1), Some(&cursor)).unwrap(),
        )
        .await
        .unwrap();
    let changes = PatientChanges {
        name: "Ada King".into(),
        email: Some("ada.king@example.com".into()),
        address: Some("12 St James Sq".into()),
        date_of_birth: date("1815-12-10"),
        identifiers_opt: None,
        fhir_extras_opt: None,
    };
    let updated = peer
        .client
        .update_patient(&clinician, ada.id, changes, None)
        .await
        .unwrap();
    peer.client
        .delete_patient(&clinician, bob.id, None)
        .await
        .unwrap();

    // Assert
    assert_eq!(fetched, ada);
    assert_eq!(ada.name, "Ada Lovelace");
    assert_eq!(ada.registered_date, date("2024-01-10"));
    assert_eq!(first_page.items, vec![ada.clone()]);
    assert_eq!(second_page.items, vec![bob.clone()]);
    assert_eq!(updated.name, "Ada King");
    assert_eq!(updated.date_of_birth, date("1815-12-10"));
    assert_eq!(updated.registered_date, ada.registered_date);
    let error = peer
        .client
        .get_patient(&clinician, bob.id)
        .await
        .unwrap_err();
    // The `gone` kind crosses the network exactly (its gRPC code is NOT_FOUND).
    assert_eq!(
        error,
        WardError::Gone("Patient was deleted; an admin can restore it".into())
    );
    let restored = peer
        .client
        .restore_patient(&clinician, bob.id, Some(2))
        .await
        .unwrap();
    assert_eq!(restored.version, 3);
    let not_deleted = peer
        .client
        .restore_patient(&clinician, bob.id, None)
        .await
        .unwrap_err();
    assert_eq!(not_deleted.error_code(), ErrorCode::AlreadyExists);
    let refused = peer.client.purge_patient(&clinician, bob.id).await;
    assert_eq!(refused.unwrap_err().error_code(), ErrorCode::Forbidden);
    let admin = peer.keys.caller(UserRole::Admin);
    peer.client.purge_patient(&admin, bob.id).await.unwrap();
    let purged = peer.client.patient_history(&admin, bob.id).await;
    assert_eq!(purged.unwrap_err().error_code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn error_kinds_survive_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let clinician = peer.keys.caller(UserRole::Clinician);
    peer.client
        .create_patient(
            &clinician,
            new_patient("Ada Lovelace", "ada@example.com"),
            None,
        )
        .await
        .unwrap();

    // A 404 stays a 404, on every call that names an id.
    let unknown = Uuid::now_v7();
    let not_found = peer
        .client
        .get_patient(&clinician, unknown)
        .await
        .unwrap_err();
    assert_eq!(not_found.error_code(), ErrorCode::NotFound);
    let not_found = peer
        .client
        .delete_patient(&clinician, unknown, None)
        .await
        .unwrap_err();
    assert_eq!(not_found.error_code(), ErrorCode::NotFound);

    // A duplicate (ignoring case) stays a conflict, with the reference's message.
    let duplicate = peer
        .client
        .create_patient(
            &clinician,
            new_patient("Ada Again", "ADA@example.com"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        duplicate,
        WardError::AlreadyExists("Email address already exists".into())
    );

    // A validation failure keeps every field error: the server re-parses what the client sent.
    let mut invalid = new_patient("x", "not-an-email");
    invalid.name = "n".repeat(101);
    let validation = peer
        .client
        .create_patient(&clinician, invalid, None)
        .await
        .unwrap_err();
    let fields: Vec<&str> = validation
        .field_errors()
        .iter()
        .map(|error| error.field.as_str())
        .collect();
    assert_eq!(validation.error_code(), ErrorCode::InvalidArgument);
    assert_eq!(fields, vec!["name", "email"]);
    assert_eq!(
        validation.field_errors()[0].message,
        "Name cannot exceed 100 characters"
    );

    // A page request out of range is rejected by the server's parser too.
    let too_big = PageRequest {
        limit: 501,
        after_opt: None,
    };
    let error = peer
        .client
        .list_patients(&clinician, too_big)
        .await
        .unwrap_err();
    assert_eq!(error.field_errors()[0].field, "limit");
}

#[tokio::test]
async fn the_remote_module_authorizes_every_call() {
    // Arrange
    let peer = TestPeer::start().await;
    let anonymous = peer.keys.anonymous();
    let analyst = peer.keys.caller(UserRole::Analyst);
    let page = PageRequest::parse(None, None).unwrap();

    // Act
    let without_token = peer
        .client
        .create_patient(&anonymous, new_patient("Ada", "ada@example.com"), None)
        .await
        .unwrap_err();
    let listing_anonymously = peer
        .client
        .list_patients(&anonymous, page.clone())
        .await
        .unwrap_err();
    let as_analyst = peer.client.list_patients(&analyst, page).await.unwrap_err();
    // The system context never travels: a remote module sees it as anonymous.
    let as_system = peer
        .client
        .import_patients(
            &CallerContext::system("test"),
            vec![(Uuid::now_v7(), new_patient("Ada", "ada@example.com"))],
        )
        .await
        .unwrap_err();

    // Assert
    assert!(
        matches!(without_token, WardError::Unauthenticated(_)),
        "{without_token:?}"
    );
    assert!(matches!(listing_anonymously, WardError::Unauthenticated(_)));
    assert!(
        matches!(as_analyst, WardError::Forbidden(_)),
        "{as_analyst:?}"
    );
    assert!(
        matches!(as_system, WardError::Unauthenticated(_)),
        "{as_system:?}"
    );
}

#[tokio::test]
async fn import_keeps_ids_and_skips_known_ones() {
    // Arrange
    let peer = TestPeer::start().await;
    let admin = peer.keys.caller(UserRole::Admin);
    let (ada_id, bob_id) = (Uuid::now_v7(), Uuid::now_v7());
    let records = vec![
        (ada_id, new_patient("Ada", "ada@example.com")),
        (bob_id, new_patient("Bob", "bob@example.com")),
    ];

    // Act
    let first = peer
        .client
        .import_patients(&admin, records.clone())
        .await
        .unwrap();
    let again = peer.client.import_patients(&admin, records).await.unwrap();

    // Assert
    assert_eq!(first, [ImportOutcome::Created, ImportOutcome::Created]);
    assert_eq!(
        again,
        [ImportOutcome::AlreadyPresent, ImportOutcome::AlreadyPresent]
    );
    assert_eq!(
        peer.client.get_patient(&admin, bob_id).await.unwrap().name,
        "Bob"
    );
}

#[tokio::test]
async fn a_peer_with_nothing_listening_is_unavailable_quickly() {
    // Arrange: a port that was just free; nothing listens on it any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local_addr: SocketAddr = listener.local_addr().unwrap();
    drop(listener);
    let addresses = vec![format!("http://{local_addr}")];
    let channel = connect_peer(Role::Patients, &addresses).await.unwrap();
    let client = PatientsGrpcClient::new(channel).with_addresses(&addresses);
    let started = Instant::now();

    // Act
    let readiness = client.check_ready().await.unwrap_err();
    let call = client
        .get_patient(&CallerContext::anonymous("req"), Uuid::now_v7())
        .await
        .unwrap_err();

    // Assert
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match readiness {
        WardError::Unavailable(reason) => {
            assert!(
                reason.contains(&format!("patients peer at http://{local_addr}")),
                "{reason}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(call.error_code(), ErrorCode::Unavailable, "{call:?}");
}

#[tokio::test]
async fn readiness_names_a_peer_that_does_not_serve_patients() {
    // Arrange: a live gRPC server whose health service knows nothing of patients.
    let peer = TestPeer::start().await;
    let (other_address, other_server) = serve_on_loopback(Routes::default(), &[]).await;
    let addresses = vec![other_address];
    let channel = connect_peer(Role::Patients, &addresses).await.unwrap();
    let client = PatientsGrpcClient::new(channel).with_addresses(&addresses);

    // Act
    let error = client.check_ready().await.unwrap_err();

    // Assert
    assert!(
        matches!(&error, WardError::Unavailable(reason) if reason.contains("does not serve ward.v1.PatientService")),
        "{error:?}"
    );
    assert!(peer.client.check_ready().await.is_ok(), "{}", peer.address);
    other_server.abort();
}

#[tokio::test]
async fn versions_and_history_cross_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let clinician = peer.keys.caller(UserRole::Clinician);
    let ada = peer
        .client
        .create_patient(
            &clinician,
            new_patient("Ada Lovelace", "ada@example.com"),
            None,
        )
        .await
        .unwrap();
    let changes = PatientChanges {
        name: "Ada King".into(),
        email: Some("ada@example.com".into()),
        address: Some("12 St James Sq".into()),
        date_of_birth: date("1815-12-10"),
        identifiers_opt: None,
        fhir_extras_opt: None,
    };

    // Act
    let updated = peer
        .client
        .update_patient(&clinician, ada.id, changes.clone(), Some(1))
        .await
        .unwrap();
    let stale_update = peer
        .client
        .update_patient(&clinician, ada.id, changes, Some(1))
        .await;
    let stale_delete = peer
        .client
        .delete_patient(&clinician, ada.id, Some(1))
        .await;
    peer.client
        .delete_patient(&clinician, ada.id, Some(2))
        .await
        .unwrap();
    let history = peer
        .client
        .patient_history(&clinician, ada.id)
        .await
        .unwrap();
    let first = peer
        .client
        .patient_version(&clinician, ada.id, 1)
        .await
        .unwrap();
    let unknown = peer.client.patient_version(&clinician, ada.id, 9).await;

    // Assert
    assert_eq!((ada.version, updated.version), (1, 2));
    let changed =
        WardError::PreconditionFailed("the patient has changed (version 2 is current)".into());
    assert_eq!(stale_update, Err(changed.clone()));
    assert_eq!(stale_delete, Err(changed));
    let summary: Vec<(u32, &str)> = history
        .iter()
        .map(|entry| (entry.version, entry.action.as_str()))
        .collect();
    assert_eq!(summary, vec![(3, "delete"), (2, "update"), (1, "create")]);
    assert_eq!(first.patient, ada);
    assert_eq!(first, history[2]);
    assert_eq!(unknown.unwrap_err().error_code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn a_search_crosses_the_network_with_its_filters_sort_cursor_and_total() {
    // Arrange
    let peer = TestPeer::start().await;
    let clinician = peer.keys.caller(UserRole::Clinician);
    for (name, email) in [
        ("José Álvarez", "jose@example.com"),
        ("Ann Johnson", "ann@example.com"),
        ("Bob Builder", "bob@example.com"),
    ] {
        peer.client
            .create_patient(&clinician, new_patient(name, email), None)
            .await
            .unwrap();
    }
    let search = |cursor_opt: Option<String>| {
        PatientSearch::parse(PatientSearchInput {
            name_opt: Some("JO".into()),
            birth_dates: vec!["ge1985-06-15".into(), "le1985-06-15".into()],
            sort_opt: Some("-name".into()),
            limit_opt: Some(1),
            cursor_opt,
            total_opt: Some("accurate".into()),
            ..PatientSearchInput::default()
        })
        .unwrap()
    };

    // Act
    let first = peer
        .client
        .search_patients(&clinician, search(None))
        .await
        .unwrap();
    let second = peer
        .client
        .search_patients(&clinician, search(first.next_cursor_opt.clone()))
        .await
        .unwrap();
    let wrong_cursor = PatientSearch {
        sort: PatientSort::BY_ID,
        ..search(first.next_cursor_opt.clone())
    };
    let refused = peer
        .client
        .search_patients(&clinician, wrong_cursor)
        .await
        .unwrap_err();

    // Assert
    assert_eq!(first.items[0].name, "José Álvarez");
    assert_eq!(first.total_opt, Some(2));
    assert_eq!(second.items[0].name, "Ann Johnson");
    assert_eq!(second.next_cursor_opt, None);
    assert_eq!(refused.error_code(), ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn an_idempotency_key_crosses_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let clinician = peer.keys.caller(UserRole::Clinician);
    let key = || Some(ward_bus::patients::IdempotencyKey::parse("visit-42").unwrap());
    let first = peer
        .client
        .create_patient(&clinician, new_patient("Ada", "ada@example.com"), key())
        .await
        .unwrap();

    // Act
    let retried = peer
        .client
        .create_patient(&clinician, new_patient("Ada", "ada@example.com"), key())
        .await
        .unwrap();
    let reused = peer
        .client
        .create_patient(&clinician, new_patient("Bob", "bob@example.com"), key())
        .await
        .unwrap_err();

    // Assert: the server saw the key, and the 422 kept its kind and message
    assert_eq!(retried, first);
    assert_eq!(
        reused,
        WardError::Unprocessable("this Idempotency-Key was used with a different request".into())
    );
}

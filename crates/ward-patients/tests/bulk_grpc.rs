//! Bulk import and export through the network: per-record outcomes and export pages survive
//! `PatientsGrpcServer` and `PatientsGrpcClient`, and the remote module still authorizes.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use tonic::service::Routes;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::grpc::connect_peer;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{
    DUPLICATE_EMAIL_IN_BATCH_MESSAGE, ImportOutcome, NewPatient, PageRequest,
};
use ward_bus::testsuite::{TestKeys, serve_on_loopback, sqlite_in};
use ward_core::{Role, UserRole, WardError};
use ward_patients::grpc::PATIENTS_SERVICE_NAME;
use ward_patients::{PatientsGrpcClient, PatientsGrpcServer, PatientsService};

fn new_patient(name: &str, email: &str) -> NewPatient {
    NewPatient {
        name: name.into(),
        email: email.into(),
        address: "1 Net Road".into(),
        date_of_birth: NaiveDate::from_ymd_opt(1975, 3, 4).unwrap(),
        registered_date: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
    }
}

#[tokio::test]
async fn import_outcomes_and_export_pages_cross_the_network() {
    // Arrange
    let keys = TestKeys::generate("patients-bulk-grpc");
    let db = sqlite_in(keys.folder(), "patients").await;
    PatientsService::migrate(&db).await.unwrap();
    let service: Arc<dyn PatientsApi> = Arc::new(PatientsService::new(db, OutboxWaker::default()));
    let grpc_service = PatientsGrpcServer::new(service, keys.verifier().clone()).into_service();
    let (address, server_task) =
        serve_on_loopback(Routes::new(grpc_service), &[PATIENTS_SERVICE_NAME]).await;
    let addresses = vec![address];
    let channel = connect_peer(Role::Patients, &addresses).await.unwrap();
    let client = PatientsGrpcClient::new(channel).with_addresses(&addresses);
    let admin = keys.caller(UserRole::Admin);
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let batch = vec![
        (ada, new_patient("Ada", "ada@net.example")),
        (Uuid::now_v7(), new_patient("Ada Twin", "ADA@net.example")),
        (bob, new_patient("Bob", "bob@net.example")),
    ];
    let before = Utc::now();

    // Act
    let outcomes = client.import_patients(&admin, batch.clone()).await.unwrap();
    let again = client
        .import_patients(&admin, batch[..1].to_vec())
        .await
        .unwrap();
    let first_page = PageRequest {
        limit: 1,
        after_opt: None,
    };
    let first = client
        .export_patients(&admin, Some(before), first_page)
        .await
        .unwrap();
    let next = PageRequest::parse(Some(1), first.next_cursor_opt.as_deref()).unwrap();
    let second = client.export_patients(&admin, None, next).await.unwrap();
    let later = client
        .export_patients(
            &admin,
            Some(Utc::now()),
            PageRequest::parse(None, None).unwrap(),
        )
        .await
        .unwrap();
    let refused = client
        .export_patients(
            &keys.caller(UserRole::Analyst),
            None,
            PageRequest::parse(None, None).unwrap(),
        )
        .await;

    // Assert
    assert_eq!(
        outcomes,
        [
            ImportOutcome::Created,
            ImportOutcome::Failed(DUPLICATE_EMAIL_IN_BATCH_MESSAGE.into()),
            ImportOutcome::Created,
        ]
    );
    assert_eq!(again, [ImportOutcome::AlreadyPresent]);
    assert_eq!(first.items[0].id, ada);
    assert_eq!(second.items[0].id, bob);
    assert_eq!(second.next_cursor_opt, None);
    assert!(later.items.is_empty());
    assert!(
        matches!(refused, Err(WardError::Forbidden(_))),
        "{refused:?}"
    );
    server_task.abort();
}

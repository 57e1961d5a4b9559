//! Bulk import and export through the network: per-record outcomes and export pages survive
//! `PatientsGrpcServer` and `PatientsGrpcClient`, and the remote module still authorizes.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use tonic::service::Routes;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::grpc::{connect_peer, outgoing_request};
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::{
    DUPLICATE_EMAIL_IN_BATCH_MESSAGE, ImportOutcome, NewPatient, PageRequest,
};
use ward_bus::testsuite::{TestKeys, serve_on_loopback, sqlite_in};
use ward_core::{Role, UserRole, WardError};
use ward_patients::grpc::PATIENTS_SERVICE_NAME;
use ward_patients::{PatientsGrpcClient, PatientsGrpcServer, PatientsService};
use ward_proto::v1 as proto;
use ward_proto::v1::patient_service_client::PatientServiceClient;

fn new_patient(name: &str, email: &str) -> NewPatient {
    NewPatient {
        name: name.into(),
        email: Some(email.into()),
        address: Some("1 Net Road".into()),
        date_of_birth: NaiveDate::from_ymd_opt(1975, 3, 4).unwrap(),
        registered_date: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
        identifiers: Vec::new(),
        fhir_extras: ward_bus::patients::FhirExtras::default(),
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
    let mut raw_client = PatientServiceClient::new(channel.clone());
    let client = PatientsGrpcClient::new(channel).with_addresses(&addresses);
    let admin = keys.caller(UserRole::Admin);
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let batch = vec![
        (ada, new_patient("Ada", "ada@net.example")),
        (Uuid::now_v7(), new_patient("Ada Twin", "ADA@net.example")),
        (bob, new_patient("Bob", "bob@net.example")),
    ];
    let before = Utc::now();
    // What no PatientsGrpcClient sends: a record that does not parse, next to a good one.
    let raw_batch = proto::ImportPatientsRequest {
        patients: vec![
            proto::PatientInput {
                id: Some("not-a-uuid".into()),
                name: Some("Bad Id".into()),
                ..proto::PatientInput::default()
            },
            proto::PatientInput {
                id: Some(Uuid::now_v7().to_string()),
                name: Some("Cy".into()),
                email: Some("cy@net.example".into()),
                address: Some("1 Net Road".into()),
                date_of_birth: Some("1990-01-01".into()),
                registered_date: Some("2024-01-01".into()),
                ..proto::PatientInput::default()
            },
        ],
    };

    // Act
    let raw_reply = raw_client
        .import_patients(outgoing_request(raw_batch, &admin))
        .await
        .unwrap()
        .into_inner();
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
    assert_eq!(raw_reply.num_imported, 1);
    let raw_failure = &raw_reply.outcomes[0];
    assert_eq!(raw_failure.status, proto::ImportStatus::Failed as i32);
    assert!(
        raw_failure.error.contains("id must be a UUID"),
        "{raw_failure:?}"
    );
    assert!(
        raw_failure.error.contains("Email is required"),
        "{raw_failure:?}"
    );
    assert_eq!(
        raw_reply.outcomes[1].status,
        proto::ImportStatus::Created as i32
    );
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
    // Cy, imported through the raw call, comes last.
    assert!(second.next_cursor_opt.is_some());
    assert!(later.items.is_empty());
    assert!(
        matches!(refused, Err(WardError::Forbidden(_))),
        "{refused:?}"
    );
    server_task.abort();
}

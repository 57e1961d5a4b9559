//! The billing module through the network: the real service on a real SQLite file, behind
//! `BillingGrpcServer` on a loopback port, called through `BillingGrpcClient`.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tonic::service::Routes;
use uuid::Uuid;
use ward_billing::grpc::BILLING_SERVICE_NAME;
use ward_billing::{BillingGrpcClient, BillingGrpcServer, BillingService};
use ward_bus::BillingApi;
use ward_bus::billing::{AccountStatus, OpenAccountRequest};
use ward_bus::grpc::connect_peer;
use ward_bus::outbox::OutboxWaker;
use ward_bus::testsuite::{TestKeys, serve_on_loopback, sqlite_in};
use ward_core::{ErrorCode, Role, UserRole, WardError};
use ward_proto::v1 as proto;
use ward_proto::v1::billing_service_client::BillingServiceClient;

/// A billing service served over gRPC from its own temporary folder, removed when dropped.
struct TestPeer {
    keys: TestKeys,
    address: String,
    client: BillingGrpcClient,
    server_task: JoinHandle<()>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.server_task.abort();
    }
}

impl TestPeer {
    async fn start() -> Self {
        let keys = TestKeys::generate("billing-grpc");
        let db = sqlite_in(keys.folder(), "billing").await;
        BillingService::migrate(&db).await.unwrap();
        let service: Arc<dyn BillingApi> =
            Arc::new(BillingService::new(db, OutboxWaker::default()));
        let grpc_service = BillingGrpcServer::new(service, keys.verifier().clone()).into_service();
        let (address, server_task) =
            serve_on_loopback(Routes::new(grpc_service), &[BILLING_SERVICE_NAME]).await;

        let addresses = vec![address.clone()];
        let channel = connect_peer(Role::Billing, &addresses).await.unwrap();
        let client = BillingGrpcClient::new(channel).with_addresses(&addresses);
        Self {
            keys,
            address,
            client,
            server_task,
        }
    }
}

fn open_request(patient_id: Uuid) -> OpenAccountRequest {
    OpenAccountRequest {
        patient_id,
        name: "John Doe".into(),
        email: "john.doe@example.com".into(),
    }
}

#[tokio::test]
async fn create_billing_account_is_idempotent_through_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let billing = peer.keys.caller(UserRole::Billing);
    let patient_id = Uuid::now_v7();
    peer.client.check_ready().await.unwrap();

    // Act
    let first = peer
        .client
        .create_billing_account(&billing, open_request(patient_id))
        .await
        .unwrap();
    let second = peer
        .client
        .create_billing_account(&billing, open_request(patient_id))
        .await
        .unwrap();
    let fetched = peer
        .client
        .get_account_by_patient(&billing, patient_id)
        .await
        .unwrap();

    // Assert
    assert_eq!(first.id, second.id);
    assert_eq!(first, second);
    assert_eq!(fetched, first);
    assert_eq!(first.patient_id, patient_id);
    assert_eq!(first.status, AccountStatus::Active);
}

#[tokio::test]
async fn the_reference_contract_answers_account_id_and_active() {
    // Arrange: a plain generated client, as a reference-platform caller would use.
    let peer = TestPeer::start().await;
    let billing = peer.keys.caller(UserRole::Billing);
    let mut raw_client = BillingServiceClient::connect(peer.address.clone())
        .await
        .unwrap();
    let patient_id = Uuid::now_v7();
    let message = proto::BillingRequest {
        patient_id: patient_id.to_string(),
        name: "John Doe".into(),
        email: "john.doe@example.com".into(),
    };

    // Act
    let mut request = tonic::Request::new(message);
    let token = billing.token().unwrap();
    let authorization = format!("Bearer {token}").parse().unwrap();
    request
        .metadata_mut()
        .insert("authorization", authorization);
    let response = raw_client
        .create_billing_account(request)
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(response.status, "ACTIVE");
    assert!(Uuid::parse_str(&response.account_id).is_ok());
    let account = peer
        .client
        .get_account_by_patient(&billing, patient_id)
        .await
        .unwrap();
    assert_eq!(account.id.to_string(), response.account_id);
}

#[tokio::test]
async fn errors_and_rights_survive_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let clinician = peer.keys.caller(UserRole::Clinician);
    let analyst = peer.keys.caller(UserRole::Analyst);
    let anonymous = peer.keys.anonymous();

    // Act
    let not_found = peer
        .client
        .get_account_by_patient(&clinician, Uuid::now_v7())
        .await
        .unwrap_err();
    let clinician_opens = peer
        .client
        .create_billing_account(&clinician, open_request(Uuid::now_v7()))
        .await
        .unwrap_err();
    let analyst_reads = peer
        .client
        .get_account_by_patient(&analyst, Uuid::now_v7())
        .await
        .unwrap_err();
    let anonymous_opens = peer
        .client
        .create_billing_account(&anonymous, open_request(Uuid::now_v7()))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(
        not_found,
        WardError::NotFound("Billing account not found".into())
    );
    assert_eq!(clinician_opens.error_code(), ErrorCode::Forbidden);
    assert_eq!(analyst_reads.error_code(), ErrorCode::Forbidden);
    assert_eq!(anonymous_opens.error_code(), ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn a_malformed_patient_id_is_invalid_and_named() {
    // Arrange
    let peer = TestPeer::start().await;
    let billing = peer.keys.caller(UserRole::Billing);
    let mut raw_client = BillingServiceClient::connect(peer.address.clone())
        .await
        .unwrap();
    let message = proto::GetAccountByPatientRequest {
        patient_id: "not-a-uuid".into(),
    };

    // Act
    let status = raw_client
        .get_account_by_patient(ward_bus::grpc::outgoing_request(message, &billing))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let error = ward_bus::grpc::error_from_status(&status);
    assert_eq!(error.field_errors()[0].field, "patientId");
}

//! `serve_grpc` on a loopback port: health for each local module and for the whole server,
//! reflection listing every Ward service, a module call through it, and an orderly stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use uuid::Uuid;
use ward_bus::grpc::connect_peer;
use ward_bus::outbox::OutboxWaker;
use ward_bus::token::{TokenVerifier, generate_key_files};
use ward_bus::{PatientsApi, PatientsClient};
use ward_core::config::SecretUrl;
use ward_core::{CallerContext, ErrorCode, Role};
use ward_patients::{PatientsGrpcClient, PatientsService};
use ward_serve::{LocalGrpcServices, serve_grpc};

struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn patients_service(folder: &Folder) -> PatientsClient {
    let url = SecretUrl::new(format!(
        "sqlite://{}?mode=rwc",
        folder.0.join("patients.db").display()
    ));
    let db = ward_bus::db::connect(&url, "patients").await.unwrap();
    PatientsService::migrate(&db).await.unwrap();
    Arc::new(PatientsService::new(db, OutboxWaker::default()))
}

async fn health_of(channel: Channel, service: &str) -> Result<ServingStatus, tonic::Code> {
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(response) => Ok(response.into_inner().status()),
        Err(status) => Err(status.code()),
    }
}

#[tokio::test]
async fn serves_health_reflection_and_the_local_module_until_cancelled() {
    // Arrange: a process running only the patients role.
    let folder = Folder(std::env::temp_dir().join(format!("ward-serve-grpc-{}", Uuid::now_v7())));
    generate_key_files(&folder.0.join("auth.key"), &folder.0.join("auth.pub")).unwrap();
    let verifier = TokenVerifier::from_file(&folder.0.join("auth.pub")).unwrap();
    let local = LocalGrpcServices {
        patients_opt: Some(patients_service(&folder).await),
        ..LocalGrpcServices::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let server = tokio::spawn(serve_grpc(listener, local, verifier, cancel.clone()));
    let channel = connect_peer(Role::Patients, std::slice::from_ref(&address))
        .await
        .unwrap();

    // Act + Assert: health, per module and overall; an absent module is unknown.
    assert_eq!(
        health_of(channel.clone(), "ward.v1.PatientService").await,
        Ok(ServingStatus::Serving)
    );
    assert_eq!(
        health_of(channel.clone(), "").await,
        Ok(ServingStatus::Serving)
    );
    assert_eq!(
        health_of(channel.clone(), "ward.v1.BillingService").await,
        Err(tonic::Code::NotFound)
    );

    // Reflection lists every Ward service, whichever run here.
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let list_request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter(vec![list_request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(listing)) = answer.message_response else {
        panic!("expected a service list, got {:?}", answer.message_response);
    };
    let names: Vec<String> = listing.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "ward.v1.AuthService",
        "ward.v1.PatientService",
        "ward.v1.BillingService",
        "ward.v1.AnalyticsService",
    ] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }

    // The module answers through its adapter; it authorizes the call itself.
    let client = PatientsGrpcClient::new(channel.clone()).with_addresses(&[address]);
    client.check_ready().await.unwrap();
    let error = client
        .get_patient(&CallerContext::anonymous("req"), Uuid::now_v7())
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), ErrorCode::Unauthenticated);

    // Cancelling stops the server cleanly.
    cancel.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

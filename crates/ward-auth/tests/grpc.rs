//! The auth module through the network: the real service on a real SQLite file, behind
//! `AuthGrpcServer` on a loopback port, called through `AuthGrpcClient`.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;
use ward_auth::grpc::AUTH_SERVICE_NAME;
use ward_auth::{AuthGrpcClient, AuthGrpcServer, AuthService};
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, Session};
use ward_bus::grpc::{connect_peer, error_from_status, outgoing_request};
use ward_bus::token::{TokenIssuer, TokenVerifier, generate_key_files};
use ward_core::config::SecretUrl;
use ward_core::{CallerContext, ErrorCode, Role, UserRole, WardError};
use ward_proto::v1 as proto;
use ward_proto::v1::auth_service_client::AuthServiceClient;

const PASSWORD: &str = "correct horse battery staple";
const ADMIN_EMAIL: &str = "admin@ward.test";

/// An auth service served over gRPC from its own temporary folder, removed when dropped. It
/// holds one admin, created in-process: the system context never travels over the network.
struct TestPeer {
    folder: PathBuf,
    verifier: TokenVerifier,
    address: String,
    client: AuthGrpcClient,
    server_task: JoinHandle<()>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.server_task.abort();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl TestPeer {
    async fn start() -> Self {
        let folder = std::env::temp_dir().join(format!("ward-auth-grpc-{}", Uuid::now_v7()));
        generate_key_files(&folder.join("auth.key"), &folder.join("auth.pub")).unwrap();
        let issuer = TokenIssuer::from_file(&folder.join("auth.key")).unwrap();
        let verifier = TokenVerifier::from_file(&folder.join("auth.pub")).unwrap();
        let url = SecretUrl::new(format!(
            "sqlite://{}?mode=rwc",
            folder.join("auth.db").display()
        ));
        let db = ward_bus::db::connect(&url, "auth").await.unwrap();
        AuthService::migrate(&db).await.unwrap();
        let service = AuthService::open(db, issuer, 900).await.unwrap();
        service
            .create_user(
                &CallerContext::system("test"),
                new_user(ADMIN_EMAIL, UserRole::Admin),
            )
            .await
            .unwrap();
        let service: Arc<dyn AuthApi> = Arc::new(service);

        // Bound first and handed to the server: no port is probed and released.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local_addr = listener.local_addr().unwrap();
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_service_status(AUTH_SERVICE_NAME, tonic_health::ServingStatus::Serving)
            .await;
        let grpc_service = AuthGrpcServer::new(service, verifier.clone()).into_service();
        let server_task = tokio::spawn(async move {
            Server::builder()
                .add_service(health_service)
                .add_service(grpc_service)
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .unwrap();
        });

        let address = format!("http://{local_addr}");
        let addresses = vec![address.clone()];
        let channel = connect_peer(Role::Auth, &addresses).await.unwrap();
        let client = AuthGrpcClient::new(channel).with_addresses(&addresses);
        Self {
            folder,
            verifier,
            address,
            client,
            server_task,
        }
    }

    /// Logs in over gRPC and returns the caller the gateway would build from the token.
    async fn login(&self, email: &str) -> (Session, CallerContext) {
        let anonymous = CallerContext::anonymous("req-login");
        let session = self
            .client
            .login(&anonymous, email, PASSWORD)
            .await
            .unwrap();
        let principal = self.verifier.verify(&session.token, Utc::now()).unwrap();
        let ctx = CallerContext::authenticated(principal, session.token.clone(), "req-caller");
        (session, ctx)
    }
}

fn new_user(email: &str, role: UserRole) -> NewUser {
    NewUser {
        email: email.into(),
        password: PASSWORD.into(),
        role,
    }
}

#[tokio::test]
async fn login_me_and_create_user_through_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    peer.client.check_ready().await.unwrap();

    // Act
    let (session, admin) = peer.login(ADMIN_EMAIL).await;
    let me = peer.client.me(&admin).await.unwrap();
    let created = peer
        .client
        .create_user(&admin, new_user("Clara@Example.com", UserRole::Clinician))
        .await
        .unwrap();
    let (_, clinician) = peer.login("clara@example.com").await;
    let clinician_me = peer.client.me(&clinician).await.unwrap();

    // Assert
    assert!(session.expires_at > Utc::now());
    assert_eq!(me.email, ADMIN_EMAIL);
    assert_eq!(me.role, UserRole::Admin);
    assert_eq!(created.role, UserRole::Clinician);
    assert_eq!(clinician_me, created);
}

#[tokio::test]
async fn failures_keep_their_kind_through_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let (_, admin) = peer.login(ADMIN_EMAIL).await;
    let anonymous = CallerContext::anonymous("req-anonymous");
    peer.client
        .create_user(&admin, new_user("clara@example.com", UserRole::Clinician))
        .await
        .unwrap();
    let (_, clinician) = peer.login("clara@example.com").await;

    // Act
    let wrong_password = peer
        .client
        .login(&anonymous, ADMIN_EMAIL, "not the password")
        .await
        .unwrap_err();
    let me_without_token = peer.client.me(&anonymous).await.unwrap_err();
    let duplicate = peer
        .client
        .create_user(&admin, new_user("CLARA@example.com", UserRole::Billing))
        .await
        .unwrap_err();
    let by_clinician = peer
        .client
        .create_user(&clinician, new_user("bob@example.com", UserRole::Billing))
        .await
        .unwrap_err();
    let mut short_password = new_user("not-an-email", UserRole::Billing);
    short_password.password = "short".into();
    let invalid = peer
        .client
        .create_user(&admin, short_password)
        .await
        .unwrap_err();

    // Assert
    assert_eq!(
        wrong_password,
        WardError::Unauthenticated("invalid email or password".into())
    );
    assert_eq!(me_without_token.error_code(), ErrorCode::Unauthenticated);
    assert_eq!(
        duplicate,
        WardError::AlreadyExists("Email address already exists".into())
    );
    assert_eq!(by_clinician.error_code(), ErrorCode::Forbidden);
    let fields: Vec<&str> = invalid
        .field_errors()
        .iter()
        .map(|error| error.field.as_str())
        .collect();
    assert_eq!(fields, vec!["email", "password"]);
}

#[tokio::test]
async fn an_unknown_role_from_a_raw_caller_is_invalid_and_named() {
    // Arrange
    let peer = TestPeer::start().await;
    let (_, admin) = peer.login(ADMIN_EMAIL).await;
    let mut raw_client = AuthServiceClient::connect(peer.address.clone())
        .await
        .unwrap();
    let message = proto::CreateUserRequest {
        email: "eve@example.com".into(),
        password: PASSWORD.into(),
        role: "superuser".into(),
    };

    // Act
    let status = raw_client
        .create_user(outgoing_request(message, &admin))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(error_from_status(&status).field_errors()[0].field, "role");
}

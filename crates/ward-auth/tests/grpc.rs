//! The auth module through the network: the real service on a real SQLite file, behind
//! `AuthGrpcServer` on a loopback port, called through `AuthGrpcClient`.

use std::sync::Arc;

use chrono::Utc;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use ward_auth::grpc::AUTH_SERVICE_NAME;
use ward_auth::{AuthGrpcClient, AuthGrpcServer, AuthService};
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, Session};
use ward_bus::grpc::{connect_peer, error_from_status, outgoing_request};
use ward_bus::testsuite::{TestKeys, serve_on_loopback, sqlite_in};
use ward_core::{CallerContext, ErrorCode, Role, UserRole, WardError};
use ward_proto::v1 as proto;
use ward_proto::v1::auth_service_client::AuthServiceClient;

const PASSWORD: &str = "correct horse battery staple";
const ADMIN_EMAIL: &str = "admin@ward.test";

/// An auth service served over gRPC from its own temporary folder, removed when dropped. It
/// holds one admin, created in-process: the system context never travels over the network.
struct TestPeer {
    keys: TestKeys,
    address: String,
    client: AuthGrpcClient,
    server_task: JoinHandle<()>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.server_task.abort();
    }
}

impl TestPeer {
    async fn start() -> Self {
        let keys = TestKeys::generate("auth-grpc");
        let db = sqlite_in(keys.folder(), "auth").await;
        AuthService::migrate(&db).await.unwrap();
        let service = AuthService::open(db, keys.issuer().clone(), 900)
            .await
            .unwrap();
        service
            .create_user(
                &CallerContext::system("test"),
                new_user(ADMIN_EMAIL, UserRole::Admin),
            )
            .await
            .unwrap();
        let service: Arc<dyn AuthApi> = Arc::new(service);
        let grpc_service = AuthGrpcServer::new(service, keys.verifier().clone()).into_service();
        let (address, server_task) =
            serve_on_loopback(Routes::new(grpc_service), &[AUTH_SERVICE_NAME]).await;

        let addresses = vec![address.clone()];
        let channel = connect_peer(Role::Auth, &addresses).await.unwrap();
        let client = AuthGrpcClient::new(channel).with_addresses(&addresses);
        Self {
            keys,
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
        let principal = self
            .keys
            .verifier()
            .verify(&session.token, Utc::now())
            .unwrap();
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
    let anonymous = peer.keys.anonymous();
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

//! The auth module through the network: the real service on a real SQLite file, behind
//! `AuthGrpcServer` on a loopback port, called through `AuthGrpcClient`.

use std::sync::Arc;

use chrono::Utc;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use uuid::Uuid;
use ward_auth::grpc::AUTH_SERVICE_NAME;
use ward_auth::{AuthGrpcClient, AuthGrpcServer, AuthService, AuthSettings};
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, PasswordChange, Session, UserChange};
use ward_bus::grpc::{connect_peer, error_from_status, outgoing_request};
use ward_bus::outbox::OutboxWaker;
use ward_bus::testsuite::{TestKeys, serve_on_loopback, sqlite_in};
use ward_bus::token::Narrowing;
use ward_core::{CallerContext, ErrorCode, Role, UserRole, WardError};
use ward_proto::v1 as proto;
use ward_proto::v1::auth_service_client::AuthServiceClient;

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "quiet lantern over the harbour";
const ADMIN_EMAIL: &str = "admin@ward.test";

/// An auth service served over gRPC from its own temporary folder, removed when dropped. It
/// holds one admin, created in-process: the system context never travels over the network. The
/// server's verifier shares the service's local revocations, as in a one-process deployment.
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
        let settings = AuthSettings::for_tests();
        let service =
            AuthService::open(db, keys.issuer().clone(), settings, OutboxWaker::default())
                .await
                .unwrap()
                .with_local_revocations(keys.verifier().revocations().clone());
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
        self.login_with(email, PASSWORD).await
    }

    async fn login_with(&self, email: &str, password: &str) -> (Session, CallerContext) {
        let anonymous = CallerContext::anonymous("req-login");
        let session = self
            .client
            .login(&anonymous, email, password)
            .await
            .unwrap();
        let ctx = self.caller_for(&session.token);
        (session, ctx)
    }

    /// The caller holding `token`, as the gateway would build it (the token must verify).
    fn caller_for(&self, token: &str) -> CallerContext {
        let principal = self.keys.verifier().verify(token, Utc::now()).unwrap();
        CallerContext::authenticated(principal, token, "req-caller")
    }

    /// A caller holding `token` whether or not it still verifies here, as a stale gateway might
    /// forward it: the server checks it again.
    fn stale_caller(&self, token: &str, like: &CallerContext) -> CallerContext {
        let principal = like.principal().unwrap().clone();
        CallerContext::authenticated(principal, token, "req-stale")
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

#[tokio::test]
async fn refresh_and_logout_through_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let anonymous = peer.keys.anonymous();
    let (first, first_caller) = peer.login(ADMIN_EMAIL).await;

    // Act
    let second = peer
        .client
        .refresh(&anonymous, &first.refresh_token)
        .await
        .unwrap();
    let second_caller = peer.caller_for(&second.token);
    peer.client.logout(&second_caller).await.unwrap();
    let refresh_after_logout = peer
        .client
        .refresh(&anonymous, &second.refresh_token)
        .await
        .unwrap_err();
    let me_after_logout = peer
        .client
        .me(&peer.stale_caller(&second.token, &second_caller))
        .await
        .unwrap_err();

    // Assert
    assert!(second.refresh_token.starts_with("wrt_"));
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        second_caller.principal().unwrap().session_id,
        first_caller.principal().unwrap().session_id
    );
    assert_eq!(
        refresh_after_logout,
        WardError::Unauthenticated("invalid or expired refresh token".into())
    );
    // The server's verifier knows the revocation: the token reads as no token at all.
    assert_eq!(me_after_logout.error_code(), ErrorCode::Unauthenticated);
    assert!(
        peer.keys
            .verifier()
            .verify(&first.token, Utc::now())
            .is_err()
    );
}

#[tokio::test]
async fn a_narrowed_token_cannot_log_out_through_the_network() {
    let peer = TestPeer::start().await;
    let (session, _) = peer.login(ADMIN_EMAIL).await;
    let narrowing = Narrowing {
        read_only: true,
        ..Default::default()
    };
    let narrowed = peer
        .keys
        .verifier()
        .narrow(&session.token, &narrowing, Utc::now())
        .unwrap();

    let error = peer
        .client
        .logout(&peer.caller_for(&narrowed.token))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        WardError::Forbidden("a narrowed token cannot end the session".into())
    );
}

#[tokio::test]
async fn change_password_through_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let (session, admin) = peer.login(ADMIN_EMAIL).await;
    let change = |current: &str, new: &str| PasswordChange {
        current_password: current.into(),
        new_password: new.into(),
    };

    // Act
    let wrong_current = peer
        .client
        .change_password(&admin, change("not the password", NEW_PASSWORD))
        .await
        .unwrap_err();
    let too_common = peer
        .client
        .change_password(&admin, change(PASSWORD, "Password1234"))
        .await
        .unwrap_err();
    peer.client
        .change_password(&admin, change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap();

    // Assert
    assert_eq!(
        wrong_current,
        WardError::Unauthenticated("the current password is wrong".into())
    );
    assert_eq!(too_common.field_errors()[0].field, "newPassword");
    assert!(
        peer.keys
            .verifier()
            .verify(&session.token, Utc::now())
            .is_err()
    );
    let (fresh, _) = peer.login_with(ADMIN_EMAIL, NEW_PASSWORD).await;
    assert!(
        peer.keys
            .verifier()
            .verify(&fresh.token, Utc::now())
            .is_ok()
    );
}

#[tokio::test]
async fn list_and_update_users_through_the_network() {
    // Arrange
    let peer = TestPeer::start().await;
    let (_, admin) = peer.login(ADMIN_EMAIL).await;
    let admin_id = admin.principal().unwrap().user_id;
    let clara = peer
        .client
        .create_user(&admin, new_user("clara@example.com", UserRole::Clinician))
        .await
        .unwrap();
    let (_, clinician) = peer.login("clara@example.com").await;

    // Act
    let promoted = peer
        .client
        .update_user(
            &admin,
            clara.id,
            UserChange {
                role: Some(UserRole::Billing),
                disabled: Some(true),
            },
        )
        .await
        .unwrap();
    let users = peer.client.list_users(&admin).await.unwrap();
    let last_admin = peer
        .client
        .update_user(
            &admin,
            admin_id,
            UserChange {
                role: None,
                disabled: Some(true),
            },
        )
        .await
        .unwrap_err();
    let unknown = peer
        .client
        .update_user(
            &admin,
            Uuid::now_v7(),
            UserChange {
                role: Some(UserRole::Analyst),
                disabled: None,
            },
        )
        .await
        .unwrap_err();
    let by_clinician = peer.client.list_users(&clinician).await.unwrap_err();

    // Assert
    assert_eq!(promoted.role, UserRole::Billing);
    assert!(promoted.disabled);
    let listed: Vec<(&str, bool)> = users
        .iter()
        .map(|user| (user.email.as_str(), user.disabled))
        .collect();
    assert_eq!(
        listed,
        vec![(ADMIN_EMAIL, false), ("clara@example.com", true)]
    );
    assert_eq!(
        last_admin,
        WardError::AlreadyExists("at least one enabled admin must remain".into())
    );
    assert_eq!(unknown, WardError::NotFound("User not found".into()));
    // Clara's token was revoked by the change: the server sees no token.
    assert_eq!(by_clinician.error_code(), ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn a_bad_update_from_a_raw_caller_names_its_fields() {
    // Arrange
    let peer = TestPeer::start().await;
    let (_, admin) = peer.login(ADMIN_EMAIL).await;
    let mut raw_client = AuthServiceClient::connect(peer.address.clone())
        .await
        .unwrap();
    let bad_role = proto::UpdateUserRequest {
        id: Uuid::now_v7().to_string(),
        role: Some("superuser".into()),
        disabled: None,
    };
    let bad_id = proto::UpdateUserRequest {
        id: "not-a-uuid".into(),
        role: None,
        disabled: Some(true),
    };

    // Act
    let role_status = raw_client
        .update_user(outgoing_request(bad_role, &admin))
        .await
        .unwrap_err();
    let id_status = raw_client
        .update_user(outgoing_request(bad_id, &admin))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(role_status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        error_from_status(&role_status).field_errors()[0].field,
        "role"
    );
    assert_eq!(id_status.code(), tonic::Code::InvalidArgument);
    assert_eq!(error_from_status(&id_status).field_errors()[0].field, "id");
}

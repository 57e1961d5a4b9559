//! The harness: a migrated SQLite auth database and a fresh key pair in a temporary folder, the
//! service over them, and a verifier sharing the service's local revocations.

use std::path::PathBuf;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryOrder, Statement};
use uuid::Uuid;
use ward_auth::{AuthService, AuthSettings};
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, Session, UserInfo};
use ward_bus::events::{SessionRevoked, UserTokensRevoked, decode_envelope, decode_payload};
use ward_bus::outbox::OutboxWaker;
use ward_bus::token::{TokenIssuer, TokenVerifier, generate_key_files};
use ward_core::config::SecretUrl;
use ward_core::{CallerContext, Principal, UserRole};
use ward_proto::v1::EventEnvelope;

pub const PASSWORD: &str = "correct horse battery staple";
pub const ADMIN_EMAIL: &str = "root@example.com";

/// Cheap argon2 parameters, so tests stay fast.
pub fn test_settings() -> AuthSettings {
    AuthSettings::for_tests()
}

pub struct TestAuth {
    pub service: AuthService,
    /// Shares its revocation set with the service, as in a one-process deployment.
    pub verifier: TokenVerifier,
    pub db: DatabaseConnection,
    pub folder: PathBuf,
}

impl Drop for TestAuth {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

pub async fn spawn_auth() -> TestAuth {
    spawn_auth_with(test_settings()).await
}

/// A migrated auth database and a fresh key pair, both in their own temporary folder.
pub async fn spawn_auth_with(settings: AuthSettings) -> TestAuth {
    let folder = new_folder();
    let db = open_db(&folder).await;
    AuthService::migrate(&db).await.unwrap();
    // Migrating twice is a no-op.
    AuthService::migrate(&db).await.unwrap();
    let issuer = new_issuer(&folder);
    let verifier = issuer.verifier();
    let service = AuthService::open(db.clone(), issuer, settings, OutboxWaker::default())
        .await
        .unwrap()
        .with_local_revocations(verifier.revocations().clone());
    TestAuth {
        service,
        verifier,
        db,
        folder,
    }
}

pub fn new_folder() -> PathBuf {
    std::env::temp_dir().join(format!("ward-auth-test-{}", Uuid::new_v4()))
}

pub async fn open_db(folder: &std::path::Path) -> DatabaseConnection {
    let database_path = folder.join("auth.db");
    let url = SecretUrl::new(format!("sqlite://{}?mode=rwc", database_path.display()));
    ward_bus::db::connect(&url, "auth").await.unwrap()
}

pub fn new_issuer(folder: &std::path::Path) -> TokenIssuer {
    let private_key_path = folder.join("keys/auth.key");
    let public_key_path = folder.join("keys/auth.pub");
    generate_key_files(&private_key_path, &public_key_path).unwrap();
    TokenIssuer::from_file(&private_key_path).unwrap()
}

pub fn system() -> CallerContext {
    CallerContext::system("test")
}

pub fn anonymous() -> CallerContext {
    CallerContext::anonymous("r")
}

pub fn new_user(email: &str, role: UserRole) -> NewUser {
    NewUser {
        email: email.into(),
        password: PASSWORD.into(),
        role,
    }
}

pub fn caller_with(principal: Principal, token: &str) -> CallerContext {
    CallerContext::authenticated(principal, token, "request-1")
}

impl TestAuth {
    /// Another service over the same database file, through its own connection pool and with
    /// the same signing key, as a second auth process would run.
    pub async fn second_service(&self) -> AuthService {
        let db = open_db(&self.folder).await;
        let issuer = TokenIssuer::from_file(&self.folder.join("keys/auth.key")).unwrap();
        AuthService::open(db, issuer, test_settings(), OutboxWaker::default())
            .await
            .unwrap()
    }

    /// Creates an account as the system would (`ward user create`, `--demo`).
    pub async fn create(&self, email: &str, role: UserRole) -> UserInfo {
        self.service
            .create_user(&system(), new_user(email, role))
            .await
            .unwrap()
    }

    /// Logs in with [`PASSWORD`] and builds the caller the gateway would from the token.
    pub async fn sign_in(&self, email: &str) -> (Session, CallerContext) {
        let session = self
            .service
            .login(&anonymous(), email, PASSWORD)
            .await
            .unwrap();
        let caller = self.caller_for(&session.token);
        (session, caller)
    }

    /// The caller holding `token`, which must verify now.
    pub fn caller_for(&self, token: &str) -> CallerContext {
        let principal = self.verifier.verify(token, Utc::now()).unwrap();
        caller_with(principal, token)
    }

    /// Whether `token` still verifies (signature, expiry and this process's revocations).
    pub fn verifies(&self, token: &str) -> bool {
        self.verifier.verify(token, Utc::now()).is_ok()
    }

    /// Creates the admin [`ADMIN_EMAIL`] and signs in as it.
    pub async fn admin(&self) -> CallerContext {
        self.create(ADMIN_EMAIL, UserRole::Admin).await;
        self.sign_in(ADMIN_EMAIL).await.1
    }

    /// Every event waiting in the outbox, oldest first.
    pub async fn outbox_events(&self) -> Vec<EventEnvelope> {
        let rows = ward_bus::outbox::entity::Entity::find()
            .order_by_asc(ward_bus::outbox::entity::Column::Seq)
            .all(&self.db)
            .await
            .unwrap();
        let mut events = Vec::new();
        for row in rows {
            assert_eq!(row.topic, "ward.auth.v1");
            let event = decode_envelope(&row.payload).unwrap();
            assert_eq!(row.record_key, event.subject_id);
            events.push(event);
        }
        events
    }

    /// The `SessionRevoked` events in the outbox.
    pub async fn session_revocations(&self) -> Vec<SessionRevoked> {
        let mut revocations = Vec::new();
        for event in self.outbox_events().await {
            if let Ok(payload) = decode_payload::<SessionRevoked>(&event) {
                revocations.push(payload);
            }
        }
        revocations
    }

    /// The `UserTokensRevoked` events in the outbox.
    pub async fn user_revocations(&self) -> Vec<UserTokensRevoked> {
        let mut revocations = Vec::new();
        for event in self.outbox_events().await {
            if let Ok(payload) = decode_payload::<UserTokensRevoked>(&event) {
                revocations.push(payload);
            }
        }
        revocations
    }

    /// The stored PHC string of an account.
    pub async fn password_hash_of(&self, email_normalized: &str) -> String {
        let statement = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT password_hash FROM users WHERE email_normalized = ?",
            [email_normalized.into()],
        );
        let row = self.db.query_one_raw(statement).await.unwrap().unwrap();
        row.try_get("", "password_hash").unwrap()
    }
}

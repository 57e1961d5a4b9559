//! `AuthService` against a real SQLite file in a fresh temporary folder.

use std::path::PathBuf;

use chrono::Utc;
use uuid::Uuid;
use ward_auth::AuthService;
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, Session, UserInfo};
use ward_bus::token::{TokenIssuer, TokenVerifier, generate_key_files};
use ward_core::config::SecretUrl;
use ward_core::{CallerContext, Principal, UserRole, WardError};

const PASSWORD: &str = "correct horse battery staple";

struct TestAuth {
    service: AuthService,
    verifier: TokenVerifier,
    folder: PathBuf,
}

impl Drop for TestAuth {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// A migrated auth database and a fresh key pair, both in their own temporary folder.
async fn spawn_auth() -> TestAuth {
    let folder = std::env::temp_dir().join(format!("ward-auth-test-{}", Uuid::new_v4()));
    let private_key_path = folder.join("keys/auth.key");
    let public_key_path = folder.join("keys/auth.pub");
    generate_key_files(&private_key_path, &public_key_path).unwrap();
    let issuer = TokenIssuer::from_file(&private_key_path).unwrap();
    let verifier = TokenVerifier::from_file(&public_key_path).unwrap();

    let database_path = folder.join("auth.db");
    let url = SecretUrl::new(format!("sqlite://{}?mode=rwc", database_path.display()));
    let db = ward_bus::db::connect(&url, "auth").await.unwrap();
    AuthService::migrate(&db).await.unwrap();
    // Migrating twice is a no-op.
    AuthService::migrate(&db).await.unwrap();
    let service = AuthService::open(db, issuer, 900).await.unwrap();
    TestAuth {
        service,
        verifier,
        folder,
    }
}

impl TestAuth {
    /// Creates an account as the system would (`ward user create`, `--demo`).
    async fn create(&self, user: NewUser) -> UserInfo {
        self.service.create_user(&system(), user).await.unwrap()
    }

    /// Logs in with [`PASSWORD`] and verifies the token, as the gateway would.
    async fn sign_in(&self, email: &str) -> (Session, Principal) {
        let session = self
            .service
            .login(&CallerContext::anonymous("r"), email, PASSWORD)
            .await
            .unwrap();
        let principal = self.verifier.verify(&session.token, Utc::now()).unwrap();
        (session, principal)
    }
}

fn system() -> CallerContext {
    CallerContext::system("test")
}

fn new_user(email: &str, role: UserRole) -> NewUser {
    NewUser {
        email: email.into(),
        password: PASSWORD.into(),
        role,
    }
}

fn caller_with(principal: Principal) -> CallerContext {
    CallerContext::authenticated(principal, "token", "request-1")
}

#[tokio::test]
async fn created_user_logs_in_and_the_token_verifies() {
    // Arrange
    let auth = spawn_auth().await;
    let created = auth
        .service
        .create_user(
            &system(),
            new_user(" Ada@Example.com ", UserRole::Clinician),
        )
        .await
        .unwrap();

    // Act: the login email differs in case and spacing.
    let session = auth
        .service
        .login(&CallerContext::anonymous("r"), "ada@EXAMPLE.com", PASSWORD)
        .await
        .unwrap();

    // Assert
    assert_eq!(created.email, "Ada@Example.com");
    assert_eq!(created.role, UserRole::Clinician);
    assert!(session.expires_at > Utc::now());
    let principal = auth.verifier.verify(&session.token, Utc::now()).unwrap();
    assert_eq!(principal.user_id, created.id);
    assert_eq!(principal.email, "Ada@Example.com");
    assert_eq!(principal.rights, UserRole::Clinician.rights().to_vec());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let auth = spawn_auth().await;
    auth.create(new_user("ada@example.com", UserRole::Admin))
        .await;
    let anonymous = CallerContext::anonymous("r");

    let wrong_password = auth
        .service
        .login(&anonymous, "ada@example.com", "not the password")
        .await
        .unwrap_err();
    let unknown_email = auth
        .service
        .login(&anonymous, "nobody@example.com", PASSWORD)
        .await
        .unwrap_err();

    let expected = WardError::Unauthenticated("invalid email or password".into());
    assert_eq!(wrong_password, expected);
    assert_eq!(unknown_email, expected);
}

#[tokio::test]
async fn duplicate_email_ignoring_case_already_exists() {
    let auth = spawn_auth().await;
    auth.create(new_user("ada@example.com", UserRole::Admin))
        .await;

    let error = auth
        .service
        .create_user(&system(), new_user("  ADA@example.COM", UserRole::Analyst))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        WardError::AlreadyExists("Email address already exists".into())
    );
}

#[tokio::test]
async fn create_user_needs_the_users_admin_right() {
    let auth = spawn_auth().await;
    let clinician = auth
        .create(new_user("doc@example.com", UserRole::Clinician))
        .await;
    let (_, principal) = auth.sign_in("doc@example.com").await;
    assert_eq!(principal.user_id, clinician.id);

    let forbidden = auth
        .service
        .create_user(
            &caller_with(principal),
            new_user("new@example.com", UserRole::Admin),
        )
        .await
        .unwrap_err();
    let anonymous = auth
        .service
        .create_user(
            &CallerContext::anonymous("r"),
            new_user("new@example.com", UserRole::Admin),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(forbidden, WardError::Forbidden(_)),
        "{forbidden:?}"
    );
    assert!(
        matches!(anonymous, WardError::Unauthenticated(_)),
        "{anonymous:?}"
    );
}

#[tokio::test]
async fn admin_creates_users_and_invalid_input_is_rejected_per_field() {
    let auth = spawn_auth().await;
    auth.create(new_user("root@example.com", UserRole::Admin))
        .await;
    let session = auth
        .service
        .login(&CallerContext::anonymous("r"), "root@example.com", PASSWORD)
        .await
        .unwrap();
    let admin = caller_with(auth.verifier.verify(&session.token, Utc::now()).unwrap());

    let created = auth
        .service
        .create_user(&admin, new_user("billing@example.com", UserRole::Billing))
        .await
        .unwrap();
    assert_eq!(created.role, UserRole::Billing);

    let invalid = NewUser {
        email: "not an email".into(),
        password: "short".into(),
        role: UserRole::Analyst,
    };
    let error = auth.service.create_user(&admin, invalid).await.unwrap_err();
    let fields: Vec<&str> = error
        .field_errors()
        .iter()
        .map(|field_error| field_error.field.as_str())
        .collect();
    assert_eq!(fields, vec!["email", "password"]);
}

#[tokio::test]
async fn me_returns_the_account_behind_the_token() {
    let auth = spawn_auth().await;
    let created = auth
        .create(new_user("ada@example.com", UserRole::Analyst))
        .await;
    let (_, principal) = auth.sign_in("ada@example.com").await;

    let me = auth
        .service
        .me(&caller_with(principal.clone()))
        .await
        .unwrap();
    assert_eq!(me, created);

    // A token for an account that does not exist (anymore) is not enough.
    let ghost = Principal {
        user_id: Uuid::now_v7(),
        ..principal
    };
    let error = auth.service.me(&caller_with(ghost)).await.unwrap_err();
    assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
    let error = auth
        .service
        .me(&CallerContext::anonymous("r"))
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
}

#[tokio::test]
async fn token_from_another_issuer_does_not_verify() {
    let auth = spawn_auth().await;
    auth.create(new_user("ada@example.com", UserRole::Admin))
        .await;
    let session = auth
        .service
        .login(&CallerContext::anonymous("r"), "ada@example.com", PASSWORD)
        .await
        .unwrap();

    let folder = auth.folder.join("other");
    generate_key_files(&folder.join("other.key"), &folder.join("other.pub")).unwrap();
    let other_verifier = TokenVerifier::from_file(&folder.join("other.pub")).unwrap();

    let error = other_verifier
        .verify(&session.token, Utc::now())
        .unwrap_err();
    assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
}

#[tokio::test]
async fn check_ready_answers() {
    let auth = spawn_auth().await;
    auth.service.check_ready().await.unwrap();
}

fn from_addr(addr: &str) -> CallerContext {
    CallerContext::anonymous("r").with_client_addr(addr)
}

#[tokio::test]
async fn five_failures_throttle_the_account_even_for_the_right_password() {
    // Arrange
    let auth = spawn_auth().await;
    auth.create(new_user("ada@example.com", UserRole::Admin))
        .await;
    auth.create(new_user("bob@example.com", UserRole::Clinician))
        .await;
    let attacker = from_addr("192.0.2.1");
    for attempt in 0..5 {
        let error = auth
            .service
            .login(&attacker, "ada@example.com", "not the password")
            .await
            .unwrap_err();
        assert!(
            matches!(error, WardError::Unauthenticated(_)),
            "attempt {attempt}: {error:?}"
        );
    }

    // Act: the right password, from the same address and from another one.
    let same_addr = auth
        .service
        .login(&attacker, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    let other_addr = auth
        .service
        .login(&from_addr("192.0.2.2"), " ADA@example.com", PASSWORD)
        .await
        .unwrap_err();

    // Assert
    for error in [&same_addr, &other_addr] {
        assert!(matches!(error, WardError::TooManyRequests(_)), "{error:?}");
        let retry_after_secs = error.retry_after_secs().unwrap();
        assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}");
    }
    // Another account from another address is untouched.
    auth.service
        .login(&from_addr("192.0.2.3"), "bob@example.com", PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_emails_throttle_the_same_way() {
    let auth = spawn_auth().await;
    let client = from_addr("192.0.2.1");
    let mut answers = Vec::new();
    for _ in 0..6 {
        let error = auth
            .service
            .login(&client, "nobody@example.com", PASSWORD)
            .await
            .unwrap_err();
        answers.push(error);
    }
    let invalid = WardError::Unauthenticated("invalid email or password".into());
    assert!(answers[..5].iter().all(|error| *error == invalid));
    let WardError::TooManyRequests(message) = &answers[5] else {
        panic!("{:?}", answers[5]);
    };
    assert!(
        message.starts_with("too many failed logins; try again later (retry after "),
        "{message}"
    );
    assert!(answers[5].retry_after_secs().is_some());
}

#[tokio::test]
async fn an_address_is_throttled_across_accounts() {
    let auth = spawn_auth().await;
    auth.create(new_user("ada@example.com", UserRole::Admin))
        .await;
    let sprayer = from_addr("192.0.2.9");
    for index in 0..5 {
        let email = format!("guess{index}@example.com");
        let error = auth
            .service
            .login(&sprayer, &email, "123456")
            .await
            .unwrap_err();
        assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
    }

    let error = auth
        .service
        .login(&sprayer, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::TooManyRequests(_)), "{error:?}");
    // The account itself is not throttled: its owner logs in from elsewhere.
    auth.service
        .login(&from_addr("192.0.2.10"), "ada@example.com", PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_success_clears_the_account_failures() {
    let auth = spawn_auth().await;
    auth.create(new_user("ada@example.com", UserRole::Admin))
        .await;
    for round in 0..2 {
        // From a fresh address each round, so only the account's count matters.
        let client = from_addr(&format!("192.0.2.{round}"));
        for _ in 0..4 {
            auth.service
                .login(&client, "ada@example.com", "not the password")
                .await
                .unwrap_err();
        }
        auth.service
            .login(&client, "ada@example.com", PASSWORD)
            .await
            .unwrap();
    }
}

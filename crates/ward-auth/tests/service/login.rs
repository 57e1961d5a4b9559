//! Logins, account creation and the password policy, throttling, hashing and migrations.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;
use ward_auth::{AuthService, AuthSettings, Migrator};
use ward_bus::AuthApi;
use ward_bus::auth::NewUser;
use ward_bus::outbox::OutboxWaker;
use ward_bus::token::{TokenVerifier, generate_key_files};
use ward_core::config::Argon2Options;
use ward_core::{CallerContext, Principal, UserRole, WardError};

use crate::helpers::{
    ADMIN_EMAIL, PASSWORD, anonymous, caller_with, new_folder, new_issuer, new_user, open_db,
    spawn_auth, spawn_auth_with, system, test_settings,
};

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
        .login(&anonymous(), "ada@EXAMPLE.com", PASSWORD)
        .await
        .unwrap();

    // Assert
    assert_eq!(created.email, "Ada@Example.com");
    assert_eq!(created.role, UserRole::Clinician);
    assert!(!created.disabled);
    assert!(session.expires_at > Utc::now());
    assert!(session.refresh_token.starts_with("wrt_"));
    let principal = auth.verifier.verify(&session.token, Utc::now()).unwrap();
    assert_eq!(principal.user_id, created.id);
    assert_eq!(principal.email, "Ada@Example.com");
    assert_eq!(principal.rights, UserRole::Clinician.rights().to_vec());
    assert!(!principal.is_narrowed());
    // A login writes no event.
    assert!(auth.outbox_events().await.is_empty());
}

#[tokio::test]
async fn each_login_starts_its_own_session() {
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Analyst).await;

    let (first, first_caller) = auth.sign_in("ada@example.com").await;
    let (second, second_caller) = auth.sign_in("ada@example.com").await;

    let first_session = first_caller.principal().unwrap().session_id;
    let second_session = second_caller.principal().unwrap().session_id;
    assert_ne!(first_session, second_session);
    assert_ne!(first.refresh_token, second.refresh_token);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Admin).await;

    let wrong_password = auth
        .service
        .login(&anonymous(), "ada@example.com", "not the password")
        .await
        .unwrap_err();
    let unknown_email = auth
        .service
        .login(&anonymous(), "nobody@example.com", PASSWORD)
        .await
        .unwrap_err();

    let expected = WardError::Unauthenticated("invalid email or password".into());
    assert_eq!(wrong_password, expected);
    assert_eq!(unknown_email, expected);
}

#[tokio::test]
async fn duplicate_email_ignoring_case_already_exists() {
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Admin).await;

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
    let clinician = auth.create("doc@example.com", UserRole::Clinician).await;
    let (_, doc) = auth.sign_in("doc@example.com").await;
    assert_eq!(doc.principal().unwrap().user_id, clinician.id);

    let forbidden = auth
        .service
        .create_user(&doc, new_user("new@example.com", UserRole::Admin))
        .await
        .unwrap_err();
    let unauthenticated = auth
        .service
        .create_user(&anonymous(), new_user("new@example.com", UserRole::Admin))
        .await
        .unwrap_err();

    assert!(
        matches!(forbidden, WardError::Forbidden(_)),
        "{forbidden:?}"
    );
    assert!(
        matches!(unauthenticated, WardError::Unauthenticated(_)),
        "{unauthenticated:?}"
    );
}

#[tokio::test]
async fn admin_creates_users_and_invalid_input_is_rejected_per_field() {
    let auth = spawn_auth().await;
    let admin = auth.admin().await;

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
async fn the_password_policy_binds_people_but_not_the_system() {
    // Arrange
    let auth = spawn_auth().await;
    let admin = auth.admin().await;
    let with_password = |email: &str, password: &str| NewUser {
        email: email.into(),
        password: password.into(),
        role: UserRole::Clinician,
    };

    // Act
    let mut answers = Vec::new();
    for password in ["password123", "eleven char", "password1234", "PassWord1234"] {
        let error = auth
            .service
            .create_user(&admin, with_password("weak@example.com", password))
            .await
            .unwrap_err();
        answers.push(error.field_errors().to_vec());
    }
    let demo_account = auth
        .service
        .create_user(&system(), with_password("testuser@test.com", "password123"))
        .await;
    let empty_by_system = auth
        .service
        .create_user(&system(), with_password("empty@example.com", ""))
        .await
        .unwrap_err();

    // Assert
    let too_short = "password must be between 12 and 128 characters";
    let too_common = "password is too common; choose a longer passphrase";
    let expected = [too_short, too_short, too_common, too_common];
    for (field_errors, message) in answers.iter().zip(expected) {
        assert_eq!(field_errors.len(), 1);
        assert_eq!(field_errors[0].field, "password");
        assert_eq!(field_errors[0].message, message);
    }
    demo_account.unwrap();
    auth.service
        .login(&anonymous(), "testuser@test.com", "password123")
        .await
        .unwrap();
    assert_eq!(empty_by_system.field_errors()[0].field, "password");
}

#[tokio::test]
async fn new_hashes_use_the_configured_argon2_cost() {
    let settings = AuthSettings {
        argon2: Argon2Options {
            memory_kib: 2048,
            iterations: 2,
            parallelism: 1,
        },
        ..test_settings()
    };
    let auth = spawn_auth_with(settings).await;
    auth.create("ada@example.com", UserRole::Analyst).await;

    let hash = auth.password_hash_of("ada@example.com").await;

    assert!(hash.starts_with("$argon2id$v=19$m=2048,t=2,p=1$"), "{hash}");
    auth.sign_in("ada@example.com").await;
}

#[tokio::test]
async fn invalid_settings_are_refused_with_their_key() {
    let folder = new_folder();
    let db = open_db(&folder).await;
    let bad_argon2 = AuthSettings {
        argon2: Argon2Options {
            memory_kib: 1024,
            iterations: 0,
            parallelism: 1,
        },
        ..test_settings()
    };
    let zero_refresh = AuthSettings {
        refresh_token_ttl_secs: 0,
        ..test_settings()
    };

    for (settings, key) in [
        (bad_argon2, "auth.argon2"),
        (zero_refresh, "auth.refresh_token_ttl_secs"),
    ] {
        let result = AuthService::open(
            db.clone(),
            new_issuer(&folder.join(key)),
            settings,
            OutboxWaker::default(),
        )
        .await;
        let Err(error) = result else {
            panic!("{key}: accepted");
        };
        assert_eq!(error.field_errors()[0].field, key);
    }
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn accounts_from_before_the_upgrade_stay_enabled_and_their_hashes_verify() {
    // Arrange: a database with only the first migration, holding an account hashed with the
    // argon2 crate's defaults (as earlier versions did).
    let folder = new_folder();
    let db = open_db(&folder).await;
    Migrator::up(&db, Some(1)).await.unwrap();
    let salt = SaltString::generate(&mut OsRng);
    let old_hash = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string();
    let user_id = Uuid::now_v7();
    let insert = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "INSERT INTO users (id, email, email_normalized, password_hash, role, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
        [
            user_id.into(),
            "Old@Example.com".into(),
            "old@example.com".into(),
            old_hash.into(),
            "admin".into(),
            Utc::now().into(),
        ],
    );
    db.execute_raw(insert).await.unwrap();

    // Act
    AuthService::migrate(&db).await.unwrap();
    let service = AuthService::open(
        db.clone(),
        new_issuer(&folder),
        test_settings(),
        OutboxWaker::default(),
    )
    .await
    .unwrap();
    let session = service
        .login(&anonymous(), "old@example.com", PASSWORD)
        .await
        .unwrap();

    // Assert
    assert!(!session.token.is_empty());
    let admin = CallerContext::authenticated(
        Principal::with_role(user_id, "Old@Example.com", UserRole::Admin),
        "token",
        "r",
    );
    let users = service.list_users(&admin).await.unwrap();
    assert_eq!(users.len(), 1);
    assert!(!users[0].disabled);
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn me_returns_the_account_behind_the_token() {
    let auth = spawn_auth().await;
    let created = auth.create("ada@example.com", UserRole::Analyst).await;
    let (_, ada) = auth.sign_in("ada@example.com").await;

    let me = auth.service.me(&ada).await.unwrap();
    assert_eq!(me, created);

    // A token for an account that does not exist (anymore) is not enough.
    let ghost = Principal {
        user_id: Uuid::now_v7(),
        ..ada.principal().unwrap().clone()
    };
    let error = auth
        .service
        .me(&caller_with(ghost, "token"))
        .await
        .unwrap_err();
    assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
    let error = auth.service.me(&anonymous()).await.unwrap_err();
    assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
}

#[tokio::test]
async fn token_from_another_issuer_does_not_verify() {
    let auth = spawn_auth().await;
    auth.create(ADMIN_EMAIL, UserRole::Admin).await;
    let (session, _) = auth.sign_in(ADMIN_EMAIL).await;

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

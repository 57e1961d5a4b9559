//! The auth service on PostgreSQL: its migrations, its row locks (`FOR UPDATE`, `FOR SHARE`, which
//! SQLite ignores), the login throttle's advisory locks, and the races they settle. Needs PostgreSQL (WARD_TEST_POSTGRES_URL, default
//! the local server).

use std::sync::Arc;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use ward_auth::{AuthService, AuthSettings};
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, PasswordChange, Session, UserChange};
use ward_bus::outbox::{OutboxWaker, pending};
use ward_bus::testsuite::{TestKeys, TestPostgres};
use ward_core::{CallerContext, ErrorCode, UserRole, WardError};

const PASSWORD: &str = "correct horse battery staple";

async fn open_service(db: &DatabaseConnection, keys: &TestKeys) -> AuthService {
    AuthService::migrate(db).await.unwrap();
    AuthService::migrate(db).await.unwrap();
    let settings = AuthSettings::for_tests();
    AuthService::open(
        db.clone(),
        keys.issuer().clone(),
        settings,
        OutboxWaker::default(),
    )
    .await
    .unwrap()
    .with_local_revocations(keys.verifier().revocations().clone())
}

fn new_user(email: &str, role: UserRole) -> NewUser {
    NewUser {
        email: email.into(),
        password: PASSWORD.into(),
        role,
    }
}

fn caller(keys: &TestKeys, token: &str) -> CallerContext {
    let principal = keys.verifier().verify(token, Utc::now()).unwrap();
    CallerContext::authenticated(principal, token, "req-pg")
}

#[tokio::test]
async fn sessions_and_accounts_work_on_postgres() {
    // Arrange
    let database = TestPostgres::create("auth", "auth").await;
    let keys = TestKeys::generate("auth-pg");
    let service = open_service(database.db(), &keys).await;
    let system = CallerContext::system("test");
    let anonymous = keys.anonymous();
    service
        .create_user(&system, new_user("root@example.com", UserRole::Admin))
        .await
        .unwrap();
    let ada = service
        .create_user(&system, new_user("ada@example.com", UserRole::Clinician))
        .await
        .unwrap();
    let root_session = service
        .login(&anonymous, "root@example.com", PASSWORD)
        .await
        .unwrap();
    let root = caller(&keys, &root_session.token);
    let root_id = root.principal().unwrap().user_id;

    // Act + Assert: rotation, then a replay that revokes the session.
    let first = service
        .login(&anonymous, "ada@example.com", PASSWORD)
        .await
        .unwrap();
    let second = service
        .refresh(&anonymous, &first.refresh_token)
        .await
        .unwrap();
    assert!(
        service
            .refresh(&anonymous, &first.refresh_token)
            .await
            .is_err()
    );
    assert!(
        service
            .refresh(&anonymous, &second.refresh_token)
            .await
            .is_err()
    );
    assert!(keys.verifier().verify(&second.token, Utc::now()).is_err());

    // A role change, a refresh with the new role, disabling, the last admin.
    let third = service
        .login(&anonymous, "ada@example.com", PASSWORD)
        .await
        .unwrap();
    let to_billing = UserChange {
        role: Some(UserRole::Billing),
        disabled: None,
    };
    service
        .update_user(&root, ada.id, to_billing)
        .await
        .unwrap();
    let refreshed = service
        .refresh(&anonymous, &third.refresh_token)
        .await
        .unwrap();
    assert_eq!(
        caller(&keys, &refreshed.token).principal().unwrap().role,
        UserRole::Billing
    );
    let disable = UserChange {
        role: None,
        disabled: Some(true),
    };
    service
        .update_user(&root, ada.id, disable.clone())
        .await
        .unwrap();
    assert!(
        service
            .refresh(&anonymous, &refreshed.refresh_token)
            .await
            .is_err()
    );
    let last_admin = service
        .update_user(&root, root_id, disable)
        .await
        .unwrap_err();
    assert_eq!(last_admin.error_code(), ErrorCode::AlreadyExists);
    let users = service.list_users(&root).await.unwrap();
    let listed: Vec<(&str, bool)> = users
        .iter()
        .map(|user| (user.email.as_str(), user.disabled))
        .collect();
    assert_eq!(
        listed,
        vec![("ada@example.com", true), ("root@example.com", false)]
    );

    // A password change ends the admin's own session.
    let change = PasswordChange {
        current_password: PASSWORD.into(),
        new_password: "quiet lantern over the harbour".into(),
    };
    service.change_password(&root, change).await.unwrap();
    assert!(
        keys.verifier()
            .verify(&root_session.token, Utc::now())
            .is_err()
    );
    // Reuse, role change, disabling, password change.
    assert_eq!(pending(database.db()).await.unwrap(), 4);

    database.drop_database().await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_let_at_most_one_through() {
    // Arrange
    let database = TestPostgres::create("auth", "auth").await;
    let keys = TestKeys::generate("auth-pg-race");
    let service = open_service(database.db(), &keys).await;
    let anonymous = keys.anonymous();
    service
        .create_user(
            &CallerContext::system("test"),
            new_user("ada@example.com", UserRole::Clinician),
        )
        .await
        .unwrap();
    let session = service
        .login(&anonymous, "ada@example.com", PASSWORD)
        .await
        .unwrap();

    // Act
    let (first, second) = tokio::join!(
        service.refresh(&anonymous, &session.refresh_token),
        service.refresh(&anonymous, &session.refresh_token)
    );

    // Assert: one spent it, the other is a replay that revoked the session.
    let outcomes = [first, second];
    let num_ok = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(num_ok, 1, "{outcomes:?}");
    for outcome in &outcomes {
        if let Err(error) = outcome {
            assert_eq!(
                *error,
                WardError::Unauthenticated("invalid or expired refresh token".into())
            );
        }
    }
    for winner in outcomes.iter().flatten() {
        let next = service.refresh(&anonymous, &winner.refresh_token).await;
        assert!(next.is_err(), "the replay revoked the whole session");
    }

    database.drop_database().await;
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    // Arrange
    let database = TestPostgres::create("auth", "auth").await;
    let keys = TestKeys::generate("auth-pg-admins");
    let service = open_service(database.db(), &keys).await;
    let system = CallerContext::system("test");
    let first = service
        .create_user(&system, new_user("first@example.com", UserRole::Admin))
        .await
        .unwrap();
    let second = service
        .create_user(&system, new_user("second@example.com", UserRole::Admin))
        .await
        .unwrap();
    let demote = UserChange {
        role: Some(UserRole::Analyst),
        disabled: None,
    };

    // Act
    let (first_result, second_result) = tokio::join!(
        service.update_user(&system, first.id, demote.clone()),
        service.update_user(&system, second.id, demote.clone())
    );

    // Assert
    let num_demoted = [&first_result, &second_result]
        .iter()
        .filter(|result| result.is_ok())
        .count();
    assert_eq!(num_demoted, 1, "{first_result:?} {second_result:?}");
    let users = service.list_users(&system).await.unwrap();
    let num_admins = users
        .iter()
        .filter(|user| user.role == UserRole::Admin && !user.disabled)
        .count();
    assert_eq!(num_admins, 1);

    database.drop_database().await;
}

#[tokio::test]
async fn a_refresh_racing_a_disabling_never_outlives_it() {
    // Arrange
    let database = TestPostgres::create("auth", "auth").await;
    let keys = TestKeys::generate("auth-pg-disable");
    let service = open_service(database.db(), &keys).await;
    let system = CallerContext::system("test");
    let anonymous = keys.anonymous();
    let disable = UserChange {
        role: None,
        disabled: Some(true),
    };
    let enable = UserChange {
        role: None,
        disabled: Some(false),
    };
    let ada = service
        .create_user(&system, new_user("ada@example.com", UserRole::Clinician))
        .await
        .unwrap();

    for round in 0..10 {
        let session = service
            .login(&anonymous, "ada@example.com", PASSWORD)
            .await
            .unwrap();

        // Act
        let (refreshed, disabled) = tokio::join!(
            service.refresh(&anonymous, &session.refresh_token),
            service.update_user(&system, ada.id, disable.clone())
        );

        // Assert: no deadlock or other failure, and nothing issued survives the disabling.
        disabled.unwrap();
        match refreshed {
            Ok(next) => {
                assert!(
                    keys.verifier().verify(&next.token, Utc::now()).is_err(),
                    "round {round}"
                );
                let again = service.refresh(&anonymous, &next.refresh_token).await;
                assert!(again.is_err(), "round {round}");
            }
            Err(error) => assert_eq!(error.error_code(), ErrorCode::Unauthenticated),
        }
        service
            .update_user(&system, ada.id, enable.clone())
            .await
            .unwrap();
    }

    database.drop_database().await;
}

fn from_addr(keys: &TestKeys, addr: &str) -> CallerContext {
    keys.anonymous().with_client_addr(addr)
}

#[tokio::test]
async fn two_auth_services_over_one_database_share_the_login_throttle() {
    // Arrange: two services, each with its own connection pool, as two auth tasks.
    let database = TestPostgres::create("auth", "auth").await;
    let keys = TestKeys::generate("auth-pg-throttle");
    let first = open_service(database.db(), &keys).await;
    let other_db = database.connect_again().await;
    let other = open_service(&other_db, &keys).await;
    let system = CallerContext::system("test");
    for email in ["ada@example.com", "bob@example.com"] {
        first
            .create_user(&system, new_user(email, UserRole::Clinician))
            .await
            .unwrap();
    }
    // A success through one service clears what the other counted.
    for attempt in 0..4 {
        let client = from_addr(&keys, &format!("192.0.2.{attempt}"));
        first
            .login(&client, "bob@example.com", "not the password")
            .await
            .unwrap_err();
    }
    other
        .login(&from_addr(&keys, "192.0.2.50"), "bob@example.com", PASSWORD)
        .await
        .unwrap();
    for attempt in 0..5 {
        let client = from_addr(&keys, &format!("192.0.2.{}", 60 + attempt));
        let error = first
            .login(&client, "bob@example.com", "not the password")
            .await
            .unwrap_err();
        assert_eq!(
            error.error_code(),
            ErrorCode::Unauthenticated,
            "bob, attempt {attempt}"
        );
    }

    // Act: three failures through one service, two through the other, each from its own address.
    for attempt in 0..5 {
        let client = from_addr(&keys, &format!("198.51.100.{attempt}"));
        let service = if attempt < 3 { &first } else { &other };
        let error = service
            .login(&client, "ada@example.com", "not the password")
            .await
            .unwrap_err();
        assert_eq!(
            error.error_code(),
            ErrorCode::Unauthenticated,
            "ada, attempt {attempt}"
        );
    }
    let client = from_addr(&keys, "198.51.100.99");
    let through_first = first.login(&client, "ada@example.com", PASSWORD).await;
    let through_other = other.login(&client, "ada@example.com", PASSWORD).await;

    // Assert: the sixth attempt is refused on either, even with the right password.
    for outcome in [&through_first, &through_other] {
        let Err(error) = outcome else {
            panic!("the sixth attempt got through: {outcome:?}");
        };
        assert_eq!(error.error_code(), ErrorCode::TooManyRequests, "{error:?}");
        let retry_after_secs = error.retry_after_secs().unwrap();
        assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}");
    }

    other_db.close().await.unwrap();
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_wrong_passwords_across_two_services_stop_at_the_limit() {
    // Arrange
    let database = TestPostgres::create("auth", "auth").await;
    let keys = TestKeys::generate("auth-pg-throttle-race");
    let first = Arc::new(open_service(database.db(), &keys).await);
    let other_db = database.connect_again().await;
    let other = Arc::new(open_service(&other_db, &keys).await);
    first
        .create_user(
            &CallerContext::system("test"),
            new_user("ada@example.com", UserRole::Clinician),
        )
        .await
        .unwrap();

    // Open several connections in each pool up front, so connecting does not spread the
    // attempts out in time.
    let mut warm_up = JoinSet::new();
    for index in 0..16 {
        let service = if index % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&other)
        };
        warm_up.spawn(async move { service.check_ready().await });
    }
    for ready in warm_up.join_all().await {
        ready.unwrap();
    }

    // Act: twenty at once, alternating services, each from its own address.
    let num_attempts = 20;
    let start_line = Arc::new(Barrier::new(num_attempts));
    let mut attempts: JoinSet<Result<Session, WardError>> = JoinSet::new();
    for index in 0..num_attempts {
        let service = if index % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&other)
        };
        let client = from_addr(&keys, &format!("203.0.113.{index}"));
        let start_line = Arc::clone(&start_line);
        attempts.spawn(async move {
            start_line.wait().await;
            service
                .login(&client, "ada@example.com", "not the password")
                .await
        });
    }
    let outcomes = attempts.join_all().await;

    // Assert: five were checked (and counted), every other one was throttled.
    let mut num_checked = 0;
    for outcome in &outcomes {
        let Err(error) = outcome else {
            panic!("a wrong password logged in: {outcome:?}");
        };
        match error.error_code() {
            ErrorCode::Unauthenticated => num_checked += 1,
            ErrorCode::TooManyRequests => assert!(error.retry_after_secs().is_some()),
            _ => panic!("unexpected answer: {error:?}"),
        }
    }
    assert_eq!(num_checked, 5, "{outcomes:?}");

    drop(first);
    drop(other);
    other_db.close().await.unwrap();
    database.drop_database().await;
}

//! The login throttle as clients see it: counted per account and per address, the same for
//! unknown emails, shared by every service over one database, and failing closed.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use ward_auth::AuthService;
use ward_bus::AuthApi;
use ward_core::{CallerContext, UserRole, WardError};

use crate::helpers::{PASSWORD, anonymous, spawn_auth};

fn from_addr(addr: &str) -> CallerContext {
    anonymous().with_client_addr(addr)
}

#[tokio::test]
async fn five_failures_throttle_the_account_even_for_the_right_password() {
    // Arrange
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Admin).await;
    auth.create("bob@example.com", UserRole::Clinician).await;
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
    auth.create("ada@example.com", UserRole::Admin).await;
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
    auth.create("ada@example.com", UserRole::Admin).await;
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

#[tokio::test]
async fn a_success_forgives_only_its_own_attempt_at_the_address() {
    // Arrange: four real failures from one address.
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Admin).await;
    let client = from_addr("192.0.2.7");
    for index in 0..4 {
        let email = format!("guess{index}@example.com");
        auth.service
            .login(&client, &email, "123456")
            .await
            .unwrap_err();
    }

    // Act
    let success = auth
        .service
        .login(&client, "ada@example.com", PASSWORD)
        .await;
    let fifth_failure = auth
        .service
        .login(&client, "guess4@example.com", "123456")
        .await
        .unwrap_err();
    let after_five = auth
        .service
        .login(&client, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();

    // Assert: the success did not count, so the address had room for exactly one more failure.
    assert!(success.is_ok(), "{success:?}");
    assert!(
        matches!(fifth_failure, WardError::Unauthenticated(_)),
        "{fifth_failure:?}"
    );
    assert!(
        matches!(after_five, WardError::TooManyRequests(_)),
        "{after_five:?}"
    );
}

#[tokio::test]
async fn server_side_errors_are_not_held_against_the_client() {
    // Arrange: an account whose stored hash cannot be parsed.
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Admin).await;
    let corrupt = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "UPDATE users SET password_hash = 'not a phc string' WHERE email_normalized = ?",
        ["ada@example.com".into()],
    );
    auth.db.execute_raw(corrupt).await.unwrap();
    let client = from_addr("192.0.2.8");

    // Act + Assert: every attempt reaches the check, none is throttled.
    for attempt in 0..8 {
        let error = auth
            .service
            .login(&client, "ada@example.com", PASSWORD)
            .await
            .unwrap_err();
        assert!(
            matches!(error, WardError::Internal(_)),
            "attempt {attempt}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_throttle_that_cannot_be_read_fails_the_login() {
    // Arrange: the throttle's table is gone, the accounts are fine.
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Admin).await;
    auth.db
        .execute_unprepared("DROP TABLE login_attempts")
        .await
        .unwrap();

    // Act
    let outcome = auth
        .service
        .login(&from_addr("192.0.2.1"), "ada@example.com", PASSWORD)
        .await;

    // Assert: refused as a server error, not let through unthrottled.
    let Err(error) = outcome else {
        panic!("a login went through without its throttle check");
    };
    assert!(matches!(error, WardError::Internal(_)), "{error:?}");
}

#[tokio::test]
async fn two_services_over_one_database_share_the_counts() {
    // Arrange: two services over one SQLite file, as two auth processes on one host.
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Admin).await;
    let other = auth.second_service().await;
    for attempt in 0..5 {
        // A fresh address each time, so only the account's count matters.
        let client = from_addr(&format!("192.0.2.{attempt}"));
        let service = if attempt < 3 { &auth.service } else { &other };
        let error = service
            .login(&client, "ada@example.com", "not the password")
            .await
            .unwrap_err();
        assert!(
            matches!(error, WardError::Unauthenticated(_)),
            "attempt {attempt}: {error:?}"
        );
    }

    // Act
    let client = from_addr("192.0.2.100");
    let through_first = auth
        .service
        .login(&client, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    let through_other = other
        .login(&client, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();

    // Assert
    for error in [&through_first, &through_other] {
        assert!(matches!(error, WardError::TooManyRequests(_)), "{error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_failures_across_two_services_stop_at_the_limit() {
    // Arrange
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Admin).await;
    let services = [
        Arc::new(auth.second_service().await),
        Arc::new(auth.second_service().await),
    ];

    // Act
    let outcomes = wrong_passwords_at_once(&services, 20).await;

    // Assert
    let num_checked = count_checked_or_throttled(&outcomes);
    assert_eq!(num_checked, 5, "{outcomes:?}");
}

/// Sends `num_attempts` wrong-password logins for `ada@example.com` at once, alternating between
/// `services`, each from its own address.
async fn wrong_passwords_at_once(
    services: &[Arc<AuthService>],
    num_attempts: usize,
) -> Vec<Result<ward_bus::auth::Session, WardError>> {
    // Open the pools' connections up front, so connecting does not spread the attempts out.
    let mut warm_up = JoinSet::new();
    for index in 0..16 {
        let service = Arc::clone(&services[index % services.len()]);
        warm_up.spawn(async move { service.check_ready().await });
    }
    for ready in warm_up.join_all().await {
        ready.unwrap();
    }
    let start_line = Arc::new(Barrier::new(num_attempts));
    let mut attempts = JoinSet::new();
    for index in 0..num_attempts {
        let service = Arc::clone(&services[index % services.len()]);
        let start_line = Arc::clone(&start_line);
        attempts.spawn(async move {
            start_line.wait().await;
            let client = from_addr(&format!("198.51.100.{index}"));
            service
                .login(&client, "ada@example.com", "not the password")
                .await
        });
    }
    attempts.join_all().await
}

/// The number of attempts whose password was checked; panics on any answer other than a wrong
/// password or a throttled attempt.
fn count_checked_or_throttled(outcomes: &[Result<ward_bus::auth::Session, WardError>]) -> usize {
    let mut num_checked = 0;
    for outcome in outcomes {
        match outcome {
            Err(WardError::Unauthenticated(_)) => num_checked += 1,
            Err(error @ WardError::TooManyRequests(_)) => {
                assert!(error.retry_after_secs().is_some(), "{error:?}");
            }
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    num_checked
}

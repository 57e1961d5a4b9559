//! Refresh-token rotation, replay detection, logout and password changes.

use std::time::Duration;

use chrono::Utc;
use ward_auth::AuthSettings;
use ward_bus::AuthApi;
use ward_bus::auth::PasswordChange;
use ward_bus::token::Narrowing;
use ward_core::{ErrorCode, UserRole, WardError};

use crate::helpers::{PASSWORD, anonymous, spawn_auth, spawn_auth_with, test_settings};

const NEW_PASSWORD: &str = "quiet lantern over the harbour";

fn invalid_refresh_token() -> WardError {
    WardError::Unauthenticated("invalid or expired refresh token".into())
}

fn password_change(current: &str, new: &str) -> PasswordChange {
    PasswordChange {
        current_password: current.into(),
        new_password: new.into(),
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_revokes_the_whole_session() {
    // Arrange
    let auth = spawn_auth().await;
    let ada = auth.create("ada@example.com", UserRole::Clinician).await;
    let (first, first_caller) = auth.sign_in("ada@example.com").await;
    let session_id = first_caller.principal().unwrap().session_id;

    // Act: rotate once, then replay the spent token.
    let second = auth
        .service
        .refresh(&anonymous(), &first.refresh_token)
        .await
        .unwrap();
    let second_principal = auth.verifier.verify(&second.token, Utc::now()).unwrap();
    assert!(auth.outbox_events().await.is_empty());
    let replayed = auth
        .service
        .refresh(&anonymous(), &first.refresh_token)
        .await
        .unwrap_err();
    let newest_after_replay = auth
        .service
        .refresh(&anonymous(), &second.refresh_token)
        .await
        .unwrap_err();

    // Assert
    assert_eq!(second_principal.session_id, session_id);
    assert_eq!(second_principal.user_id, ada.id);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(replayed, invalid_refresh_token());
    assert_eq!(newest_after_replay, invalid_refresh_token());
    let revocations = auth.session_revocations().await;
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].session_id, session_id.to_string());
    assert_eq!(revocations[0].user_id, ada.id.to_string());
    assert_eq!(revocations[0].reason, "refresh_token_reuse");
    // Every access token of the session stops working in this process at once.
    assert!(!auth.verifies(&first.token));
    assert!(!auth.verifies(&second.token));
}

#[tokio::test]
async fn logout_revokes_the_session_and_nothing_else() {
    // Arrange
    let auth = spawn_auth().await;
    let ada = auth.create("ada@example.com", UserRole::Clinician).await;
    let (ended, ended_caller) = auth.sign_in("ada@example.com").await;
    let (other, _) = auth.sign_in("ada@example.com").await;
    let session_id = ended_caller.principal().unwrap().session_id;

    // Act
    auth.service.logout(&ended_caller).await.unwrap();
    // Idempotent: the same caller logging out again is fine.
    auth.service.logout(&ended_caller).await.unwrap();

    // Assert
    assert!(!auth.verifies(&ended.token));
    let refresh_error = auth
        .service
        .refresh(&anonymous(), &ended.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(refresh_error, invalid_refresh_token());
    let revocations = auth.session_revocations().await;
    assert!(!revocations.is_empty());
    for revocation in &revocations {
        assert_eq!(revocation.session_id, session_id.to_string());
        assert_eq!(revocation.user_id, ada.id.to_string());
        assert_eq!(revocation.reason, "logout");
        assert!(
            revocation.revoked_at.ends_with('Z'),
            "{}",
            revocation.revoked_at
        );
    }
    // The account's other session goes on.
    assert!(auth.verifies(&other.token));
    auth.service
        .refresh(&anonymous(), &other.refresh_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn logout_needs_a_full_token() {
    // Arrange
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Clinician).await;
    let (session, _) = auth.sign_in("ada@example.com").await;
    let narrowing = Narrowing {
        read_only: true,
        ..Default::default()
    };
    let narrowed = auth
        .verifier
        .narrow(&session.token, &narrowing, Utc::now())
        .unwrap();
    let narrowed_caller = auth.caller_for(&narrowed.token);

    // Act
    let by_narrowed = auth.service.logout(&narrowed_caller).await.unwrap_err();
    let change_by_narrowed = auth
        .service
        .change_password(&narrowed_caller, password_change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap_err();
    let by_anonymous = auth.service.logout(&anonymous()).await.unwrap_err();

    // Assert
    assert_eq!(
        by_narrowed,
        WardError::Forbidden("a narrowed token cannot end the session".into())
    );
    assert_eq!(change_by_narrowed.error_code(), ErrorCode::Forbidden);
    assert_eq!(
        by_anonymous,
        WardError::Unauthenticated("a valid bearer token is required".into())
    );
    assert!(auth.verifies(&session.token));
    assert!(auth.outbox_events().await.is_empty());
}

#[tokio::test]
async fn an_expired_refresh_token_fails() {
    let settings = AuthSettings {
        refresh_token_ttl_secs: 1,
        ..test_settings()
    };
    let auth = spawn_auth_with(settings).await;
    auth.create("ada@example.com", UserRole::Clinician).await;
    let (session, _) = auth.sign_in("ada@example.com").await;

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let error = auth
        .service
        .refresh(&anonymous(), &session.refresh_token)
        .await
        .unwrap_err();

    assert_eq!(error, invalid_refresh_token());
    // Expiry is no replay: nothing is revoked.
    assert!(auth.outbox_events().await.is_empty());
}

#[tokio::test]
async fn unknown_and_malformed_refresh_tokens_get_the_same_answer() {
    let auth = spawn_auth().await;
    let unknown = format!("wrt_{}", "ab".repeat(32));
    for presented in ["", "wrt_", "not a token", unknown.as_str()] {
        let error = auth
            .service
            .refresh(&anonymous(), presented)
            .await
            .unwrap_err();
        assert_eq!(error, invalid_refresh_token(), "{presented:?}");
    }
}

#[tokio::test]
async fn a_wrong_current_password_is_refused_and_throttled() {
    // Arrange
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Clinician).await;
    let (session, ada) = auth.sign_in("ada@example.com").await;

    // Act
    let mut answers = Vec::new();
    for _ in 0..6 {
        let error = auth
            .service
            .change_password(&ada, password_change("not the password", NEW_PASSWORD))
            .await
            .unwrap_err();
        answers.push(error);
    }
    // The account's login shares the count.
    let login = auth
        .service
        .login(&anonymous(), "ada@example.com", PASSWORD)
        .await
        .unwrap_err();

    // Assert
    let wrong = WardError::Unauthenticated("the current password is wrong".into());
    assert!(
        answers[..5].iter().all(|error| *error == wrong),
        "{answers:?}"
    );
    assert_eq!(answers[5].error_code(), ErrorCode::TooManyRequests);
    assert!(answers[5].retry_after_secs().is_some());
    assert_eq!(login.error_code(), ErrorCode::TooManyRequests);
    assert!(auth.verifies(&session.token));
    assert!(auth.outbox_events().await.is_empty());
}

#[tokio::test]
async fn the_new_password_must_meet_the_policy() {
    let auth = spawn_auth().await;
    auth.create("ada@example.com", UserRole::Clinician).await;
    let (_, ada) = auth.sign_in("ada@example.com").await;

    for new_password in ["short", "qwerty123456", PASSWORD] {
        let error = auth
            .service
            .change_password(&ada, password_change(PASSWORD, new_password))
            .await
            .unwrap_err();
        assert_eq!(
            error.field_errors()[0].field,
            "newPassword",
            "{new_password}"
        );
    }
}

#[tokio::test]
async fn a_password_change_revokes_every_session_of_the_account() {
    // Arrange
    let auth = spawn_auth().await;
    let ada = auth.create("ada@example.com", UserRole::Clinician).await;
    auth.create("bob@example.com", UserRole::Clinician).await;
    let (first, first_caller) = auth.sign_in("ada@example.com").await;
    let (second, _) = auth.sign_in("ada@example.com").await;
    let (bob, _) = auth.sign_in("bob@example.com").await;

    // Act
    auth.service
        .change_password(&first_caller, password_change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap();

    // Assert: every token of both sessions is dead, Bob's live on.
    for session in [&first, &second] {
        assert!(!auth.verifies(&session.token));
        let error = auth
            .service
            .refresh(&anonymous(), &session.refresh_token)
            .await
            .unwrap_err();
        assert_eq!(error, invalid_refresh_token());
    }
    assert!(auth.verifies(&bob.token));
    let revocations = auth.user_revocations().await;
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].user_id, ada.id.to_string());
    assert_eq!(revocations[0].reason, "password_changed");
    // The old password is gone; a login with the new one is not caught by the revocation.
    let old = auth
        .service
        .login(&anonymous(), "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(
        old,
        WardError::Unauthenticated("invalid email or password".into())
    );
    let fresh = auth
        .service
        .login(&anonymous(), "ada@example.com", NEW_PASSWORD)
        .await
        .unwrap();
    assert!(auth.verifies(&fresh.token));
}

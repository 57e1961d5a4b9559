//! Listing accounts and an admin's changes: role, disabling, the last admin.

use uuid::Uuid;
use ward_bus::AuthApi;
use ward_bus::auth::UserChange;
use ward_core::{ErrorCode, UserRole, WardError};

use crate::helpers::{ADMIN_EMAIL, PASSWORD, anonymous, spawn_auth};

fn disable() -> UserChange {
    UserChange {
        role: None,
        disabled: Some(true),
    }
}

fn enable() -> UserChange {
    UserChange {
        role: None,
        disabled: Some(false),
    }
}

fn make(role: UserRole) -> UserChange {
    UserChange {
        role: Some(role),
        disabled: None,
    }
}

fn last_admin() -> WardError {
    WardError::AlreadyExists("at least one enabled admin must remain".into())
}

#[tokio::test]
async fn admins_list_every_account_by_email() {
    // Arrange
    let auth = spawn_auth().await;
    let admin = auth.admin().await;
    auth.create("Zoe@example.com", UserRole::Analyst).await;
    let clinician = auth.create("bob@example.com", UserRole::Clinician).await;
    auth.service
        .update_user(&admin, clinician.id, disable())
        .await
        .unwrap();

    // Act
    let users = auth.service.list_users(&admin).await.unwrap();

    // Assert
    let emails: Vec<&str> = users.iter().map(|user| user.email.as_str()).collect();
    assert_eq!(
        emails,
        vec!["bob@example.com", ADMIN_EMAIL, "Zoe@example.com"]
    );
    assert!(users[0].disabled);
    assert!(!users[1].disabled);
}

#[tokio::test]
async fn listing_and_changing_accounts_need_users_admin() {
    let auth = spawn_auth().await;
    let admin = auth.admin().await;
    let doc = auth.create("doc@example.com", UserRole::Clinician).await;
    let (_, doc_caller) = auth.sign_in("doc@example.com").await;
    let admin_id = admin.principal().unwrap().user_id;

    let list_by_clinician = auth.service.list_users(&doc_caller).await.unwrap_err();
    let update_by_clinician = auth
        .service
        .update_user(&doc_caller, doc.id, make(UserRole::Admin))
        .await
        .unwrap_err();
    let list_by_anonymous = auth.service.list_users(&anonymous()).await.unwrap_err();
    let update_by_anonymous = auth
        .service
        .update_user(&anonymous(), admin_id, disable())
        .await
        .unwrap_err();

    assert_eq!(list_by_clinician.error_code(), ErrorCode::Forbidden);
    assert_eq!(update_by_clinician.error_code(), ErrorCode::Forbidden);
    assert_eq!(list_by_anonymous.error_code(), ErrorCode::Unauthenticated);
    assert_eq!(update_by_anonymous.error_code(), ErrorCode::Unauthenticated);
    assert!(auth.outbox_events().await.is_empty());
}

#[tokio::test]
async fn unknown_accounts_and_empty_changes_are_refused() {
    let auth = spawn_auth().await;
    let admin = auth.admin().await;
    let admin_id = admin.principal().unwrap().user_id;

    let unknown = auth
        .service
        .update_user(&admin, Uuid::now_v7(), disable())
        .await
        .unwrap_err();
    let empty = auth
        .service
        .update_user(&admin, admin_id, UserChange::default())
        .await
        .unwrap_err();

    assert_eq!(unknown, WardError::NotFound("User not found".into()));
    assert_eq!(empty.error_code(), ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_refresh_or_use_its_tokens() {
    // Arrange
    let auth = spawn_auth().await;
    let admin = auth.admin().await;
    let ada = auth.create("ada@example.com", UserRole::Clinician).await;
    let (session, ada_caller) = auth.sign_in("ada@example.com").await;

    // Act
    let updated = auth
        .service
        .update_user(&admin, ada.id, disable())
        .await
        .unwrap();

    // Assert
    assert!(updated.disabled);
    assert_eq!(updated.role, UserRole::Clinician);
    let login = auth
        .service
        .login(&anonymous(), "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(
        login,
        WardError::Unauthenticated("invalid email or password".into())
    );
    let refresh = auth
        .service
        .refresh(&anonymous(), &session.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(
        refresh,
        WardError::Unauthenticated("invalid or expired refresh token".into())
    );
    assert!(!auth.verifies(&session.token));
    let me = auth.service.me(&ada_caller).await.unwrap_err();
    assert_eq!(
        me,
        WardError::Unauthenticated("this account is disabled".into())
    );
    let revocations = auth.user_revocations().await;
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].user_id, ada.id.to_string());
    assert_eq!(revocations[0].reason, "disabled");

    // Enabled again: a new login works, the old session stays revoked.
    let enabled = auth
        .service
        .update_user(&admin, ada.id, enable())
        .await
        .unwrap();
    assert!(!enabled.disabled);
    assert_eq!(auth.user_revocations().await.len(), 1);
    let fresh = auth
        .service
        .login(&anonymous(), "ada@example.com", PASSWORD)
        .await
        .unwrap();
    assert!(auth.verifies(&fresh.token));
    let old_refresh = auth
        .service
        .refresh(&anonymous(), &session.refresh_token)
        .await;
    assert!(old_refresh.is_err());
}

#[tokio::test]
async fn a_role_change_revokes_tokens_and_a_refresh_carries_the_new_role() {
    // Arrange
    let auth = spawn_auth().await;
    let admin = auth.admin().await;
    let ada = auth.create("ada@example.com", UserRole::Clinician).await;
    let (session, _) = auth.sign_in("ada@example.com").await;

    // Act
    let updated = auth
        .service
        .update_user(&admin, ada.id, make(UserRole::Billing))
        .await
        .unwrap();
    let refreshed = auth
        .service
        .refresh(&anonymous(), &session.refresh_token)
        .await
        .unwrap();

    // Assert
    assert_eq!(updated.role, UserRole::Billing);
    assert!(!auth.verifies(&session.token));
    let principal = auth.caller_for(&refreshed.token);
    let principal = principal.principal().unwrap();
    assert_eq!(principal.role, UserRole::Billing);
    assert_eq!(principal.rights, UserRole::Billing.rights().to_vec());
    let revocations = auth.user_revocations().await;
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].reason, "role_changed");
    assert!(
        revocations[0].revoked_before.ends_with('Z'),
        "{}",
        revocations[0].revoked_before
    );
}

#[tokio::test]
async fn a_change_to_the_same_state_revokes_nothing() {
    let auth = spawn_auth().await;
    let admin = auth.admin().await;
    let ada = auth.create("ada@example.com", UserRole::Clinician).await;
    let (session, _) = auth.sign_in("ada@example.com").await;

    let unchanged = auth
        .service
        .update_user(&admin, ada.id, make(UserRole::Clinician))
        .await
        .unwrap();
    let still_enabled = auth
        .service
        .update_user(&admin, ada.id, enable())
        .await
        .unwrap();

    assert_eq!(unchanged, ada);
    assert_eq!(still_enabled, ada);
    assert!(auth.verifies(&session.token));
    assert!(auth.outbox_events().await.is_empty());
}

#[tokio::test]
async fn the_last_enabled_admin_can_be_neither_demoted_nor_disabled() {
    // Arrange
    let auth = spawn_auth().await;
    let admin = auth.admin().await;
    let admin_id = admin.principal().unwrap().user_id;

    // Act + Assert: alone, the admin stays.
    let demoted = auth
        .service
        .update_user(&admin, admin_id, make(UserRole::Analyst))
        .await
        .unwrap_err();
    let disabled = auth
        .service
        .update_user(&admin, admin_id, disable())
        .await
        .unwrap_err();
    assert_eq!(demoted, last_admin());
    assert_eq!(demoted.error_code(), ErrorCode::AlreadyExists);
    assert_eq!(disabled, last_admin());

    // A disabled second admin does not count.
    let second = auth.create("second@example.com", UserRole::Admin).await;
    auth.service
        .update_user(&admin, second.id, disable())
        .await
        .unwrap();
    let still_last = auth
        .service
        .update_user(&admin, admin_id, make(UserRole::Analyst))
        .await
        .unwrap_err();
    assert_eq!(still_last, last_admin());

    // Enabled again, it does: the first admin may step down, and the second is now the last.
    auth.service
        .update_user(&admin, second.id, enable())
        .await
        .unwrap();
    let stepped_down = auth
        .service
        .update_user(&admin, admin_id, make(UserRole::Analyst))
        .await
        .unwrap();
    assert_eq!(stepped_down.role, UserRole::Analyst);
    let (_, second_caller) = auth.sign_in("second@example.com").await;
    let last = auth
        .service
        .update_user(&second_caller, second.id, disable())
        .await
        .unwrap_err();
    assert_eq!(last, last_admin());
}

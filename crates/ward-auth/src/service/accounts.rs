//! Accounts: reading them, creating them and an admin's changes to role and disabled flag.

use std::str::FromStr;

use chrono::Utc;
use email_address::{EmailAddress, Options as EmailOptions};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;
use ward_bus::auth::{NewUser, PasswordChange, UserChange, UserInfo};
use ward_bus::db::{db_error, is_unique_violation};
use ward_core::{CallerContext, FieldError, Right, UserRole, WardError, WardResult};

use super::AuthService;
use crate::entity::users;
use crate::password::{PasswordRules, hash_password_blocking, password_problem};
use crate::revocation::RevocationReason;

/// RFC 5321 caps a forward path at 256 octets, so an address at 254.
const MAX_EMAIL_BYTES: usize = 254;

const LAST_ADMIN_MESSAGE: &str = "at least one enabled admin must remain";

impl AuthService {
    pub(super) async fn find_by_normalized_email(
        &self,
        email_normalized: &str,
    ) -> WardResult<Option<users::Model>> {
        users::Entity::find()
            .filter(users::Column::EmailNormalized.eq(email_normalized))
            .one(&self.db)
            .await
            .map_err(|error| db_error("cannot look up the account", error))
    }

    /// The account behind a token, or `Unauthenticated` when it is gone or disabled.
    pub(super) async fn find_usable_account(&self, user_id: Uuid) -> WardResult<users::Model> {
        let user_opt = users::Entity::find_by_id(user_id)
            .one(&self.db)
            .await
            .map_err(|error| db_error("cannot look up the account", error))?;
        let Some(user) = user_opt else {
            return Err(WardError::Unauthenticated(
                "the account behind this token no longer exists".into(),
            ));
        };
        if user.disabled {
            return Err(WardError::Unauthenticated(
                "this account is disabled".into(),
            ));
        }
        Ok(user)
    }

    pub(super) async fn insert_user(
        &self,
        ctx: &CallerContext,
        user: NewUser,
    ) -> WardResult<UserInfo> {
        ctx.require(Right::UsersAdmin)?;
        let rules = if ctx.is_system() {
            PasswordRules::System
        } else {
            PasswordRules::Staff
        };
        validate_new_user(&user, rules)?;
        let email = user.email.trim().to_string();
        let email_normalized = normalize_email(&email);
        let password_hash =
            hash_password_blocking(user.password, self.argon2_params.clone()).await?;

        let new_row = users::ActiveModel {
            id: ActiveValue::Set(ward_core::id::new_id()),
            email: ActiveValue::Set(email),
            email_normalized: ActiveValue::Set(email_normalized),
            password_hash: ActiveValue::Set(password_hash),
            role: ActiveValue::Set(user.role.as_str().to_string()),
            created_at: ActiveValue::Set(Utc::now()),
            disabled: ActiveValue::Set(false),
        };
        // The unique index decides, so two concurrent requests cannot both succeed.
        let inserted = new_row.insert(&self.db).await.map_err(|error| {
            if is_unique_violation(&error) {
                WardError::AlreadyExists("Email address already exists".into())
            } else {
                db_error("cannot create the account", error)
            }
        })?;
        let user_info = user_info_from_model(inserted)?;
        tracing::info!(user_id = %user_info.id, role = %user_info.role, actor = %ctx.actor(), "account created");
        Ok(user_info)
    }

    pub(super) async fn all_users(&self, ctx: &CallerContext) -> WardResult<Vec<UserInfo>> {
        ctx.require(Right::UsersAdmin)?;
        let rows = users::Entity::find()
            .order_by_asc(users::Column::EmailNormalized)
            .all(&self.db)
            .await
            .map_err(|error| db_error("cannot list the accounts", error))?;
        let mut user_infos = Vec::with_capacity(rows.len());
        for row in rows {
            user_infos.push(user_info_from_model(row)?);
        }
        Ok(user_infos)
    }

    /// Applies an admin's change in one transaction. A new role or disabling revokes the
    /// account's access tokens (they carry the old state); disabling also ends its sessions.
    pub(super) async fn change_user(
        &self,
        ctx: &CallerContext,
        user_id: Uuid,
        change: UserChange,
    ) -> WardResult<UserInfo> {
        ctx.require(Right::UsersAdmin)?;
        if change.role.is_none() && change.disabled.is_none() {
            return Err(WardError::invalid(
                "name at least one of role or disabled",
                Vec::new(),
            ));
        }
        let context = "cannot update the account";
        let txn = self.begin_write(context).await?;
        // A change that may take an admin away locks every enabled admin row first, always in
        // id order: two admins demoting each other at once then queue on the same first row
        // (no deadlock), and the second sees the first one's change (PostgreSQL re-reads
        // locked rows after the wait; SQLite's write transaction serializes anyway).
        let may_remove_an_admin = change.disabled == Some(true)
            || matches!(change.role, Some(role) if role != UserRole::Admin);
        let mut enabled_admin_ids: Vec<Uuid> = Vec::new();
        if may_remove_an_admin {
            enabled_admin_ids = users::Entity::find()
                .select_only()
                .column(users::Column::Id)
                .filter(users::Column::Role.eq(UserRole::Admin.as_str()))
                .filter(users::Column::Disabled.eq(false))
                .order_by_asc(users::Column::Id)
                .lock_exclusive()
                .into_tuple()
                .all(&txn)
                .await
                .map_err(|error| db_error(context, error))?;
        }
        // Locked, so a concurrent login or refresh either finishes first (and its tokens are
        // revoked) or sees the change.
        let user_opt = users::Entity::find_by_id(user_id)
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(|error| db_error(context, error))?;
        let Some(user) = user_opt else {
            return Err(WardError::NotFound("User not found".into()));
        };
        let old_role = stored_role(&user.role)?;
        let old_disabled = user.disabled;
        let new_role = change.role.unwrap_or(old_role);
        let new_disabled = change.disabled.unwrap_or(old_disabled);
        let role_changed = new_role != old_role;
        let becomes_disabled = new_disabled && !old_disabled;

        let was_enabled_admin = old_role == UserRole::Admin && !old_disabled;
        let stays_enabled_admin = new_role == UserRole::Admin && !new_disabled;
        if was_enabled_admin && !stays_enabled_admin {
            debug_assert!(may_remove_an_admin, "the admin rows were not locked");
            let others_remain = enabled_admin_ids.iter().any(|id| *id != user_id);
            if !others_remain {
                return Err(WardError::AlreadyExists(LAST_ADMIN_MESSAGE.into()));
            }
        }
        if !role_changed && new_disabled == old_disabled {
            return user_info_from_model(user);
        }

        let mut row = user.into_active_model();
        row.role = ActiveValue::Set(new_role.as_str().to_string());
        row.disabled = ActiveValue::Set(new_disabled);
        let updated = row
            .update(&txn)
            .await
            .map_err(|error| db_error(context, error))?;
        if role_changed || becomes_disabled {
            let reason = if becomes_disabled {
                RevocationReason::Disabled
            } else {
                RevocationReason::RoleChanged
            };
            let revocation = self
                .revoke_user_tokens_in(&txn, ctx, user_id, reason, becomes_disabled)
                .await?;
            self.commit_user_revocation(txn, revocation, context)
                .await?;
        } else {
            // Re-enabled: nothing to revoke, and revoked sessions stay revoked.
            txn.commit()
                .await
                .map_err(|error| db_error(context, error))?;
        }
        let user_info = user_info_from_model(updated)?;
        tracing::info!(%user_id, role = %user_info.role, disabled = user_info.disabled, actor = %ctx.actor(), "account updated");
        Ok(user_info)
    }
}

/// The form uniqueness and logins use: `Ada@Example.com ` and `ada@example.com` are one account.
pub(super) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Reports every failing field at once.
fn validate_new_user(user: &NewUser, rules: PasswordRules) -> WardResult<()> {
    let mut errors = Vec::new();
    if !is_valid_email(user.email.trim()) {
        errors.push(FieldError {
            field: "email".into(),
            message: "email must be a valid address".into(),
        });
    }
    if let Some(message) = password_problem(&user.password, rules) {
        errors.push(FieldError {
            field: "password".into(),
            message,
        });
    }
    match errors.len() {
        0 => Ok(()),
        1 => {
            let detail = errors[0].message.clone();
            Err(WardError::invalid(detail, errors))
        }
        num_errors => Err(WardError::invalid(
            format!("the account has {num_errors} invalid fields"),
            errors,
        )),
    }
}

/// Checks the new password of a change (always a person's: the staff policy), on `newPassword`.
pub(super) fn validate_password_change(change: &PasswordChange) -> WardResult<()> {
    if let Some(message) = password_problem(&change.new_password, PasswordRules::Staff) {
        return Err(WardError::invalid_field("newPassword", message));
    }
    if change.new_password == change.current_password {
        return Err(WardError::invalid_field(
            "newPassword",
            "the new password must differ from the current one",
        ));
    }
    Ok(())
}

/// A plain `local@domain.tld` address: no display name, no IP literal, a dotted domain.
fn is_valid_email(email: &str) -> bool {
    let options = EmailOptions::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    let is_too_long = email.len() > MAX_EMAIL_BYTES;
    !is_too_long && EmailAddress::parse_with_options(email, options).is_ok()
}

fn stored_role(raw: &str) -> WardResult<UserRole> {
    UserRole::from_str(raw)
        .map_err(|error| WardError::internal("a stored account has an unknown role", error))
}

pub(super) fn user_info_from_model(user: users::Model) -> WardResult<UserInfo> {
    Ok(UserInfo {
        id: user.id,
        role: stored_role(&user.role)?,
        email: user.email,
        disabled: user.disabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRONG_PASSWORD: &str = "quiet lantern over the harbour";

    fn new_user(email: &str, password: &str) -> NewUser {
        NewUser {
            email: email.into(),
            password: password.into(),
            role: UserRole::Clinician,
        }
    }

    fn fields(error: &WardError) -> Vec<&str> {
        error
            .field_errors()
            .iter()
            .map(|field_error| field_error.field.as_str())
            .collect()
    }

    #[test]
    fn emails_normalize_to_trimmed_lowercase() {
        assert_eq!(normalize_email("  Ada@Example.COM "), "ada@example.com");
    }

    #[test]
    fn email_validation_wants_a_plain_address() {
        assert!(is_valid_email("ada@example.com"));
        assert!(is_valid_email("ada.lovelace+ward@clinic.example.org"));
        for invalid in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "Ada <ada@example.com>",
            "ada@[127.0.0.1]",
            "ada @example.com",
        ] {
            assert!(!is_valid_email(invalid), "{invalid}");
        }
        let too_long = format!("{}@{}.com", "a".repeat(64), "b".repeat(200));
        assert!(!is_valid_email(&too_long));
    }

    #[test]
    fn staff_passwords_follow_the_policy_and_system_ones_only_the_bounds() {
        let staff = PasswordRules::Staff;
        let system = PasswordRules::System;
        assert!(validate_new_user(&new_user("a@example.com", STRONG_PASSWORD), staff).is_ok());
        for weak in ["password123", "password1234"] {
            let error = validate_new_user(&new_user("a@example.com", weak), staff).unwrap_err();
            assert_eq!(fields(&error), vec!["password"], "{weak}");
            assert!(validate_new_user(&new_user("a@example.com", weak), system).is_ok());
        }
        let too_long = new_user("a@example.com", &"x".repeat(129));
        assert!(validate_new_user(&too_long, system).is_err());
    }

    #[test]
    fn every_failing_field_is_reported() {
        let error =
            validate_new_user(&new_user("nope", "short"), PasswordRules::Staff).unwrap_err();
        assert_eq!(fields(&error), vec!["email", "password"]);
    }

    #[test]
    fn a_new_password_is_checked_on_its_own_field() {
        let change = |current: &str, new: &str| PasswordChange {
            current_password: current.into(),
            new_password: new.into(),
        };
        assert!(validate_password_change(&change("old one", STRONG_PASSWORD)).is_ok());
        let short = validate_password_change(&change("old one", "short")).unwrap_err();
        let common = validate_password_change(&change("old one", "Password1234")).unwrap_err();
        let same = validate_password_change(&change(STRONG_PASSWORD, STRONG_PASSWORD)).unwrap_err();
        for error in [&short, &common, &same] {
            assert_eq!(fields(error), vec!["newPassword"]);
        }
        assert_eq!(
            common.to_string(),
            "password is too common; choose a longer passphrase"
        );
    }
}

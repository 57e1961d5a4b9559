//! Sessions: logging in, rotating refresh tokens, logging out and changing one's password.
//!
//! A session is a family of refresh tokens sharing one id, which every access token of the
//! session carries too. Each refresh spends the token it was given and hands out the next one; a
//! spent token presented again means two parties hold it, so the whole session is revoked.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue, DatabaseTransaction, EntityTrait, IntoActiveModel, QuerySelect,
};
use uuid::Uuid;
use ward_bus::auth::{PasswordChange, Session};
use ward_bus::db::db_error;
use ward_core::{CallerContext, Principal, WardError, WardResult};

use super::AuthService;
use super::accounts::user_info_from_model;
use crate::entity::{refresh_tokens, users};
use crate::password::{hash_password_blocking, verify_password_blocking};
use crate::refresh_token;
use crate::revocation::{Revocation, RevocationReason, revocation_cut, wait_until};

/// The one answer to any failed login, so a caller cannot tell which part was wrong.
const INVALID_CREDENTIALS_MESSAGE: &str = "invalid email or password";

/// The one answer to any refused refresh token, whatever the reason.
const INVALID_REFRESH_TOKEN_MESSAGE: &str = "invalid or expired refresh token";

const WRONG_CURRENT_PASSWORD_MESSAGE: &str = "the current password is wrong";

/// Longer passwords are refused without hashing. Generous on purpose: it only bounds the work a
/// hostile request can cause, and must stay above any password length ever accepted.
const MAX_CHECKED_PASSWORD_BYTES: usize = 4 * 1024;

fn invalid_credentials() -> WardError {
    WardError::Unauthenticated(INVALID_CREDENTIALS_MESSAGE.into())
}

fn invalid_refresh_token() -> WardError {
    WardError::Unauthenticated(INVALID_REFRESH_TOKEN_MESSAGE.into())
}

fn wrong_current_password() -> WardError {
    WardError::Unauthenticated(WRONG_CURRENT_PASSWORD_MESSAGE.into())
}

impl AuthService {
    /// Checks the credentials and starts a session; every failure is the same `Unauthenticated`.
    pub(super) async fn check_credentials(
        &self,
        email_normalized: &str,
        password: &str,
    ) -> WardResult<Session> {
        if password.len() > MAX_CHECKED_PASSWORD_BYTES {
            tracing::info!(reason = "password_too_long", "login rejected");
            return Err(invalid_credentials());
        }
        let user_opt = self.find_by_normalized_email(email_normalized).await?;
        let password_hash = match &user_opt {
            Some(user) => user.password_hash.clone(),
            None => self.dummy_password_hash.to_string(),
        };
        let password_matches =
            verify_password_blocking(password.to_string(), password_hash).await?;
        let Some(user) = user_opt else {
            tracing::info!(reason = "unknown_email", "login rejected");
            return Err(invalid_credentials());
        };
        if !password_matches {
            tracing::info!(reason = "wrong_password", user_id = %user.id, "login rejected");
            return Err(invalid_credentials());
        }
        // Checked only after the password, so the answer and its timing match a wrong password.
        if user.disabled {
            tracing::info!(reason = "disabled", user_id = %user.id, "login rejected");
            return Err(invalid_credentials());
        }
        self.start_session(user).await
    }

    /// Stores the first refresh token of a new session and issues its access token.
    async fn start_session(&self, checked: users::Model) -> WardResult<Session> {
        let context = "cannot start the session";
        let txn = self.begin_write(context).await?;
        // Read again under lock: a password change or disabling that committed while the
        // password was being checked wins, and one that comes later waits for this session to
        // exist, so it revokes it.
        let user_opt = users::Entity::find_by_id(checked.id)
            .lock_shared()
            .one(&txn)
            .await
            .map_err(|error| db_error(context, error))?;
        let Some(user) = user_opt else {
            tracing::info!(reason = "account_changed", user_id = %checked.id, "login rejected");
            return Err(invalid_credentials());
        };
        if user.password_hash != checked.password_hash || user.disabled {
            tracing::info!(reason = "account_changed", user_id = %user.id, "login rejected");
            return Err(invalid_credentials());
        }
        let session_id = ward_core::id::new_id();
        let session = self.issue_session(&txn, user, session_id).await?;
        txn.commit()
            .await
            .map_err(|error| db_error(context, error))?;
        tracing::info!(user_id = %session.user_id, %session_id, role = %session.role, "login succeeded");
        Ok(session.session)
    }

    /// Stores a new refresh token of `session_id` in `txn` and issues an access token with
    /// `user`'s current role, both from now.
    async fn issue_session(
        &self,
        txn: &DatabaseTransaction,
        user: users::Model,
        session_id: Uuid,
    ) -> WardResult<IssuedSession> {
        let now = Utc::now();
        let refresh_token = refresh_token::generate()?;
        let refresh_expires_at = refresh_token::expiry(now, self.settings.refresh_token_ttl_secs)?;
        refresh_token::insert(
            txn,
            &refresh_token,
            session_id,
            user.id,
            now,
            refresh_expires_at,
        )
        .await?;
        let user_info = user_info_from_model(user)?;
        let access_token = self.issuer.issue(
            &user_info,
            session_id,
            self.settings.access_token_ttl_secs,
            now,
        )?;
        Ok(IssuedSession {
            user_id: user_info.id,
            role: user_info.role,
            session: Session {
                token: access_token.token,
                expires_at: access_token.expires_at,
                refresh_token: refresh_token.text,
            },
        })
    }

    /// Spends `presented` for the next token of its session and a new access token.
    pub(super) async fn rotate_refresh_token(
        &self,
        ctx: &CallerContext,
        presented: &str,
    ) -> WardResult<Session> {
        if !refresh_token::is_well_formed(presented) {
            tracing::info!(reason = "malformed", "refresh rejected");
            return Err(invalid_refresh_token());
        }
        let context = "cannot refresh the session";
        let token_hash = refresh_token::hash(presented);
        let txn = self.begin_write(context).await?;
        // Rows are locked account first, then token, the order of every writer that touches
        // both (a password change or an admin's change locks the account, then revokes its
        // tokens), so none of them can deadlock with a refresh. The first read, without a lock,
        // only finds the account.
        let Some(found) = refresh_token::find(&txn, &token_hash).await? else {
            tracing::info!(reason = "unknown", "refresh rejected");
            return Err(invalid_refresh_token());
        };
        // Shared, like a login's: a concurrent role change or disabling is either seen here or
        // waits for this refresh and then revokes what it issued.
        let user_opt = users::Entity::find_by_id(found.user_id)
            .lock_shared()
            .one(&txn)
            .await
            .map_err(|error| db_error(context, error))?;
        let Some(token) = refresh_token::find_for_update(&txn, &token_hash).await? else {
            tracing::info!(reason = "unknown", "refresh rejected");
            return Err(invalid_refresh_token());
        };
        let session_id = token.session_id;
        let is_revoked = token.revoked_at.is_some()
            || refresh_token::is_session_revoked(&txn, session_id).await?;
        if is_revoked {
            tracing::info!(reason = "revoked", %session_id, "refresh rejected");
            return Err(invalid_refresh_token());
        }
        if token.spent_at.is_some() {
            return self.revoke_replayed_session(ctx, txn, &token).await;
        }
        let now = Utc::now();
        if token.expires_at <= now {
            tracing::info!(reason = "expired", %session_id, "refresh rejected");
            return Err(invalid_refresh_token());
        }
        let Some(user) = user_opt.filter(|user| !user.disabled) else {
            tracing::info!(reason = "account_unusable", %session_id, user_id = %token.user_id, "refresh rejected");
            return Err(invalid_refresh_token());
        };
        if !refresh_token::spend(&txn, token.id, now).await? {
            // Spent by a concurrent request between the read and now: a replay as well.
            return self.revoke_replayed_session(ctx, txn, &token).await;
        }
        let session = self.issue_session(&txn, user, session_id).await?;
        txn.commit()
            .await
            .map_err(|error| db_error(context, error))?;
        tracing::info!(user_id = %session.user_id, %session_id, role = %session.role, "session refreshed");
        Ok(session.session)
    }

    /// Revokes the session of a replayed token (in `txn`, with its event) and refuses the
    /// refresh: one of the two parties holding the token is not its owner.
    async fn revoke_replayed_session(
        &self,
        ctx: &CallerContext,
        txn: DatabaseTransaction,
        token: &refresh_tokens::Model,
    ) -> WardResult<Session> {
        tracing::warn!(session_id = %token.session_id, user_id = %token.user_id, "refresh token reused; revoking its session");
        let revocation = self
            .revoke_session_in(
                &txn,
                ctx,
                token.session_id,
                token.user_id,
                RevocationReason::RefreshTokenReuse,
            )
            .await?;
        self.commit_with_revocation(txn, revocation, "cannot revoke a replayed session")
            .await?;
        Err(invalid_refresh_token())
    }

    /// Revokes the caller's session: its refresh tokens now, its access tokens through the
    /// event. Ending a session that has ended already is fine.
    pub(super) async fn end_session(
        &self,
        ctx: &CallerContext,
        principal: &Principal,
    ) -> WardResult<()> {
        let context = "cannot end the session";
        let txn = self.begin_write(context).await?;
        let revocation = self
            .revoke_session_in(
                &txn,
                ctx,
                principal.session_id,
                principal.user_id,
                RevocationReason::Logout,
            )
            .await?;
        self.commit_with_revocation(txn, revocation, context).await
    }

    /// Revokes every refresh token of `session_id` and enqueues `SessionRevoked`, in `txn`.
    async fn revoke_session_in(
        &self,
        txn: &DatabaseTransaction,
        ctx: &CallerContext,
        session_id: Uuid,
        user_id: Uuid,
        reason: RevocationReason,
    ) -> WardResult<Revocation> {
        let now = Utc::now();
        refresh_token::revoke_session(txn, session_id, now).await?;
        let revocation = Revocation::Session {
            session_id,
            user_id,
            revoked_at: now,
            reason,
        };
        revocation.enqueue(txn, ctx.request_id()).await?;
        Ok(revocation)
    }

    /// Checks the current password, then stores the new one and revokes every session of the
    /// account. The policy was checked by the caller.
    pub(super) async fn replace_password(
        &self,
        ctx: &CallerContext,
        checked: users::Model,
        change: PasswordChange,
    ) -> WardResult<()> {
        if change.current_password.len() > MAX_CHECKED_PASSWORD_BYTES {
            tracing::info!(reason = "password_too_long", user_id = %checked.id, "password change rejected");
            return Err(wrong_current_password());
        }
        let current_matches =
            verify_password_blocking(change.current_password, checked.password_hash.clone())
                .await?;
        if !current_matches {
            tracing::info!(reason = "wrong_password", user_id = %checked.id, "password change rejected");
            return Err(wrong_current_password());
        }
        let new_hash =
            hash_password_blocking(change.new_password, self.argon2_params.clone()).await?;

        let context = "cannot change the password";
        let txn = self.begin_write(context).await?;
        let user_opt = users::Entity::find_by_id(checked.id)
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(|error| db_error(context, error))?;
        // A change that committed meanwhile made the checked password stale.
        let Some(user) = user_opt.filter(|user| user.password_hash == checked.password_hash) else {
            tracing::info!(reason = "changed_meanwhile", user_id = %checked.id, "password change rejected");
            return Err(wrong_current_password());
        };
        if user.disabled {
            return Err(WardError::Unauthenticated(
                "this account is disabled".into(),
            ));
        }
        let user_id = user.id;
        let mut row = user.into_active_model();
        row.password_hash = ActiveValue::Set(new_hash);
        row.update(&txn)
            .await
            .map_err(|error| db_error(context, error))?;
        let revocation = self
            .revoke_user_tokens_in(&txn, ctx, user_id, RevocationReason::PasswordChanged, true)
            .await?;
        self.commit_user_revocation(txn, revocation, context)
            .await?;
        tracing::info!(%user_id, "password changed");
        Ok(())
    }

    /// Enqueues `UserTokensRevoked` for `user_id` in `txn`, cutting at the next whole
    /// millisecond (see [`revocation_cut`]); with `end_sessions`, also revokes every refresh
    /// token of the account.
    pub(super) async fn revoke_user_tokens_in(
        &self,
        txn: &DatabaseTransaction,
        ctx: &CallerContext,
        user_id: Uuid,
        reason: RevocationReason,
        end_sessions: bool,
    ) -> WardResult<UserRevocation> {
        let now = Utc::now();
        if end_sessions {
            refresh_token::revoke_user(txn, user_id, now).await?;
        }
        let revoked_before = revocation_cut(now);
        let revocation = Revocation::UserTokens {
            user_id,
            revoked_before,
            reason,
        };
        revocation.enqueue(txn, ctx.request_id()).await?;
        Ok(UserRevocation {
            revocation,
            revoked_before,
        })
    }

    /// Commits once the clock has passed the cut, so no token issued after the commit falls
    /// under it (see [`revocation_cut`]).
    pub(super) async fn commit_user_revocation(
        &self,
        txn: DatabaseTransaction,
        user_revocation: UserRevocation,
        context: &str,
    ) -> WardResult<()> {
        wait_until(user_revocation.revoked_before).await;
        self.commit_with_revocation(txn, user_revocation.revocation, context)
            .await
    }
}

/// A session just issued, with what the log line names.
struct IssuedSession {
    user_id: Uuid,
    role: ward_core::UserRole,
    session: Session,
}

/// A user-token revocation written to a transaction, not yet committed.
pub(super) struct UserRevocation {
    revocation: Revocation,
    revoked_before: DateTime<Utc>,
}

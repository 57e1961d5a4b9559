//! [`AuthService`]: the in-process implementation of [`AuthApi`] over the auth database.
//!
//! Logins and refreshes live in [`sessions`], account reads and admin changes in [`accounts`].
//! Every change that revokes tokens writes its event to the outbox in the same transaction, then
//! wakes the relay after the commit and, when asked, applies the revocation to this process's own
//! set ([`AuthService::with_local_revocations`]).

mod accounts;
mod sessions;

use std::sync::Arc;

use argon2::Params;
use async_trait::async_trait;
use chrono::Utc;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, PasswordChange, Session, UserChange, UserInfo};
use ward_bus::db::{db_error, ping};
use ward_bus::outbox::OutboxWaker;
use ward_bus::revocation::Revocations;
use ward_bus::token::TokenIssuer;
use ward_core::{CallerContext, Principal, WardError, WardResult};

use crate::migration::Migrator;
use crate::password::{hash_password_blocking, load_common_passwords};
use crate::revocation::Revocation;
use crate::settings::AuthSettings;
use crate::throttle::{Admission, LoginThrottle, account_key, addr_key};

/// The one answer to a throttled login, whether or not the account exists.
const THROTTLED_MESSAGE: &str = "too many failed logins; try again later";

/// The answer to a throttled password change.
const THROTTLED_PASSWORD_CHECK_MESSAGE: &str = "too many wrong passwords; try again later";

/// Accounts, passwords, sessions and access tokens, stored in the auth database.
pub struct AuthService {
    db: DatabaseConnection,
    issuer: TokenIssuer,
    settings: AuthSettings,
    /// New hashes use these; checked once in [`AuthService::open`].
    argon2_params: Params,
    /// Verified against when the email is unknown, so both failures take the same time.
    dummy_password_hash: Arc<str>,
    /// Failed password checks per account and per client address, kept in the auth database so
    /// every auth task sharing it sees the same counts (see [`LoginThrottle`]).
    throttle: LoginThrottle,
    /// Wakes the relay that moves this database's outbox to `ward.auth.v1`.
    outbox: OutboxWaker,
    /// This process's revocation set, updated right after each revoking commit.
    local_revocations_opt: Option<Revocations>,
}

impl AuthService {
    /// Builds the service over an open, migrated database (see [`AuthService::migrate`]).
    /// `outbox` is the waker of the relay that sends this database's `outbox` rows (see
    /// [`ward_bus::outbox::OutboxRelay::waker`]). Invalid settings are `InvalidArgument` naming
    /// the configuration key.
    pub async fn open(
        db: DatabaseConnection,
        issuer: TokenIssuer,
        settings: AuthSettings,
        outbox: OutboxWaker,
    ) -> WardResult<Self> {
        let argon2_params = settings.validate()?;
        // Hashed with the configured cost, so checking it costs what a real check costs.
        let dummy_password_hash = hash_password_blocking(
            "ward dummy password for unknown emails".to_string(),
            argon2_params.clone(),
        )
        .await?;
        tokio::task::spawn_blocking(load_common_passwords)
            .await
            .map_err(|error| WardError::internal("loading the common passwords failed", error))?;
        Ok(Self {
            throttle: LoginThrottle::with_defaults(db.clone()),
            db,
            issuer,
            settings,
            argon2_params,
            dummy_password_hash: dummy_password_hash.into(),
            outbox,
            local_revocations_opt: None,
        })
    }

    /// Also applies each revocation to `revocations` right after its commit, so tokens verified
    /// in this process stop working at once; other processes learn it from the event.
    pub fn with_local_revocations(mut self, revocations: Revocations) -> Self {
        self.local_revocations_opt = Some(revocations);
        self
    }

    /// Applies pending migrations of the auth database (including its `outbox` table).
    pub async fn migrate(db: &DatabaseConnection) -> WardResult<()> {
        Migrator::up(db, None)
            .await
            .map_err(|error| db_error("cannot migrate the auth database", error))
    }

    /// Starts a write transaction: IMMEDIATE on SQLite, so a read-then-write never fails on a
    /// lock upgrade and concurrent writers wait their turn (see [`ward_bus::db::write_transaction`]).
    async fn begin_write(&self, context: &str) -> WardResult<DatabaseTransaction> {
        self.db
            .begin_with_options(ward_bus::db::write_transaction())
            .await
            .map_err(|error| db_error(context, error))
    }

    /// Takes back what the throttle counted for `attempt_id` as `outcome` deserves: a success
    /// clears `account` and forgives the attempt under the other keys, an error that is not the
    /// client's fault (database down, corrupt hash) forgives it under every key, and a wrong
    /// password (`Unauthenticated`) keeps it.
    async fn settle_attempt<T>(
        &self,
        attempt_id: Uuid,
        account: &str,
        keys: &[String],
        outcome: &WardResult<T>,
    ) {
        let settled = match outcome {
            Ok(_) => {
                let other_keys: Vec<String> =
                    keys.iter().filter(|key| *key != account).cloned().collect();
                let cleared = self.throttle.clear(account).await;
                let forgiven = self.throttle.forgive(attempt_id, &other_keys).await;
                cleared.and(forgiven)
            }
            Err(WardError::Unauthenticated(_)) => Ok(()),
            Err(_) => self.throttle.forgive(attempt_id, keys).await,
        };
        // The outcome stands (a session may already be issued); an attempt left counted only
        // costs its owner one try until it leaves the window.
        if let Err(error) = settled {
            tracing::warn!(%error, %attempt_id, "cannot take back a counted login attempt");
        }
    }

    /// Commits a change whose `revocation` event is in `txn`'s outbox rows, then wakes the relay
    /// and applies the revocation locally.
    async fn commit_with_revocation(
        &self,
        txn: DatabaseTransaction,
        revocation: Revocation,
        context: &str,
    ) -> WardResult<()> {
        txn.commit()
            .await
            .map_err(|error| db_error(context, error))?;
        self.outbox.wake();
        revocation.log();
        if let Some(local_revocations) = &self.local_revocations_opt {
            revocation.apply_to(local_revocations);
        }
        Ok(())
    }
}

/// The caller's principal, or `Unauthenticated`.
fn require_principal(ctx: &CallerContext) -> WardResult<&Principal> {
    ctx.principal()
        .ok_or_else(|| WardError::Unauthenticated("a valid bearer token is required".into()))
}

/// The caller's principal, refused when the token was narrowed: such a token is meant for a
/// third-party app, which must not end the session or change the account.
fn require_full_principal<'a>(ctx: &'a CallerContext, action: &str) -> WardResult<&'a Principal> {
    let principal = require_principal(ctx)?;
    if principal.is_narrowed() {
        return Err(WardError::Forbidden(format!(
            "a narrowed token cannot {action}"
        )));
    }
    Ok(principal)
}

#[async_trait]
impl AuthApi for AuthService {
    #[tracing::instrument(name = "auth.login", skip_all, fields(request_id = %ctx.request_id()))]
    async fn login(&self, ctx: &CallerContext, email: &str, password: &str) -> WardResult<Session> {
        let email_normalized = accounts::normalize_email(email);
        let account = account_key(&email_normalized);
        let addr_opt = ctx.client_addr().map(addr_key);
        let keys: Vec<String> = std::iter::once(account.clone())
            .chain(addr_opt.clone())
            .collect();
        // Checked before any password work, and the same for unknown emails, so a throttled
        // answer tells nothing about the account and costs the attacker no hashing on our side.
        // A throttle that cannot be read fails the login rather than letting it through.
        let attempt_id = match self.throttle.try_begin(&keys, Utc::now()).await? {
            Admission::Admitted { attempt_id } => attempt_id,
            Admission::Refused { retry_after_secs } => {
                tracing::info!(reason = "throttled", retry_after_secs, "login rejected");
                return Err(WardError::too_many_requests(
                    THROTTLED_MESSAGE,
                    retry_after_secs,
                ));
            }
        };
        // `try_begin` counted this attempt as a failure; only an Unauthenticated outcome keeps it.
        let outcome = self.check_credentials(&email_normalized, password).await;
        self.settle_attempt(attempt_id, &account, &keys, &outcome)
            .await;
        outcome
    }

    #[tracing::instrument(name = "auth.refresh", skip_all, fields(request_id = %ctx.request_id()))]
    async fn refresh(&self, ctx: &CallerContext, refresh_token: &str) -> WardResult<Session> {
        self.rotate_refresh_token(ctx, refresh_token).await
    }

    #[tracing::instrument(name = "auth.logout", skip_all, fields(request_id = %ctx.request_id()))]
    async fn logout(&self, ctx: &CallerContext) -> WardResult<()> {
        let principal = require_full_principal(ctx, "end the session")?;
        self.end_session(ctx, principal).await
    }

    #[tracing::instrument(name = "auth.change_password", skip_all, fields(request_id = %ctx.request_id()))]
    async fn change_password(&self, ctx: &CallerContext, change: PasswordChange) -> WardResult<()> {
        let principal = require_full_principal(ctx, "change the password")?;
        accounts::validate_password_change(&change)?;
        let user = self.find_usable_account(principal.user_id).await?;
        // The same per-account count as logins: proving the current password here must not be
        // a way around the login throttle.
        let account = account_key(&user.email_normalized);
        let keys = [account.clone()];
        let attempt_id = match self.throttle.try_begin(&keys, Utc::now()).await? {
            Admission::Admitted { attempt_id } => attempt_id,
            Admission::Refused { retry_after_secs } => {
                tracing::info!(reason = "throttled", user_id = %user.id, retry_after_secs, "password change rejected");
                return Err(WardError::too_many_requests(
                    THROTTLED_PASSWORD_CHECK_MESSAGE,
                    retry_after_secs,
                ));
            }
        };
        let outcome = self.replace_password(ctx, user, change).await;
        self.settle_attempt(attempt_id, &account, &keys, &outcome)
            .await;
        outcome
    }

    #[tracing::instrument(name = "auth.me", skip_all, fields(request_id = %ctx.request_id()))]
    async fn me(&self, ctx: &CallerContext) -> WardResult<UserInfo> {
        let principal = require_principal(ctx)?;
        let user = self.find_usable_account(principal.user_id).await?;
        accounts::user_info_from_model(user)
    }

    #[tracing::instrument(name = "auth.create_user", skip_all, fields(request_id = %ctx.request_id()))]
    async fn create_user(&self, ctx: &CallerContext, user: NewUser) -> WardResult<UserInfo> {
        self.insert_user(ctx, user).await
    }

    #[tracing::instrument(name = "auth.list_users", skip_all, fields(request_id = %ctx.request_id()))]
    async fn list_users(&self, ctx: &CallerContext) -> WardResult<Vec<UserInfo>> {
        self.all_users(ctx).await
    }

    #[tracing::instrument(name = "auth.update_user", skip_all, fields(request_id = %ctx.request_id(), %user_id))]
    async fn update_user(
        &self,
        ctx: &CallerContext,
        user_id: Uuid,
        change: UserChange,
    ) -> WardResult<UserInfo> {
        self.change_user(ctx, user_id, change).await
    }

    async fn check_ready(&self) -> WardResult<()> {
        ping(&self.db, "auth").await
    }
}

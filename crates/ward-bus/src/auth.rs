//! The auth module's contract: accounts and sessions.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ward_core::{CallerContext, UserRole, WardResult};

pub type AuthClient = Arc<dyn AuthApi>;

/// A signed access token (biscuit) and when it stops working.
#[derive(Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// What a login or a refresh answers: an access token and the refresh token that renews it.
#[derive(Clone)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Opaque, single use; stored only as a hash. Using a spent one revokes the whole session.
    pub refresh_token: String,
}

// Tokens are bearer secrets: Debug never prints them, so a stray `{:?}` cannot leak one.
impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub id: Uuid,
    pub email: String,
    pub role: UserRole,
    /// A disabled account cannot log in or refresh, and its tokens stop working.
    pub disabled: bool,
}

/// An admin's change to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<UserRole>,
    pub disabled: Option<bool>,
}

/// A password change by the account holder, who proves the current password.
#[derive(Clone)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChange").finish_non_exhaustive()
    }
}

/// A staff account to create. The auth module checks the password policy (12 to 128
/// characters, not a common password).
#[derive(Clone)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: UserRole,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait AuthApi: Send + Sync + 'static {
    /// Exchanges credentials for a new session; any mismatch (or a disabled account) is
    /// `Unauthenticated` with one message, so a caller cannot tell an unknown email from a wrong
    /// password. Repeated failures per account or client address are `TooManyRequests`.
    async fn login(&self, ctx: &CallerContext, email: &str, password: &str) -> WardResult<Session>;

    /// Spends a refresh token for a new access token and a new refresh token (rotation). An
    /// unknown, expired or revoked token is `Unauthenticated`; a spent one also revokes its whole
    /// session (someone replayed it). The caller needs no access token.
    async fn refresh(&self, ctx: &CallerContext, refresh_token: &str) -> WardResult<Session>;

    /// Revokes the caller's session: its refresh tokens stop working at once, its access tokens
    /// as soon as the revocation reaches each verifying process (seconds).
    async fn logout(&self, ctx: &CallerContext) -> WardResult<()>;

    /// Changes the caller's own password after checking the current one (a mismatch is
    /// `Unauthenticated`); every session of the account is revoked, this one included.
    async fn change_password(&self, ctx: &CallerContext, change: PasswordChange) -> WardResult<()>;

    /// The account behind the caller's token; `Unauthenticated` if it no longer exists.
    async fn me(&self, ctx: &CallerContext) -> WardResult<UserInfo>;

    /// Creates an account; needs `users:admin` (or the system context). A taken email is
    /// `AlreadyExists`.
    async fn create_user(&self, ctx: &CallerContext, user: NewUser) -> WardResult<UserInfo>;

    /// Every account, ordered by email; needs `users:admin`.
    async fn list_users(&self, ctx: &CallerContext) -> WardResult<Vec<UserInfo>>;

    /// Changes an account's role or disabled flag; needs `users:admin`. Either change revokes the
    /// account's access tokens (they carry the old role); disabling also ends its sessions.
    /// Unknown id is `NotFound`; a change that would leave no enabled admin is `AlreadyExists`
    /// (409 Conflict).
    async fn update_user(
        &self,
        ctx: &CallerContext,
        user_id: Uuid,
        change: UserChange,
    ) -> WardResult<UserInfo>;

    /// Ok when the module can serve (its database answers).
    async fn check_ready(&self) -> WardResult<()>;
}

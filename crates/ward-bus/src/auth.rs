//! The auth module's contract: accounts and sessions.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ward_core::{CallerContext, UserRole, WardResult};

pub type AuthClient = Arc<dyn AuthApi>;

/// An issued access token.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub id: Uuid,
    pub email: String,
    pub role: UserRole,
}

/// A staff account to create. The password is checked for length by the auth module.
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
    /// Exchanges credentials for a token; any mismatch is `Unauthenticated` with one message,
    /// so a caller cannot tell an unknown email from a wrong password.
    async fn login(&self, ctx: &CallerContext, email: &str, password: &str) -> WardResult<Session>;

    /// The account behind the caller's token; `Unauthenticated` if it no longer exists.
    async fn me(&self, ctx: &CallerContext) -> WardResult<UserInfo>;

    /// Creates an account; needs `users:admin` (or the system context). A taken email is
    /// `AlreadyExists`.
    async fn create_user(&self, ctx: &CallerContext, user: NewUser) -> WardResult<UserInfo>;

    /// Ok when the module can serve (its database answers).
    async fn check_ready(&self) -> WardResult<()>;
}

//! The auth module's fake: accounts, refresh tokens and ended sessions in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;
use ward_bus::auth::{AuthApi, NewUser, PasswordChange, Session, UserChange, UserInfo};
use ward_core::{CallerContext, Principal, Right, UserRole, WardError, WardResult};

use super::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN, ANALYST_EMAIL, PASSWORD_MIN_CHARS, admin_id,
    analyst_id, session_expiry,
};

struct FakeAccount {
    user: UserInfo,
    password: String,
}

/// Accounts, refresh tokens and ended sessions in memory. Starts with the admin and an analyst.
pub struct FakeAuth {
    accounts: Mutex<BTreeMap<Uuid, FakeAccount>>,
    /// Live refresh tokens and the account each renews.
    refresh_tokens: Mutex<BTreeMap<String, Uuid>>,
    num_refresh_tokens_issued: Mutex<u32>,
    /// The sessions logout ended.
    ended_sessions: Mutex<Vec<Uuid>>,
}

impl Default for FakeAuth {
    fn default() -> Self {
        let mut accounts = BTreeMap::new();
        for (id, email, role) in [
            (admin_id(), ADMIN_EMAIL, UserRole::Admin),
            (analyst_id(), ANALYST_EMAIL, UserRole::Analyst),
        ] {
            let user = UserInfo {
                id,
                email: email.into(),
                role,
                disabled: false,
            };
            let password = ADMIN_PASSWORD.to_string();
            accounts.insert(id, FakeAccount { user, password });
        }
        Self {
            accounts: Mutex::new(accounts),
            refresh_tokens: Mutex::new(BTreeMap::new()),
            num_refresh_tokens_issued: Mutex::new(0),
            ended_sessions: Mutex::new(Vec::new()),
        }
    }
}

impl FakeAuth {
    pub fn ended_sessions(&self) -> Vec<Uuid> {
        self.ended_sessions.lock().unwrap().clone()
    }

    pub fn password_of(&self, user_id: Uuid) -> Option<String> {
        let accounts = self.accounts.lock().unwrap();
        accounts
            .get(&user_id)
            .map(|account| account.password.clone())
    }

    pub fn user(&self, user_id: Uuid) -> Option<UserInfo> {
        let accounts = self.accounts.lock().unwrap();
        accounts.get(&user_id).map(|account| account.user.clone())
    }

    /// A session for `user_id` with a fresh refresh token (`refresh-<n>`).
    fn new_session(&self, user_id: Uuid) -> Session {
        let mut num_issued = self.num_refresh_tokens_issued.lock().unwrap();
        *num_issued += 1;
        let refresh_token = format!("refresh-{num_issued}");
        self.refresh_tokens
            .lock()
            .unwrap()
            .insert(refresh_token.clone(), user_id);
        Session {
            token: ADMIN_TOKEN.into(),
            expires_at: session_expiry(),
            refresh_token,
        }
    }

    fn check_policy(password: &str, field: &str) -> WardResult<()> {
        if password.chars().count() < PASSWORD_MIN_CHARS {
            return Err(WardError::invalid_field(
                field,
                "Password must be at least 12 characters",
            ));
        }
        Ok(())
    }
}

/// The caller's principal, refusing narrowed tokens as the auth module does for session changes.
fn session_holder(ctx: &CallerContext) -> WardResult<&Principal> {
    let Some(principal) = ctx.principal() else {
        return Err(WardError::Unauthenticated("no caller".into()));
    };
    if principal.is_narrowed() {
        return Err(WardError::Forbidden(
            "a narrowed token cannot do this".into(),
        ));
    }
    Ok(principal)
}

#[async_trait]
impl AuthApi for FakeAuth {
    async fn login(
        &self,
        _ctx: &CallerContext,
        email: &str,
        password: &str,
    ) -> WardResult<Session> {
        let user_id_opt = {
            let accounts = self.accounts.lock().unwrap();
            accounts
                .values()
                .find(|account| {
                    account.user.email == email
                        && account.password == password
                        && !account.user.disabled
                })
                .map(|account| account.user.id)
        };
        match user_id_opt {
            Some(user_id) => Ok(self.new_session(user_id)),
            None => Err(WardError::Unauthenticated(
                "invalid email or password".into(),
            )),
        }
    }

    async fn refresh(&self, _ctx: &CallerContext, refresh_token: &str) -> WardResult<Session> {
        let user_id_opt = self.refresh_tokens.lock().unwrap().remove(refresh_token);
        match user_id_opt {
            Some(user_id) => Ok(self.new_session(user_id)),
            None => Err(WardError::Unauthenticated(
                "invalid or expired refresh token".into(),
            )),
        }
    }

    async fn logout(&self, ctx: &CallerContext) -> WardResult<()> {
        let principal = session_holder(ctx)?;
        self.ended_sessions
            .lock()
            .unwrap()
            .push(principal.session_id);
        Ok(())
    }

    async fn change_password(&self, ctx: &CallerContext, change: PasswordChange) -> WardResult<()> {
        let principal = session_holder(ctx)?;
        let mut accounts = self.accounts.lock().unwrap();
        let Some(account) = accounts.get_mut(&principal.user_id) else {
            return Err(WardError::Unauthenticated("no such account".into()));
        };
        if account.password != change.current_password {
            return Err(WardError::Unauthenticated(
                "the current password does not match".into(),
            ));
        }
        Self::check_policy(&change.new_password, "newPassword")?;
        account.password = change.new_password;
        Ok(())
    }

    async fn me(&self, ctx: &CallerContext) -> WardResult<UserInfo> {
        let Some(principal) = ctx.principal() else {
            return Err(WardError::Unauthenticated("no caller".into()));
        };
        Ok(UserInfo {
            id: principal.user_id,
            email: principal.email.clone(),
            role: principal.role,
            disabled: false,
        })
    }

    async fn create_user(&self, ctx: &CallerContext, user: NewUser) -> WardResult<UserInfo> {
        ctx.require(Right::UsersAdmin)?;
        let mut accounts = self.accounts.lock().unwrap();
        let is_taken = accounts
            .values()
            .any(|account| account.user.email.eq_ignore_ascii_case(&user.email));
        if is_taken {
            return Err(WardError::AlreadyExists(
                "a user with this email already exists".into(),
            ));
        }
        Self::check_policy(&user.password, "password")?;
        let info = UserInfo {
            id: Uuid::now_v7(),
            email: user.email,
            role: user.role,
            disabled: false,
        };
        let account = FakeAccount {
            user: info.clone(),
            password: user.password,
        };
        accounts.insert(info.id, account);
        Ok(info)
    }

    async fn list_users(&self, ctx: &CallerContext) -> WardResult<Vec<UserInfo>> {
        ctx.require(Right::UsersAdmin)?;
        let accounts = self.accounts.lock().unwrap();
        let mut users: Vec<UserInfo> = accounts
            .values()
            .map(|account| account.user.clone())
            .collect();
        users.sort_by(|left, right| left.email.cmp(&right.email));
        Ok(users)
    }

    async fn update_user(
        &self,
        ctx: &CallerContext,
        user_id: Uuid,
        change: UserChange,
    ) -> WardResult<UserInfo> {
        ctx.require(Right::UsersAdmin)?;
        let mut accounts = self.accounts.lock().unwrap();
        let Some(account) = accounts.get_mut(&user_id) else {
            return Err(WardError::NotFound("User not found".into()));
        };
        // The one admin of the fake may not be demoted or disabled.
        let loses_admin = user_id == admin_id()
            && (matches!(change.role, Some(role) if role != UserRole::Admin)
                || change.disabled == Some(true));
        if loses_admin {
            return Err(WardError::AlreadyExists(
                "the change would leave no enabled admin".into(),
            ));
        }
        if let Some(role) = change.role {
            account.user.role = role;
        }
        if let Some(disabled) = change.disabled {
            account.user.disabled = disabled;
        }
        Ok(account.user.clone())
    }

    async fn check_ready(&self) -> WardResult<()> {
        Ok(())
    }
}

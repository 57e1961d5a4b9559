//! `ward user create`: bootstrap accounts without a running server.

use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, UserInfo};
use ward_core::config::Config;
use ward_core::{CallerContext, Role, UserRole, WardResult};

use crate::modules::open_auth;

/// Creates a staff account directly in the auth database (migrating it first if needed).
pub async fn create_user(
    config: &Config,
    email: &str,
    role: UserRole,
    password: String,
) -> WardResult<UserInfo> {
    // The CLI acts as the system (there is no admin token yet), but a person chose or will hold
    // this password, so the staff policy applies, before anything is opened.
    ward_auth::check_staff_password("password", &password)?;
    let auth = open_auth(config, &[Role::Auth], true).await?;
    auth.create_user(
        &CallerContext::system("cli"),
        NewUser {
            email: email.to_string(),
            password,
            role,
        },
    )
    .await
}

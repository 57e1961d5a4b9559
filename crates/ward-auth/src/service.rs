//! [`AuthService`]: the in-process implementation of [`AuthApi`] over the `users` table.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use chrono::Utc;
use email_address::{EmailAddress, Options as EmailOptions};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use sea_orm_migration::MigratorTrait;
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, Session, UserInfo};
use ward_bus::db::{db_error, is_unique_violation, ping};
use ward_bus::token::TokenIssuer;
use ward_core::{CallerContext, FieldError, Right, UserRole, WardError, WardResult};

use crate::entity::users;
use crate::migration::Migrator;

use crate::throttle::{LoginThrottle, account_key, addr_key};

/// The one answer to any failed login, so a caller cannot tell which part was wrong.
const INVALID_CREDENTIALS_MESSAGE: &str = "invalid email or password";

/// The one answer to a throttled login, whether or not the account exists.
const THROTTLED_MESSAGE: &str = "too many failed logins; try again later";

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 128;

/// Longer login passwords are refused without hashing. Generous on purpose: it only bounds the
/// work a hostile request can cause, and must stay above any password length ever accepted.
const MAX_LOGIN_PASSWORD_BYTES: usize = 4 * 1024;

/// RFC 5321 caps a forward path at 256 octets, so an address at 254.
const MAX_EMAIL_BYTES: usize = 254;

/// Accounts, passwords and access tokens, stored in the auth database.
pub struct AuthService {
    db: DatabaseConnection,
    issuer: TokenIssuer,
    access_token_ttl_secs: u64,
    /// Verified against when the email is unknown, so both failures take the same time.
    dummy_password_hash: Arc<str>,
    /// Failed logins per account and per client address, in this process only (see
    /// [`LoginThrottle`]: several auth tasks each keep their own counts).
    throttle: LoginThrottle,
}

impl AuthService {
    /// Builds the service over an open database; does not migrate (see [`AuthService::migrate`]).
    pub async fn open(
        db: DatabaseConnection,
        issuer: TokenIssuer,
        access_token_ttl_secs: u64,
    ) -> WardResult<Self> {
        if access_token_ttl_secs == 0 {
            return Err(WardError::invalid_field(
                "auth.access_token_ttl_secs",
                "access token lifetime must be at least one second",
            ));
        }
        // Hashed with this build's parameters, so verifying it costs what a real check costs.
        let dummy_password_hash =
            hash_password_blocking("ward dummy password for unknown emails".to_string()).await?;
        Ok(Self {
            db,
            issuer,
            access_token_ttl_secs,
            dummy_password_hash: dummy_password_hash.into(),
            throttle: LoginThrottle::default(),
        })
    }

    /// Applies pending migrations of the auth database.
    pub async fn migrate(db: &DatabaseConnection) -> WardResult<()> {
        Migrator::up(db, None)
            .await
            .map_err(|error| db_error("cannot migrate the auth database", error))
    }

    /// Checks the credentials and issues a session; every failure is the same `Unauthenticated`.
    async fn check_credentials(
        &self,
        email_normalized: &str,
        password: &str,
    ) -> WardResult<Session> {
        if password.len() > MAX_LOGIN_PASSWORD_BYTES {
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
        let user_info = user_info_from_model(user)?;
        let session = self
            .issuer
            .issue(&user_info, self.access_token_ttl_secs, Utc::now())?;
        tracing::info!(user_id = %user_info.id, role = %user_info.role, "login succeeded");
        Ok(session)
    }

    async fn find_by_normalized_email(
        &self,
        email_normalized: &str,
    ) -> WardResult<Option<users::Model>> {
        users::Entity::find()
            .filter(users::Column::EmailNormalized.eq(email_normalized))
            .one(&self.db)
            .await
            .map_err(|error| db_error("cannot look up the account", error))
    }
}

#[async_trait]
impl AuthApi for AuthService {
    #[tracing::instrument(name = "auth.login", skip_all, fields(request_id = %ctx.request_id()))]
    async fn login(&self, ctx: &CallerContext, email: &str, password: &str) -> WardResult<Session> {
        let email_normalized = normalize_email(email);
        let account = account_key(&email_normalized);
        let addr_opt = ctx.client_addr().map(addr_key);
        let keys: Vec<String> = std::iter::once(account.clone())
            .chain(addr_opt.clone())
            .collect();
        // Checked before any password work, and the same for unknown emails, so a throttled
        // answer tells nothing about the account and costs the attacker no hashing on our side.
        let started_at = Instant::now();
        if let Err(retry_after_secs) = self.throttle.try_begin(&keys, started_at) {
            tracing::info!(reason = "throttled", retry_after_secs, "login rejected");
            return Err(WardError::too_many_requests(
                THROTTLED_MESSAGE,
                retry_after_secs,
            ));
        }
        // `try_begin` counted this attempt as a failure; only an Unauthenticated outcome keeps it.
        let outcome = self.check_credentials(&email_normalized, password).await;
        match &outcome {
            Ok(_) => {
                self.throttle.clear(&account);
                if let Some(addr) = &addr_opt {
                    self.throttle.forgive(addr, started_at);
                }
            }
            Err(WardError::Unauthenticated(_)) => {}
            // Not the client's fault (database down, corrupt hash): no failure is held against it.
            Err(_) => {
                for key in &keys {
                    self.throttle.forgive(key, started_at);
                }
            }
        }
        outcome
    }

    #[tracing::instrument(name = "auth.me", skip_all, fields(request_id = %ctx.request_id()))]
    async fn me(&self, ctx: &CallerContext) -> WardResult<UserInfo> {
        let Some(principal) = ctx.principal() else {
            return Err(WardError::Unauthenticated(
                "a valid bearer token is required".into(),
            ));
        };
        let user_opt = users::Entity::find_by_id(principal.user_id)
            .one(&self.db)
            .await
            .map_err(|error| db_error("cannot look up the account", error))?;
        let Some(user) = user_opt else {
            return Err(WardError::Unauthenticated(
                "the account behind this token no longer exists".into(),
            ));
        };
        user_info_from_model(user)
    }

    #[tracing::instrument(name = "auth.create_user", skip_all, fields(request_id = %ctx.request_id()))]
    async fn create_user(&self, ctx: &CallerContext, user: NewUser) -> WardResult<UserInfo> {
        ctx.require(Right::UsersAdmin)?;
        validate_new_user(&user)?;
        let email = user.email.trim().to_string();
        let email_normalized = normalize_email(&email);
        let password_hash = hash_password_blocking(user.password).await?;

        let new_row = users::ActiveModel {
            id: ActiveValue::Set(ward_core::id::new_id()),
            email: ActiveValue::Set(email),
            email_normalized: ActiveValue::Set(email_normalized),
            password_hash: ActiveValue::Set(password_hash),
            role: ActiveValue::Set(user.role.as_str().to_string()),
            created_at: ActiveValue::Set(Utc::now()),
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

    async fn check_ready(&self) -> WardResult<()> {
        ping(&self.db, "auth").await
    }
}

fn invalid_credentials() -> WardError {
    WardError::Unauthenticated(INVALID_CREDENTIALS_MESSAGE.into())
}

/// The form uniqueness and logins use: `Ada@Example.com ` and `ada@example.com` are one account.
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Reports every failing field at once.
fn validate_new_user(user: &NewUser) -> WardResult<()> {
    let mut errors = Vec::new();
    if !is_valid_email(user.email.trim()) {
        errors.push(FieldError {
            field: "email".into(),
            message: "email must be a valid address".into(),
        });
    }
    let num_password_chars = user.password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&num_password_chars) {
        errors.push(FieldError {
            field: "password".into(),
            message: format!(
                "password must be between {MIN_PASSWORD_CHARS} and {MAX_PASSWORD_CHARS} characters"
            ),
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

/// A plain `local@domain.tld` address: no display name, no IP literal, a dotted domain.
fn is_valid_email(email: &str) -> bool {
    let options = EmailOptions::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    let is_too_long = email.len() > MAX_EMAIL_BYTES;
    !is_too_long && EmailAddress::parse_with_options(email, options).is_ok()
}

fn user_info_from_model(user: users::Model) -> WardResult<UserInfo> {
    let role = UserRole::from_str(&user.role)
        .map_err(|error| WardError::internal("a stored account has an unknown role", error))?;
    Ok(UserInfo {
        id: user.id,
        email: user.email,
        role,
    })
}

/// Hashes with argon2id and default parameters off the async threads (it takes tens of ms).
async fn hash_password_blocking(password: String) -> WardResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| WardError::internal("cannot hash the password", error))
    })
    .await
    .map_err(|error| WardError::internal("password hashing task failed", error))?
}

/// Checks `password` against a stored PHC string off the async threads. A stored hash that does
/// not parse is a data bug, reported as `Internal` rather than as a wrong password.
async fn verify_password_blocking(password: String, password_hash: String) -> WardResult<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed_hash = PasswordHash::new(&password_hash)
            .map_err(|error| WardError::internal("a stored password hash is invalid", error))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed_hash)
            .is_ok())
    })
    .await
    .map_err(|error| WardError::internal("password check task failed", error))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(email: &str, password: &str) -> NewUser {
        NewUser {
            email: email.into(),
            password: password.into(),
            role: UserRole::Clinician,
        }
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
    fn password_length_is_checked_in_characters() {
        assert!(validate_new_user(&new_user("a@example.com", "12345678")).is_ok());
        assert!(validate_new_user(&new_user("a@example.com", &"é".repeat(128))).is_ok());
        let too_short = validate_new_user(&new_user("a@example.com", "1234567")).unwrap_err();
        assert_eq!(too_short.field_errors()[0].field, "password");
        let too_long = validate_new_user(&new_user("a@example.com", &"x".repeat(129)));
        assert!(too_long.is_err());
    }

    #[test]
    fn every_failing_field_is_reported() {
        let error = validate_new_user(&new_user("nope", "short")).unwrap_err();
        let fields: Vec<&str> = error
            .field_errors()
            .iter()
            .map(|field_error| field_error.field.as_str())
            .collect();
        assert_eq!(fields, vec!["email", "password"]);
    }

    #[tokio::test]
    async fn password_hash_verifies_only_the_same_password() {
        let hash = hash_password_blocking("correct horse".into())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password_blocking("correct horse".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify_password_blocking("wrong horse".into(), hash)
                .await
                .unwrap()
        );
        let corrupt = verify_password_blocking("x".into(), "not a hash".into()).await;
        assert!(matches!(corrupt, Err(WardError::Internal(_))));
    }
}

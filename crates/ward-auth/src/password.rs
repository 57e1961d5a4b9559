//! Passwords: the policy new ones must meet, and argon2id hashing off the async threads.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ward_core::{WardError, WardResult};

/// Django's list of the 20,000 most common passwords (see the file's header for its source and
/// license), with a leading block of `#` comment lines.
const COMMON_PASSWORDS_FILE: &str = include_str!("common-passwords.txt");

/// Lowercased and trimmed; built on first use (see [`load_common_passwords`]).
static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut passwords = HashSet::new();
    // Only the header is a comment: a few listed passwords start with `#` themselves.
    let entries = COMMON_PASSWORDS_FILE
        .lines()
        .skip_while(|line| line.starts_with('#'));
    for entry in entries {
        let normalized = entry.trim().to_lowercase();
        if !normalized.is_empty() {
            passwords.insert(normalized);
        }
    }
    passwords
});

const MIN_PASSWORD_CHARS: usize = 12;
/// For Ward's own accounts only (see [`PasswordRules::System`]).
const MIN_SYSTEM_PASSWORD_CHARS: usize = 1;
pub(crate) const MAX_PASSWORD_CHARS: usize = 128;

/// Which policy a new password must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordRules {
    /// A person chose it: 12 to 128 characters and not a common password.
    Staff,
    /// Ward itself creates the account (`--demo`, `ward user create`): only 1 to 128 characters.
    /// The policy binds people; the demo seed reproduces the reference platform's demo account
    /// (`password123`). The CLI generates a strong password, and checks a piped-in one with
    /// [`check_staff_password`] first.
    System,
}

/// Checks a password a person chose against the staff policy (12 to 128 characters, not a
/// common password); a failure is `InvalidArgument` on `field`. For callers that act as the
/// system on a person's behalf, such as `ward user create --password-stdin`.
pub fn check_staff_password(field: &str, password: &str) -> ward_core::WardResult<()> {
    match password_problem(password, PasswordRules::Staff) {
        None => Ok(()),
        Some(message) => Err(ward_core::WardError::invalid_field(field, message)),
    }
}

/// Builds the common-password set now, so no request pays for it (a few milliseconds).
pub(crate) fn load_common_passwords() {
    LazyLock::force(&COMMON_PASSWORDS);
}

/// Returns why `password` is not acceptable under `rules`, or `None`. The field name is the
/// caller's (`password`, `newPassword`).
pub(crate) fn password_problem(password: &str, rules: PasswordRules) -> Option<String> {
    let min_chars = match rules {
        PasswordRules::Staff => MIN_PASSWORD_CHARS,
        PasswordRules::System => MIN_SYSTEM_PASSWORD_CHARS,
    };
    let num_chars = password.chars().count();
    if !(min_chars..=MAX_PASSWORD_CHARS).contains(&num_chars) {
        return Some(format!(
            "password must be between {min_chars} and {MAX_PASSWORD_CHARS} characters"
        ));
    }
    if rules == PasswordRules::Staff && is_common_password(password) {
        return Some("password is too common; choose a longer passphrase".into());
    }
    None
}

/// Compared as Django does: trimmed and lowercased.
fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS.contains(&password.trim().to_lowercase())
}

/// Hashes with argon2id (version 0x13) and `params` off the async threads: it takes tens of
/// milliseconds by design.
pub(crate) async fn hash_password_blocking(password: String, params: Params) -> WardResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| WardError::internal("cannot hash the password", error))
    })
    .await
    .map_err(|error| WardError::internal("password hashing task failed", error))?
}

/// Checks `password` against a stored PHC string off the async threads. The algorithm, version
/// and cost come from the stored string, so hashes made with other settings still verify. A
/// stored hash that does not parse is a data bug, reported as `Internal`, not as a mismatch.
pub(crate) async fn verify_password_blocking(
    password: String,
    password_hash: String,
) -> WardResult<bool> {
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

    fn cheap_params() -> Params {
        Params::new(1024, 1, 1, None).unwrap()
    }

    #[test]
    fn the_list_holds_django_s_twenty_thousand_entries() {
        // Duplicates in the source file collapse (19,729 distinct entries).
        assert!((19_700..=20_000).contains(&COMMON_PASSWORDS.len()));
        assert!(COMMON_PASSWORDS.contains("123456"));
        assert!(COMMON_PASSWORDS.contains("#1pimp"));
        assert!(!COMMON_PASSWORDS.iter().any(|entry| entry.starts_with("# ")));
    }

    #[test]
    fn staff_passwords_need_twelve_to_128_characters() {
        let staff = PasswordRules::Staff;
        assert_eq!(password_problem("quiet lantern", staff), None);
        assert_eq!(password_problem(&"é".repeat(128), staff), None);
        assert_eq!(
            password_problem("eleven char", staff).as_deref(),
            Some("password must be between 12 and 128 characters")
        );
        // Counted in characters: 12 two-byte characters are enough.
        assert_eq!(password_problem(&"é".repeat(12), staff), None);
        assert!(password_problem(&"x".repeat(129), staff).is_some());
    }

    #[test]
    fn common_passwords_are_refused_ignoring_case_and_spaces() {
        let too_common = Some("password is too common; choose a longer passphrase".to_string());
        for common in ["password1234", "PassWord1234", " qwerty123456 "] {
            assert_eq!(
                password_problem(common, PasswordRules::Staff),
                too_common,
                "{common}"
            );
        }
    }

    #[test]
    fn ward_s_own_accounts_skip_the_minimum_and_the_list() {
        let system = PasswordRules::System;
        assert_eq!(password_problem("password123", system), None);
        assert_eq!(password_problem("x", system), None);
        assert!(password_problem("", system).is_some());
        assert!(password_problem(&"x".repeat(129), system).is_some());
    }

    #[tokio::test]
    async fn hashes_use_the_given_cost_and_verify_only_the_same_password() {
        let params = Params::new(2048, 3, 2, None).unwrap();
        let hash = hash_password_blocking("correct horse".into(), params)
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=2048,t=3,p=2$"), "{hash}");
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
    }

    #[tokio::test]
    async fn hashes_made_with_other_costs_still_verify() {
        let old_hash = hash_password_blocking("correct horse".into(), Params::default())
            .await
            .unwrap();
        let new_hash = hash_password_blocking("correct horse".into(), cheap_params())
            .await
            .unwrap();
        for hash in [old_hash, new_hash] {
            assert!(
                verify_password_blocking("correct horse".into(), hash)
                    .await
                    .unwrap()
            );
        }
        let corrupt = verify_password_blocking("x".into(), "not a hash".into()).await;
        assert!(matches!(corrupt, Err(WardError::Internal(_))));
    }
}

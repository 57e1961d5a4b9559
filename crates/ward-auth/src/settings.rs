//! [`AuthSettings`]: what the auth service takes from `auth.*` in the configuration.

use ward_core::config::{Argon2Options, AuthOptions};
use ward_core::{WardError, WardResult};

/// Token lifetimes and the password hashing cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSettings {
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token; each refresh issues a new one with a fresh lifetime.
    pub refresh_token_ttl_secs: u64,
    /// argon2id cost of new password hashes; existing hashes keep the cost they were made with.
    pub argon2: Argon2Options,
}

/// Ten years: longer lifetimes are surely a typo, and bounding them keeps date arithmetic safe.
const MAX_TTL_SECS: u64 = 10 * 366 * 24 * 3600;

impl AuthSettings {
    /// Cheap hashing (1 MiB, one pass) and short lifetimes, so tests run fast. Never for a
    /// deployment: configuration goes through [`AuthSettings::from_config`].
    #[doc(hidden)]
    pub fn for_tests() -> Self {
        Self {
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 3600,
            argon2: Argon2Options {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
        }
    }

    /// Returns the settings named in `auth` (`access_token_ttl_secs`, `refresh_token_ttl_secs`,
    /// `argon2`).
    pub fn from_config(auth: &AuthOptions) -> Self {
        Self {
            access_token_ttl_secs: auth.access_token_ttl_secs,
            refresh_token_ttl_secs: auth.refresh_token_ttl_secs,
            argon2: auth.argon2,
        }
    }

    /// Checks the lifetimes and returns the argon2 parameters, or an `InvalidArgument` naming the
    /// configuration key.
    pub(crate) fn validate(&self) -> WardResult<argon2::Params> {
        let ttls = [
            ("auth.access_token_ttl_secs", self.access_token_ttl_secs),
            ("auth.refresh_token_ttl_secs", self.refresh_token_ttl_secs),
        ];
        for (key, ttl_secs) in ttls {
            if !(1..=MAX_TTL_SECS).contains(&ttl_secs) {
                return Err(WardError::invalid_field(
                    key,
                    format!("a token lifetime must be between 1 and {MAX_TTL_SECS} seconds"),
                ));
            }
        }
        let Argon2Options {
            memory_kib,
            iterations,
            parallelism,
        } = self.argon2;
        argon2::Params::new(memory_kib, iterations, parallelism, None).map_err(|error| {
            WardError::invalid_field(
                "auth.argon2",
                format!("invalid argon2id parameters: {error}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings::for_tests()
    }

    #[test]
    fn defaults_from_the_config_are_valid() {
        let config = ward_core::config::Config::default();
        let settings = AuthSettings::from_config(&config.auth);
        assert_eq!(settings.argon2, Argon2Options::default());
        let params = settings.validate().unwrap();
        assert_eq!(params.m_cost(), 19 * 1024);
        assert_eq!(params.t_cost(), 2);
        assert_eq!(params.p_cost(), 1);
    }

    #[test]
    fn bad_values_name_their_key() {
        let zero_access = AuthSettings {
            access_token_ttl_secs: 0,
            ..settings()
        };
        let zero_refresh = AuthSettings {
            refresh_token_ttl_secs: 0,
            ..settings()
        };
        let too_little_memory = AuthSettings {
            argon2: Argon2Options {
                memory_kib: 1,
                iterations: 1,
                parallelism: 1,
            },
            ..settings()
        };
        let cases = [
            (zero_access, "auth.access_token_ttl_secs"),
            (zero_refresh, "auth.refresh_token_ttl_secs"),
            (too_little_memory, "auth.argon2"),
        ];
        for (bad, key) in cases {
            let error = bad.validate().unwrap_err();
            assert_eq!(error.field_errors()[0].field, key);
        }
    }
}

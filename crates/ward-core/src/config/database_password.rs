//! `database.<module>_password`: the password ECS injects from a module's RDS-managed secret, put
//! into that module's PostgreSQL URL (which names the user and no password).

use figment::Figment;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::secrets::{REDACTED, SecretText};
use super::{Config, ConfigError, DatabaseOptions, SecretUrl};
use crate::role::Role;

/// Userinfo characters left as they are: RFC 3986 unreserved; everything else is percent-encoded.
const USERINFO_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl DatabaseOptions {
    /// The password set for `role`'s database, if any (`database.<role>_password`).
    pub fn password_for(&self, role: Role) -> Option<&SecretText> {
        match role {
            Role::Auth => self.auth_password.as_ref(),
            Role::Patients => self.patients_password.as_ref(),
            Role::Billing => self.billing_password.as_ref(),
            Role::Analytics => self.analytics_password.as_ref(),
            Role::Gateway => None,
        }
    }
}

/// Puts each `database.<module>_password` into its module's URL; refuses a password for a SQLite
/// URL, a URL without a user, and a URL that already carries a password.
pub(super) fn apply_database_passwords(
    config: &mut Config,
    figment: &Figment,
) -> Result<(), ConfigError> {
    for role in Role::ALL {
        let Some(password) = config.database.password_for(role).cloned() else {
            continue;
        };
        let key = format!("database.{role}_password");
        let Some(url) = config.database.url_for(role) else {
            continue;
        };
        let with_password =
            url_with_password(url.expose(), password.expose()).map_err(|reason| ConfigError {
                value: REDACTED.into(),
                source_name: super::source_of(figment, &key),
                reason: format!("database.{role} = {}: {reason}", url.redacted()),
                key: key.clone(),
            })?;
        let slot = match role {
            Role::Auth => &mut config.database.auth,
            Role::Patients => &mut config.database.patients,
            Role::Billing => &mut config.database.billing,
            Role::Analytics => &mut config.database.analytics,
            Role::Gateway => continue,
        };
        *slot = SecretUrl::new(with_password);
    }
    Ok(())
}

/// `url` with `password` (percent-encoded) after its user: `postgres://ward@db/x` becomes
/// `postgres://ward:<password>@db/x`.
fn url_with_password(url: &str, password: &str) -> Result<String, String> {
    let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_postgres {
        return Err("a database password needs a postgres:// URL".into());
    }
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("a database password needs a postgres:// URL".into());
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return Err("the URL names no user; write postgres://USER@HOST/DATABASE".into());
    };
    if userinfo.contains(':') {
        return Err("the URL carries a password already; set one or the other".into());
    }
    let query = tail.split_once('?').map(|(_, query)| query).unwrap_or("");
    let has_password_parameter = query
        .split('&')
        .any(|pair| pair.to_ascii_lowercase().starts_with("password="));
    if has_password_parameter {
        return Err("the URL carries a password parameter already; set one or the other".into());
    }
    if userinfo.is_empty() {
        return Err("the URL names no user; write postgres://USER@HOST/DATABASE".into());
    }
    let encoded = utf8_percent_encode(password, USERINFO_ESCAPES);
    Ok(format!("{scheme}://{userinfo}:{encoded}@{host}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_goes_after_the_user_percent_encoded() {
        assert_eq!(
            url_with_password("postgres://ward@db:5432/patients", "s3cret").unwrap(),
            "postgres://ward:s3cret@db:5432/patients"
        );
        assert_eq!(
            url_with_password(
                "postgresql://ward@db/patients?sslmode=require",
                "p@ss:w/rd?#% é"
            )
            .unwrap(),
            "postgresql://ward:p%40ss%3Aw%2Frd%3F%23%25%20%C3%A9@db/patients?sslmode=require"
        );
        assert_eq!(
            url_with_password("postgres://ward@db", "a-b_c.d~e").unwrap(),
            "postgres://ward:a-b_c.d~e@db"
        );
    }

    #[test]
    fn a_password_is_refused_where_it_cannot_go() {
        for (url, expected) in [
            ("sqlite://data/patients.db?mode=rwc", "postgres://"),
            ("postgres://ward:old@db/patients", "already"),
            ("postgres://ward@db/patients?password=old", "already"),
            ("postgres://db/patients", "no user"),
            ("postgres://@db/patients", "no user"),
        ] {
            let reason = url_with_password(url, "new").unwrap_err();
            assert!(reason.contains(expected), "{url}: {reason}");
        }
        assert!(
            url_with_password("postgres://ward@db/x", "")
                .unwrap_err()
                .contains("empty")
        );
    }
}

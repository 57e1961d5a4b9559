//! Secrets injected as `WARD_*` environment variables (ECS task secrets): they keep their exact
//! text, land where they belong, never print, and a bad one is named by its variable.
//!
//! Each test runs in a `figment::Jail` (its own environment and working folder, one test at a
//! time), in this test binary of its own so no other test sees the variables.

// `Jail`'s closures must return `figment::Error`, which is large; this is figment's signature.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use figment::Jail;
use ward_core::Role;
use ward_core::config::{Config, ConfigError, ConfigSources, SaslMechanism};

const PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIBOW0QeA8ESdvK2J0eOxI3yA7s0ElY9c9g3eT0gLCHdW\n\
-----END PRIVATE KEY-----\n";

fn production_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/production.toml")
}

fn load_production() -> Result<Config, ConfigError> {
    Config::load(&ConfigSources {
        explicit_file: Some(production_file()),
        overrides: Vec::new(),
    })
}

fn load_defaults() -> Result<Config, ConfigError> {
    Config::load(&ConfigSources::default())
}

/// The environment an ECS task of the production profile gets from Secrets Manager.
fn set_production_secrets(jail: &mut Jail) {
    jail.set_env("WARD_EVENTS__SASL_PASSWORD", "[not, a, list]");
}

#[test]
fn secrets_from_the_environment_keep_their_exact_text() {
    Jail::expect_with(|jail| {
        // Arrange: values figment would otherwise read as a number, a bool and a list.
        set_production_secrets(jail);
        jail.set_env("WARD_AUTH__PRIVATE_KEY", PRIVATE_KEY_PEM);
        jail.set_env("WARD_AUTH__PUBLIC_KEY", "ed25519/00ff");
        jail.set_env("WARD_DATABASE__PATIENTS_PASSWORD", "012345");
        jail.set_env("WARD_DATABASE__BILLING_PASSWORD", "true");
        jail.set_env("WARD_DATABASE__ANALYTICS_PASSWORD", "p@ss:w/rd 1.50");
        jail.set_env("WARD_EVENTS__SASL_USERNAME", "12345");

        // Act
        let config = load_production().unwrap();

        // Assert
        let private_key = config.auth.private_key.as_ref().unwrap();
        assert_eq!(private_key.expose(), PRIVATE_KEY_PEM);
        assert_eq!(
            config.auth.public_key.as_ref().unwrap().expose(),
            "ed25519/00ff"
        );
        assert_eq!(
            config.database.patients.expose(),
            "postgres://ward:012345@patients-db.internal:5432/ward_patients"
        );
        assert_eq!(
            config.database.billing.expose(),
            "postgres://ward:true@billing-db.internal:5432/ward_billing"
        );
        assert_eq!(
            config.database.analytics.expose(),
            "postgres://ward:p%40ss%3Aw%2Frd%201.50@analytics-db.internal:5432/ward_analytics"
        );
        // No password given for auth: its URL is left as written.
        assert_eq!(
            config.database.auth.expose(),
            "postgres://ward@auth-db.internal:5432/ward_auth"
        );
        assert!(config.database.password_for(Role::Auth).is_none());
        assert_eq!(config.events.sasl_mechanism, SaslMechanism::ScramSha512);
        assert!(config.events.tls);
        assert_eq!(config.events.sasl_username.as_deref(), Some("12345"));
        assert_eq!(
            config.events.sasl_password.as_ref().unwrap().expose(),
            "[not, a, list]"
        );
        Ok(())
    });
}

#[test]
fn ward_config_prints_no_secret() {
    Jail::expect_with(|jail| {
        set_production_secrets(jail);
        jail.set_env("WARD_AUTH__PRIVATE_KEY", PRIVATE_KEY_PEM);
        jail.set_env("WARD_DATABASE__PATIENTS_PASSWORD", "hunter2hunter2");

        let config = load_production().unwrap();
        let printed = toml::to_string_pretty(&config.redacted()).unwrap();

        for secret in ["hunter2hunter2", "MC4CAQAw", "not, a, list"] {
            assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
        }
        let reparsed: toml::Value = toml::from_str(&printed).unwrap();
        assert_eq!(reparsed["auth"]["private_key"].as_str(), Some("***"));
        assert_eq!(reparsed["events"]["sasl_password"].as_str(), Some("***"));
        assert_eq!(
            reparsed["database"]["patients"].as_str(),
            Some("postgres://ward:***@patients-db.internal:5432/ward_patients")
        );
        assert_eq!(
            reparsed["database"]["patients_password"].as_str(),
            Some("***")
        );
        // Unset secrets are left out (TOML has no null).
        assert!(reparsed["auth"].get("public_key").is_none());
        assert!(!format!("{config:?}").contains("hunter2hunter2"));
        Ok(())
    });
}

#[test]
fn a_password_for_a_sqlite_database_is_refused_and_named_by_its_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("WARD_DATABASE__AUTH_PASSWORD", "s3cret-value");

        let error = load_defaults().unwrap_err();

        assert_eq!(error.key, "database.auth_password");
        assert!(
            error.source_name.contains("WARD_DATABASE__AUTH_PASSWORD"),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("postgres://"), "{message}");
        assert!(!message.contains("s3cret-value"), "{message}");
        Ok(())
    });
}

#[test]
fn a_password_for_a_url_that_has_one_is_refused() {
    Jail::expect_with(|jail| {
        set_production_secrets(jail);
        jail.set_env(
            "WARD_DATABASE__BILLING",
            "postgres://ward:old@billing-db.internal/ward_billing",
        );
        jail.set_env("WARD_DATABASE__BILLING_PASSWORD", "new");

        let error = load_production().unwrap_err();

        assert_eq!(error.key, "database.billing_password");
        assert!(error.reason.contains("already"), "{error}");
        assert!(!error.to_string().contains("old"), "{error}");
        Ok(())
    });
}

#[test]
fn scram_without_a_password_is_refused() {
    Jail::expect_with(|_jail| {
        // production.toml names the mechanism and the user; the password is not injected.
        let error = load_production().unwrap_err();

        assert_eq!(error.key, "events.sasl_password");
        assert!(
            error.reason.contains("WARD_EVENTS__SASL_PASSWORD"),
            "{error}"
        );
        Ok(())
    });
}

#[test]
fn scram_without_tls_is_refused_in_production_only() {
    Jail::expect_with(|jail| {
        set_production_secrets(jail);
        jail.set_env("WARD_EVENTS__TLS", "false");
        let error = load_production().unwrap_err();
        assert_eq!(error.key, "events.tls");
        assert!(error.source_name.contains("WARD_"), "{error}");

        jail.set_env("WARD_PROFILE", "embedded");
        let config = load_production().unwrap();
        assert!(!config.events.tls);
        Ok(())
    });
}

#[test]
fn credentials_without_a_mechanism_are_refused() {
    Jail::expect_with(|jail| {
        jail.set_env("WARD_EVENTS__SASL_USERNAME", "ward");
        jail.set_env("WARD_EVENTS__SASL_PASSWORD", "pw");

        let error = load_defaults().unwrap_err();

        assert_eq!(error.key, "events.sasl_mechanism");
        Ok(())
    });
}

#[test]
fn an_empty_key_is_refused() {
    Jail::expect_with(|jail| {
        jail.set_env("WARD_AUTH__PUBLIC_KEY", "");

        let error = load_defaults().unwrap_err();

        assert_eq!(error.key, "auth.public_key");
        Ok(())
    });
}

#[test]
fn other_variables_are_still_parsed_as_values() {
    Jail::expect_with(|jail| {
        jail.set_env("WARD_EVENTS__PARTITIONS", "3");
        jail.set_env("WARD_EVENTS__TLS", "true");
        jail.set_env("WARD_EVENTS__SASL_MECHANISM", "scram-sha-256");
        jail.set_env("WARD_EVENTS__SASL_USERNAME", "ward");
        jail.set_env("WARD_EVENTS__SASL_PASSWORD", "pw");

        let config = load_defaults().unwrap();

        assert_eq!(config.events.partitions, 3);
        assert!(config.events.tls);
        assert_eq!(config.events.sasl_mechanism, SaslMechanism::ScramSha256);
        Ok(())
    });
}

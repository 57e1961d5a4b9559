//! Secrets injected as environment variables (ECS task secrets from AWS Secrets Manager): the token
//! keys as text, one password per module database (see `database_password`), and the Kafka SASL
//! credentials.
//!
//! figment parses every environment value (`12345` becomes a number, `true` a bool, `[a]` a list),
//! which would mangle a password; the variables named in [`RAW_TEXT_KEYS`] are therefore read as
//! raw text by a provider of their own, and the general `WARD_*` provider skips them.

use std::fmt;

use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Config, ConfigError, EventsOptions, Profile as WardProfile};

/// Keys whose environment values are taken as text, never parsed.
pub(super) const RAW_TEXT_KEYS: [&str; 8] = [
    "auth.private_key",
    "auth.public_key",
    "database.auth_password",
    "database.patients_password",
    "database.billing_password",
    "database.analytics_password",
    // Not secret, but a user name such as `12345` must stay text too.
    "events.sasl_username",
    "events.sasl_password",
];

/// Keys whose values are never printed (`ward config`, error messages).
pub(super) const SECRET_KEYS: [&str; 7] = [
    "auth.private_key",
    "auth.public_key",
    "database.auth_password",
    "database.patients_password",
    "database.billing_password",
    "database.analytics_password",
    "events.sasl_password",
];

/// What a secret prints as.
pub(super) const REDACTED: &str = "***";

/// A secret string (a password, a private key): never printed by `Debug`, redacted by
/// `ward config`. Any scalar deserializes to its text, so `password = 12345` in a file works too.
#[derive(Clone)]
pub struct SecretText(SecretString);

impl SecretText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretText({REDACTED})")
    }
}

// Serializing exposes the value: figment needs it to layer compiled defaults. Printing for people
// goes through `Config::redacted`, which redacts first.
impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ScalarText)
            .map(SecretText::new)
    }
}

/// Any scalar as its text.
struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_string())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<String, E> {
        Ok(text)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_char<E: de::Error>(self, value: char) -> Result<String, E> {
        Ok(value.to_string())
    }
}

/// Deserializes any scalar into an optional plain string (`events.sasl_username`).
pub(super) fn optional_scalar_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Option::<SecretText>::deserialize(deserializer)
        .map(|text_opt| text_opt.map(|text| text.expose().to_string()))
}

/// How the Kafka client authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// No SASL (a broker on a private network, a laptop).
    #[default]
    #[serde(rename = "none", alias = "NONE")]
    None,
    /// SCRAM-SHA-512: what Amazon MSK offers (port 9096, with TLS).
    #[serde(rename = "scram-sha-512", alias = "SCRAM-SHA-512")]
    ScramSha512,
    #[serde(rename = "scram-sha-256", alias = "SCRAM-SHA-256")]
    ScramSha256,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ScramSha512 => "scram-sha-512",
            Self::ScramSha256 => "scram-sha-256",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `WARD_*` variable of [`RAW_TEXT_KEYS`], kept as the text it is.
struct RawEnvVar {
    key: String,
    text: String,
}

impl Provider for RawEnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!(
            "environment variable WARD_{}",
            self.key.replace('.', "__").to_ascii_uppercase()
        ))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::default(&self.key, &self.text).data()
    }
}

/// Merges the `WARD_*` variables of [`RAW_TEXT_KEYS`] as text.
pub(super) fn merge_raw_text_env(mut figment: Figment) -> Figment {
    let env = Env::prefixed("WARD_").split("__").only(&RAW_TEXT_KEYS);
    let mut variables: Vec<RawEnvVar> = env
        .iter()
        .map(|(key, text)| RawEnvVar {
            key: key.as_str().to_string(),
            text,
        })
        .collect();
    // A stable order, so errors do not depend on the environment's.
    variables.sort_by(|left, right| left.key.cmp(&right.key));
    for variable in variables {
        figment = figment.merge(variable);
    }
    figment
}

/// Whether `key` (dotted) holds a secret.
pub(super) fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS
        .iter()
        .any(|secret| secret.eq_ignore_ascii_case(key))
}

/// Replaces every set secret with `***` and drops unset optional keys (TOML has no null).
pub(super) fn redact_secrets(value: &mut serde_json::Value) {
    for key in SECRET_KEYS {
        let Some((section, field)) = key.split_once('.') else {
            continue;
        };
        if let Some(slot) = value
            .get_mut(section)
            .and_then(|table| table.get_mut(field))
            && !slot.is_null()
        {
            *slot = REDACTED.into();
        }
    }
    drop_nulls(value);
}

fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(table) => {
            table.retain(|_, item| !item.is_null());
            for item in table.values_mut() {
                drop_nulls(item);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                drop_nulls(item);
            }
        }
        _ => {}
    }
}

/// Checks the token keys given as text and the Kafka security options.
pub(super) fn validate_secrets(config: &Config, figment: &Figment) -> Result<(), ConfigError> {
    let fail = |key: &str, value: &str, reason: &str| ConfigError {
        key: key.into(),
        value: value.into(),
        source_name: super::source_of(figment, key),
        reason: reason.into(),
    };
    for (key, text_opt) in [
        ("auth.private_key", &config.auth.private_key),
        ("auth.public_key", &config.auth.public_key),
    ] {
        if let Some(text) = text_opt
            && text.expose().trim().is_empty()
        {
            return Err(fail(key, "(empty)", "is empty; unset it or give the key"));
        }
    }
    validate_events_security(&config.events, config.profile)
        .map_err(|(key, value, reason)| fail(key, &value, &reason))
}

fn validate_events_security(
    events: &EventsOptions,
    profile: WardProfile,
) -> Result<(), (&'static str, String, String)> {
    let username_opt = events
        .sasl_username
        .as_deref()
        .filter(|name| !name.trim().is_empty());
    let has_password = matches!(
        &events.sasl_password,
        Some(password) if !password.expose().is_empty()
    );
    match events.sasl_mechanism {
        SaslMechanism::None => {
            if username_opt.is_some() || has_password {
                return Err((
                    "events.sasl_mechanism",
                    "none".into(),
                    "SASL credentials are set but no mechanism; set scram-sha-512 (MSK) or \
                     scram-sha-256, or unset events.sasl_username and events.sasl_password"
                        .into(),
                ));
            }
        }
        SaslMechanism::ScramSha512 | SaslMechanism::ScramSha256 => {
            let mechanism = events.sasl_mechanism;
            if username_opt.is_none() {
                return Err((
                    "events.sasl_username",
                    "(unset)".into(),
                    format!(
                        "sasl_mechanism {mechanism} needs a user name (WARD_EVENTS__SASL_USERNAME)"
                    ),
                ));
            }
            if !has_password {
                return Err((
                    "events.sasl_password",
                    "(unset)".into(),
                    format!(
                        "sasl_mechanism {mechanism} needs a password (WARD_EVENTS__SASL_PASSWORD)"
                    ),
                ));
            }
            if profile == WardProfile::Production && !events.tls {
                return Err((
                    "events.tls",
                    "false".into(),
                    format!(
                        "the production profile refuses {mechanism} without TLS: the session \
                         after the login would travel in clear (MSK: port 9096, tls = true)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_scalar_deserializes_to_its_text() {
        for (raw, expected) in [
            (serde_json::json!("s3cret"), "s3cret"),
            (serde_json::json!(12345), "12345"),
            (serde_json::json!(-7), "-7"),
            (serde_json::json!(true), "true"),
            (serde_json::json!(1.5), "1.5"),
        ] {
            let text: SecretText = serde_json::from_value(raw).unwrap();
            assert_eq!(text.expose(), expected);
        }
        assert!(serde_json::from_value::<SecretText>(serde_json::json!(["a"])).is_err());
        assert_eq!(
            format!("{:?}", SecretText::new("s3cret")),
            "SecretText(***)"
        );
    }

    #[test]
    fn sasl_mechanisms_parse_in_both_cases() {
        for (raw, expected) in [
            ("none", SaslMechanism::None),
            ("scram-sha-512", SaslMechanism::ScramSha512),
            ("SCRAM-SHA-512", SaslMechanism::ScramSha512),
            ("scram-sha-256", SaslMechanism::ScramSha256),
        ] {
            let parsed: SaslMechanism = serde_json::from_value(raw.into()).unwrap();
            assert_eq!(parsed, expected, "{raw}");
        }
        assert!(serde_json::from_value::<SaslMechanism>("plain".into()).is_err());
    }

    #[test]
    fn redaction_hides_set_secrets_and_drops_unset_ones() {
        let mut value = serde_json::json!({
            "auth": {"private_key": "ed25519-private/00", "public_key": null, "access_token_ttl_secs": 900},
            "events": {"sasl_password": "12345", "sasl_username": "ward"},
        });
        redact_secrets(&mut value);
        assert_eq!(value["auth"]["private_key"], "***");
        assert!(value["auth"].get("public_key").is_none());
        assert_eq!(value["auth"]["access_token_ttl_secs"], 900);
        assert_eq!(value["events"]["sasl_password"], "***");
        assert_eq!(value["events"]["sasl_username"], "ward");
    }

    fn events_with(
        mechanism: SaslMechanism,
        username_opt: Option<&str>,
        password_opt: Option<&str>,
        tls: bool,
    ) -> EventsOptions {
        let mut events = Config::default().events;
        events.sasl_mechanism = mechanism;
        events.sasl_username = username_opt.map(String::from);
        events.sasl_password = password_opt.map(SecretText::new);
        events.tls = tls;
        events
    }

    #[test]
    fn scram_needs_a_user_a_password_and_in_production_tls() {
        use SaslMechanism::{None as NoSasl, ScramSha256, ScramSha512};
        let production = WardProfile::Production;
        let embedded = WardProfile::Embedded;
        let ok = events_with(ScramSha512, Some("ward"), Some("12345"), true);
        assert!(validate_events_security(&ok, production).is_ok());
        let plain_dev = events_with(ScramSha256, Some("ward"), Some("pw"), false);
        assert!(validate_events_security(&plain_dev, embedded).is_ok());
        assert!(
            validate_events_security(&events_with(NoSasl, None, None, false), production).is_ok()
        );

        for (events, profile, expected_key) in [
            (
                events_with(ScramSha512, None, Some("pw"), true),
                production,
                "events.sasl_username",
            ),
            (
                events_with(ScramSha512, Some(" "), Some("pw"), true),
                production,
                "events.sasl_username",
            ),
            (
                events_with(ScramSha512, Some("ward"), None, true),
                production,
                "events.sasl_password",
            ),
            (
                events_with(ScramSha512, Some("ward"), Some(""), true),
                embedded,
                "events.sasl_password",
            ),
            (
                events_with(ScramSha512, Some("ward"), Some("pw"), false),
                production,
                "events.tls",
            ),
            (
                events_with(NoSasl, Some("ward"), None, true),
                production,
                "events.sasl_mechanism",
            ),
            (
                events_with(NoSasl, None, Some("pw"), true),
                embedded,
                "events.sasl_mechanism",
            ),
        ] {
            let (key, _, reason) = validate_events_security(&events, profile).unwrap_err();
            assert_eq!(key, expected_key, "{reason}");
        }
    }
}

//! How the client reaches the brokers: TLS (checked against the Mozilla root store, which holds
//! the Amazon roots MSK's certificates chain to) and SASL/SCRAM, from `events.tls` and
//! `events.sasl_*`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rskafka::client::{ClientBuilder, Credentials, SaslConfig};
use secrecy::{ExposeSecret, SecretString};
use ward_core::config::{EventsOptions, SaslMechanism};
use ward_core::{WardError, WardResult};

/// TLS and SASL settings of the Kafka connection; plaintext without SASL by default.
#[derive(Clone, Default)]
pub struct KafkaSecurity {
    tls: bool,
    sasl_opt: Option<SaslLogin>,
}

#[derive(Clone)]
struct SaslLogin {
    mechanism: SaslMechanism,
    username: String,
    password: SecretString,
}

impl KafkaSecurity {
    /// Reads `events.tls` and `events.sasl_*` (validated by the configuration: a mechanism comes
    /// with a user name and a password).
    pub fn from_options(events: &EventsOptions) -> Self {
        let sasl_opt = match (
            events.sasl_mechanism,
            &events.sasl_username,
            &events.sasl_password,
        ) {
            (SaslMechanism::None, _, _) => None,
            (mechanism, Some(username), Some(password)) => Some(SaslLogin {
                mechanism,
                username: username.clone(),
                password: SecretString::from(password.expose().to_string()),
            }),
            (_, _, _) => None,
        };
        Self {
            tls: events.tls,
            sasl_opt,
        }
    }

    /// Plaintext, with SCRAM credentials (tests, a broker on a private network).
    pub fn with_scram(
        mut self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.sasl_opt = match mechanism {
            SaslMechanism::None => None,
            SaslMechanism::ScramSha512 | SaslMechanism::ScramSha256 => Some(SaslLogin {
                mechanism,
                username: username.into(),
                password: SecretString::from(password.into()),
            }),
        };
        self
    }

    /// Turns TLS on or off.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The SASL mechanism in use (`None` without SASL).
    pub fn sasl_mechanism(&self) -> SaslMechanism {
        match &self.sasl_opt {
            Some(login) => login.mechanism,
            None => SaslMechanism::None,
        }
    }

    /// Sets TLS and SASL on a client builder.
    pub(crate) fn apply(&self, builder: ClientBuilder) -> WardResult<ClientBuilder> {
        let mut configured = builder;
        if self.tls {
            configured = configured.tls_config(tls_client_config()?);
        }
        if let Some(login) = &self.sasl_opt {
            configured = configured.sasl_config(sasl_config(login));
        }
        Ok(configured)
    }
}

/// Says what the connection uses, never the password: `tls, scram-sha-512 as ward`.
impl fmt::Display for KafkaSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = if self.tls { "tls" } else { "plaintext" };
        match &self.sasl_opt {
            Some(login) => write!(f, "{transport}, {} as {}", login.mechanism, login.username),
            None => write!(f, "{transport}, no sasl"),
        }
    }
}

impl fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaSecurity({self})")
    }
}

fn sasl_config(login: &SaslLogin) -> SaslConfig {
    let credentials = Credentials::new(
        login.username.clone(),
        login.password.expose_secret().to_string(),
    );
    match login.mechanism {
        SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
        // `None` never gets here: `sasl_opt` is only set with a SCRAM mechanism.
        SaslMechanism::ScramSha512 | SaslMechanism::None => SaslConfig::ScramSha512(credentials),
    }
}

/// One TLS client configuration per process (the root store is a few hundred certificates).
fn tls_client_config() -> WardResult<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let built = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // ring, explicitly: the process-wide default provider is not guaranteed to be installed.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|error| error.to_string())
    });
    built
        .clone()
        .map_err(|error| WardError::internal("building the kafka TLS configuration", error))
}

#[cfg(test)]
mod tests {
    use ward_core::config::{Config, SecretText};

    use super::*;

    #[test]
    fn the_default_is_plaintext_without_sasl() {
        let security = KafkaSecurity::from_options(&Config::default().events);
        assert!(!security.is_tls());
        assert_eq!(security.sasl_mechanism(), SaslMechanism::None);
        assert_eq!(security.to_string(), "plaintext, no sasl");
    }

    #[test]
    fn msk_settings_give_tls_and_scram_and_never_print_the_password() {
        let mut events = Config::default().events;
        events.tls = true;
        events.sasl_mechanism = SaslMechanism::ScramSha512;
        events.sasl_username = Some("ward".into());
        events.sasl_password = Some(SecretText::new("hunter2hunter2"));

        let security = KafkaSecurity::from_options(&events);

        assert!(security.is_tls());
        assert_eq!(security.sasl_mechanism(), SaslMechanism::ScramSha512);
        assert_eq!(security.to_string(), "tls, scram-sha-512 as ward");
        assert!(!format!("{security:?}").contains("hunter2"));
        let login = security.sasl_opt.as_ref().unwrap();
        match sasl_config(login) {
            SaslConfig::ScramSha512(credentials) => {
                assert_eq!(credentials.username, "ward");
                assert_eq!(credentials.password, "hunter2hunter2");
            }
            other => panic!("expected SCRAM-SHA-512, got {other:?}"),
        }
        let sha256 = KafkaSecurity::default().with_scram(SaslMechanism::ScramSha256, "u", "p");
        assert!(matches!(
            sasl_config(sha256.sasl_opt.as_ref().unwrap()),
            SaslConfig::ScramSha256(_)
        ));
    }

    #[test]
    fn the_tls_configuration_trusts_the_public_roots() {
        let config = tls_client_config().unwrap();
        // Built once, shared by every session.
        assert!(Arc::ptr_eq(&config, &tls_client_config().unwrap()));
        let builder = KafkaSecurity::default()
            .with_tls(true)
            .apply(ClientBuilder::new(vec!["b-1:9096".into()]));
        assert!(builder.is_ok());
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
    }
}

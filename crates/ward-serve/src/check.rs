//! `ward serve --check`: everything about a process's configuration that can be known without the
//! network. The keys parse, the production profile has PostgreSQL URLs for its modules, every role
//! it calls is local or has peers, the brokers are named, the listeners do not collide. It never
//! connects anywhere, so it can vet an ECS task definition's environment before a deploy.

use std::net::SocketAddr;

use ward_bus::token::{TokenIssuer, TokenVerifier};
use ward_core::config::{Config, EventBackend, Profile, SecretText};
use ward_core::{Role, WardError};
use ward_kafka::KafkaSecurity;

use crate::peers::missing_peer_reason;

/// What is wrong, naming the setting to change.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct CheckError {
    pub key: String,
    pub reason: String,
}

impl CheckError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Checks what `ward serve` would run with `config`; returns one line per role saying what it
/// would run (passwords redacted), or the first problem.
pub fn check_serve(config: &Config, demo: bool) -> Result<Vec<String>, CheckError> {
    let roles = config.roles.resolved();
    if demo && config.profile == Profile::Production {
        return Err(CheckError::new(
            "--demo",
            "the production profile refuses --demo (an account with a published password)",
        ));
    }
    let signing = check_signing_key(config, &roles)?;
    let verifying_key_id_opt = check_verifying_key(config, &roles, signing.key_id_opt)?;
    check_databases(config, &roles)?;
    check_events(config, &roles)?;
    check_peers(config, &roles)?;
    check_listeners(config, &roles)?;

    let events = describe_events(config);
    let mut lines = Vec::new();
    for role in &roles {
        let mut parts = Vec::new();
        if *role == Role::Gateway {
            parts.push(format!("REST on {}", config.server.http_addr));
        } else {
            parts.push(format!("gRPC on {}", config.server.grpc_addr));
        }
        parts.push(format!("ops on {}", config.server.ops_addr));
        if let Some(url) = config.database.url_for(*role) {
            parts.push(format!("database {}", url.redacted()));
        }
        for callee in role.calls() {
            if roles.contains(callee) {
                parts.push(format!("calls {callee} in process"));
            } else {
                let peers = config.peers.for_role(*callee).join(",");
                parts.push(format!("calls {callee} at {peers}"));
            }
        }
        if *role == Role::Auth {
            parts.push(signing.description.clone());
        }
        if matches!(role, Role::Billing | Role::Analytics) {
            parts.push(format!(
                "consumes as instance {} of {}",
                config.events.consumer_instance, config.events.consumer_instances
            ));
        }
        if let Some(key_id) = verifying_key_id_opt {
            parts.push(format!("verifies tokens with key {key_id:08x}"));
        }
        parts.push(events.clone());
        lines.push(format!("{role}: {}", parts.join("; ")));
    }
    Ok(lines)
}

/// The signing key's id when the auth role runs here and the key exists, and what to say.
struct SigningKey {
    key_id_opt: Option<u32>,
    description: String,
}

fn check_signing_key(config: &Config, roles: &[Role]) -> Result<SigningKey, CheckError> {
    if !roles.contains(&Role::Auth) {
        return Ok(SigningKey {
            key_id_opt: None,
            description: String::new(),
        });
    }
    if let Some(text) = &config.auth.private_key {
        let issuer = parse_issuer(text)?;
        return Ok(SigningKey {
            key_id_opt: Some(issuer.key_id()),
            description: format!(
                "signs tokens with key {:08x} from auth.private_key",
                issuer.key_id()
            ),
        });
    }
    let path = &config.auth.private_key_file;
    let is_present = path.try_exists().map_err(|error| {
        CheckError::new(
            "auth.private_key_file",
            format!("cannot check {}: {error}", path.display()),
        )
    })?;
    if !is_present {
        if config.profile == Profile::Embedded {
            return Ok(SigningKey {
                key_id_opt: None,
                description: format!("creates a signing key pair at {}", path.display()),
            });
        }
        return Err(CheckError::new(
            "auth.private_key",
            format!(
                "the auth role needs the token signing key: set auth.private_key \
                 (WARD_AUTH__PRIVATE_KEY) or create {} with `ward keys generate`",
                path.display()
            ),
        ));
    }
    let issuer = TokenIssuer::from_file(path)
        .map_err(|error| CheckError::new("auth.private_key_file", ward_message(error)))?;
    Ok(SigningKey {
        key_id_opt: Some(issuer.key_id()),
        description: format!(
            "signs tokens with key {:08x} from {}",
            issuer.key_id(),
            path.display()
        ),
    })
}

fn parse_issuer(text: &SecretText) -> Result<TokenIssuer, CheckError> {
    TokenIssuer::from_pem(text.expose()).map_err(|error| {
        CheckError::new(
            "auth.private_key",
            format!("{} (WARD_AUTH__PRIVATE_KEY)", ward_message(error)),
        )
    })
}

/// The id of the key this process verifies tokens with (the signing key's when auth runs here);
/// `None` when the embedded profile will create the pair on start.
fn check_verifying_key(
    config: &Config,
    roles: &[Role],
    signing_key_id_opt: Option<u32>,
) -> Result<Option<u32>, CheckError> {
    let from_text_opt = match &config.auth.public_key {
        Some(text) => Some(TokenVerifier::from_pem(text.expose()).map_err(|error| {
            CheckError::new(
                "auth.public_key",
                format!("{} (WARD_AUTH__PUBLIC_KEY)", ward_message(error)),
            )
        })?),
        None => None,
    };
    for path in &config.auth.trusted_public_key_files {
        TokenVerifier::from_file(path).map_err(|error| {
            CheckError::new("auth.trusted_public_key_files", ward_message(error))
        })?;
    }
    for (index, text) in config.auth.trusted_public_keys.iter().enumerate() {
        let name = crate::keys::trusted_key_name(index);
        TokenVerifier::from_pem(text).map_err(|_| {
            CheckError::new(
                "auth.trusted_public_keys",
                format!("{name} is not a valid `ed25519/<hex>` or PEM public key"),
            )
        })?;
    }
    if roles.contains(&Role::Auth) {
        let Some(signing_key_id) = signing_key_id_opt else {
            // The embedded profile creates the pair on start; nothing to compare yet.
            return Ok(None);
        };
        if let Some(verifier) = &from_text_opt
            && verifier.current_key_id() != Some(signing_key_id)
        {
            return Err(CheckError::new(
                "auth.public_key",
                "is not the public half of the signing key: tokens this process signs would \
                 fail wherever auth.public_key is used",
            ));
        }
        return Ok(Some(signing_key_id));
    }
    if let Some(verifier) = from_text_opt {
        return Ok(verifier.current_key_id());
    }
    let path = &config.auth.public_key_file;
    let is_present = path.try_exists().map_err(|error| {
        CheckError::new(
            "auth.public_key_file",
            format!("cannot check {}: {error}", path.display()),
        )
    })?;
    if !is_present {
        return Err(CheckError::new(
            "auth.public_key",
            format!(
                "every process verifies tokens: set auth.public_key (WARD_AUTH__PUBLIC_KEY) or \
                 copy the auth role's public key to {}",
                path.display()
            ),
        ));
    }
    let verifier = TokenVerifier::from_file(path)
        .map_err(|error| CheckError::new("auth.public_key_file", ward_message(error)))?;
    Ok(verifier.current_key_id())
}

fn check_databases(config: &Config, roles: &[Role]) -> Result<(), CheckError> {
    if config.profile != Profile::Production {
        return Ok(());
    }
    for role in roles {
        let Some(url) = config.database.url_for(*role) else {
            continue;
        };
        let variable = format!("WARD_DATABASE__{}", role.as_str().to_uppercase());
        if url.is_sqlite() {
            return Err(CheckError::new(
                format!("database.{role}"),
                format!(
                    "the production profile needs a postgres:// URL ({variable}): a SQLite file \
                     lives and dies with one task"
                ),
            ));
        }
        // The driver also takes PGPASSWORD; without any password RDS refuses the login, which
        // a task would only report at start, as "not ready".
        let has_password_variable = std::env::var_os("PGPASSWORD").is_some();
        if !url_has_password(url.expose()) && !has_password_variable {
            return Err(CheckError::new(
                format!("database.{role}_password"),
                format!(
                    "database.{role} names no password and none is set: inject the database \
                     secret's password as {variable}_PASSWORD"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a postgres URL carries a password (in its userinfo or as a `password` parameter).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let in_userinfo = match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.contains(':'),
        None => false,
    };
    let query = tail.split_once('?').map(|(_, query)| query).unwrap_or("");
    let as_parameter = query
        .split('&')
        .any(|pair| pair.to_ascii_lowercase().starts_with("password="));
    in_userinfo || as_parameter
}

fn check_events(config: &Config, roles: &[Role]) -> Result<(), CheckError> {
    match config.events.backend {
        EventBackend::Kafka => {
            if config.events.brokers.is_empty() {
                return Err(CheckError::new(
                    "events.brokers",
                    "the kafka backend needs at least one broker (WARD_EVENTS__BROKERS)",
                ));
            }
            for broker in &config.events.brokers {
                let is_host_port = matches!(
                    broker.rsplit_once(':'),
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok()
                );
                if !is_host_port {
                    return Err(CheckError::new(
                        "events.brokers",
                        format!("`{broker}` is not host:port"),
                    ));
                }
            }
        }
        EventBackend::Local => {
            let is_split = roles.len() < Role::ALL.len();
            let is_private_log = config.events.local_url.is_sqlite();
            if config.profile == Profile::Production && is_split && is_private_log {
                return Err(CheckError::new(
                    "events.backend",
                    "roles split over processes share events through kafka in the production \
                     profile (WARD_EVENTS__BACKEND=kafka); a local SQLite log is private to \
                     one task",
                ));
            }
        }
    }
    Ok(())
}

fn check_peers(config: &Config, roles: &[Role]) -> Result<(), CheckError> {
    for role in roles {
        for callee in role.calls() {
            let is_reachable = roles.contains(callee) || !config.peers.for_role(*callee).is_empty();
            if !is_reachable {
                return Err(CheckError::new(
                    format!("peers.{callee}"),
                    format!(
                        "the {role} role calls {callee}: {}",
                        missing_peer_reason(*callee)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Two listeners of this process on one port would fail at bind time.
fn check_listeners(config: &Config, roles: &[Role]) -> Result<(), CheckError> {
    let mut listeners: Vec<(&str, SocketAddr)> = vec![("server.ops_addr", config.server.ops_addr)];
    if roles.contains(&Role::Gateway) {
        listeners.push(("server.http_addr", config.server.http_addr));
    }
    if roles.iter().any(|role| role.owns_database()) {
        listeners.push(("server.grpc_addr", config.server.grpc_addr));
    }
    for (index, (key, addr)) in listeners.iter().enumerate() {
        for (other_key, other_addr) in &listeners[..index] {
            let is_same_port = addr.port() != 0 && addr.port() == other_addr.port();
            let may_overlap = addr.ip() == other_addr.ip()
                || addr.ip().is_unspecified()
                || other_addr.ip().is_unspecified();
            if is_same_port && may_overlap {
                return Err(CheckError::new(
                    *key,
                    format!("{addr} collides with {other_key} {other_addr}"),
                ));
            }
        }
    }
    Ok(())
}

fn describe_events(config: &Config) -> String {
    match config.events.backend {
        EventBackend::Local => format!("events local {}", config.events.local_url.redacted()),
        EventBackend::Kafka => format!(
            "events kafka {} ({})",
            config.events.brokers.join(","),
            KafkaSecurity::from_options(&config.events)
        ),
    }
}

/// The text of a key error, without the variant's name.
fn ward_message(error: WardError) -> String {
    match error {
        WardError::Unavailable(message) | WardError::Internal(message) => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(roles: &[Role]) -> Config {
        let mut config = Config::default();
        config.roles = ward_core::config::RoleList::new(roles.to_vec());
        config
    }

    #[test]
    fn a_gateway_alone_needs_a_peer_for_each_module() {
        let mut config = config_with(&[Role::Gateway]);
        config.peers.auth = vec!["http://auth:50051".into()];
        let error = check_peers(&config, &[Role::Gateway]).unwrap_err();
        assert_eq!(error.key, "peers.patients");
        assert!(error.reason.contains("WARD_PEERS__PATIENTS"), "{error}");

        config.peers.patients = vec!["http://patients:50051".into()];
        config.peers.billing = vec!["http://billing:50051".into()];
        config.peers.analytics = vec!["http://analytics:50051".into()];
        assert!(check_peers(&config, &[Role::Gateway]).is_ok());
        // Modules call no one synchronously.
        assert!(check_peers(&Config::default(), &[Role::Billing]).is_ok());
    }

    #[test]
    fn listeners_on_one_port_collide_unless_on_port_zero() {
        let mut config = config_with(&[Role::Gateway, Role::Patients]);
        let roles = [Role::Patients, Role::Gateway];
        config.server.grpc_addr = "0.0.0.0:8080".parse().unwrap();
        let error = check_listeners(&config, &roles).unwrap_err();
        assert_eq!(error.key, "server.grpc_addr");

        config.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
        config.server.http_addr = "127.0.0.1:0".parse().unwrap();
        config.server.ops_addr = "127.0.0.1:0".parse().unwrap();
        assert!(check_listeners(&config, &roles).is_ok());
        // The gateway's port is free to reuse in a process that serves no REST.
        let mut module_only = config_with(&[Role::Patients]);
        module_only.server.grpc_addr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_listeners(&module_only, &[Role::Patients]).is_ok());
    }

    #[test]
    fn a_password_is_found_in_the_userinfo_or_a_parameter() {
        assert!(url_has_password("postgres://ward:pw@db/x"));
        assert!(url_has_password(
            "postgres://ward@db/x?sslmode=require&password=pw"
        ));
        assert!(!url_has_password("postgres://ward@db/x?sslmode=require"));
        assert!(!url_has_password("postgres://ward@db:5432/x"));
        assert!(!url_has_password("postgres://db/x"));
    }

    #[test]
    fn brokers_must_be_host_and_port() {
        let mut config = Config::default();
        config.events.backend = EventBackend::Kafka;
        config.events.brokers = vec!["b-1.msk:9096".into(), "b-2.msk".into()];
        let error = check_events(&config, &Role::ALL).unwrap_err();
        assert_eq!(error.key, "events.brokers");
        assert!(error.reason.contains("b-2.msk"), "{error}");
    }

    #[test]
    fn split_production_roles_need_a_shared_event_log() {
        let mut config = config_with(&[Role::Billing]);
        config.profile = Profile::Production;
        let error = check_events(&config, &[Role::Billing]).unwrap_err();
        assert_eq!(error.key, "events.backend");
        // All roles in one process may keep a local log.
        assert!(check_events(&config, &Role::ALL).is_ok());
    }
}

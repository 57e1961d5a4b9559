//! Every file in config/ loads and validates, and errors name the key and its source.

use std::path::PathBuf;

use ward_core::config::{Config, ConfigSources, EventBackend, Profile, SaslMechanism};

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn load_file(path: PathBuf) -> Result<Config, ward_core::config::ConfigError> {
    Config::load(&ConfigSources {
        explicit_file: Some(path),
        overrides: Vec::new(),
    })
}

/// Loads `path` with the secrets its comments say come from the environment (production.toml's
/// Kafka password), as an ECS task gets them.
fn load_file_with_injected_secrets(
    path: PathBuf,
) -> Result<Config, ward_core::config::ConfigError> {
    let is_production = path.file_name().and_then(|name| name.to_str()) == Some("production.toml");
    let overrides = if is_production {
        vec![("events.sasl_password".to_string(), "injected".into())]
    } else {
        Vec::new()
    };
    Config::load(&ConfigSources {
        explicit_file: Some(path),
        overrides,
    })
}

#[test]
fn every_shipped_config_file_loads() {
    let mut num_files = 0;
    for entry in std::fs::read_dir(config_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("toml") {
            continue;
        }
        num_files += 1;
        if let Err(error) = load_file_with_injected_secrets(path.clone()) {
            panic!("{} does not load: {error}", path.display());
        }
    }
    assert!(num_files >= 2, "expected ward.toml and production.toml");
}

#[test]
fn the_shipped_files_say_what_they_claim() {
    let embedded = load_file(config_dir().join("ward.toml")).unwrap();
    assert_eq!(embedded.profile, Profile::Embedded);
    assert_eq!(embedded.events.backend, EventBackend::Local);
    assert_eq!(embedded.server.http_addr.port(), 8080);
    assert_eq!(embedded.roles.resolved().len(), 5);
    let production = load_file_with_injected_secrets(config_dir().join("production.toml")).unwrap();
    assert_eq!(production.profile, Profile::Production);
    // The ECS way: TLS and SCRAM to MSK, every consuming task instance 0 of 1.
    assert!(production.events.tls);
    assert_eq!(production.events.sasl_mechanism, SaslMechanism::ScramSha512);
    assert!(
        production
            .events
            .brokers
            .iter()
            .all(|broker| broker.ends_with(":9096"))
    );
    assert_eq!(production.events.consumer_instances, 1);
    assert!(
        production
            .database
            .patients
            .expose()
            .starts_with("postgres://")
    );
    assert_eq!(production.peers.billing.len(), 1);
}

#[test]
fn a_bad_value_names_key_source_and_reason() {
    let dir = std::env::temp_dir().join(format!("ward-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[server]\nhttp_addr = \"not-an-address\"\n").unwrap();
    let error = load_file(file.clone()).unwrap_err().to_string();
    assert!(error.contains("server.http_addr"), "{error}");
    assert!(error.contains("bad.toml"), "{error}");

    std::fs::write(&file, "roles = \"gateway,pharmacy\"\n").unwrap();
    let error = load_file(file.clone()).unwrap_err().to_string();
    assert!(
        error.contains("pharmacy") && error.contains("valid roles"),
        "{error}"
    );

    std::fs::write(&file, "[events]\npoll_interval_millis = 0\n").unwrap();
    let error = load_file(file.clone()).unwrap_err().to_string();
    assert!(
        error.contains("events.poll_interval_millis") && error.contains("bad.toml"),
        "{error}"
    );

    std::fs::write(&file, "[server]\nhttp_adr = \"0.0.0.0:1\"\n").unwrap();
    let error = load_file(file).unwrap_err().to_string();
    assert!(error.contains("http_adr"), "{error}");
}

#[test]
fn overrides_win_over_files() {
    let config = Config::load(&ConfigSources {
        explicit_file: Some(config_dir().join("ward.toml")),
        overrides: vec![
            ("roles".into(), "patients".into()),
            ("server.http_addr".into(), "127.0.0.1:0".into()),
        ],
    })
    .unwrap();
    assert_eq!(config.roles.resolved(), vec![ward_core::Role::Patients]);
    assert_eq!(config.server.http_addr.port(), 0);
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let error = load_file(PathBuf::from("/nonexistent/ward.toml")).unwrap_err();
    assert_eq!(error.key, "--config");
}

#[test]
fn secrets_written_in_a_file_as_numbers_or_bools_are_text() {
    let dir = std::env::temp_dir().join(format!("ward-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secrets.toml");
    std::fs::write(
        &file,
        "[database]\npatients = \"postgres://ward@db/patients\"\npatients_password = 12345\n\
         [events]\nsasl_mechanism = \"scram-sha-256\"\nsasl_username = 42\nsasl_password = true\n",
    )
    .unwrap();

    let config = load_file(file).unwrap();

    assert_eq!(
        config.database.patients.expose(),
        "postgres://ward:12345@db/patients"
    );
    assert_eq!(config.events.sasl_username.as_deref(), Some("42"));
    assert_eq!(
        config.events.sasl_password.as_ref().unwrap().expose(),
        "true"
    );
}

#[test]
fn a_bad_sasl_mechanism_names_the_key() {
    let dir = std::env::temp_dir().join(format!("ward-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sasl.toml");
    std::fs::write(&file, "[events]\nsasl_mechanism = \"plain\"\n").unwrap();

    let error = load_file(file).unwrap_err();

    assert_eq!(error.key, "events.sasl_mechanism");
    assert!(error.to_string().contains("sasl.toml"), "{error}");
}

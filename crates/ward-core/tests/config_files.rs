//! Every file in config/ loads and validates, and errors name the key and its source.

use std::path::PathBuf;

use ward_core::config::{Config, ConfigSources, EventBackend, Profile};

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn load_file(path: PathBuf) -> Result<Config, ward_core::config::ConfigError> {
    Config::load(&ConfigSources {
        explicit_file: Some(path),
        overrides: Vec::new(),
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
        if let Err(error) = load_file(path.clone()) {
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
    let production = load_file(config_dir().join("production.toml")).unwrap();
    assert_eq!(production.profile, Profile::Production);
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

//! `ward serve --check` with the environment of each ECS task definition: the production layer
//! plus `WARD_*` settings and Secrets Manager secrets. It never connects (the hosts below do not
//! resolve), says what each role would run, and names the setting behind any problem.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::helpers::{Workdir, ward_command};

/// The secret values of the tests; none may ever be printed.
const DATABASE_PASSWORD: &str = "db-Pa55:w/rd@x";
/// Looks like a number to a config parser; must stay text.
const KAFKA_PASSWORD: &str = "0012345";

fn production_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/production.toml")
}

/// A key pair's text, as an operator stores it in Secrets Manager.
struct KeyTexts {
    private: String,
    public: String,
}

fn generate_key_texts(dir: &Path) -> KeyTexts {
    let output = ward_command(dir, &["keys", "generate"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let read = |name: &str| std::fs::read_to_string(dir.join("data/keys").join(name)).unwrap();
    let texts = KeyTexts {
        private: read("auth-private.key"),
        public: read("auth-public.key"),
    };
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    texts
}

/// The environment of the task definition that runs `role`, as the infrastructure sets it.
fn task_environment(role: &str, keys: &KeyTexts) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "WARD_CONFIG".to_string(),
            production_file().display().to_string(),
        ),
        ("WARD_ROLES".to_string(), role.to_string()),
        (
            "WARD_EVENTS__BROKERS".to_string(),
            "b-1.ward-msk.internal:9096,b-2.ward-msk.internal:9096".to_string(),
        ),
        ("WARD_EVENTS__SASL_USERNAME".to_string(), "ward".to_string()),
        (
            "WARD_EVENTS__SASL_PASSWORD".to_string(),
            KAFKA_PASSWORD.to_string(),
        ),
        ("WARD_AUTH__PUBLIC_KEY".to_string(), keys.public.clone()),
    ];
    if role == "auth" {
        env.push(("WARD_AUTH__PRIVATE_KEY".to_string(), keys.private.clone()));
    }
    if role != "gateway" {
        env.push((
            format!("WARD_DATABASE__{}", role.to_uppercase()),
            format!("postgres://ward_{role}@{role}-db.ward.internal:5432/ward_{role}"),
        ));
        env.push((
            format!("WARD_DATABASE__{}_PASSWORD", role.to_uppercase()),
            DATABASE_PASSWORD.to_string(),
        ));
    }
    env
}

fn run_check(dir: &Path, env: &[(String, String)]) -> Output {
    let mut command = ward_command(dir, &["serve", "--check"]);
    // The driver's own password variable would hide a missing secret.
    command.env_remove("PGPASSWORD");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Exit 2 and `ward: ...` naming `key`.
fn assert_refused(output: &Output, key: &str) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("ward: "), "{stderr}");
    assert!(stderr.contains(key), "expected {key} in: {stderr}");
    assert!(stdout_of(output).is_empty(), "{}", stdout_of(output));
}

fn without(env: &[(String, String)], key: &str) -> Vec<(String, String)> {
    env.iter()
        .filter(|(name, _)| name != key)
        .cloned()
        .collect()
}

fn with(env: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut changed = without(env, key);
    changed.push((key.to_string(), value.to_string()));
    changed
}

#[test]
fn every_role_group_passes_with_its_task_environment() {
    let dir = Workdir::new();
    let keys = generate_key_texts(&dir.path);
    for role in ["gateway", "auth", "patients", "billing", "analytics"] {
        // Act
        let output = run_check(&dir.path, &task_environment(role, &keys));

        // Assert: one line, for this role, saying what it would run; no secret printed.
        let stdout = stdout_of(&output);
        assert!(output.status.success(), "{role}: {}", stderr_of(&output));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{stdout}");
        let line = lines[0];
        assert!(line.starts_with(&format!("{role}: ")), "{line}");
        assert!(
            line.contains("events kafka b-1.ward-msk.internal:9096,b-2.ward-msk.internal:9096 (tls, scram-sha-512 as ward)"),
            "{line}"
        );
        assert!(line.contains("verifies tokens with key"), "{line}");
        if role == "gateway" {
            assert!(line.contains("REST on 127.0.0.1:0"), "{line}");
            assert!(
                line.contains("calls billing at http://billing.ward.internal:50051"),
                "{line}"
            );
        } else {
            assert!(line.contains("gRPC on 127.0.0.1:0"), "{line}");
            let expected = format!(
                "database postgres://ward_{role}:***@{role}-db.ward.internal:5432/ward_{role}"
            );
            assert!(line.contains(&expected), "{line}");
        }
        if role == "auth" {
            assert!(line.contains("signs tokens with key"), "{line}");
        }
        for secret in [
            DATABASE_PASSWORD,
            "Pa55",
            KAFKA_PASSWORD,
            "ed25519-private/",
        ] {
            assert!(!stdout.contains(secret), "{secret} printed: {stdout}");
            assert!(!stderr_of(&output).contains(secret), "{secret} printed");
        }
    }
    // Nothing was written: the check creates no key and no database file.
    assert!(!dir.path.join("data").try_exists().unwrap());
}

#[test]
fn a_missing_key_is_named() {
    let dir = Workdir::new();
    let keys = generate_key_texts(&dir.path);

    let gateway = without(&task_environment("gateway", &keys), "WARD_AUTH__PUBLIC_KEY");
    assert_refused(&run_check(&dir.path, &gateway), "auth.public_key");

    let auth = without(&task_environment("auth", &keys), "WARD_AUTH__PRIVATE_KEY");
    assert_refused(&run_check(&dir.path, &auth), "auth.private_key");

    let garbled = with(
        &task_environment("patients", &keys),
        "WARD_AUTH__PUBLIC_KEY",
        "ed25519/not-a-key",
    );
    let output = run_check(&dir.path, &garbled);
    assert_refused(&output, "auth.public_key");
    assert!(
        !stderr_of(&output).contains("not-a-key"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn a_gateway_without_peers_is_refused() {
    let dir = Workdir::new();
    let keys = generate_key_texts(&dir.path);
    let env = with(
        &task_environment("gateway", &keys),
        "WARD_PEERS__BILLING",
        "",
    );

    let output = run_check(&dir.path, &env);

    assert_refused(&output, "peers.billing");
    assert!(stderr_of(&output).contains("WARD_PEERS__BILLING"));
}

#[test]
fn a_sqlite_database_in_production_is_refused() {
    let dir = Workdir::new();
    let keys = generate_key_texts(&dir.path);
    let env = without(
        &with(
            &task_environment("patients", &keys),
            "WARD_DATABASE__PATIENTS",
            "sqlite://data/patients.db?mode=rwc",
        ),
        "WARD_DATABASE__PATIENTS_PASSWORD",
    );

    let output = run_check(&dir.path, &env);

    assert_refused(&output, "database.patients");
    assert!(stderr_of(&output).contains("postgres://"));
    assert!(!dir.path.join("data").try_exists().unwrap());
}

#[test]
fn a_module_database_without_a_password_is_refused() {
    let dir = Workdir::new();
    let keys = generate_key_texts(&dir.path);
    let env = without(
        &task_environment("billing", &keys),
        "WARD_DATABASE__BILLING_PASSWORD",
    );

    let output = run_check(&dir.path, &env);

    assert_refused(&output, "database.billing_password");
    assert!(stderr_of(&output).contains("WARD_DATABASE__BILLING_PASSWORD"));
}

#[test]
fn scram_without_a_password_is_refused() {
    let dir = Workdir::new();
    let keys = generate_key_texts(&dir.path);
    let env = without(
        &task_environment("billing", &keys),
        "WARD_EVENTS__SASL_PASSWORD",
    );

    let output = run_check(&dir.path, &env);

    assert_refused(&output, "events.sasl_password");
}

#[test]
fn a_database_password_beside_a_password_in_the_url_is_refused() {
    let dir = Workdir::new();
    let keys = generate_key_texts(&dir.path);
    let env = with(
        &task_environment("analytics", &keys),
        "WARD_DATABASE__ANALYTICS",
        "postgres://ward:inline@analytics-db.ward.internal/ward_analytics",
    );

    let output = run_check(&dir.path, &env);

    assert_refused(&output, "database.analytics_password");
    assert!(
        !stderr_of(&output).contains("inline"),
        "{}",
        stderr_of(&output)
    );
    assert!(!stderr_of(&output).contains(DATABASE_PASSWORD));
}

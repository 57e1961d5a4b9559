//! The command line a newcomer and an operator use.

use std::io::Write;
use std::process::Stdio;

use crate::helpers::{Workdir, ward_command};

#[test]
fn help_lists_every_command() {
    let dir = Workdir::new();
    let output = ward_command(&dir.path, &["--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "migrate", "user", "keys", "config"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn config_prints_the_effective_configuration_redacted() {
    let dir = Workdir::new();
    let output = ward_command(&dir.path, &["config"])
        .env(
            "WARD_DATABASE__PATIENTS",
            "postgres://ward:hunter2@db:5432/patients",
        )
        .env("WARD_ROLES", "gateway,patients")
        .env("WARD_EVENTS__BROKERS", "b-1:9092,b-2:9092")
        .env(
            "WARD_PEERS__BILLING",
            "http://billing-a:50051,http://billing-b:50051",
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("postgres://ward:***@db:5432/patients"),
        "{text}"
    );
    assert!(
        text.contains("\"patients\"") && text.contains("\"gateway\""),
        "{text}"
    );
}

#[test]
fn an_invalid_environment_value_names_the_key_and_its_source() {
    let dir = Workdir::new();
    let output = ward_command(&dir.path, &["config"])
        .env("WARD_EVENTS__BACKEND", "carrier-pigeon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("events.backend"), "{stderr}");
    assert!(
        stderr.contains("WARD_EVENTS__BACKEND") || stderr.contains("environment"),
        "{stderr}"
    );
}

#[test]
fn keys_migrate_and_user_create_bootstrap_a_fresh_install() {
    let dir = Workdir::new();
    let keys = ward_command(&dir.path, &["keys", "generate"])
        .output()
        .unwrap();
    assert!(
        keys.status.success(),
        "{}",
        String::from_utf8_lossy(&keys.stderr)
    );
    assert!(dir.path.join("data/keys/auth-private.key").is_file());
    // Never overwrites a key.
    let again = ward_command(&dir.path, &["keys", "generate"])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let migrate = ward_command(&dir.path, &["migrate"]).output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(dir.path.join("data/patients.db").is_file());

    let mut child = ward_command(
        &dir.path,
        &[
            "user",
            "create",
            "--email",
            "nurse@clinic.example",
            "--role",
            "clinician",
            "--password-stdin",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("nurse@clinic.example"));

    // A weak piped-in password is refused with the policy's reason, and nothing is created.
    let mut weak = ward_command(
        &dir.path,
        &[
            "user",
            "create",
            "--email",
            "weak@clinic.example",
            "--role",
            "clinician",
            "--password-stdin",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    weak.stdin
        .take()
        .unwrap()
        .write_all(b"Password1234\n")
        .unwrap();
    let weak_output = weak.wait_with_output().unwrap();
    assert!(!weak_output.status.success());
    let weak_error = String::from_utf8_lossy(&weak_output.stderr);
    assert!(weak_error.contains("too common"), "{weak_error}");

    // A second account with the same email is refused; a generated password is printed once.
    let duplicate = ward_command(
        &dir.path,
        &[
            "user",
            "create",
            "--email",
            "NURSE@clinic.example",
            "--role",
            "analyst",
        ],
    )
    .output()
    .unwrap();
    assert!(!duplicate.status.success());
    let generated = ward_command(
        &dir.path,
        &[
            "user",
            "create",
            "--email",
            "analyst@clinic.example",
            "--role",
            "analyst",
        ],
    )
    .output()
    .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(String::from_utf8_lossy(&generated.stdout).contains("password (shown once"));

    let bad_role = ward_command(
        &dir.path,
        &[
            "user",
            "create",
            "--email",
            "x@clinic.example",
            "--role",
            "janitor",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(bad_role.status.code(), Some(2));
}

#[test]
fn demo_data_is_refused_in_production() {
    let dir = Workdir::new();
    let output = ward_command(&dir.path, &["serve", "--demo"])
        .env("WARD_PROFILE", "production")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused in the production profile"),
        "{stderr}"
    );
    assert!(!dir.path.join("data").exists(), "nothing was created");
}

#[test]
fn production_never_generates_a_signing_key() {
    let dir = Workdir::new();
    let output = ward_command(&dir.path, &["serve"])
        .env("WARD_PROFILE", "production")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth.private_key_file"), "{stderr}");
    assert!(!dir.path.join("data/keys").exists(), "no key was generated");
}

#[test]
fn scripts_own_ward_variables_are_not_settings_but_typos_in_sections_fail() {
    let dir = Workdir::new();
    let output = ward_command(&dir.path, &["config"])
        .env("WARD_BIN", "/usr/bin/ward")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = ward_command(&dir.path, &["config"])
        .env("WARD_SERVER__HTTP_ADR", "0.0.0.0:1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("http_adr"));
}

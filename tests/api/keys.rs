//! Rotating the token signing key without logging everyone out: tokens name their key by id, and
//! the previous public key stays trusted (`auth.trusted_public_key_files`) until they expire.

use crate::helpers::{TestApp, Workdir, ward_command};

#[tokio::test]
async fn a_key_rotation_keeps_old_tokens_working_while_the_old_key_is_trusted() {
    // Arrange: a token signed with the first key.
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let old_token = app.demo_token().await;
    assert!(app.stop().success());

    // Act: a second key pair, now the signing key, with the first public key still trusted.
    let new_key_env = vec![
        (
            "WARD_AUTH__PRIVATE_KEY_FILE".to_string(),
            "data/keys/next-private.key".to_string(),
        ),
        (
            "WARD_AUTH__PUBLIC_KEY_FILE".to_string(),
            "data/keys/next-public.key".to_string(),
        ),
    ];
    let generate = ward_command(&dir.path, &["keys", "generate"])
        .envs(new_key_env.clone())
        .output()
        .unwrap();
    assert!(generate.status.success());
    let mut trusting_env = new_key_env.clone();
    trusting_env.push((
        "WARD_AUTH__TRUSTED_PUBLIC_KEY_FILES".to_string(),
        "[\"data/keys/auth-public.key\"]".to_string(),
    ));
    let app = TestApp::spawn_with_env(&dir.path, &[], &trusting_env).await;

    // Assert: old and new tokens both work.
    let new_token = app.demo_token().await;
    assert_ne!(new_token, old_token);
    assert_eq!(app.get(&old_token, "/api/patients").await.status(), 200);
    assert_eq!(app.get(&new_token, "/api/patients").await.status(), 200);
    assert!(app.stop().success());

    // Once the old key is no longer trusted, its tokens stop working; the new ones do not.
    let app = TestApp::spawn_with_env(&dir.path, &[], &new_key_env).await;
    assert_eq!(app.get(&old_token, "/api/patients").await.status(), 401);
    assert_eq!(app.get(&new_token, "/api/patients").await.status(), 200);
}

#[test]
fn generate_if_missing_keeps_a_pair_and_refuses_half_of_one() {
    let dir = Workdir::new();
    let generate = |extra: &[&str]| {
        let mut args = vec!["keys", "generate"];
        args.extend_from_slice(extra);
        ward_command(&dir.path, &args).output().unwrap()
    };
    let public_key_path = dir.path.join("data/keys/auth-public.key");

    assert!(generate(&["--if-missing"]).status.success());
    let first_public_key = std::fs::read_to_string(&public_key_path).unwrap();

    // Twice: the pair is kept, not replaced; without the flag a second run still refuses.
    let again = generate(&["--if-missing"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("kept the existing key pair"));
    assert_eq!(
        std::fs::read_to_string(&public_key_path).unwrap(),
        first_public_key
    );
    assert!(!generate(&[]).status.success());

    // Half a pair is a problem to look at, never something to paper over.
    std::fs::remove_file(&public_key_path).unwrap();
    assert!(!generate(&["--if-missing"]).status.success());
}

/// The rotation a task without files (ECS) makes: the earlier public key as text, in
/// `WARD_AUTH__TRUSTED_PUBLIC_KEYS`.
#[tokio::test]
async fn a_rotation_can_trust_the_earlier_key_given_as_text() {
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let old_token = app.demo_token().await;
    assert!(app.stop().success());
    let old_public_key = std::fs::read_to_string(dir.path.join("data/keys/auth-public.key"))
        .unwrap()
        .trim()
        .to_string();

    let mut env = vec![
        (
            "WARD_AUTH__PRIVATE_KEY_FILE".to_string(),
            "data/keys/next-private.key".to_string(),
        ),
        (
            "WARD_AUTH__PUBLIC_KEY_FILE".to_string(),
            "data/keys/next-public.key".to_string(),
        ),
    ];
    let generate = ward_command(&dir.path, &["keys", "generate"])
        .envs(env.clone())
        .output()
        .unwrap();
    assert!(generate.status.success());

    // A key that does not parse is caught by the dry run, named without being quoted.
    let bad_check = ward_command(&dir.path, &["serve", "--check"])
        .envs(env.clone())
        .env("WARD_AUTH__TRUSTED_PUBLIC_KEYS", "ed25519/not-hex")
        .output()
        .unwrap();
    assert_eq!(bad_check.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_check.stderr);
    assert!(stderr.contains("auth.trusted_public_keys[0]"), "{stderr}");
    assert!(!stderr.contains("not-hex"), "{stderr}");

    env.push((
        "WARD_AUTH__TRUSTED_PUBLIC_KEYS".to_string(),
        old_public_key.clone(),
    ));
    let app = TestApp::spawn_with_env(&dir.path, &[], &env).await;
    let new_token = app.demo_token().await;
    assert_eq!(app.get(&old_token, "/api/patients").await.status(), 200);
    assert_eq!(app.get(&new_token, "/api/patients").await.status(), 200);
    assert!(app.stop().success());

    env.pop();
    let app = TestApp::spawn_with_env(&dir.path, &[], &env).await;
    assert_eq!(app.get(&old_token, "/api/patients").await.status(), 401);
}

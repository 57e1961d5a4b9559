//! The token signing key pair: created on first start in the embedded profile, required (never
//! generated) in production. A key given as text (`auth.private_key`, `auth.public_key`, e.g.
//! injected by ECS from Secrets Manager) wins over the key files.

use ward_bus::token::{self, TokenIssuer, TokenVerifier};
use ward_core::config::{Config, Profile};
use ward_core::{Role, WardError, WardResult};

/// `ward keys generate`: writes a new key pair to the configured files; refuses to overwrite.
pub fn generate_keys(config: &Config) -> WardResult<TokenVerifier> {
    token::generate_key_files(&config.auth.private_key_file, &config.auth.public_key_file)?;
    TokenVerifier::from_file(&config.auth.public_key_file)
}

/// The issuer, for a process that runs the auth role.
pub fn load_issuer(config: &Config) -> WardResult<TokenIssuer> {
    if let Some(text) = &config.auth.private_key {
        return TokenIssuer::from_pem(text.expose()).map_err(|error| {
            WardError::Unavailable(format!(
                "auth.private_key (WARD_AUTH__PRIVATE_KEY): {error}"
            ))
        });
    }
    let private_path = &config.auth.private_key_file;
    let public_path = &config.auth.public_key_file;
    let is_missing = !private_path.is_file() && !public_path.is_file();
    if is_missing && config.profile == Profile::Embedded {
        token::generate_key_files(private_path, public_path)?;
        tracing::info!(private_key_file = %private_path.display(), public_key_file = %public_path.display(), "created the token signing key pair");
    }
    if !private_path.is_file() {
        return Err(WardError::Unavailable(format!(
            "auth.private_key_file {} does not exist; create it with `ward keys generate`, or \
             set auth.private_key (WARD_AUTH__PRIVATE_KEY) to the key's text (the production \
             profile never generates keys on its own)",
            private_path.display()
        )));
    }
    TokenIssuer::from_file(private_path)
}

/// The verifier every process needs (from the issuer when auth runs here), trusting also the
/// earlier keys listed in `auth.trusted_public_key_files` and `auth.trusted_public_keys`.
pub fn load_verifier(
    config: &Config,
    roles: &[Role],
    issuer_opt: Option<&TokenIssuer>,
) -> WardResult<TokenVerifier> {
    let mut verifier = current_verifier(config, roles, issuer_opt)?;
    for path in &config.auth.trusted_public_key_files {
        verifier = verifier.trusting_file(path)?;
    }
    for (index, text) in config.auth.trusted_public_keys.iter().enumerate() {
        verifier = verifier.trusting_text(text, &trusted_key_name(index))?;
    }
    Ok(verifier)
}

/// How errors name entry `index` of `auth.trusted_public_keys` (never quoting it).
pub(crate) fn trusted_key_name(index: usize) -> String {
    format!("auth.trusted_public_keys[{index}]")
}

fn current_verifier(
    config: &Config,
    roles: &[Role],
    issuer_opt: Option<&TokenIssuer>,
) -> WardResult<TokenVerifier> {
    if let Some(issuer) = issuer_opt {
        return Ok(issuer.verifier());
    }
    if let Some(text) = &config.auth.public_key {
        return TokenVerifier::from_pem(text.expose()).map_err(|error| {
            WardError::Unavailable(format!("auth.public_key (WARD_AUTH__PUBLIC_KEY): {error}"))
        });
    }
    let public_path = &config.auth.public_key_file;
    if !public_path.is_file() {
        let hint = if roles.contains(&Role::Auth) {
            "".to_string()
        } else {
            " (the auth role does not run here, so copy the auth role's public key to this path)"
                .to_string()
        };
        return Err(WardError::Unavailable(format!(
            "auth.public_key_file {} does not exist and auth.public_key is not set{hint}",
            public_path.display()
        )));
    }
    TokenVerifier::from_file(public_path)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;
    use ward_bus::auth::UserInfo;
    use ward_core::UserRole;
    use ward_core::config::SecretText;

    use super::*;

    /// A production configuration whose key files do not exist.
    fn production_without_key_files() -> Config {
        let mut config = Config {
            profile: Profile::Production,
            ..Config::default()
        };
        let missing = std::env::temp_dir().join(format!("ward-no-keys-{}", Uuid::new_v4()));
        config.auth.private_key_file = missing.join("auth-private.key");
        config.auth.public_key_file = missing.join("auth-public.key");
        config
    }

    /// A new key pair's text, as `ward keys generate` writes it (what goes into the secret).
    fn key_pair_text() -> (String, String) {
        let folder = std::env::temp_dir().join(format!("ward-key-text-{}", Uuid::new_v4()));
        let private_path = folder.join("private.key");
        let public_path = folder.join("public.key");
        token::generate_key_files(&private_path, &public_path).unwrap();
        let texts = (
            std::fs::read_to_string(&private_path).unwrap(),
            std::fs::read_to_string(&public_path).unwrap(),
        );
        std::fs::remove_dir_all(&folder).unwrap();
        texts
    }

    #[test]
    fn keys_given_as_text_win_over_missing_files() {
        // Arrange
        let (private_text, public_text) = key_pair_text();
        let mut config = production_without_key_files();
        config.auth.private_key = Some(SecretText::new(private_text));
        config.auth.public_key = Some(SecretText::new(public_text));

        // Act
        let issuer = load_issuer(&config).unwrap();
        let gateway_verifier = load_verifier(&config, &[Role::Gateway], None).unwrap();

        // Assert
        let user = UserInfo {
            id: Uuid::now_v7(),
            email: "a@example.com".into(),
            role: UserRole::Clinician,
            disabled: false,
        };
        let now = Utc::now();
        let session = issuer.issue(&user, Uuid::now_v7(), 60, now).unwrap();
        assert_eq!(
            gateway_verifier
                .verify(&session.token, now)
                .unwrap()
                .user_id,
            user.id
        );
        assert!(!config.auth.private_key_file.try_exists().unwrap());
    }

    #[test]
    fn garbled_key_text_names_its_key_and_hides_its_text() {
        let mut config = production_without_key_files();
        config.auth.private_key = Some(SecretText::new("ed25519-private/zz-secret"));
        config.auth.public_key = Some(SecretText::new("ed25519/zz-secret"));

        let issuer_error = load_issuer(&config).unwrap_err().to_string();
        let verifier_error = load_verifier(&config, &[Role::Gateway], None)
            .unwrap_err()
            .to_string();

        assert!(issuer_error.contains("auth.private_key"), "{issuer_error}");
        assert!(
            verifier_error.contains("auth.public_key"),
            "{verifier_error}"
        );
        for message in [issuer_error, verifier_error] {
            assert!(!message.contains("zz-secret"), "{message}");
        }
    }

    #[test]
    fn without_text_or_file_the_error_names_both_settings() {
        let config = production_without_key_files();

        let issuer_error = load_issuer(&config).unwrap_err().to_string();
        let verifier_error = load_verifier(&config, &[Role::Gateway], None)
            .unwrap_err()
            .to_string();

        assert!(
            issuer_error.contains("WARD_AUTH__PRIVATE_KEY"),
            "{issuer_error}"
        );
        assert!(
            verifier_error.contains("auth.public_key is not set"),
            "{verifier_error}"
        );
    }
}

//! Token keys as text: biscuit's prefixed form (`ed25519-private/<hex>`, `ed25519/<hex>`, what
//! `ward keys generate` writes) or PEM (PKCS#8 private key, SPKI public key, as `openssl genpkey
//! -algorithm ed25519` writes). Key files and keys injected as environment variables (ECS task
//! secrets) are read the same way.

use std::str::FromStr;

use biscuit_auth::{PrivateKey, PublicKey};

const PEM_BEGIN: &str = "-----BEGIN";

/// The private key in `text`, or `None`. No parse error is returned: it could quote key material.
pub(crate) fn parse_private_key(text: &str) -> Option<PrivateKey> {
    let trimmed = text.trim();
    if trimmed.starts_with(PEM_BEGIN) {
        PrivateKey::from_pem(trimmed).ok()
    } else {
        PrivateKey::from_str(trimmed).ok()
    }
}

/// The public key in `text`, or why it is not one.
pub(crate) fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let trimmed = text.trim();
    let parsed = if trimmed.starts_with(PEM_BEGIN) {
        PublicKey::from_pem(trimmed)
    } else {
        PublicKey::from_str(trimmed)
    };
    parsed.map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use biscuit_auth::KeyPair;
    use chrono::DateTime;
    use uuid::Uuid;
    use ward_core::{UserRole, WardError};

    use super::*;
    use crate::auth::UserInfo;
    use crate::token::{TokenIssuer, TokenVerifier};

    fn admin() -> UserInfo {
        UserInfo {
            id: Uuid::now_v7(),
            email: "ops@example.com".into(),
            role: UserRole::Admin,
            disabled: false,
        }
    }

    #[test]
    fn both_text_forms_parse_to_the_same_keys() {
        let key_pair = KeyPair::new();
        let private_pem = key_pair.private().to_pem().unwrap();
        let public_pem = key_pair.public().to_pem().unwrap();
        let private_prefixed = key_pair.private().to_prefixed_string();
        let public_prefixed = key_pair.public().to_string();

        assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        for text in [private_pem.as_str(), private_prefixed.as_str()] {
            let parsed = parse_private_key(&format!("\n{text}\n")).unwrap();
            assert_eq!(parsed.public(), key_pair.public());
        }
        for text in [public_pem.as_str(), public_prefixed.as_str()] {
            assert_eq!(parse_public_key(text).unwrap(), key_pair.public());
        }
    }

    #[test]
    fn garbage_is_not_a_key() {
        for text in [
            "",
            "ed25519-private/not-hex",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            assert!(parse_private_key(text).is_none(), "{text}");
            assert!(parse_public_key(text).is_err(), "{text}");
        }
    }

    #[test]
    fn an_issuer_and_a_verifier_from_pem_text_agree() {
        // Arrange: the key pair as an operator stores it in Secrets Manager.
        let key_pair = KeyPair::new();
        let private_pem = key_pair.private().to_pem().unwrap();
        let public_pem = key_pair.public().to_pem().unwrap();

        // Act
        let issuer = TokenIssuer::from_pem(&private_pem).unwrap();
        let verifier = TokenVerifier::from_pem(&public_pem).unwrap();
        let prefixed_verifier = TokenVerifier::from_pem(&key_pair.public().to_string()).unwrap();

        // Assert
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let session = issuer.issue(&admin(), Uuid::now_v7(), 60, now).unwrap();
        assert_eq!(
            verifier.verify(&session.token, now).unwrap().role,
            UserRole::Admin
        );
        assert!(prefixed_verifier.verify(&session.token, now).is_ok());
        let stranger = TokenVerifier::from_pem(&KeyPair::new().public().to_pem().unwrap()).unwrap();
        assert!(stranger.verify(&session.token, now).is_err());
    }

    #[test]
    fn garbled_text_is_unavailable_without_quoting_it() {
        let secret_looking = "ed25519-private/zz-secret-material";
        for result in [
            TokenIssuer::from_pem(secret_looking).map(|_| ()),
            TokenVerifier::from_pem(secret_looking).map(|_| ()),
        ] {
            match result {
                Err(WardError::Unavailable(message)) => {
                    assert!(!message.contains("zz-secret-material"), "{message}")
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
    }
}

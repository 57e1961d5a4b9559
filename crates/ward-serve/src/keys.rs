//! The token signing key pair: created on first start in the embedded profile, required (never
//! generated) in production.

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
    let private_path = &config.auth.private_key_file;
    let public_path = &config.auth.public_key_file;
    let is_missing = !private_path.is_file() && !public_path.is_file();
    if is_missing && config.profile == Profile::Embedded {
        token::generate_key_files(private_path, public_path)?;
        tracing::info!(private_key_file = %private_path.display(), public_key_file = %public_path.display(), "created the token signing key pair");
    }
    if !private_path.is_file() {
        return Err(WardError::Unavailable(format!(
            "auth.private_key_file {} does not exist; create it with `ward keys generate` \
             (the production profile never generates keys on its own)",
            private_path.display()
        )));
    }
    TokenIssuer::from_file(private_path)
}

/// The verifier every process needs (from the issuer when auth runs here), trusting also the
/// earlier keys listed in `auth.trusted_public_key_files`.
pub fn load_verifier(
    config: &Config,
    roles: &[Role],
    issuer_opt: Option<&TokenIssuer>,
) -> WardResult<TokenVerifier> {
    let mut verifier = current_verifier(config, roles, issuer_opt)?;
    for path in &config.auth.trusted_public_key_files {
        verifier = verifier.trusting_file(path)?;
    }
    Ok(verifier)
}

fn current_verifier(
    config: &Config,
    roles: &[Role],
    issuer_opt: Option<&TokenIssuer>,
) -> WardResult<TokenVerifier> {
    if let Some(issuer) = issuer_opt {
        return Ok(issuer.verifier());
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
            "auth.public_key_file {} does not exist{hint}",
            public_path.display()
        )));
    }
    TokenVerifier::from_file(public_path)
}

//! Access tokens: biscuit tokens signed by the auth module's private key, verified offline by any
//! process that holds the public key. The fact schema lives here, once, for issuer and verifier.
//!
//! The authority block of a token holds:
//!
//! ```text
//! user("<uuid>"); email("<email>"); role("<user role>");
//! right("<right>");                       // one per right of the role
//! check if time($t), $t < <expiry date>;
//! ```
//!
//! A holder may append blocks to narrow a token (for example an earlier expiry); appended blocks
//! can never add identity or rights, because the verifier reads facts from the authority block
//! only, and keeps only the rights the role grants.
//!
//! Key files hold biscuit's prefixed text form, one line: `ed25519-private/<hex>` for the private
//! key, `ed25519/<hex>` for the public key.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use biscuit_auth::builder::{self, Term};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, KeyPair, PrivateKey, PublicKey};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ward_core::{Principal, Right, UserRole, WardError, WardResult};

use crate::auth::{Session, UserInfo};

/// Longer inputs are rejected before decoding; a real token is well under 2 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The one message every rejected token gets, so a caller learns nothing about why.
const INVALID_TOKEN_MESSAGE: &str = "invalid or expired token";

/// The authority block; parameters are bound as terms, so no value is ever parsed as Datalog.
const AUTHORITY_BLOCK_CODE: &str = r#"
    user({user_id});
    email({email});
    role({role});
    check if time($t), $t < {expires_at};
"#;

/// The verifier's own facts and policy; `now` comes from the caller so tests control time.
const AUTHORIZER_CODE: &str = r#"
    time({now});
    allow if user($u);
"#;

/// Signs access tokens. Held only by the auth role.
#[derive(Clone)]
pub struct TokenIssuer {
    // `KeyPair` is not `Clone`; the issuer is shared by every request.
    key_pair: Arc<KeyPair>,
}

/// Verifies access tokens with the public key. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    public_key: PublicKey,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("TokenIssuer")
            .field("public_key", &self.key_pair.public().to_string())
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    fn new(key_pair: KeyPair) -> Self {
        Self {
            key_pair: Arc::new(key_pair),
        }
    }

    /// Reads the private key file (`ed25519-private/<hex>`); an unreadable or garbled file is
    /// `Unavailable`, naming the path.
    pub fn from_file(path: &Path) -> WardResult<Self> {
        let content = read_key_file(path, "token signing key")?;
        // The parse error is left out: it could quote key material.
        let private_key = PrivateKey::from_str(content.trim()).map_err(|_| {
            WardError::Unavailable(format!(
                "the token signing key {} is not a valid `ed25519-private/<hex>` key",
                path.display()
            ))
        })?;
        Ok(Self::new(KeyPair::from(&private_key)))
    }

    /// Issues a token for `user`, valid until `now + ttl_secs` (whole seconds).
    pub fn issue(&self, user: &UserInfo, ttl_secs: u64, now: DateTime<Utc>) -> WardResult<Session> {
        let out_of_range = || WardError::Internal("token lifetime is out of range".into());
        let expires_at = i64::try_from(ttl_secs)
            .ok()
            .and_then(|ttl_secs_signed| now.timestamp().checked_add(ttl_secs_signed))
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .ok_or_else(out_of_range)?;
        let expires_at_secs = unix_secs(expires_at).ok_or_else(out_of_range)?;

        let params = HashMap::from([
            ("user_id".to_string(), Term::Str(user.id.to_string())),
            ("email".to_string(), Term::Str(user.email.clone())),
            (
                "role".to_string(),
                Term::Str(user.role.as_str().to_string()),
            ),
            ("expires_at".to_string(), Term::Date(expires_at_secs)),
        ]);
        let mut token_builder = Biscuit::builder()
            .code_with_params(AUTHORITY_BLOCK_CODE, params, HashMap::new())
            .map_err(issue_error)?;
        for right in user.role.rights() {
            let right_fact = builder::fact("right", &[builder::string(right.as_str())]);
            token_builder = token_builder.fact(right_fact).map_err(issue_error)?;
        }
        let biscuit = token_builder.build(&self.key_pair).map_err(issue_error)?;
        let token = biscuit.to_base64().map_err(issue_error)?;
        Ok(Session { token, expires_at })
    }

    /// Returns a verifier for the tokens this issuer signs.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier {
            public_key: self.key_pair.public(),
        }
    }
}

impl TokenVerifier {
    /// Reads the public key file (`ed25519/<hex>`); an unreadable or garbled file is
    /// `Unavailable`, naming the path.
    pub fn from_file(path: &Path) -> WardResult<Self> {
        let content = read_key_file(path, "token verification key")?;
        let public_key = PublicKey::from_str(content.trim()).map_err(|error| {
            WardError::Unavailable(format!(
                "the token verification key {} is not a valid `ed25519/<hex>` key: {error}",
                path.display()
            ))
        })?;
        Ok(Self { public_key })
    }

    /// Returns the public key in its prefixed text form (`ed25519/<hex>`), as in the key file.
    pub fn public_key_string(&self) -> String {
        self.public_key.to_string()
    }

    /// Checks signature and expiry and reads the principal; any failure is `Unauthenticated`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> WardResult<Principal> {
        self.verify_inner(token.trim(), now).map_err(|reason| {
            tracing::debug!(%reason, "access token rejected");
            WardError::Unauthenticated(INVALID_TOKEN_MESSAGE.into())
        })
    }

    /// Returns why a token is rejected, for the debug log only.
    fn verify_inner(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, String> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(format!("token length {} is out of range", token.len()));
        }
        let now_secs = unix_secs(now).ok_or("the clock is before 1970")?;
        let biscuit = Biscuit::from_base64(token, self.public_key).map_err(|e| e.to_string())?;
        let params = HashMap::from([("now".to_string(), Term::Date(now_secs))]);
        let mut authorizer = AuthorizerBuilder::new()
            .set_limits(authorizer_limits())
            .code_with_params(AUTHORIZER_CODE, params, HashMap::new())
            .and_then(|authorizer_builder| authorizer_builder.build(&biscuit))
            .map_err(|e| e.to_string())?;
        authorizer.authorize().map_err(|e| e.to_string())?;

        // Queries see the authority block and the authorizer only, never appended blocks.
        let user_ids: Vec<(String,)> = authorizer
            .query("found($id) <- user($id)")
            .map_err(|e| e.to_string())?;
        let emails: Vec<(String,)> = authorizer
            .query("found($email) <- email($email)")
            .map_err(|e| e.to_string())?;
        let roles: Vec<(String,)> = authorizer
            .query("found($role) <- role($role)")
            .map_err(|e| e.to_string())?;
        let right_names: Vec<(String,)> = authorizer
            .query("found($right) <- right($right)")
            .map_err(|e| e.to_string())?;

        let user_id_raw = exactly_one(user_ids, "user")?;
        let user_id = Uuid::parse_str(&user_id_raw).map_err(|e| format!("bad user id: {e}"))?;
        let email = exactly_one(emails, "email")?;
        let role = UserRole::from_str(&exactly_one(roles, "role")?)?;
        let token_rights: Vec<Right> = right_names
            .iter()
            .filter_map(|(name,)| Right::parse(name))
            .collect();
        Ok(Principal {
            user_id,
            email,
            role,
            rights: rights_granted(role, &token_rights),
        })
    }
}

/// Creates a new key pair and writes both files (private with mode 0600); fails if either exists.
///
/// Parent folders are created. If the public key cannot be written, the new private key file is
/// removed again, so a failed run leaves nothing behind.
pub fn generate_key_files(private_path: &Path, public_path: &Path) -> WardResult<()> {
    for path in [private_path, public_path] {
        refuse_existing_file(path)?;
    }
    let key_pair = KeyPair::new();
    let private_line = format!("{}\n", key_pair.private().to_prefixed_string());
    let public_line = format!("{}\n", key_pair.public());

    write_new_file(private_path, private_line.as_bytes(), true)?;
    if let Err(error) = write_new_file(public_path, public_line.as_bytes(), false) {
        // Best effort: the original error is the one worth reporting.
        let _ = std::fs::remove_file(private_path);
        return Err(error);
    }
    Ok(())
}

/// Bounds the Datalog run, so a holder who appends hostile rules cannot burn CPU. Ward's own
/// tokens need a dozen facts and one or two iterations. Facts and iterations bound the work; the
/// time limit is wall-clock, so it is generous: a tight one turned valid tokens into 401s on a
/// busy 2-core machine (seen in the end-to-end suite at 5 ms).
fn authorizer_limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 256,
        max_iterations: 32,
        max_time: Duration::from_millis(250),
    }
}

/// Keeps the rights the role grants and the token lists: a token can narrow a role, never widen it.
fn rights_granted(role: UserRole, token_rights: &[Right]) -> Vec<Right> {
    let mut rights = Vec::new();
    for right in role.rights() {
        if token_rights.contains(right) {
            rights.push(*right);
        }
    }
    rights
}

fn exactly_one(mut values: Vec<(String,)>, fact_name: &str) -> Result<String, String> {
    match values.len() {
        1 => Ok(values.remove(0).0),
        num_values => Err(format!(
            "expected one `{fact_name}` fact, found {num_values}"
        )),
    }
}

fn unix_secs(instant: DateTime<Utc>) -> Option<u64> {
    u64::try_from(instant.timestamp()).ok()
}

fn issue_error(error: biscuit_auth::error::Token) -> WardError {
    WardError::internal("cannot issue an access token", error)
}

fn read_key_file(path: &Path, what: &str) -> WardResult<String> {
    std::fs::read_to_string(path).map_err(|error| {
        WardError::Unavailable(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })
}

fn refuse_existing_file(path: &Path) -> WardResult<()> {
    match path.try_exists() {
        Ok(false) => Ok(()),
        Ok(true) => Err(already_exists(path)),
        Err(error) => Err(WardError::Unavailable(format!(
            "cannot check {}: {error}",
            path.display()
        ))),
    }
}

fn already_exists(path: &Path) -> WardError {
    WardError::AlreadyExists(format!(
        "{} already exists; refusing to overwrite a key",
        path.display()
    ))
}

/// Writes `content` to a file that must not exist yet (`O_EXCL`, so a race cannot overwrite).
fn write_new_file(path: &Path, content: &[u8], private: bool) -> WardResult<()> {
    let write_error = |error: std::io::Error| {
        WardError::Unavailable(format!("cannot write {}: {error}", path.display()))
    };
    crate::db::create_parent_dir(path)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            already_exists(path)
        } else {
            write_error(error)
        }
    })?;
    file.write_all(content).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

#[cfg(test)]
mod tests {
    use biscuit_auth::BlockBuilder;

    use super::*;

    fn test_issuer() -> TokenIssuer {
        TokenIssuer::new(KeyPair::new())
    }

    fn user(role: UserRole) -> UserInfo {
        UserInfo {
            id: Uuid::now_v7(),
            email: "Ada.Lovelace@example.com".into(),
            role,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn unique_temp_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ward-token-test-{}", Uuid::new_v4()))
    }

    fn assert_rejected(result: WardResult<Principal>) {
        match result {
            Err(WardError::Unauthenticated(message)) => {
                assert_eq!(message, INVALID_TOKEN_MESSAGE)
            }
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    #[test]
    fn issued_token_verifies_into_the_principal() {
        // Arrange
        let issuer = test_issuer();
        let clinician = user(UserRole::Clinician);
        let now = at(1_700_000_000);

        // Act
        let session = issuer.issue(&clinician, 900, now).unwrap();
        let principal = issuer.verifier().verify(&session.token, now).unwrap();

        // Assert
        assert_eq!(session.expires_at, at(1_700_000_900));
        assert_eq!(principal.user_id, clinician.id);
        assert_eq!(principal.email, clinician.email);
        assert_eq!(principal.role, UserRole::Clinician);
        assert_eq!(principal.rights, UserRole::Clinician.rights().to_vec());
    }

    #[test]
    fn every_role_round_trips_with_its_rights() {
        let issuer = test_issuer();
        let now = at(1_700_000_000);
        for role in UserRole::ALL {
            let session = issuer.issue(&user(role), 60, now).unwrap();
            let principal = issuer.verifier().verify(&session.token, now).unwrap();
            assert_eq!(principal.role, role);
            assert_eq!(principal.rights, role.rights().to_vec());
        }
    }

    #[test]
    fn token_is_rejected_from_its_expiry_on() {
        let issuer = test_issuer();
        let session = issuer
            .issue(&user(UserRole::Admin), 60, at(1_700_000_000))
            .unwrap();
        let verifier = issuer.verifier();
        assert!(verifier.verify(&session.token, at(1_700_000_059)).is_ok());
        assert_rejected(verifier.verify(&session.token, at(1_700_000_060)));
        assert_rejected(verifier.verify(&session.token, at(1_800_000_000)));
    }

    #[test]
    fn token_signed_by_another_key_is_rejected() {
        let now = at(1_700_000_000);
        let session = test_issuer()
            .issue(&user(UserRole::Admin), 60, now)
            .unwrap();
        assert_rejected(test_issuer().verifier().verify(&session.token, now));
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = at(1_700_000_000);
        let session = issuer.issue(&user(UserRole::Admin), 60, now).unwrap();
        let mut tampered = session.token.clone().into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let truncated = &session.token[..session.token.len() / 2];
        let huge = "A".repeat(MAX_TOKEN_BYTES + 1);
        let inputs = [
            "",
            "   ",
            "not a token",
            "Bearer abc",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "éàü\u{0}\u{feff}",
            truncated,
            tampered.as_str(),
            huge.as_str(),
        ];
        for input in inputs {
            assert_rejected(verifier.verify(input, now));
        }
    }

    #[test]
    fn token_rights_cannot_exceed_the_role() {
        // Arrange: a token signed with the right key that claims more than the role grants.
        let issuer = test_issuer();
        let now = at(1_700_000_000);
        let clinician = user(UserRole::Clinician);
        let params = HashMap::from([
            ("user_id".to_string(), Term::Str(clinician.id.to_string())),
            ("email".to_string(), Term::Str(clinician.email.clone())),
            ("role".to_string(), Term::Str("clinician".into())),
            ("expires_at".to_string(), Term::Date(1_700_000_060)),
        ]);
        let biscuit = Biscuit::builder()
            .code_with_params(AUTHORITY_BLOCK_CODE, params, HashMap::new())
            .unwrap()
            .code(r#"right("users:admin"); right("patients:read"); right("made:up");"#)
            .unwrap()
            .build(&issuer.key_pair)
            .unwrap();

        // Act
        let principal = issuer
            .verifier()
            .verify(&biscuit.to_base64().unwrap(), now)
            .unwrap();

        // Assert
        assert_eq!(principal.rights, vec![Right::PatientsRead]);
    }

    #[test]
    fn appended_block_can_narrow_but_not_widen() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = at(1_700_000_000);
        let session = issuer.issue(&user(UserRole::Analyst), 600, now).unwrap();
        let biscuit = Biscuit::from_base64(&session.token, issuer.key_pair.public()).unwrap();

        // A holder cannot add identity or rights in an appended block.
        let widening = BlockBuilder::new()
            .code(r#"right("users:admin"); user("00000000-0000-0000-0000-000000000000");"#)
            .unwrap();
        let widened = biscuit.append(widening).unwrap().to_base64().unwrap();
        let principal = verifier.verify(&widened, now).unwrap();
        assert_eq!(principal.rights, vec![Right::AnalyticsRead]);
        assert_ne!(principal.user_id, Uuid::nil());

        // A holder can shorten the lifetime.
        let narrowing = BlockBuilder::new()
            .code_with_params(
                "check if time($t), $t < {until};",
                HashMap::from([("until".to_string(), Term::Date(1_700_000_010))]),
                HashMap::new(),
            )
            .unwrap();
        let narrowed = biscuit.append(narrowing).unwrap().to_base64().unwrap();
        assert!(verifier.verify(&narrowed, now).is_ok());
        assert_rejected(verifier.verify(&narrowed, at(1_700_000_011)));
    }

    #[test]
    fn hostile_rules_hit_the_limits() {
        let issuer = test_issuer();
        let now = at(1_700_000_000);
        let session = issuer.issue(&user(UserRole::Admin), 600, now).unwrap();
        let biscuit = Biscuit::from_base64(&session.token, issuer.key_pair.public()).unwrap();
        // A cross product of 20 facts three times over: 8000 facts.
        let mut hostile_code = String::new();
        for value in 0..20 {
            hostile_code.push_str(&format!("a({value}); "));
        }
        hostile_code.push_str("p($x, $y, $z) <- a($x), a($y), a($z);");
        let hostile = BlockBuilder::new().code(hostile_code).unwrap();
        let token = biscuit.append(hostile).unwrap().to_base64().unwrap();
        let verifier = issuer.verifier();
        let reason = verifier.verify_inner(&token, now).unwrap_err();
        assert!(reason.contains("execution limits"), "{reason}");
        assert_rejected(verifier.verify(&token, now));
    }

    #[test]
    fn key_files_round_trip() {
        // Arrange
        let folder = unique_temp_dir();
        let private_path = folder.join("keys/auth.key");
        let public_path = folder.join("keys/auth.pub");

        // Act
        generate_key_files(&private_path, &public_path).unwrap();
        let issuer = TokenIssuer::from_file(&private_path).unwrap();
        let verifier = TokenVerifier::from_file(&public_path).unwrap();

        // Assert
        let now = at(1_700_000_000);
        let session = issuer.issue(&user(UserRole::Billing), 60, now).unwrap();
        assert_eq!(
            verifier.verify(&session.token, now).unwrap().role,
            UserRole::Billing
        );
        let public_text = std::fs::read_to_string(&public_path).unwrap();
        assert_eq!(public_text.trim(), verifier.public_key_string());
        assert!(public_text.starts_with("ed25519/"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&private_path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&folder);
    }

    #[test]
    fn key_generation_refuses_to_overwrite() {
        let folder = unique_temp_dir();
        let private_path = folder.join("auth.key");
        let public_path = folder.join("auth.pub");
        generate_key_files(&private_path, &public_path).unwrap();
        let private_before = std::fs::read_to_string(&private_path).unwrap();

        let error = generate_key_files(&private_path, &public_path).unwrap_err();
        assert!(matches!(error, WardError::AlreadyExists(_)), "{error:?}");

        // Only the public file exists: nothing is written, not even the private key.
        let other_private_path = folder.join("other.key");
        let error = generate_key_files(&other_private_path, &public_path).unwrap_err();
        assert!(matches!(error, WardError::AlreadyExists(_)), "{error:?}");
        assert!(!other_private_path.try_exists().unwrap());
        assert_eq!(
            std::fs::read_to_string(&private_path).unwrap(),
            private_before
        );
        let _ = std::fs::remove_dir_all(&folder);
    }

    #[test]
    fn missing_or_garbled_key_files_are_unavailable_and_named() {
        let folder = unique_temp_dir();
        std::fs::create_dir_all(&folder).unwrap();
        let missing = folder.join("missing.key");
        let garbled = folder.join("garbled.key");
        std::fs::write(&garbled, "ed25519-private/not-hex\n").unwrap();

        for result in [
            TokenIssuer::from_file(&missing).map(|_| ()),
            TokenIssuer::from_file(&garbled).map(|_| ()),
            TokenVerifier::from_file(&missing).map(|_| ()),
            TokenVerifier::from_file(&garbled).map(|_| ()),
        ] {
            match result {
                Err(WardError::Unavailable(message)) => {
                    assert!(message.contains(folder.to_str().unwrap()), "{message}")
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&folder);
    }

    #[test]
    fn key_file_content_is_trimmed() {
        let folder = unique_temp_dir();
        std::fs::create_dir_all(&folder).unwrap();
        let key_pair = KeyPair::new();
        let private_path = folder.join("auth.key");
        let public_path = folder.join("auth.pub");
        let private_text = format!("  {}\n\n", key_pair.private().to_prefixed_string());
        std::fs::write(&private_path, private_text).unwrap();
        std::fs::write(&public_path, format!("\n{}  \n", key_pair.public())).unwrap();

        let issuer = TokenIssuer::from_file(&private_path).unwrap();
        let verifier = TokenVerifier::from_file(&public_path).unwrap();
        let now = at(1_700_000_000);
        let session = issuer.issue(&user(UserRole::Admin), 60, now).unwrap();
        assert!(verifier.verify(&session.token, now).is_ok());
        let _ = std::fs::remove_dir_all(&folder);
    }
}

//! Access tokens: biscuit tokens signed by the auth module's private key, verified offline by any
//! process that holds the public key. The fact schema and the access policy live here, once, for
//! issuer and verifier.
//!
//! The authority block of a token holds:
//!
//! ```text
//! user("<uuid>"); email("<email>"); role("<user role>"); session("<uuid>");
//! issued_at(<unix ms>); expires_at(<date>);
//! right("<right>");                       // one per right of the role
//! check if time($t), $t < <expiry date>;
//! ```
//!
//! Verifying a token ([`TokenVerifier::verify`]) checks its signature (by key id, so several keys
//! can be trusted during a rotation), expiry and revocation, and reads who holds it. Every access
//! is then decided by a Datalog run ([`TokenPolicy`]): the verifier adds `time`, `operation` (the
//! right asked for), one `patient` fact per patient touched, and the role table as `role_right`
//! facts, and allows only when the role grants the right and the token lists it. Every check in the
//! token runs too, so a holder who appended a narrowing block ([`TokenVerifier::narrow`]: read
//! only, one patient, an earlier expiry) gets a token that can do less, never more: appended
//! blocks can add checks, but the policy reads identity and rights from the authority block only.
//!
//! Key files hold biscuit's prefixed text form, one line: `ed25519-private/<hex>` for the private
//! key, `ed25519/<hex>` for the public key. PEM is read too, from files and from text given
//! directly ([`TokenIssuer::from_pem`], for keys injected as environment variables).

mod key_text;

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use biscuit_auth::builder::{self, Term};
use biscuit_auth::{
    AuthorizerBuilder, AuthorizerLimits, Biscuit, BlockBuilder, KeyPair, PublicKey,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ward_core::{AccessPolicy, Principal, Right, UserRole, WardError, WardResult};

use crate::auth::{AccessToken, UserInfo};
use crate::metrics::{self, TokenOutcome};
use crate::revocation::Revocations;

/// Verified tokens a verifier remembers; past this, expired ones are dropped, then all.
const MAX_VERIFIED_TOKENS: usize = 1024;

/// Longer inputs are rejected before decoding; a real token is well under 2 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The one message every rejected token gets, so a caller learns nothing about why.
const INVALID_TOKEN_MESSAGE: &str = "invalid or expired token";

/// The authority block; parameters are bound as terms, so no value is ever parsed as Datalog.
const AUTHORITY_BLOCK_CODE: &str = r#"
    user({user_id});
    email({email});
    role({role});
    session({session_id});
    issued_at({issued_at_ms});
    expires_at({expires_at});
    check if time($t), $t < {expires_at};
"#;

/// The access policy. `role_right` facts come from [`UserRole::rights`], the one table; `right`
/// and `role` are read from the authority block only (the authorizer's default scope).
const POLICY_CODE: &str = r#"
    time({now});
    operation({operation});
    allow if user($u), role($role), operation($op), right($op), role_right($role, $op);
"#;

/// What a holder may narrow a token to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// Only `*:read` rights.
    pub read_only: bool,
    /// Only accesses that touch exactly this patient (searches and figures are refused).
    pub patient_id_opt: Option<Uuid>,
    /// An earlier expiry; a later one than the token's own changes nothing.
    pub expires_at_opt: Option<DateTime<Utc>>,
}

/// Signs access tokens. Held only by the auth role.
#[derive(Clone)]
pub struct TokenIssuer {
    // `KeyPair` is not `Clone`; the issuer is shared by every request.
    key_pair: Arc<KeyPair>,
    key_id: u32,
}

/// Verifies access tokens with the trusted public keys and the revocations this process knows.
/// Cheap to clone; clones share the revocation set.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    /// `(key id, key)`; the first is the current key, the others are still trusted.
    keys: Arc<Vec<(u32, PublicKey)>>,
    revocations: Revocations,
    /// Tokens whose signature and claims were checked with `keys`; a new key set starts empty.
    verified: Arc<VerifiedTokens>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("TokenIssuer")
            .field("public_key", &self.key_pair.public().to_string())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A key's id: the first four bytes of the public key. Tokens carry it, so a verifier that trusts
/// several keys knows which one to check against.
pub fn key_id_of(public_key: &PublicKey) -> u32 {
    let bytes = public_key.to_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

impl TokenIssuer {
    fn new(key_pair: KeyPair) -> Self {
        let key_id = key_id_of(&key_pair.public());
        Self {
            key_pair: Arc::new(key_pair),
            key_id,
        }
    }

    /// Reads the private key file (`ed25519-private/<hex>` or PEM); an unreadable or garbled file
    /// is `Unavailable`, naming the path.
    pub fn from_file(path: &Path) -> WardResult<Self> {
        let content = read_key_file(path, "token signing key")?;
        // The parse error is left out: it could quote key material.
        let private_key = key_text::parse_private_key(&content).ok_or_else(|| {
            WardError::Unavailable(format!(
                "the token signing key {} is not a valid `ed25519-private/<hex>` or PEM key",
                path.display()
            ))
        })?;
        Ok(Self::new(KeyPair::from(&private_key)))
    }

    /// Reads the private key from text (`ed25519-private/<hex>` or PEM), such as a secret
    /// injected as an environment variable; garbled text is `Unavailable`, never quoted.
    pub fn from_pem(text: &str) -> WardResult<Self> {
        let private_key = key_text::parse_private_key(text).ok_or_else(|| {
            WardError::Unavailable(
                "the token signing key text is not a valid `ed25519-private/<hex>` or PEM key"
                    .into(),
            )
        })?;
        Ok(Self::new(KeyPair::from(&private_key)))
    }

    /// The id of the key this issuer signs with.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Issues a token for `user` in `session_id`, valid until `now + ttl_secs` (whole seconds).
    pub fn issue(
        &self,
        user: &UserInfo,
        session_id: Uuid,
        ttl_secs: u64,
        now: DateTime<Utc>,
    ) -> WardResult<AccessToken> {
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
            ("session_id".to_string(), Term::Str(session_id.to_string())),
            (
                "issued_at_ms".to_string(),
                Term::Integer(now.timestamp_millis()),
            ),
            ("expires_at".to_string(), Term::Date(expires_at_secs)),
        ]);
        let mut token_builder = Biscuit::builder()
            .code_with_params(AUTHORITY_BLOCK_CODE, params, HashMap::new())
            .map_err(issue_error)?
            .root_key_id(self.key_id);
        for right in user.role.rights() {
            let right_fact = builder::fact("right", &[builder::string(right.as_str())]);
            token_builder = token_builder.fact(right_fact).map_err(issue_error)?;
        }
        let biscuit = token_builder.build(&self.key_pair).map_err(issue_error)?;
        let token = biscuit.to_base64().map_err(issue_error)?;
        Ok(AccessToken { token, expires_at })
    }

    /// Returns a verifier that trusts this issuer's key, with an empty revocation set.
    pub fn verifier(&self) -> TokenVerifier {
        let public_key = self.key_pair.public();
        TokenVerifier {
            keys: Arc::new(vec![(self.key_id, public_key)]),
            revocations: Revocations::default(),
            verified: Arc::default(),
        }
    }
}

/// Who a verified token names, read from its authority block.
struct TokenClaims {
    user_id: Uuid,
    email: String,
    role: UserRole,
    session_id: Uuid,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    token_rights: Vec<Right>,
}

impl TokenVerifier {
    /// Reads the public key file (`ed25519/<hex>`); an unreadable or garbled file is
    /// `Unavailable`, naming the path.
    pub fn from_file(path: &Path) -> WardResult<Self> {
        let public_key = read_public_key(path)?;
        Ok(Self {
            keys: Arc::new(vec![(key_id_of(&public_key), public_key)]),
            revocations: Revocations::default(),
            verified: Arc::default(),
        })
    }

    /// Reads the public key from text (`ed25519/<hex>` or PEM), such as a secret injected as an
    /// environment variable; garbled text is `Unavailable`.
    pub fn from_pem(text: &str) -> WardResult<Self> {
        // The parse error is left out: a private key pasted by mistake must not be echoed.
        let public_key = key_text::parse_public_key(text).map_err(|_| {
            WardError::Unavailable(
                "the token verification key text is not a valid `ed25519/<hex>` or PEM key".into(),
            )
        })?;
        Ok(Self {
            keys: Arc::new(vec![(key_id_of(&public_key), public_key)]),
            revocations: Revocations::default(),
            verified: Arc::default(),
        })
    }

    /// Also trusts the key in `path` (an earlier key, during a rotation). Two keys with one id
    /// are refused.
    pub fn trusting_file(self, path: &Path) -> WardResult<Self> {
        let public_key = read_public_key(path)?;
        self.trusting(public_key, &path.display().to_string())
    }

    /// Also trusts the key in `text` (`ed25519/<hex>` or PEM), as [`Self::trusting_file`] does;
    /// `name` says where it came from in errors.
    pub fn trusting_text(self, text: &str, name: &str) -> WardResult<Self> {
        let public_key = key_text::parse_public_key(text).map_err(|_| {
            WardError::Unavailable(format!(
                "{name} is not a valid `ed25519/<hex>` or PEM public key"
            ))
        })?;
        self.trusting(public_key, name)
    }

    fn trusting(self, public_key: PublicKey, name: &str) -> WardResult<Self> {
        let key_id = key_id_of(&public_key);
        let mut keys = self.keys.as_ref().clone();
        if let Some((_, known)) = keys.iter().find(|(known_id, _)| *known_id == key_id) {
            if *known == public_key {
                return Ok(self);
            }
            return Err(WardError::Unavailable(format!(
                "the token verification key {name} has the same key id as another trusted key"
            )));
        }
        keys.push((key_id, public_key));
        Ok(Self {
            keys: Arc::new(keys),
            revocations: self.revocations,
            verified: Arc::default(),
        })
    }

    /// The revocations this verifier honours; a [`crate::revocation::RevocationFeed`] fills them.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Returns the id of the current key (the first trusted one).
    pub fn current_key_id(&self) -> Option<u32> {
        self.keys.first().map(|(key_id, _)| *key_id)
    }

    /// Returns the current public key in its prefixed text form (`ed25519/<hex>`).
    pub fn public_key_string(&self) -> String {
        self.keys
            .first()
            .map(|(_, key)| key.to_string())
            .unwrap_or_default()
    }

    /// Checks signature, expiry and revocation and reads the principal; any failure is
    /// `Unauthenticated`. What the principal may do is decided per access by its policy.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> WardResult<Principal> {
        let verified = self.verify_inner(token.trim(), now);
        let outcome = match &verified {
            Ok(_) => TokenOutcome::Ok,
            Err(rejection) => rejection.outcome,
        };
        metrics::count_token_verification(outcome);
        verified.map_err(|rejection| {
            tracing::debug!(reason = %rejection.reason, "access token rejected");
            WardError::Unauthenticated(INVALID_TOKEN_MESSAGE.into())
        })
    }

    /// Appends a narrowing block to a valid token. The result verifies into the same principal,
    /// whose policy allows a subset of what the original allows.
    pub fn narrow(
        &self,
        token: &str,
        narrowing: &Narrowing,
        now: DateTime<Utc>,
    ) -> WardResult<AccessToken> {
        let principal = self.verify(token, now)?;
        let biscuit = self
            .parse(token.trim())
            .map_err(|_| WardError::Unauthenticated(INVALID_TOKEN_MESSAGE.into()))?;
        let mut code = String::new();
        let mut params = HashMap::new();
        let mut expires_at = principal.expires_at;
        if let Some(until) = narrowing.expires_at_opt {
            let until_secs = unix_secs(until).ok_or_else(|| {
                WardError::invalid_field("expiresAt", "the expiry must be after 1970")
            })?;
            // The fact lets `verify` see the earlier expiry (a 401 afterwards, not a 403 per
            // access); the check is what enforces it.
            code.push_str("valid_until({until});\ncheck if time($t), $t < {until};\n");
            params.insert("until".to_string(), Term::Date(until_secs));
            expires_at = expires_at.min(until);
        }
        if narrowing.read_only {
            code.push_str("check if operation($op), $op.ends_with(\":read\");\n");
        }
        if let Some(patient_id) = narrowing.patient_id_opt {
            // At least one patient, and every patient touched is this one.
            code.push_str("check if patient($p);\ncheck all patient($p), $p == {patient};\n");
            params.insert("patient".to_string(), Term::Str(patient_id.to_string()));
        }
        if code.is_empty() {
            return Err(WardError::invalid_field(
                "narrowing",
                "name at least one of readOnly, patientId or expiresInSeconds",
            ));
        }
        let block = BlockBuilder::new()
            .code_with_params(&code, params, HashMap::new())
            .map_err(|error| WardError::internal("cannot build a narrowing block", error))?;
        let narrowed = biscuit
            .append(block)
            .and_then(|narrowed| narrowed.to_base64())
            .map_err(|error| WardError::internal("cannot narrow the token", error))?;
        Ok(AccessToken {
            token: narrowed,
            expires_at,
        })
    }

    fn parse(&self, token: &str) -> Result<Biscuit, String> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(format!("token length {} is out of range", token.len()));
        }
        let keys = self.keys.clone();
        let key_for = move |key_id_opt: Option<u32>| {
            let found = match key_id_opt {
                Some(key_id) => keys.iter().find(|(known_id, _)| *known_id == key_id),
                // Tokens without an id predate key ids; only the current key can have signed them.
                None => keys.first(),
            };
            found
                .map(|(_, key)| *key)
                .ok_or(biscuit_auth::error::Format::UnknownPublicKey)
        };
        Biscuit::from_base64(token, key_for).map_err(|e| e.to_string())
    }

    /// Returns why a token is rejected, for the debug log only. The signature and claims of a
    /// token are checked once and remembered; expiry and revocation are checked on every call.
    fn verify_inner(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, Rejection> {
        let verified = match self.verified.get(token) {
            Some(verified) => verified,
            None => {
                let biscuit = self.parse(token)?;
                let claims = read_claims(&biscuit)?;
                let verified = Arc::new(VerifiedToken {
                    narrowed: biscuit.block_count() > 1,
                    biscuit,
                    claims,
                    allowed_rights: Mutex::default(),
                });
                if now < verified.claims.expires_at {
                    self.verified.insert(token, verified.clone(), now);
                }
                verified
            }
        };
        let claims = &verified.claims;
        if now >= claims.expires_at {
            return Err(Rejection {
                outcome: TokenOutcome::Expired,
                reason: "the token has expired".into(),
            });
        }
        if self
            .revocations
            .is_revoked(claims.session_id, claims.user_id, claims.issued_at)
        {
            return Err(Rejection {
                outcome: TokenOutcome::Revoked,
                reason: "the token's session or user has been revoked".into(),
            });
        }
        let now_secs = unix_secs(now).ok_or("the clock is before 1970")?;
        Ok(Principal {
            user_id: claims.user_id,
            email: claims.email.clone(),
            role: claims.role,
            rights: rights_granted(claims.role, &claims.token_rights),
            session_id: claims.session_id,
            expires_at: claims.expires_at,
            // The token's own checks (expiry, narrowing) run with the policy on every access.
            policy: Arc::new(TokenPolicy {
                token: verified.clone(),
                now_secs,
            }),
        })
    }
}

/// A token whose signature and claims were checked, shared by every request that presents it.
struct VerifiedToken {
    biscuit: Biscuit,
    claims: TokenClaims,
    /// Whether the holder appended blocks (narrowed tokens cannot manage sessions or accounts).
    narrowed: bool,
    /// Rights the policy allowed this token (unnarrowed tokens only): see [`TokenPolicy`].
    allowed_rights: Mutex<Vec<Right>>,
}

/// The tokens a verifier has checked, by their text (the whole text, so no two tokens can
/// share an entry). Only valid tokens enter, so only token holders can fill it, and it is
/// bounded.
struct VerifiedTokens {
    by_text: Mutex<HashMap<String, Arc<VerifiedToken>>>,
    capacity: usize,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::with_capacity(MAX_VERIFIED_TOKENS)
    }
}

impl fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are bearer secrets: only the count is shown.
        let count = self.lock().len();
        f.debug_struct("VerifiedTokens")
            .field("count", &count)
            .finish()
    }
}

impl VerifiedTokens {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            by_text: Mutex::default(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<VerifiedToken>>> {
        // A panic while holding the lock cannot leave the map half-changed: each change is one call.
        self.by_text.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, token: &str) -> Option<Arc<VerifiedToken>> {
        self.lock().get(token).cloned()
    }

    fn insert(&self, token: &str, verified: Arc<VerifiedToken>, now: DateTime<Utc>) {
        let mut by_text = self.lock();
        if by_text.len() >= self.capacity {
            by_text.retain(|_, known| now < known.claims.expires_at);
        }
        if by_text.len() >= self.capacity {
            // Every entry is live: start over rather than track use; a token only costs one
            // more full check.
            by_text.clear();
        }
        by_text.insert(token.to_string(), verified);
    }
}

/// Reads identity and rights from the authority block. Rules run under the limits, so hostile
/// appended rules cannot burn CPU; queries see the authority block and the authorizer only.
fn read_claims(biscuit: &Biscuit) -> Result<TokenClaims, String> {
    let mut authorizer = AuthorizerBuilder::new()
        .set_limits(authorizer_limits())
        .build(biscuit)
        .map_err(|e| e.to_string())?;
    let user_ids: Vec<(String,)> = authorizer
        .query("found($id) <- user($id)")
        .map_err(|e| e.to_string())?;
    let emails: Vec<(String,)> = authorizer
        .query("found($email) <- email($email)")
        .map_err(|e| e.to_string())?;
    let roles: Vec<(String,)> = authorizer
        .query("found($role) <- role($role)")
        .map_err(|e| e.to_string())?;
    let sessions: Vec<(String,)> = authorizer
        .query("found($session) <- session($session)")
        .map_err(|e| e.to_string())?;
    let issued: Vec<(i64,)> = authorizer
        .query("found($ms) <- issued_at($ms)")
        .map_err(|e| e.to_string())?;
    let expiries: Vec<(std::time::SystemTime,)> = authorizer
        .query("found($date) <- expires_at($date)")
        .map_err(|e| e.to_string())?;
    let right_names: Vec<(String,)> = authorizer
        .query("found($right) <- right($right)")
        .map_err(|e| e.to_string())?;

    let user_id = Uuid::parse_str(&exactly_one(user_ids, "user")?)
        .map_err(|e| format!("bad user id: {e}"))?;
    let session_id = Uuid::parse_str(&exactly_one(sessions, "session")?)
        .map_err(|e| format!("bad session id: {e}"))?;
    let issued_at = exactly_one(issued, "issued_at")
        .and_then(|ms| DateTime::from_timestamp_millis(ms).ok_or("bad issued_at".into()))?;
    // A narrowing block may name an earlier end. Facts of appended blocks are read on purpose
    // here: whatever a holder writes, the earliest date wins, so it can only shorten the token.
    let narrowed_ends: Vec<(std::time::SystemTime,)> = authorizer
        .query_all("found($date) <- valid_until($date)")
        .map_err(|e| e.to_string())?;
    let expires_at = narrowed_ends
        .into_iter()
        .map(|(end,)| DateTime::<Utc>::from(end))
        .fold(
            DateTime::<Utc>::from(exactly_one(expiries, "expires_at")?),
            DateTime::min,
        );
    Ok(TokenClaims {
        user_id,
        email: exactly_one(emails, "email")?,
        role: UserRole::from_str(&exactly_one(roles, "role")?)?,
        session_id,
        issued_at,
        expires_at,
        token_rights: right_names
            .iter()
            .filter_map(|(name,)| Right::parse(name))
            .collect(),
    })
}

/// Why a token was rejected: the outcome counted in `ward_token_verifications_total`, and a
/// reason for the debug log only.
#[derive(Debug)]
struct Rejection {
    outcome: TokenOutcome,
    reason: String,
}

/// Any failure to read a token makes it invalid.
impl From<String> for Rejection {
    fn from(reason: String) -> Self {
        Self {
            outcome: TokenOutcome::Invalid,
            reason,
        }
    }
}

impl From<&str> for Rejection {
    fn from(reason: &str) -> Self {
        Self::from(reason.to_string())
    }
}

/// The per-access decision for one verified token at one instant (the request's).
///
/// An unnarrowed token's decision depends only on the right asked for: its one block names the
/// user, role and rights, and its only check is the expiry, which [`TokenVerifier::verify`]
/// enforces on every request. So a right allowed once is allowed without evaluating again;
/// refusals, and every decision for a narrowed token (whose checks read the patients touched),
/// are evaluated each time.
struct TokenPolicy {
    token: Arc<VerifiedToken>,
    now_secs: u64,
}

impl fmt::Debug for TokenPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a bearer secret: never printed.
        f.debug_struct("TokenPolicy")
            .field("blocks", &self.token.biscuit.block_count())
            .field("narrowed", &self.token.narrowed)
            .finish_non_exhaustive()
    }
}

impl AccessPolicy for TokenPolicy {
    fn authorize(&self, right: Right, patient_ids: &[Uuid]) -> Result<(), String> {
        if !self.token.narrowed && self.allowed_rights().contains(&right) {
            return Ok(());
        }
        let params = HashMap::from([
            ("now".to_string(), Term::Date(self.now_secs)),
            (
                "operation".to_string(),
                Term::Str(right.as_str().to_string()),
            ),
        ]);
        let mut authorizer_builder = AuthorizerBuilder::new()
            .set_limits(authorizer_limits())
            .code_with_params(POLICY_CODE, params, HashMap::new())
            .map_err(|e| e.to_string())?;
        for role in UserRole::ALL {
            for role_right in role.rights() {
                authorizer_builder = authorizer_builder
                    .fact(builder::fact(
                        "role_right",
                        &[
                            builder::string(role.as_str()),
                            builder::string(role_right.as_str()),
                        ],
                    ))
                    .map_err(|e| e.to_string())?;
            }
        }
        for patient_id in patient_ids {
            authorizer_builder = authorizer_builder
                .fact(builder::fact(
                    "patient",
                    &[builder::string(&patient_id.to_string())],
                ))
                .map_err(|e| e.to_string())?;
        }
        let mut authorizer = authorizer_builder
            .build(&self.token.biscuit)
            .map_err(|e| e.to_string())?;
        let decision = authorizer
            .authorize()
            .map(|_| ())
            .map_err(|e| e.to_string());
        match &decision {
            Ok(()) if !self.token.narrowed => {
                let mut allowed = self.allowed_rights();
                if !allowed.contains(&right) {
                    allowed.push(right);
                }
            }
            Ok(()) => {}
            Err(_) => metrics::count_authz_denial(right.as_str()),
        }
        decision
    }

    fn is_narrowed(&self) -> bool {
        self.token.narrowed
    }
}

impl TokenPolicy {
    fn allowed_rights(&self) -> std::sync::MutexGuard<'_, Vec<Right>> {
        // A plain list of rights cannot be left inconsistent by a panic.
        self.token
            .allowed_rights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn read_public_key(path: &Path) -> WardResult<PublicKey> {
    let content = read_key_file(path, "token verification key")?;
    key_text::parse_public_key(&content).map_err(|error| {
        WardError::Unavailable(format!(
            "the token verification key {} is not a valid `ed25519/<hex>` or PEM key: {error}",
            path.display()
        ))
    })
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

fn exactly_one<T>(mut values: Vec<(T,)>, fact_name: &str) -> Result<T, String> {
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
            disabled: false,
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
        let session = issuer.issue(&clinician, Uuid::now_v7(), 900, now).unwrap();
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
            let session = issuer.issue(&user(role), Uuid::now_v7(), 60, now).unwrap();
            let principal = issuer.verifier().verify(&session.token, now).unwrap();
            assert_eq!(principal.role, role);
            assert_eq!(principal.rights, role.rights().to_vec());
        }
    }

    #[test]
    fn token_is_rejected_from_its_expiry_on() {
        let issuer = test_issuer();
        let session = issuer
            .issue(
                &user(UserRole::Admin),
                Uuid::now_v7(),
                60,
                at(1_700_000_000),
            )
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
            .issue(&user(UserRole::Admin), Uuid::now_v7(), 60, now)
            .unwrap();
        assert_rejected(test_issuer().verifier().verify(&session.token, now));
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = at(1_700_000_000);
        let session = issuer
            .issue(&user(UserRole::Admin), Uuid::now_v7(), 60, now)
            .unwrap();
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
            (
                "session_id".to_string(),
                Term::Str(Uuid::now_v7().to_string()),
            ),
            ("issued_at_ms".to_string(), Term::Integer(1_700_000_000_000)),
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
        let session = issuer
            .issue(&user(UserRole::Analyst), Uuid::now_v7(), 600, now)
            .unwrap();
        let biscuit = Biscuit::from_base64(&session.token, issuer.key_pair.public()).unwrap();

        // A holder cannot add identity or rights in an appended block.
        let widening = BlockBuilder::new()
            .code(r#"right("users:admin"); user("00000000-0000-0000-0000-000000000000");"#)
            .unwrap();
        let widened = biscuit.append(widening).unwrap().to_base64().unwrap();
        let principal = verifier.verify(&widened, now).unwrap();
        assert_eq!(principal.rights, vec![Right::AnalyticsRead]);
        assert_ne!(principal.user_id, Uuid::nil());

        // A holder can shorten the lifetime; the verifier sees the earlier end.
        let narrowing = Narrowing {
            expires_at_opt: Some(at(1_700_000_010)),
            ..Narrowing::default()
        };
        let narrowed = verifier.narrow(&session.token, &narrowing, now).unwrap();
        assert_eq!(narrowed.expires_at, at(1_700_000_010));
        assert!(verifier.verify(&narrowed.token, now).is_ok());
        assert_rejected(verifier.verify(&narrowed.token, at(1_700_000_010)));
    }

    /// Every right, with no patient, one patient and two patients.
    fn accesses() -> Vec<(Right, Vec<Uuid>)> {
        let (one, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut accesses = Vec::new();
        for right in Right::ALL {
            for patient_ids in [vec![], vec![one], vec![one, other]] {
                accesses.push((right, patient_ids));
            }
        }
        accesses
    }

    #[test]
    fn the_policy_follows_the_role_table() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = at(1_700_000_000);
        for role in UserRole::ALL {
            let session = issuer.issue(&user(role), Uuid::now_v7(), 600, now).unwrap();
            let principal = verifier.verify(&session.token, now).unwrap();
            assert!(!principal.is_narrowed());
            for (right, patient_ids) in accesses() {
                let allowed = principal.policy.authorize(right, &patient_ids).is_ok();
                assert_eq!(allowed, role.rights().contains(&right), "{role} {right}");
            }
        }
    }

    #[test]
    fn a_narrowed_token_never_does_more_than_its_parent() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = at(1_700_000_000);
        let patient = Uuid::now_v7();
        let narrowings = [
            Narrowing {
                read_only: true,
                ..Narrowing::default()
            },
            Narrowing {
                patient_id_opt: Some(patient),
                ..Narrowing::default()
            },
            Narrowing {
                read_only: true,
                patient_id_opt: Some(patient),
                expires_at_opt: Some(at(1_700_000_100)),
            },
        ];
        for role in UserRole::ALL {
            let session = issuer.issue(&user(role), Uuid::now_v7(), 600, now).unwrap();
            let parent = verifier.verify(&session.token, now).unwrap();
            for narrowing in &narrowings {
                let narrowed = verifier.narrow(&session.token, narrowing, now).unwrap();
                let child = verifier.verify(&narrowed.token, now).unwrap();
                assert!(child.is_narrowed());
                assert_eq!(child.user_id, parent.user_id);
                // Narrowing the narrowed token again only takes more away.
                let twice = Narrowing {
                    read_only: true,
                    ..Narrowing::default()
                };
                let grandchild_token = verifier.narrow(&narrowed.token, &twice, now).unwrap();
                let grandchild = verifier.verify(&grandchild_token.token, now).unwrap();
                let mut accesses = accesses();
                accesses.push((Right::PatientsRead, vec![patient]));
                accesses.push((Right::PatientsWrite, vec![patient]));
                for (right, patient_ids) in accesses {
                    let parent_allows = parent.policy.authorize(right, &patient_ids).is_ok();
                    let child_allows = child.policy.authorize(right, &patient_ids).is_ok();
                    let grandchild_allows =
                        grandchild.policy.authorize(right, &patient_ids).is_ok();
                    assert!(
                        !child_allows || parent_allows,
                        "{role} {right} {narrowing:?}"
                    );
                    assert!(!grandchild_allows || child_allows, "{role} {right}");
                    let expected = parent_allows
                        && (!narrowing.read_only || right.as_str().ends_with(":read"))
                        && narrowing.patient_id_opt.is_none_or(|only| {
                            !patient_ids.is_empty() && patient_ids.iter().all(|id| *id == only)
                        });
                    assert_eq!(
                        child_allows, expected,
                        "{role} {right} {patient_ids:?} {narrowing:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn narrowing_needs_something_to_narrow_and_a_valid_token() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = at(1_700_000_000);
        let session = issuer
            .issue(&user(UserRole::Admin), Uuid::now_v7(), 60, now)
            .unwrap();
        let error = verifier
            .narrow(&session.token, &Narrowing::default(), now)
            .unwrap_err();
        assert!(
            matches!(error, WardError::InvalidArgument { .. }),
            "{error:?}"
        );
        let read_only = Narrowing {
            read_only: true,
            ..Narrowing::default()
        };
        let error = verifier
            .narrow(&session.token, &read_only, at(1_700_000_060))
            .unwrap_err();
        assert!(matches!(error, WardError::Unauthenticated(_)), "{error:?}");
        // A later expiry than the token's own changes nothing.
        let later = Narrowing {
            expires_at_opt: Some(at(1_800_000_000)),
            ..Narrowing::default()
        };
        let narrowed = verifier.narrow(&session.token, &later, now).unwrap();
        assert_eq!(narrowed.expires_at, session.expires_at);
    }

    #[test]
    fn revoked_sessions_and_users_are_rejected() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = Utc::now();
        let (session_a, session_b) = (Uuid::now_v7(), Uuid::now_v7());
        let ada = user(UserRole::Clinician);
        let token_a = issuer.issue(&ada, session_a, 60, now).unwrap().token;
        let token_b = issuer.issue(&ada, session_b, 60, now).unwrap().token;
        verifier.revocations().revoke_session(session_a, now);
        assert_rejected(verifier.verify(&token_a, now));
        assert!(verifier.verify(&token_b, now).is_ok());
        // A clone shares the set, as every request's verifier does.
        verifier
            .clone()
            .revocations()
            .revoke_user_tokens(ada.id, now + chrono::TimeDelta::milliseconds(1));
        assert_rejected(verifier.verify(&token_b, now));
        let later = now + chrono::TimeDelta::milliseconds(5);
        let token_c = issuer.issue(&ada, session_b, 60, later).unwrap().token;
        assert!(verifier.verify(&token_c, later).is_ok());
    }

    #[test]
    fn rejections_say_expired_revoked_or_invalid() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = Utc::now();
        let session_id = Uuid::now_v7();
        let billing = user(UserRole::Billing);
        let token = issuer.issue(&billing, session_id, 60, now).unwrap().token;
        let outcome_at = |token: &str, at: DateTime<Utc>| match verifier.verify_inner(token, at) {
            Ok(_) => TokenOutcome::Ok,
            Err(rejection) => rejection.outcome,
        };
        assert_eq!(outcome_at(&token, now), TokenOutcome::Ok);
        let after_expiry = now + chrono::TimeDelta::seconds(61);
        assert_eq!(outcome_at(&token, after_expiry), TokenOutcome::Expired);
        assert_eq!(outcome_at("not-a-token", now), TokenOutcome::Invalid);
        verifier.revocations().revoke_session(session_id, now);
        assert_eq!(outcome_at(&token, now), TokenOutcome::Revoked);
    }

    #[test]
    fn a_token_is_checked_once_but_its_refusals_every_time() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = Utc::now();
        let token = issuer
            .issue(&user(UserRole::Analyst), Uuid::now_v7(), 60, now)
            .unwrap()
            .token;
        let first = verifier.verify(&token, now).unwrap();
        let second = verifier.clone().verify(&token, now).unwrap();
        assert_eq!(
            verifier.verified.lock().len(),
            1,
            "clones share what was verified"
        );
        assert_eq!(first.user_id, second.user_id);
        assert!(first.policy.authorize(Right::AnalyticsRead, &[]).is_ok());
        // Allowed once, remembered; refused, evaluated (and refused) again.
        for principal in [&first, &second, &first] {
            assert!(
                principal
                    .policy
                    .authorize(Right::AnalyticsRead, &[])
                    .is_ok()
            );
            assert!(
                principal
                    .policy
                    .authorize(Right::BillingWrite, &[])
                    .is_err()
            );
            assert!(principal.policy.authorize(Right::UsersAdmin, &[]).is_err());
        }
        // Garbage is never remembered.
        assert_rejected(verifier.verify("not-a-token", now));
        assert_eq!(verifier.verified.lock().len(), 1);
    }

    #[test]
    fn a_narrowed_token_is_decided_per_patient_every_time() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = Utc::now();
        let (patient_a, patient_b) = (Uuid::now_v7(), Uuid::now_v7());
        let session = issuer
            .issue(&user(UserRole::Clinician), Uuid::now_v7(), 60, now)
            .unwrap();
        let narrowing = Narrowing {
            patient_id_opt: Some(patient_a),
            ..Narrowing::default()
        };
        let narrowed = verifier.narrow(&session.token, &narrowing, now).unwrap();
        for _ in 0..2 {
            let principal = verifier.verify(&narrowed.token, now).unwrap();
            assert!(
                principal
                    .policy
                    .authorize(Right::PatientsRead, &[patient_a])
                    .is_ok()
            );
            assert!(
                principal
                    .policy
                    .authorize(Right::PatientsRead, &[patient_b])
                    .is_err()
            );
            assert!(
                principal
                    .policy
                    .authorize(Right::PatientsRead, &[])
                    .is_err()
            );
        }
    }

    #[test]
    fn remembered_tokens_are_bounded_expired_ones_going_first() {
        let issuer = test_issuer();
        let verifier = TokenVerifier {
            verified: Arc::new(VerifiedTokens::with_capacity(3)),
            ..issuer.verifier()
        };
        let now = Utc::now();
        let later = now + chrono::TimeDelta::seconds(2);
        let analyst = user(UserRole::Analyst);
        let issue = |ttl_secs| {
            issuer
                .issue(&analyst, Uuid::now_v7(), ttl_secs, now)
                .unwrap()
                .token
        };
        let short = issue(1);
        let (long_a, long_b, long_c, long_d) = (issue(60), issue(60), issue(60), issue(60));
        for token in [&short, &long_a, &long_b] {
            verifier.verify(token, now).unwrap();
        }
        assert_eq!(verifier.verified.lock().len(), 3);
        // Full: the expired entry makes room.
        verifier.verify(&long_c, later).unwrap();
        let known = verifier.verified.lock().keys().cloned().collect::<Vec<_>>();
        assert!(known.len() == 3 && !known.contains(&short));
        // Full of live tokens: the set starts over.
        verifier.verify(&long_d, later).unwrap();
        assert_eq!(verifier.verified.lock().len(), 1);
        // What was forgotten still verifies, by a full check.
        assert!(verifier.verify(&long_a, later).is_ok());
        assert_rejected(verifier.verify(&short, later));
    }

    /// The value of `series` in the process-wide registry (other tests add to it concurrently).
    fn counted(series: &str) -> f64 {
        let text = metrics::render();
        for line in text.lines() {
            if let Some(value) = line
                .strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
            {
                return value.parse().unwrap();
            }
        }
        0.0
    }

    #[test]
    fn verifications_and_denials_are_counted() {
        let issuer = test_issuer();
        let verifier = issuer.verifier();
        let now = Utc::now();
        let token = issuer
            .issue(&user(UserRole::Analyst), Uuid::now_v7(), 60, now)
            .unwrap()
            .token;
        let invalid = r#"ward_token_verifications_total{outcome="invalid"}"#;
        let denied = r#"ward_authz_denials_total{right="billing:write"}"#;
        let (invalid_before, denied_before) = (counted(invalid), counted(denied));

        assert_rejected(verifier.verify("not-a-token", now));
        let principal = verifier.verify(&token, now).unwrap();
        let refused = principal.policy.authorize(Right::BillingWrite, &[]);
        let allowed = principal.policy.authorize(Right::AnalyticsRead, &[]);

        assert!(refused.is_err() && allowed.is_ok());
        assert!(counted(invalid) >= invalid_before + 1.0);
        assert!(counted(denied) >= denied_before + 1.0);
        assert!(counted(r#"ward_token_verifications_total{outcome="ok"}"#) >= 1.0);
    }

    #[test]
    fn several_keys_can_be_trusted_at_once() {
        let folder = unique_temp_dir();
        let (old_private, old_public) = (folder.join("old.key"), folder.join("old.pub"));
        let (new_private, new_public) = (folder.join("new.key"), folder.join("new.pub"));
        generate_key_files(&old_private, &old_public).unwrap();
        generate_key_files(&new_private, &new_public).unwrap();
        let old_issuer = TokenIssuer::from_file(&old_private).unwrap();
        let new_issuer = TokenIssuer::from_file(&new_private).unwrap();
        assert_ne!(old_issuer.key_id(), new_issuer.key_id());
        let now = at(1_700_000_000);
        let old_token = old_issuer
            .issue(&user(UserRole::Admin), Uuid::now_v7(), 60, now)
            .unwrap()
            .token;
        let new_token = new_issuer
            .issue(&user(UserRole::Admin), Uuid::now_v7(), 60, now)
            .unwrap()
            .token;

        let only_new = TokenVerifier::from_file(&new_public).unwrap();
        assert!(only_new.verify(&new_token, now).is_ok());
        assert_rejected(only_new.verify(&old_token, now));
        let both = only_new.trusting_file(&old_public).unwrap();
        assert!(both.verify(&new_token, now).is_ok());
        assert!(both.verify(&old_token, now).is_ok());
        // Trusting the same key twice is harmless.
        assert!(both.clone().trusting_file(&old_public).is_ok());
        let _ = std::fs::remove_dir_all(&folder);
    }

    #[test]
    fn hostile_rules_hit_the_limits() {
        let issuer = test_issuer();
        let now = at(1_700_000_000);
        let session = issuer
            .issue(&user(UserRole::Admin), Uuid::now_v7(), 600, now)
            .unwrap();
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
        let reason = verifier.verify_inner(&token, now).unwrap_err().reason;
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
        let session = issuer
            .issue(&user(UserRole::Billing), Uuid::now_v7(), 60, now)
            .unwrap();
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
        let session = issuer
            .issue(&user(UserRole::Admin), Uuid::now_v7(), 60, now)
            .unwrap();
        assert!(verifier.verify(&session.token, now).is_ok());
        let _ = std::fs::remove_dir_all(&folder);
    }
}

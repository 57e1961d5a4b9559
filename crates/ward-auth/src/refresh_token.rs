//! Refresh tokens: `wrt_` and 64 hex digits (32 random bytes), stored as their SHA-256 only.
//!
//! The functions that touch the table take the caller's connection, so they run inside the
//! transaction of the change they belong to.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use ward_bus::db::db_error;
use ward_core::{WardError, WardResult};

use crate::entity::refresh_tokens;

/// Marks Ward's refresh tokens, so a leaked one is recognisable (secret scanners, logs).
const TOKEN_PREFIX: &str = "wrt_";
const NUM_RANDOM_BYTES: usize = 32;

/// A new refresh token: the text goes to the client once, the hash to the database.
pub(crate) struct NewRefreshToken {
    pub(crate) text: String,
    pub(crate) hash: String,
}

/// Returns a new random token.
pub(crate) fn generate() -> WardResult<NewRefreshToken> {
    let mut bytes = [0_u8; NUM_RANDOM_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| WardError::internal("no randomness for a refresh token", error))?;
    let text = format!("{TOKEN_PREFIX}{}", to_hex(&bytes));
    let hash = hash(&text);
    Ok(NewRefreshToken { text, hash })
}

/// Whether `text` has the shape of a token Ward issued; others are refused without a lookup.
pub(crate) fn is_well_formed(text: &str) -> bool {
    let Some(digits) = text.strip_prefix(TOKEN_PREFIX) else {
        return false;
    };
    let is_right_length = digits.len() == 2 * NUM_RANDOM_BYTES;
    is_right_length
        && digits
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Lowercase hex SHA-256 of the token text. Unsalted on purpose: the token is 256 random bits,
/// so it cannot be guessed from its hash, and the hash must be found by equality.
pub(crate) fn hash(text: &str) -> String {
    to_hex(&Sha256::digest(text.as_bytes()))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Returns `now + ttl_secs`; the settings bound the lifetime, so overflow is a bug.
pub(crate) fn expiry(now: DateTime<Utc>, ttl_secs: u64) -> WardResult<DateTime<Utc>> {
    i64::try_from(ttl_secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .and_then(|ttl| now.checked_add_signed(ttl))
        .ok_or_else(|| WardError::Internal("refresh token lifetime is out of range".into()))
}

/// Stores a token of `session_id`, valid until `expires_at`.
pub(crate) async fn insert<C: ConnectionTrait>(
    conn: &C,
    token: &NewRefreshToken,
    session_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> WardResult<()> {
    let row = refresh_tokens::ActiveModel {
        id: ActiveValue::Set(ward_core::id::new_id()),
        session_id: ActiveValue::Set(session_id),
        user_id: ActiveValue::Set(user_id),
        token_hash: ActiveValue::Set(token.hash.clone()),
        created_at: ActiveValue::Set(now),
        expires_at: ActiveValue::Set(expires_at),
        spent_at: ActiveValue::Set(None),
        revoked_at: ActiveValue::Set(None),
    };
    refresh_tokens::Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(|error| db_error("cannot store the refresh token", error))?;
    Ok(())
}

/// Finds a token by the hash of its text.
pub(crate) async fn find<C: ConnectionTrait>(
    conn: &C,
    token_hash: &str,
) -> WardResult<Option<refresh_tokens::Model>> {
    refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(token_hash))
        .one(conn)
        .await
        .map_err(|error| db_error("cannot look up the refresh token", error))
}

/// Finds a token by the hash of its text, locking its row until the transaction ends
/// (PostgreSQL; SQLite's write transaction already excludes other writers).
pub(crate) async fn find_for_update<C: ConnectionTrait>(
    conn: &C,
    token_hash: &str,
) -> WardResult<Option<refresh_tokens::Model>> {
    refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(token_hash))
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(|error| db_error("cannot look up the refresh token", error))
}

/// Whether any token of `session_id` was revoked: a session ends as a whole, so a token added by
/// a refresh that raced the revocation is refused as well.
pub(crate) async fn is_session_revoked<C: ConnectionTrait>(
    conn: &C,
    session_id: Uuid,
) -> WardResult<bool> {
    let num_revoked = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::SessionId.eq(session_id))
        .filter(refresh_tokens::Column::RevokedAt.is_not_null())
        .count(conn)
        .await
        .map_err(|error| db_error("cannot check the session", error))?;
    Ok(num_revoked > 0)
}

/// Marks the token spent, unless it already is (or was revoked) by a concurrent request;
/// returns whether this call spent it.
pub(crate) async fn spend<C: ConnectionTrait>(
    conn: &C,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> WardResult<bool> {
    let result = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::SpentAt, Expr::value(now))
        .filter(refresh_tokens::Column::Id.eq(token_id))
        .filter(refresh_tokens::Column::SpentAt.is_null())
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(conn)
        .await
        .map_err(|error| db_error("cannot spend the refresh token", error))?;
    Ok(result.rows_affected == 1)
}

/// Revokes every live token of one session; returns how many.
pub(crate) async fn revoke_session<C: ConnectionTrait>(
    conn: &C,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> WardResult<u64> {
    let result = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(now))
        .filter(refresh_tokens::Column::SessionId.eq(session_id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(conn)
        .await
        .map_err(|error| db_error("cannot revoke the session", error))?;
    Ok(result.rows_affected)
}

/// Revokes every live token of every session of `user_id`; returns how many.
pub(crate) async fn revoke_user<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> WardResult<u64> {
    let result = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(now))
        .filter(refresh_tokens::Column::UserId.eq(user_id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(conn)
        .await
        .map_err(|error| db_error("cannot revoke the account's sessions", error))?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_hex_and_hash_to_sha256_hex() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert!(first.text.starts_with("wrt_"));
        assert_eq!(first.text.len(), 4 + 64);
        assert!(is_well_formed(&first.text));
        assert_ne!(first.text, second.text);
        assert_eq!(first.hash, hash(&first.text));
        assert_eq!(first.hash.len(), 64);
        assert_ne!(first.hash, first.text[4..]);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn foreign_shapes_are_not_well_formed() {
        let valid = format!("wrt_{}", "0a".repeat(32));
        assert!(is_well_formed(&valid));
        for invalid in [
            String::new(),
            "wrt_".into(),
            "0a".repeat(34),
            format!("wrt_{}", "0A".repeat(32)),
            format!("wrt_{}", "0a".repeat(33)),
            format!("xyz_{}", "0a".repeat(32)),
        ] {
            assert!(!is_well_formed(&invalid), "{invalid}");
        }
    }

    #[test]
    fn expiry_adds_whole_seconds_and_refuses_overflow() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            expiry(now, 60).unwrap(),
            DateTime::from_timestamp(1_700_000_060, 0).unwrap()
        );
        assert!(expiry(now, u64::MAX).is_err());
    }
}

//! [`Revocation`]: the access-token revocations the auth module announces on `ward.auth.v1`.
//!
//! Each one is written to the outbox in the transaction of the change that causes it, so the
//! event leaves if and only if the change commits. Every verifying process learns it from the
//! event; the auth process may also apply it to its own set right after the commit.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;
use ward_bus::events::{AUTH_TOPIC, SessionRevoked, UserTokensRevoked, envelope};
use ward_bus::outbox::enqueue;
use ward_bus::revocation::Revocations;
use ward_core::WardResult;

/// The `producer` of the auth module's events.
const PRODUCER: &str = "auth";

/// Why a session or an account's tokens were revoked, as the events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevocationReason {
    Logout,
    RefreshTokenReuse,
    PasswordChanged,
    RoleChanged,
    Disabled,
}

impl RevocationReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::PasswordChanged => "password_changed",
            Self::RoleChanged => "role_changed",
            Self::Disabled => "disabled",
        }
    }
}

/// One revocation of access tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revocation {
    /// Every token of one session, whenever it was issued.
    Session {
        session_id: Uuid,
        user_id: Uuid,
        revoked_at: DateTime<Utc>,
        reason: RevocationReason,
    },
    /// Every token of one account issued before `revoked_before`.
    UserTokens {
        user_id: Uuid,
        revoked_before: DateTime<Utc>,
        reason: RevocationReason,
    },
}

impl Revocation {
    /// Adds the event to the outbox inside the caller's transaction; the record key is the user
    /// id, so one account's revocations stay in order.
    pub(crate) async fn enqueue<C: ConnectionTrait>(
        &self,
        txn: &C,
        request_id: &str,
    ) -> WardResult<()> {
        let event = match self {
            Self::Session {
                session_id,
                user_id,
                revoked_at,
                reason,
            } => {
                let payload = SessionRevoked {
                    session_id: session_id.to_string(),
                    user_id: user_id.to_string(),
                    revoked_at: format_instant(*revoked_at),
                    reason: reason.as_str().to_string(),
                };
                envelope(PRODUCER, *user_id, request_id, *revoked_at, &payload)
            }
            Self::UserTokens {
                user_id,
                revoked_before,
                reason,
            } => {
                let payload = UserTokensRevoked {
                    user_id: user_id.to_string(),
                    revoked_before: format_instant(*revoked_before),
                    reason: reason.as_str().to_string(),
                };
                envelope(PRODUCER, *user_id, request_id, *revoked_before, &payload)
            }
        };
        enqueue(txn, AUTH_TOPIC, &event).await
    }

    /// Applies the revocation to this process's set (call after the commit only).
    pub(crate) fn apply_to(&self, revocations: &Revocations) {
        match self {
            Self::Session {
                session_id,
                revoked_at,
                ..
            } => revocations.revoke_session(*session_id, *revoked_at),
            Self::UserTokens {
                user_id,
                revoked_before,
                ..
            } => revocations.revoke_user_tokens(*user_id, *revoked_before),
        }
    }

    /// Logs what was revoked (ids and reason; never a token).
    pub(crate) fn log(&self) {
        match self {
            Self::Session {
                session_id,
                user_id,
                reason,
                ..
            } => tracing::info!(%session_id, %user_id, reason = reason.as_str(), "session revoked"),
            Self::UserTokens {
                user_id, reason, ..
            } => tracing::info!(%user_id, reason = reason.as_str(), "account tokens revoked"),
        }
    }
}

/// RFC 3339 in UTC with microseconds, as the event schema asks.
fn format_instant(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Returns the first whole millisecond at or after `now`: the cut of a user-token revocation.
///
/// Tokens record when they were issued in whole milliseconds, rounded down, and a verifier
/// revokes those issued before the cut. With the cut on a millisecond boundary, and the change
/// committed only once the clock has passed it ([`wait_until`]), every token issued before the
/// change is revoked and none issued after it (such as the refresh that picks up a new role).
pub(crate) fn revocation_cut(now: DateTime<Utc>) -> DateTime<Utc> {
    let whole_millis = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    if whole_millis == now {
        now
    } else {
        whole_millis + TimeDelta::milliseconds(1)
    }
}

/// Waits until the clock reads `instant` or later (under a millisecond after
/// [`revocation_cut`]).
pub(crate) async fn wait_until(instant: DateTime<Utc>) {
    loop {
        let Ok(remaining) = (instant - Utc::now()).to_std() else {
            return;
        };
        if remaining.is_zero() {
            return;
        }
        tokio::time::sleep(remaining.max(Duration::from_micros(100))).await;
    }
}

#[cfg(test)]
mod tests {
    use ward_bus::events::decode_payload;

    use super::*;

    fn at_micros(micros: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(micros).unwrap()
    }

    #[test]
    fn the_cut_is_the_next_whole_millisecond() {
        let on_boundary = at_micros(1_700_000_000_123_000);
        assert_eq!(revocation_cut(on_boundary), on_boundary);
        assert_eq!(
            revocation_cut(at_micros(1_700_000_000_123_001)),
            at_micros(1_700_000_000_124_000)
        );
        assert_eq!(
            revocation_cut(at_micros(1_700_000_000_123_999)),
            at_micros(1_700_000_000_124_000)
        );
    }

    #[tokio::test]
    async fn waiting_for_the_cut_passes_it() {
        let cut = revocation_cut(Utc::now());
        wait_until(cut).await;
        assert!(Utc::now() >= cut);
        // An instant already past returns at once.
        wait_until(cut - TimeDelta::seconds(1)).await;
    }

    #[test]
    fn both_kinds_apply_to_a_revocation_set() {
        let revocations = Revocations::default();
        let (session_id, user_id, other_user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let now = Utc::now();
        Revocation::Session {
            session_id,
            user_id,
            revoked_at: now,
            reason: RevocationReason::Logout,
        }
        .apply_to(&revocations);
        Revocation::UserTokens {
            user_id: other_user,
            revoked_before: now,
            reason: RevocationReason::Disabled,
        }
        .apply_to(&revocations);

        assert!(revocations.is_revoked(session_id, user_id, now));
        let earlier = now - TimeDelta::milliseconds(1);
        assert!(revocations.is_revoked(Uuid::now_v7(), other_user, earlier));
        assert!(!revocations.is_revoked(Uuid::now_v7(), other_user, now));
    }

    #[test]
    fn payloads_carry_microsecond_instants_and_reasons() {
        let revoked_before = at_micros(1_700_000_000_123_456);
        let user_id = Uuid::now_v7();
        let payload = UserTokensRevoked {
            user_id: user_id.to_string(),
            revoked_before: format_instant(revoked_before),
            reason: RevocationReason::RoleChanged.as_str().into(),
        };
        let event = envelope(PRODUCER, user_id, "r", revoked_before, &payload);
        let decoded: UserTokensRevoked = decode_payload(&event).unwrap();
        assert_eq!(decoded.revoked_before, "2023-11-14T22:13:20.123456Z");
        assert_eq!(decoded.reason, "role_changed");
        assert_eq!(event.subject_id, user_id.to_string());
    }
}

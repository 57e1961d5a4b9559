//! Revoked sessions and users, as every token-verifying process knows them.
//!
//! The auth module writes `SessionRevoked` and `UserTokensRevoked` to `ward.auth.v1` (through its
//! outbox, in the same transaction as the change). Each process follows that topic from its start
//! into memory with a [`RevocationFeed`]; [`crate::token::TokenVerifier`] consults the result on
//! every request. Nothing is persisted: a restarted process reads the topic again. Entries are
//! forgotten once every token they could match has expired on its own.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use ward_core::WardResult;
use ward_proto::v1::EventEnvelope;

use crate::events::{
    AUTH_TOPIC, DomainEvent, EventLogHandle, SessionRevoked, UserTokensRevoked, decode_envelope,
    decode_payload,
};

/// Longer than any access token can live (`auth.access_token_ttl_secs` is at most a day): older
/// revocations can no longer match a token that verifies, so they are dropped.
const FORGET_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(2);

const BATCH_SIZE: usize = 256;

/// The revocations a process knows. Cheap to clone; clones share one set.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    inner: Arc<RwLock<RevocationSet>>,
}

#[derive(Debug, Default)]
struct RevocationSet {
    /// Session id → when it was revoked.
    sessions: HashMap<Uuid, DateTime<Utc>>,
    /// User id → tokens issued before this instant are revoked (the latest revocation wins).
    users: HashMap<Uuid, DateTime<Utc>>,
    /// Whether a feed has read the whole topic once; until then a revoked token could pass.
    loaded: bool,
}

impl Revocations {
    /// Revokes every token of one session.
    pub fn revoke_session(&self, session_id: Uuid, revoked_at: DateTime<Utc>) {
        let mut set = self.write();
        set.sessions.insert(session_id, revoked_at);
        set.forget_before(Utc::now() - FORGET_AFTER);
    }

    /// Revokes every token of `user_id` issued before `revoked_before`.
    pub fn revoke_user_tokens(&self, user_id: Uuid, revoked_before: DateTime<Utc>) {
        let mut set = self.write();
        let entry = set.users.entry(user_id).or_insert(revoked_before);
        if *entry < revoked_before {
            *entry = revoked_before;
        }
        set.forget_before(Utc::now() - FORGET_AFTER);
    }

    /// Whether a token of `session_id` for `user_id`, issued at `issued_at`, is revoked.
    pub fn is_revoked(&self, session_id: Uuid, user_id: Uuid, issued_at: DateTime<Utc>) -> bool {
        let set = self.read();
        set.sessions.contains_key(&session_id)
            || set
                .users
                .get(&user_id)
                .is_some_and(|revoked_before| issued_at < *revoked_before)
    }

    /// Applies one event of `ward.auth.v1`; other event types are ignored (a newer producer may
    /// add some), undecodable ones are an error for the caller to log.
    pub fn apply(&self, envelope: &EventEnvelope) -> WardResult<()> {
        match envelope.event_type.as_str() {
            SessionRevoked::EVENT_TYPE => {
                let event: SessionRevoked = decode_payload(envelope)?;
                let session_id = parse_id(&event.session_id, "session_id")?;
                let revoked_at = parse_instant(&event.revoked_at, "revoked_at")?;
                self.revoke_session(session_id, revoked_at);
            }
            UserTokensRevoked::EVENT_TYPE => {
                let event: UserTokensRevoked = decode_payload(envelope)?;
                let user_id = parse_id(&event.user_id, "user_id")?;
                let revoked_before = parse_instant(&event.revoked_before, "revoked_before")?;
                self.revoke_user_tokens(user_id, revoked_before);
            }
            other => tracing::debug!(event_type = other, "ignoring an unknown auth event"),
        }
        Ok(())
    }

    /// Whether the topic has been read to its end at least once (for readiness).
    pub fn is_loaded(&self) -> bool {
        self.read().loaded
    }

    fn mark_loaded(&self) {
        self.write().loaded = true;
    }

    /// How many sessions and users are revoked now (for tests and logs).
    pub fn len(&self) -> (usize, usize) {
        let set = self.read();
        (set.sessions.len(), set.users.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    // A poisoned lock only means a panic elsewhere mid-insert; the maps are still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, RevocationSet> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RevocationSet> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RevocationSet {
    fn forget_before(&mut self, horizon: DateTime<Utc>) {
        self.sessions.retain(|_, revoked_at| *revoked_at >= horizon);
        self.users
            .retain(|_, revoked_before| *revoked_before >= horizon);
    }
}

fn parse_id(raw: &str, field: &str) -> WardResult<Uuid> {
    Uuid::parse_str(raw)
        .map_err(|error| ward_core::WardError::invalid_field(field, format!("not a UUID: {error}")))
}

fn parse_instant(raw: &str, field: &str) -> WardResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|error| {
            ward_core::WardError::invalid_field(field, format!("not an RFC 3339 instant: {error}"))
        })
}

/// Follows `ward.auth.v1` from its start into a [`Revocations`] set.
pub struct RevocationFeed {
    log: EventLogHandle,
    revocations: Revocations,
    /// Partition → next offset to read.
    next_offsets: HashMap<i32, i64>,
}

impl RevocationFeed {
    pub fn new(log: EventLogHandle, revocations: Revocations) -> Self {
        Self {
            log,
            revocations,
            next_offsets: HashMap::new(),
        }
    }

    /// Reads every partition to its current end; returns how many records were read.
    pub async fn catch_up(&mut self) -> WardResult<usize> {
        let mut num_read = 0;
        for partition in self.log.partitions(AUTH_TOPIC).await? {
            loop {
                let from_offset = *self.next_offsets.get(&partition).unwrap_or(&0);
                let records = self
                    .log
                    .fetch(AUTH_TOPIC, partition, from_offset, BATCH_SIZE)
                    .await?;
                let Some(last) = records.last() else {
                    break;
                };
                self.next_offsets.insert(partition, last.offset + 1);
                num_read += records.len();
                for record in &records {
                    let applied =
                        decode_envelope(&record.value).and_then(|env| self.revocations.apply(&env));
                    if let Err(error) = applied {
                        // A record no version of Ward wrote; revocations after it still count.
                        tracing::warn!(partition, offset = record.offset, %error, "skipping an unreadable auth event");
                    }
                }
                if records.len() < BATCH_SIZE {
                    break;
                }
            }
        }
        self.revocations.mark_loaded();
        Ok(num_read)
    }

    /// Keeps catching up until `cancel`, waiting for appends (at most `poll_interval`) in between
    /// and backing off while the log is unavailable.
    pub async fn run(mut self, cancel: CancellationToken, poll_interval: Duration) {
        let mut backoff = poll_interval;
        loop {
            let wait = match self.catch_up().await {
                Ok(_) => {
                    backoff = poll_interval;
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_millis = backoff.as_millis() as u64, "revocation feed waiting for the event log");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    Some(wait)
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = async {
                    match wait {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => self.log.wait_for_append(poll_interval).await,
                    }
                } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logout_envelope(session: Uuid, user: Uuid) -> EventEnvelope {
        let event = SessionRevoked {
            session_id: session.to_string(),
            user_id: user.to_string(),
            revoked_at: Utc::now().to_rfc3339(),
            reason: "logout".into(),
        };
        crate::events::envelope("auth", user, "r1", Utc::now(), &event)
    }

    #[test]
    fn a_revoked_session_is_revoked_whenever_its_tokens_were_issued() {
        let revocations = Revocations::default();
        let (session, other_session, user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        revocations.revoke_session(session, Utc::now());
        assert!(revocations.is_revoked(session, user, Utc::now()));
        assert!(!revocations.is_revoked(other_session, user, Utc::now()));
    }

    #[test]
    fn user_revocation_spares_tokens_issued_afterwards() {
        let revocations = Revocations::default();
        let (session, user) = (Uuid::now_v7(), Uuid::now_v7());
        let cut = Utc::now();
        revocations.revoke_user_tokens(user, cut);
        // An earlier revocation arriving late does not move the cut back.
        revocations.revoke_user_tokens(user, cut - chrono::TimeDelta::hours(1));
        let before = cut - chrono::TimeDelta::milliseconds(1);
        assert!(revocations.is_revoked(session, user, before));
        assert!(!revocations.is_revoked(session, user, cut));
        assert!(!revocations.is_revoked(session, Uuid::now_v7(), before));
    }

    #[tokio::test]
    async fn a_feed_reads_the_topic_and_marks_the_set_loaded() {
        let dir = std::env::temp_dir().join(format!("ward-revocations-{}", Uuid::now_v7()));
        let url = ward_core::config::SecretUrl::new(format!(
            "sqlite://{}?mode=rwc",
            dir.join("events.db").display()
        ));
        let log: EventLogHandle =
            std::sync::Arc::new(crate::local_log::LocalEventLog::open(&url).await.unwrap());
        log.ensure_topics(&[AUTH_TOPIC]).await.unwrap();
        let (session, user) = (Uuid::now_v7(), Uuid::now_v7());
        let envelope = logout_envelope(session, user);
        let records = vec![
            crate::events::OutgoingRecord {
                topic: AUTH_TOPIC.into(),
                key: user.to_string(),
                value: b"not an envelope".to_vec(),
            },
            crate::events::OutgoingRecord {
                topic: AUTH_TOPIC.into(),
                key: user.to_string(),
                value: crate::events::encode_envelope(&envelope),
            },
        ];
        log.append(records).await.unwrap();

        let revocations = Revocations::default();
        assert!(!revocations.is_loaded());
        let mut feed = RevocationFeed::new(log, revocations.clone());
        assert_eq!(feed.catch_up().await.unwrap(), 2);
        assert!(revocations.is_loaded());
        // The garbage record before it did not stop the revocation.
        assert!(revocations.is_revoked(session, user, Utc::now()));
        // Nothing new: nothing read again.
        assert_eq!(feed.catch_up().await.unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn old_revocations_are_forgotten() {
        let revocations = Revocations::default();
        let long_ago = Utc::now() - FORGET_AFTER - chrono::TimeDelta::minutes(1);
        revocations.revoke_session(Uuid::now_v7(), long_ago);
        revocations.revoke_session(Uuid::now_v7(), Utc::now());
        assert_eq!(revocations.len(), (1, 0));
    }

    #[test]
    fn events_apply_and_garbage_is_an_error() {
        let revocations = Revocations::default();
        let (session, user) = (Uuid::now_v7(), Uuid::now_v7());
        let envelope = logout_envelope(session, user);
        revocations.apply(&envelope).unwrap();
        assert!(revocations.is_revoked(session, user, Utc::now()));

        let bad = UserTokensRevoked {
            user_id: "not-a-uuid".into(),
            revoked_before: Utc::now().to_rfc3339(),
            reason: "disabled".into(),
        };
        let envelope = crate::events::envelope("auth", user, "r2", Utc::now(), &bad);
        assert!(revocations.apply(&envelope).is_err());
    }
}

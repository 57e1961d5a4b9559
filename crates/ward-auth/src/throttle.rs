//! [`LoginThrottle`]: at most a few failed logins per account and per client address per minute,
//! counted in the auth database so that every auth process sees the same counts.
//!
//! Each attempt adds one `login_attempts` row per key (`account:<email>`, `addr:<ip>`) when it
//! starts, in the transaction that checks the counts, so concurrent attempts (in this process or
//! another) cannot all slip under the limit. On SQLite that transaction takes the write lock at
//! BEGIN; on PostgreSQL it takes a transaction-scoped advisory lock per key, in key order so two
//! attempts never wait for each other in a cycle. A success or an error that is not the client's
//! fault deletes the rows again ([`LoginThrottle::clear`], [`LoginThrottle::forgive`]).
//!
//! Times are wall-clock, since the rows are shared across hosts; their clocks are assumed to
//! agree within a small part of the window. A key's expired rows go when the key is next checked,
//! and every process sweeps all expired rows at most once per [`SWEEP_INTERVAL`], so a flood of
//! distinct emails leaves at most about two windows' worth of rows.

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
};
use uuid::Uuid;
use ward_bus::db::{db_error, write_transaction};
use ward_core::{WardError, WardResult};

use crate::entity::login_attempts;

/// Failed logins allowed per key within [`FAILURE_WINDOW`]; the next attempt is refused.
pub(crate) const MAX_FAILURES: usize = 5;

/// The sliding window failures are counted in.
pub(crate) const FAILURE_WINDOW: TimeDelta = TimeDelta::seconds(60);

/// How often each process deletes every expired row, not only those of the keys it checks.
pub(crate) const SWEEP_INTERVAL: TimeDelta = TimeDelta::seconds(60);

/// Longer emails cannot name an account (RFC 5321 caps an address at 254 octets).
const MAX_EMAIL_BYTES: usize = 254;

/// Returns the throttle key of an account, from its normalized email. Over-long emails share one
/// key, so a hostile client cannot make each stored key 64 KiB large.
pub(crate) fn account_key(email_normalized: &str) -> String {
    if email_normalized.len() > MAX_EMAIL_BYTES {
        return "account:<too long>".into();
    }
    format!("account:{email_normalized}")
}

/// Returns the throttle key of a client address.
pub(crate) fn addr_key(client_addr: &str) -> String {
    format!("addr:{client_addr}")
}

/// The answer of [`LoginThrottle::try_begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The attempt may go on; it counts as a failure of every key until forgiven or cleared.
    Admitted { attempt_id: Uuid },
    /// A key is at its limit; nothing was recorded.
    Refused { retry_after_secs: u64 },
}

/// Failed password checks per key in a sliding window, stored in `login_attempts` (see the
/// module docs).
pub(crate) struct LoginThrottle {
    db: DatabaseConnection,
    max_failures: usize,
    window: TimeDelta,
    /// When this process last swept every expired row; `None` until its first attempt.
    last_sweep_at_opt: Mutex<Option<DateTime<Utc>>>,
}

impl LoginThrottle {
    /// A throttle over `db` allowing `max_failures` per key within `window`.
    pub(crate) fn new(db: DatabaseConnection, max_failures: usize, window: TimeDelta) -> Self {
        Self {
            db,
            max_failures: max_failures.max(1),
            window,
            last_sweep_at_opt: Mutex::new(None),
        }
    }

    /// [`MAX_FAILURES`] per [`FAILURE_WINDOW`].
    pub(crate) fn with_defaults(db: DatabaseConnection) -> Self {
        Self::new(db, MAX_FAILURES, FAILURE_WINDOW)
    }

    /// Starts an attempt at `now`: if any key is at its limit, returns the whole seconds (at
    /// least 1) until every key has room again, recording nothing; else records a failure for
    /// every key. A database error fails the check: the attempt must not go on unthrottled.
    pub(crate) async fn try_begin(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> WardResult<Admission> {
        // PostgreSQL keeps microseconds; rounding here makes the stored and the compared
        // instants equal on both backends.
        let now = now.trunc_subsecs(6);
        let admission = self.check_and_record(keys, now).await?;
        if self.claim_sweep(now) {
            // Housekeeping only: a failure leaves the rows for the next sweep.
            if let Err(error) = self.delete_all_expired(now).await {
                tracing::warn!(%error, "cannot sweep expired login attempts");
            }
        }
        Ok(admission)
    }

    /// Takes back what attempt `attempt_id` counted for each of `keys`.
    pub(crate) async fn forgive(&self, attempt_id: Uuid, keys: &[String]) -> WardResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // One row per key at most: the statement cannot hold one row lock while waiting for
        // another, so it needs no advisory lock to stay out of deadlocks.
        login_attempts::Entity::delete_many()
            .filter(login_attempts::Column::AttemptId.eq(attempt_id))
            .filter(login_attempts::Column::ThrottleKey.is_in(keys.iter().map(String::as_str)))
            .exec(&self.db)
            .await
            .map_err(|error| db_error("cannot forgive the login attempt", error))?;
        Ok(())
    }

    /// Forgets every failure of `key` (a successful login clears its account).
    pub(crate) async fn clear(&self, key: &str) -> WardResult<()> {
        let context = "cannot clear the login failures";
        let txn = self
            .db
            .begin_with_options(write_transaction())
            .await
            .map_err(|error| db_error(context, error))?;
        // Under the key's lock, as in `try_begin`, so the two deletions of one key's rows never
        // wait for each other's row locks.
        let key_list = [key.to_string()];
        lock_keys(&txn, &key_list).await?;
        login_attempts::Entity::delete_many()
            .filter(login_attempts::Column::ThrottleKey.eq(key))
            .exec(&txn)
            .await
            .map_err(|error| db_error(context, error))?;
        txn.commit().await.map_err(|error| db_error(context, error))
    }

    async fn check_and_record(&self, keys: &[String], now: DateTime<Utc>) -> WardResult<Admission> {
        let context = "cannot check the login throttle";
        let cutoff = shift(now, -self.window)?;
        let mut sorted_keys = keys.to_vec();
        sorted_keys.sort();
        sorted_keys.dedup();
        let txn = self
            .db
            .begin_with_options(write_transaction())
            .await
            .map_err(|error| db_error(context, error))?;
        lock_keys(&txn, &sorted_keys).await?;
        login_attempts::Entity::delete_many()
            .filter(
                login_attempts::Column::ThrottleKey.is_in(sorted_keys.iter().map(String::as_str)),
            )
            .filter(login_attempts::Column::AttemptedAt.lte(cutoff))
            .exec(&txn)
            .await
            .map_err(|error| db_error(context, error))?;

        let mut wait_opt: Option<TimeDelta> = None;
        for key in &sorted_keys {
            let Some(frees_at) = self.key_frees_at(&txn, key, cutoff).await? else {
                continue;
            };
            let wait = frees_at - now;
            let is_longest = match wait_opt {
                Some(longest) => wait > longest,
                None => true,
            };
            if is_longest {
                wait_opt = Some(wait);
            }
        }
        if let Some(wait) = wait_opt {
            // Committed all the same, so the expired rows deleted above stay deleted.
            txn.commit()
                .await
                .map_err(|error| db_error(context, error))?;
            return Ok(Admission::Refused {
                retry_after_secs: whole_secs_rounded_up(wait),
            });
        }

        let attempt_id = ward_core::id::new_id();
        for key in &sorted_keys {
            let row = login_attempts::ActiveModel {
                id: ActiveValue::Set(ward_core::id::new_id()),
                attempt_id: ActiveValue::Set(attempt_id),
                throttle_key: ActiveValue::Set(key.clone()),
                attempted_at: ActiveValue::Set(now),
            };
            login_attempts::Entity::insert(row)
                .exec_without_returning(&txn)
                .await
                .map_err(|error| db_error(context, error))?;
        }
        txn.commit()
            .await
            .map_err(|error| db_error(context, error))?;
        Ok(Admission::Admitted { attempt_id })
    }

    /// When `key` has room again if it is at its limit now, else `None`.
    async fn key_frees_at(
        &self,
        txn: &DatabaseTransaction,
        key: &str,
        cutoff: DateTime<Utc>,
    ) -> WardResult<Option<DateTime<Utc>>> {
        let num_latest = u64::try_from(self.max_failures).unwrap_or(u64::MAX);
        // Only the latest `max_failures` decide: room comes back when the oldest of them leaves.
        let latest: Vec<DateTime<Utc>> = login_attempts::Entity::find()
            .select_only()
            .column(login_attempts::Column::AttemptedAt)
            .filter(login_attempts::Column::ThrottleKey.eq(key))
            .filter(login_attempts::Column::AttemptedAt.gt(cutoff))
            .order_by_desc(login_attempts::Column::AttemptedAt)
            .limit(num_latest)
            .into_tuple()
            .all(txn)
            .await
            .map_err(|error| db_error("cannot count the login failures", error))?;
        if latest.len() < self.max_failures {
            return Ok(None);
        }
        let Some(oldest_counted) = latest.last() else {
            return Ok(None);
        };
        shift(*oldest_counted, self.window).map(Some)
    }

    /// Whether this process should sweep now; if so, notes that it did.
    fn claim_sweep(&self, now: DateTime<Utc>) -> bool {
        let mut last_sweep_at_opt = self.lock_last_sweep();
        let is_due = match *last_sweep_at_opt {
            Some(last_sweep_at) => now - last_sweep_at >= SWEEP_INTERVAL,
            None => true,
        };
        if is_due {
            *last_sweep_at_opt = Some(now);
        }
        is_due
    }

    /// Deletes the rows of every key that left the window.
    async fn delete_all_expired(&self, now: DateTime<Utc>) -> WardResult<u64> {
        let cutoff = shift(now, -self.window)?;
        // SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): rows a key's check is
        // deleting are left to it, so the sweep never waits in a cycle with that check.
        let expired_ids = login_attempts::Entity::find()
            .select_only()
            .column(login_attempts::Column::Id)
            .filter(login_attempts::Column::AttemptedAt.lte(cutoff))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .into_query();
        let result = login_attempts::Entity::delete_many()
            .filter(login_attempts::Column::Id.in_subquery(expired_ids))
            .exec(&self.db)
            .await
            .map_err(|error| db_error("cannot sweep the login attempts", error))?;
        tracing::debug!(num_deleted = result.rows_affected, "login attempts swept");
        Ok(result.rows_affected)
    }

    /// A poisoned lock only means another login panicked mid-update; the instant stays usable.
    fn lock_last_sweep(&self) -> MutexGuard<'_, Option<DateTime<Utc>>> {
        self.last_sweep_at_opt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serializes the checks of `sorted_keys` across processes until `txn` ends. PostgreSQL takes an
/// advisory lock per key (in the given order, which every caller sorts); SQLite needs nothing,
/// as a write transaction there holds the database's one write lock from BEGIN.
async fn lock_keys(txn: &DatabaseTransaction, sorted_keys: &[String]) -> WardResult<()> {
    debug_assert!(sorted_keys.is_sorted());
    match txn.get_database_backend() {
        DbBackend::Sqlite => Ok(()),
        DbBackend::Postgres => {
            for key in sorted_keys {
                let statement = Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    [key.as_str().into()],
                );
                txn.execute_raw(statement)
                    .await
                    .map_err(|error| db_error("cannot lock the login throttle key", error))?;
            }
            Ok(())
        }
        // Ward runs on SQLite and PostgreSQL only; counting without a lock would let
        // concurrent attempts past the limit.
        other => Err(WardError::Internal(format!(
            "the login throttle cannot serialize attempts on {other:?}"
        ))),
    }
}

/// `at + delta`, or an error for instants out of chrono's range (not reachable from real clocks).
fn shift(at: DateTime<Utc>, delta: TimeDelta) -> WardResult<DateTime<Utc>> {
    at.checked_add_signed(delta)
        .ok_or_else(|| WardError::Internal("login throttle instant out of range".into()))
}

/// Rounded up, so a client waiting exactly that long finds room; at least 1.
fn whole_secs_rounded_up(wait: TimeDelta) -> u64 {
    let has_fraction = wait.subsec_nanos() > 0;
    let secs = wait.num_seconds() + i64::from(has_fraction);
    u64::try_from(secs).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use sea_orm::PaginatorTrait;
    use sea_orm_migration::MigratorTrait;

    use super::*;

    /// A throttle over a fresh, migrated SQLite file, removed on drop.
    struct TestThrottle {
        throttle: LoginThrottle,
        db: DatabaseConnection,
        folder: std::path::PathBuf,
    }

    impl Drop for TestThrottle {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.folder);
        }
    }

    impl TestThrottle {
        async fn new(max_failures: usize) -> Self {
            let folder = std::env::temp_dir().join(format!("ward-throttle-{}", Uuid::new_v4()));
            let path = folder.join("auth.db");
            let url =
                ward_core::config::SecretUrl::new(format!("sqlite://{}?mode=rwc", path.display()));
            let db = ward_bus::db::connect(&url, "auth").await.unwrap();
            crate::migration::Migrator::up(&db, None).await.unwrap();
            let throttle = LoginThrottle::new(db.clone(), max_failures, FAILURE_WINDOW);
            Self {
                throttle,
                db,
                folder,
            }
        }

        async fn try_begin(&self, keys: &[String], at: DateTime<Utc>) -> Admission {
            self.throttle.try_begin(keys, at).await.unwrap()
        }

        async fn num_rows(&self) -> u64 {
            login_attempts::Entity::find()
                .count(&self.db)
                .await
                .unwrap()
        }
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn after_millis(millis: i64) -> DateTime<Utc> {
        start() + TimeDelta::milliseconds(millis)
    }

    fn refused(retry_after_secs: u64) -> Admission {
        Admission::Refused { retry_after_secs }
    }

    fn is_admitted(admission: Admission) -> bool {
        matches!(admission, Admission::Admitted { .. })
    }

    #[tokio::test]
    async fn the_sixth_attempt_in_the_window_is_refused_until_the_oldest_leaves() {
        let test = TestThrottle::new(5).await;
        let account = keys(&["account:ada@example.com"]);
        for second in 0..5 {
            let admission = test.try_begin(&account, after_millis(second * 1000)).await;
            assert!(is_admitted(admission), "attempt {second}: {admission:?}");
        }

        assert_eq!(
            test.try_begin(&account, after_millis(10_000)).await,
            refused(50)
        );
        // A refused attempt is not counted: the wait does not grow.
        assert_eq!(
            test.try_begin(&account, after_millis(59_500)).await,
            refused(1)
        );
        assert_eq!(test.num_rows().await, 5);

        // The first failure left the window: one more attempt fits.
        assert!(is_admitted(
            test.try_begin(&account, after_millis(60_000)).await
        ));
        assert_eq!(
            test.try_begin(&account, after_millis(60_000)).await,
            refused(1)
        );
        // Expired rows of a key go when the key is checked.
        assert_eq!(test.num_rows().await, 5);
    }

    #[tokio::test]
    async fn the_wait_is_rounded_up_to_whole_seconds() {
        let test = TestThrottle::new(1).await;
        let account = keys(&["account:ada@example.com"]);
        // Sub-second instants, which SQLite stores as text of varying length.
        let first_at = after_millis(123);
        assert!(is_admitted(test.try_begin(&account, first_at).await));

        let cases = [
            (123, 60),
            (124, 60),
            (10_123, 50),
            (10_250, 50),
            (59_122, 2),
            (59_123, 1),
            (60_122, 1),
        ];
        for (millis, retry_after_secs) in cases {
            let admission = test.try_begin(&account, after_millis(millis)).await;
            assert_eq!(admission, refused(retry_after_secs), "at {millis} ms");
        }
        let micro_before = first_at + FAILURE_WINDOW - TimeDelta::microseconds(1);
        assert_eq!(test.try_begin(&account, micro_before).await, refused(1));
        // Exactly one window later the failure has left it.
        let one_window_later = first_at + FAILURE_WINDOW;
        assert!(is_admitted(
            test.try_begin(&account, one_window_later).await
        ));
    }

    #[test]
    fn rounding_up_never_answers_zero() {
        assert_eq!(whole_secs_rounded_up(TimeDelta::zero()), 1);
        assert_eq!(whole_secs_rounded_up(TimeDelta::nanoseconds(1)), 1);
        assert_eq!(whole_secs_rounded_up(TimeDelta::seconds(-3)), 1);
        assert_eq!(whole_secs_rounded_up(TimeDelta::milliseconds(1_001)), 2);
        assert_eq!(whole_secs_rounded_up(TimeDelta::seconds(60)), 60);
    }

    #[tokio::test]
    async fn keys_are_counted_apart_and_any_full_key_refuses() {
        let test = TestThrottle::new(2).await;
        let now = start();
        let from_a = keys(&["account:ada@example.com", "addr:192.0.2.1"]);
        assert!(is_admitted(test.try_begin(&from_a, now).await));
        assert!(is_admitted(test.try_begin(&from_a, now).await));
        assert_eq!(test.try_begin(&from_a, now).await, refused(60));

        // Another account from the same address: the address is full.
        let other_account = keys(&["account:bob@example.com", "addr:192.0.2.1"]);
        assert_eq!(test.try_begin(&other_account, now).await, refused(60));
        // The same account from another address: the account is full.
        let other_addr = keys(&["account:ada@example.com", "addr:192.0.2.2"]);
        assert_eq!(test.try_begin(&other_addr, now).await, refused(60));
        // Neither: untouched.
        let unrelated = keys(&["account:bob@example.com", "addr:192.0.2.2"]);
        assert!(is_admitted(test.try_begin(&unrelated, now).await));
    }

    #[tokio::test]
    async fn a_success_clears_the_account_but_only_forgives_its_attempt_at_the_address() {
        let test = TestThrottle::new(2).await;
        let account = "account:ada@example.com".to_string();
        let addr = "addr:192.0.2.1".to_string();
        let both = vec![account.clone(), addr.clone()];
        assert!(is_admitted(test.try_begin(&both, start()).await));
        let success_at = after_millis(1_000);
        let Admission::Admitted { attempt_id } = test.try_begin(&both, success_at).await else {
            panic!("the second attempt fits");
        };

        // The second attempt succeeded: the account is cleared and the address keeps only the
        // first (real) failure.
        test.throttle.clear(&account).await.unwrap();
        test.throttle
            .forgive(attempt_id, std::slice::from_ref(&addr))
            .await
            .unwrap();

        assert_eq!(test.num_rows().await, 1);
        let account_only = std::slice::from_ref(&account);
        assert!(is_admitted(test.try_begin(account_only, success_at).await));
        let addr_only = std::slice::from_ref(&addr);
        assert!(is_admitted(test.try_begin(addr_only, success_at).await));
        assert_eq!(test.try_begin(addr_only, success_at).await, refused(59));
    }

    #[tokio::test]
    async fn forgiving_takes_back_only_that_attempt_for_those_keys() {
        let test = TestThrottle::new(2).await;
        let both = keys(&["account:ada@example.com", "addr:192.0.2.1"]);
        let Admission::Admitted { attempt_id } = test.try_begin(&both, start()).await else {
            panic!("the first attempt fits");
        };
        assert!(is_admitted(test.try_begin(&both, start()).await));

        // Forgiving for one key leaves the attempt counted under the other.
        let account_only = keys(&["account:ada@example.com"]);
        test.throttle
            .forgive(attempt_id, &account_only)
            .await
            .unwrap();
        assert_eq!(test.num_rows().await, 3);
        // Twice is harmless.
        test.throttle
            .forgive(attempt_id, &account_only)
            .await
            .unwrap();
        assert_eq!(test.num_rows().await, 3);
        assert!(is_admitted(test.try_begin(&account_only, start()).await));
        let addr_only = keys(&["addr:192.0.2.1"]);
        assert_eq!(test.try_begin(&addr_only, start()).await, refused(60));
    }

    #[tokio::test]
    async fn expired_rows_of_untouched_keys_are_swept_at_most_once_a_minute() {
        let test = TestThrottle::new(5).await;
        // The first attempt of the process sweeps (nothing yet) and starts the interval.
        for index in 0..10 {
            let key = vec![format!("account:guess{index}@example.com")];
            assert!(is_admitted(test.try_begin(&key, start()).await));
        }
        assert!(is_admitted(
            test.try_begin(&keys(&["addr:a"]), after_millis(59_999))
                .await
        ));
        assert_eq!(test.num_rows().await, 11);

        // A minute after the first sweep, every expired row of every key goes.
        assert!(is_admitted(
            test.try_begin(&keys(&["addr:b"]), after_millis(60_000))
                .await
        ));
        assert_eq!(test.num_rows().await, 2);

        // `addr:a` has left the window, but the last sweep is not a minute old: it stays.
        let not_yet = after_millis(119_999);
        assert!(is_admitted(
            test.try_begin(&keys(&["addr:c"]), not_yet).await
        ));
        assert_eq!(test.num_rows().await, 3);

        // Due again: `addr:a` and `addr:b` go, `addr:c` is still in its window.
        let due = after_millis(120_000);
        assert!(is_admitted(test.try_begin(&keys(&["addr:d"]), due).await));
        assert_eq!(test.num_rows().await, 2);
    }

    #[tokio::test]
    async fn a_database_error_fails_the_check() {
        let test = TestThrottle::new(5).await;
        test.db.clone().close().await.unwrap();

        let error = test
            .throttle
            .try_begin(&keys(&["addr:a"]), start())
            .await
            .unwrap_err();

        assert!(matches!(error, WardError::Unavailable(_)), "{error:?}");
    }

    #[test]
    fn keys_stay_small() {
        assert_eq!(account_key("ada@example.com"), "account:ada@example.com");
        assert_eq!(account_key(&"a".repeat(70_000)), "account:<too long>");
        assert_eq!(addr_key("192.0.2.1"), "addr:192.0.2.1");
    }

    #[tokio::test]
    async fn a_poisoned_lock_still_answers() {
        let test = TestThrottle::new(1).await;
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let _guard = test.throttle.lock_last_sweep();
                    panic!("poison the lock");
                })
                .join();
        });
        assert!(test.throttle.claim_sweep(start()));
        assert!(!test.throttle.claim_sweep(after_millis(1_000)));
    }
}

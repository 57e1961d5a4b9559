//! [`LoginThrottle`]: at most a few failed logins per account and per client address per minute.
//!
//! The state lives in memory, per auth process: when several auth tasks run, each keeps its own
//! counts, so a client spreading its attempts over them gets that many times the limit. A shared
//! store (the auth database or a cache) is future work.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failed logins allowed per key within [`FAILURE_WINDOW`]; the next attempt is refused.
pub(crate) const MAX_FAILURES: usize = 5;

/// The sliding window failures are counted in.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Keys remembered at most, so a flood of distinct emails or addresses cannot exhaust memory.
pub(crate) const MAX_KEYS: usize = 100_000;

/// Longer emails cannot name an account (RFC 5321 caps an address at 254 octets).
const MAX_EMAIL_BYTES: usize = 254;

/// Returns the throttle key of an account, from its normalized email. Over-long emails share one
/// key, so a hostile client cannot make each remembered key 64 KiB large.
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

/// Recent failure instants per key (`account:<email>`, `addr:<ip>`), in a sliding window.
///
/// An attempt is counted as a failure when it starts ([`LoginThrottle::try_begin`]), within the
/// same lock as the check, so concurrent attempts cannot all slip under the limit; a success or
/// an error that is not the client's fault takes it back ([`LoginThrottle::forgive`]).
pub(crate) struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    max_keys: usize,
    /// Each queue holds at most `max_failures` instants, oldest first.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// A throttle allowing `max_failures` per key within `window`, remembering `max_keys` keys.
    pub(crate) fn new(max_failures: usize, window: Duration, max_keys: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            max_keys: max_keys.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Starts an attempt at `now`: if any key is at its limit, returns the whole seconds (at
    /// least 1) until every key has room again, recording nothing; else records a failure for
    /// every key (see the type's docs).
    pub(crate) fn try_begin(&self, keys: &[String], now: Instant) -> Result<(), u64> {
        let mut failures = self.lock();
        let mut wait = Duration::ZERO;
        for key in keys {
            let Some(instants) = failures.get_mut(key) else {
                continue;
            };
            self.prune(instants, now);
            if instants.len() >= self.max_failures
                && let Some(oldest) = instants.front()
            {
                let frees_at = *oldest + self.window;
                wait = wait.max(frees_at.saturating_duration_since(now));
            }
        }
        if !wait.is_zero() {
            // Rounded up, so a client waiting exactly that long finds room.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        for key in keys {
            self.record(&mut failures, key, now);
        }
        Ok(())
    }

    /// Takes back the failure recorded for `key` at `at` (by [`LoginThrottle::try_begin`]).
    pub(crate) fn forgive(&self, key: &str, at: Instant) {
        let mut failures = self.lock();
        let Some(instants) = failures.get_mut(key) else {
            return;
        };
        if let Some(position) = instants.iter().rposition(|instant| *instant == at) {
            instants.remove(position);
        }
        if instants.is_empty() {
            failures.remove(key);
        }
    }

    /// Forgets every failure of `key` (a successful login clears its account).
    pub(crate) fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The number of keys remembered.
    #[cfg(test)]
    fn num_keys(&self) -> usize {
        self.lock().len()
    }

    /// A poisoned lock only means another login panicked mid-update; the counts stay usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops the instants that left the window.
    fn prune(&self, instants: &mut VecDeque<Instant>, now: Instant) {
        while let Some(oldest) = instants.front() {
            if now.saturating_duration_since(*oldest) >= self.window {
                instants.pop_front();
            } else {
                break;
            }
        }
    }

    fn record(&self, failures: &mut HashMap<String, VecDeque<Instant>>, key: &str, now: Instant) {
        if !failures.contains_key(key) && failures.len() >= self.max_keys {
            self.make_room(failures, now);
        }
        let instants = failures.entry(key.to_string()).or_default();
        instants.push_back(now);
        // Only the latest `max_failures` instants decide whether the key is at its limit.
        while instants.len() > self.max_failures {
            instants.pop_front();
        }
    }

    /// Frees at least one slot: first every key whose failures all left the window, else the
    /// key whose latest failure is oldest. Linear, but only runs when the map is full.
    fn make_room(&self, failures: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
        failures.retain(|_, instants| {
            instants
                .back()
                .is_some_and(|latest| now.saturating_duration_since(*latest) < self.window)
        });
        if failures.len() < self.max_keys {
            return;
        }
        let stalest_opt = failures
            .iter()
            .min_by_key(|(_, instants)| instants.back().copied())
            .map(|(key, _)| key.clone());
        if let Some(stalest) = stalest_opt {
            failures.remove(&stalest);
        }
    }
}

impl Default for LoginThrottle {
    /// [`MAX_FAILURES`] per [`FAILURE_WINDOW`], at most [`MAX_KEYS`] keys.
    fn default() -> Self {
        Self::new(MAX_FAILURES, FAILURE_WINDOW, MAX_KEYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_sixth_attempt_in_the_window_is_refused_until_the_oldest_leaves() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(60), 100);
        let start = Instant::now();
        let account = keys(&["account:ada@example.com"]);
        for second in 0..5 {
            let at = start + Duration::from_secs(second);
            assert_eq!(throttle.try_begin(&account, at), Ok(()), "attempt {second}");
        }

        let refused = throttle.try_begin(&account, start + Duration::from_secs(10));
        assert_eq!(refused, Err(50));
        // A refused attempt is not counted: the wait does not grow.
        let refused_later = throttle.try_begin(&account, start + Duration::from_millis(59_500));
        assert_eq!(refused_later, Err(1));

        // The first failure left the window: one more attempt fits.
        let after_first = start + Duration::from_secs(60);
        assert_eq!(throttle.try_begin(&account, after_first), Ok(()));
        assert_eq!(throttle.try_begin(&account, after_first), Err(1));
    }

    #[test]
    fn keys_are_counted_apart_and_any_full_key_refuses() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60), 100);
        let now = Instant::now();
        let from_a = keys(&["account:ada@example.com", "addr:192.0.2.1"]);
        assert_eq!(throttle.try_begin(&from_a, now), Ok(()));
        assert_eq!(throttle.try_begin(&from_a, now), Ok(()));
        assert!(throttle.try_begin(&from_a, now).is_err());

        // Another account from the same address: the address is full.
        let other_account = keys(&["account:bob@example.com", "addr:192.0.2.1"]);
        assert!(throttle.try_begin(&other_account, now).is_err());
        // The same account from another address: the account is full.
        let other_addr = keys(&["account:ada@example.com", "addr:192.0.2.2"]);
        assert!(throttle.try_begin(&other_addr, now).is_err());
        // Neither: untouched.
        let unrelated = keys(&["account:bob@example.com", "addr:192.0.2.2"]);
        assert_eq!(throttle.try_begin(&unrelated, now), Ok(()));
    }

    #[test]
    fn a_success_clears_the_account_but_not_the_address() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60), 100);
        let now = Instant::now();
        let account = "account:ada@example.com".to_string();
        let addr = "addr:192.0.2.1".to_string();
        let both = vec![account.clone(), addr.clone()];
        assert_eq!(throttle.try_begin(&both, now), Ok(()));
        let success_at = now + Duration::from_secs(1);
        assert_eq!(throttle.try_begin(&both, success_at), Ok(()));

        // The second attempt succeeded: the account is cleared and the address keeps only the
        // first (real) failure.
        throttle.clear(&account);
        throttle.forgive(&addr, success_at);

        assert_eq!(
            throttle.try_begin(std::slice::from_ref(&account), now),
            Ok(())
        );
        assert_eq!(
            throttle.try_begin(std::slice::from_ref(&addr), success_at),
            Ok(())
        );
        assert_eq!(throttle.try_begin(&[addr], success_at), Err(59));
    }

    #[test]
    fn the_number_of_keys_stays_bounded() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(60), 3);
        let start = Instant::now();
        for index in 0..10_u64 {
            let at = start + Duration::from_secs(index);
            let key = vec![format!("addr:192.0.2.{index}")];
            assert_eq!(throttle.try_begin(&key, at), Ok(()));
            assert!(throttle.num_keys() <= 3);
        }
        // The stalest keys went first; the latest is still counted.
        let latest = vec!["addr:192.0.2.9".to_string()];
        for _ in 0..4 {
            assert_eq!(throttle.try_begin(&latest, start), Ok(()));
        }
        assert!(throttle.try_begin(&latest, start).is_err());

        // Keys whose failures all left the window are dropped before any live one.
        let later = start + Duration::from_secs(200);
        assert_eq!(throttle.try_begin(&keys(&["addr:x"]), later), Ok(()));
        assert_eq!(throttle.num_keys(), 1);
    }

    #[test]
    fn keys_stay_small() {
        assert_eq!(account_key("ada@example.com"), "account:ada@example.com");
        assert_eq!(account_key(&"a".repeat(70_000)), "account:<too long>");
        assert_eq!(addr_key("192.0.2.1"), "addr:192.0.2.1");
    }

    #[test]
    fn a_poisoned_lock_still_answers() {
        let throttle = std::sync::Arc::new(LoginThrottle::new(1, Duration::from_secs(60), 10));
        let poisoner = std::sync::Arc::clone(&throttle);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock();
            panic!("poison the lock");
        })
        .join();
        let now = Instant::now();
        assert_eq!(throttle.try_begin(&keys(&["addr:a"]), now), Ok(()));
        assert_eq!(throttle.try_begin(&keys(&["addr:a"]), now), Err(60));
    }
}

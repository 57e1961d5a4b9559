//! Commit to analytics: how old a registration is when the analytics figure first counts it.
//!
//! While creates run, a sampler reads `patientsRegistered` from `/api/analytics/summary` every
//! [`SAMPLE_EVERY`]. When the count (above its value before the mix) first reaches k, the k-th
//! answered create is counted: its age is that sample's time minus the time its `201` arrived.
//! Events may be applied out of order, so this is the age of the k-th registration in answer
//! order, an approximation that is exact when the consumer keeps order. Sampling adds up to
//! [`SAMPLE_EVERY`] to each age; the commit precedes the answer by up to one request's time,
//! which is not counted (a registration counted before its answer arrived is age zero).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::load::Target;

pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// How long the count may take to catch up after the creates stop before the rest are "unseen".
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);

/// The analytics count of registrations.
pub async fn registered(target: &Target) -> anyhow::Result<u64> {
    let response = target
        .client
        .request(
            Method::GET,
            format!("{}/api/analytics/summary", target.base_url),
        )
        .bearer_auth(&target.token)
        .send()
        .await
        .context("analytics summary")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("analytics summary answer")?;
    match body["patientsRegistered"].as_u64() {
        Some(count) if status.is_success() => Ok(count),
        _ => bail!("analytics summary: {status} {body}"),
    }
}

/// Waits until the count stops moving (earlier registrations, e.g. the warm-up, are all in),
/// and returns it.
pub async fn settled_count(target: &Target) -> anyhow::Result<u64> {
    let deadline = Instant::now() + CATCH_UP_LIMIT;
    let mut last = registered(target).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = registered(target).await?;
        if now == last || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// Samples the count in the background until [`Sampler::finish`].
pub struct Sampler {
    stop_tx: watch::Sender<u64>,
    task: JoinHandle<anyhow::Result<Vec<(Instant, u64)>>>,
}

impl Sampler {
    pub fn start(target: Arc<Target>) -> Sampler {
        // 0 while the mix runs; then the count to wait for.
        let (stop_tx, mut stop_rx) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut interval = tokio::time::interval(SAMPLE_EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut catch_up_deadline_opt: Option<Instant> = None;
            loop {
                interval.tick().await;
                let count = registered(&target).await?;
                samples.push((Instant::now(), count));
                let wanted = *stop_rx.borrow_and_update();
                if wanted > 0 {
                    let deadline =
                        *catch_up_deadline_opt.get_or_insert(Instant::now() + CATCH_UP_LIMIT);
                    if count >= wanted || Instant::now() > deadline {
                        return Ok(samples);
                    }
                }
            }
        });
        Sampler { stop_tx, task }
    }

    /// Waits until the count reaches `wanted` (or the catch-up limit passes); returns the samples.
    pub async fn finish(self, wanted: u64) -> anyhow::Result<Vec<(Instant, u64)>> {
        let _ = self.stop_tx.send(wanted.max(1));
        self.task.await?
    }
}

/// Ages of the answered creates (`answered_at`, any order) by when the count above `base`
/// first reached each one's rank; the second value counts those never seen.
pub fn ages(
    answered_at: &[Instant],
    samples: &[(Instant, u64)],
    base: u64,
) -> (Vec<Duration>, usize) {
    let mut answered: Vec<Instant> = answered_at.to_vec();
    answered.sort_unstable();
    let mut ages = Vec::with_capacity(answered.len());
    let mut sample_index = 0;
    for (rank, answered_at) in answered.iter().enumerate() {
        let wanted = base + rank as u64 + 1;
        // Samples are in time order and counts never fall, so the search only moves forward.
        while sample_index < samples.len() && samples[sample_index].1 < wanted {
            sample_index += 1;
        }
        match samples.get(sample_index) {
            // Counted before its answer arrived (the commit precedes the answer): age zero.
            Some((seen_at, _)) => ages.push(seen_at.saturating_duration_since(*answered_at)),
            None => return (ages, answered.len() - rank),
        }
    }
    (ages, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_create_is_seen_by_the_first_sample_that_counts_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Three creates answered at 10, 20 and 30 ms (given out of order).
        let answered = [at(30), at(10), at(20)];
        // Base 100: the count reaches 101 at 50 ms, 103 at 150 ms.
        let samples = [(at(0), 100), (at(50), 101), (at(100), 101), (at(150), 103)];
        let (ages, unseen) = ages(&answered, &samples, 100);
        assert_eq!(unseen, 0);
        assert_eq!(
            ages,
            vec![
                Duration::from_millis(40),
                Duration::from_millis(130),
                Duration::from_millis(120)
            ]
        );
    }

    #[test]
    fn creates_the_count_never_reached_are_unseen() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let answered = [at(10), at(20), at(30)];
        let samples = [(at(50), 6)];
        let (ages, unseen) = ages(&answered, &samples, 5);
        assert_eq!(ages, vec![Duration::from_millis(40)]);
        assert_eq!(unseen, 2);
    }

    #[test]
    fn a_create_counted_before_its_answer_arrived_is_age_zero() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let samples = [(at(5), 1), (at(60), 1)];
        let (ages, unseen) = ages(&[at(10)], &samples, 0);
        assert_eq!((ages, unseen), (vec![Duration::ZERO], 0));
    }
}

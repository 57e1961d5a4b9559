//! Latency summaries: a sorted list of durations is enough for a few hundred thousand samples.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What one kind of request did during one mix.
#[derive(Debug, Default, Clone)]
pub struct OpRecord {
    pub latencies: Vec<Duration>,
    /// When each successful request was answered, in the order recorded.
    pub answered_at: Vec<Instant>,
    pub num_errors: u64,
    pub first_error_opt: Option<String>,
}

impl OpRecord {
    pub fn record_ok(&mut self, latency: Duration) {
        self.latencies.push(latency);
        self.answered_at.push(Instant::now());
    }

    /// Failed requests count in the rate but not in the latency figures.
    pub fn record_error(&mut self, error: String) {
        self.num_errors += 1;
        if self.first_error_opt.is_none() {
            self.first_error_opt = Some(error);
        }
    }

    pub fn merge(&mut self, other: OpRecord) {
        self.latencies.extend(other.latencies);
        self.answered_at.extend(other.answered_at);
        self.num_errors += other.num_errors;
        if self.first_error_opt.is_none() {
            self.first_error_opt = other.first_error_opt;
        }
    }
}

/// Figures for one operation of one mix.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub mix: String,
    pub op: String,
    pub num_ok: u64,
    pub num_errors: u64,
    pub per_sec: f64,
    pub p50_millis: f64,
    pub p90_millis: f64,
    pub p99_millis: f64,
    pub max_millis: f64,
    pub first_error_opt: Option<String>,
}

/// The nearest-rank percentile (`q` in 0..=1) of sorted samples; zero when there are none.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

pub fn summarize(mix: &str, op: &str, mut record: OpRecord, elapsed: Duration) -> Summary {
    record.latencies.sort_unstable();
    let sorted = &record.latencies;
    let num_ok = sorted.len() as u64;
    let elapsed_secs = elapsed.as_secs_f64().max(f64::EPSILON);
    Summary {
        mix: mix.to_string(),
        op: op.to_string(),
        num_ok,
        num_errors: record.num_errors,
        per_sec: ((num_ok + record.num_errors) as f64 / elapsed_secs * 10.0).round() / 10.0,
        p50_millis: millis(percentile(sorted, 0.50)),
        p90_millis: millis(percentile(sorted, 0.90)),
        p99_millis: millis(percentile(sorted, 0.99)),
        max_millis: millis(sorted.last().copied().unwrap_or_default()),
        first_error_opt: record.first_error_opt,
    }
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "mix": self.mix,
            "op": self.op,
            "ok": self.num_ok,
            "errors": self.num_errors,
            "per_sec": self.per_sec,
            "p50_ms": self.p50_millis,
            "p90_ms": self.p90_millis,
            "p99_ms": self.p99_millis,
            "max_ms": self.max_millis,
            "first_error": self.first_error_opt,
        })
    }
}

/// The readable table, one row per operation.
pub fn table(summaries: &[Summary]) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}\n",
        "mix", "op", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "ok", "errors"
    );
    for s in summaries {
        out.push_str(&format!(
            "{:<8} {:<8} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>8}\n",
            s.mix,
            s.op,
            s.per_sec,
            s.p50_millis,
            s.p90_millis,
            s.p99_millis,
            s.max_millis,
            s.num_ok,
            s.num_errors
        ));
    }
    for s in summaries {
        if let Some(error) = &s.first_error_opt {
            out.push_str(&format!("first error of {}/{}: {error}\n", s.mix, s.op));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.50), ms(50));
        assert_eq!(percentile(&sorted, 0.90), ms(90));
        assert_eq!(percentile(&sorted, 0.99), ms(99));
        assert_eq!(percentile(&sorted, 1.0), ms(100));
        assert_eq!(percentile(&sorted, 0.0), ms(1));
        assert_eq!(percentile(&[ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn a_summary_sorts_counts_errors_and_keeps_the_first() {
        let mut record = OpRecord::default();
        // Out of order on purpose: the summary must sort before ranking.
        for n in [30, 10, 20, 40] {
            record.record_ok(ms(n));
        }
        record.record_error("500 first".into());
        let mut other = OpRecord::default();
        other.record_ok(ms(1000));
        other.record_error("503 second".into());
        record.merge(other);

        let summary = summarize("crud", "read", record, Duration::from_secs(2));
        assert_eq!(summary.num_ok, 5);
        assert_eq!(summary.num_errors, 2);
        assert_eq!(summary.per_sec, 3.5);
        assert_eq!(summary.p50_millis, 30.0);
        assert_eq!(summary.p90_millis, 1000.0);
        assert_eq!(summary.max_millis, 1000.0);
        assert_eq!(summary.first_error_opt.as_deref(), Some("500 first"));
        assert_eq!(summary.to_json()["p50_ms"], 30.0);
    }
}

//! What one layout's run measured, as a table and as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::server::Layout;
use crate::stats::{self, Summary};

/// Commit-to-analytics ages over one create mix (see `lag.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct LagSummary {
    pub num_seen: usize,
    pub num_unseen: usize,
    pub p50_millis: f64,
    pub p99_millis: f64,
    pub max_millis: f64,
}

impl LagSummary {
    pub fn from_ages(mut ages: Vec<Duration>, num_unseen: usize) -> LagSummary {
        ages.sort_unstable();
        let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        LagSummary {
            num_seen: ages.len(),
            num_unseen,
            p50_millis: ms(stats::percentile(&ages, 0.50)),
            p99_millis: ms(stats::percentile(&ages, 0.99)),
            max_millis: ms(ages.last().copied().unwrap_or_default()),
        }
    }

    /// The p99, but only when every create was seen: unseen ones would hide the tail.
    pub fn p99_millis_opt(&self) -> Option<f64> {
        if self.num_unseen > 0 {
            // An unseen create's age is at least the catch-up limit: the budget is missed.
            return Some(f64::INFINITY);
        }
        (self.num_seen > 0).then_some(self.p99_millis)
    }
}

/// pgbench running the SQL one Ward operation issues, beside Ward's rate for the same mix.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineResult {
    pub mix: String,
    /// pgbench transactions per second; one transaction is one iteration of the mix.
    pub tps: f64,
    pub ward_rate: f64,
    pub ratio_opt: Option<f64>,
}

pub struct LayoutReport {
    pub layout: Layout,
    pub start_to_ready_ms_opt: Option<u64>,
    pub rss_idle_mb_opt: Option<f64>,
    pub rss_end_mb_opt: Option<f64>,
    pub rss_by_role: Vec<(&'static str, Option<f64>)>,
    pub summaries: Vec<Summary>,
    /// Commit-to-analytics ages by create pass (`create`, `create@half`).
    pub lags: Vec<(String, LagSummary)>,
    pub baselines: Vec<BaselineResult>,
}

impl LayoutReport {
    /// The commit-to-analytics ages of the create pass named `pass`.
    pub fn lag(&self, pass: &str) -> Option<&LagSummary> {
        self.lags
            .iter()
            .find(|(name, _)| name == pass)
            .map(|(_, lag)| lag)
    }

    pub fn find(&self, mix: &str, op: &str) -> Option<&Summary> {
        self.summaries.iter().find(|s| s.mix == mix && s.op == op)
    }

    /// Requests per second of `op` in `mix` (for crud, iterations per second: every op of an
    /// iteration runs once).
    pub fn rate(&self, mix: &str, op: &str) -> Option<f64> {
        self.find(mix, op).map(|s| s.per_sec)
    }

    /// The p99 of a run in which every request succeeded; none otherwise, since failures
    /// are not in the latencies.
    pub fn p99_millis(&self, mix: &str, op: &str) -> Option<f64> {
        self.find(mix, op)
            .filter(|s| s.num_ok > 0 && s.num_errors == 0)
            .map(|s| s.p99_millis)
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "== {}\n{}",
            self.layout.name(),
            stats::table(&self.summaries)
        );
        for (pass, lag) in &self.lags {
            out.push_str(&format!(
                "commit to analytics ({pass}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} creates{}\n",
                lag.p50_millis,
                lag.p99_millis,
                lag.max_millis,
                lag.num_seen,
                if lag.num_unseen > 0 {
                    format!(", {} never counted", lag.num_unseen)
                } else {
                    String::new()
                }
            ));
        }
        for baseline in &self.baselines {
            out.push_str(&format!(
                "baseline {:<7} pgbench {:>9.1} tx/s   ward {:>9.1}/s   ratio {}\n",
                baseline.mix,
                baseline.tps,
                baseline.ward_rate,
                baseline
                    .ratio_opt
                    .map_or("-".to_string(), |ratio| format!("{ratio:.3}"))
            ));
        }
        if let Some(ms) = self.start_to_ready_ms_opt {
            let by_role: Vec<String> = self
                .rss_by_role
                .iter()
                .map(|(role, mb)| format!("{role} {}", mb.map_or("?".into(), |mb| mb.to_string())))
                .collect();
            out.push_str(&format!(
                "server: start to ready {ms} ms; RSS idle {} MB, at the end {} MB ({})\n",
                show(self.rss_idle_mb_opt),
                show(self.rss_end_mb_opt),
                by_role.join(", ")
            ));
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "target": self.layout.name(),
            "start_to_ready_ms": self.start_to_ready_ms_opt,
            "rss_idle_mb": self.rss_idle_mb_opt,
            "rss_end_mb": self.rss_end_mb_opt,
            "rss_end_mb_by_role": self.rss_by_role.iter().map(|(role, mb)| json!({"role": role, "mb": mb})).collect::<Vec<_>>(),
            "ops": self.summaries.iter().map(Summary::to_json).collect::<Vec<_>>(),
            "commit_to_analytics": self.lags.iter().map(|(pass, lag)| json!({
                "pass": pass,
                "seen": lag.num_seen,
                "unseen": lag.num_unseen,
                "p50_ms": lag.p50_millis,
                "p99_ms": lag.p99_millis,
                "max_ms": lag.max_millis,
            })).collect::<Vec<_>>(),
            "baseline": self.baselines.iter().map(|b| json!({
                "mix": b.mix,
                "pgbench_tps": b.tps,
                "ward_per_sec": b.ward_rate,
                "ratio": b.ratio_opt,
            })).collect::<Vec<_>>(),
        })
    }
}

fn show(mb_opt: Option<f64>) -> String {
    mb_opt.map_or("?".into(), |mb| mb.to_string())
}

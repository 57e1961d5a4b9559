//! Issue 8's budget, checked against one run's figures, and the CI regression guard.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use crate::report::{LagSummary, LayoutReport};
use crate::server::Layout;

/// One target: what it measures, the figure, the limit and whether it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub target: &'static str,
    /// `None` when this run did not measure it (a layout or option was not asked for).
    pub value_opt: Option<f64>,
    pub unit: &'static str,
    pub passed_opt: Option<bool>,
}

impl Check {
    fn at_least(
        name: &'static str,
        target: &'static str,
        value_opt: Option<f64>,
        min: f64,
    ) -> Check {
        Check {
            name,
            target,
            value_opt,
            unit: "",
            passed_opt: value_opt.map(|value| value >= min),
        }
    }

    fn under(
        name: &'static str,
        target: &'static str,
        value_opt: Option<f64>,
        unit: &'static str,
        max: f64,
    ) -> Check {
        Check {
            name,
            target,
            value_opt,
            unit,
            passed_opt: value_opt.map(|value| value < max),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "target": self.target, "value": self.value_opt, "passed": self.passed_opt})
    }
}

fn layout(reports: &[LayoutReport], layout: Layout) -> Option<&LayoutReport> {
    reports.iter().find(|report| report.layout == layout)
}

/// The ratios a run measured, by name: Ward's rate over the baseline's per mix on PostgreSQL,
/// and the split layout's CRUD rate over the all-in-one's.
pub fn ratios(reports: &[LayoutReport]) -> BTreeMap<String, f64> {
    let mut ratios = BTreeMap::new();
    if let Some(postgres) = layout(reports, Layout::Postgres) {
        for baseline in &postgres.baselines {
            if let Some(ratio) = baseline.ratio_opt {
                ratios.insert(format!("{}_vs_pgbench", baseline.mix), ratio);
            }
        }
    }
    if let (Some(split), Some(postgres)) = (
        layout(reports, Layout::Split).and_then(|r| r.rate("crud", "create")),
        layout(reports, Layout::Postgres).and_then(|r| r.rate("crud", "create")),
    ) && postgres > 0.0
    {
        ratios.insert("split_vs_all_in_one".into(), round3(split / postgres));
    }
    ratios
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Every budget line; latency and lag targets are taken on PostgreSQL all-in-one (split for the
/// Kafka lag), memory and start on SQLite, as issue 8 states them.
pub fn checks(reports: &[LayoutReport]) -> Vec<Check> {
    let ratios = ratios(reports);
    let postgres = layout(reports, Layout::Postgres);
    let sqlite = layout(reports, Layout::Sqlite);
    let split = layout(reports, Layout::Split);
    vec![
        Check::at_least(
            "crud_vs_pgbench",
            ">= 0.5 (CRUD mix, all-in-one on PostgreSQL, over pgbench with the same SQL)",
            ratios.get("crud_vs_pgbench").copied(),
            0.5,
        ),
        Check::under(
            "read_p99_at_half_peak_ms",
            "< 5 ms (all-in-one on PostgreSQL)",
            postgres.and_then(|r| r.p99_millis("read@half", "read")),
            "ms",
            5.0,
        ),
        Check::under(
            "create_p99_at_half_peak_ms",
            "< 20 ms (all-in-one on PostgreSQL)",
            postgres.and_then(|r| r.p99_millis("create@half", "create")),
            "ms",
            20.0,
        ),
        Check::at_least(
            "split_vs_all_in_one",
            ">= 0.7 (CRUD mix, five processes + broker over one process, both on PostgreSQL)",
            ratios.get("split_vs_all_in_one").copied(),
            0.7,
        ),
        Check::under(
            "commit_to_analytics_p99_ms_split",
            "< 1000 ms (split, Kafka, creates at half the peak rate)",
            split
                .and_then(|r| r.lag("create@half"))
                .and_then(LagSummary::p99_millis_opt),
            "ms",
            1000.0,
        ),
        Check::under(
            "commit_to_analytics_p99_ms_all_in_one",
            "< 1000 ms (all-in-one on PostgreSQL, local event log, creates at half the peak rate)",
            postgres
                .and_then(|r| r.lag("create@half"))
                .and_then(LagSummary::p99_millis_opt),
            "ms",
            1000.0,
        ),
        Check::under(
            "idle_rss_mb",
            "< 50 MB (all-in-one on SQLite, after start)",
            sqlite.and_then(|r| r.rss_idle_mb_opt),
            "MB",
            50.0,
        ),
        Check::under(
            "start_to_ready_ms",
            "< 1000 ms (all-in-one on SQLite, spawn to /readyz 200)",
            sqlite.and_then(|r| r.start_to_ready_ms_opt.map(|ms| ms as f64)),
            "ms",
            1000.0,
        ),
    ]
}

pub fn table(checks: &[Check]) -> String {
    let mut out = String::from("budget (issue 8):\n");
    for check in checks {
        let value = match check.value_opt {
            Some(value) => format!("{value:.3}{}", check.unit),
            None => "not measured".into(),
        };
        let verdict = match check.passed_opt {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "-",
        };
        out.push_str(&format!(
            "  {:<7} {:<40} {:>14}   {}\n",
            verdict, check.name, value, check.target
        ));
    }
    out
}

/// Ratios that fell under half of the value recorded in `guard_path` (a JSON object
/// `{"ratios": {name: value}}`); a ratio this run did not measure is a failure too, so a guard
/// cannot pass by measuring nothing.
pub fn guard_failures(
    guard_path: &Path,
    measured: &BTreeMap<String, f64>,
) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(guard_path)
        .with_context(|| format!("reading {}", guard_path.display()))?;
    let guard: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", guard_path.display()))?;
    let recorded = guard["ratios"]
        .as_object()
        .with_context(|| format!("{} has no \"ratios\" object", guard_path.display()))?;
    Ok(guard_failures_against(
        recorded.iter().map(|(k, v)| (k.as_str(), v.as_f64())),
        measured,
    ))
}

fn guard_failures_against<'a>(
    recorded: impl Iterator<Item = (&'a str, Option<f64>)>,
    measured: &BTreeMap<String, f64>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, value_opt) in recorded {
        let Some(recorded) = value_opt else {
            failures.push(format!("{name}: the recorded value is not a number"));
            continue;
        };
        match measured.get(name) {
            None => failures.push(format!("{name}: not measured by this run")),
            Some(now) if *now < recorded / 2.0 => failures.push(format!(
                "{name}: {now:.3} is under half of the recorded {recorded:.3}"
            )),
            Some(_) => {}
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_fails_below_half_and_on_missing_ratios() {
        let measured = BTreeMap::from([
            ("crud_vs_pgbench".to_string(), 0.2),
            ("read_vs_pgbench".to_string(), 0.26),
        ]);
        let recorded = [
            ("crud_vs_pgbench", Some(0.5)),
            ("read_vs_pgbench", Some(0.5)),
            ("split_vs_all_in_one", Some(0.8)),
            ("broken", None),
        ];
        let failures = guard_failures_against(recorded.into_iter(), &measured);
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[0].starts_with("crud_vs_pgbench: 0.200 is under half"));
        assert!(failures[1].starts_with("split_vs_all_in_one: not measured"));
        assert!(failures[2].starts_with("broken:"));
    }

    #[test]
    fn checks_hold_or_miss_by_their_limits() {
        assert_eq!(
            Check::at_least("r", "", Some(0.5), 0.5).passed_opt,
            Some(true)
        );
        assert_eq!(
            Check::at_least("r", "", Some(0.49), 0.5).passed_opt,
            Some(false)
        );
        assert_eq!(
            Check::under("l", "", Some(5.0), "ms", 5.0).passed_opt,
            Some(false)
        );
        assert_eq!(Check::under("l", "", None, "ms", 5.0).passed_opt, None);
    }
}

//! `/api/analytics` query strings and bodies.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use ward_bus::analytics::{
    CurrencyCode, DailyCount, Receivables, ReceivablesQuery, Summary, Timeseries, TimeseriesInput,
    TimeseriesQuery,
};
use ward_core::{FieldError, WardResult};

use super::fields::{invalid, unknown_fields};

/// Durable figures built from patient and billing events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AnalyticsSummary)]
pub(crate) struct SummaryResponse {
    patients_registered: u64,
    patients_deleted: u64,
    /// Duplicates merged into another patient and not unmerged since.
    patients_merged: u64,
    billing_accounts_opened: u64,
    /// Patients neither deleted, merged away nor purged.
    active_patients: u64,
    /// Events processed, by event type (e.g. `PatientRegistered`).
    events_by_type: BTreeMap<String, u64>,
    /// By registered date, oldest first.
    registrations_by_day: Vec<DailyCountResponse>,
    /// Payments net of refunds in minor units, by currency code, then by method
    /// (e.g. `{"EUR": {"card": 12500}}`).
    #[schema(example = json!({"EUR": {"card": 12500, "cash": 4000}}))]
    payments_by_method: BTreeMap<String, BTreeMap<String, i64>>,
}

/// Registrations on one day.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DailyCount)]
pub(crate) struct DailyCountResponse {
    date: NaiveDate,
    count: u64,
}

impl From<Summary> for SummaryResponse {
    fn from(summary: Summary) -> Self {
        let mut registrations_by_day = Vec::with_capacity(summary.registrations_by_day.len());
        for DailyCount { date, count } in summary.registrations_by_day {
            registrations_by_day.push(DailyCountResponse { date, count });
        }
        Self {
            patients_registered: summary.patients_registered,
            patients_deleted: summary.patients_deleted,
            patients_merged: summary.patients_merged,
            billing_accounts_opened: summary.billing_accounts_opened,
            active_patients: summary.active_patients,
            events_by_type: summary.events_by_type,
            registrations_by_day,
            payments_by_method: summary.payments_by_method,
        }
    }
}

/// What a time series counts (documentation only: the parameter is read as text).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum MetricParam {
    Registrations,
    Invoiced,
    Collected,
}

/// A time series bucket width (documentation only).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum IntervalParam {
    Day,
    Week,
    Month,
}

/// `GET /api/analytics/timeseries` query. Kept as text so a bad value is a 400 naming the
/// parameter; any other parameter is a 400 naming it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TimeseriesParams {
    /// `registrations` (by registered date), `invoiced` (issued minus voided) or `collected`
    /// (payments minus refunds).
    #[param(required = true, value_type = MetricParam)]
    metric: Option<String>,
    /// First day, inclusive (yyyy-MM-dd); 29 days before `to` when absent.
    #[param(value_type = Option<NaiveDate>)]
    from: Option<String>,
    /// Last day, inclusive (yyyy-MM-dd); today (UTC) when absent. At most 3660 buckets.
    #[param(value_type = Option<NaiveDate>)]
    to: Option<String>,
    /// Bucket width; `day` when absent. Weeks are ISO weeks (Monday first).
    #[param(value_type = Option<IntervalParam>)]
    interval: Option<String>,
    /// ISO 4217 code, for `invoiced` and `collected` only; when absent, the only currency seen
    /// (a 400 naming `currency` when several were).
    #[param(value_type = Option<String>, pattern = "^[A-Za-z]{3}$", example = "EUR")]
    currency: Option<String>,
    /// Any other parameter: a 400 naming it.
    #[serde(flatten)]
    #[param(ignore)]
    unknown: BTreeMap<String, String>,
}

impl TimeseriesParams {
    pub(crate) fn into_query(self, today: NaiveDate) -> WardResult<TimeseriesQuery> {
        let mut unknown_errors = Vec::new();
        unknown_fields_of(&self.unknown, &mut unknown_errors);
        let input = TimeseriesInput {
            metric_opt: self.metric.as_deref(),
            from_opt: self.from.as_deref(),
            to_opt: self.to.as_deref(),
            interval_opt: self.interval.as_deref(),
            currency_opt: self.currency.as_deref(),
        };
        with_unknown_errors(TimeseriesQuery::parse(input, today), unknown_errors)
    }
}

/// `GET /api/analytics/receivables` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReceivablesParams {
    /// ISO 4217 code; when absent, the only currency seen (a 400 naming `currency` when
    /// several were).
    #[param(value_type = Option<String>, pattern = "^[A-Za-z]{3}$", example = "EUR")]
    currency: Option<String>,
    /// Any other parameter: a 400 naming it.
    #[serde(flatten)]
    #[param(ignore)]
    unknown: BTreeMap<String, String>,
}

impl ReceivablesParams {
    pub(crate) fn into_query(self, today: NaiveDate) -> WardResult<ReceivablesQuery> {
        let mut unknown_errors = Vec::new();
        unknown_fields_of(&self.unknown, &mut unknown_errors);
        let currency_text_opt = self.currency.filter(|raw| !raw.trim().is_empty());
        let parsed = match currency_text_opt {
            None => Ok(None),
            Some(raw) => CurrencyCode::parse(&raw, "currency").map(Some),
        };
        let currency_opt = with_unknown_errors(parsed, unknown_errors)?;
        Ok(ReceivablesQuery {
            currency_opt,
            as_of: today,
        })
    }
}

/// A time series with every bucket present (zeros included), oldest first. Only days within
/// `from..to` count, so the first and last buckets may cover part of their interval.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AnalyticsTimeseries)]
pub(crate) struct TimeseriesResponse {
    #[schema(value_type = MetricParam)]
    metric: &'static str,
    #[schema(value_type = IntervalParam)]
    interval: &'static str,
    /// The currency of `invoiced` and `collected` (absent for `registrations`, and when no
    /// money was seen at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "EUR")]
    currency: Option<String>,
    points: Vec<TimeseriesPointResponse>,
}

/// One bucket: its first day and its value (a count, or minor units, possibly negative when
/// more was voided or refunded than issued or paid).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AnalyticsPoint)]
pub(crate) struct TimeseriesPointResponse {
    start: NaiveDate,
    value: i64,
}

impl From<Timeseries> for TimeseriesResponse {
    fn from(timeseries: Timeseries) -> Self {
        let mut points = Vec::with_capacity(timeseries.points.len());
        for point in timeseries.points {
            points.push(TimeseriesPointResponse {
                start: point.start,
                value: point.value,
            });
        }
        Self {
            metric: timeseries.metric.as_str(),
            interval: timeseries.interval.as_str(),
            currency: timeseries
                .currency_opt
                .map(|currency| currency.as_str().to_string()),
            points,
        }
    }
}

/// What patients owe on open invoices in one currency (minor units), by days since issue.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AnalyticsReceivables)]
pub(crate) struct ReceivablesResponse {
    /// `null` when no money was seen at all.
    #[schema(example = "EUR")]
    currency: Option<String>,
    /// The day invoices are aged at: today (UTC).
    as_of: NaiveDate,
    buckets: AgingBucketsResponse,
    total: i64,
}

/// Outstanding amounts by the invoice's age in days.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AgingBuckets)]
pub(crate) struct AgingBucketsResponse {
    #[serde(rename = "0-30")]
    days_0_30: i64,
    #[serde(rename = "31-60")]
    days_31_60: i64,
    #[serde(rename = "61-90")]
    days_61_90: i64,
    /// Over 90 days.
    #[serde(rename = "90+")]
    over_90: i64,
}

impl From<Receivables> for ReceivablesResponse {
    fn from(receivables: Receivables) -> Self {
        let total = receivables.buckets.total();
        Self {
            currency: receivables
                .currency_opt
                .map(|currency| currency.as_str().to_string()),
            as_of: receivables.as_of,
            buckets: AgingBucketsResponse {
                days_0_30: receivables.buckets.days_0_30,
                days_31_60: receivables.buckets.days_31_60,
                days_61_90: receivables.buckets.days_61_90,
                over_90: receivables.buckets.over_90,
            },
            total,
        }
    }
}

fn unknown_fields_of(unknown: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    let as_values: BTreeMap<String, serde_json::Value> = unknown
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::from(value.as_str())))
        .collect();
    unknown_fields(&as_values, errors);
}

/// Reports unknown parameters together with the parser's own errors.
fn with_unknown_errors<T>(parsed: WardResult<T>, mut errors: Vec<FieldError>) -> WardResult<T> {
    if errors.is_empty() {
        return parsed;
    }
    if let Err(error) = &parsed {
        errors.extend(error.field_errors().iter().cloned());
    }
    Err(invalid(errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> TimeseriesParams {
        actix_web::web::Query::<TimeseriesParams>::from_query(query)
            .unwrap()
            .into_inner()
    }

    fn receivables_params(query: &str) -> ReceivablesParams {
        actix_web::web::Query::<ReceivablesParams>::from_query(query)
            .unwrap()
            .into_inner()
    }

    fn failing_fields(result: WardResult<TimeseriesQuery>) -> Vec<String> {
        let error = result.unwrap_err();
        error
            .field_errors()
            .iter()
            .map(|e| e.field.clone())
            .collect()
    }

    #[test]
    fn unknown_parameters_are_named_with_the_bad_ones() {
        let today = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap();
        let fields = failing_fields(params("metric=nope&limit=5").into_query(today));
        assert_eq!(fields, ["limit", "metric"]);
        let query = params("metric=collected&currency=eur&interval=month").into_query(today);
        assert_eq!(query.unwrap().currency_opt().unwrap().as_str(), "EUR");
    }

    #[test]
    fn receivables_take_only_a_currency() {
        let today = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap();
        let parsed = receivables_params("currency=usd");
        let query = parsed.into_query(today).unwrap();
        assert_eq!(query.currency_opt.unwrap().as_str(), "USD");
        assert_eq!(query.as_of, today);
        let parsed = receivables_params("currency=dollars&asOf=2024-01-01");
        let error = parsed.into_query(today).unwrap_err();
        let fields: Vec<&str> = error
            .field_errors()
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, ["asOf", "currency"]);
    }
}

//! The analytics module's contract: the figures it keeps and the queries over them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Datelike, Days, Months, NaiveDate};
use ward_core::{CallerContext, FieldError, WardError, WardResult};

pub type AnalyticsClient = Arc<dyn AnalyticsApi>;

/// The most buckets one time series may hold (ten years of days).
pub const TIMESERIES_MAX_POINTS: u64 = 3660;
/// The default range when `from` is absent: this many days ending on `to`.
pub const TIMESERIES_DEFAULT_DAYS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCount {
    pub date: NaiveDate,
    pub count: u64,
}

/// Durable figures built from patient and billing events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub patients_registered: u64,
    pub patients_deleted: u64,
    /// Duplicates merged into another patient and not unmerged since.
    pub patients_merged: u64,
    pub billing_accounts_opened: u64,
    /// Patients neither deleted, merged away nor purged.
    pub active_patients: u64,
    pub events_by_type: BTreeMap<String, u64>,
    /// By the patient's registered date, oldest first.
    pub registrations_by_day: Vec<DailyCount>,
    /// Payments net of refunds, in minor units: currency code -> method -> amount.
    pub payments_by_method: BTreeMap<String, BTreeMap<String, i64>>,
}

/// What a time series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Patients by registered date.
    Registrations,
    /// Totals of invoices issued minus totals of invoices voided, by the day of each.
    Invoiced,
    /// Payments received minus refunds, by the day of each.
    Collected,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Registrations, Metric::Invoiced, Metric::Collected];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Registrations => "registrations",
            Metric::Invoiced => "invoiced",
            Metric::Collected => "collected",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|metric| metric.as_str() == raw)
    }

    /// Whether the values are money, and so per currency.
    pub fn is_money(self) -> bool {
        match self {
            Metric::Registrations => false,
            Metric::Invoiced | Metric::Collected => true,
        }
    }
}

/// The width of a time series bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    /// An ISO week, Monday to Sunday.
    Week,
    /// A calendar month.
    Month,
}

impl Interval {
    pub const ALL: [Interval; 3] = [Interval::Day, Interval::Week, Interval::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|interval| interval.as_str() == raw)
    }

    /// Returns the first day of the bucket holding `date`.
    pub fn bucket_start(self, date: NaiveDate) -> NaiveDate {
        match self {
            Interval::Day => date,
            Interval::Week => {
                let days_since_monday = u64::from(date.weekday().num_days_from_monday());
                date.checked_sub_days(Days::new(days_since_monday))
                    .unwrap_or(date)
            }
            Interval::Month => date.with_day(1).unwrap_or(date),
        }
    }

    /// Returns the first day of the bucket after the one starting on `start`, `None` past the
    /// calendar's end.
    pub fn next_start(self, start: NaiveDate) -> Option<NaiveDate> {
        match self {
            Interval::Day => start.checked_add_days(Days::new(1)),
            Interval::Week => start.checked_add_days(Days::new(7)),
            Interval::Month => start.checked_add_months(Months::new(1)),
        }
    }

    /// Returns the start of every bucket that overlaps `from..=to`, oldest first.
    pub fn bucket_starts(self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        let mut starts = Vec::new();
        let mut start_opt = Some(self.bucket_start(from));
        while let Some(start) = start_opt.filter(|start| *start <= to) {
            starts.push(start);
            start_opt = self.next_start(start);
        }
        starts
    }
}

/// An ISO 4217-shaped currency code (three letters, upper case) as analytics stores it.
///
/// Analytics does not check the code against the ISO list: billing did when the money moved,
/// and a query for a code never seen simply has no figures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    /// Parses three ASCII letters, ignoring surrounding spaces and case; anything else is
    /// `InvalidArgument` naming `field`.
    pub fn parse(raw: &str, field: &str) -> WardResult<Self> {
        let code = raw.trim();
        let is_three_letters = code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic());
        if !is_three_letters {
            return Err(WardError::invalid_field(
                field,
                format!("{field} must be a three-letter ISO 4217 code"),
            ));
        }
        Ok(Self(code.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A time series request, checked: `from <= to`, at most [`TIMESERIES_MAX_POINTS`] buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeseriesQuery {
    metric: Metric,
    from: NaiveDate,
    to: NaiveDate,
    interval: Interval,
    currency_opt: Option<CurrencyCode>,
}

/// A time series request as text (query string or protobuf); `None` or blank is absent.
#[derive(Debug, Clone, Default)]
pub struct TimeseriesInput<'a> {
    pub metric_opt: Option<&'a str>,
    pub from_opt: Option<&'a str>,
    pub to_opt: Option<&'a str>,
    pub interval_opt: Option<&'a str>,
    pub currency_opt: Option<&'a str>,
}

impl TimeseriesQuery {
    /// Parses a request, reporting every bad parameter at once. `to` defaults to `today`,
    /// `from` to [`TIMESERIES_DEFAULT_DAYS`] days ending on `to`, `interval` to `day`;
    /// `metric` is required, and `currency` applies to money metrics only.
    pub fn parse(input: TimeseriesInput<'_>, today: NaiveDate) -> WardResult<Self> {
        let mut errors = Vec::new();
        let metric_opt = match present(input.metric_opt) {
            None => {
                errors.push(field_error("metric", "metric is required"));
                None
            }
            Some(raw) => {
                let parsed_opt = Metric::parse(raw);
                if parsed_opt.is_none() {
                    errors.push(field_error(
                        "metric",
                        "metric must be registrations, invoiced or collected",
                    ));
                }
                parsed_opt
            }
        };
        let interval_opt = match present(input.interval_opt) {
            None => Some(Interval::Day),
            Some(raw) => {
                let parsed_opt = Interval::parse(raw);
                if parsed_opt.is_none() {
                    errors.push(field_error(
                        "interval",
                        "interval must be day, week or month",
                    ));
                }
                parsed_opt
            }
        };
        let to_opt = match present(input.to_opt) {
            None => Some(today),
            Some(raw) => date_param(raw, "to", &mut errors),
        };
        let from_opt = match present(input.from_opt) {
            None => {
                to_opt.and_then(|to| to.checked_sub_days(Days::new(TIMESERIES_DEFAULT_DAYS - 1)))
            }
            Some(raw) => date_param(raw, "from", &mut errors),
        };
        let currency_opt = match present(input.currency_opt) {
            None => None,
            Some(raw) => match CurrencyCode::parse(raw, "currency") {
                Ok(currency) => Some(currency),
                Err(error) => {
                    errors.extend(error.field_errors().iter().cloned());
                    None
                }
            },
        };
        if let (Some(metric), Some(_)) = (metric_opt, &currency_opt)
            && !metric.is_money()
        {
            errors.push(field_error(
                "currency",
                "currency applies to the invoiced and collected metrics only",
            ));
        }
        if let (Some(from), Some(to)) = (from_opt, to_opt)
            && from > to
        {
            errors.push(field_error("from", "from must not be after to"));
        }
        if let (Some(from), Some(to), Some(interval)) = (from_opt, to_opt, interval_opt)
            && from <= to
        {
            let num_points = count_buckets(interval, from, to);
            if num_points > TIMESERIES_MAX_POINTS {
                errors.push(field_error(
                    "to",
                    format!(
                        "from..to spans {num_points} {interval}s; at most {TIMESERIES_MAX_POINTS}",
                        interval = interval.as_str()
                    ),
                ));
            }
        }
        match (metric_opt, from_opt, to_opt, interval_opt) {
            (Some(metric), Some(from), Some(to), Some(interval)) if errors.is_empty() => Ok(Self {
                metric,
                from,
                to,
                interval,
                currency_opt,
            }),
            _ => Err(invalid(errors)),
        }
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    pub fn to(&self) -> NaiveDate {
        self.to
    }

    pub fn interval(&self) -> Interval {
        self.interval
    }

    pub fn currency_opt(&self) -> Option<&CurrencyCode> {
        self.currency_opt.as_ref()
    }
}

/// One bucket of a time series: its first day and its value (a count, or minor units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeseriesPoint {
    pub start: NaiveDate,
    pub value: i64,
}

/// Every bucket overlapping `from..=to`, zeros included, oldest first; only days within the
/// range count, so the first and last buckets may be partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeseries {
    pub metric: Metric,
    pub interval: Interval,
    /// The currency of a money metric; `None` for counts, and for money when no money has
    /// been seen at all.
    pub currency_opt: Option<CurrencyCode>,
    pub points: Vec<TimeseriesPoint>,
}

/// A receivables request: one currency (or the only one seen), aged as of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivablesQuery {
    pub currency_opt: Option<CurrencyCode>,
    pub as_of: NaiveDate,
}

/// What patients owe on open invoices, by days since each invoice was issued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgingBuckets {
    /// 0 to 30 days.
    pub days_0_30: i64,
    pub days_31_60: i64,
    pub days_61_90: i64,
    /// More than 90 days.
    pub over_90: i64,
}

impl AgingBuckets {
    /// Adds `amount` to the bucket of an invoice issued `age_days` ago (an invoice dated after
    /// the as-of day counts as 0 days old).
    pub fn add(&mut self, age_days: i64, amount: i64) {
        let bucket = match age_days {
            ..=30 => &mut self.days_0_30,
            31..=60 => &mut self.days_31_60,
            61..=90 => &mut self.days_61_90,
            _ => &mut self.over_90,
        };
        *bucket = bucket.saturating_add(amount);
    }

    pub fn total(&self) -> i64 {
        self.days_0_30
            .saturating_add(self.days_31_60)
            .saturating_add(self.days_61_90)
            .saturating_add(self.over_90)
    }
}

/// Outstanding receivables in one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receivables {
    /// `None` when no money has been seen at all.
    pub currency_opt: Option<CurrencyCode>,
    pub as_of: NaiveDate,
    pub buckets: AgingBuckets,
}

#[async_trait]
pub trait AnalyticsApi: Send + Sync + 'static {
    /// Needs `analytics:read`.
    async fn summary(&self, ctx: &CallerContext) -> WardResult<Summary>;

    /// Needs `analytics:read`. A money metric without a currency uses the only currency seen;
    /// with several seen, it is `InvalidArgument` naming `currency`.
    async fn timeseries(
        &self,
        ctx: &CallerContext,
        query: TimeseriesQuery,
    ) -> WardResult<Timeseries>;

    /// Needs `analytics:read`. Without a currency, the only one seen, as for
    /// [`AnalyticsApi::timeseries`].
    async fn receivables(
        &self,
        ctx: &CallerContext,
        query: ReceivablesQuery,
    ) -> WardResult<Receivables>;

    async fn check_ready(&self) -> WardResult<()>;
}

/// Picks the currency of a money figure: the one named, else the only one seen (`None` when
/// none was); several seen and none named is `InvalidArgument` naming `currency`.
pub fn choose_currency(
    named_opt: Option<&CurrencyCode>,
    seen: &[CurrencyCode],
) -> WardResult<Option<CurrencyCode>> {
    if let Some(named) = named_opt {
        return Ok(Some(named.clone()));
    }
    match seen {
        [] => Ok(None),
        [only] => Ok(Some(only.clone())),
        several => {
            let codes: Vec<&str> = several.iter().map(CurrencyCode::as_str).collect();
            Err(WardError::invalid_field(
                "currency",
                format!(
                    "several currencies were seen ({}); name one with currency",
                    codes.join(", ")
                ),
            ))
        }
    }
}

/// How many buckets of `interval` overlap `from..=to` (`from <= to`), without listing them.
fn count_buckets(interval: Interval, from: NaiveDate, to: NaiveDate) -> u64 {
    let first = interval.bucket_start(from);
    let last = interval.bucket_start(to);
    let num_days = u64::try_from((last - first).num_days()).unwrap_or(0);
    match interval {
        Interval::Day => num_days + 1,
        Interval::Week => num_days / 7 + 1,
        Interval::Month => {
            let months = (i64::from(last.year()) - i64::from(first.year())) * 12
                + i64::from(last.month())
                - i64::from(first.month());
            u64::try_from(months).unwrap_or(0) + 1
        }
    }
}

fn present(raw_opt: Option<&str>) -> Option<&str> {
    raw_opt.map(str::trim).filter(|raw| !raw.is_empty())
}

fn date_param(raw: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(date) => Some(date),
        Err(_) => {
            errors.push(field_error(
                field,
                format!("{field} must be a date in yyyy-MM-dd format"),
            ));
            None
        }
    }
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

fn invalid(errors: Vec<FieldError>) -> WardError {
    let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
    WardError::invalid(messages.join("; "), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(raw: &str) -> NaiveDate {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
    }

    fn input<'a>(
        metric: &'a str,
        from: &'a str,
        to: &'a str,
        interval: &'a str,
    ) -> TimeseriesInput<'a> {
        TimeseriesInput {
            metric_opt: Some(metric),
            from_opt: Some(from),
            to_opt: Some(to),
            interval_opt: Some(interval),
            currency_opt: None,
        }
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
    fn defaults_are_the_last_30_days_by_day() {
        let today = date("2024-03-31");
        let query = TimeseriesQuery::parse(
            TimeseriesInput {
                metric_opt: Some("registrations"),
                ..TimeseriesInput::default()
            },
            today,
        )
        .unwrap();
        assert_eq!(query.from(), date("2024-03-02"));
        assert_eq!(query.to(), today);
        assert_eq!(query.interval(), Interval::Day);
        assert_eq!(
            Interval::Day.bucket_starts(query.from(), query.to()).len(),
            30
        );
    }

    #[test]
    fn bad_parameters_are_named_together() {
        let today = date("2024-03-31");
        let fields = failing_fields(TimeseriesQuery::parse(
            TimeseriesInput {
                metric_opt: Some("revenue"),
                from_opt: Some("2024-13-01"),
                to_opt: Some("yesterday"),
                interval_opt: Some("year"),
                currency_opt: Some("EU"),
            },
            today,
        ));
        assert_eq!(fields, ["metric", "interval", "to", "from", "currency"]);
        let fields = failing_fields(TimeseriesQuery::parse(TimeseriesInput::default(), today));
        assert_eq!(fields, ["metric"]);
    }

    #[test]
    fn from_after_to_and_too_long_ranges_are_refused() {
        let today = date("2024-03-31");
        let after =
            TimeseriesQuery::parse(input("invoiced", "2024-02-02", "2024-02-01", "day"), today);
        assert_eq!(failing_fields(after), ["from"]);
        let too_long =
            TimeseriesQuery::parse(input("invoiced", "2000-01-01", "2010-12-31", "day"), today);
        assert_eq!(failing_fields(too_long), ["to"]);
        // 3660 days exactly is fine, and the same span by month is small.
        let longest =
            TimeseriesQuery::parse(input("invoiced", "2000-01-01", "2010-01-07", "day"), today);
        assert!(longest.is_ok(), "{longest:?}");
        let monthly = TimeseriesQuery::parse(
            input("invoiced", "2000-01-01", "2010-12-31", "month"),
            today,
        );
        assert!(monthly.is_ok());
    }

    #[test]
    fn currency_is_for_money_metrics_only() {
        let today = date("2024-03-31");
        let mut with_currency = input("registrations", "2024-03-01", "2024-03-31", "day");
        with_currency.currency_opt = Some("eur");
        assert_eq!(
            failing_fields(TimeseriesQuery::parse(with_currency.clone(), today)),
            ["currency"]
        );
        with_currency.metric_opt = Some("collected");
        let query = TimeseriesQuery::parse(with_currency, today).unwrap();
        assert_eq!(query.currency_opt().unwrap().as_str(), "EUR");
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2024-01-01 was a Monday.
        assert_eq!(
            Interval::Week.bucket_start(date("2024-01-07")),
            date("2024-01-01")
        );
        assert_eq!(
            Interval::Week.bucket_start(date("2024-01-08")),
            date("2024-01-08")
        );
        assert_eq!(
            Interval::Month.bucket_start(date("2024-02-29")),
            date("2024-02-01")
        );
        assert_eq!(
            Interval::Week.bucket_starts(date("2023-12-31"), date("2024-01-15")),
            [
                date("2023-12-25"),
                date("2024-01-01"),
                date("2024-01-08"),
                date("2024-01-15")
            ]
        );
        assert_eq!(
            Interval::Month.bucket_starts(date("2024-01-31"), date("2024-03-01")),
            [date("2024-01-01"), date("2024-02-01"), date("2024-03-01")]
        );
        for interval in Interval::ALL {
            let from = date("2023-11-17");
            let to = date("2024-05-02");
            let listed = interval.bucket_starts(from, to).len() as u64;
            assert_eq!(count_buckets(interval, from, to), listed, "{interval:?}");
        }
    }

    #[test]
    fn aging_buckets_split_at_30_60_and_90_days() {
        let mut buckets = AgingBuckets::default();
        for (age_days, amount) in [
            (-1, 1),
            (0, 2),
            (30, 4),
            (31, 8),
            (60, 16),
            (61, 32),
            (90, 64),
            (91, 128),
        ] {
            buckets.add(age_days, amount);
        }
        assert_eq!(
            buckets,
            AgingBuckets {
                days_0_30: 7,
                days_31_60: 24,
                days_61_90: 96,
                over_90: 128,
            }
        );
        assert_eq!(buckets.total(), 255);
    }

    #[test]
    fn the_only_currency_seen_is_the_default() {
        let eur = CurrencyCode::parse("eur", "currency").unwrap();
        let usd = CurrencyCode::parse("USD", "currency").unwrap();
        assert_eq!(choose_currency(None, &[]).unwrap(), None);
        assert_eq!(
            choose_currency(None, std::slice::from_ref(&eur)).unwrap(),
            Some(eur.clone())
        );
        let error = choose_currency(None, &[eur.clone(), usd.clone()]).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "currency");
        assert_eq!(choose_currency(Some(&usd), &[eur]).unwrap(), Some(usd));
    }
}

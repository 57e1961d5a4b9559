//! [`AnalyticsService`]: reads the figures the [`crate::FiguresHandler`] keeps.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sea_orm_migration::MigratorTrait;
use ward_bus::AnalyticsApi;
use ward_bus::analytics::{
    AgingBuckets, CurrencyCode, DailyCount, Metric, Receivables, ReceivablesQuery, Summary,
    Timeseries, TimeseriesPoint, TimeseriesQuery, choose_currency,
};
use ward_bus::db::{db_error, ping};
use ward_bus::events::{
    BillingAccountOpened, DomainEvent, PatientDeleted, PatientMerged, PatientRegistered,
    PatientUnmerged,
};
use ward_core::{CallerContext, Right, WardError, WardResult};

use crate::entity::{
    daily_amounts, daily_registrations, event_counts, method_amounts, patient_states, receivables,
};
use crate::figures::PatientState;
use crate::migration::Migrator;

/// Implements [`AnalyticsApi`] over the analytics database.
pub struct AnalyticsService {
    db: DatabaseConnection,
}

impl AnalyticsService {
    /// Returns a service over a migrated database.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Applies the analytics migrations; running it again is a no-op.
    pub async fn migrate(db: &DatabaseConnection) -> WardResult<()> {
        Migrator::up(db, None)
            .await
            .map_err(|error| db_error("migrating the analytics database", error))
    }

    /// The currencies any money was seen in, sorted.
    async fn currencies_seen(&self) -> WardResult<Vec<CurrencyCode>> {
        let codes: Vec<String> = daily_amounts::Entity::find()
            .select_only()
            .column(daily_amounts::Column::Currency)
            .distinct()
            .order_by_asc(daily_amounts::Column::Currency)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(|error| db_error("reading the currencies seen", error))?;
        let mut currencies = Vec::with_capacity(codes.len());
        for code in codes {
            currencies.push(CurrencyCode::parse(&code, "currency").map_err(|_| {
                WardError::Internal(format!("analytics holds a malformed currency {code:?}"))
            })?);
        }
        Ok(currencies)
    }

    /// Per-day values of `metric` within `from..=to` (days without a value are absent).
    async fn daily_values(
        &self,
        metric: Metric,
        currency_opt: Option<&CurrencyCode>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> WardResult<Vec<(NaiveDate, i64)>> {
        if metric == Metric::Registrations {
            let rows = daily_registrations::Entity::find()
                .filter(daily_registrations::Column::Date.between(from, to))
                .all(&self.db)
                .await
                .map_err(|error| db_error("reading daily registrations", error))?;
            return Ok(rows.into_iter().map(|row| (row.date, row.count)).collect());
        }
        // No money seen at all: every bucket is zero.
        let Some(currency) = currency_opt else {
            return Ok(Vec::new());
        };
        let rows = daily_amounts::Entity::find()
            .filter(daily_amounts::Column::Metric.eq(metric.as_str()))
            .filter(daily_amounts::Column::Currency.eq(currency.as_str()))
            .filter(daily_amounts::Column::Day.between(from, to))
            .all(&self.db)
            .await
            .map_err(|error| db_error("reading daily amounts", error))?;
        Ok(rows.into_iter().map(|row| (row.day, row.amount)).collect())
    }
}

#[async_trait]
impl AnalyticsApi for AnalyticsService {
    #[tracing::instrument(name = "analytics.summary", skip_all)]
    async fn summary(&self, ctx: &CallerContext) -> WardResult<Summary> {
        ctx.require(Right::AnalyticsRead)?;
        let count_rows = event_counts::Entity::find()
            .all(&self.db)
            .await
            .map_err(|error| db_error("reading event counts", error))?;
        let mut events_by_type = BTreeMap::new();
        for row in count_rows {
            events_by_type.insert(row.event_type, stored_count(row.count)?);
        }
        let day_rows = daily_registrations::Entity::find()
            .order_by_asc(daily_registrations::Column::Date)
            .all(&self.db)
            .await
            .map_err(|error| db_error("reading daily registrations", error))?;
        let mut registrations_by_day = Vec::with_capacity(day_rows.len());
        for row in day_rows {
            registrations_by_day.push(DailyCount {
                date: row.date,
                count: stored_count(row.count)?,
            });
        }
        let active_patients = patient_states::Entity::find()
            .filter(patient_states::Column::State.eq(PatientState::Active.as_str()))
            .count(&self.db)
            .await
            .map_err(|error| db_error("counting active patients", error))?;
        let method_rows = method_amounts::Entity::find()
            .all(&self.db)
            .await
            .map_err(|error| db_error("reading payments by method", error))?;
        let mut payments_by_method: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for row in method_rows {
            payments_by_method
                .entry(row.currency)
                .or_default()
                .insert(row.method, row.amount);
        }
        let count_of = |event_type: &str| events_by_type.get(event_type).copied().unwrap_or(0);
        Ok(Summary {
            patients_registered: count_of(PatientRegistered::EVENT_TYPE),
            patients_deleted: count_of(PatientDeleted::EVENT_TYPE),
            // Events are processed once each, so the unmerges never outnumber the merges.
            patients_merged: count_of(PatientMerged::EVENT_TYPE)
                .saturating_sub(count_of(PatientUnmerged::EVENT_TYPE)),
            billing_accounts_opened: count_of(BillingAccountOpened::EVENT_TYPE),
            active_patients,
            events_by_type,
            registrations_by_day,
            payments_by_method,
        })
    }

    #[tracing::instrument(name = "analytics.timeseries", skip_all)]
    async fn timeseries(
        &self,
        ctx: &CallerContext,
        query: TimeseriesQuery,
    ) -> WardResult<Timeseries> {
        ctx.require(Right::AnalyticsRead)?;
        let metric = query.metric();
        let currency_opt = if metric.is_money() {
            choose_currency(query.currency_opt(), &self.currencies_seen().await?)?
        } else {
            None
        };
        let daily = self
            .daily_values(metric, currency_opt.as_ref(), query.from(), query.to())
            .await?;
        let points = fill_buckets(&query, &daily);
        Ok(Timeseries {
            metric,
            interval: query.interval(),
            currency_opt,
            points,
        })
    }

    #[tracing::instrument(name = "analytics.receivables", skip_all)]
    async fn receivables(
        &self,
        ctx: &CallerContext,
        query: ReceivablesQuery,
    ) -> WardResult<Receivables> {
        ctx.require(Right::AnalyticsRead)?;
        let currency_opt =
            choose_currency(query.currency_opt.as_ref(), &self.currencies_seen().await?)?;
        let mut buckets = AgingBuckets::default();
        if let Some(currency) = &currency_opt {
            // One row per issue day, however many invoices are open. PostgreSQL sums BIGINTs
            // into NUMERIC, hence the cast back.
            let outstanding_sum: Expr = Func::cast_as(
                Func::sum(Expr::col(receivables::Column::Outstanding)),
                "BIGINT",
            )
            .into();
            let by_day: Vec<(NaiveDate, i64)> = receivables::Entity::find()
                .select_only()
                .column(receivables::Column::IssuedOn)
                .column_as(outstanding_sum, "outstanding")
                .filter(receivables::Column::Currency.eq(currency.as_str()))
                .group_by(receivables::Column::IssuedOn)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(|error| db_error("reading receivables", error))?;
            for (issued_on, outstanding) in by_day {
                let age_days = (query.as_of - issued_on).num_days();
                buckets.add(age_days, outstanding);
            }
        }
        Ok(Receivables {
            currency_opt,
            as_of: query.as_of,
            buckets,
        })
    }

    #[tracing::instrument(name = "analytics.check_ready", skip_all)]
    async fn check_ready(&self) -> WardResult<()> {
        ping(&self.db, "analytics").await
    }
}

/// Sums `daily` values into every bucket of the query's range, zeros included, oldest first.
fn fill_buckets(query: &TimeseriesQuery, daily: &[(NaiveDate, i64)]) -> Vec<TimeseriesPoint> {
    let interval = query.interval();
    let mut sums: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for (day, value) in daily {
        let is_in_range = *day >= query.from() && *day <= query.to();
        if is_in_range {
            let sum = sums.entry(interval.bucket_start(*day)).or_default();
            *sum = sum.saturating_add(*value);
        }
    }
    let starts = interval.bucket_starts(query.from(), query.to());
    let mut points = Vec::with_capacity(starts.len());
    for start in starts {
        let value = sums.get(&start).copied().unwrap_or(0);
        points.push(TimeseriesPoint { start, value });
    }
    points
}

/// Counters only ever grow from zero; a negative one means the table was tampered with.
fn stored_count(count: i64) -> WardResult<u64> {
    u64::try_from(count)
        .map_err(|_| WardError::Internal(format!("analytics holds a negative count {count}")))
}

#[cfg(test)]
mod tests {
    use ward_bus::analytics::TimeseriesInput;

    use super::*;

    fn date(raw: &str) -> NaiveDate {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn negative_counts_are_internal_errors() {
        assert_eq!(stored_count(3).unwrap(), 3);
        assert!(matches!(stored_count(-1), Err(WardError::Internal(_))));
    }

    #[test]
    fn buckets_are_filled_and_clipped_to_the_range() {
        let query = TimeseriesQuery::parse(
            TimeseriesInput {
                metric_opt: Some("registrations"),
                from_opt: Some("2024-01-03"),
                to_opt: Some("2024-01-16"),
                interval_opt: Some("week"),
                currency_opt: None,
            },
            date("2024-02-01"),
        )
        .unwrap();
        let daily = [
            (date("2024-01-01"), 100), // before `from`, in the first week: left out
            (date("2024-01-03"), 1),
            (date("2024-01-07"), 2),
            (date("2024-01-15"), 4),
            (date("2024-01-17"), 100), // after `to`
        ];
        let points = fill_buckets(&query, &daily);
        let expected = [
            (date("2024-01-01"), 3),
            (date("2024-01-08"), 0),
            (date("2024-01-15"), 4),
        ];
        let actual: Vec<(NaiveDate, i64)> = points
            .iter()
            .map(|point| (point.start, point.value))
            .collect();
        assert_eq!(actual, expected);
    }
}

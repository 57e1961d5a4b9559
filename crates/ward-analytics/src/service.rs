//! [`AnalyticsService`]: reads the figures the [`crate::FiguresHandler`] keeps.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use sea_orm_migration::MigratorTrait;
use ward_bus::AnalyticsApi;
use ward_bus::analytics::{DailyCount, Summary};
use ward_bus::db::{db_error, ping};
use ward_bus::events::{
    BillingAccountOpened, DomainEvent, PatientDeleted, PatientMerged, PatientRegistered,
    PatientUnmerged,
};
use ward_core::{CallerContext, Right, WardError, WardResult};

use crate::entity::{daily_registrations, event_counts};
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
        let count_of = |event_type: &str| events_by_type.get(event_type).copied().unwrap_or(0);
        Ok(Summary {
            patients_registered: count_of(PatientRegistered::EVENT_TYPE),
            patients_deleted: count_of(PatientDeleted::EVENT_TYPE),
            // Events are processed once each, so the unmerges never outnumber the merges.
            patients_merged: count_of(PatientMerged::EVENT_TYPE)
                .saturating_sub(count_of(PatientUnmerged::EVENT_TYPE)),
            billing_accounts_opened: count_of(BillingAccountOpened::EVENT_TYPE),
            events_by_type,
            registrations_by_day,
        })
    }

    #[tracing::instrument(name = "analytics.check_ready", skip_all)]
    async fn check_ready(&self) -> WardResult<()> {
        ping(&self.db, "analytics").await
    }
}

/// Counters only ever grow from zero; a negative one means the table was tampered with.
fn stored_count(count: i64) -> WardResult<u64> {
    u64::try_from(count)
        .map_err(|_| WardError::Internal(format!("analytics holds a negative count {count}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_counts_are_internal_errors() {
        assert_eq!(stored_count(3).unwrap(), 3);
        assert!(matches!(stored_count(-1), Err(WardError::Internal(_))));
    }
}

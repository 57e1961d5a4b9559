//! The analytics module's contract.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use ward_core::{CallerContext, WardResult};

pub type AnalyticsClient = Arc<dyn AnalyticsApi>;

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
    pub events_by_type: BTreeMap<String, u64>,
    /// By the patient's registered date, oldest first.
    pub registrations_by_day: Vec<DailyCount>,
}

#[async_trait]
pub trait AnalyticsApi: Send + Sync + 'static {
    /// Needs `analytics:read`.
    async fn summary(&self, ctx: &CallerContext) -> WardResult<Summary>;

    async fn check_ready(&self) -> WardResult<()>;
}

//! `ward analytics rebuild`: the analytics module opened from the configuration, replaying the
//! event log into fresh figures.

use ward_analytics::RebuildReport;
use ward_core::config::Config;
use ward_core::{Role, WardResult};

use crate::modules::{open_database, open_event_log_now};

/// Opens the configured analytics database (migrating it first if needed) and event log, and
/// rebuilds every figure from the start of the log (see [`ward_analytics::rebuild`]: run it
/// while no process runs the analytics role).
pub async fn rebuild_analytics(config: &Config) -> WardResult<RebuildReport> {
    let db = open_database(config, Role::Analytics, true).await?;
    let log = open_event_log_now(config).await?;
    ward_analytics::rebuild(&db, log).await
}

//! [`rebuild`]: recomputes every figure by replaying the event log from its start.

use std::time::{Duration, Instant};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    TransactionTrait,
};
use ward_bus::consumer::{offsets, processed};
use ward_bus::db::{db_error, write_transaction};
use ward_bus::events::{BILLING_TOPIC, EventLogHandle, PATIENTS_TOPIC};
use ward_core::WardResult;

use crate::consumer::{CONSUMER_NAME, events_consumer};
use crate::entity::{
    daily_amounts, daily_registrations, event_counts, method_amounts, patient_states, receivables,
};

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Log records read from the start of both topics to their end.
    pub num_events_replayed: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for RebuildReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "replayed {} events in {:.1} s",
            self.num_events_replayed,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Empties the figures and the analytics consumer's offsets and processed-event ids (other
/// consumers' rows stay), in one transaction, then consumes both topics from their start until
/// a pass reads nothing: the log's end as it stands once writers are quiet.
///
/// Run it while the analytics role is stopped: a consumer left running would replay the same
/// records alongside it (each event id is still recorded once, in the transaction that applies
/// it, but the two compete for the same rows, and the rebuild may fail and need running again).
/// A rebuild that stops halfway leaves consistent figures that are behind: the consumer, once
/// started, carries on from the offsets the rebuild reached.
pub async fn rebuild(db: &DatabaseConnection, log: EventLogHandle) -> WardResult<RebuildReport> {
    let started = Instant::now();
    log.ensure_topics(&[PATIENTS_TOPIC, BILLING_TOPIC]).await?;
    clear_figures(db).await?;
    let consumer = events_consumer(db.clone(), log);
    let mut num_events_replayed = 0;
    loop {
        let num_read = consumer.consume_once().await?;
        if num_read == 0 {
            break;
        }
        num_events_replayed += num_read as u64;
    }
    Ok(RebuildReport {
        num_events_replayed,
        elapsed: started.elapsed(),
    })
}

async fn clear_figures(db: &DatabaseConnection) -> WardResult<()> {
    let txn = db
        .begin_with_options(write_transaction())
        .await
        .map_err(|error| db_error("starting the rebuild", error))?;
    if txn.get_database_backend() == DbBackend::Postgres {
        // Waits for a consumer batch in flight, so none commits figures this clear missed.
        // (SQLite's IMMEDIATE transaction already excludes every other writer.)
        txn.execute_unprepared(
            "LOCK TABLE consumer_offsets, processed_events, event_counts, daily_registrations, \
             patient_states, daily_amounts, method_amounts, receivables IN EXCLUSIVE MODE",
        )
        .await
        .map_err(|error| db_error("locking the figures", error))?;
    }
    let figures_cleared = [
        event_counts::Entity::delete_many().exec(&txn).await,
        daily_registrations::Entity::delete_many().exec(&txn).await,
        patient_states::Entity::delete_many().exec(&txn).await,
        daily_amounts::Entity::delete_many().exec(&txn).await,
        method_amounts::Entity::delete_many().exec(&txn).await,
        receivables::Entity::delete_many().exec(&txn).await,
    ];
    for result in figures_cleared {
        result.map_err(|error| db_error("clearing the figures", error))?;
    }
    offsets::Entity::delete_many()
        .filter(offsets::Column::Consumer.eq(CONSUMER_NAME))
        .exec(&txn)
        .await
        .map_err(|error| db_error("clearing the analytics offsets", error))?;
    processed::Entity::delete_many()
        .filter(processed::Column::Consumer.eq(CONSUMER_NAME))
        .exec(&txn)
        .await
        .map_err(|error| db_error("clearing the analytics processed events", error))?;
    txn.commit()
        .await
        .map_err(|error| db_error("committing the cleared figures", error))
}

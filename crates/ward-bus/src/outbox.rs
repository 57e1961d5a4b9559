//! The transactional outbox: a producer writes its state change and its events in one database
//! transaction ([`enqueue`]); the [`OutboxRelay`] moves committed events to the log. A log outage
//! delays events and never loses one. The relay deletes rows only after the log took them, so a
//! crash in between sends a row twice: consumers deduplicate by event id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Schema, TransactionTrait,
};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use ward_core::WardResult;
use ward_proto::v1::EventEnvelope;

use crate::db::db_error;
use crate::events::{EventLogHandle, OutgoingRecord, encode_envelope};
use crate::metrics;

const BATCH_SIZE: u64 = 256;
/// How often a running relay refreshes its backlog gauges.
const BACKLOG_REPORT_INTERVAL: Duration = Duration::from_secs(5);

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub event_id: String,
        pub topic: String,
        pub record_key: String,
        pub payload: Vec<u8>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates the `outbox` table; each producing module lists it in its migrator.
pub struct OutboxMigration;

impl MigrationName for OutboxMigration {
    fn name(&self) -> &str {
        "m20261125_000001_outbox"
    }
}

#[async_trait]
impl MigrationTrait for OutboxMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(entity::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        manager
            .drop_table(
                sea_orm::sea_query::Table::drop()
                    .table(entity::Entity)
                    .to_owned(),
            )
            .await
    }
}

/// Adds `envelope` to the outbox inside the caller's transaction.
pub async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    topic: &str,
    envelope: &EventEnvelope,
) -> WardResult<()> {
    let row = entity::ActiveModel {
        seq: ActiveValue::NotSet,
        event_id: ActiveValue::Set(envelope.event_id.clone()),
        topic: ActiveValue::Set(topic.to_string()),
        record_key: ActiveValue::Set(envelope.subject_id.clone()),
        payload: ActiveValue::Set(encode_envelope(envelope)),
        created_at: ActiveValue::Set(Utc::now()),
    };
    entity::Entity::insert(row)
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("writing to the outbox", error))?;
    Ok(())
}

/// The most rows one multi-row outbox insert carries: 5 bound values each keeps a statement far
/// below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const ENQUEUE_CHUNK_ROWS: usize = 2_000;

/// Adds `envelopes` to the outbox inside the caller's transaction, in order, with multi-row
/// inserts (a bulk import writes thousands at once).
pub async fn enqueue_many<C: ConnectionTrait>(
    txn: &C,
    topic: &str,
    envelopes: &[EventEnvelope],
) -> WardResult<()> {
    let created_at = Utc::now();
    for chunk in envelopes.chunks(ENQUEUE_CHUNK_ROWS) {
        let rows = chunk.iter().map(|envelope| entity::ActiveModel {
            seq: ActiveValue::NotSet,
            event_id: ActiveValue::Set(envelope.event_id.clone()),
            topic: ActiveValue::Set(topic.to_string()),
            record_key: ActiveValue::Set(envelope.subject_id.clone()),
            payload: ActiveValue::Set(encode_envelope(envelope)),
            created_at: ActiveValue::Set(created_at),
        });
        entity::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
            .map_err(|error| db_error("writing to the outbox", error))?;
    }
    Ok(())
}

/// Wakes a relay right after a commit, so events do not wait for the next poll.
#[derive(Clone, Default)]
pub struct OutboxWaker(Arc<Notify>);

impl OutboxWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Moves one module's committed outbox rows to the event log, oldest first.
pub struct OutboxRelay {
    module: &'static str,
    db: DatabaseConnection,
    log: EventLogHandle,
    waker: OutboxWaker,
}

impl OutboxRelay {
    pub fn new(module: &'static str, db: DatabaseConnection, log: EventLogHandle) -> Self {
        Self {
            module,
            db,
            log,
            waker: OutboxWaker::default(),
        }
    }

    /// The handle the module's service calls after each commit.
    pub fn waker(&self) -> OutboxWaker {
        self.waker.clone()
    }

    /// Sends one batch; returns how many events moved.
    pub async fn relay_once(&self) -> WardResult<usize> {
        if self.db.get_database_backend() == DbBackend::Postgres {
            // Several instances of a module may share one PostgreSQL outbox. Rows are locked
            // (FOR UPDATE, waiting rather than skipping, so events keep their order) from the read
            // until they are deleted, so each event leaves once.
            let txn = self
                .db
                .begin()
                .await
                .map_err(|error| db_error("starting an outbox batch", error))?;
            let num_moved = self.relay_batch(&txn, true).await?;
            txn.commit()
                .await
                .map_err(|error| db_error("committing an outbox batch", error))?;
            Ok(num_moved)
        } else {
            // SQLite has one writer per file: holding its lock across an append that waits for a
            // broker would stall every registration, so the rows are read, sent, then deleted.
            self.relay_batch(&self.db, false).await
        }
    }

    async fn relay_batch<C: ConnectionTrait>(&self, db: &C, lock_rows: bool) -> WardResult<usize> {
        let mut query = entity::Entity::find()
            .order_by_asc(entity::Column::Seq)
            .limit(BATCH_SIZE);
        if lock_rows {
            query = query.lock_exclusive();
        }
        let rows = query
            .all(db)
            .await
            .map_err(|error| db_error("reading the outbox", error))?;
        if rows.is_empty() {
            return Ok(0);
        }
        // Delete exactly the rows sent, never `seq <= last`: on PostgreSQL a transaction holding
        // a lower seq may commit after a higher one, and a range delete would drop it unsent.
        let sent_seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
        let num_rows = rows.len();
        let records = rows
            .into_iter()
            .map(|row| OutgoingRecord {
                topic: row.topic,
                key: row.record_key,
                value: row.payload,
            })
            .collect();
        self.log.append(records).await?;
        entity::Entity::delete_many()
            .filter(entity::Column::Seq.is_in(sent_seqs))
            .exec(db)
            .await
            .map_err(|error| db_error("clearing the outbox", error))?;
        tracing::debug!(
            module = self.module,
            num_events = num_rows,
            "relayed outbox events"
        );
        metrics::count_outbox_relayed(self.module, num_rows);
        Ok(num_rows)
    }

    /// Relays until `cancel` fires: at once when woken, else every `poll_interval`; backs off
    /// while the log is unavailable, logging what it waits for.
    pub async fn run(self, cancel: CancellationToken, poll_interval: Duration) {
        let mut backoff = poll_interval;
        let mut backlog_reported_at_opt = None;
        loop {
            self.report_backlog_if_due(&mut backlog_reported_at_opt)
                .await;
            let wait = match self.relay_once().await {
                Ok(num_moved) if num_moved as u64 == BATCH_SIZE => Duration::ZERO,
                Ok(_) => {
                    backoff = poll_interval;
                    poll_interval
                }
                Err(error) => {
                    tracing::warn!(module = self.module, %error, retry_in_millis = backoff.as_millis() as u64, "outbox relay waiting for the event log");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    wait
                }
            };
            if wait.is_zero() {
                if cancel.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.waker.0.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.flush().await;
    }

    /// Relays batches until the outbox is empty, so a clean stop leaves nothing behind. The
    /// caller stops writers first and bounds this by its grace period; a log that fails leaves
    /// the rest for the next relay of this module (this one after a restart, or a sibling).
    async fn flush(&self) {
        let mut num_flushed = 0;
        loop {
            match self.relay_once().await {
                Ok(0) => break,
                Ok(num_moved) => num_flushed += num_moved,
                Err(error) => {
                    tracing::warn!(module = self.module, %error, "outbox not drained at shutdown; it will be sent on next start");
                    return;
                }
            }
        }
        tracing::info!(module = self.module, num_flushed, "outbox flushed");
    }
}

impl OutboxRelay {
    /// Sets the backlog gauges (`ward_outbox_pending_events`, `ward_outbox_oldest_event_age_seconds`)
    /// when the last report is older than [`BACKLOG_REPORT_INTERVAL`], so an idle relay polling
    /// often does not count its table each time.
    async fn report_backlog_if_due(&self, reported_at_opt: &mut Option<Instant>) {
        let is_due = match reported_at_opt {
            Some(reported_at) => reported_at.elapsed() >= BACKLOG_REPORT_INTERVAL,
            None => true,
        };
        if !is_due {
            return;
        }
        *reported_at_opt = Some(Instant::now());
        match backlog(&self.db).await {
            Ok((num_pending, oldest_age)) => {
                metrics::set_outbox_backlog(self.module, num_pending, oldest_age);
            }
            Err(error) => {
                tracing::debug!(module = self.module, %error, "outbox backlog not measured");
            }
        }
    }
}

/// Returns how many events wait in the outbox and how old the oldest is (zero when none).
pub async fn backlog<C: ConnectionTrait>(db: &C) -> WardResult<(u64, Duration)> {
    let num_pending = pending(db).await?;
    let oldest_opt: Option<DateTime<Utc>> = entity::Entity::find()
        .select_only()
        .column(entity::Column::CreatedAt)
        .order_by_asc(entity::Column::Seq)
        .into_tuple()
        .one(db)
        .await
        .map_err(|error| db_error("reading the oldest outbox event", error))?;
    let oldest_age = match oldest_opt {
        // A clock step back makes the age negative: report zero rather than fail.
        Some(created_at) => (Utc::now() - created_at).to_std().unwrap_or_default(),
        None => Duration::ZERO,
    };
    Ok((num_pending, oldest_age))
}

/// Counts unsent events (for readiness details and tests).
pub async fn pending<C: ConnectionTrait>(db: &C) -> WardResult<u64> {
    use sea_orm::PaginatorTrait;
    entity::Entity::find()
        .filter(entity::Column::Seq.gt(0))
        .count(db)
        .await
        .map_err(|error| db_error("counting the outbox", error))
}

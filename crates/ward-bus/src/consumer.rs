//! Event consumers. A consumer applies each event and records that it did, in one transaction in
//! its own database: the offset it reached per partition and the ids of the events it applied.
//! A redelivered event (a relay retry, a replay) is recognised by its id and changes nothing.
//!
//! Several instances may read the same partitions: the tasks of an autoscaled ECS service cannot
//! be numbered, so they all run instance 0 of 1. On PostgreSQL each batch first claims its
//! partition with a transaction-scoped advisory lock, and an instance that finds the partition
//! claimed skips it this round, rather than fetching the same records and colliding on the same
//! rows. SQLite needs no claim: one process owns the file.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    EntityTrait, Schema, Statement, TransactionTrait,
};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use ward_core::{ErrorCode, WardResult};
use ward_proto::v1::EventEnvelope;

use crate::db::db_error;
use crate::events::{EventLogHandle, LogRecord, decode_envelope};
use crate::metrics::{self, ConsumerOutcome};

const BATCH_SIZE: usize = 256;

/// How a batch applies its records: see [`Consumer::apply_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unguarded,
    Guarded,
}
/// How often a running consumer measures its lag (a query to the log per partition).
const LAG_REPORT_INTERVAL: Duration = Duration::from_secs(5);

pub mod offsets {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consumer_offsets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub topic: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub partition: i32,
        /// The next offset to read.
        pub next_offset: i64,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod processed {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "processed_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
        pub event_type: String,
        pub processed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates `consumer_offsets` and `processed_events`; each consuming module lists it in its migrator.
pub struct ConsumerMigration;

impl MigrationName for ConsumerMigration {
    fn name(&self) -> &str {
        "m20261125_000002_consumer_state"
    }
}

#[async_trait]
impl MigrationTrait for ConsumerMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(offsets::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(processed::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        use sea_orm::sea_query::Table;
        manager
            .drop_table(Table::drop().table(processed::Entity).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(offsets::Entity).to_owned())
            .await
    }
}

/// What a consumer does with one event, inside the transaction that also records it.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `envelope`. An `InvalidArgument` error means the event itself is unusable: it is
    /// logged and skipped. Any other error stops the batch; the event is retried later.
    async fn handle(&self, txn: &DatabaseTransaction, envelope: &EventEnvelope) -> WardResult<()>;
}

/// Reads topics from the log and feeds one handler, exactly once in effect.
pub struct Consumer {
    name: String,
    db: DatabaseConnection,
    log: EventLogHandle,
    topics: Vec<String>,
    /// `(instance, instances)`: this instance owns partition `p` when `p % instances ==
    /// instance` (rskafka has no consumer groups, so instances split partitions by configuration).
    share: (u32, u32),
    handler: Arc<dyn EventHandler>,
    lag_reported_at: Mutex<Option<Instant>>,
}

impl Consumer {
    pub fn new(
        name: impl Into<String>,
        db: DatabaseConnection,
        log: EventLogHandle,
        topics: &[&str],
        handler: Arc<dyn EventHandler>,
    ) -> Self {
        Self {
            name: name.into(),
            db,
            log,
            topics: topics.iter().map(|topic| topic.to_string()).collect(),
            share: (0, 1),
            handler,
            lag_reported_at: Mutex::new(None),
        }
    }

    /// Makes this consumer instance `instance` of `instances` sharing the partitions.
    pub fn with_share(mut self, instance: u32, instances: u32) -> Self {
        debug_assert!(instance < instances);
        self.share = (instance, instances.max(1));
        self
    }

    fn owns(&self, partition: i32) -> bool {
        let (instance, instances) = self.share;
        i64::from(partition).rem_euclid(i64::from(instances)) == i64::from(instance)
    }

    /// Processes one batch per owned partition; returns how many records it read. On
    /// PostgreSQL the partitions are consumed side by side (each batch is its own transaction
    /// under its own claim), so a slow broker round trip on one does not hold up the others;
    /// SQLite runs one write transaction at a time, so there they go one after another.
    pub async fn consume_once(&self) -> WardResult<usize> {
        let is_lag_report_due = self.is_lag_report_due();
        let mut owned = Vec::new();
        for topic in &self.topics {
            for partition in self.log.partitions(topic).await? {
                if self.owns(partition) {
                    owned.push((topic.as_str(), partition));
                }
            }
        }
        let outcomes = if self.db.get_database_backend() == DatabaseBackend::Postgres {
            let consuming = owned.into_iter().map(|(topic, partition)| {
                self.consume_and_report(topic, partition, is_lag_report_due)
            });
            futures::future::join_all(consuming).await
        } else {
            let mut outcomes = Vec::with_capacity(owned.len());
            for (topic, partition) in owned {
                outcomes.push(
                    self.consume_and_report(topic, partition, is_lag_report_due)
                        .await,
                );
            }
            outcomes
        };
        let mut num_read = 0;
        for outcome in outcomes {
            num_read += outcome?;
        }
        Ok(num_read)
    }

    async fn consume_and_report(
        &self,
        topic: &str,
        partition: i32,
        is_lag_report_due: bool,
    ) -> WardResult<usize> {
        let consumed = self.consume_partition(topic, partition).await;
        // Measured even when the batch failed: a stuck consumer's lag must grow.
        if is_lag_report_due {
            self.report_lag(topic, partition).await;
        }
        consumed
    }

    /// One batch of `partition`: first unguarded (see [`Consumer::apply_batch`]); when a record
    /// fails there, the batch is rolled back and read again guarded.
    async fn consume_partition(&self, topic: &str, partition: i32) -> WardResult<usize> {
        for mode in [Mode::Unguarded, Mode::Guarded] {
            let applied = if self.db.get_database_backend() == DatabaseBackend::Postgres {
                self.consume_claimed_partition(topic, partition, mode)
                    .await?
            } else {
                self.consume_unshared_partition(topic, partition, mode)
                    .await?
            };
            if let Some(num_read) = applied {
                return Ok(num_read);
            }
        }
        // Guarded batches always end in a number or an error.
        Ok(0)
    }

    /// SQLite: the records are fetched before the write transaction, so the database's one write
    /// lock is not held while the log answers.
    async fn consume_unshared_partition(
        &self,
        topic: &str,
        partition: i32,
        mode: Mode,
    ) -> WardResult<Option<usize>> {
        let next_offset = self.next_offset(&self.db, topic, partition).await?;
        let records = self
            .log
            .fetch(topic, partition, next_offset, BATCH_SIZE)
            .await?;
        if records.is_empty() {
            return Ok(Some(0));
        }
        let txn = self
            .db
            .begin_with_options(crate::db::write_transaction())
            .await
            .map_err(|error| db_error("starting a consumer batch", error))?;
        self.apply_batch(txn, topic, partition, &records, mode)
            .await
    }

    /// PostgreSQL: claims the partition for this batch, then reads the offset under the claim, so
    /// it sees what the previous holder committed, and fetches from there.
    async fn consume_claimed_partition(
        &self,
        topic: &str,
        partition: i32,
        mode: Mode,
    ) -> WardResult<Option<usize>> {
        let txn = self
            .db
            .begin()
            .await
            .map_err(|error| db_error("starting a consumer batch", error))?;
        if !claim_partition(&txn, &self.name, topic, partition).await? {
            txn.rollback()
                .await
                .map_err(|error| db_error("ending a consumer batch", error))?;
            tracing::trace!(consumer = %self.name, topic, partition, "partition claimed by another instance");
            return Ok(Some(0));
        }
        let next_offset = self.next_offset(&txn, topic, partition).await?;
        let records = self
            .log
            .fetch(topic, partition, next_offset, BATCH_SIZE)
            .await?;
        if records.is_empty() {
            txn.rollback()
                .await
                .map_err(|error| db_error("ending a consumer batch", error))?;
            return Ok(Some(0));
        }
        self.apply_batch(txn, topic, partition, &records, mode)
            .await
    }

    /// Applies `records` in `txn`, saves the offset reached and commits; returns how many were
    /// read.
    ///
    /// [`Mode::Unguarded`] applies each record straight in `txn`, two statements fewer per record
    /// than a savepoint each; the first record that fails rolls the whole batch back and
    /// `Ok(None)` asks for the batch again guarded. [`Mode::Guarded`] gives each record its own
    /// savepoint: an unusable event is skipped, and any other error stops the batch after the
    /// records before it, which commit. Outcomes are counted once the batch commits.
    async fn apply_batch(
        &self,
        txn: DatabaseTransaction,
        topic: &str,
        partition: i32,
        records: &[LogRecord],
        mode: Mode,
    ) -> WardResult<Option<usize>> {
        let num_read = records.len();
        let mut reached_opt = None;
        let mut failure_opt = None;
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            match self.apply(&txn, record, mode).await {
                Ok(outcome) => {
                    reached_opt = Some(record.offset + 1);
                    outcomes.push((record, outcome));
                }
                Err(_) if mode == Mode::Unguarded => {
                    txn.rollback()
                        .await
                        .map_err(|error| db_error("rolling back a consumer batch", error))?;
                    return Ok(None);
                }
                Err(error) => {
                    self.count(record, ConsumerOutcome::Failed);
                    failure_opt = Some(error);
                    break;
                }
            }
        }
        if let Some(reached) = reached_opt {
            save_offset(&txn, &self.name, topic, partition, reached).await?;
        }
        txn.commit()
            .await
            .map_err(|error| db_error("committing a consumer batch", error))?;
        for (record, outcome) in outcomes {
            self.count(record, outcome);
        }
        match failure_opt {
            Some(error) => Err(error),
            None => Ok(Some(num_read)),
        }
    }

    /// Applies one record (see [`Consumer::apply_batch`] for the modes); returns what became of
    /// it, for counting once the batch commits.
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        record: &LogRecord,
        mode: Mode,
    ) -> WardResult<ConsumerOutcome> {
        let envelope = match decode_envelope(&record.value) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::error!(consumer = %self.name, topic = %record.topic, offset = record.offset, %error, "skipping an undecodable record");
                return Ok(ConsumerOutcome::Undecodable);
            }
        };
        self.report_event_age(record, &envelope);
        if mode == Mode::Unguarded {
            if !mark_processed(txn, &self.name, &envelope).await? {
                tracing::debug!(consumer = %self.name, event_id = %envelope.event_id, "skipping a redelivered event");
                return Ok(ConsumerOutcome::Redelivered);
            }
            let span = crate::trace_context::event_span(&self.name, record, &envelope);
            self.handler.handle(txn, &envelope).instrument(span).await?;
            return Ok(ConsumerOutcome::Applied);
        }
        let savepoint = txn
            .begin()
            .await
            .map_err(|error| db_error("starting a savepoint", error))?;
        let first_time = mark_processed(&savepoint, &self.name, &envelope).await?;
        if !first_time {
            savepoint
                .rollback()
                .await
                .map_err(|error| db_error("rolling back a savepoint", error))?;
            tracing::debug!(consumer = %self.name, event_id = %envelope.event_id, "skipping a redelivered event");
            return Ok(ConsumerOutcome::Redelivered);
        }
        let span = crate::trace_context::event_span(&self.name, record, &envelope);
        let handled = self.handler.handle(&savepoint, &envelope).instrument(span);
        match handled.await {
            Ok(()) => {
                savepoint
                    .commit()
                    .await
                    .map_err(|error| db_error("committing a savepoint", error))?;
                Ok(ConsumerOutcome::Applied)
            }
            Err(error) if error.error_code() == ErrorCode::InvalidArgument => {
                savepoint
                    .rollback()
                    .await
                    .map_err(|error| db_error("rolling back a savepoint", error))?;
                tracing::error!(consumer = %self.name, event_id = %envelope.event_id, event_type = %envelope.event_type, %error, "skipping an unusable event");
                Ok(ConsumerOutcome::Unusable)
            }
            Err(error) => {
                savepoint
                    .rollback()
                    .await
                    .map_err(|error| db_error("rolling back a savepoint", error))?;
                Err(error)
            }
        }
    }

    async fn next_offset<C: ConnectionTrait>(
        &self,
        db: &C,
        topic: &str,
        partition: i32,
    ) -> WardResult<i64> {
        let row_opt =
            offsets::Entity::find_by_id((self.name.clone(), topic.to_string(), partition))
                .one(db)
                .await
                .map_err(|error| db_error("reading a consumer offset", error))?;
        Ok(row_opt.map(|row| row.next_offset).unwrap_or(0))
    }

    /// Consumes until `cancel` fires: at once when the log says something arrived, else every
    /// `poll_interval`; backs off while the log or the database is unavailable.
    pub async fn run(self, cancel: CancellationToken, poll_interval: Duration) {
        let mut backoff = poll_interval;
        loop {
            let wait = match self.consume_once().await {
                Ok(num_read) if num_read > 0 => {
                    backoff = poll_interval;
                    Duration::ZERO
                }
                Ok(_) => poll_interval,
                Err(error) => {
                    tracing::warn!(consumer = %self.name, %error, retry_in_millis = backoff.as_millis() as u64, "consumer waiting to retry");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    wait
                }
            };
            if cancel.is_cancelled() {
                break;
            }
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.log.wait_for_append(wait) => {}
            }
        }
    }
}

/// Takes the PostgreSQL advisory lock of (consumer, topic, partition) for the rest of `txn`;
/// false when another transaction holds it. The key is PostgreSQL's own stable text hash (as the
/// login throttle's), so instances of different builds agree on it during a rolling deploy.
async fn claim_partition(
    txn: &DatabaseTransaction,
    consumer: &str,
    topic: &str,
    partition: i32,
) -> WardResult<bool> {
    let lock_name = format!("ward.consumer/{consumer}/{topic}/{partition}");
    let row_opt = txn
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS claimed",
            [lock_name.into()],
        ))
        .await
        .map_err(|error| db_error("claiming a partition", error))?;
    let Some(row) = row_opt else {
        return Err(ward_core::WardError::Internal(
            "claiming a partition returned no row".into(),
        ));
    };
    row.try_get::<bool>("", "claimed")
        .map_err(|error| db_error("claiming a partition", error))
}

impl Consumer {
    fn count(&self, record: &LogRecord, outcome: ConsumerOutcome) {
        metrics::count_consumer_event(&self.name, &record.topic, outcome);
    }

    /// Sets `ward_consumer_event_age_seconds`: how long the event took from its producer to here.
    fn report_event_age(&self, record: &LogRecord, envelope: &EventEnvelope) {
        let Ok(occurred_at) = DateTime::parse_from_rfc3339(&envelope.occurred_at) else {
            return;
        };
        let age = (Utc::now() - occurred_at.with_timezone(&Utc))
            .to_std()
            .unwrap_or_default();
        metrics::set_consumer_event_age(&self.name, &record.topic, record.partition, age);
    }

    /// Whether [`LAG_REPORT_INTERVAL`] passed since lag was last measured; if so, starts anew.
    fn is_lag_report_due(&self) -> bool {
        let mut reported_at_opt = match self.lag_reported_at.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let is_due = match *reported_at_opt {
            Some(reported_at) => reported_at.elapsed() >= LAG_REPORT_INTERVAL,
            None => true,
        };
        if is_due {
            *reported_at_opt = Some(Instant::now());
        }
        is_due
    }

    /// Sets `ward_consumer_lag_events` for one partition: the log's end minus the next offset.
    async fn report_lag(&self, topic: &str, partition: i32) {
        let measured = async {
            let next_offset = self.next_offset(&self.db, topic, partition).await?;
            let end_offset = self.log.end_offset(topic, partition).await?;
            WardResult::Ok(end_offset - next_offset)
        };
        match measured.await {
            Ok(num_unread) => metrics::set_consumer_lag(&self.name, topic, partition, num_unread),
            Err(error) => {
                tracing::debug!(consumer = %self.name, topic, partition, %error, "consumer lag not measured");
            }
        }
    }
}

/// Records the event as processed; false when it already was.
async fn mark_processed(
    txn: &DatabaseTransaction,
    consumer: &str,
    envelope: &EventEnvelope,
) -> WardResult<bool> {
    let row = processed::ActiveModel {
        consumer: ActiveValue::Set(consumer.to_string()),
        event_id: ActiveValue::Set(envelope.event_id.clone()),
        event_type: ActiveValue::Set(envelope.event_type.clone()),
        processed_at: ActiveValue::Set(Utc::now()),
    };
    let result = processed::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([processed::Column::Consumer, processed::Column::EventId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("recording a processed event", error))?;
    Ok(result > 0)
}

async fn save_offset(
    txn: &DatabaseTransaction,
    consumer: &str,
    topic: &str,
    partition: i32,
    next_offset: i64,
) -> WardResult<()> {
    let row = offsets::ActiveModel {
        consumer: ActiveValue::Set(consumer.to_string()),
        topic: ActiveValue::Set(topic.to_string()),
        partition: ActiveValue::Set(partition),
        next_offset: ActiveValue::Set(next_offset),
        updated_at: ActiveValue::Set(Utc::now()),
    };
    offsets::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                offsets::Column::Consumer,
                offsets::Column::Topic,
                offsets::Column::Partition,
            ])
            .update_columns([offsets::Column::NextOffset, offsets::Column::UpdatedAt])
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("saving a consumer offset", error))?;
    Ok(())
}

/// Whether `consumer` has applied `event_id` (for tests and diagnostics).
pub async fn was_processed<C: ConnectionTrait>(
    db: &C,
    consumer: &str,
    event_id: &str,
) -> WardResult<bool> {
    let row_opt = processed::Entity::find_by_id((consumer.to_string(), event_id.to_string()))
        .one(db)
        .await
        .map_err(|error| db_error("reading processed events", error))?;
    Ok(row_opt.is_some())
}

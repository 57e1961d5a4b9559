//! The local event log: a durable, ordered log in an embedded database (`events.local_url`).
//!
//! One partition per topic, so every record keeps its order. Several processes on one machine may
//! share the file: each append is a single write transaction whose first statement takes SQLite's
//! write lock, so offsets never collide, and readers in other processes find new records by polling.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Schema, TransactionTrait,
};
use tokio::sync::watch;
use ward_core::WardResult;
use ward_core::config::SecretUrl;

use crate::db::{connect, db_error, ping};
use crate::events::{EventLog, LogRecord, OutgoingRecord};

/// The only partition of a local topic.
const LOCAL_PARTITION: i32 = 0;

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub topic: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub partition: i32,
        #[sea_orm(primary_key, auto_increment = false)]
        pub offset: i64,
        pub record_key: String,
        pub value: Vec<u8>,
        pub appended_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub struct LocalEventLog {
    db: DatabaseConnection,
    appended_tx: watch::Sender<u64>,
}

impl LocalEventLog {
    /// Opens (and creates, if new) the log at `url`.
    pub async fn open(url: &SecretUrl) -> WardResult<Self> {
        let db = connect(url, "event log").await?;
        Self::from_connection(db).await
    }

    pub async fn from_connection(db: DatabaseConnection) -> WardResult<Self> {
        let backend = db.get_database_backend();
        let create = Schema::new(backend)
            .create_table_from_entity(entity::Entity)
            .if_not_exists()
            .to_owned();
        db.execute(&create)
            .await
            .map_err(|error| db_error("creating the event log table", error))?;
        let (appended_tx, _) = watch::channel(0);
        Ok(Self { db, appended_tx })
    }
}

#[async_trait]
impl EventLog for LocalEventLog {
    async fn ensure_topics(&self, _topics: &[&str]) -> WardResult<()> {
        // Topics exist implicitly: a topic is the set of rows that name it.
        Ok(())
    }

    async fn append(&self, records: Vec<OutgoingRecord>) -> WardResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let txn = self
            .db
            .begin_with_options(crate::db::write_transaction())
            .await
            .map_err(|error| db_error("appending to the event log", error))?;
        let now = Utc::now();
        for record in records {
            // INSERT … SELECT MAX(offset)+1: one statement, so the offset is assigned under the
            // write lock and no reader-to-writer upgrade can fail between processes.
            let next_offset = Query::select()
                .expr(Expr::cust("COALESCE(MAX(\"offset\") + 1, 0)"))
                .from(entity::Entity)
                .and_where(entity::Column::Topic.eq(record.topic.clone()))
                .and_where(entity::Column::Partition.eq(LOCAL_PARTITION))
                .to_owned();
            let insert = Query::insert()
                .into_table(entity::Entity)
                .columns([
                    entity::Column::Offset,
                    entity::Column::Topic,
                    entity::Column::Partition,
                    entity::Column::RecordKey,
                    entity::Column::Value,
                    entity::Column::AppendedAt,
                ])
                .select_from(
                    next_offset
                        .clone()
                        .expr(Expr::val(record.topic.clone()))
                        .expr(Expr::val(LOCAL_PARTITION))
                        .expr(Expr::val(record.key.clone()))
                        .expr(Expr::val(record.value.clone()))
                        .expr(Expr::val(now))
                        .to_owned(),
                )
                .map_err(|error| ward_core::WardError::internal("building an append", error))?
                .to_owned();
            txn.execute(&insert)
                .await
                .map_err(|error| db_error("appending to the event log", error))?;
        }
        txn.commit()
            .await
            .map_err(|error| db_error("committing to the event log", error))?;
        self.appended_tx
            .send_modify(|count| *count = count.wrapping_add(1));
        Ok(())
    }

    async fn partitions(&self, _topic: &str) -> WardResult<Vec<i32>> {
        Ok(vec![LOCAL_PARTITION])
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        max_records: usize,
    ) -> WardResult<Vec<LogRecord>> {
        let rows = entity::Entity::find()
            .filter(entity::Column::Topic.eq(topic))
            .filter(entity::Column::Partition.eq(partition))
            .filter(entity::Column::Offset.gte(from_offset))
            .order_by_asc(entity::Column::Offset)
            .limit(max_records as u64)
            .all(&self.db)
            .await
            .map_err(|error| db_error("reading the event log", error))?;
        Ok(rows
            .into_iter()
            .map(|row| LogRecord {
                topic: row.topic,
                partition: row.partition,
                offset: row.offset,
                key: row.record_key,
                value: row.value,
            })
            .collect())
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> WardResult<i64> {
        let last_offset_opt: Option<i64> = entity::Entity::find()
            .select_only()
            .column(entity::Column::Offset)
            .filter(entity::Column::Topic.eq(topic))
            .filter(entity::Column::Partition.eq(partition))
            .order_by_desc(entity::Column::Offset)
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(|error| db_error("reading the event log end", error))?;
        match last_offset_opt {
            Some(last_offset) => Ok(last_offset + 1),
            None => Ok(0),
        }
    }

    async fn wait_for_append(&self, timeout: Duration) {
        let mut appended_rx = self.appended_tx.subscribe();
        // Appends by other processes sharing the file are found when the timeout ends.
        let _ = tokio::time::timeout(timeout, appended_rx.changed()).await;
    }

    async fn check_ready(&self) -> WardResult<()> {
        ping(&self.db, "event log").await
    }

    fn backend_name(&self) -> &'static str {
        "local"
    }
}

//! [`KafkaEventLog`]: Ward's [`EventLog`] over a Kafka-protocol broker, with rskafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rskafka::client::error::ProtocolError;
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient};
use rskafka::record::{Record, RecordAndOffset};
use tokio::sync::Mutex;
use tracing::Instrument;
use ward_bus::events::{EventLog, LogRecord, OutgoingRecord};
use ward_core::{WardError, WardResult};

use crate::partitioner::partition_for_key;
use crate::records::{split_by_size, to_log_record, trace_headers};
use crate::security::KafkaSecurity;
use crate::session::{CallError, REQUEST_TIMEOUT, Session, bounded, open_session};

/// Kafka has no push: `wait_for_append` sleeps at most this long before consumers poll again.
const MAX_APPEND_WAIT: Duration = Duration::from_millis(200);
/// The broker's time to create a topic.
const CREATE_TOPIC_TIMEOUT_MILLIS: i32 = 5_000;
/// The most a fetch asks for; a bigger first batch is still returned whole (KIP-74).
const FETCH_MAX_BYTES: i32 = 4 * 1024 * 1024;
/// How long a fetch may wait on the broker for data. The consumer reads its partitions one after
/// another, so a long poll on an idle partition would delay the others; waiting belongs in
/// `wait_for_append`. (tansu waits the full `max_wait_ms` even when data is there.)
const FETCH_MAX_WAIT_MILLIS: i32 = 0;
/// Produce requests stay well under the broker's default 1 MiB message limit.
const PRODUCE_MAX_BYTES: usize = 512 * 1024;
/// The check-ready bound: a readiness probe must answer quickly.
const CHECK_READY_TIMEOUT: Duration = Duration::from_secs(3);

/// The event log on Kafka (Amazon MSK in production, tansu on a laptop).
///
/// A record's key is the subject (patient) id and its partition is Kafka's default
/// `murmur2(key) % partitions`, so one patient's events stay in order on one partition. Values are
/// the envelope bytes, exactly as the local log stores them. The connection is made on first use,
/// and made again after any connection failure: a process whose broker is down starts, reports
/// `Unavailable` from every call, and recovers by itself when the broker returns.
pub struct KafkaEventLog {
    brokers: Vec<String>,
    /// `brokers` joined, for messages.
    brokers_list: String,
    num_partitions: i32,
    replication_factor: i16,
    /// TLS and SASL; plaintext unless [`KafkaEventLog::with_security`] says otherwise.
    security: KafkaSecurity,
    /// The live connection; `None` until first use and after a connection failure. The lock is
    /// held while connecting, so concurrent callers share one attempt.
    session_opt: Mutex<Option<Arc<Session>>>,
    next_generation: AtomicU64,
    /// Partition counts per topic (they only grow, and Ward never adds partitions to a topic).
    partition_counts: std::sync::Mutex<HashMap<String, i32>>,
}

impl KafkaEventLog {
    /// Connects to `brokers` now; topics it creates get `partitions` partitions of
    /// `replication_factor` replicas.
    ///
    /// Returns `Unavailable` ("kafka brokers … unreachable: …") when no broker answers within a
    /// few seconds. Use [`KafkaEventLog::connect_lazy`] for a process that must start anyway.
    pub async fn connect(
        brokers: &[String],
        partitions: i32,
        replication_factor: i16,
    ) -> WardResult<Self> {
        Self::connect_lazy(brokers, partitions, replication_factor)
            .connected()
            .await
    }

    /// Connects now (see [`KafkaEventLog::connect`]); for a log given its security first.
    pub async fn connected(self) -> WardResult<Self> {
        self.session().await?;
        Ok(self)
    }

    /// Uses TLS and SASL as `security` says, from the first connection on.
    pub fn with_security(mut self, security: KafkaSecurity) -> Self {
        self.security = security;
        self
    }

    /// TLS and SASL as configured.
    pub fn security(&self) -> &KafkaSecurity {
        &self.security
    }

    /// Returns a log that connects on first use and reconnects after errors; never fails.
    pub fn connect_lazy(brokers: &[String], partitions: i32, replication_factor: i16) -> Self {
        debug_assert!(!brokers.is_empty(), "the kafka backend needs a broker");
        debug_assert!(partitions >= 1 && replication_factor >= 1);
        Self {
            brokers: brokers.to_vec(),
            brokers_list: brokers.join(","),
            num_partitions: partitions,
            replication_factor,
            security: KafkaSecurity::default(),
            session_opt: Mutex::new(None),
            next_generation: AtomicU64::new(1),
            partition_counts: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The bootstrap brokers, as configured.
    pub fn brokers(&self) -> &[String] {
        &self.brokers
    }

    /// The live session, connecting first if there is none.
    async fn session(&self) -> WardResult<Arc<Session>> {
        let mut session_opt = self.session_opt.lock().await;
        if let Some(session) = session_opt.as_ref() {
            return Ok(Arc::clone(session));
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(open_session(&self.brokers, generation, &self.security).await?);
        tracing::info!(brokers = %self.brokers_list, security = %self.security, generation, "connected to kafka");
        *session_opt = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Maps a failed call, dropping whatever the failure makes suspect: the whole session after a
    /// connection failure (unless a newer one replaced it already), else the partition's client.
    async fn failed(
        &self,
        session: &Session,
        topic: &str,
        partition_opt: Option<i32>,
        context: &str,
        error: CallError,
    ) -> WardError {
        if error.breaks_session() {
            self.forget_session(session).await;
        } else if let Some(partition) = partition_opt {
            session.forget_partition_client(topic, partition).await;
        }
        if error.protocol_error() == Some(ProtocolError::UnknownTopicOrPartition) {
            self.forget_partition_count(topic);
        }
        error.into_ward(&self.brokers_list, context)
    }

    fn cached_partition_count(&self, topic: &str) -> Option<i32> {
        match self.partition_counts.lock() {
            Ok(counts) => counts.get(topic).copied(),
            Err(poisoned) => poisoned.into_inner().get(topic).copied(),
        }
    }

    fn forget_partition_count(&self, topic: &str) {
        match self.partition_counts.lock() {
            Ok(mut counts) => counts.remove(topic),
            Err(poisoned) => poisoned.into_inner().remove(topic),
        };
    }

    fn remember_partition_count(&self, topic: &str, num_partitions: i32) {
        match self.partition_counts.lock() {
            Ok(mut counts) => counts.insert(topic.to_string(), num_partitions),
            Err(poisoned) => poisoned
                .into_inner()
                .insert(topic.to_string(), num_partitions),
        };
    }

    /// The partition count of `topic`, from the cache or the brokers' metadata. A topic the
    /// brokers do not know is created first, so a process never depends on `ward migrate` order.
    async fn partition_count(&self, topic: &str) -> WardResult<i32> {
        if let Some(num_partitions) = self.cached_partition_count(topic) {
            return Ok(num_partitions);
        }
        let session = self.session().await?;
        let mut num_partitions_opt = self.partition_count_from_metadata(&session, topic).await?;
        if num_partitions_opt.is_none() {
            tracing::info!(topic, "creating a missing topic");
            self.create_topic(&session, topic).await?;
            num_partitions_opt = self.partition_count_from_metadata(&session, topic).await?;
        }
        let Some(num_partitions) = num_partitions_opt else {
            return Err(WardError::Unavailable(format!(
                "kafka brokers {} do not list topic {topic} yet",
                self.brokers_list
            )));
        };
        self.remember_partition_count(topic, num_partitions);
        Ok(num_partitions)
    }

    async fn partition_count_from_metadata(
        &self,
        session: &Session,
        topic: &str,
    ) -> WardResult<Option<i32>> {
        let listed = bounded(
            &self.brokers_list,
            REQUEST_TIMEOUT,
            session.client.list_topics(),
        )
        .await;
        let topics = match listed {
            Ok(topics) => topics,
            Err(error) => {
                return Err(self
                    .failed(session, topic, None, "reading metadata", error)
                    .await);
            }
        };
        for listed_topic in topics {
            if listed_topic.name == topic && !listed_topic.partitions.is_empty() {
                // Kafka numbers partitions 0..n, and the default partitioner counts on it.
                let num_partitions = i32::try_from(listed_topic.partitions.len())
                    .map_err(|error| WardError::internal("counting partitions", error))?;
                return Ok(Some(num_partitions));
            }
        }
        Ok(None)
    }

    /// Creates `topic`; one that exists already is a success.
    async fn create_topic(&self, session: &Session, topic: &str) -> WardResult<()> {
        let controller = session
            .client
            .controller_client()
            .map_err(|error| WardError::internal("opening a kafka controller client", error))?;
        let created = bounded(
            &self.brokers_list,
            REQUEST_TIMEOUT,
            controller.create_topic(
                topic,
                self.num_partitions,
                self.replication_factor,
                CREATE_TOPIC_TIMEOUT_MILLIS,
            ),
        )
        .await;
        match created {
            Ok(()) => {
                tracing::info!(
                    topic,
                    num_partitions = self.num_partitions,
                    replication_factor = self.replication_factor,
                    "created topic"
                );
                Ok(())
            }
            Err(error) if error.protocol_error() == Some(ProtocolError::TopicAlreadyExists) => {
                Ok(())
            }
            Err(error) => Err(self
                .failed(session, topic, None, "creating a topic", error)
                .await),
        }
    }

    /// Produces one partition's records in order; `Ok` once the broker acknowledged every one.
    async fn produce_partition(
        &self,
        session: &Session,
        topic_name: String,
        partition: i32,
        records: Vec<Record>,
    ) -> WardResult<()> {
        let topic = topic_name.as_str();
        // Chunks go one after another, so the partition keeps the input order.
        for chunk in split_by_size(records, PRODUCE_MAX_BYTES) {
            let num_records = chunk.len();
            let client_result = session
                .partition_client(&self.brokers_list, topic, partition)
                .await;
            let client = match client_result {
                Ok(client) => client,
                Err(error) => {
                    self.forget_session_if(session, &error).await;
                    return Err(error);
                }
            };
            let produced = bounded(
                &self.brokers_list,
                REQUEST_TIMEOUT,
                client.produce(chunk, Compression::NoCompression),
            )
            .await;
            match produced {
                Ok(offsets) => {
                    let first_offset_opt = offsets.first().copied();
                    tracing::debug!(
                        topic,
                        partition,
                        num_records,
                        first_offset = ?first_offset_opt,
                        "produced"
                    );
                }
                Err(error) => {
                    return Err(self
                        .failed(session, topic, Some(partition), "producing", error)
                        .await);
                }
            }
        }
        Ok(())
    }

    /// Drops the session after a failure that already became a [`WardError`] (leader lookup).
    async fn forget_session_if(&self, session: &Session, error: &WardError) {
        if matches!(error, WardError::Unavailable(_)) {
            self.forget_session(session).await;
        }
    }

    /// Drops `session` so the next call connects afresh, unless a newer one replaced it already.
    async fn forget_session(&self, session: &Session) {
        let mut session_opt = self.session_opt.lock().await;
        let is_current = match session_opt.as_ref() {
            Some(current) => current.generation() == session.generation(),
            None => false,
        };
        if is_current {
            *session_opt = None;
            tracing::warn!(
                brokers = %self.brokers_list,
                "kafka connection lost; reconnecting on next use"
            );
        }
    }

    async fn fetch_records(
        &self,
        client: &PartitionClient,
        from_offset: i64,
    ) -> Result<Vec<RecordAndOffset>, CallError> {
        let fetched = bounded(
            &self.brokers_list,
            REQUEST_TIMEOUT,
            client.fetch_records(from_offset, 1..FETCH_MAX_BYTES, FETCH_MAX_WAIT_MILLIS),
        )
        .await?;
        let (records, _high_watermark) = fetched;
        Ok(records)
    }

    /// Reads from `from_offset`; an offset below the log start (records removed by retention)
    /// resumes at the earliest record kept, with a warning.
    async fn fetch_with_retention(
        &self,
        client: &PartitionClient,
        from_offset: i64,
    ) -> Result<Vec<RecordAndOffset>, (CallError, &'static str)> {
        let first_try = self.fetch_records(client, from_offset).await;
        let error = match first_try {
            Ok(records) => return Ok(records),
            Err(error) => error,
        };
        if error.protocol_error() != Some(ProtocolError::OffsetOutOfRange) {
            return Err((error, "fetching"));
        }
        let earliest = bounded(
            &self.brokers_list,
            REQUEST_TIMEOUT,
            client.get_offset(OffsetAt::Earliest),
        )
        .await
        .map_err(|error| (error, "reading the log start"))?;
        if from_offset >= earliest {
            // Past the end: the consumer's stored offset is ahead of the log. Skipping ahead or
            // back would hide lost or replayed records, so this is reported, not papered over.
            return Err((error, "fetching past the end of the log"));
        }
        tracing::warn!(
            topic = client.topic(),
            partition = client.partition(),
            from_offset,
            earliest,
            "records before the log start were removed by retention; resuming at the earliest kept"
        );
        self.fetch_records(client, earliest)
            .await
            .map_err(|error| (error, "fetching"))
    }
}

#[async_trait]
impl EventLog for KafkaEventLog {
    async fn ensure_topics(&self, topics: &[&str]) -> WardResult<()> {
        let session = self.session().await?;
        for topic in topics {
            self.create_topic(&session, topic).await?;
        }
        Ok(())
    }

    async fn append(&self, records: Vec<OutgoingRecord>) -> WardResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        // BTreeMap: a fixed produce order; each group keeps its records' input order.
        let mut groups: BTreeMap<(String, i32), Vec<Record>> = BTreeMap::new();
        for record in records {
            let num_partitions = self.partition_count(&record.topic).await?;
            let partition = partition_for_key(record.key.as_bytes(), num_partitions);
            let kafka_record = Record {
                headers: trace_headers(&record.value),
                key: Some(record.key.into_bytes()),
                value: Some(record.value),
                timestamp: now,
            };
            groups
                .entry((record.topic, partition))
                .or_default()
                .push(kafka_record);
        }
        let session = self.session().await?;
        let mut producing = Vec::with_capacity(groups.len());
        for ((topic, partition), group) in groups {
            let span = tracing::debug_span!("kafka.produce", topic = %topic, partition);
            producing.push(
                self.produce_partition(&session, topic, partition, group)
                    .instrument(span),
            );
        }
        // Partitions are independent; a failure anywhere fails the append, which the relay
        // retries whole (at least once: consumers drop redelivered event ids).
        for result in futures::future::join_all(producing).await {
            result?;
        }
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> WardResult<Vec<i32>> {
        let num_partitions = self.partition_count(topic).await?;
        Ok((0..num_partitions).collect())
    }

    #[tracing::instrument(
        name = "kafka.fetch",
        skip_all,
        fields(topic = %topic, partition, from_offset)
    )]
    async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        from_offset: i64,
        max_records: usize,
    ) -> WardResult<Vec<LogRecord>> {
        if max_records == 0 {
            return Ok(Vec::new());
        }
        let session = self.session().await?;
        let client = match session
            .partition_client(&self.brokers_list, topic, partition)
            .await
        {
            Ok(client) => client,
            Err(error) => {
                self.forget_session_if(&session, &error).await;
                return Err(error);
            }
        };
        let records = match self.fetch_with_retention(&client, from_offset.max(0)).await {
            Ok(records) => records,
            Err((error, context)) => {
                return Err(self
                    .failed(&session, topic, Some(partition), context, error)
                    .await);
            }
        };
        let mut log_records = Vec::with_capacity(records.len().min(max_records));
        for record_and_offset in records.into_iter().take(max_records) {
            log_records.push(to_log_record(topic, partition, record_and_offset));
        }
        Ok(log_records)
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> WardResult<i64> {
        let session = self.session().await?;
        let client = match session
            .partition_client(&self.brokers_list, topic, partition)
            .await
        {
            Ok(client) => client,
            Err(error) => {
                self.forget_session_if(&session, &error).await;
                return Err(error);
            }
        };
        let latest = bounded(
            &self.brokers_list,
            REQUEST_TIMEOUT,
            client.get_offset(OffsetAt::Latest),
        )
        .await;
        match latest {
            Ok(end_offset) => Ok(end_offset),
            Err(error) => Err(self
                .failed(
                    &session,
                    topic,
                    Some(partition),
                    "reading the log end",
                    error,
                )
                .await),
        }
    }

    async fn wait_for_append(&self, timeout: Duration) {
        tokio::time::sleep(timeout.min(MAX_APPEND_WAIT)).await;
    }

    async fn check_ready(&self) -> WardResult<()> {
        let session = self.session().await?;
        let listed = bounded(
            &self.brokers_list,
            CHECK_READY_TIMEOUT,
            session.client.list_topics(),
        )
        .await;
        match listed {
            Ok(_topics) => Ok(()),
            Err(error) => Err(self
                .failed(&session, "", None, "reading metadata", error)
                .await),
        }
    }

    fn backend_name(&self) -> &'static str {
        "kafka"
    }
}

impl std::fmt::Debug for KafkaEventLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KafkaEventLog")
            .field("brokers", &self.brokers)
            .field("num_partitions", &self.num_partitions)
            .field("replication_factor", &self.replication_factor)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_log_names_its_backend() {
        let log = KafkaEventLog::connect_lazy(&["127.0.0.1:1".to_string()], 3, 1);
        assert_eq!(log.backend_name(), "kafka");
        assert_eq!(log.brokers(), ["127.0.0.1:1".to_string()]);
    }
}

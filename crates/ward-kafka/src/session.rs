//! One connection to the brokers and what hangs off it, rebuilt after any connection failure.
//!
//! rskafka retries a broken connection by itself but, left with its defaults, forever; Ward needs
//! every call to end (a relay or a readiness probe must be able to report "unavailable"), so the
//! client gets a retry deadline, every call a timeout, and a failed connection is thrown away
//! whole: the next call connects afresh, which is how a process rides out a broker restart.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use tokio::sync::Mutex;
use ward_core::{WardError, WardResult};

use crate::security::KafkaSecurity;

/// How long rskafka keeps retrying a failing request before it gives up.
const RETRY_DEADLINE: Duration = Duration::from_secs(2);
/// The bound on connecting (bootstrap metadata included): a black-holed address must not hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The bound on any one request, retries included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// A live client and its partition clients (each holds a connection to its partition's leader).
pub(crate) struct Session {
    generation: u64,
    pub(crate) client: Client,
    partition_clients: Mutex<HashMap<(String, i32), Arc<PartitionClient>>>,
}

impl Session {
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Returns the cached client of `topic`/`partition`, creating it (finding the leader) if new.
    pub(crate) async fn partition_client(
        &self,
        brokers: &str,
        topic: &str,
        partition: i32,
    ) -> WardResult<Arc<PartitionClient>> {
        let cache_key = (topic.to_string(), partition);
        if let Some(client) = self.partition_clients.lock().await.get(&cache_key) {
            return Ok(Arc::clone(client));
        }
        // Not holding the map's lock while the leader is looked up: other partitions go on.
        let created = bounded(
            brokers,
            REQUEST_TIMEOUT,
            self.client
                .partition_client(topic, partition, UnknownTopicHandling::Retry),
        )
        .await
        .map_err(|error| error.into_ward(brokers, "finding the partition leader"))?;
        let mut clients = self.partition_clients.lock().await;
        let client = clients
            .entry(cache_key)
            .or_insert_with(|| Arc::new(created));
        Ok(Arc::clone(client))
    }

    /// Forgets the client of `topic`/`partition`, so the next call looks its leader up again.
    pub(crate) async fn forget_partition_client(&self, topic: &str, partition: i32) {
        self.partition_clients
            .lock()
            .await
            .remove(&(topic.to_string(), partition));
    }
}

/// Connects to `brokers` (a bootstrap metadata request must succeed), over TLS and logging in
/// with SASL when `security` says so.
pub(crate) async fn open_session(
    brokers: &[String],
    generation: u64,
    security: &KafkaSecurity,
) -> WardResult<Session> {
    let brokers_list = brokers.join(",");
    let backoff = BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        base: 2.0,
        deadline: Some(RETRY_DEADLINE),
    };
    let builder = ClientBuilder::new(brokers.to_vec())
        .client_id("ward")
        .backoff_config(backoff);
    let building = security.apply(builder)?.build();
    let client = bounded(&brokers_list, CONNECT_TIMEOUT, building)
        .await
        .map_err(|error| error.into_ward(&brokers_list, "connecting"))?;
    Ok(Session {
        generation,
        client,
        partition_clients: Mutex::new(HashMap::new()),
    })
}

/// What went wrong talking to the brokers.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer within the bound; the connection may be stuck.
    TimedOut {
        brokers: String,
        after: Duration,
    },
    Kafka(KafkaError),
}

impl CallError {
    /// Whether the connection itself is suspect, so the session should be rebuilt.
    pub(crate) fn breaks_session(&self) -> bool {
        match self {
            Self::TimedOut { .. } => true,
            // A broker's error answer came over a working connection.
            Self::Kafka(KafkaError::ServerError { .. }) => false,
            Self::Kafka(_) => true,
        }
    }

    /// The protocol error code the broker answered with, if it answered with one.
    pub(crate) fn protocol_error(&self) -> Option<ProtocolError> {
        match self {
            Self::Kafka(KafkaError::ServerError { protocol_error, .. }) => Some(*protocol_error),
            _ => None,
        }
    }

    /// Maps to Ward's error: anything a retry may fix is `Unavailable` and names the brokers.
    pub(crate) fn into_ward(self, brokers: &str, context: &str) -> WardError {
        match self {
            Self::TimedOut { brokers, after } => WardError::Unavailable(format!(
                "kafka brokers {brokers} unreachable: no answer within {} ms (while {context})",
                after.as_millis()
            )),
            Self::Kafka(KafkaError::ServerError {
                protocol_error,
                error_message,
                ..
            }) => {
                let detail = match error_message {
                    Some(message) => format!("{protocol_error:?} ({message})"),
                    None => format!("{protocol_error:?}"),
                };
                if is_transient(protocol_error) {
                    WardError::Unavailable(format!(
                        "kafka brokers {brokers} refused {context}: {detail}"
                    ))
                } else {
                    WardError::internal(&format!("kafka refused {context}"), detail)
                }
            }
            Self::Kafka(error) => WardError::Unavailable(format!(
                "kafka brokers {brokers} unreachable: {error} (while {context})"
            )),
        }
    }
}

/// Broker answers that mean "not now" rather than "never".
fn is_transient(protocol_error: ProtocolError) -> bool {
    matches!(
        protocol_error,
        ProtocolError::UnknownServerError
            | ProtocolError::UnknownTopicOrPartition
            | ProtocolError::LeaderNotAvailable
            | ProtocolError::NotLeaderOrFollower
            | ProtocolError::RequestTimedOut
            | ProtocolError::BrokerNotAvailable
            | ProtocolError::ReplicaNotAvailable
            | ProtocolError::NetworkException
            | ProtocolError::NotEnoughReplicas
            | ProtocolError::NotEnoughReplicasAfterAppend
            | ProtocolError::NotController
            | ProtocolError::KafkaStorageError
            | ProtocolError::OffsetNotAvailable
            | ProtocolError::FencedLeaderEpoch
            | ProtocolError::UnknownLeaderEpoch
            | ProtocolError::PreferredLeaderNotAvailable
            | ProtocolError::ThrottlingQuotaExceeded
    )
}

/// Runs one rskafka call with a time bound.
pub(crate) async fn bounded<T>(
    brokers: &str,
    after: Duration,
    call: impl Future<Output = Result<T, KafkaError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(after, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(CallError::Kafka(error)),
        Err(_elapsed) => Err(CallError::TimedOut {
            brokers: brokers.to_string(),
            after,
        }),
    }
}

#[cfg(test)]
mod tests {
    use rskafka::client::error::RequestContext;

    use super::*;

    fn server_error(protocol_error: ProtocolError) -> CallError {
        CallError::Kafka(KafkaError::ServerError {
            protocol_error,
            error_message: None,
            request: RequestContext::Topic("ward.patients.v1".into()),
            response: None,
            is_virtual: false,
        })
    }

    #[test]
    fn timeouts_and_broken_connections_are_unavailable_and_reset_the_session() {
        let timed_out = CallError::TimedOut {
            brokers: "127.0.0.1:9092".into(),
            after: Duration::from_secs(5),
        };
        assert!(timed_out.breaks_session());
        let error = timed_out.into_ward("127.0.0.1:9092", "producing");
        assert!(matches!(&error, WardError::Unavailable(message)
            if message.starts_with("kafka brokers 127.0.0.1:9092 unreachable")));

        let invalid = CallError::Kafka(KafkaError::InvalidResponse("garbage".into()));
        assert!(invalid.breaks_session());
        assert!(matches!(
            invalid.into_ward("b:9092", "fetching"),
            WardError::Unavailable(_)
        ));
    }

    #[test]
    fn broker_answers_keep_the_session_and_map_by_kind() {
        let not_leader = server_error(ProtocolError::NotLeaderOrFollower);
        assert!(!not_leader.breaks_session());
        assert_eq!(
            not_leader.protocol_error(),
            Some(ProtocolError::NotLeaderOrFollower)
        );
        assert!(matches!(
            not_leader.into_ward("b:9092", "producing"),
            WardError::Unavailable(_)
        ));
        let too_large = server_error(ProtocolError::MessageTooLarge);
        assert!(matches!(
            too_large.into_ward("b:9092", "producing"),
            WardError::Internal(_)
        ));
    }
}

//! Ward's event log on a Kafka-protocol broker (Amazon MSK in production, tansu on a laptop).
//!
//! [`KafkaEventLog`] implements [`ward_bus::events::EventLog`] with rskafka. rskafka has no
//! consumer groups: consumers split partitions by configuration and keep their offsets in their
//! own database (see `ward_bus::consumer`). See this crate's README for partitions, offsets and
//! how to run the tests against a real broker.

mod log;
pub mod partitioner;
mod records;
mod security;
mod session;

pub use log::KafkaEventLog;
pub use partitioner::{murmur2, partition_for_key};
pub use security::KafkaSecurity;

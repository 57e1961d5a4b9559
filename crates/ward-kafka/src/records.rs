//! Between Ward's records and Kafka's: headers, keys, and produce-sized batches.

use std::collections::BTreeMap;

use rskafka::record::{Record, RecordAndOffset};
use ward_bus::events::{LogRecord, decode_envelope};

/// The envelope's trace context as Kafka headers, so tools that read headers can follow a
/// request; a value that is not an envelope gets none (it is still stored as is).
pub(crate) fn trace_headers(value: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut headers = BTreeMap::new();
    if let Ok(envelope) = decode_envelope(value) {
        for (name, header_value) in envelope.trace_context {
            headers.insert(name, header_value.into_bytes());
        }
    }
    headers
}

/// Converts a fetched record; offsets and value bytes are kept as they are.
pub(crate) fn to_log_record(
    topic: &str,
    partition: i32,
    record_and_offset: RecordAndOffset,
) -> LogRecord {
    let RecordAndOffset { record, offset } = record_and_offset;
    let key_bytes = record.key.unwrap_or_default();
    // Ward writes UTF-8 ids; another producer's odd key must not stop the consumer.
    let key = match String::from_utf8(key_bytes) {
        Ok(key) => key,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    };
    LogRecord {
        topic: topic.to_string(),
        partition,
        offset,
        key,
        // A null value (a tombstone) is never written by Ward; it reads as empty bytes.
        value: record.value.unwrap_or_default(),
    }
}

/// Splits `records` into consecutive runs of at most about `max_bytes` (at least one record each).
pub(crate) fn split_by_size(records: Vec<Record>, max_bytes: usize) -> Vec<Vec<Record>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for record in records {
        let record_bytes = record.approximate_size();
        if !current.is_empty() && current_bytes + record_bytes > max_bytes {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += record_bytes;
        current.push(record);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;
    use ward_bus::events::{PatientDeleted, encode_envelope, envelope};

    use super::*;

    fn record(size: usize, tag: u8) -> Record {
        Record {
            key: Some(vec![tag]),
            value: Some(vec![tag; size]),
            headers: BTreeMap::new(),
            timestamp: Utc::now(),
        }
    }

    #[test]
    fn split_keeps_order_and_bounds_size() {
        let records: Vec<Record> = (0..10).map(|tag| record(99, tag)).collect();
        let chunks = split_by_size(records, 300);
        assert_eq!(chunks.len(), 4);
        let tags: Vec<u8> = chunks
            .iter()
            .flatten()
            .map(|record| record.key.as_ref().unwrap()[0])
            .collect();
        assert_eq!(tags, (0..10).collect::<Vec<u8>>());
        assert!(chunks.iter().all(|chunk| chunk.len() <= 3));
    }

    #[test]
    fn an_oversized_record_gets_a_chunk_of_its_own() {
        let chunks = split_by_size(vec![record(10, 0), record(1_000, 1), record(10, 2)], 100);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert!(split_by_size(Vec::new(), 100).is_empty());
    }

    #[test]
    fn trace_context_becomes_headers() {
        let subject = Uuid::now_v7();
        let payload = PatientDeleted {
            patient_id: subject.to_string(),
            version: 2,
        };
        let bytes = encode_envelope(&envelope(
            "patients",
            subject,
            "req-7",
            Utc::now(),
            &payload,
        ));
        let headers = trace_headers(&bytes);
        assert_eq!(
            headers.get("x-request-id").map(Vec::as_slice),
            Some(&b"req-7"[..])
        );
        assert!(trace_headers(&[0xff, 0xff, 0xff]).is_empty());
    }

    #[test]
    fn log_records_keep_offsets_and_bytes() {
        let kafka_record = RecordAndOffset {
            record: Record {
                key: Some(b"patient-1".to_vec()),
                value: Some(vec![1, 2, 3]),
                headers: BTreeMap::new(),
                timestamp: Utc::now(),
            },
            offset: 41,
        };
        let log_record = to_log_record("ward.patients.v1", 3, kafka_record);
        assert_eq!(
            log_record,
            LogRecord {
                topic: "ward.patients.v1".into(),
                partition: 3,
                offset: 41,
                key: "patient-1".into(),
                value: vec![1, 2, 3],
            }
        );
    }
}

//! Key → partition, exactly as Kafka's Java default partitioner places a keyed record:
//! `toPositive(murmur2(key)) % partitions`. Any other Kafka client producing Ward's topics with the
//! same keys lands one patient's events on the same partition, so their order holds across clients.

/// Kafka's 32-bit murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java's `int` arithmetic wraps; `>>>` is a logical shift, hence u32 throughout.
    let length = data.len();
    let mut h = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // The Java switch falls through from case 3 to case 1.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Returns the partition of `key` among `num_partitions` (Kafka's `toPositive(murmur2) % n`).
///
/// A non-positive `num_partitions` (never valid for a Kafka topic) yields partition 0.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    if num_partitions <= 0 {
        return 0;
    }
    // `toPositive` masks the sign bit rather than taking the absolute value.
    (murmur2(key) & 0x7fff_ffff) % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Apache Kafka's `UtilsTest.testMurmur2`, plus the empty key.
    const KAFKA_VECTORS: [(&[u8], i32); 7] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
        (b"", 275_646_681),
    ];

    #[test]
    fn murmur2_matches_kafka_vectors() {
        for (key, expected) in KAFKA_VECTORS {
            assert_eq!(
                murmur2(key),
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn partition_masks_the_sign_bit_like_to_positive() {
        // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
        // A negative hash must not give a negative partition.
        assert_eq!(
            partition_for_key(b"21", 6),
            (-973_932_308i32 & 0x7fff_ffff) % 6
        );
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for index in 0..1_000 {
            let key = format!("0190f1a2-7c3e-7000-8000-{index:012}");
            for num_partitions in [1, 2, 3, 6, 12] {
                let partition = partition_for_key(key.as_bytes(), num_partitions);
                assert!((0..num_partitions).contains(&partition));
                assert_eq!(partition, partition_for_key(key.as_bytes(), num_partitions));
            }
        }
    }

    #[test]
    fn keys_spread_over_partitions() {
        let mut counts = [0u32; 6];
        for index in 0..600 {
            let key = format!("patient-{index}");
            let partition = partition_for_key(key.as_bytes(), 6);
            counts[partition as usize] += 1;
        }
        assert!(counts.iter().all(|count| *count > 50), "{counts:?}");
    }

    #[test]
    fn no_partitions_means_partition_zero() {
        assert_eq!(partition_for_key(b"abc", 0), 0);
        assert_eq!(partition_for_key(b"abc", -3), 0);
    }
}

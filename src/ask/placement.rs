//! Which instance answers for an identity (contract §8): the one assigned the identity's
//! partition of the input topics, where producers put its events by keying them with the
//! identity (the Java clients' partitioner, `murmur2` of the key). An instance that does
//! not hold an identity says which partition it is on and which partitions it reads.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Kafka's `Utils.murmur2`: seed 0x9747b28c, m = 0x5bd1e995, r = 24, little-endian words.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = words.remainder();
    if tail.len() == 3 {
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

/// The partition the Java clients' default partitioner picks for `key`.
pub fn partition_of(key: &str, partitions: usize) -> usize {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) as usize % partitions.max(1)
}

/// What this instance reads: its assigned partitions of the input topics, and their
/// count (0 while unknown; set from the broker's metadata).
#[derive(Debug, Default, Clone)]
pub struct Placement {
    pub assigned: BTreeSet<i32>,
    pub partitions: Arc<AtomicUsize>,
}

impl Placement {
    /// Why an identity this instance does not hold may be another's.
    pub fn explain(&self, identity: &str) -> String {
        let reads: Vec<String> = self.assigned.iter().map(i32::to_string).collect();
        let reads = if reads.is_empty() {
            "no partition".to_owned()
        } else {
            format!("partitions {}", reads.join(", "))
        };
        match self.partitions.load(Ordering::Relaxed) {
            // A replay, or a service not assigned anything yet.
            0 if self.assigned.is_empty() => "no event has named it".to_owned(),
            0 => format!("this instance reads {reads} of the input topics"),
            n => {
                let p = partition_of(identity, n) as i32;
                let whose = if self.assigned.contains(&p) {
                    "this instance's, and no event has named the identity".to_owned()
                } else {
                    "another instance's: ask the one assigned it".to_owned()
                };
                format!(
                    "its events are on partition {p} of {n} of the input topics (murmur2 of \
                     the identity), which is {whose}; this instance reads {reads}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_clients() {
        // The cases of Kafka's own `UtilsTest.testMurmur2`.
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
        }
    }

    #[test]
    fn explains_whose_partition_an_identity_is() {
        let placement = Placement::default();
        assert_eq!(placement.explain("svc"), "no event has named it");
        placement.partitions.store(3, Ordering::Relaxed);
        let p = partition_of("svc", 3) as i32;
        let mut mine = placement.clone();
        mine.assigned.insert(p);
        assert!(
            mine.explain("svc").contains("this instance's"),
            "{}",
            mine.explain("svc")
        );
        let mut other = placement;
        other.assigned.insert((p + 1) % 3);
        let text = other.explain("svc");
        assert!(text.contains(&format!("partition {p} of 3")), "{text}");
        assert!(text.contains("another instance's"), "{text}");
    }
}

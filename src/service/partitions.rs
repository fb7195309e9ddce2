//! The input topics' partition counts (contract §8). Partition *p* of the three input
//! topics is one unit of work — one identity's events, keyed by `identity`, land on the
//! same *p* of every topic only when the topics have the same count — so input topics
//! whose counts differ are refused: the service names them, `/readyz` reports why, and
//! nothing is read until they match. The poll thread checks before its first poll and
//! again every [`REFRESH`] while it consumes (partitions can be added to a live topic).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;

use super::health::Health;

/// How often counts that differ (or could not be read) are read again.
pub const RECHECK: Duration = Duration::from_secs(5);

/// How often the counts are read again while consuming.
pub const REFRESH: Duration = Duration::from_secs(30);

/// How long one metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// The partition count of each topic; `None` for a topic the broker does not know (yet).
pub fn fetch<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[String],
) -> KafkaResult<Vec<(String, Option<usize>)>> {
    let mut counts = Vec::with_capacity(topics.len());
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len());
        counts.push((topic.clone(), count));
    }
    Ok(counts)
}

/// Why `counts` are refused, naming every topic with its count; `None` when the topics
/// the broker knows all have the same count (a missing topic is waited for, as the
/// consumer does, and checked once it exists).
pub fn mismatch(counts: &[(String, Option<usize>)]) -> Option<String> {
    let known: Vec<(&str, usize)> = counts
        .iter()
        .filter_map(|(t, n)| Some((t.as_str(), (*n)?)))
        .collect();
    let first = known.first()?.1;
    if known.iter().all(|(_, n)| *n == first) {
        return None;
    }
    let list: Vec<String> = known.iter().map(|(t, n)| format!("{t} has {n}")).collect();
    Some(format!(
        "input topics differ in partition count ({}): give them the same count, \
         since partition p of every input topic is one unit of work",
        list.join(", ")
    ))
}

/// The check the poll thread runs: what it last found and when it looks again.
#[derive(Debug)]
pub struct Guard {
    topics: Vec<String>,
    /// The refusal in force, if any.
    refused: Option<String>,
    due: Instant,
}

impl Guard {
    /// A check of `topics` (the input topics), due at once.
    pub fn new(topics: &[String]) -> Self {
        Guard {
            topics: topics.to_vec(),
            refused: None,
            due: Instant::now(),
        }
    }

    /// Before the first poll: waits while the counts differ, re-reading them every
    /// [`RECHECK`]; `false` when the service stops meanwhile. When the broker does not
    /// answer it goes on (the consumer reports that) and looks again after [`RECHECK`].
    pub fn wait_until_equal<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        health: &Health,
    ) -> bool {
        loop {
            self.check(consumer, health);
            if self.refused.is_none() {
                return true;
            }
            while Instant::now() < self.due {
                if health.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// While consuming, once due: re-reads the counts, pauses every assigned partition
    /// when they have come to differ and resumes them when they match again (a rebalance
    /// meanwhile pauses what it assigns; see `source::Context`).
    pub fn refresh<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, health: &Health) {
        if Instant::now() < self.due {
            return;
        }
        let was_refused = self.refused.is_some();
        self.check(consumer, health);
        if was_refused == self.refused.is_some() {
            return;
        }
        let Ok(assigned) = consumer.assignment() else {
            return;
        };
        let result = if was_refused {
            consumer.resume(&assigned)
        } else {
            consumer.pause(&assigned)
        };
        if let Err(error) = result {
            tracing::error!(%error, "pausing or resuming the input partitions");
        }
    }

    fn check<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, health: &Health) {
        let counts = match fetch(consumer, &self.topics) {
            Ok(counts) => counts,
            Err(error) => {
                tracing::debug!(%error, "reading the input topics' partition counts");
                self.due = Instant::now() + RECHECK;
                return;
            }
        };
        let found = mismatch(&counts);
        match (&found, &self.refused) {
            (Some(why), old) if old.as_ref() != Some(why) => {
                tracing::error!("not consuming: {why}");
            }
            (None, Some(_)) => {
                tracing::info!("input topics have the same partition count again; consuming")
            }
            _ => {}
        }
        health.set_refused(found.clone());
        self.due = Instant::now() + if found.is_some() { RECHECK } else { REFRESH };
        self.refused = found;
    }
}

#[cfg(test)]
mod tests {
    use super::mismatch;

    fn counts(list: &[(&str, Option<usize>)]) -> Vec<(String, Option<usize>)> {
        list.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    #[test]
    fn equal_counts_pass_and_missing_topics_are_waited_for() {
        let equal = counts(&[("a", Some(6)), ("b", Some(6)), ("c", Some(6))]);
        assert_eq!(mismatch(&equal), None);
        let missing = counts(&[("a", Some(6)), ("b", None), ("c", Some(6))]);
        assert_eq!(mismatch(&missing), None);
        assert_eq!(mismatch(&counts(&[("a", None)])), None);
    }

    #[test]
    fn differing_counts_name_every_topic_and_count() {
        let differ = counts(&[
            ("nhi.identity", Some(6)),
            ("nhi.credential", Some(3)),
            ("nhi.toolcall", None),
        ]);
        let why = mismatch(&differ).expect("refused");
        assert!(
            why.contains("nhi.identity has 6, nhi.credential has 3"),
            "{why}"
        );
        assert!(!why.contains("nhi.toolcall"), "{why}");
    }
}

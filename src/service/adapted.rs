//! Adapted sources in the service (`[[sources]]`, contract §7): a thread consumes each
//! configured topic of real-world records (a CloudTrail file or record, an audit event,
//! an OTLP export per Kafka record), adapts every record, and publishes the resulting §1
//! events to the input topic of their type, keyed by identity — so they reach the
//! pipeline exactly as native events do, through the same decoder.
//!
//! Offsets of the source topics are committed (in the consumer group
//! `<kafka.group_id>-sources`) only after the events they gave were acknowledged, so a
//! crash re-publishes some events; their deterministic ids make the pipeline ignore the
//! repeats. Records are counted per format and outcome in
//! `nhi_drift_adapter_records_total`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Deserialize;

use super::health::Health;
use super::kafka::{TopicNames, client_config, producer_config};
use crate::adapt::{AdaptConfig, Context, Format, SkipReason, adapt_bytes};
use crate::config::Config;
use crate::event::{Decoder, EventType};
use crate::metrics::Metrics;

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The topic carrying the source's records.
    pub topic: String,
    /// Its format (`cloudtrail`, `k8s-audit`, …).
    pub format: Format,
}

/// The running adapter thread.
pub struct Bridge {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bridge {
    /// Starts consuming the `[[sources]]` topics; `None` when there are none.
    pub fn start(
        config: &Config,
        brokers: &str,
        topics: &TopicNames,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Bridge>, KafkaError> {
        if config.sources.is_empty() {
            return Ok(None);
        }
        let mut consumer_config = client_config(brokers, &BTreeMap::new());
        consumer_config
            .set("group.id", format!("{}-sources", config.kafka.group_id))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        for (key, value) in &config.kafka.properties {
            consumer_config.set(key, value);
        }
        let consumer: BaseConsumer = consumer_config.create()?;
        let names: Vec<&str> = config.sources.iter().map(|s| s.topic.as_str()).collect();
        consumer.subscribe(&names)?;
        let producer: BaseProducer = producer_config(brokers, &config.kafka.properties).create()?;
        tracing::info!(topics = %names.join(","), "consuming adapted sources");
        let work = Work {
            formats: config
                .sources
                .iter()
                .map(|s| (s.topic.clone(), s.format))
                .collect(),
            adapt: config.adapt.clone(),
            decoder: crate::adapt::decoder(config),
            topics: topics.clone(),
            health,
            metrics,
        };
        let thread = std::thread::Builder::new()
            .name("nhi-drift-adapt".into())
            .spawn(move || work.run(&consumer, &producer))
            .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
        Ok(Some(Bridge {
            thread: Some(thread),
        }))
    }

    /// Waits for the thread, which stops when the service is stopping.
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Work {
    formats: BTreeMap<String, Format>,
    adapt: AdaptConfig,
    decoder: Decoder,
    topics: TopicNames,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

/// How long to wait for the acknowledgements of one batch before committing.
const FLUSH: Duration = Duration::from_secs(10);

impl Work {
    fn run(&self, consumer: &BaseConsumer, producer: &BaseProducer) {
        while !self.health.stopping.load(Ordering::Relaxed) {
            let mut done: BTreeMap<(String, i32), i64> = BTreeMap::new();
            let mut timeout = Duration::from_millis(100);
            for _ in 0..256 {
                let Some(message) = consumer.poll(timeout) else {
                    break;
                };
                timeout = Duration::ZERO;
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::warn!(%error, "consuming adapted sources");
                        break;
                    }
                };
                let Some(format) = self.formats.get(message.topic()).copied() else {
                    continue;
                };
                self.adapt_one(
                    format,
                    message.topic(),
                    message.payload().unwrap_or_default(),
                    producer,
                );
                done.insert(
                    (message.topic().to_owned(), message.partition()),
                    message.offset() + 1,
                );
            }
            if done.is_empty() {
                continue;
            }
            if let Err(error) = producer.flush(FLUSH) {
                tracing::warn!(%error, "publishing adapted events; their records are read again");
                continue;
            }
            let mut list = TopicPartitionList::new();
            for ((topic, partition), next) in &done {
                let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
            if let Err(error) = consumer.commit(&list, CommitMode::Sync) {
                tracing::warn!(%error, "committing adapted source offsets");
            }
        }
        let _ = producer.flush(FLUSH);
    }

    fn adapt_one(&self, format: Format, topic: &str, payload: &[u8], producer: &BaseProducer) {
        let ctx = Context {
            config: &self.adapt,
            input: topic,
        };
        let adapted = adapt_bytes(format, payload, &ctx, &self.decoder);
        let count = |outcome: &str, n: u64| {
            self.metrics
                .adapter_records
                .with_label_values(&[format.as_str(), outcome])
                .inc_by(n);
        };
        count("adapted", adapted.counts.adapted);
        for reason in SkipReason::ALL {
            if let Some(n) = adapted.counts.skipped.get(&reason) {
                count(reason.as_str(), *n);
            }
        }
        let rejected: u64 = adapted.counts.rejected.values().sum();
        if rejected > 0 {
            count("rejected", rejected);
        }
        for event in &adapted.events {
            let head: Head = match serde_json::from_str(&event.line) {
                Ok(head) => head,
                Err(_) => continue,
            };
            let role = EventType::parse(&head.ty)
                .map_or(crate::event::TopicRole::Identity, EventType::topic);
            let target = self.topics.for_role(role);
            let key = head.identity.unwrap_or_default();
            let mut record = BaseRecord::to(target)
                .payload(event.line.as_bytes())
                .key(key.as_str());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(_), returned)) => {
                        // The local queue is full: let deliveries drain, then retry.
                        producer.poll(Duration::from_millis(100));
                        record = returned;
                    }
                    Err((error, _)) => {
                        tracing::warn!(%error, "publishing an adapted event");
                        break;
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
    }
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    ty: String,
    identity: Option<String>,
}

//! `nhi-drift produce`: publishes recorded `.jsonl` fixtures to Kafka, each line to the
//! input topic of its event type (contract §1), keyed by its `identity`. Keyed records are
//! partitioned as the Java clients do it (murmur2 of the key, unless `kafka.properties`
//! sets `partitioner`), so an identity's events get the same partition number on every
//! input topic as any Java or Kafka Streams producer would give them (contract §8). Lines
//! whose type cannot be read (malformed records, kept in fixtures on purpose) go to the
//! identity topic, where the service dead-letters them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use serde::Deserialize;

use crate::config::Config;
use crate::event::{EventType, TopicRole};
use crate::replay::input_files;
use crate::service::kafka::{EMBEDDED, TopicNames, producer_config};

/// Why producing failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(
        "kafka.brokers is `embedded`: that broker lives inside `nhi-drift run`; pass the \
         address it logged with --brokers (or NHI_DRIFT_KAFKA__BROKERS)"
    )]
    Embedded,
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Input(#[from] crate::replay::ReplayError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{failed} of {sent} records were not delivered (first error: {first})")]
    Undelivered {
        failed: u64,
        sent: u64,
        first: String,
    },
}

/// What was published.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Produced {
    /// Records per topic.
    pub per_topic: Vec<(String, u64)>,
}

/// Counts delivery outcomes.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, msg)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first_error.lock()
                && first.is_none()
            {
                *first = Some(format!("{} to {}", error, msg.topic()));
            }
        }
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    identity: Option<std::borrow::Cow<'a, str>>,
}

/// Publishes every line of the `.jsonl` files under `paths` (in order) to `brokers`
/// (default: `kafka.brokers`), to one `topic` if given, else by event type; waits until
/// every record is acknowledged.
pub fn produce(
    config: &Config,
    brokers: Option<&str>,
    paths: &[PathBuf],
    topic: Option<&str>,
) -> Result<Produced, ProduceError> {
    let brokers = brokers.unwrap_or(&config.kafka.brokers);
    if brokers == EMBEDDED {
        return Err(ProduceError::Embedded);
    }
    let topics = TopicNames::from_config(config);
    let producer: BaseProducer<Deliveries> = producer_config(brokers, &config.kafka.properties)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .create_with_context(Deliveries::default())?;
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut sent = 0u64;
    for path in input_files(paths)? {
        let io = |source| ProduceError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
                break;
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            let head: Option<Head<'_>> = serde_json::from_slice(&line).ok();
            let role = head
                .as_ref()
                .and_then(|h| h.kind.as_deref())
                .and_then(EventType::parse)
                .map_or(TopicRole::Identity, EventType::topic);
            let to = topic.unwrap_or_else(|| topics.for_role(role));
            let key = head.as_ref().and_then(|h| h.identity.as_deref());
            let mut record = BaseRecord::to(to).payload(&line[..]);
            if let Some(key) = key {
                record = record.key(key);
            }
            let mut pending = record;
            loop {
                match producer.send(pending) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        producer.poll(Duration::from_millis(50));
                        pending = back;
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            }
            sent += 1;
            match counts.iter_mut().find(|(t, _)| t == to) {
                Some((_, n)) => *n += 1,
                None => counts.push((to.to_owned(), 1)),
            }
            if sent.is_multiple_of(1024) {
                producer.poll(Duration::ZERO);
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = ctx
            .first_error
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        return Err(ProduceError::Undelivered {
            failed,
            sent,
            first,
        });
    }
    Ok(Produced { per_topic: counts })
}

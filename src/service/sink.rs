//! The producer: alerts to the alert topic (key = identity) and dead letters to the
//! dead-letter topic, idempotent with `acks=all`. Every record stays tracked until the
//! broker acknowledges it; [`Sink::settle`] waits for all of them (re-sending what
//! failed) before a checkpoint may commit offsets past their inputs.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use super::health::Health;
use crate::metrics::Metrics;

/// One record on its way to the broker.
struct InFlight {
    topic: Arc<str>,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    delivery: DeliveryFuture,
}

/// The alert and dead-letter producer.
pub struct Sink {
    producer: FutureProducer,
    in_flight: Vec<InFlight>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    /// Records delivered, and deliveries that failed and were sent again.
    pub delivered: u64,
    pub retried: u64,
}

impl Sink {
    /// An idempotent producer over `base` (bootstrap servers and `kafka.properties`).
    pub fn new(
        mut base: ClientConfig,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, KafkaError> {
        let producer: FutureProducer = base
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create()?;
        Ok(Sink {
            producer,
            in_flight: Vec::new(),
            health,
            metrics,
            delivered: 0,
            retried: 0,
        })
    }

    /// Queues one record; waits while librdkafka's queue is full.
    pub async fn send(&mut self, topic: &Arc<str>, key: Option<&[u8]>, payload: Vec<u8>) {
        let delivery = self.enqueue(topic, key, &payload).await;
        self.in_flight.push(InFlight {
            topic: Arc::clone(topic),
            key: key.map(<[u8]>::to_vec),
            payload,
            delivery,
        });
    }

    async fn enqueue(&self, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> DeliveryFuture {
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
            if let Some(key) = key {
                record = record.key(key);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => return delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, _)) => {
                    tracing::warn!(%error, topic, "queueing a record; retrying");
                    self.health
                        .broker_error(&format!("producing to {topic}: {error}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Records not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits until every queued record is acknowledged, re-sending failed ones.
    pub async fn settle(&mut self) {
        while let Some(record) = self.in_flight.pop() {
            match record.delivery.await {
                Ok(Ok(_)) => {
                    self.delivered += 1;
                    self.health.ok();
                }
                Ok(Err((error, _))) => {
                    self.metrics.producer_errors.inc();
                    tracing::warn!(%error, topic = %record.topic, "delivery failed; sending again");
                    self.health
                        .broker_error(&format!("delivering to {}: {error}", record.topic));
                    self.retried += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let delivery = self
                        .enqueue(&record.topic, record.key.as_deref(), &record.payload)
                        .await;
                    self.in_flight.push(InFlight { delivery, ..record });
                }
                Err(_canceled) => {
                    // The producer dropped the record (it is shutting down): send again.
                    self.retried += 1;
                    let delivery = self
                        .enqueue(&record.topic, record.key.as_deref(), &record.payload)
                        .await;
                    self.in_flight.push(InFlight { delivery, ..record });
                }
            }
        }
    }

    /// Flushes librdkafka's queue (shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(%error, "flushing the producer");
        }
    }
}

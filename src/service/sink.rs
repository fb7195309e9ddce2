//! The producer: alerts to the alert topic (key = identity) and dead letters to the
//! dead-letter topic, idempotent with `acks=all`. Every record stays tracked until the
//! broker acknowledges it; [`Sink::settle`] waits for all of them (re-sending what
//! failed) before a checkpoint may commit offsets past their inputs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use super::client_log::{self, CLIENT_LOG_PERIOD, ClientLog};
use super::health::Health;
use crate::metrics::Metrics;
use crate::throttle::Throttle;

/// One record on its way to the broker.
struct InFlight {
    topic: Arc<str>,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    delivery: DeliveryFuture,
}

/// The alert and dead-letter producer.
pub struct Sink {
    producer: FutureProducer<ClientLog>,
    in_flight: Vec<InFlight>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    /// Failed deliveries and full queues repeat every few hundred milliseconds during an
    /// outage: logged rate-limited.
    delivery_failures: Throttle,
    queue_failures: Throttle,
}

impl Sink {
    /// An idempotent producer over `base` (bootstrap servers and `kafka.properties`).
    pub fn new(
        mut base: ClientConfig,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, KafkaError> {
        let producer = base
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create_with_context(ClientLog::new(Arc::clone(&health)))?;
        Ok(Sink {
            producer,
            in_flight: Vec::new(),
            health,
            metrics,
            delivery_failures: Throttle::new(CLIENT_LOG_PERIOD),
            queue_failures: Throttle::new(CLIENT_LOG_PERIOD),
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

    async fn enqueue(&mut self, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> DeliveryFuture {
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
                    if let Some(repeats) = self.queue_failures.hit(Instant::now()) {
                        tracing::warn!(%error, topic, repeats, "queueing a record; retrying");
                    }
                    client_log::report(
                        &self.health,
                        &error,
                        &format!("producing to {topic}: {error}"),
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Waits until every queued record is acknowledged, re-sending failed ones.
    pub async fn settle(&mut self) {
        while let Some(record) = self.in_flight.pop() {
            match record.delivery.await {
                Ok(Ok(_)) => self.health.ok(),
                Ok(Err((error, _))) => {
                    self.metrics.producer_errors.inc();
                    if let Some(repeats) = self.delivery_failures.hit(Instant::now()) {
                        tracing::warn!(%error, topic = %record.topic, repeats, "delivery failed; sending again");
                    }
                    let what = format!("delivering to {}: {error}", record.topic);
                    client_log::report(&self.health, &error, &what);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let delivery = self
                        .enqueue(&record.topic, record.key.as_deref(), &record.payload)
                        .await;
                    self.in_flight.push(InFlight { delivery, ..record });
                }
                Err(_canceled) => {
                    // The producer dropped the record (it is shutting down): send again.
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

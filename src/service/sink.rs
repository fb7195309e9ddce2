//! The producer: alerts to the alert topic (key = identity) and dead letters to the
//! dead-letter topic, idempotent with `acks=all`. Every record stays tracked until the
//! broker acknowledges it; [`Sink::settle`] waits for all of them (re-sending what
//! failed) before a checkpoint may commit offsets past their inputs.
//!
//! With `kafka.exactly_once` the producer is transactional: what is sent between two
//! checkpoints (alerts, dead letters, and the task states the checkpoint writes) is one
//! transaction, committed by [`Sink::commit`] together with the consumed offsets. Its
//! records are kept until then: a transaction the broker aborts is begun again with the
//! same records, so the output stays what the pipeline decided, sent once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::TopicPartitionList;

use super::client_log::{self, CLIENT_LOG_PERIOD, ClientLog};
use super::health::Health;
use crate::metrics::Metrics;
use crate::throttle::Throttle;

/// How long one transactional call may block.
const TRANSACTION_CALL: Duration = Duration::from_secs(30);

/// Aborted transactions in a row after which the service stops rather than try again
/// (its partitions have most likely moved to another instance).
pub const MAX_ABORTS: u32 = 5;

/// One record to send.
struct Outgoing {
    topic: Arc<str>,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// One record on its way to the broker.
struct InFlight {
    record: Arc<Outgoing>,
    delivery: DeliveryFuture,
}

/// The open transaction (exactly-once).
struct Transaction {
    /// Every record sent in it, sent again if it is aborted.
    kept: Vec<Arc<Outgoing>>,
    /// Why a record of it was not delivered: it can only be aborted.
    failed: Option<String>,
    /// Whether the offsets were added to it (they are not added twice).
    offsets_sent: bool,
}

/// Why a transaction could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(
        "kafka transaction: {0} (fatal: another instance uses this kafka.transactional_id, or \
         the producer was fenced; the service stops and its last committed state stands)"
    )]
    Fatal(KafkaError),
    #[error(
        "kafka transaction aborted {MAX_ABORTS} times in a row, last: {0} (the service stops; \
         its last committed state stands)"
    )]
    Aborted(String),
    #[error("kafka transaction: the consumer has no group metadata (not in a group)")]
    NoGroup,
}

/// The alert and dead-letter producer.
pub struct Sink {
    producer: FutureProducer<ClientLog>,
    in_flight: Vec<InFlight>,
    /// The open transaction, with `kafka.exactly_once`.
    transaction: Option<Transaction>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    /// Failed deliveries and full queues repeat every few hundred milliseconds during an
    /// outage: logged rate-limited.
    delivery_failures: Throttle,
    queue_failures: Throttle,
    transaction_failures: Throttle,
}

impl Sink {
    /// An idempotent producer over `base` (bootstrap servers and `kafka.properties`).
    pub fn new(
        base: ClientConfig,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, KafkaError> {
        let producer = Self::producer(base, &health)?;
        Ok(Self::with(producer, None, health, metrics))
    }

    /// A transactional producer with `transactional_id`: waits until the broker has
    /// fenced any earlier producer of that id (aborting its open transaction), then opens
    /// the first transaction.
    pub async fn transactional(
        mut base: ClientConfig,
        transactional_id: &str,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, KafkaError> {
        base.set("transactional.id", transactional_id)
            // Task states go through this producer too, in chunks of up to 512 KiB.
            .set("message.max.bytes", "2000000");
        let producer = Self::producer(base, &health)?;
        let mut failures = Throttle::new(CLIENT_LOG_PERIOD);
        loop {
            let p = producer.clone();
            let result = tokio::task::spawn_blocking(move || p.init_transactions(TRANSACTION_CALL))
                .await
                .unwrap_or(Err(KafkaError::Canceled));
            match result {
                Ok(()) => break,
                Err(error) if is_fatal(&error) => return Err(error),
                Err(error) => {
                    if let Some(repeats) = failures.hit(Instant::now()) {
                        tracing::warn!(%error, transactional_id, repeats, "initialising transactions; retrying");
                    }
                    client_log::report(
                        &health,
                        &error,
                        &format!("initialising transactions: {error}"),
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        producer.begin_transaction()?;
        tracing::info!(
            transactional_id,
            "exactly-once: transactional producer ready"
        );
        let transaction = Transaction {
            kept: Vec::new(),
            failed: None,
            offsets_sent: false,
        };
        Ok(Self::with(producer, Some(transaction), health, metrics))
    }

    fn producer(
        mut base: ClientConfig,
        health: &Arc<Health>,
    ) -> Result<FutureProducer<ClientLog>, KafkaError> {
        base.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create_with_context(ClientLog::new(Arc::clone(health)))
    }

    fn with(
        producer: FutureProducer<ClientLog>,
        transaction: Option<Transaction>,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Sink {
            producer,
            in_flight: Vec::new(),
            transaction,
            health,
            metrics,
            delivery_failures: Throttle::new(CLIENT_LOG_PERIOD),
            queue_failures: Throttle::new(CLIENT_LOG_PERIOD),
            transaction_failures: Throttle::new(CLIENT_LOG_PERIOD),
        }
    }

    /// Whether records go out in transactions (`kafka.exactly_once`).
    pub fn is_transactional(&self) -> bool {
        self.transaction.is_some()
    }

    /// Queues one record; waits while librdkafka's queue is full.
    pub async fn send(&mut self, topic: &Arc<str>, key: Option<&[u8]>, payload: Vec<u8>) {
        self.send_to(topic, None, key, payload).await;
    }

    /// Queues one record for `partition` of `topic` (the partitioner's choice if none).
    pub async fn send_to(
        &mut self,
        topic: &Arc<str>,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Vec<u8>,
    ) {
        let record = Arc::new(Outgoing {
            topic: Arc::clone(topic),
            partition,
            key: key.map(<[u8]>::to_vec),
            payload,
        });
        let delivery = self.enqueue(&record).await;
        if let Some(transaction) = &mut self.transaction {
            // Committing the transaction waits for its records.
            transaction.kept.push(record);
        } else if let Some(delivery) = delivery {
            self.in_flight.push(InFlight { record, delivery });
        }
    }

    /// Queues `outgoing`; in a transaction that cannot take it any more (it must be
    /// aborted), marks the transaction failed and returns no delivery.
    async fn enqueue(&mut self, outgoing: &Outgoing) -> Option<DeliveryFuture> {
        let topic: &str = &outgoing.topic;
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(&outgoing.payload);
            if let Some(key) = &outgoing.key {
                record = record.key(key);
            }
            if let Some(partition) = outgoing.partition {
                record = record.partition(partition);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => return Some(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, _)) => {
                    if let Some(repeats) = self.queue_failures.hit(Instant::now()) {
                        tracing::warn!(%error, topic, repeats, "queueing a record; retrying");
                    }
                    let what = format!("producing to {topic}: {error}");
                    client_log::report(&self.health, &error, &what);
                    if let Some(transaction) = &mut self.transaction {
                        transaction.failed.get_or_insert(what);
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Waits until every queued record is acknowledged, re-sending failed ones (in a
    /// transaction, [`Sink::commit`] does).
    pub async fn settle(&mut self) {
        while let Some(InFlight { record, delivery }) = self.in_flight.pop() {
            let error = match delivery.await {
                Ok(Ok(_)) => {
                    self.health.ok();
                    continue;
                }
                Ok(Err((error, _))) => error,
                // The producer dropped the record (it is shutting down, or a transaction
                // was aborted).
                Err(_canceled) => KafkaError::Canceled,
            };
            self.metrics.producer_errors.inc();
            if let Some(repeats) = self.delivery_failures.hit(Instant::now()) {
                tracing::warn!(%error, topic = %record.topic, repeats, "delivery failed; sending again");
            }
            let what = format!("delivering to {}: {error}", record.topic);
            client_log::report(&self.health, &error, &what);
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Some(delivery) = self.enqueue(&record).await {
                self.in_flight.push(InFlight { record, delivery });
            }
        }
    }

    /// Exactly-once: adds `offsets` (the next offset of each input partition) for the
    /// consumer group of `group` to the open transaction, commits it (librdkafka delivers
    /// its records first; one that fails leaves the transaction abortable), and opens the
    /// next one. A transaction that must be aborted is sent again whole; retriable errors
    /// are retried. Without transactions there is nothing to do.
    pub async fn commit(
        &mut self,
        offsets: &TopicPartitionList,
        group: impl Fn() -> Option<ConsumerGroupMetadata>,
    ) -> Result<(), CommitError> {
        if self.transaction.is_none() {
            return Ok(());
        }
        let mut aborts = 0u32;
        loop {
            let Some(transaction) = self.transaction.as_mut() else {
                return Ok(());
            };
            let step = match transaction.failed.take() {
                Some(why) => Err(Step::Abort(why)),
                None => {
                    let send_offsets = !transaction.offsets_sent && offsets.count() > 0;
                    let group = if send_offsets {
                        Some(group().ok_or(CommitError::NoGroup)?)
                    } else {
                        None
                    };
                    self.end(offsets, group).await
                }
            };
            match step {
                Ok(()) => {
                    self.health.ok();
                    self.metrics.transaction("committed");
                    self.begin()?;
                    return Ok(());
                }
                Err(Step::Fatal(error)) => return Err(CommitError::Fatal(error)),
                Err(Step::Retry(error)) => {
                    self.failed_step(&error, "committing the transaction; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(Step::Abort(why)) => {
                    aborts += 1;
                    self.metrics.transaction("aborted");
                    tracing::warn!(
                        reason = %why,
                        aborts,
                        "kafka transaction aborted; sending its records again in a new one"
                    );
                    if aborts >= MAX_ABORTS {
                        return Err(CommitError::Aborted(why));
                    }
                    let kept = self
                        .transaction
                        .as_mut()
                        .map(|t| std::mem::take(&mut t.kept))
                        .unwrap_or_default();
                    self.abort().await?;
                    self.begin()?;
                    self.resend(kept).await;
                }
            }
        }
    }

    /// Adds the offsets (once) and commits.
    async fn end(
        &mut self,
        offsets: &TopicPartitionList,
        group: Option<ConsumerGroupMetadata>,
    ) -> Result<(), Step> {
        let producer = self.producer.clone();
        if let Some(group) = group {
            let offsets = offsets.clone();
            blocking(move || {
                producer.send_offsets_to_transaction(&offsets, &group, TRANSACTION_CALL)
            })
            .await?;
            if let Some(transaction) = self.transaction.as_mut() {
                transaction.offsets_sent = true;
            }
        }
        let producer = self.producer.clone();
        blocking(move || producer.commit_transaction(TRANSACTION_CALL)).await
    }

    async fn abort(&mut self) -> Result<(), CommitError> {
        loop {
            let producer = self.producer.clone();
            match blocking(move || producer.abort_transaction(TRANSACTION_CALL)).await {
                Ok(()) => return Ok(()),
                Err(Step::Fatal(error)) => return Err(CommitError::Fatal(error)),
                Err(Step::Retry(error) | Step::Abort(error)) => {
                    self.failed_step(&error, "aborting the transaction; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    fn begin(&mut self) -> Result<(), CommitError> {
        self.producer
            .begin_transaction()
            .map_err(CommitError::Fatal)?;
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.kept.clear();
            transaction.failed = None;
            transaction.offsets_sent = false;
        }
        Ok(())
    }

    /// Sends the records of the aborted transaction again, in the one just begun.
    async fn resend(&mut self, kept: Vec<Arc<Outgoing>>) {
        for record in kept {
            // A record the new transaction does not take marks it failed.
            let _ = self.enqueue(&record).await;
            if let Some(transaction) = &mut self.transaction {
                transaction.kept.push(record);
            }
        }
    }

    fn failed_step(&mut self, error: &str, what: &str) {
        if let Some(repeats) = self.transaction_failures.hit(Instant::now()) {
            tracing::warn!(%error, repeats, "{what}");
        }
        self.health
            .broker_error(&format!("kafka transaction: {error}"));
    }

    /// Aborts the open transaction, if any (the service stops after an error: readers
    /// need not wait for the broker's transaction timeout).
    pub async fn abandon(&mut self) {
        if self.transaction.is_none() {
            return;
        }
        let producer = self.producer.clone();
        if let Err(Step::Retry(error) | Step::Abort(error)) =
            blocking(move || producer.abort_transaction(TRANSACTION_CALL)).await
        {
            tracing::warn!(%error, "aborting the open transaction");
        }
        self.transaction = None;
    }

    /// Flushes librdkafka's queue (shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(%error, "flushing the producer");
        }
    }
}

/// What a failed transactional call calls for.
enum Step {
    Retry(String),
    Abort(String),
    Fatal(KafkaError),
}

fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => e.is_fatal(),
        _ => false,
    }
}

/// Runs a blocking transactional call off the runtime's threads and sorts its error.
async fn blocking(
    call: impl FnOnce() -> Result<(), KafkaError> + Send + 'static,
) -> Result<(), Step> {
    let result = tokio::task::spawn_blocking(call)
        .await
        .unwrap_or(Err(KafkaError::Canceled));
    match result {
        Ok(()) => Ok(()),
        Err(KafkaError::Transaction(e)) if e.is_fatal() => {
            Err(Step::Fatal(KafkaError::Transaction(e)))
        }
        Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
            Err(Step::Abort(e.to_string()))
        }
        Err(error) => Err(Step::Retry(error.to_string())),
    }
}

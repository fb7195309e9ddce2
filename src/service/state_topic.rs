//! The state topic `<group_id>.state` (contract §8): partition *p* holds the state of
//! task *p*, written at every checkpoint by the instance that owns the task, and read by
//! whichever instance is assigned the task next.
//!
//! A task's state ([`checkpoint::encode_task`]) is tens of megabytes for a large task, and
//! brokers refuse records over about a megabyte, so one state is written as numbered
//! chunks followed by a head record that names its generation and chunk count:
//!
//! | key | value |
//! |---|---|
//! | `<p>/chunk/<slot>/<i>` | `NHIDSTCK`, generation (u64), index (u32), count (u32), bytes |
//! | `<p>/head` | `NHIDSTHD`, generation (u64), count (u32), length (u64) |
//!
//! (integers little-endian). Generations alternate between two slots of chunk keys, so on
//! a compacted topic the latest head's chunks survive while the next state is being
//! written, and a state cut off by a crash (chunks without their head) leaves the previous
//! one whole. One writer owns a partition at a time, so the latest state's chunks are the
//! `count` records just before its head: a restore reads the partition's last record and
//! those before it, not the partition's history. Anything else (the last record is not a
//! head, a chunk is missing or of another generation) falls back to reading the whole
//! partition, keeping the latest record of every key, as compaction would.
//!
//! [`checkpoint::encode_task`]: super::checkpoint::encode_task

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use std::sync::Arc;

use super::client_log::ClientLog;
use super::health::Health;
use super::kafka::{TopicNames, client_config};
use super::partitions;
use super::source::DirectoryContext;
use crate::event::Micros;

/// Largest chunk of a state in one record (brokers refuse records over about 1 MiB by
/// default; a record also carries its key and batch headers).
pub const CHUNK: usize = 512 * 1024;

const CHUNK_MAGIC: &[u8; 8] = b"NHIDSTCK";
const HEAD_MAGIC: &[u8; 8] = b"NHIDSTHD";
const CHUNK_HEADER: usize = 8 + 8 + 4 + 4;
const HEAD_LEN: usize = 8 + 8 + 4 + 8;

/// How long a restore waits for the broker without receiving anything.
const READ_STALL: Duration = Duration::from_secs(30);

/// Why a state could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateTopicError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{topic}/{partition}: {reason}")]
    Damaged {
        topic: String,
        partition: i32,
        reason: String,
    },
    #[error(
        "{topic}/{partition}: the broker sent nothing for {}s while the state was read \
         (at offset {at}, up to {high})", READ_STALL.as_secs()
    )]
    Stalled {
        topic: String,
        partition: i32,
        at: i64,
        high: i64,
    },
}

/// A head record: the latest complete state of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub generation: u64,
    pub chunks: u32,
    pub len: u64,
}

impl Head {
    fn encode(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(HEAD_LEN);
        value.extend_from_slice(HEAD_MAGIC);
        value.extend_from_slice(&self.generation.to_le_bytes());
        value.extend_from_slice(&self.chunks.to_le_bytes());
        value.extend_from_slice(&self.len.to_le_bytes());
        value
    }

    fn decode(value: &[u8]) -> Option<Head> {
        let rest = value.strip_prefix(HEAD_MAGIC)?;
        if rest.len() != HEAD_LEN - 8 {
            return None;
        }
        Some(Head {
            generation: u64::from_le_bytes(rest[0..8].try_into().ok()?),
            chunks: u32::from_le_bytes(rest[8..12].try_into().ok()?),
            len: u64::from_le_bytes(rest[12..20].try_into().ok()?),
        })
    }
}

/// A chunk record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkHeader {
    generation: u64,
    index: u32,
    count: u32,
}

fn decode_chunk(value: &[u8]) -> Option<(ChunkHeader, &[u8])> {
    let rest = value.strip_prefix(CHUNK_MAGIC)?;
    if rest.len() < CHUNK_HEADER - 8 {
        return None;
    }
    let header = ChunkHeader {
        generation: u64::from_le_bytes(rest[0..8].try_into().ok()?),
        index: u32::from_le_bytes(rest[8..12].try_into().ok()?),
        count: u32::from_le_bytes(rest[12..16].try_into().ok()?),
    };
    Some((header, &rest[16..]))
}

fn head_key(partition: i32) -> String {
    format!("{partition}/head")
}

fn chunk_key(partition: i32, generation: u64, index: u32) -> String {
    format!("{partition}/chunk/{}/{index}", generation % 2)
}

/// The records of `state` at `generation` for partition `partition`, in write order:
/// its chunks, then its head.
pub fn records(partition: i32, generation: u64, state: &[u8]) -> Vec<(String, Vec<u8>)> {
    let pieces: Vec<&[u8]> = if state.is_empty() {
        vec![&[][..]]
    } else {
        state.chunks(CHUNK).collect()
    };
    let count = pieces.len() as u32;
    let mut records = Vec::with_capacity(pieces.len() + 1);
    for (index, piece) in pieces.into_iter().enumerate() {
        let index = index as u32;
        let mut value = Vec::with_capacity(CHUNK_HEADER + piece.len());
        value.extend_from_slice(CHUNK_MAGIC);
        value.extend_from_slice(&generation.to_le_bytes());
        value.extend_from_slice(&index.to_le_bytes());
        value.extend_from_slice(&count.to_le_bytes());
        value.extend_from_slice(piece);
        records.push((chunk_key(partition, generation, index), value));
    }
    let head = Head {
        generation,
        chunks: count,
        len: state.len() as u64,
    };
    records.push((head_key(partition), head.encode()));
    records
}

/// Puts the chunks of `head` found in `chunks` (by index) together.
fn assemble(head: Head, chunks: &BTreeMap<u32, Vec<u8>>) -> Result<Vec<u8>, String> {
    let mut state = Vec::with_capacity(head.len as usize);
    for index in 0..head.chunks {
        let Some(piece) = chunks.get(&index) else {
            return Err(format!(
                "chunk {index} of {} of generation {} is missing",
                head.chunks, head.generation
            ));
        };
        state.extend_from_slice(piece);
    }
    if state.len() as u64 != head.len {
        return Err(format!(
            "generation {} holds {} bytes where its head says {}",
            head.generation,
            state.len(),
            head.len
        ));
    }
    Ok(state)
}

const PROGRESS_MAGIC: &[u8; 8] = b"NHIDPROG";

/// A progress marker: task `partition` has read up to event time `time`.
pub fn progress_record(time: Micros) -> Vec<u8> {
    let mut value = PROGRESS_MAGIC.to_vec();
    value.extend_from_slice(&time.to_le_bytes());
    value
}

/// The event time of a progress marker.
pub fn progress_of(value: &[u8]) -> Option<Micros> {
    let rest = value.strip_prefix(PROGRESS_MAGIC)?;
    Some(Micros::from_le_bytes(rest.try_into().ok()?))
}

/// Writes task states and progress markers (the pipeline task's side).
pub struct StateWriter {
    producer: FutureProducer<ClientLog>,
    topic: String,
    progress: String,
}

impl StateWriter {
    /// An idempotent producer over `base` (bootstrap servers and `kafka.properties`).
    pub fn new(
        mut base: ClientConfig,
        topics: &TopicNames,
        health: Arc<Health>,
    ) -> Result<Self, KafkaError> {
        let producer = base
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("message.max.bytes", "2000000")
            .create_with_context(ClientLog::new(health))?;
        Ok(StateWriter {
            producer,
            topic: topics.state.clone(),
            progress: topics.progress.clone(),
        })
    }

    /// Tells every instance that task `partition` has read up to `time` (best effort: a
    /// marker lost is superseded by the next).
    pub fn publish_progress(&self, partition: i32, time: Micros) {
        let key = partition.to_string();
        let value = progress_record(time);
        let record = FutureRecord::to(&self.progress)
            .partition(partition)
            .key(key.as_str())
            .payload(value.as_slice());
        if let Err((error, _)) = self.producer.send_result(record) {
            tracing::debug!(%error, partition, "publishing progress");
        }
    }

    /// The topic written.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes `state` as `generation` of task `partition` and waits until the broker has
    /// every record; returns the records written.
    pub async fn write(
        &self,
        partition: i32,
        generation: u64,
        state: &[u8],
    ) -> Result<usize, StateTopicError> {
        let records = records(partition, generation, state);
        let mut deliveries = Vec::with_capacity(records.len());
        for (key, value) in &records {
            let mut record = FutureRecord::to(&self.topic)
                .partition(partition)
                .key(key.as_str())
                .payload(value.as_slice());
            // A full queue waits for room (the records before it drain).
            let delivery = loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            };
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(error.into()),
                Err(_) => {
                    return Err(KafkaError::Canceled.into());
                }
            }
        }
        Ok(records.len())
    }

    /// Waits for anything still queued (shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}

/// Reads task states (the poll thread's side, during a rebalance): a consumer of its own,
/// outside the group, assigned one state partition at a time.
pub struct StateReader {
    consumer: BaseConsumer<DirectoryContext>,
    topic: String,
}

/// What the state topic has of a task.
#[derive(Debug)]
pub enum StateRead {
    /// No state was ever written.
    Nothing,
    /// The latest is the generation the caller holds.
    Same,
    /// The latest state, with its head.
    Latest(Head, Vec<u8>),
}

enum Tail {
    Same,
    Found(Head, Vec<u8>),
    Other,
}

/// One record read back.
struct Read {
    offset: i64,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl StateReader {
    /// A consumer over the bootstrap servers and `kafka.properties` in `base`.
    pub fn new(
        mut base: ClientConfig,
        topic: &str,
        health: Arc<Health>,
    ) -> Result<Self, KafkaError> {
        let consumer = base
            .set("group.id", "nhi-drift-state")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.max.bytes", "52428800")
            .create_with_context(DirectoryContext {
                log: ClientLog::new(health),
            })?;
        Ok(StateReader {
            consumer,
            topic: topic.to_owned(),
        })
    }

    /// The topic read.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The latest complete state of task `partition`, unless it is generation `held` (the
    /// one the caller has).
    pub fn read(&self, partition: i32, held: Option<u64>) -> Result<StateRead, StateTopicError> {
        let (low, high) =
            self.consumer
                .fetch_watermarks(&self.topic, partition, Duration::from_secs(10))?;
        if high <= low {
            return Ok(StateRead::Nothing);
        }
        let found = match self.read_tail(partition, low, high, held)? {
            Tail::Same => return Ok(StateRead::Same),
            Tail::Found(head, state) => Some((head, state)),
            Tail::Other => self.read_all(partition, low, high)?,
        };
        Ok(match found {
            Some((head, _)) if Some(head.generation) == held => StateRead::Same,
            Some((head, state)) => StateRead::Latest(head, state),
            None => StateRead::Nothing,
        })
    }

    /// The fast path: the last record is a head, and its chunks are the records before it.
    fn read_tail(
        &self,
        partition: i32,
        low: i64,
        high: i64,
        held: Option<u64>,
    ) -> Result<Tail, StateTopicError> {
        // The head is the last record, or the one before a transaction's commit marker.
        let last = self.fetch(partition, (high - 2).max(low), high)?;
        let Some((at, head)) = last
            .last()
            .and_then(|r| Head::decode(&r.value).map(|head| (r.offset, head)))
        else {
            return Ok(Tail::Other);
        };
        if Some(head.generation) == held {
            return Ok(Tail::Same);
        }
        let first = at - i64::from(head.chunks);
        if first < low {
            return Ok(Tail::Other);
        }
        let mut chunks = BTreeMap::new();
        for read in self.fetch(partition, first, at)? {
            let Some((header, bytes)) = decode_chunk(&read.value) else {
                return Ok(Tail::Other);
            };
            if header.generation != head.generation || header.count != head.chunks {
                return Ok(Tail::Other);
            }
            chunks.insert(header.index, bytes.to_vec());
        }
        Ok(match assemble(head, &chunks) {
            Ok(state) => Tail::Found(head, state),
            Err(_) => Tail::Other,
        })
    }

    /// The slow path: every record, the latest per key.
    fn read_all(
        &self,
        partition: i32,
        low: i64,
        high: i64,
    ) -> Result<Option<(Head, Vec<u8>)>, StateTopicError> {
        let mut latest: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for read in self.fetch(partition, low, high)? {
            latest.insert(read.key, read.value);
        }
        let Some(head) = latest
            .get(head_key(partition).as_bytes())
            .and_then(|v| Head::decode(v))
        else {
            return Ok(None);
        };
        let mut chunks = BTreeMap::new();
        for index in 0..head.chunks {
            let key = chunk_key(partition, head.generation, index);
            if let Some((header, bytes)) = latest.get(key.as_bytes()).and_then(|v| decode_chunk(v))
                && header.generation == head.generation
            {
                chunks.insert(index, bytes.to_vec());
            }
        }
        assemble(head, &chunks)
            .map(|state| Some((head, state)))
            .map_err(|reason| StateTopicError::Damaged {
                topic: self.topic.clone(),
                partition,
                reason: format!(
                    "{reason} (records from offset {low} to {high}; the broker may have \
                     dropped them: see README, several instances)"
                ),
            })
    }

    /// The consumer's position in `partition` (the next offset it will read).
    fn position(&self, partition: i32) -> Option<i64> {
        let list = self.consumer.position().ok()?;
        match list.find_partition(&self.topic, partition)?.offset() {
            Offset::Offset(at) => Some(at),
            _ => None,
        }
    }

    /// The records of `[from, to)` (the ones the broker still has).
    fn fetch(&self, partition: i32, from: i64, to: i64) -> Result<Vec<Read>, StateTopicError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(from))?;
        self.consumer.assign(&tpl)?;
        let mut reads = Vec::new();
        let mut next = from;
        let mut last_progress = Instant::now();
        while next < to {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => {
                    if msg.partition() != partition || msg.offset() < next {
                        continue;
                    }
                    last_progress = Instant::now();
                    next = msg.offset() + 1;
                    if msg.offset() < to {
                        reads.push(Read {
                            offset: msg.offset(),
                            key: msg.key().unwrap_or_default().to_vec(),
                            value: msg.payload().unwrap_or_default().to_vec(),
                        });
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, topic = %self.topic, partition, "reading state");
                }
                None => {
                    // With transactions the last offsets of the range may be commit
                    // markers, never delivered: the consumer's position passes them.
                    if !reads.is_empty() && self.position(partition).is_some_and(|at| at >= to) {
                        break;
                    }
                    // The records from `next` on may have been dropped (retention): the
                    // broker's low watermark says.
                    if let Ok((low, _)) = self.consumer.fetch_watermarks(
                        &self.topic,
                        partition,
                        Duration::from_secs(5),
                    ) && low > next
                    {
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(low))?;
                        self.consumer.assign(&tpl)?;
                        next = low;
                        last_progress = Instant::now();
                    }
                    if last_progress.elapsed() >= READ_STALL {
                        return Err(StateTopicError::Stalled {
                            topic: self.topic.clone(),
                            partition,
                            at: next,
                            high: to,
                        });
                    }
                }
            }
        }
        self.consumer.unassign()?;
        reads.sort_by_key(|r| r.offset);
        Ok(reads)
    }
}

/// Makes sure the state topic of a real cluster exists with as many partitions as the
/// input topics: creates it (compacted) if it is missing, refuses a count that differs.
/// Input topics that do not exist yet leave it to be created later.
pub async fn ensure(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topics: &TopicNames,
    health: Arc<Health>,
) -> Result<(), String> {
    let mut config = client_config(brokers, properties);
    // A broker that is away is reported by the service's own clients, rate-limited.
    config.set("log_level", "0");
    let mut names = topics.inputs.to_vec();
    names.push(topics.state.clone());
    names.push(topics.progress.clone());
    let asked = tokio::task::spawn_blocking(move || -> Result<_, KafkaError> {
        let consumer: BaseConsumer<DirectoryContext> =
            config.create_with_context(DirectoryContext {
                log: ClientLog::new(health),
            })?;
        let counts = partitions::fetch(&consumer, &names)?;
        let broker_count = consumer
            .fetch_metadata(None, Duration::from_secs(5))?
            .brokers()
            .len();
        Ok((counts, broker_count))
    })
    .await
    .map_err(|e| e.to_string())?;
    let (counts, broker_count) = match asked {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, topic = %topics.state, "cannot check the state topic yet");
            return Ok(());
        }
    };
    let inputs = counts[0].1;
    if counts[..3].iter().any(|(_, n)| *n != inputs) {
        // Input topics that differ (or are not all there) are refused or waited for.
        return Ok(());
    }
    let Some(n) = inputs else {
        tracing::info!(
            topic = %topics.state,
            "the input topics do not exist yet: the state topic is checked when they do"
        );
        return Ok(());
    };
    for (name, count) in &counts[3..] {
        match count {
            Some(m) if *m != n => {
                return Err(format!(
                    "{name} has {m} partitions and the input topics {n}: task p writes \
                     partition p, so give it {n} (delete and recreate it; the tasks then \
                     start from the local checkpoints or the beginning of the input)"
                ));
            }
            Some(_) => {}
            None => create(brokers, properties, name, n, broker_count).await?,
        }
    }
    Ok(())
}

/// Creates topic `name` compacted, with `partitions` partitions.
async fn create(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    name: &str,
    partitions: usize,
    broker_count: usize,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, properties)
        .create()
        .map_err(|e| e.to_string())?;
    let replication = broker_count.clamp(1, 3) as i32;
    let topic = NewTopic::new(
        name,
        partitions as i32,
        TopicReplication::Fixed(replication),
    )
    .set("cleanup.policy", "compact");
    let created = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .map_err(|e| format!("creating {name}: {e}"))?;
    for result in created {
        match result {
            Ok(name) => tracing::info!(
                topic = %name,
                partitions,
                replication,
                "topic created (compacted)"
            ),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(format!(
                    "creating {name}: {code} (create it with {partitions} partitions and \
                     cleanup.policy=compact)"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_chunks_then_its_head() {
        let state: Vec<u8> = (0..CHUNK * 2 + 10).map(|i| i as u8).collect();
        let records = records(3, 7, &state);
        assert_eq!(records.len(), 4, "three chunks and a head");
        assert_eq!(records[0].0, "3/chunk/1/0");
        assert_eq!(records[3].0, "3/head");
        let head = Head::decode(&records[3].1).expect("head");
        assert_eq!(
            head,
            Head {
                generation: 7,
                chunks: 3,
                len: state.len() as u64
            }
        );
        let chunks: BTreeMap<u32, Vec<u8>> = records[..3]
            .iter()
            .map(|(_, v)| {
                let (h, bytes) = decode_chunk(v).expect("chunk");
                assert_eq!((h.generation, h.count), (7, 3));
                (h.index, bytes.to_vec())
            })
            .collect();
        assert_eq!(assemble(head, &chunks).expect("whole"), state);
        // The next generation writes the other slot.
        assert_eq!(records_keys(8), ["3/chunk/0/0", "3/head"]);
    }

    fn records_keys(generation: u64) -> Vec<String> {
        records(3, generation, b"x")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn a_missing_chunk_is_named() {
        let records = records(0, 2, &vec![1u8; CHUNK + 1]);
        let head = Head::decode(&records[2].1).expect("head");
        let mut chunks = BTreeMap::new();
        let (h, bytes) = decode_chunk(&records[1].1).expect("chunk");
        chunks.insert(h.index, bytes.to_vec());
        let error = assemble(head, &chunks).expect_err("chunk 0 is missing");
        assert!(error.contains("chunk 0 of 2"), "{error}");
    }
}

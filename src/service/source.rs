//! The consumer: one thread polls librdkafka, decodes each record once, and hands chunks
//! to the pipeline task over a bounded channel — so evaluation never stalls polling, and a
//! slow pipeline slows polling down (backpressure) instead of buffering without bound.
//!
//! Beside the group's assignment, a second consumer reads every partition of the identity
//! topic from the beginning: the directory streams of `tasks`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Statistics};
use tokio::sync::mpsc;

use super::checkpoint::{self, Offsets, TaskCheckpoint};
use super::client_log::{self, CLIENT_LOG_PERIOD, ClientLog};
use super::health::Health;
use super::kafka::{TopicNames, client_config, stream_of};
use super::partitions::Guard;
use super::state_topic::{StateRead, StateReader, progress_of};
use super::tasks::{DIRECTORY, HeldStates};
use crate::event::decode::Origin;
use crate::event::{DeadLetter, Decoder, Event};
use crate::metrics::Metrics;
use crate::throttle::Throttle;

/// Records per chunk handed to the pipeline.
const CHUNK: usize = 1024;
/// Chunks waiting for the pipeline before polling pauses.
pub const CHANNEL_CHUNKS: usize = 64;

/// One consumed record, decoded.
#[derive(Debug)]
pub struct Record {
    pub topic: usize,
    pub partition: i32,
    pub offset: i64,
    /// The partition's stream id in the pipeline.
    pub stream: u32,
    pub decoded: Result<Event, DeadLetter>,
    /// The record's identity key, for the dead-letter record.
    pub key: Option<Vec<u8>>,
}

/// What the poll thread sends.
#[derive(Debug)]
pub enum Input {
    Records(Vec<Record>),
    /// Newly assigned partitions (streams) that have records to deliver, with the task
    /// states read from the state topic for them; a `whole` assignment is the group's
    /// (the directory's streams are assigned on their own).
    Assigned {
        streams: Vec<u32>,
        restored: Vec<TaskCheckpoint>,
        whole: bool,
    },
    /// Partitions no longer assigned: their tasks' state is to be written before `done`
    /// is answered (the rebalance waits for it, so the next owner reads that state).
    Revoked {
        streams: Vec<u32>,
        done: Option<std::sync::mpsc::SyncSender<()>>,
    },
    /// The state of an assigned task could not be restored.
    RestoreFailed(String),
    /// Progress markers: task *p* (wherever it runs) has read up to an event time.
    Progress(Vec<(i32, crate::event::Micros)>),
    /// A partition is quiet: read to its end, as the broker confirmed after it received
    /// nothing for `time.partition_idle`; it no longer holds the watermark.
    CaughtUp(u32),
    /// A quiet partition holds the watermark again (sent before any record that could
    /// move it).
    Behind(u32),
}

/// How long a revocation waits for the pipeline task to write the revoked tasks' state.
const REVOKE_WAIT: Duration = Duration::from_secs(60);

/// Consumer callbacks: on an assignment, restore each task's state (from the state topic,
/// unless the one held here is as new) and seek its partitions to that state's offsets;
/// on a revocation, wait for the pipeline task to write the revoked tasks' state; keep
/// health up to date, and pass librdkafka's messages on rate-limited.
pub struct Context {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub log: ClientLog,
    pub topics: TopicNames,
    /// Where the pipeline task is told of assignments and revocations (taken when polling
    /// stops, so the pipeline task sees the input end).
    pub tx: std::sync::Mutex<Option<mpsc::Sender<Input>>>,
    /// Reads the state topic.
    pub state: StateReader,
    /// The task states the pipeline task holds.
    pub held: HeldStates,
    /// Next offset per (topic, partition) of the tasks assigned, as restored.
    pub start_offsets: std::sync::Mutex<BTreeMap<(String, i32), i64>>,
    /// The partitions assigned by the latest rebalance, until the poll loop takes them.
    pub assignment: std::sync::Mutex<Option<Vec<(String, i32)>>>,
    /// Streams revoked since the poll loop last looked: records of theirs it holds are
    /// dropped (the next owner reads them again from the state's offsets).
    pub revoked: std::sync::Mutex<Vec<u32>>,
    /// Whether the pipeline task still takes assignments (false once polling stopped).
    pub handoff: std::sync::atomic::AtomicBool,
}

/// Where an assigned task's state comes from.
enum Restore {
    /// The state held here is the latest: continue it from its offsets.
    Held(Offsets),
    /// Read from the state topic.
    Read(Box<TaskCheckpoint>),
    /// No state anywhere: from the beginning of the input.
    Fresh,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }

    fn stats(&self, _: Statistics) {}
}

impl Context {
    fn set_assignment(&self, partitions: Vec<(String, i32)>) {
        if let Ok(mut a) = self.assignment.lock() {
            *a = Some(partitions);
        }
    }

    fn send(&self, input: Input) -> bool {
        if !self.handoff.load(Ordering::Relaxed) {
            return false;
        }
        let tx = self.tx.lock().ok().and_then(|tx| tx.clone());
        tx.is_some_and(|tx| tx.blocking_send(input).is_ok())
    }

    /// The state task `partition` continues from.
    fn restore(&self, partition: i32) -> Result<Restore, String> {
        let held = self
            .held
            .lock()
            .ok()
            .and_then(|h| h.get(&partition).cloned());
        let read = self
            .state
            .read(partition, held.as_ref().map(|h| h.generation))
            .map_err(|e| e.to_string())?;
        Ok(match (read, held) {
            (StateRead::Same, Some(held)) => Restore::Held(held.offsets),
            (StateRead::Latest(head, bytes), _) => {
                let origin = std::path::PathBuf::from(format!(
                    "{}/{partition} (generation {})",
                    self.state.topic(),
                    head.generation
                ));
                let task = checkpoint::decode_task(&origin, &bytes).map_err(|e| e.to_string())?;
                if task.partition != partition {
                    return Err(format!(
                        "{}: holds the state of partition {}",
                        origin.display(),
                        task.partition
                    ));
                }
                Restore::Read(Box::new(task))
            }
            (StateRead::Nothing, Some(held)) => {
                tracing::warn!(
                    partition,
                    topic = %self.state.topic(),
                    "the state topic has no state of this task: continuing from the local \
                     checkpoint"
                );
                Restore::Held(held.offsets)
            }
            (StateRead::Nothing | StateRead::Same, None) => Restore::Fresh,
        })
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let started = Instant::now();
        let keys: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let partitions: std::collections::BTreeSet<i32> = keys
            .iter()
            .filter(|(t, _)| self.topics.input_index(t).is_some())
            .map(|(_, p)| *p)
            .collect();
        let mut restored = Vec::new();
        let mut offsets = Offsets::new();
        let mut from = Vec::new();
        for &partition in &partitions {
            let restore = if self.handoff.load(Ordering::Relaxed) {
                self.restore(partition)
            } else {
                Ok(Restore::Fresh)
            };
            let (kept, source) = match restore {
                Ok(Restore::Held(kept)) => (kept, "held"),
                Ok(Restore::Read(task)) => {
                    let kept = task.offsets.clone();
                    restored.push(*task);
                    (kept, "state topic")
                }
                Ok(Restore::Fresh) => (Offsets::new(), "none"),
                Err(error) => {
                    tracing::error!(partition, %error, "restoring a task's state");
                    self.send(Input::RestoreFailed(format!(
                        "partition {partition}: {error}"
                    )));
                    return;
                }
            };
            from.push(format!("{partition}:{source}"));
            for topic in &self.topics.inputs {
                let key = (topic.clone(), partition);
                // A partition the state never read starts at its beginning.
                let next = kept.get(&key).copied();
                let offset = next.map_or(Offset::Beginning, Offset::Offset);
                let _ = tpl.set_partition_offset(topic, partition, offset);
                if let Some(next) = next {
                    offsets.insert(key, next);
                }
            }
        }
        if let Ok(mut start) = self.start_offsets.lock() {
            *start = offsets;
        }
        let took = started.elapsed();
        if !partitions.is_empty() {
            self.metrics.task_restore.observe(took.as_secs_f64());
        }
        self.metrics
            .rebalances
            .with_label_values(&["assigned"])
            .inc();
        let list: Vec<String> = tpl
            .elements()
            .iter()
            .map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset()))
            .collect();
        tracing::info!(
            partitions = %list.join(" "),
            states = %from.join(" "),
            restore_millis = took.as_millis() as u64,
            "partitions assigned"
        );
        match consumer.assign(tpl) {
            Ok(()) => {
                // Refused input (see `partitions`) is assigned but not read.
                if self.health.is_refused()
                    && let Err(error) = consumer.pause(tpl)
                {
                    tracing::error!(%error, "pausing the input partitions");
                }
                self.health.set_assigned(tpl.count());
                self.set_assignment(keys);
                let streams = tpl
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        let topic = self.topics.input_index(e.topic())?;
                        Some(stream_of(topic, e.partition()))
                    })
                    .collect();
                self.send(Input::Assigned {
                    streams,
                    restored,
                    whole: true,
                });
            }
            Err(error) => tracing::error!(%error, "assigning partitions"),
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let streams: Vec<u32> = tpl
            .elements()
            .iter()
            .filter_map(|e| {
                let topic = self.topics.input_index(e.topic())?;
                Some(stream_of(topic, e.partition()))
            })
            .collect();
        tracing::info!(partitions = tpl.count(), "partitions revoked");
        self.metrics
            .rebalances
            .with_label_values(&["revoked"])
            .inc();
        if let Ok(mut revoked) = self.revoked.lock() {
            revoked.extend(&streams);
        }
        // The tasks' state is written before the group hears that they are free.
        let (done, written) = std::sync::mpsc::sync_channel(1);
        let started = Instant::now();
        if self.send(Input::Revoked {
            streams,
            done: Some(done),
        }) {
            match written.recv_timeout(REVOKE_WAIT) {
                Ok(()) => tracing::info!(
                    millis = started.elapsed().as_millis() as u64,
                    "revoked tasks' state written"
                ),
                Err(_) => tracing::warn!(
                    secs = REVOKE_WAIT.as_secs(),
                    "the revoked tasks' state was not written in time: their next owner \
                     continues from the state before (and sends some alerts again)"
                ),
            }
        }
        self.health.set_assigned(0);
        self.set_assignment(Vec::new());
        if let Err(error) = consumer.unassign() {
            tracing::error!(%error, "unassigning partitions");
        }
    }
}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                tracing::error!(error = ?other, "rebalance error");
                let _ = consumer.unassign();
                self.health.set_assigned(0);
                self.set_assignment(Vec::new());
            }
        }
    }

    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {}
}

/// The directory consumer's callbacks: librdkafka's messages, rate-limited.
pub struct DirectoryContext {
    pub log: ClientLog,
}

impl ClientContext for DirectoryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ConsumerContext for DirectoryContext {}

/// The consumer of the directory streams: no group, nothing committed; it is assigned
/// every partition of the identity topic once the partition counts are known.
pub fn directory_consumer(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    health: Arc<Health>,
) -> KafkaResult<BaseConsumer<DirectoryContext>> {
    let mut config = client_config(brokers, &BTreeMap::new());
    config
        .set("group.id", "nhi-drift-directory")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (key, value) in properties {
        config.set(key, value);
    }
    config.create_with_context(DirectoryContext {
        log: ClientLog::new(health),
    })
}

/// What the poll thread polls: the group's consumer and the directory's.
pub struct Consumers {
    pub group: Arc<BaseConsumer<Context>>,
    pub directory: BaseConsumer<DirectoryContext>,
}

/// The poll thread.
pub struct Source {
    thread: Option<JoinHandle<()>>,
}

impl Source {
    /// Starts polling the group's consumer (already subscribed) and the directory on its own
    /// thread.
    pub fn start(
        consumers: Consumers,
        topics: TopicNames,
        decoder: Decoder,
        partition_idle: Duration,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
        tx: mpsc::Sender<Input>,
    ) -> Self {
        let thread = std::thread::Builder::new()
            .name("nhi-drift-poll".into())
            .spawn(move || {
                poll_loop(
                    &consumers,
                    &topics,
                    &decoder,
                    partition_idle,
                    &health,
                    &metrics,
                    &tx,
                );
                // Revocations from now on (shutdown) wait for nobody: the pipeline task
                // writes every task's state as it stops.
                let context = consumers.group.context();
                context.handoff.store(false, Ordering::Relaxed);
                if let Ok(mut tx) = context.tx.lock() {
                    tx.take();
                }
            })
            .expect("spawning the poll thread");
        Source {
            thread: Some(thread),
        }
    }

    /// Waits for the poll thread to end (after `health.stopping` is set or the channel
    /// closes).
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the poll thread knows of one assigned partition.
#[derive(Debug)]
struct Partition {
    topic: usize,
    partition: i32,
    /// Next offset to read, once known (a record was read, or a checkpoint says).
    next: Option<i64>,
    /// When the last record arrived (or the partition was assigned).
    last_record: Instant,
    caught_up: bool,
}

impl Partition {
    fn new(topic: usize, partition: i32, next: Option<i64>) -> Self {
        Partition {
            topic,
            partition,
            next,
            last_record: Instant::now(),
            caught_up: false,
        }
    }

    /// Records left to read, given the partition's `low` and `high` offsets; `None` while
    /// the end, or where reading starts, is unknown.
    fn unread(&self, low: Option<i64>, high: Option<i64>) -> Option<i64> {
        Some(high? - self.next.or(low)?)
    }
}

/// How often partitions that are behind are checked for having caught up.
const CATCH_UP_CHECK: Duration = Duration::from_millis(100);

/// The directory consumer's partitions, assigned from the beginning; their streams.
fn assign_directory(
    directory: &BaseConsumer<DirectoryContext>,
    topics: &TopicNames,
    partitions: usize,
) -> KafkaResult<Vec<u32>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(&topics.inputs[0], p, Offset::Beginning)?;
        // The tasks' progress markers, wherever they run.
        tpl.add_partition_offset(&topics.progress, p, Offset::Beginning)?;
    }
    directory.assign(&tpl)?;
    Ok((0..partitions as i32)
        .map(|p| stream_of(DIRECTORY, p))
        .collect())
}

/// One polled message, decoded into a record of input `topic` (or [`DIRECTORY`]).
fn record_of<M: Message>(msg: &M, topic: usize, decoder: &Decoder) -> Record {
    let (partition, offset) = (msg.partition(), msg.offset());
    let bytes = msg.payload().unwrap_or_default();
    let decoded = decoder.decode(bytes).map_err(|reject| {
        let origin = Origin {
            topic: msg.topic().to_owned(),
            partition: Some(partition),
            offset,
        };
        DeadLetter::new(reject, origin, bytes)
    });
    Record {
        topic,
        partition,
        offset,
        stream: stream_of(topic, partition),
        decoded,
        key: msg.key().map(<[u8]>::to_vec),
    }
}

fn poll_loop(
    consumers: &Consumers,
    topics: &TopicNames,
    decoder: &Decoder,
    partition_idle: Duration,
    health: &Health,
    metrics: &Metrics,
    tx: &mpsc::Sender<Input>,
) {
    let (consumer, directory) = (&*consumers.group, &consumers.directory);
    let consumed: Vec<_> = topics
        .inputs
        .iter()
        .map(|t| metrics.events_consumed.with_label_values(&[t]))
        .collect();
    // The directory streams read the identity topic: index DIRECTORY names it too.
    let topic_names: Vec<CString> = topics
        .inputs
        .iter()
        .chain(std::iter::once(&topics.inputs[0]))
        .map(|t| CString::new(t.as_str()).unwrap_or_default())
        .collect();
    let topic_name = |topic: usize| topics.inputs[topic % DIRECTORY].as_str();
    let mut guard = Guard::new(&topics.inputs);
    if !guard.wait_until_equal(consumer, health) {
        return;
    }
    let mut partitions: BTreeMap<u32, Partition> = BTreeMap::new();
    let count = match super::partitions::fetch(consumer, &topics.inputs[..1]) {
        Ok(counts) => counts.first().and_then(|c| c.1).unwrap_or(0),
        Err(error) => {
            tracing::error!(%error, "reading the identity topic's partitions");
            0
        }
    };
    match assign_directory(directory, topics, count) {
        Ok(streams) => {
            for &stream in &streams {
                let partition = super::kafka::partition_of(stream).1;
                partitions.insert(stream, Partition::new(DIRECTORY, partition, None));
            }
            let assigned = Input::Assigned {
                streams,
                restored: Vec::new(),
                whole: false,
            };
            if tx.blocking_send(assigned).is_err() {
                return;
            }
        }
        Err(error) => tracing::error!(%error, "assigning the directory partitions"),
    }
    // Whether the directory consumer delivered a full chunk last time (more waits).
    let mut directory_busy = false;
    // The largest progress marker read.
    let mut max_marker: Option<crate::event::Micros> = None;
    let mut last_check = Instant::now();
    let mut consume_errors = Throttle::new(CLIENT_LOG_PERIOD);
    while !health.stopping.load(Ordering::Relaxed) {
        let mut chunk = Vec::new();
        let mut timeout = if directory_busy {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        let mut failed = false;
        // Quiet partitions that delivered again in this chunk.
        let mut woken: Vec<u32> = Vec::new();
        while chunk.len() < CHUNK {
            let polled = consumer.poll(timeout);
            // A revocation (served inside poll) hands the revoked tasks' records on to
            // their next owner: the ones held here were never pushed.
            let revoked = consumer
                .context()
                .revoked
                .lock()
                .map(|mut r| std::mem::take(&mut *r))
                .unwrap_or_default();
            if !revoked.is_empty() {
                chunk.retain(|r: &Record| r.topic == DIRECTORY || !revoked.contains(&r.stream));
            }
            match polled {
                None => break,
                Some(Ok(msg)) => {
                    timeout = Duration::ZERO;
                    let Some(topic) = topics.input_index(msg.topic()) else {
                        continue;
                    };
                    let record = record_of(&msg, topic, decoder);
                    let p = partitions
                        .entry(record.stream)
                        .or_insert_with(|| Partition::new(topic, record.partition, None));
                    p.next = Some(record.offset + 1);
                    p.last_record = Instant::now();
                    if p.caught_up {
                        woken.push(record.stream);
                    }
                    p.caught_up = false;
                    consumed[topic].inc();
                    chunk.push(record);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    client_log::report(health, &error, &error.to_string());
                    if let Some(repeats) = consume_errors.hit(Instant::now()) {
                        tracing::warn!(%error, repeats, "consuming");
                    }
                    failed = true;
                    break;
                }
            }
        }
        // The directory streams, as far as they have records now.
        let mut read = 0;
        let mut markers = Vec::new();
        while !failed && read < CHUNK {
            match directory.poll(Duration::ZERO) {
                None => break,
                Some(Ok(msg)) => {
                    read += 1;
                    if msg.topic() == topics.progress {
                        if let Some(time) = msg.payload().and_then(progress_of) {
                            markers.push((msg.partition(), time));
                        }
                        continue;
                    }
                    let record = record_of(&msg, DIRECTORY, decoder);
                    if let Some(p) = partitions.get_mut(&record.stream) {
                        p.next = Some(record.offset + 1);
                        p.last_record = Instant::now();
                        if p.caught_up {
                            woken.push(record.stream);
                        }
                        p.caught_up = false;
                    }
                    chunk.push(record);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    client_log::report(health, &error, &error.to_string());
                    if let Some(repeats) = consume_errors.hit(Instant::now()) {
                        tracing::warn!(%error, repeats, "reading the directory");
                    }
                    break;
                }
            }
        }
        directory_busy = read == CHUNK;
        // A rebalance (served inside poll) changed the assignment.
        let assignment = consumer
            .context()
            .assignment
            .lock()
            .ok()
            .and_then(|mut a| a.take());
        if let Some(assigned) = assignment {
            // The tasks heard of it from the rebalance callback; this keeps what the poll
            // loop knows of each partition.
            let start = consumer
                .context()
                .start_offsets
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default();
            let mut now: BTreeMap<u32, Partition> = BTreeMap::new();
            let directory_streams: Vec<u32> = partitions
                .iter()
                .filter(|(_, p)| p.topic == DIRECTORY)
                .map(|(s, _)| *s)
                .collect();
            for stream in directory_streams {
                if let Some(p) = partitions.remove(&stream) {
                    now.insert(stream, p);
                }
            }
            for (name, partition) in assigned {
                let Some(topic) = topics.input_index(&name) else {
                    continue;
                };
                let stream = stream_of(topic, partition);
                let next = start.get(&(name, partition)).copied();
                now.insert(stream, Partition::new(topic, partition, next));
            }
            partitions = now;
        }
        // Another task (on this instance or another) read further: a burst may have
        // begun that this instance's quiet partitions have not delivered yet, so they
        // hold the watermark again, as for a partition that woke here.
        let moved = markers.iter().map(|(_, t)| *t).max();
        let progressed = moved.is_some_and(|t| max_marker.is_none_or(|m| t > m));
        if progressed {
            max_marker = moved;
        }
        if !woken.is_empty() || progressed {
            // A partition that had gone quiet delivers again: a burst after a quiet period
            // reaches the partitions one fetch at a time, so every quiet partition holds the
            // watermark again, before these records can move it, until it is quiet again
            // (nothing received for `partition_idle`, then confirmed by the broker). That
            // includes the partitions that woke in this chunk: otherwise the first record
            // of one would move the watermark past the others' records in the same chunk.
            for (stream, p) in partitions.iter_mut() {
                if p.caught_up || woken.contains(stream) {
                    p.caught_up = false;
                    p.last_record = Instant::now();
                    if tx.blocking_send(Input::Behind(*stream)).is_err() {
                        return;
                    }
                }
            }
        }
        if !markers.is_empty() && tx.blocking_send(Input::Progress(markers)).is_err() {
            return;
        }
        if !chunk.is_empty() {
            health.set_idle(false);
            if tx.blocking_send(Input::Records(chunk)).is_err() {
                return;
            }
        } else if !failed {
            health.set_idle(true);
        }
        guard.refresh(consumer, health);
        if last_check.elapsed() >= CATCH_UP_CHECK {
            last_check = Instant::now();
            let mut lag = [0i64; 3];
            for p in partitions.values().filter(|p| p.topic != DIRECTORY) {
                let (low, high) = cached_watermarks(consumer, &topic_names[p.topic], p.partition);
                if let Some(unread) = p.unread(low, high) {
                    lag[p.topic] += unread.max(0);
                }
            }
            for (topic, lag) in topics.inputs.iter().zip(lag) {
                metrics.consumer_lag.with_label_values(&[topic]).set(lag);
            }
            // Partitions read to the end (empty ones included) that received nothing for
            // `partition_idle` become quiet and stop holding the watermark. librdkafka's
            // cached end offset lags behind the broker (it is only as fresh as the last
            // fetch, and goes stale while fetches fail), so the broker is asked first; if
            // it cannot answer, the partition holds and the rest wait for the next round.
            for (stream, p) in partitions
                .iter_mut()
                .filter(|(_, p)| !p.caught_up && p.last_record.elapsed() >= partition_idle)
            {
                let (low, high) = if p.topic == DIRECTORY {
                    cached_watermarks(directory, &topic_names[p.topic], p.partition)
                } else {
                    cached_watermarks(consumer, &topic_names[p.topic], p.partition)
                };
                let Some(high) = high else { continue };
                let at_end = |low: Option<i64>, high: i64| {
                    p.unread(low, Some(high)).is_some_and(|n| n <= 0) || low == Some(high)
                };
                if !at_end(low, high) {
                    continue;
                }
                let asked = consumer.fetch_watermarks(
                    topic_name(p.topic),
                    p.partition,
                    Duration::from_secs(2),
                );
                match asked {
                    Ok((low, high)) if at_end(Some(low), high) => {
                        p.caught_up = true;
                        tracing::debug!(stream, next = ?p.next, high, "partition quiet");
                        if tx.blocking_send(Input::CaughtUp(*stream)).is_err() {
                            return;
                        }
                    }
                    // More to read: wait another idle period.
                    Ok(_) => p.last_record = Instant::now(),
                    Err(_) => {
                        p.last_record = Instant::now();
                        break;
                    }
                }
            }
        }
    }
}

/// The partition's low and high watermarks as librdkafka last learned them (no request
/// is made); `None` while unknown.
fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &CString,
    partition: i32,
) -> (Option<i64>, Option<i64>) {
    let (mut low, mut high) = (0i64, 0i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime; the topic is a
    // NUL-terminated string; the out-pointers point to live locals.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        return (None, None);
    }
    ((low >= 0).then_some(low), (high >= 0).then_some(high))
}

/// Commits `offsets` (next offset per topic and partition) for the consumer group.
pub fn commit(
    consumer: &BaseConsumer<Context>,
    offsets: &BTreeMap<(String, i32), i64>,
) -> KafkaResult<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    consumer.commit(&offset_list(offsets)?, rdkafka::consumer::CommitMode::Async)
}

/// `offsets` (the next offset of each partition) as librdkafka takes them.
pub fn offset_list(offsets: &BTreeMap<(String, i32), i64>) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    Ok(tpl)
}

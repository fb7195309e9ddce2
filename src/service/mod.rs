//! `nhi-drift run`: the pipeline between Kafka topics.
//!
//! A poll thread ([`source`]) consumes the three input topics and decodes each record
//! once; the pipeline task pushes each record through the pipeline of its partition's
//! task ([`tasks`]), sends alerts and dead letters through the idempotent producer
//! ([`sink`]), and every `checkpoint.interval` — and on shutdown, and before partitions
//! are revoked — waits for the broker to acknowledge them, writes the state of every task
//! that changed, with the next offset of its partitions, to the state topic
//! ([`state_topic`]) and the local checkpoint ([`checkpoint`]), and only then commits
//! those offsets. Whichever instance is assigned a task next restores that state and
//! seeks the task's partitions to its offsets, so the records after it are read again and
//! produce the same alert ids (at-least-once in, idempotent out). With
//! `kafka.exactly_once` the alerts, dead letters and states of one checkpoint interval are
//! one Kafka transaction, committed with the offsets ([`sink`]). Input topics whose
//! partition counts differ are not read at all ([`partitions`]).

pub mod access;
pub mod adapted;
pub mod api;
pub mod checkpoint;
pub mod client_log;
pub mod health;
pub mod http;
pub mod kafka;
pub mod partitions;
pub mod sink;
pub mod source;
pub mod state_topic;
pub mod tasks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use tokio::sync::mpsc;

use crate::alert::format::AlertFormat;
use crate::ask::answer::{Answerer, Query};
use crate::ask::decide::Decider;
use crate::config::Config;
use crate::engine::rule::Rule;
use crate::event::Decoder;
use crate::metrics::Metrics;
use crate::pipeline::{LateTally, Options, PipelineError};
use crate::throttle::Throttle;
use checkpoint::CheckpointError;
use client_log::ClientLog;
use health::Health;
use kafka::{EMBEDDED, EmbeddedBroker, TopicNames, client_config, producer_config};
use sink::Sink;
use source::{Context, Input, Record, Source};
use tasks::{DIRECTORY, TaskError, Tasks};

/// Questions from `/v1` waiting for the pipeline task.
const QUERY_CHANNEL: usize = 64;

/// At most one warning about late events per this period (the counts accumulate).
const LATE_LOG_PERIOD: Duration = Duration::from_secs(10);

/// Longest wait between a window closing and its alerts being sent, when input keeps
/// arriving (evaluations are batched while records queue up).
const MAX_FLUSH_DELAY: Duration = Duration::from_millis(250);

/// Shortest wait between two flushes when the queue merely ran empty for a moment: each
/// flush runs every rule once, so flushing after every chunk of a steady stream would
/// spend the pipeline on query overhead.
const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(25);

/// What stops the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: {source}")]
    Task { path: String, source: TaskError },
    #[error("http: cannot listen on {listen}: {source}")]
    Http {
        listen: String,
        source: std::io::Error,
    },
    #[error("checkpoint state: {0}")]
    State(#[from] arrow::error::ArrowError),
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Transaction(#[from] sink::CommitError),
    #[error(
        "{topic}: cannot restore a task's state: {error} (the partition's records were left \
         unread; see README, several instances)"
    )]
    Restore { topic: String, error: String },
}

/// Runs the service until `shutdown` completes: it then stops consuming, finishes the
/// batch, waits for the broker's acknowledgements, checkpoints and commits (the binary
/// passes the first SIGINT or SIGTERM; tests pass their own).
pub async fn run(
    config: &Config,
    rules: Vec<Rule>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let health = Arc::new(Health::default());
    let stop = Arc::new(tokio::sync::Notify::new());
    {
        let (stop, stopping) = (Arc::clone(&stop), health.stopping_flag());
        tokio::spawn(async move {
            shutdown.await;
            stopping.store(true, Ordering::Relaxed);
            stop.notify_one();
        });
    }
    // The HTTP endpoint ends with this function.
    let (_http_running, http_done) = tokio::sync::oneshot::channel::<()>();
    let topics = TopicNames::from_config(config);

    let mut created = topics.all();
    created.extend(config.sources.iter().map(|s| s.topic.as_str()));
    let embedded = (config.kafka.brokers == EMBEDDED)
        .then(|| EmbeddedBroker::start(&created, config.kafka.embedded_partitions))
        .transpose()?;
    let brokers = match &embedded {
        Some(broker) => {
            let addr = broker.bootstrap_servers();
            tracing::info!(
                bootstrap = %addr,
                "embedded Kafka-protocol broker started; publish events with: \
                 nhi-drift produce --brokers {addr} examples/scenario.jsonl"
            );
            addr
        }
        None => config.kafka.brokers.clone(),
    };

    let metrics = Arc::new(Metrics::new(&topics.inputs, &rules));
    let rendered = Arc::clone(&metrics);
    let unknown = config.api.decide.unknown_rules(&rules);
    if !unknown.is_empty() {
        return Err(ServiceError::Config(format!(
            "api.decide.rules names no loaded rule: {}",
            unknown.join(", ")
        )));
    }
    let decider = Arc::new(
        Decider::new(&rules, &config.rule_params, config.api.decide.clone())
            .await
            .map_err(PipelineError::from)?,
    );
    let (queries, asked) = mpsc::channel::<Query>(QUERY_CHANNEL);
    let api = {
        let (token, api) = (config.api.token.clone(), config.api.clone());
        let rule_ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
        Box::new(move |addr: std::net::SocketAddr| {
            let access = access::Access::new(addr, &token);
            if !access.is_open() && !access.has_token() {
                tracing::warn!(
                    %addr,
                    "http.listen is not a loopback address and api.token is empty: /v1 refuses \
                     every request (set NHI_DRIFT_API__TOKEN); /metrics and health stay open"
                );
            }
            Some(api::Api {
                queries,
                decider,
                access,
                max_body: api.max_body_bytes,
                max_page: api.max_page.max(1),
                rule_ids,
            })
        })
    };
    let addr = http::serve(
        &config.http.listen,
        Arc::clone(&health),
        Arc::new(move || rendered.render()),
        api,
        async move {
            let _ = http_done.await;
        },
    )
    .await
    .map_err(|source| ServiceError::Http {
        listen: config.http.listen.clone(),
        source,
    })?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz and /v1");

    let dir = config.checkpoint.dir.clone();
    // The local checkpoint is a cache of the state topic: a task whose state there has
    // the same generation continues from it without reading the topic. The embedded
    // broker starts empty every time: a checkpoint of an earlier one refers to records
    // that no longer exist, so it is not used (and is replaced).
    let saved = checkpoint::load(&dir)?;
    let saved = if embedded.is_some() && saved.is_some() {
        tracing::info!(
            path = %checkpoint::path_in(&dir).display(),
            "embedded broker: not restoring the checkpoint of an earlier run, whose records are gone"
        );
        None
    } else {
        saved
    };
    let saved = match saved {
        Some(saved) => {
            tracing::info!(
                path = %checkpoint::path_in(&dir).display(),
                tasks = saved.tasks.len(),
                "local checkpoint read; each task continues from it if the state topic has \
                 nothing newer"
            );
            saved.tasks
        }
        None => {
            tracing::info!(dir = %dir.display(), "no local checkpoint");
            Vec::new()
        }
    };
    let tasks = Tasks::new(
        Options::from_config(config),
        rules,
        config.rule_params.clone(),
        saved,
    );
    let answerer = Answerer::new(config.api.findings_kept, Decoder::from_config(config));
    health.set_restored();

    let base = producer_config(&brokers, &config.kafka.properties);
    if embedded.is_none() {
        // Off the start-up path: a broker that is away must not delay /readyz saying so.
        let (brokers, properties, topics, health) = (
            brokers.clone(),
            config.kafka.properties.clone(),
            topics.clone(),
            Arc::clone(&health),
        );
        tokio::spawn(async move {
            // Checked again every 30 s until they fit; /readyz says why meanwhile.
            let mut logged = false;
            loop {
                let checked =
                    state_topic::ensure(&brokers, &properties, &topics, Arc::clone(&health)).await;
                match checked {
                    Ok(()) => {
                        health.set_state_topics(None);
                        return;
                    }
                    Err(error) => {
                        if !logged {
                            tracing::error!(
                                %error,
                                "the state topics do not fit the input topics: task state \
                                 cannot be written or restored until they do"
                            );
                            logged = true;
                        }
                        health.set_state_topics(Some(error));
                    }
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
    }
    let state_writer = Arc::new(state_topic::StateWriter::new(
        base.clone(),
        &topics,
        Arc::clone(&health),
    )?);
    let state_reader = state_topic::StateReader::new(
        client_config(&brokers, &config.kafka.properties),
        &topics.state,
        Arc::clone(&health),
    )?;
    let (tx, rx) = mpsc::channel(source::CHANNEL_CHUNKS);
    let mut consumer_config = client_config(&brokers, &BTreeMap::new());
    consumer_config
        // A restarted instance waits for its killed predecessor's session to expire
        // before partitions are assigned again: 10 s rather than librdkafka's 45 s.
        .set("session.timeout.ms", "10000")
        .set("group.id", &config.kafka.group_id)
        // Partition p of every input topic to the same member (the topics have the same
        // partition count), so a task is assigned whole.
        .set("partition.assignment.strategy", "range")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    // Explicit properties win over the defaults above.
    for (key, value) in &config.kafka.properties {
        consumer_config.set(key, value);
    }
    let consumer: BaseConsumer<Context> = consumer_config.create_with_context(Context {
        health: Arc::clone(&health),
        metrics: Arc::clone(&metrics),
        log: ClientLog::new(Arc::clone(&health)),
        topics: topics.clone(),
        tx: std::sync::Mutex::new(Some(tx.clone())),
        state: state_reader,
        held: tasks.held(),
        start_offsets: std::sync::Mutex::new(BTreeMap::new()),
        assignment: std::sync::Mutex::new(None),
        revoked: std::sync::Mutex::new(Vec::new()),
        handoff: std::sync::atomic::AtomicBool::new(true),
    })?;
    let inputs: Vec<&str> = topics.inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&inputs)?;
    let consumer = Arc::new(consumer);
    let sink = if config.kafka.exactly_once {
        let id = config.kafka.transactional_id();
        Sink::transactional(base, &id, Arc::clone(&health), Arc::clone(&metrics)).await?
    } else {
        Sink::new(base, Arc::clone(&health), Arc::clone(&metrics))?
    };
    let mut bridge = adapted::Bridge::start(
        config,
        &brokers,
        &topics,
        Arc::clone(&health),
        Arc::clone(&metrics),
    )?;

    let directory =
        source::directory_consumer(&brokers, &config.kafka.properties, Arc::clone(&health))?;
    let consumers = source::Consumers {
        group: Arc::clone(&consumer),
        directory,
    };
    let mut source = Source::start(
        consumers,
        topics.clone(),
        Decoder::from_config(config),
        Duration::from_micros(config.time.partition_idle.0 as u64),
        Arc::clone(&health),
        Arc::clone(&metrics),
        tx,
    );
    tracing::info!(group = %config.kafka.group_id, topics = %inputs.join(","), "consuming");

    let mut service = Service {
        tasks,
        sink,
        state: state_writer,
        consumer: Arc::clone(&consumer),
        format: config.alerts.format,
        alerts_topic: Arc::from(topics.alerts.as_str()),
        deadletter_topic: Arc::from(topics.deadletter.as_str()),
        input_topics: topics.inputs.clone(),
        dir,
        dirty: false,
        metrics,
        last_checkpoint: Instant::now(),
        late: BTreeMap::new(),
        late_log: Throttle::new(LATE_LOG_PERIOD),
        writing: None,
        answerer,
    };
    let result = service.main_loop(rx, asked, config, &health, &stop).await;
    health.stopping.store(true, Ordering::Relaxed);
    source.join();
    if let Some(bridge) = bridge.as_mut() {
        bridge.join();
    }
    if let Err(error) = &result {
        tracing::error!(%error, "stopping after an error; the last checkpoint stands");
        service.sink.abandon().await;
        return result;
    }
    service.checkpoint().await?;
    service.complete_checkpoint().await?;
    service.report_late(true);
    service.sink.flush(kafka::SHUTDOWN_TIMEOUT);
    service.state.flush(kafka::SHUTDOWN_TIMEOUT);
    consumer.unsubscribe();
    tracing::info!("stopped");
    Ok(())
}

/// The pipeline task's state.
struct Service {
    /// One pipeline per input partition number, with its offsets ([`tasks`]).
    tasks: Tasks,
    sink: Sink,
    /// Writes each task's state to the state topic.
    state: Arc<state_topic::StateWriter>,
    consumer: Arc<BaseConsumer<Context>>,
    format: AlertFormat,
    alerts_topic: Arc<str>,
    deadletter_topic: Arc<str>,
    input_topics: [String; 3],
    dir: std::path::PathBuf,
    /// Whether anything changed since the last checkpoint.
    dirty: bool,
    metrics: Arc<Metrics>,
    last_checkpoint: Instant,
    /// Late events per input stream not yet logged.
    late: BTreeMap<u32, LateTally>,
    late_log: Throttle,
    /// The checkpoint being written, if any.
    writing: Option<Writing>,
    /// What `/v1` asks is answered from.
    answerer: Answerer,
}

/// A checkpoint on its way to the state topic and disk.
struct Writing {
    write: tokio::task::JoinHandle<Result<(u64, u64), WriteFailure>>,
    /// The task states it writes to the state topic.
    taken: Vec<Taken>,
    /// The offsets it holds, committed once it is written.
    offsets: BTreeMap<(String, i32), i64>,
    started: Instant,
    /// How long the pipeline task spent taking it.
    paused: Duration,
}

/// One task's state taken for the state topic.
struct Taken {
    partition: i32,
    generation: u64,
    offsets: checkpoint::Offsets,
    bytes: Arc<Vec<u8>>,
}

/// Why a checkpoint was not written.
enum WriteFailure {
    /// The state topic did not take a state (the broker is away, say): retried.
    State(state_topic::StateTopicError),
    /// The local file could not be written: the service stops, as it cannot keep its
    /// promise to restart from it.
    Local(CheckpointError),
}

impl Service {
    async fn main_loop(
        &mut self,
        mut rx: mpsc::Receiver<Input>,
        mut asked: mpsc::Receiver<Query>,
        config: &Config,
        health: &Health,
        stop: &tokio::sync::Notify,
    ) -> Result<(), ServiceError> {
        let interval = Duration::from_micros(config.checkpoint.interval.0 as u64);
        let mut checkpoint_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_flush = Instant::now();
        let mut last_input = Instant::now();
        let idle_advance = config.time.idle_advance.0;
        let mut stopping = false;
        loop {
            tokio::select! {
                biased;
                _ = stop.notified(), if !stopping => {
                    stopping = true;
                }
                input = rx.recv() => match input {
                    // The poll thread ended: after a stop, everything it read was pushed.
                    None => return Ok(()),
                    Some(Input::Records(records)) => {
                        last_input = Instant::now();
                        for record in records {
                            self.push(record).await?;
                        }
                        self.tasks.follow();
                        // Between two chunks of a backlog, the questions waiting meanwhile.
                        self.answer_waiting(&mut asked);
                    }
                    Some(Input::Assigned { streams, restored, whole }) => {
                        let read: Vec<i32> = restored.iter().map(|t| t.partition).collect();
                        self.tasks
                            .assigned(&streams, restored, whole)
                            .await
                            .map_err(|source| ServiceError::Task {
                                path: self.state.topic().to_owned(),
                                source,
                            })?;
                        for (&partition, task) in self.tasks.iter() {
                            if read.contains(&partition) {
                                self.answerer.seed(&task.pipeline);
                            }
                        }
                        self.placed(&streams, true);
                        // After the revocation before it: tasks given back keep theirs.
                        self.forget_moved_findings();
                        self.metrics.tasks_assigned.set(self.tasks.len() as i64);
                    }
                    Some(Input::Revoked { streams, done }) => {
                        self.placed(&streams, false);
                        // The next owner continues from the state written now.
                        self.checkpoint().await?;
                        self.complete_checkpoint().await?;
                        self.tasks.revoked(&streams);
                        self.metrics.tasks_assigned.set(self.tasks.len() as i64);
                        if let Some(done) = done {
                            let _ = done.send(());
                        }
                    }
                    Some(Input::Progress(markers)) => {
                        self.tasks.progress(&markers);
                    }
                    Some(Input::RestoreFailed(error)) => {
                        return Err(ServiceError::Restore {
                            topic: self.state.topic().to_owned(),
                            error,
                        });
                    }
                    Some(Input::Behind(stream)) => {
                        self.tasks.set_caught_up(stream, false);
                    }
                    Some(Input::CaughtUp(stream)) => {
                        self.tasks.set_caught_up(stream, true);
                        self.tasks.follow();
                        tracing::debug!(stream, "partition caught up");
                        self.tasks.touch_all();
                        self.dirty = true;
                    }
                },
                // Answers are quick (see `ask::answer`); with input flowing they are
                // also taken between chunks, so neither waits for the other.
                Some(query) = asked.recv() => {
                    let pipelines: Vec<_> = self.tasks.pipelines().collect();
                    self.answerer.answer(&pipelines, query);
                    self.answer_waiting(&mut asked);
                }
                _ = checkpoint_tick.tick() => {
                    if self.dirty {
                        self.checkpoint().await?;
                    }
                }
                _ = tick.tick() => {
                    if self.writing.as_ref().is_some_and(|w| w.write.is_finished()) {
                        self.complete_checkpoint().await?;
                    }
                    self.report_late(false);
                    for (partition, time) in self.tasks.unpublished() {
                        self.state.publish_progress(partition, time);
                    }
                    for (_, task) in self.tasks.iter_mut() {
                        self.metrics.count(&task.pipeline.take_counts());
                    }
                    self.sync_metrics();
                    self.metrics
                        .checkpoint_age
                        .set(self.last_checkpoint.elapsed().as_secs_f64());
                    self.metrics.ready.set(i64::from(health.not_ready().is_none()));
                    if let Some(after) = idle_advance
                        && health.is_idle()
                        && self.tasks.input_caught_up()
                        && last_input.elapsed() >= after
                    {
                        let now = crate::event::decode::wall_clock();
                        for (_, task) in self.tasks.iter_mut() {
                            task.pipeline.advance_idle(now);
                        }
                        self.tasks.touch_all();
                        self.dirty = true;
                    }
                }
            }
            let since = last_flush.elapsed();
            let due = self.tasks.should_flush()
                || (self.tasks.has_pending_evaluations()
                    && ((rx.is_empty() && since >= MIN_FLUSH_INTERVAL)
                        || since >= MAX_FLUSH_DELAY));
            if due {
                self.flush().await?;
                last_flush = Instant::now();
            }
        }
    }

    /// Keeps the partitions this instance reads for `/v1`'s answers about identities it
    /// does not hold; on an assignment, reads the partition count from the broker (off
    /// the pipeline task: a metadata request may take a while).
    fn placed(&mut self, streams: &[u32], assigned: bool) {
        let placement = &mut self.answerer.placement;
        for &stream in streams {
            let (topic, partition) = kafka::partition_of(stream);
            // The directory is read from every partition by every instance: it places
            // nothing.
            if topic == DIRECTORY {
                continue;
            }
            if assigned {
                placement.assigned.insert(partition);
            } else {
                placement.assigned.remove(&partition);
            }
        }
        if assigned {
            let consumer = Arc::clone(&self.consumer);
            let topic = self.input_topics[0].clone();
            let count = Arc::clone(&placement.partitions);
            tokio::task::spawn_blocking(move || {
                if let Ok(counts) = partitions::fetch(&consumer, &[topic])
                    && let Some((_, Some(n))) = counts.first()
                {
                    count.store(*n, Ordering::Relaxed);
                }
            });
        }
    }

    /// Drops the `/v1` findings of identities on partitions this instance no longer
    /// reads: the instance assigned them answers for them now.
    fn forget_moved_findings(&mut self) {
        let placement = &self.answerer.placement;
        let n = placement.partitions.load(Ordering::Relaxed);
        if n == 0 {
            return;
        }
        let assigned = placement.assigned.clone();
        let dropped = self.answerer.findings.retain_identities(|identity| {
            assigned.contains(&(crate::ask::placement::partition_of(identity, n) as i32))
        });
        if dropped > 0 {
            tracing::debug!(
                dropped,
                "findings of tasks that moved away dropped from /v1"
            );
        }
    }

    /// Answers the questions already waiting, a bounded number at a time.
    fn answer_waiting(&mut self, asked: &mut mpsc::Receiver<Query>) {
        for _ in 0..QUERY_CHANNEL {
            match asked.try_recv() {
                Ok(query) => {
                    let pipelines: Vec<_> = self.tasks.pipelines().collect();
                    self.answerer.answer(&pipelines, query);
                }
                Err(_) => return,
            }
        }
    }

    /// Logs the late events gathered since the last warning: at once for the first, then
    /// at most once per [`LATE_LOG_PERIOD`]; `all` logs what is left (shutdown).
    fn report_late(&mut self, all: bool) {
        for (_, task) in self.tasks.iter_mut() {
            for (stream, tally) in task.pipeline.take_late() {
                let gathered = self.late.entry(stream).or_default();
                gathered.events += tally.events;
                gathered.max_behind = gathered.max_behind.max(tally.max_behind);
            }
        }
        if self.late.is_empty() || (!all && self.late_log.hit(Instant::now()).is_none()) {
            return;
        }
        for (stream, tally) in std::mem::take(&mut self.late) {
            let (topic, partition) = kafka::partition_of(stream);
            tracing::warn!(
                topic = %self.input_topics[topic % DIRECTORY],
                partition,
                events = tally.events,
                behind = %crate::event::time::format_approx(tally.max_behind),
                "late events: older than the watermark when read, they join no window \
                 (the watermark had passed their window; see README, event time)"
            );
        }
    }

    /// Pushes one record; a rejected one goes to the dead-letter topic.
    async fn push(&mut self, record: Record) -> Result<(), ServiceError> {
        let Record {
            topic,
            partition,
            offset,
            stream,
            decoded,
            key,
        } = record;
        if topic == DIRECTORY {
            // A directory record's own task dead-letters it if it is bad.
            if let Ok(event) = decoded {
                self.tasks.directory_event(stream, offset, event);
            }
            return Ok(());
        }
        let task = self
            .tasks
            .task(partition)
            .await
            .map_err(|source| ServiceError::Task {
                path: checkpoint::path_in(&self.dir).display().to_string(),
                source,
            })?;
        // A redelivered record (after a fetch error) never moves an offset back.
        let next = task
            .offsets
            .entry((self.input_topics[topic].clone(), partition))
            .or_insert(0);
        *next = (*next).max(offset + 1);
        task.dirty = true;
        self.dirty = true;
        match decoded {
            Ok(event) => task.pipeline.push_decoded(event, stream),
            Err(dead) => {
                task.pipeline.count_rejected(dead.reject.reason);
                let payload = serde_json::to_vec(&dead.to_json()).unwrap_or_default();
                let topic = Arc::clone(&self.deadletter_topic);
                self.sink.send(&topic, key.as_deref(), payload).await;
            }
        }
        Ok(())
    }

    /// Brings the gauges up to date from every task.
    fn sync_metrics(&self) {
        let pipelines: Vec<_> = self.tasks.pipelines().collect();
        self.metrics.sync(&pipelines);
    }

    /// Runs every task's waiting evaluations and queues their alerts.
    async fn flush(&mut self) -> Result<(), ServiceError> {
        let topic = Arc::clone(&self.alerts_topic);
        for (_, task) in self.tasks.iter_mut() {
            if !task.pipeline.has_pending_evaluations() {
                continue;
            }
            let started = Instant::now();
            task.dirty = true;
            let alerts = task.pipeline.flush().await?;
            let took = started.elapsed();
            let counts = task.pipeline.take_counts();
            self.metrics.count(&counts);
            if !counts.rule_time.is_empty() {
                self.metrics.evaluation(took, &counts.rule_time);
            }
            self.answerer.record(&task.pipeline, &alerts);
            for alert in alerts {
                self.metrics.alert(&alert);
                let payload = serde_json::to_vec(&self.format.render(&alert)).unwrap_or_default();
                self.sink
                    .send(&topic, Some(alert.identity.as_bytes()), payload)
                    .await;
            }
        }
        Ok(())
    }

    /// Flush, wait for the broker to acknowledge everything sent, and take the state of
    /// every task changed since its last one; those states go to the state topic, then all
    /// tasks' states to the local checkpoint file, while the pipeline goes on; the offsets
    /// are committed once both are written ([`Service::complete_checkpoint`]). One
    /// checkpoint is written at a time.
    async fn checkpoint(&mut self) -> Result<(), ServiceError> {
        self.complete_checkpoint().await?;
        let started = Instant::now();
        self.flush().await?;
        self.sink.settle().await;
        let offsets = self.tasks.offsets();
        let mut taken: Vec<Taken> = Vec::new();
        let mut files = Vec::with_capacity(self.tasks.len());
        for (&partition, task) in self.tasks.iter_mut() {
            let bytes = match (&task.encoded, task.dirty) {
                (Some(bytes), false) => Arc::clone(bytes),
                _ => {
                    // Encoded from a borrowed view, as the next generation.
                    let generation = task.generation + 1;
                    let view = checkpoint::TaskView {
                        partition,
                        generation,
                        offsets: task.offsets.iter().collect(),
                        directory: task.directory.iter().collect(),
                        pipeline: task.pipeline.state()?,
                    };
                    let bytes = Arc::new(checkpoint::encode_task(&view)?);
                    task.dirty = false;
                    task.encoded = Some(Arc::clone(&bytes));
                    taken.push(Taken {
                        partition,
                        generation,
                        offsets: task.offsets.clone(),
                        bytes: Arc::clone(&bytes),
                    });
                    bytes
                }
            };
            files.push(bytes);
        }
        let file = {
            let parts: Vec<&[u8]> = files.iter().map(|b| b.as_slice()).collect();
            checkpoint::file_of(&parts)
        };
        let write = if self.sink.is_transactional() {
            // The states go in the open transaction with the alerts and dead letters
            // before them and the offsets, committed together; the local file follows.
            let topic: Arc<str> = Arc::from(self.state.topic());
            let mut state_bytes = 0u64;
            for t in &taken {
                state_bytes += t.bytes.len() as u64;
                for (key, value) in state_topic::records(t.partition, t.generation, &t.bytes) {
                    self.sink
                        .send_to(&topic, Some(t.partition), Some(key.as_bytes()), value)
                        .await;
                }
            }
            let list = source::offset_list(&offsets)?;
            let consumer = Arc::clone(&self.consumer);
            self.sink
                .commit(&list, || consumer.group_metadata())
                .await?;
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || {
                checkpoint::save(&dir, &file)
                    .map(|size| (state_bytes, size))
                    .map_err(WriteFailure::Local)
            })
        } else {
            let (state, dir) = (Arc::clone(&self.state), self.dir.clone());
            let states: Vec<(i32, u64, Arc<Vec<u8>>)> = taken
                .iter()
                .map(|t| (t.partition, t.generation, Arc::clone(&t.bytes)))
                .collect();
            tokio::spawn(async move {
                let mut written = 0u64;
                for (partition, generation, bytes) in states {
                    state
                        .write(partition, generation, &bytes)
                        .await
                        .map_err(WriteFailure::State)?;
                    written += bytes.len() as u64;
                }
                let size = tokio::task::spawn_blocking(move || checkpoint::save(&dir, &file))
                    .await
                    .map_err(|e| {
                        WriteFailure::Local(CheckpointError::Io {
                            path: std::path::PathBuf::from("checkpoint"),
                            source: std::io::Error::other(e.to_string()),
                        })
                    })?
                    .map_err(WriteFailure::Local)?;
                Ok((written, size))
            })
        };
        self.dirty = false;
        self.writing = Some(Writing {
            write,
            taken,
            offsets,
            started,
            paused: started.elapsed(),
        });
        Ok(())
    }

    /// Waits for the checkpoint being written, if any, then commits its offsets. A state
    /// the state topic did not take is taken again at the next checkpoint, and nothing is
    /// committed meanwhile.
    async fn complete_checkpoint(&mut self) -> Result<(), ServiceError> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        let result = match writing.write.await {
            Ok(result) => result,
            Err(join) => Err(WriteFailure::Local(CheckpointError::Io {
                path: checkpoint::path_in(&self.dir),
                source: std::io::Error::other(join.to_string()),
            })),
        };
        let (state_bytes, bytes) = match result {
            Ok(sizes) => sizes,
            Err(WriteFailure::Local(error)) => return Err(error.into()),
            Err(WriteFailure::State(error)) => {
                self.metrics.state_write_errors.inc();
                tracing::warn!(
                    %error,
                    tasks = writing.taken.len(),
                    "writing task state to the state topic; retried at the next checkpoint, \
                     offsets not committed meanwhile"
                );
                for taken in &writing.taken {
                    self.tasks.retry(taken.partition);
                }
                self.dirty = true;
                return Ok(());
            }
        };
        for taken in writing.taken {
            self.tasks.written(
                taken.partition,
                taken.generation,
                taken.offsets,
                taken.bytes,
            );
        }
        self.last_checkpoint = Instant::now();
        self.metrics
            .checkpoint_duration
            .observe(writing.started.elapsed().as_secs_f64());
        self.metrics.checkpoint_size.set(bytes as i64);
        self.metrics.state_written.inc_by(state_bytes);
        self.sync_metrics();
        if self.sink.is_transactional() {
            // The offsets were committed with the transaction.
        } else if let Err(error) = source::commit(&self.consumer, &writing.offsets) {
            // The state holds the offsets; the group's copy catches up next time.
            tracing::warn!(%error, "committing offsets");
        }
        tracing::debug!(
            bytes,
            state_bytes,
            millis = writing.started.elapsed().as_millis() as u64,
            pipeline_paused_millis = writing.paused.as_millis() as u64,
            partitions = writing.offsets.len(),
            "checkpoint written"
        );
        Ok(())
    }
}
